"""How good a posterior is: predictive metrics (``metrics``), pruning by sigma (``pruning``) and the
weight-space comparison of methods (``weight_space``)."""

from compactbnn.evaluation import metrics, pruning, weight_space

__all__ = ["metrics", "pruning", "weight_space"]
