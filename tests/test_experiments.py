"""Experiments A and B as tables (compactbnn.paper.experiments), on tiny digits networks; Experiment C's
tables are tested in test_experiments_posterior.py.

The checks use facts that hold whatever the training: a permuted copy computes the same function
and rebasin recovers its permutation exactly; a network interpolated with itself has no barrier;
W_lambda at lambda = 0 is W0; the HMC predictive agrees with itself. Values in the tables are
compared with the library functions they are built from (the row of the right pair, curve, Gaussian).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import stack_trees

from compactbnn.symmetry import interpolation, permutation, rebasin
from compactbnn.paper import experiments
from compactbnn.config import shapes
from compactbnn.models import MLP
from compactbnn import train

SIZES = [64, 16, 10]
MODEL = MLP(SIZES)
NOT_COLUMNS = ["run", "not_init", "curve", "not_measured", "distance", "barrier", "barrier_midpoint"]
NOT_EXTRA_COLUMNS = [
    *(f"{kind}_{split}" for split in ("train", "test")
      for kind in ("barrier", "barrier_midpoint", "error_barrier", "error_barrier_midpoint")),
    "distance_w1", "distance_b1", "distance_w2", "distance_b2",
    *(f"{network}_{metric}_{split}" for network in ("first", "second") for split in ("train", "test")
      for metric in ("loss", "accuracy")),
]
INTERPOLATION_COLUMNS = ["epoch", "lambda", "rebasin", "split", "loss", "accuracy", "not_to_w0",
                         "l2_to_w0", "l2_to_w0_w1", "l2_to_w0_b1", "l2_to_w0_w2", "l2_to_w0_b2"]


@pytest.fixture(scope="module")
def small(digits):
    """200 training images (matching, barriers) and the 359 test images."""
    return {"x": digits["x_train"][:200], "y": digits["y_train"][:200], "x_test": digits["x_test"],
            "y_test": digits["y_test"]}


def random_mlp(seed, sizes):
    """A PyTorch-default random network of MLP(sizes)."""
    return MLP(sizes).init(jax.random.key(seed))


def analyse(init, trained, trained_permuted, perms, model=MODEL, **options) -> pd.DataFrame:
    return experiments.analyse_not_run(model, init, trained, trained_permuted, perms, progress=False, **options)


def network(params, j):
    """Network j of a stack."""
    return jax.tree_util.tree_map(lambda leaf: leaf[j], params)


# --- grids ---------------------------------------------------------------------------------------------

def test_lambda_grid():
    grid = experiments.lambda_grid(11)
    np.testing.assert_allclose(grid, np.arange(11) / 10, atol=1e-15)
    assert grid[0] == 0.0 and grid[-1] == 1.0 and np.any(np.isclose(grid, 0.5))
    np.testing.assert_array_equal(experiments.lambda_grid(2), [0.0, 1.0])
    for bad in (1, 0):
        with pytest.raises(ValueError):
            experiments.lambda_grid(bad)


# --- Experiment A ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes, levels", [([64, 16, 10], [1, 4, 8, 11, 15]), ([64, 12, 5, 10], [1, 3, 7, 11])])
def test_permuted_initialisations(small, sizes, levels):
    model = MLP(sizes)
    init, perms, permuted = experiments.permuted_initialisations(model, jax.random.key(3), levels, independent=False)
    hidden = sizes[1:-1]
    model.check(init)
    assert len(perms) == len(hidden)
    assert permuted[0]["weight"].shape == (len(levels), sizes[1], sizes[0])
    logits = np.asarray(model.apply(init, small["x"]))
    for j, level in enumerate(levels):
        for layer, width in enumerate(hidden):
            assert perms[layer].shape == (len(levels), width)
            # exactly k transpositions, or n_l - 1 where the layer is too narrow for k
            assert permutation.count_transpositions(perms[layer][j]) == min(level, width - 1)
        copy = network(permuted, j)
        expected = permutation.permute(model, init, [p[j] for p in perms])
        for got, want in zip(jax.tree_util.tree_leaves(copy), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_array_equal(got, want)
        # a permuted copy computes the same function as W_init ...
        np.testing.assert_allclose(np.asarray(model.apply(copy, small["x"])), logits, rtol=1e-5, atol=1e-5)
        # ... with different weights (every level moves at least one unit)
        assert not np.array_equal(np.asarray(copy[0]["weight"]), np.asarray(init[0]["weight"]))
    # same key, same networks and permutations
    init2, perms2, _ = experiments.permuted_initialisations(MLP(sizes), jax.random.key(3), levels, independent=False)
    np.testing.assert_array_equal(init2[0]["weight"], init[0]["weight"])
    for a, b in zip(perms, perms2):
        np.testing.assert_array_equal(a, b)


def test_permuted_initialisations_independent_pairs(small):
    """The authors' pairs: a fresh W_init for every level, permuted by its own P_k."""
    sizes, levels = [64, 16, 10], [1, 4, 8, 15]
    init, perms, permuted = experiments.permuted_initialisations(MLP(sizes), jax.random.key(4), levels)
    assert init[0]["weight"].shape == (len(levels), 16, 64)
    firsts = [network(init, j) for j in range(len(levels))]
    for j, level in enumerate(levels):
        assert permutation.count_transpositions(perms[0][j]) == level
        expected = permutation.permute(MODEL, firsts[j], [perms[0][j]])
        np.testing.assert_array_equal(network(permuted, j)[0]["weight"], expected[0]["weight"])
        np.testing.assert_allclose(np.asarray(MODEL.apply(network(permuted, j), small["x"])),
                                   np.asarray(MODEL.apply(firsts[j], small["x"])), rtol=1e-5, atol=1e-5)
    # every level starts from its own network
    assert len({np.asarray(f[0]["weight"]).tobytes() for f in firsts}) == len(levels)
    # analysed pair by pair: the init curve recovers each level's planted P against its own W_init
    table = analyse(init, init, permuted, perms, x_match=small["x"], splits={"train": (small["x"], small["y"])},
                    split="train", lambdas=experiments.lambda_grid(3), method="activation")
    init_rows = table[table["curve"] == "init"]
    np.testing.assert_array_equal(init_rows["not_measured"], levels)
    np.testing.assert_allclose(init_rows["distance"], [float(interpolation.squared_distance(MODEL, firsts[j], network(permuted, j)))
                                                       for j in range(len(levels))], rtol=1e-5)
    assert (table.loc[table["curve"] == "control", "distance"] == 0).all()


