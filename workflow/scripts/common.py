"""What every workflow script does: log to the rule's log file, load the configured data, build configs.

Scripts are thin adapters between Snakemake and the library: they read ``snakemake.input``,
``snakemake.params`` and ``snakemake.wildcards``, call compactbnn, and write the outputs.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from compactbnn import data, train

NUM_CLASSES = 10


def start(snakemake) -> logging.Logger:
    """Send stdout, stderr (progress bars included) and logging to the rule's log file."""
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    return logging.getLogger(snakemake.rule)


def load_data(data_cfg: dict) -> dict[str, np.ndarray]:
    """The configured data set, cut to data.train_size / data.test_size (the first N images)."""
    arrays = data.load(data_cfg["dataset"], data_cfg["root"], idx_dir=data_cfg.get("idx_dir"))
    return data.take_first(arrays, data_cfg.get("train_size"), data_cfg.get("test_size"))


def layer_sizes(arrays: dict, model_cfg: dict) -> list[int]:
    return [arrays["x_train"].shape[1], *model_cfg["hidden"], NUM_CLASSES]


def train_config(training_cfg: dict) -> train.TrainConfig:
    return train.TrainConfig(**training_cfg)


def first(x: np.ndarray, size: int | None) -> np.ndarray:
    """The first ``size`` rows (all when size is None): the images activation matching sees."""
    return x if size is None else x[:size]


def load_hmc_samples(paths) -> tuple[list, list[int]]:
    """HMC samples of every chain pooled along one leading axis (chain after chain), and each chain's count."""
    from compactbnn import io

    chains = [io.load_networks(path)[0] for path in paths]
    counts = [int(chain[0]["bias"].shape[0]) for chain in chains]
    pooled = [{name: np.concatenate([chain[layer][name] for chain in chains]) for name in ("weight", "bias")}
              for layer in range(len(chains[0]))]
    return pooled, counts


def match_inputs(arrays: dict, compact_cfg: dict):
    """Inputs for activation matching (None for the weight-based methods, which need none)."""
    return first(arrays["x_train"], compact_cfg.get("match_size")) if compact_cfg["matching"] == "activation" else None


# the compact representations, by the names the posterior_metrics rule gives its inputs
GAUSSIAN_INPUTS = {("hmc", "q_d"): "hmc_q_d", ("hmc", "q_r"): "hmc_q_r", ("ensemble", "q_d"): "ensemble_q_d",
                  ("ensemble", "q_r"): "ensemble_q_r", ("vi", "q"): "vi_q"}
