"""HMC's settings (``HMCConfig``, the paper's by default), the kept iterations, and the NumPyro kernel they define.

``hmc`` re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from compactbnn.config.fields import HMC_FIELDS, check_fields, check_hmc, check_kept
from compactbnn.inference.hmc import mixed_precision
from compactbnn.inference.bnn import bnn_model
from compactbnn.models import IN_LOOP_MATMUL, Model


def kept_indices(keep_first: int = 600, keep_last: int = 9999, num_kept: int = 1000) -> np.ndarray:
    """Iteration indices of the kept samples: ``num_kept`` values evenly spaced over keep_first..keep_last.

    ``np.linspace(keep_first, keep_last, num_kept)`` rounded down, as the authors' ``np.linspace(...,
    dtype=int)``, both ends included. Iterations are counted from 0 after any warmup; iteration i
    is the state after i + 1 transitions. The defaults are the transitions the authors kept:
    hamiltorch returns its initial parameters at list index 0 and, with ``burn=100``, the states
    after transitions 102..10,000 at list indices 1..9,899, so list index j is our iteration
    j + 100, and the authors' list indices ``np.linspace(500, 9899, 1000, dtype=int)`` are
    iterations 600, 609, 618, ..., 9999 (spacing 9.4; the paper's "600 burn-in").
    Raises if fewer than ``num_kept`` distinct indices fit the range.
    """
    kept = {"keep_first": keep_first, "keep_last": keep_last, "num_kept": num_kept}
    check_fields({name: HMC_FIELDS[name] for name in kept}, kept)  # HMCConfig's rules of these fields
    check_kept(keep_first, keep_last, num_kept)
    if num_kept == 1:
        return np.array([keep_first], dtype=np.int64)
    indices = np.unique(np.floor(np.linspace(keep_first, keep_last, num_kept)).astype(np.int64))
    assert len(indices) == num_kept  # spacing >= 1 guarantees distinct rounded-down values
    return indices


@dataclass(frozen=True)
class HMCConfig:
    """HMC settings; the defaults are the paper's (step 1e-3, 500 leapfrog steps, 10,000 iterations, 1,000 kept).

    Fields:
      step_size: leapfrog step size (the initial one when adapt_step_size).
      num_steps: leapfrog steps per iteration; the path length is step_size * num_steps.
      num_iterations: HMC iterations after warmup; kept indices count from 0 here.
      keep_first, keep_last, num_kept: which iterations are kept (see ``kept_indices``).
      chunk_size: iterations per jitted chunk; a checkpoint is written after each chunk.
      prior_sd: sd of the N(0, prior_sd^2) prior on every weight and bias.
      adapt_step_size: if True, NumPyro's dual-averaging step-size adaptation runs for
        num_warmup extra iterations before the num_iterations (num_steps stays fixed).
      num_warmup: warmup iterations (only with adapt_step_size; 0 otherwise).
      target_accept_prob: the adaptation's target acceptance probability.
      init: "pytorch" (U(+-1/sqrt(fan_in)), the paper's) or "prior" (draw from the prior);
        ignored when run_chain gets init_params.
      matmul_precision: float32 matmul precision ("highest" is exact float32; "high"/"default"
        allow TF32/bf16 passes on GPUs, in the accept test too: not exact).
      gradient_precision: precision of the matmuls of the gradient that drives leapfrog:
        "float32" (NumPyro's HMC, exact), "tf32" or "bfloat16" (``mixed_precision``: the accept test
        stays exact float32, only the acceptance rate changes).
    """

    step_size: float = 1e-3
    num_steps: int = 500
    num_iterations: int = 10_000
    keep_first: int = 600
    keep_last: int = 9999
    num_kept: int = 1000
    chunk_size: int = 100
    prior_sd: float = 1.0
    adapt_step_size: bool = False
    num_warmup: int = 0
    target_accept_prob: float = 0.8
    init: Literal["pytorch", "prior"] = "pytorch"
    matmul_precision: Literal["highest", "high", "default"] = "highest"
    gradient_precision: Literal["float32", "tf32", "bfloat16"] = "float32"

    def __post_init__(self):
        # the rules the config check applies to posterior.hmc too (compactbnn.config.fields)
        check_fields(HMC_FIELDS, vars(self), "HMCConfig")
        check_hmc(vars(self), "HMCConfig")

    @property
    def kept_indices(self) -> np.ndarray:
        """Post-warmup iteration index of every kept sample (see the module function ``kept_indices``)."""
        return kept_indices(self.keep_first, self.keep_last, self.num_kept)

    @property
    def total_iterations(self) -> int:
        """Warmup plus sampling iterations."""
        return self.num_warmup + self.num_iterations

    @property
    def path_length(self) -> float:
        """Integration time per iteration, step_size * num_steps (before any adaptation)."""
        return self.step_size * self.num_steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the config's JSON (sorted keys): identifies the run in checkpoints."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def make_kernel(model: Model, config: HMCConfig, backend: str | None = None) -> mixed_precision.MixedPrecisionHMC:
    """The HMC kernel for ``bnn_model`` of ``model`` with the config's step size, leapfrog steps and gradient precision.

    A ``mixed_precision.MixedPrecisionHMC`` (a NumPyro ``HMC``): with ``gradient_precision``
    "float32" it is NumPyro's HMC step for step; otherwise leapfrog follows the gradient of
    ``bnn_model`` with low-precision matmuls (for ``backend``, default JAX's) and the accept
    test uses the exact float32 potential. Each leapfrog step is exactly ``step_size`` (NumPyro's
    default trajectory length 2 pi would replace it by 2 pi / num_steps); the identity mass
    matrix is never adapted (as hamiltorch in the paper). The kernel's model arguments are (x, y).
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a compactbnn.models.Model, got {type(model).__name__}")
    # every leapfrog step runs inside fori_loops (leapfrog steps, iterations)
    potential_model = partial(bnn_model, model, prior_sd=float(config.prior_sd), matmul=IN_LOOP_MATMUL)
    product = mixed_precision.matmul(config.gradient_precision, backend)
    if product is not None:
        mixed_precision.check_deterministic_reductions(backend)
    gradient_model = None if product is None else partial(bnn_model, model, prior_sd=float(config.prior_sd), matmul=product)
    return mixed_precision.MixedPrecisionHMC(
        potential_model,
        gradient_model,
        step_size=float(config.step_size),
        num_steps=int(config.num_steps),
        adapt_step_size=config.adapt_step_size,
        target_accept_prob=float(config.target_accept_prob),
    )
