"""Pruning by uncertainty and "merging" (Figure 3 right of PAPER.md).

A compact representation gives every parameter a mean mu and a standard deviation sigma. A
parameter with a large sigma is one the data does not pin down, so it can be set to zero: keep
the ``round(fraction * num_params)`` parameters with the smallest sigma, zero the rest, and
measure the test accuracy of the pruned mean network at retained fractions 100, 90, ..., 10, 5,
1 %.

Any mean may be combined with any sigma. The paper's "merged" curve prunes the deep ensemble's
mu_r by HMC's sigma_r. Such a pairing is only meaningful when both are expressed in the same
permutation basis, i.e. aligned to the same reference network (``compact.q_rebasin`` with one
shared ``reference``, ``compact.align_gaussian`` for VI); otherwise sigma of hidden unit i
describes a different unit than mu's unit i.

Ties in sigma are broken by position in ``model.ravel`` order (PyTorch's parameter order): of two
equal sigmas, the earlier parameter is kept first. (The authors' script keeps
``int(fraction * num_params)``, a floor; here the count is rounded half up, which differs by at
most one parameter.)
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn import train
from compactbnn.models import Model, Params

PAPER_RETAINED_PERCENTS = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1)


def num_retained(num_params: int, retained_fraction: float) -> int:
    """``round(retained_fraction * num_params)``, halves rounded up, computed robustly in float64."""
    _check_fraction(retained_fraction)
    # The small epsilon absorbs binary representation error (0.9 * 407050 = 366344.99999999994).
    return int(np.floor(float(retained_fraction) * num_params + 0.5 + 1e-9))


def retention_order(model: Model, sd: Params) -> np.ndarray:
    """Indices into ``model.ravel`` order, smallest sigma first (stable: ties keep index order)."""
    flat = np.asarray(model.ravel(sd), np.float64)
    if flat.ndim != 1:
        raise ValueError(f"sd must be one params pytree without a model axis, got ravelled shape {flat.shape}")
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"sd holds {int(np.sum(~np.isfinite(flat)))} non-finite entries")
    if np.any(flat < 0):
        raise ValueError(f"sd holds negative entries (min {flat.min()}): standard deviations expected")
    return np.argsort(flat, kind="stable")


def retained_mask(model: Model, sd: Params, retained_fraction: float) -> np.ndarray:
    """Boolean vector in ``model.ravel`` order: True for the round(fraction * P) smallest-sigma parameters."""
    order = retention_order(model, sd)
    mask = np.zeros(order.shape[0], bool)
    mask[order[: num_retained(order.shape[0], retained_fraction)]] = True
    return mask


def prune(model: Model, mean: Params, sd: Params, retained_fraction: float) -> Params:
    """The mean network with every parameter outside the smallest-sigma ``retained_fraction`` set to zero.

    ``mean`` and ``sd`` are parameter pytrees of ``model`` (no model axis), aligned to the same
    reference (see the module docstring). Exactly ``num_retained(P, retained_fraction)``
    parameters keep their mean value (a kept mean that happens to be 0 stays 0).
    """
    _check_pair(model, mean, sd)
    mask = retained_mask(model, sd, retained_fraction)
    flat = jnp.asarray(model.ravel(mean))
    return model.unravel(jnp.where(jnp.asarray(mask), flat, jnp.zeros_like(flat)))


def pruned_stack(model: Model, mean: Params, sd: Params, retained_fractions: Sequence[float]) -> Params:
    """``prune`` at every fraction, stacked along a leading axis (len(fractions), ...)."""
    _check_pair(model, mean, sd)
    order = retention_order(model, sd)
    flat = np.asarray(model.ravel(mean))
    rows = []
    for fraction in retained_fractions:
        row = np.zeros_like(flat)
        keep = order[: num_retained(flat.shape[0], fraction)]
        row[keep] = flat[keep]
        rows.append(row)
    return model.unravel(jnp.asarray(np.stack(rows)))


def pruning_curve(
    model: Model,
    mean: Params,
    sd: Params,
    x,
    y,
    retained_percents: Sequence[float] = PAPER_RETAINED_PERCENTS,
) -> np.ndarray:
    """Test accuracy (a fraction in [0, 1]) of the pruned mean network at each retained percentage.

    ``retained_percents`` in (0, 100] (paper: 100, 90, ..., 10, 5, 1); the result has one entry
    per percentage, in the given order. For the paper's "merged" curve pass the ensemble's mu_r
    and HMC's sigma_r, both aligned to the same reference.
    """
    percents = [float(p) for p in retained_percents]
    if not percents:
        raise ValueError("retained_percents is empty")
    for percent in percents:
        if not 0 < percent <= 100:
            raise ValueError(f"retained percentages must lie in (0, 100], got {percent}")
    stacked = pruned_stack(model, mean, sd, [p / 100.0 for p in percents])
    return np.asarray(train.evaluate_many(model, stacked, x, y)["accuracy"], np.float64)


def _check_fraction(fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) or not 0 <= fraction <= 1:
        raise ValueError(f"retained_fraction must be a number in [0, 1], got {fraction!r}")


def _check_pair(model: Model, mean: Params, sd: Params) -> None:
    # one network each (no model axis), both of ``model``: then their leaves match one for one
    model.check(mean, "mean")
    model.check(sd, "sd")
    if jax.tree_util.tree_structure(mean) != jax.tree_util.tree_structure(sd):
        raise ValueError("mean and sd must be params pytrees of the same structure")
