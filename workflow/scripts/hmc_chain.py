"""One HMC chain of the Bayesian network, resumable from its last checkpointed chunk."""

import json
import shutil

import jax
from common import first, hmc_config, load_data, model, start

from compactbnn.inference import diagnostics, hmc
from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.hmc
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
chain = int(sm.wildcards.chain)
config = hmc_config(cfg, sm.params.prior_sd, sm.params.matmul_precision)
x, y = first(arrays["x_train"], cfg["train_size"]), first(arrays["y_train"], cfg["train_size"])
log.info("chain %d: %r on %d images, device %s, checkpoint %s", chain, network, len(y), jax.devices()[0], sm.params.checkpoint)
result = hmc.run_chain(
    network, x, y, config, jax.random.fold_in(jax.random.key(cfg["seed"]), chain), sm.params.checkpoint,
    x_test=arrays["x_test"], y_test=arrays["y_test"], chain_name=f"chain{chain}",
)
summary = result.summary()
log.info("chain %d done: %s", chain, json.dumps(summary))
# A threshold, not a sampling setting: read from the config, so changing it reruns no chain.
min_accept_rate = sm.config["posterior"]["hmc"]["min_accept_rate"]
if not result.accept_rate >= min_accept_rate:
    raise RuntimeError(
        f"chain {chain} accepted {result.accept_rate:.3f} of its proposals on average (divergent: "
        f"{result.num_divergent} of {result.completed_iterations}), below posterior.hmc.min_accept_rate = "
        f"{min_accept_rate}: lower posterior.hmc.step_size (now {config.step_size}) or num_steps. "
        f"The chain's checkpoint is kept in {sm.params.checkpoint} (compactbnn.inference.hmc.load_chain reads it)."
    )
io.save_vectors(
    sm.output.samples, network, result.samples,  # (num_kept, num_params), model.ravel order
    kept_indices=result.kept_indices,
    log_likelihood_trace=result.traces["log_likelihood"],
    accept_prob_trace=result.traces["accept_prob"],
    test_log_likelihood=result.test_log_likelihood,
)
# The scalar traces as ArviZ data: az.summary / az.plot_trace(diagnostics.read_trace(path)) read them.
diagnostics.write_trace(sm.output.trace, diagnostics.chain_trace(result, chain))
with open(sm.output.diagnostics, "w") as handle:
    # the config the samples were drawn under: the workflow refuses to delete them for another one
    json.dump({**summary, "sampling_config": sm.params.sampling_config}, handle, indent=2)
# The outputs hold everything; the checkpoint would keep a second copy of the samples, and a
# forced rerun (after a code change, say) must sample afresh rather than return the old chain.
del result
shutil.rmtree(sm.params.checkpoint)
