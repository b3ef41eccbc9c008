#!/usr/bin/env bash
# Regenerate the lock files requirements/{cpu,cuda}.lock.txt from pyproject.toml: the exact
# versions (with hashes) that scripts/setup.sh installs. Run after changing a dependency in
# pyproject.toml; tests/test_environments.py fails until the locks agree with it again.
# Usage: bash scripts/lock.sh [--upgrade]     (needs uv: .venv/bin/pip install -e ".[lock]")
# The existing lock files are uv's preferences: versions move only where pyproject.toml
# demands it, or everywhere with --upgrade. One lock serves every platform and Python >= 3.11
# (--universal); the CUDA lock starts from the CPU lock's versions, so both run the same code.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-$(command -v uv || echo .venv/bin/uv)}
compile=("$uv" pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes
         --custom-compile-command "bash scripts/lock.sh" --quiet "$@")
mkdir -p requirements
"${compile[@]}" --extra test -o requirements/cpu.lock.txt
[ -f requirements/cuda.lock.txt ] || cp requirements/cpu.lock.txt requirements/cuda.lock.txt
"${compile[@]}" --extra test --extra cuda -o requirements/cuda.lock.txt
echo "lock.sh: requirements/cpu.lock.txt and requirements/cuda.lock.txt written with $("$uv" --version)"
