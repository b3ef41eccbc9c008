"""The Bayesian network as one NumPyro model (``bnn_model``), for HMC and VI, and its potential in plain JAX.

Every function takes the network as a ``compactbnn.models.Model``. The sample sites are the
model's ``sites`` in their order (``layer0.weight``, ``layer0.bias``, ... for an MLP);
``model.to_sites`` and ``model.from_sites`` convert to and from parameter pytrees.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from compactbnn.models import Model, Params


def bnn_model(model: Model, x, y, prior_sd: float = 1.0, matmul=None, *, subsample_size: int | None = None, mask=None):
    """The Bayesian network as a NumPyro model: theta ~ N(0, prior_sd^2) per parameter, y ~ Cat(softmax(f(x; theta))).

    ``x`` (N, D) inputs, ``y`` (N,) integer labels (None samples them). One sample site per entry
    of ``model.sites``, in that order (NumPyro flattens and draws them in it). Without
    ``subsample_size`` (HMC) the likelihood is the sum over all N examples, so the potential
    energy is ``-log p(theta) - sum_n log p(y_n | x_n, theta)``. ``matmul``: the network's matrix
    product (``mixed_precision.matmul``; None is exact float32), for the copy of the model whose
    gradient drives leapfrog in mixed precision.

    Minibatches (VI): with ``subsample_size`` B the plate ``"data"`` of size N picks B rows of x, y
    (its indices are NumPyro's random ones, or the caller's through ``handlers.substitute(data=
    {"data": indices})``) and scales their log-likelihood by N / B, so the ELBO's likelihood term
    is N times the batch's mean. ``mask`` (B,) marks the real rows of a padded last batch: padding
    rows count zero and the real ones N / (number of real rows), i.e. still N times their mean.
    """
    z = {name: numpyro.sample(name, dist.Normal(0.0, prior_sd).expand(shape).to_event(len(shape)))
         for name, shape in model.sites}
    params = model.from_sites(z)
    with numpyro.plate("data", x.shape[0], subsample_size=subsample_size) as indices:
        if subsample_size is not None:  # full batch (HMC): no gather of the whole data set per gradient
            x, y = x[indices], None if y is None else y[indices]
        logits = model.apply(params, x, matmul)
        if mask is None:
            numpyro.sample("y", dist.Categorical(logits=logits), obs=y)
        else:
            with numpyro.handlers.scale(scale=mask.shape[0] / jnp.sum(mask)):
                numpyro.sample("y", dist.Categorical(logits=logits).mask(mask > 0), obs=y)


def log_prior(params: Params, prior_sd: float = 1.0) -> jax.Array:
    """log N(theta; 0, prior_sd^2 I) summed over every parameter (any pytree)."""
    leaves = jax.tree_util.tree_leaves(params)
    count = sum(leaf.size for leaf in leaves)
    squared = sum(jnp.sum(leaf**2) for leaf in leaves)
    return -0.5 * squared / prior_sd**2 - count * (math.log(prior_sd) + 0.5 * math.log(2 * math.pi))


def log_likelihood(model: Model, params: Params, x: jax.Array, y: jax.Array, matmul=None) -> jax.Array:
    """Categorical log-likelihood summed over the examples: sum_n log softmax(f(x_n))[y_n]."""
    return log_likelihood_of_logits(model.apply(params, x, matmul), y)


def log_likelihood_of_logits(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``log_likelihood`` given the logits (N, classes), for callers that also need the logits (test accuracy)."""
    return jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None].astype(jnp.int32), axis=-1))


def potential_energy(model: Model, params: Params, x: jax.Array, y: jax.Array, prior_sd: float = 1.0, matmul=None) -> jax.Array:
    """HMC's potential U(theta) = -log prior - log likelihood, in plain JAX (the benchmark's bare gradient)."""
    return -log_prior(params, prior_sd) - log_likelihood(model, params, x, y, matmul)
