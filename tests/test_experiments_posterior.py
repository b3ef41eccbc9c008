"""Experiment C (Table 1, the pruning curves, the sigmas) and HMC's running predictive as tables
(compactbnn.paper.experiments), on tiny digits networks.

Values in the tables are compared with the library functions they are built from (the row of the
right Gaussian, curve or chain).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from compactbnn import train
from compactbnn.evaluation import metrics, pruning
from compactbnn.models import MLP
from compactbnn.paper import experiments
from compactbnn.paper import posterior as experiment_c  # not `posterior`: a fixture of that name
from compactbnn.symmetry import compact

SIZES = [64, 16, 10]
MODEL = MLP(SIZES)
TABLE1_COLUMNS = ["method", "representation", "agreement", "tv", "accuracy_samples", "accuracy_mean", "nll", "ece",
                  "agreement_mean", "tv_mean", "agreement_own", "tv_own"]


def random_mlp(seed, sizes):
    """A PyTorch-default random network of MLP(sizes)."""
    return MLP(sizes).init(jax.random.key(seed))


def network(params, j):
    """Network j of a stack."""
    return jax.tree_util.tree_map(lambda leaf: leaf[j], params)


@pytest.fixture(scope="module")
def small(digits):
    """The 359 test images."""
    return {"x_test": digits["x_test"], "y_test": digits["y_test"]}


# --- Experiment C ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def posterior(digits):
    """Seven 64-16-10 networks trained briefly: four stand for HMC samples, three for ensemble members."""
    config = train.TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=128, epochs=3)
    inits = MODEL.init_many(jax.random.key(30), 7)
    result = train.train_many(MODEL, inits, digits["x_train"], digits["y_train"], jax.random.split(jax.random.key(31), 7),
                              config, progress=False)
    hmc = jax.tree_util.tree_map(lambda leaf: leaf[:4], result.params)
    ensemble = jax.tree_util.tree_map(lambda leaf: leaf[4:], result.params)
    reference = network(hmc, 0)
    vi_sd = jax.tree_util.tree_map(lambda leaf: np.full(leaf.shape, 1e-7, np.float32), reference)
    gaussians = {
        ("hmc", "q_d"): compact.q_direct(MODEL, hmc),
        ("hmc", "q_r"): compact.q_rebasin(MODEL, hmc, reference="first").q,
        ("ensemble", "q_d"): compact.q_direct(MODEL, ensemble),
        ("ensemble", "q_r"): compact.q_rebasin(MODEL, ensemble, reference=reference).q,
        # a VI posterior collapsed on one network: its draws are that network
        ("vi", "q"): compact.Gaussian(network(ensemble, 0), vi_sd),
    }
    return dict(hmc=hmc, ensemble=ensemble, gaussians=gaussians, x=digits["x_test"], y=digits["y_test"])


@pytest.fixture(scope="module")
def table1(posterior):
    return experiments.posterior_table(MODEL, jax.random.key(40), posterior["hmc"], posterior["ensemble"], posterior["gaussians"],
                                       posterior["x"], posterior["y"], num_q_samples=8)


def test_posterior_table_rows_and_columns(table1):
    assert list(table1.columns) == TABLE1_COLUMNS
    assert list(zip(table1["method"], table1["representation"])) == list(experiments.TABLE1_ROWS)


def test_posterior_table_sample_rows(table1, posterior):
    x, y = posterior["x"], posterior["y"]
    hmc, ensemble = (table1.iloc[i] for i in (0, 3))
    reference = metrics.predictive(MODEL, posterior["hmc"], x)
    assert hmc["agreement"] == 1.0 and hmc["tv"] == pytest.approx(0.0, abs=1e-12)
    assert hmc["accuracy_samples"] == pytest.approx(metrics.accuracy(reference, y))
    assert hmc["nll"] == pytest.approx(metrics.nll(reference, y))
    assert hmc["ece"] == pytest.approx(metrics.expected_calibration_error(reference, y))
    members = metrics.predictive(MODEL, posterior["ensemble"], x)
    assert ensemble["agreement"] == pytest.approx(metrics.agreement(members, reference))
    assert ensemble["tv"] == pytest.approx(metrics.total_variation(members, reference))
    assert ensemble["accuracy_samples"] == pytest.approx(metrics.accuracy(members, y))
    assert ensemble["agreement"] < 1.0  # the ensemble is not HMC
    for row in (hmc, ensemble):
        assert np.isnan(row["accuracy_mean"]) and np.isnan(row["agreement_mean"]) and np.isnan(row["tv_mean"])
        assert row["agreement_own"] == 1.0 and row["tv_own"] == pytest.approx(0.0, abs=1e-12)  # each its own samples


def test_posterior_table_q_rows_use_their_own_gaussian(table1, posterior):
    x, y = posterior["x"], posterior["y"]
    for i, (method, representation) in enumerate(experiments.TABLE1_ROWS):
        if representation == "sample":
            continue
        q = posterior["gaussians"][method, representation]
        mean_probabilities = metrics.network_probabilities(MODEL, q.mean, x)
        assert table1.iloc[i]["accuracy_mean"] == pytest.approx(metrics.accuracy(mean_probabilities, y))
        reference = metrics.predictive(MODEL, posterior["hmc"], x)
        assert table1.iloc[i]["agreement_mean"] == pytest.approx(metrics.agreement(mean_probabilities, reference))
        assert table1.iloc[i]["tv_mean"] == pytest.approx(metrics.total_variation(mean_probabilities, reference))
    # against its own samples: HMC's q's as against HMC, the ensemble's against its members, VI has no samples
    members = metrics.predictive(MODEL, posterior["ensemble"], x)
    for i in (1, 2):
        assert table1.iloc[i]["agreement_own"] == table1.iloc[i]["agreement"] and table1.iloc[i]["tv_own"] == table1.iloc[i]["tv"]
    for i, name in ((4, ("ensemble", "q_d")), (5, ("ensemble", "q_r"))):
        draws = metrics.gaussian_predictive(MODEL, jax.random.fold_in(jax.random.key(40), i), posterior["gaussians"][name], x, 8)
        assert table1.iloc[i]["agreement_own"] == pytest.approx(metrics.agreement(draws, members))
        assert table1.iloc[i]["tv_own"] == pytest.approx(metrics.total_variation(draws, members))
    assert np.isnan(table1.iloc[6]["agreement_own"]) and np.isnan(table1.iloc[6]["tv_own"])
    # the accuracies of the four means differ, so a row reading another Gaussian would be caught
    assert table1["accuracy_mean"].dropna().nunique() >= 3
    # VI's draws are (almost exactly) its mean: the predictive is the mean network's
    vi = table1.iloc[6]
    mean_probabilities = metrics.network_probabilities(MODEL, posterior["gaussians"]["vi", "q"].mean, x)
    reference = metrics.predictive(MODEL, posterior["hmc"], x)
    assert vi["accuracy_samples"] == pytest.approx(vi["accuracy_mean"])
    assert vi["agreement"] == pytest.approx(metrics.agreement(mean_probabilities, reference))
    assert vi["tv"] == pytest.approx(metrics.total_variation(mean_probabilities, reference), abs=1e-5)


def test_posterior_table_is_seeded(table1, posterior):
    args = (posterior["hmc"], posterior["ensemble"], posterior["gaussians"], posterior["x"], posterior["y"])
    again = experiments.posterior_table(MODEL, jax.random.key(40), *args, num_q_samples=8)
    pd.testing.assert_frame_equal(again, table1)
    other = experiments.posterior_table(MODEL, jax.random.key(41), *args, num_q_samples=8)
    samples = other["representation"] == "sample"
    pd.testing.assert_frame_equal(other[samples], table1[samples])
    assert not np.allclose(other.loc[other["representation"] == "q_d", "tv"], table1.loc[table1["representation"] == "q_d", "tv"])


def test_posterior_table_low_rank_row(posterior):
    """The authors' low-rank Gaussian of the aligned ensemble as an eighth row, seeded like the others."""
    low_rank = compact.low_rank_gaussian(MODEL, posterior["ensemble"])
    args = (posterior["hmc"], posterior["ensemble"], posterior["gaussians"], posterior["x"], posterior["y"])
    table = experiments.posterior_table(MODEL, jax.random.key(40), *args, num_q_samples=8, low_rank=low_rank)
    assert list(zip(table["method"], table["representation"])) == [*experiments.TABLE1_ROWS, experiments.LOW_RANK_ROW]
    row = table.iloc[-1]
    draws = compact.sample_low_rank(MODEL, jax.random.fold_in(jax.random.key(40), len(experiments.TABLE1_ROWS)), low_rank, 8)
    reference = metrics.predictive(MODEL, posterior["hmc"], posterior["x"])
    assert row["agreement"] == pytest.approx(metrics.agreement(metrics.predictive(MODEL, draws, posterior["x"]), reference))
    assert row["accuracy_mean"] == pytest.approx(
        metrics.accuracy(metrics.network_probabilities(MODEL, low_rank.mean, posterior["x"]), posterior["y"]))


