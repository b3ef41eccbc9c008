"""Mean-field Gaussian VI: a mean and a standard deviation for every weight and bias."""

import jax
import numpy as np
from common import load_data, model, start, vi_config

from compactbnn import io
from compactbnn.inference import vi

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
cfg = sm.params.vi
arrays = load_data(sm.params.data)
network = model(sm.params.data, sm.params.model)
result = vi.fit(network, jax.random.key(cfg["seed"]), arrays["x_train"], arrays["y_train"], vi_config(cfg, sm.params.prior_sd),
                evaluate_on={"test": (arrays["x_test"], arrays["y_test"])}, progress="mean-field VI")
log.info("test accuracy of the mean weights: %.4f; mean sd %.4f",
         float(result.history["test_accuracy"][-1]), float(result.history["sd_mean"][-1]))
io.save_networks(sm.output[0], network, result.mean, sd=np.asarray(network.ravel(result.sd)))
