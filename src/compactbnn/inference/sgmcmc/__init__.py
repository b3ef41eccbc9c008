"""Cyclical SG-MCMC (Zhang et al., ICLR 2020) of a Bayesian network through BlackJAX: settings (``settings``),
the cyclical schedule (``schedule``), what is sampled (``target``), the BlackJAX step and compiled programs
(``programs``), the resumable sampler (``sampler``), its checkpoint record (``checkpoint``) and results
(``results``).

The posterior is HMC's (``bnn.log_prior`` and ``bnn.log_likelihood``), its minibatch gradient BlackJAX's
estimator (log prior + N / B x the batch's log-likelihood), the update BlackJAX's SGLD or SGHMC solver;
the step size follows a cosine restarted every cycle, without noise in each cycle's exploration stage, and
the samples are taken at the end of its sampling stage. Samples are (num_kept, num_params) float32 in
``model.ravel`` order, as HMC's, so ``symmetry.compact`` aligns them and ``evaluation`` scores them.
"""

from compactbnn.inference.sgmcmc import checkpoint, programs, results, sampler, schedule, settings, target
from compactbnn.inference.sgmcmc.checkpoint import CHECKPOINT_FORMAT, SAMPLES_FILE, STATE_FILE, SGMCMCCheckpoint
from compactbnn.inference.sgmcmc.results import SGMCMCResult
from compactbnn.inference.sgmcmc.sampler import load_chains, run_chain, run_chains, sample_target
from compactbnn.inference.sgmcmc.schedule import Schedule, cosine_step_size, cycle_position, posterior_step
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig
from compactbnn.inference.sgmcmc.target import Target, network_target
from compactbnn.config.fields import SGMCMC_SAMPLERS, CycleLayout

__all__ = [
    "settings", "schedule", "target", "programs", "sampler", "checkpoint", "results",
    "SGMCMCConfig", "SGMCMC_SAMPLERS", "CycleLayout", "Schedule", "cosine_step_size", "cycle_position", "posterior_step",
    "Target", "network_target", "run_chains", "run_chain", "sample_target", "load_chains", "SGMCMCResult",
    "SGMCMCCheckpoint", "CHECKPOINT_FORMAT", "STATE_FILE", "SAMPLES_FILE",
]
