"""Posteriors over a network's weights: the one NumPyro model (``bnn``), HMC (``hmc``: settings,
kernels, the chunked sampler, checkpoints), mean-field VI (``vi``), deep ensembles (``ensemble``)
and the diagnostics (``diagnostics``: R-hat, ESS, ArviZ traces)."""

from compactbnn.inference import bnn, diagnostics, ensemble, hmc, vi

__all__ = ["bnn", "hmc", "vi", "ensemble", "diagnostics"]
