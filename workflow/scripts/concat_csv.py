"""Concatenate CSV tables of the same columns (one per job) into one."""

import pandas as pd
from common import start

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
table = pd.concat([pd.read_csv(path) for path in sm.input], ignore_index=True)
table.to_csv(sm.output[0], index=False)
log.info("wrote %d rows from %d files to %s", len(table), len(sm.input), sm.output[0])
