"""Experiment A, one run: train W_init and its NoT-controlled permutations P_k W_init together."""

import jax
import numpy as np
from common import layer_sizes, load_data, start, train_config

from compactbnn import experiments, io, mlp, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
sizes = layer_sizes(arrays, sm.params.model)
run = int(sm.wildcards.run)

# One key per run; inits, permutations and minibatch orders all derive from it.
init_key, data_key = jax.random.split(jax.random.fold_in(jax.random.key(cfg["seed"]), run))
levels = experiments.not_levels(min(sizes[1:-1]), cfg["levels"])
init, perms, permuted = experiments.permuted_initialisations(init_key, sizes, levels)
# Model 0 is W_init; models 1..L are P_k W_init. Each has its own minibatch order.
models = jax.tree_util.tree_map(lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)]), init, permuted)
log.info("run %d: training %d networks %s on %d images", run, len(levels) + 1, sizes, len(arrays["y_train"]))
result = train.train_many(models, arrays["x_train"], arrays["y_train"], jax.random.split(data_key, len(levels) + 1),
                          train_config(cfg["training"]), progress=f"run {run}")
final = train.evaluate_many(result.params, arrays["x_test"], arrays["y_test"])
log.info("test accuracy of the trained networks: mean %.4f, min %.4f", float(final["accuracy"].mean()), float(final["accuracy"].min()))
io.save_networks(
    sm.output[0],
    result.params,
    init=np.asarray(mlp.ravel(init)),
    levels=levels,
    **{f"perm{layer}": p for layer, p in enumerate(perms)},
)
