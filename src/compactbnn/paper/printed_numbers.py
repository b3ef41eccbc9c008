"""Numbers printed in the paper (PAPER.md), shown beside ours in tables and figures."""

from __future__ import annotations

# Table 1 as printed: (method, representation) -> agreement, tv, accuracy_samples %, accuracy_mean %.
# None where the paper prints N/A.
TABLE1 = {
    ("hmc", "sample"): (1.0, 0.0, 98.43, None),
    ("hmc", "q_d"): (0.1212, 0.8641, 11.11, 28.06),
    ("hmc", "q_r"): (0.8249, 0.6570, 82.34, 92.25),
    ("ensemble", "sample"): (0.9931, 0.0229, 98.66, None),
    ("ensemble", "q_d"): (0.5239, 0.7210, 52.25, 86.40),
    ("ensemble", "q_r"): (0.9868, 0.0495, 97.72, 97.97),
    ("vi", "q"): (0.9885, 0.0235, 98.11, 98.04),
}

# Figure 3 right as printed: test accuracy % at retained percentages 100, 90, ..., 10, 5, 1.
RETAINED_PERCENTS = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1)
PRUNING = {
    "hmc_mu_r": (92.3, 73.5, 65.2, 65.1, 63.7, 71.0, 68.3, 63.7, 53.4, 33.3, 17.0, 7.9),
    "hmc_mu_d": (28.1, 12.1, 12.4, 12.5, 12.2, 13.1, 13.0, 13.0, 12.9, 12.9, 12.2, 11.0),
    "ensemble_mu_r": (98.0, 54.5, 27.4, 10.3, 10, 10, 10, 10, 10, 10, 10, 10),  # "~10" from 60 % down
    "merged": (98.0, 95.7, 94.5, 92.9, 91.4, 90.5, 86.7, 83.6, 79.8, 62.6, 40.5, 19.7),
    "vi": (98.0, 98.1, 98.1, 98.1, 98.1, 98.1, 98.1, 98.1, 98.1, 97.5, 70.1, 15.0),
}

# The paper's network: one hidden layer of this width (Figure 2's NoT levels and distances are at it).
WIDTH = 512

# Figure 2 (a-c) as the text prints it, Experiment A: values of the level means at printed NoT levels.
NOT_LEVELS = (1, 11, 53, 105, 209, 302)
DISTANCE = {  # squared L2 distance ||W0 - W1||^2
    "init": (1.4, 15, 70, 135, 243, 315),
    "trained": (3, 31, 135, 258, 461, 600),
}
SATURATION_FROM = 400  # "saturates ... from NoT ~400": levels at or above this form the plateau
DISTANCE_SATURATION = {"init": 348, "trained": 665}
CONTROL_DISTANCE = 0.3  # "purple stays ~0.3"
BARRIER_TRAINED = {11: 0.002, 105: 0.036, 209: 0.117, 302: 0.208}  # loss barrier of the trained pair
BARRIER_PEAK = (0.31, 344)  # "peaks ~0.31 near 344": value, NoT level
BARRIER_PLATEAU = (0.28, 0.30)  # "plateaus ~0.28-0.30"
BARRIER_CONTROLS = 0.0  # "blue and purple stay ~0"

# Figure 2 d, Experiment B: NoT(W_lambda, W_0) over (epoch, lambda).
NOT_PATH_ZERO_UP_TO = 0.2  # "~0 for lambda up to ~0.2" (before rebasin)
NOT_PATH_TOP = (510, 0.7)  # "a smooth monotone rise to ~510 ... by lambda ~0.7": NoT, from this lambda on
NOT_PATH_AFTER = 0.0  # "after rebasin: ~0 everywhere"

# Figure 1, Experiment B: loss along the path. "Early epochs" and "starts" read as epoch 1, the
# first trained epoch (epoch 0 is the initialisation, loss ~2.3 everywhere, which cannot be "~0.62").
RIDGE_EARLY = 1.0  # before rebasin, loss at middle lambda at early epochs
ENDS_LAST = 0.1  # before rebasin, both end losses at epoch 50
AFTER_START = 0.62  # after rebasin, no ridge; "starts ~0.62"

# Figure 3 left: sigma as printed. (method, representation) -> value or (low, high) range.
SIGMA_MAX = {("hmc", "q_r"): 1.38, ("hmc", "q_d"): (1.6, 2.0), ("ensemble", "q_r"): 0.53,
             ("ensemble", "q_d"): 0.60}
SIGMA_MIN = {("hmc", "q_r"): 0.66}  # "sigma_r spans ~0.66-1.38"
SIGMA_MODE = {("hmc", "q_r"): 1.0, ("hmc", "q_d"): 1.0, ("vi", "q"): 1.0}  # "peak at sigma ~1.0"
# Pruning values the paper prints as "~10" (the ensemble's own curve from 60 % retained down).
PRUNING_APPROXIMATE = frozenset(("ensemble_mu_r", p) for p in (60, 50, 40, 30, 20, 10, 5, 1))
