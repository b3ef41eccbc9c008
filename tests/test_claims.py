"""The claims check on hand-made tables whose measured values are known by hand.

Each claim of ``claims.CLAIM_IDS`` is checked twice: on paper-like tables (in the column layout the
workflow writes) where it holds, and on the same tables with the property the claim is about
broken, where it must fail. Every measured value is asserted against the number worked out here by
hand, so a claim computed wrongly but favourably (a swapped sign, a wrong column, the wrong epoch
or split) fails a test.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from compactbnn import claims

THRESHOLDS = {
    "not_tracking_tolerance": 2.0, "not_recovery_tolerance": 0.5, "barrier_rank_correlation": 0.8,
    "control_ratio": 0.1, "ridge_ratio": 0.5, "not_path_fraction": 0.8, "not_path_after_fraction": 0.05,
    "merged_gain": 0.0, "prior_level_fraction": 0.2,
}
WIDTH = 32  # hidden width of the interpolation networks (Figure 2 d fractions)
PRIOR_SD = 1.0

# --- Experiment A (Figure 2 a-c): not_experiment.csv ------------------------------------------------
# Four NoT levels; the median is 32, so the "upper half" is levels 53 and 105.
LEVELS = np.array([1, 11, 53, 105])
INIT_DISTANCE = np.array([1.4, 15.0, 70.0, 135.0])
TRAINED_DISTANCE = np.array([3.0, 31.0, 135.0, 258.0])
CONTROL_DISTANCE = 0.3
TRAINED_BARRIER = np.array([0.0, 0.002, 0.036, 0.117])
TRAINED_MIDPOINT = np.array([0.0, 0.001, 0.020, 0.100])
SMALL_BARRIER = 0.001  # init and control barrier at every level (max variant)
SMALL_MIDPOINT = 0.0005


def not_experiment_table() -> pd.DataFrame:
    """Two runs. Per-run values differ by +-delta around the level means, so only the mean over runs is paper-like.

    Level means: init NoT' = NoT exactly; trained NoT' = NoT + 1; control NoT' = 0.
    """
    rows = []
    for run, sign in ((0, 1.0), (1, -1.0)):
        for i, level in enumerate(LEVELS):
            rows += [
                dict(run=run, not_init=level, curve="init", not_measured=level, distance=INIT_DISTANCE[i] + sign * 0.2,
                     barrier=SMALL_BARRIER + sign * 1e-4, barrier_midpoint=SMALL_MIDPOINT),
                dict(run=run, not_init=level, curve="trained", not_measured=level + 1 + int(sign),  # NoT+2, NoT
                     distance=TRAINED_DISTANCE[i] + sign * 1.0, barrier=TRAINED_BARRIER[i] + sign * 1e-4,
                     barrier_midpoint=TRAINED_MIDPOINT[i]),
                dict(run=run, not_init=level, curve="control", not_measured=0, distance=CONTROL_DISTANCE + sign * 0.1,
                     barrier=SMALL_BARRIER - sign * 1e-4, barrier_midpoint=SMALL_MIDPOINT),
            ]
    return pd.DataFrame(rows, columns=["run", "not_init", "curve", "not_measured", "distance", "barrier", "barrier_midpoint"])


# --- Experiment B (Figure 1, Figure 2 d): interpolation.csv -------------------------------------------
LAMBDAS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
BEFORE_LOSS = np.array([0.1, 0.6, 0.9, 1.0, 0.2])  # a ridge: barrier 1.0 - 0.15 = 0.85 (at lambda = 0.5: 0.75)
AFTER_LOSS = np.array([0.1, 0.15, 0.18, 0.2, 0.2])  # barrier 0.2 - 0.15 = 0.05 (at lambda = 0.5: 0.03)
FLAT_LOSS = np.array([2.3, 2.3, 2.3, 2.3, 2.3])
BEFORE_NOT = np.array([0, 1, 16, 31, 30])  # 30 / 32 of the width at lambda = 1 (31 at lambda = 0.75)
AFTER_NOT = np.array([0, 0, 1, 0, 0])  # at most 1 / 32


def interpolation_table() -> pd.DataFrame:
    """Epochs 0 and 1, splits train and test; only (epoch 1, train) holds the values above.

    Epoch 0 and the test split are decoys that would give other measured values (no ridge, NoT 0),
    so a claim reading the wrong epoch or split is caught.
    """
    rows = []
    for epoch in (0, 1):
        for split in ("train", "test"):
            target = epoch == 1 and split == "train"
            for when in ("before", "after"):
                if target:
                    loss = BEFORE_LOSS if when == "before" else AFTER_LOSS
                    nots = BEFORE_NOT if when == "before" else AFTER_NOT
                else:
                    loss, nots = FLAT_LOSS, np.zeros(len(LAMBDAS), int)
                for lam, value, count in zip(LAMBDAS, loss, nots):
                    rows.append(dict(epoch=epoch, **{"lambda": lam}, rebasin=when, split=split, loss=value,
                                     accuracy=1.0 - value / 3, not_to_w0=count))
    return pd.DataFrame(rows, columns=["epoch", "lambda", "rebasin", "split", "loss", "accuracy", "not_to_w0"])


# --- Experiment C (Table 1, Figure 3): posterior_metrics.csv, sigma.csv, pruning.csv ------------------
TABLE1 = {  # the paper's Table 1 (accuracies as fractions)
    ("hmc", "sample"): (1.0, 0.0, 0.9843, np.nan),
    ("hmc", "q_d"): (0.1212, 0.8641, 0.1111, 0.2806),
    ("hmc", "q_r"): (0.8249, 0.6570, 0.8234, 0.9225),
    ("ensemble", "sample"): (0.9931, 0.0229, 0.9866, np.nan),
    ("ensemble", "q_d"): (0.5239, 0.7210, 0.5225, 0.8640),
    ("ensemble", "q_r"): (0.9868, 0.0495, 0.9772, 0.9797),
    ("vi", "q"): (0.9885, 0.0235, 0.9811, 0.9804),
}


def metrics_table() -> pd.DataFrame:
    rows = [dict(method=m, representation=r, agreement=a, tv=tv, accuracy_samples=acc, accuracy_mean=mean,
                 nll=0.1, ece=0.01) for (m, r), (a, tv, acc, mean) in TABLE1.items()]
    return pd.DataFrame(rows, columns=["method", "representation", "agreement", "tv", "accuracy_samples",
                                       "accuracy_mean", "nll", "ece"])


EDGES = np.linspace(0.0, 2.0, 11)  # 10 bins of width 0.2, centres 0.1, 0.3, ..., 1.9; 0.9 and 1.1 lie within 0.8-1.2
SIGMA_COUNTS = {
    ("hmc", "q_d"): [0, 0, 0, 5, 10, 30, 25, 15, 10, 5],
    ("hmc", "q_r"): [0, 0, 0, 5, 10, 30, 30, 15, 10, 0],  # (10 + 30) / 100 = 0.4 near the prior
    ("ensemble", "q_d"): [80, 15, 5, 0, 0, 0, 0, 0, 0, 0],
    ("ensemble", "q_r"): [85, 12, 3, 0, 0, 0, 0, 0, 0, 0],
    ("vi", "q"): [5, 5, 10, 10, 20, 30, 10, 5, 5, 0],  # (20 + 30) / 100 = 0.5 near the prior
}
SIGMA_P99 = {("hmc", "q_d"): 1.6, ("hmc", "q_r"): 1.38, ("ensemble", "q_d"): 0.60, ("ensemble", "q_r"): 0.53,
             ("vi", "q"): 1.0}


def sigma_table(counts=None, p99=None) -> pd.DataFrame:
    counts = SIGMA_COUNTS if counts is None else counts
    p99 = SIGMA_P99 if p99 is None else p99
    frames = [pd.DataFrame({"method": m, "representation": r, "bin_left": EDGES[:-1], "bin_right": EDGES[1:],
                            "count": counts[m, r], "mean": 0.5 * p99[m, r], "median": 0.5 * p99[m, r],
                            "p99": p99[m, r], "max": 1.2 * p99[m, r]})
              for (m, r) in sorted(counts)]
    return pd.concat(frames, ignore_index=True)


RETAINED = [100, 50, 10]
PRUNING = {  # merged mean below 100 %: (0.9 + 0.6) / 2 = 0.75; ensemble_mu_r: (0.3 + 0.1) / 2 = 0.2; gain 0.55
    "hmc_mu_r": [0.92, 0.70, 0.33], "hmc_mu_d": [0.28, 0.13, 0.13], "ensemble_mu_r": [0.98, 0.30, 0.10],
    "ensemble_mu_d": [0.86, 0.20, 0.10], "merged": [0.98, 0.90, 0.60], "vi": [0.98, 0.98, 0.97],
}


def pruning_table(curves=None) -> pd.DataFrame:
    curves = PRUNING if curves is None else curves
    return pd.concat([pd.DataFrame({"curve": c, "retained_percent": RETAINED, "accuracy": acc})
                      for c, acc in curves.items()], ignore_index=True)


RHAT = {"before_alignment": {"median": 1.5, "max": 3.0}, "after_alignment": {"median": 1.05, "max": 1.2}}


def paper_tables() -> dict:
    return {"not": not_experiment_table(), "interpolation": interpolation_table(), "metrics": metrics_table(),
            "sigma": sigma_table(), "pruning": pruning_table(), "rhat": copy.deepcopy(RHAT)}


def run_claims(tables, *, thresholds=THRESHOLDS, skip=(), barrier="max", width=WIDTH, split="train",
               prior_sd=PRIOR_SD) -> list[claims.Claim]:
    """Every claim function, in the order workflow/scripts/claims.py calls them."""
    return [
        *claims.not_experiment_claims(tables["not"], thresholds, barrier, skip),
        *claims.interpolation_claims(tables["interpolation"], thresholds, width, split, skip),
        *claims.posterior_claims(tables["metrics"], tables["sigma"], tables["pruning"], thresholds, prior_sd, skip),
        *claims.rhat_claims(tables["rhat"], skip),
    ]


def by_id(checked: list[claims.Claim]) -> dict[str, claims.Claim]:
    return {c.id: c for c in checked}


# --- breaking one property at a time ------------------------------------------------------------------

def _set(table, mask, column, values):
    table.loc[mask, column] = values


def _curve(t, curve):
    return t["not"]["curve"] == curve


def _last_train(t, when):
    i = t["interpolation"]
    return (i["epoch"] == 1) & (i["split"] == "train") & (i["rebasin"] == when)


def _metric(t, method, representation):
    m = t["metrics"]
    return (m["method"] == method) & (m["representation"] == representation)


def _swap_metric(t, method, column):
    """Exchange q_d's and q_r's value of one column: the paper's result turned upside down."""
    d, r = _metric(t, method, "q_d"), _metric(t, method, "q_r")
    vd, vr = t["metrics"].loc[d, column].iloc[0], t["metrics"].loc[r, column].iloc[0]
    t["metrics"].loc[d, column], t["metrics"].loc[r, column] = vr, vd


