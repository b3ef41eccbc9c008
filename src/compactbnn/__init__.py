"""compactbnn: a compact representation for Bayesian neural networks by removing permutation symmetry.

A reproduction of Xiao, Liu & Bamler (2023) as a library of pure functions over JAX pytrees:

- ``data``: MNIST through the package registry, scikit-learn's 8x8 digits.
- ``mlp``: MLPs of any depth as pytrees (PyTorch layout and initialisation).
- ``train``: many MLPs trained at once (vmap over models, one epoch per ``lax.scan``).
- ``permutation``: the number of transpositions, controlled permutations, permuting networks.
- ``rebasin``: weight and activation matching, aligning many networks to a reference or their mean.
- ``interpolation``: linear paths between networks, loss barriers, distances.
- ``hmc`` and ``diagnostics``: NumPyro HMC in resumable chunks (model in ``hmc_model``, settings
  and kernel in ``hmc_config``, checkpoints in ``hmc_checkpoint``); ArviZ's R-hat, ESS and traces.
- ``ensemble`` and ``vi``: deep ensembles and mean-field VI (NumPyro's SVI on ``hmc_model.bnn_model``).
- ``mixed_hmc``: exact mixed-precision HMC (low-precision leapfrog force, exact float32 accept test).
- ``compact``: q_direct and q_rebasin, the compact Gaussian representation (also the authors'
  two-stage ensemble alignment and low-rank Gaussian).
- ``weight_space``: HMC, the ensemble and VI compared weight by weight, before and after rebasin.
- ``metrics`` and ``pruning``: predictive agreement, total variation, calibration; pruning by sigma.
- ``experiments``, ``figures``, ``claims``, ``reproduction``, ``claims_report``, ``paper``: the
  paper's experiments, figures, claim checks, its printed numbers beside ours, and the reports,
  used by the Snakemake workflow.
- ``datasets``, ``io``, ``threads``, ``cost``: data set constants (no JAX), files, a job's
  threads, the expected wall time of a config's jobs.
"""

__version__ = "0.1.0"
