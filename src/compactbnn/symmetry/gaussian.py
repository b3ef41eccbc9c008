"""Draws from a mean-field Gaussian over a model's parameters, q = N(mean, diag(sd^2)).

Draw i is ``mean + sd * eps_i`` with eps_i ~ N(0, I) drawn as one vector in ``model.ravel`` order from
``fold_in(key, i)``, so the first k draws do not depend on how many are drawn, and a predictive can
draw them chunk by chunk (``evaluation.metrics.gaussian_predictive``). The compact representation
(``compact``) draws networks this way for activation matching of VI's q.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models import Model, Params


def mean_and_sd(q):
    """``(mean, sd)`` of q: a ``compact.Gaussian``, a ``vi.VIResult`` (anything with .mean and .sd) or a pair."""
    if hasattr(q, "mean") and hasattr(q, "sd"):
        return q.mean, q.sd
    try:
        mean, sd = q
    except (TypeError, ValueError):
        raise TypeError(f"q must have .mean and .sd (compact.Gaussian) or be a (mean, sd) pair, got {type(q).__name__}") from None
    return mean, sd


def sample_gaussian(model: Model, key: jax.Array, q, num_samples: int) -> Params:
    """``num_samples`` draws from a mean-field Gaussian q over ``model``'s parameters, stacked along a leading axis.

    ``q`` has ``mean`` and ``sd`` params-shaped pytrees (``compact.Gaussian``, ``vi.VIResult``)
    or is a ``(mean, sd)`` pair. Draw i is ``mean + sd * eps`` with eps ~ N(0, I) drawn as one
    vector in ``model.ravel`` order from ``fold_in(key, i)``, so the first k draws do not depend on
    ``num_samples`` and ``metrics.gaussian_predictive`` can draw them chunk by chunk.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    mean, sd = mean_and_sd(q)
    return draws(model, key, mean, sd, jnp.arange(num_samples))


def draws(model: Model, key: jax.Array, mean: Params, sd: Params, indices: jax.Array) -> Params:
    """The draws ``mean + sd * eps_i`` for each i in ``indices`` (stacked), eps_i ~ N(0, I) from ``fold_in(key, i)`` in ravel order."""
    model.check(mean, "q's mean")
    model.check(sd, "q's sd")
    flat_mean = jnp.asarray(model.ravel(mean), jnp.float32)
    flat_sd = jnp.asarray(model.ravel(sd), jnp.float32)
    return model.unravel(_draw_flat(key, flat_mean, flat_sd, indices))


@jax.jit
def _draw_flat(key, flat_mean, flat_sd, indices):
    # One normal vector per draw (not one per leaf): a single RNG call keeps compilation cheap.
    eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), flat_mean.shape, flat_mean.dtype))(indices)
    return flat_mean + flat_sd * eps
