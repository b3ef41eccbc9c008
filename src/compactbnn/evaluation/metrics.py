"""Predictive distributions and their metrics (Table 1 of PAPER.md).

A *predictive* is an (N, C) table of class probabilities: for a set of networks (HMC samples,
ensemble members, draws from a q) the mean of their softmax outputs. The metrics compare such
tables on the test set:

- ``agreement(p, p_ref)``: fraction of points whose argmax class equals the reference's (HMC's);
- ``total_variation(p, p_ref)``: mean over points of half the L1 distance between the rows;
- ``accuracy``, ``nll`` and ``expected_calibration_error`` against the labels;
- ``running_predictive``: accuracy and NLL of the predictive of the first n networks, every n.

Metric functions take numpy or JAX arrays and return Python floats. ``predictive`` runs over
chunks of samples and of data, so 1,000 samples of 784-512-10 (1.6 GB as float32, e.g. a numpy
array loaded from disk) over 10,000 test images need only one chunk of samples on the device
plus samples x data batch x width activations at a time.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from compactbnn.models import Model, Params
from compactbnn.symmetry import gaussian

DATA_BATCH_SIZE = 1000
SAMPLE_BATCH_SIZE = 100
NLL_FLOOR = 1e-12  # probabilities are floored here in ``nll`` so a float32 underflow to 0 gives 27.6, not inf
PAPER_NUM_Q_SAMPLES = 100  # PAPER.md: "predictives of q use 100 Monte Carlo samples" (its Table 1 q columns used 200: config.yaml)


# ----------------------------------------------------------------------------- predictives


def predictive(model: Model, samples: Params, x, *, batch_size: int = DATA_BATCH_SIZE,
               sample_batch_size: int = SAMPLE_BATCH_SIZE) -> np.ndarray:
    """Mean softmax over a stack of networks of ``model``: (N, C) float64 numpy array.

    Args:
      model: the networks' architecture (``compactbnn.models.Model``).
      samples: stacked params, every leaf (S, ...) (numpy or JAX; numpy stays on the host and is
        moved to the device one chunk of ``sample_batch_size`` samples at a time).
      x: inputs (N, D).
      batch_size: data rows per device call; ``sample_batch_size``: networks per device call.
    Peak device memory is about sample_batch_size * (params + batch_size * max width) floats.
    """
    num_samples = _num_stacked(model, samples)
    _check_inputs(model, x)
    _check_batch_sizes(batch_size, sample_batch_size)

    def chunk(start: int, size: int):
        def take(leaf):
            part = jnp.asarray(leaf[start: start + size], jnp.float32)
            if part.shape[0] < size:  # the last chunk: pad by repeating its first network (weight 0)
                part = jnp.concatenate([part, jnp.repeat(part[:1], size - part.shape[0], axis=0)])
            return part

        return jax.tree_util.tree_map(take, samples)

    return _accumulate_predictive(model, chunk, num_samples, jnp.asarray(x, jnp.float32), batch_size, sample_batch_size)


def network_probabilities(model: Model, params: Params, x, *, batch_size: int = DATA_BATCH_SIZE) -> np.ndarray:
    """Softmax of one network of ``model`` (no model axis), e.g. the mean weights mu alone: (N, C)."""
    stacked = model.stack_one(params)
    return predictive(model, stacked, x, batch_size=batch_size, sample_batch_size=1)


def gaussian_predictive(
    model: Model,
    key: jax.Array,
    q,
    x,
    num_samples: int = PAPER_NUM_Q_SAMPLES,
    *,
    batch_size: int = DATA_BATCH_SIZE,
    sample_batch_size: int = SAMPLE_BATCH_SIZE,
) -> np.ndarray:
    """Predictive of ``num_samples`` Monte Carlo draws from q (paper: 100): (N, C).

    Equals ``predictive(model, gaussian.sample_gaussian(model, key, q, num_samples), x)`` but draws only one
    chunk of samples at a time.
    """
    if not _is_count(num_samples):
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    mean, sd = gaussian.mean_and_sd(q)
    _check_inputs(model, x)
    _check_batch_sizes(batch_size, sample_batch_size)

    def chunk(start: int, size: int):
        # Always ``size`` draws (those past num_samples get weight 0): one shape, one compilation.
        return gaussian.draws(model, key, mean, sd, jnp.arange(start, start + size))

    return _accumulate_predictive(model, chunk, num_samples, jnp.asarray(x, jnp.float32), batch_size, sample_batch_size)


@functools.partial(jax.jit, static_argnums=0)
def _weighted_softmax_sum(model, params, x, weights):
    """sum_s weights[s] * softmax(f_s(x)) for a chunk of networks: (b, C)."""
    logits = jax.vmap(model.apply, in_axes=(0, None))(params, x)
    return jnp.einsum("s,sbc->bc", weights, jax.nn.softmax(logits, axis=-1))


def _accumulate_predictive(model: Model, chunk: Callable, num_samples: int, x: jax.Array, batch_size: int,
                           sample_batch_size: int) -> np.ndarray:
    n = x.shape[0]
    batch_size = min(batch_size, n)
    sample_batch_size = min(sample_batch_size, num_samples)
    num_batches = -(-n // batch_size)
    # Pad the data to whole batches so every device call has one shape (one compilation).
    x_padded = jnp.pad(x, ((0, num_batches * batch_size - n), (0, 0)))
    total = None
    for start in range(0, num_samples, sample_batch_size):
        # chunk(start, size) gives exactly ``size`` networks; those past num_samples are padding.
        params = chunk(start, sample_batch_size)
        weights = (jnp.arange(start, start + sample_batch_size) < num_samples).astype(jnp.float32)
        sums = [_weighted_softmax_sum(model, params, x_padded[b * batch_size: (b + 1) * batch_size], weights)
                for b in range(num_batches)]
        chunk_sum = np.asarray(jnp.concatenate(sums)[:n], np.float64)
        total = chunk_sum if total is None else total + chunk_sum
    return total / num_samples


def sample_probabilities(model: Model, samples: Params, x, *, batch_size: int = DATA_BATCH_SIZE,
                         sample_batch_size: int = SAMPLE_BATCH_SIZE) -> np.ndarray:
    """Softmax of every network of a stack of ``model`` apart: (S, N, C) float32 on the host (400 MB for 1,000 x 10,000 x 10).

    ``predictive`` is their mean over S; keeping them lets running means over any order of the
    networks (``running_predictive``) cost one forward pass per network.
    """
    num_samples = _num_stacked(model, samples)
    _check_inputs(model, x)
    _check_batch_sizes(batch_size, sample_batch_size)
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    batch_size, sample_batch_size = min(batch_size, n), min(sample_batch_size, num_samples)
    num_batches = -(-n // batch_size)
    x_padded = jnp.pad(x, ((0, num_batches * batch_size - n), (0, 0)))  # one shape for every device call
    out = None
    for start in range(0, num_samples, sample_batch_size):
        real = min(sample_batch_size, num_samples - start)
        # pad the last chunk by repeating its first network: one shape, one compilation
        indices = np.concatenate([np.arange(start, start + real), np.full(sample_batch_size - real, start)])
        params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[indices], jnp.float32), samples)
        chunk = jnp.concatenate(
            [_softmax_many(model, params, x_padded[b * batch_size: (b + 1) * batch_size]) for b in range(num_batches)], axis=1)
        chunk = np.asarray(chunk[:real, :n])
        if out is None:
            out = np.empty((num_samples,) + chunk.shape[1:], np.float32)
        out[start: start + real] = chunk
    return out


def running_predictive(probabilities, y, *, order=None, chunk_size: int = SAMPLE_BATCH_SIZE) -> dict[str, np.ndarray]:
    """Accuracy and NLL of the predictive of the first n networks, for every n: when has a sample average converged?

    ``probabilities``: (S, N, C), each network's softmax (``sample_probabilities``). ``order``: the
    networks' indices in the order they are taken (default 0..S-1), e.g. HMC chains interleaved.
    Returns arrays of length ``len(order)``: ``accuracy[n - 1]`` and ``nll[n - 1]`` are those of the
    predictive of networks ``order[:n]`` (their mean softmax, as ``predictive``), ``sample_accuracy[n - 1]``
    and ``sample_nll[n - 1]`` those of network ``order[n - 1]`` alone (the authors' MNIST_HMC.py plots both).
    Running sums are formed ``chunk_size`` networks at a time (memory: chunk_size x N x C float64).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities must be (S, N, C), one softmax table per network, got shape {probabilities.shape}")
    num_samples = probabilities.shape[0]
    order = np.arange(num_samples) if order is None else np.asarray(order)
    if order.ndim != 1 or order.size < 1 or not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"order must be a non-empty 1-D array of network indices, got {order!r}")
    if order.min() < 0 or order.max() >= num_samples:
        raise ValueError(f"order holds indices outside the {num_samples} networks: [{order.min()}, {order.max()}]")
    if not _is_count(chunk_size):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    out = {name: [] for name in ("accuracy", "nll", "sample_accuracy", "sample_nll")}
    total = 0.0
    for start in range(0, order.size, chunk_size):
        chunk = probabilities[order[start: start + chunk_size]].astype(np.float64)
        sums = np.cumsum(chunk, axis=0) + total
        total = sums[-1]
        for i, one in enumerate(chunk):
            mean = sums[i] / (start + i + 1)
            out["accuracy"].append(accuracy(mean, y))
            out["nll"].append(nll(mean, y))
            out["sample_accuracy"].append(accuracy(one, y))
            out["sample_nll"].append(nll(one, y))
    return {name: np.asarray(values) for name, values in out.items()}


