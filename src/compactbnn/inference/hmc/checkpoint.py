"""HMC checkpoints: the typed record of a chain (``ChainCheckpoint``), its files, and the results they hold.

A chain's checkpoint directory holds ``samples.npy`` (the kept samples, a memory map; only the
rows of completed chunks count) and ``state.pkl``, the record: sampler state with its PRNG key,
traces, counters and a fingerprint of the setup. The record is written after every chunk, the
record before it kept as ``state.previous.pkl`` (files, format checks and fallback shared with
SG-MCMC's checkpoints: ``inference.records``). This module alone builds, changes, writes and reads the record:
``fingerprint`` and ``check_fingerprint``, ``ChainCheckpoint.new`` / ``resume`` /
``append_chunk`` / ``open_samples`` / ``results``, and ``load_finished``.

On disk the record is a pickled dict of the dataclass's fields (not the class, so moving the
code does not orphan checkpoints); ``CHECKPOINT_FORMAT`` names its layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import numpyro

from compactbnn.inference import records
from compactbnn.inference.records import PREVIOUS_STATE_FILE, SAMPLES_FILE, STATE_FILE, digest  # noqa: F401 (re-exported)
from compactbnn.inference.hmc.results import ChainResult
from compactbnn.inference.hmc.settings import HMCConfig

# 2: the fingerprint names the network by repr(model) (format 1 held an MLP's widths).
CHECKPOINT_FORMAT = 2
# The per-iteration traces and their dtypes; every other list of trace names is derived from this one.
TRACE_DTYPES = {"potential_energy": np.float32, "log_likelihood": np.float32, "accept_prob": np.float32,
                "diverging": np.bool_, "nan_energy": np.bool_}
TRACE_NAMES = tuple(TRACE_DTYPES)


def fingerprint(model, config: HMCConfig, *, train: tuple, test: tuple | None, keys, init: list | None,
                vectorized: bool, chain_names) -> dict:
    """What a checkpoint must have been written by to be resumed: model, config, data, keys, initialisation.

    ``train``/``test``: the (x, y) arrays; ``keys``: one raw key per chain; ``init``: the given
    initial parameter vectors, or None.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "config_digest": config.digest(),
        "model": repr(model),
        "train_data": digest(*train),
        "test_data": None if test is None else digest(*test),
        "keys": [np.asarray(k).tolist() for k in keys],
        "init_params": None if init is None else digest(*init),
        "vectorized": bool(vectorized),
        "chain_names": list(chain_names),
    }


def check_fingerprint(stored: dict, current: dict, directory: Path) -> None:
    """Raise ``ValueError`` naming every difference unless the checkpoint's fingerprint is this run's."""
    records.check_fingerprint(stored, current, directory, "HMC")


