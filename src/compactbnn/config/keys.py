"""Which config key each field of a config dataclass comes from, and a config section as the dataclass's arguments.

Config files name some fields otherwise than the library (posterior.hmc.iterations is
``HMCConfig.num_iterations``) and take some from other sections (posterior.prior_sd); these maps
are the only place that says so. The workflow's scripts build the dataclasses with the
``*_kwargs`` functions, and the config check names a refused field by its key from the same maps.
Keys of a section absent here (seed, chains, ...) are the workflow's own, not a dataclass's.
"""

from __future__ import annotations

from typing import Mapping

from compactbnn.config.fields import Spelling

# HMCConfig's field -> its config key (HMCConfig.target_accept_prob is not configurable)
HMC_KEYS = {
    "step_size": "posterior.hmc.step_size",
    "num_steps": "posterior.hmc.num_steps",
    "num_iterations": "posterior.hmc.iterations",
    "keep_first": "posterior.hmc.keep_first",
    "keep_last": "posterior.hmc.keep_last",
    "num_kept": "posterior.hmc.num_kept",
    "chunk_size": "posterior.hmc.chunk_size",
    "prior_sd": "posterior.prior_sd",
    "adapt_step_size": "posterior.hmc.adapt_step_size",
    "num_warmup": "posterior.hmc.warmup",
    "init": "posterior.hmc.init",
    "matmul_precision": "matmul_precision",
    "gradient_precision": "posterior.hmc.gradient_precision",
}

# VIConfig's field -> its config key (num_samples and kl_weight keep the paper's defaults)
VI_KEYS = {
    "learning_rate": "posterior.vi.learning_rate",
    "batch_size": "posterior.vi.batch_size",
    "epochs": "posterior.vi.epochs",
    "prior_sd": "posterior.prior_sd",
    "init_sd": "posterior.vi.init_sd",
}

# SGMCMCConfig's field -> its config key (every field is configurable)
SGMCMC_KEYS = {
    "sampler": "posterior.sgmcmc.sampler",
    "step_size": "posterior.sgmcmc.step_size",
    "alpha": "posterior.sgmcmc.alpha",
    "batch_size": "posterior.sgmcmc.batch_size",
    "epochs": "posterior.sgmcmc.epochs",
    "cycles": "posterior.sgmcmc.cycles",
    "exploration_fraction": "posterior.sgmcmc.exploration_fraction",
    "samples_per_cycle": "posterior.sgmcmc.samples_per_cycle",
    "thinning": "posterior.sgmcmc.thinning",
    "temperature": "posterior.sgmcmc.temperature",
    "prior_sd": "posterior.prior_sd",
    "init": "posterior.sgmcmc.init",
    "matmul_precision": "matmul_precision",
}

# The sections that configure a TrainConfig; their keys are its field names. The ensemble's
# prior_sd is posterior.prior_sd (its script passes it over the section's).
TRAINING_SECTIONS = ("not_experiment.training", "interpolation.training", "posterior.ensemble.training")

# A cross-field message of HMC names the other fields by their config keys, booleans as YAML writes them.
HMC_SPELLING = Spelling(names=HMC_KEYS, true="true", false="false")
SGMCMC_SPELLING = Spelling(names=SGMCMC_KEYS, true="true", false="false")


def lookup(cfg: Mapping, key: str):
    """The value of a dotted key (posterior.hmc.iterations) in a nested config."""
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def hmc_kwargs(hmc: Mapping, prior_sd: float, matmul_precision: str) -> dict:
    """HMCConfig's arguments from a config's posterior.hmc section, posterior.prior_sd and matmul_precision."""
    outside = {"posterior.prior_sd": prior_sd, "matmul_precision": matmul_precision}
    return {name: outside[key] if key in outside else hmc[key.rsplit(".", 1)[1]] for name, key in HMC_KEYS.items()}


def vi_kwargs(vi: Mapping, prior_sd: float) -> dict:
    """VIConfig's arguments from a config's posterior.vi section and posterior.prior_sd."""
    return {name: prior_sd if key == "posterior.prior_sd" else vi[key.rsplit(".", 1)[1]] for name, key in VI_KEYS.items()}


def sgmcmc_kwargs(sgmcmc: Mapping, prior_sd: float, matmul_precision: str) -> dict:
    """SGMCMCConfig's arguments from a config's posterior.sgmcmc section, posterior.prior_sd and matmul_precision."""
    outside = {"posterior.prior_sd": prior_sd, "matmul_precision": matmul_precision}
    return {name: outside[key] if key in outside else sgmcmc[key.rsplit(".", 1)[1]] for name, key in SGMCMC_KEYS.items()}


def train_kwargs(training: Mapping, **overrides) -> dict:
    """TrainConfig's arguments from a training section (its keys are the field names), ``overrides`` over them."""
    return {**training, **overrides}
