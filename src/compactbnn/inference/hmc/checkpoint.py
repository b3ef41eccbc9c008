"""HMC checkpoint files: the pickled record ``state.pkl`` (sampler state, traces, fingerprint), its predecessor, and the results they hold.

A chain's checkpoint directory holds ``samples.npy`` (the kept samples, a memory map) and
``state.pkl``, written after every chunk by write-temp-then-rename; ``state.previous.pkl`` keeps
the chunk before. ``hmc`` re-exports every name here.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compactbnn.inference.hmc.settings import HMCConfig

CHECKPOINT_FORMAT = 1
STATE_FILE = "state.pkl"
SAMPLES_FILE = "samples.npy"
TRACE_NAMES = ("potential_energy", "log_likelihood", "accept_prob", "diverging", "nan_energy")


@dataclass
class ChainResult:
    """One chain's kept samples and diagnostics.

    samples: (num_kept_done, num_params) float32 in ``mlp.ravel`` order; a read-only memory map
      onto ``<checkpoint_dir>/samples.npy`` (rows of completed chunks only).
    kept_indices: (num_kept_done,) post-warmup iteration index of each sample.
    traces: per iteration (warmup first, length completed_iterations): potential_energy,
      log_likelihood (train, from the potential energy), accept_prob, diverging (NumPyro's flag;
      a NaN proposal energy is mapped to +inf by NumPyro and so counted here), nan_energy (the
      chain's own energy is NaN, e.g. NaN initial parameters).
    test_log_likelihood, test_accuracy: (num_kept_done,) summed log-likelihood and accuracy on
      the test set at each kept sample, or None without test data.
    step_size: the step size in use after warmup; num_steps: leapfrog steps per iteration.
    wall_time: seconds over all sessions of this checkpoint (setup and compilation included);
    sampling_time: seconds spent in the compiled chunks; leapfrog_steps: steps done so far.
    """

    chain_name: str
    samples: np.ndarray
    kept_indices: np.ndarray
    traces: dict
    test_log_likelihood: np.ndarray | None
    test_accuracy: np.ndarray | None
    step_size: float
    num_steps: int
    num_warmup: int
    completed_iterations: int
    total_iterations: int
    wall_time: float
    sampling_time: float
    compile_time: float
    leapfrog_steps: int
    device: str
    checkpoint_dir: str

    @property
    def complete(self) -> bool:
        return self.completed_iterations == self.total_iterations

    @property
    def accept_rate(self) -> float:
        """Mean acceptance probability over the post-warmup iterations done."""
        values = self.traces["accept_prob"][self.num_warmup:]
        return float(np.mean(values)) if len(values) else float("nan")

    @property
    def num_divergent(self) -> int:
        return int(np.sum(self.traces["diverging"][self.num_warmup:]))

    @property
    def num_nan_energy(self) -> int:
        return int(np.sum(self.traces["nan_energy"]))

    @property
    def leapfrog_steps_per_second(self) -> float:
        return self.leapfrog_steps / self.sampling_time if self.sampling_time > 0 else float("nan")

    def summary(self) -> dict:
        """JSON-ready scalar diagnostics, including split R-hat and ESS of the test log-likelihood (one chain, split in halves)."""
        from compactbnn.inference import diagnostics

        out = {
            "chain": self.chain_name,
            "complete": self.complete,
            "completed_iterations": self.completed_iterations,
            "num_kept": int(len(self.kept_indices)),
            "num_params": int(self.samples.shape[-1]),
            "accept_rate": self.accept_rate,
            "num_divergent": self.num_divergent,
            "num_nan_energy": self.num_nan_energy,
            "step_size": self.step_size,
            "num_steps": self.num_steps,
            "path_length": self.step_size * self.num_steps,
            "num_warmup": self.num_warmup,
            "final_train_log_likelihood": float(self.traces["log_likelihood"][-1]) if self.completed_iterations else float("nan"),
            "wall_time_s": self.wall_time,
            "sampling_time_s": self.sampling_time,
            "compile_time_s": self.compile_time,
            "leapfrog_steps_per_second": self.leapfrog_steps_per_second,
            "device": self.device,
        }
        if self.test_log_likelihood is not None and len(self.test_log_likelihood):
            stats = diagnostics.chain_summary(self.test_log_likelihood[None])
            out.update({f"test_log_likelihood_{k}": v for k, v in stats.items() if k not in ("num_chains", "chain_means")})
            out["test_accuracy_mean"] = float(np.mean(self.test_accuracy))
        return out


# The record of the chunk before the last: a fallback if state.pkl is lost or damaged (a full disk,
# a copy cut short). Its kept samples are a prefix of samples.npy's rows, so resuming from it redoes
# one chunk and reproduces the uninterrupted chain bit for bit.
PREVIOUS_STATE_FILE = "state.previous.pkl"


def _read_checkpoint(directory: Path) -> dict | None:
    """The newest readable record: state.pkl, else the previous chunk's, else None (the chain restarts).

    An unreadable file is named in a RuntimeWarning before falling back; a readable record of
    another checkpoint format is an error.
    """
    for name in (STATE_FILE, PREVIOUS_STATE_FILE):
        path = directory / name
        if not path.exists():
            continue
        try:
            with open(path, "rb") as stream:
                record = pickle.load(stream)
        except Exception as error:  # truncated or corrupted: EOFError, UnpicklingError, ValueError, ...
            fallback = (f"falling back to {directory / PREVIOUS_STATE_FILE}" if name == STATE_FILE
                        else "restarting the chain from its first iteration")
            warnings.warn(f"HMC checkpoint {path} is unreadable ({type(error).__name__}: {error}); {fallback}",
                          RuntimeWarning, stacklevel=2)
            continue
        if not isinstance(record, dict) or record.get("fingerprint", {}).get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not an HMC checkpoint of format {CHECKPOINT_FORMAT}; delete it to restart")
        if name == PREVIOUS_STATE_FILE and not (directory / STATE_FILE).exists():
            warnings.warn(f"HMC checkpoint {directory / STATE_FILE} is missing; resuming from the previous chunk's {path}",
                          RuntimeWarning, stacklevel=2)
        return record
    return None


def _write_checkpoint(directory: Path, record: dict) -> None:
    """Pickle the record next to state.pkl, keep the old one as state.previous.pkl, rename the new one into place.

    The rename is the chunk's commit point; a kill between the two renames leaves the previous
    record, which _read_checkpoint falls back to. Files get the umask's mode, like other outputs.
    """
    from compactbnn.io import new_file_mode

    directory.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{STATE_FILE}.", suffix=".tmp")
    try:
        os.fchmod(handle, new_file_mode())
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(record, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.flush()
            os.fsync(stream.fileno())
        if (directory / STATE_FILE).exists():
            os.replace(directory / STATE_FILE, directory / PREVIOUS_STATE_FILE)
        os.replace(tmp, directory / STATE_FILE)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_fingerprint(stored: dict, current: dict, directory: Path) -> None:
    if stored == current:
        return
    differences = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if a == b:
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            differences += [f"config.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif key == "config_digest":
            continue
        else:
            differences.append(f"{key} differs")
    raise ValueError(
        f"the HMC checkpoint in {directory} was written by a different run ({'; '.join(differences)}); "
        "refusing to mix runs: use another checkpoint directory or delete this one"
    )


def _results_from_record(record: dict, directory: Path) -> list[ChainResult]:
    fp = record["fingerprint"]
    config = HMCConfig(**fp["config"])
    vectorized = fp["vectorized"]
    kept_done = record["kept_done"]
    path = directory / SAMPLES_FILE
    samples = np.load(path, mmap_mode="r") if path.exists() else np.zeros((0, 0), np.float32)

    def cat(parts, dtype):
        if not parts:
            shape = (len(fp["chain_names"]), 0) if vectorized else (0,)
            return np.zeros(shape, dtype)
        return np.concatenate(parts, axis=-1).astype(dtype)

    traces = {
        "potential_energy": cat(record["traces"]["potential_energy"], np.float32),
        "log_likelihood": cat(record["traces"]["log_likelihood"], np.float32),
        "accept_prob": cat(record["traces"]["accept_prob"], np.float32),
        "diverging": cat(record["traces"]["diverging"], bool),
        "nan_energy": cat(record["traces"]["nan_energy"], bool),
    }
    test_ll = None if record["test_log_likelihood"] is None else cat(record["test_log_likelihood"], np.float32)
    test_acc = None if record["test_accuracy"] is None else cat(record["test_accuracy"], np.float32)
    step_sizes = np.atleast_1d(np.asarray(record["state"].adapt_state.step_size, np.float64))
    results = []
    for c, name in enumerate(fp["chain_names"]):
        pick = (lambda a: a[c]) if vectorized else (lambda a: a)
        results.append(ChainResult(
            chain_name=name,
            samples=pick(samples)[:kept_done] if samples.size else samples,
            kept_indices=config.kept_indices[:kept_done],
            traces={k: pick(v) for k, v in traces.items()},
            test_log_likelihood=None if test_ll is None else pick(test_ll),
            test_accuracy=None if test_acc is None else pick(test_acc),
            step_size=float(step_sizes[c if vectorized else 0]),
            num_steps=config.num_steps,
            num_warmup=config.num_warmup,
            completed_iterations=record["completed_iterations"],
            total_iterations=config.total_iterations,
            wall_time=record["wall_time"],
            sampling_time=record["sampling_time"],
            compile_time=record["compile_time"],
            leapfrog_steps=record["leapfrog_steps"] // (len(fp["chain_names"]) if vectorized else 1),
            device=record["device"],
            checkpoint_dir=str(directory),
        ))
    return results
