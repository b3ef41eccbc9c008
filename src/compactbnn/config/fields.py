"""The rules of every config field, written once: the config dataclasses and the config check both apply them.

``TrainConfig``, ``HMCConfig``, ``VIConfig`` and ``SGMCMCConfig`` call ``check_fields`` (and HMC's
``check_hmc``, SG-MCMC's ``check_sgmcmc``) in ``__post_init__``; ``compactbnn.config.checks`` calls the same functions on a config file's
sections, mapped to the fields by ``compactbnn.config.keys``, and turns a ``FieldError`` into
``config key <key>: <problem>``. Standard library only (numpy's scalars are ``numbers.Integral``
and ``numbers.Real``), so that the Snakefile applies the rules with Snakemake alone.

A rule is a function of one value that returns what is wrong with it (``None``: nothing); a rule
set maps each field to its rule, in the order they are checked.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Mapping

Rule = Callable[[object], "str | None"]

OPTIMIZERS = ("sgd", "adam")
INITS = ("pytorch", "prior")
MATMUL_PRECISIONS = ("highest", "high", "default")
GRADIENT_PRECISIONS = ("float32", "tf32", "bfloat16")
SGMCMC_SAMPLERS = ("sgld", "sghmc")


class FieldError(ValueError):
    """A refused field: ``field`` names it, ``problem`` says what is wrong (``must be ..., got ...``)."""

    def __init__(self, field: str, problem: str, owner: str = ""):
        self.field, self.problem = field, problem
        super().__init__(f"{owner}.{field} {problem}" if owner else f"{field} {problem}")


def is_integer(value) -> bool:
    """An integer that is not a bool: 2.0, 2.5 and True are not (range, shapes and array sizes need ints)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int | None = None) -> Rule:
    def rule(value):
        if not is_integer(value):
            return f"must be an integer, got {value!r}"
        if minimum is not None and value < minimum:
            return f"must be >= {minimum}, got {value}"
        return None
    return rule


def positive() -> Rule:
    def rule(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"must be a number, got {value!r}"
        if not (math.isfinite(value) and value > 0):
            return f"must be positive and finite, got {value}"
        return None
    return rule


def within(low: float, high: float, *, low_closed: bool, high_closed: bool) -> Rule:
    """A finite number in an interval; the message writes it as [low, high), (low, high) etc."""
    interval = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"

    def rule(value):
        if not is_number(value):
            return f"must be a finite number, got {value!r}"
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        return None if above and below else f"must lie in {interval}, got {value}"
    return rule


def one_of(choices: tuple) -> Rule:
    def rule(value):
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}, got {value!r}"
    return rule


def boolean() -> Rule:
    def rule(value):
        return None if isinstance(value, bool) else f"must be True or False, got {value!r}"
    return rule


def optional(inner: Rule) -> Rule:
    """``None``, or a value that ``inner`` accepts."""
    def rule(value):
        return None if value is None else inner(value)
    return rule


TRAIN_FIELDS: dict[str, Rule] = {
    "optimizer": one_of(OPTIMIZERS),
    "learning_rate": positive(),
    "momentum": within(0, 1, low_closed=True, high_closed=False),
    "batch_size": integer(minimum=1),
    "epochs": integer(minimum=0),
    "prior_sd": optional(positive()),  # None: maximum likelihood
}

HMC_FIELDS: dict[str, Rule] = {
    "step_size": positive(),
    "prior_sd": positive(),
    "num_steps": integer(minimum=1),
    "num_iterations": integer(minimum=1),
    "keep_first": integer(minimum=0),
    "keep_last": integer(minimum=0),
    "num_kept": integer(minimum=1),
    "chunk_size": integer(minimum=1),
    "num_warmup": integer(minimum=0),
    "adapt_step_size": boolean(),
    "target_accept_prob": within(0, 1, low_closed=False, high_closed=False),
    "init": one_of(INITS),
    "matmul_precision": one_of(MATMUL_PRECISIONS),
    "gradient_precision": one_of(GRADIENT_PRECISIONS),
}

VI_FIELDS: dict[str, Rule] = {
    "learning_rate": positive(),
    "batch_size": integer(minimum=1),
    "epochs": integer(minimum=0),
    "prior_sd": positive(),
    "init_sd": positive(),
    "num_samples": integer(minimum=1),
    "kl_weight": positive(),  # > 0: NumPyro's handlers.scale, which weights the KL, takes positive factors only
}

SGMCMC_FIELDS: dict[str, Rule] = {
    "sampler": one_of(SGMCMC_SAMPLERS),
    "step_size": positive(),
    "alpha": within(0, 1, low_closed=False, high_closed=True),  # 1 - momentum; 1 makes SGHMC SGLD
    "batch_size": integer(minimum=1),
    "epochs": integer(minimum=1),
    "cycles": integer(minimum=1),
    "exploration_fraction": within(0, 1, low_closed=True, high_closed=False),  # < 1: every cycle samples
    "samples_per_cycle": integer(minimum=1),
    "thinning": optional(integer(minimum=1)),  # None: one epoch's steps
    "temperature": positive(),  # 0 would be SGD, not a sampler
    "prior_sd": positive(),
    "init": one_of(INITS),
    "matmul_precision": one_of(MATMUL_PRECISIONS),
}


def check_fields(rules: Mapping[str, Rule], values: Mapping, owner: str = "") -> None:
    """Apply each field's rule to ``values[field]`` (fields absent from ``values`` are skipped); raise the first FieldError."""
    for name, rule in rules.items():
        if name in values:
            problem = rule(values[name])
            if problem is not None:
                raise FieldError(name, problem, owner)


