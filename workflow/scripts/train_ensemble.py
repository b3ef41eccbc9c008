"""The deep ensemble: members from independent initialisations, trained together (MAP, Adam)."""

import jax
from common import layer_sizes, load_data, start, train_config

from compactbnn import ensemble, io, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.ensemble
arrays = load_data(sm.params.data)
sizes = layer_sizes(arrays, sm.params.model)
result = ensemble.train_ensemble(jax.random.key(cfg["seed"]), sizes, arrays["x_train"], arrays["y_train"],
                                 cfg["members"], train_config(cfg["training"]))
accuracy = train.evaluate_many(result.params, arrays["x_test"], arrays["y_test"])["accuracy"]
log.info("member test accuracies: %s", [round(float(a), 4) for a in accuracy])
io.save_networks(sm.output[0], result.params)
