"""One HMC chain's result (``ChainResult``): its kept samples, traces and timings, as a checkpoint holds them.

``checkpoint.ChainCheckpoint.results`` builds them; ``sampler.run_chain`` and ``load_chain`` return them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ChainResult:
    """One chain's kept samples and diagnostics.

    samples: (num_kept_done, num_params) float32 in ``model.ravel`` order; a read-only memory map
      onto ``<checkpoint_dir>/samples.npy`` (rows of completed chunks only).
    kept_indices: (num_kept_done,) post-warmup iteration index of each sample.
    traces: per iteration (warmup first, length completed_iterations): potential_energy,
      log_likelihood (train, from the potential energy), accept_prob, diverging (NumPyro's flag;
      a NaN proposal energy is mapped to +inf by NumPyro and so counted here), nan_energy (the
      chain's own energy is NaN, e.g. NaN initial parameters).
    test_log_likelihood, test_accuracy: (num_kept_done,) summed log-likelihood and accuracy on
      the test set at each kept sample, or None without test data.
    step_size: the step size in use after warmup; num_steps: leapfrog steps per iteration.
    wall_time: seconds over all sessions of this checkpoint (setup and compilation included);
    sampling_time: seconds spent in the compiled chunks; leapfrog_steps: steps done so far.
    """

    chain_name: str
    samples: np.ndarray
    kept_indices: np.ndarray
    traces: dict
    test_log_likelihood: np.ndarray | None
    test_accuracy: np.ndarray | None
    step_size: float
    num_steps: int
    num_warmup: int
    completed_iterations: int
    total_iterations: int
    wall_time: float
    sampling_time: float
    compile_time: float
    leapfrog_steps: int
    device: str
    checkpoint_dir: str

    @property
    def complete(self) -> bool:
        return self.completed_iterations == self.total_iterations

    @property
    def accept_rate(self) -> float:
        """Mean acceptance probability over the post-warmup iterations done."""
        values = self.traces["accept_prob"][self.num_warmup:]
        return float(np.mean(values)) if len(values) else float("nan")

    @property
    def num_divergent(self) -> int:
        return int(np.sum(self.traces["diverging"][self.num_warmup:]))

    @property
    def num_nan_energy(self) -> int:
        return int(np.sum(self.traces["nan_energy"]))

    @property
    def leapfrog_steps_per_second(self) -> float:
        return self.leapfrog_steps / self.sampling_time if self.sampling_time > 0 else float("nan")

    def summary(self) -> dict:
        """JSON-ready scalar diagnostics, including split R-hat and ESS of the test log-likelihood (one chain, split in halves)."""
        from compactbnn.inference import diagnostics

        out = {
            "chain": self.chain_name,
            "complete": self.complete,
            "completed_iterations": self.completed_iterations,
            "num_kept": int(len(self.kept_indices)),
            "num_params": int(self.samples.shape[-1]),
            "accept_rate": self.accept_rate,
            "num_divergent": self.num_divergent,
            "num_nan_energy": self.num_nan_energy,
            "step_size": self.step_size,
            "num_steps": self.num_steps,
            "path_length": self.step_size * self.num_steps,
            "num_warmup": self.num_warmup,
            "final_train_log_likelihood": float(self.traces["log_likelihood"][-1]) if self.completed_iterations else float("nan"),
            "wall_time_s": self.wall_time,
            "sampling_time_s": self.sampling_time,
            "compile_time_s": self.compile_time,
            "leapfrog_steps_per_second": self.leapfrog_steps_per_second,
            "device": self.device,
        }
        if self.test_log_likelihood is not None and len(self.test_log_likelihood):
            stats = diagnostics.chain_summary(self.test_log_likelihood[None])
            out.update({f"test_log_likelihood_{k}": v for k, v in stats.items() if k not in ("num_chains", "chain_means")})
            out["test_accuracy_mean"] = float(np.mean(self.test_accuracy))
        return out