def _swap_tail(t, method):
    p99 = dict(SIGMA_P99)
    p99[method, "q_d"], p99[method, "q_r"] = SIGMA_P99[method, "q_r"], SIGMA_P99[method, "q_d"]
    t["sigma"] = sigma_table(p99=p99)


def _move_from_prior(t, method, representation):
    counts = dict(SIGMA_COUNTS)
    counts[method, representation] = [30, 30, 20, 10, 0, 0, 0, 5, 5, 0]  # nothing in 0.8-1.2
    t["sigma"] = sigma_table(counts=counts)


def _trained_levels(t, values):
    """Set the trained curve's column to per-level values (same in both runs)."""
    n = t["not"]
    for level, value in zip(LEVELS, values):
        n.loc[(n["curve"] == "trained") & (n["not_init"] == level), "barrier"] = value


def break_not_tracking(t):  # NoT' far from NoT after training: NoT + 5 in both runs
    n = t["not"]
    n.loc[_curve(t, "trained"), "not_measured"] = n.loc[_curve(t, "trained"), "not_init"] + 5


def break_not_recovery(t):  # rebasin misses the planted P at init by 1 in every level
    n = t["not"]
    n.loc[_curve(t, "init"), "not_measured"] = n.loc[_curve(t, "init"), "not_init"] + 1


