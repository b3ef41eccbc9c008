"""The compact representation of a set of networks (PAPER.md, idea 4; Experiment C).

From a stack of S networks (HMC samples, ensemble members) a mean-field Gaussian
``N(mu, diag(sigma^2))`` over the parameters:

- ``q_direct``: the per-parameter mean and sd of the networks as they are (q_d). Permutation
  symmetry makes these meaningless: unit i of one network need not correspond to unit i of
  another.
- ``q_rebasin``: every network is first aligned to one shared reference by rebasin (q_r), then
  mean and sd are taken. The reference is the first network (the authors' code: the first kept
  HMC sample), a given network (e.g. that first HMC sample, to put an ensemble in the same basis),
  or the iterative mean (``rebasin.align_to_mean``: align, average, repeat until stable).
- ``align_gaussian``: a Gaussian that comes as mean and sd (VI) is put in a reference's basis by
  aligning its mean and permuting mean and sd together.

The sd is the sample standard deviation with ``ddof=1`` by default (``torch.std``, as in the
authors' code); pass ``ddof=0`` for the population sd. Moments are accumulated in float64 over
chunks of networks, so a 1,000 x 407,050 stack held as a host numpy array is never copied whole.

Every function that needs the networks' structure takes their ``compactbnn.models.Model`` first.

Stored form (``save_compact``): an npz with ``mu`` and ``sigma`` (ravelled with ``model.ravel``,
PyTorch order), ``not_to_reference`` (S,) (each network's number of transpositions to the
reference, summed over the spec's permutations), ``model`` (``repr(model)``, which
``load_compact`` checks, as ``io.save_networks`` stores it) and, when known, ``reference``
(ravelled) and ``perms_<p>`` (S, n_p) per permutation of the spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn import io
from compactbnn.models.base import Model, Params
from compactbnn.symmetry import gaussian, permutation, rebasin

DEFAULT_CHUNK_SIZE = 100  # networks permuted and accumulated at once
REFERENCES = ("first", "mean", "unaligned_mean")


class Gaussian(NamedTuple):
    """A mean-field Gaussian over a network's parameters: ``mean`` and ``sd`` are params-shaped pytrees."""

    mean: Params
    sd: Params


@dataclass
class CompactResult:
    """q_r of a stack of S networks and how it was obtained.

    ``q``: the Gaussian (mean, sd) in the reference's basis.
    ``perms``: one (S, n_p) int32 array per permutation of the spec; ``permutation.permute_many(model,
      samples, perms)`` is the aligned stack. None where not known (e.g. loaded from a file without them).
    ``not_to_reference``: (S,) int, each network's NoT to the reference summed over the spec's permutations.
    ``reference``: the reference network (the first sample, the given network or the aligned mean).
    """

    q: Gaussian
    perms: list[np.ndarray] | None
    not_to_reference: np.ndarray
    reference: Params | None

    @property
    def not_per_layer(self) -> np.ndarray:
        """(S, number of permutations) NoT of each network's permutation in each hidden layer (permutation of the spec)."""
        if self.perms is None:
            raise ValueError("this result holds no permutations")
        return np.stack([np.asarray(permutation.count_transpositions_many(p)) for p in self.perms], axis=1)

    @classmethod
    def from_gaussian(cls, model: Model, q: Gaussian, perms: Sequence | None = None,
                      reference: Params | None = None) -> "CompactResult":
        """Wrap one aligned Gaussian (e.g. ``align_gaussian``'s VI result) with its one network's perms (n_p,)."""
        q = _as_gaussian(model, q)
        if perms is None:
            return cls(q=q, perms=None, not_to_reference=np.zeros(0, np.int64), reference=reference)
        perms = permutation.check_perms(model, list(perms), q.mean)
        stacked = [np.asarray(p, np.int32)[None] for p in perms]
        return cls(q=q, perms=stacked, not_to_reference=np.array([permutation.total_transpositions(perms)]), reference=reference)


# ---------------------------------------------------------------------------------------------
# Moments


