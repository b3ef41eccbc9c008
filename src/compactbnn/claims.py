"""The paper's claims as automatic checks on one run's tidy tables (PAPER.md).

Each check measures one number from the data behind a figure or table, compares it with a
threshold from the config and says whether the claim holds in this run. A preset may skip a
claim its scale cannot show (``skip``); skipped claims are listed, never counted as passed.
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from compactbnn.interpolation import loss_barrier

CLAIM_IDS = (
    "not_stable_under_training", "not_recovered_at_init", "barrier_grows_with_not", "control_barrier_small",
    "init_barrier_small", "distance_grows_in_training", "control_distance_small",
    "ridge_before_rebasin", "no_ridge_after_rebasin", "not_path_before_rebasin", "not_path_after_rebasin",
    "hmc_q_r_agreement", "hmc_q_r_tv", "hmc_mu_r_accuracy", "hmc_sigma_r_tail_shorter",
    "ensemble_q_r_agreement", "ensemble_q_r_tv", "ensemble_mu_r_accuracy", "ensemble_sigma_r_tail_shorter",
    "merged_pruning_beats_ensemble", "merged_pruning_beats_hmc", "hmc_prior_level_sigma", "vi_prior_level_sigma", "rhat_drops_after_alignment",
)

RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}


@dataclass
class Claim:
    id: str
    statement: str
    source: str  # the figure or table the claim is about
    measured: float
    relation: str
    threshold: float
    passed: bool | None  # None when skipped
    skipped: bool = False


def _claim(id, statement, source, measured, relation, threshold, skip) -> Claim:
    measured = float(measured)
    if id in skip:
        return Claim(id, statement, source, measured, relation, float(threshold), None, True)
    passed = bool(np.isfinite(measured) and RELATIONS[relation](measured, threshold))
    return Claim(id, statement, source, measured, relation, float(threshold), passed)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN (a failed claim) unless the denominator is positive."""
    return float(numerator) / float(denominator) if denominator > 0 else float("nan")


def _level_means(table: pd.DataFrame, curve: str, column: str) -> pd.Series:
    """Mean over runs of one column of one curve, indexed by NoT level."""
    return table[table["curve"] == curve].groupby("not_init")[column].mean()


def not_experiment_claims(table: pd.DataFrame, thresholds: Mapping, barrier: str, skip=()) -> list[Claim]:
    """Figure 2 a-c."""
    column = "barrier" if barrier == "max" else "barrier_midpoint"
    trained_not = _level_means(table, "trained", "not_measured")
    init_not = _level_means(table, "init", "not_measured")
    levels = trained_not.index.to_numpy()
    upper = levels >= np.median(levels)
    trained_barrier = _level_means(table, "trained", column)
    control_barrier = _level_means(table, "control", column)
    init_barrier = _level_means(table, "init", column)
    trained_distance = _level_means(table, "trained", "distance")
    control_distance = _level_means(table, "control", "distance")
    init_distance = _level_means(table, "init", "distance")
    rho = spearmanr(levels, trained_barrier.to_numpy()).statistic if len(levels) > 2 else np.nan
    upper_trained = trained_barrier.to_numpy()[upper].mean()
    return [
        _claim("not_stable_under_training",
               "NoT(P') after training tracks NoT(P) at initialisation: mean |NoT' - NoT| over levels (transpositions)",
               "Figure 2a", np.mean(np.abs(trained_not.to_numpy() - levels)), "<=", thresholds["not_tracking_tolerance"], skip),
        _claim("not_recovered_at_init",
               "rebasin recovers the planted P at initialisation: mean |NoT' - NoT| over levels",
               "Figure 2a", np.mean(np.abs(init_not.to_numpy() - levels)), "<=", thresholds["not_recovery_tolerance"], skip),
        _claim("barrier_grows_with_not",
               "the loss barrier of the trained pair grows with NoT: Spearman correlation over levels",
               "Figure 2c", rho, ">=", thresholds["barrier_rank_correlation"], skip),
        _claim("control_barrier_small",
               "aligned by the known P, the trained pair has no barrier: control / trained barrier, upper half of NoT levels",
               "Figure 2c", _ratio(control_barrier.to_numpy()[upper].mean(), upper_trained), "<=", thresholds["control_ratio"], skip),
        _claim("init_barrier_small",
               "at initialisation there is no barrier: init / trained barrier, upper half of NoT levels",
               "Figure 2c", _ratio(init_barrier.to_numpy()[upper].mean(), upper_trained), "<=", thresholds["control_ratio"], skip),
        _claim("distance_grows_in_training",
               "trained networks lie farther apart than their initialisations: trained / init squared distance, mean over levels",
               "Figure 2b", _ratio(trained_distance.mean(), init_distance.mean()), ">", 1.0, skip),
        _claim("control_distance_small",
               "aligned by the known P, trained networks are close: control / trained squared distance, mean over levels",
               "Figure 2b", _ratio(control_distance.mean(), trained_distance.mean()), "<=", thresholds["control_ratio"], skip),
    ]


