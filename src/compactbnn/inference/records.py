"""What the samplers' checkpoint directories share (HMC's ``hmc.checkpoint``, SG-MCMC's ``sgmcmc.checkpoint``).

A checkpoint directory holds ``samples.npy`` (the kept samples, a float32 memory map of which
only the rows of completed steps count) and ``state.pkl``, the record: a pickled dict whose
``fingerprint`` says which setup wrote it, its ``format`` (and, for every sampler but HMC, whose
records predate the field, its ``kind``). The record is written after each completed unit of
work (HMC's chunk, SG-MCMC's cycle) through ``io.atomic_write``, fsynced, the one before kept as
``state.previous.pkl``: a killed run resumes from the last committed unit, and a damaged
state.pkl falls back to the one before.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path

import numpy as np

from compactbnn import io

STATE_FILE = "state.pkl"
SAMPLES_FILE = "samples.npy"
# The record of the unit before the last: a fallback if state.pkl is lost or damaged (a full disk, a
# copy cut short). Its kept samples are a prefix of samples.npy's rows, so resuming from it redoes
# one unit and reproduces the uninterrupted run bit for bit.
PREVIOUS_STATE_FILE = "state.previous.pkl"


def digest(*arrays) -> str:
    """SHA-256 of the arrays' dtypes, shapes and bytes: identifies the data and initialisations of a run."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class WrongFormat(ValueError):
    """A readable file of another layout or sampler: an error, not a damaged file to fall back from."""


def check_fingerprint(stored: dict, current: dict, directory: Path, sampler: str) -> None:
    """Raise ``ValueError`` naming every difference unless the checkpoint's fingerprint is this run's."""
    if stored == current:
        return
    differences = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if a == b or key == "config_digest":  # the config's fields are compared one by one instead
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            differences += [f"config.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}"
                            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            differences.append(f"{key} differs")
    raise ValueError(f"the {sampler} checkpoint in {directory} was written by a different run ({'; '.join(differences)}); "
                     "refusing to mix runs: use another checkpoint directory or delete this one")


def unpickle(path: Path, *, sampler: str, checkpoint_format: int, kind: str | None) -> dict:
    """The record in ``path``; ``WrongFormat`` unless it is ``sampler``'s (``kind``) of ``checkpoint_format``."""
    with open(path, "rb") as stream:
        record = pickle.load(stream)
    stamp = record.get("fingerprint") if isinstance(record, dict) else None
    stamp = stamp if isinstance(stamp, dict) else {}
    ours = "format" in stamp and stamp.get("kind") == kind
    if not ours or stamp["format"] != checkpoint_format:
        found = f"an {sampler} checkpoint of format {stamp['format']}" if ours else f"no {sampler} checkpoint"
        raise WrongFormat(f"{path} is {found}, this version reads format {checkpoint_format}; delete it to restart")
    return record


def read_record(directory: Path, *, sampler: str, checkpoint_format: int, unit: str, restart: str,
                kind: str | None = None) -> dict | None:
    """The newest readable record: state.pkl, else the one before, else None (the run restarts).

    An unreadable or missing file is named in a RuntimeWarning before falling back (``unit``: what a
    record commits, "chunk" or "cycle"; ``restart``: what happens when neither can be read); a
    readable record of another format or sampler is an error.
    """
    for name in (STATE_FILE, PREVIOUS_STATE_FILE):
        path = directory / name
        if not path.exists():
            continue
        try:
            record = unpickle(path, sampler=sampler, checkpoint_format=checkpoint_format, kind=kind)
        except WrongFormat:
            raise
        except Exception as error:  # truncated or corrupted: EOFError, UnpicklingError, ValueError, ...
            fallback = f"falling back to {directory / PREVIOUS_STATE_FILE}" if name == STATE_FILE else restart
            warnings.warn(f"{sampler} checkpoint {path} is unreadable ({type(error).__name__}: {error}); {fallback}",
                          RuntimeWarning, stacklevel=4)
            continue
        if name == PREVIOUS_STATE_FILE and not (directory / STATE_FILE).exists():
            warnings.warn(f"{sampler} checkpoint {directory / STATE_FILE} is missing; resuming from the previous {unit}'s {path}",
                          RuntimeWarning, stacklevel=4)
        return record
    return None


def write_record(directory: Path, record: dict) -> None:
    """Pickle ``record`` to state.pkl, fsynced, keeping the one before as state.previous.pkl (``io.atomic_write``)."""

    def dump(tmp: Path) -> None:
        with open(tmp, "wb") as stream:
            pickle.dump(record, stream, protocol=pickle.HIGHEST_PROTOCOL)

    io.atomic_write(directory / STATE_FILE, dump, fsync=True, previous=directory / PREVIOUS_STATE_FILE)


def open_samples(directory: Path, shape: tuple[int, ...], *, fresh: bool) -> np.ndarray:
    """``samples.npy`` as a writable float32 memory map of ``shape``: new when ``fresh`` (nothing done yet), else the one there."""
    path = directory / SAMPLES_FILE
    directory.mkdir(parents=True, exist_ok=True)
    if fresh:
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing but {directory / STATE_FILE} says samples were kept; "
                                "delete the checkpoint to restart")
    samples = np.load(path, mmap_mode="r+")
    if samples.shape != shape or samples.dtype != np.float32:
        raise ValueError(f"{path} holds {samples.dtype} {samples.shape}, expected float32 {shape}; "
                         "delete the checkpoint to restart")
    return samples
