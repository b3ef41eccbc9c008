"""HMC of a Bayesian network: settings (``settings``), the exact mixed-precision kernel
(``mixed_precision``), the chunked, resumable sampler (``sampler``) and its checkpoints
(``checkpoint``)."""

from compactbnn.inference.hmc import checkpoint, mixed_precision, sampler, settings
from compactbnn.inference.hmc.sampler import *  # noqa: F401,F403

__all__ = ["settings", "mixed_precision", "sampler", "checkpoint"]