def moments(model: Model, samples: Params, *, ddof: int = 1, perms: Sequence | None = None,
            chunk_size: int = DEFAULT_CHUNK_SIZE) -> Gaussian:
    """Per-parameter mean and sd over the leading axis of a stack, optionally after permuting each network.

    ``perms``: one (S, n_p) array per permutation of the spec; network s is ``permute``d by row s first.
    Accumulated chunk by chunk in float64 (Chan et al.'s pairwise update of mean and sum of
    squared deviations), so memory is one chunk of networks; returned as float32 JAX arrays.
    """
    num, perms = _check_stack(model, samples, perms, chunk_size)
    _check_ddof(ddof, num)
    return _moments(model, samples, num, ddof, perms, chunk_size)


def ravel_stack(model: Model, samples: Params, perms: Sequence | None = None, *,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """The stack ravelled to a host array (S, num_params) float32, each network first permuted by its row of ``perms``.

    Built chunk by chunk, so besides the result only one chunk of networks is ever copied
    (e.g. aligned HMC samples for R-hat after alignment).
    """
    num, perms = _check_stack(model, samples, perms, chunk_size)
    return _ravel_stack(model, samples, num, perms, chunk_size)


# The public functions check their inputs once, at the boundary; the workers below trust them (and
# the permutations this module computes itself), so a 1,000-network stack is not re-checked per step.


def _check_stack(model, samples, perms, chunk_size) -> tuple[int, list | None]:
    """(number of networks, checked perms or None) of a stack of ``model`` and its optional perms."""
    model.check(samples, "samples", batch_ndim=1)
    num = model.num_stacked(samples)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if perms is not None:
        perms = permutation.check_perms(model, list(perms), samples, name="perms", batch_shape=(num,))
    return num, perms


def _check_ddof(ddof, num: int) -> None:
    if not isinstance(ddof, (int, np.integer)) or isinstance(ddof, bool) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative integer, got {ddof!r}")
    if num <= ddof:
        raise ValueError(f"the sd with ddof={ddof} needs more than {ddof} networks, got a stack of {num}")


def _moments(model, samples, num: int, ddof: int, perms, chunk_size: int) -> Gaussian:
    count, mean, m2 = 0, None, None
    for start, stop, flat in _flat_chunks(model, samples, perms, num, chunk_size):
        flat = np.asarray(flat, np.float64)
        chunk_mean = flat.mean(axis=0)
        chunk_m2 = np.sum((flat - chunk_mean) ** 2, axis=0)
        n = stop - start
        if mean is None:
            count, mean, m2 = n, chunk_mean, chunk_m2
        else:
            delta = chunk_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + chunk_m2 + delta**2 * (count * n / total)
            count = total
    sd = np.sqrt(m2 / (count - ddof))
    return Gaussian(model.unravel(jnp.asarray(mean, jnp.float32)), model.unravel(jnp.asarray(sd, jnp.float32)))


def _ravel_stack(model, samples, num: int, perms, chunk_size: int) -> np.ndarray:
    out = None
    for start, stop, flat in _flat_chunks(model, samples, perms, num, chunk_size):
        if out is None:
            out = np.empty((num, flat.shape[1]), np.float32)
        out[start:stop] = np.asarray(flat)
    return out


def _flat_chunks(model, samples, perms, num: int, chunk_size: int):
    """(start, stop, ravelled chunk) over the stack, chunk_size networks at a time, permuted if perms are given."""
    for start in range(0, num, chunk_size):
        stop = min(start + chunk_size, num)
        chunk = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[start:stop], jnp.float32), samples)
        chunk_perms = None if perms is None else [jnp.asarray(p[start:stop]) for p in perms]
        yield start, stop, _flatten(model, chunk, chunk_perms)


@partial(jax.jit, static_argnums=0)
def _flatten(model: Model, chunk: Params, perms: list | None) -> jax.Array:
    """Ravel a chunk of networks (M, num_params), each first permuted by its row of ``perms`` if given."""
    if perms is not None:
        chunk = permutation.permute_many(model, chunk, perms)
    return model.ravel(chunk)


