"""Cyclical SG-MCMC chains (Zhang et al., ICLR 2020) through BlackJAX, resumable cycle by cycle.

``run_chains`` samples the Bayesian network ``model`` (``target.network_target``: HMC's prior and
likelihood) with C chains from independent initialisations; ``sample_target`` does the same for
any ``Target``. Each chain's key is split into an initialisation key, a data key (epoch e shuffles
with ``fold_in(data_key, e)``) and a noise key (step k's noise from ``fold_in(noise_key, k)``), so
the same config and keys give the same numbers, however the run is cut into calls.

* **Chains.** ``chain_method="vectorized"`` advances all chains together in one vmapped program
  (their minibatches become one batched matrix product, which pays on a GPU); ``"sequential"`` runs
  them one after the other, each in ``<checkpoint_dir>/chain{c}`` (on 2 CPU cores at 784-512-10,
  batch 64, a vmapped step of 4 chains cost about 4 single steps: ``benchmarks/sgmcmc.py``).
  ``"auto"`` is sequential on a CPU, vectorized elsewhere. ``run_chain`` samples one chain in a
  directory of its own, for one job per chain.
* **Cycles, resumable.** After every cycle its kept samples go into ``samples.npy`` and then the
  record (``checkpoint.SGMCMCCheckpoint``) is committed; a killed run resumes from the last
  completed cycle with exactly the samples of an uninterrupted run.
* **Kept samples** are evaluated on the whole training set (log prior, log-likelihood: the exact log
  posterior, not the minibatch estimate) and on the test set when given.
* **NaN.** A non-finite log-posterior estimate stops the run with a ``FloatingPointError`` naming
  the chain, step, cycle and step size; the checkpoint keeps the last completed cycle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from compactbnn.inference.records import digest
from compactbnn.inference.sgmcmc.checkpoint import CHECKPOINT_FORMAT, KIND, SGMCMCCheckpoint
from compactbnn.inference.sgmcmc.programs import Programs, compile_programs, initial_state, solver_steps
from compactbnn.inference.sgmcmc.results import SGMCMCResult
from compactbnn.inference.sgmcmc.schedule import Schedule
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig
from compactbnn.inference.sgmcmc.target import Target, network_target
from compactbnn.models import Model


def run_chains(model: Model, x, y, config: SGMCMCConfig, keys, checkpoint_dir: str | os.PathLike, *,
               init_params: Sequence | None = None, x_test=None, y_test=None, progress: bool | str = True,
               max_cycles: int | None = None, chain_method: Literal["auto", "vectorized", "sequential"] = "auto",
               ) -> list[SGMCMCResult]:
    """C chains of cyclical SG-MCMC over the weights of ``model``, one per key in ``keys`` ((C,) typed or (C, 2) raw).

    ``x``, ``y``: training inputs (N, D) and integer labels (N,); the likelihood is theirs.
    ``init_params``: None (``config.init``) or one parameter pytree or ``(num_params,)`` vector per
    chain. ``x_test``, ``y_test``: evaluated at every kept sample. ``max_cycles``: stop after this
    many cycles in this call (the results are then incomplete; call again to resume).
    ``chain_method``: "vectorized" (one vmapped program, checkpoint ``<checkpoint_dir>/vectorized``),
    "sequential" (``<checkpoint_dir>/chain{c}`` each) or "auto": vectorized unless JAX's default
    backend is the CPU (there a vmapped step of C chains took about C single steps:
    benchmarks/sgmcmc.py).
    """
    target, train, test, inits = network_inputs(model, x, y, config, x_test, y_test, init_params)
    return sample_target(target, train, config, keys, checkpoint_dir, init_positions=inits, test_data=test,
                         progress=progress, max_cycles=max_cycles, chain_method=chain_method)


def run_chain(model: Model, x, y, config: SGMCMCConfig, key, checkpoint_dir: str | os.PathLike, *, init_params=None,
              x_test=None, y_test=None, progress: bool | str = True, max_cycles: int | None = None,
              chain_name: str = "chain") -> SGMCMCResult:
    """One chain in ``checkpoint_dir`` itself (as ``hmc.run_chain``: one job per chain), named ``chain_name`` in messages."""
    target, train, test, inits = network_inputs(model, x, y, config, x_test, y_test, None if init_params is None else [init_params])
    schedule = Schedule(config.layout(len(train[0])), config.step_size)
    setup = RunSetup(target, config, schedule, train, test, (key_data(key),), None if inits is None else tuple(inits), False,
                     (chain_name,), Path(checkpoint_dir))
    return sample(setup, progress=progress, max_cycles=max_cycles)[0]


def network_inputs(model: Model, x, y, config: SGMCMCConfig, x_test, y_test, init_params):
    """(target, training data, test data or None, initial positions or None) of a network, checked."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a compactbnn.models.Model, got {type(model).__name__}")
    if not isinstance(config, SGMCMCConfig):
        raise TypeError(f"config must be an SGMCMCConfig, got {type(config).__name__}")
    train = check_data(model, x, y, "")
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    test = None if x_test is None else check_data(model, x_test, y_test, "_test")
    inits = None if init_params is None else [model.unravel(jnp.asarray(flat_init(model, p, c))) for c, p in enumerate(init_params)]
    return network_target(model, float(config.prior_sd), config.init), train, test, inits


