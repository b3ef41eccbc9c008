"""Multilayer perceptrons as plain pytrees.

Parameters are a list with one dict per dense layer, ``{"weight": (out, in), "bias": (out,)}``,
in PyTorch's layout, so that the paper's ``W1' = P W1`` permutes rows of a weight and
``W2' = W2 P^-1`` its columns. Hidden layers use ReLU; the last layer gives logits.

``ravel`` flattens to one vector in PyTorch's ``parameters_to_vector`` order: for each layer in
turn, the weight row by row (row-major, ``out x in``), then the bias.

``MLP(layer_sizes)`` is the MLP as a ``compactbnn.models.Model``: what the rest of the library takes.
The module's functions are its parts, usable on their own.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.config import shapes
from compactbnn.models.base import Model, PermutationSpec

Params = list  # list[dict[str, jax.Array]]


def init(key: jax.Array, layer_sizes: Sequence[int], dtype=jnp.float32) -> Params:
    """PyTorch's default ``nn.Linear`` initialisation: weights and biases ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)).

    ``layer_sizes`` lists input, hidden and output widths, e.g. ``[784, 512, 10]``.
    """
    return _init(key, tuple(check_layer_sizes(layer_sizes)), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(key: jax.Array, layer_sizes: tuple[int, ...], dtype) -> Params:
    # jitted: run op by op, drawing a 784-512-10 network costs seconds of dispatch the first time
    params = []
    for layer_key, fan_in, fan_out in zip(jax.random.split(key, len(layer_sizes) - 1), layer_sizes[:-1], layer_sizes[1:]):
        weight_key, bias_key = jax.random.split(layer_key)
        bound = 1.0 / np.sqrt(fan_in)
        params.append({
            "weight": jax.random.uniform(weight_key, (fan_out, fan_in), dtype, -bound, bound),
            "bias": jax.random.uniform(bias_key, (fan_out,), dtype, -bound, bound),
        })
    return params


def init_many(key: jax.Array, layer_sizes: Sequence[int], num_models: int, dtype=jnp.float32) -> Params:
    """``num_models`` independent initialisations stacked along a leading model axis."""
    sizes = tuple(check_layer_sizes(layer_sizes))
    return jax.vmap(lambda k: _init(k, sizes, jnp.dtype(dtype)))(jax.random.split(key, num_models))


def stack_one(params: Params) -> Params:
    """One network as a stack of one: every leaf gets a leading model axis of size 1."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf)[None], params)


def repeat(params: Params, num_models: int) -> Params:
    """One network as a stack of ``num_models`` identical copies (a broadcast, no copy is made)."""
    return jax.tree_util.tree_map(lambda leaf: jnp.broadcast_to(leaf, (num_models,) + jnp.shape(leaf)), params)


def check_layer_sizes(layer_sizes: Sequence[int]) -> list[int]:
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes) or list(layer_sizes) != sizes:
        raise ValueError(f"layer_sizes must be at least two positive integers (input, ..., output), got {list(layer_sizes)}")
    return sizes


def layer_sizes_of(params: Params) -> list[int]:
    """Input, hidden and output widths of an unstacked parameter pytree."""
    return [params[0]["weight"].shape[-1]] + [layer["weight"].shape[-2] for layer in params]


def apply(params: Params, x: jax.Array, matmul: Callable | None = None) -> jax.Array:
    """Logits of inputs ``x`` (..., in) -> (..., out); ``matmul`` as in ``forward``."""
    return forward(params, x, matmul)[0]


def hidden_activations(params: Params, x: jax.Array) -> list[jax.Array]:
    """Post-ReLU activations of every hidden layer, each (..., width)."""
    return forward(params, x)[1]


def forward(params: Params, x: jax.Array, matmul: Callable | None = None) -> tuple[jax.Array, list[jax.Array]]:
    """Logits and the list of post-ReLU hidden activations.

    ``matmul(a, b)`` replaces ``a @ b`` in every layer when given, e.g. a low-precision
    product of ``compactbnn.inference.hmc.mixed_precision.matmul`` (2-D ``x`` then).
    """
    product = matmul if matmul is not None else jnp.matmul
    activations = []
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(product(h, layer["weight"].T) + layer["bias"])
        activations.append(h)
    last = params[-1]
    return product(h, last["weight"].T) + last["bias"], activations


def num_params(layer_sizes: Sequence[int]) -> int:
    """Number of weights and biases; 407,050 for 784-512-10 (counted once, in ``config.shapes``)."""
    return shapes.num_params(check_layer_sizes(layer_sizes))


def ravel(params: Params) -> jax.Array:
    """One vector (..., num_params) in PyTorch order: per layer, weight row-major then bias.

    Leading batch axes (a stack of models) are kept.
    """
    batch = params[0]["bias"].shape[:-1]
    parts = []
    for layer in params:
        parts.append(layer["weight"].reshape(*batch, -1))
        parts.append(layer["bias"])
    return jnp.concatenate(parts, axis=-1)


def unravel(vector: jax.Array, layer_sizes: Sequence[int]) -> Params:
    """Inverse of ``ravel`` for the given layer sizes; leading batch axes are kept."""
    sizes = check_layer_sizes(layer_sizes)
    expected = num_params(sizes)
    if vector.shape[-1] != expected:
        raise ValueError(f"vector has {vector.shape[-1]} entries, layer sizes {sizes} need {expected}")
    batch = vector.shape[:-1]
    params, offset = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weight = vector[..., offset: offset + fan_in * fan_out].reshape(*batch, fan_out, fan_in)
        offset += fan_in * fan_out
        bias = vector[..., offset: offset + fan_out]
        offset += fan_out
        params.append({"weight": weight, "bias": bias})
    return params


