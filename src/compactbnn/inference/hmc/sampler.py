"""Full-batch Hamiltonian Monte Carlo over a network's weights with NumPyro's HMC kernel (Experiment C).

The paper samples the posterior of a 784-512-10 MLP with hamiltorch: a N(0, 1) prior on every
weight and bias, the categorical likelihood summed over all 60,000 training images, step size
1e-3, 500 leapfrog steps per iteration, no adaptation, 10,000 iterations, 1,000 samples kept
evenly spaced over iterations 600..9,999 (``kept_indices``). Here the model is a plain NumPyro
function of sample sites (``bnn.bnn_model`` of a ``compactbnn.models.Model``) and the transition
is NumPyro's ``HMC`` kernel, driven in chunks (``mixed_precision.MixedPrecisionHMC``: NumPyro's
HMC, whose leapfrog gradient may be TF32 or bfloat16 with ``gradient_precision`` while the
accept test stays exact float32). This module is the chunked driver (``run_chain``,
``run_chains``, ``load_chain``); the settings and kernel live in ``settings``, the compiled
programs in ``programs``, the checkpoint record in ``checkpoint`` and ``ChainResult`` in ``results``:

* **Step size as configured.** NumPyro's ``HMC`` keeps ``trajectory_length = 2 pi`` by default
  and then silently uses ``2 pi / num_steps`` as the step. We pass ``num_steps`` and
  ``trajectory_length=None`` so each leapfrog step is exactly ``config.step_size`` (or the
  adapted one when ``adapt_step_size``) and the path length is ``step_size * num_steps``.
* **Chunks, resumable.** ``run_chain`` calls the kernel's transition inside one jitted loop per
  chunk of ``chunk_size`` iterations, starting from the previous chunk's ``HMCState`` (what
  ``MCMC.post_warmup_state`` holds), so no per-iteration host work slows the chain. After each
  chunk the chunk's kept samples go into ``samples.npy`` and then the checkpoint record (the
  sampler state with its PRNG key, the traces and a fingerprint of the setup) is committed to
  ``state.pkl`` (``checkpoint.ChainCheckpoint.append_chunk``). A killed run resumes from the
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

Samples are (num_kept, num_params) float32 in ``model.ravel`` order (PyTorch order for an MLP).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from compactbnn.inference.hmc.checkpoint import STATE_FILE, ChainCheckpoint, fingerprint, load_finished
from compactbnn.inference.hmc.programs import Programs, chunk_slots, compile_programs
from compactbnn.inference.hmc.results import ChainResult
from compactbnn.inference.hmc.settings import HMCConfig
from compactbnn.models import Model, Params


def run_chain(
    model: Model,
    x,
    y,
    config: HMCConfig,
    key: jax.Array,
    checkpoint_dir: str | os.PathLike,
    *,
    init_params: Params | np.ndarray | None = None,
    x_test=None,
    y_test=None,
    progress: bool | str = True,
    max_chunks: int | None = None,
    chain_name: str = "chain",
) -> ChainResult:
    """Sample one HMC chain of the Bayesian network ``model``, in resumable chunks.

    Args:
      model: the network, e.g. ``MLP((784, 512, 10))``.
      x, y: training inputs (N, D) and integer labels (N,); the likelihood sums over all of them
        (pass a subset to sample a smaller problem).
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
    setup = ChainSetup.build(model, x, y, config, [key], checkpoint_dir, init_params=None if init_params is None else [init_params],
                             x_test=x_test, y_test=y_test, vectorized=False, chain_names=[chain_name])
    return sample(setup, progress=progress, max_chunks=max_chunks)[0]


def run_chains(
    model: Model,
    x,
    y,
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
            run_chain(model, x, y, config, keys[c], checkpoint_dir / names[c],
                      init_params=None if init_params is None else init_params[c], x_test=x_test, y_test=y_test,
                      progress=f"{names[c]}" if progress else False, max_chunks=max_chunks, chain_name=names[c])
            for c in range(num_chains)
        ]
    setup = ChainSetup.build(model, x, y, config, list(keys), checkpoint_dir / "vectorized", init_params=init_params,
                             x_test=x_test, y_test=y_test, vectorized=True, chain_names=names)
    return sample(setup, progress=progress, max_chunks=max_chunks)


def load_chain(model: Model, checkpoint_dir: str | os.PathLike) -> ChainResult | list[ChainResult]:
    """The result stored in a ``run_chain`` (or vectorised ``run_chains``) checkpoint of ``model``, without data or recompilation."""
    return load_finished(model, checkpoint_dir)