@pytest.fixture(scope="module")
def not_run(small):
    """Experiment A on an untrained 64-16-10 network: the "trained" networks are the inits themselves."""
    levels = np.asarray(shapes.not_levels(16, 5), np.int32)
    init, perms, permuted = experiments.permuted_initialisations(MLP(SIZES), jax.random.key(0), levels, independent=False)
    lambdas = experiments.lambda_grid(5)
    splits = {"train": (small["x"], small["y"]), "test": (small["x_test"], small["y_test"])}
    table = analyse(init, init, permuted, perms, x_match=None, splits=splits, split="train",
                    lambdas=lambdas, method="weight", run=3)
    return dict(levels=levels, init=init, perms=perms, permuted=permuted, lambdas=lambdas, splits=splits, table=table)


def test_analyse_not_run_rows_and_columns(not_run):
    table, levels = not_run["table"], not_run["levels"]
    assert list(table.columns) == NOT_COLUMNS + NOT_EXTRA_COLUMNS
    assert len(table) == 3 * len(levels)
    assert list(table["curve"]) == [c for c in experiments.NOT_CURVES for _ in levels]
    assert (table["run"] == 3).all()
    for curve in experiments.NOT_CURVES:
        np.testing.assert_array_equal(table.loc[table["curve"] == curve, "not_init"], levels)


def test_analyse_not_run_init_curve_recovers_the_planted_permutation(not_run):
    init_rows = not_run["table"][not_run["table"]["curve"] == "init"]
    # weight matching finds P exactly for an exact permuted copy
    np.testing.assert_array_equal(init_rows["not_measured"], init_rows["not_init"])
    np.testing.assert_array_equal(init_rows["not_measured"], not_run["levels"])


def test_analyse_not_run_distance_and_barrier_are_the_pairs(not_run, small):
    """Each row's distance and barriers are those of its own pair (W_init, P_k W_init)."""
    init_rows = not_run["table"][not_run["table"]["curve"] == "init"].reset_index(drop=True)
    lambdas = not_run["lambdas"]
    for j in range(len(not_run["levels"])):
        second = network(not_run["permuted"], j)
        assert init_rows.loc[j, "distance"] == pytest.approx(float(interpolation.squared_distance(MODEL, not_run["init"], second)),
                                                             rel=1e-5)
        loss = interpolation.evaluate_path(MODEL, not_run["init"], second, lambdas, {"s": (small["x"], small["y"])})["s_loss"]
        assert init_rows.loc[j, "barrier"] == pytest.approx(loss.max() - 0.5 * (loss[0] + loss[-1]), abs=1e-5)
        assert init_rows.loc[j, "barrier_midpoint"] == pytest.approx(loss[2] - 0.5 * (loss[0] + loss[-1]), abs=1e-5)
    assert init_rows["distance"].iloc[-1] > 0