def test_posterior_table_low_rank_draws_apart_from_the_qs(posterior):
    """num_low_rank_samples sets the low-rank row's draws alone (the authors: 100 there, 200 for the q's)."""
    low_rank = compact.low_rank_gaussian(MODEL, posterior["ensemble"])
    args = (posterior["hmc"], posterior["ensemble"], posterior["gaussians"], posterior["x"], posterior["y"])
    same = experiments.posterior_table(MODEL, jax.random.key(40), *args, num_q_samples=8, low_rank=low_rank)
    fewer = experiments.posterior_table(MODEL, jax.random.key(40), *args, num_q_samples=8, low_rank=low_rank,
                                        num_low_rank_samples=3)
    pd.testing.assert_frame_equal(fewer.iloc[:-1], same.iloc[:-1])
    draws = compact.sample_low_rank(MODEL, jax.random.fold_in(jax.random.key(40), len(experiments.TABLE1_ROWS)), low_rank, 3)
    predictive = metrics.predictive(MODEL, draws, posterior["x"])
    reference = metrics.predictive(MODEL, posterior["hmc"], posterior["x"])
    assert fewer.iloc[-1]["tv"] == pytest.approx(metrics.total_variation(predictive, reference))
    assert fewer.iloc[-1]["tv"] != pytest.approx(same.iloc[-1]["tv"])
    explicit = experiments.posterior_table(MODEL, jax.random.key(40), *args, num_q_samples=8, low_rank=low_rank,
                                           num_low_rank_samples=8)
    pd.testing.assert_frame_equal(explicit, same)


