"""One cyclical SG-MCMC chain of the Bayesian network (BlackJAX), resumable from its last completed cycle."""

import json
import shutil

import jax
from common import first, load_data, model, sgmcmc_config, start

from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
# after start(): importing BlackJAX starts JAX's backends, which start() must precede (it limits the job's threads)
from compactbnn.inference import diagnostics, sgmcmc  # noqa: E402
cfg = sm.params.sgmcmc
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
chain = int(sm.wildcards.chain)
config = sgmcmc_config(cfg, sm.params.prior_sd, sm.params.matmul_precision)
x, y = first(arrays["x_train"], cfg["train_size"]), first(arrays["y_train"], cfg["train_size"])
log.info("chain %d: %r on %d images, %s, device %s, checkpoint %s", chain, network, len(y), config, jax.devices()[0],
         sm.params.checkpoint)
# chain c's key, split by the sampler into its initialisation, minibatch order and noise
result = sgmcmc.run_chain(
    network, x, y, config, jax.random.fold_in(jax.random.key(cfg["seed"]), chain), sm.params.checkpoint,
    x_test=arrays["x_test"], y_test=arrays["y_test"], chain_name=f"chain{chain}",
)
summary = result.summary()
log.info("chain %d done: %s", chain, json.dumps(summary))
io.save_vectors(
    sm.output.samples, network, result.samples,  # (num_kept, num_params), model.ravel order, as HMC's
    kept_steps=result.kept_steps, kept_cycles=result.kept_cycles,  # compact_sgmcmc compares the cycles' samples
    log_density_trace=result.traces["log_density"],
    **{name: values for name, values in result.metrics.items()},  # log_prior, train_/test_log_likelihood, accuracies
)
# The scalar traces as ArviZ data: az.summary / az.plot_trace(diagnostics.read_trace(path)) read them.
diagnostics.write_trace(sm.output.trace, diagnostics.sgmcmc_chain_trace(result, chain))
with open(sm.output.diagnostics, "w") as handle:
    # the config the samples were drawn under (its hash also names the checkpoint)
    json.dump({**summary, "sampling_config": sm.params.sampling_config}, handle, indent=2)
# The outputs hold everything; the checkpoint would keep a second copy of the samples, and a forced rerun
# (after a code change, say) must sample afresh rather than return the old chain.
del result
shutil.rmtree(sm.params.checkpoint)
