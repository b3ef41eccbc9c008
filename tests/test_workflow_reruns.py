"""What a change reruns, planned by dry runs on the session's smoke run: rebinning Figure 3, editing the plot
code or a script, and a changed HMC config meeting protected samples; and on a copy whose smoke outputs are
touched, not made: editing one notebook plans only its job, editing the plot code every notebook's job."""

import os
import re
from contextlib import contextmanager

import pytest
import yaml

from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow
SMOKE = ("--configfile", "presets/smoke.yaml")


def planned(result) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    assert result.returncode == 0, result.stdout[-3000:]
    if "Nothing to be done" in result.stdout:
        return {}
    table = result.stdout.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


@contextmanager
def edited(path):
    """``path`` with a comment line appended, as after an edit; its old content and times restored afterwards.

    (Snakemake compares an input's checksum when its mtime is newer: touching a file reruns nothing.)
    """
    before, content = path.stat(), path.read_bytes()
    path.write_bytes(content + b"\n# edited\n")
    try:
        yield
    finally:
        path.write_bytes(content)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_rebinning_figure3_plans_only_the_figure(smoke_run, tmp_path):
    rebin = tmp_path / "rebin.yaml"
    rebin.write_text(yaml.safe_dump({"posterior": {"compact": {"sigma_bins": 7}}}))
    assert planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE, str(rebin))) == {"figure3": 1, "all": 1}


def test_editing_the_plot_code_plans_the_figure_jobs(smoke_run):
    with edited(smoke_run.workdir / "src" / "compactbnn" / "paper" / "figures.py"):
        jobs = planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE))
    assert {"figure1", "figure2", "figure3", "table1", "all"} <= set(jobs)
    assert all(rule.startswith(("figure", "table")) or rule == "all" for rule in jobs), jobs
    assert planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE)) == {}  # times restored


def test_editing_a_script_plans_its_job_and_what_follows(smoke_run):
    with edited(smoke_run.workdir / "workflow" / "scripts" / "posterior_metrics.py"):
        jobs = planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE))
    assert {"posterior_metrics", "figure3", "table1", "claims"} <= set(jobs)
    assert not {"hmc_chain", "compact", "train_ensemble", "fit_vi"} & set(jobs), jobs


def test_changed_hmc_config_stops_before_deleting_finished_chains(smoke_run, tmp_path):
    samples = sorted((smoke_run.workdir / "results" / "smoke" / "hmc").glob("chain*/samples.npz"))
    assert len(samples) == 2
    assert all(not path.stat().st_mode & 0o222 for path in samples)  # protected(): read-only
    before = [path.stat().st_mtime_ns for path in samples]
    changed = tmp_path / "step.yaml"
    changed.write_text(yaml.safe_dump({"posterior": {"hmc": {"step_size": 0.004}}}))
    result = smoke_run.snakemake("--cores", "1", *SMOKE, str(changed))
    assert result.returncode != 0
    assert "HMC samples results/smoke/hmc/chain0/samples.npz and 1 more were drawn under another config" in result.stdout, (
        result.stdout[-3000:])
    assert "Building DAG" not in result.stdout  # stopped before planning any job
    assert [path.stat().st_mtime_ns for path in samples] == before
    # more chains, or another acceptance threshold, leave the finished chains' sampling config alone
    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump({"posterior": {"hmc": {"chains": 3, "min_accept_rate": 0.5}}}))
    assert planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE, str(more)))["hmc_chain"] == 1
    assert planned(smoke_run.snakemake("-n", "--cores", "1", *SMOKE)) == {}


@pytest.fixture(scope="module")
def touched(tmp_path_factory):
    """A copy of the repository whose smoke outputs are empty files marked up to date (``--touch``): what a
    change reruns is planned there in seconds, without the smoke run."""
    workdir = copy_workflow(tmp_path_factory.mktemp("touched"))
    listed = snakemake(workdir, "-n", "--cores", "1", *SMOKE)
    assert listed.returncode == 0, listed.stdout[-3000:]
    for line in re.findall(r"^\s+output: (.+)$", listed.stdout, re.M):
        for name in line.split(", "):
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).touch()
    result = snakemake(workdir, "--touch", "--cores", "1", *SMOKE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert planned(snakemake(workdir, "-n", "--cores", "1", *SMOKE)) == {}
    return workdir


def test_editing_a_notebook_plans_only_its_job(touched):
    notebooks = sorted((touched / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 7  # Figures 1-4, S1, S2 and Table 1
    for notebook in notebooks:
        with edited(notebook):
            assert planned(snakemake(touched, "-n", "--cores", "1", *SMOKE)) == {notebook.stem: 1, "all": 1}


@pytest.mark.parametrize("code", ["figures.py", "printed_numbers.py"])
def test_editing_the_plot_code_plans_every_notebook_job_alone(touched, code):
    notebooks = {path.stem for path in (touched / "notebooks").glob("*.ipynb")}
    with edited(touched / "src" / "compactbnn" / "paper" / code):
        jobs = planned(snakemake(touched, "-n", "--cores", "1", *SMOKE))
    assert jobs == {**dict.fromkeys(notebooks, 1), "all": 1}
