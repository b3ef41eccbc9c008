"""A small residual network without batch norm (``ResNet``), as plain pytrees.

``ResNet(image_shape, width, blocks, num_classes)``: a 3x3 stem convolution (C -> width) with
ReLU; ``blocks`` residual blocks ``h = relu(h + conv2(relu(conv1(h))))`` at constant width (3x3,
stride 1, padding 1); global average pooling; a linear layer to the logits. Parameters are the
layers in PyTorch's ``parameters()`` order: stem, then conv1 and conv2 of each block, then the
linear layer, each ``{"weight", "bias"}`` in PyTorch's layout (``compactbnn.models.cnn``).

Permutations (Git Re-Basin's ResNet spec, without its norms): the skip connections add the stem's
output channels to every block's conv2 output, so these all carry one permutation, the residual
stream's (permutation 0); it also takes the input channels of every conv1 and the columns of the
linear layer. Each block's conv1 output channels have their own (permutation 1 + block), which
also takes that block's conv2 input channels.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models.base import Params, PermutationSpec
from compactbnn.models.cnn import KERNEL, LayerListModel, check_image_shape, conv, linear, to_images


@dataclass(frozen=True)
class ResNet(LayerListModel):
    """Stem conv, ``blocks`` residual blocks of two 3x3 convs at ``width`` channels, global average pooling, logits.

    E.g. ``ResNet(image_shape=(1, 28, 28), width=16, blocks=2, num_classes=10)``. The default of
    ``num_classes`` also stands in for ``Model``'s abstract property (as in ``CNN``).
    """

    image_shape: tuple[int, int, int]
    width: int
    blocks: int
    num_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "image_shape", check_image_shape(self.image_shape))
        for name, least in (("width", 1), ("blocks", 0), ("num_classes", 1)):
            value = getattr(self, name)
            try:
                value = operator.index(value)
            except TypeError:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}") from None
            if value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            object.__setattr__(self, name, value)

    @property
    def layer_shapes(self):
        conv_shape = lambda fan_in: ((self.width, fan_in, KERNEL, KERNEL), (self.width,))  # noqa: E731
        stem = conv_shape(self.image_shape[0])
        return (stem,) + (conv_shape(self.width),) * (2 * self.blocks) + (((self.num_classes, self.width), (self.num_classes,)),)

    @property
    def perm_sizes(self) -> tuple[int, ...]:
        return (self.width,) * (1 + self.blocks)

    @property
    def num_features(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def spec(self) -> PermutationSpec:
        last = 1 + 2 * self.blocks
        stream = [(0, "weight", 0), (0, "bias", 0)]
        inner = []
        for block in range(self.blocks):
            conv1, conv2 = 1 + 2 * block, 2 + 2 * block
            stream += [(conv1, "weight", 1), (conv2, "weight", 0), (conv2, "bias", 0)]
            inner.append(((conv1, "weight", 0), (conv1, "bias", 0), (conv2, "weight", 1)))
        stream.append((last, "weight", 1))
        return PermutationSpec((tuple(stream),) + tuple(inner))

    def apply(self, params: Params, x: jax.Array, matmul: Callable | None = None) -> jax.Array:
        return self.forward(params, x, matmul)[0]

    def hidden_activations(self, params: Params, x: jax.Array) -> list[jax.Array]:
        """Permutation 0: the residual stream after the stem and after every block, (..., 1 + blocks, H, W, width);
        permutation 1 + b: block b's inner ReLU output (..., H, W, width).

        The residual stream's permutation acts at every point where the stream is read (the stem's
        output and each block's output), so activation matching sums its products over all of them,
        as Git Re-Basin matches a permutation wherever it acts: the axis of size 1 + blocks is
        one more leading axis of positions. Before the global pooling, so that the positions count.
        """
        return self.forward(params, x)[1]

    def forward(self, params: Params, x: jax.Array, matmul: Callable | None = None):
        """Logits (..., num_classes) and the hidden activations of ``hidden_activations``."""
        lead = x.shape[:-1]
        stem = params[0]
        h = jax.nn.relu(conv(to_images(x, self.image_shape), stem["weight"], stem["bias"], matmul))
        stream, inner = [h], []
        for block in range(self.blocks):
            first, second = params[1 + 2 * block], params[2 + 2 * block]
            u = jax.nn.relu(conv(h, first["weight"], first["bias"], matmul))
            h = jax.nn.relu(h + conv(u, second["weight"], second["bias"], matmul))
            inner.append(u.reshape(lead + u.shape[1:]))
            stream.append(h)
        pooled = jnp.mean(h, axis=(1, 2))
        logits = linear(pooled, params[-1]["weight"], params[-1]["bias"], matmul)
        streams = jnp.stack(stream, axis=1)  # (N, 1 + blocks, H, W, width)
        return logits.reshape(lead + (self.num_classes,)), [streams.reshape(lead + streams.shape[1:])] + inner
