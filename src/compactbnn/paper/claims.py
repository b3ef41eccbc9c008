"""The paper's claims as automatic checks on one run's tidy tables (PAPER.md).

Each check measures one number from the data behind a figure or table, compares it with a
threshold from the config and says whether the claim holds in this run. A preset may skip a
claim its scale cannot show (``skip``); skipped claims are listed, never counted as passed.
Every check is built so that data without the paper's effect fails it (tests/test_claims.py).

Beside the claims, the module ``reproduction`` puts every number the paper prints next to this
run's; ``claims_report`` writes both as claims.json, claims.md and data/reproduction.csv.

This module imports no JAX: the workflow's config check reads ``CLAIM_IDS`` cheaply.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from compactbnn.config.claim_ids import CLAIM_IDS  # noqa: F401 (the ids of the claims checked here)


PAPER_METHODS = ("hmc", "ensemble", "vi")  # the paper's posteriors; SG-MCMC is ours, beyond it

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
    detail: str = ""  # supporting numbers: where the measured value was taken


def _claim(id, statement, source, measured, relation, threshold, skip, detail="") -> Claim:
    measured = float(measured)
    if id in skip:
        return Claim(id, statement, source, measured, relation, float(threshold), None, True, detail)
    passed = bool(np.isfinite(measured) and RELATIONS[relation](measured, threshold))
    return Claim(id, statement, source, measured, relation, float(threshold), passed, False, detail)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN (a failed claim) unless the denominator is positive."""
    return float(numerator) / float(denominator) if denominator > 0 else float("nan")


def expected_random_not(widths: int | Sequence[int]) -> float:
    """Expected NoT of uniform random permutations of each hidden layer, summed: sum of n - H_n.

    A uniform random permutation of n elements has H_n = 1 + 1/2 + ... + 1/n cycles on average,
    so n - H_n transpositions (512 units: 505.2).
    """
    widths = [widths] if np.isscalar(widths) else list(widths)
    return float(sum(n - np.sum(1.0 / np.arange(1, n + 1)) for n in widths))


def random_not_sd(widths: int | Sequence[int]) -> float:
    """Standard deviation of that NoT: the number of cycles of a uniform random permutation of n has
    variance sum_k (1/k - 1/k^2) (Goncharov); hidden layers are independent (512 units: 2.28)."""
    widths = [widths] if np.isscalar(widths) else list(widths)
    return float(np.sqrt(sum(np.sum(1.0 / np.arange(1, n + 1) - 1.0 / np.arange(1, n + 1) ** 2) for n in widths)))


# ---------------------------------------------------------------------------------------------
# Experiment A: Figure 2 a-c

def level_means(table: pd.DataFrame, curve: str, column: str) -> pd.Series:
    """Mean over runs of one column of one curve, indexed by NoT level."""
    return table[table["curve"] == curve].groupby("not_init")[column].mean()


def _largest_deviation(not_means: pd.Series) -> tuple[float, int]:
    """Largest |NoT' - NoT| over levels of the per-level mean NoT', and the level where it occurs."""
    deviation = np.abs(not_means.to_numpy() - not_means.index.to_numpy())
    worst = int(np.argmax(deviation))
    return float(deviation[worst]), int(not_means.index[worst])


