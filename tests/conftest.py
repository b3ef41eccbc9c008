"""Shared fixtures. Tests run from the repository root; MNIST is cached under resources/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from compactbnn import data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def resources():
    return REPO / "resources"


@pytest.fixture(scope="session")
def digits():
    return data.load("digits")


@pytest.fixture(scope="session")
def mnist(resources):
    return data.load("mnist", resources)


def random_mlp(seed: int, sizes):
    """A PyTorch-default random MLP (no model axis) from an integer seed."""
    import jax

    from compactbnn.models import mlp

    return mlp.init(jax.random.key(seed), sizes)


def stack_trees(trees):
    """Stack equally shaped pytrees along a new leading (model) axis."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def copy_workflow(destination: Path) -> Path:
    """The repository's files (tracked, and untracked but not ignored) copied to ``destination``.

    Workflow tests run there, so they start from an empty results directory and never touch
    this checkout's results/.
    """
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def snakemake(workdir: Path, *args: str, timeout: int = 900, **kwargs):
    """Run Snakemake of this environment in ``workdir``; returns the CompletedProcess (stdout and stderr merged)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, **kwargs)


@dataclass
class WorkflowRun:
    workdir: Path  # a copy of the repository holding the run's results/
    log: str  # what Snakemake printed


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> WorkflowRun:
    """The smoke preset run end to end locally, once per test session, in a fresh copy of the repository."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    result = snakemake(workdir, "--cores", "2", "--configfile", "presets/smoke.yaml")
    assert result.returncode == 0, result.stdout[-6000:]
    return WorkflowRun(workdir, result.stdout)
