"""Rebasin: the permutation of hidden units that best aligns a network to a reference (PAPER.md, idea 3).

Three ways to score how well unit j of a network matches unit i of the reference; each gives a
similarity matrix per hidden layer and a linear assignment problem (LAP) solved with
``scipy.optimize.linear_sum_assignment(maximize=True)``:

- ``"weight"`` (Git Re-Basin's weight matching): the summed products of all weights touching
  the unit, i.e. its incoming weights, its bias and its outgoing weights, with the other layers'
  permutations applied. With several hidden layers the layers depend on each other, so the LAPs
  are solved by coordinate descent over the layers in random order until a full sweep improves
  nothing; with one hidden layer a single LAP is exact.
- ``"cosine_first_layer"`` (the authors' code): cosine similarity of the units' incoming weight
  rows only (no bias, no outgoing weights); layers solved once, in order.
- ``"activation"`` (activation matching, the authors' choice for Experiment A): the summed
  products of post-ReLU activations over a data set, streamed in batches. The activations of a
  network do not depend on how its units are ordered, so every layer is one independent LAP.

Everything works on many networks at once: ``align_many`` aligns a stack (leading model axis
M) to one reference, ``match_pairs`` aligns each network to its own reference, ``align_draws``
gives one joint permutation to draws of one stochastic network (VI's q). Similarity
matrices are computed in jitted, vmapped JAX for chunks of networks, and the LAPs of a chunk are
solved in a thread pool (SciPy releases the GIL) while JAX computes the next chunk.

Permutations follow ``compactbnn.symmetry.permutation``: ``permute(params, perms)`` is aligned to the
reference, i.e. its unit i is matched to the reference's unit i.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from compactbnn.models import mlp
from compactbnn import threads
from compactbnn.symmetry.permutation import check_params, mlp_permutation_spec, permute, permute_many

METHODS = ("weight", "activation", "cosine_first_layer")
WEIGHT_SIMILARITIES = ("weight", "cosine_first_layer")
DEFAULT_CHUNK_SIZE = 32  # networks per jitted similarity computation
DEFAULT_BATCH_SIZE = 1000  # data points per activation batch
DEFAULT_MAX_SWEEPS = 100
# A coordinate-descent step counts as progress only if it raises the objective by more than this
# fraction of its size: float noise in the similarity must not keep the descent going.
RELATIVE_TOLERANCE = 1e-10


# ---------------------------------------------------------------------------------------------
# Public API


def weight_matching(params_ref: mlp.Params, params: mlp.Params, *, key: jax.Array | None = None,
                    max_sweeps: int = DEFAULT_MAX_SWEEPS, similarity: str = "weight",
                    workers: int | None = None) -> list[np.ndarray]:
    """Perms (one (n_l,) int32 array per hidden layer) aligning ``params`` to ``params_ref`` by their weights.

    ``permute(params, perms)`` is aligned to ``params_ref``. ``similarity="weight"`` is Git
    Re-Basin's weight matching (coordinate descent in random layer order, drawn from ``key``,
    default ``PRNGKey(0)``, until a full sweep improves nothing or ``max_sweeps``); one hidden
    layer needs exactly one LAP. ``similarity="cosine_first_layer"`` is the authors' variant.
    """
    if similarity not in WEIGHT_SIMILARITIES:
        raise ValueError(f"similarity must be one of {WEIGHT_SIMILARITIES}, got {similarity!r}")
    stacked = _stack_one(params)
    perms = align_many(params_ref, stacked, method=similarity, key=key, max_sweeps=max_sweeps, workers=workers)
    return [p[0] for p in perms]


def activation_matching(params_ref: mlp.Params, params: mlp.Params, x, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        workers: int | None = None) -> list[np.ndarray]:
    """Perms aligning ``params`` to ``params_ref`` by maximising summed products of post-ReLU activations.

    x: inputs (N, D), processed ``batch_size`` rows at a time, so only (batch, width)
    activations exist at once. Each hidden layer l: ``C = sum_x a_ref(x) a(x)^T`` (n_l, n_l),
    one LAP. Units inactive on every input have zero rows and are matched arbitrarily.
    """
    stacked = _stack_one(params)
    perms = align_many(params_ref, stacked, method="activation", x=x, batch_size=batch_size, workers=workers)
    return [p[0] for p in perms]


def align_many(params_ref: mlp.Params, params_stacked: mlp.Params, *, method: str = "weight", x=None,
               key: jax.Array | None = None, max_sweeps: int = DEFAULT_MAX_SWEEPS,
               batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int | None = None,
               workers: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """Align every network of a stack (leading axis M) to one reference: a list of (M, n_l) int32 arrays.

    Row m of each array is network m's permutation (``permute_many(params_stacked, perms)``
    gives the aligned stack). ``method``: "weight", "cosine_first_layer" or "activation" (needs
    inputs ``x`` (N, D); the reference's activations are computed once per data batch).
    ``key`` orders the coordinate descent of multi-layer weight matching (the same order for
    every network, so each result equals ``weight_matching`` with that key). ``chunk_size``
    networks share one similarity computation; ``workers`` threads solve LAPs (default: CPU count).
    """
    sizes = _check_pair(params_ref, params_stacked, ref_stacked=False)
    return _align(params_ref, params_stacked, sizes, ref_stacked=False, method=method, x=x, key=key,
                  max_sweeps=max_sweeps, batch_size=batch_size, chunk_size=chunk_size, workers=workers,
                  progress=progress)


def match_pairs(params_ref_stacked: mlp.Params, params_stacked: mlp.Params, *, method: str = "weight", x=None,
                key: jax.Array | None = None, max_sweeps: int = DEFAULT_MAX_SWEEPS,
                batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int | None = None,
                workers: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """Align network m of ``params_stacked`` to network m of ``params_ref_stacked``, for all m at once.

    Returns (M, n_l) int32 arrays per hidden layer (Experiment A: every NoT level and run is a
    pair). Same methods and options as ``align_many``.
    """
    sizes = _check_pair(params_ref_stacked, params_stacked, ref_stacked=True)
    return _align(params_ref_stacked, params_stacked, sizes, ref_stacked=True, method=method, x=x, key=key,
                  max_sweeps=max_sweeps, batch_size=batch_size, chunk_size=chunk_size, workers=workers,
                  progress=progress)


def align_draws(params_ref: mlp.Params, draws: mlp.Params, x, *, batch_size: int = DEFAULT_BATCH_SIZE,
                chunk_size: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """One permutation per hidden layer that aligns a whole stack of draws jointly, by activation matching.

    The draws (leading axis K) are networks sampled from one stochastic network, e.g. a mean-field
    Gaussian q: they share their unit order, so they get one permutation. Per hidden layer it
    maximises ``sum_k sum_x a_ref(x) a_k(x)^T``, which equals K times the similarity to the draws'
    mean activation ``(1/K) sum_k a_k(x)``: the authors' alignment of VI (rebasin.py
    ``vi_net_matching``, activations averaged over 10 sampled networks). Returns (n_l,) int32 arrays.
    """
    sizes = _check_pair(params_ref, draws, ref_stacked=False)
    x = _check_inputs(x, sizes[0])
    costs = _activation_similarities(_to_jax(params_ref), _to_jax(draws), x, ref_stacked=False, batch_size=batch_size,
                                     chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size),
                                     progress=progress)
    return [_solve_laps(c.sum(axis=0, dtype=np.float64)[None], None)[0][0] for c in costs]


def align_to_mean(params_stacked: mlp.Params, *, method: str = "weight", x=None, max_rounds: int = 10,
                  reference: mlp.Params | None = None, key: jax.Array | None = None,
                  **options) -> tuple[mlp.Params, list[np.ndarray]]:
    """Align a stack of networks to their own running mean; returns (mean of the aligned stack, perms (M, n_l)).

    Round 1 aligns every network to ``reference`` (default: the stack's first network, the
    authors' choice); every later round aligns the original networks to the mean of the
    previous round's aligned stack. Stops when no permutation changes or after ``max_rounds``.
    ``options`` are passed to ``align_many``.
    """
    check_params(params_stacked, "params_stacked", batch_ndim=1)
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    params_stacked = _to_jax(params_stacked)
    ref = jax.tree_util.tree_map(lambda leaf: leaf[0], params_stacked) if reference is None else reference
    key = jax.random.key(0) if key is None else key
    perms = None
    for round_index in range(max_rounds):
        new = align_many(ref, params_stacked, method=method, x=x, key=jax.random.fold_in(key, round_index), **options)
        converged = perms is not None and all(np.array_equal(a, b) for a, b in zip(perms, new))
        perms = new
        ref = jax.tree_util.tree_map(lambda leaf: jnp.mean(leaf, axis=0), permute_many(params_stacked, perms))
        if converged:
            break
    return ref, perms


def rebasin(params_ref: mlp.Params, params: mlp.Params, *, method: str = "weight", x=None,
            key: jax.Array | None = None, **options) -> tuple[mlp.Params, list[np.ndarray]]:
    """Align one network to a reference: returns (``permute(params, perms)``, perms)."""
    stacked = _stack_one(params)
    perms = [p[0] for p in align_many(params_ref, stacked, method=method, x=x, key=key, **options)]
    return permute(params, perms), perms


def activation_similarity(params_ref: mlp.Params, params: mlp.Params, x, *,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
    """Per hidden layer, ``sum_x a_ref(x) a(x)^T`` (n_l, n_l): the matrix activation matching maximises over."""
    stacked = _stack_one(params)
    sizes = _check_pair(params_ref, stacked, ref_stacked=False)
    x = _check_inputs(x, sizes[0])
    costs = _activation_similarities(_to_jax(params_ref), _to_jax(stacked), x, ref_stacked=False,
                                     batch_size=batch_size, chunk_size=1)
    return [c[0] for c in costs]


def weight_similarity(params_ref: mlp.Params, params: mlp.Params, perms, layer: int, *,
                      similarity: str = "weight") -> jax.Array:
    """The (n_l, n_l) matrix weight matching maximises for hidden layer ``layer``.

    Entry (i, j) scores reference unit i against unit j of ``params`` with the other layers'
    permutations ``perms`` applied (``perms[layer]`` itself is ignored). "weight": summed
    products of incoming weights, bias and outgoing weights; "cosine_first_layer": cosine of
    the incoming weight rows.
    """
    if similarity not in WEIGHT_SIMILARITIES:
        raise ValueError(f"similarity must be one of {WEIGHT_SIMILARITIES}, got {similarity!r}")
    sizes = _check_pair(params_ref, _stack_one(params), ref_stacked=False)
    if not 0 <= layer < len(sizes) - 2:
        raise ValueError(f"layer must index one of the {len(sizes) - 2} hidden layers, got {layer}")
    spec = mlp_permutation_spec(len(sizes) - 2)
    return _layer_similarity(_to_jax(params_ref), _to_jax(params), [jnp.asarray(p) for p in perms], spec=spec,
                             layer=layer, similarity=similarity)


# ---------------------------------------------------------------------------------------------
# Checks


def _stack_one(params):
    check_params(params, "params")
    return mlp.stack_one(params)


def _to_jax(params):
    return jax.tree_util.tree_map(jnp.asarray, params)


def _check_pair(params_ref, params_stacked, ref_stacked: bool) -> list[int]:
    ref_name = "params_ref_stacked" if ref_stacked else "params_ref"
    ref_sizes = check_params(params_ref, ref_name, batch_ndim=int(ref_stacked))
    sizes = check_params(params_stacked, "params_stacked", batch_ndim=1)
    if len(ref_sizes) != len(sizes):
        raise ValueError(f"{ref_name} has {len(ref_sizes) - 2} hidden layers but the networks have {len(sizes) - 2}")
    if ref_sizes != sizes:
        raise ValueError(f"{ref_name} has layer sizes {ref_sizes} but the networks have {sizes}")
    if len(sizes) < 3:
        raise ValueError(f"networks without hidden layers (layer sizes {sizes}) have nothing to permute")
    if ref_stacked:
        m_ref, m = np.shape(params_ref[0]["bias"])[0], np.shape(params_stacked[0]["bias"])[0]
        if m_ref != m:
            raise ValueError(f"{ref_name} holds {m_ref} networks but params_stacked holds {m}; pairs need equal counts")
    return sizes


def _check_inputs(x, num_features: int) -> np.ndarray:
    if x is None:
        raise ValueError("activation matching needs inputs x (N, D); got x=None")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, D) array, got shape {x.shape}")
    if x.shape[1] != num_features:
        raise ValueError(f"x has {x.shape[1]} features but the networks take {num_features} inputs")
    return x


# ---------------------------------------------------------------------------------------------
# Driver


def _align(params_ref, params, sizes, *, ref_stacked, method, x, key, max_sweeps, batch_size, chunk_size, workers,
           progress):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    workers = _usable_cpus() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if method == "activation":
        x = _check_inputs(x, sizes[0])
    key = jax.random.key(0) if key is None else key
    params_ref, params = _to_jax(params_ref), _to_jax(params)
    num_models = params[0]["bias"].shape[0]
    label = progress if isinstance(progress, str) else f"aligning {num_models} networks ({method})"
    pool = ThreadPoolExecutor(workers) if workers > 1 else nullcontext()
    with pool as executor:
        if method == "activation":
            costs = _activation_similarities(params_ref, params, x, ref_stacked=ref_stacked, batch_size=batch_size,
                                             chunk_size=chunk_size, progress=progress and label)
            return [_solve_laps(c, executor)[0] for c in costs]
        return _weight_align(params_ref, params, sizes, ref_stacked, method, key, max_sweeps, chunk_size, executor,
                             progress and label)


def _usable_cpus() -> int:
    # The CPUs this process may run on, not the node's (a SLURM job given one CPU must not start a
    # thread per core of its node), and at most a job's threads (threads.limit).
    return threads.usable_cpus()


def _solve_laps(costs: np.ndarray, executor) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-weight assignment of each (n, n) matrix of a stack: perms (B, n) int32 and their scores (B,)."""
    def one(cost):
        rows, cols = linear_sum_assignment(cost, maximize=True)
        # Square matrices: rows is arange(n), so cols[i] is the unit matched to reference unit i.
        return cols.astype(np.int32), float(np.sum(cost[rows, cols], dtype=np.float64))
    results = list(executor.map(one, costs)) if executor is not None else [one(c) for c in costs]
    if not results:
        return np.zeros((0, costs.shape[-1]), np.int32), np.zeros(0)
    return np.stack([r[0] for r in results]), np.array([r[1] for r in results])


def _chunks(indices: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """Split network indices into chunks, padding the last by repetition so every chunk has one shape (one compilation)."""
    # Powers of two below chunk_size: few distinct shapes as coordinate descent retires networks.
    size = min(chunk_size, 1 << (len(indices) - 1).bit_length())
    out = []
    for start in range(0, len(indices), size):
        chunk = indices[start: start + size]
        out.append(np.pad(chunk, (0, size - len(chunk)), mode="edge"))
    return out


def _weight_align(params_ref, params, sizes, ref_stacked, similarity, key, max_sweeps, chunk_size, executor, progress):
    num_models = params[0]["bias"].shape[0]
    num_hidden = len(sizes) - 2
    perms = [np.tile(np.arange(n, dtype=np.int32), (num_models, 1)) for n in sizes[1:-1]]
    bar = tqdm(total=num_models, desc=progress or "", disable=not progress, leave=False, unit="net")

    def assign(layer, indices):
        """Solve layer's LAP for networks ``indices`` with the current perms; returns new perms and objective gains."""
        new = np.empty((len(indices), sizes[layer + 1]), np.int32)
        gain = np.empty(len(indices))
        before = np.empty(len(indices))
        chunks = _chunks(indices, chunk_size)
        compute = lambda chunk: _weight_similarities(  # noqa: E731
            params_ref, params, jnp.asarray(chunk), [jnp.asarray(p[chunk]) for p in perms],
            layer=layer, num_hidden=num_hidden, ref_stacked=ref_stacked, similarity=similarity)
        done = 0
        # Dispatch chunk c + 1 to JAX (asynchronous) before solving chunk c's LAPs, so both overlap.
        pending = compute(chunks[0])
        for c in range(len(chunks)):
            current = pending
            if c + 1 < len(chunks):
                pending = compute(chunks[c + 1])
            real = min(len(chunks[c]), len(indices) - done)
            costs = np.asarray(current)[:real]
            found, score = _solve_laps(costs, executor)
            old = perms[layer][indices[done: done + real]]
            old_score = np.take_along_axis(costs, old[:, :, None], axis=2)[:, :, 0].sum(axis=1, dtype=np.float64)
            new[done: done + real] = found
            gain[done: done + real] = score - old_score
            before[done: done + real] = old_score
            done += real
            if num_hidden == 1 or similarity == "cosine_first_layer":
                bar.update(real)
        return new, gain, before

    if num_hidden == 1 or similarity == "cosine_first_layer":
        # One hidden layer: nothing else moves, one LAP is optimal. Cosine of incoming rows: layer l
        # depends only on layer l - 1, so one pass in order is exact.
        everyone = np.arange(num_models)
        for layer in range(num_hidden):
            perms[layer][:] = assign(layer, everyone)[0]
        bar.close()
        return perms

    active = np.arange(num_models)
    for sweep in range(max_sweeps):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, sweep), num_hidden))
        improved = np.zeros(len(active), bool)
        for layer in order:
            new, gain, before = assign(int(layer), active)
            better = gain > RELATIVE_TOLERANCE * np.maximum(1.0, np.abs(before))
            perms[layer][active[better]] = new[better]
            improved |= better
        bar.update(int(np.sum(~improved)))
        active = active[improved]
        if active.size == 0:
            break
    bar.close()
    return perms