def break_barrier_growth(t):  # the trained barrier decreases with NoT
    _trained_levels(t, TRAINED_BARRIER[::-1])


def break_control_barrier(t):  # the control pair has the trained pair's barrier
    n = t["not"]
    n.loc[_curve(t, "control"), "barrier"] = n.loc[_curve(t, "trained"), "barrier"].to_numpy()


def break_init_barrier(t):
    n = t["not"]
    n.loc[_curve(t, "init"), "barrier"] = n.loc[_curve(t, "trained"), "barrier"].to_numpy()


def break_distance_growth(t):  # trained networks at half the distance of their initialisations
    n = t["not"]
    n.loc[_curve(t, "trained"), "distance"] = 0.5 * n.loc[_curve(t, "init"), "distance"].to_numpy()


def break_control_distance(t):
    n = t["not"]
    n.loc[_curve(t, "control"), "distance"] = n.loc[_curve(t, "trained"), "distance"].to_numpy()


def break_ridge(t):  # no ridge before rebasin: a dip, barrier 0.3 - 0.3 = 0
    _set(t["interpolation"], _last_train(t, "before"), "loss", [0.3, 0.2, 0.1, 0.2, 0.3])


def break_ridge_removal(t):  # the ridge persists after rebasin
    _set(t["interpolation"], _last_train(t, "after"), "loss", BEFORE_LOSS)


