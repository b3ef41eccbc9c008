"""config.yaml, the paper preset, against the numbers of PAPER.md ("(code)": the authors' scripts).

Settings are read the way the workflow reads them: through the key maps of ``compactbnn.config.keys``
training sections become ``train.TrainConfig`` and posterior.hmc ``hmc.HMCConfig`` (whose kept
samples are ``hmc.kept_indices``); the layer sizes and NoT levels come from ``compactbnn.config.shapes``.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import REPO

from compactbnn import train
from compactbnn.config import keys, shapes
from compactbnn.inference import hmc
from compactbnn.models.mlp import MLP
from compactbnn.paper import experiments


@pytest.fixture(scope="module")
def config():
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


def test_model_and_data(config):
    assert config["data"]["dataset"] == "mnist"
    # all 60,000 training and 10,000 test images
    assert config["data"]["train_size"] is None and config["data"]["test_size"] is None
    assert config["model"]["hidden"] == [512]
    assert shapes.widths(config) == [784, 512, 10]
    assert shapes.num_params(shapes.widths(config)) == MLP((784, 512, 10)).num_params == 407_050


def test_experiment_a(config):
    section = config["not_experiment"]
    assert section["runs"] == 5
    levels = shapes.not_levels(min(config["model"]["hidden"]), section["levels"])
    assert section["levels"] == 50
    np.testing.assert_array_equal(levels, np.linspace(1, 511, 50).astype(int))  # (code)
    assert len(levels) == 50 and levels[0] == 1 and levels[-1] == 511
    assert section["matching"] == "activation"  # (code)


@pytest.mark.parametrize("section", ["not_experiment", "interpolation"])
def test_sgd_training_of_experiments_a_and_b(config, section):
    """(code) SGD, momentum 0.9, lr 1e-3, batch 64, 50 epochs, plain cross-entropy."""
    training = train.TrainConfig(**keys.train_kwargs(config[section]["training"]))
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
    assert section["match_size"] is None  # (code) MNIST_net_matching.py matches on all 60,000 training images
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
    settings = hmc.HMCConfig(**keys.hmc_kwargs(section, config["posterior"]["prior_sd"], config["matmul_precision"]))
    assert (settings.num_iterations, settings.num_warmup, settings.adapt_step_size) == (10_000, 0, False)
    kept = settings.kept_indices
    # (code) hamiltorch's list indices linspace(500, 9899, 1000, dtype=int) with burn = 100 are the
    # states after transitions 601..10,000: our iterations 600..9999 (tests/test_hmc.py works it out)
    np.testing.assert_array_equal(kept, 100 + np.linspace(500, 9899, 1000, dtype=int))
    assert kept[0] == 600 and kept[-1] == 9999
    assert kept[-1] < section["iterations"]


def test_ensemble(config):
    section = config["posterior"]["ensemble"]
    assert section["members"] == 5
    training = train.TrainConfig(**keys.train_kwargs(section["training"]))
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
    assert section["q_samples"] == 200  # (code) MNIST_eval_pruning.py, the only script with every q column of Table 1
    assert section["low_rank_q_samples"] == 100  # (code) MNIST_eval.py's low-rank Gaussian
    assert section["reference"] == "first"  # (code) the first kept HMC sample
    assert section["sigma_reference"] == "unaligned_mean"  # (code) MNIST_eval_pairplot.py's rb2mean, Figure 3 left
    assert section["retained_percents"] == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1]


def test_barrier_definition(config):
    assert config["figures"]["barrier"] == "max"  # the paper's definition (the code's is midpoint)


@pytest.mark.parametrize("width", [2, 3, 4, 16, 32, 100, 511, 512, 1000])
@pytest.mark.parametrize("num_levels", [1, 2, 3, 5, 7, 10, 49, 50, 100, 600])
def test_not_levels_without_numpy_equal_numpys_linspace(width, num_levels):
    """shapes.not_levels repeats numpy's arithmetic: the authors' linspace(1, width - 1, n).astype(int), each level once."""
    expected = np.unique(np.linspace(1, width - 1, num_levels).astype(np.int32)).tolist()
    assert list(shapes.not_levels(width, num_levels)) == expected


@pytest.mark.parametrize("width, num_levels", [(1, 5), (16, 0)])
def test_not_levels_refuses_what_has_no_level(width, num_levels):
    with pytest.raises(ValueError):
        shapes.not_levels(width, num_levels)
