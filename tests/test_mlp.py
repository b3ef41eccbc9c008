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


# ----------------------------------------------------------------------------- the MLP as a Model


def test_mlp_model_describes_its_network():
    model = mlp.MLP((5, 4, 3, 2))
    assert model == mlp.MLP([5, 4, 3, 2]) and hash(model) == hash(mlp.MLP((5, 4, 3, 2)))  # a static argument of jit
    assert (model.num_features, model.num_classes, model.perm_sizes) == (5, 2, (4, 3))
    assert model.num_params == mlp.num_params([5, 4, 3, 2])
    assert model.spec.num_perms == 2
    with pytest.raises(ValueError, match="layer_sizes"):
        mlp.MLP((5,))


def test_mlp_model_ravel_unravel_round_trip():
    model = mlp.MLP((5, 4, 3, 2))
    params = model.init(jax.random.key(1))
    vector = model.ravel(params)
    assert vector.shape == (model.num_params,)
    np.testing.assert_array_equal(vector, mlp.ravel(params))
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(model.unravel(vector))):
        np.testing.assert_array_equal(a, b)
    stacked = model.init_many(jax.random.key(2), 3)  # leading model axes are kept
    back = model.unravel(model.ravel(stacked))
    for a, b in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)


def test_mlp_sites_follow_pytorchs_parameters_order():
    model = mlp.MLP((5, 4, 3))
    # torch.nn.Sequential(Linear(5, 4), ReLU(), Linear(4, 3)).parameters(): weight (out, in), then bias, per layer
    assert model.sites == (("layer0.weight", (4, 5)), ("layer0.bias", (4,)), ("layer1.weight", (3, 4)), ("layer1.bias", (3,)))
    params = model.init(jax.random.key(0))
    sites = model.to_sites(params)
    assert list(sites) == [name for name, _ in model.sites]
    assert [np.shape(value) for value in sites.values()] == [shape for _, shape in model.sites]
    # ravel is the sites' values flattened one after another, in the same order
    np.testing.assert_array_equal(model.ravel(params), np.concatenate([np.ravel(v) for v in sites.values()]))


def test_mlp_to_sites_from_sites_round_trip():
    model = mlp.MLP((6, 5, 3))
    params = model.init(jax.random.key(3))
    back = model.from_sites(model.to_sites(params))
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)
    stacked = model.init_many(jax.random.key(4), 2)  # a stack has the same sites, with a leading axis
    assert all(np.shape(v)[0] == 2 for v in model.to_sites(stacked).values())


def test_mlp_check_refuses_wrong_shapes():
    model = mlp.MLP((6, 5, 3))
    params = model.init(jax.random.key(0))
    model.check(params)
    model.check(model.stack_one(params), batch_ndim=1)
    with pytest.raises(ValueError, match="layer sizes"):
        model.check(mlp.MLP((6, 4, 3)).init(jax.random.key(0)), "other")
    with pytest.raises(ValueError, match="axes"):
        model.check(model.stack_one(params))  # a stack where one network belongs
    with pytest.raises(ValueError, match="axes"):
        model.check(params, batch_ndim=1)  # one network where a stack belongs
    with pytest.raises(ValueError, match="bias has 4 entries"):
        model.check([{"weight": np.zeros((5, 6)), "bias": np.zeros(4)}, params[1]])
    with pytest.raises(TypeError, match="keys 'weight' and 'bias'"):
        model.check([{"w": np.zeros((5, 6))}, params[1]])


def test_mlp_init_many_is_init_stacked_over_split_keys():
    model = mlp.MLP((6, 5, 3))
    key = jax.random.key(7)
    stacked = model.init_many(key, 4)
    assert model.num_stacked(stacked) == 4
    for i, k in enumerate(jax.random.split(key, 4)):
        one = model.init(k)
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(stacked)):
            np.testing.assert_array_equal(a, b[i])
    # and the module's functions draw the same networks
    for a, b in zip(jax.tree_util.tree_leaves(mlp.init_many(key, [6, 5, 3], 4)), jax.tree_util.tree_leaves(stacked)):
        np.testing.assert_array_equal(a, b)


def test_mlp_apply_and_activations_are_the_functions():
    model = mlp.MLP((6, 5, 4, 3))
    params = model.init(jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (7, 6))
    np.testing.assert_array_equal(model.apply(params, x), mlp.apply(params, x))
    acts = model.hidden_activations(params, x)
    assert [a.shape[-1] for a in acts] == list(model.perm_sizes)
    logits = jax.vmap(model.apply, in_axes=(0, None))(model.stack_one(params), x)
    np.testing.assert_allclose(logits[0], model.apply(params, x), rtol=1e-6, atol=1e-6)