# ---------------------------------------------------------------------------------------------
# What a run samples, checked


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


def _check_data(model: Model, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != model.num_features:
        raise ValueError(f"x{what} must be (N, {model.num_features}) for {model!r}, got shape {x.shape}")
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
    if y.min() < 0 or y.max() >= model.num_classes:
        raise ValueError(f"y{what} labels must lie in 0..{model.num_classes - 1}, got range {y.min()}..{y.max()}")
    return x.astype(np.float32), y.astype(np.int32)


def _flat_init(model: Model, params, name: str) -> np.ndarray:
    """Given initial parameters as a float32 vector (num_params,): a parameter pytree is checked and ravelled."""
    if isinstance(params, (np.ndarray, jax.Array)):
        flat = np.asarray(params)
    else:
        model.check(params, f"init_params of {name}")
        flat = np.asarray(model.ravel(params))
    if flat.shape != (model.num_params,):
        raise ValueError(f"init_params of {name} must be a parameter pytree or a ({model.num_params},) vector, got shape {flat.shape}")
    return flat.astype(np.float32)


@dataclass(frozen=True)
class ChainSetup:
    """One run's checked inputs: one chain (vectorized=False) or C chains advanced together with vmap."""

    model: Model
    config: HMCConfig
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    keys: tuple
    init_flat: tuple | None
    vectorized: bool
    chain_names: tuple
    directory: Path

    @classmethod
    def build(cls, model, x, y, config, keys, checkpoint_dir, *, init_params, x_test, y_test, vectorized, chain_names) -> "ChainSetup":
        if not isinstance(model, Model):
            raise TypeError(f"model must be a compactbnn.models.Model, got {type(model).__name__}")
        if not isinstance(config, HMCConfig):
            raise TypeError(f"config must be an HMCConfig, got {type(config).__name__}")
        x, y = _check_data(model, x, y, "")
        if (x_test is None) != (y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        if x_test is not None:
            x_test, y_test = _check_data(model, x_test, y_test, "_test")
        init_flat = None if init_params is None else tuple(_flat_init(model, p, chain_names[c]) for c, p in enumerate(init_params))
        return cls(model, config, x, y, x_test, y_test, tuple(_key_array(k) for k in keys), init_flat, vectorized,
                   tuple(chain_names), Path(checkpoint_dir))

    @property
    def num_chains(self) -> int:
        return len(self.keys)

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    def fingerprint(self) -> dict:
        return fingerprint(self.model, self.config, train=(self.x, self.y), test=(self.x_test, self.y_test) if self.has_test else None,
                           keys=self.keys, init=None if self.init_flat is None else list(self.init_flat),
                           vectorized=self.vectorized, chain_names=self.chain_names)

    def programs(self) -> tuple[Programs, float]:
        """The compiled programs and the seconds compiling them took now (0 when this process had them already)."""
        hits = compile_programs.cache_info().hits
        programs = compile_programs(self.model, self.config, self.x.shape[0], self.x_test.shape[0] if self.has_test else None,
                                    self.num_chains, self.vectorized, jax.default_backend())
        return programs, 0.0 if compile_programs.cache_info().hits > hits else programs.compile_time


# ---------------------------------------------------------------------------------------------
# The loop


def sample(setup: ChainSetup, *, progress: bool | str = True, max_chunks: int | None = None) -> list[ChainResult]:
    """Run (or resume) the chunks of ``setup`` until done or ``max_chunks`` ran; one result per chain."""
    start = time.perf_counter()
    identity = setup.fingerprint()  # hashes the data: once per run
    record = ChainCheckpoint.resume(setup.directory, identity)
    if record is not None and record.complete:
        return record.results()
    programs, record, samples, data = _start(setup, record, identity)
    cfg = setup.config
    bar = tqdm(total=cfg.total_iterations, initial=record.completed_iterations, unit="it", desc=_description(setup, progress),
               disable=not progress, dynamic_ncols=True)
    chunks_run = 0
    try:
        while record.completed_iterations < cfg.total_iterations and (max_chunks is None or chunks_run < max_chunks):
            n = min(cfg.chunk_size, cfg.total_iterations - record.completed_iterations)
            _run_chunk(setup, programs, record, samples, data, n, start)
            start = time.perf_counter()
            chunks_run += 1
            bar.update(n)
            bar.set_postfix(**_postfix(record, cfg), refresh=False)
    finally:
        bar.close()
    del samples
    results = record.results()
    for result in results:
        if result.num_nan_energy:
            warnings.warn(f"HMC {result.chain_name}: the chain's energy was NaN at {result.num_nan_energy} iterations "
                          "(NaN initial parameters?); every proposal there was rejected", RuntimeWarning, stacklevel=3)
    return results


def _start(setup: ChainSetup, record: ChainCheckpoint | None, identity: dict):
    """(programs, the record (new or resumed), samples.npy as a memory map, the data on the device)."""
    device = str(jax.devices()[0])
    with jax.default_matmul_precision(setup.config.matmul_precision):
        data = {"x": jnp.asarray(setup.x), "y": jnp.asarray(setup.y)}
        if setup.has_test:
            data.update(x_test=jnp.asarray(setup.x_test), y_test=jnp.asarray(setup.y_test))
        programs, compile_time = setup.programs()
        # Each chain's fresh state, as numpy leaves: a resumed run feeds the pickled state to
        # the same compiled program, an uninterrupted one its own state after each chunk.
        given = setup.init_flat or [None] * setup.num_chains
        states = [jax.device_get(programs.init(setup.keys[c], data["x"], data["y"], given[c])) for c in range(setup.num_chains)]
        fresh = states[0] if not setup.vectorized else jax.tree.map(lambda *a: np.stack(a), *states)
        if record is None:
            record = ChainCheckpoint.new(setup.directory, identity, fresh, has_test=setup.has_test, device=device)
        elif jax.tree.structure(record.state) != jax.tree.structure(fresh):
            raise ValueError(f"the sampler state in {setup.directory / STATE_FILE} does not match this NumPyro kernel; delete the checkpoint to restart")
        record.compile_time = compile_time
        samples = record.open_samples(setup.model.num_params)
    return programs, record, samples, data


def _run_chunk(setup: ChainSetup, programs: Programs, record: ChainCheckpoint, samples, data: dict, n: int, start: float) -> None:
    """Run the next ``n`` iterations, check the kept samples, evaluate them on the test set, and commit the chunk."""
    cfg = setup.config
    slots, rows = chunk_slots(cfg, record.completed_iterations, n)
    t0 = time.perf_counter()
    state, kept, traces = programs.chunk(record.state, data["x"], data["y"], np.int32(n), slots)
    jax.block_until_ready((state, kept, traces))
    sampling_time = time.perf_counter() - t0
    traces = jax.device_get(traces)
    kept_host, test = None, None
    if len(rows):
        kept_host = np.asarray(kept[..., : len(rows), :])
        _check_finite(setup, kept_host, rows, np.asarray(traces["nan_energy"])[..., :n])
        if programs.test is not None:
            ll, acc = jax.device_get(programs.test(kept, data["x_test"], data["y_test"]))
            test = (np.asarray(ll)[..., : len(rows)], np.asarray(acc)[..., : len(rows)])
    record.append_chunk(samples, state=jax.device_get(state), traces=traces, n=n, kept=kept_host, test=test,
                        sampling_time=sampling_time, leapfrog_steps=n * cfg.num_steps * setup.num_chains,
                        wall_time=time.perf_counter() - start)


def _check_finite(setup: ChainSetup, kept_host, iterations, nan_energy) -> None:
    kept_host = kept_host if setup.vectorized else kept_host[None]
    nan_energy = nan_energy if setup.vectorized else nan_energy[None]
    for c in range(kept_host.shape[0]):
        bad = ~np.isfinite(kept_host[c]).all(axis=-1)
        if bad.any():
            it = int(iterations[np.argmax(bad)]) - setup.config.num_warmup
            raise FloatingPointError(
                f"HMC {setup.chain_names[c]}: the kept sample of iteration {it} contains NaN or infinite parameters "
                f"(the chain's energy was NaN at {int(nan_energy[c].sum())} of this chunk's {nan_energy.shape[-1]} iterations; "
                f"non-finite initial parameters?); checkpoint {setup.directory} keeps the last good chunk"
            )


def _description(setup: ChainSetup, progress) -> str:
    if isinstance(progress, str):
        return progress
    return f"{setup.num_chains} chains" if setup.vectorized else setup.chain_names[0]


def _postfix(record: ChainCheckpoint, cfg: HMCConfig) -> dict:
    """The progress bar's mean acceptance and divergences after warmup."""
    done = record.completed_iterations
    accept = np.atleast_2d(record.trace("accept_prob"))[..., cfg.num_warmup:]
    divergent = np.atleast_2d(record.trace("diverging"))[..., cfg.num_warmup:]
    return {"accept": f"{accept.mean():.3f}" if done > cfg.num_warmup else "warmup", "divergent": int(divergent.sum())}
