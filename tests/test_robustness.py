"""Interruptions, damaged files and shared machines: outputs stay under results/NAME, checkpoints
survive truncation, files get the umask's mode, a broken download is named."""

from __future__ import annotations

import gzip
import json
import os
import re
import stat

import jax
import numpy as np
import pytest

from compactbnn import data, io
from compactbnn.config import compile_cache
from compactbnn.inference import diagnostics, hmc
from compactbnn.models import MLP
from conftest import copy_workflow, snakemake

# ---------------------------------------------------------------------------------------------
# Every output of every rule lies under results/NAME/


PATHS_SNAKEFILE = '''include: "Snakefile"

import json

paths = {}
for r in workflow.rules:
    paths[r.name] = [str(f) for f in r.output] + [str(f) for f in r.log] + ([str(r.benchmark)] if r.benchmark else [])
print("PATHS=" + json.dumps(paths))
sys.exit(0)
'''


@pytest.mark.parametrize("name", ["a..b"])  # dots, as in "..", yet a plain directory name
def test_every_output_of_every_rule_lies_under_results_name(tmp_path, name):
    workdir = copy_workflow(tmp_path)
    (workdir / "paths.smk").write_text(PATHS_SNAKEFILE)
    result = snakemake(workdir, "-s", "paths.smk", "-n", "--cores", "1", "--configfile", "presets/smoke.yaml",
                       "--config", f"name={name}", timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    paths = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("PATHS="))[6:])
    assert len(paths) >= 15
    # the MNIST cache (data.root) is shared by every config on purpose: the only output elsewhere
    assert paths.pop("fetch_mnist")[0] == "resources/mnist.npz"
    for rule, files in paths.items():
        for path in files:
            assert os.path.normpath(path).startswith(f"results/{name}/") and path.startswith(f"results/{name}/"), (rule, path)
            for wildcard in re.findall(r"\{([^}]*)\}", path):
                constraint = wildcard.partition(",")[2]
                assert constraint, (rule, path, "a wildcard without a constraint could hold ../")
                assert not any(re.fullmatch(constraint, bad) for bad in ("..", "a/b", "", "/x")), (rule, path)


# ---------------------------------------------------------------------------------------------
# A damaged HMC checkpoint: named, then the chain resumes from the previous chunk (or restarts)

CHUNKED = hmc.HMCConfig(step_size=1e-3, num_steps=10, num_iterations=20, keep_first=4, keep_last=19, num_kept=8, chunk_size=5)
MODEL = MLP((64, 16, 10))


@pytest.fixture(scope="module")
def problem(digits):
    return {"x": digits["x_train"][:200], "y": digits["y_train"][:200]}


