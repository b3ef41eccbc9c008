"""One SG-MCMC chain's result (``SGMCMCResult``): its kept samples, their log-likelihoods, traces and timings.

``checkpoint.SGMCMCCheckpoint.results`` builds them; ``sampler.run_chains`` and ``load_chains`` return them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compactbnn.inference.sgmcmc.schedule import Schedule
from compactbnn.inference.sgmcmc.settings import SGMCMCConfig


@dataclass
class SGMCMCResult:
    """One chain's kept samples and diagnostics.

    samples: (num_kept_done, num_params) float32 in ``target.ravel`` order (``model.ravel`` for a
      network, as HMC's); a read-only memory map onto ``<checkpoint_dir>/samples.npy``.
    kept_steps: (num_kept_done,) the step (0-based, over all cycles) each sample is the state after.
    kept_cycles: (num_kept_done,) the cycle of each sample.
    metrics: per kept sample (num_kept_done,): ``log_prior``, ``train_log_likelihood`` (summed over
      the training data the chain sampled on, exactly, not the minibatch estimate), for a network
      ``train_accuracy``, and with test data ``test_log_likelihood`` (summed) and ``test_accuracy``.
    traces: per step done (completed_steps,): ``log_density``, the minibatch estimate of the log
      posterior, log p(theta) + N / B sum_batch log p(d | theta), at the state before the step.
    config: the settings; steps_per_epoch, num_train: the run's layout on its data (with
      ``config`` they give every step's step size and stage: ``schedule``).
    completed_steps, total_steps: steps done and planned; wall_time: seconds over all sessions
    (setup and compilation included); sampling_time: seconds in the compiled steps;
    gradient_evaluations: minibatch gradients of this chain (one per step).
    """

    chain_name: str
    samples: np.ndarray
    kept_steps: np.ndarray
    kept_cycles: np.ndarray
    metrics: dict
    traces: dict
    config: SGMCMCConfig
    steps_per_epoch: int
    num_train: int
    completed_steps: int
    total_steps: int
    wall_time: float
    sampling_time: float
    compile_time: float
    gradient_evaluations: int
    device: str
    checkpoint_dir: str

    @property
    def complete(self) -> bool:
        return self.completed_steps == self.total_steps

    @property
    def schedule(self) -> Schedule:
        """The run's cyclical schedule: ``schedule.step_sizes(0, n)``, ``schedule.sampling(0, n)``."""
        return Schedule(self.config.layout(self.num_train), self.config.step_size)

    @property
    def completed_cycles(self) -> int:
        return self.completed_steps // self.schedule.layout.cycle_length

    @property
    def train_log_likelihood(self) -> np.ndarray:
        return self.metrics.get("train_log_likelihood", np.zeros(0))

    @property
    def test_log_likelihood(self) -> np.ndarray | None:
        return self.metrics.get("test_log_likelihood")

    @property
    def test_accuracy(self) -> np.ndarray | None:
        return self.metrics.get("test_accuracy")

    @property
    def gradients_per_second(self) -> float:
        return self.gradient_evaluations / self.sampling_time if self.sampling_time > 0 else float("nan")

    def summary(self) -> dict:
        """JSON-ready scalar diagnostics, with split R-hat and ESS of the test log-likelihood (one chain, split in halves)."""
        from compactbnn.inference import diagnostics

        out = {
            "chain": self.chain_name,
            "sampler": self.config.sampler,
            "complete": self.complete,
            "completed_steps": self.completed_steps,
            "completed_cycles": self.completed_cycles,
            "num_kept": int(len(self.kept_steps)),
            "num_params": int(self.samples.shape[-1]),
            "final_log_density_estimate": float(self.traces["log_density"][-1]) if self.completed_steps else float("nan"),
            "wall_time_s": self.wall_time,
            "sampling_time_s": self.sampling_time,
            "compile_time_s": self.compile_time,
            "gradients_per_second": self.gradients_per_second,
            "device": self.device,
        }
        for name, values in self.metrics.items():
            if len(values):
                out[f"{name}_mean"] = float(np.mean(values))
        if self.test_log_likelihood is not None and len(self.test_log_likelihood) >= 4:
            stats = diagnostics.chain_summary(self.test_log_likelihood[None])
            out.update({f"test_log_likelihood_{k}": v for k, v in stats.items() if k in ("split_rhat", "ess")})
        return out
