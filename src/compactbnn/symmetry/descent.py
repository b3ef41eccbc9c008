"""Weight matching's coordinate descent over several permutations, in NumPy, its similarity matrices kept up to date.

Git Re-Basin's weight matching solves one LAP per permutation p of the spec on
``C_p = sum_e R_e W_e^T``, summed over the (layer, name, axis) entries e that p acts on: ``R_e``
the reference's parameter and ``W_e`` the candidate's, its other permuted axes taken by the
current permutations, both with p's units as rows (``similarity.layer_similarity``). The
descent moves one permutation at a time, and after the first sweeps only a few of its units, so
recomputing every ``C_p`` from scratch (what made a CNN's weight matching some 20 times slower
than its LAPs) mostly repeats work. Here:

- An entry no other permutation acts on (a bias, the first layer's incoming weights, the last
  layer's outgoing weights) gives a term that never changes: computed once per network.
- An entry with one other permutation q keeps its term and the q it was computed with. When q
  has since moved the units D (``q_new[k] != q_old[k]``), the term changes by
  ``sum_{k in D} (R_e[:, k] - R_e[:, tau(k)]) W_e[:, q_new[k]]^T`` with ``tau = q_old^-1 q_new``
  (which maps D onto itself): |D| / n_q of a full product. With most units moved, the term is
  recomputed in full; so are entries with several other permutations, whenever one moved.
- A permutation none of whose terms changed since its last LAP would get the same matrix, so
  the same answer, which cannot improve the objective again: that LAP is skipped.

Products are in the parameters' precision (float32, as before, in JAX), terms accumulate in
float64. Each chunk of networks descends on its own, the chunks in parallel threads (BLAS and
SciPy's LAP release the GIL; one thread by default), each with one BLAS thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import jax
import numpy as np

from compactbnn.models.base import PermutationSpec

# A term is updated by the difference of its moved units while at most this share of them moved
# (an update gathers three blocks per moved unit, a recomputation one per unit).
UPDATE_SHARE = 0.5
# Without a chunk size: as many networks per chunk as keep its arrays (parameters arranged, terms)
# near this size; chunks of small networks are large, which spreads the per-step overhead thinly.
CHUNK_BYTES = 64 * 2**20
ORDERS_KEPT = 64  # keys whose sweep orders are kept (``SweepOrders``)


def arrange(array: np.ndarray, spec: PermutationSpec, layer, name: str, axis: int, lead: int, *,
            in_place: bool = False) -> tuple[np.ndarray, list[int], tuple[int, ...]]:
    """``array`` (``lead`` leading model axes) as blocks ``(lead..., units..., rest)``: (blocks, others, axes).

    The unit axes are ``axis``'s (whole blocks where the spec gives a block size) and those of
    the parameter's other permuted axes, taken by the permutations ``others`` (in axis order);
    everything else is flattened into the trailing rest. By default the units of ``axis`` come
    first and the others' next (``axes = (0, 1, ...)``): one side of a weight-matching product.
    ``in_place=True`` keeps the parameter's own order where its rest already trails its unit axes
    (no copy; ``axes`` says where ``axis``'s units and each other's are), else arranges as by default.
    """
    table = spec.axes_to_perm[(layer, name)]
    split, position = [], {}
    for a, size in enumerate(array.shape[lead:]):
        block = spec.blocks.get((layer, name, a), 1) if a in table else 1
        position[a] = len(split)
        split += [size // block, block] if block > 1 else [size]
    others = sorted(a for a in table if a != axis)
    units = [position[axis]] + [position[a] for a in others]
    rest = [i for i in range(len(split)) if i not in units]
    if in_place and max(units) < min(rest, default=len(split)):
        kept = sorted(units)
        blocks = array.reshape(array.shape[:lead] + tuple(split[i] for i in kept) + (-1,))
        return blocks, [table[a] for a in others], tuple(kept.index(u) for u in units)
    moved = np.transpose(array.reshape(array.shape[:lead] + tuple(split)),
                         list(range(lead)) + [lead + i for i in units + rest])
    shape = array.shape[:lead] + tuple(split[i] for i in units) + (-1,)
    return moved.reshape(shape), [table[a] for a in others], tuple(range(len(units)))


def take_blocks(blocks: np.ndarray, axes: tuple[int, ...], rows: np.ndarray | None, units: list[np.ndarray]) -> np.ndarray:
    """The blocks of networks ``rows`` arranged (T, n_p, k_1, ..., rest), the other unit axes taken at ``units``.

    ``blocks`` (B, s_0, ..., s_m, rest), or (s_0, ..., s_m, rest) with ``rows=None``; ``axes``:
    where p's units and each other permutation's are among the s; ``units``: per other, (T, k)
    indices. Output [t, i, k_1, ...] = blocks[rows[t], ..., units[j][t, k_j] at axes[1 + j], i at axes[0], ...].
    One ``np.take`` of whole rest-long blocks: a gather and, where needed, the arrangement at once.
    """
    sizes = blocks.shape[-len(axes) - 1:-1]
    stride = [int(np.prod(sizes[d + 1:], dtype=np.int64)) for d in range(len(sizes))]
    count = len(rows) if rows is not None else units[0].shape[0]
    dims = 2 + len(units)
    shape = lambda k, size: (1,) * k + (size,) + (1,) * (dims - 1 - k)  # noqa: E731
    index = (np.arange(sizes[axes[0]], dtype=np.int64) * stride[axes[0]]).reshape(shape(1, -1))
    for j, taken in enumerate(units):
        index = index + (taken.astype(np.int64) * stride[axes[1 + j]]).reshape((count,) + shape(2 + j, -1)[1:])
    if rows is not None:
        index = index + (rows.astype(np.int64) * int(np.prod(sizes, dtype=np.int64))).reshape(shape(0, -1))
    index = np.broadcast_to(index, (count,) + index.shape[1:])
    return np.take(blocks.reshape(-1, blocks.shape[-1]), index.ravel(), axis=0).reshape(index.shape + blocks.shape[-1:])


def product(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``R G^T`` per network, (T, n_p, n_p): ``cand`` (T, n_p, ...), ``ref`` (n_p, ...) shared or (T, n_p, ...)."""
    t, n = cand.shape[:2]
    if ref.ndim == cand.ndim:
        return np.matmul(ref.reshape(t, n, -1), cand.reshape(t, n, -1).transpose(0, 2, 1))
    # a shared reference: one product for the whole chunk, (T n, K) (K, n)
    return (cand.reshape(t * n, -1) @ ref.reshape(n, -1).T).reshape(t, n, n).transpose(0, 2, 1)


