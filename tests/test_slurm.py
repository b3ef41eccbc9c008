"""The smoke preset through `snakemake --profile profiles/slurm` on a real (single-node) SLURM.

The cluster comes from `bash scripts/slurm_cluster.sh install && bash scripts/slurm_cluster.sh up`
(CI runs both before pytest). The test runs the smoke preset through the SLURM executor plugin
in a copy of the repository, beside the session's local smoke run (conftest.smoke_run). It then
checks that every job of the cluster run was a SLURM job that accounting (`sacct`) saw
complete, with the GPUs, memory and CPUs that its rule asked for, and that the cluster run
computed the same tables, data and claims as the local one.

Skipped, saying why, only where SLURM is not installed, or installed but cannot be started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_workflow, snakemake, without_unoptimised_build

from compactbnn.config import compile_cache

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
PRESET = "presets/smoke.yaml"
RESULTS = "results/smoke"
# Over SLURM each job of the smoke preset also pays for its own Snakemake start and for status polling.
SLURM_TIMEOUT_S = 1800


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _node_state() -> str:
    """State of the cluster's node as sinfo reports it ('' when slurmctld does not answer)."""
    out = _run(["sinfo", "--noheader", "--nodes=localhost", "--format=%T"], timeout=30)
    return out.stdout.strip() if out.returncode == 0 else ""


def _serving() -> bool:
    return _node_state() in {"idle", "mixed", "allocated", "completing"}


@pytest.fixture(scope="module")
def slurm_cluster():
    """A SLURM cluster that takes jobs: the running one, or one this fixture brings up (and down)."""
    missing = [tool for tool in ("sbatch", "sacct", "sinfo") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"SLURM is not installed here ({', '.join(missing)} not found); "
            "`bash scripts/slurm_cluster.sh install && bash scripts/slurm_cluster.sh up` sets up "
            "a single-node cluster"
        )
    started = False
    if not _serving():
        up = _run(["bash", str(CLUSTER), "up"], timeout=300)
        started = up.returncode == 0
        if not _serving():
            pytest.skip(
                "SLURM is installed but its single-node cluster could not be started "
                f"(node state {_node_state()!r}); `bash scripts/slurm_cluster.sh up` said:\n"
                + (up.stdout + up.stderr)[-2000:]
            )
    yield
    if started:
        _run(["bash", str(CLUSTER), "down"], timeout=300)


def _activated_environment() -> dict[str, str]:
    """The environment of a shell with the project's venv activated, as the README runs Snakemake; XLA's
    default build, as the session's smoke run (conftest.UNOPTIMISED)."""
    env = without_unoptimised_build(dict(os.environ))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    return env


