"""compactbnn: a compact representation for Bayesian neural networks by removing permutation symmetry.

A reproduction of Xiao, Liu & Bamler (2023) as a library of pure functions over JAX pytrees, in
layers that import only the ones below them (docs/architecture.md):

- ``config``: what the library knows of a configuration, in the standard library alone (data set
  shapes, the network's widths and NoT levels, the settings' field rules and config keys, the
  claim ids, the config check, the cost model).
- ``models``: the model seam (``Model``: init, apply, hidden activations, parameter order,
  permutation spec) and the MLP (``models.MLP``).
- ``data``, ``io``, ``threads``, ``train``: data sets, files (one atomic writer), a job's threads,
  many networks trained at once (vmap over models, one epoch per ``lax.scan``).
- ``symmetry``: NoT and controlled permutations, rebasin (weight and activation matching),
  interpolation and barriers, the compact representation q_d / q_r.
- ``inference``: the one NumPyro model (``bnn``), HMC (settings, exact mixed-precision kernel,
  chunked resumable sampler, checkpoints), mean-field VI, deep ensembles, diagnostics.
- ``evaluation``: predictive metrics, pruning by sigma, the weight-space comparison of methods.
- ``paper``: the paper's experiments as tables, its claims as checks, its printed numbers beside
  ours, the claims report and its figures, used by the Snakemake workflow.
"""

__version__ = "0.1.0"
