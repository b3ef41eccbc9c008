"""The similarity matrices rebasin's assignment problems maximise, in jitted, vmapped JAX for chunks of networks.

- Weight similarity (Git Re-Basin's weight matching), written against the model's permutation
  spec: for permutation p, entry (i, j) sums, over every (layer, name, axis) triple p acts on,
  the products of the reference's parameter and the candidate's (its other axes permuted by the
  other permutations), each with p's axis moved first and the rest flattened (an entry with a
  block size keeps each unit's block with it: a CNN's flattened channels). For an MLP these
  are a hidden unit's incoming weights, its bias and its outgoing weights.
- The authors' ``cosine_first_layer``: the cosine of the weights each permutation takes first
  in its spec (an MLP's incoming weight rows), no bias, no outgoing weights.
- Activation similarity: summed products of the activations each permutation moves
  (``Model.hidden_activations``), streamed over the data in batches. Activations are (..., n_p);
  every leading axis (examples, and positions of a convolution) counts as an example.

``rebasin`` solves the assignment problems; this module only scores.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from compactbnn.models.base import Model, PermutationSpec


def chunks(indices: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """Split network indices into chunks, padding the last by repetition so every chunk has one shape (one compilation)."""
    # Powers of two below chunk_size: few distinct shapes as coordinate descent retires networks.
    size = min(chunk_size, 1 << (len(indices) - 1).bit_length())
    out = []
    for start in range(0, len(indices), size):
        chunk = indices[start: start + size]
        out.append(np.pad(chunk, (0, size - len(chunk)), mode="edge"))
    return out


def check_cosine_model(model: Model, params_ref, batch_ndim: int) -> None:
    """Refuse ``cosine_first_layer`` for a model it is not defined for.

    The authors' cosine compares the rows of the weight each permutation takes first in the spec
    (an MLP's incoming weight): that parameter must be 2-D, taken on axis 0, and its other axis
    permuted by an earlier permutation or none, so that one pass over the permutations in order
    is exact.
    """
    for p, axes in enumerate(model.spec.perm_to_axes):
        layer, name, axis = axes[0][:3]
        ndim = np.ndim(params_ref[layer][name]) - batch_ndim
        others = [q for a, q in model.spec.axes_to_perm[(layer, name)].items() if a != axis]
        if ndim != 2 or axis != 0 or any(q > p for q in others):
            raise ValueError(f"cosine_first_layer needs every permutation to act first on axis 0 of a 2-D weight whose "
                             f"columns an earlier permutation moves (an MLP's incoming weights); {type(model).__name__}'s "
                             f"permutation {p} acts first on axis {axis} of {name!r} of layer {layer!r} ({ndim}-D)")


@partial(jax.jit, static_argnames=("model", "perm", "ref_stacked", "similarity"))
def weight_similarities(model: Model, params_ref, params, indices, perms, *, perm, ref_stacked, similarity):
    """Similarity matrices (chunk, n, n) of permutation ``perm`` for the networks ``indices`` of a stack."""
    take = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[indices], tree)  # noqa: E731
    chunk = take(params)
    ref = take(params_ref) if ref_stacked else params_ref
    fn = partial(layer_similarity, spec=model.spec, perm=perm, similarity=similarity)
    return jax.vmap(fn, in_axes=(0 if ref_stacked else None, 0, 0))(ref, chunk, perms)


def layer_similarity(params_ref, params, perms, *, spec: PermutationSpec, perm: int, similarity: str):
    """(n, n): entry (i, j) scores reference unit i against unit j of ``params`` (other permutations applied)."""
    def permuted_except(layer, name, axis):
        w = params[layer][name]
        for other_axis, p in spec.axes_to_perm[(layer, name)].items():
            if other_axis != axis:
                w = spec.take(w, perms[p], layer, name, other_axis)
        return w

    if similarity == "cosine_first_layer":
        layer, name, axis = spec.perm_to_axes[perm][0][:3]  # 2-D, axis 0: check_cosine_model
        w_ref = params_ref[layer][name]
        w = permuted_except(layer, name, axis)
        w_ref = w_ref / jnp.maximum(jnp.linalg.norm(w_ref, axis=1, keepdims=True), 1e-12)
        w = w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        return w_ref @ w.T
    total = 0.0
    for layer, name, axis, *_ in spec.perm_to_axes[perm]:
        # (n, rest) with p's units as rows; a block-sized entry (flattened channels) groups each unit's block
        w_ref = spec.units_first(params_ref[layer][name], layer, name, axis)
        w = spec.units_first(permuted_except(layer, name, axis), layer, name, axis)
        total = total + w_ref @ w.T
    return total


def activation_similarities(model: Model, params_ref, params, x: np.ndarray, *, ref_stacked, batch_size, chunk_size,
                            progress=False) -> list[np.ndarray]:
    """Per permutation p, (M, n_p, n_p) sums over x of a_ref(x) a_m(x)^T, computed batch by batch."""
    num_models = model.num_stacked(params)
    widths = model.perm_sizes
    parts = chunks(np.arange(num_models), chunk_size)
    # Each chunk's networks (and, for pairs, references) are gathered once, not once per batch.
    gather = lambda tree, idx: jax.tree_util.tree_map(lambda leaf: leaf[jnp.asarray(idx)], tree)  # noqa: E731
    chunk_params = [gather(params, chunk) for chunk in parts]
    chunk_refs = [gather(params_ref, chunk) for chunk in parts] if ref_stacked else None
    sums = [[jnp.zeros((len(chunk), n, n), jnp.float32) for n in widths] for chunk in parts]
    num_points = x.shape[0]
    batch = min(batch_size, num_points)
    starts = range(0, num_points, batch)
    bar = tqdm(starts, desc=progress or "", disable=not progress, leave=False, unit="batch")
    for start in bar:
        xb = x[start: start + batch]
        real = xb.shape[0]
        if real < batch:  # pad so every batch has one shape; padded rows are masked out below
            xb = np.pad(xb, ((0, batch - real),) + ((0, 0),) * (xb.ndim - 1))
        mask = jnp.asarray(np.arange(batch) < real, jnp.float32)
        xb = jnp.asarray(xb)
        ref_acts = None if ref_stacked else _masked_activations(model, params_ref, xb, mask)  # shared by every chunk
        # The previous batch finishes before this one starts: without this wait, JAX's asynchronous
        # dispatch lets the loop run ahead of the computation, and every batch queued holds its
        # inputs and activations, so memory is bounded by the queue, not by one batch.
        jax.block_until_ready(sums)
        for c in range(len(parts)):
            if ref_stacked:
                sums[c] = _accumulate_pairs(model, sums[c], chunk_refs[c], chunk_params[c], xb, mask)
            else:
                sums[c] = _accumulate_shared(model, sums[c], ref_acts, chunk_params[c], xb)
    real_counts = [min(len(chunk), num_models - c * len(parts[0])) for c, chunk in enumerate(parts)]
    return [np.concatenate([np.asarray(sums[c][p])[:real_counts[c]] for c in range(len(parts))])
            for p in range(len(widths))]


def _masked(activations, mask):
    """Zero the padded examples of activations (batch, ..., n) and flatten them to (-1, n): positions count as examples."""
    return [(a * mask.reshape((-1,) + (1,) * (a.ndim - 1))).reshape(-1, a.shape[-1]) for a in activations]


@partial(jax.jit, static_argnums=0)
def _masked_activations(model, params, x, mask):
    return _masked(model.hidden_activations(params, x), mask)


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def _accumulate_shared(model, sums, ref_acts, params, x):
    acts = jax.vmap(model.hidden_activations, in_axes=(0, None))(params, x)
    acts = [a.reshape(a.shape[0], -1, a.shape[-1]) for a in acts]
    # Contracting over the batch gives one large matrix product per permutation for the whole chunk.
    return [s + jnp.einsum("bi,mbj->mij", r, a) for s, r, a in zip(sums, ref_acts, acts)]


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def _accumulate_pairs(model, sums, params_ref, params, x, mask):
    ref_acts = jax.vmap(model.hidden_activations, in_axes=(0, None))(params_ref, x)
    acts = jax.vmap(model.hidden_activations, in_axes=(0, None))(params, x)
    ref_acts = jax.vmap(lambda r: _masked(r, mask))(ref_acts)
    acts = [a.reshape(a.shape[0], -1, a.shape[-1]) for a in acts]
    return [s + jnp.einsum("mbi,mbj->mij", r, a) for s, r, a in zip(sums, ref_acts, acts)]
