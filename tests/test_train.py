import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn import train
from compactbnn.models import MLP


def _tree_allclose(a, b, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_minibatches_cover_each_example_once_per_epoch():
    indices, mask = train.minibatch_indices(jax.random.key(0), 10, 4)
    assert indices.shape == (3, 4) and mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
    real = np.asarray(indices)[np.asarray(mask) == 1]
    assert sorted(real.tolist()) == list(range(10))


def test_vmapped_training_equals_training_each_alone(digits):
    model, m = MLP((64, 32, 10)), 8
    config = train.TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=64, epochs=2)
    inits = model.init_many(jax.random.key(0), m)
    keys = jax.random.split(jax.random.key(1), m)
    lrs = np.linspace(0.01, 0.08, m)
    together = train.train_many(model, inits, digits["x_train"], digits["y_train"], keys, config, learning_rates=lrs,
                                progress=False)
    for i in range(m):
        alone_config = train.TrainConfig(optimizer="sgd", learning_rate=float(lrs[i]), batch_size=64, epochs=2)
        one = jax.tree_util.tree_map(lambda leaf: leaf[i], inits)
        alone = train.train(model, one, digits["x_train"], digits["y_train"], keys[i], alone_config, progress=False)
        _tree_allclose(jax.tree_util.tree_map(lambda leaf: leaf[i], together.params), alone.params, atol=1e-5)


def test_small_mlp_learns_digits(digits):
    model = MLP((64, 32, 10))
    config = train.TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=64, epochs=30)
    result = train.train(model, model.init(jax.random.key(0)), digits["x_train"], digits["y_train"],
                         jax.random.key(1), config, progress=False)
    assert train.evaluate(model, result.params, digits["x_test"], digits["y_test"])["accuracy"] >= 0.90


@pytest.mark.mnist
def test_mnist_two_epochs_of_sgd(mnist):
    # SGD, lr 0.05, momentum 0.9, batch 64: >= 95 % test accuracy after two epochs.
    model = MLP((784, 128, 10))
    config = train.TrainConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, batch_size=64, epochs=2)
    result = train.train(model, model.init(jax.random.key(0)), mnist["x_train"], mnist["y_train"],
                         jax.random.key(1), config, progress=False)
    assert train.evaluate(model, result.params, mnist["x_test"], mnist["y_test"])["accuracy"] >= 0.95


def test_same_seeds_same_numbers_and_snapshots(digits):
    model = MLP((64, 16, 10))
    config = train.TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=100, epochs=2, prior_sd=1.0)
    inits = model.init_many(jax.random.key(0), 3)
    keys = jax.random.split(jax.random.key(5), 3)
    run = lambda: train.train_many(model, inits, digits["x_train"], digits["y_train"], keys, config, snapshots=True,  # noqa: E731
                                   evaluate_on={"test": (digits["x_test"], digits["y_test"])}, progress=False)
    a, b = run(), run()
    _tree_allclose(a.params, b.params, atol=0)
    snapshots = model.to_sites(a.snapshots)  # every site (epochs + 1, models, ...)
    first, last = model.sites[0][0], model.sites[-1][0]
    assert snapshots[first].shape == (3, 3, 16, 64)  # epochs 0..2, 3 models
    np.testing.assert_array_equal(snapshots[first][0], model.to_sites(inits)[first])
    np.testing.assert_array_equal(snapshots[last][-1], model.to_sites(a.params)[last])
    assert a.history["test_accuracy"].shape == (3, 3) and a.history["train_loss_running"].shape == (2, 3)
    assert np.all(a.history["test_accuracy"][-1] > a.history["test_accuracy"][0])


def test_map_objective_adds_scaled_prior():
    model = MLP((4, 3, 2))
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    y = jnp.array([0, 1, 1, 0, 1])
    mask = jnp.ones(5)
    nll = float(train.map_objective(model, params, x, y, mask, None, 100))
    map_loss = float(train.map_objective(model, params, x, y, mask, 2.0, 100))
    squared = sum(float(jnp.sum(leaf**2)) for leaf in jax.tree_util.tree_leaves(params))
    assert map_loss == pytest.approx(nll + squared / (2 * 4.0 * 100), rel=1e-6)
    logits = model.apply(params, x)
    by_hand = -np.mean(np.asarray(jax.nn.log_softmax(logits))[np.arange(5), np.asarray(y)])
    assert nll == pytest.approx(by_hand, rel=1e-6)


def test_masked_entries_do_not_count():
    model = MLP((4, 3, 2))
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 4))
    y = jnp.array([0, 1, 1, 0])
    full = train.map_objective(model, params, x[:2], y[:2], jnp.ones(2), None, 10)
    masked = train.map_objective(model, params, x, y, jnp.array([1.0, 1.0, 0.0, 0.0]), None, 10)
    assert float(full) == pytest.approx(float(masked), rel=1e-6)


def test_evaluate_matches_direct_computation(digits):
    model = MLP((64, 8, 10))
    stacked = model.init_many(jax.random.key(0), 2)
    metrics = train.evaluate_many(model, stacked, digits["x_test"], digits["y_test"], batch_size=100)
    for i in range(2):
        one = jax.tree_util.tree_map(lambda leaf: leaf[i], stacked)
        logits = model.apply(one, digits["x_test"])
        loss = float(jnp.mean(train.cross_entropy(logits, digits["y_test"])))
        acc = float(jnp.mean(jnp.argmax(logits, -1) == digits["y_test"]))
        assert float(metrics["loss"][i]) == pytest.approx(loss, rel=1e-5)
        assert float(metrics["accuracy"][i]) == pytest.approx(acc)


def test_bad_inputs_are_named(digits):
    model = MLP((64, 8, 10))
    stacked = model.init_many(jax.random.key(0), 2)
    config = train.TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="data_keys has 3 keys for 2 models"):
        train.train_many(model, stacked, digits["x_train"], digits["y_train"], jax.random.split(jax.random.key(0), 3), config)
    with pytest.raises(ValueError, match="inputs have 63 features"):
        train.train_many(model, stacked, digits["x_train"][:, :63], digits["y_train"], jax.random.split(jax.random.key(0), 2),
                         config)
    with pytest.raises(ValueError, match="layer sizes"):  # params of another network than the model
        train.train_many(MLP((64, 9, 10)), stacked, digits["x_train"], digits["y_train"],
                         jax.random.split(jax.random.key(0), 2), config)
    with pytest.raises(ValueError, match="optimizer"):
        train.TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="learning_rate"):
        train.TrainConfig(learning_rate=0)


def test_nan_in_data_is_reported(digits):
    model = MLP((64, 32, 10))
    x = digits["x_train"].copy()
    x[7, 3] = np.nan
    config = train.TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=64, epochs=1)
    with pytest.raises(FloatingPointError, match="epoch 1: non-finite loss for models \\[0\\]"):
        train.train(model, model.init(jax.random.key(0)), x, digits["y_train"], jax.random.key(1), config, progress=False)
