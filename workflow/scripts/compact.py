"""Align HMC samples, ensemble members and VI's q to one shared reference; q_d, q_r, sigma histograms, R-hat."""

import json

import jax
import numpy as np
from common import load_data, load_hmc_samples, match_inputs, start

from compactbnn import compact, diagnostics, experiments, io, mlp, permutation

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.compact
arrays = load_data(sm.params.data)
x_match = match_inputs(arrays, cfg)
options = dict(method=cfg["matching"], x=x_match, key=jax.random.key(cfg["seed"]))

samples, counts = load_hmc_samples(sm.input.hmc)
log.info("HMC: %d samples from %d chain(s); aligning to reference '%s' by %s matching", sum(counts), len(counts),
         cfg["reference"], cfg["matching"])
hmc_r = compact.q_rebasin(samples, reference=cfg["reference"], max_rounds=cfg.get("max_rounds", 10), progress="HMC", **options)
# The ensemble and VI are expressed in HMC's basis, so that any mean can meet any sigma (the merged curve).
members, _ = io.load_networks(sm.input.ensemble)
ensemble_r = compact.q_rebasin(members, reference=hmc_r.reference, **options)
vi_mean, vi_extra = io.load_networks(sm.input.vi)
vi_q, vi_perms = compact.align_gaussian(compact.Gaussian(vi_mean, mlp.unravel(vi_extra["sd"], mlp.layer_sizes_of(vi_mean))),
                                        hmc_r.reference, **options)
log.info("NoT to the reference: HMC median %d (max %d), ensemble %s, VI %d",
         int(np.median(hmc_r.not_to_reference)), int(hmc_r.not_to_reference.max()),
         ensemble_r.not_to_reference.tolist(), permutation.total_transpositions(vi_perms))

gaussians = {("hmc", "q_d"): compact.q_direct(samples), ("hmc", "q_r"): hmc_r.q,
             ("ensemble", "q_d"): compact.q_direct(members), ("ensemble", "q_r"): ensemble_r.q, ("vi", "q"): vi_q}
compact.save_compact(sm.output.hmc_direct, gaussians["hmc", "q_d"])
compact.save_compact(sm.output.hmc_rebasin, hmc_r)
compact.save_compact(sm.output.ensemble_direct, gaussians["ensemble", "q_d"])
compact.save_compact(sm.output.ensemble_rebasin, ensemble_r)
compact.save_compact(sm.output.vi, compact.CompactResult.from_gaussian(vi_q, vi_perms, hmc_r.reference))
experiments.sigma_histograms(gaussians, cfg["sigma_bins"]).to_csv(sm.output.sigma, index=False)

# Beyond the paper: split R-hat of every weight across chains, before and after alignment.
rhat = {"chains": len(counts), "samples_per_chain": counts}
if len(counts) >= 2 and len(set(counts)) == 1:
    per_chain = lambda flat: flat.reshape(len(counts), counts[0], -1)  # noqa: E731
    raw = np.asarray(mlp.ravel(samples), np.float32)
    aligned = np.asarray(mlp.ravel(permutation.permute_many(samples, hmc_r.perms)), np.float32)
    rhat["before_alignment"] = diagnostics.weight_rhat(per_chain(raw))
    rhat["after_alignment"] = diagnostics.weight_rhat(per_chain(aligned))
    log.info("weight R-hat median before %.3f, after %.3f", rhat["before_alignment"]["median"], rhat["after_alignment"]["median"])
else:
    rhat["note"] = "R-hat of the weights needs at least two chains of equal length"
with open(sm.output.rhat, "w") as handle:
    json.dump(rhat, handle, indent=2, default=float)
