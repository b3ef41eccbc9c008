"""Align HMC samples, ensemble members and VI's q to one shared reference: q_d, q_r, and R-hat of the weights."""

import json

import numpy as np
from common import load_data, load_hmc_samples, matching_options, model, start, weight_rhat_before_and_after

from compactbnn.symmetry import compact, permutation
from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.compact
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
options = matching_options(arrays, cfg)

samples, counts = load_hmc_samples(sm.input.hmc, network)
log.info("HMC: %d samples from %d chain(s); aligning to reference '%s' by %s matching", sum(counts), len(counts),
         cfg["reference"], cfg["matching"])
hmc_r = compact.q_rebasin(network, samples, reference=cfg["reference"], max_rounds=cfg["max_rounds"], progress="HMC", **options)
# The ensemble and VI are expressed in HMC's basis, so that any mean can meet any sigma (the merged curve).
members, _ = io.load_networks(sm.input.ensemble, network)
if cfg["ensemble_alignment"] == "two_stage":  # the authors': within the ensemble first, then to HMC's reference
    ensemble_r = compact.q_rebasin_two_stage(network, members, hmc_r.reference, progress="ensemble", **options)
else:
    ensemble_r = compact.q_rebasin(network, members, reference=hmc_r.reference, progress="ensemble", **options)
vi_mean, vi_extra = io.load_networks(sm.input.vi, network)
vi_q, vi_perms = compact.align_gaussian(network, compact.Gaussian(vi_mean, network.unravel(vi_extra["sd"])),
                                        hmc_r.reference, activation_draws=cfg["vi_activation_draws"], **options)
log.info("NoT to the reference: HMC median %d (max %d), ensemble %s, VI %d",
         int(np.median(hmc_r.not_to_reference)), int(hmc_r.not_to_reference.max()),
         ensemble_r.not_to_reference.tolist(), permutation.total_transpositions(vi_perms))

compact.save_compact(sm.output.hmc_direct, network, compact.q_direct(network, samples))
compact.save_compact(sm.output.hmc_rebasin, network, hmc_r)
compact.save_compact(sm.output.ensemble_direct, network, compact.q_direct(network, members))
compact.save_compact(sm.output.ensemble_rebasin, network, ensemble_r)
compact.save_compact(sm.output.vi, network, compact.CompactResult.from_gaussian(network, vi_q, vi_perms, hmc_r.reference))
if "hmc_rebasin_sigma" in sm.output.keys():
    # Figure 3 left's own reference (posterior.compact.sigma_reference): the authors saved sigma only in
    # MNIST_eval_pairplot.py, aligned to the unaligned mean (rb2mean); Table 1 and pruning keep hmc_r.
    log.info("HMC again, aligned to reference '%s' for Figure 3 left's sigma_r", cfg["sigma_reference"])
    hmc_sigma = compact.q_rebasin(network, samples, reference=cfg["sigma_reference"], max_rounds=cfg["max_rounds"],
                                  progress="HMC (Figure 3)", **options)
    log.info("NoT to that reference: HMC median %d (max %d)", int(np.median(hmc_sigma.not_to_reference)),
             int(hmc_sigma.not_to_reference.max()))
    compact.save_compact(sm.output.hmc_rebasin_sigma, network, hmc_sigma)


# Beyond the paper: split R-hat of every weight across chains, before and after alignment.
rhat = weight_rhat_before_and_after(network, samples, counts, hmc_r.perms)
if "before_alignment" in rhat:
    log.info("weight R-hat median before %.3f, after %.3f", rhat["before_alignment"]["median"], rhat["after_alignment"]["median"])
with open(sm.output.rhat, "w") as handle:
    json.dump(rhat, handle, indent=2, default=float)