def q_direct(model: Model, samples: Params, *, ddof: int = 1, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Gaussian:
    """q_d: mean and sd of the networks as they are, without alignment (the paper's "direct")."""
    return moments(model, samples, ddof=ddof, chunk_size=chunk_size)


# ---------------------------------------------------------------------------------------------
# Alignment


def q_rebasin(model: Model, samples: Params, *, reference: str | Params | None = "first", method: str = "weight",
              x=None, max_rounds: int = 10, ddof: int = 1, key: jax.Array | None = None,
              chunk_size: int = DEFAULT_CHUNK_SIZE, progress: bool | str = False, **align_options) -> CompactResult:
    """q_r: align every network to a reference by rebasin, then take mean and sd.

    Args:
      samples: stacked params (S, ...), numpy or JAX.
      reference: ``"first"`` or None (the first network, as in the authors' code; its own
        permutation is the identity by definition), an unstacked params pytree (e.g. the first
        kept HMC sample, to express an ensemble in HMC's basis), ``"mean"`` (iterate: align to
        the mean of the aligned stack until no permutation changes, at most ``max_rounds``), or
        ``"unaligned_mean"`` (align once to the mean of the unaligned stack, the authors'
        ``rb2mean``).
      method: ``rebasin`` method, "weight", "activation" (needs ``x``) or "cosine_first_layer".
      x: inputs (N, D) for activation matching.
      ddof: 1 (sample sd, the authors' torch.std) or 0.
      key: orders the coordinate descent of multi-layer weight matching.
      align_options: passed to ``rebasin.align_many`` (chunk_size of the matcher is not this one).
    """
    num, _ = _check_stack(model, samples, None, chunk_size)
    _check_ddof(ddof, num)
    common = dict(method=method, x=x, key=key, progress=progress, **align_options)
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be 'first', 'mean', 'unaligned_mean', None or a params pytree, got {reference!r}")
    elif reference is not None:
        model.check(reference, "reference")
    if isinstance(reference, str) and reference == "mean":
        _, perms = rebasin.align_to_mean(model, samples, max_rounds=max_rounds, **common)
        ref = None  # the mean of the aligned stack, i.e. q.mean, set below
    else:
        if reference in (None, "first"):
            ref = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[0]), samples)
        elif isinstance(reference, str):  # "unaligned_mean"
            ref = _moments(model, samples, num, ddof, None, chunk_size).mean
        else:
            ref = reference
        perms = [np.array(p, np.int32) for p in rebasin.align_many(model, ref, samples, **common)]
        if reference in (None, "first"):
            # The reference aligned to itself is the identity. Matching can return another
            # optimum where units tie (e.g. dead units under activation matching); pin it.
            for p in perms:
                p[0] = np.arange(p.shape[1], dtype=np.int32)
    perms = [np.asarray(p, np.int32) for p in perms]
    q = _moments(model, samples, num, ddof, perms, chunk_size)  # rebasin's own perms need no check
    if ref is None:
        ref = q.mean
    nots = np.sum([np.asarray(permutation.count_transpositions_many(p)) for p in perms], axis=0).astype(np.int64)
    return CompactResult(q=q, perms=perms, not_to_reference=nots, reference=ref)