@partial(jax.jit, static_argnames=("layer", "num_hidden", "ref_stacked", "similarity"))
def _weight_similarities(params_ref, params, indices, perms, *, layer, num_hidden, ref_stacked, similarity):
    """Similarity matrices (chunk, n, n) of hidden layer ``layer`` for the networks ``indices``."""
    spec = mlp_permutation_spec(num_hidden)
    take = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[indices], tree)  # noqa: E731
    chunk = take(params)
    ref = take(params_ref) if ref_stacked else params_ref
    fn = partial(_layer_similarity, spec=spec, layer=layer, similarity=similarity)
    return jax.vmap(fn, in_axes=(0 if ref_stacked else None, 0, 0))(ref, chunk, perms)


def _layer_similarity(params_ref, params, perms, *, spec, layer, similarity):
    """(n, n): entry (i, j) scores reference unit i against unit j of ``params`` (other layers' perms applied)."""
    def permuted_except(layer_index, name, axis):
        w = params[layer_index][name]
        for other_axis, p in spec.axes_to_perm[(layer_index, name)].items():
            if other_axis != axis:
                w = jnp.take(w, perms[p], axis=other_axis)
        return w

    if similarity == "cosine_first_layer":
        w_ref = params_ref[layer]["weight"]
        w = permuted_except(layer, "weight", 0)
        w_ref = w_ref / jnp.maximum(jnp.linalg.norm(w_ref, axis=1, keepdims=True), 1e-12)
        w = w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        return w_ref @ w.T
    total = 0.0
    for layer_index, name, axis in spec.perm_to_axes[layer]:
        w_ref = jnp.moveaxis(params_ref[layer_index][name], axis, 0)
        w = jnp.moveaxis(permuted_except(layer_index, name, axis), axis, 0)
        n = w.shape[0]
        total = total + w_ref.reshape(n, -1) @ w.reshape(n, -1).T
    return total


