"""The Bayesian MLP as one NumPyro model (``bnn_model``), for HMC and VI, and its potential in plain JAX.

Sample sites are named per layer (``layer0.weight``, ``layer0.bias``, ...); ``params_from_sites``
and ``sites_from_params`` convert to and from ``mlp``'s parameter pytrees. ``hmc`` re-exports
every name here.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from compactbnn.models import mlp


def site_name(layer: int, kind: str) -> str:
    """NumPyro sample-site name of one layer's ``"weight"`` or ``"bias"``, e.g. ``layer0.weight``."""
    return f"layer{layer}.{kind}"


def params_from_sites(z: dict, num_layers: int) -> mlp.Params:
    """MLP parameter pytree (list of {"weight", "bias"}) from a dict of sample-site values."""
    return [{"weight": z[site_name(l, "weight")], "bias": z[site_name(l, "bias")]} for l in range(num_layers)]


def sites_from_params(params: mlp.Params) -> dict:
    """Dict of sample-site values from an MLP parameter pytree (inverse of ``params_from_sites``)."""
    z = {}
    for l, layer in enumerate(params):
        z[site_name(l, "weight")] = layer["weight"]
        z[site_name(l, "bias")] = layer["bias"]
    return z


def bnn_model(x, y, layer_sizes: Sequence[int], prior_sd: float = 1.0, matmul=None, *, subsample_size: int | None = None, mask=None):
    """The Bayesian MLP as a NumPyro model: theta ~ N(0, prior_sd^2) per weight and bias, y ~ Cat(softmax(f(x; theta))).

    ``x`` (N, D) inputs, ``y`` (N,) integer labels (None samples them). Without ``subsample_size``
    (HMC) the likelihood is the sum over all N examples, so the potential energy is
    ``-log p(theta) - sum_n log p(y_n | x_n, theta)``. ``matmul``: the network's matrix product
    (``mixed_hmc.matmul``; None is exact float32), for the copy of the model whose gradient drives
    leapfrog in mixed precision.

    Minibatches (VI): with ``subsample_size`` B the plate ``"data"`` of size N picks B rows of x, y
    (its indices are NumPyro's random ones, or the caller's through ``handlers.substitute(data=
    {"data": indices})``) and scales their log-likelihood by N / B, so the ELBO's likelihood term
    is N times the batch's mean. ``mask`` (B,) marks the real rows of a padded last batch: padding
    rows count zero and the real ones N / (number of real rows), i.e. still N times their mean.
    """
    sizes = mlp.check_layer_sizes(layer_sizes)
    params = []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight = numpyro.sample(site_name(l, "weight"), dist.Normal(0.0, prior_sd).expand((fan_out, fan_in)).to_event(2))
        bias = numpyro.sample(site_name(l, "bias"), dist.Normal(0.0, prior_sd).expand((fan_out,)).to_event(1))
        params.append({"weight": weight, "bias": bias})
    with numpyro.plate("data", x.shape[0], subsample_size=subsample_size) as indices:
        if subsample_size is not None:  # full batch (HMC): no gather of the whole data set per gradient
            x, y = x[indices], None if y is None else y[indices]
        logits = mlp.apply(params, x, matmul)
        if mask is None:
            numpyro.sample("y", dist.Categorical(logits=logits), obs=y)
        else:
            with numpyro.handlers.scale(scale=mask.shape[0] / jnp.sum(mask)):
                numpyro.sample("y", dist.Categorical(logits=logits).mask(mask > 0), obs=y)


def log_prior(params: mlp.Params, prior_sd: float = 1.0) -> jax.Array:
    """log N(theta; 0, prior_sd^2 I) summed over every weight and bias."""
    leaves = jax.tree_util.tree_leaves(params)
    count = sum(leaf.size for leaf in leaves)
    squared = sum(jnp.sum(leaf**2) for leaf in leaves)
    return -0.5 * squared / prior_sd**2 - count * (math.log(prior_sd) + 0.5 * math.log(2 * math.pi))


def log_likelihood(params: mlp.Params, x: jax.Array, y: jax.Array, matmul=None) -> jax.Array:
    """Categorical log-likelihood summed over the examples: sum_n log softmax(f(x_n))[y_n]."""
    return _log_likelihood_of_logits(mlp.apply(params, x, matmul), y)


def _log_likelihood_of_logits(logits: jax.Array, y: jax.Array) -> jax.Array:
    # log_likelihood given the logits, for callers that also need the logits (test accuracy)
    return jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None].astype(jnp.int32), axis=-1))


def potential_energy(params: mlp.Params, x: jax.Array, y: jax.Array, prior_sd: float = 1.0, matmul=None) -> jax.Array:
    """HMC's potential U(theta) = -log prior - log likelihood, in plain JAX (the benchmark's bare gradient)."""
    return -log_prior(params, prior_sd) - log_likelihood(params, x, y, matmul)