def test_sgmcmc_rows_come_last_measured_against_hmc_and_its_own_samples(table1, posterior):
    """SG-MCMC's rows (beyond the paper) after the paper's and the low-rank row, which stay as without them."""
    sgmcmc = jax.tree_util.tree_map(lambda leaf: leaf[1:4], posterior["hmc"])  # three networks stand for SG-MCMC samples
    gaussians = dict(posterior["gaussians"])
    gaussians["sgmcmc", "q_d"] = compact.q_direct(MODEL, sgmcmc)
    gaussians["sgmcmc", "q_r"] = compact.q_rebasin(MODEL, sgmcmc, reference=network(posterior["hmc"], 0)).q
    low_rank = compact.low_rank_gaussian(MODEL, posterior["ensemble"])
    args = (posterior["hmc"], posterior["ensemble"], gaussians, posterior["x"], posterior["y"])
    key = jax.random.key(40)
    table = experiments.posterior_table(MODEL, key, *args, num_q_samples=8, low_rank=low_rank, sgmcmc_samples=sgmcmc)
    without = experiments.posterior_table(MODEL, key, *args, num_q_samples=8, low_rank=low_rank)
    assert list(zip(table["method"], table["representation"])) == [
        *experiments.TABLE1_ROWS, experiments.LOW_RANK_ROW, *experiments.SGMCMC_ROWS]
    pd.testing.assert_frame_equal(table.iloc[: len(without)], without)
    x, reference = posterior["x"], metrics.predictive(MODEL, posterior["hmc"], posterior["x"])
    own = metrics.predictive(MODEL, sgmcmc, x)
    sample, q_d, q_r = (table.iloc[-3 + i] for i in range(3))
    assert sample["agreement"] == pytest.approx(metrics.agreement(own, reference)) and sample["agreement_own"] == 1.0
    for row, name, index in ((q_d, ("sgmcmc", "q_d"), 9), (q_r, ("sgmcmc", "q_r"), 10)):
        # keyed after the paper's 7 rows and the low-rank row (index 7): sample 8, q_d 9, q_r 10
        draws = metrics.gaussian_predictive(MODEL, jax.random.fold_in(key, index), gaussians[name], x, 8)
        assert row["tv"] == pytest.approx(metrics.total_variation(draws, reference))
        assert row["tv_own"] == pytest.approx(metrics.total_variation(draws, own))
        assert row["accuracy_mean"] == pytest.approx(
            metrics.accuracy(metrics.network_probabilities(MODEL, gaussians[name].mean, x), posterior["y"]))
    curves = experiments.pruning_table(MODEL, gaussians, x, posterior["y"], [100, 50])
    assert list(curves["curve"].unique()[-2:]) == list(experiments.SGMCMC_PRUNING_CURVES)


