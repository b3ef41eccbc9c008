"""Check the paper's claims against this run's tables; write claims.json and claims.md."""

import json

import pandas as pd
from common import start

from compactbnn import claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
thresholds = sm.params.claims
skip = set(thresholds.get("skip", []))
with open(sm.input.rhat) as handle:
    rhat = json.load(handle)
checked = [
    *claims.not_experiment_claims(pd.read_csv(sm.input.not_experiment), thresholds, sm.params.barrier, skip),
    *claims.interpolation_claims(pd.read_csv(sm.input.interpolation), thresholds, sm.params.width, sm.params.split, skip),
    *claims.posterior_claims(pd.read_csv(sm.input.metrics), pd.read_csv(sm.input.sigma), pd.read_csv(sm.input.pruning),
                             thresholds, sm.params.prior_sd, skip),
    *claims.rhat_claims(rhat, skip),
]
with open(sm.output.json, "w") as handle:
    handle.write(claims.to_json(checked))
markdown = claims.to_markdown(checked, sm.params.name)
with open(sm.output.md, "w") as handle:
    handle.write(markdown)
log.info("%s", markdown)