def align_gaussian(model: Model, q: Gaussian, reference: Params, *, method: str = "weight", x=None,
                   key: jax.Array | None = None, activation_draws: int = 0,
                   **align_options) -> tuple[Gaussian, list[np.ndarray]]:
    """Put a mean-field Gaussian (VI's q, an ensemble's q_r) in a reference network's basis.

    By default the mean network is aligned to ``reference`` by rebasin (``method``). With
    activation matching and ``activation_draws = K > 0``, K networks drawn from q (key ``key``)
    are aligned jointly instead: their summed activation similarity, i.e. the similarity of their
    mean activation, is maximised (``rebasin.align_draws``; the authors' VI alignment averaged
    the activations of 10 sampled networks). Mean and sd are then permuted together. Returns
    (aligned Gaussian, perms: one (n_p,) array per permutation of the spec);
    ``permutation.total_transpositions(perms)`` is the NoT to the reference.
    """
    q = _as_gaussian(model, q)
    model.check(reference, "reference")
    if not isinstance(activation_draws, (int, np.integer)) or isinstance(activation_draws, bool) or activation_draws < 0:
        raise ValueError(f"activation_draws must be a non-negative integer, got {activation_draws!r}")
    if activation_draws and method != "activation":
        raise ValueError(f"activation_draws needs method='activation', got method={method!r}")
    if activation_draws:
        draws = gaussian.sample_gaussian(model, jax.random.key(0) if key is None else key, q, activation_draws)
        perms = [np.asarray(p, np.int32) for p in rebasin.align_draws(model, reference, draws, x, **align_options)]
    else:
        stacked_mean = model.stack_one(q.mean)
        perms = [np.asarray(p[0], np.int32)
                 for p in rebasin.align_many(model, reference, stacked_mean, method=method, x=x, key=key, **align_options)]
    mean, sd = permutation.permute_gaussian(model, q.mean, q.sd, perms)
    return Gaussian(mean, sd), perms


def q_rebasin_two_stage(model: Model, samples: Params, reference: Params, *, method: str = "weight", x=None,
                        ddof: int = 1, key: jax.Array | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                        progress: bool | str = False) -> CompactResult:
    """q_r of a stack in a shared reference's basis, in the authors' two stages (the deep ensemble).

    Stage 1 aligns every network to the stack's first network and takes mean and sd there
    (MNIST_models.py ``vri``); stage 2 aligns that Gaussian's mean network to ``reference`` and
    permutes mean and sd alongside (MNIST_eval_pairplot.py). Each network's permutation is the
    composition of its two stages, so ``moments(model, samples, perms=result.perms)`` equals ``result.q``.
    ``q_rebasin(model, samples, reference=reference)`` is the one-stage alternative.
    """
    within = q_rebasin(model, samples, reference="first", method=method, x=x, ddof=ddof, key=key, chunk_size=chunk_size,
                       progress=progress)
    q, shared = align_gaussian(model, within.q, reference, method=method, x=x, key=key)
    perms = [np.asarray(permutation.compose(p, s), np.int32) for p, s in zip(within.perms, shared)]
    nots = np.sum([np.asarray(permutation.count_transpositions_many(p)) for p in perms], axis=0).astype(np.int64)
    return CompactResult(q=q, perms=perms, not_to_reference=nots, reference=reference)


def _as_gaussian(model, q) -> Gaussian:
    if isinstance(q, Gaussian):
        mean, sd = q
    elif hasattr(q, "mean") and hasattr(q, "sd"):
        mean, sd = q.mean, q.sd
    else:
        try:
            mean, sd = q
        except (TypeError, ValueError):
            raise TypeError(f"q must be a compact.Gaussian, have .mean and .sd, or be a (mean, sd) pair, got {type(q).__name__}") from None
    model.check(mean, "q.mean")
    model.check(sd, "q.sd")
    return Gaussian(mean, sd)


# ---------------------------------------------------------------------------------------------
# The authors' low-rank Gaussian of an aligned ensemble


class LowRankGaussian(NamedTuple):
    """``N(mean, factor factor^T)``: ``mean`` params-shaped, ``factor`` (num_params, K) in ``model.ravel`` order."""

    mean: Params
    factor: np.ndarray


