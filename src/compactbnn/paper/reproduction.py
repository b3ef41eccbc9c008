"""Every number the paper prints (PAPER.md, ``paper``) beside this run's, each with a tolerance from the config.

``reproduction`` builds the rows from the same tidy tables the claims read (``claims``); with
``claims.reproduction.count`` (the paper's scale) the rows count as checks in the reports
(``claims_report``), smaller presets show them without counting.

This module imports no JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from compactbnn.paper import printed_numbers
from compactbnn.paper.claims import table1_value, level_means, interpolation_grid, nearest_value, sigma_part


TOLERANCE_KEYS = ("agreement", "tv", "accuracy", "pruning", "sigma", "distance", "barrier", "loss", "transpositions")
RELATIVE_TOLERANCES = ("distance",)  # a fraction of the paper's value; the others are absolute, in the quantity's unit


@dataclass
class Reproduced:
    id: str
    quantity: str
    source: str
    printed: str  # the paper's value as PAPER.md prints it ("~" where read off a figure)
    low: float  # the printed value, or the ends of a printed range
    high: float
    ours: float | None  # None when not at this scale
    at: str  # where this run's value was taken (NoT level, epoch, lambda), or why it is not at this scale
    group: str  # the tolerance group (claims.reproduction.tolerances)
    tolerance: float  # in the quantity's unit, or a fraction of the printed value (RELATIVE_TOLERANCES)
    within: bool | None  # None: not at this scale
    counted: bool = False


def _printed(value, approximate: bool) -> str:
    text = f"{value[0]:g}-{value[1]:g}" if isinstance(value, tuple) else f"{value:g}"
    return ("~" if approximate else "") + text


def _reproduced(id, quantity, source, value, ours, at, tolerances, group, approximate=True) -> Reproduced:
    """One printed number beside ours; ``ours`` None means not at this scale (``at`` says why)."""
    low, high = value if isinstance(value, tuple) else (value, value)
    tolerance = float(tolerances[group])
    if ours is None:
        return Reproduced(id, quantity, source, _printed(value, approximate), low, high, None, at, group, tolerance, None)
    ours = float(ours)
    slack = tolerance * max(abs(low), abs(high)) if group in RELATIVE_TOLERANCES else tolerance
    within = bool(np.isfinite(ours) and low - slack <= ours <= high + slack)
    return Reproduced(id, quantity, source, _printed(value, approximate), low, high, ours, at, group, tolerance, within)


def _table1_rows(metrics: pd.DataFrame, tolerances: Mapping) -> list[Reproduced]:
    columns = (("agreement", "agreement with HMC", "agreement", 1.0), ("tv", "TV to HMC", "tv", 1.0),
               ("accuracy_samples", "test accuracy % of samples", "accuracy", 100.0),
               ("accuracy_mean", "test accuracy % of the mean weights", "accuracy", 100.0))
    rows = []
    for (method, representation), printed in printed_numbers.TABLE1.items():
        for (column, name, group, scale), value in zip(columns, printed):
            if value is None:  # N/A in the paper
                continue
            ours = scale * table1_value(metrics, method, representation, column)
            rows.append(_reproduced(f"table1.{method}.{representation}.{column}", f"{method} {representation}: {name}",
                                    "Table 1", value, ours, "", tolerances, group, approximate=False))
    return rows


def _pruning_rows(pruning: pd.DataFrame, tolerances: Mapping) -> list[Reproduced]:
    rows = []
    for curve, values in printed_numbers.PRUNING.items():
        part = pruning[pruning["curve"] == curve].set_index("retained_percent")["accuracy"]
        for percent, value in zip(printed_numbers.RETAINED_PERCENTS, values):
            ours = 100.0 * part[percent] if percent in part.index else None
            rows.append(_reproduced(f"pruning.{curve}.{percent}", f"{curve}: test accuracy % at {percent} % retained",
                                    "Figure 3 right", value, ours, "" if ours is not None else "percentage not in this run",
                                    tolerances, "pruning", approximate=(curve, percent) in printed_numbers.PRUNING_APPROXIMATE))
    return rows


def _sigma_rows(sigma: pd.DataFrame, tolerances: Mapping) -> list[Reproduced]:
    rows = []
    for (method, representation), value in printed_numbers.SIGMA_MAX.items():
        part = sigma_part(sigma, method, representation)
        rows.append(_reproduced(f"sigma.{method}.{representation}.max", f"{method} sigma of {representation}: largest",
                                "Figure 3 left", value, part["max"].iloc[0], "", tolerances, "sigma"))
    for (method, representation), value in printed_numbers.SIGMA_MIN.items():
        part = sigma_part(sigma, method, representation)
        lowest = part.loc[part["count"] > 0, "bin_left"].min()
        width = float((part["bin_right"] - part["bin_left"]).iloc[0])
        rows.append(_reproduced(f"sigma.{method}.{representation}.min", f"{method} sigma of {representation}: smallest",
                                "Figure 3 left", value, lowest, f"left edge of the lowest non-empty bin (width {width:.3g})",
                                tolerances, "sigma"))
    for (method, representation), value in printed_numbers.SIGMA_MODE.items():
        part = sigma_part(sigma, method, representation)
        fullest = part.loc[part["count"].idxmax()]
        rows.append(_reproduced(f"sigma.{method}.{representation}.mode", f"{method} sigma of {representation}: histogram peak",
                                "Figure 3 left", value, 0.5 * (fullest["bin_left"] + fullest["bin_right"]),
                                "centre of the fullest bin", tolerances, "sigma"))
    return rows


def _at_level(means: pd.Series, level: int) -> tuple[float | None, str]:
    """The level mean at the grid's level nearest ``level``; None outside this run's range of levels."""
    levels = means.index.to_numpy()
    if level < levels.min() or level > levels.max():
        return None, f"not at this scale: levels {levels.min()}..{levels.max()}"
    nearest = int(nearest_value(levels, level))
    return float(means[nearest]), f"NoT {nearest}" + ("" if nearest == level else f" (nearest to {level})")


def _saturated(means: pd.Series) -> tuple[float | None, str]:
    """Mean over the levels from printed_numbers.SATURATION_FROM on (the plateau), None if this run has none."""
    upper = means[means.index >= printed_numbers.SATURATION_FROM]
    if upper.empty:
        return None, f"not at this scale: no level >= {printed_numbers.SATURATION_FROM}"
    return float(upper.mean()), f"mean over NoT {upper.index.min()}..{upper.index.max()}"


def _figure2_rows(table: pd.DataFrame, barrier: str, tolerances: Mapping) -> list[Reproduced]:
    column = "barrier" if barrier == "max" else "barrier_midpoint"
    kind = "max over lambda" if barrier == "max" else "at lambda 0.5"
    rows = []
    for curve, values in printed_numbers.DISTANCE.items():
        means = level_means(table, curve, "distance")
        for level, value in zip(printed_numbers.NOT_LEVELS, values):
            ours, at = _at_level(means, level)
            rows.append(_reproduced(f"figure2b.{curve}.{level}", f"{curve}: squared distance at NoT {level}", "Figure 2b",
                                    value, ours, at, tolerances, "distance"))
        ours, at = _saturated(means)
        rows.append(_reproduced(f"figure2b.{curve}.saturation", f"{curve}: squared distance, saturation", "Figure 2b",
                                printed_numbers.DISTANCE_SATURATION[curve], ours, at, tolerances, "distance"))
    control = level_means(table, "control", "distance")
    rows.append(_reproduced("figure2b.control", "control: squared distance", "Figure 2b", printed_numbers.CONTROL_DISTANCE,
                            control.mean(), "mean over levels", tolerances, "distance"))
    trained = level_means(table, "trained", column)
    for level, value in printed_numbers.BARRIER_TRAINED.items():
        ours, at = _at_level(trained, level)
        rows.append(_reproduced(f"figure2c.trained.{level}", f"trained: loss barrier ({kind}) at NoT {level}", "Figure 2c",
                                value, ours, at, tolerances, "barrier"))
    peak, peak_level = printed_numbers.BARRIER_PEAK
    rows.append(_reproduced("figure2c.trained.peak", f"trained: largest loss barrier ({kind}), near NoT {peak_level}",
                            "Figure 2c", peak, trained.max(), f"NoT {trained.idxmax()}", tolerances, "barrier"))
    ours, at = _saturated(trained)
    rows.append(_reproduced("figure2c.trained.plateau", f"trained: loss barrier ({kind}), plateau", "Figure 2c",
                            printed_numbers.BARRIER_PLATEAU, ours, at, tolerances, "barrier"))
    for curve in ("init", "control"):
        means = level_means(table, curve, column)
        rows.append(_reproduced(f"figure2c.{curve}", f"{curve}: largest loss barrier ({kind})", "Figure 2c",
                                printed_numbers.BARRIER_CONTROLS, means.max(), f"NoT {means.idxmax()}", tolerances, "barrier"))
    return rows


def _interpolation_rows(table: pd.DataFrame, split: str, tolerances: Mapping) -> list[Reproduced]:
    not_before, not_after = (interpolation_grid(table, split, when, "not_to_w0") for when in ("before", "after"))
    lambdas = not_before.columns.to_numpy(dtype=float)
    small = lambdas[(lambdas > 0) & (lambdas <= printed_numbers.NOT_PATH_ZERO_UP_TO + 1e-9)]
    top, from_lambda = printed_numbers.NOT_PATH_TOP
    large = lambdas[lambdas >= from_lambda - 1e-9]
    rows = [
        _reproduced("figure2d.before.small_lambda", f"NoT(W_lambda, W_0) before rebasin, lambda up to {printed_numbers.NOT_PATH_ZERO_UP_TO:g}: largest",
                    "Figure 2d", 0.0, not_before[small].to_numpy().max() if len(small) else None,
                    f"lambda {', '.join(f'{x:g}' for x in small)}, every epoch" if len(small)
                    else f"not at this scale: no lambda in (0, {printed_numbers.NOT_PATH_ZERO_UP_TO:g}]", tolerances, "transpositions"),
        _reproduced("figure2d.before.large_lambda", f"NoT(W_lambda, W_0) before rebasin, lambda from {from_lambda:g}: mean",
                    "Figure 2d", top, not_before[large].to_numpy().mean(), f"lambda {', '.join(f'{x:g}' for x in large)}, every epoch",
                    tolerances, "transpositions"),
        _reproduced("figure2d.after", "NoT(W_lambda, W_0) after rebasin: largest", "Figure 2d", printed_numbers.NOT_PATH_AFTER,
                    not_after.to_numpy().max(), "every lambda and epoch", tolerances, "transpositions"),
    ]
    loss_before, loss_after = (interpolation_grid(table, split, when, "loss") for when in ("before", "after"))
    middle = loss_before.columns[int(np.argmin(np.abs(lambdas - 0.5)))]
    last = loss_before.index.max()
    first = 1 if 1 in loss_before.index else None
    missing = "not at this scale: no epoch 1"
    rows += [
        _reproduced("figure1.before.ridge_early", f"{split} loss before rebasin at the middle of the path, epoch 1", "Figure 1",
                    printed_numbers.RIDGE_EARLY, loss_before.loc[first, middle] if first else None,
                    f"epoch 1, lambda {middle:g}" if first else missing, tolerances, "loss"),
        _reproduced("figure1.before.ends_last", f"{split} loss before rebasin at the ends of the path, last epoch", "Figure 1",
                    printed_numbers.ENDS_LAST, 0.5 * (loss_before.loc[last].iloc[0] + loss_before.loc[last].iloc[-1]),
                    f"epoch {last}, mean of lambda 0 and 1", tolerances, "loss"),
        _reproduced("figure1.after.start", f"{split} loss after rebasin at the middle of the path, epoch 1", "Figure 1",
                    printed_numbers.AFTER_START, loss_after.loc[first, middle] if first else None,
                    f"epoch 1, lambda {middle:g}" if first else missing, tolerances, "loss"),
    ]
    return rows


REDUCIBLE = ("hmc",)  # posteriors a configuration may run below the paper's scale (claims.reproduction.reduced)
REDUCED_HMC = "HMC below the paper's scale: shown, not counted"  # how such a row's "at" begins


def depends_on_hmc(row_id: str) -> bool:
    """Whether a printed number's row is measured on HMC's samples or against their predictive.

    HMC's own Table 1 rows, sigmas and pruning curves, the merged pruning curve (the ensemble's mu_r
    pruned by HMC's sigma_r), and every method's Table 1 agreement and TV (against HMC's predictive).
    """
    source, *rest = row_id.split(".")
    if source == "table1":
        return rest[0] == "hmc" or rest[-1] in ("agreement", "tv")
    if source == "sigma":
        return rest[0] == "hmc"
    if source == "pruning":
        return rest[0].startswith("hmc") or rest[0] == "merged"
    return False


def reproduction(not_experiment: pd.DataFrame, interpolation: pd.DataFrame, metrics: pd.DataFrame,
                 sigma: pd.DataFrame, pruning: pd.DataFrame, *, tolerances: Mapping, barrier: str, split: str,
                 count: bool, reduced=()) -> list[Reproduced]:
    """Every number PAPER.md prints (Table 1, Figure 3's pruning table and sigmas, Figure 2's values
    at the printed NoT levels and plateaus, Figure 1's ridge) beside this run's, within ``tolerances``.

    ``count``: whether the rows count as checks (the paper's scale) or are only shown (presets).
    ``reduced``: posteriors of ``REDUCIBLE`` this run samples below the paper's scale (HMC, which a
    CPU cannot run at it): the rows that depend on them are shown, marked, and not counted.
    NoT levels outside this run's range are "not at this scale"; inside it, the nearest level is used.
    """
    missing = set(TOLERANCE_KEYS) - set(tolerances)
    if missing:
        raise ValueError(f"reproduction tolerances lack {sorted(missing)}")
    unknown = set(reduced) - set(REDUCIBLE)
    if unknown:
        raise ValueError(f"reduced names {sorted(unknown)}; only {', '.join(REDUCIBLE)} can be")
    rows = [*_table1_rows(metrics, tolerances), *_pruning_rows(pruning, tolerances), *_sigma_rows(sigma, tolerances),
            *_figure2_rows(not_experiment, barrier, tolerances), *_interpolation_rows(interpolation, split, tolerances)]
    for row in rows:
        below_scale = "hmc" in reduced and depends_on_hmc(row.id)
        if below_scale and row.within is not None:
            row.at = "; ".join(filter(None, [REDUCED_HMC, row.at]))
        row.counted = bool(count and row.within is not None and not below_scale)
    return rows
