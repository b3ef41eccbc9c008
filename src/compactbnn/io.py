"""Small file helpers shared by the library: atomic writes, so a killed job leaves no half file.

Atomic writes go through a temporary file that is renamed into place; it gets the mode any
other new file would get (the umask's), so group members on a cluster can read the outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np


def new_file_mode() -> int:
    """The mode open() gives a new file: 0666 less the process's umask (e.g. 0644, or 0664 for a group)."""
    # os.umask can only be read by setting it; set it straight back (no thread of ours creates files meanwhile)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed npz next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, new_file_mode())  # mkstemp's 0600 would hide the file from the group
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **{key: np.asarray(value) for key, value in arrays.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_networks(path: str | os.PathLike, params, **extra) -> None:
    """Save MLP parameters (one network or a stack with leading axes) as ravelled float32 vectors.

    The npz holds ``params`` (..., num_params) in ``mlp.ravel`` order, ``layer_sizes``, and any
    ``extra`` named arrays.
    """
    from compactbnn.models import mlp

    reserved = {"params", "layer_sizes"} & set(extra)
    if reserved:
        raise ValueError(f"extra arrays may not be named {sorted(reserved)}")
    vectors = np.asarray(mlp.ravel(params), dtype=np.float32)
    save_npz_atomic(path, {"params": vectors, "layer_sizes": np.asarray(mlp.layer_sizes_of(_first(params))), **extra})


def load_networks(path: str | os.PathLike) -> tuple[list, dict[str, np.ndarray]]:
    """Inverse of ``save_networks``: (params with their leading axes, the extra arrays)."""
    from compactbnn.models import mlp

    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if "params" not in arrays or "layer_sizes" not in arrays:
        raise ValueError(f"{path} holds no saved networks (arrays 'params' and 'layer_sizes' missing)")
    params = mlp.unravel(arrays.pop("params"), arrays.pop("layer_sizes").tolist())
    return params, arrays


def _first(params):
    """One network of a stack (all leading axes indexed at 0), for its layer sizes."""
    lead = np.ndim(params[0]["bias"]) - 1
    return [{k: v[(0,) * lead] for k, v in layer.items()} for layer in params]
