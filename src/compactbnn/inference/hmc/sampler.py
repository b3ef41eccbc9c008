"""Full-batch Hamiltonian Monte Carlo over MLP weights with NumPyro's HMC kernel (Experiment C).

The paper samples the posterior of a 784-512-10 MLP with hamiltorch: a N(0, 1) prior on every
weight and bias, the categorical likelihood summed over all 60,000 training images, step size
1e-3, 500 leapfrog steps per iteration, no adaptation, 10,000 iterations, 1,000 samples kept
evenly spaced over iterations 600..9,999 (``kept_indices``). Here the model is a plain NumPyro
function of sample sites (``bnn_model``) and the transition is NumPyro's ``HMC`` kernel, driven in chunks
(``mixed_hmc.MixedPrecisionHMC``: NumPyro's HMC, whose leapfrog gradient may be TF32 or bfloat16
with ``gradient_precision`` while the accept test stays exact float32). This module is the
chunked driver (``run_chain``, ``run_chains``, ``load_chain``); the model and its potential live in
``hmc_model`` (also VI's model), the settings and kernel in ``hmc_config``, the checkpoint files
and ``ChainResult`` in ``hmc_checkpoint``; all their names are importable from here too:

* **Step size as configured.** NumPyro's ``HMC`` keeps ``trajectory_length = 2 pi`` by default
  and then silently uses ``2 pi / num_steps`` as the step. We pass ``num_steps`` and
  ``trajectory_length=None`` so each leapfrog step is exactly ``config.step_size`` (or the
  adapted one when ``adapt_step_size``) and the path length is ``step_size * num_steps``.
* **Chunks, resumable.** ``run_chain`` calls the kernel's transition inside one jitted loop per
  chunk of ``chunk_size`` iterations, starting from the previous chunk's ``HMCState`` (what
  ``MCMC.post_warmup_state`` holds), so no per-iteration host work slows the chain. After each
  chunk the chunk's kept samples go into ``samples.npy`` and then the sampler state (with its
  PRNG key), the traces and a fingerprint of the setup are written to ``state.pkl`` by
  write-temp-then-rename; ``state.pkl`` is the commit point. A killed run resumes from the
  last completed chunk and ends with the samples of an uninterrupted run, bit for bit on CPU.
* **Why not NumPyro's ``MCMC`` driver.** ``MCMC.run`` in chunks with ``post_warmup_state``
  (``jit_model_args=True``) gives the same chain, but measured side by side here (784-64-10, 2,000
  images, 50 leapfrog steps, loaded CPU, 2026-11-27) it took 2.0x this loop's time per iteration
  with 10-iteration chunks and 1.4x with 40: every ``run`` call pays a fixed re-tracing cost. It
  also collects every iteration's parameters (chunk_size x 407,050 floats at the paper's size)
  where the paper keeps 1,000 irregularly spaced ones (``kept_indices``: spacing 9 or 10, which
  ``thinning`` cannot express), and its warmup runs as one call, so a killed adaptation could not
  resume mid-warmup. The kernel (``make_kernel``) is NumPyro's; only the loop is ours.
* **Bounded memory.** Inside a chunk only the kept iterations' parameters are retained (a
  buffer of at most the chunk's kept count); the kept samples live in a memory-mapped
  ``samples.npy`` on disk (paper scale: 1,000 x 407,050 float32 = 1.6 GB), never in RAM.
* **Diagnostics per iteration** at no extra gradient cost: NumPyro's potential energy U of the
  current state gives the train log-likelihood as ``-U - log prior(theta)`` (the prior is
  O(num_params), no data pass); float32 rounding makes this accurate to about
  ``1e-7 * |log prior|`` (~0.05 nats at paper size). Acceptance probability, divergence flag
  and whether the state's energy is NaN are recorded per iteration; the test log-likelihood
  and accuracy are evaluated at kept samples only.

Samples are (num_kept, num_params) float32 in ``mlp.ravel`` order (PyTorch order).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from tqdm.auto import tqdm

from compactbnn.models import mlp
# The model, the config and kernel, and the checkpoint files live in their own modules; every
# public name (and the private ones tests use) stays importable from compactbnn.inference.hmc.
from compactbnn.inference.hmc.checkpoint import (  # noqa: F401
    CHECKPOINT_FORMAT, PREVIOUS_STATE_FILE, SAMPLES_FILE, STATE_FILE, TRACE_NAMES, ChainResult,
    _check_fingerprint, _read_checkpoint, _results_from_record, _write_checkpoint,
)
from compactbnn.inference.hmc.settings import INITS, MATMUL_PRECISIONS, HMCConfig, kept_indices, make_kernel  # noqa: F401
from compactbnn.inference.bnn import (  # noqa: F401
    _log_likelihood_of_logits, bnn_model, log_likelihood, log_prior, params_from_sites, potential_energy,
    site_name, sites_from_params,
)

_CACHE_SIZE = 4
_PROGRAMS: OrderedDict = OrderedDict()  # compiled programs by shapes and config, see _Engine._programs


# ---------------------------------------------------------------------------------------------
# Sampling


def run_chain(
    x,
    y,
    layer_sizes: Sequence[int],
    config: HMCConfig,
    key: jax.Array,
    checkpoint_dir: str | os.PathLike,
    *,
    init_params: mlp.Params | np.ndarray | None = None,
    x_test=None,
    y_test=None,
    progress: bool | str = True,
    max_chunks: int | None = None,
    chain_name: str = "chain",
) -> ChainResult:
    """Sample one HMC chain of the Bayesian MLP, in resumable chunks.

    Args:
      x, y: training inputs (N, D) and integer labels (N,); the likelihood sums over all of them
        (pass a subset to sample a smaller problem).
      layer_sizes: e.g. [784, 512, 10].
      config: an ``HMCConfig``.
      key: PRNG key; split into the initialisation key and the sampler's key.
      checkpoint_dir: where ``samples.npy`` and ``state.pkl`` go; an existing checkpoint of the
        same setup is resumed (a finished one is returned as is), a different one is refused.
      init_params: initial parameters (pytree or raveled vector); default ``config.init``.
      x_test, y_test: optional test set; its log-likelihood and accuracy are evaluated at kept samples.
      progress: show a tqdm bar (per chunk); a string is used as its description.
      max_chunks: run at most this many chunks in this call and return (the result then has
        ``complete == False``); used to stop a run early and resume it later.
      chain_name: names the chain in messages.

    Returns a ``ChainResult``. Raises ``FloatingPointError`` naming the chain and iteration when
    a kept sample contains NaN (only possible from NaN initial parameters: NumPyro rejects every
    proposal with a NaN energy and counts it as divergent).
    """
    engine = _Engine(x, y, layer_sizes, config, [key], Path(checkpoint_dir), init_params=None if init_params is None else [init_params],
                     x_test=x_test, y_test=y_test, vectorized=False, chain_names=[chain_name])
    return engine.run(progress=progress, max_chunks=max_chunks)[0]


def run_chains(
    x,
    y,
    layer_sizes: Sequence[int],
    config: HMCConfig,
    keys: jax.Array,
    checkpoint_dir: str | os.PathLike,
    *,
    init_params: Sequence | None = None,
    x_test=None,
    y_test=None,
    progress: bool | str = True,
    max_chunks: int | None = None,
    chain_method: Literal["auto", "vectorized", "sequential"] = "auto",
) -> list[ChainResult]:
    """Several chains, one per key in ``keys`` (C,) (or (C, 2) raw keys).

    ``chain_method="vectorized"`` advances all chains together in one vmapped chunk (NumPyro's
    "vectorized" chain method; the checkpoint ``<checkpoint_dir>/vectorized`` holds them all);
    ``"sequential"`` runs ``run_chain`` for chain c into ``<checkpoint_dir>/chain{c}``, exactly
    as separate jobs would. ``"auto"`` vectorises when JAX's default backend is not the CPU.
    ``init_params``: None or one initialisation per chain.
    """
    keys = _key_array(keys, several=True)
    num_chains = keys.shape[0]
    if init_params is not None and len(init_params) != num_chains:
        raise ValueError(f"init_params must hold one initialisation per chain ({num_chains}), got {len(init_params)}")
    if chain_method == "auto":
        chain_method = "sequential" if jax.default_backend() == "cpu" else "vectorized"
    if chain_method not in ("vectorized", "sequential"):
        raise ValueError(f"chain_method must be 'auto', 'vectorized' or 'sequential', got {chain_method!r}")
    checkpoint_dir = Path(checkpoint_dir)
    names = [f"chain{c}" for c in range(num_chains)]
    if chain_method == "sequential":
        return [
            run_chain(x, y, layer_sizes, config, keys[c], checkpoint_dir / names[c],
                      init_params=None if init_params is None else init_params[c], x_test=x_test, y_test=y_test,
                      progress=f"{names[c]}" if progress else False, max_chunks=max_chunks, chain_name=names[c])
            for c in range(num_chains)
        ]
    engine = _Engine(x, y, layer_sizes, config, list(keys), checkpoint_dir / "vectorized", init_params=init_params,
                     x_test=x_test, y_test=y_test, vectorized=True, chain_names=names)
    return engine.run(progress=progress, max_chunks=max_chunks)


def load_chain(checkpoint_dir: str | os.PathLike) -> ChainResult | list[ChainResult]:
    """The result stored in a ``run_chain`` (or vectorised ``run_chains``) checkpoint, without data or recompilation."""
    checkpoint_dir = Path(checkpoint_dir)
    record = _read_checkpoint(checkpoint_dir)
    if record is None:
        raise FileNotFoundError(f"no HMC checkpoint ({STATE_FILE}) in {checkpoint_dir}")
    results = _results_from_record(record, checkpoint_dir)
    return results if record["fingerprint"]["vectorized"] else results[0]


def _key_array(key, several: bool = False) -> np.ndarray:
    """Raw uint32 key data: (2,) for one key, (C, 2) for several; typed keys are converted."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    key = np.asarray(key)
    expected = 2 if several else 1
    if key.dtype != np.uint32 or key.ndim != expected or key.shape[-1] != 2:
        what = "(C,) typed keys or (C, 2) uint32 raw keys" if several else "one PRNG key (typed, or (2,) uint32 raw)"
        raise ValueError(f"key must be {what}, got dtype {key.dtype} shape {key.shape}")
    return key


