"""HMC checkpoints: the typed record of a chain (``ChainCheckpoint``), its files, and the results they hold.

A chain's checkpoint directory holds ``samples.npy`` (the kept samples, a memory map; only the
rows of completed chunks count) and ``state.pkl``, the record: sampler state with its PRNG key,
traces, counters and a fingerprint of the setup. The record is written after every chunk through
``io.atomic_write`` (fsynced; the rename is the chunk's commit point) and the record before it is
kept as ``state.previous.pkl``. This module alone builds, changes, writes and reads the record:
``fingerprint`` and ``check_fingerprint``, ``ChainCheckpoint.new`` / ``resume`` /
``append_chunk`` / ``open_samples`` / ``results``, and ``load_finished``.

On disk the record is a pickled dict of the dataclass's fields (not the class, so moving the
code does not orphan checkpoints); ``CHECKPOINT_FORMAT`` names its layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import numpyro

from compactbnn import io
from compactbnn.inference.hmc.results import ChainResult
from compactbnn.inference.hmc.settings import HMCConfig

# 2: the fingerprint names the network by repr(model) (format 1 held an MLP's widths).
CHECKPOINT_FORMAT = 2
STATE_FILE = "state.pkl"
SAMPLES_FILE = "samples.npy"
# The record of the chunk before the last: a fallback if state.pkl is lost or damaged (a full disk,
# a copy cut short). Its kept samples are a prefix of samples.npy's rows, so resuming from it redoes
# one chunk and reproduces the uninterrupted chain bit for bit.
PREVIOUS_STATE_FILE = "state.previous.pkl"
# The per-iteration traces and their dtypes; every other list of trace names is derived from this one.
TRACE_DTYPES = {"potential_energy": np.float32, "log_likelihood": np.float32, "accept_prob": np.float32,
                "diverging": np.bool_, "nan_energy": np.bool_}
TRACE_NAMES = tuple(TRACE_DTYPES)


def digest(*arrays) -> str:
    """SHA-256 of the arrays' dtypes, shapes and bytes: identifies the data and initialisations of a run."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
    if stored == current:
        return
    differences = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if a == b or key == "config_digest":  # the config's fields are compared one by one instead
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            differences += [f"config.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            differences.append(f"{key} differs")
    raise ValueError(
        f"the HMC checkpoint in {directory} was written by a different run ({'; '.join(differences)}); "
        "refusing to mix runs: use another checkpoint directory or delete this one"
    )


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as stream:
        record = pickle.load(stream)
    fmt = record.get("fingerprint", {}).get("format") if isinstance(record, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        found = "no HMC checkpoint" if fmt is None else f"an HMC checkpoint of format {fmt}"
        raise _WrongFormat(f"{path} is {found}, this version reads format {CHECKPOINT_FORMAT}; delete it to restart")
    return record


class _WrongFormat(ValueError):
    """A readable file of another layout: an error, not a damaged file to fall back from."""


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
        for name in (STATE_FILE, PREVIOUS_STATE_FILE):
            path = directory / name
            if not path.exists():
                continue
            try:
                record = _unpickle(path)
            except _WrongFormat:
                raise
            except Exception as error:  # truncated or corrupted: EOFError, UnpicklingError, ValueError, ...
                fallback = (f"falling back to {directory / PREVIOUS_STATE_FILE}" if name == STATE_FILE
                            else "restarting the chain from its first iteration")
                warnings.warn(f"HMC checkpoint {path} is unreadable ({type(error).__name__}: {error}); {fallback}",
                              RuntimeWarning, stacklevel=3)
                continue
            if name == PREVIOUS_STATE_FILE and not (directory / STATE_FILE).exists():
                warnings.warn(f"HMC checkpoint {directory / STATE_FILE} is missing; resuming from the previous chunk's {path}",
                              RuntimeWarning, stacklevel=3)
            return cls(directory, **record)
        return None

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
        """Pickle the record to state.pkl, keeping the one before as state.previous.pkl (``io.atomic_write``)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "directory"}

        def dump(tmp: Path) -> None:
            with open(tmp, "wb") as stream:
                pickle.dump(record, stream, protocol=pickle.HIGHEST_PROTOCOL)

        io.atomic_write(self.directory / STATE_FILE, dump, fsync=True, previous=self.directory / PREVIOUS_STATE_FILE)

    def open_samples(self, num_params: int) -> np.ndarray:
        """``samples.npy`` as a writable memory map (chains, num_kept, num_params) or (num_kept, num_params); new when no iteration is done."""
        path = self.directory / SAMPLES_FILE
        shape = (self.fingerprint["config"]["num_kept"], num_params)
        if self.vectorized:
            shape = (len(self.fingerprint["chain_names"]),) + shape
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.completed_iterations == 0:
            return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing but {self.directory / STATE_FILE} says samples were kept; delete the checkpoint to restart")
        samples = np.load(path, mmap_mode="r+")
        if samples.shape != shape or samples.dtype != np.float32:
            raise ValueError(f"{path} holds {samples.dtype} {samples.shape}, expected float32 {shape}; delete the checkpoint to restart")
        return samples

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