def break_not_path_before(t):  # W_1 close to W_0 in NoT before rebasin
    _set(t["interpolation"], _last_train(t, "before"), "not_to_w0", [0, 0, 1, 2, 3])


def break_not_path_after(t):  # rebasin leaves a large NoT along the path
    _set(t["interpolation"], _last_train(t, "after"), "not_to_w0", BEFORE_NOT)


def break_merged(t):  # merged pruning curve below the ensemble's: (0.2 + 0.05) / 2 - 0.2 = -0.075
    curves = dict(PRUNING)
    curves["merged"] = [0.98, 0.20, 0.05]
    t["pruning"] = pruning_table(curves)


def break_rhat(t):
    t["rhat"]["before_alignment"]["median"], t["rhat"]["after_alignment"]["median"] = 1.05, 1.5


# claim id -> (measured on the paper-like tables, how to break the claim, measured once broken)
CASES = {
    # mean over runs of trained NoT' is NoT + 1 at every level
    "not_stable_under_training": (1.0, break_not_tracking, 5.0),
    "not_recovered_at_init": (0.0, break_not_recovery, 1.0),
    "barrier_grows_with_not": (1.0, break_barrier_growth, -1.0),
    # upper half (NoT 53, 105): control 0.001 / trained (0.036 + 0.117) / 2
    "control_barrier_small": (SMALL_BARRIER / ((0.036 + 0.117) / 2), break_control_barrier, 1.0),
    "init_barrier_small": (SMALL_BARRIER / ((0.036 + 0.117) / 2), break_init_barrier, 1.0),
    "distance_grows_in_training": (TRAINED_DISTANCE.mean() / INIT_DISTANCE.mean(), break_distance_growth, 0.5),
    "control_distance_small": (CONTROL_DISTANCE / TRAINED_DISTANCE.mean(), break_control_distance, 1.0),
    "ridge_before_rebasin": (0.85, break_ridge, 0.0),
    "no_ridge_after_rebasin": (0.05 / 0.85, break_ridge_removal, 1.0),
    "not_path_before_rebasin": (30 / WIDTH, break_not_path_before, 3 / WIDTH),
    "not_path_after_rebasin": (1 / WIDTH, break_not_path_after, 31 / WIDTH),
    "hmc_q_r_agreement": (0.8249 - 0.1212, lambda t: _swap_metric(t, "hmc", "agreement"), 0.1212 - 0.8249),
    "hmc_q_r_tv": (0.8641 - 0.6570, lambda t: _swap_metric(t, "hmc", "tv"), 0.6570 - 0.8641),
    "hmc_mu_r_accuracy": (0.9225 - 0.2806, lambda t: _swap_metric(t, "hmc", "accuracy_mean"), 0.2806 - 0.9225),
    "hmc_sigma_r_tail_shorter": (1.38 / 1.6, lambda t: _swap_tail(t, "hmc"), 1.6 / 1.38),
    "ensemble_q_r_agreement": (0.9868 - 0.5239, lambda t: _swap_metric(t, "ensemble", "agreement"), 0.5239 - 0.9868),
    "ensemble_q_r_tv": (0.7210 - 0.0495, lambda t: _swap_metric(t, "ensemble", "tv"), 0.0495 - 0.7210),
    "ensemble_mu_r_accuracy": (0.9797 - 0.8640, lambda t: _swap_metric(t, "ensemble", "accuracy_mean"), 0.8640 - 0.9797),
    "ensemble_sigma_r_tail_shorter": (0.53 / 0.60, lambda t: _swap_tail(t, "ensemble"), 0.60 / 0.53),
    "merged_pruning_beats_ensemble": (0.55, break_merged, -0.075),
    # merged 0.75 against HMC mu_r (0.70 + 0.33) / 2 = 0.515; broken: 0.125 - 0.515
    "merged_pruning_beats_hmc": (0.75 - 0.515, break_merged, 0.125 - 0.515),
    "hmc_prior_level_sigma": (0.4, lambda t: _move_from_prior(t, "hmc", "q_r"), 0.0),
    "vi_prior_level_sigma": (0.5, lambda t: _move_from_prior(t, "vi", "q"), 0.0),
    "rhat_drops_after_alignment": (1.05 / 1.5, break_rhat, 1.5 / 1.05),
}


