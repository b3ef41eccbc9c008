"""compactbnn: a compact representation for Bayesian neural networks by removing permutation symmetry.

Modules: ``data`` (MNIST, digits), ``mlp`` (MLPs as pytrees), ``train`` (many models at once).
"""

__version__ = "0.1.0"