def not_experiment_claims(table: pd.DataFrame, thresholds: Mapping, barrier: str, skip=()) -> list[Claim]:
    """Figure 2 a-c.

    NoT stability compares the mean over runs with NoT at each level (the line the paper's panel (a)
    draws and reads "within about +-2" off) and takes the largest deviation over levels, so one
    level far off the diagonal fails the claim however well the others track.
    """
    column = "barrier" if barrier == "max" else "barrier_midpoint"
    trained_not = level_means(table, "trained", "not_measured")
    init_not = level_means(table, "init", "not_measured")
    levels = trained_not.index.to_numpy()
    upper = levels >= np.median(levels)
    trained_barrier = level_means(table, "trained", column)
    control_barrier = level_means(table, "control", column)
    init_barrier = level_means(table, "init", column)
    trained_distance = level_means(table, "trained", "distance")
    control_distance = level_means(table, "control", "distance")
    init_distance = level_means(table, "init", "distance")
    rho = spearmanr(levels, trained_barrier.to_numpy()).statistic if len(levels) > 2 else np.nan
    upper_trained = trained_barrier.to_numpy()[upper].mean()
    tracking, tracking_level = _largest_deviation(trained_not)
    recovery, recovery_level = _largest_deviation(init_not)
    return [
        _claim("not_stable_under_training",
               "NoT(P') after training tracks NoT(P) at initialisation: largest |mean NoT' - NoT| over levels (transpositions)",
               "Figure 2a", tracking, "<=", thresholds["not_tracking_tolerance"], skip, f"largest at NoT {tracking_level}"),
        _claim("not_recovered_at_init",
               "rebasin recovers the planted P at initialisation: largest |mean NoT' - NoT| over levels",
               "Figure 2a", recovery, "<=", thresholds["not_recovery_tolerance"], skip, f"largest at NoT {recovery_level}"),
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


# ---------------------------------------------------------------------------------------------
# Experiment B: Figure 1 and Figure 2 d

def interpolation_grid(table: pd.DataFrame, split: str, rebasin: str, column: str) -> pd.DataFrame:
    """One column of interpolation.csv as an (epoch x lambda) grid, for one split and one side of rebasin."""
    part = table[(table["split"] == split) & (table["rebasin"] == rebasin)]
    if part.empty:
        raise ValueError(f"interpolation table has no rows for split {split!r} and rebasin {rebasin!r}")
    grid = part.pivot_table(index="epoch", columns="lambda", values=column, aggfunc="mean").sort_index()
    return grid.sort_index(axis=1)


def nearest_value(values, target: float):
    values = np.asarray(values)
    return values[int(np.argmin(np.abs(values - target)))]


def midpoint_excess(loss: pd.DataFrame) -> pd.Series:
    """Per epoch: loss at the grid's lambda nearest 0.5 minus the mean of the two end losses (lambda 0 and 1).

    Unlike the max-over-lambda barrier, this is 0 for a loss that is linear along the path however
    unequal its ends are: only a bump in the middle counts.
    """
    lambdas = loss.columns.to_numpy(dtype=float)
    if not (np.isclose(lambdas.min(), 0.0) and np.isclose(lambdas.max(), 1.0)):
        raise ValueError(f"the interpolation grid must contain lambda 0 and 1, got {lambdas.min()}..{lambdas.max()}")
    middle = loss.columns[int(np.argmin(np.abs(lambdas - 0.5)))]
    return loss[middle] - 0.5 * (loss[loss.columns[0]] + loss[loss.columns[-1]])


def interpolation_claims(table: pd.DataFrame, thresholds: Mapping, hidden: int | Sequence[int], split: str,
                         skip=()) -> list[Claim]:
    """Figure 1 and Figure 2 d, over epochs (the paper: the ridge and the NoT profile hold at every epoch).

    ``hidden``: the hidden widths (NoT is summed over hidden layers).
    """
    loss_before, loss_after = (interpolation_grid(table, split, when, "loss") for when in ("before", "after"))
    not_before, not_after = (interpolation_grid(table, split, when, "not_to_w0") for when in ("before", "after"))
    return [*_ridge_claims(loss_before, loss_after, thresholds, skip),
            *_not_path_claims(not_before, not_after, thresholds, hidden, skip)]


def _ridge_claims(loss_before: pd.DataFrame, loss_after: pd.DataFrame, thresholds: Mapping, skip) -> list[Claim]:
    """Figure 1 at epochs 1.. (epoch 0 is the initialisation, flat at ~2.3): a ridge before rebasin, none after."""
    trained = lambda series: series[series.index >= 1]  # noqa: E731
    excess_before, excess_after = trained(midpoint_excess(loss_before)), trained(midpoint_excess(loss_after))
    margin = thresholds["ridge_margin"]
    if len(excess_before):
        share = float(np.mean(excess_before.to_numpy() > margin))
        after_ratio = _ratio(excess_after.max(), excess_before.mean())
        middle = nearest_value(loss_before.columns.to_numpy(dtype=float), 0.5)
        ridge_detail = (f"lambda {middle:g} vs the ends; excess at epochs {excess_before.index.min()}..{excess_before.index.max()}: "
                        f"smallest {excess_before.min():.4g} (epoch {excess_before.idxmin()}), last {excess_before.iloc[-1]:.4g}")
        after_detail = (f"largest after {excess_after.max():.4g} (epoch {excess_after.idxmax()}), "
                        f"mean before {excess_before.mean():.4g}")
    else:
        share = after_ratio = float("nan")
        ridge_detail = after_detail = "no trained epoch"
    return [
        _claim("ridge_before_rebasin",
               f"before rebasin the path has a loss ridge at every trained epoch: share of epochs whose midpoint loss exceeds the mean of the ends by more than {margin:g}",
               "Figure 1", share, ">=", thresholds["ridge_epoch_fraction"], skip, ridge_detail),
        _claim("no_ridge_after_rebasin",
               "rebasin removes the ridge: largest midpoint excess after rebasin over epochs / mean excess before",
               "Figure 1", after_ratio, "<=", thresholds["ridge_ratio"], skip, after_detail),
    ]


def _not_path_claims(not_before: pd.DataFrame, not_after: pd.DataFrame, thresholds: Mapping,
                     hidden: int | Sequence[int], skip) -> list[Claim]:
    """Figure 2 d at every epoch: NoT(W_lambda, W_0) ~0 for small lambda, rising, a random permutation's for large
    lambda before rebasin; ~0 everywhere after."""
    width = int(np.sum(hidden))
    random_not, random_sd = expected_random_not(hidden), random_not_sd(hidden)
    lambdas = not_before.columns.to_numpy(dtype=float)
    positive = lambdas[lambdas > 0]
    small = positive[positive <= thresholds["not_path_small_lambda"] + 1e-9]
    small = small if len(small) else positive[:1]  # a coarse grid: its first step stands for "small lambda"
    large = lambdas[lambdas >= thresholds["not_path_large_lambda"] - 1e-9]
    small_not = not_before[small].to_numpy().max()
    drops = -np.diff(not_before.to_numpy(dtype=float), axis=1)  # positive where NoT falls as lambda grows
    worst_drop = max(0.0, float(drops.max())) if drops.size else 0.0  # 0.0 first: never "-0"
    large_not = not_before[large].to_numpy().min()
    return [
        _claim("not_path_zero_at_small_lambda",
               "before rebasin, NoT(W_lambda, W_0) is about 0 for small lambda at every epoch: largest, as a fraction of the width",
               "Figure 2d", small_not / width, "<=", thresholds["not_path_zero_fraction"], skip,
               f"lambda {', '.join(f'{x:g}' for x in small)}; largest NoT {small_not:g}"),
        _claim("not_path_rises_monotonically",
               "before rebasin, NoT(W_lambda, W_0) rises monotonically in lambda at every epoch: largest drop between neighbouring lambdas / width",
               "Figure 2d", worst_drop / width, "<=", thresholds["not_path_monotone_tolerance"], skip,
               f"largest drop {worst_drop:g} transpositions"),
        _claim("not_path_random_at_large_lambda",
               "before rebasin, NoT(W_lambda, W_0) for large lambda is a random permutation's at every epoch: "
               "shortfall of the smallest NoT below a random permutation's expected NoT, in its standard deviations",
               "Figure 2d", (random_not - large_not) / random_sd, "<=", thresholds["not_path_random_sd"], skip,
               f"lambda >= {large.min():g}; smallest NoT {large_not:g}; random permutation: {random_not:.1f} +- {random_sd:.2f}"),
        _claim("not_path_after_rebasin",
               "after rebasin, NoT(W_lambda, W_0) is about 0 for every lambda and epoch: largest, as a fraction of the width",
               "Figure 2d", not_after.to_numpy().max() / width, "<=", thresholds["not_path_after_fraction"], skip),
    ]


# ---------------------------------------------------------------------------------------------
# Experiment C: Table 1 and Figure 3

def table1_value(metrics: pd.DataFrame, method: str, representation: str, column: str) -> float:
    rows = metrics.loc[(metrics["method"] == method) & (metrics["representation"] == representation), column]
    return float(rows.iloc[0]) if len(rows) else float("nan")


def sigma_part(sigma: pd.DataFrame, method: str, representation: str) -> pd.DataFrame:
    return sigma[(sigma["method"] == method) & (sigma["representation"] == representation)]


def posterior_claims(metrics: pd.DataFrame, sigma: pd.DataFrame, pruning: pd.DataFrame, thresholds: Mapping,
                     prior_sd: float, skip=()) -> list[Claim]:
    """Table 1 and Figure 3; the q_r-over-q_d gains must reach the margins of ``thresholds["q_r_gain"]``."""
    value = lambda method, representation, column: table1_value(metrics, method, representation, column)  # noqa: E731
    sigma_tail = lambda method, representation: float(sigma_part(sigma, method, representation)["p99"].iloc[0])  # noqa: E731
    claims = []
    for method, name in (("hmc", "HMC"), ("ensemble", "ensemble")):
        gain = thresholds["q_r_gain"][method]
        claims += [
            _claim(f"{method}_q_r_agreement", f"{name}: q_r agrees with HMC more than q_d: agreement(q_r) - agreement(q_d)",
                   "Table 1", value(method, "q_r", "agreement") - value(method, "q_d", "agreement"), ">", gain["agreement"], skip),
            _claim(f"{method}_q_r_tv", f"{name}: q_r is closer to HMC than q_d: TV(q_d) - TV(q_r)",
                   "Table 1", value(method, "q_d", "tv") - value(method, "q_r", "tv"), ">", gain["tv"], skip),
            _claim(f"{method}_mu_r_accuracy", f"{name}: the aligned mean mu_r is a better network than mu_d: test accuracy difference (fraction)",
                   "Table 1", value(method, "q_r", "accuracy_mean") - value(method, "q_d", "accuracy_mean"), ">",
                   gain["mu_accuracy"], skip),
            _claim(f"{method}_sigma_r_tail_shorter", f"{name}: alignment shortens the right tail of sigma: 99th percentile of sigma_r / of sigma_d",
                   "Figure 3 left", _ratio(sigma_tail(method, "q_r"), sigma_tail(method, "q_d")), "<=",
                   thresholds["sigma_tail_ratio"], skip),
        ]
    curves = pruning[pruning["retained_percent"] < 100].groupby("curve")["accuracy"].mean()
    claims.append(_claim("merged_pruning_beats_ensemble",
                         "the merged curve (ensemble mu_r pruned by HMC sigma_r) beats the ensemble's own: mean accuracy gain below 100 % retained",
                         "Figure 3 right", curves["merged"] - curves["ensemble_mu_r"], ">",
                         thresholds["merged_gain"]["ensemble"], skip))
    claims.append(_claim("merged_pruning_beats_hmc",
                         "the merged curve beats HMC's own (HMC mu_r pruned by HMC sigma_r): mean accuracy gain below 100 % retained",
                         "Figure 3 right", curves["merged"] - curves["hmc_mu_r"], ">", thresholds["merged_gain"]["hmc"], skip))
    for method, representation, name in (("hmc", "q_r", "HMC"), ("vi", "q", "VI")):
        claims.append(_prior_level_claim(sigma, method, representation, name, thresholds, prior_sd, skip))
    return claims


def prior_level_fraction(sigma: pd.DataFrame, method: str, representation: str, prior_sd: float) -> float:
    """Share of a Gaussian's sigmas (sigma.csv's histogram) in bins centred within 0.8-1.2 prior sd."""
    part = sigma_part(sigma, method, representation)
    centres = 0.5 * (part["bin_left"] + part["bin_right"])
    return _ratio(part.loc[(centres >= 0.8 * prior_sd) & (centres <= 1.2 * prior_sd), "count"].sum(), part["count"].sum())


def _prior_level_claim(sigma, method, representation, name, thresholds, prior_sd, skip) -> Claim:
    return _claim(f"{method}_prior_level_sigma",
                  f"{name}: many weights keep prior-level sigma (the data leaves them unconstrained): fraction within 0.8-1.2 prior sd",
                  "Figure 3 left", prior_level_fraction(sigma, method, representation, prior_sd), ">=",
                  thresholds["prior_level_fraction"], skip)


def rhat_claims(rhat: Mapping, skip=()) -> list[Claim]:
    """Beyond the paper: aligning samples removes the permutation part of the between-chain variance."""
    if "before_alignment" not in rhat or "after_alignment" not in rhat:
        return []
    return [_claim("rhat_drops_after_alignment", "median split R-hat of the weights across chains: after / before alignment",
                   "HMC diagnostics", rhat_ratio(rhat), "<", 1.0, skip)]


def rhat_ratio(rhat: Mapping) -> float:
    """Median weight R-hat after alignment / before (rhat.json); NaN unless the one before is positive."""
    return _ratio(rhat["after_alignment"]["median"], rhat["before_alignment"]["median"])


def weight_space_gain(table: pd.DataFrame, keep: Callable[[str, str], bool]) -> tuple[float, str]:
    """(mean over the kept method pairs of Pearson(mu) after minus before rebasin, the pairs' values as text).

    ``keep(a, b)``: whether the pair (sorted by name) counts. NaN when a kept pair lacks a side or none is kept.
    """
    mu = table[table["quantity"] == "mu"]
    pairs = mu.assign(pair=[tuple(sorted(p)) for p in zip(mu["method_a"], mu["method_b"])])
    pairs = pairs[[keep(*pair) for pair in pairs["pair"]]]
    by_pair = pairs.pivot_table(index="pair", columns="alignment", values="pearson", aggfunc="mean")
    if by_pair.empty or not {"before", "after"} <= set(by_pair.columns):
        return float("nan"), "the table lacks mu correlations before or after rebasin"
    gains = by_pair["after"] - by_pair["before"]  # NaN where a pair lacks one side
    gain = float(gains.mean()) if gains.notna().all() else float("nan")
    return gain, "; ".join(f"{a}-{b}: {row['before']:.3g} -> {row['after']:.3g}" for (a, b), row in by_pair.iterrows())


def weight_space_claims(table: pd.DataFrame | None, thresholds: Mapping, skip=()) -> list[Claim]:
    """Beyond the paper (its abstract's promise): after rebasin, the methods' mean weights correlate.

    ``table``: weight_space.csv (quantity, method_a, method_b, alignment, pearson, ...). Measured:
    the mean over method pairs of Pearson(mu) after rebasin minus before; a pair missing either
    side makes it NaN (a failure). No table (the comparison not computed): no claim.
    """
    if table is None:
        return []
    # the paper's three methods; SG-MCMC's pairs have a claim of their own (sgmcmc_claims)
    gain, detail = weight_space_gain(table, lambda a, b: a in PAPER_METHODS and b in PAPER_METHODS)
    return [_claim("weight_space_means_agree_after_rebasin",
                   "HMC, the ensemble and VI agree in weight space after rebasin: Pearson correlation of mu, after minus before, mean over method pairs",
                   "weight space", gain, ">", thresholds["weight_space_gain"], skip, detail)]


# ---------------------------------------------------------------------------------------------
# Beyond the paper: cyclical SG-MCMC as a fourth posterior


def sgmcmc_claims(metrics: pd.DataFrame, sigma: pd.DataFrame, rhat: Mapping | None, weight_space: pd.DataFrame | None,
                  thresholds: Mapping, prior_sd: float, skip=()) -> list[Claim]:
    """The paper's claims for HMC asked of cyclical SG-MCMC's samples; none when the tables hold no SG-MCMC rows.

    q_r must beat q_d as a summary of SG-MCMC's own samples (``agreement_own``/``tv_own``: against
    their predictive, as HMC's q's are against HMC's) and as a network (mu_r against mu_d), by the
    margins of ``thresholds["q_r_gain"]["sgmcmc"]``; its sigma_r must reach prior level where the data
    say nothing (``prior_level_fraction``); with ``rhat`` (sgmcmc_rhat.json, two or more chains) the
    weights' R-hat must drop after alignment; with ``weight_space`` its mean weights must agree with
    the other methods' after rebasin (mean Pearson gain over its pairs, ``weight_space_gain``).
    """
    if not (metrics["method"] == "sgmcmc").any():
        return []
    value = lambda representation, column: table1_value(metrics, "sgmcmc", representation, column)  # noqa: E731
    gain = thresholds["q_r_gain"]["sgmcmc"]
    claims = [
        _claim("sgmcmc_q_r_agreement", "SG-MCMC: q_r agrees with its samples' predictive more than q_d: agreement(q_r) - agreement(q_d)",
               "Table 1", value("q_r", "agreement_own") - value("q_d", "agreement_own"), ">", gain["agreement"], skip),
        _claim("sgmcmc_q_r_tv", "SG-MCMC: q_r is closer to its samples' predictive than q_d: TV(q_d) - TV(q_r)",
               "Table 1", value("q_d", "tv_own") - value("q_r", "tv_own"), ">", gain["tv"], skip),
        _claim("sgmcmc_mu_r_accuracy", "SG-MCMC: the aligned mean mu_r is a better network than mu_d: test accuracy difference (fraction)",
               "Table 1", value("q_r", "accuracy_mean") - value("q_d", "accuracy_mean"), ">", gain["mu_accuracy"], skip),
        _prior_level_claim(sigma, "sgmcmc", "q_r", "SG-MCMC", thresholds, prior_sd, skip),
    ]
    if rhat is not None and "before_alignment" in rhat and "after_alignment" in rhat:
        claims.append(_claim("sgmcmc_rhat_drops_after_alignment",
                             "SG-MCMC: median split R-hat of the weights across chains: after / before alignment",
                             "SG-MCMC diagnostics", rhat_ratio(rhat), "<", 1.0, skip))
    if weight_space is not None:
        ws_gain, detail = weight_space_gain(weight_space, lambda a, b: "sgmcmc" in (a, b))
        claims.append(_claim("sgmcmc_weight_space_agrees_after_rebasin",
                             "SG-MCMC agrees with HMC, the ensemble and VI in weight space after rebasin: Pearson correlation "
                             "of mu, after minus before, mean over its pairs", "weight space", ws_gain, ">",
                             thresholds["weight_space_gain"], skip, detail))
    return claims