def test_every_claim_id_has_a_case():
    assert set(CASES) == set(claims.CLAIM_IDS)


def test_claim_functions_produce_exactly_the_claim_ids_once_each():
    ids = [c.id for c in run_claims(paper_tables())]
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(claims.CLAIM_IDS)
    assert set(ids) == set(claims.CLAIM_IDS)  # no id in CLAIM_IDS that no function produces


def test_all_claims_hold_on_the_paper_like_tables():
    checked = run_claims(paper_tables())
    assert [c.id for c in checked if c.passed is not True] == []
    assert not any(c.skipped for c in checked)


@pytest.mark.parametrize("claim_id", claims.CLAIM_IDS)
def test_claim_passes_with_its_measured_value(claim_id):
    expected, _, _ = CASES[claim_id]
    claim = by_id(run_claims(paper_tables()))[claim_id]
    assert claim.passed is True and claim.skipped is False
    assert claim.measured == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("claim_id", claims.CLAIM_IDS)
def test_claim_fails_when_its_property_is_broken(claim_id):
    _, breaker, expected = CASES[claim_id]
    tables = paper_tables()
    breaker(tables)
    claim = by_id(run_claims(tables))[claim_id]
    assert claim.passed is False and claim.skipped is False
    assert claim.measured == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- details of individual claims --------------------------------------------------------------------