def _check_finished(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{(result.stdout + result.stderr)[-6000:]}"


def _jobs(log: str) -> dict[int, dict]:
    """Snakemake's job blocks ('rule NAME:' ... 'jobid: K' ... 'resources: a=1, b=2'), by jobid.

    'localrule NAME:' marks a job run by the Snakemake process itself: in a cluster run, the
    rules that never go to the cluster (such as `all`); in a local run, every job.
    """
    jobs: dict[int, dict] = {}
    current = None
    for line in log.splitlines():
        header = re.match(r"^(local)?rule (\w+):$", line)
        if header:
            current = {"rule": header.group(2), "local": bool(header.group(1)), "resources": {}}
            continue
        if re.match(r"^\S", line):
            if current is not None and "jobid" in current:
                jobs[current["jobid"]] = current
            current = None
            continue
        if current is None:
            continue
        field = re.match(r"^\s+(jobid|resources): (.*)$", line)
        if field and field.group(1) == "jobid":
            current["jobid"] = int(field.group(2))
        elif field:
            current["resources"] = dict(
                item.split("=", 1) for item in field.group(2).split(", ") if "=" in item
            )
    if current is not None and "jobid" in current:
        jobs[current["jobid"]] = current
    return jobs


def _submissions(log: str) -> list[tuple[int, str]]:
    """(Snakemake jobid, SLURM jobid) of every submission, retries included, in order."""
    return [
        (int(job), slurm)
        for job, slurm in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    ]


def _sacct(run_id: str) -> dict[str, dict]:
    """Accounting records of the run's allocations (sbatch jobs, not their steps), by SLURM jobid."""
    fields = ["JobIDRaw", "State", "AllocTRES", "Comment", "ExitCode"]
    out = _run(
        [
            "sacct", "--allocations", "--parsable2", "--noheader", "--starttime=now-1days",
            f"--name={run_id}", f"--format={','.join(fields)}",
        ],
        timeout=60,
        check=True,
    ).stdout
    records = {}
    for line in out.splitlines():
        record = dict(zip(fields, line.split("|")))
        record["tres"] = dict(item.split("=", 1) for item in record["AllocTRES"].split(",") if item)
        records[record["JobIDRaw"]] = record
    return records


def _megabytes(tres_mem: str) -> float:
    """sacct's memory TRES ('4000M', '16G') in MB."""
    number, unit = re.fullmatch(r"([\d.]+)([KMGT])", tres_mem).groups()
    return float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[unit]


def _tables(results: Path) -> dict[str, Path]:
    return {str(p.relative_to(results)): p for p in sorted(results.rglob("*.csv"))}


@pytest.fixture(scope="module")
def runs(slurm_cluster, smoke_run, tmp_path_factory):
    """The smoke preset run through SLURM, beside the session's local run of it."""
    on_slurm = copy_workflow(tmp_path_factory.mktemp("slurm_run"))
    # The cluster's jobs read the programs that the local run's jobs compiled, as a user's second run of the
    # same workflow would (config key compilation_cache): the numbers must still agree to the last bit.
    environment = {**_activated_environment(),
                   **compile_cache.environment(smoke_run.workdir / ".snakemake" / "jax-cache")}
    cluster_result = snakemake(
        on_slurm, "--configfile", PRESET, "--profile", "profiles/slurm",
        # poll sacct every few seconds, not the 40 s that suits a busy cluster
        "--slurm-init-seconds-before-status-checks", "2",
        "--latency-wait", "10",
        timeout=SLURM_TIMEOUT_S, env=environment,
    )
    _check_finished(cluster_result, "the smoke run through profiles/slurm")
    return {"local": smoke_run.workdir, "local_log": smoke_run.log, "slurm": on_slurm, "slurm_log": cluster_result.stdout}


def test_every_job_went_through_slurm_with_its_resources(runs):
    log = runs["slurm_log"]
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, "the SLURM executor plugin did not report a run ID:\n" + log[-3000:]
    submissions = _submissions(log)
    assert submissions, "no job was submitted to SLURM:\n" + log[-3000:]
    jobs = _jobs(log)
    accounting = _sacct(run_id.group(1))

    # every submission is in accounting, under the rule that the plugin wrote into its comment
    for job, slurm_id in submissions:
        assert slurm_id in accounting, f"SLURM job {slurm_id} (Snakemake job {job}) is not in sacct"
        record, rule = accounting[slurm_id], jobs[job]["rule"]
        assert record["Comment"].startswith(f"rule_{rule}"), (rule, record)

    # the last attempt of every job completed; resources reached SLURM as the rule declared them
    last_attempt = dict(submissions)
    gpu_jobs = 0
    for job, slurm_id in last_attempt.items():
        record, resources = accounting[slurm_id], jobs[job]["resources"]
        assert record["State"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        gpus = int(resources.get("gpu", 0))
        assert int(record["tres"].get("gres/gpu", 0)) == gpus, (jobs[job], record)
        assert _megabytes(record["tres"]["mem"]) == pytest.approx(float(resources["mem_mb"]), rel=1e-3), (
            jobs[job],
            record,
        )
        assert int(record["tres"]["cpu"]) == int(resources["cpus_per_task"]), (jobs[job], record)
        gpu_jobs += gpus > 0
    assert gpu_jobs > 0, "no job of the smoke preset asked SLURM for a GPU"

    # every job but the local ones (`all`) went to SLURM
    assert set(last_attempt) == {job for job, info in jobs.items() if not info["local"]}
    # and the cluster run had the same jobs as the local run, no more, no fewer
    local_rules = Counter(job["rule"] for job in _jobs(runs["local_log"]).values())
    assert Counter(job["rule"] for job in jobs.values()) == local_rules


def test_results_equal_the_local_run(runs):
    local = _tables(runs["local"] / RESULTS)
    cluster = _tables(runs["slurm"] / RESULTS)
    assert "tables/table1.csv" in local, sorted(local)
    assert any(name.startswith("data/") for name in local), sorted(local)
    assert sorted(cluster) == sorted(local)
    for name, path in local.items():
        # same seeds, same code, same machine: the numbers must agree to the last bit
        pd.testing.assert_frame_equal(pd.read_csv(cluster[name]), pd.read_csv(path), check_exact=True, obj=name)
    claims = "claims.json"
    local_claims = json.loads((runs["local"] / RESULTS / claims).read_text())
    cluster_claims = json.loads((runs["slurm"] / RESULTS / claims).read_text())
    assert cluster_claims == local_claims
