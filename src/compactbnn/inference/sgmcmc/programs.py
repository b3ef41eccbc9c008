"""One SG-MCMC step through BlackJAX, and the compiled programs of the sampler: steps of an epoch, evaluation.

**The step.** The gradient is BlackJAX's minibatch estimator: ``blackjax.sgmcmc.gradients``'
``logdensity_estimator`` (log prior + N x the batch's mean log-likelihood), differentiated with
``jax.value_and_grad``, which gives exactly ``gradients.grad_estimator``'s gradient (that is
``jax.grad`` of the same function) and the estimate itself for the trace, at no extra cost. The
update in the sampling stage is BlackJAX's SG-MCMC solver, the function its kernels call:

* sgld: ``diffusions.overdamped_langevin``: theta += eta grad + sqrt(2 eta T) xi, with eta =
  ``schedule.posterior_step`` (``blackjax.sgmcmc.sgld``'s kernel is exactly this solver after the
  estimator);
* sghmc: ``diffusions.sghmc`` with step eps = sqrt(eta) and friction alpha / eps, so that, with v =
  eps p, v <- (1 - alpha) v + eta grad + N(0, 2 alpha eta T): Chen et al.'s (2014, eq. 15) practical
  SGHMC with the code's constant momentum 1 - alpha, whatever the step size. The momentum p is the
  sampler's state, kept across minibatches and cycles as in the code. (``blackjax.sgmcmc.sghmc``'s
  kernel would redraw p at every call and spend all its integration steps on one minibatch: HMC with
  a stochastic gradient, not cSGHMC.)

In the exploration stage the update is the same solver without its noise (temperature 0: SGD, or SGD
with momentum for sghmc), written out in ``explore`` term for term as BlackJAX writes the solver, so
that the 407,050 Gaussian draws a step it would multiply by 0 are not drawn: they cost more than the
minibatch gradient on a CPU (benchmarks/sgmcmc.py). ``tests/test_sgmcmc.py`` checks it against
BlackJAX's solver at temperature 0.

**The programs.** ``epoch_program`` runs steps first..first + n - 1 of one epoch, all of one stage,
in a ``fori_loop`` (on the epoch's shuffle, drawn by ``shuffle_program`` from ``fold_in(data_key,
epoch)``; each step's noise from ``fold_in(noise_key, step)``). A run is split into calls at the
stage switch and wherever a sample is kept, and because every random number and step size is a
function of the step index alone, the split changes no number. ``evaluate_program`` scores a kept
sample on a whole data set.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.sgmcmc import diffusions, gradients

from compactbnn.inference.sgmcmc.schedule import Schedule, posterior_step
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig
from compactbnn.inference.sgmcmc.target import Target

EVAL_BATCH_SIZE = 2000  # examples per evaluation batch at kept samples (memory: batch x widest layer)


@dataclass(frozen=True)
class Programs:
    """The compiled programs of one run (see ``compile_programs``); ``epoch[sampling]`` runs steps of one stage."""

    shuffle: Callable
    epoch: dict
    ravel: Callable
    evaluate: Callable
    compile_time: float


def solver_steps(learning_rates, num_train: int, sampler: str) -> np.ndarray:
    """The step BlackJAX's solver takes for each learning rate: eta = lr / N (sgld), eps = sqrt(eta) (sghmc); float32."""
    eta = posterior_step(learning_rates, num_train)
    return (eta if sampler == "sgld" else np.sqrt(eta)).astype(np.float32)


def initial_state(config: SGMCMCConfig, position):
    """(position, momentum): SGHMC's momentum starts at 0 (the code's buffer), SGLD has none (an empty pytree)."""
    momentum = jax.tree.map(jnp.zeros_like, position) if config.sampler == "sghmc" else ()
    return position, momentum


def explore(config: SGMCMCConfig, position, momentum, grad, step):
    """The exploration stage's update: BlackJAX's solver without noise (its expressions, term for term)."""
    if config.sampler == "sgld":
        return jax.tree.map(lambda p, g: p + step * g, position, grad), momentum
    friction = config.alpha / step
    position = jax.tree.map(lambda x, p: x + step * p, position, momentum)
    momentum = jax.tree.map(lambda p, g: (1.0 - friction * step) * p + step * g, momentum, grad)
    return position, momentum


def sample(config: SGMCMCConfig, key, position, momentum, grad, step):
    """The sampling stage's update: BlackJAX's SGLD or SGHMC solver at the config's temperature."""
    if config.sampler == "sgld":
        return diffusions.overdamped_langevin()(key, position, grad, step, config.temperature), momentum
    solver = diffusions.sghmc(alpha=config.alpha / step, beta=0.0)
    return solver(key, position, momentum, grad, step, config.temperature)


def make_step(target: Target, config: SGMCMCConfig, num_train: int, sampling: bool) -> Callable:
    """(state, key, minibatch, step) -> (state, log-density estimate): one SG-MCMC step of one stage."""
    estimate = jax.value_and_grad(gradients.logdensity_estimator(target.log_prior, target.log_likelihood, num_train))

    def step_fn(state, key, minibatch, step):
        position, momentum = state
        value, grad = estimate(position, minibatch)
        if sampling:
            return sample(config, key, position, momentum, grad, step), value
        return explore(config, position, momentum, grad, step), value

    return step_fn


