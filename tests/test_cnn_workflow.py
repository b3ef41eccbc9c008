"""A convolutional network through the whole workflow: model.kind cnn on the smoke preset's 8x8 digits.

The CNN preset itself (presets/cnn.yaml, real MNIST) takes minutes; this runs the same DAG on a tiny
CNN so that every rule, figure, Table 1 and the claims are exercised for a network that is not an MLP,
and checks what the CNN changes: NoT levels per permutation group, the random-permutation yardstick
over the model's groups, the parameter count of the saved samples.
"""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, snakemake

from compactbnn.config import shapes

# 2 conv layers of 6 and 8 channels on 1x8x8 digits (8x4x4 -> 4x2x2 after pooling), a dense layer of 12:
# permutation groups of 6, 8 and 12 units. Levels 4 fit the narrowest group (at most 5). With the smoke
# preset's settings otherwise, this is the run of README's tiny-CNN findings ("Beyond the MLP").
TINY_CNN = {
    "name": "cnn-smoke",
    "model": {"kind": "cnn", "hidden": None, "channels": [6, 8], "dense": [12]},
    "not_experiment": {"levels": 4},
}
# What this test shortens of the smoke preset, to check the DAG, not the findings: 500 of its 1,438
# training images, a third of its epochs and HMC iterations, a sixth of VI's.
SHORTENED = {
    "data": {"train_size": 500},
    "not_experiment": {"training": {"epochs": 5}},
    "interpolation": {"training": {"epochs": 3}},
    "posterior": {
        "hmc": {"iterations": 20, "keep_first": 8, "keep_last": 19, "num_kept": 12, "chunk_size": 10},
        "ensemble": {"training": {"epochs": 7}},
        "vi": {"epochs": 5},
    },
}


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("cnn"))
    (workdir / "tiny_cnn.yaml").write_text(yaml.safe_dump(TINY_CNN))
    (workdir / "shortened.yaml").write_text(yaml.safe_dump(SHORTENED))
    result = snakemake(workdir, "--cores", "2", "--configfile", "presets/smoke.yaml", "tiny_cnn.yaml", "shortened.yaml")
    assert result.returncode == 0, result.stdout[-6000:]
    return workdir / "results" / "cnn-smoke"


@pytest.mark.slow
def test_cnn_runs_every_rule_and_writes_every_output(cnn_run):
    for figure in ("figure1", "figure2", "figure3", "figure4", "figure_s1", "figure_s2"):
        assert (cnn_run / "figures" / f"{figure}.png").stat().st_size > 10_000
    table = pd.read_csv(cnn_run / "tables" / "table1.csv")
    assert set(table.representation) >= {"sample", "q_d", "q_r", "q"} and table[["agreement", "tv"]].notna().all().all()
    claims = json.loads((cnn_run / "claims.json").read_text())
    assert len(claims["claims"]) >= 20 and all(c["passed"] in (True, False, None) for c in claims["claims"])


@pytest.mark.slow
def test_cnn_not_levels_are_per_permutation_group(cnn_run):
    # every group its own levels 1..n_p - 1; NoT(P) of a pair is their sum over the groups
    per_group = shapes.not_levels_per_group([6, 8, 12], 4)
    expected = sorted(int(sum(level)) for level in zip(*per_group))
    networks = np.load(cnn_run / "not_experiment" / "run0" / "networks.npz")
    np.testing.assert_array_equal(networks["levels"], np.asarray(per_group))
    table = pd.read_csv(cnn_run / "data" / "not_experiment.csv")
    assert sorted(set(table.not_init)) == expected  # [3, 9, 15, 23]
    init = table[table.curve == "init"]
    # untrained pairs: rebasin finds the known permutations back, within a few spurious transpositions
    assert np.abs(init.not_measured - init.not_init).mean() < 3


@pytest.mark.slow
def test_cnn_claims_use_the_permutation_groups_as_the_width(cnn_run):
    claims = {c["id"]: c for c in json.loads((cnn_run / "claims.json").read_text())["claims"]}
    after = claims["not_path_after_rebasin"]
    table = pd.read_csv(cnn_run / "data" / "interpolation.csv")
    largest = table[(table.rebasin == "after") & (table.split == "train")].not_to_w0.max()
    assert after["measured"] == pytest.approx(largest / (6 + 8 + 12))