def site_name(layer: int, kind: str) -> str:
    """NumPyro sample-site name of one layer's ``"weight"`` or ``"bias"``, e.g. ``layer0.weight``."""
    return f"layer{layer}.{kind}"


def permutation_spec(num_hidden: int) -> PermutationSpec:
    """The spec of an MLP with ``num_hidden`` hidden layers (``len(params) - 1``); one permutation per hidden layer."""
    if operator.index(num_hidden) < 0:
        raise ValueError(f"num_hidden must be >= 0, got {num_hidden}")
    return PermutationSpec(tuple(
        ((layer, "weight", 0), (layer, "bias", 0), (layer + 1, "weight", 1)) for layer in range(num_hidden)
    ))


def check_params(params, name: str = "params", batch_ndim: int = 0) -> list[int]:
    """Check an MLP pytree (list of {"weight", "bias"} dicts, ``batch_ndim`` leading model axes); return its layer sizes."""
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError(f"{name} must be a non-empty list of layer dicts {{'weight', 'bias'}}, got {type(params).__name__}")
    sizes = None
    batch = None
    for i, layer in enumerate(params):
        if not isinstance(layer, dict) or set(layer) != {"weight", "bias"}:
            got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
            raise TypeError(f"{name}[{i}] must be a dict with keys 'weight' and 'bias', got {got}")
        w_shape, b_shape = np.shape(layer["weight"]), np.shape(layer["bias"])
        if len(w_shape) != batch_ndim + 2 or len(b_shape) != batch_ndim + 1:
            raise ValueError(f"{name}[{i}]: expected weight with {batch_ndim + 2} and bias with {batch_ndim + 1} axes "
                             f"({batch_ndim} leading model axes), got shapes {w_shape} and {b_shape}")
        if batch is None:
            batch = w_shape[:batch_ndim]
        if w_shape[:batch_ndim] != batch or b_shape[:batch_ndim] != batch:
            raise ValueError(f"{name}[{i}]: leading model axes {w_shape[:batch_ndim]} / {b_shape[:batch_ndim]} differ from {batch}")
        out_dim, in_dim = w_shape[batch_ndim:]
        if b_shape[batch_ndim] != out_dim:
            raise ValueError(f"{name}[{i}]: bias has {b_shape[batch_ndim]} entries but weight has {out_dim} rows")
        if sizes is None:
            sizes = [in_dim]
        elif in_dim != sizes[-1]:
            raise ValueError(f"{name}[{i}]: weight takes {in_dim} inputs but the previous layer has {sizes[-1]} units")
        sizes.append(out_dim)
    return sizes


@dataclass(frozen=True)
class MLP(Model):
    """A fully connected ReLU network of the given widths (input, hidden..., output), e.g. ``MLP((784, 512, 10))``."""

    layer_sizes: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "layer_sizes", tuple(check_layer_sizes(self.layer_sizes)))

    @classmethod
    def of(cls, params: Params, batch_ndim: int = 0) -> "MLP":
        """The MLP whose parameters these are (with ``batch_ndim`` leading model axes)."""
        return cls(tuple(check_params(params, batch_ndim=batch_ndim)))

    @property
    def spec(self) -> PermutationSpec:
        return permutation_spec(len(self.layer_sizes) - 2)

    @property
    def perm_sizes(self) -> tuple[int, ...]:
        return self.layer_sizes[1:-1]

    @property
    def num_params(self) -> int:
        return num_params(self.layer_sizes)

    @property
    def num_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def num_classes(self) -> int:
        return self.layer_sizes[-1]

    @property
    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        out = []
        for layer, (fan_in, fan_out) in enumerate(zip(self.layer_sizes[:-1], self.layer_sizes[1:])):
            out += [(site_name(layer, "weight"), (fan_out, fan_in)), (site_name(layer, "bias"), (fan_out,))]
        return tuple(out)

    def init(self, key: jax.Array, dtype=jnp.float32) -> Params:
        return _init(key, self.layer_sizes, jnp.dtype(dtype))

    def apply(self, params: Params, x: jax.Array, matmul: Callable | None = None) -> jax.Array:
        return apply(params, x, matmul)

    def hidden_activations(self, params: Params, x: jax.Array) -> list[jax.Array]:
        return hidden_activations(params, x)

    def ravel(self, params: Params) -> jax.Array:
        return ravel(params)

    def unravel(self, vector: jax.Array) -> Params:
        return unravel(vector, self.layer_sizes)

    def to_sites(self, params: Params) -> dict[str, jax.Array]:
        z = {}
        for layer, values in enumerate(params):
            z[site_name(layer, "weight")] = values["weight"]
            z[site_name(layer, "bias")] = values["bias"]
        return z

    def from_sites(self, sites: dict[str, jax.Array]) -> Params:
        return [{"weight": sites[site_name(layer, "weight")], "bias": sites[site_name(layer, "bias")]}
                for layer in range(len(self.layer_sizes) - 1)]

    def stored_description(self, arrays: dict) -> str | None:
        # files written before the model seam (compactbnn 0.1 up to the subpackages) held the widths
        if "model" not in arrays and "layer_sizes" in arrays:
            return repr(MLP(tuple(int(s) for s in arrays["layer_sizes"])))
        return super().stored_description(arrays)

    def check(self, params: Params, name: str = "params", batch_ndim: int = 0) -> None:
        sizes = check_params(params, name, batch_ndim)
        if tuple(sizes) != self.layer_sizes:
            raise ValueError(f"{name} has layer sizes {sizes}, the model {list(self.layer_sizes)}")
