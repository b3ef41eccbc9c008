"""Table 1 (against the HMC predictive on the test set), the sigma histograms and the pruning curves of Figure 3."""

import jax
from common import GAUSSIAN_INPUTS, load_data, load_hmc_samples, start

from compactbnn import compact, experiments, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.compact
arrays = load_data(sm.params.data)
x, y = arrays["x_test"], arrays["y_test"]
gaussians = {name: compact.load_compact(sm.input[stem]).q for name, stem in GAUSSIAN_INPUTS.items()}
experiments.sigma_histograms(gaussians, cfg["sigma_bins"]).to_csv(sm.output.sigma, index=False)
samples, _ = load_hmc_samples(sm.input.hmc)
members, _ = io.load_networks(sm.input.ensemble)
table = experiments.posterior_table(jax.random.key(cfg["seed"]), samples, members, gaussians, x, y,
                                    num_q_samples=cfg["q_samples"])
table.to_csv(sm.output.table, index=False)
log.info("Table 1:\n%s", table.to_string(index=False))
pruning = experiments.pruning_table(gaussians, x, y, cfg["retained_percents"])
pruning.to_csv(sm.output.pruning, index=False)
log.info("pruning curves:\n%s", pruning.pivot(index="retained_percent", columns="curve", values="accuracy").to_string())