def test_not_claims_read_the_midpoint_column_for_the_midpoint_barrier():
    tables = paper_tables()
    # The max-barrier column decreases with NoT; the midpoint column is left increasing.
    _trained_levels(tables, TRAINED_BARRIER[::-1])
    max_claims = by_id(claims.not_experiment_claims(tables["not"], THRESHOLDS, "max"))
    mid_claims = by_id(claims.not_experiment_claims(tables["not"], THRESHOLDS, "midpoint"))
    assert max_claims["barrier_grows_with_not"].passed is False
    assert mid_claims["barrier_grows_with_not"].passed is True
    assert mid_claims["barrier_grows_with_not"].measured == pytest.approx(1.0)
    # upper half: 0.0005 / ((0.020 + 0.100) / 2)
    assert mid_claims["control_barrier_small"].measured == pytest.approx(SMALL_MIDPOINT / 0.06)
    assert mid_claims["init_barrier_small"].measured == pytest.approx(SMALL_MIDPOINT / 0.06)


def test_not_tracking_counts_errors_in_both_directions():
    tables = paper_tables()
    n = tables["not"]
    # Level means off by +3, -3, +3, -3 (trained) and +1, -1, +1, -1 (init): signed errors cancel, absolute ones do not.
    for curve, error in (("trained", 3), ("init", 1)):
        for level, sign in zip(LEVELS, (1, -1, 1, -1)):
            n.loc[(n["curve"] == curve) & (n["not_init"] == level), "not_measured"] = level + sign * error
    checked = by_id(run_claims(tables))
    assert checked["not_stable_under_training"].measured == pytest.approx(3.0)
    assert checked["not_stable_under_training"].passed is False
    assert checked["not_recovered_at_init"].measured == pytest.approx(1.0)
    assert checked["not_recovered_at_init"].passed is False


def test_barrier_growth_is_a_rank_correlation_over_level_means():
    tables = paper_tables()
    # Not monotone: ranks 1, 3, 2, 4 have Spearman rho 0.8 (one adjacent swap of 4 ranks); Pearson's r is 0.47.
    _trained_levels(tables, [0.0, 0.1, 0.002, 0.117])
    claim = by_id(run_claims(tables))["barrier_grows_with_not"]
    assert claim.measured == pytest.approx(0.8)
    for threshold, holds in ((0.75, True), (0.85, False)):
        thresholds = dict(THRESHOLDS, barrier_rank_correlation=threshold)
        assert by_id(run_claims(tables, thresholds=thresholds))["barrier_grows_with_not"].passed is holds


def test_barrier_ratios_use_only_the_upper_half_of_levels():
    tables = paper_tables()
    n = tables["not"]
    # A huge control barrier at the lower levels (1, 11) does not count.
    n.loc[(n["curve"] == "control") & (n["not_init"] < 32), "barrier"] = 10.0
    claim = by_id(run_claims(tables))["control_barrier_small"]
    assert claim.passed is True
    assert claim.measured == pytest.approx(CASES["control_barrier_small"][0])


def test_interpolation_claims_use_the_last_epoch_and_the_given_split():
    tables = paper_tables()
    on_test = by_id(claims.interpolation_claims(tables["interpolation"], THRESHOLDS, WIDTH, "test"))
    # The test split is flat (no ridge, NoT 0) in the decoy rows.
    assert on_test["ridge_before_rebasin"].measured == pytest.approx(0.0)
    assert on_test["ridge_before_rebasin"].passed is False
    assert on_test["not_path_before_rebasin"].measured == 0.0
    # Epoch 1 is the last one; moving the paper-like rows to an earlier epoch than a flat one breaks the claim.
    table = tables["interpolation"].copy()
    table["epoch"] = 1 - table["epoch"]
    moved = by_id(claims.interpolation_claims(table, THRESHOLDS, WIDTH, "train"))
    assert moved["ridge_before_rebasin"].passed is False


