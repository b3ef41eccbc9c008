"""Cyclical SG-MCMC's settings (``SGMCMCConfig``): the cSG-MCMC code's CIFAR-10 settings where they carry over.

``sgmcmc`` re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from compactbnn.config.fields import SGMCMC_FIELDS, CycleLayout, check_fields, check_sgmcmc, cycle_layout


@dataclass(frozen=True)
class SGMCMCConfig:
    """Cyclical SG-MCMC settings (Zhang et al., ICLR 2020; "code": github.com/ruqizhang/csgmcmc, experiments/cifar_csg*.py).

    Fields:
      sampler: "sgld" (cSGLD, the paper's Algorithm 1 and the code's cifar_csgmcmc.py) or "sghmc"
        (cSGHMC, cifar_csghmc.py; its momentum costs a third more per step on a CPU).
      step_size: alpha_0, the first and largest step size of every cycle, as a learning rate on the
        mean log-likelihood per example, the code's ``lr_0`` (0.5). The step on the log posterior of
        N examples is eta = step_size / N (``schedule.posterior_step``).
      alpha: SGHMC's 1 - momentum per step (code: 0.9); 1 turns SGHMC into SGLD. Unused by sgld.
      batch_size: minibatch size B (code: 64); each step's likelihood is the batch's, times N / B.
      epochs: passes over the data in all cycles, a multiple of ``cycles`` (code: 200).
      cycles: M, cosine cycles of the step size (code and paper: 4).
      exploration_fraction: beta, the share of each cycle without noise (code: noise in the last 5
        of every 50 epochs, 0.9).
      samples_per_cycle: kept at the end of every cycle (code: 3).
      thinning: steps between a cycle's kept samples; None is one epoch (code: one per epoch).
      temperature: T, the sampling stage targets p(theta | D)^(1/T) (ours: 1, the Bayesian posterior;
        the code's default is 1/50,000, a cold posterior).
      prior_sd: sd of the N(0, prior_sd^2) prior on every weight and bias (HMC's; the code's weight
        decay 5e-4 is a N(0, 0.2^2) prior at N = 50,000).
      init: "pytorch" (U(+-1/sqrt(fan_in)), as HMC's) or "prior" (a draw from the prior).
      matmul_precision: float32 matmul precision of the gradients ("highest": exact float32).
    """

    sampler: Literal["sgld", "sghmc"] = "sgld"
    step_size: float = 0.5
    alpha: float = 0.9
    batch_size: int = 64
    epochs: int = 200
    cycles: int = 4
    exploration_fraction: float = 0.9
    samples_per_cycle: int = 3
    thinning: int | None = None
    temperature: float = 1.0
    prior_sd: float = 1.0
    init: Literal["pytorch", "prior"] = "pytorch"
    matmul_precision: Literal["highest", "high", "default"] = "highest"

    def __post_init__(self):
        # the rules the config check applies to posterior.sgmcmc too (compactbnn.config.fields)
        check_fields(SGMCMC_FIELDS, vars(self), "SGMCMCConfig")
        check_sgmcmc(vars(self), "SGMCMCConfig")

    def layout(self, num_train: int) -> CycleLayout:
        """Steps per epoch, per cycle and per exploration stage, thinning, on ``num_train`` examples (refuses what cannot sample)."""
        return cycle_layout(vars(self), num_train, "SGMCMCConfig")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the config's JSON (sorted keys): identifies the run in checkpoints."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
