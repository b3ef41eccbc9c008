"""Table 1 (against the HMC predictive on the test set), the sigmas of Figure 3 (and their histograms for the claims), the pruning curves."""

import jax
import pandas as pd
from common import GAUSSIAN_INPUTS, load_data, load_hmc_samples, model, start

from compactbnn.symmetry import compact
from compactbnn.paper import posterior
from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
CLAIMS_BINS_PER_PRIOR_SD = 20  # sigma.csv's bins: 0.8-1.2 prior sd (the prior-level claims) spans 8 whole bins
log = start(sm)
cfg = sm.params.compact
arrays = load_data(sm.params.data)
x, y = arrays["x_test"], arrays["y_test"]
network = model(sm.params.data, sm.params.model)
compacts = {name: compact.load_compact(sm.input[stem], network) for name, stem in GAUSSIAN_INPUTS.items()}
gaussians = {name: result.q for name, result in compacts.items()}
# Figure 3 left's HMC sigma_r under its own reference (posterior.compact.sigma_reference), where it has one.
sigma_gaussians = dict(gaussians)
if "hmc_rebasin_sigma" in sm.input.keys():
    sigma_gaussians["hmc", "q_r"] = compact.load_compact(sm.input.hmc_rebasin_sigma, network).q
    log.info("Figure 3 left: HMC sigma_r aligned to posterior.compact.sigma_reference (%s)", sm.input.hmc_rebasin_sigma)
# Every sigma itself (Figure 3 bins them in its notebook, so a new bin count reruns only the figure),
# gzip without a timestamp so that equal sigmas give equal files; and, for the claims, histograms
# on bins of prior_sd / CLAIMS_BINS_PER_PRIOR_SD, a binning that the plot's bin count does not move.
# The paper's methods and SG-MCMC (ours) each get their own bins (posterior.by_family).
sigma = posterior.sigma_table(network, sigma_gaussians)
sigma.to_csv(sm.output.sigma_values, index=False, compression={"method": "gzip", "compresslevel": 6, "mtime": 0})
histograms = [posterior.sigma_histograms(part, bin_width=sm.params.prior_sd / CLAIMS_BINS_PER_PRIOR_SD)
              for part in posterior.by_family(sigma)]
pd.concat(histograms, ignore_index=True).to_csv(sm.output.sigma, index=False)
samples, _ = load_hmc_samples(sm.input.hmc, network)
members, _ = io.load_networks(sm.input.ensemble, network)
sgmcmc_samples, _ = load_hmc_samples(sm.input.sgmcmc, network)
# the authors' low-rank Gaussian of the ensemble, aligned as for its q_r
low_rank = compact.low_rank_gaussian(network, members, compacts["ensemble", "q_r"].perms)
table = posterior.posterior_table(network, jax.random.key(cfg["seed"]), samples, members, gaussians, x, y,
                                  num_q_samples=cfg["q_samples"], low_rank=low_rank,
                                  num_low_rank_samples=cfg.get("low_rank_q_samples"), sgmcmc_samples=sgmcmc_samples)
table.to_csv(sm.output.table, index=False)
log.info("Table 1:\n%s", table.to_string(index=False))
last = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[-1], tree)  # noqa: E731
pruning = posterior.pruning_table(network, gaussians, x, y, cfg["retained_percents"], last_hmc_sample=last(samples),
                                  last_member=last(members))
pruning.to_csv(sm.output.pruning, index=False)
log.info("pruning curves:\n%s", pruning.pivot(index="retained_percent", columns="curve", values="accuracy").to_string())
