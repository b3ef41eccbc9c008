"""Check config files as Snakemake would merge them, before running anything (``compactbnn.config.checks``).

    .venv/bin/python workflow/scripts/config_checks.py presets/quick.yaml

config.yaml, then each file merged over it; prints ``config NAME: valid``, or the refusal (its
first line names the key) and exits with 1.
"""

import sys
from pathlib import Path

# The check runs the code of the repository it lives in, installed or not (e.g. with Snakemake alone).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from compactbnn.config import checks  # noqa: E402

if __name__ == "__main__":
    sys.exit(checks.main(sys.argv[1:]))
