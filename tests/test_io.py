import jax
import numpy as np
import pytest

from compactbnn import io
from compactbnn.models import mlp


def test_networks_roundtrip_keeps_leading_axes(tmp_path):
    stacked = mlp.init_many(jax.random.key(0), [5, 4, 3], 6)
    stacked = jax.tree_util.tree_map(lambda leaf: leaf.reshape((2, 3) + leaf.shape[1:]), stacked)
    io.save_networks(tmp_path / "nets.npz", stacked, levels=np.arange(3))
    back, extra = io.load_networks(tmp_path / "nets.npz")
    assert extra["levels"].tolist() == [0, 1, 2]
    for a, b in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    io.save_npz_atomic(tmp_path / "a.npz", {"x": np.ones(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_load_networks_rejects_other_files(tmp_path):
    io.save_npz_atomic(tmp_path / "other.npz", {"x": np.ones(3)})
    with pytest.raises(ValueError, match="holds no saved networks"):
        io.load_networks(tmp_path / "other.npz")
