"""The workflow runs wherever a user puts it: a checkout, venv and data root under a path with a space, ', &, é.

Snakemake's script: directive writes the interpreter's path unquoted into a shell command
(snakemake/snakemake#2645); the Snakefile gives it the same Python by a link of a safe name
(compactbnn.config.interpreter), or refuses in one line where no such link can be made.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SPECIAL, clean_environment, copy_workflow, make_venv
from compactbnn.config import interpreter


@pytest.fixture(scope="module")
def special_venv(tmp_path_factory) -> Path:
    """The Python of a venv under a directory named ``a b'c&d é``."""
    return make_venv(tmp_path_factory.mktemp("venv") / SPECIAL / ".venv")


def test_a_shell_safe_path_is_kept(tmp_path):
    assert interpreter.shell_safe_python("/usr/bin/python3", folders=[tmp_path]) == "/usr/bin/python3"
    assert not list(tmp_path.iterdir())


def test_a_venv_under_a_special_path_runs_by_its_link_with_its_packages(special_venv, tmp_path):
    python = interpreter.shell_safe_python(str(special_venv), folders=[tmp_path / "links"])
    assert interpreter.shell_safe(python) and Path(python).samefile(special_venv)
    # as Snakemake runs a script: unquoted, through bash; the venv is recognised (its pyvenv.cfg found
    # next to the link) and sees its packages
    shown = subprocess.run(["bash", "-c", f"{python} -c 'import sys, snakemake; print(sys.prefix != sys.base_prefix)'"],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == "True", shown.stderr
    # unquoted, the original path is what upstream issue 2645 is about: bash cannot run it
    assert subprocess.run(["bash", "-c", f"{special_venv} -c pass"], capture_output=True).returncode != 0
    # a second run reuses the link
    assert interpreter.shell_safe_python(str(special_venv), folders=[tmp_path / "links"]) == python
    assert len(list((tmp_path / "links").iterdir())) == 1


def test_a_link_to_another_environment_is_replaced(special_venv, tmp_path):
    python = Path(interpreter.shell_safe_python(str(special_venv), folders=[tmp_path]))
    link = python.parent.parent
    link.unlink()
    link.symlink_to(tmp_path)  # what a link of a deleted and elsewhere recreated environment might be
    assert interpreter.shell_safe_python(str(special_venv), folders=[tmp_path]) == str(python)
    assert python.samefile(special_venv)


def test_no_safe_folder_for_the_link_is_refused_in_one_line_naming_path_character_and_issue(special_venv, tmp_path):
    unsafe = tmp_path / "cache dir"
    not_own = tmp_path / "link"
    not_own.symlink_to(tmp_path)  # a folder that is a symbolic link is refused: someone else may control it
    with pytest.raises(interpreter.PathError) as refused:
        interpreter.shell_safe_python(str(special_venv), folders=[unsafe, not_own])
    message = str(refused.value)
    assert "\n" not in message
    assert str(special_venv) in message and "' '" in message and "issues/2645" in message
    assert f"{unsafe} has ' ' too" in message and "not a folder of this user's own" in message
    assert not unsafe.exists()


def test_an_interpreter_whose_own_folder_is_unsafe_is_refused(tmp_path):
    """The link replaces the environment's path only: <env>/b in/python would stay unsafe through it."""
    python = tmp_path / "env" / SPECIAL / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    with pytest.raises(interpreter.PathError, match="is not a shell-safe name of"):
        interpreter.shell_safe_python(str(python), folders=[tmp_path / "links"])


def test_every_shell_command_quotes_what_comes_from_a_path_or_the_config():
    """Each {placeholder} of a shell: command is quoted by :q, or is a param the rule file quoted itself."""
    prequoted = {"params.python", "params.arguments"}  # common.smk's notebook_python, notebooks.smk's arguments
    commands, directives = [], 0
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = rules.read_text()
        directives += len(re.findall(r"^\s+shell:", text, re.M))
        for match in re.finditer(r"^\s+shell:\s*\n((?:\s+\"[^\n]*\"\n)+)", text, re.M):
            commands.append((rules.name, "".join(re.findall(r'"([^"\n]*)"', match.group(1)))))
    # every shell: directive is read here (one string literal a line); one written otherwise fails, not passes
    assert commands and len(commands) == directives, f"read {len(commands)} of {directives} shell: commands"
    for name, command in commands:
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
            assert field.endswith(":q") or field in prequoted, f"{name}: {{{field}}} in {command!r} is not quoted"
    # nor a run: directive (Python in the Snakefile; snakemake issues 2981 and 3211 are about run: jobs)
    for rules in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        assert not re.search(r"^\s+run:", rules.read_text(), re.M), f"{rules.name} has a run: directive"


def special_checkout(root: Path) -> tuple[Path, Path]:
    """A copy of this working tree at ``root/a b'c&d é/compactbnn`` and the Python of its own .venv."""
    checkout = copy_workflow(root / SPECIAL / "compactbnn")
    return checkout, make_venv(checkout / ".venv", str(checkout / "src"))


@pytest.mark.slow
def test_smoke_preset_runs_from_a_checkout_and_venv_under_a_special_path(smoke_run):
    """The session's smoke run (conftest.smoke_run) is this test's run: its checkout and the .venv whose
    Python ran Snakemake lie under a folder named SPECIAL; tests/test_workflow.py checks its outputs."""
    assert SPECIAL in str(smoke_run.workdir) and str(smoke_run.python).startswith(str(smoke_run.workdir / ".venv"))
    assert not interpreter.shell_safe(str(smoke_run.python))
    results = smoke_run.workdir / "results" / "smoke"
    assert (results / "claims.json").stat().st_size > 0
    for figure in ("figure1", "figure2", "figure3", "figure4", "figure_s1", "figure_s2"):
        assert (results / "figures" / f"{figure}.pdf").exists() and (results / "figures" / f"{figure}.png").exists()
    # the jobs ran through a link to that .venv (in the user's cache), not through the path bash cannot take
    venv = str(smoke_run.workdir / ".venv")
    link = interpreter.link_folders()[0] / hashlib.sha256(venv.encode()).hexdigest()[:16]
    assert os.readlink(link) == venv


def test_a_data_root_under_a_special_path_is_where_mnist_is_downloaded(tmp_path):
    """MNIST's download job (the one job that writes under data.root) is planned for that path, as one path.

    It is a script: job (the path reaches it as a Python string, no shell in between); the smoke preset's
    digits need no data root, so this dry run is what checks data.root under such a path.
    """
    data_root = tmp_path / SPECIAL / "data & more"
    config = tmp_path / "paths.yaml"
    config.write_text(yaml.safe_dump({"name": "paths", "data": {"dataset": "mnist", "root": str(data_root)}},
                                     allow_unicode=True))
    result = subprocess.run([sys.executable, "-m", "snakemake", f"{data_root}/mnist.npz", "-n", "--cores", "1",
                             "--configfile", "presets/quick.yaml", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert re.search(rf"^rule fetch_mnist:\n(?:    .*\n)*?    output: {re.escape(str(data_root))}/mnist.npz$", printed, re.M), printed[-3000:]


def test_no_shell_safe_link_refuses_before_any_job_in_one_line(tmp_path):
    checkout, python = special_checkout(tmp_path)
    unsafe = tmp_path / "no place & here"
    unsafe.mkdir()
    environment = {**clean_environment(), "XDG_CACHE_HOME": str(unsafe / "cache"), "TMPDIR": str(unsafe)}
    result = subprocess.run([str(python), "-m", "snakemake", "-n", "--cores", "1", "--configfile",
                             "presets/smoke.yaml"], cwd=checkout, capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if "issues/2645" in line]
    assert str(python) in line and "' '" in line
    assert not (checkout / "results").exists()