def test_analyse_not_run_extras_are_the_pairs(not_run):
    """Barriers on both splits, error barriers, per-layer distances and each network's metrics of every pair."""
    table, lambdas, splits = not_run["table"], not_run["lambdas"], not_run["splits"]
    np.testing.assert_array_equal(table["barrier"], table["barrier_train"])  # split="train"
    np.testing.assert_array_equal(table["barrier_midpoint"], table["barrier_midpoint_train"])
    layers = table[["distance_w1", "distance_b1", "distance_w2", "distance_b2"]].sum(axis=1)
    np.testing.assert_allclose(layers, table["distance"], rtol=1e-5)
    init_rows = table[table["curve"] == "init"].reset_index(drop=True)
    for j in (0, len(not_run["levels"]) - 1):
        second = network(not_run["permuted"], j)
        for name, (x, y) in splits.items():
            path = interpolation.evaluate_path(MODEL, not_run["init"], second, lambdas, {name: (x, y)})
            error = 1.0 - path[f"{name}_accuracy"]
            assert init_rows.loc[j, f"error_barrier_{name}"] == pytest.approx(error.max() - 0.5 * (error[0] + error[-1]), abs=1e-6)
            assert init_rows.loc[j, f"error_barrier_midpoint_{name}"] == pytest.approx(
                error[2] - 0.5 * (error[0] + error[-1]), abs=1e-6)
            loss = path[f"{name}_loss"]
            assert init_rows.loc[j, f"barrier_{name}"] == pytest.approx(loss.max() - 0.5 * (loss[0] + loss[-1]), abs=1e-5)
            for which, net in (("first", not_run["init"]), ("second", second)):
                metrics_ = train.evaluate(MODEL, net, x, y)
                assert init_rows.loc[j, f"{which}_loss_{name}"] == pytest.approx(metrics_["loss"], abs=1e-5)
                assert init_rows.loc[j, f"{which}_accuracy_{name}"] == pytest.approx(metrics_["accuracy"], abs=1e-6)
        by_layer = interpolation.squared_distance_per_layer(MODEL, not_run["init"], second)
        for layer, value in by_layer.items():
            assert init_rows.loc[j, f"distance_{layer}"] == pytest.approx(float(value), rel=1e-5, abs=1e-9)
    # a permuted copy is the same function: its pair's ends score alike
    np.testing.assert_allclose(init_rows["first_accuracy_test"], init_rows["second_accuracy_test"])
    assert (init_rows["distance_w1"].iloc[-1] > 0) and (init_rows["distance_b2"] == 0).all()  # b2 is never permuted


def test_analyse_not_run_rejects_an_unknown_barrier_split(not_run, small):
    with pytest.raises(ValueError, match="split 'test'"):
        analyse(not_run["init"], not_run["init"], not_run["permuted"], not_run["perms"], x_match=None,
                splits={"train": (small["x"], small["y"])}, split="test", lambdas=not_run["lambdas"], method="weight")


def test_analyse_not_run_control_of_untrained_networks_is_zero(not_run):
    """Aligned by the known P, W_init and P W_init coincide: no distance, no barrier, no NoT."""
    control = not_run["table"][not_run["table"]["curve"] == "control"]
    np.testing.assert_array_equal(control["distance"], 0.0)
    np.testing.assert_allclose(control["barrier"], 0.0, atol=1e-6)
    np.testing.assert_allclose(control["barrier_midpoint"], 0.0, atol=1e-6)
    np.testing.assert_array_equal(control["not_measured"], 0)


def test_analyse_not_run_trained_curve_uses_the_trained_networks(not_run):
    """With the inits passed as trained networks, the trained curve equals the init curve."""
    table = not_run["table"]
    trained = table[table["curve"] == "trained"].reset_index(drop=True)
    init_rows = table[table["curve"] == "init"].reset_index(drop=True)
    for column in ("not_measured", "distance", "barrier"):
        np.testing.assert_allclose(trained[column], init_rows[column], rtol=1e-6, atol=1e-7)


