"""Every command block of README.md runs as printed, so the README and the code cannot drift apart.

Each ```bash or ```python block of the README must be listed in BLOCKS below, by a line it
contains, with how it is checked:

- "run": run verbatim.
- "run on smoke": run verbatim but for the preset's name, quick -> smoke, in the copy of the
  repository that holds the session's smoke run (conftest.smoke_run): the quick preset takes
  minutes, the smoke preset's results are already there. Commands that build a target get the
  target deleted first, so that the command has something to do.
- "follow": a command that never ends by itself (`tail -f`): run verbatim on the smoke run for
  a few seconds, and it must print something.
- "not run": with the reason.

A new block that is not listed fails the test, as does a listed block that is gone.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"

BLOCKS = {
    ".venv/bin/snakemake --cores 2 --configfile presets/quick.yaml": "run on smoke",
    "bash scripts/setup.sh && .venv/bin/pytest": "not run: it is this test suite",
    "results/quick/figures/figure3.pdf": "run on smoke",
    "--report results/quick/report.zip": "run on smoke",
    "tail -f results/quick/logs/hmc_chain/chain0.log": "follow",
    "snakemake --profile profiles/slurm": (
        "not run: needs a SLURM cluster and CUDA wheels; tests/test_slurm.py runs the profile where a cluster answers"
    ),
    "from compactbnn.symmetry import permutation, rebasin, compact": "run",
    "class ResidualMLP(LayerListModel)": "run",
}


def command_blocks(text: str) -> list[tuple[str, str]]:
    """The README's fenced blocks marked bash or python (indented ones too, in lists), as (language, code)."""
    return [(m.group(2), textwrap.dedent(m.group(3)))
            for m in re.finditer(r"^( *)```(bash|python)\n(.*?)^\1```$", text, re.M | re.S)]


def how(code: str) -> tuple[str, str]:
    """The BLOCKS entry of a block: (its key, how it is checked)."""
    keys = [key for key in BLOCKS if key in code]
    assert len(keys) == 1, f"README block not listed (or listed twice) in tests/test_readme.py BLOCKS:\n{code}"
    return keys[0], BLOCKS[keys[0]]


def test_every_command_block_is_listed_once():
    blocks = command_blocks(README.read_text())
    listed = [how(code)[0] for _, code in blocks]
    assert sorted(listed) == sorted(BLOCKS), "a block listed in BLOCKS is no longer in the README"


def block(key: str) -> str:
    (code,) = [code for _, code in command_blocks(README.read_text()) if key in code]
    return code


def on_smoke(code: str) -> str:
    """The command for the smoke preset: every 'quick' (preset file, results directory) becomes 'smoke'."""
    return code.replace("presets/quick.yaml", "presets/smoke.yaml").replace("results/quick/", "results/smoke/")


@pytest.fixture(scope="module")
def smoke_workdir(smoke_run) -> Path:
    """The smoke run's copy of the repository, with the .venv that ran it (which the README's commands name)."""
    return smoke_run.workdir


def bash(code: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def setup_is_current() -> bool:
    """Whether .venv was set up from this checkout's pyproject.toml and CPU lock (then setup.sh does nothing)."""
    stamp = REPO / ".venv" / ".compactbnn-setup"
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + (REPO / "requirements" / "cpu.lock.txt").read_bytes())
    return stamp.exists() and stamp.read_text().strip() == f"{digest.hexdigest()} [test]"


@pytest.mark.slow
def test_main_command_on_the_smoke_results(smoke_workdir):
    code = block(".venv/bin/snakemake --cores 2 --configfile presets/quick.yaml")
    assert code.startswith("bash scripts/setup.sh && ")
    if not setup_is_current():
        pytest.skip(".venv was not set up from this checkout's pyproject.toml and lock (run bash scripts/setup.sh): "
                    "the README's setup.sh would reinstall it")
    result = bash(on_smoke(code), smoke_workdir)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Nothing to be done" in result.stdout, result.stdout[-3000:]


