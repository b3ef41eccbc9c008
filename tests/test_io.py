import jax
import numpy as np
import pytest

from compactbnn import io
from compactbnn.models import MLP

MODEL = MLP((5, 4, 3))


def test_networks_roundtrip_keeps_leading_axes(tmp_path):
    stacked = MODEL.init_many(jax.random.key(0), 6)
    stacked = jax.tree_util.tree_map(lambda leaf: leaf.reshape((2, 3) + leaf.shape[1:]), stacked)
    io.save_networks(tmp_path / "nets.npz", MODEL, stacked, levels=np.arange(3))
    back, extra = io.load_networks(tmp_path / "nets.npz", MODEL)
    assert list(extra) == ["levels"] and extra["levels"].tolist() == [0, 1, 2]
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(stacked)
    for a, b in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), b)
    vectors, _ = io.load_vectors(tmp_path / "nets.npz", MODEL)
    assert vectors.shape == (2, 3, MODEL.num_params) and vectors.dtype == np.float32


def test_load_networks_refuses_another_models_file(tmp_path):
    io.save_networks(tmp_path / "nets.npz", MODEL, MODEL.init(jax.random.key(0)))
    other = MLP((5, 6, 3))
    with pytest.raises(ValueError, match=r"nets.npz holds networks of MLP\(layer_sizes=\(5, 4, 3\)\), not of MLP\(layer_sizes=\(5, 6, 3\)\)"):
        io.load_networks(tmp_path / "nets.npz", other)
    with pytest.raises(ValueError, match="may not be named"):
        io.save_networks(tmp_path / "bad.npz", MODEL, MODEL.init(jax.random.key(0)), model=np.ones(1))
    with pytest.raises(ValueError, match=r"vectors must be \(\.\.\., 39\)"):
        io.save_vectors(tmp_path / "bad.npz", MODEL, np.ones((2, 40)))


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    io.save_npz_atomic(tmp_path / "a.npz", {"x": np.ones(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_atomic_write_keeps_the_old_file_on_error_and_the_previous_one_on_request(tmp_path):
    path = tmp_path / "f.txt"
    io.atomic_write(path, lambda tmp: tmp.write_text("one"), fsync=True)

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        io.atomic_write(path, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and path.read_text() == "one"
    io.atomic_write(path, lambda tmp: tmp.write_text("two"), previous=tmp_path / "f.previous.txt")
    assert path.read_text() == "two" and (tmp_path / "f.previous.txt").read_text() == "one"


def test_load_networks_rejects_other_files(tmp_path):
    io.save_npz_atomic(tmp_path / "other.npz", {"x": np.ones(3)})
    with pytest.raises(ValueError, match="holds no saved networks"):
        io.load_networks(tmp_path / "other.npz", MODEL)


def test_files_of_the_version_before_the_model_seam_stay_readable(tmp_path):
    """Finished results (HMC samples: hours at the paper's scale) were saved with "layer_sizes", not "model"."""
    from compactbnn.symmetry import compact

    nets = MODEL.init_many(jax.random.key(0), 3)
    np.savez(tmp_path / "old.npz", params=np.asarray(MODEL.ravel(nets)), layer_sizes=np.asarray([5, 4, 3]), seeds=np.arange(3))
    back, extra = io.load_networks(tmp_path / "old.npz", MODEL)
    np.testing.assert_array_equal(np.asarray(MODEL.ravel(back)), np.asarray(MODEL.ravel(nets)))
    assert extra["seeds"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"holds networks of MLP\(layer_sizes=\(5, 4, 3\)\), not of MLP\(layer_sizes=\(5, 6, 3\)\)"):
        io.load_networks(tmp_path / "old.npz", MLP((5, 6, 3)))
    mu = np.asarray(MODEL.ravel(MODEL.init(jax.random.key(1))))
    np.savez(tmp_path / "old_q.npz", mu=mu, sigma=np.abs(mu), not_to_reference=np.zeros(3, np.int32),
             layer_sizes=np.asarray([5, 4, 3]))
    q = compact.load_compact(tmp_path / "old_q.npz", MODEL).q
    np.testing.assert_array_equal(np.asarray(MODEL.ravel(q.mean)), mu)