def test_analyse_not_run_trained_and_control_pairs(small):
    """Different "trained" networks: the trained pair is (T, T'_k), the control pair (P_k T, T'_k)."""
    levels = [2, 9]
    init, perms, permuted = experiments.permuted_initialisations(MLP(SIZES), jax.random.key(1), levels, independent=False)
    trained = random_mlp(11, SIZES)
    trained_permuted = stack_trees([random_mlp(12, SIZES), random_mlp(13, SIZES)])
    table = analyse(init, trained, trained_permuted, perms, x_match=small["x"],
                    splits={"train": (small["x"], small["y"])}, split="train", lambdas=experiments.lambda_grid(3),
                    method="activation")
    for j in range(2):
        second = network(trained_permuted, j)
        row = table[(table["curve"] == "trained")].iloc[j]
        assert row["distance"] == pytest.approx(float(interpolation.squared_distance(MODEL, trained, second)), rel=1e-5)
        assert row["not_measured"] == interpolation.transpositions_between(MODEL, trained, second, method="activation",
                                                                          x=small["x"])
        controlled = permutation.permute(MODEL, trained, [p[j] for p in perms])
        row = table[(table["curve"] == "control")].iloc[j]
        assert row["distance"] == pytest.approx(float(interpolation.squared_distance(MODEL, controlled, second)), rel=1e-5)
    # activation matching also recovers the planted P at initialisation
    init_rows = table[table["curve"] == "init"]
    np.testing.assert_array_equal(init_rows["not_measured"], levels)


def test_analyse_not_run_takes_the_shared_first_network_stacked_or_not(not_run, small):
    """train_not_run stores the first networks as a stack: of 1 (shared W_init) or of L (independent pairs)."""
    options = dict(x_match=None, splits={"train": (small["x"], small["y"])}, split="train",
                   lambdas=experiments.lambda_grid(3), method="weight")
    init = not_run["init"]
    plain = analyse(init, init, not_run["permuted"], not_run["perms"], **options)
    stacked = analyse(MODEL.stack_one(init), MODEL.stack_one(init), not_run["permuted"], not_run["perms"], **options)
    pd.testing.assert_frame_equal(plain, stacked)
    with pytest.raises(ValueError, match="a stack of 2"):
        analyse(stack_trees([init, init]), init, not_run["permuted"], not_run["perms"], **options)


def test_analyse_not_run_midpoint_is_nan_without_half(not_run, small):
    table = analyse(not_run["init"], not_run["init"], not_run["permuted"], not_run["perms"],
                    x_match=None, splits={"train": (small["x"], small["y"])}, split="train",
                    lambdas=experiments.lambda_grid(4), method="weight")
    assert table["barrier_midpoint"].isna().all()
    assert table["barrier"].notna().all()


def test_analyse_not_run_two_hidden_layers_sums_not(small):
    """NoT(P) in not_init is summed over hidden layers, as NoT(P') in not_measured is (not the level k per layer)."""
    sizes = [64, 12, 8, 10]
    levels = [1, 5, 9]  # 9 > 8 - 1: the second layer gets NoT 7 at that level
    init, perms, permuted = experiments.permuted_initialisations(MLP(sizes), jax.random.key(2), levels, independent=False)
    table = analyse(init, init, permuted, perms, model=MLP(sizes), x_match=None, splits={"train": (small["x"], small["y"])},
                    split="train", lambdas=experiments.lambda_grid(3), method="weight")
    init_rows = table[table["curve"] == "init"]
    planted = [sum(permutation.count_transpositions(p[j]) for p in perms) for j in range(len(levels))]
    assert planted == [2, 10, 16]
    np.testing.assert_array_equal(init_rows["not_measured"], init_rows["not_init"])
    np.testing.assert_array_equal(init_rows["not_init"], planted)


# --- Experiment B ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interpolation_run(small):
    """Two epochs of snapshots of two networks: (epochs + 1 = 2, 2 networks, ...)."""
    epochs = [stack_trees([random_mlp(20, SIZES), random_mlp(21, SIZES)]),
              stack_trees([random_mlp(22, SIZES), random_mlp(23, SIZES)])]
    snapshots = stack_trees(epochs)
    lambdas = experiments.lambda_grid(5)
    splits = {"train": (small["x"], small["y"]), "test": (small["x_test"], small["y_test"])}
    table = experiments.interpolation_table(MODEL, snapshots, lambdas, splits, method="weight", x_match=None, progress=False)
    return dict(snapshots=snapshots, lambdas=lambdas, splits=splits, table=table)


def test_interpolation_table_rows_and_columns(interpolation_run):
    table, lambdas = interpolation_run["table"], interpolation_run["lambdas"]
    assert list(table.columns) == INTERPOLATION_COLUMNS
    assert len(table) == 2 * 2 * 2 * len(lambdas)  # epochs x rebasin x splits x lambdas
    assert set(table["epoch"]) == {0, 1}
    assert set(table["rebasin"]) == {"before", "after"} and set(table["split"]) == {"train", "test"}
    for _, group in table.groupby(["epoch", "rebasin", "split"]):
        np.testing.assert_array_equal(group["lambda"], lambdas)


