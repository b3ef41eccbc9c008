"""The suite's grouping on pytest-xdist's workers holds: tests sharing an expensive fixture run on one worker.

Were it lost (pytest 9.2 with pytest-xdist 3.8 does that silently: see pyproject.toml), every
worker that draws one test of a group makes the group's end-to-end run again, the session's
smoke run included, and the suite takes minutes longer with no test failing. This runs the
suite's own conftest.py on a throwaway module under two workers.
"""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent

MODULE = '''
import os
from pathlib import Path

import pytest

@pytest.fixture(scope="module")
def expensive():
    return os.environ["PYTEST_XDIST_WORKER"]

def record(kind):
    with open(Path(__file__).with_name("workers.txt"), "a") as stream:
        stream.write(f"{kind} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("i", range(8))
def test_shared(expensive, i):
    record("shared")

@pytest.mark.parametrize("i", range(8))
def test_alone(i):
    record("alone")
'''


def test_tests_sharing_a_module_fixture_run_on_one_worker(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_throwaway.py").write_text(MODULE)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                             "-q", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = Counter(tuple(line.split()) for line in (tmp_path / "workers.txt").read_text().splitlines())
    shared = {worker for kind, worker in runs if kind == "shared"}
    assert sum(n for (kind, _), n in runs.items() if kind == "shared") == 8
    assert len(shared) == 1, f"the 8 tests sharing a module fixture ran on workers {sorted(shared)}: {dict(runs)}"