def test_pruning_table(posterior):
    gaussians, x, y = posterior["gaussians"], posterior["x"], posterior["y"]
    retained = [100, 50, 10]
    last_sample = jax.tree_util.tree_map(lambda leaf: leaf[-1], posterior["hmc"])
    last_member = jax.tree_util.tree_map(lambda leaf: leaf[-1], posterior["ensemble"])
    table = experiments.pruning_table(MODEL, gaussians, x, y, retained, last_hmc_sample=last_sample, last_member=last_member)
    curve_names = experiments.PRUNING_CURVES + experiments.EXTRA_PRUNING_CURVES
    assert list(table.columns) == ["curve", "retained_percent", "accuracy"]
    assert list(table["curve"]) == [c for c in curve_names for _ in retained]
    assert list(table["retained_percent"]) == retained * len(curve_names)
    for curve, network, sd_of in (("hmc_last_sample", last_sample, ("hmc", "q_r")),
                                  ("ensemble_last_member", last_member, ("ensemble", "q_r")),
                                  ("ensemble_mu_r_by_vi", gaussians["ensemble", "q_r"].mean, ("vi", "q"))):
        np.testing.assert_allclose(table.loc[table["curve"] == curve, "accuracy"].to_numpy(),
                                   pruning.pruning_curve(MODEL, network, gaussians[sd_of].sd, x, y, retained), atol=1e-7)
    without = experiments.pruning_table(MODEL, gaussians, x, y, retained)
    assert set(without["curve"]) == set(experiments.PRUNING_CURVES) | {"ensemble_mu_r_by_vi"}
    pairs = {
        "hmc_mu_r": (("hmc", "q_r"), ("hmc", "q_r")), "hmc_mu_d": (("hmc", "q_d"), ("hmc", "q_d")),
        "ensemble_mu_r": (("ensemble", "q_r"), ("ensemble", "q_r")),
        "ensemble_mu_d": (("ensemble", "q_d"), ("ensemble", "q_d")),
        "merged": (("ensemble", "q_r"), ("hmc", "q_r")),  # the ensemble's mu_r pruned by HMC's sigma_r
        "vi": (("vi", "q"), ("vi", "q")),
    }
    curves = {}
    for curve, (mean_of, sd_of) in pairs.items():
        expected = pruning.pruning_curve(MODEL, gaussians[mean_of].mean, gaussians[sd_of].sd, x, y, retained)
        curves[curve] = table.loc[table["curve"] == curve, "accuracy"].to_numpy()
        np.testing.assert_allclose(curves[curve], expected, atol=1e-7, err_msg=curve)
    # merged and the ensemble's own curve share the mean: equal at 100 %, different once pruned
    assert curves["merged"][0] == curves["ensemble_mu_r"][0]
    assert not np.array_equal(curves["merged"][1:], curves["ensemble_mu_r"][1:])


