"""One HMC chain of the Bayesian MLP, resumable from its last checkpointed chunk."""

import json

import jax
import numpy as np
from common import first, layer_sizes, load_data, start

from compactbnn import hmc, io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.hmc
arrays = load_data(sm.params.data)
sizes = layer_sizes(arrays, sm.params.model)
chain = int(sm.wildcards.chain)
config = hmc.HMCConfig(
    step_size=cfg["step_size"],
    num_steps=cfg["num_steps"],
    num_iterations=cfg["iterations"],
    keep_first=cfg["keep_first"],
    keep_last=cfg["keep_last"],
    num_kept=cfg["num_kept"],
    chunk_size=cfg["chunk_size"],
    prior_sd=sm.params.prior_sd,
    adapt_step_size=cfg["adapt_step_size"],
    num_warmup=cfg["warmup"],
    init=cfg["init"],
    matmul_precision=cfg["matmul_precision"],
)
x, y = first(arrays["x_train"], cfg["train_size"]), first(arrays["y_train"], cfg["train_size"])
log.info("chain %d: %s on %d images, device %s, checkpoint %s", chain, sizes, len(y), jax.devices()[0], sm.params.checkpoint)
result = hmc.run_chain(
    x, y, sizes, config, jax.random.fold_in(jax.random.key(cfg["seed"]), chain), sm.params.checkpoint,
    x_test=arrays["x_test"], y_test=arrays["y_test"], chain_name=f"chain{chain}",
)
summary = result.summary()
log.info("chain %d done: %s", chain, json.dumps(summary))
io.save_npz_atomic(sm.output.samples, {
    "params": np.asarray(result.samples, np.float32),  # (num_kept, num_params), mlp.ravel order
    "layer_sizes": np.asarray(sizes),
    "kept_indices": result.kept_indices,
    "log_likelihood_trace": result.traces["log_likelihood"],
    "accept_prob_trace": result.traces["accept_prob"],
    "test_log_likelihood": result.test_log_likelihood,
})
with open(sm.output.diagnostics, "w") as handle:
    json.dump(summary, handle, indent=2)
