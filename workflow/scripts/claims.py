"""Check the paper's claims against this run's tables; write claims.json, claims.md and data/reproduction.csv."""

import json

import pandas as pd
from common import start

from compactbnn.paper import claims, report, reproduction

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
thresholds = sm.params.claims
skip = set(thresholds.get("skip", []))
with open(sm.input.rhat) as handle:
    rhat = json.load(handle)
with open(sm.input.sgmcmc_rhat) as handle:
    sgmcmc_rhat = json.load(handle)
tables = {name: pd.read_csv(sm.input[name]) for name in ("not_experiment", "interpolation", "metrics", "sigma", "pruning")}
# the weight-space comparison (data/weight_space.csv) is optional: without it, its claim is absent
weight_space = sm.input.get("weight_space")
checked = [
    *claims.not_experiment_claims(tables["not_experiment"], thresholds, sm.params.barrier, skip),
    *claims.interpolation_claims(tables["interpolation"], thresholds, sm.params.perm_widths, sm.params.split, skip),
    *claims.posterior_claims(tables["metrics"], tables["sigma"], tables["pruning"], thresholds, sm.params.prior_sd, skip),
    *claims.rhat_claims(rhat, skip),
    *claims.weight_space_claims(pd.read_csv(weight_space) if weight_space else None, thresholds, skip),
    # beyond the paper, after the paper's claims: cyclical SG-MCMC as a fourth posterior
    *claims.sgmcmc_claims(tables["metrics"], tables["sigma"], sgmcmc_rhat, pd.read_csv(weight_space) if weight_space else None,
                          thresholds, sm.params.prior_sd, skip),
]
reproduced = reproduction.reproduction(
    tables["not_experiment"], tables["interpolation"], tables["metrics"], tables["sigma"], tables["pruning"],
    tolerances=thresholds["reproduction"]["tolerances"], barrier=sm.params.barrier, split=sm.params.split,
    count=thresholds["reproduction"]["count"], reduced=thresholds["reproduction"]["reduced"])
with open(sm.output.json, "w") as handle:
    handle.write(report.to_json(checked, reproduced))
with open(sm.output.reproduction, "w") as handle:
    handle.write(report.reproduction_csv(reproduced))
markdown = report.to_markdown(checked, sm.params.name, reproduced)
with open(sm.output.md, "w") as handle:
    handle.write(markdown)
log.info("%s", markdown)
