import dataclasses

import jax
import numpy as np
import pytest

from compactbnn import train
from compactbnn.evaluation import metrics
from compactbnn.inference import ensemble
from compactbnn.models import MLP


def test_paper_config_is_the_papers_adam_map():
    c = ensemble.PAPER_CONFIG
    assert (c.optimizer, c.learning_rate, c.batch_size, c.epochs, c.prior_sd) == ("adam", 1e-3, 100, 50, 1.0)


def test_members_differ_and_learn_digits(digits):
    model = MLP((64, 32, 10))
    config = dataclasses.replace(ensemble.PAPER_CONFIG, learning_rate=3e-3, epochs=20)
    result = ensemble.train_ensemble(model, jax.random.key(0), digits["x_train"], digits["y_train"], 3, config,
                                     evaluate_on={"test": (digits["x_test"], digits["y_test"])}, progress=False)
    model.check(result.params, batch_ndim=1)
    assert model.num_stacked(result.params) == 3
    flat = np.asarray(model.ravel(result.params))
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm(flat[i] - flat[j]) > 1.0  # independent inits: far apart in weight space
    accuracy = result.history["test_accuracy"][-1]
    assert np.all(accuracy >= 0.93), accuracy
    np.testing.assert_allclose(accuracy, train.evaluate_many(model, result.params, digits["x_test"], digits["y_test"])["accuracy"])
    # The ensemble's predictive is at least as accurate as its worst member.
    p = metrics.predictive(model, result.params, digits["x_test"])
    assert metrics.accuracy(p, digits["y_test"]) >= accuracy.min()


def test_members_have_independent_inits_and_data_orders(digits):
    # train_ensemble is train_many over model.init_many(init key) with one data key per member.
    model = MLP((64, 8, 10))
    config = dataclasses.replace(ensemble.PAPER_CONFIG, epochs=1)
    key = jax.random.key(3)
    result = ensemble.train_ensemble(model, key, digits["x_train"], digits["y_train"], 2, config, progress=False)
    init_key, data_key = jax.random.split(key)
    inits = model.init_many(init_key, 2)
    assert not np.allclose(np.asarray(model.ravel(inits))[0], np.asarray(model.ravel(inits))[1])
    data_keys = jax.random.split(data_key, 2)
    # Member 1 trained alone, from its own init and data key, is member 1 of the ensemble
    # (train_many gives every model its own data order; tests/test_train.py checks that).
    one = jax.tree_util.tree_map(lambda leaf: leaf[1], inits)
    alone = train.train(model, one, digits["x_train"], digits["y_train"], data_keys[1], config, progress=False)
    np.testing.assert_allclose(np.asarray(model.ravel(alone.params)), np.asarray(model.ravel(result.params))[1], atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_member_count_is_rejected(digits, bad):
    with pytest.raises(ValueError, match="num_members"):
        ensemble.train_ensemble(MLP((64, 8, 10)), jax.random.key(0), digits["x_train"], digits["y_train"], bad,
                                ensemble.PAPER_CONFIG)
