"""Experiment C as tables: Table 1, the sigmas and the pruning curves of Figure 3, for the paper's three
posteriors (HMC, the deep ensemble, mean-field VI) and, beyond the paper, cyclical SG-MCMC.

Every row is measured against the HMC predictive (the paper's reference); ``agreement_own`` and
``tv_own`` measure a representation against the predictive of its own method's samples (HMC's,
the ensemble's members', SG-MCMC's), which says how well q_d and q_r stand for the samples they
summarise whatever HMC does. The SG-MCMC rows, curves and sigmas come after the paper's, and their
random draws and histogram bins are their own, so the paper's rows are the same with or without them.

Every function that touches networks takes their ``compactbnn.models.Model`` first.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from compactbnn.evaluation import metrics, pruning
from compactbnn.models.base import Model, Params
from compactbnn.paper.claims import PAPER_METHODS
from compactbnn.symmetry import compact

TABLE1_ROWS = (("hmc", "sample"), ("hmc", "q_d"), ("hmc", "q_r"), ("ensemble", "sample"), ("ensemble", "q_d"),
               ("ensemble", "q_r"), ("vi", "q"))
LOW_RANK_ROW = ("ensemble", "q_lowrank")  # the authors' low-rank Gaussian of the aligned ensemble (beyond Table 1)
SGMCMC_ROWS = (("sgmcmc", "sample"), ("sgmcmc", "q_d"), ("sgmcmc", "q_r"))  # beyond the paper: rows like HMC's
PRUNING_CURVES = ("hmc_mu_r", "hmc_mu_d", "ensemble_mu_r", "ensemble_mu_d", "merged", "vi")
# The authors' further pruning curves (MNIST_eval_pruning.py): one network pruned by a sigma ordering,
# and the ensemble's mean pruned by VI's sigma.
EXTRA_PRUNING_CURVES = ("hmc_last_sample", "ensemble_last_member", "ensemble_mu_r_by_vi")
SGMCMC_PRUNING_CURVES = ("sgmcmc_mu_r", "sgmcmc_mu_d")  # SG-MCMC's mu_r and mu_d, each by its own sigma


def posterior_table(
    model: Model,
    key: jax.Array,
    hmc_samples: Params,
    ensemble_members: Params,
    gaussians: Mapping[tuple[str, str], compact.Gaussian],
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_q_samples: int,
    low_rank: compact.LowRankGaussian | None = None,
    num_low_rank_samples: int | None = None,
    sgmcmc_samples: Params | None = None,
) -> pd.DataFrame:
    """Table 1 with NLL and ECE: one row per (method, representation), measured against the HMC predictive.

    ``gaussians`` maps ("hmc" | "ensemble", "q_d" | "q_r") and ("vi", "q") to Gaussians; each
    q's predictive averages ``num_q_samples`` Monte Carlo draws. ``accuracy_samples`` is the
    accuracy of the predictive of the method's own samples (or of q's draws);
    ``accuracy_mean`` that of the mean weights mu alone, and ``agreement_mean`` / ``tv_mean`` the
    mean network's agreement with and total variation to the HMC predictive (the authors' extras;
    NaN for sample rows, as the paper's N/A). ``low_rank`` (the aligned ensemble's
    ``compact.low_rank_gaussian``) adds the row ``LOW_RANK_ROW`` after the paper's seven, from
    ``num_low_rank_samples`` draws (None: ``num_q_samples``; the authors drew 100 there, 200 for the q's).
    ``sgmcmc_samples`` (with ``gaussians`` holding ("sgmcmc", "q_d" | "q_r")) adds ``SGMCMC_ROWS`` last.
    ``agreement_own`` / ``tv_own``: against the predictive of the row's own method's samples (NaN for VI).
    """
    reference = metrics.predictive(model, hmc_samples, x)
    own = {"hmc": reference, "ensemble": metrics.predictive(model, ensemble_members, x)}
    rows = [_posterior_row(model, jax.random.fold_in(key, index), gaussians, own, x, y, name, num_q_samples)
            for index, name in enumerate(TABLE1_ROWS)]
    if low_rank is not None:
        low_rank_draws = compact.sample_low_rank(model, jax.random.fold_in(key, len(TABLE1_ROWS)), low_rank,
                                                 num_q_samples if num_low_rank_samples is None else num_low_rank_samples)
        draws = metrics.predictive(model, low_rank_draws, x)
        rows.append(_row(*LOW_RANK_ROW, draws, metrics.network_probabilities(model, low_rank.mean, x),
                         reference, y, own["ensemble"]))
    if sgmcmc_samples is not None:
        own["sgmcmc"] = metrics.predictive(model, sgmcmc_samples, x)
        # draws keyed after the paper's rows and the low-rank row: theirs stay as without SG-MCMC
        first = len(TABLE1_ROWS) + 1
        rows += [_posterior_row(model, jax.random.fold_in(key, first + index), gaussians, own, x, y, name, num_q_samples)
                 for index, name in enumerate(SGMCMC_ROWS)]
    return pd.DataFrame(rows)


def _posterior_row(model, key, gaussians, own, x, y, name, num_q_samples) -> dict:
    """The row ``name``: a method's samples (their predictive is ``own[method]``) or its Gaussian, ``gaussians[name]``."""
    method, representation = name
    if representation == "sample":
        return _row(method, representation, own[method], None, own["hmc"], y, own[method])
    q = gaussians[name]
    draws = metrics.gaussian_predictive(model, key, q, x, num_q_samples)
    return _row(method, representation, draws, metrics.network_probabilities(model, q.mean, x), own["hmc"], y,
                own.get(method))


def _row(method, representation, probabilities, mean_probabilities, reference, y, own_samples=None) -> dict:
    """One row of Table 1; ``mean_probabilities`` are the mean network's (None for a method's own samples),
    ``own_samples`` the predictive of the method's own samples (None for VI, which has none)."""
    mean = (lambda measure: np.nan) if mean_probabilities is None else (lambda measure: measure(mean_probabilities))  # noqa: E731
    return {
        "method": method, "representation": representation,
        "agreement": metrics.agreement(probabilities, reference),
        "tv": metrics.total_variation(probabilities, reference),
        "accuracy_samples": metrics.accuracy(probabilities, y),
        "accuracy_mean": mean(lambda p: metrics.accuracy(p, y)),
        "nll": metrics.nll(probabilities, y),
        "ece": metrics.expected_calibration_error(probabilities, y),
        "agreement_mean": mean(lambda p: metrics.agreement(p, reference)),
        "tv_mean": mean(lambda p: metrics.total_variation(p, reference)),
        # appended last: the paper's columns keep their places
        "agreement_own": np.nan if own_samples is None else metrics.agreement(probabilities, own_samples),
        "tv_own": np.nan if own_samples is None else metrics.total_variation(probabilities, own_samples),
    }


def pruning_table(model: Model, gaussians: Mapping[tuple[str, str], compact.Gaussian], x: np.ndarray, y: np.ndarray,
                  retained_percents: Sequence[float], *, last_hmc_sample: Params | None = None,
                  last_member: Params | None = None) -> pd.DataFrame:
    """Figure 3 right: test accuracy of mean weights pruned by sigma, one curve per row group.

    Curves (``PRUNING_CURVES``): HMC mu_r by sigma_r, HMC mu_d by sigma_d, the ensemble's mu_r
    and mu_d by their own sigmas, "merged" (the ensemble's mu_r by HMC's sigma_r; both are
    aligned to the same reference) and VI's mu by its sigma. Then ``EXTRA_PRUNING_CURVES``, the
    authors' further ones: "ensemble_mu_r_by_vi" (the ensemble's mu_r by VI's sigma), and, when
    given, one network pruned as it is, unaligned, by a sigma ordering in the shared basis
    (MNIST_eval_pruning.py): "hmc_last_sample" (the last kept HMC sample by HMC's sigma_r) and
    "ensemble_last_member" (the last member by the ensemble's sigma_r). Last, where ``gaussians``
    hold SG-MCMC's, ``SGMCMC_PRUNING_CURVES``: its mu_r by its sigma_r and mu_d by its sigma_d.
    """
    pairs = {
        "hmc_mu_r": (gaussians["hmc", "q_r"].mean, gaussians["hmc", "q_r"].sd),
        "hmc_mu_d": (gaussians["hmc", "q_d"].mean, gaussians["hmc", "q_d"].sd),
        "ensemble_mu_r": (gaussians["ensemble", "q_r"].mean, gaussians["ensemble", "q_r"].sd),
        "ensemble_mu_d": (gaussians["ensemble", "q_d"].mean, gaussians["ensemble", "q_d"].sd),
        "merged": (gaussians["ensemble", "q_r"].mean, gaussians["hmc", "q_r"].sd),
        "vi": (gaussians["vi", "q"].mean, gaussians["vi", "q"].sd),
    }
    if last_hmc_sample is not None:
        pairs["hmc_last_sample"] = (last_hmc_sample, gaussians["hmc", "q_r"].sd)
    if last_member is not None:
        pairs["ensemble_last_member"] = (last_member, gaussians["ensemble", "q_r"].sd)
    pairs["ensemble_mu_r_by_vi"] = (gaussians["ensemble", "q_r"].mean, gaussians["vi", "q"].sd)
    for curve, representation in zip(SGMCMC_PRUNING_CURVES, ("q_r", "q_d")):
        if ("sgmcmc", representation) in gaussians:
            pairs[curve] = (gaussians["sgmcmc", representation].mean, gaussians["sgmcmc", representation].sd)
    frames = [
        pd.DataFrame({"curve": curve, "retained_percent": list(retained_percents),
                      "accuracy": pruning.pruning_curve(model, mean, sd, x, y, retained_percents)})
        for curve, (mean, sd) in pairs.items()
    ]
    return pd.concat(frames, ignore_index=True)


def sigma_table(model: Model, gaussians: Mapping[tuple[str, str], compact.Gaussian]) -> pd.DataFrame:
    """Figure 3 left's data: every Gaussian's per-parameter sigmas, one row each.

    Columns method, representation, parameter (its index in ``model.ravel`` order, i.e. PyTorch's
    ``parameters_to_vector``) and sigma (float32). The figure bins these rows itself, so a new bin
    count needs no recomputation. The paper's methods come first (sorted), then any other (SG-MCMC).
    """
    ordered = sorted(gaussians, key=lambda name: (name[0] not in PAPER_METHODS, name))
    frames = [
        pd.DataFrame({"method": method, "representation": representation,
                      "parameter": np.arange(values.size), "sigma": values})
        for (method, representation), values in
        ((name, np.asarray(model.ravel(gaussians[name].sd), np.float32)) for name in ordered)
    ]
    return pd.concat(frames, ignore_index=True)


def by_family(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of the paper's methods, then (if any) those of the others (SG-MCMC): each histogrammed on its own
    bins, so that the paper's histograms, and the claims read from them, are the same with or without SG-MCMC."""
    paper = table["method"].isin(PAPER_METHODS)
    return [part for part in (table[paper], table[~paper]) if len(part)]


def sigma_histograms(sigma: pd.DataFrame, num_bins: int | None = None, bin_width: float | None = None) -> pd.DataFrame:
    """Histograms of every Gaussian's sigmas (rows of ``sigma_table``) on shared bins starting at 0.

    The bins are either ``num_bins`` equal ones up to the largest sigma (Figure 3 left) or as many
    bins of ``bin_width`` as reach the largest sigma (a binning that does not depend on the plot,
    for the claims). Rows (method, representation, bin_left, bin_right, count), plus per Gaussian
    its summary statistics in the columns mean, median, p99 (99th percentile) and max (repeated on
    every bin row). ``by_family`` splits a table whose families should not share bins.
    """
    if (num_bins is None) == (bin_width is None):
        raise ValueError("sigma_histograms needs exactly one of num_bins and bin_width")
    if num_bins is not None and num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    if bin_width is not None and not bin_width > 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    groups = {name: part["sigma"].to_numpy(np.float64) for name, part in sigma.groupby(["method", "representation"])}
    top = max(float(values.max()) for values in groups.values())
    top = top if top > 0 else 1.0
    if num_bins is not None:
        edges = np.linspace(0.0, top, num_bins + 1)
    else:
        edges = bin_width * np.arange(int(np.floor(top / bin_width)) + 2)
    frames = []
    for (method, representation), values in sorted(groups.items()):
        counts, _ = np.histogram(values, bins=edges)
        frames.append(pd.DataFrame({
            "method": method, "representation": representation, "bin_left": edges[:-1], "bin_right": edges[1:],
            "count": counts, "mean": values.mean(), "median": np.median(values),
            "p99": np.percentile(values, 99), "max": values.max(),
        }))
    return pd.concat(frames, ignore_index=True)
