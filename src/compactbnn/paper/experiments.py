"""Experiments A and B of the paper, as pure functions from networks to tidy tables.

Experiment A (Figure 2 a-c): a network W_init and copies P W_init permuted by a controlled
number of transpositions NoT(P) = k are trained with different minibatch orders; rebasin then
measures NoT(P') between the pair, next to the squared distance and the loss barrier, for three
pairs per level: ``init`` (W_init vs P W_init), ``trained`` (both trained) and ``control`` (the
trained first network permuted by the known P vs the trained second).

Experiment B (Figure 1, Figure 2 d): two independently initialised networks trained side by
side; at every epoch, the loss along their linear interpolation before and after rebasin, and
the NoT between W_lambda and W0.

Both also carry the authors' other measures (Figure S1): error barriers on train and test,
distances per weight matrix and bias, the networks' own metrics. HMC's running predictive
(Figure S2) is the accuracy and NLL of the first n kept samples' predictive.

Experiment C's tables (Table 1, the sigmas and pruning curves of Figure 3) are in ``posterior``; they
are named here too, as before they moved there.

Every function that touches networks takes their ``compactbnn.models.Model`` first. The NoT
levels of Experiment A are ``compactbnn.config.shapes.not_levels``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from compactbnn.evaluation import metrics
from compactbnn.models.base import Model, Params
from compactbnn.paper.posterior import (  # noqa: F401 (Experiment C, named here as before)
    EXTRA_PRUNING_CURVES, LOW_RANK_ROW, PRUNING_CURVES, SGMCMC_PRUNING_CURVES, SGMCMC_ROWS, TABLE1_ROWS,
    posterior_table, pruning_table, sigma_histograms, sigma_table,
)
from compactbnn.symmetry import interpolation, permutation, rebasin

NOT_CURVES = ("init", "trained", "control")


def lambda_grid(num_lambdas: int) -> np.ndarray:
    """``num_lambdas`` evenly spaced interpolation weights in [0, 1] (the paper: 11)."""
    if num_lambdas < 2:
        raise ValueError(f"the lambda grid needs at least 2 points (0 and 1), got {num_lambdas}")
    return np.linspace(0.0, 1.0, num_lambdas)


def permuted_initialisations(model: Model, key: jax.Array, levels, *, independent: bool = True):
    """For every level k, a first network W_init and its copy P_k W_init with NoT(P_k) = k in every permutation.

    ``levels``: (L,) NoT levels that every permutation of the spec gets, or (num_perms, L), one row of
    levels per permutation (``compactbnn.config.shapes.not_levels_per_group``: each group its own range).

    ``independent=True`` (the authors' code): a fresh W_init for every level, so the levels are
    independent pairs; ``init`` is then stacked (L, ...). ``independent=False``: one W_init shared
    by all levels (half the networks to train, but correlated levels); ``init`` has no model axis.
    Returns ``(init, perms, permuted)``: the first network(s), a list (per permutation of the spec,
    an MLP's hidden layers) of (L, n_p) permutations, and the L permuted copies stacked. A
    permutation of fewer than k + 1 units gets its largest possible NoT, n_p - 1.
    """
    init_key, perm_key = jax.random.split(key)
    levels = np.asarray(levels, np.int32)
    if levels.ndim == 2 and levels.shape[0] != model.spec.num_perms:
        raise ValueError(f"levels has {levels.shape[0]} rows, the model {model.spec.num_perms} permutations")
    per_perm = levels if levels.ndim == 2 else np.broadcast_to(levels, (model.spec.num_perms, len(levels)))
    num_levels = per_perm.shape[1]
    init = model.init_many(init_key, num_levels) if independent else model.init(init_key)
    perms = []
    for layer, width in enumerate(model.perm_sizes):
        keys = jax.random.split(jax.random.fold_in(perm_key, layer), num_levels)
        perms.append(np.asarray(permutation.permutations_with_transpositions(keys, width, np.minimum(per_perm[layer], width - 1))))
    return init, perms, permutation.permute_many(model, _as_stack(model, init, num_levels), perms)


def _as_stack(model: Model, params: Params, num_models: int) -> Params:
    """``params`` as a stack of ``num_models`` networks: one network, unstacked or a stack of 1, is repeated."""
    if interpolation.leading_ndim(model, params) == 1:
        count = model.num_stacked(params)
        if count == num_models:
            return params
        if count != 1:
            raise ValueError(f"expected one network or a stack of {num_models}, got a stack of {count}")
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], params)
    # a broadcast: the copies share the one network's memory
    return jax.tree_util.tree_map(lambda leaf: jnp.broadcast_to(leaf, (num_models,) + jnp.shape(leaf)), params)


def analyse_not_run(model: Model, init: Params, trained: Params, trained_permuted: Params, perms: Sequence[np.ndarray],
                    *, x_match: np.ndarray | None, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], split: str,
                    lambdas: np.ndarray, method: str, run: int = 0, progress: bool = True) -> pd.DataFrame:
    """One run of Experiment A: one row per (curve, level) with NoT, distances, barriers and the pair's own metrics.

    ``init``/``trained`` are the first network before and after training: one network shared by
    all levels (unstacked, or a stack of 1), or one per level (stacked, the authors' independent pairs),
    ``trained_permuted`` the L trained copies (stacked) that started at ``P_k init``, ``perms`` the
    known P: one (L, n_p) array per permutation of the spec (an MLP's hidden layers). ``splits`` maps split names to (x, y), e.g.
    ``{"train": ..., "test": ...}``; ``split`` names the one behind ``barrier``.

    Columns (the first seven are what Figure 2 and the claims read):

    - ``run``, ``not_init`` (NoT(P), summed over hidden layers), ``curve`` (``NOT_CURVES``);
    - ``not_measured``: NoT(P') that rebasin (``method``; activation matching on ``x_match``) finds
      to align the second network to the first, summed over hidden layers;
    - ``distance``: ``||W0 - W1||^2``; ``barrier``: the loss barrier, maximum over ``lambdas`` on
      ``split``; ``barrier_midpoint``: its lambda = 0.5 variant (the authors' code; NaN when 0.5 is
      not on the grid);
    - for every split S (the authors' extras): ``barrier_S``, ``barrier_midpoint_S`` (loss) and
      ``error_barrier_S``, ``error_barrier_midpoint_S`` (0-1 error);
    - ``distance_w1``, ``distance_b1``, ``distance_w2``, ... : the squared distance per weight
      matrix and bias, layer 1 first (``interpolation.parameter_names``; they sum to ``distance``);
    - ``first_loss_S``, ``first_accuracy_S``, ``second_loss_S``, ``second_accuracy_S``: each
      network of the pair on split S (the path's ends), e.g. the trained networks' final loss.
    """
    if split not in splits:
        raise ValueError(f"split {split!r} (the barrier's) is not among the splits {sorted(splits)}")
    # NoT(P) summed over hidden layers, as NoT(P') is: with one hidden layer, the level k itself
    not_init = np.sum([np.asarray(permutation.count_transpositions_many(p)) for p in perms], axis=0).astype(int)
    init_stack, trained_stack = _as_stack(model, init, len(not_init)), _as_stack(model, trained, len(not_init))
    pairs = {
        "init": (init_stack, permutation.permute_many(model, init_stack, perms)),
        "trained": (trained_stack, trained_permuted),
        # alignment by the known P: P W0_trained against the trained second network
        "control": (permutation.permute_many(model, trained_stack, perms), trained_permuted),
    }
    has_midpoint = bool(np.any(np.isclose(lambdas, 0.5)))
    frames = []
    for curve in tqdm(NOT_CURVES, desc=f"analysing run {run}", disable=not progress, leave=False):
        first, second = pairs[curve]
        not_measured = interpolation.transpositions_between_pairs(model, first, second, method=method, x=x_match)
        path = interpolation.evaluate_paths(model, first, second, lambdas, splits)
        columns = {
            "run": run,
            "not_init": not_init,
            "curve": curve,
            "not_measured": np.asarray(not_measured, int),
            "distance": np.asarray(interpolation.squared_distance(model, first, second), float),
        }
        for name in splits:
            loss, acc = path[f"{name}_loss"], path[f"{name}_accuracy"]
            columns[f"barrier_{name}"] = interpolation.loss_barrier(loss, lambdas, "max")
            columns[f"barrier_midpoint_{name}"] = interpolation.loss_barrier(loss, lambdas, "midpoint") if has_midpoint else np.nan
            columns[f"error_barrier_{name}"] = interpolation.error_barrier(acc, lambdas, "max")
            columns[f"error_barrier_midpoint_{name}"] = (
                interpolation.error_barrier(acc, lambdas, "midpoint") if has_midpoint else np.nan)
        for layer, value in interpolation.squared_distance_per_layer(model, first, second).items():
            columns[f"distance_{layer}"] = np.asarray(value, float)
        # lambda = 0 and 1 are the pair's networks themselves (interpolate is exact at the ends)
        ends = {"first": interpolation.grid_index(lambdas, 0.0), "second": interpolation.grid_index(lambdas, 1.0)}
        for network, index in ends.items():
            for name in splits:
                columns[f"{network}_loss_{name}"] = path[f"{name}_loss"][:, index]
                columns[f"{network}_accuracy_{name}"] = path[f"{name}_accuracy"][:, index]
        table = pd.DataFrame(columns)
        table.insert(5, "barrier", table[f"barrier_{split}"])
        table.insert(6, "barrier_midpoint", table[f"barrier_midpoint_{split}"])
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def interpolation_table(
    model: Model,
    snapshots: Params,
    lambdas: np.ndarray,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    method: str,
    x_match: np.ndarray | None,
    progress: bool = True,
) -> pd.DataFrame:
    """Experiment B as rows (epoch, lambda, rebasin, split, loss, accuracy, not_to_w0, l2_to_w0, l2_to_w0_w1, ...).

    ``snapshots``: parameters with leading axes (epochs + 1, 2): the two networks at every
    epoch. ``rebasin = "before"`` interpolates W0 and W1 as they are, ``"after"`` first aligns W1
    to W0 at that epoch. ``not_to_w0`` is NoT(P') of the permutation that aligns W_lambda to W0;
    ``l2_to_w0`` the L2 norm ``||W_lambda - W0||`` (not squared, as the authors' training-dynamics
    script), and ``l2_to_w0_w1``, ``l2_to_w0_b1``, ... the same per weight matrix and bias, layer 1
    first. The error along lambda is ``1 - accuracy``.
    """
    model.check(snapshots, "snapshots", batch_ndim=2)
    num_epochs = model.num_stacked(snapshots)
    frames = []
    for epoch in tqdm(range(num_epochs), desc="interpolating", unit="epoch", disable=not progress, leave=False):
        w0 = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[epoch, 0]), snapshots)
        w1 = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[epoch, 1]), snapshots)
        perms = rebasin.align_many(model, w0, model.stack_one(w1), method=method, x=x_match)
        aligned = permutation.permute(model, w1, [p[0] for p in perms])
        for label, end in (("before", w1), ("after", aligned)):
            path = interpolation.interpolate(w0, end, lambdas)
            path_perms = rebasin.align_many(model, w0, path, method=method, x=x_match)
            not_to_w0 = np.sum([np.asarray(permutation.count_transpositions_many(p)) for p in path_perms], axis=0)
            metrics = interpolation.evaluate_path(model, w0, end, lambdas, splits)
            l2_to_w0 = {"l2_to_w0": np.sqrt(np.asarray(interpolation.squared_distance(model, path, w0), np.float64))}
            for layer, value in interpolation.squared_distance_per_layer(model, path, w0).items():
                l2_to_w0[f"l2_to_w0_{layer}"] = np.sqrt(np.asarray(value, np.float64))
            for split in splits:
                frames.append(pd.DataFrame({
                    "epoch": epoch, "lambda": lambdas, "rebasin": label, "split": split,
                    "loss": metrics[f"{split}_loss"], "accuracy": metrics[f"{split}_accuracy"],
                    "not_to_w0": not_to_w0.astype(int), **l2_to_w0,
                }))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# HMC's running predictive (the authors' MNIST_HMC.py): when has the sample average converged?


def interleave_chains(counts: Sequence[int]) -> np.ndarray:
    """Indices into chains pooled chain after chain, taken by kept index: chain 0's first sample,
    chain 1's first, ..., then every chain's second, and so on (a chain that ran out is skipped)."""
    counts = [int(c) for c in counts]
    if not counts or min(counts) < 1:
        raise ValueError(f"every chain needs at least one sample, got counts {counts}")
    offsets = np.cumsum([0, *counts[:-1]])
    return np.asarray([offset + k for k in range(max(counts)) for offset, count in zip(offsets, counts) if k < count])


def running_predictive_table(model: Model, samples: Params, counts: Sequence[int], x: np.ndarray,
                             y: np.ndarray) -> pd.DataFrame:
    """Rows (chain, n, accuracy, nll, sample_accuracy, sample_nll): the predictive of the first n kept samples.

    ``samples``: the chains pooled chain after chain (leading axis), ``counts`` each chain's
    number of samples. ``chain`` is "0", "1", ... for each chain alone and "pooled" for all
    chains interleaved by kept index (``interleave_chains``: with C chains of equal length, the
    pooled predictive at n = C k is the mean of the chains' predictives at k). ``sample_*`` is
    the n-th sample alone (the authors' per-sample test accuracy).
    """
    model.check(samples, "samples", batch_ndim=1)
    total = model.num_stacked(samples)
    if sum(int(c) for c in counts) != total:
        raise ValueError(f"counts {list(counts)} do not add up to the {total} samples")
    offsets = np.cumsum([0, *counts[:-1]])
    orders = {str(c): np.arange(offset, offset + count) for c, (offset, count) in enumerate(zip(offsets, counts))}
    orders["pooled"] = interleave_chains(counts)
    probabilities = metrics.sample_probabilities(model, samples, x)  # one forward pass per sample serves every order
    frames = []
    for chain, order in orders.items():
        running = metrics.running_predictive(probabilities, y, order=order)
        frames.append(pd.DataFrame({"chain": chain, "n": np.arange(1, order.size + 1), **running}))
    return pd.concat(frames, ignore_index=True)
