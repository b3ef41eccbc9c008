"""Shared fixtures. Tests run from the repository root; MNIST is cached under resources/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from compactbnn import data

REPO = Path(__file__).resolve().parents[1]


# Fixtures cheap enough for every pytest-xdist worker to make its own.
CHEAP_SHARED_FIXTURES = {"resources", "digits", "mnist", "tmp_path_factory", "worker_id", "testrun_uid"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the marks into the tests' ids
def pytest_collection_modifyitems(items):
    """Keep the tests that share an expensive fixture on one pytest-xdist worker (--dist loadgroup).

    Workers share no fixture: the session's smoke run, or a module's end-to-end run, would
    otherwise be made once per worker that draws one of its tests. Every test using ``smoke_run``
    goes to one group, every other test using a module- or session-scoped fixture to its module's.
    tests/test_grouping.py shows that the groups hold.
    """
    for item in items:
        definitions = item._fixtureinfo.name2fixturedefs
        shared = {name for name, defs in definitions.items()
                  if name not in CHEAP_SHARED_FIXTURES and defs[-1].scope in ("module", "session")}
        if "smoke_run" in shared:
            item.add_marker(pytest.mark.xdist_group("smoke_run"))
        elif shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


# Every test but the session's smoke run (and the SLURM test's run, which must equal it) compiles with
# LLVM's optimisations off: XLA's own passes run as always, so the tests compute the same functions, to
# float32 rounding (a VI fit differed by 1.5e-7 at most), while compiling takes a third less CPU (a
# CNN's short HMC chain and VI epoch: 29 instead of 44 CPU seconds). The smoke run computes with the
# build that users run (``clean_environment``).
UNOPTIMISED = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    """One JAX compilation cache for the whole test run, its workers and every process they start (as the
    workflow's jobs share one, config key compilation_cache): a program that several tests compile, or a
    job of the same shapes in another workflow run, is compiled once. Measured on four test modules, 2
    workers: 252 instead of 274 CPU seconds. Set before any test module imports JAX, and inherited by the
    pytest-xdist workers, which start after this hook; removed when the run ends. The session's smoke run
    keeps its own, the one its config names (``clean_environment``)."""
    import os
    import tempfile

    from compactbnn.config import compile_cache

    if hasattr(config, "workerinput"):
        return  # a worker: the controller set it up
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {UNOPTIMISED}".strip()
    if compile_cache.DIRECTORY_VARIABLE not in os.environ:  # else a cache the user chose
        config.compactbnn_jax_cache = tempfile.mkdtemp(prefix="compactbnn-tests-jax-cache-")
        compile_cache.use(config.compactbnn_jax_cache)


def pytest_unconfigure(config):
    import shutil

    if getattr(config, "compactbnn_jax_cache", None):
        shutil.rmtree(config.compactbnn_jax_cache, ignore_errors=True)


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


# Every character that issue 21 names: a space, a single quote, &, a non-ASCII letter. The session's smoke
# run lies under a folder of this name (tests/test_paths.py says why).
SPECIAL = "a b'c&d é"


def clean_environment() -> dict:
    """This process's environment without the variables that would pick another venv, package path or
    compilation cache (the workflow's jobs use the one its config names), and XLA's default build."""
    import os

    from compactbnn.config import compile_cache

    unset = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", compile_cache.DIRECTORY_VARIABLE)
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    return without_unoptimised_build(environment)


def without_unoptimised_build(environment: dict) -> dict:
    """``environment`` with XLA's default build: without the UNOPTIMISED flag that the tests set."""
    flags = [flag for flag in environment.get("XLA_FLAGS", "").split() if flag != UNOPTIMISED]
    environment = {key: value for key, value in environment.items() if key != "XLA_FLAGS"}
    return {**environment, **({"XLA_FLAGS": " ".join(flags)} if flags else {})}


def make_venv(folder: Path, *paths: str) -> Path:
    """A virtual environment at ``folder`` whose Python sees ``paths`` first, then this test's packages.

    Cheap instead of a full install (scripts/setup.sh takes minutes): a .pth file puts ``paths``
    (a checkout's src/) on sys.path and adds this environment's site-packages as a site directory,
    so its own .pth files (the editable install of compactbnn) apply too. ``bin/snakemake`` runs
    Snakemake by this venv's Python, as an installed one would (a shell script: a #! line cannot
    hold a path with a space), and this checkout's setup stamp is copied, so that
    ``bash scripts/setup.sh`` takes the venv as set up from the same lock.
    """
    import shlex
    import shutil
    import subprocess
    import sys
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = [*paths, f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})"]
    (Path(purelib) / "compactbnn_test_paths.pth").write_text("\n".join(lines) + "\n")
    launcher = folder / "bin" / "snakemake"
    launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(str(python))} -m snakemake "$@"\n')
    launcher.chmod(0o755)
    stamp = Path(sys.prefix) / ".compactbnn-setup"
    if stamp.exists():
        shutil.copy2(stamp, folder / ".compactbnn-setup")
    return python


@dataclass
class WorkflowRun:
    workdir: Path  # a copy of the repository holding the run's results/
    log: str  # what Snakemake printed
    python: Path  # the Python of <workdir>/.venv, which ran Snakemake: a path with SPECIAL in it

    def snakemake(self, *args: str, timeout: int = 900, **kwargs):
        """Snakemake in this run's directory by this run's Python, like ``snakemake()``.

        By the same Python: the notebooks' jobs hold the interpreter's path as a param, so Snakemake
        run by another one would plan them again.
        """
        import subprocess

        return subprocess.run([str(self.python), "-m", "snakemake", *args], cwd=self.workdir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, env=clean_environment(), **kwargs)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> WorkflowRun:
    """The smoke preset run end to end locally, once per test session, in a fresh copy of the repository.

    The copy and its own ``.venv`` lie under a folder named SPECIAL, and Snakemake runs by that
    ``.venv``'s Python: the path that Snakemake's script: directive cannot put into a shell command
    unquoted (snakemake issue 2645). So the one end-to-end run of the session also shows that the
    workflow runs from a checkout and venv under such a path (tests/test_paths.py checks how). Later
    commands in its directory run by the same Python (``WorkflowRun.snakemake``, or the README's
    ``.venv/bin/snakemake``).
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / SPECIAL / "compactbnn")
    run = WorkflowRun(workdir, "", make_venv(workdir / ".venv", str(workdir / "src")))
    result = run.snakemake("--cores", "2", "--configfile", "presets/smoke.yaml", timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:]
    run.log = result.stdout
    return run