def sample_target(target: Target, data: tuple, config: SGMCMCConfig, keys, checkpoint_dir: str | os.PathLike, *,
                  init_positions: Sequence | None = None, test_data: tuple | None = None, progress: bool | str = True,
                  max_cycles: int | None = None, chain_method: str = "auto") -> list[SGMCMCResult]:
    """Cyclical SG-MCMC chains of any ``Target``; ``data`` and ``test_data`` are tuples of arrays with a leading example axis.

    Chains, checkpoints and ``chain_method`` as ``run_chains``.
    """
    if not isinstance(config, SGMCMCConfig):
        raise TypeError(f"config must be an SGMCMCConfig, got {type(config).__name__}")
    keys = key_data(keys, several=True)
    names = [f"chain{c}" for c in range(len(keys))]
    if init_positions is not None and len(init_positions) != len(keys):
        raise ValueError(f"init_positions must hold one position per chain ({len(keys)}), got {len(init_positions)}")
    if chain_method not in ("auto", "vectorized", "sequential"):
        raise ValueError(f"chain_method must be 'auto', 'vectorized' or 'sequential', got {chain_method!r}")
    if chain_method == "auto":
        chain_method = "sequential" if jax.default_backend() == "cpu" else "vectorized"
    data = tuple(np.asarray(a) for a in data)
    test_data = None if test_data is None else tuple(np.asarray(a) for a in test_data)
    schedule = Schedule(config.layout(len(data[0])), config.step_size)
    directory = Path(checkpoint_dir)
    if chain_method == "sequential":
        return [result for c in range(len(keys)) for result in sample(RunSetup(
            target, config, schedule, data, test_data, (keys[c],), None if init_positions is None else (init_positions[c],),
            False, (names[c],), directory / names[c]), progress=progress and names[c], max_cycles=max_cycles)]
    inits = None if init_positions is None else tuple(init_positions)
    return sample(RunSetup(target, config, schedule, data, test_data, tuple(keys), inits, True, tuple(names), directory / "vectorized"),
                  progress=progress, max_cycles=max_cycles)


def load_chains(checkpoint_dir: str | os.PathLike) -> list[SGMCMCResult]:
    """The results stored in a checkpoint directory (``<dir>/vectorized`` or ``<dir>/chain{c}``), without data or compilation."""
    directory = Path(checkpoint_dir)
    parts = [directory] if (directory / "state.pkl").exists() else [directory / "vectorized"] + sorted(directory.glob("chain*"))
    records = [r for r in (SGMCMCCheckpoint.read(p) for p in parts if p.is_dir()) if r is not None]
    if not records:
        raise FileNotFoundError(f"no SG-MCMC checkpoint in {directory}")
    return [result for record in records for result in record.results()]


