"""Experiment A, one run: train the first networks W_init and their NoT-controlled permutations P_k W_init together."""

import jax
import numpy as np
from common import load_data, model, start, train_config

from compactbnn.config.shapes import experiment_levels
from compactbnn.paper import experiments
from compactbnn import io, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
run = int(sm.wildcards.run)

# One key per run; inits, permutations and minibatch orders all derive from it.
init_key, data_key = jax.random.split(jax.random.fold_in(jax.random.key(cfg["seed"]), run))
# (num_perms, L): each permutation group (hidden layer, convolution's channels) its own levels 1..n_p - 1
levels = np.asarray(experiment_levels(network.perm_sizes, cfg["levels"], cfg.get("level_indices")), np.int32)
independent = cfg["pairs"] == "independent"
init, perms, permuted = experiments.permuted_initialisations(network, init_key, levels, independent=independent)
# The first F models are the first networks (one per level, or one W_init shared by all levels);
# the last L are P_k W_init. Each model has its own minibatch order.
firsts = init if independent else network.stack_one(init)
models = jax.tree_util.tree_map(lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)]), firsts, permuted)
num_models = network.num_stacked(models)
log.info("run %d: training %d networks of %s on %d images (%s pairs)", run, num_models, network,
         len(arrays["y_train"]), cfg["pairs"])
result = train.train_many(network, models, arrays["x_train"], arrays["y_train"], jax.random.split(data_key, num_models),
                          train_config(cfg["training"]), progress=f"run {run}")
final = train.evaluate_many(network, result.params, arrays["x_test"], arrays["y_test"])
log.info("test accuracy of the trained networks: mean %.4f, min %.4f", float(final["accuracy"].mean()), float(final["accuracy"].min()))
io.save_networks(
    sm.output[0],
    network,
    result.params,
    init=np.asarray(network.ravel(firsts)),  # (F, num_params): F = L independent first networks, or 1 shared
    levels=levels,  # (num_perms, L)
    **{f"perm{layer}": p for layer, p in enumerate(perms)},
)
