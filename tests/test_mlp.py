import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn.models import mlp


def test_paper_network_size():
    assert mlp.num_params([784, 512, 10]) == 407_050


def test_init_follows_pytorch_rule():
    params = mlp.init(jax.random.key(0), [784, 512, 10])
    for layer, fan_in in zip(params, [784, 512]):
        bound = 1 / np.sqrt(fan_in)
        for name in ("weight", "bias"):
            assert np.abs(np.asarray(layer[name])).max() <= bound
        w = np.asarray(layer["weight"])
        assert np.abs(w).max() > 0.999 * bound
        # U(-b, b): mean 0, variance b^2 / 3
        assert abs(w.mean()) < 0.01 * bound
        assert w.var() == pytest.approx(bound**2 / 3, rel=0.02)
    assert params[0]["weight"].shape == (512, 784) and params[1]["bias"].shape == (10,)


def test_init_many_models_differ():
    stacked = mlp.init_many(jax.random.key(0), [8, 4, 3], 5)
    assert stacked[0]["weight"].shape == (5, 4, 8)
    assert not np.allclose(stacked[0]["weight"][0], stacked[0]["weight"][1])


def test_ravel_order_and_roundtrip():
    sizes = [5, 4, 3, 2]
    params = mlp.init(jax.random.key(1), sizes)
    vector = mlp.ravel(params)
    assert vector.shape == (mlp.num_params(sizes),)
    # PyTorch order: layer 0 weight row-major, layer 0 bias, layer 1 weight, ...
    np.testing.assert_array_equal(vector[:5], params[0]["weight"][0])
    np.testing.assert_array_equal(vector[20:24], params[0]["bias"])
    np.testing.assert_array_equal(vector[24:28], params[1]["weight"][0])
    back = mlp.unravel(vector, sizes)
    for a, b in zip(params, back):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_ravel_keeps_batch_axes():
    stacked = mlp.init_many(jax.random.key(2), [5, 4, 3], 6)
    vectors = mlp.ravel(stacked)
    assert vectors.shape == (6, mlp.num_params([5, 4, 3]))
    back = mlp.unravel(vectors, [5, 4, 3])
    np.testing.assert_array_equal(back[1]["weight"], stacked[1]["weight"])


def test_stack_one_adds_a_model_axis_of_one():
    params = mlp.init(jax.random.key(5), [5, 4, 3])
    # numpy leaves too: the helper takes host arrays (e.g. loaded from .npz) as well
    host = jax.tree_util.tree_map(np.asarray, params)
    for given in (params, host):
        stacked = mlp.stack_one(given)
        assert jax.tree_util.tree_structure(stacked) == jax.tree_util.tree_structure(params)
        for layer, one in zip(stacked, params):
            for name in ("weight", "bias"):
                assert isinstance(layer[name], jax.Array)
                assert layer[name].shape == (1, *one[name].shape)
                np.testing.assert_array_equal(layer[name][0], one[name])
    # a stack of one behaves as the network itself under vmap
    x = jax.random.normal(jax.random.key(6), (4, 5))
    logits = jax.vmap(mlp.apply, in_axes=(0, None))(mlp.stack_one(params), x)
    np.testing.assert_allclose(logits[0], mlp.apply(params, x), rtol=1e-6, atol=1e-6)


def test_unravel_wrong_length():
    with pytest.raises(ValueError, match="need 39"):
        mlp.unravel(jnp.zeros(40), [5, 4, 3])


def test_apply_and_activations():
    params = mlp.init(jax.random.key(3), [6, 5, 4, 3])
    x = jax.random.normal(jax.random.key(4), (7, 6))
    h1 = np.maximum(x @ params[0]["weight"].T + params[0]["bias"], 0)
    h2 = np.maximum(h1 @ params[1]["weight"].T + params[1]["bias"], 0)
    logits = h2 @ params[2]["weight"].T + params[2]["bias"]
    np.testing.assert_allclose(mlp.apply(params, x), logits, rtol=1e-5, atol=1e-6)
    acts = mlp.hidden_activations(params, x)
    assert [a.shape for a in acts] == [(7, 5), (7, 4)]
    np.testing.assert_allclose(acts[1], h2, rtol=1e-5, atol=1e-6)
    assert mlp.layer_sizes_of(params) == [6, 5, 4, 3]


@pytest.mark.parametrize("sizes", [[784], [784, 0, 10], [784, 51.5, 10]])
def test_bad_layer_sizes(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        mlp.init(jax.random.key(0), sizes)


def test_repeat_stacks_identical_copies():
    params = mlp.init(jax.random.key(0), [4, 3, 2])
    stacked = mlp.repeat(params, 5)
    assert stacked[0]["weight"].shape == (5, 3, 4) and stacked[1]["bias"].shape == (5, 2)
    for layer, original in zip(stacked, params):
        np.testing.assert_array_equal(layer["weight"][4], original["weight"])
