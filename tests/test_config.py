"""config.yaml, the paper preset, against the numbers of PAPER.md ("(code)": the authors' scripts).

Settings are read the way the workflow reads them: training sections become ``train.TrainConfig``,
the HMC kept samples come from ``hmc.kept_indices``, the NoT levels from ``experiments.not_levels``.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import REPO

from compactbnn.paper import experiments
from compactbnn.inference import hmc
from compactbnn.models import mlp
from compactbnn import train

MNIST_INPUTS, MNIST_CLASSES = 784, 10


@pytest.fixture(scope="module")
def config():
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


def test_model_and_data(config):
    assert config["data"]["dataset"] == "mnist"
    # all 60,000 training and 10,000 test images
    assert config["data"]["train_size"] is None and config["data"]["test_size"] is None
    assert config["model"]["hidden"] == [512]
    assert mlp.num_params([MNIST_INPUTS, *config["model"]["hidden"], MNIST_CLASSES]) == 407_050


def test_experiment_a(config):
    section = config["not_experiment"]
    assert section["runs"] == 5
    levels = experiments.not_levels(min(config["model"]["hidden"]), section["levels"])
    assert section["levels"] == 50
    np.testing.assert_array_equal(levels, np.linspace(1, 511, 50).astype(int))  # (code)
    assert len(levels) == 50 and levels[0] == 1 and levels[-1] == 511
    assert section["matching"] == "activation"  # (code)


@pytest.mark.parametrize("section", ["not_experiment", "interpolation"])
def test_sgd_training_of_experiments_a_and_b(config, section):
    """(code) SGD, momentum 0.9, lr 1e-3, batch 64, 50 epochs, plain cross-entropy."""
    training = train.TrainConfig(**config[section]["training"])
    assert training.optimizer == "sgd"
    assert training.learning_rate == pytest.approx(1e-3)
    assert training.momentum == pytest.approx(0.9)
    assert training.batch_size == 64
    assert training.epochs == 50
    assert training.prior_sd is None


def test_experiment_b(config):
    section = config["interpolation"]
    assert section["seed"] == 12  # (code)
    assert section["lambdas"] == 11
    grid = experiments.lambda_grid(section["lambdas"])
    np.testing.assert_allclose(grid, np.arange(11) / 10, atol=1e-15)


def test_hmc(config):
    section = config["posterior"]["hmc"]
    assert config["posterior"]["prior_sd"] == 1.0  # N(0, 1) on every weight and bias
    assert section["step_size"] == pytest.approx(1e-3)
    assert section["num_steps"] == 500
    assert section["iterations"] == 10_000
    assert section["seed"] == 123  # (code)
    assert section["init"] == "pytorch"
    kept = hmc.kept_indices(section["keep_first"], section["keep_last"], section["num_kept"])
    # (code) hamiltorch's list indices linspace(500, 9899, 1000, dtype=int) with burn = 100 are the
    # states after transitions 601..10,000: our iterations 600..9999 (tests/test_hmc.py works it out)
    np.testing.assert_array_equal(kept, 100 + np.linspace(500, 9899, 1000, dtype=int))
    assert kept[0] == 600 and kept[-1] == 9999
    assert kept[-1] < section["iterations"]


def test_ensemble(config):
    section = config["posterior"]["ensemble"]
    assert section["members"] == 5
    training = train.TrainConfig(**section["training"])
    assert training.optimizer == "adam"
    assert training.learning_rate == pytest.approx(1e-3)
    assert training.batch_size == 100
    assert training.epochs == 50
    # MAP with the N(0, 1) prior: in the training section, or (the workflow's way) posterior.prior_sd
    prior_sd = section["training"].get("prior_sd")
    if prior_sd is None:
        prior_sd = config["posterior"]["prior_sd"]
    assert prior_sd == 1.0


def test_vi(config):
    section = config["posterior"]["vi"]
    assert section["init_sd"] == pytest.approx(0.05)
    assert section["learning_rate"] == pytest.approx(1e-3)
    assert section["batch_size"] == 100
    assert section["epochs"] == 50


def test_compact_representation(config):
    section = config["posterior"]["compact"]
    assert section["q_samples"] == 100
    assert section["reference"] == "first"  # (code) the first kept HMC sample
    assert section["retained_percents"] == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1]


def test_barrier_definition(config):
    assert config["figures"]["barrier"] == "max"  # the paper's definition (the code's is midpoint)