def low_rank_gaussian(model: Model, samples: Params, perms: Sequence | None = None) -> LowRankGaussian:
    """The Gaussian with the sample mean and the full sample covariance of a (small) stack of networks.

    The authors' rebasin.py ``vi_by_ensemble`` on the aligned ensemble: covariance
    ``C^T C / (S - 1)`` of the centred, ravelled networks C (S, num_params), of rank S - 1. They
    factor it by an SVD, ``B = U diag(s) / sqrt(S - 1)``; here ``B = C^T / sqrt(S - 1)``, which has
    the same ``B B^T`` (``U diag(s) = C^T V`` with V orthogonal), so draws ``mean + B z``,
    z ~ N(0, I_S), have the same distribution without the SVD. ``perms`` (one (S, n_p) array per
    permutation of the spec, e.g. ``q_rebasin``'s) align the networks first. Holds S x num_params floats: for
    ensembles, not for 1,000 HMC samples.
    """
    num, perms = _check_stack(model, samples, perms, DEFAULT_CHUNK_SIZE)
    if num < 2:
        raise ValueError(f"a sample covariance needs at least 2 networks, got {num}")
    flat = np.asarray(_ravel_stack(model, samples, num, perms, DEFAULT_CHUNK_SIZE), np.float64)
    mean = flat.mean(axis=0)
    factor = ((flat - mean) / np.sqrt(num - 1)).T.astype(np.float32)
    return LowRankGaussian(model.unravel(jnp.asarray(mean, jnp.float32)), factor)


def sample_low_rank(model: Model, key: jax.Array, q: LowRankGaussian, num_samples: int) -> Params:
    """``num_samples`` draws ``mean + factor z``, z ~ N(0, I_K), stacked along a leading axis."""
    z = jax.random.normal(key, (num_samples, q.factor.shape[1]), jnp.float32)
    flat = model.ravel(q.mean)[None] + z @ jnp.asarray(q.factor).T
    return model.unravel(flat)


# ---------------------------------------------------------------------------------------------
# Files


def save_compact(path: str | os.PathLike, model: Model, result: CompactResult | Gaussian) -> None:
    """Write a compact representation of ``model``'s networks as an npz (atomically); see the module docstring.

    A bare ``Gaussian`` is stored with an empty ``not_to_reference``.
    """
    if not isinstance(result, CompactResult):
        result = CompactResult.from_gaussian(model, result)
    q = _as_gaussian(model, result.q)
    arrays = {
        "mu": np.asarray(model.ravel(q.mean), np.float32),
        "sigma": np.asarray(model.ravel(q.sd), np.float32),
        "not_to_reference": np.asarray(result.not_to_reference, np.int64),
        io.MODEL_KEY: np.asarray(repr(model)),
    }
    if result.reference is not None:
        arrays["reference"] = np.asarray(model.ravel(result.reference), np.float32)
    if result.perms is not None:
        for p, perm in enumerate(result.perms):
            arrays[f"perms_{p}"] = np.asarray(perm, np.int32)
    io.save_npz_atomic(path, arrays)


def load_compact(path: str | os.PathLike, model: Model) -> CompactResult:
    """Read a file written by ``save_compact`` for ``model`` back into a ``CompactResult`` (JAX float32 params)."""
    with np.load(path) as npz:
        stored = {key: npz[key] for key in npz.files}
    description = model.stored_description(stored)  # files of earlier versions too
    missing = [name for name in ("mu", "sigma", "not_to_reference") if name not in stored]
    if missing or description is None:
        raise ValueError(f"{path} is not a compact representation: it lacks {missing or [io.MODEL_KEY]}")
    if description != repr(model):
        raise ValueError(f"{path} holds a compact representation of {description}, not of {model!r}")
    for name in ("mu", "sigma"):
        if stored[name].shape != (model.num_params,):
            raise ValueError(f"{path}: {name} has shape {stored[name].shape}, {model!r} needs ({model.num_params},)")
    unravel = lambda name: model.unravel(jnp.asarray(stored[name], jnp.float32))  # noqa: E731
    q = Gaussian(unravel("mu"), unravel("sigma"))
    reference = unravel("reference") if "reference" in stored else None
    num_perms = model.spec.num_perms
    perms = [np.asarray(stored[f"perms_{p}"]) for p in range(num_perms)] if "perms_0" in stored else None
    nots = np.asarray(stored["not_to_reference"])
    return CompactResult(q=q, perms=perms, not_to_reference=nots, reference=reference)
