"""The compiled programs of the chunked HMC sampler: initial state, one chunk of iterations, test metrics.

``compile_programs`` builds the kernel (``settings.make_kernel``) and compiles the three programs
for one model, config and set of data shapes. Compilation takes seconds, so it is cached with
``functools.lru_cache`` on those hashable arguments only (data are arguments of the programs, not
part of them): ``run_chains`` and a resumed run in the same process reuse it, and no caller has
anything to reset. ``chunk_slots`` says which row of a chunk's kept buffer each iteration fills.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.inference.bnn import log_likelihood_of_logits, log_prior
from compactbnn.inference.hmc.checkpoint import TRACE_DTYPES, TRACE_NAMES
from compactbnn.inference.hmc.settings import HMCConfig, make_kernel
from compactbnn.models import IN_LOOP_MATMUL, Model

PROGRAM_CACHE_SIZE = 4  # sets of compiled programs kept per process


@dataclass(frozen=True)
class Programs:
    """A kernel and its programs.

    init(key, x, y, flat or None) -> HMCState (jitted; flat: given initial parameters (P,));
    chunk(state, x, y, n, slots) -> (state, kept (..., capacity + 1, P), traces) (compiled);
    test(kept, x_test, y_test) -> (log-likelihood, accuracy) per kept row (compiled; None without test data).
    """

    kernel: object
    init: Callable
    chunk: Callable
    test: Callable | None
    compile_time: float


def kept_iterations(config: HMCConfig) -> np.ndarray:
    """The iteration (counting warmup) of every kept sample."""
    return config.kept_indices + config.num_warmup


def kept_capacity(config: HMCConfig) -> int:
    """The most kept samples any chunk holds: the rows of a chunk's kept buffer (besides the spare one)."""
    return int(np.bincount(kept_iterations(config) // config.chunk_size).max())


def chunk_slots(config: HMCConfig, done: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row of the kept buffer for each of the chunk's iterations (capacity = not kept), and the kept iterations."""
    iterations = np.arange(done, done + n)
    is_kept = np.isin(iterations, kept_iterations(config))
    slots = np.full(config.chunk_size, kept_capacity(config), np.int32)
    slots[:n][is_kept] = np.arange(int(is_kept.sum()), dtype=np.int32)
    return slots, iterations[is_kept]


def init_function(model: Model, config: HMCConfig, kernel) -> Callable:
    """(key, x, y, flat or None) -> HMCState: the chain's initial parameters and NumPyro's init, jitted as one program.

    Run op by op, NumPyro's init compiles hundreds of tiny programs (~10 s on a CPU).
    """
    def init(key, x, y, flat):
        init_key, hmc_key = jax.random.split(key)
        if flat is None and config.init == "pytorch":
            flat = model.ravel(model.init(init_key))
        elif flat is None:
            flat = config.prior_sd * jax.random.normal(init_key, (model.num_params,), jnp.float32)
        z = model.to_sites(model.unravel(flat))
        return kernel.init(hmc_key, config.num_warmup, init_params=z, model_args=(x, y), model_kwargs={})

    return jax.jit(init)


def chunk_function(model: Model, config: HMCConfig, kernel, capacity: int, vectorized: bool) -> Callable:
    """(state, x, y, n, slots) -> (state, kept (capacity + 1, P), traces): n HMC iterations in one loop.

    Iteration i's parameters are written to row slots[i] of ``kept``; iterations that are not
    kept write to the spare last row, so no branch and no per-iteration host work is needed.
    """
    chunk = config.chunk_size

    def chunk_fn(state, x, y, n, slots):
        kept = jnp.zeros((capacity + 1, model.num_params), jnp.float32)
        traces = {name: jnp.zeros((chunk,), TRACE_DTYPES[name]) for name in TRACE_NAMES}

        def body(i, carry):
            state, kept, traces = carry
            state = kernel.sample(state, (x, y), {})
            params = model.from_sites(state.z)
            flat = model.ravel(params).astype(jnp.float32)
            kept = jax.lax.dynamic_update_slice(kept, flat[None], (slots[i], 0))
            pe = state.potential_energy
            values = {
                "potential_energy": pe,
                "log_likelihood": -pe - log_prior(params, config.prior_sd),
                "accept_prob": state.accept_prob,
                "diverging": state.diverging,
                "nan_energy": jnp.isnan(state.energy),
            }
            traces = {k: traces[k].at[i].set(values[k].astype(traces[k].dtype)) for k in traces}
            return state, kept, traces

        return jax.lax.fori_loop(0, n, body, (state, kept, traces))

    return jax.vmap(chunk_fn, in_axes=(0, None, None, None, None)) if vectorized else chunk_fn


def test_function(model: Model, vectorized: bool) -> Callable:
    """(kept (capacity + 1, P), x_test, y_test) -> (summed log-likelihood, accuracy) per row."""
    def one(flat, xt, yt):
        logits = model.apply(model.unravel(flat), xt, IN_LOOP_MATMUL)  # inside lax.map and the chunk's fori_loop
        return log_likelihood_of_logits(logits, yt), jnp.mean(jnp.argmax(logits, axis=-1) == yt)

    def many(kept, xt, yt):
        return jax.lax.map(lambda f: one(f, xt, yt), kept)

    return jax.vmap(many, in_axes=(0, None, None)) if vectorized else many


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def compile_programs(model: Model, config: HMCConfig, num_train: int, num_test: int | None, num_chains: int,
                     vectorized: bool, backend: str) -> Programs:
    """The kernel and its compiled programs for ``num_train`` (and ``num_test``) examples, cached per process.

    ``backend``: JAX's default backend, part of the cache key only. The chunk is compiled for
    one sampler state of the right structure: NumPyro's init run once on zero data (its values
    do not enter the program; running it also sets the kernel's closures that ``sample`` uses).
    """
    start = time.perf_counter()
    with jax.default_matmul_precision(config.matmul_precision):
        kernel = make_kernel(model, config)
        init = init_function(model, config, kernel)
        x = jnp.zeros((num_train, model.num_features), jnp.float32)
        y = jnp.zeros((num_train,), jnp.int32)
        state = jax.device_get(init(np.zeros(2, np.uint32), x, y, None))
        if vectorized:
            state = jax.tree.map(lambda a: np.stack([a] * num_chains), state)
        capacity = kept_capacity(config)
        slots = np.zeros(config.chunk_size, np.int32)
        chunk = jax.jit(chunk_function(model, config, kernel, capacity, vectorized)).lower(state, x, y, np.int32(0), slots).compile()
        test = None
        if num_test is not None:
            kept_shape = (num_chains,) * vectorized + (capacity + 1, model.num_params)
            test = jax.jit(test_function(model, vectorized)).lower(
                jax.ShapeDtypeStruct(kept_shape, jnp.float32), jax.ShapeDtypeStruct((num_test, model.num_features), jnp.float32),
                jax.ShapeDtypeStruct((num_test,), jnp.int32)).compile()
    return Programs(kernel, init, chunk, test, time.perf_counter() - start)
