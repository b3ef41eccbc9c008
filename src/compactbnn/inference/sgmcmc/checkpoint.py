"""SG-MCMC checkpoints: the record of a run after each completed cycle (``SGMCMCCheckpoint``) and the results it holds.

A checkpoint directory holds ``samples.npy`` (the kept samples, a memory map; rows of completed
cycles only) and ``state.pkl``: the sampler state (positions and momenta; no PRNG key, since every
random number is drawn from the chain's key and the step index), the traces, the kept samples'
metrics, counters and a fingerprint of the setup. It is written after every cycle, the one
before kept as ``state.previous.pkl`` (the files, format checks and fallback are HMC's too:
``inference.records``): a killed run resumes from the last completed cycle and ends with the
samples of an uninterrupted run, bit for bit on one machine. On disk the record is a pickled dict
of the dataclass's fields; ``CHECKPOINT_FORMAT`` names its layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blackjax
import jax
import numpy as np

from compactbnn.inference import records
from compactbnn.inference.records import PREVIOUS_STATE_FILE, SAMPLES_FILE, STATE_FILE  # noqa: F401 (re-exported)
from compactbnn.inference.sgmcmc.results import SGMCMCResult
from compactbnn.inference.sgmcmc.schedule import Schedule
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig

CHECKPOINT_FORMAT = 1
KIND = "sgmcmc"  # marks the record, so that an HMC checkpoint directory is refused by name


def check_fingerprint(stored: dict, current: dict, directory: Path) -> None:
    """Raise ``ValueError`` naming every difference unless the checkpoint was written by this run's setup."""
    records.check_fingerprint(stored, current, directory, "SG-MCMC")


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
        record = records.read_record(directory, sampler="SG-MCMC", checkpoint_format=CHECKPOINT_FORMAT, unit="cycle",
                                     restart="restarting the chain from its first step", kind=KIND)
        return None if record is None else cls(directory, **record)

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
        records.write_record(self.directory, {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "directory"})

    def open_samples(self, num_params: int) -> np.ndarray:
        """``samples.npy`` as a writable memory map ((chains,) num_kept, num_params); new when nothing is done."""
        shape = (len(self.schedule.kept_steps()), num_params)
        if self.fingerprint["vectorized"]:
            shape = (len(self.fingerprint["chain_names"]),) + shape
        return records.open_samples(self.directory, shape, fresh=self.completed_steps == 0)

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
