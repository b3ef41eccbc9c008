"""The convolutional models (``CNN``, ``ResNet``) through everything the MLP goes through.

Tiny images (1x8x8, and an odd 2x9x7 for the pooling's floor), few channels: function invariance
under every permutation group, exact NoT, planted permutations recovered by weight and by
activation matching, q_r of a planted permuted ensemble, PyTorch's parameter order, and the
inference, interpolation, metric and pruning code run unchanged on them.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn.evaluation import metrics, pruning
from compactbnn.inference import hmc, vi
from compactbnn.inference.hmc import mixed_precision
from compactbnn.models import CNN, ResNet, PermutationSpec
from compactbnn.symmetry import compact, interpolation, permutation, rebasin

CNN_SMALL = CNN(image_shape=(1, 8, 8), channels=(4, 6), dense=(5,), num_classes=10)
CNN_ODD = CNN(image_shape=(2, 9, 7), channels=(3,), dense=(), num_classes=3)  # 9x7 pools to 4x3: floor
RESNET_SMALL = ResNet(image_shape=(1, 8, 8), width=5, blocks=2, num_classes=10)
MODELS = [CNN_SMALL, CNN_ODD, RESNET_SMALL]
IDS = ["cnn", "cnn_odd", "resnet"]
# An init whose networks (positive biases) have no unit dead on all of ``inputs``: checked where it matters.
ACTIVE_SEED = 2


def inputs(model, num=64, seed=1):
    return np.asarray(jax.random.normal(jax.random.key(seed), (num, model.num_features)))


def random_perms(model, key):
    return [np.asarray(jax.random.permutation(jax.random.fold_in(key, p), n)).astype(np.int32)
            for p, n in enumerate(model.perm_sizes)]


def flat(model, params):
    return np.asarray(model.ravel(params))


# --- the models ----------------------------------------------------------------------------------


def test_the_constructors_the_workflow_uses_and_their_shapes():
    cnn = CNN(image_shape=(1, 28, 28), channels=(16, 32), dense=(64,), num_classes=10)
    assert cnn.perm_sizes == (16, 32, 64) and cnn.pooled_shape == (7, 7) and cnn.num_features == 784
    # conv 16*1*9+16, conv 32*16*9+32, dense 64*(32*49)+64, logits 10*64+10
    assert cnn.num_params == 160 + 4640 + 100416 + 650
    assert cnn.spec.perm_to_axes[1][-1] == (2, "weight", 1, 49)
    resnet = ResNet(image_shape=(1, 28, 28), width=16, blocks=2, num_classes=10)
    assert resnet.perm_sizes == (16, 16, 16) and resnet.num_params == 160 + 4 * 2320 + 170
    assert eval(repr(cnn)) == cnn and eval(repr(resnet)) == resnet and hash(cnn) == hash(eval(repr(cnn)))
    assert CNN(image_shape=[1, 8, 8], channels=[4], dense=[]) == CNN((1, 8, 8), (4,), ())


@pytest.mark.parametrize("bad, message", [
    (dict(image_shape=(1, 8), channels=(4,), dense=()), "image_shape"),
    (dict(image_shape=(1, 8, 8), channels=(), dense=()), "channels"),
    (dict(image_shape=(1, 8, 8), channels=(4, 0), dense=()), "channels"),
    (dict(image_shape=(1, 8, 8), channels=(4,), dense=(-1,)), "dense"),
    (dict(image_shape=(1, 8, 8), channels=(2, 2, 2, 2), dense=()), "poolings"),
])
def test_bad_cnn_hyperparameters_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        CNN(**bad)


def test_bad_resnet_hyperparameters_and_parameters_are_refused():
    with pytest.raises(ValueError, match="width"):
        ResNet((1, 8, 8), width=0, blocks=1)
    with pytest.raises(ValueError, match="blocks"):
        ResNet((1, 8, 8), width=3, blocks=-1)
    params = RESNET_SMALL.init(jax.random.key(0))
    with pytest.raises(TypeError, match="layer dicts"):
        RESNET_SMALL.check(params[:-1])
    params[2] = {"weight": params[2]["weight"][:, :3], "bias": params[2]["bias"]}
    with pytest.raises(ValueError, match=r"params\[2\]\['weight'\]"):
        RESNET_SMALL.check(params)


def test_a_spec_entry_is_a_triple_or_has_a_positive_block():
    with pytest.raises(ValueError, match="block size"):
        PermutationSpec((((0, "weight", 0, 0),),))
    with pytest.raises(ValueError, match="already taken"):
        PermutationSpec((((0, "weight", 0),), ((0, "weight", 0),)))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_init_is_pytorchs_default_and_ravel_is_its_parameter_order(model):
    params = model.init(jax.random.key(0))
    model.check(params)
    names = [name for name, _ in model.sites]
    assert names == [f"layer{i}.{kind}" for i in range(len(params)) for kind in ("weight", "bias")]
    # parameters_to_vector: every parameter in parameters() order (layer by layer, weight then bias), row-major
    expected = np.concatenate([np.asarray(model.to_sites(params)[name]).ravel() for name in names])
    vector = flat(model, params)
    np.testing.assert_array_equal(vector, expected)
    assert vector.shape == (model.num_params,)
    np.testing.assert_array_equal(flat(model, model.unravel(vector)), vector)
    np.testing.assert_array_equal(flat(model, model.from_sites(model.to_sites(params))), vector)
    # U(+-1/sqrt(fan_in)), fan_in = in * 3 * 3 for a convolution: |value| / bound is U(0, 1) over all parameters
    sites = model.to_sites(params)
    ratios = []
    for name, shape in model.sites:
        fan_in = np.prod(sites[name.replace("bias", "weight")].shape[1:])
        assert sites[name].shape == shape
        ratios.append(np.abs(np.asarray(sites[name])).ravel() * np.sqrt(fan_in))
    ratios = np.concatenate(ratios)
    assert ratios.max() <= 1.0 and abs(ratios.mean() - 0.5) < 5 * 0.29 / np.sqrt(ratios.size)
    stacked = model.init_many(jax.random.key(1), 3)
    model.check(stacked, batch_ndim=1)
    assert model.ravel(stacked).shape == (3, model.num_params)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (optional check)")
def test_forward_and_parameter_order_equal_pytorchs():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)

        def forward(self, h):
            return torch.relu(h + self.conv2(torch.relu(self.conv1(h))))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 5, 3, padding=1)  # registered in this order: parameters() follows it
            self.blocks = nn.Sequential(Block(5), Block(5))
            self.fc = nn.Linear(5, 10)

        def forward(self, x):
            return self.fc(self.blocks(torch.relu(self.stem(x))).mean(dim=(2, 3)))

    torch.manual_seed(0)
    nets = {CNN_ODD: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                   nn.Linear(3 * 4 * 3, 3)),
            CNN_SMALL: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                                     nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4, 5), nn.ReLU(), nn.Linear(5, 10)),
            RESNET_SMALL: Residual()}
    for model, net in nets.items():
        vector = nn.utils.parameters_to_vector(net.parameters()).detach().numpy()
        assert [tuple(p.shape) for p in net.parameters()] == [shape for _, shape in model.sites]
        params = model.unravel(jnp.asarray(vector))
        x = inputs(model, 5)
        expected = net(torch.tensor(x).reshape((5,) + model.image_shape)).detach().numpy()
        np.testing.assert_allclose(np.asarray(model.apply(params, x)), expected, atol=1e-5)


# --- permutations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_the_function_is_unchanged_by_any_permutation_of_its_spec(model):
    params = model.init(jax.random.key(0))
    x = inputs(model)
    logits = np.asarray(model.apply(params, x))
    acts = model.hidden_activations(params, x)
    for seed in range(3):
        perms = random_perms(model, jax.random.key(10 + seed))
        permuted = permutation.permute(model, params, perms)
        assert not np.array_equal(flat(model, permuted), flat(model, params))
        np.testing.assert_allclose(np.asarray(model.apply(permuted, x)), logits, rtol=1e-5, atol=1e-5)
        # each permutation moves exactly the channels of its activations
        for perm, before, after in zip(perms, acts, model.hidden_activations(permuted, x)):
            np.testing.assert_allclose(np.asarray(after), np.asarray(before)[..., perm], rtol=1e-5, atol=1e-5)
    # one group at a time, and inverted back exactly
    for p in range(model.spec.num_perms):
        perms = [np.arange(n, dtype=np.int32) for n in model.perm_sizes]
        perms[p] = random_perms(model, jax.random.key(p))[p]
        permuted = permutation.permute(model, params, perms)
        np.testing.assert_allclose(np.asarray(model.apply(permuted, x)), logits, rtol=1e-5, atol=1e-5)
        back = permutation.permute(model, permuted, [np.asarray(permutation.inverse(q)) for q in perms])
        np.testing.assert_array_equal(flat(model, back), flat(model, params))


def test_a_permutation_of_the_last_channels_moves_whole_blocks_of_the_flattened_columns():
    model = CNN_SMALL  # 6 channels of 2x2 reach the dense layer: 24 columns
    params = model.init(jax.random.key(0))
    perm = np.array([2, 0, 1, 5, 3, 4], np.int32)
    perms = [np.arange(4, dtype=np.int32), perm, np.arange(5, dtype=np.int32)]
    moved = permutation.permute(model, params, perms)[2]["weight"]
    expected = np.asarray(params[2]["weight"]).reshape(5, 6, 4)[:, perm].reshape(5, 24)
    np.testing.assert_array_equal(np.asarray(moved), expected)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_not_is_exact_per_group_with_controlled_permutations(model):
    params = model.init(jax.random.key(0))
    x = inputs(model)
    key = jax.random.key(5)
    for k_fraction in (0.0, 0.5, 1.0):
        levels = [round(k_fraction * (n - 1)) for n in model.perm_sizes]
        perms = [np.asarray(permutation.permutation_with_transpositions(jax.random.fold_in(key, p), n, k))
                 for p, (n, k) in enumerate(zip(model.perm_sizes, levels))]
        assert [permutation.count_transpositions(p) for p in perms] == levels
        assert permutation.total_transpositions(perms) == sum(levels)
        permuted = permutation.permute(model, params, perms)
        np.testing.assert_allclose(np.asarray(model.apply(permuted, x)), np.asarray(model.apply(params, x)),
                                   rtol=1e-5, atol=1e-5)
        # the NoT between the two networks, measured by rebasin, is the planted one
        found = rebasin.weight_matching(model, permuted, params)
        assert [permutation.count_transpositions(p) for p in found] == levels


# --- rebasin --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize("method", ["weight", "activation"])
def test_planted_permutations_are_recovered_exactly(model, method):
    params = positive_biases(model, model.init(jax.random.key(ACTIVE_SEED)))
    x = inputs(model, 256)
    assert all_active(model, params, x)
    for seed in range(2):
        perms = random_perms(model, jax.random.key(20 + seed))
        planted = permutation.permute(model, params, perms)
        if method == "weight":
            found = rebasin.weight_matching(model, params, planted, key=jax.random.key(seed))
        else:
            found = rebasin.activation_matching(model, params, planted, x, batch_size=100)  # three batches, one padded
        for f, p in zip(found, perms):
            np.testing.assert_array_equal(f, np.asarray(permutation.inverse(p)))
        np.testing.assert_array_equal(flat(model, permutation.permute(model, planted, found)), flat(model, params))


def test_cosine_first_layer_is_refused_for_convolutions():
    params = CNN_SMALL.init(jax.random.key(0))
    with pytest.raises(ValueError, match="cosine_first_layer needs"):
        rebasin.weight_matching(CNN_SMALL, params, params, similarity="cosine_first_layer")


def all_active(model, params, x) -> bool:
    """Every channel and unit is positive somewhere on x: activation matching sees each of them."""
    return all(bool(np.all(np.asarray(a).reshape(-1, a.shape[-1]).max(axis=0) > 0))
               for a in model.hidden_activations(params, x))


def positive_biases(model, params):
    """The network with every bias made positive (|b| + 0.1): no ReLU unit is dead on every input."""
    sites = {name: jnp.abs(v) + 0.1 if name.endswith(".bias") else v for name, v in model.to_sites(params).items()}
    return model.from_sites(sites)


def planted_ensemble(model, num=6, noise=0.02, seed=ACTIVE_SEED):
    """Noisy copies of one network (3x its init scale, positive biases), unpermuted, and the same copies each
    permuted at random (the first not)."""
    key = jax.random.key(seed)
    base = model.ravel(positive_biases(model, jax.tree_util.tree_map(lambda leaf: 3.0 * leaf, model.init(key))))
    ensemble = model.unravel(base[None] + noise * jax.random.normal(jax.random.fold_in(key, 1), (num, model.num_params)))
    perms = [np.stack([np.arange(n)] + [np.asarray(jax.random.permutation(jax.random.fold_in(key, 100 * p + s), n))
                                        for s in range(1, num)]).astype(np.int32) for p, n in enumerate(model.perm_sizes)]
    return ensemble, perms, permutation.permute_many(model, ensemble, perms)


@pytest.mark.parametrize("model", [CNN_SMALL, RESNET_SMALL], ids=["cnn", "resnet"])
@pytest.mark.parametrize("method", ["weight", "activation"])
def test_q_r_of_a_planted_permuted_ensemble_equals_the_unpermuted_ensembles_moments(model, method, tmp_path):
    ensemble, perms, permuted = planted_ensemble(model)
    x = inputs(model, 200)
    assert all(all_active(model, jax.tree_util.tree_map(lambda leaf: leaf[s], ensemble), x) for s in range(6))
    result = compact.q_rebasin(model, permuted, method=method, x=x if method == "activation" else None)
    for found, planted in zip(result.perms, perms):
        np.testing.assert_array_equal(found, np.asarray(permutation.inverse(planted)))
    unpermuted = compact.q_direct(model, ensemble)
    np.testing.assert_array_equal(flat(model, result.q.mean), flat(model, unpermuted.mean))
    np.testing.assert_array_equal(flat(model, result.q.sd), flat(model, unpermuted.sd))
    # q_d of the permuted stack is not the ensemble's: the permutations spread it
    assert flat(model, compact.q_direct(model, permuted).sd).mean() > 5 * flat(model, unpermuted.sd).mean()
    compact.save_compact(tmp_path / "q_r.npz", model, result)
    loaded = compact.load_compact(tmp_path / "q_r.npz", model)
    np.testing.assert_array_equal(flat(model, loaded.q.sd), flat(model, result.q.sd))
    np.testing.assert_array_equal(loaded.not_to_reference, result.not_to_reference)


# --- interpolation, metrics, pruning -----------------------------------------------------------------


def test_interpolation_barrier_vanishes_after_rebasin_of_a_permuted_copy(digits):
    model = CNN_SMALL
    params = jax.tree_util.tree_map(lambda leaf: 3.0 * leaf, model.init(jax.random.key(0)))
    permuted = permutation.permute(model, params, random_perms(model, jax.random.key(3)))
    splits = {"test": (digits["x_test"], digits["y_test"])}
    lambdas = np.linspace(0, 1, 5)
    before = interpolation.evaluate_path(model, params, permuted, lambdas, splits)
    aligned, _ = rebasin.rebasin(model, params, permuted)
    after = interpolation.evaluate_path(model, params, aligned, lambdas, splits)
    # unaligned, the path leaves the network's function (an untrained one's loss may fall or rise along it)
    assert np.abs(before["test_loss"][1:-1] - before["test_loss"][0]).max() > 0.1
    np.testing.assert_allclose(before["test_loss"][[0, -1]], after["test_loss"][0], rtol=1e-5)
    # aligned, it is the network itself all the way: the loss is constant and the barrier zero
    np.testing.assert_allclose(after["test_loss"], after["test_loss"][0], rtol=1e-6)
    assert abs(interpolation.loss_barrier(after["test_loss"], lambdas)) < 1e-5
    assert interpolation.squared_distance(model, params, aligned) == 0


def test_gaussian_predictive_and_pruning_run_on_a_cnn(digits):
    model = CNN_SMALL
    mean = model.init(jax.random.key(0))
    sd = model.unravel(jnp.linspace(1e-4, 1e-1, model.num_params))
    x, y = digits["x_test"][:100], digits["y_test"][:100]
    p = metrics.gaussian_predictive(model, jax.random.key(1), (mean, sd), x, num_samples=4)
    assert p.shape == (100, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    near_mean = metrics.gaussian_predictive(model, jax.random.key(1), (mean, jax.tree_util.tree_map(lambda s: 0 * s, sd)),
                                            x, num_samples=2)
    np.testing.assert_allclose(near_mean, np.asarray(jax.nn.softmax(model.apply(mean, x))), atol=1e-5)
    curve = pruning.pruning_curve(model, mean, sd, x, y, [100, 50, 1])
    expected_full = float(np.mean(np.argmax(np.asarray(model.apply(mean, x)), axis=1) == y))
    assert curve.shape == (3,) and abs(curve[0] - expected_full) < 1e-6
    assert int(pruning.retained_mask(model, sd, 0.5).sum()) == pruning.num_retained(model.num_params, 0.5)


# --- inference -----------------------------------------------------------------------------------


def test_low_precision_products_reach_every_convolution(digits):
    model = RESNET_SMALL
    params = model.init(jax.random.key(0))
    x = digits["x_test"][:20]
    exact = np.asarray(model.apply(params, x))
    bf16 = mixed_precision.matmul("bfloat16", backend="cpu")
    low = np.asarray(model.apply(params, x, bf16))
    assert 0 < np.abs(low - exact).max() < 0.05
    np.testing.assert_allclose(np.asarray(model.apply(params, x, jnp.matmul)), exact, atol=1e-5)


@pytest.mark.parametrize("model", [CNN_SMALL, RESNET_SMALL], ids=["cnn", "resnet"])
def test_a_short_hmc_chain_and_an_epoch_of_vi_run_on_convolutional_models(model, digits, tmp_path):
    x, y = digits["x_train"][:200], digits["y_train"][:200]
    config = hmc.HMCConfig(step_size=1e-3, num_steps=5, num_iterations=6, keep_first=2, keep_last=5, num_kept=4,
                           chunk_size=3, gradient_precision="bfloat16")
    result = hmc.run_chain(model, x, y, config, jax.random.key(0), tmp_path / "chain", x_test=digits["x_test"][:100],
                           y_test=digits["y_test"][:100], progress=False)
    assert result.samples.shape == (4, model.num_params) and np.all(np.isfinite(result.samples))
    assert result.complete and result.accept_rate > 0.5
    fit = vi.fit(model, jax.random.key(1), x, y, vi.VIConfig(epochs=1, batch_size=50), progress=False)
    model.check(fit.mean)
    model.check(fit.sd)
    assert np.all(np.isfinite(flat(model, fit.mean))) and np.all(flat(model, fit.sd) > 0)