@functools.partial(jax.jit, static_argnums=0)
def _softmax_many(model, params, x):
    """softmax(f_s(x)) of every network in a chunk: (s, b, C)."""
    return jax.nn.softmax(jax.vmap(model.apply, in_axes=(0, None))(params, x), axis=-1)


def _num_stacked(model: Model, samples) -> int:
    """The number of networks in ``samples``, after checking that they are a stack (leading sample axis) of ``model``."""
    model.check(samples, "samples", batch_ndim=1)
    num_samples = model.num_stacked(samples)
    if num_samples < 1:
        raise ValueError("samples is an empty stack (S = 0)")
    return num_samples


def _check_inputs(model: Model, x) -> None:
    expected = model.num_features
    if np.ndim(x) != 2 or np.shape(x)[1] != expected:
        raise ValueError(f"x must be (N, {expected}) for these networks, got shape {np.shape(x)}")
    if np.shape(x)[0] < 1:
        raise ValueError("x has no rows")


def _check_batch_sizes(batch_size, sample_batch_size) -> None:
    if not _is_count(batch_size) or not _is_count(sample_batch_size):
        raise ValueError(f"batch_size and sample_batch_size must be positive integers, got {batch_size!r} and {sample_batch_size!r}")


def _is_count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


# ----------------------------------------------------------------------------- metrics