# ---------------------------------------------------------------------------------------------
# Activation similarities, streamed over the data


def _activation_similarities(params_ref, params, x: np.ndarray, *, ref_stacked, batch_size, chunk_size,
                             progress=False) -> list[np.ndarray]:
    """Per hidden layer, (M, n_l, n_l) sums over x of a_ref(x) a_m(x)^T, computed batch by batch."""
    num_models = params[0]["bias"].shape[0]
    widths = [layer["bias"].shape[-1] for layer in params[:-1]]
    chunks = _chunks(np.arange(num_models), chunk_size)
    # Each chunk's networks (and, for pairs, references) are gathered once, not once per batch.
    gather = lambda tree, idx: jax.tree_util.tree_map(lambda leaf: leaf[jnp.asarray(idx)], tree)  # noqa: E731
    chunk_params = [gather(params, chunk) for chunk in chunks]
    chunk_refs = [gather(params_ref, chunk) for chunk in chunks] if ref_stacked else None
    sums = [[jnp.zeros((len(chunk), n, n), jnp.float32) for n in widths] for chunk in chunks]
    num_points = x.shape[0]
    batch = min(batch_size, num_points)
    starts = range(0, num_points, batch)
    bar = tqdm(starts, desc=progress or "", disable=not progress, leave=False, unit="batch")
    for start in bar:
        xb = x[start: start + batch]
        real = xb.shape[0]
        if real < batch:  # pad so every batch has one shape; padded rows are masked out below
            xb = np.pad(xb, ((0, batch - real), (0, 0)))
        mask = jnp.asarray(np.arange(batch) < real, jnp.float32)
        xb = jnp.asarray(xb)
        if ref_stacked:
            for c in range(len(chunks)):
                sums[c] = _accumulate_pairs(sums[c], chunk_refs[c], chunk_params[c], xb, mask)
        else:
            ref_acts = _masked_activations(params_ref, xb, mask)  # once per batch, shared by every chunk
            for c in range(len(chunks)):
                sums[c] = _accumulate_shared(sums[c], ref_acts, chunk_params[c], xb)
    real_counts = [min(len(chunk), num_models - c * len(chunks[0])) for c, chunk in enumerate(chunks)]
    return [np.concatenate([np.asarray(sums[c][layer])[:real_counts[c]] for c in range(len(chunks))])
            for layer in range(len(widths))]


@jax.jit
def _masked_activations(params, x, mask):
    return [a * mask[:, None] for a in mlp.hidden_activations(params, x)]


@partial(jax.jit, donate_argnums=0)
def _accumulate_shared(sums, ref_acts, params, x):
    acts = jax.vmap(mlp.hidden_activations, in_axes=(0, None))(params, x)
    # Contracting over the batch gives one large matrix product per layer for the whole chunk.
    return [s + jnp.einsum("bi,mbj->mij", r, a) for s, r, a in zip(sums, ref_acts, acts)]


@partial(jax.jit, donate_argnums=0)
def _accumulate_pairs(sums, params_ref, params, x, mask):
    ref_acts = jax.vmap(mlp.hidden_activations, in_axes=(0, None))(params_ref, x)
    acts = jax.vmap(mlp.hidden_activations, in_axes=(0, None))(params, x)
    return [s + jnp.einsum("mbi,mbj->mij", r * mask[None, :, None], a) for s, r, a in zip(sums, ref_acts, acts)]