def interpolation_claims(table: pd.DataFrame, thresholds: Mapping, width: int, split: str, skip=()) -> list[Claim]:
    """Figure 1 and Figure 2 d, at the last epoch."""
    last = table[(table["epoch"] == table["epoch"].max()) & (table["split"] == split)]

    def barrier(when):
        part = last[last["rebasin"] == when]
        return float(loss_barrier(part["loss"].to_numpy(), part["lambda"].to_numpy(), "max"))

    before, after = barrier("before"), barrier("after")
    before_not = last[(last["rebasin"] == "before")].sort_values("lambda")["not_to_w0"].to_numpy()
    after_not = last[(last["rebasin"] == "after")]["not_to_w0"].to_numpy()
    return [
        _claim("ridge_before_rebasin", "before rebasin the interpolation has a loss ridge at the last epoch: barrier (loss)",
               "Figure 1", before, ">", 0.0, skip),
        _claim("no_ridge_after_rebasin", "rebasin removes the ridge: barrier after / before at the last epoch",
               "Figure 1", _ratio(after, before), "<=", thresholds["ridge_ratio"], skip),
        _claim("not_path_before_rebasin", "before rebasin, NoT(W_1, W_0) is close to a random permutation's: fraction of the hidden width",
               "Figure 2d", before_not[-1] / width, ">=", thresholds["not_path_fraction"], skip),
        _claim("not_path_after_rebasin", "after rebasin, NoT(W_lambda, W_0) is about 0 for every lambda: largest, as a fraction of the width",
               "Figure 2d", after_not.max() / width, "<=", thresholds["not_path_after_fraction"], skip),
    ]


def posterior_claims(metrics: pd.DataFrame, sigma: pd.DataFrame, pruning: pd.DataFrame, thresholds: Mapping,
                     prior_sd: float, skip=()) -> list[Claim]:
    """Table 1 and Figure 3."""
    value = lambda method, representation, column: float(  # noqa: E731
        metrics.loc[(metrics["method"] == method) & (metrics["representation"] == representation), column].iloc[0])
    sigma_tail = lambda method, representation: float(  # noqa: E731
        sigma.loc[(sigma["method"] == method) & (sigma["representation"] == representation), "p99"].iloc[0])
    claims = []
    for method, name in (("hmc", "HMC"), ("ensemble", "ensemble")):
        claims += [
            _claim(f"{method}_q_r_agreement", f"{name}: q_r agrees with HMC more than q_d: agreement(q_r) - agreement(q_d)",
                   "Table 1", value(method, "q_r", "agreement") - value(method, "q_d", "agreement"), ">", 0.0, skip),
            _claim(f"{method}_q_r_tv", f"{name}: q_r is closer to HMC than q_d: TV(q_d) - TV(q_r)",
                   "Table 1", value(method, "q_d", "tv") - value(method, "q_r", "tv"), ">", 0.0, skip),
            _claim(f"{method}_mu_r_accuracy", f"{name}: the aligned mean mu_r is a better network than mu_d: accuracy difference",
                   "Table 1", value(method, "q_r", "accuracy_mean") - value(method, "q_d", "accuracy_mean"), ">", 0.0, skip),
            _claim(f"{method}_sigma_r_tail_shorter", f"{name}: alignment shortens the right tail of sigma: 99th percentile of sigma_r / of sigma_d",
                   "Figure 3 left", sigma_tail(method, "q_r") / sigma_tail(method, "q_d"), "<", 1.0, skip),
        ]
    curves = pruning[pruning["retained_percent"] < 100].groupby("curve")["accuracy"].mean()
    claims.append(_claim("merged_pruning_beats_ensemble",
                         "the merged curve (ensemble mu_r pruned by HMC sigma_r) beats the ensemble's own: mean accuracy gain below 100 % retained",
                         "Figure 3 right", curves["merged"] - curves["ensemble_mu_r"], ">", thresholds["merged_gain"], skip))
    claims.append(_claim("merged_pruning_beats_hmc",
                         "the merged curve beats HMC's own (HMC mu_r pruned by HMC sigma_r): mean accuracy gain below 100 % retained",
                         "Figure 3 right", curves["merged"] - curves["hmc_mu_r"], ">", thresholds["merged_gain"], skip))
    for method, representation, name in (("hmc", "q_r", "HMC"), ("vi", "q", "VI")):
        part = sigma[(sigma["method"] == method) & (sigma["representation"] == representation)]
        centres = 0.5 * (part["bin_left"] + part["bin_right"])
        near_prior = part.loc[(centres >= 0.8 * prior_sd) & (centres <= 1.2 * prior_sd), "count"].sum() / part["count"].sum()
        claims.append(_claim(f"{method}_prior_level_sigma",
                             f"{name}: many weights keep prior-level sigma (the data leaves them unconstrained): fraction within 0.8-1.2 prior sd",
                             "Figure 3 left", near_prior, ">=", thresholds["prior_level_fraction"], skip))
    return claims


def rhat_claims(rhat: Mapping, skip=()) -> list[Claim]:
    """Beyond the paper: aligning samples removes the permutation part of the between-chain variance."""
    if "before_alignment" not in rhat or "after_alignment" not in rhat:
        return []
    before, after = rhat["before_alignment"]["median"], rhat["after_alignment"]["median"]
    return [_claim("rhat_drops_after_alignment", "median split R-hat of the weights across chains: after / before alignment",
                   "HMC diagnostics", _ratio(after, before), "<", 1.0, skip)]


def to_json(claims: list[Claim]) -> str:
    return json.dumps({
        "passed": sum(c.passed is True for c in claims), "failed": sum(c.passed is False for c in claims),
        "skipped": sum(c.skipped for c in claims), "claims": [asdict(c) for c in claims],
    }, indent=2)


def to_markdown(claims: list[Claim], name: str) -> str:
    passed = sum(c.passed is True for c in claims)
    checked = sum(not c.skipped for c in claims)
    lines = [f"# Claims check: {name}", "",
             f"{passed} of {checked} checked claims hold in this run"
             + (f"; {sum(c.skipped for c in claims)} skipped by this preset." if any(c.skipped for c in claims) else "."),
             "", "| | claim | source | measured | threshold |", "|---|---|---|---|---|"]
    for c in claims:
        mark = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
        lines.append(f"| {mark} | {c.statement} | {c.source} | {c.measured:.4g} | {c.relation} {c.threshold:.4g} |")
    return "\n".join(lines) + "\n"