@dataclass(frozen=True)
class Spelling:
    """How a cross-field rule's message names the other fields and writes booleans.

    The dataclasses' own (the default: field names, True/False), or a config file's (its keys,
    YAML's true/false), so that one rule serves both messages.
    """

    names: Mapping[str, str] = field(default_factory=dict)
    true: str = "True"
    false: str = "False"

    def __call__(self, name: str) -> str:
        return self.names.get(name, name)


PYTHON = Spelling()


def check_kept(keep_first: int, keep_last: int, num_kept: int, owner: str = "", spelling: Spelling = PYTHON) -> None:
    """The kept iterations keep_first..keep_last hold num_kept distinct ones (integers >= 0 assumed)."""
    if keep_first > keep_last:
        raise FieldError("keep_first", f"must be <= {spelling('keep_last')} ({keep_last}), got {keep_first}", owner)
    span = keep_last - keep_first + 1
    if num_kept > span:
        raise FieldError("num_kept", f"must be <= keep_last - keep_first + 1 = {span}, got {num_kept}", owner)


def check_hmc(values: Mapping, owner: str = "", spelling: Spelling = PYTHON) -> None:
    """HMC's rules across fields (after HMC_FIELDS): the kept iterations lie in the chain, warmup only to adapt."""
    if values["keep_last"] >= values["num_iterations"]:
        raise FieldError("keep_last", f"must be < {spelling('num_iterations')} ({values['num_iterations']}), "
                                      f"got {values['keep_last']}", owner)
    check_kept(values["keep_first"], values["keep_last"], values["num_kept"], owner, spelling)
    if values["adapt_step_size"] and values["num_warmup"] < 1:
        raise FieldError("num_warmup", f"must be >= 1 when adapt_step_size is {spelling.true} "
                                       "(the adaptation runs during warmup)", owner)
    if not values["adapt_step_size"] and values["num_warmup"] != 0:
        raise FieldError("num_warmup", f"must be 0 when adapt_step_size is {spelling.false} "
                                       f"(burn-in is keep_first), got {values['num_warmup']}", owner)


def check_sgmcmc(values: Mapping, owner: str = "", spelling: Spelling = PYTHON) -> None:
    """SG-MCMC's rules across fields (after SGMCMC_FIELDS): every cycle has the same whole number of epochs."""
    if values["epochs"] % values["cycles"]:
        raise FieldError("epochs", f"must be a multiple of {spelling('cycles')} ({values['cycles']}), so that every "
                                   f"cycle has the same epochs, got {values['epochs']}", owner)


@dataclass(frozen=True)
class CycleLayout:
    """Where a cyclical SG-MCMC run's steps fall, in minibatch steps (one gradient each).

    An epoch is ``steps_per_epoch`` = N // batch_size full minibatches (the last N mod B examples of
    each epoch's shuffle sit that epoch out, so every step scales its batch by exactly N / B); a
    cycle is ``cycle_length`` steps, the first ``exploration_steps`` of them the exploration stage
    (the paper's r(k) < beta, no noise) and the rest the sampling stage; the kept samples are the
    last ``samples_per_cycle`` steps of each cycle, ``thinning`` steps apart.
    """

    steps_per_epoch: int
    cycle_length: int
    exploration_steps: int
    samples_per_cycle: int
    thinning: int
    cycles: int

    @property
    def sampling_steps(self) -> int:
        return self.cycle_length - self.exploration_steps

    @property
    def total_steps(self) -> int:
        return self.cycles * self.cycle_length


def exploration_steps(cycle_length: int, fraction: float) -> int:
    """How many of a cycle's steps j = 0, 1, ... have r = j / cycle_length < fraction (the paper's test, in floats)."""
    count = min(cycle_length, math.ceil(fraction * cycle_length))
    while count > 0 and (count - 1) / cycle_length >= fraction:  # ceil rounded up past the float test
        count -= 1
    while count < cycle_length and count / cycle_length < fraction:
        count += 1
    return count


def cycle_layout(values: Mapping, num_train: int, owner: str = "", spelling: Spelling = PYTHON) -> CycleLayout:
    """The steps of an SG-MCMC config (``SGMCMC_FIELDS``' names) on ``num_train`` examples; refuses a schedule that cannot sample.

    Raises a FieldError naming batch_size when not one full minibatch fits the data, and
    samples_per_cycle when the kept samples would reach back into the exploration stage.
    """
    batch = values["batch_size"]
    if batch > num_train:
        raise FieldError("batch_size", f"must be <= the {num_train} training examples, got {batch}", owner)
    per_epoch = num_train // batch
    cycle = values["epochs"] // values["cycles"] * per_epoch
    explore = exploration_steps(cycle, values["exploration_fraction"])
    thinning = values["thinning"] or per_epoch
    span = (values["samples_per_cycle"] - 1) * thinning + 1
    if span > cycle - explore:
        raise FieldError("samples_per_cycle", f"{values['samples_per_cycle']} samples {thinning} steps apart span {span} steps, "
                         f"more than the {cycle - explore} steps of each cycle's sampling stage ({cycle} steps a cycle, the first "
                         f"{explore} exploring); lower it or {spelling('thinning')}, or raise {spelling('epochs')} or lower "
                         f"{spelling('exploration_fraction')}", owner)
    return CycleLayout(per_epoch, cycle, explore, values["samples_per_cycle"], thinning, values["cycles"])
