"""The deep ensemble: members from independent initialisations, trained together (MAP, Adam)."""

import jax
from common import load_data, model, start, train_config

from compactbnn.inference import ensemble
from compactbnn import io, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.ensemble
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
# MAP with the posterior's prior N(0, prior_sd^2), the same prior as HMC and VI
config = train_config(cfg["training"], prior_sd=sm.params.prior_sd)
result = ensemble.train_ensemble(network, jax.random.key(cfg["seed"]), arrays["x_train"], arrays["y_train"],
                                 cfg["members"], config)
accuracy = train.evaluate_many(network, result.params, arrays["x_test"], arrays["y_test"])["accuracy"]
log.info("member test accuracies: %s", [round(float(a), 4) for a in accuracy])
io.save_networks(sm.output[0], network, result.params)
