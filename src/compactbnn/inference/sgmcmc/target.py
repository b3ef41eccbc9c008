"""What the SG-MCMC sampler draws from (``Target``), and the Bayesian network's target (``network_target``).

The sampler needs a posterior as BlackJAX's SG-MCMC does: a log prior of a position and the
log-likelihood of one example, from which ``blackjax.sgmcmc.gradients`` builds the minibatch
estimate ``log p(theta) + N / B * sum_batch log p(d_n | theta)``. ``network_target`` takes both from
``bnn`` (the prior and likelihood HMC samples, ``bnn.bnn_model``'s), so SG-MCMC, HMC and VI share
one posterior. A position is the network's parameter pytree (no ravel per step); kept samples are
stored raveled in ``model.ravel`` order, as HMC's. Any other target (a Gaussian with a closed-form
posterior, in the tests) is a ``Target`` of its own functions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from compactbnn.inference import bnn
from compactbnn.models import IN_LOOP_MATMUL, Model


def _identity(value):
    return value


def per_example_log_likelihood(log_likelihood: Callable) -> Callable:
    """(position, batch) -> {"log_likelihood": (B,)}: the default evaluation of a target at kept samples."""
    def evaluate(position, batch):
        return {"log_likelihood": jax.vmap(log_likelihood, in_axes=(None, 0))(position, batch)}
    return evaluate


@dataclass(frozen=True)
class Target:
    """A posterior p(theta | D) proportional to p(theta) prod_n p(d_n | theta), as the sampler needs it.

    log_prior(position) -> scalar; log_likelihood(position, example) -> scalar, ``example`` one
    entry of every data array (a tuple, leading axis removed), as BlackJAX's estimators take it;
    init(key) -> a position; ravel(position) -> (P,) float32 and unravel((P,)) -> position;
    evaluate(position, batch) -> {metric: (B,)} per example, summed ("log_likelihood") or averaged
    (any other metric) over a data set at every kept sample (None: the log-likelihood alone);
    name identifies the target in checkpoints (a resumed run must sample the same one).
    """

    log_prior: Callable
    log_likelihood: Callable
    init: Callable
    name: str
    ravel: Callable = _identity
    unravel: Callable = _identity
    evaluate: Callable | None = None

    def metrics(self) -> Callable:
        """(position, batch) -> {metric: (B,)}: ``evaluate``, or the per-example log-likelihood."""
        return self.evaluate if self.evaluate is not None else per_example_log_likelihood(self.log_likelihood)


@functools.lru_cache(maxsize=16)
def network_target(model: Model, prior_sd: float, init: str = "pytorch") -> Target:
    """The Bayesian network ``model`` as a Target: ``bnn.log_prior`` and ``bnn.log_likelihood`` of one (x, y).

    ``init``: "pytorch" (``model.init``, as HMC's) or "prior" (a draw from N(0, prior_sd^2)).
    Cached, so that equal arguments give the same functions and compiled programs are reused.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a compactbnn.models.Model, got {type(model).__name__}")

    def log_prior(params):
        return bnn.log_prior(params, prior_sd)

    def log_likelihood(params, example):
        x, y = example
        return bnn.log_likelihood(model, params, x[None], y[None], IN_LOOP_MATMUL)  # every step is in a fori_loop

    def initial(key):
        if init == "pytorch":
            return model.init(key)
        return model.unravel(prior_sd * jax.random.normal(key, (model.num_params,), jnp.float32))

    def evaluate(params, batch):
        x, y = batch
        logits = model.apply(params, x, IN_LOOP_MATMUL)
        picked = jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return {"log_likelihood": picked, "accuracy": (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)}

    def ravel(params):
        return model.ravel(params).astype(jnp.float32)

    return Target(log_prior, log_likelihood, initial, f"{model!r}, N(0, {prior_sd}^2) prior, init {init}",
                  ravel, model.unravel, evaluate)
