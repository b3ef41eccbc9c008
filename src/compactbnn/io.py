"""Small file helpers shared by the library: one atomic writer, so a killed job leaves no half file.

``atomic_write`` is the only place the library writes a file by write-temp-then-rename: npz
arrays (``save_npz_atomic``), saved networks, ArviZ traces and HMC checkpoints all go through it.
The temporary file gets the mode any other new file would get (the umask's), so group members on
a cluster can read the outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

# npz entries save_networks and save_vectors reserve: the vectors and the model that reads them
PARAMS_KEY = "params"
MODEL_KEY = "model"


def new_file_mode() -> int:
    """The mode open() gives a new file: 0666 less the process's umask (e.g. 0644, or 0664 for a group)."""
    # os.umask can only be read by setting it; set it straight back (no thread of ours creates files meanwhile)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, fsync: bool = False,
                 previous: str | os.PathLike | None = None) -> None:
    """Have ``write(tmp)`` write a temporary file beside ``path``, then rename it into place.

    The temporary file exists (empty) when ``write`` gets its path; ``write`` may open it or
    overwrite it. Afterwards it gets ``new_file_mode()`` (mkstemp's 0600 would hide it from the
    group), is flushed to disk when ``fsync``, and is renamed to ``path``: the rename is the
    commit point. With ``previous``, an existing ``path`` is first renamed to ``previous``, so a
    kill between the two renames leaves the old file there. On any error the temporary file is
    removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        # after writing: a writer that re-creates the file (netCDF) would lose a mode set before
        os.chmod(tmp, new_file_mode())
        if fsync:
            descriptor = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed npz next to ``path``, then rename it into place."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as stream:  # a stream: np.savez would append ".npz" to a path
            np.savez(stream, **{key: np.asarray(value) for key, value in arrays.items()})

    atomic_write(path, write)


def save_vectors(path: str | os.PathLike, model, vectors, /, **extra) -> None:
    """Save parameter vectors (..., model.num_params) in ``model.ravel`` order, atomically.

    The npz holds ``params`` (float32), ``model`` (``repr(model)``, which ``load_vectors`` checks)
    and any ``extra`` named arrays.
    """
    reserved = {PARAMS_KEY, MODEL_KEY} & set(extra)
    if reserved:
        raise ValueError(f"extra arrays may not be named {sorted(reserved)}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim < 1 or vectors.shape[-1] != model.num_params:
        raise ValueError(f"vectors must be (..., {model.num_params}) for {model!r}, got shape {vectors.shape}")
    save_npz_atomic(path, {PARAMS_KEY: vectors, MODEL_KEY: np.asarray(repr(model)), **extra})


def load_vectors(path: str | os.PathLike, model) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inverse of ``save_vectors``: (the vectors (..., num_params), the extra arrays).

    Refuses a file written for another model (its ``model`` entry is not ``repr(model)``); a file
    of an earlier version is read as its model describes it (``Model.stored_description``).
    """
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    stored = model.stored_description(arrays)
    if PARAMS_KEY not in arrays or stored is None:
        raise ValueError(f"{path} holds no saved networks (arrays {PARAMS_KEY!r} and {MODEL_KEY!r} missing)")
    arrays = {key: value for key, value in arrays.items() if key != MODEL_KEY}
    if stored != repr(model):
        raise ValueError(f"{path} holds networks of {stored}, not of {model!r}")
    return arrays.pop(PARAMS_KEY), arrays


def save_networks(path: str | os.PathLike, model, params, /, **extra) -> None:
    """Save one network or a stack (leading model axes) of ``model`` as ravelled float32 vectors (``save_vectors``)."""
    save_vectors(path, model, model.ravel(params), **extra)


def load_networks(path: str | os.PathLike, model) -> tuple[object, dict[str, np.ndarray]]:
    """Inverse of ``save_networks``: (params with their leading axes, the extra arrays); refuses another model's file."""
    vectors, extra = load_vectors(path, model)
    return model.unravel(vectors), extra
