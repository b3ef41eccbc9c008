"""pyproject.toml and the conda environments pin the same packages to the same ranges."""

import tomllib

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
