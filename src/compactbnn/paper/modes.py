"""How many permutation modes the cycles of cyclical SG-MCMC visit: NoT between samples of consecutive cycles.

Each cycle of cyclical SG-MCMC restarts with a large step size, meant to carry the chain to another
mode of the posterior; permutation symmetry makes many modes copies of each other under a
permutation of the hidden units. Rebasin measures which: NoT(P') between the last kept sample of
cycle c and that of cycle c + 1 is near 0 when the chain stayed in one permutation mode and near a
random permutation's (``claims.expected_random_not``) when it moved to a permuted copy. Within one
cycle (its first and last kept sample), NoT(P') is the floor of the measurement (dead units tie in
activation matching). After every sample is aligned to one reference, NoT(P') between the aligned
samples says what permutation is left: near 0 when the alignment put every cycle's mode in one basis.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
import pandas as pd

from compactbnn.models.base import Model, Params
from compactbnn.paper.claims import expected_random_not
from compactbnn.symmetry import interpolation, permutation

PAIRS = ("consecutive_cycles", "within_cycle")


def cycle_pairs(cycles: np.ndarray, counts: Sequence[int]) -> pd.DataFrame:
    """The sample pairs to compare, from each sample's cycle (chains pooled chain after chain, ``counts`` each).

    Rows (chain, pair, cycle_a, cycle_b, first, second): ``first``/``second`` index the pooled
    samples. ``consecutive_cycles``: the last kept sample of cycle c and of cycle c + 1;
    ``within_cycle``: the first and last kept sample of cycle c (where it kept two or more).
    """
    cycles = np.asarray(cycles, np.int64)
    if cycles.shape != (sum(int(c) for c in counts),):
        raise ValueError(f"cycles must hold one cycle per sample ({sum(counts)}), got shape {cycles.shape}")
    rows, offset = [], 0
    for chain, count in enumerate(counts):
        index = offset + np.arange(int(count))
        offset += int(count)
        seen = sorted(set(cycles[index].tolist()))
        last = {c: int(index[cycles[index] == c][-1]) for c in seen}
        first = {c: int(index[cycles[index] == c][0]) for c in seen}
        rows += [(chain, "consecutive_cycles", a, b, last[a], last[b]) for a, b in zip(seen, seen[1:])]
        rows += [(chain, "within_cycle", c, c, first[c], last[c]) for c in seen if first[c] != last[c]]
    return pd.DataFrame(rows, columns=["chain", "pair", "cycle_a", "cycle_b", "first", "second"])


def cycle_transpositions(model: Model, samples: Params, counts: Sequence[int], cycles: np.ndarray, perms: Sequence,
                         *, method: str, x=None, key: jax.Array | None = None) -> pd.DataFrame:
    """NoT(P') of every pair of ``cycle_pairs``, before and after aligning the samples by ``perms``.

    ``samples``: the chains' kept samples pooled (leading axis), ``perms`` their alignment to the
    reference (``compact.q_rebasin(...).perms``), ``method``/``x``/``key`` the rebasin of the
    measurement (as the alignment's). Rows (chain, pair, cycle_a, cycle_b, alignment, not_measured,
    random_not): ``random_not`` is a uniform random permutation's expected NoT, the level of two
    unrelated modes.
    """
    pairs = cycle_pairs(cycles, counts)
    if pairs.empty:
        return pd.DataFrame(columns=["chain", "pair", "cycle_a", "cycle_b", "alignment", "not_measured", "random_not"])
    aligned = permutation.permute_many(model, samples, perms)
    frames = []
    for alignment, stack in (("before", samples), ("after", aligned)):
        take = lambda index: jax.tree_util.tree_map(lambda leaf: leaf[np.asarray(index)], stack)  # noqa: E731,B023
        measured = interpolation.transpositions_between_pairs(model, take(pairs["first"]), take(pairs["second"]),
                                                              method=method, x=x, key=key)
        frames.append(pairs.drop(columns=["first", "second"]).assign(alignment=alignment,
                                                                     not_measured=np.asarray(measured, int)))
    table = pd.concat(frames, ignore_index=True)
    table["random_not"] = round(expected_random_not(list(model.perm_sizes)), 2)
    return table
