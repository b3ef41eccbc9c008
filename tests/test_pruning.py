import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn import train
from compactbnn.evaluation import pruning
from compactbnn.models import MLP

MODEL = MLP((64, 8, 10))  # 610 parameters


def _mean_and_sd(seed=0):
    mean = MODEL.init(jax.random.key(seed))
    sd_flat = jax.random.uniform(jax.random.key(seed + 1), (MODEL.num_params,), minval=0.01, maxval=2.0)
    return mean, MODEL.unravel(sd_flat)


@pytest.mark.parametrize("fraction", [1.0, 0.9, 0.5, 0.3, 0.1, 0.05, 0.01, 0.0])
def test_prune_keeps_exactly_the_requested_fraction_with_the_smallest_sd(fraction):
    mean, sd = _mean_and_sd()
    total = MODEL.num_params
    assert total == 610
    pruned = np.asarray(MODEL.ravel(pruning.prune(MODEL, mean, sd, fraction)))
    kept = pruned != 0
    assert kept.sum() == pruning.num_retained(total, fraction) == round(fraction * total + 1e-9)
    flat_mean, flat_sd = np.asarray(MODEL.ravel(mean)), np.asarray(MODEL.ravel(sd))
    np.testing.assert_array_equal(pruned[kept], flat_mean[kept])  # kept entries keep their mean
    if 0 < kept.sum() < total:
        assert flat_sd[~kept].min() >= flat_sd[kept].max()  # the zeroed entries are the largest sd
    np.testing.assert_array_equal(kept, pruning.retained_mask(MODEL, sd, fraction))


def test_counts_round_half_up():
    assert pruning.num_retained(407050, 0.9) == 366345
    assert pruning.num_retained(407050, 0.01) == 4071  # 4070.5 rounds up
    assert pruning.num_retained(3, 0.5) == 2
    assert pruning.num_retained(5, 0.5) == 3
    with pytest.raises(ValueError, match="retained_fraction"):
        pruning.num_retained(10, 1.5)


def test_ties_are_broken_by_parameter_order():
    mean = jax.tree_util.tree_map(lambda leaf: jnp.ones_like(leaf), MODEL.init(jax.random.key(0)))
    sd = jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, 0.5), mean)
    pruned = np.asarray(MODEL.ravel(pruning.prune(MODEL, mean, sd, 0.25)))
    k = pruning.num_retained(610, 0.25)
    np.testing.assert_array_equal(pruned, np.r_[np.ones(k), np.zeros(610 - k)])


def test_pruned_stack_is_prune_at_every_fraction():
    mean, sd = _mean_and_sd(2)
    fractions = (1.0, 0.4, 0.01)
    stack = pruning.pruned_stack(MODEL, mean, sd, fractions)
    assert MODEL.num_stacked(stack) == 3
    for row, fraction in zip(np.asarray(MODEL.ravel(stack)), fractions):
        np.testing.assert_array_equal(row, np.asarray(MODEL.ravel(pruning.prune(MODEL, mean, sd, fraction))))


def test_any_mean_with_any_sd_and_the_curve(digits):
    config = train.TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=100, epochs=10)
    trained = train.train(MODEL, MODEL.init(jax.random.key(0)), digits["x_train"], digits["y_train"], jax.random.key(1),
                          config, progress=False).params
    _, sd = _mean_and_sd(5)  # an unrelated sd ("merging": one method's mean, another's sd)
    percents = (100, 50, 10, 1)
    curve = pruning.pruning_curve(MODEL, trained, sd, digits["x_test"], digits["y_test"], percents)
    assert curve.shape == (4,)
    assert curve[0] == pytest.approx(train.evaluate(MODEL, trained, digits["x_test"], digits["y_test"])["accuracy"])
    for percent, value in zip(percents, curve):
        alone = train.evaluate(MODEL, pruning.prune(MODEL, trained, sd, percent / 100), digits["x_test"],
                               digits["y_test"])["accuracy"]
        assert value == pytest.approx(alone)
    assert curve[0] > 0.9 and curve[-1] < 0.5  # 1 % of the weights (6 of 610) cannot classify digits


def test_mismatched_or_bad_inputs_are_rejected():
    mean, sd = _mean_and_sd()
    with pytest.raises(ValueError, match="layer sizes"):
        pruning.prune(MODEL, mean, MLP((64, 9, 10)).init(jax.random.key(0)), 0.5)
    with pytest.raises(ValueError, match="leading model axes"):  # a stack where one network belongs
        pruning.prune(MODEL, mean, MODEL.stack_one(sd), 0.5)
    negative = jax.tree_util.tree_map(lambda leaf: -leaf, sd)
    with pytest.raises(ValueError, match="negative"):
        pruning.prune(MODEL, mean, negative, 0.5)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        pruning.pruning_curve(MODEL, mean, sd, np.zeros((2, 64), np.float32), np.zeros(2, np.int32), (100, 0))
