"""MCMC convergence diagnostics from ArviZ: rank-normalised split R-hat, bulk ESS, and each chain's traces as netCDF.

All functions take draws as (chains, draws, ...) arrays, ArviZ's convention.

* **R-hat** is ArviZ's default, the rank-normalised split R-hat of Vehtari et al. (2021,
  ``az.rhat(method="rank")``): every chain is split in halves, the draws of each quantity are
  replaced by the normal scores of their ranks over all chains, and R-hat is the larger of the
  Gelman-Rubin statistics of these scores and of the scores of the folded draws |x - median|.
  ``split_rhat`` computes exactly ArviZ's formula (``test_hmc`` checks it against ``az.rhat`` to
  1e-9), vectorised over quantities: ArviZ evaluates it one quantity at a time in Python (about
  4 ms each here), which would take hours for the 407,050 weights of the paper's network, twice.
  With one chain ArviZ reports no R-hat (it wants two chains); ``split_rhat`` then compares the
  chain's halves with the same formula, a check that the chain is stationary.
  Values near 1 mean the chains (halves) agree, above ~1.1 that they have not mixed (Vehtari
  et al. suggest 1.01 for the rank-normalised version; ``RHAT_THRESHOLD`` keeps 1.1).
* **ESS** is ArviZ's bulk effective sample size (``az.ess(method="bulk")``), for a few scalars.
* **Traces**: ``chain_trace`` turns a ``hmc.ChainResult`` (``sgmcmc_chain_trace`` a
  ``sgmcmc.SGMCMCResult``) into an ``az.InferenceData`` that ``write_trace`` saves as netCDF (``trace.nc`` beside a chain's samples), so ``az.summary`` and
  ``az.plot_trace`` read it, and ``az.concat(..., dim="chain")`` joins chains.

``weight_rhat`` summarises the R-hat of every parameter. For a neural network's posterior sampled by
several chains, permutation symmetry predicts large R-hat before alignment (each chain sits in its own
permutation mode) and a drop after aligning all samples to one reference.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
from scipy import special, stats

from compactbnn import io

with warnings.catch_warnings():  # ArviZ 0.23 announces its 1.0 refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

RHAT_THRESHOLD = 1.1
RHAT_METHOD = "rank-normalised split R-hat (Vehtari et al. 2021; ArviZ's az.rhat default)"


def _draws(draws, min_draws: int, name: str) -> np.ndarray:
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim < 2:
        raise ValueError(f"{name} must be (chains, draws, ...), got shape {draws.shape}")
    if draws.shape[0] < 1 or draws.shape[1] < min_draws:
        raise ValueError(f"{name} needs at least 1 chain and {min_draws} draws per chain, got shape {draws.shape}")
    return draws


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """ArviZ's ``_z_scale`` along axis 0 of (values, quantities): normal quantiles of the fractional ranks (r - 3/8) / (S + 1/4)."""
    ranks = stats.rankdata(values, method="average", axis=0)
    size = values.shape[0]
    return special.ndtri((ranks - 0.375) / (size - 0.75 + 1))  # ndtri: the standard normal quantile, as norm.ppf


