"""Experiment B: loss and NoT along the interpolation path at every epoch, before and after rebasin."""

from common import first, load_data, model, start

from compactbnn.paper import experiments
from compactbnn import io

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.experiment
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
snapshots, _ = io.load_networks(sm.input.snapshots, network)
table = experiments.interpolation_table(
    network,
    snapshots,
    experiments.lambda_grid(cfg["lambdas"]),
    {"train": (arrays["x_train"], arrays["y_train"]), "test": (arrays["x_test"], arrays["y_test"])},
    method=cfg["matching"],
    x_match=first(arrays["x_train"], cfg["match_size"]),
)
table.to_csv(sm.output[0], index=False)
log.info("wrote %d rows to %s", len(table), sm.output[0])