def test_interpolation_claims_do_not_depend_on_row_order():
    tables = paper_tables()
    tables["interpolation"] = tables["interpolation"].sample(frac=1.0, random_state=0).reset_index(drop=True)
    checked = by_id(run_claims(tables))
    for claim_id in ("ridge_before_rebasin", "no_ridge_after_rebasin", "not_path_before_rebasin", "not_path_after_rebasin"):
        assert checked[claim_id].measured == pytest.approx(CASES[claim_id][0]), claim_id
        assert checked[claim_id].passed is True


def test_not_path_fractions_use_the_width():
    checked = by_id(claims.interpolation_claims(interpolation_table(), THRESHOLDS, 2 * WIDTH, "train"))
    assert checked["not_path_before_rebasin"].measured == pytest.approx(30 / 64)
    assert checked["not_path_before_rebasin"].passed is False  # 0.47 < 0.8
    assert checked["not_path_after_rebasin"].measured == pytest.approx(1 / 64)


def test_no_ridge_ratio_is_nan_and_fails_without_a_ridge():
    tables = paper_tables()
    break_ridge(tables)
    claim = by_id(run_claims(tables))["no_ridge_after_rebasin"]
    assert np.isnan(claim.measured)
    assert claim.passed is False


def test_merged_gain_excludes_the_full_network():
    tables = paper_tables()
    curves = dict(PRUNING)
    curves["merged"] = [0.10, 0.90, 0.60]  # far below at 100 %, which does not count
    tables["pruning"] = pruning_table(curves)
    claim = by_id(run_claims(tables))["merged_pruning_beats_ensemble"]
    assert claim.measured == pytest.approx(0.55)
    assert claim.passed is True


def test_prior_level_window_scales_with_prior_sd():
    # prior_sd 0.5: the window 0.4-0.6 holds only the bin centred at 0.5
    checked = by_id(run_claims(paper_tables(), prior_sd=0.5))
    assert checked["hmc_prior_level_sigma"].measured == pytest.approx(0 / 100)
    assert checked["vi_prior_level_sigma"].measured == pytest.approx(10 / 100)
    assert checked["hmc_prior_level_sigma"].passed is False
    assert checked["vi_prior_level_sigma"].passed is False


def test_sigma_tail_uses_the_p99_column():
    tables = paper_tables()
    # A longer sigma_r maximum alone does not change the claim; the 99th percentile does.
    s = tables["sigma"]
    s.loc[(s["method"] == "hmc") & (s["representation"] == "q_r"), "max"] = 5.0
    claim = by_id(run_claims(tables))["hmc_sigma_r_tail_shorter"]
    assert claim.measured == pytest.approx(1.38 / 1.6)


# --- thresholds, skipping, reports -------------------------------------------------------------------

@pytest.mark.parametrize("claim_id, key, threshold", [
    ("not_stable_under_training", "not_tracking_tolerance", 0.5),  # measured 1.0
    ("not_recovered_at_init", "not_recovery_tolerance", -0.1),  # measured 0.0
    ("barrier_grows_with_not", "barrier_rank_correlation", 1.01),  # measured 1.0
    ("control_barrier_small", "control_ratio", 0.005),  # measured 0.013
    ("no_ridge_after_rebasin", "ridge_ratio", 0.05),  # measured 0.059
    ("not_path_before_rebasin", "not_path_fraction", 0.95),  # measured 0.9375
    ("not_path_after_rebasin", "not_path_after_fraction", 0.01),  # measured 0.031
    ("merged_pruning_beats_ensemble", "merged_gain", 0.6),  # measured 0.55
    ("hmc_prior_level_sigma", "prior_level_fraction", 0.45),  # measured 0.4
])
def test_thresholds_come_from_the_dict(claim_id, key, threshold):
    thresholds = dict(THRESHOLDS, **{key: threshold})
    claim = by_id(run_claims(paper_tables(), thresholds=thresholds))[claim_id]
    assert claim.threshold == threshold
    assert claim.passed is False
    assert by_id(run_claims(paper_tables()))[claim_id].threshold == THRESHOLDS[key]


