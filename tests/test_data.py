import zipfile

import numpy as np
import pytest

from compactbnn import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digits_shapes_and_range(digits):
    assert digits["x_train"].shape == (1438, 64) and digits["x_test"].shape == (359, 64)
    assert data.NUM_EXAMPLES["digits"] == (1438, 359) and data.NUM_FEATURES["digits"] == 64
    assert digits["x_train"].dtype == np.float32 and digits["y_train"].dtype == np.int32
    assert 0.0 <= digits["x_train"].min() and digits["x_train"].max() == 1.0
    assert set(np.unique(digits["y_test"])) == set(range(10))


def test_digits_split_is_deterministic_and_disjoint():
    a, b = data.load("digits"), data.load("digits")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    train_rows = {row.tobytes() for row in a["x_train"]}
    # sklearn's digits hold a few duplicate images; the split itself must not repeat rows
    assert len(train_rows) + len({row.tobytes() for row in a["x_test"]}) >= 1790
    other = data.load_digits(seed=1)
    assert not np.array_equal(other["y_train"], a["y_train"])


def test_unknown_dataset_lists_known():
    with pytest.raises(data.DataError, match="known data sets: mnist, digits"):
        data.load("cifar")


@pytest.mark.mnist
def test_mnist_shapes_counts_and_order(mnist):
    assert mnist["x_train"].shape == (60000, 784) and mnist["x_test"].shape == (10000, 784)
    assert data.NUM_EXAMPLES["mnist"] == (60000, 10000) and data.NUM_FEATURES["mnist"] == 784
    assert mnist["x_train"].dtype == np.float32 and mnist["y_train"].dtype == np.int32
    assert mnist["x_train"].min() == 0.0 and mnist["x_train"].max() == 1.0
    assert mnist["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(mnist["y_train"]).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist["y_test"]).tolist() == MNIST_TEST_COUNTS


@pytest.mark.mnist
def test_mnist_cache_holds_uint8(mnist, resources):
    with np.load(resources / data.MNIST_CACHE_FILE) as npz:
        assert {k: (npz[k].dtype, npz[k].shape) for k in npz.files} == {
            "x_train": (np.uint8, (60000, 784)), "y_train": (np.uint8, (60000,)),
            "x_test": (np.uint8, (10000, 784)), "y_test": (np.uint8, (10000,)),
        }


@pytest.mark.mnist
def test_idx_directory_matches_wheel(tmp_path, mnist, resources):
    arrays = data.load_mnist_uint8(resources)
    shapes = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
    for key, stem in data.IDX_FILES.items():
        array = arrays[key].reshape(shapes[key])
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (tmp_path / stem).write_bytes(header + array.tobytes())
    from_idx = data.load("mnist", tmp_path / "root", idx_dir=tmp_path)
    for key in arrays:
        np.testing.assert_array_equal(from_idx[key], mnist[key])
    assert not (tmp_path / "root").exists()  # reading IDX files writes no cache


def test_idx_missing_file_is_named(tmp_path):
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte"):
        data.load("mnist", tmp_path, idx_dir=tmp_path)


def test_idx_bad_header(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x09\x01\x00\x00\x00\x01\x07")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")


def test_wheel_hash_mismatch_names_file_and_hashes_and_keeps_it(tmp_path):
    wheel = tmp_path / data.MNIST_WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(data.MNIST_PICKLE_MEMBER, b"not mnist")
    found = data.sha256_of_file(wheel)
    with pytest.raises(data.HashMismatchError) as error:
        data.load("mnist", tmp_path)
    message = str(error.value)
    assert str(wheel) in message and data.MNIST_WHEEL_SHA256 in message and found in message
    assert wheel.exists()  # the user's file is never deleted
    assert not (tmp_path / data.MNIST_CACHE_FILE).exists()


def test_corrupted_cache_is_reported(tmp_path):
    (tmp_path / data.MNIST_CACHE_FILE).write_bytes(b"garbage")
    with pytest.raises(data.DataError, match="mnist.npz is unreadable"):
        data.load("mnist", tmp_path)
    assert (tmp_path / data.MNIST_CACHE_FILE).read_bytes() == b"garbage"


def test_no_pip_names_the_alternative(tmp_path, monkeypatch):
    monkeypatch.setattr(data.sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(data.DataError, match="idx_dir"):
        data.load("mnist", tmp_path)


def test_take_first(digits):
    cut = data.take_first(digits, 100, None)
    np.testing.assert_array_equal(cut["x_train"], digits["x_train"][:100])
    assert cut["y_train"].shape == (100,) and cut["x_test"].shape == digits["x_test"].shape
    with pytest.raises(data.DataError, match="train_size = 5000 is outside 1..1438"):
        data.take_first(digits, 5000, None)
