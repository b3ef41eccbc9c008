"""Figure 4's data: every weight's mu and sigma for HMC, the ensemble, VI and SG-MCMC, before and after rebasin, and their correlations."""

from common import model, start

from compactbnn.symmetry import compact
from compactbnn import io
from compactbnn.evaluation import weight_space

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
network = model(sm.params.data, sm.params.model)
vi_mean, vi_extra = io.load_networks(sm.input.vi, network)
# Before rebasin each method is in its own basis (VI's q as trained); after, all are in HMC's reference's.
# SG-MCMC (ours, beyond the paper) comes last: its columns and pairs are added to the paper's three methods'.
before = {"hmc": compact.load_compact(sm.input.hmc_q_d, network).q,
          "ensemble": compact.load_compact(sm.input.ensemble_q_d, network).q,
          "vi": compact.Gaussian(vi_mean, network.unravel(vi_extra["sd"])),
          "sgmcmc": compact.load_compact(sm.input.sgmcmc_q_d, network).q}
after = {"hmc": compact.load_compact(sm.input.hmc_q_r, network).q,
         "ensemble": compact.load_compact(sm.input.ensemble_q_r, network).q,
         "vi": compact.load_compact(sm.input.vi_q, network).q,
         "sgmcmc": compact.load_compact(sm.input.sgmcmc_q_r, network).q}
values = weight_space.weight_space_values(network, before, after)
# gzip without a timestamp, so that equal values give equal files
values.to_csv(sm.output.values, index=False, float_format="%.7g",
              compression={"method": "gzip", "compresslevel": 6, "mtime": 0})
correlations = weight_space.weight_space_correlations(values)
correlations.to_csv(sm.output.correlations, index=False)
log.info("correlations across methods:\n%s", correlations.to_string(index=False))