def _digest(*arrays) -> str | None:
    if arrays[0] is None:
        return None
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_data(x, y, sizes, what):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ValueError(f"x{what} must be (N, {sizes[0]}) for layer sizes {sizes}, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y{what} must be ({x.shape[0]},) like x{what}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y{what} must hold integer labels, got dtype {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"x{what} is empty")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"x{what} contains {int(bad.sum())} NaN or infinite values (rows {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''})")
    if y.min() < 0 or y.max() >= sizes[-1]:
        raise ValueError(f"y{what} labels must lie in 0..{sizes[-1] - 1}, got range {y.min()}..{y.max()}")
    return x.astype(np.float32), y.astype(np.int32)


class _Engine:
    """The chunked sampler for one chain (vectorized=False) or C chains advanced together with vmap."""

    def __init__(self, x, y, layer_sizes, config, keys, checkpoint_dir, *, init_params, x_test, y_test, vectorized, chain_names):
        if not isinstance(config, HMCConfig):
            raise TypeError(f"config must be an HMCConfig, got {type(config).__name__}")
        self.config = config
        self.sizes = mlp.check_layer_sizes(layer_sizes)
        self.num_layers = len(self.sizes) - 1
        self.num_params = mlp.num_params(self.sizes)
        self.x, self.y = _check_data(x, y, self.sizes, "")
        if (x_test is None) != (y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        self.has_test = x_test is not None
        if self.has_test:
            self.x_test, self.y_test = _check_data(x_test, y_test, self.sizes, "_test")
        self.keys = [_key_array(k) for k in keys]
        self.num_chains = len(self.keys)
        self.vectorized = vectorized
        self.chain_names = chain_names
        self.dir = checkpoint_dir
        self.init_flat = None
        if init_params is not None:
            self.init_flat = [self._flat_init(p, chain_names[c]) for c, p in enumerate(init_params)]
        self.kept = config.kept_indices
        # Iteration (counting warmup) of every kept sample, and the most any chunk keeps.
        self.kept_iterations = self.kept + config.num_warmup
        chunk_of_kept = self.kept_iterations // config.chunk_size
        self.capacity = int(np.bincount(chunk_of_kept).max())
        self.num_chunks = -(-config.total_iterations // config.chunk_size)
        self.fingerprint = {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "config_digest": config.digest(),
            "layer_sizes": list(self.sizes),
            "train_data": _digest(self.x, self.y),
            "test_data": _digest(self.x_test, self.y_test) if self.has_test else None,
            "keys": [k.tolist() for k in self.keys],
            "init_params": None if self.init_flat is None else _digest(*self.init_flat),
            "vectorized": vectorized,
            "chain_names": list(chain_names),
        }

    def _flat_init(self, params, name):
        if isinstance(params, (list, tuple)) and params and isinstance(params[0], dict):
            sizes = mlp.layer_sizes_of(params)
            if sizes != self.sizes:
                raise ValueError(f"init_params of {name} have layer sizes {sizes}, expected {self.sizes}")
            flat = np.asarray(mlp.ravel(params))
        else:
            flat = np.asarray(params)
        if flat.shape != (self.num_params,):
            raise ValueError(f"init_params of {name} must be an MLP pytree or a ({self.num_params},) vector, got shape {flat.shape}")
        return flat.astype(np.float32)

    # -- setup ---------------------------------------------------------------------------------

    def _init_fn(self, kernel):
        """(key, x, y, flat or None) -> HMCState: the chain's initial parameters and NumPyro's init, jitted as one program.

        Run op by op, NumPyro's init compiles hundreds of tiny programs (~10 s on a CPU).
        """
        cfg, sizes = self.config, self.sizes

        def init(key, x, y, flat):
            init_key, hmc_key = jax.random.split(key)
            if flat is None and cfg.init == "pytorch":
                flat = mlp.ravel(mlp.init(init_key, sizes))
            elif flat is None:
                flat = cfg.prior_sd * jax.random.normal(init_key, (self.num_params,), jnp.float32)
            z = sites_from_params(mlp.unravel(flat, sizes))
            return kernel.init(hmc_key, cfg.num_warmup, init_params=z, model_args=(x, y), model_kwargs={})

        return jax.jit(init)

    def _programs(self):
        """The kernel and its compiled programs (init, chunk, test), shared by runs of the same shapes and config.

        Compilation takes seconds; caching it lets run_chains and resumed runs in one process
        reuse it. The cache holds programs only (data are arguments), at most _CACHE_SIZE sets.
        """
        cfg = self.config
        key = (tuple(self.sizes), cfg.digest(), self.x.shape, self.x_test.shape if self.has_test else None,
               self.vectorized, self.num_chains, jax.default_backend())
        if key in _PROGRAMS:
            _PROGRAMS.move_to_end(key)
            return _PROGRAMS[key], 0.0
        start = time.perf_counter()
        kernel = make_kernel(self.sizes, cfg)
        init = self._init_fn(kernel)
        state = jax.device_get(init(self.keys[0], self.x_dev, self.y_dev, None))  # runs kernel.init: sets its closures
        if self.vectorized:
            state = jax.tree.map(lambda a: np.stack([a] * self.num_chains), state)
        slots = np.zeros(cfg.chunk_size, np.int32)
        chunk = jax.jit(self._chunk_fn(kernel)).lower(state, self.x_dev, self.y_dev, np.int32(0), slots).compile()
        test = None
        if self.has_test:
            kept_shape = (self.num_chains,) * self.vectorized + (self.capacity + 1, self.num_params)
            test = jax.jit(self._test_fn()).lower(jax.ShapeDtypeStruct(kept_shape, jnp.float32), self.x_test, self.y_test).compile()
        programs = {"kernel": kernel, "init": init, "chunk": chunk, "test": test}
        _PROGRAMS[key] = programs
        while len(_PROGRAMS) > _CACHE_SIZE:
            _PROGRAMS.popitem(last=False)
        return programs, time.perf_counter() - start

    def _chunk_fn(self, kernel):
        """(state, x, y, n, slots) -> (state, kept (capacity + 1, P), traces): n HMC iterations in one loop.

        Iteration i's parameters are written to row slots[i] of ``kept``; iterations that are not
        kept write to the spare last row, so no branch and no per-iteration host work is needed.
        """
        cfg, num_layers, chunk = self.config, self.num_layers, self.config.chunk_size

        def chunk_fn(state, x, y, n, slots):
            kept = jnp.zeros((self.capacity + 1, self.num_params), jnp.float32)
            traces = {
                "potential_energy": jnp.zeros((chunk,), jnp.float32),
                "log_likelihood": jnp.zeros((chunk,), jnp.float32),
                "accept_prob": jnp.zeros((chunk,), jnp.float32),
                "diverging": jnp.zeros((chunk,), bool),
                "nan_energy": jnp.zeros((chunk,), bool),
            }

            def body(i, carry):
                state, kept, traces = carry
                state = kernel.sample(state, (x, y), {})
                params = params_from_sites(state.z, num_layers)
                flat = mlp.ravel(params).astype(jnp.float32)
                kept = jax.lax.dynamic_update_slice(kept, flat[None], (slots[i], 0))
                pe = state.potential_energy
                values = {
                    "potential_energy": pe,
                    "log_likelihood": -pe - log_prior(params, cfg.prior_sd),
                    "accept_prob": state.accept_prob,
                    "diverging": state.diverging,
                    "nan_energy": jnp.isnan(state.energy),
                }
                traces = {k: traces[k].at[i].set(values[k].astype(traces[k].dtype)) for k in traces}
                return state, kept, traces

            return jax.lax.fori_loop(0, n, body, (state, kept, traces))

        if self.vectorized:
            chunk_fn = jax.vmap(chunk_fn, in_axes=(0, None, None, None, None))
        return chunk_fn

    def _test_fn(self):
        """(kept (capacity + 1, P), x_test, y_test) -> (summed log-likelihood, accuracy) per row."""
        sizes = self.sizes

        def one(flat, xt, yt):
            logits = mlp.apply(mlp.unravel(flat, sizes), xt)
            return _log_likelihood_of_logits(logits, yt), jnp.mean(jnp.argmax(logits, axis=-1) == yt)

        def many(kept, xt, yt):
            return jax.lax.map(lambda f: one(f, xt, yt), kept)

        if self.vectorized:
            many = jax.vmap(many, in_axes=(0, None, None))
        return many

    # -- the loop ------------------------------------------------------------------------------

    def run(self, progress=True, max_chunks=None):
        cfg = self.config
        start = time.perf_counter()
        record = _read_checkpoint(self.dir)
        if record is not None:
            _check_fingerprint(record["fingerprint"], self.fingerprint, self.dir)
            if record["completed_iterations"] == cfg.total_iterations:
                return _results_from_record(record, self.dir)
        device = str(jax.devices()[0])
        with jax.default_matmul_precision(cfg.matmul_precision):
            self.x_dev, self.y_dev = jnp.asarray(self.x), jnp.asarray(self.y)
            programs, compile_time = self._programs()
            compiled, test_fn = programs["chunk"], programs["test"]
            if test_fn is not None:
                xt, yt = jnp.asarray(self.x_test), jnp.asarray(self.y_test)
            # Each chain's fresh state, as numpy leaves: a resumed run feeds the pickled state to
            # the same compiled program, an uninterrupted one its own state after each chunk.
            given = self.init_flat or [None] * self.num_chains
            states = [jax.device_get(programs["init"](self.keys[c], self.x_dev, self.y_dev, given[c])) for c in range(self.num_chains)]
            fresh = states[0] if not self.vectorized else jax.tree.map(lambda *a: np.stack(a), *states)
            if record is None:
                record = self._new_record(fresh, device)
            elif jax.tree.structure(record["state"]) != jax.tree.structure(fresh):
                raise ValueError(f"the sampler state in {self.dir / STATE_FILE} does not match this NumPyro kernel; delete the checkpoint to restart")
            record["compile_time"] = compile_time
            samples = self._open_samples(fresh=record["completed_iterations"] == 0)

        done = record["completed_iterations"]
        bar = tqdm(total=cfg.total_iterations, initial=done, unit="it", desc=progress if isinstance(progress, str) else (f"{self.num_chains} chains" if self.vectorized else self.chain_names[0]),
                   disable=not progress, dynamic_ncols=True)
        chunks_run = 0
        try:
            while done < cfg.total_iterations and (max_chunks is None or chunks_run < max_chunks):
                n = min(cfg.chunk_size, cfg.total_iterations - done)
                slots, rows = self._slots(done, n)
                t0 = time.perf_counter()
                state, kept, traces = compiled(record["state"], self.x_dev, self.y_dev, np.int32(n), slots)
                jax.block_until_ready((state, kept, traces))
                record["sampling_time"] += time.perf_counter() - t0
                record["leapfrog_steps"] += n * cfg.num_steps * self.num_chains
                traces = jax.device_get(traces)
                if len(rows):
                    kept_host = np.asarray(kept[..., : len(rows), :])
                    self._check_finite(kept_host, rows, np.asarray(traces["nan_energy"])[..., :n])
                    if test_fn is not None:
                        ll, acc = jax.device_get(test_fn(kept, xt, yt))
                        record["test_log_likelihood"].append(np.asarray(ll)[..., : len(rows)])
                        record["test_accuracy"].append(np.asarray(acc)[..., : len(rows)])
                    first = record["kept_done"]
                    samples[..., first: first + len(rows), :] = kept_host
                    samples.flush()
                    record["kept_done"] += len(rows)
                for name in TRACE_NAMES:
                    record["traces"][name].append(np.asarray(traces[name])[..., :n])
                record["state"] = jax.device_get(state)
                done += n
                record["completed_iterations"] = done
                record["wall_time"] += time.perf_counter() - start
                start = time.perf_counter()
                _write_checkpoint(self.dir, record)
                chunks_run += 1
                bar.update(n)
                acc_trace = np.concatenate([np.atleast_2d(t) for t in record["traces"]["accept_prob"]], axis=-1)
                div_trace = np.concatenate([np.atleast_2d(t) for t in record["traces"]["diverging"]], axis=-1)
                bar.set_postfix(accept=f"{acc_trace[..., cfg.num_warmup:].mean():.3f}" if done > cfg.num_warmup else "warmup",
                                divergent=int(div_trace[..., cfg.num_warmup:].sum()), refresh=False)
        finally:
            bar.close()
        del samples
        results = _results_from_record(record, self.dir)
        for result in results:
            if result.num_nan_energy:
                warnings.warn(f"HMC {result.chain_name}: the chain's energy was NaN at {result.num_nan_energy} iterations "
                              "(NaN initial parameters?); every proposal there was rejected", RuntimeWarning, stacklevel=3)
        return results

    def _slots(self, done, n):
        """Row of the kept buffer for each of the chunk's iterations (capacity = not kept) and the kept iterations."""
        iterations = np.arange(done, done + n)
        is_kept = np.isin(iterations, self.kept_iterations)
        slots = np.full(self.config.chunk_size, self.capacity, np.int32)
        slots[:n][is_kept] = np.arange(int(is_kept.sum()), dtype=np.int32)
        return slots, iterations[is_kept]

    def _check_finite(self, kept_host, iterations, nan_energy):
        kept_host = kept_host if self.vectorized else kept_host[None]
        nan_energy = nan_energy if self.vectorized else nan_energy[None]
        for c in range(kept_host.shape[0]):
            bad = ~np.isfinite(kept_host[c]).all(axis=-1)
            if bad.any():
                it = int(iterations[np.argmax(bad)]) - self.config.num_warmup
                raise FloatingPointError(
                    f"HMC {self.chain_names[c]}: the kept sample of iteration {it} contains NaN or infinite parameters "
                    f"(the chain's energy was NaN at {int(nan_energy[c].sum())} of this chunk's {nan_energy.shape[-1]} iterations; "
                    f"non-finite initial parameters?); checkpoint {self.dir} keeps the last good chunk"
                )

    def _new_record(self, state, device):
        return {
            "fingerprint": self.fingerprint,
            "completed_iterations": 0,
            "kept_done": 0,
            "state": state,
            "traces": {name: [] for name in TRACE_NAMES},
            "test_log_likelihood": [] if self.has_test else None,
            "test_accuracy": [] if self.has_test else None,
            "sampling_time": 0.0,
            "compile_time": 0.0,
            "wall_time": 0.0,
            "leapfrog_steps": 0,
            "device": device,
            "numpyro": numpyro.__version__,
            "jax": jax.__version__,
        }

    def _open_samples(self, fresh):
        path = self.dir / SAMPLES_FILE
        shape = (self.config.num_kept, self.num_params)
        if self.vectorized:
            shape = (self.num_chains,) + shape
        self.dir.mkdir(parents=True, exist_ok=True)
        if fresh or not path.exists():
            if not fresh:
                raise FileNotFoundError(f"{path} is missing but {self.dir / STATE_FILE} says samples were kept; delete the checkpoint to restart")
            return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        samples = np.load(path, mmap_mode="r+")
        if samples.shape != shape or samples.dtype != np.float32:
            raise ValueError(f"{path} holds {samples.dtype} {samples.shape}, expected float32 {shape}; delete the checkpoint to restart")
        return samples
