#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment .venv with the exact versions of the lock
# file: requirements/cpu.lock.txt, or requirements/cuda.lock.txt with the extra `cuda`.
# Usage: bash scripts/setup.sh [extra ...]   e.g. `bash scripts/setup.sh cuda` on an NVIDIA machine.
# Re-running is cheap: pip runs again only when pyproject.toml, the lock or the extras change.
# The locks are made from pyproject.toml by scripts/lock.sh; tests/test_environments.py keeps them in agreement.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: compactbnn needs Python >= 3.11; '$python' is $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

extras="test${*:+,$(IFS=,; echo "$*")}"
lock=requirements/cpu.lock.txt
case ",$extras," in *,cuda,*) lock=requirements/cuda.lock.txt ;; esac
stamp=".venv/.compactbnn-setup"
want="$(cat pyproject.toml "$lock" | sha256sum | cut -d' ' -f1) [$extras]"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
# The locked versions (hash-checked), then the project itself without resolving anything again.
"${pip[@]}" install --quiet --require-hashes -r "$lock"
"${pip[@]}" install --quiet --no-deps -e ".[$extras]"
"${pip[@]}" check
echo "$want" > "$stamp"
echo "setup.sh: .venv ready from $lock ($(.venv/bin/python -c 'import jax; print("jax", jax.__version__, "on", jax.devices()[0].platform)'))"
