"""Rebasin: the permutation of hidden units that best aligns a network to a reference (PAPER.md, idea 3).

Three ways to score how well unit j of a network matches unit i of the reference; each gives a
similarity matrix per permutation of the model's spec (an MLP: per hidden layer) and a linear
assignment problem (LAP) solved with ``scipy.optimize.linear_sum_assignment(maximize=True)``;
``compactbnn.symmetry.similarity`` computes the matrices:

- ``"weight"`` (Git Re-Basin's weight matching): the summed products of all parameters the
  permutation acts on (an MLP unit's incoming weights, its bias and its outgoing weights), with
  the other permutations applied. With several permutations they depend on each other, so the
  LAPs are solved by coordinate descent over the permutations in random order until a full sweep
  improves nothing; with one a single LAP is exact.
- ``"cosine_first_layer"`` (the authors' code): cosine similarity of the units' incoming weight
  rows only (no bias, no outgoing weights); permutations solved once, in order.
- ``"activation"`` (activation matching, the authors' choice for Experiment A): the summed
  products of the activations each permutation moves (``Model.hidden_activations``, an MLP's
  post-ReLU units) over a data set, streamed in batches. The activations of a network do not
  depend on how its units are ordered, so every permutation is one independent LAP.

Everything works on many networks at once: ``align_many`` aligns a stack (leading model axis
M) to one reference, ``match_pairs`` aligns each network to its own reference, ``align_draws``
gives one joint permutation to draws of one stochastic network (VI's q). A single LAP per
permutation (one permutation, or ``cosine_first_layer``) and activation matching compute their
similarity matrices in jitted, vmapped JAX for chunks of networks and solve a chunk's LAPs in a
thread pool (SciPy releases the GIL) while JAX computes the next chunk; the coordinate descent of
weight matching keeps its matrices up to date in NumPy as the permutations move
(``compactbnn.symmetry.descent``), chunks of networks in parallel threads.

Every function takes the network's ``compactbnn.models.Model`` first. Permutations follow
``compactbnn.symmetry.permutation``: ``permute(model, params, perms)`` is aligned to the reference,
i.e. its unit i is matched to the reference's unit i.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from compactbnn import threads
from compactbnn.models.base import Model, Params
from compactbnn.symmetry import descent
from compactbnn.symmetry import similarity as sim
from compactbnn.symmetry.permutation import permute, permute_many

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


def weight_matching(model: Model, params_ref: Params, params: Params, *, key: jax.Array | None = None,
                    max_sweeps: int = DEFAULT_MAX_SWEEPS, similarity: str = "weight",
                    workers: int | None = None) -> list[np.ndarray]:
    """Perms (one (n_p,) int32 array per permutation of the spec) aligning ``params`` to ``params_ref`` by their weights.

    ``permute(model, params, perms)`` is aligned to ``params_ref``. ``similarity="weight"`` is Git
    Re-Basin's weight matching (coordinate descent over the permutations in random order, drawn
    from ``key``, default ``PRNGKey(0)``, until a full sweep improves nothing or ``max_sweeps``);
    one permutation needs exactly one LAP. ``similarity="cosine_first_layer"`` is the authors' variant.
    """
    if similarity not in WEIGHT_SIMILARITIES:
        raise ValueError(f"similarity must be one of {WEIGHT_SIMILARITIES}, got {similarity!r}")
    stacked = _stack_one(model, params)
    perms = align_many(model, params_ref, stacked, method=similarity, key=key, max_sweeps=max_sweeps, workers=workers)
    return [p[0] for p in perms]


def activation_matching(model: Model, params_ref: Params, params: Params, x, *,
                        batch_size: int = DEFAULT_BATCH_SIZE, workers: int | None = None) -> list[np.ndarray]:
    """Perms aligning ``params`` to ``params_ref`` by maximising summed products of their hidden activations.

    x: inputs (N, ...), processed ``batch_size`` rows at a time, so only (batch, ..., width)
    activations exist at once. Each permutation p: ``C = sum_x a_ref(x) a(x)^T`` (n_p, n_p),
    one LAP. Units inactive on every input have zero rows and are matched arbitrarily.
    """
    stacked = _stack_one(model, params)
    perms = align_many(model, params_ref, stacked, method="activation", x=x, batch_size=batch_size, workers=workers)
    return [p[0] for p in perms]


def align_many(model: Model, params_ref: Params, params_stacked: Params, *, method: str = "weight", x=None,
               key: jax.Array | None = None, max_sweeps: int = DEFAULT_MAX_SWEEPS,
               batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int | None = None,
               workers: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """Align every network of a stack (leading axis M) to one reference: a list of (M, n_p) int32 arrays.

    Row m of each array is network m's permutation (``permute_many(model, params_stacked, perms)``
    gives the aligned stack). ``method``: "weight", "cosine_first_layer" or "activation" (needs
    inputs ``x`` (N, ...); the reference's activations are computed once per data batch).
    ``key`` orders the coordinate descent of multi-layer weight matching (the same order for
    every network, so each result equals ``weight_matching`` with that key). ``chunk_size``
    networks share one similarity computation (default: 32, and for a coordinate descent as many
    as fit in ``descent.CHUNK_BYTES``); ``workers`` threads solve LAPs (default: CPU count). A
    coordinate descent runs in one thread unless ``workers`` is given, then in that many, each
    descending on its own chunks of networks.
    """
    _check_pair(model, params_ref, params_stacked, ref_stacked=False)
    return _align(model, params_ref, params_stacked, ref_stacked=False, method=method, x=x, key=key,
                  max_sweeps=max_sweeps, batch_size=batch_size, chunk_size=chunk_size, workers=workers,
                  progress=progress)


def match_pairs(model: Model, params_ref_stacked: Params, params_stacked: Params, *, method: str = "weight", x=None,
                key: jax.Array | None = None, max_sweeps: int = DEFAULT_MAX_SWEEPS,
                batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int | None = None,
                workers: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """Align network m of ``params_stacked`` to network m of ``params_ref_stacked``, for all m at once.

    Returns (M, n_p) int32 arrays per permutation (Experiment A: every NoT level and run is a
    pair). Same methods and options as ``align_many``.
    """
    _check_pair(model, params_ref_stacked, params_stacked, ref_stacked=True)
    return _align(model, params_ref_stacked, params_stacked, ref_stacked=True, method=method, x=x, key=key,
                  max_sweeps=max_sweeps, batch_size=batch_size, chunk_size=chunk_size, workers=workers,
                  progress=progress)


def align_draws(model: Model, params_ref: Params, draws: Params, x, *, batch_size: int = DEFAULT_BATCH_SIZE,
                chunk_size: int | None = None, progress: bool | str = False) -> list[np.ndarray]:
    """One permutation per permutation of the spec that aligns a whole stack of draws jointly, by activation matching.

    The draws (leading axis K) are networks sampled from one stochastic network, e.g. a mean-field
    Gaussian q: they share their unit order, so they get one permutation. Per permutation it
    maximises ``sum_k sum_x a_ref(x) a_k(x)^T``, which equals K times the similarity to the draws'
    mean activation ``(1/K) sum_k a_k(x)``: the authors' alignment of VI (rebasin.py
    ``vi_net_matching``, activations averaged over 10 sampled networks). Returns (n_p,) int32 arrays.
    """
    _check_pair(model, params_ref, draws, ref_stacked=False)
    x = _check_inputs(x, model.num_features)
    costs = sim.activation_similarities(model, _to_jax(params_ref), _to_jax(draws), x, ref_stacked=False,
                                        batch_size=batch_size,
                                        chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size),
                                        progress=progress)
    return [_solve_laps(c.sum(axis=0, dtype=np.float64)[None], None)[0][0] for c in costs]


def align_to_mean(model: Model, params_stacked: Params, *, method: str = "weight", x=None, max_rounds: int = 10,
                  reference: Params | None = None, key: jax.Array | None = None,
                  **options) -> tuple[Params, list[np.ndarray]]:
    """Align a stack of networks to their own running mean; returns (mean of the aligned stack, perms (M, n_p)).

    Round 1 aligns every network to ``reference`` (default: the stack's first network, the
    authors' choice); every later round aligns the original networks to the mean of the
    previous round's aligned stack. Stops when no permutation changes or after ``max_rounds``.
    ``options`` are passed to ``align_many``.
    """
    model.check(params_stacked, "params_stacked", batch_ndim=1)
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    params_stacked = _to_jax(params_stacked)
    ref = jax.tree_util.tree_map(lambda leaf: leaf[0], params_stacked) if reference is None else reference
    key = jax.random.key(0) if key is None else key
    perms = None
    for round_index in range(max_rounds):
        new = align_many(model, ref, params_stacked, method=method, x=x, key=jax.random.fold_in(key, round_index), **options)
        converged = perms is not None and all(np.array_equal(a, b) for a, b in zip(perms, new))
        perms = new
        ref = jax.tree_util.tree_map(lambda leaf: jnp.mean(leaf, axis=0), permute_many(model, params_stacked, perms))
        if converged:
            break
    return ref, perms


def rebasin(model: Model, params_ref: Params, params: Params, *, method: str = "weight", x=None,
            key: jax.Array | None = None, **options) -> tuple[Params, list[np.ndarray]]:
    """Align one network to a reference: returns (``permute(model, params, perms)``, perms)."""
    stacked = _stack_one(model, params)
    perms = [p[0] for p in align_many(model, params_ref, stacked, method=method, x=x, key=key, **options)]
    return permute(model, params, perms), perms


def activation_similarity(model: Model, params_ref: Params, params: Params, x, *,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
    """Per permutation p, ``sum_x a_ref(x) a(x)^T`` (n_p, n_p): the matrix activation matching maximises over."""
    stacked = _stack_one(model, params)
    _check_pair(model, params_ref, stacked, ref_stacked=False)
    x = _check_inputs(x, model.num_features)
    costs = sim.activation_similarities(model, _to_jax(params_ref), _to_jax(stacked), x, ref_stacked=False,
                                        batch_size=batch_size, chunk_size=1)
    return [c[0] for c in costs]


def weight_similarity(model: Model, params_ref: Params, params: Params, perms, layer: int, *,
                      similarity: str = "weight") -> jax.Array:
    """The (n_p, n_p) matrix weight matching maximises for permutation ``layer`` of the spec (an MLP's hidden layer).

    Entry (i, j) scores reference unit i against unit j of ``params`` with the other
    permutations ``perms`` applied (``perms[layer]`` itself is ignored). "weight": summed
    products over every parameter axis the permutation acts on (incoming weights, bias and
    outgoing weights); "cosine_first_layer": cosine of the incoming weight rows.
    """
    if similarity not in WEIGHT_SIMILARITIES:
        raise ValueError(f"similarity must be one of {WEIGHT_SIMILARITIES}, got {similarity!r}")
    _check_pair(model, params_ref, _stack_one(model, params), ref_stacked=False)
    num_perms = model.spec.num_perms
    if not 0 <= layer < num_perms:
        raise ValueError(f"layer must index one of the spec's {num_perms} permutations (hidden layers), got {layer}")
    if similarity == "cosine_first_layer":
        sim.check_cosine_model(model, params_ref, batch_ndim=0)
    return sim.layer_similarity(_to_jax(params_ref), _to_jax(params), [jnp.asarray(p) for p in perms], spec=model.spec,
                                perm=layer, similarity=similarity)


# ---------------------------------------------------------------------------------------------
# Checks


def _stack_one(model, params):
    model.check(params, "params")
    return model.stack_one(params)


def _to_jax(params):
    return jax.tree_util.tree_map(jnp.asarray, params)


def _check_pair(model, params_ref, params_stacked, ref_stacked: bool) -> None:
    ref_name = "params_ref_stacked" if ref_stacked else "params_ref"
    model.check(params_ref, ref_name, batch_ndim=int(ref_stacked))
    model.check(params_stacked, "params_stacked", batch_ndim=1)
    if model.spec.num_perms == 0:
        raise ValueError(f"networks without hidden layers ({model}) have nothing to permute")
    if ref_stacked:
        m_ref, m = model.num_stacked(params_ref), model.num_stacked(params_stacked)
        if m_ref != m:
            raise ValueError(f"{ref_name} holds {m_ref} networks but params_stacked holds {m}; pairs need equal counts")


def _check_inputs(x, num_features: int) -> np.ndarray:
    if x is None:
        raise ValueError("activation matching needs inputs x (N, D); got x=None")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, D) array, got shape {x.shape}")
    if x.shape[-1] != num_features:
        raise ValueError(f"x has {x.shape[-1]} features but the networks take {num_features} inputs")
    return x


# ---------------------------------------------------------------------------------------------
# Driver


def _align(model, params_ref, params, *, ref_stacked, method, x, key, max_sweeps, batch_size, chunk_size, workers,
           progress):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunk_size = None if chunk_size is None else int(chunk_size)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    # the CPUs this process may run on, not the node's (a SLURM job given one CPU must not start a
    # thread per core of its node), and at most a job's threads (threads.limit)
    descent_threads = 1 if workers is None else int(workers)  # see ``descent.weight_descent``
    workers = threads.usable_cpus() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if method == "activation":
        x = _check_inputs(x, model.num_features)
    if method == "cosine_first_layer":
        sim.check_cosine_model(model, params_ref, batch_ndim=int(ref_stacked))
    key = jax.random.key(0) if key is None else key
    params_ref, params = _to_jax(params_ref), _to_jax(params)
    num_models = model.num_stacked(params)
    label = progress if isinstance(progress, str) else f"aligning {num_models} networks ({method})"
    pool = ThreadPoolExecutor(workers) if workers > 1 else nullcontext()
    with pool as executor:
        if method == "activation":
            costs = sim.activation_similarities(model, params_ref, params, x, ref_stacked=ref_stacked,
                                                batch_size=batch_size, chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
                                                progress=progress and label)
            return [_solve_laps(c, executor)[0] for c in costs]
        return _weight_align(model, params_ref, params, ref_stacked, method, key, max_sweeps, chunk_size, executor,
                             descent_threads, progress and label)


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


def _lap_columns(costs: np.ndarray) -> np.ndarray:
    """The maximum-weight assignment of each (n, n) matrix of a stack: (B, n) int32, column of each row."""
    return np.stack([linear_sum_assignment(cost, maximize=True)[1] for cost in costs]).astype(np.int32)


def _weight_align(model, params_ref, params, ref_stacked, similarity, key, max_sweeps, chunk_size, executor, workers,
                  progress):
    sizes = model.perm_sizes
    bar = tqdm(total=model.num_stacked(params), desc=progress or "", disable=not progress, leave=False, unit="net")
    if len(sizes) == 1 or similarity == "cosine_first_layer":
        # One permutation: nothing else moves, one LAP is optimal. Cosine of incoming rows: layer l
        # depends only on layer l - 1, so one pass in order is exact.
        perms = _single_pass(model, params_ref, params, ref_stacked, similarity, chunk_size or DEFAULT_CHUNK_SIZE,
                             executor, bar)
    else:
        # Several: coordinate descent, each C_p kept up to date as its neighbours move (``descent``),
        # each chunk of networks in its own thread, its LAPs solved there.
        lock = threading.Lock()

        def finished(count):
            with lock:
                bar.update(count)

        perms = descent.weight_descent(model.spec, sizes, params_ref, params, ref_stacked=ref_stacked, key=key,
                                       max_sweeps=max_sweeps, chunk_size=chunk_size, workers=workers,
                                       lap_columns=_lap_columns, tolerance=RELATIVE_TOLERANCE, finished=finished)
    bar.close()
    return perms


def _single_pass(model, params_ref, params, ref_stacked, similarity, chunk_size, executor, bar):
    """One LAP per permutation, in spec order, for every network: similarity matrices in jitted JAX, chunk by chunk."""
    num_models = model.num_stacked(params)
    perms = [np.tile(np.arange(n, dtype=np.int32), (num_models, 1)) for n in model.perm_sizes]
    everyone = np.arange(num_models)
    for layer in range(len(perms)):
        chunks = sim.chunks(everyone, chunk_size)
        compute = lambda chunk: sim.weight_similarities(  # noqa: E731
            model, params_ref, params, jnp.asarray(chunk), [jnp.asarray(p[chunk]) for p in perms],
            perm=layer, ref_stacked=ref_stacked, similarity=similarity)
        found, done = [], 0
        # Dispatch chunk c + 1 to JAX (asynchronous) before solving chunk c's LAPs, so both overlap.
        pending = compute(chunks[0])
        for c in range(len(chunks)):
            current = pending
            if c + 1 < len(chunks):
                pending = compute(chunks[c + 1])
            real = min(len(chunks[c]), num_models - done)
            found.append(_solve_laps(np.asarray(current)[:real], executor)[0])
            done += real
            if layer == len(perms) - 1:
                bar.update(real)
        perms[layer][:] = np.concatenate(found)
    return perms
