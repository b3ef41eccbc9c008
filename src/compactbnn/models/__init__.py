"""Networks as data the rest of the library reads (``Model``: init, apply, hidden activations,
parameter order, permutation spec), and the models the library ships: the MLP (``mlp.MLP``), a plain
CNN (``cnn.CNN``) and a residual network without batch norm (``resnet.ResNet``)."""

from compactbnn.models import mlp
from compactbnn.models.base import IN_LOOP_MATMUL, Model, Params, PermutationSpec
from compactbnn.models.cnn import CNN
from compactbnn.models.mlp import MLP
from compactbnn.models.resnet import ResNet

__all__ = ["Model", "Params", "PermutationSpec", "IN_LOOP_MATMUL", "MLP", "CNN", "ResNet", "mlp"]