def shuffle_program(num_train: int, batch_size: int, steps_per_epoch: int) -> Callable:
    """(data_key, epoch) -> the epoch's minibatches (steps_per_epoch, batch_size): a fresh permutation from fold_in(data_key, epoch)."""
    def shuffle(data_key, epoch):
        order = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_train)
        return order[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
    return shuffle


def epoch_program(target: Target, config: SGMCMCConfig, num_train: int, steps_per_epoch: int, sampling: bool) -> Callable:
    """(state, data, batches, noise_key, epoch, first, n, steps) -> (state, log densities (steps_per_epoch,)).

    Runs the epoch's steps first..first + n - 1 on its minibatches ``batches`` (``shuffle_program``),
    all in one stage (``sampling``: two programs, so that no step pays for a branch over the state);
    ``steps`` holds the solver step of every step of the epoch; the log densities outside the range are 0.
    """
    step_fn = make_step(target, config, num_train, sampling)

    def run(state, data, batches, noise_key, epoch, first, n, steps):
        def body(i, carry):
            state, values = carry
            minibatch = tuple(a[batches[i]] for a in data)
            key = jax.random.fold_in(noise_key, epoch * steps_per_epoch + i)
            state, value = step_fn(state, key, minibatch, steps[i])
            return state, values.at[i].set(value)

        return jax.lax.fori_loop(first, first + n, body, (state, jnp.zeros(steps_per_epoch, jnp.float32)))

    return run


def evaluate_program(target: Target) -> Callable:
    """(position, data) -> {metric: value} over a whole data set: "log_likelihood" summed, other metrics averaged, and "log_prior".

    The data go through in batches of ``EVAL_BATCH_SIZE`` (the last padded and masked), so memory
    stays at one batch's activations.
    """
    metrics = target.metrics()

    def run(position, data):
        num_examples = data[0].shape[0]
        size = min(EVAL_BATCH_SIZE, num_examples)
        num_batches = -(-num_examples // size)
        padded = tuple(jnp.concatenate([a, jnp.zeros((num_batches * size - num_examples,) + a.shape[1:], a.dtype)])
                       .reshape((num_batches, size) + a.shape[1:]) for a in data)
        mask = (jnp.arange(num_batches * size) < num_examples).reshape(num_batches, size)
        per_batch = jax.lax.map(lambda b: {k: jnp.sum(jnp.where(b[1], v, 0.0)) for k, v in metrics(position, b[0]).items()},
                                (padded, mask))
        out = {k: jnp.sum(v) if k == "log_likelihood" else jnp.sum(v) / num_examples for k, v in per_batch.items()}
        out["log_prior"] = target.log_prior(position)
        return out

    return run


PROGRAM_CACHE_SIZE = 4  # sets of compiled programs kept per process


def compile_programs(target: Target, config: SGMCMCConfig, schedule: Schedule, num_train: int, vectorized: bool,
                     example_state, data: tuple) -> Programs:
    """The programs of one run, jitted (and, vectorised, vmapped over chains), the two epoch programs compiled now.

    ``example_state``: a state of the run's structure (chains on a leading axis when vectorised);
    ``data``: the training arrays. Compilation takes seconds, so the programs are cached per process
    on the arguments and the shapes of the state and data (a resumed run or the next chain reuses them).
    """
    def spec(tree):
        leaves, treedef = jax.tree.flatten(tree)
        return treedef, tuple((tuple(np.shape(a)), np.dtype(a.dtype).str) for a in leaves)

    return cached_programs(target, config, schedule, num_train, vectorized, spec(example_state), spec(tuple(data)))


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def cached_programs(target: Target, config: SGMCMCConfig, schedule: Schedule, num_train: int, vectorized: bool,
                    state_spec: tuple, data_spec: tuple) -> Programs:
    """``compile_programs`` for the shapes (treedef, ((shape, dtype), ...)) of the state and the data."""
    start = time.perf_counter()

    def abstract(spec):
        treedef, leaves = spec
        return jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(shape, np.dtype(dtype)) for shape, dtype in leaves])

    spe = schedule.layout.steps_per_epoch
    chains = (state_spec[1][0][0][0],) if vectorized else ()
    key = jax.ShapeDtypeStruct(chains + (2,), np.uint32)
    batches = jax.ShapeDtypeStruct(chains + (spe, config.batch_size), np.int32)
    scalar, steps = jax.ShapeDtypeStruct((), np.int32), jax.ShapeDtypeStruct((spe,), np.float32)
    shuffle = shuffle_program(num_train, config.batch_size, spe)
    epoch = {}
    with jax.default_matmul_precision(config.matmul_precision):
        for sampling in (False, True):
            program = epoch_program(target, config, num_train, spe, sampling)
            if vectorized:
                program = jax.vmap(program, in_axes=(0, None, 0, 0, None, None, None, None))
            epoch[sampling] = jax.jit(program, donate_argnums=0).lower(
                abstract(state_spec), abstract(data_spec), batches, key, scalar, scalar, scalar, steps).compile()
    ravel = jax.vmap(target.ravel) if vectorized else target.ravel
    return Programs(jax.jit(jax.vmap(shuffle, in_axes=(0, None)) if vectorized else shuffle), epoch, jax.jit(ravel),
                    jax.jit(evaluate_program(target)), time.perf_counter() - start)
