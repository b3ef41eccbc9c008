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