def test_skipped_claims_report_passed_none():
    tables = paper_tables()
    break_ridge_removal(tables)
    skip = {"no_ridge_after_rebasin", "hmc_q_r_agreement"}  # one failing, one passing claim
    checked = by_id(run_claims(tables, skip=skip))
    for claim_id in skip:
        assert checked[claim_id].passed is None and checked[claim_id].skipped is True
    # the measured value is still reported
    assert checked["no_ridge_after_rebasin"].measured == pytest.approx(1.0)
    assert checked["hmc_q_r_agreement"].measured == pytest.approx(0.8249 - 0.1212)
    assert all(c.skipped is False and c.passed is True for i, c in checked.items() if i not in skip)


def test_to_json_counts_passed_failed_skipped():
    tables = paper_tables()
    break_merged(tables)
    break_rhat(tables)
    checked = run_claims(tables, skip={"ridge_before_rebasin", "rhat_drops_after_alignment"})
    report = json.loads(claims.to_json(checked))
    total = len(claims.CLAIM_IDS)
    # break_merged breaks both merged-curve claims
    assert (report["passed"], report["failed"], report["skipped"]) == (total - 4, 2, 2)
    assert [c["id"] for c in report["claims"]] == [c.id for c in checked]
    merged = next(c for c in report["claims"] if c["id"] == "merged_pruning_beats_ensemble")
    assert merged["passed"] is False and merged["measured"] == pytest.approx(-0.075)
    rhat = next(c for c in report["claims"] if c["id"] == "rhat_drops_after_alignment")
    assert rhat["passed"] is None and rhat["skipped"] is True


def test_to_markdown_marks_failures_and_skips():
    tables = paper_tables()
    break_merged(tables)
    checked = run_claims(tables, skip={"ridge_before_rebasin"})
    text = claims.to_markdown(checked, "unit")
    total = len(claims.CLAIM_IDS)
    assert text.startswith("# Claims check: unit")
    # break_merged breaks both merged-curve claims
    assert f"{total - 3} of {total - 1} checked claims hold in this run; 1 skipped" in text
    rows = {line for line in text.splitlines() if line.startswith("| ") and "claim |" not in line}
    merged = [r for r in rows if "merged curve" in r]
    assert len(merged) == 2 and all(r.startswith("| **FAIL** |") for r in merged)
    ridge = [r for r in rows if "loss ridge" in r]
    assert len(ridge) == 1 and ridge[0].startswith("| skipped |")
    assert sum(r.startswith("| pass |") for r in rows) == total - 3
    assert sum("FAIL" in r for r in rows) == 2


def test_to_markdown_without_skips_has_no_skip_note():
    text = claims.to_markdown(run_claims(paper_tables()), "unit")
    total = len(claims.CLAIM_IDS)
    assert f"{total} of {total} checked claims hold in this run." in text
    assert "FAIL" not in text and "skipped" not in text


def test_rhat_claims_need_before_and_after_data():
    assert claims.rhat_claims({}) == []
    assert claims.rhat_claims({"note": "one chain: no split R-hat"}) == []
    (claim,) = claims.rhat_claims(RHAT)
    assert claim.id == "rhat_drops_after_alignment" and claim.passed is True
    assert claim.measured == pytest.approx(1.05 / 1.5)


@pytest.mark.parametrize("claim_id", ["control_barrier_small", "init_barrier_small"])
def test_barrier_ratios_fail_when_the_trained_barrier_is_not_positive(claim_id):
    tables = paper_tables()
    n = tables["not"]
    n.loc[_curve(tables, "trained"), "barrier"] = -n.loc[_curve(tables, "trained"), "barrier"].to_numpy()
    claim = by_id(run_claims(tables))[claim_id]
    assert claim.passed is False and np.isnan(claim.measured)


def test_rhat_claims_need_both_sides():
    assert claims.rhat_claims({"before_alignment": {"median": 1.5}}) == []