def test_sigma_histograms():
    sizes = SIZES
    num_params = MODEL.num_params
    names = [("vi", "q"), ("hmc", "q_r"), ("ensemble", "q_d"), ("hmc", "q_d"), ("ensemble", "q_r")]
    gaussians = {}
    for i, name in enumerate(names):
        sd = jax.tree_util.tree_map(lambda leaf: np.abs(np.asarray(leaf)) * (i + 1), random_mlp(50 + i, sizes))
        gaussians[name] = compact.Gaussian(random_mlp(60 + i, sizes), sd)
    sigma = experiments.sigma_table(MODEL, gaussians)
    assert list(sigma.columns) == ["method", "representation", "parameter", "sigma"]
    assert len(sigma) == num_params * len(names)
    for name, group in sigma.groupby(["method", "representation"]):
        np.testing.assert_array_equal(group["parameter"], np.arange(num_params))
        np.testing.assert_array_equal(group["sigma"], np.asarray(MODEL.ravel(gaussians[name].sd), np.float32))
    num_bins = 7
    table = experiments.sigma_histograms(sigma, num_bins=num_bins)
    assert list(table.columns) == ["method", "representation", "bin_left", "bin_right", "count", "mean", "median", "p99", "max"]
    assert len(table) == num_bins * len(names)
    groups = list(dict.fromkeys(zip(table["method"], table["representation"])))
    assert groups == sorted(names)
    top = max(float(np.asarray(MODEL.ravel(q.sd)).max()) for q in gaussians.values())
    edges = None
    for name, group in table.groupby(["method", "representation"], sort=False):
        sigmas = np.asarray(MODEL.ravel(gaussians[name].sd), np.float64)
        assert group["count"].sum() == num_params  # every parameter counted once, the largest included
        group_edges = np.concatenate([group["bin_left"].to_numpy(), group["bin_right"].to_numpy()[-1:]])
        np.testing.assert_array_equal(group["bin_left"].to_numpy()[1:], group["bin_right"].to_numpy()[:-1])
        if edges is None:
            edges = group_edges
        np.testing.assert_array_equal(group_edges, edges)  # shared bins
        np.testing.assert_array_equal(group["count"], np.histogram(sigmas, bins=edges)[0])
        for column, value in (("mean", sigmas.mean()), ("median", np.median(sigmas)), ("p99", np.percentile(sigmas, 99)),
                              ("max", sigmas.max())):
            np.testing.assert_allclose(group[column], value, rtol=1e-12, err_msg=column)
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(top)
    assert len(edges) == num_bins + 1
    # bins of a given width from 0 past the largest sigma (the claims' binning): same counts as numpy's
    width = top / 9.5
    by_width = experiments.sigma_histograms(sigma, bin_width=width)
    edges = width * np.arange(11)
    for name, group in by_width.groupby(["method", "representation"]):
        np.testing.assert_allclose(group["bin_left"], edges[:-1])
        np.testing.assert_array_equal(group["count"], np.histogram(sigma[(sigma["method"] == name[0]) & (
            sigma["representation"] == name[1])]["sigma"].to_numpy(np.float64), bins=edges)[0])
        assert group["count"].sum() == num_params
    with pytest.raises(ValueError, match="exactly one of num_bins and bin_width"):
        experiments.sigma_histograms(sigma, num_bins=3, bin_width=0.1)


