"""pyproject.toml, the lock files and the conda environments pin the same packages to agreeing versions."""

import re
import tomllib

import pytest
import yaml

from conftest import REPO


# What runs Snakemake and checks the config, not the jobs: left out of the jobs' conda envs.
WORKFLOW_DRIVER = ("snakemake", "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema")


def _pip_section(path):
    """The pinned packages of an env's pip section: third-party only (the jobs import src/ by path)."""
    spec = yaml.safe_load(path.read_text())
    sections = [entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict) and "pip" in entry]
    assert len(sections) == 1, f"{path} must have one pip section"
    assert not any(entry.startswith("-e") for entry in sections[0]), f"{path}: -e paths resolve from Snakemake's copy of the file"
    return sections[0]


def _pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    project["dependencies"] = [dep for dep in project["dependencies"] if dep.split(">")[0].split("=")[0] not in WORKFLOW_DRIVER]
    return project


def test_cpu_environment_matches_pyproject():
    assert _pip_section(REPO / "envs" / "cpu.yaml") == _pyproject()["dependencies"]


def test_gpu_environment_matches_pyproject_with_cuda_jax():
    project = _pyproject()
    cuda_jax = project["optional-dependencies"]["cuda"]
    assert len(cuda_jax) == 1 and cuda_jax[0].startswith("jax[cuda12]")
    expected = [cuda_jax[0] if dep.startswith("jax>") else dep for dep in project["dependencies"]]
    assert _pip_section(REPO / "envs" / "gpu.yaml") == expected


def test_python_requirement_agrees():
    assert _pyproject()["requires-python"] == ">=3.11"
    for name in ("cpu", "gpu"):
        spec = yaml.safe_load((REPO / "envs" / f"{name}.yaml").read_text())
        assert "python>=3.11,<3.13" in spec["dependencies"]


# --- the lock files requirements/{cpu,cuda}.lock.txt (scripts/lock.sh writes them, scripts/setup.sh installs them)

def _locked(name):
    """The lock's pins as {normalised name: (version, marker or None)}."""
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "requirements" / f"{name}.lock.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if match:
            package, version, marker = match.groups()
            pins[canonicalize_name(package)] = (version, Marker(marker) if marker else None)
    assert pins, f"no pins in requirements/{name}.lock.txt"
    return pins


def _requirements(strings):
    from packaging.requirements import Requirement

    return [Requirement(s) for s in strings]


def _assert_satisfied(requirements, pins, where):
    from packaging.utils import canonicalize_name

    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{where}: {requirement} is not in the lock; run bash scripts/lock.sh"
        version, marker = pins[name]
        assert marker is None, f"{where}: {requirement} is locked only where {marker}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{where}: {requirement} but the lock pins {version}; run bash scripts/lock.sh")
        for extra in requirement.extras:  # jax[cuda12]: the extra's own packages are locked too
            assert extra != "cuda12" or "jax-cuda12-plugin" in pins, f"{where}: {requirement} without its plugin"


def test_cpu_lock_satisfies_pyproject():
    project = _pyproject()
    _assert_satisfied(_requirements(project["dependencies"] + project["optional-dependencies"]["test"]),
                      _locked("cpu"), "requirements/cpu.lock.txt")


def test_cuda_lock_satisfies_pyproject_with_cuda_jax():
    project = _pyproject()
    optional = project["optional-dependencies"]
    _assert_satisfied(_requirements(project["dependencies"] + optional["test"] + optional["cuda"]),
                      _locked("cuda"), "requirements/cuda.lock.txt")


def test_cpu_and_cuda_locks_pin_the_same_versions():
    """The GPU runs the same code as the CPU: the CUDA lock only adds the CUDA packages."""
    cpu, cuda = _locked("cpu"), _locked("cuda")
    assert set(cpu) <= set(cuda)
    assert {name: cuda[name][0] for name in cpu} == {name: pin[0] for name, pin in cpu.items()}
    assert all(name.startswith(("nvidia-", "jax-cuda12-")) for name in set(cuda) - set(cpu)), set(cuda) - set(cpu)


@pytest.mark.parametrize("env, lock", [("cpu", "cpu"), ("gpu", "cuda")])
def test_conda_environments_agree_with_the_lock(env, lock):
    """Every package that envs/<env>.yaml names, at a version its lock pins."""
    spec = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())
    pip = [entry for section in spec["dependencies"] if isinstance(section, dict) for entry in section.get("pip", [])]
    named = [entry for entry in pip if not entry.startswith(("-", ".", "/"))]
    assert named, f"envs/{env}.yaml names no pip package"
    _assert_satisfied(_requirements(named), _locked(lock), f"envs/{env}.yaml against requirements/{lock}.lock.txt")


def test_this_environment_runs_the_locked_versions():
    """What the tests run with is what the lock pins (scripts/setup.sh installs from it)."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    lock = "cuda" if "jax-cuda12-plugin" in installed else "cpu"
    differ = {name: (version, installed.get(name)) for name, (version, marker) in _locked(lock).items()
              if (marker is None or marker.evaluate()) and installed.get(name) != version}
    assert not differ, (f"installed versions differ from requirements/{lock}.lock.txt (locked, installed): {differ}; "
                        "run bash scripts/setup.sh")