# ---------------------------------------------------------------------------------------------
# What a run samples, checked


def key_data(key, several: bool = False) -> np.ndarray:
    """Raw uint32 key data: (2,) for one key, (C, 2) for several; typed keys are converted."""
    key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    key = np.asarray(key)
    if key.dtype != np.uint32 or key.ndim != (2 if several else 1) or key.shape[-1] != 2:
        what = "(C,) typed keys or (C, 2) uint32 raw keys" if several else "one PRNG key (typed, or (2,) uint32 raw)"
        raise ValueError(f"key must be {what}, got dtype {key.dtype} shape {key.shape}")
    return key


def check_data(model: Model, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int32), refusing wrong shapes, non-integer or out-of-range labels and non-finite inputs."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != model.num_features or len(x) == 0:
        raise ValueError(f"x{what} must be (N >= 1, {model.num_features}) for {model!r}, got shape {x.shape}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y{what} must hold ({x.shape[0]},) integer labels like x{what}, got {y.dtype} {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"x{what} contains NaN or infinite values (rows {np.unique(np.nonzero(~np.isfinite(x))[0])[:5].tolist()})")
    if y.min() < 0 or y.max() >= model.num_classes:
        raise ValueError(f"y{what} labels must lie in 0..{model.num_classes - 1}, got range {y.min()}..{y.max()}")
    return x.astype(np.float32), y.astype(np.int32)


def flat_init(model: Model, params, chain: int) -> np.ndarray:
    """A given initialisation as a float32 (num_params,) vector (a parameter pytree is checked and ravelled)."""
    flat = np.asarray(params) if isinstance(params, (np.ndarray, jax.Array)) else None
    if flat is None:
        model.check(params, f"init_params of chain{chain}")
        flat = np.asarray(model.ravel(params))
    if flat.shape != (model.num_params,):
        raise ValueError(f"init_params of chain{chain} must be a parameter pytree or a ({model.num_params},) vector, "
                         f"got shape {flat.shape}")
    return flat.astype(np.float32)


@dataclass(frozen=True)
class RunSetup:
    """One run's checked inputs: one chain (vectorized=False) or C chains advanced together with vmap."""

    target: Target
    config: SGMCMCConfig
    schedule: Schedule
    data: tuple
    test_data: tuple | None
    keys: tuple
    init: tuple | None
    vectorized: bool
    chain_names: tuple
    directory: Path

    def fingerprint(self) -> dict:
        return {
            "kind": KIND, "format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), "config_digest": self.config.digest(),
            "target": self.target.name, "num_train": int(len(self.data[0])), "train_data": digest(*self.data),
            "test_data": None if self.test_data is None else digest(*self.test_data),
            "keys": [np.asarray(k).tolist() for k in self.keys],
            "init": None if self.init is None else digest(*[np.asarray(self.target.ravel(p)) for p in self.init]),
            "vectorized": self.vectorized, "chain_names": list(self.chain_names),
        }

    def chain_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(init, data, noise) raw keys, each (2,) or (C, 2) when vectorised."""
        split = np.stack([np.asarray(jax.random.split(k, 3)) for k in self.keys])  # (C, 3, 2)
        parts = [split[:, i] if self.vectorized else split[0, i] for i in range(3)]
        return parts[0], parts[1], parts[2]


# ---------------------------------------------------------------------------------------------
# The loop


def sample(setup: RunSetup, *, progress: bool | str = True, max_cycles: int | None = None) -> list[SGMCMCResult]:
    """Run (or resume) the cycles of ``setup`` until done or ``max_cycles`` ran; one result per chain."""
    start = time.perf_counter()
    identity = setup.fingerprint()
    record = SGMCMCCheckpoint.resume(setup.directory, identity)
    if record is not None and record.complete:
        return record.results()
    with jax.default_matmul_precision(setup.config.matmul_precision):
        programs, record, run = start_run(setup, record, identity)
        samples = record.open_samples(np.asarray(programs.ravel(run["state"][0])).shape[-1])
        total = setup.schedule.total_steps
        label = progress if isinstance(progress, str) else (f"{len(setup.keys)} chains" if setup.vectorized else setup.chain_names[0])
        bar = tqdm(total=total, initial=record.completed_steps, unit="step", desc=label, disable=not progress, dynamic_ncols=True)
        cycles_run = 0
        try:
            while record.completed_steps < total and (max_cycles is None or cycles_run < max_cycles):
                cycle = record.completed_steps // setup.schedule.layout.cycle_length
                t0 = time.perf_counter()
                outcome = run_cycle(setup, programs, run, cycle, bar)
                record.append_cycle(samples, state=jax.device_get(run["state"]), steps=setup.schedule.layout.cycle_length,
                                    wall_time=time.perf_counter() - start, **outcome)
                start = time.perf_counter()
                cycles_run += 1
                bar.set_postfix(cycle=cycle + 1, seconds=f"{time.perf_counter() - t0:.0f}", refresh=False)
        finally:
            bar.close()
    del samples
    return record.results()


def start_run(setup: RunSetup, record: SGMCMCCheckpoint | None, identity: dict):
    """(programs, the record (new or resumed), the run's device values: state, data, keys)."""
    init_keys, data_keys, noise_keys = setup.chain_keys()
    data = tuple(jnp.asarray(a) for a in setup.data)
    if record is None:
        init = jax.jit(setup.target.init)  # op by op, a network's initialisation compiles dozens of tiny programs
        positions = setup.init if setup.init is not None else [init(k) for k in np.atleast_2d(init_keys)]
        positions = [jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p) for p in positions]
        fresh = [initial_state(setup.config, p) for p in positions]
        state = fresh[0] if not setup.vectorized else jax.tree.map(lambda *a: jnp.stack(a), *fresh)
        record = SGMCMCCheckpoint(setup.directory, identity, jax.device_get(state), device=str(jax.devices()[0]))
    t0 = time.perf_counter()  # seconds compiling now: about 0 when this process compiled the programs already
    programs = compile_programs(setup.target, setup.config, setup.schedule, len(setup.data[0]), setup.vectorized, record.state, data)
    record.compile_time += time.perf_counter() - t0
    run = {"state": jax.device_put(record.state), "data": data, "data_keys": data_keys, "noise_keys": noise_keys,
           "test": None if setup.test_data is None else tuple(jnp.asarray(a) for a in setup.test_data)}
    return programs, record, run


def segments(schedule: Schedule, epoch: int, kept_steps) -> list[tuple[int, int, bool, bool]]:
    """The calls of one epoch: (first, stop, sampling stage, kept after stop), split at the stage switch and after kept steps."""
    spe, lay = schedule.layout.steps_per_epoch, schedule.layout
    begin = epoch * spe
    kept = {int(k) - begin + 1 for k in kept_steps if begin <= k < begin + spe}
    switch = (begin // lay.cycle_length) * lay.cycle_length + lay.exploration_steps - begin  # first sampling step, this cycle
    bounds = [0] + sorted(kept | {spe} | ({switch} if 0 < switch < spe else set()))
    return [(a, b, bool(schedule.sampling(begin + a, begin + a + 1)[0]), b in kept) for a, b in zip(bounds, bounds[1:])]


def run_cycle(setup: RunSetup, programs: Programs, run: dict, cycle: int, bar) -> dict:
    """Run cycle ``cycle`` epoch by epoch, stopping after each kept step to ravel and evaluate the sample."""
    sched = setup.schedule
    spe, num_train = sched.layout.steps_per_epoch, len(setup.data[0])
    first_epoch = cycle * sched.layout.cycle_length // spe
    kept_here = [k for k in sched.kept_steps() if cycle == k // sched.layout.cycle_length]
    values, kept, metrics, seconds = [], [], [], 0.0
    for epoch in range(first_epoch, first_epoch + sched.layout.cycle_length // spe):
        begin = epoch * spe
        steps = solver_steps(sched.step_sizes(begin, begin + spe), num_train, setup.config.sampler)
        epoch_values, t0 = 0.0, time.perf_counter()
        batches = programs.shuffle(run["data_keys"], np.int32(epoch))
        for first, stop, sampling, keep in segments(sched, epoch, kept_here):
            run["state"], part = programs.epoch[sampling](run["state"], run["data"], batches, run["noise_keys"],
                                                          np.int32(epoch), np.int32(first), np.int32(stop - first), steps)
            epoch_values = epoch_values + part
            if keep:
                jax.block_until_ready(part)
                seconds += time.perf_counter() - t0
                flat = np.asarray(programs.ravel(run["state"][0]))
                kept.append(flat)
                metrics.append(evaluate(setup, programs, run, flat))
                t0 = time.perf_counter()
        epoch_values = np.asarray(epoch_values)  # waits for the epoch's last call
        seconds += time.perf_counter() - t0
        check_finite(setup, epoch_values, begin)
        values.append(epoch_values)
        bar.update(spe)
    kept = np.stack(kept, axis=-2)  # (..., k, P)
    if not np.isfinite(kept).all():
        raise FloatingPointError(f"SG-MCMC: a kept sample of cycle {cycle} holds NaN or infinite parameters; "
                                 f"checkpoint {setup.directory} keeps the last completed cycle")
    return {"log_density": np.concatenate(values, axis=-1), "kept": kept, "sampling_time": seconds,
            "metrics": {n: np.stack([m[n] for m in metrics], axis=-1) for n in metrics[0]}}


def evaluate(setup: RunSetup, programs: Programs, run: dict, flat: np.ndarray) -> dict:
    """The kept sample's log prior and training (and test) log-likelihood and accuracy, per chain (..., )."""
    rows = flat if setup.vectorized else flat[None]
    out: dict = {}
    for row in rows:
        position = setup.target.unravel(jnp.asarray(row))
        values = {("log_prior" if k == "log_prior" else f"train_{k}"): v for k, v in programs.evaluate(position, run["data"]).items()}
        if run["test"] is not None:
            values.update({f"test_{k}": v for k, v in programs.evaluate(position, run["test"]).items() if k != "log_prior"})
        for name, value in jax.device_get(values).items():
            out.setdefault(name, []).append(float(value))
    return {k: np.asarray(v) if setup.vectorized else v[0] for k, v in out.items()}


def check_finite(setup: RunSetup, values: np.ndarray, begin: int) -> None:
    """Raise a FloatingPointError naming the chain and step of the earliest log-posterior estimate that is not finite."""
    rows = np.atleast_2d(values)
    bad = ~np.isfinite(rows)
    if not bad.any():
        return
    first = np.where(bad.any(axis=1), np.argmax(bad, axis=1), rows.shape[1])
    c = int(np.argmin(first))
    step, lay = begin + int(first[c]), setup.schedule.layout
    stage = "sampling" if setup.schedule.sampling(step, step + 1)[0] else "exploration"
    raise FloatingPointError(
        f"SG-MCMC {setup.chain_names[c]}: the log-posterior estimate is {rows[c, first[c]]} at step {step} (cycle "
        f"{step // lay.cycle_length}, epoch {step // lay.steps_per_epoch}, {stage} stage, learning rate "
        f"{setup.schedule.step_sizes(step, step + 1)[0]:.3g}): the chain diverged (lower step_size) or started from "
        f"non-finite parameters; checkpoint {setup.directory} keeps the last completed cycle")
