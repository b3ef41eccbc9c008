"""Convolutional networks as plain pytrees: a plain CNN (``CNN``) and the parts the residual network shares.

Parameters are a list with one dict per layer, ``{"weight", "bias"}`` in PyTorch's layout: a 3x3
convolution's weight is (out, in, 3, 3) (``nn.Conv2d``'s OIHW), a dense weight (out, in). ``ravel``
flattens them in PyTorch's ``parameters_to_vector`` order: layer by layer, the weight in row-major
order, then the bias; the NumPyro sites are ``layer{i}.weight`` and ``layer{i}.bias`` in that order.

Inputs are flat pixels (..., C*H*W) in PyTorch's (C, H, W) order, as the data loaders give them.
Inside, feature maps are (N, H, W, C): channels last, so that ``hidden_activations`` hands
activation matching arrays whose leading axes are examples and positions.

``CNN(image_shape, channels, dense, num_classes)``: for each entry of ``channels`` a 3x3
convolution (stride 1, padding 1) with ReLU and a 2x2 max pooling (``nn.MaxPool2d(2)``: windows
that do not fit are dropped); the last feature map flattened in (C, H, W) order; dense layers
of widths ``dense`` with ReLU; a last linear layer to the logits. One permutation per
convolution (its output channels) and one per hidden dense layer.
"""

from __future__ import annotations

import abc
import operator
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models.base import Model, Params, PermutationSpec

KERNEL = 3  # every convolution is 3x3, stride 1, padding 1 ("same" size)
POOL = 2  # 2x2 max pooling, stride 2, floor


# ---------------------------------------------------------------------------------------------
# Layers


