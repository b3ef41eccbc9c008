"""benchmarks/gpu_check.py at reduced size, compactbnn.config.cost, and scripts/cost.py on the smoke and quick presets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compactbnn.config import cost

REPO = Path(__file__).resolve().parents[1]
CPU_FIGURES = REPO / "benchmarks" / "figures" / "cpu.json"


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def reduced_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--reduced", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_gpu_check_reduced_writes_every_field(reduced_check):
    figures = reduced_check
    assert figures["reduced"] is True and figures["device"].startswith("cpu")
    assert figures["size"] == {"layer_sizes": [64, 32, 10], "num_params": 2410, "num_train": 1438, "num_test": 359}
    assert set(figures["hmc"]) == {"float32", "tf32", "bfloat16"}
    for precision, hmc in figures["hmc"].items():
        for key in ("ms_per_leapfrog", "ms_per_gradient", "ratio", "leapfrog_steps_per_second"):
            assert positive(hmc[key]), (precision, key, hmc[key])
        assert 0 < hmc["accept_rate"] <= 1 and hmc["iterations"] == 5 and hmc["num_steps"] == 10
        # the precision took effect: float32 is exact, the others are not
        assert (hmc["gradient_relative_error"] == 0) == (precision == "float32"), (precision, hmc["gradient_relative_error"])
    assert figures["hmc_speedup_over_float32"]["float32"] == 1.0
    assert figures["experiment_a"]["models"] == 12 and positive(figures["experiment_a"]["model_epochs_per_s"])
    for key in ("ensemble", "vi"):
        assert positive(figures[key]["s_per_epoch"])
    assert positive(figures["evaluation"]["example_params_per_s"]) and positive(figures["alignment"]["samples_per_s"])
    for key in ("ms_per_gradient_with_flag", "ms_per_gradient_without_flag", "slowdown"):
        assert set(figures["determinism_flag"][key]) == {"float32", "tf32", "bfloat16"}
        assert all(positive(v) for v in figures["determinism_flag"][key].values()), key
    projection = figures["projection"]
    for precision in ("float32", "tf32", "bfloat16"):
        assert positive(projection["rules"][f"hmc_chain ({precision})"]["seconds_per_job"])
        assert positive(projection["total_s"][precision])
    for rule in ("train_not_run", "analyse_not_run", "train_ensemble", "fit_vi", "compact", "posterior_metrics"):
        assert positive(projection["rules"][rule]["seconds_per_job"]), rule
    assert projection["rules"]["train_not_run"]["jobs"] == 5
    assert positive(figures["wall_s"])
    # the figures drive the cost model
    assert set(cost.rates(figures)) == set(cost.KINDS)


def config_of(*presets):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import cost as cost_script
    finally:
        sys.path.pop(0)
    return cost_script.merged_config([str(REPO / "presets" / p) for p in presets])


def test_work_model_follows_the_config():
    paper, quick = config_of(), config_of("quick.yaml")
    assert cost.sizes_of(paper).num_params == 407_050 and cost.sizes_of(paper).num_train == 60_000
    hmc = cost.job_work("hmc_chain", paper)
    assert hmc["hmc_float32"] == 10_000 * 500 * 60_000 * 407_050
    paper["posterior"]["hmc"]["gradient_precision"] = "bfloat16"
    assert set(cost.job_work("hmc_chain", paper)) == {"hmc_bfloat16", "forward"}
    # Experiment A: 50 levels of independent pairs are 100 networks per run, 50 epochs
    assert cost.job_work("train_not_run", config_of())["train"] == 100 * 50 * 60_000 * 407_050
    assert cost.job_work("train_not_run", quick)["train"] < cost.job_work("train_not_run", paper)["train"] / 100
    assert cost.job_work("figure1", paper) == {}
    counts = cost.job_counts(paper)
    assert counts["train_not_run"] == 5 and counts["hmc_chain"] == 1 and counts["fetch_mnist"] == 1
    # SG-MCMC: a job per chain, priced from benchmarks/sgmcmc.py's rates; its alignment by activation matching
    assert counts["sgmcmc_chain"] == 4 and counts["compact_sgmcmc"] == 1
    figures = cost.load_figures(CPU_FIGURES)
    chain = cost.sgmcmc_seconds(paper, cost.rates(figures)["forward"])["chain_s"]
    assert cost.job_seconds("sgmcmc_chain", paper, figures, {}) == pytest.approx(chain)
    assert cost.job_work("compact_sgmcmc", paper)["alignment"] == 4 * (12 + 8 * 4) * 60_000 * 407_050


def test_makespan_schedules_a_dag_on_cores():
    dot = "\n".join(['0[label = "all"];', '1[label = "a\\nrun: 0"];', '2[label = "a\\nrun: 1"];', '3[label = "b"];',
                     "1 -> 3", "2 -> 3", "3 -> 0"])
    jobs = cost.parse_dag(dot)
    assert [jobs[i].rule for i in range(4)] == ["all", "a", "a", "b"] and jobs[3].needs == {1, 2}
    for node, seconds in ((1, 10.0), (2, 6.0), (3, 5.0)):
        jobs[node].seconds = seconds
    assert cost.makespan(jobs, cores=2) == 15.0   # a and a side by side, then b
    assert cost.makespan(jobs, cores=1) == 21.0   # one after another
    jobs[1].gpu = jobs[2].gpu = 1
    assert cost.makespan(jobs, cores=2, gpus=1) == 21.0  # one GPU: the two GPU jobs queue
    jobs[1].threads = 2
    assert cost.makespan(jobs, cores=2) == 21.0   # a two-thread job fills both cores


@pytest.mark.skipif(not CPU_FIGURES.exists(), reason="benchmarks/figures/cpu.json missing")
@pytest.mark.parametrize("preset", ["smoke.yaml", "quick.yaml"])
def test_cost_command_prints_every_rule_and_the_dag(preset):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "cost.py"), "--configfile", f"presets/{preset}",
                             "--device", "cpu", "--cores", "2"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    name = yaml.safe_load((REPO / "presets" / preset).read_text())["name"]
    assert f"config {name}" in out and "device cpu" in out
    for rule in ("train_not_run", "analyse_not_run", "hmc_chain", "train_ensemble", "fit_vi", "compact", "figure1", "claims",
                 "sgmcmc_chain", "compact_sgmcmc"):
        assert f"\n{rule} " in out, rule
    assert "the DAG with --cores 2:" in out


def test_cost_command_says_when_a_device_is_not_measured():
    gpu = subprocess.run([sys.executable, str(REPO / "scripts" / "cost.py"), "--configfile", "presets/smoke.yaml", "--device", "gpu",
                          "--figures", "/nonexistent/gpu.json"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert gpu.returncode == 1 and "gpu: not measured" in gpu.stdout
