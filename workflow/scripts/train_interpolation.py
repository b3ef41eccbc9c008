"""Experiment B: train two independently initialised networks side by side, keeping every epoch."""

import jax
from common import load_data, model, start, train_config

from compactbnn import io, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
init_key, data_key = jax.random.split(jax.random.key(cfg["seed"]))
result = train.train_many(
    network,
    network.init_many(init_key, 2),
    arrays["x_train"],
    arrays["y_train"],
    jax.random.split(data_key, 2),
    train_config(cfg["training"]),
    snapshots=True,
    progress="two networks",
)
final = train.evaluate_many(network, result.params, arrays["x_test"], arrays["y_test"])
log.info("test accuracy after training: %s", [round(float(a), 4) for a in final["accuracy"]])
io.save_networks(sm.output[0], network, result.snapshots)  # (epochs + 1, 2, num_params)
