"""HMC's running predictive: test accuracy and NLL of the first n kept samples, per chain and pooled."""

from common import load_data, load_hmc_samples, model, start

from compactbnn.paper import experiments

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
samples, counts = load_hmc_samples(sm.input.hmc, network)
table = experiments.running_predictive_table(network, samples, counts, arrays["x_test"], arrays["y_test"])
table.to_csv(sm.output[0], index=False)
last = table.groupby("chain", sort=False).tail(1)
log.info("predictive of all kept samples:\n%s", last.to_string(index=False))
