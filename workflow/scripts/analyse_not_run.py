"""Experiment A, one run: NoT(P'), squared distances, loss and error barriers of the init, trained and control pairs."""

import jax
from common import first, load_data, model, start

from compactbnn.paper import experiments
from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
trained, saved = io.load_networks(sm.input.networks, network)
perms = [saved[f"perm{p}"] for p in range(network.spec.num_perms)]
# train_not_run stores the F first networks ahead of the L permuted ones: F = L (independent pairs) or 1 (shared W_init)
num_first = saved["init"].shape[0]
table = experiments.analyse_not_run(
    network,
    network.unravel(saved["init"]),
    jax.tree_util.tree_map(lambda leaf: leaf[:num_first], trained),
    jax.tree_util.tree_map(lambda leaf: leaf[num_first:], trained),
    perms,
    x_match=first(arrays["x_train"], cfg["match_size"]),
    # barriers and the networks' metrics on both splits (the authors' script); `barrier` is cfg["split"]'s
    splits={name: (arrays[f"x_{name}"], arrays[f"y_{name}"]) for name in ("train", "test")},
    split=cfg["split"],
    lambdas=experiments.lambda_grid(cfg["lambdas"]),
    method=cfg["matching"],
    run=int(sm.wildcards.run),
)
table.to_csv(sm.output[0], index=False)
log.info("wrote %d rows to %s", len(table), sm.output[0])
