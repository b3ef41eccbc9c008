"""Posteriors over a network's weights: the one NumPyro model (``bnn``), HMC (``hmc``: settings,
kernels, the chunked sampler, checkpoints), mean-field VI (``vi``), deep ensembles (``ensemble``),
cyclical SG-MCMC through BlackJAX (``sgmcmc``: settings, schedule, the resumable sampler,
checkpoints) and the diagnostics (``diagnostics``: R-hat, ESS, ArviZ traces)."""

from compactbnn.inference import bnn, diagnostics, ensemble, hmc, sgmcmc, vi

__all__ = ["bnn", "hmc", "vi", "ensemble", "sgmcmc", "diagnostics"]