@pytest.mark.slow
def test_rebuild_one_figure(smoke_workdir):
    code = on_smoke(block("results/quick/figures/figure3.pdf"))
    figure = smoke_workdir / "results" / "smoke" / "figures" / "figure3.pdf"
    figure.unlink()
    result = bash(code, smoke_workdir)
    assert result.returncode == 0, result.stdout[-3000:]
    assert figure.stat().st_size > 10_000
    assert set(re.findall(r"^(?:local)?rule (\w+):$", result.stdout, re.M)) == {"figure3"}, result.stdout[-3000:]


@pytest.mark.slow
def test_report_holds_the_workflow_figures_tables_claims_and_data(smoke_workdir):
    code = on_smoke(block("--report results/quick/report.zip"))
    report = smoke_workdir / "results" / "smoke" / "report.zip"
    result = bash(code, smoke_workdir)
    assert result.returncode == 0, result.stdout[-3000:]
    archive = zipfile.ZipFile(report)
    names = archive.namelist()
    files = {name.rsplit("/", 1)[-1] for name in names if "/raw/" in name}  # report/data/raw/<hash>/<file>
    wanted = {"figure1.png", "figure2.png", "figure3.png", "figure4.png", "table1.html", "table1.csv", "table1.md", "table1.tex",
              "claims.md", "claims.html", "not_experiment.csv", "interpolation.csv", "posterior_metrics.csv",
              "pruning.csv", "sigma.csv", "sigma_values.csv.gz", "weight_space.csv", "weight_space_values.csv.gz",
              "sgmcmc_modes.csv"}
    assert wanted <= files, sorted(wanted - files)
    (page,) = [name for name in names if name.endswith("report.html")]
    html = archive.read(page).decode()
    # the front page's workflow description, rendered for this config, and every caption
    assert "Experiment A" in html and "This report reproduces every figure and table" in html
    assert "for the configuration" in html and "smoke" in html
    for name in ("figure1", "figure2", "figure3", "figure4", "table1", "claims", "data_not_experiment",
                 "data_interpolation", "data_posterior_metrics", "data_pruning", "data_sigma", "data_sigma_values",
                 "data_weight_space", "data_weight_space_values", "data_sgmcmc_modes"):
        first_words = " ".join((REPO / "workflow" / "report" / f"{name}.rst").read_text().split()[:3])
        assert first_words in html, (name, first_words)
    # Table 1 is HTML, shown inline, with the paper's printed values beside ours
    (table,) = [name for name in names if name.endswith("/table1.html")]
    assert "<table" in archive.read(table).decode() and "(0.8249)" in archive.read(table).decode()
    (claims,) = [name for name in names if name.endswith("/claims.html")]
    claims_page = archive.read(claims).decode()
    assert "<table" in claims_page and "checked claims hold in this run" in claims_page
    assert "The paper&#x27;s printed numbers beside this run&#x27;s" in claims_page or \
        "The paper's printed numbers beside this run's" in claims_page


@pytest.mark.slow
def test_follow_a_job_log(smoke_workdir):
    code = on_smoke(block("tail -f results/quick/logs/hmc_chain/chain0.log"))
    result = subprocess.run(["timeout", "3", "bash", "-c", code], cwd=smoke_workdir, capture_output=True, text=True)
    assert result.returncode == 124, result.stderr  # still following when stopped
    assert "chain0" in result.stdout and "100%" in result.stdout, result.stdout[-2000:]
    assert "Unable to initialize backend" not in result.stdout  # JAX's INFO line stays out of the logs


@pytest.mark.slow
def test_library_example_runs(tmp_path):
    code = block("from compactbnn.symmetry import permutation, rebasin, compact")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["100", "(359,", "10)"], result.stdout


def test_own_network_example_runs(tmp_path):
    """'Beyond the MLP': a network the library does not ship, in a few lines: permuting it keeps the
    function, and activation matching finds the permutation back."""
    code = block("class ResidualMLP(LayerListModel)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "10"], result.stdout
