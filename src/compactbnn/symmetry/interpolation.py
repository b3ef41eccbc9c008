"""Linear interpolation between networks, loss barriers, weight distances (PAPER.md, Experiments A and B).

``W_lambda = (1 - lambda) W0 + lambda W1`` over a grid of lambdas; the loss along this path,
its barrier ``max_lambda L(W_lambda) - (L(W0) + L(W1)) / 2`` (the paper's definition) or the
same at lambda = 0.5 only (the authors' code), the same barrier of the 0-1 error, the squared L2
distance ``||W0 - W1||^2`` (in total or per weight matrix and bias) and the number of
transpositions NoT(P') of the permutation rebasin finds between two networks.

Functions that evaluate, measure or align networks take their ``compactbnn.models.Model`` first;
``interpolate`` is the same for any pair of equally shaped pytrees and needs none.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn import train
from compactbnn.models.base import Model, Params
from compactbnn.symmetry.permutation import count_transpositions_many, total_transpositions
from compactbnn.symmetry.rebasin import align_many, match_pairs

BARRIER_KINDS = ("max", "midpoint")
DEFAULT_EVAL_CHUNK = 64  # interpolated networks evaluated together (memory: chunk x data batch x width)


def interpolate(params0: Params, params1: Params, lambdas) -> Params:
    """Stacked ``W_lambda = (1 - lambda) W0 + lambda W1`` for every lambda: leaves (L, *leading, ...).

    params0 and params1 are pytrees of one structure (any model's); leading model axes (a stack
    of pairs) broadcast and are kept after the lambda axis. Exact at both ends (W_0 = W0, W_1 = W1) and constant when
    W0 == W1, so a network's path to itself has zero barrier.
    """
    lambdas = _check_lambdas(lambdas)
    structures = jax.tree_util.tree_structure(params0), jax.tree_util.tree_structure(params1)
    if structures[0] != structures[1]:
        raise ValueError(f"params0 and params1 differ in structure: {structures[0]} and {structures[1]}")
    lam = jnp.asarray(lambdas, jnp.float32)

    def path(a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        t = lam.reshape((-1,) + (1,) * a.ndim)
        # Lerp anchored at the nearer end: exact endpoints, and W0 + t (W1 - W0) is W0 when W1 == W0.
        return jnp.where(t <= 0.5, a + t * (b - a), b - (1 - t) * (b - a))

    return jax.tree_util.tree_map(path, params0, params1)


def evaluate_path(model: Model, params0: Params, params1: Params, lambdas, splits: Mapping[str, tuple],
                  *, chunk_size: int = DEFAULT_EVAL_CHUNK) -> dict[str, np.ndarray]:
    """Loss and accuracy along the path between two networks, every lambda in one vectorised evaluation.

    splits: e.g. ``{"train": (x, y), "test": (x, y)}``. Returns ``{"<split>_loss": (L,),
    "<split>_accuracy": (L,)}`` (mean cross-entropy and accuracy, as ``train.evaluate_many``).
    """
    _check_pair(model, params0, params1)
    return _evaluate_paths(model, params0, params1, lambdas, splits, chunk_size, lead=())


def evaluate_paths(model: Model, params0_stacked: Params, params1_stacked: Params, lambdas,
                   splits: Mapping[str, tuple], *, chunk_size: int = DEFAULT_EVAL_CHUNK) -> dict[str, np.ndarray]:
    """``evaluate_path`` for M pairs at once (leading model axis): each entry (M, L).

    E.g. Experiment A's 250 pairs at lambda in {0, 0.5, 1}. Networks are evaluated
    ``chunk_size`` at a time.
    """
    model.check(params0_stacked, "params0_stacked", batch_ndim=1)
    _check_pair(model, params0_stacked, params1_stacked)
    lead = (model.num_stacked(params0_stacked),)
    return _evaluate_paths(model, params0_stacked, params1_stacked, lambdas, splits, chunk_size, lead=lead)


def _evaluate_paths(model, params0, params1, lambdas, splits, chunk_size, lead):
    lambdas = _check_lambdas(lambdas)
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError("splits must be a non-empty mapping like {'train': (x, y), 'test': (x, y)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = interpolate(params0, params1, lambdas)  # (L, [M,] ...)
    lead = (len(lambdas),) + tuple(lead)
    flat = jax.tree_util.tree_map(lambda leaf: leaf.reshape((-1,) + leaf.shape[len(lead):]), path)
    total = int(np.prod(lead))
    out = {}
    for name, pair in splits.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"splits[{name!r}] must be a pair (x, y)")
        x, y = jnp.asarray(pair[0]), jnp.asarray(pair[1])  # converted once, shared by every chunk
        loss, accuracy = [], []
        size = min(chunk_size, total)
        for start in range(0, total, size):
            real = min(size, total - start)
            # Every chunk has one shape (the last one padded by repeating its first network):
            # one compilation, and a network's loss does not depend on where its chunk ends.
            chunk = jax.tree_util.tree_map(
                lambda leaf: jnp.concatenate([leaf[start: start + real], jnp.repeat(leaf[start: start + 1], size - real, axis=0)]),
                flat)
            metrics = train.evaluate_many(model, chunk, x, y)
            loss.append(np.asarray(metrics["loss"])[:real])
            accuracy.append(np.asarray(metrics["accuracy"])[:real])
        # (L, [M]) -> ([M,] L): lambda last, so barriers reduce over the last axis.
        out[f"{name}_loss"] = np.moveaxis(np.concatenate(loss).reshape(lead), 0, -1)
        out[f"{name}_accuracy"] = np.moveaxis(np.concatenate(accuracy).reshape(lead), 0, -1)
    return out


def loss_barrier(losses, lambdas, kind: str = "max") -> np.ndarray:
    """Loss barrier along an interpolation path; losses (..., L) over the grid ``lambdas`` (L,) -> (...).

    ``kind="max"`` (the paper): ``max_lambda L(W_lambda) - (L(W0) + L(W1)) / 2``;
    ``kind="midpoint"`` (the authors' code): ``L(W_0.5) - (L(W0) + L(W1)) / 2``. The grid must
    contain 0 and 1 (and 0.5 for the midpoint).
    """
    if kind not in BARRIER_KINDS:
        raise ValueError(f"kind must be one of {BARRIER_KINDS}, got {kind!r}")
    lambdas = _check_lambdas(lambdas)
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim < 1 or losses.shape[-1] != len(lambdas):
        raise ValueError(f"losses must have the lambda grid's {len(lambdas)} values on the last axis, got shape {losses.shape}")
    ends = 0.5 * (losses[..., grid_index(lambdas, 0.0)] + losses[..., grid_index(lambdas, 1.0)])
    if kind == "max":
        return np.max(losses, axis=-1) - ends
    return losses[..., grid_index(lambdas, 0.5, "the midpoint barrier")] - ends


def error_barrier(accuracies, lambdas, kind: str = "max") -> np.ndarray:
    """0-1 error barrier: ``loss_barrier`` of the error ``1 - accuracy`` along the path, (..., L) -> (...).

    The authors' Experiment A measures it beside the loss barrier, on train and test
    (MNIST_number_of_transpositions.py, at lambda = 0.5).
    """
    return loss_barrier(1.0 - np.asarray(accuracies, dtype=np.float64), lambdas, kind)


def parameter_names(model: Model) -> list[str]:
    """Short names of the model's parameters in ``model.sites`` (PyTorch) order, the paper's W1, b1, W2, ...

    A site ``<layer>.<name>`` is the initial of its name and its layer's place among the sites'
    layers, counted from 1: an MLP's ``layer0.weight``, ``layer0.bias``, ``layer1.weight`` are
    w1, b1, w2. Where that is ambiguous, the site name with "_" for ".".
    """
    sites = [name for name, _ in model.sites]
    layers = list(dict.fromkeys(site.rpartition(".")[0] for site in sites))
    short = [f"{site.rpartition('.')[2][:1]}{layers.index(site.rpartition('.')[0]) + 1}" for site in sites]
    if "" in layers or len(set(short)) != len(short):
        return [site.replace(".", "_") for site in sites]
    return short


def squared_distance_per_layer(model: Model, params0: Params, params1: Params) -> dict[str, jax.Array]:
    """``||W0 - W1||^2`` of every parameter apart, by ``parameter_names``: {"w1": ..., "b1": ..., "w2": ...}.

    Leading model axes are kept (broadcast), as in ``squared_distance``; the values sum to it.
    """
    _check_pair(model, params0, params1)
    sites0, sites1 = model.to_sites(params0), model.to_sites(params1)
    out = {}
    for short, (site, shape) in zip(parameter_names(model), model.sites):
        diff = jnp.asarray(sites0[site]) - jnp.asarray(sites1[site])
        out[short] = jnp.sum(diff ** 2, axis=tuple(range(diff.ndim - len(shape), diff.ndim)))
    return out


def squared_distance(model: Model, params0: Params, params1: Params) -> jax.Array:
    """``||W0 - W1||^2`` summed over every weight and bias; leading model axes are kept (broadcast)."""
    _check_pair(model, params0, params1)
    diff = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a) - jnp.asarray(b), params0, params1)
    return jnp.sum(model.ravel(diff) ** 2, axis=-1)


def transpositions_between(model: Model, params_ref: Params, params: Params, *, method: str = "weight", x=None,
                           **options) -> int:
    """NoT(P'): transpositions of the permutation rebasin finds to align ``params`` to ``params_ref``, summed over the spec's permutations."""
    model.check(params, "params")
    stacked = model.stack_one(params)
    perms = align_many(model, params_ref, stacked, method=method, x=x, **options)
    return total_transpositions([p[0] for p in perms])


def transpositions_between_pairs(model: Model, params_ref_stacked: Params, params_stacked: Params, *,
                                 method: str = "weight", x=None, **options) -> np.ndarray:
    """NoT(P') of M pairs at once (``match_pairs``), summed over the spec's permutations: (M,) int."""
    perms = match_pairs(model, params_ref_stacked, params_stacked, method=method, x=x, **options)
    return np.sum([np.asarray(count_transpositions_many(p)) for p in perms], axis=0)


def _check_lambdas(lambdas) -> np.ndarray:
    arr = np.asarray(lambdas, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"lambdas must be a non-empty 1-D grid, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"lambdas must be finite, got {arr.tolist()}")
    return arr


def grid_index(lambdas, value: float, purpose: str = "the barrier's endpoints") -> int:
    """Position of ``value`` (e.g. 0 or 1: the path's ends) on the lambda grid; an error names ``purpose`` if absent."""
    lambdas = _check_lambdas(lambdas)
    hits = np.flatnonzero(np.isclose(lambdas, value, rtol=0, atol=1e-6))
    if hits.size == 0:
        raise ValueError(f"{purpose} need lambda = {value} in the grid, got {lambdas.tolist()}")
    return int(hits[0])


def leading_ndim(model: Model, params: Params, name: str = "params") -> int:
    """The number of leading model axes of ``params`` (0: one network), after checking they fit ``model``."""
    try:
        ndim = len(jax.eval_shape(model.ravel, params).shape) - 1  # shapes only: nothing is computed
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        ndim = 0  # not the model's structure: model.check below says how
    model.check(params, name, batch_ndim=max(ndim, 0))
    return ndim


def _check_pair(model, params0, params1) -> None:
    """Both networks (or stacks, whose leading axes broadcast) of ``model``."""
    leading_ndim(model, params0, "params0")
    leading_ndim(model, params1, "params1")