def test_interpolation_table_not_to_w0(interpolation_run):
    table = interpolation_run["table"]
    before, after = table[table["rebasin"] == "before"], table[table["rebasin"] == "after"]
    # W_lambda at lambda = 0 is W0 itself
    assert (before.loc[before["lambda"] == 0.0, "not_to_w0"] == 0).all()
    # after rebasin, W_1 is W1 aligned to W0: the identity aligns it again
    assert (after.loc[after["lambda"] == 1.0, "not_to_w0"] == 0).all()
    for epoch in (0, 1):
        w0, w1 = (network(network(interpolation_run["snapshots"], epoch), i) for i in (0, 1))
        expected = interpolation.transpositions_between(MODEL, w0, w1, method="weight")
        assert expected > 0
        rows = before[(before["epoch"] == epoch) & (before["lambda"] == 1.0)]
        assert (rows["not_to_w0"] == expected).all()


def test_interpolation_table_distance_to_w0(interpolation_run):
    """||W_lambda - W0|| in total and per layer: 0 at lambda = 0, ||W1 - W0|| at 1 (W1 aligned after rebasin), linear."""
    table, lambdas = interpolation_run["table"], interpolation_run["lambdas"]
    layers = ["l2_to_w0_w1", "l2_to_w0_b1", "l2_to_w0_w2", "l2_to_w0_b2"]
    np.testing.assert_allclose((table[layers] ** 2).sum(axis=1), table["l2_to_w0"] ** 2, rtol=1e-5)
    for epoch in (0, 1):
        w0, w1 = (network(network(interpolation_run["snapshots"], epoch), i) for i in (0, 1))
        aligned, _ = rebasin.rebasin(MODEL, w0, w1, method="weight")
        for when, end in (("before", w1), ("after", aligned)):
            rows = table[(table["epoch"] == epoch) & (table["rebasin"] == when) & (table["split"] == "train")]
            full = np.sqrt(float(interpolation.squared_distance(MODEL, w0, end)))
            np.testing.assert_allclose(rows["l2_to_w0"], lambdas * full, rtol=1e-4, atol=1e-6)
            per_layer = interpolation.squared_distance_per_layer(MODEL, w0, end)
            for layer, value in per_layer.items():
                np.testing.assert_allclose(rows[f"l2_to_w0_{layer}"], lambdas * np.sqrt(float(value)), rtol=1e-4, atol=1e-6)
        last = lambda when: table.loc[(table["epoch"] == epoch) & (table["rebasin"] == when)  # noqa: E731
                                      & (table["lambda"] == 1.0), "l2_to_w0"].iloc[0]
        assert last("after") < last("before")  # the alignment brings W1 nearer W0
        # the same values on every split's rows
        rows = table[table["epoch"] == epoch].pivot_table(index=["rebasin", "lambda"], columns="split", values="l2_to_w0")
        np.testing.assert_array_equal(rows["train"], rows["test"])


def test_interpolation_table_losses(interpolation_run):
    table, splits = interpolation_run["table"], interpolation_run["splits"]
    for epoch in (0, 1):
        w0, w1 = (network(network(interpolation_run["snapshots"], epoch), i) for i in (0, 1))
        for split, (x, y) in splits.items():
            rows = table[(table["epoch"] == epoch) & (table["split"] == split)]
            at = lambda when, lam, column: float(  # noqa: E731
                rows.loc[(rows["rebasin"] == when) & (rows["lambda"] == lam), column].iloc[0])
            ends = [train.evaluate(MODEL, w, x, y) for w in (w0, w1)]
            for when in ("before", "after"):
                assert at(when, 0.0, "loss") == pytest.approx(float(ends[0]["loss"]), abs=1e-5)
                assert at(when, 0.0, "accuracy") == pytest.approx(float(ends[0]["accuracy"]), abs=1e-6)
                # the aligned W1 computes the same function as W1
                assert at(when, 1.0, "loss") == pytest.approx(float(ends[1]["loss"]), abs=1e-5)
            middle = jax.tree_util.tree_map(lambda a, b: 0.5 * (a + b), w0, w1)
            assert at("before", 0.5, "loss") == pytest.approx(float(train.evaluate(MODEL, middle, x, y)["loss"]), abs=1e-5)
            # rebasin changes the path between the same ends
            assert at("after", 0.5, "loss") != pytest.approx(at("before", 0.5, "loss"), abs=1e-4)
