"""HMC of a Bayesian network: settings and kernel (``settings``), the exact mixed-precision kernel
(``mixed_precision``), the compiled programs (``programs``), the chunked, resumable sampler
(``sampler``), its checkpoint record (``checkpoint``) and results (``results``).

The names a caller needs are importable from here; the NumPyro model and its potential are
``compactbnn.inference.bnn``'s (re-exported for convenience).
"""

from compactbnn.inference.bnn import bnn_model, log_likelihood, log_likelihood_of_logits, log_prior, potential_energy
from compactbnn.inference.hmc import checkpoint, mixed_precision, programs, results, sampler, settings
from compactbnn.inference.hmc.checkpoint import (
    CHECKPOINT_FORMAT, PREVIOUS_STATE_FILE, SAMPLES_FILE, STATE_FILE, TRACE_NAMES, ChainCheckpoint,
)
from compactbnn.inference.hmc.results import ChainResult
from compactbnn.inference.hmc.sampler import load_chain, run_chain, run_chains
from compactbnn.config.fields import INITS, MATMUL_PRECISIONS
from compactbnn.inference.hmc.settings import HMCConfig, kept_indices, make_kernel

__all__ = [
    "settings", "mixed_precision", "programs", "sampler", "checkpoint", "results",
    "HMCConfig", "kept_indices", "make_kernel", "INITS", "MATMUL_PRECISIONS",
    "run_chain", "run_chains", "load_chain", "ChainResult", "ChainCheckpoint",
    "CHECKPOINT_FORMAT", "STATE_FILE", "PREVIOUS_STATE_FILE", "SAMPLES_FILE", "TRACE_NAMES",
    "bnn_model", "log_prior", "log_likelihood", "log_likelihood_of_logits", "potential_energy",
]
