"""Permutations of hidden units: the number of transpositions, controlled random permutations, permuting networks.

Convention (shared by the whole package): a permutation of n hidden units is an int32 array
``perm`` of length n, and permuting takes rows, *new unit i = old unit perm[i]*. As a matrix,
``P[i, perm[i]] = 1``, so ``P W1 = W1[perm]``, ``P b1 = b1[perm]`` and ``W2 P^-1 = W2[:, perm]``:
the network's function is unchanged (PAPER.md, idea 1). A network takes a list ``perms`` with
one permutation per permutation of its model's spec (``Model.spec``): an MLP with L hidden
layers takes L, one per hidden layer.

The number of transpositions NoT(P) (PAPER.md, idea 2) is the fewest pair swaps composing to
P, i.e. ``n - (number of cycles of P)``.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models.base import Model, Params, PermutationSpec

# ---------------------------------------------------------------------------------------------
# Permutations as index arrays


def identity(n: int) -> jax.Array:
    """The identity permutation of n units (NoT 0): ``arange(n)`` as int32."""
    return jnp.arange(_check_size(n), dtype=jnp.int32)


def check_permutation(perm, n: int | None = None, name: str = "perm") -> np.ndarray:
    """Return ``perm`` as an int32 numpy array after checking it is a permutation of 0..n-1.

    Accepts one permutation (n,) or a stack (..., n), each row checked. ``n``, if given, is the
    required length. Raises ``TypeError`` for non-integer arrays and ``ValueError`` for a wrong
    shape, a wrong length, out-of-range or repeated entries. Traced (jitted) values cannot be
    checked; pass concrete arrays.
    """
    if isinstance(perm, jax.core.Tracer):
        raise TypeError(f"{name} is a traced JAX value; check_permutation needs a concrete array")
    arr = np.asarray(perm)
    if arr.ndim < 1:
        raise ValueError(f"{name} must be an array of indices of shape (n,) or (..., n), got a scalar")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    size = arr.shape[-1]
    if n is not None and size != n:
        raise ValueError(f"{name} has length {size}, expected {n}")
    if size == 0:
        raise ValueError(f"{name} is empty; a permutation needs at least one element")
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        bad = arr[(arr < 0) | (arr >= size)].ravel()[0]
        raise ValueError(f"{name} is not a permutation: entry {bad} lies outside 0..{size - 1}")
    rows = arr.reshape(-1, size)
    ok = np.all(np.sort(rows, axis=-1) == np.arange(size), axis=-1)
    if not np.all(ok):
        row = rows[np.flatnonzero(~ok)[0]]
        values, counts = np.unique(row, return_counts=True)
        raise ValueError(f"{name} is not a permutation: entry {values[counts > 1][0]} occurs {counts.max()} times")
    return arr.astype(np.int32)


def compose(p, q) -> jax.Array:
    """``p o q``: ``compose(p, q)[i] = p[q[i]]`` (batched over leading axes).

    Permuting by p and then by q equals permuting once by ``compose(p, q)``:
    ``permute(permute(params, p), q) == permute(params, compose(p, q))`` (as matrices, Q P).
    """
    p, q = jnp.asarray(p), jnp.asarray(q)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"cannot compose permutations of {p.shape[-1]} and {q.shape[-1]} elements")
    p, q = jnp.broadcast_arrays(p, q)
    return jnp.take_along_axis(p, q, axis=-1).astype(jnp.int32)


def inverse(p) -> jax.Array:
    """The inverse permutation (P^-1 = P^T), batched over leading axes: ``compose(p, inverse(p))`` is the identity."""
    return jnp.argsort(jnp.asarray(p), axis=-1).astype(jnp.int32)


def count_transpositions(perm) -> int:
    """NoT(P): ``n`` minus the number of cycles of one permutation (n,).

    Each cycle of length c needs c - 1 swaps, so NoT ranges from 0 (identity) to n - 1 (one
    n-cycle). PAPER.md's example 1->4, 2->1, 3->5, 4->2, 5->3, i.e. ``[3, 0, 4, 1, 2]``, is
    (1 4 2)(3 5) with NoT 3.
    """
    perm = check_permutation(perm)
    if perm.ndim != 1:
        raise ValueError(f"count_transpositions takes one permutation (n,), got shape {perm.shape}; "
                         "use count_transpositions_many for stacks")
    n = perm.shape[0]
    seen = np.zeros(n, dtype=bool)
    cycles = 0
    for start in range(n):
        if seen[start]:
            continue
        cycles += 1
        j = start
        while not seen[j]:
            seen[j] = True
            j = perm[j]
    return int(n - cycles)


def count_transpositions_many(perms) -> jax.Array:
    """NoT of every permutation in a stack (..., n) -> (...) int32, in JAX (jittable, vmappable).

    Concrete inputs are checked with ``check_permutation``; traced inputs are trusted.
    """
    if not isinstance(perms, jax.core.Tracer):
        perms = check_permutation(perms, name="perms")
    return _count_transpositions_many(jnp.asarray(perms, jnp.int32))


@jax.jit
def _count_transpositions_many(perms: jax.Array) -> jax.Array:
    # Pointer doubling: after t rounds, smallest[i] is the minimum of i, p(i), ..., p^(2^t - 1)(i)
    # and jump = p^(2^t). Once 2^t >= n that is the minimum of i's whole cycle, and every cycle
    # has exactly one element equal to its cycle's minimum. O(n log n), no data-dependent loop.
    n = perms.shape[-1]
    positions = jnp.arange(n, dtype=jnp.int32)
    smallest = jnp.broadcast_to(positions, perms.shape)
    jump = perms
    for _ in range((n - 1).bit_length()):
        smallest = jnp.minimum(smallest, jnp.take_along_axis(smallest, jump, axis=-1))
        jump = jnp.take_along_axis(jump, jump, axis=-1)
    cycles = jnp.sum(smallest == positions, axis=-1)
    return (n - cycles).astype(jnp.int32)


def permutation_with_transpositions(key: jax.Array, n: int, k) -> jax.Array:
    """A random permutation of n elements with exactly k transpositions (NoT(P) = k), int32 (n,).

    The authors' generator (PAPER.md, Experiment A): n - k cycles of size one, the k remaining
    elements added one by one to uniformly chosen cycles, the cycles filled with elements drawn
    without replacement, each cycle rotated. Vectorised: position j < n - k opens cycle j, every
    later position joins a cycle drawn uniformly; sorting these labels groups each cycle's
    positions, a random shuffle of 0..n-1 fills the positions, and each element maps to the next
    one of its cycle.

    ``n`` is static; ``key`` and ``k`` may be traced, so ``jax.vmap`` over keys and levels draws
    all of Experiment A's permutations in one call (see ``permutations_with_transpositions``).
    A concrete k outside 0..n-1 raises ``ValueError``; a traced k is trusted.
    """
    n = _check_size(n)
    if not isinstance(k, jax.core.Tracer):
        k = _check_level(k, n)
    return _permutation_with_transpositions(key, n, k)


def permutations_with_transpositions(keys: jax.Array, n: int, ks) -> jax.Array:
    """``permutation_with_transpositions`` for many (key, k) pairs at once: keys (M,), ks (M,) -> (M, n).

    E.g. Experiment A's 5 runs x 50 NoT levels in one call. Every k is checked.
    """
    n = _check_size(n)
    ks_arr = np.asarray(ks)
    if ks_arr.ndim != 1 or not np.issubdtype(ks_arr.dtype, np.integer):
        raise ValueError(f"ks must be a 1-D array of integers, got shape {ks_arr.shape} and dtype {ks_arr.dtype}")
    for k in ks_arr:
        _check_level(k, n)
    keys = jnp.asarray(keys)
    num_keys = keys.shape[0] if keys.ndim else 0
    if num_keys != ks_arr.shape[0]:
        raise ValueError(f"got {num_keys} keys for {ks_arr.shape[0]} levels k; pass one key per k")
    return jax.vmap(_permutation_with_transpositions, in_axes=(0, None, 0))(keys, n, jnp.asarray(ks_arr, jnp.int32))


@partial(jax.jit, static_argnums=1)
def _permutation_with_transpositions(key, n, k):
    cycle_key, element_key = jax.random.split(key)
    num_cycles = n - k
    positions = jnp.arange(n, dtype=jnp.int32)
    joined = jax.random.randint(cycle_key, (n,), 0, num_cycles, dtype=jnp.int32)
    labels = jnp.sort(jnp.where(positions < num_cycles, positions, joined))
    # After sorting, each cycle's positions are contiguous: [first[j], last]; the successor of
    # position j is j + 1 inside the run and the run's first position at its end.
    first = jnp.searchsorted(labels, labels, side="left").astype(jnp.int32)
    same_as_next = jnp.concatenate([labels[1:] == labels[:-1], jnp.zeros((1,), bool)])
    successor = jnp.where(same_as_next, positions + 1, first)
    elements = jax.random.permutation(element_key, n).astype(jnp.int32)
    return jnp.zeros(n, jnp.int32).at[elements].set(elements[successor])


def _check_size(n) -> int:
    try:
        size = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer, got {n!r}") from None
    if size < 1:
        raise ValueError(f"n must be a positive number of elements, got {size}")
    return size


def _check_level(k, n: int) -> int:
    try:
        level = operator.index(np.asarray(k).item()) if np.ndim(k) == 0 else None
    except TypeError:
        level = None
    if level is None:
        raise ValueError(f"k must be an integer number of transpositions, got {k!r}")
    if not 0 <= level <= n - 1:
        raise ValueError(f"k = {level} transpositions is impossible for n = {n} elements: k must lie in 0..{n - 1}")
    return level


# ---------------------------------------------------------------------------------------------
# Permuting parameters by the model's permutation spec


def check_perms(model: Model, perms, params, name: str = "perms", batch_shape: tuple = ()) -> list:
    """Check that ``params`` fit ``model`` and ``perms`` has one permutation per permutation of its spec.

    Each permutation p must have ``model.perm_sizes[p]`` entries (an MLP: one per hidden layer).
    ``batch_shape``: leading axes of every permutation (stacked perms for stacked params).
    Concrete values are checked to be permutations; traced ones only by shape.
    """
    model.check(params, batch_ndim=len(batch_shape))
    sizes = model.perm_sizes
    if not isinstance(perms, (list, tuple)):
        raise TypeError(f"{name} must be a list with one permutation per permutation of the model's spec "
                        f"(an MLP: per hidden layer), got {type(perms).__name__}")
    if len(perms) != len(sizes):
        raise ValueError(f"{name} has {len(perms)} permutations but the model's spec has {len(sizes)} "
                         "(an MLP: one per hidden layer)")
    out = []
    for p, (perm, width) in enumerate(zip(perms, sizes)):
        expected = tuple(batch_shape) + (width,)
        if np.shape(perm) != expected:
            raise ValueError(f"{name}[{p}] has shape {np.shape(perm)}, the spec's permutation {p} needs {expected}")
        if isinstance(perm, jax.core.Tracer):
            out.append(perm)
        else:
            out.append(check_permutation(perm, width, name=f"{name}[{p}]"))
    return out


def permute(model: Model, params: Params, perms: Sequence) -> Params:
    """Permute the hidden units of one network: an MLP's ``W_l' = P_l W_l P_{l-1}^-1``, ``b_l' = P_l b_l``.

    params: one network of ``model`` (no model axis); perms: one permutation per permutation of
    ``model.spec``, each taking its (layer, name, axis) triples. Pure jnp, so it runs under
    ``jax.jit`` and ``jax.vmap`` (stacked params with stacked perms; see ``permute_many``). The
    logits are unchanged. Works on any pytree shaped like the parameters, e.g. a Gaussian
    posterior's mean and sd (``permute_gaussian``).
    """
    perms = check_perms(model, perms, params)
    return _apply_spec(params, perms, model.spec)


def permute_many(model: Model, params: Params, perms: Sequence) -> Params:
    """``permute`` for a stack of networks (leading model axis M), each with its own perms (M, n_p)."""
    model.check(params, batch_ndim=1)
    perms = check_perms(model, perms, params, batch_shape=(model.num_stacked(params),))
    spec = model.spec
    return jax.vmap(lambda p, q: _apply_spec(p, q, spec))(params, [jnp.asarray(q) for q in perms])


def permute_gaussian(model: Model, mu: Params, sigma: Params, perms: Sequence) -> tuple[Params, Params]:
    """Permute a mean-field Gaussian posterior N(mu, diag(sigma^2)): mean and sd move together."""
    model.check(mu, "mu")
    model.check(sigma, "sigma")
    return permute(model, mu, perms), permute(model, sigma, perms)


def _apply_spec(params, perms, spec: PermutationSpec):
    # A shallow copy of the top level and of every layer dict: the caller's pytree is left as it is.
    if isinstance(params, Mapping):
        out = {layer: dict(values) for layer, values in params.items()}
    else:
        out = [dict(values) for values in params]
    for p, axes in enumerate(spec.perm_to_axes):
        for layer, name, axis, *_ in axes:
            # block-wise where the spec gives a block size (a CNN's flattened channels), else jnp.take
            out[layer][name] = spec.take(out[layer][name], jnp.asarray(perms[p]), layer, name, axis)
    return out


def total_transpositions(perms: Sequence) -> int:
    """NoT of a network's permutations summed over its hidden layers (the permutations of its spec)."""
    return int(sum(count_transpositions(p) for p in perms))
