#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment .venv from pyproject.toml.
# Usage: bash scripts/setup.sh [extra ...]   e.g. `bash scripts/setup.sh cuda` on an NVIDIA machine.
# Re-running is cheap: pip runs again only when pyproject.toml or the requested extras change.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: compactbnn needs Python >= 3.11; '$python' is $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

extras="test${*:+,$(IFS=,; echo "$*")}"
stamp=".venv/.compactbnn-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) [$extras]"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
echo "$want" > "$stamp"
echo "setup.sh: .venv ready ($(.venv/bin/python -c 'import jax; print("jax", jax.__version__, "on", jax.devices()[0].platform)'))"
