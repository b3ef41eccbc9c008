"""SG-MCMC checkpoints: the record of a run after each completed cycle (``SGMCMCCheckpoint``) and the results it holds.

A checkpoint directory holds ``samples.npy`` (the kept samples, a memory map; rows of completed
cycles only) and ``state.pkl``: the sampler state (positions and momenta; no PRNG key, since every
random number is drawn from the chain's key and the step index), the traces, the kept samples'
metrics, counters and a fingerprint of the setup. It is written after every cycle through
``io.atomic_write`` (fsynced; the rename commits the cycle), the one before kept as
``state.previous.pkl``: as HMC's checkpoints (``hmc.checkpoint``), a killed run resumes from the
last completed cycle and ends with the samples of an uninterrupted run, bit for bit on one machine.
On disk the record is a pickled dict of the dataclass's fields; ``CHECKPOINT_FORMAT`` names its layout.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blackjax
import jax
import numpy as np

from compactbnn import io
from compactbnn.inference.sgmcmc.results import SGMCMCResult
from compactbnn.inference.sgmcmc.schedule import Schedule
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig

CHECKPOINT_FORMAT = 1
STATE_FILE = "state.pkl"
PREVIOUS_STATE_FILE = "state.previous.pkl"  # the cycle before: the fallback when state.pkl is lost or damaged
SAMPLES_FILE = "samples.npy"
KIND = "sgmcmc"  # marks the record, so that an HMC checkpoint directory is refused by name


def check_fingerprint(stored: dict, current: dict, directory: Path) -> None:
    """Raise ``ValueError`` naming every difference unless the checkpoint was written by this run's setup."""
    if stored == current:
        return
    differences = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if a == b or key == "config_digest":
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            differences += [f"config.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}"
                            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            differences.append(f"{key} differs")
    raise ValueError(f"the SG-MCMC checkpoint in {directory} was written by a different run ({'; '.join(differences)}); "
                     "refusing to mix runs: use another checkpoint directory or delete this one")


class WrongFormat(ValueError):
    """A readable file of another layout (or an HMC checkpoint): an error, not a damaged file to fall back from."""


def unpickle(path: Path) -> dict:
    with open(path, "rb") as stream:
        record = pickle.load(stream)
    stamp = record.get("fingerprint", {}) if isinstance(record, dict) else {}
    if stamp.get("kind") != KIND or stamp.get("format") != CHECKPOINT_FORMAT:
        found = f"an SG-MCMC checkpoint of format {stamp.get('format')}" if stamp.get("kind") == KIND else "no SG-MCMC checkpoint"
        raise WrongFormat(f"{path} is {found}, this version reads format {CHECKPOINT_FORMAT}; delete it to restart")
    return record


@dataclass
class SGMCMCCheckpoint:
    """The record of one checkpoint directory (one chain, or C chains advanced together when vectorised).

    ``log_density`` and each list of ``metrics`` hold one array per completed cycle (chains on a
    leading axis when vectorised); ``kept_done`` counts the rows of ``samples.npy`` they cover.
    """

    directory: Path
    fingerprint: dict
    state: Any
    completed_steps: int = 0
    kept_done: int = 0
    log_density: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    sampling_time: float = 0.0
    compile_time: float = 0.0
    wall_time: float = 0.0
    gradient_evaluations: int = 0
    device: str = ""
    versions: dict = field(default_factory=lambda: {"jax": jax.__version__, "blackjax": blackjax.__version__})

    @classmethod
    def read(cls, directory) -> "SGMCMCCheckpoint | None":
        """The newest readable record (state.pkl, else the previous cycle's), or None; a damaged file is named in a warning."""
        directory = Path(directory)
        for name in (STATE_FILE, PREVIOUS_STATE_FILE):
            path = directory / name
            if not path.exists():
                continue
            try:
                record = unpickle(path)
            except WrongFormat:
                raise
            except Exception as error:  # truncated or corrupted
                warnings.warn(f"SG-MCMC checkpoint {path} is unreadable ({type(error).__name__}: {error}); "
                              f"{'falling back to the previous cycle' if name == STATE_FILE else 'restarting'}",
                              RuntimeWarning, stacklevel=3)
                continue
            return cls(directory, **record)
        return None

    @classmethod
    def resume(cls, directory, fingerprint: dict) -> "SGMCMCCheckpoint | None":
        """``read``, refusing a record written by a different run."""
        record = cls.read(directory)
        if record is not None:
            check_fingerprint(record.fingerprint, fingerprint, Path(directory))
        return record

    @property
    def config(self) -> SGMCMCConfig:
        return SGMCMCConfig(**self.fingerprint["config"])

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.config.layout(self.fingerprint["num_train"]), self.config.step_size)

    @property
    def complete(self) -> bool:
        return self.completed_steps == self.schedule.total_steps

    def write(self) -> None:
        """Pickle the record to state.pkl, keeping the one before as state.previous.pkl."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "directory"}

        def dump(tmp: Path) -> None:
            with open(tmp, "wb") as stream:
                pickle.dump(record, stream, protocol=pickle.HIGHEST_PROTOCOL)

        io.atomic_write(self.directory / STATE_FILE, dump, fsync=True, previous=self.directory / PREVIOUS_STATE_FILE)

    def open_samples(self, num_params: int) -> np.ndarray:
        """``samples.npy`` as a writable memory map ((chains,) num_kept, num_params); new when nothing is done."""
        path = self.directory / SAMPLES_FILE
        shape = (len(self.schedule.kept_steps()), num_params)
        if self.fingerprint["vectorized"]:
            shape = (len(self.fingerprint["chain_names"]),) + shape
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.completed_steps == 0:
            return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing but {self.directory / STATE_FILE} says samples were kept; "
                                    "delete the checkpoint to restart")
        samples = np.load(path, mmap_mode="r+")
        if samples.shape != shape or samples.dtype != np.float32:
            raise ValueError(f"{path} holds {samples.dtype} {samples.shape}, expected float32 {shape}; delete the checkpoint to restart")
        return samples

    def append_cycle(self, samples: np.ndarray, *, state, log_density: np.ndarray, kept: np.ndarray, metrics: dict,
                     steps: int, sampling_time: float, wall_time: float) -> None:
        """Add one cycle and commit it: its kept rows into ``samples`` (flushed), then the record.

        ``log_density`` (..., steps); ``kept`` (..., k, num_params); ``metrics`` {name: (..., k)}.
        """
        rows = kept.shape[-2]
        samples[..., self.kept_done: self.kept_done + rows, :] = kept
        samples.flush()  # before the record that counts these rows is committed
        self.kept_done += rows
        self.log_density.append(np.asarray(log_density, np.float32))
        for name, values in metrics.items():
            self.metrics.setdefault(name, []).append(np.asarray(values, np.float64))
        self.state = state
        self.completed_steps += steps
        self.gradient_evaluations += steps
        self.sampling_time += sampling_time
        self.wall_time += wall_time
        self.write()

    def results(self) -> list[SGMCMCResult]:
        """One ``SGMCMCResult`` per chain, its samples a read-only memory map of the completed rows."""
        names, vectorized = self.fingerprint["chain_names"], self.fingerprint["vectorized"]
        path = self.directory / SAMPLES_FILE
        samples = np.load(path, mmap_mode="r") if path.exists() else None
        empty = np.zeros((len(names), 0) if vectorized else (0,))
        log_density = np.concatenate(self.log_density, axis=-1) if self.log_density else empty.astype(np.float32)
        metrics = {k: np.concatenate(v, axis=-1) for k, v in self.metrics.items()}
        kept = self.schedule.kept_steps()[: self.kept_done]
        out = []
        for c, name in enumerate(names):
            pick = (lambda a: a[c]) if vectorized else (lambda a: a)
            out.append(SGMCMCResult(
                chain_name=name,
                samples=pick(samples)[: self.kept_done] if samples is not None else np.zeros((0, 0), np.float32),
                kept_steps=kept, kept_cycles=self.schedule.cycle_of(kept),
                metrics={k: pick(v) for k, v in metrics.items()}, traces={"log_density": pick(log_density)},
                config=self.config, steps_per_epoch=self.schedule.layout.steps_per_epoch, num_train=self.fingerprint["num_train"],
                completed_steps=self.completed_steps, total_steps=self.schedule.total_steps, wall_time=self.wall_time,
                sampling_time=self.sampling_time, compile_time=self.compile_time,
                gradient_evaluations=self.gradient_evaluations, device=self.device, checkpoint_dir=str(self.directory),
            ))
        return out
