"""MCMC convergence diagnostics: split R-hat and effective sample size, for scalars and for every weight.

All functions take draws as (chains, draws, ...) arrays, NumPyro's convention (its
``split_gelman_rubin`` and ``effective_sample_size`` do the arithmetic). Split R-hat cuts each
chain in halves, so it is defined for a single chain too (it then compares the two halves);
values near 1 mean the chains (halves) agree, values above ~1.1 that they have not mixed.

``weight_rhat`` summarises the split R-hat of every parameter. For an MLP posterior sampled
by several chains, permutation symmetry predicts large R-hat before alignment (each chain
sits in its own permutation mode) and a drop after aligning all samples to one reference.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

RHAT_THRESHOLD = 1.1


def _draws(draws, min_draws: int, name: str) -> np.ndarray:
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim < 2:
        raise ValueError(f"{name} must be (chains, draws, ...), got shape {draws.shape}")
    if draws.shape[0] < 1 or draws.shape[1] < min_draws:
        raise ValueError(f"{name} needs at least 1 chain and {min_draws} draws per chain, got shape {draws.shape}")
    return draws


def split_rhat(draws) -> np.ndarray:
    """Split R-hat (Gelman-Rubin over half-chains) of draws (chains, draws >= 4, ...) -> (...).

    NaN where every draw of a quantity is identical (no variance to compare).
    """
    draws = _draws(draws, 4, "draws")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(split_gelman_rubin(draws))


def ess(draws) -> np.ndarray:
    """Effective sample size over all chains of draws (chains, draws >= 2, ...) -> (...)."""
    draws = _draws(draws, 2, "draws")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(effective_sample_size(draws))


def chain_summary(draws) -> dict:
    """Summary of one scalar quantity (e.g. the test log-likelihood) over draws (chains, draws).

    Returns mean, sd, per-chain means, split R-hat and ESS (R-hat needs >= 4 draws and ESS >= 2;
    NaN otherwise), num_chains, num_draws.
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] < 1:
        raise ValueError(f"draws must be (chains, draws) of one scalar quantity, got shape {draws.shape}")
    return {
        "num_chains": int(draws.shape[0]),
        "num_draws": int(draws.shape[1]),
        "mean": float(draws.mean()),
        "sd": float(draws.std()),
        "chain_means": [float(m) for m in draws.mean(axis=1)],
        "split_rhat": float(split_rhat(draws)) if draws.shape[1] >= 4 else float("nan"),
        "ess": float(ess(draws)) if draws.shape[1] >= 2 else float("nan"),
    }


def weight_rhat(samples_per_chain, *, threshold: float = RHAT_THRESHOLD, block_size: int = 16384) -> dict:
    """Split R-hat of every parameter, summarised: median, max, fraction above ``threshold``.

    ``samples_per_chain``: (chains, draws, D) array, or a sequence of per-chain (draws, D)
    arrays (e.g. memory maps of ``hmc.ChainResult.samples``, which are read block by block, so
    memory stays at chains x draws x block_size). Parameters whose draws are all identical have
    no R-hat; they are counted in ``num_undefined`` and left out of the statistics.
    """
    chains: Sequence = samples_per_chain if not isinstance(samples_per_chain, np.ndarray) else list(samples_per_chain)
    if len(chains) < 1:
        raise ValueError("samples_per_chain holds no chain")
    shapes = {tuple(np.shape(c)) for c in chains}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every chain must be (draws, D) with the same shape, got shapes {sorted(shapes)}")
    num_draws, num_params = next(iter(shapes))
    if num_draws < 4:
        raise ValueError(f"split R-hat needs at least 4 draws per chain, got {num_draws}")
    values = np.empty(num_params, np.float64)
    for start in range(0, num_params, block_size):
        stop = min(start + block_size, num_params)
        block = np.stack([np.asarray(c[:, start:stop], dtype=np.float64) for c in chains])
        values[start:stop] = split_rhat(block)
    defined = values[np.isfinite(values)]
    return {
        "num_chains": len(chains),
        "num_draws": int(num_draws),
        "num_params": int(num_params),
        "num_undefined": int(num_params - defined.size),
        "median": float(np.median(defined)) if defined.size else float("nan"),
        "max": float(defined.max()) if defined.size else float("nan"),
        "fraction_above_threshold": float(np.mean(defined > threshold)) if defined.size else float("nan"),
        "threshold": float(threshold),
    }
