"""The Snakemake workflow: dry runs of every preset, the smoke preset end to end, config validation."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake

SMOKE = REPO / "presets" / "smoke.yaml"


def _job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:")[1].split("Reasons:")[0] if "Reasons:" in output else output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("fresh"))


def _expected_counts(preset: str | None) -> dict[str, int]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if preset:
        override = yaml.safe_load((REPO / "presets" / f"{preset}.yaml").read_text())
        for key, value in override.items():
            if isinstance(value, dict):
                for inner, inner_value in value.items():
                    if isinstance(inner_value, dict) and isinstance(config[key].get(inner), dict):
                        config[key][inner].update(inner_value)
                    else:
                        config[key][inner] = inner_value
            else:
                config[key] = value
    runs = config["not_experiment"]["runs"]
    chains = config["posterior"]["hmc"]["chains"]
    counts = {"train_not_run": runs, "analyse_not_run": runs, "collect_not_experiment": 1, "train_interpolation": 1,
              "analyse_interpolation": 1, "hmc_chain": chains, "train_ensemble": 1, "fit_vi": 1, "compact": 1,
              "posterior_metrics": 1, "figure1": 1, "figure2": 1, "figure3": 1, "table1": 1, "claims": 1, "claims_html": 1, "all": 1}
    # the authors' other analyses (issue 10): HMC's running predictive, supplementary Figures S1 and S2
    counts.update({"hmc_running_predictive": 1, "figure_s1": 1, "figure_s2": 1})
    # the weight-space comparison across methods (issue 10): its data and Figure 4
    counts.update({"weight_space": 1, "figure4": 1})
    # cyclical SG-MCMC as a fourth posterior (issue 19): one job per chain, its alignment to HMC's reference
    counts.update({"sgmcmc_chain": config["posterior"]["sgmcmc"]["chains"], "compact_sgmcmc": 1})
    if config["data"]["dataset"] == "mnist":
        counts["fetch_mnist"] = 1  # the fresh copy has no resources/mnist.npz
    counts["total"] = sum(counts.values())
    return counts


@pytest.mark.parametrize("preset", [None, "quick", "smoke", "cnn", "workstation", "paper_cpu"])
def test_dry_run_job_counts_match_config(fresh_copy, preset):
    args = ["-n", "--cores", "2"] + (["--configfile", f"presets/{preset}.yaml"] if preset else [])
    result = snakemake(fresh_copy, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    assert _job_counts(result.stdout) == _expected_counts(preset)
    assert not (fresh_copy / "results").exists()


@pytest.mark.slow
def test_smoke_end_to_end_with_claims(smoke_run):
    out = smoke_run.workdir / "results" / "smoke"
    for figure in ("figure1", "figure2", "figure3", "figure4", "figure_s1", "figure_s2"):
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{figure}.{ext}").stat().st_size > 10_000
        assert (out / "notebooks" / f"{figure}.ipynb").exists()
    table = pd.read_csv(out / "tables" / "table1.csv")
    assert list(table.columns) == ["method", "representation", "agreement", "tv", "accuracy_samples", "accuracy_mean"]
    assert list(zip(table.method, table.representation)) == [
        ("hmc", "sample"), ("hmc", "q_d"), ("hmc", "q_r"), ("ensemble", "sample"), ("ensemble", "q_d"),
        ("ensemble", "q_r"), ("vi", "q"), ("ensemble", "q_lowrank"), ("sgmcmc", "sample"), ("sgmcmc", "q_d"),
        ("sgmcmc", "q_r")]
    assert "(0.8249)" in (out / "tables" / "table1.md").read_text()  # the paper's value beside ours
    assert "\\begin{tabular}" in (out / "tables" / "table1.tex").read_text()
    columns = {
        "not_experiment": ["run", "not_init", "curve", "not_measured", "distance", "barrier", "barrier_test",
                           "error_barrier_train", "error_barrier_test", "distance_w1", "distance_b2", "second_accuracy_test"],
        "interpolation": ["epoch", "lambda", "rebasin", "split", "loss", "accuracy", "not_to_w0", "l2_to_w0", "l2_to_w0_w1"],
        "hmc_running_predictive": ["chain", "n", "accuracy", "nll", "sample_accuracy", "sample_nll"],
        "sigma": ["method", "representation", "bin_left", "bin_right", "count"],
        "pruning": ["curve", "retained_percent", "accuracy"],
    }
    for name, expected in columns.items():
        frame = pd.read_csv(out / "data" / f"{name}.csv")
        assert set(expected) <= set(frame.columns), name
        assert len(frame) > 0
    assert set(pd.read_csv(out / "data" / "not_experiment.csv").curve) == {"init", "trained", "control"}
    assert set(pd.read_csv(out / "data" / "pruning.csv").curve) == {
        "hmc_mu_r", "hmc_mu_d", "ensemble_mu_r", "ensemble_mu_d", "merged", "vi",
        "hmc_last_sample", "ensemble_last_member", "ensemble_mu_r_by_vi", "sgmcmc_mu_r", "sgmcmc_mu_d"}
    weight_space = pd.read_csv(out / "data" / "weight_space.csv")
    assert len(weight_space) == 24 and set(weight_space.alignment) == {"before", "after"}  # 6 pairs of 4 methods
    modes = pd.read_csv(out / "data" / "sgmcmc_modes.csv")
    assert set(modes.pair) == {"consecutive_cycles", "within_cycle"} and set(modes.alignment) == {"before", "after"}
    for chain in (0, 1):
        assert (out / "sgmcmc" / f"chain{chain}" / "trace.nc").stat().st_size > 0
    assert "after_alignment" in json.loads((out / "compact" / "sgmcmc_rhat.json").read_text())
    claims = json.loads((out / "claims.json").read_text())
    failed = [c["id"] for c in claims["claims"] if c["passed"] is False]
    assert failed == [], f"claims that fail on the smoke preset: {failed}"
    assert claims["passed"] >= 20
    assert "claims hold in this run" in (out / "claims.md").read_text()


@pytest.mark.slow
def test_nothing_left_to_do_and_notebook_edit_reruns_only_it(smoke_run):
    result = smoke_run.snakemake("-n", "--cores", "2", "--configfile", "presets/smoke.yaml")
    assert "Nothing to be done" in result.stdout, result.stdout[-3000:]
    notebook = smoke_run.workdir / "notebooks" / "figure3.ipynb"
    original = notebook.read_text()
    try:
        book = json.loads(original)
        book["cells"][0]["source"] += "\n\nEdited."
        notebook.write_text(json.dumps(book))
        result = smoke_run.snakemake("-n", "--cores", "2", "--configfile", "presets/smoke.yaml")
        assert _job_counts(result.stdout) == {"figure3": 1, "all": 1, "total": 2}, result.stdout[-3000:]
    finally:
        notebook.write_text(original)


# The report (`--report`) is built by the README's own command: tests/test_readme.py.


def test_lint_reports_nothing():
    result = snakemake(REPO, "--lint", "--configfile", str(SMOKE))
    assert result.returncode == 0 and "Congratulations" in result.stdout, result.stdout[-3000:]


def test_snakefmt_check_passes():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Bad configs: tests/test_config_errors.py (60 refused by key, a few of them through Snakemake).


@pytest.mark.slow
def test_hmc_chain_that_accepts_nothing_stops_naming_the_step_size(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"posterior": {"hmc": {"step_size": 5.0, "chains": 1}}}))
    target = "results/smoke/hmc/chain0/samples.npz"
    result = snakemake(workdir, target, "--cores", "1", "--configfile", "presets/smoke.yaml", "bad.yaml")
    assert result.returncode != 0
    log = (workdir / "results" / "smoke" / "logs" / "hmc_chain" / "chain0.log").read_text()
    assert "posterior.hmc.min_accept_rate" in log and "posterior.hmc.step_size" in log, log[-2000:]
    assert not (workdir / target).exists()
    assert list((workdir / "results" / "smoke" / "hmc" / "chain0").glob("checkpoint-*/state.pkl"))  # kept


def _picked_params(rules_text: str) -> dict[str, dict[str, set[str]]]:
    """Per script file, its rule's params built with pick(config[...], "key", ...): {param: the keys it carries}."""
    picked = {}
    for block in re.split(r"^rule ", rules_text, flags=re.M)[1:]:
        script = re.search(r'script:\s*"\.\./scripts/(\w+\.py)"', block)
        if not script:
            continue
        params = {}
        for name, keys, extra in re.findall(r"(\w+)=pick\(\s*config(?:\[\"[^\"]+\"\])+\s*,(.*?)\)(\s*\|\s*\w+\(\))?",
                                            block, flags=re.S):
            params[name] = set(re.findall(r'"([^"]+)"', keys))
            if extra:  # pick(...) | helper(): the keys of the dicts the helper (common.smk) returns
                helper = re.search(rf"^def {extra.strip(' |()')}\(\):\n(.*?)(?=^def |\Z)", rules_text, flags=re.M | re.S)
                params[name] |= set(re.findall(r'\{"(\w+)":', helper.group(1)))
        picked[script.group(1)] = params
    return picked


def test_every_config_key_a_script_reads_reaches_it_through_its_params():
    """A job reads its section's keys from params that pick() them; a key the script reads but the rule does not
    pick is silently absent (None from cfg.get), as not_experiment.level_indices once was: every level trained."""
    rules_text = "\n".join(path.read_text() for path in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    picked, checked = _picked_params(rules_text), 0
    for script, params in picked.items():
        text = (REPO / "workflow" / "scripts" / script).read_text()
        section = re.search(r"^cfg = sm\.params\.(\w+)$", text, flags=re.M)
        if not section or section.group(1) not in params:
            continue  # no section read as cfg, or a whole config section passed
        read = {a or b for a, b in re.findall(r'\bcfg(?:\["(\w+)"\]|\.get\("(\w+)")', text)}
        assert read <= params[section.group(1)], f"{script} reads {sorted(read - params[section.group(1)])} not picked"
        checked += 1
    assert checked >= 5 and "level_indices" in picked["train_not_run.py"]["experiment"]
