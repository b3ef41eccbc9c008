"""Multilayer perceptrons as plain pytrees.

Parameters are a list with one dict per dense layer, ``{"weight": (out, in), "bias": (out,)}``,
in PyTorch's layout, so that the paper's ``W1' = P W1`` permutes rows of a weight and
``W2' = W2 P^-1`` its columns. Hidden layers use ReLU; the last layer gives logits.

``ravel`` flattens to one vector in PyTorch's ``parameters_to_vector`` order: for each layer in
turn, the weight row by row (row-major, ``out x in``), then the bias.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

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
    product of ``compactbnn.mixed_hmc.matmul`` (2-D ``x`` then).
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
    """Number of weights and biases; 407,050 for 784-512-10."""
    sizes = check_layer_sizes(layer_sizes)
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


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
