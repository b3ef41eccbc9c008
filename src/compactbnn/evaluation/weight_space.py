"""One weight space for HMC, the deep ensemble and VI: per-weight mu and sigma compared across methods.

The paper's abstract promises that the compact representation "allows us to compare trained
BNNs directly in weight space across sampling methods and variational inference". Before
rebasin, each method's mean-field Gaussian lives in its own basis (HMC's q_d, the ensemble's
q_d, VI's q as trained): weight i of one method need not be weight i of another, so their
per-weight means and sds are unrelated. After rebasin all three are in one shared reference's
basis (``compact.q_rebasin`` for HMC, ``q_rebasin_two_stage`` or ``q_rebasin`` with HMC's
reference for the ensemble, ``align_gaussian`` for VI) and can be compared weight by weight.

- ``weight_space_values``: the tidy table of every weight's mu and sigma per method, before and
  after rebasin (what the pair plots of Figure 4 bin).
- ``weight_space_correlations``: per quantity (mu, sigma), method pair and alignment, Pearson and
  Spearman correlations across weights and ``top10_overlap``, the share of one method's top 10 %
  of weights (by |mu| or sigma) that is also in the other's top 10 % (0.1 when unrelated).
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from compactbnn.models import Model

METHODS = ("hmc", "ensemble", "vi")
QUANTITIES = ("mu", "sigma")
ALIGNMENTS = ("before", "after")
TOP_FRACTION = 0.1


def weight_space_values(model: Model, before: Mapping[str, object], after: Mapping[str, object]) -> pd.DataFrame:
    """Rows (alignment, parameter) with columns mu_<method> and sigma_<method> for every method.

    ``before`` and ``after`` map a method name to its Gaussian (anything with ``mean`` and ``sd``
    parameter pytrees), all of ``model``; ``parameter`` is the index in ``model.ravel`` order
    (PyTorch's).
    """
    if set(before) != set(after) or len(before) < 2:
        raise ValueError(f"before and after need the same two or more methods, got {sorted(before)} and {sorted(after)}")
    methods = [m for m in METHODS if m in before] + sorted(set(before) - set(METHODS))
    frames = []
    for alignment, gaussians in (("before", before), ("after", after)):
        columns = {}
        for method in methods:
            columns[f"mu_{method}"] = np.asarray(model.ravel(gaussians[method].mean), np.float32)
            columns[f"sigma_{method}"] = np.asarray(model.ravel(gaussians[method].sd), np.float32)
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1:
            raise ValueError(f"the methods' Gaussians have different numbers of parameters: {sorted(sizes)}")
        frame = pd.DataFrame({"alignment": alignment, "parameter": np.arange(sizes.pop()), **columns})
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def methods_of(values: pd.DataFrame) -> list[str]:
    """The methods of a ``weight_space_values`` table, in column order."""
    return [column[len("mu_"):] for column in values.columns if column.startswith("mu_")]


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the ``fraction`` largest entries of ``a`` that are also among the ``fraction`` largest of ``b``.

    Ranks break ties by position (a stable sort), so equal values do not inflate the overlap.
    Unrelated rankings give about ``fraction``; identical rankings give 1.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two vectors of one length, got shapes {a.shape} and {b.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    count = max(1, int(round(fraction * len(a))))
    top_a = np.argsort(-a, kind="stable")[:count]
    top_b = np.argsort(-b, kind="stable")[:count]
    return len(np.intersect1d(top_a, top_b, assume_unique=True)) / count


def weight_space_correlations(values: pd.DataFrame, fraction: float = TOP_FRACTION) -> pd.DataFrame:
    """Rows (quantity, method_a, method_b, alignment, pearson, spearman, top10_overlap) for every method pair.

    ``top10_overlap`` ranks mu by magnitude (large weights) and sigma by value (uncertain weights);
    its fraction is ``fraction`` (10 % by default, whatever the column name).
    """
    rows = []
    methods = methods_of(values)
    for quantity in QUANTITIES:
        for method_a, method_b in combinations(methods, 2):
            for alignment in ALIGNMENTS:
                part = values[values["alignment"] == alignment]
                a = part[f"{quantity}_{method_a}"].to_numpy(np.float64)
                b = part[f"{quantity}_{method_b}"].to_numpy(np.float64)
                rank_a, rank_b = (np.abs(a), np.abs(b)) if quantity == "mu" else (a, b)
                rows.append({
                    "quantity": quantity, "method_a": method_a, "method_b": method_b, "alignment": alignment,
                    "pearson": _correlation(pearsonr, a, b), "spearman": _correlation(spearmanr, a, b),
                    "top10_overlap": top_overlap(rank_a, rank_b, fraction),
                })
    return pd.DataFrame(rows)


def _correlation(statistic, a: np.ndarray, b: np.ndarray) -> float:
    """The correlation, NaN where either side is constant (e.g. an ensemble of one has sd 0 everywhere)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(statistic(a, b).statistic)
