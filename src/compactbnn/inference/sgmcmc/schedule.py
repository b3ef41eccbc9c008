"""The cyclical schedule of cSG-MCMC: a cosine step size restarted every cycle, its two stages, the kept steps.

Zhang et al. (ICLR 2020), eq. (1): with K steps in M cycles, step k (counted from 1) has the step size

    alpha_k = alpha_0 / 2 * (cos(pi * mod(k - 1, ceil(K / M)) / ceil(K / M)) + 1),

falling from alpha_0 to nearly 0 within each cycle and jumping back at the next. The cycle
position r(k) = mod(k - 1, ceil(K / M)) / ceil(K / M) splits a cycle into an exploration stage
(r < beta: large steps, no noise, an optimiser finding a mode) and a sampling stage (r >= beta:
small steps with the sampler's noise), where the samples are taken at the cycle's end.

Here steps are counted from 0 (step k is the paper's k + 1), a cycle is a whole number of epochs
(``CycleLayout.cycle_length`` = epochs / M x N // B, so ceil(K / M) = K / M), and everything is a
pure numpy function of the step index: the compiled sampler reads these values, so a resumed run
takes exactly the uninterrupted run's. Step sizes are learning rates on the mean log-likelihood per
example (the code's ``lr``); ``posterior_step`` converts them to the step on the log posterior of
N examples that BlackJAX's solvers take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compactbnn.config.fields import CycleLayout


def cycle_position(step, cycle_length: int) -> np.ndarray:
    """r(k) in [0, 1): how far step ``step`` (0-based) is into its cycle."""
    return (np.asarray(step, np.int64) % cycle_length) / cycle_length


def cosine_step_size(step, cycle_length: int, initial: float) -> np.ndarray:
    """alpha_k = initial / 2 * (cos(pi r(k)) + 1): ``initial`` at each cycle's first step, falling towards 0 at its last."""
    return initial / 2 * (np.cos(np.pi * cycle_position(step, cycle_length)) + 1)


def posterior_step(learning_rate, num_train: int) -> np.ndarray:
    """eta = learning rate / N: the step on the log posterior (N x mean log-likelihood + log prior) per unit of its gradient.

    The code descends the mean loss with ``lr`` (``lr * grad mean NLL = lr / N * grad(N mean NLL)``)
    and adds noise of variance ``2 lr T / N``: SGLD's eta = lr / N with noise variance 2 eta T, and
    for SGHMC Chen et al.'s (2014, eq. 15) eta = lr / N in v <- (1 - alpha) v + eta grad + N(0, 2 alpha eta T).
    """
    return np.asarray(learning_rate, np.float64) / num_train


@dataclass(frozen=True)
class Schedule:
    """A run's cyclical schedule: the layout of its steps (``config.fields.CycleLayout``) and alpha_0."""

    layout: CycleLayout
    initial_step_size: float

    @property
    def total_steps(self) -> int:
        return self.layout.total_steps

    def step_sizes(self, start: int, stop: int) -> np.ndarray:
        """Learning rates alpha_k of steps start..stop - 1 (float64)."""
        return cosine_step_size(np.arange(start, stop), self.layout.cycle_length, self.initial_step_size)

    def sampling(self, start: int, stop: int) -> np.ndarray:
        """Whether each of steps start..stop - 1 is in its cycle's sampling stage (noise on), bool."""
        return np.arange(start, stop) % self.layout.cycle_length >= self.layout.exploration_steps

    def kept_steps(self) -> np.ndarray:
        """Every kept step (int64, increasing): each cycle's last step and the samples_per_cycle - 1 before it, thinning apart.

        The state after step k is sample k (as the code saves the network after an epoch's last batch).
        """
        lay = self.layout
        ends = np.arange(1, lay.cycles + 1, dtype=np.int64) * lay.cycle_length - 1
        back = lay.thinning * np.arange(lay.samples_per_cycle - 1, -1, -1, dtype=np.int64)
        return (ends[:, None] - back[None, :]).reshape(-1)

    def cycle_of(self, steps) -> np.ndarray:
        """The cycle (0-based) of each step."""
        return np.asarray(steps, np.int64) // self.layout.cycle_length

    def epoch_of(self, steps) -> np.ndarray:
        """The epoch (0-based) of each step."""
        return np.asarray(steps, np.int64) // self.layout.steps_per_epoch
