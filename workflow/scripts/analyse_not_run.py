"""Experiment A, one run: NoT(P'), squared distances, loss and error barriers of the init, trained and control pairs."""

import jax
from common import first, load_data, start

from compactbnn.paper import experiments
from compactbnn import io
from compactbnn.models import mlp

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
trained, saved = io.load_networks(sm.input.networks)
sizes = mlp.layer_sizes_of(jax.tree_util.tree_map(lambda leaf: leaf[0], trained))
perms = [saved[f"perm{layer}"] for layer in range(len(sizes) - 2)]
# train_not_run stores the F first networks ahead of the L permuted ones: F = L (independent pairs) or 1 (shared W_init)
num_first = saved["init"].shape[0]
table = experiments.analyse_not_run(
    mlp.unravel(saved["init"], sizes),
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
