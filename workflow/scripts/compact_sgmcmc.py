"""SG-MCMC's samples aligned to HMC's reference as HMC's are: q_d, q_r, R-hat of the weights, NoT between its cycles."""

import json

import numpy as np
from common import load_data, load_hmc_samples, matching_options, model, start, weight_rhat_before_and_after

from compactbnn import io
from compactbnn.paper import modes
from compactbnn.symmetry import compact

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.compact
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
# the rebasin of HMC's samples (rule compact): the same method, matching images and key
options = matching_options(arrays, cfg)

samples, counts = load_hmc_samples(sm.input.sgmcmc, network)
cycles = np.concatenate([io.load_vectors(path, network)[1]["kept_cycles"] for path in sm.input.sgmcmc])
# the reference HMC's samples were aligned to (posterior.compact.reference), stored with HMC's q_r
reference = compact.load_compact(sm.input.hmc_q_r, network).reference
log.info("SG-MCMC: %d samples from %d chain(s); aligning to HMC's reference by %s matching", sum(counts), len(counts),
         cfg["matching"])
sgmcmc_r = compact.q_rebasin(network, samples, reference=reference, progress="SG-MCMC", **options)
log.info("NoT to the reference: SG-MCMC median %d (max %d)", int(np.median(sgmcmc_r.not_to_reference)),
         int(sgmcmc_r.not_to_reference.max()))
compact.save_compact(sm.output.direct, network, compact.q_direct(network, samples))
compact.save_compact(sm.output.rebasin, network, sgmcmc_r)

# How many permutation modes the cycles visit: NoT between consecutive cycles' samples, before and after alignment.
table = modes.cycle_transpositions(network, samples, counts, cycles, sgmcmc_r.perms, **options)
table.to_csv(sm.output.modes, index=False)
log.info("NoT between cycles:\n%s", table.groupby(["pair", "alignment"])["not_measured"].describe().to_string())

rhat = weight_rhat_before_and_after(network, samples, counts, sgmcmc_r.perms)
if "before_alignment" in rhat:
    log.info("weight R-hat median before %.3f, after %.3f", rhat["before_alignment"]["median"], rhat["after_alignment"]["median"])
with open(sm.output.rhat, "w") as handle:
    json.dump(rhat, handle, indent=2, default=float)
