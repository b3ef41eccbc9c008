"""Networks as data the rest of the library reads (``Model``: init, apply, hidden activations,
parameter order, permutation spec), and the models the library ships: the MLP (``mlp.MLP``)."""

from compactbnn.models import mlp
from compactbnn.models.base import Model, Params, PermutationSpec
from compactbnn.models.mlp import MLP

__all__ = ["Model", "Params", "PermutationSpec", "MLP", "mlp"]