@dataclass
class ChainCheckpoint:
    """The record of one checkpoint directory (one chain, or C chains advanced together when vectorised).

    Trace and test lists hold one array per chunk (chains on a leading axis when vectorised);
    ``kept_done`` counts the rows of ``samples.npy`` that completed chunks wrote.
    """

    directory: Path
    fingerprint: dict
    state: Any  # NumPyro's HMCState with numpy leaves
    completed_iterations: int = 0
    kept_done: int = 0
    traces: dict = field(default_factory=lambda: {name: [] for name in TRACE_NAMES})
    test_log_likelihood: list | None = None
    test_accuracy: list | None = None
    sampling_time: float = 0.0
    compile_time: float = 0.0
    wall_time: float = 0.0
    leapfrog_steps: int = 0
    device: str = ""
    numpyro: str = numpyro.__version__
    jax: str = jax.__version__

    @classmethod
    def new(cls, directory, fingerprint: dict, state, *, has_test: bool, device: str) -> "ChainCheckpoint":
        """A record of no iterations, starting from ``state``."""
        return cls(Path(directory), fingerprint, state, test_log_likelihood=[] if has_test else None,
                   test_accuracy=[] if has_test else None, device=device)

    @classmethod
    def read(cls, directory) -> "ChainCheckpoint | None":
        """The newest readable record: state.pkl, else the previous chunk's, else None (the chain restarts).

        An unreadable file is named in a RuntimeWarning before falling back; a readable record of
        another checkpoint format is an error.
        """
        directory = Path(directory)
        record = records.read_record(directory, sampler="HMC", checkpoint_format=CHECKPOINT_FORMAT, unit="chunk",
                                     restart="restarting the chain from its first iteration")
        return None if record is None else cls(directory, **record)

    @classmethod
    def resume(cls, directory, fingerprint: dict) -> "ChainCheckpoint | None":
        """``read``, refusing a record written by a different run (``check_fingerprint``)."""
        record = cls.read(directory)
        if record is not None:
            check_fingerprint(record.fingerprint, fingerprint, Path(directory))
        return record

    @property
    def vectorized(self) -> bool:
        return self.fingerprint["vectorized"]

    @property
    def config(self) -> HMCConfig:
        return HMCConfig(**self.fingerprint["config"])

    @property
    def complete(self) -> bool:
        return self.completed_iterations == self.config.total_iterations

    def write(self) -> None:
        """Pickle the record to state.pkl, keeping the one before as state.previous.pkl."""
        records.write_record(self.directory, {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "directory"})

    def open_samples(self, num_params: int) -> np.ndarray:
        """``samples.npy`` as a writable memory map (chains, num_kept, num_params) or (num_kept, num_params); new when no iteration is done."""
        shape = (self.fingerprint["config"]["num_kept"], num_params)
        if self.vectorized:
            shape = (len(self.fingerprint["chain_names"]),) + shape
        return records.open_samples(self.directory, shape, fresh=self.completed_iterations == 0)

    def append_chunk(self, samples: np.ndarray, *, state, traces: dict, n: int, kept: np.ndarray | None,
                     test: tuple | None, sampling_time: float, leapfrog_steps: int, wall_time: float) -> None:
        """Add one chunk of ``n`` iterations and commit it: kept rows into ``samples`` (flushed), then the record.

        ``traces``: {name: (..., >= n)} host arrays; ``kept``: the chunk's kept samples (..., k,
        num_params) or None; ``test``: their (log-likelihoods, accuracies) (..., k) or None.
        """
        self.sampling_time += sampling_time
        self.leapfrog_steps += leapfrog_steps
        if kept is not None:
            rows = kept.shape[-2]
            if test is not None:
                self.test_log_likelihood.append(test[0])
                self.test_accuracy.append(test[1])
            samples[..., self.kept_done: self.kept_done + rows, :] = kept
            samples.flush()  # before the record that counts these rows is committed
            self.kept_done += rows
        for name in TRACE_NAMES:
            self.traces[name].append(np.asarray(traces[name])[..., :n])
        self.state = state
        self.completed_iterations += n
        self.wall_time += wall_time
        self.write()

    def trace(self, name: str) -> np.ndarray:
        """One trace over the iterations done, (iterations,) or (chains, iterations)."""
        parts = self.traces[name]
        if not parts:
            return np.zeros((len(self.fingerprint["chain_names"]), 0) if self.vectorized else (0,), TRACE_DTYPES[name])
        return np.concatenate(parts, axis=-1).astype(TRACE_DTYPES[name])

    def results(self) -> list[ChainResult]:
        """One ``ChainResult`` per chain, its samples a read-only memory map of the completed rows."""
        return _results(self)


def _joined(record: ChainCheckpoint, parts: list | None) -> np.ndarray | None:
    if parts is None:
        return None
    if not parts:
        return np.zeros((len(record.fingerprint["chain_names"]), 0) if record.vectorized else (0,), np.float32)
    return np.concatenate(parts, axis=-1).astype(np.float32)


def _results(record: ChainCheckpoint) -> list[ChainResult]:
    config, names, vectorized = record.config, record.fingerprint["chain_names"], record.vectorized
    path = record.directory / SAMPLES_FILE
    samples = np.load(path, mmap_mode="r") if path.exists() else np.zeros((0, 0), np.float32)
    traces = {name: record.trace(name) for name in TRACE_NAMES}
    test_ll, test_acc = _joined(record, record.test_log_likelihood), _joined(record, record.test_accuracy)
    step_sizes = np.atleast_1d(np.asarray(record.state.adapt_state.step_size, np.float64))
    results = []
    for c, name in enumerate(names):
        pick = (lambda a: a[c]) if vectorized else (lambda a: a)
        results.append(ChainResult(
            chain_name=name,
            samples=pick(samples)[:record.kept_done] if samples.size else samples,
            kept_indices=config.kept_indices[:record.kept_done],
            traces={k: pick(v) for k, v in traces.items()},
            test_log_likelihood=None if test_ll is None else pick(test_ll),
            test_accuracy=None if test_acc is None else pick(test_acc),
            step_size=float(step_sizes[c if vectorized else 0]),
            num_steps=config.num_steps,
            num_warmup=config.num_warmup,
            completed_iterations=record.completed_iterations,
            total_iterations=config.total_iterations,
            wall_time=record.wall_time,
            sampling_time=record.sampling_time,
            compile_time=record.compile_time,
            leapfrog_steps=record.leapfrog_steps // (len(names) if vectorized else 1),
            device=record.device,
            checkpoint_dir=str(record.directory),
        ))
    return results


def load_finished(model, directory) -> ChainResult | list[ChainResult]:
    """The result stored in a checkpoint directory of ``model``'s chain (a list for vectorised chains), without data or recompilation.

    Raises ``FileNotFoundError`` without a record and ``ValueError`` for another model's checkpoint.
    """
    directory = Path(directory)
    record = ChainCheckpoint.read(directory)
    if record is None:
        raise FileNotFoundError(f"no HMC checkpoint ({STATE_FILE}) in {directory}")
    if record.fingerprint["model"] != repr(model):
        raise ValueError(f"the HMC checkpoint in {directory} holds chains of {record.fingerprint['model']}, not of {model!r}")
    results = record.results()
    return results if record.vectorized else results[0]
