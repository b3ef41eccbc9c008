"""Linear interpolation between networks, loss barriers, weight distances (PAPER.md, Experiments A and B).

``W_lambda = (1 - lambda) W0 + lambda W1`` over a grid of lambdas; the loss along this path,
its barrier ``max_lambda L(W_lambda) - (L(W0) + L(W1)) / 2`` (the paper's definition) or the
same at lambda = 0.5 only (the authors' code), the same barrier of the 0-1 error, the squared L2
distance ``||W0 - W1||^2`` (in total or per weight matrix and bias) and the number of
transpositions NoT(P') of the permutation rebasin finds between two networks.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models import mlp
from compactbnn import train
from compactbnn.symmetry.permutation import check_params, count_transpositions_many, total_transpositions
from compactbnn.symmetry.rebasin import align_many, match_pairs

BARRIER_KINDS = ("max", "midpoint")
DEFAULT_EVAL_CHUNK = 64  # interpolated networks evaluated together (memory: chunk x data batch x width)


def interpolate(params0: mlp.Params, params1: mlp.Params, lambdas) -> mlp.Params:
    """Stacked ``W_lambda = (1 - lambda) W0 + lambda W1`` for every lambda: leaves (L, *leading, ...).

    params0 and params1 have the same structure; leading model axes (a stack of pairs) are
    kept after the lambda axis. Exact at both ends (W_0 = W0, W_1 = W1) and constant when
    W0 == W1, so a network's path to itself has zero barrier.
    """
    lambdas = _check_lambdas(lambdas)
    _check_same_structure(params0, params1)
    lam = jnp.asarray(lambdas, jnp.float32)

    def path(a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        t = lam.reshape((-1,) + (1,) * a.ndim)
        # Lerp anchored at the nearer end: exact endpoints, and W0 + t (W1 - W0) is W0 when W1 == W0.
        return jnp.where(t <= 0.5, a + t * (b - a), b - (1 - t) * (b - a))

    return jax.tree_util.tree_map(path, params0, params1)


def evaluate_path(params0: mlp.Params, params1: mlp.Params, lambdas, splits: Mapping[str, tuple],
                  *, chunk_size: int = DEFAULT_EVAL_CHUNK) -> dict[str, np.ndarray]:
    """Loss and accuracy along the path between two networks, every lambda in one vectorised evaluation.

    splits: e.g. ``{"train": (x, y), "test": (x, y)}``. Returns ``{"<split>_loss": (L,),
    "<split>_accuracy": (L,)}`` (mean cross-entropy and accuracy, as ``train.evaluate_many``).
    """
    check_params(params0, "params0")
    return _evaluate_paths(params0, params1, lambdas, splits, chunk_size, batch_ndim=0)


def evaluate_paths(params0_stacked: mlp.Params, params1_stacked: mlp.Params, lambdas,
                   splits: Mapping[str, tuple], *, chunk_size: int = DEFAULT_EVAL_CHUNK) -> dict[str, np.ndarray]:
    """``evaluate_path`` for M pairs at once (leading model axis): each entry (M, L).

    E.g. Experiment A's 250 pairs at lambda in {0, 0.5, 1}. Networks are evaluated
    ``chunk_size`` at a time.
    """
    check_params(params0_stacked, "params0_stacked", batch_ndim=1)
    return _evaluate_paths(params0_stacked, params1_stacked, lambdas, splits, chunk_size, batch_ndim=1)


def _evaluate_paths(params0, params1, lambdas, splits, chunk_size, batch_ndim):
    lambdas = _check_lambdas(lambdas)
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError("splits must be a non-empty mapping like {'train': (x, y), 'test': (x, y)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = interpolate(params0, params1, lambdas)  # (L, [M,] ...)
    lead = (len(lambdas),) + tuple(np.shape(params0[0]["bias"])[:batch_ndim])
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
            metrics = train.evaluate_many(chunk, x, y)
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


def layer_names(num_layers: int) -> list[str]:
    """Names of the parameter groups in ``mlp.ravel`` order: w1, b1, w2, b2, ... (the paper's W1, b1 are layer 1)."""
    return [f"{kind}{layer}" for layer in range(1, num_layers + 1) for kind in ("w", "b")]


def squared_distance_per_layer(params0: mlp.Params, params1: mlp.Params) -> dict[str, jax.Array]:
    """``||W0 - W1||^2`` of every weight matrix and bias vector apart: {"w1": ..., "b1": ..., "w2": ...}.

    Leading model axes are kept (broadcast), as in ``squared_distance``; the values sum to it.
    """
    _check_same_structure(params0, params1)
    out = {}
    for layer, (a, b) in enumerate(zip(params0, params1), start=1):
        for kind, name in (("w", "weight"), ("b", "bias")):
            diff = jnp.asarray(a[name]) - jnp.asarray(b[name])
            axes = tuple(range(diff.ndim - (2 if name == "weight" else 1), diff.ndim))
            out[f"{kind}{layer}"] = jnp.sum(diff ** 2, axis=axes)
    return out


def squared_distance(params0: mlp.Params, params1: mlp.Params) -> jax.Array:
    """``||W0 - W1||^2`` summed over every weight and bias; leading model axes are kept (broadcast)."""
    _check_same_structure(params0, params1)
    diff = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a) - jnp.asarray(b), params0, params1)
    return jnp.sum(mlp.ravel(diff) ** 2, axis=-1)


def transpositions_between(params_ref: mlp.Params, params: mlp.Params, *, method: str = "weight", x=None,
                           **options) -> int:
    """NoT(P'): transpositions of the permutation rebasin finds to align ``params`` to ``params_ref``, summed over hidden layers."""
    check_params(params, "params")
    stacked = mlp.stack_one(params)
    perms = align_many(params_ref, stacked, method=method, x=x, **options)
    return total_transpositions([p[0] for p in perms])


def transpositions_between_pairs(params_ref_stacked: mlp.Params, params_stacked: mlp.Params, *,
                                 method: str = "weight", x=None, **options) -> np.ndarray:
    """NoT(P') of M pairs at once (``match_pairs``), summed over hidden layers: (M,) int."""
    perms = match_pairs(params_ref_stacked, params_stacked, method=method, x=x, **options)
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


def _check_same_structure(params0, params1) -> None:
    """Both MLP pytrees of one architecture; leading model axes may differ (they broadcast)."""
    sizes = []
    for name, params in (("params0", params0), ("params1", params1)):
        if not isinstance(params, (list, tuple)) or not params or not isinstance(params[0], dict):
            raise TypeError(f"{name} must be a non-empty list of layer dicts {{'weight', 'bias'}}")
        sizes.append(check_params(params, name, batch_ndim=max(np.ndim(params[0].get("weight")) - 2, 0)))
    if len(sizes[0]) != len(sizes[1]):
        raise ValueError(f"params0 has {len(sizes[0]) - 1} layers but params1 has {len(sizes[1]) - 1}")
    if sizes[0] != sizes[1]:
        raise ValueError(f"params0 has layer sizes {sizes[0]} but params1 has {sizes[1]}")