def conv(h: jax.Array, weight: jax.Array, bias: jax.Array, matmul: Callable | None = None) -> jax.Array:
    """A 3x3 convolution of (N, H, W, C_in) feature maps with an (out, in, 3, 3) weight: (N, H, W, out).

    Without ``matmul``, XLA's convolution. With it (a low-precision product for mixed-precision HMC,
    or ``base.IN_LOOP_MATMUL`` from code that runs inside a loop body), the sum over the 9 taps (i,
    j) of the input shifted by (i, j) times the tap's (in, out) weights: matrix products only, each
    through ``matmul``. XLA on CPUs runs a convolution inside a loop body (``lax.scan``,
    ``fori_loop``) some 7 times slower than outside one, and these products do not slow down there;
    outside loops the convolution is faster. Measured for presets/cnn.yaml's CNN on 2 idle CPU cores
    (2026-12-02), products vs convolution: a step of 12 vmapped networks on 64 images inside a
    ``lax.scan`` 96 vs 711 ms, a gradient on 300 images inside a ``fori_loop`` 37 vs 202 ms; outside
    loops one gradient 49 vs 35 ms, and the workflow's evaluations (``analyse_not_run``, predictive
    of HMC's samples) 2-3 times slower. The same function up to float32 rounding.
    """
    if matmul is None:
        padding = ((KERNEL // 2, KERNEL // 2),) * 2
        out = jax.lax.conv_general_dilated(h, weight, (1, 1), padding, dimension_numbers=("NHWC", "OIHW", "NHWC"))
        return out + bias
    n, height, width, channels = h.shape
    padded = jnp.pad(h, ((0, 0), (KERNEL // 2, KERNEL // 2), (KERNEL // 2, KERNEL // 2), (0, 0)))
    out = sum(matmul(padded[:, i: i + height, j: j + width, :].reshape(-1, channels), weight[:, :, i, j].T)
              for i in range(KERNEL) for j in range(KERNEL))  # 2-D products, as mixed precision's matmul takes
    return out.reshape(n, height, width, -1) + bias


def max_pool(h: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 of (N, H, W, C): (N, H // 2, W // 2, C), as ``torch.nn.MaxPool2d(2)``.

    As a max over the axes of a reshape (an odd last row or column dropped, as torch's floor), not
    ``lax.reduce_window``: the same values, and on CPUs a gradient 2.2 times as fast for the CNN of
    presets/cnn.yaml (measured: 54 vs 121 ms per gradient on 300 images). Only ties would split the
    gradient otherwise, and a 2x2 window of ReLU outputs ties only at 0, where ReLU passes none back.
    """
    height, width = h.shape[1] // POOL, h.shape[2] // POOL
    windows = h[:, : height * POOL, : width * POOL].reshape(h.shape[0], height, POOL, width, POOL, h.shape[3])
    return windows.max(axis=(2, 4))


def linear(h: jax.Array, weight: jax.Array, bias: jax.Array, matmul: Callable | None = None) -> jax.Array:
    """``h @ weight.T + bias`` of (N, in) with a PyTorch (out, in) weight; ``matmul`` replaces ``@``."""
    product = matmul if matmul is not None else jnp.matmul
    return product(h, weight.T) + bias


def to_images(x: jax.Array, image_shape: tuple[int, int, int]) -> jax.Array:
    """Flat pixels (..., C*H*W) in (C, H, W) order as channels-last maps (N, H, W, C), N the product of the leading axes."""
    return jnp.transpose(x.reshape((-1,) + tuple(image_shape)), (0, 2, 3, 1))


def uniform_layers(key: jax.Array, shapes: Sequence[tuple], dtype) -> Params:
    """PyTorch's default init of each (weight shape, bias shape): U(+-1/sqrt(fan_in)) for weight and bias.

    ``nn.Linear`` and ``nn.Conv2d`` use kaiming_uniform(a=sqrt(5)) for the weight, whose bound
    gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + 5)) is 1/sqrt(fan_in), and the same bound
    for the bias; fan_in is the weight's size divided by its rows (in * 3 * 3 for a convolution).
    """
    params = []
    for layer_key, (weight_shape, bias_shape) in zip(jax.random.split(key, len(shapes)), shapes):
        weight_key, bias_key = jax.random.split(layer_key)
        bound = 1.0 / np.sqrt(int(np.prod(weight_shape[1:])))
        params.append({"weight": jax.random.uniform(weight_key, weight_shape, dtype, -bound, bound),
                       "bias": jax.random.uniform(bias_key, bias_shape, dtype, -bound, bound)})
    return params


def check_image_shape(image_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or any(s < 1 for s in shape) or list(image_shape) != list(shape):
        raise ValueError(f"image_shape must be three positive integers (C, H, W), got {image_shape!r}")
    return shape


def check_widths(widths, name: str, allow_empty: bool) -> tuple[int, ...]:
    try:
        values = tuple(operator.index(w) for w in widths)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers, got {widths!r}") from None
    if any(w < 1 for w in values) or (not values and not allow_empty):
        raise ValueError(f"{name} must be {'' if allow_empty else 'a non-empty sequence of '}positive integers, got {widths!r}")
    return values


# ---------------------------------------------------------------------------------------------
# A model whose parameters are a list of {"weight", "bias"} layers


class LayerListModel(Model):
    """The parts every network of ``{"weight", "bias"}`` layers shares: sites, ravel, check; from ``layer_shapes``."""

    @property
    @abc.abstractmethod
    def layer_shapes(self) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
        """(weight shape, bias shape) of every layer, in PyTorch's ``parameters()`` order."""

    @property
    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((f"layer{i}.{kind}", shape) for i, shapes in enumerate(self.layer_shapes)
                     for kind, shape in zip(("weight", "bias"), shapes))

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.sites)

    def init(self, key: jax.Array, dtype=jnp.float32) -> Params:
        return init_layers(self, key, jnp.dtype(dtype))

    def ravel(self, params: Params) -> jax.Array:
        batch = jnp.shape(params[0]["bias"])[:-1]
        parts = [part for layer in params for part in (layer["weight"].reshape(*batch, -1), layer["bias"])]
        return jnp.concatenate(parts, axis=-1)

    def unravel(self, vector: jax.Array) -> Params:
        if vector.shape[-1] != self.num_params:
            raise ValueError(f"vector has {vector.shape[-1]} entries, {self!r} needs {self.num_params}")
        batch, offset, params = vector.shape[:-1], 0, []
        for weight_shape, bias_shape in self.layer_shapes:
            layer = {}
            for kind, shape in (("weight", weight_shape), ("bias", bias_shape)):
                size = int(np.prod(shape))
                layer[kind] = vector[..., offset: offset + size].reshape(*batch, *shape)
                offset += size
            params.append(layer)
        return params

    def to_sites(self, params: Params) -> dict[str, jax.Array]:
        return {f"layer{i}.{kind}": layer[kind] for i, layer in enumerate(params) for kind in ("weight", "bias")}

    def from_sites(self, sites: dict[str, jax.Array]) -> Params:
        return [{kind: sites[f"layer{i}.{kind}"] for kind in ("weight", "bias")} for i in range(len(self.layer_shapes))]

    def check(self, params: Params, name: str = "params", batch_ndim: int = 0) -> None:
        shapes = self.layer_shapes
        if not isinstance(params, (list, tuple)) or len(params) != len(shapes):
            got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise TypeError(f"{name} must be a list of {len(shapes)} layer dicts {{'weight', 'bias'}} for {self!r}, got {got}")
        batch = None
        for i, (layer, expected) in enumerate(zip(params, shapes)):
            if not isinstance(layer, dict) or set(layer) != {"weight", "bias"}:
                got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
                raise TypeError(f"{name}[{i}] must be a dict with keys 'weight' and 'bias', got {got}")
            for kind, shape in zip(("weight", "bias"), expected):
                actual = np.shape(layer[kind])
                batch = actual[:batch_ndim] if batch is None else batch
                if len(actual) != batch_ndim + len(shape) or actual[:batch_ndim] != batch or actual[batch_ndim:] != shape:
                    raise ValueError(f"{name}[{i}]['{kind}'] has shape {actual}; {self!r} needs {batch + shape} "
                                     f"({batch_ndim} leading model axes)")


@partial(jax.jit, static_argnums=(0, 2))
def init_layers(model: LayerListModel, key: jax.Array, dtype) -> Params:
    # jitted: op by op, the draws of every layer would each cost a dispatch
    return uniform_layers(key, model.layer_shapes, dtype)


# ---------------------------------------------------------------------------------------------
# The plain CNN


@dataclass(frozen=True)
class CNN(LayerListModel):
    """3x3 conv + ReLU + 2x2 max pool per entry of ``channels``, flatten (C, H, W), dense ReLU layers, logits.

    E.g. ``CNN(image_shape=(1, 28, 28), channels=(16, 32), dense=(64,), num_classes=10)``. The
    default of ``num_classes`` (both data sets have 10) also stands in for ``Model``'s abstract
    property of that name, which a field without a default would leave abstract.
    """

    image_shape: tuple[int, int, int]
    channels: tuple[int, ...]
    dense: tuple[int, ...]
    num_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "image_shape", check_image_shape(self.image_shape))
        object.__setattr__(self, "channels", check_widths(self.channels, "channels", allow_empty=False))
        object.__setattr__(self, "dense", check_widths(self.dense, "dense", allow_empty=True))
        object.__setattr__(self, "num_classes", check_widths((self.num_classes,), "num_classes", allow_empty=False)[0])
        _, height, width = self.image_shape
        if min(height, width) < POOL ** len(self.channels):
            raise ValueError(f"image_shape {self.image_shape}: {len(self.channels)} 2x2 poolings need H and W of at "
                             f"least {POOL ** len(self.channels)}")

    @property
    def pooled_shape(self) -> tuple[int, int]:
        """(H', W') of the last feature map, after every pooling (floor)."""
        _, height, width = self.image_shape
        for _ in self.channels:
            height, width = height // POOL, width // POOL
        return height, width

    @property
    def layer_shapes(self):
        shapes, fan_in = [], self.image_shape[0]
        for out in self.channels:
            shapes.append(((out, fan_in, KERNEL, KERNEL), (out,)))
            fan_in = out
        fan_in *= int(np.prod(self.pooled_shape))
        for out in self.dense + (self.num_classes,):
            shapes.append(((out, fan_in), (out,)))
            fan_in = out
        return tuple(shapes)

    @property
    def perm_sizes(self) -> tuple[int, ...]:
        return self.channels + self.dense

    @property
    def num_features(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def spec(self) -> PermutationSpec:
        num_conv, block = len(self.channels), int(np.prod(self.pooled_shape))
        perms = []
        for layer in range(num_conv + len(self.dense)):
            into_next = (layer + 1, "weight", 1)
            if layer == num_conv - 1 and block > 1:
                # flattening (C, H', W') gives each channel H'*W' consecutive columns of the first dense weight
                into_next = (layer + 1, "weight", 1, block)
            perms.append(((layer, "weight", 0), (layer, "bias", 0), into_next))
        return PermutationSpec(tuple(perms))

    def apply(self, params: Params, x: jax.Array, matmul: Callable | None = None) -> jax.Array:
        return self.forward(params, x, matmul)[0]

    def hidden_activations(self, params: Params, x: jax.Array) -> list[jax.Array]:
        """Per convolution its ReLU output before pooling (..., H, W, C); per hidden dense layer (..., width).

        The feature map before pooling: pooling is a per-channel function of it, and it has four
        times the positions for activation matching to compare.
        """
        return self.forward(params, x)[1]

    def forward(self, params: Params, x: jax.Array, matmul: Callable | None = None):
        """Logits (..., num_classes) and the hidden activations of ``hidden_activations``."""
        lead = x.shape[:-1]
        num_conv = len(self.channels)
        h = to_images(x, self.image_shape)
        activations = []
        for layer in params[:num_conv]:
            h = jax.nn.relu(conv(h, layer["weight"], layer["bias"], matmul))
            activations.append(h.reshape(lead + h.shape[1:]))
            h = max_pool(h)
        h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)  # PyTorch's flatten: (C, H', W')
        for layer in params[num_conv:-1]:
            h = jax.nn.relu(linear(h, layer["weight"], layer["bias"], matmul))
            activations.append(h.reshape(lead + h.shape[1:]))
        logits = linear(h, params[-1]["weight"], params[-1]["bias"], matmul)
        return logits.reshape(lead + (self.num_classes,)), activations