def agreement(p, p_ref) -> float:
    """Fraction of points whose most probable class under ``p`` equals that under ``p_ref``."""
    p, p_ref = _check_pair(p, p_ref)
    return float(np.mean(np.argmax(p, axis=1) == np.argmax(p_ref, axis=1)))


def total_variation(p, p_ref) -> float:
    """Mean over points of the total variation distance ``0.5 * sum_c |p[n, c] - p_ref[n, c]|``."""
    p, p_ref = _check_pair(p, p_ref)
    return float(np.mean(0.5 * np.sum(np.abs(p - p_ref), axis=1)))


def accuracy(p, y) -> float:
    """Fraction of points whose most probable class is the label."""
    p, y = _check_labels(p, y)
    return float(np.mean(np.argmax(p, axis=1) == y))


def nll(p, y) -> float:
    """Mean negative log predictive probability of the labels, ``-mean log p[n, y_n]``.

    Probabilities are floored at ``NLL_FLOOR`` (1e-12) so that one float32 underflow does not
    make the mean infinite.
    """
    p, y = _check_labels(p, y)
    return float(np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], NLL_FLOOR))))


def expected_calibration_error(p, y, num_bins: int = 15) -> float:
    """ECE with ``num_bins`` equal-width confidence bins (Guo et al., 2017).

    Confidence is the largest probability of a row, the prediction its argmax. Bin b holds the
    confidences in (b/B, (b+1)/B] (the first bin also holds 0). ECE = sum over bins of
    (points in bin / N) * |accuracy in bin - mean confidence in bin|.
    """
    if not _is_count(num_bins):
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    p, y = _check_labels(p, y)
    confidence = np.max(p, axis=1)
    correct = (np.argmax(p, axis=1) == y).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, num_bins + 1)[1:-1]
    bins = np.searchsorted(inner_edges, confidence, side="left")  # right-closed bins
    # sum over bins of (n_b / N) |acc_b - conf_b| = sum over bins of |correct_b - confidence_b| / N
    confidence_sums = np.bincount(bins, weights=confidence, minlength=num_bins)
    correct_sums = np.bincount(bins, weights=correct, minlength=num_bins)
    return float(np.sum(np.abs(correct_sums - confidence_sums)) / len(y))


def summary(p, y, p_ref=None, *, num_bins: int = 15) -> dict[str, float]:
    """All metrics of one predictive: accuracy, nll, ece, and agreement and tv against ``p_ref`` if given."""
    result = {"accuracy": accuracy(p, y), "nll": nll(p, y), "ece": expected_calibration_error(p, y, num_bins)}
    if p_ref is not None:
        result["agreement"] = agreement(p, p_ref)
        result["total_variation"] = total_variation(p, p_ref)
    return result


def _check_probabilities(p, name: str) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"{name} must be an (N, C) table of class probabilities with N >= 1, C >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} holds negative or non-finite entries: probabilities expected (logits passed?)")
    worst = float(np.max(np.abs(p.sum(axis=1) - 1.0)))
    if worst > 1e-3:
        raise ValueError(f"rows of {name} must sum to 1 (largest deviation {worst:.3g}): probabilities expected (logits passed?)")
    return p


def _check_pair(p, p_ref) -> tuple[np.ndarray, np.ndarray]:
    p = _check_probabilities(p, "p")
    p_ref = _check_probabilities(p_ref, "p_ref")
    if p.shape != p_ref.shape:
        raise ValueError(f"p and p_ref differ in shape: {p.shape} vs {p_ref.shape}")
    return p, p_ref


def _check_labels(p, y) -> tuple[np.ndarray, np.ndarray]:
    p = _check_probabilities(p, "p")
    y = np.asarray(y)
    if y.shape != (p.shape[0],):
        raise ValueError(f"y must hold one label per row of p, shape ({p.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}), got range [{y.min()}, {y.max()}]")
    return p, y.astype(np.int64)