@dataclass
class Term:
    """One entry's part of ``C_p`` for a chunk of B networks, and the other permutations it was computed with."""

    perm: int
    others: list[int]
    ref: np.ndarray  # arranged: (n_p, n_q..., rest) shared, or (B, n_p, n_q..., rest) for pairs
    cand: np.ndarray  # blocks (B, units..., rest): the parameter itself where it can (``arrange(in_place=True)``)
    axes: tuple[int, ...]  # where p's units and each other's are among cand's
    value: np.ndarray  # (B, n_p, n_p) float64
    seen: list[np.ndarray]  # per other permutation, (B, n_q): its perms when value was computed (-1: never)
    versions: list[np.ndarray]  # per other permutation, (B,): its version then


class ChunkDescent:
    """The state of weight matching's descent for a chunk of B networks: their permutations and similarity terms.

    ``refs``: the reference's parameters arranged per term (``arrange_terms``; one network, or the
    chunk's B references for pairs); ``params``: the chunk's B networks. ``matrices(p, rows)``
    gives the ``C_p`` that moved since their last LAP, ``accept`` takes the LAPs' answers.
    """

    def __init__(self, spec: PermutationSpec, sizes, refs: list[dict], params, *, ref_stacked: bool):
        self.sizes, self.ref_stacked = tuple(sizes), ref_stacked
        self.num = int(np.shape(jax.tree_util.tree_leaves(params)[0])[0])
        self.perms = [np.tile(np.arange(n, dtype=np.int32), (self.num, 1)) for n in sizes]
        self.version = [np.zeros(self.num, np.int64) for _ in sizes]  # bumped as a network's permutation moves
        self.terms: list[list[Term]] = [[] for _ in sizes]
        self.constant = [np.zeros((self.num, n, n)) for n in sizes]
        self.changed = [np.ones(self.num, bool) for _ in sizes]  # C_p moved since its last LAP
        for p, cands in enumerate(arrange_terms(spec, params, 1, in_place=True)):
            for others, (cand, axes) in cands.items():
                ref = refs[p][others][0]
                if not others:  # no other permutation moves these: one product, once
                    self.constant[p] += product(ref, cand)
                    continue
                seen = [np.full((self.num, sizes[q]), -1, np.int32) for q in others]
                versions = [np.full(self.num, -1, np.int64) for _ in others]
                self.terms[p].append(Term(p, list(others), ref, cand, axes, np.zeros((self.num, sizes[p], sizes[p])),
                                          seen, versions))

    def _ref(self, term: Term, rows: np.ndarray) -> np.ndarray:
        return term.ref[rows] if self.ref_stacked else term.ref

    def _full(self, term: Term, rows: np.ndarray) -> np.ndarray:
        """The term of networks ``rows`` computed afresh: their candidates taken by the other permutations."""
        moved = any(self.version[q][rows].any() for q in term.others)
        if not moved and term.axes == tuple(range(len(term.axes))):  # in order already: nothing to take
            return product(self._ref(term, rows), term.cand if len(rows) == self.num else term.cand[rows])
        taken = take_blocks(term.cand, term.axes, rows, [self.perms[q][rows] for q in term.others])
        return product(self._ref(term, rows), taken)

    def _delta(self, term: Term, rows: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """The change of a one-other-permutation term of networks ``rows`` whose q moved the units ``moved`` (T, n_q)."""
        q, old = term.others[0], term.seen[0][rows]
        new = self.perms[q][rows]
        width = int(moved.sum(axis=1).max())
        # the moved units first, then unmoved ones as padding (tau(k) = k there: a zero difference)
        units = np.argsort(~moved, axis=1, kind="stable")[:, :width]
        inverse = np.empty_like(old)
        np.put_along_axis(inverse, old, np.arange(old.shape[1], dtype=old.dtype)[None], axis=1)
        new_units = np.take_along_axis(new, units, axis=1)
        tau = np.take_along_axis(inverse, new_units, axis=1)
        ref_rows, in_order = (rows if self.ref_stacked else None), (0, 1)
        diff = take_blocks(term.ref, in_order, ref_rows, [units]) - take_blocks(term.ref, in_order, ref_rows, [tau])
        return product(diff, take_blocks(term.cand, term.axes, rows, [new_units]))

    def _update(self, term: Term, rows: np.ndarray) -> None:
        """Bring ``term.value`` of networks ``rows`` up to date, marking C_p changed where it moved."""
        stale = np.zeros(len(rows), bool)
        for j, q in enumerate(term.others):
            stale |= term.versions[j][rows] != self.version[q][rows]
        if not stale.any():
            return
        rows = full = rows[stale]
        if len(term.others) == 1:
            q = term.others[0]
            moved = term.seen[0][rows] != self.perms[q][rows]
            count = moved.sum(axis=1)
            few = (term.versions[0][rows] >= 0) & (count <= UPDATE_SHARE * moved.shape[1])
            # networks grouped by their number of moved units (1, 2, 3-4, 5-8, ...): a group pads to its largest
            group = np.where(few, np.ceil(np.log2(np.maximum(count, 1))), -1)
            for g in np.unique(group[few]):
                mine = group == g
                term.value[rows[mine]] += self._delta(term, rows[mine], moved[mine])
            full = rows[~few]
        if len(full):
            term.value[full] = self._full(term, full)
        for j, q in enumerate(term.others):
            term.seen[j][rows] = self.perms[q][rows]
            term.versions[j][rows] = self.version[q][rows]
        self.changed[term.perm][rows] = True

    def matrices(self, p: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows', C_p of rows')``: those networks of ``rows`` whose C_p moved since its last LAP, and their C_p."""
        for term in self.terms[p]:
            self._update(term, rows)
        rows = rows[self.changed[p][rows]]
        total = self.constant[p][rows]
        for term in self.terms[p]:
            total += term.value[rows]
        return rows, total

    def accept(self, p: int, rows: np.ndarray, found: np.ndarray, better: np.ndarray) -> None:
        """After the LAPs of ``rows``: permutation p of ``rows[better]`` becomes ``found[better]``."""
        moves = rows[better]
        self.perms[p][moves] = found[better]
        self.version[p][moves] += 1
        self.changed[p][rows] = False


def arrange_terms(spec: PermutationSpec, params, lead: int, *, in_place: bool = False) -> list[dict]:
    """Per permutation p, ``{others: (blocks, axes)}``: its entries' parameters arranged (``arrange``).

    Entries taken by the same other permutations (``()``: by none) make one term, one product:
    their arranged blocks joined along the rest (``in_place`` applies to a term of one entry).
    """
    terms = []
    for axes in spec.perm_to_axes:
        parts: dict[tuple[int, ...], list] = {}
        for layer, name, axis, *_ in axes:
            array = np.asarray(params[layer][name])
            if array.dtype not in (np.float32, np.float64):  # e.g. bfloat16: products in float32
                array = array.astype(np.float32)
            table = spec.axes_to_perm[(layer, name)]
            others = tuple(table[a] for a in sorted(table) if a != axis)  # as ``arrange`` orders them
            parts.setdefault(others, []).append((array, layer, name, axis))
        terms.append({others: join(entries, spec, lead, in_place) for others, entries in parts.items()})
    return terms


def join(entries: list, spec: PermutationSpec, lead: int, in_place: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """One term's blocks from its entries ``(array, layer, name, axis)``: in place if alone and allowed, else arranged and joined."""
    if len(entries) == 1:
        array, layer, name, axis = entries[0]
        blocks, _, axes = arrange(array, spec, layer, name, axis, lead, in_place=in_place)
        return np.ascontiguousarray(blocks), axes
    arranged = [arrange(array, spec, layer, name, axis, lead)[0] for array, layer, name, axis in entries]
    return np.concatenate(arranged, axis=-1), tuple(range(arranged[0].ndim - lead - 1))


def blas_threads(count: int):
    """A context in which BLAS libraries already loaded use at most ``count`` threads (threadpoolctl, where installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return nullcontext()
    return threadpool_limits(limits=count, user_api="blas")


class SweepOrders:
    """Sweep s visits the permutations in the order ``jax.random.permutation(fold_in(key, s), P)``: drawn once, shared by threads.

    The orders drawn are kept per (key, P) for later calls (each draw costs about a millisecond of JAX dispatch).
    """

    drawn_before: dict[tuple[bytes, int], list[list[int]]] = {}
    lock = threading.Lock()

    def __init__(self, key, num_perms: int):
        self.key, self.num_perms = key, num_perms
        with self.lock:
            self.drawn = self.drawn_before.setdefault((np.asarray(jax.random.key_data(key)).tobytes(), num_perms), [])
            while len(self.drawn_before) > ORDERS_KEPT:
                self.drawn_before.pop(next(iter(self.drawn_before)))

    def __call__(self, sweep: int) -> list[int]:
        with self.lock:
            while len(self.drawn) <= sweep:
                order = jax.random.permutation(jax.random.fold_in(self.key, len(self.drawn)), self.num_perms)
                self.drawn.append([int(p) for p in np.asarray(order)])
            return self.drawn[sweep]


def descend(chunk: ChunkDescent, orders: SweepOrders, max_sweeps: int, lap_columns, tolerance: float,
            finished=lambda count: None) -> list[np.ndarray]:
    """Coordinate descent of one chunk: perms (B, n_p) int32 per permutation; ``finished(k)`` as k networks stop.

    Per sweep, the permutations in ``orders(sweep)``: each network takes its LAP's answer
    (``lap_columns(costs)``, (T, n) column per row) where that raises the objective by more than
    ``tolerance`` times its size. A network stops after a sweep that improved nothing, or after
    ``max_sweeps``.
    """
    active = np.arange(chunk.num)
    for sweep in range(max_sweeps):
        improved = np.zeros(chunk.num, bool)
        for p in orders(sweep):
            rows, costs = chunk.matrices(p, active)
            if not len(rows):
                continue  # no C_p moved since its last LAP: the same answer, no gain
            found = lap_columns(costs)
            pick = lambda perm: np.take_along_axis(costs, perm[:, :, None], axis=2)[:, :, 0].sum(axis=1)  # noqa: E731
            score, before = pick(found), pick(chunk.perms[p][rows])
            better = score - before > tolerance * np.maximum(1.0, np.abs(before))
            chunk.accept(p, rows, found, better)
            improved[rows[better]] = True
        finished(int(np.sum(~improved[active])))
        active = active[improved[active]]
        if not active.size:
            break
    finished(len(active))
    return chunk.perms


def weight_descent(spec: PermutationSpec, sizes, params_ref, params, *, ref_stacked: bool, key, max_sweeps: int,
                   chunk_size: int | None, workers: int, lap_columns, tolerance: float,
                   finished=lambda count: None) -> list[np.ndarray]:
    """Weight matching of every network of the stack ``params`` (M, ...) to ``params_ref``: perms (M, n_p) int32.

    The stack is cut into chunks of at most ``chunk_size`` networks (default: as many as fit in
    about ``CHUNK_BYTES``; fewer, if that leaves a thread idle), each descending on its own
    (``descend``) in one of ``workers`` threads. A network's answer does not depend on its chunk.
    ``rebasin`` asks for one thread unless told otherwise: much of a step is Python holding the
    GIL, and on 2 shared cores (load 5 to 10) two threads took 1.4 to 1.7 times as long as one.
    """
    to_numpy = lambda tree: jax.tree_util.tree_map(np.asarray, tree)  # noqa: E731
    params_ref, params = to_numpy(params_ref), to_numpy(params)
    leaves = jax.tree_util.tree_leaves(params)
    num = int(np.shape(leaves[0])[0])
    if chunk_size is None:  # two arranged copies of the parameters, three float64 matrices per permutation
        per_network = 2 * sum(leaf[0].nbytes for leaf in leaves) + 24 * sum(n * n for n in sizes)
        chunk_size = max(1, CHUNK_BYTES // per_network)
    chunks = -(-num // chunk_size)
    chunks = -(-chunks // workers) * workers if chunks < num else chunks  # a multiple of the threads, if it can
    size = -(-num // chunks)
    orders = SweepOrders(key, len(sizes))
    shared = None if ref_stacked else arrange_terms(spec, params_ref, 0)

    def one(start):
        part = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[start: start + size], tree)  # noqa: E731
        refs = arrange_terms(spec, part(params_ref), 1) if ref_stacked else shared
        chunk = ChunkDescent(spec, sizes, refs, part(params), ref_stacked=ref_stacked)
        return descend(chunk, orders, max_sweeps, lap_columns, tolerance, finished)

    starts = range(0, num, size)
    threads = min(workers, len(starts))
    # One BLAS thread per chunk thread: BLAS's own threads on top of these (and of other jobs on a
    # shared machine) made these narrow products several times slower, not faster.
    with blas_threads(max(1, workers // threads)):
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(one, starts))
        else:
            parts = [one(start) for start in starts]
    return [np.concatenate([part[p] for part in parts]) for p in range(len(sizes))]
