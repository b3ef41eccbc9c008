"""Mean-field Gaussian VI: a mean and a standard deviation for every weight and bias."""

import jax
import numpy as np
from common import layer_sizes, load_data, start

from compactbnn import io
from compactbnn.models import mlp
from compactbnn.inference import vi

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.vi
arrays = load_data(sm.params.data)
sizes = layer_sizes(arrays, sm.params.model)
config = vi.VIConfig(learning_rate=cfg["learning_rate"], batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                     prior_sd=sm.params.prior_sd, init_sd=cfg["init_sd"])
result = vi.fit(jax.random.key(cfg["seed"]), sizes, arrays["x_train"], arrays["y_train"], config,
                evaluate_on={"test": (arrays["x_test"], arrays["y_test"])}, progress="mean-field VI")
log.info("test accuracy of the mean weights: %.4f; mean sd %.4f",
         float(result.history["test_accuracy"][-1]), float(result.history["sd_mean"][-1]))
io.save_networks(sm.output[0], result.mean, sd=np.asarray(mlp.ravel(result.sd)))