def test_sgmcmc_sigmas_come_last_on_bins_of_their_own():
    """SG-MCMC's sigmas (beyond the paper) after the paper's methods', histogrammed apart: the paper's rows stay as without them."""
    gaussians = {name: compact.Gaussian(random_mlp(60 + i, SIZES), jax.tree_util.tree_map(
        lambda leaf: np.abs(np.asarray(leaf)) * scale, random_mlp(50 + i, SIZES)))
        for i, (name, scale) in enumerate(((("hmc", "q_d"), 1.0), (("vi", "q"), 2.0), (("sgmcmc", "q_r"), 9.0)))}
    sigma = experiment_c.sigma_table(MODEL, gaussians)
    assert list(dict.fromkeys(sigma["method"])) == ["hmc", "vi", "sgmcmc"]
    paper, ours = experiment_c.by_family(sigma)
    assert set(paper["method"]) == {"hmc", "vi"} and set(ours["method"]) == {"sgmcmc"}
    paper_gaussians = {name: q for name, q in gaussians.items() if name[0] != "sgmcmc"}
    alone = experiment_c.sigma_histograms(experiment_c.sigma_table(MODEL, paper_gaussians), bin_width=0.05)
    pd.testing.assert_frame_equal(experiment_c.sigma_histograms(paper, bin_width=0.05).reset_index(drop=True), alone)
    assert experiment_c.sigma_histograms(ours, bin_width=0.05)["bin_right"].max() > alone["bin_right"].max()


# --- HMC's running predictive -------------------------------------------------------------------------------


def test_interleave_chains():
    np.testing.assert_array_equal(experiments.interleave_chains([3, 3]), [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(experiments.interleave_chains([2, 3, 1]), [0, 2, 5, 1, 3, 4])
    np.testing.assert_array_equal(experiments.interleave_chains([4]), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="at least one sample"):
        experiments.interleave_chains([2, 0])


def test_running_predictive_table(small):
    """Per chain, its own samples in order; pooled, interleaved: at n = 2 k the mean of both chains' k-sample predictives."""
    samples = MODEL.init_many(jax.random.key(40), 6)
    x, y = small["x_test"], small["y_test"]
    table = experiments.running_predictive_table(MODEL, samples, [3, 3], x, y)
    assert list(table.columns) == ["chain", "n", "accuracy", "nll", "sample_accuracy", "sample_nll"]
    assert list(table["chain"].unique()) == ["0", "1", "pooled"]
    assert list(table["n"]) == [1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5, 6]
    softmax = [metrics.network_probabilities(MODEL, network(samples, s), x) for s in range(6)]
    mean = lambda indices: np.mean([softmax[s] for s in indices], axis=0)  # noqa: E731
    for chain, indices in (("0", [0, 1, 2]), ("1", [3, 4, 5])):
        rows = table[table["chain"] == chain]
        for n in (1, 2, 3):
            assert rows["nll"].iloc[n - 1] == pytest.approx(metrics.nll(mean(indices[:n]), y), abs=1e-6)
    pooled = table[table["chain"] == "pooled"]
    for k in (1, 2, 3):
        both = 0.5 * (mean(range(k)) + mean(range(3, 3 + k)))
        assert pooled["nll"].iloc[2 * k - 1] == pytest.approx(metrics.nll(both, y), abs=1e-6)
    np.testing.assert_allclose(pooled["sample_accuracy"].iloc[:2], table.loc[table["n"] == 1, "sample_accuracy"].iloc[:2])
    with pytest.raises(ValueError, match="do not add up"):
        experiments.running_predictive_table(MODEL, samples, [3, 2], x, y)
