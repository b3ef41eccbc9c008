"""Posteriors over a network's weights: the one NumPyro model (``bnn``), HMC (``hmc``: settings,
kernels, the chunked sampler, checkpoints), mean-field VI (``vi``), deep ensembles (``ensemble``),
cyclical SG-MCMC through BlackJAX (``sgmcmc``: settings, schedule, the resumable sampler,
checkpoints) and the diagnostics (``diagnostics``: R-hat, ESS, ArviZ traces)."""

import importlib

from compactbnn.inference import bnn, diagnostics, ensemble, hmc, vi

__all__ = ["bnn", "hmc", "vi", "ensemble", "sgmcmc", "diagnostics"]


def __getattr__(name: str):
    """``sgmcmc``, loaded on first use: importing BlackJAX runs a JAX computation (blackjax/adaptation/step_size.py),
    which starts JAX's backends, and a workflow job must limit its threads before that (``compactbnn.threads.limit``),
    however early it imports ``compactbnn.inference``."""
    if name == "sgmcmc":
        return importlib.import_module("compactbnn.inference.sgmcmc")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