def _gelman_rubin(chains: np.ndarray) -> np.ndarray:
    """ArviZ's ``_rhat`` of (chains, draws, quantities): sqrt(((n - 1) W + B) / n / W) per quantity."""
    n = chains.shape[1]
    within = np.mean(np.var(chains, axis=1, ddof=1), axis=0)
    between = n * np.var(np.mean(chains, axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def split_rhat(draws) -> np.ndarray:
    """Rank-normalised split R-hat of draws (chains, draws >= 4, ...) -> (...), as ``az.rhat(method="rank")``.

    NaN where a quantity has a NaN draw or every draw identical (no variance to compare).
    """
    draws = _draws(draws, 4, "draws")
    chains, n = draws.shape[:2]
    shape = draws.shape[2:]
    flat = draws.reshape(chains, n, -1)
    half = n // 2
    split = np.concatenate([flat[:, :half], flat[:, n - half:]], axis=0)  # (2 chains, half, Q), middle draw dropped
    pooled = split.reshape(2 * chains * half, -1)
    folded = np.abs(pooled - np.median(pooled, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        bulk = _gelman_rubin(_normal_scores(pooled).reshape(split.shape))
        tail = _gelman_rubin(_normal_scores(folded).reshape(split.shape))
    rhat = np.maximum(bulk, tail)
    rhat[np.isnan(pooled).any(axis=0) | np.isnan(bulk) | np.isnan(tail)] = np.nan
    return rhat.reshape(shape)


def ess(draws) -> np.ndarray:
    """ArviZ's bulk effective sample size over all chains of draws (chains, draws >= 4, ...) -> (...)."""
    draws = _draws(draws, 4, "draws")
    dataset = az.convert_to_dataset(draws.reshape(draws.shape[:2] + (-1,)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(az.ess(dataset, method="bulk")["x"].values).reshape(draws.shape[2:])


def chain_summary(draws) -> dict:
    """Summary of one scalar quantity (e.g. the test log-likelihood) over draws (chains, draws).

    Returns mean, sd, per-chain means, rank-normalised split R-hat and bulk ESS (both need >= 4
    draws; NaN otherwise), num_chains, num_draws.
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] < 1:
        raise ValueError(f"draws must be (chains, draws) of one scalar quantity, got shape {draws.shape}")
    enough = draws.shape[1] >= 4
    return {
        "num_chains": int(draws.shape[0]),
        "num_draws": int(draws.shape[1]),
        "mean": float(draws.mean()),
        "sd": float(draws.std()),
        "chain_means": [float(m) for m in draws.mean(axis=1)],
        "split_rhat": float(split_rhat(draws)) if enough else float("nan"),
        "ess": float(ess(draws)) if enough else float("nan"),
    }


def weight_rhat(samples_per_chain, *, threshold: float = RHAT_THRESHOLD, block_size: int = 4096) -> dict:
    """Rank-normalised split R-hat of every parameter, summarised: median, max, fraction above ``threshold``.

    ``samples_per_chain``: (chains, draws, D) array, or a sequence of per-chain (draws, D)
    arrays (e.g. memory maps of ``hmc.ChainResult.samples``, which are read block by block, so
    memory stays at a few copies of chains x draws x block_size float64). Parameters whose draws
    are all identical have no R-hat; they are counted in ``num_undefined`` and left out of the
    statistics. Cost: the ranks sort every parameter's draws, about 1 s per million draws here.
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
        "method": RHAT_METHOD,
        "num_chains": len(chains),
        "num_draws": int(num_draws),
        "num_params": int(num_params),
        "num_undefined": int(num_params - defined.size),
        "median": float(np.median(defined)) if defined.size else float("nan"),
        "max": float(defined.max()) if defined.size else float("nan"),
        "fraction_above_threshold": float(np.mean(defined > threshold)) if defined.size else float("nan"),
        "threshold": float(threshold),
    }


# ---------------------------------------------------------------------------------------------
# A chain's traces as ArviZ data


def chain_trace(result, chain: int) -> az.InferenceData:
    """One HMC chain's scalar traces as ``az.InferenceData`` (chain coordinate ``chain``).

    ``result``: a ``hmc.ChainResult``. ``draw`` is the post-warmup iteration throughout. Groups:
      posterior: at the kept samples, ``train_log_likelihood`` and ``potential_energy`` (and, with
        test data, ``test_log_likelihood`` and ``test_accuracy``): what ``az.summary`` and
        ``az.plot_trace`` show by default.
      sample_stats: ArviZ's ``lp`` (= -potential energy), ``acceptance_rate`` and ``diverging`` of
        the transitions that gave the kept samples (aligned with posterior, as ArviZ expects).
      iteration_stats: every post-warmup iteration: ``lp``, ``acceptance_rate``, ``diverging``,
        ``potential_energy``, ``train_log_likelihood``, ``nan_energy`` (e.g.
        ``az.summary(idata, group="iteration_stats")``, ``az.plot_trace(idata.iteration_stats)``).
      warmup_iteration_stats: the same over the warmup iterations (only with step-size adaptation).
    """
    traces, warmup, done = result.traces, result.num_warmup, result.completed_iterations
    kept = np.asarray(result.kept_indices)

    def stats_of(iterations):
        energy = np.asarray(traces["potential_energy"], np.float64)[iterations]
        return {
            "lp": -energy,
            "acceptance_rate": np.asarray(traces["accept_prob"], np.float64)[iterations],
            "diverging": np.asarray(traces["diverging"], bool)[iterations],
            "potential_energy": energy,
            "train_log_likelihood": np.asarray(traces["log_likelihood"], np.float64)[iterations],
            "nan_energy": np.asarray(traces["nan_energy"], bool)[iterations],
        }

    def dataset(values: dict, draws: np.ndarray):
        return az.dict_to_dataset({k: v[None] for k, v in values.items()}, library=None,
                                  coords={"chain": [int(chain)], "draw": np.asarray(draws, np.int64)})

    at_kept = stats_of(warmup + kept)
    posterior = {"train_log_likelihood": at_kept["train_log_likelihood"], "potential_energy": at_kept["potential_energy"]}
    if result.test_log_likelihood is not None:
        posterior["test_log_likelihood"] = np.asarray(result.test_log_likelihood, np.float64)
        posterior["test_accuracy"] = np.asarray(result.test_accuracy, np.float64)
    sampled = np.arange(max(done - warmup, 0))
    groups = {
        "posterior": dataset(posterior, kept),
        "sample_stats": dataset({k: at_kept[k] for k in ("lp", "acceptance_rate", "diverging")}, kept),
        "iteration_stats": dataset(stats_of(warmup + sampled), sampled),
    }
    if warmup:
        groups["warmup_iteration_stats"] = dataset(stats_of(np.arange(min(warmup, done))), np.arange(min(warmup, done)))
    idata = az.InferenceData(**groups)
    idata.posterior.attrs.update({"chain_name": result.chain_name, "step_size": result.step_size,
                                  "num_steps": result.num_steps, "num_warmup": warmup})
    return idata


def sgmcmc_chain_trace(result, chain: int) -> az.InferenceData:
    """One SG-MCMC chain's scalar traces as ``az.InferenceData`` (chain coordinate ``chain``), as ``chain_trace`` for HMC.

    ``result``: a ``sgmcmc.SGMCMCResult``. Groups:
      posterior: at the kept samples (``draw`` = the step each is the state after): ``log_prior``,
        ``train_log_likelihood`` (exact, all training data), ``log_posterior`` (their sum, up to the
        evidence) and the other metrics (``train_accuracy``, ``test_log_likelihood``, ``test_accuracy``),
        and ``cycle``;
      sample_stats: ArviZ's ``lp`` (= log_posterior) and ``step_size`` (the learning rate alpha_k) of the kept steps;
      iteration_stats: every step done: ``log_density`` (the minibatch estimate), ``step_size``,
        ``sampling`` (the stage: noise on) and ``cycle``.
    """
    kept = np.asarray(result.kept_steps, np.int64)
    steps = np.arange(result.completed_steps)
    schedule = result.schedule

    def dataset(values: dict, draws: np.ndarray):
        return az.dict_to_dataset({k: np.asarray(v)[None] for k, v in values.items()}, library=None,
                                  coords={"chain": [int(chain)], "draw": np.asarray(draws, np.int64)})

    metrics = {k: np.asarray(v, np.float64) for k, v in result.metrics.items()}
    metrics.setdefault("log_prior", np.zeros(0))  # no cycle completed: no kept sample
    metrics.setdefault("train_log_likelihood", np.zeros(0))
    log_posterior = metrics["log_prior"] + metrics["train_log_likelihood"]
    posterior = {**metrics, "log_posterior": log_posterior, "cycle": np.asarray(result.kept_cycles, np.int64)}
    step_size_at = schedule.step_sizes(0, result.completed_steps) if result.completed_steps else np.zeros(0)
    idata = az.InferenceData(
        posterior=dataset(posterior, kept),
        sample_stats=dataset({"lp": log_posterior, "step_size": step_size_at[kept]}, kept),
        iteration_stats=dataset({"log_density": np.asarray(result.traces["log_density"], np.float64), "step_size": step_size_at,
                                 "sampling": schedule.sampling(0, result.completed_steps), "cycle": schedule.cycle_of(steps)}, steps),
    )
    idata.posterior.attrs.update({"chain_name": result.chain_name, "sampler": result.config.sampler,
                                  "steps_per_epoch": result.steps_per_epoch, "cycle_length": schedule.layout.cycle_length})
    return idata


def write_trace(path: str | os.PathLike, idata: az.InferenceData) -> None:
    """Write ``idata`` as netCDF (ArviZ's ``to_netcdf``) atomically (``io.atomic_write``)."""
    io.atomic_write(path, lambda tmp: idata.to_netcdf(str(tmp)))


def read_trace(path: str | os.PathLike) -> az.InferenceData:
    """A trace.nc written by ``write_trace`` (``az.from_netcdf``), loaded into memory."""
    idata = az.from_netcdf(path)
    for group in idata.groups():
        getattr(idata, group).load()
    return idata
