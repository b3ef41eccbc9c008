"""The model seam: what the rest of the library needs to know of a network, and nothing more.

Permuting, NoT, weight and activation matching, interpolation, the compact representation, the
NumPyro model behind HMC and VI, the ensemble trainer and the metrics are written once against a
``Model``; ``compactbnn.models.mlp.MLP`` is one. A new architecture is a new subclass (its
initialisation, its forward pass, its hidden activations, its parameter order and its
permutation spec) and needs no change anywhere else.

Parameters are a pytree whose top level is a sequence (or mapping) of layers, each a dict of named
arrays; a *stack* of networks has one leading model axis on every leaf. The permutation spec
(Git Re-Basin's design, as data) names, for each permutation, the ``(layer, parameter name,
axis)`` triples it acts on; layers joined by a skip connection share one permutation. A fourth
entry, a block size, says the axis holds each unit's values as a contiguous block: a convolution's
channels flattened in PyTorch's (C, H, W) order reach the first dense layer as H*W columns each.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp

Params = Any  # a pytree: a sequence or mapping of layer dicts {name: array}

# The network's products, given as ``matmul`` by code whose steps run inside a loop body (``lax.scan``,
# ``fori_loop``: training, HMC, SG-MCMC, VI): plain float32 matrix products, with which a convolutional
# model computes its convolutions as matrix products too. XLA on CPUs runs a convolution some 7 times
# slower inside a loop body than those products (``cnn.conv``), and faster outside one, where the
# default (None) keeps it. An MLP computes the same with it as without.
IN_LOOP_MATMUL = jnp.matmul


@dataclass(frozen=True)
class PermutationSpec:
    """Which permutation acts on which axis of which parameter (Git Re-Basin's spec as data).

    ``perm_to_axes[p]`` lists the ``(layer, parameter name, axis)`` triples that permutation p
    acts on, axes counted in one model's (unstacked) parameter. For an MLP, hidden layer l's
    permutation takes the rows of ``params[l]["weight"]`` and ``params[l]["bias"]`` and the
    columns of ``params[l + 1]["weight"]``. An entry may carry a fourth element, a block size b:
    the axis then holds n_p blocks of b consecutive entries, and the permutation moves whole
    blocks (a CNN's first dense weight after flattening (C, H', W'): b = H' * W'). Frozen and
    hashable, so it can be a static argument of jitted functions.
    """

    perm_to_axes: tuple[tuple[tuple, ...], ...]

    def __post_init__(self):
        seen = set()
        for p, axes in enumerate(self.perm_to_axes):
            for entry in axes:
                if not isinstance(entry, tuple) or len(entry) not in (3, 4):
                    raise ValueError(f"permutation {p}: each entry must be (layer, name, axis) or "
                                     f"(layer, name, axis, block), got {entry!r}")
                if len(entry) == 4 and (not isinstance(entry[3], int) or entry[3] < 1):
                    raise ValueError(f"permutation {p}: the block size of {entry!r} must be a positive integer")
                if entry[:3] in seen:
                    raise ValueError(f"permutation {p}: {entry[:3]!r} is already taken by another entry of the spec")
                seen.add(entry[:3])

    @property
    def num_perms(self) -> int:
        return len(self.perm_to_axes)

    @cached_property
    def axes_to_perm(self) -> dict[tuple[Hashable, str], dict[int, int]]:
        """``{(layer, name): {axis: permutation index}}``: the inverse view of ``perm_to_axes``."""
        table: dict[tuple[Hashable, str], dict[int, int]] = {}
        for p, axes in enumerate(self.perm_to_axes):
            for layer, name, axis, *_ in axes:
                table.setdefault((layer, name), {})[axis] = p
        return table

    @cached_property
    def blocks(self) -> dict[tuple[Hashable, str, int], int]:
        """``{(layer, name, axis): block size}`` of the entries that have one (the rest move single entries)."""
        return {entry[:3]: entry[3] for axes in self.perm_to_axes for entry in axes if len(entry) == 4}

    def take(self, array: jax.Array, perm: jax.Array, layer: Hashable, name: str, axis: int) -> jax.Array:
        """``array`` (one model's parameter ``(layer, name)``) with its ``axis`` permuted by ``perm``, block-wise where the spec says so."""
        block = self.blocks.get((layer, name, axis), 1)
        if block == 1:
            return jnp.take(array, perm, axis=axis)
        shape = array.shape
        split = array.reshape(shape[:axis] + (shape[axis] // block, block) + shape[axis + 1:])
        return jnp.take(split, perm, axis=axis).reshape(shape)

    def units_first(self, array: jax.Array, layer: Hashable, name: str, axis: int) -> jax.Array:
        """(n_p, rest): ``array``'s values grouped by the unit of ``axis`` they belong to, unit first (weight matching's rows)."""
        block = self.blocks.get((layer, name, axis), 1)
        if block != 1:
            shape = array.shape
            array = array.reshape(shape[:axis] + (shape[axis] // block, block) + shape[axis + 1:])
        moved = jnp.moveaxis(array, axis, 0)
        return moved.reshape(moved.shape[0], -1)


class Model(abc.ABC):
    """A network as the library sees it: a frozen, hashable description (a static argument of jit).

    Subclasses are frozen dataclasses of their hyperparameters (e.g. ``MLP(layer_sizes)``).
    """

    # --- what the network is -------------------------------------------------------------

    @property
    @abc.abstractmethod
    def spec(self) -> PermutationSpec:
        """The permutation spec: which permutation acts on which parameter axis."""

    @property
    @abc.abstractmethod
    def perm_sizes(self) -> tuple[int, ...]:
        """The number of units (or channels) each permutation of the spec acts on."""

    @property
    @abc.abstractmethod
    def num_params(self) -> int:
        """The number of weights and biases."""

    @property
    @abc.abstractmethod
    def num_features(self) -> int:
        """The number of input values per example (the last axis of x)."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """The number of logits per example."""

    @property
    @abc.abstractmethod
    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, shape)`` of every parameter in PyTorch's ``parameters()`` order: NumPyro's sample sites."""

    # --- what it does --------------------------------------------------------------------

    @abc.abstractmethod
    def init(self, key: jax.Array, dtype=jnp.float32) -> Params:
        """One network initialised as PyTorch initialises it (the paper's convention)."""

    def init_many(self, key: jax.Array, num_models: int, dtype=jnp.float32) -> Params:
        """``num_models`` independent initialisations stacked along a leading model axis."""
        return jax.vmap(lambda k: self.init(k, dtype))(jax.random.split(key, num_models))

    @abc.abstractmethod
    def apply(self, params: Params, x: jax.Array, matmul: Callable | None = None) -> jax.Array:
        """Logits (..., num_classes) of inputs x (..., num_features); ``matmul(a, b)`` replaces ``a @ b``."""

    @abc.abstractmethod
    def hidden_activations(self, params: Params, x: jax.Array) -> list[jax.Array]:
        """One array per permutation of the spec, (..., perm_sizes[p]): the units that permutation moves.

        Leading axes are examples (and, for a convolution, positions): activation matching sums
        products over all of them.
        """

    @abc.abstractmethod
    def ravel(self, params: Params) -> jax.Array:
        """One vector (..., num_params) in PyTorch's ``parameters_to_vector`` order; leading model axes kept."""

    @abc.abstractmethod
    def unravel(self, vector: jax.Array) -> Params:
        """The inverse of ``ravel``; leading model axes kept."""

    @abc.abstractmethod
    def to_sites(self, params: Params) -> dict[str, jax.Array]:
        """``{site name: array}`` of one network (or a stack): the names of ``sites``."""

    @abc.abstractmethod
    def from_sites(self, sites: dict[str, jax.Array]) -> Params:
        """The parameter pytree from ``{site name: array}`` (the inverse of ``to_sites``)."""

    @abc.abstractmethod
    def check(self, params: Params, name: str = "params", batch_ndim: int = 0) -> None:
        """Raise ``TypeError``/``ValueError`` naming ``name`` unless params fit this model (with ``batch_ndim`` model axes)."""

    # --- conveniences every model shares ---------------------------------------------------

    def stored_description(self, arrays: dict) -> str | None:
        """How an npz of saved networks names its model: ``repr(model)`` under "model" (``compactbnn.io``).

        A model whose files an earlier version described otherwise overrides this to read them
        (the MLP: "layer_sizes"), so that finished results stay readable.
        """
        return str(arrays["model"]) if "model" in arrays else None


    def stack_one(self, params: Params) -> Params:
        """One network as a stack of one: every leaf gets a leading model axis of size 1."""
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf)[None], params)

    def num_stacked(self, params: Params) -> int:
        """The number of networks in a stack (the leading axis of every leaf)."""
        return int(jnp.shape(jax.tree_util.tree_leaves(params)[0])[0])