def _chain(problem, directory, **kwargs):
    return hmc.run_chain(MODEL, problem["x"], problem["y"], CHUNKED, jax.random.key(3), directory, progress=False, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted(problem, tmp_path_factory):
    return _chain(problem, tmp_path_factory.mktemp("full") / "chain")


@pytest.mark.parametrize("damage, falls_back_to", [
    ({"state.pkl": "truncate"}, "state.previous.pkl"),
    ({"state.pkl": "delete"}, "the previous chunk's"),
    ({"state.pkl": "truncate", "state.previous.pkl": "garbage"}, "restarting the chain"),
])
def test_damaged_checkpoint_is_named_and_the_chain_completes_bit_for_bit(problem, uninterrupted, tmp_path, damage, falls_back_to):
    directory = tmp_path / "chain"
    part = _chain(problem, directory, max_chunks=3)
    assert part.completed_iterations == 15 and (directory / "state.previous.pkl").exists()
    for name, how in damage.items():
        path = directory / name
        if how == "truncate":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif how == "delete":
            path.unlink()
        else:
            path.write_bytes(b"not a pickle at all")
    with pytest.warns(RuntimeWarning, match=re.escape(str(directory / next(iter(damage))))) as caught:
        resumed = _chain(problem, directory)
    assert any(falls_back_to in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert resumed.complete
    np.testing.assert_array_equal(resumed.samples, uninterrupted.samples)
    for name in hmc.TRACE_NAMES:
        np.testing.assert_array_equal(resumed.traces[name], uninterrupted.traces[name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# Files written atomically get the umask's mode, like every other output


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        io.save_npz_atomic(tmp_path / "arrays.npz", {"a": np.arange(3)})
        record = hmc.ChainCheckpoint.new(tmp_path / "checkpoint", {}, None, has_test=False, device="cpu")
        record.write()
        record.write()  # the first becomes state.previous.pkl
        diagnostics.write_trace(tmp_path / "trace.nc", diagnostics.az.from_dict(posterior={"a": np.ones((1, 4))}))
        (tmp_path / "plain.txt").write_text("written by open()")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for path in (tmp_path / "arrays.npz", tmp_path / "checkpoint" / "state.pkl", tmp_path / "checkpoint" / "state.previous.pkl",
                 tmp_path / "trace.nc", tmp_path / "plain.txt"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, (path, oct(path.stat().st_mode))


# ---------------------------------------------------------------------------------------------
# A truncated .gz IDX download is named


def test_truncated_gzipped_idx_file_is_named(tmp_path):
    header = bytes([0, 0, 8, 1]) + (1000).to_bytes(4, "big")
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(1000)))
    np.testing.assert_array_equal(data.read_idx(path), np.zeros(1000, np.uint8))
    path.write_bytes(path.read_bytes()[:-12])  # cut short, as an interrupted download
    with pytest.raises(data.DataError, match=re.escape(str(path))):
        data.read_idx(path)


# ---------------------------------------------------------------------------------------------
# Snakemake alone parses the workflow: a dry run with --sdm conda from a venv without the project

FAKE_CONDA = """#!/bin/sh
# Stands in for the conda CLI in what a dry run asks (version, info, channel priority); creates nothing.
case "$*" in
  "--version") echo "conda 24.11.3" ;;
  "info --json") echo '{"conda_prefix": "/nonexistent/conda", "platform": "linux-64"}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "fake conda: cannot run 'conda $*' in a test" >&2; exit 1 ;;
esac
"""


@pytest.fixture(scope="session")
def snakemake_only_venv():
    """A venv holding only Snakemake and its SLURM plugin (this env's versions), cached across test sessions."""
    import shutil
    import subprocess
    import sys
    from importlib.metadata import version
    from pathlib import Path

    pins = [f"snakemake=={version('snakemake')}", f"snakemake-executor-plugin-slurm=={version('snakemake-executor-plugin-slurm')}"]
    venv = Path.home() / ".cache" / "compactbnn-test" / ("snakemake-only-" + "-".join(p.split("==")[1] for p in pins))
    if not (venv / "ready").exists():
        building = venv.with_name(venv.name + f".building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        try:
            subprocess.run([sys._base_executable, "-m", "venv", str(building)], check=True, capture_output=True, timeout=300)
            installed = subprocess.run([str(building / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *pins],
                                       capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as error:
            shutil.rmtree(building, ignore_errors=True)
            pytest.skip(f"cannot build a Snakemake-only venv: {error}")
        if installed.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            pytest.skip(f"pip cannot install {' '.join(pins)} (no package index?): {installed.stderr.strip()[-300:]}")
        (building / "ready").write_text("\n".join(pins))
        shutil.rmtree(venv, ignore_errors=True)
        building.rename(venv)  # a venv's scripts hold absolute paths, but python -m snakemake needs none
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("env", ["cpu", "gpu"])
def test_dry_run_with_conda_from_a_snakemake_only_venv(snakemake_only_venv, tmp_path, env):
    import subprocess

    python = snakemake_only_venv / "bin" / "python"
    for module in ("jax", "compactbnn"):
        assert subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode != 0, module
    workdir = copy_workflow(tmp_path / "repo")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "conda").write_text(FAKE_CONDA)
    (tmp_path / "bin" / "conda").chmod(0o755)
    environ = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{snakemake_only_venv / 'bin'}:{os.environ['PATH']}"}
    common = ["--sdm", "conda", "--cores", "1", "--configfile", "presets/smoke.yaml", "--config", f"conda_env={env}"]
    result = subprocess.run([python, "-m", "snakemake", "-n", *common], cwd=workdir, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert result.returncode == 0 and "hmc_chain" in result.stdout, result.stdout[-3000:]
    envs = subprocess.run([python, "-m", "snakemake", "--list-conda-envs", *common], cwd=workdir, env=environ, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    listed = [line.split("\t")[0] for line in envs.stdout.splitlines() if line.startswith("envs/")]
    assert envs.returncode == 0 and listed == [f"envs/{env}.yaml"], envs.stdout[-2000:]


# ---------------------------------------------------------------------------------------------
# kill -9 of Snakemake and its HMC job: the lock is explained, --unlock, the chain resumes bit for bit

LONG_CHAIN = {"name": "killed", "posterior": {"hmc": {"chains": 1, "num_steps": 5, "iterations": 1000, "keep_first": 0,
                                                      "keep_last": 999, "num_kept": 20, "chunk_size": 50}}}


@pytest.mark.slow
def test_kill_9_then_unlock_and_the_same_command_resumes_the_chain_bit_for_bit(tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    import yaml

    workdir, elsewhere = copy_workflow(tmp_path / "repo"), copy_workflow(tmp_path / "uninterrupted")
    for directory in (workdir, elsewhere):
        (directory / "long.yaml").write_text(yaml.safe_dump(LONG_CHAIN))
    command = ["results/killed/hmc/chain0/samples.npz", "--cores", "1", "--configfile", "presets/smoke.yaml", "long.yaml"]
    # The jobs share compiled programs through JAX's persistent cache: one compilation instead of three.
    for name, value in compile_cache.environment(tmp_path / "jax-cache").items():
        monkeypatch.setenv(name, value)
    uninterrupted = snakemake(elsewhere, *command, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-3000:]
    run = subprocess.Popen([sys.executable, "-m", "snakemake", *command], cwd=workdir, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chain_dir, deadline = workdir / "results" / "killed" / "hmc" / "chain0", time.monotonic() + 300
    while not list(chain_dir.glob("checkpoint-*/state.pkl")):  # the first chunk is committed
        assert run.poll() is None and time.monotonic() < deadline, "the chain ended or never started"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its job, as a power loss would
    run.wait()
    assert not (chain_dir / "samples.npz").exists() and list((workdir / ".snakemake" / "locks").glob("*.lock"))

    refused = snakemake(workdir, *command, timeout=300)
    assert refused.returncode != 0 and "--unlock" in refused.stdout, refused.stdout[-3000:]
    assert "holds the lock of a Snakemake run that no longer runs" in refused.stdout
    assert snakemake(workdir, *command, "--unlock", timeout=300).returncode == 0
    resumed = snakemake(workdir, *command, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "no longer runs" not in resumed.stdout and not list(chain_dir.glob("checkpoint-*"))  # removed after success
    progress = re.search(r"(\d+)/1000", (workdir / "results" / "killed" / "logs" / "hmc_chain" / "chain0.log").read_text())
    assert progress and int(progress.group(1)) >= 50  # resumed after the committed chunk(s), not restarted

    with np.load(chain_dir / "samples.npz") as a, np.load(elsewhere / "results" / "killed" / "hmc" / "chain0" / "samples.npz") as b:
        for key in ("params", "log_likelihood_trace", "accept_prob_trace", "test_log_likelihood"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_job_that_cannot_write_says_so_in_one_line(capsys):
    import errno
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    import common

    error = OSError(errno.ENOSPC, "No space left on device", "results/x/hmc/chain0/samples.npz")
    common._report_unwritable(OSError, error, None)
    assert capsys.readouterr().err == "results/x/hmc/chain0/samples.npz: No space left on device (ENOSPC)\n"
    try:
        raise ValueError("an ordinary bug")
    except ValueError as bug:
        common._report_unwritable(ValueError, bug, bug.__traceback__)
    assert "Traceback" in capsys.readouterr().err  # every other error keeps its traceback
