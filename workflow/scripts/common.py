"""What every workflow script does: log to the rule's log file, load the configured data, build configs.

Scripts are thin adapters between Snakemake and the library: they read ``snakemake.input``,
``snakemake.params`` and ``snakemake.wildcards``, call compactbnn, and write the outputs.
The config was checked before any job ran (``compactbnn.config.checks``, called by the Snakefile).
"""

from __future__ import annotations

import errno
import logging
import os
import sys

# Several jobs may share one GPU (Snakemake limits them only with --resources gpu=N): JAX must
# not grab 75 % of the GPU's memory at start. Set before JAX initialises its backend.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# The jobs run the code of the repository they belong to, whether or not compactbnn is installed in
# their environment: a conda env made by --sdm conda holds the third-party packages only.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src"))

import numpy as np  # noqa: E402

from compactbnn import data, threads, train  # noqa: E402
from compactbnn.config import datasets, keys, shapes  # noqa: E402
from compactbnn import models  # noqa: E402


def start(snakemake) -> logging.Logger:
    """Send stdout, stderr (progress bars included) and logging to the rule's log file; set JAX's matmul precision.

    The job's own logger (named after the rule) logs at INFO; every library logger stays at WARNING,
    which keeps JAX's INFO line about a missing TPU ("Unable to initialize backend 'tpu'") out of
    the log without restricting JAX_PLATFORMS, so the same job still finds a GPU where there is one.
    Progress bars are flushed as they advance: `tail -f <log>` shows a running job live.

    The job computes with the threads Snakemake gives it (``threads.limit``: XLA's CPU pools,
    BLAS, the LAP pool), so ``--cores N`` and SLURM's CPUs per task mean what they say. An HMC job
    with a low-precision gradient gets deterministic GPU reductions (``mixed_precision``). Both must
    happen before JAX starts its backends, i.e. here, before any array is made.
    """
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = stream
    sys.excepthook = _report_unwritable
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s", force=True)
    logging.getLogger(snakemake.rule).setLevel(logging.INFO)
    hmc_params = snakemake.params.get("hmc")
    if hmc_params and hmc_params.get("gradient_precision", "float32") != "float32":
        from compactbnn.inference.hmc import mixed_precision

        mixed_precision.set_deterministic_reductions()
    threads.limit(int(snakemake.threads))
    precision = snakemake.params.get("matmul_precision")
    if precision is not None:
        import jax

        jax.config.update("jax_default_matmul_precision", precision)
    return logging.getLogger(snakemake.rule)


# A full disk, a quota, a read-only or foreign directory: the path and the cause in one line, no traceback.
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _report_unwritable(kind, error, traceback):
    """sys.excepthook of every job: an unwritable file in one line; any other error with its traceback."""
    if isinstance(error, OSError) and error.errno in UNWRITABLE:
        path = error.filename if error.filename is not None else "a file of this job"
        print(f"{path}: {error.strerror} ({errno.errorcode[error.errno]})", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, traceback)


def load_data(data_cfg: dict) -> dict[str, np.ndarray]:
    """The configured data set, cut to data.train_size / data.test_size (the first N images)."""
    arrays = data.load(data_cfg["dataset"], data_cfg["root"], idx_dir=data_cfg.get("idx_dir"))
    return data.take_first(arrays, data_cfg.get("train_size"), data_cfg.get("test_size"))


def model(data_cfg: dict, model_cfg: dict) -> models.Model:
    """The configured network (model.kind: mlp, cnn or resnet) as a ``compactbnn.models.Model``: what every
    library call that touches a network takes.

    From the config alone (the data set's input width and image shape are known without loading it),
    so a job that reads only saved networks builds it too. ``compactbnn.config.shapes`` describes the
    same network (its permutation widths and parameter count) for the config check and the cost model.
    """
    dataset, kind = data_cfg["dataset"], shapes.kind(model_cfg)
    if kind == "cnn":
        return models.CNN(image_shape=datasets.IMAGE_SHAPES[dataset], channels=tuple(model_cfg["channels"]),
                          dense=tuple(model_cfg["dense"]), num_classes=datasets.NUM_CLASSES)
    if kind == "resnet":
        return models.ResNet(image_shape=datasets.IMAGE_SHAPES[dataset], width=model_cfg["width"],
                             blocks=model_cfg["blocks"], num_classes=datasets.NUM_CLASSES)
    return models.MLP(tuple(shapes.widths_of(datasets.NUM_FEATURES[dataset], model_cfg["hidden"])))


def train_config(training_cfg: dict, **overrides) -> train.TrainConfig:
    """The library's TrainConfig from a training section of the config, ``overrides`` over its keys."""
    return train.TrainConfig(**keys.train_kwargs(training_cfg, **overrides))


def first(x: np.ndarray, size: int | None) -> np.ndarray:
    """The first ``size`` rows (all when size is None), e.g. the images activation matching sees."""
    if size is not None and size > len(x):
        raise ValueError(f"asked for the first {size} rows of {len(x)}")
    return x if size is None else x[:size]


def hmc_config(hmc_cfg: dict, prior_sd: float, matmul_precision: str):
    """The library's HMCConfig from the config's posterior.hmc section."""
    from compactbnn.inference import hmc

    return hmc.HMCConfig(**keys.hmc_kwargs(hmc_cfg, prior_sd, matmul_precision))


def vi_config(vi_cfg: dict, prior_sd: float):
    """The library's VIConfig from the config's posterior.vi section."""
    from compactbnn.inference import vi

    return vi.VIConfig(**keys.vi_kwargs(vi_cfg, prior_sd))


def sgmcmc_config(sgmcmc_cfg: dict, prior_sd: float, matmul_precision: str):
    """The library's SGMCMCConfig from the config's posterior.sgmcmc section."""
    from compactbnn.inference import sgmcmc

    return sgmcmc.SGMCMCConfig(**keys.sgmcmc_kwargs(sgmcmc_cfg, prior_sd, matmul_precision))


def load_hmc_samples(paths, model) -> tuple[list, list[int]]:
    """HMC samples (or SG-MCMC's: the same files) of every chain of ``model`` (a ``compactbnn.models.Model``)
    pooled along one leading axis (chain after chain), and each chain's count.

    Filled leaf by leaf into arrays allocated once: memory is the pooled samples plus one
    chain's file (1.6 GB per 1,000 samples of 784-512-10). A file of another model is refused.
    """
    import jax  # here, not at the top: start() configures JAX before a job's first array

    from compactbnn import io

    counts = []
    for path in paths:
        vectors, _ = io.load_vectors(path, model)
        counts.append(int(vectors.shape[0]))
        del vectors
    # the pytree's structure and shapes from an empty stack: model.unravel of numpy gives numpy views
    pooled = jax.tree_util.tree_map(lambda leaf: np.empty((sum(counts),) + leaf.shape[1:], np.float32),
                                    model.unravel(np.zeros((0, model.num_params), np.float32)))
    start = 0
    for path, count in zip(paths, counts):
        vectors, _ = io.load_vectors(path, model)
        for target, source in zip(jax.tree_util.tree_leaves(pooled), jax.tree_util.tree_leaves(model.unravel(vectors))):
            target[start: start + count] = source
        start += count
    return pooled, counts


def matching_options(arrays: dict, compact_cfg: dict) -> dict:
    """How Experiment C's rebasin matches (rules compact and compact_sgmcmc alike): the method, its
    inputs (images for activation matching, None for the weight-based methods) and its key."""
    import jax  # here, not at the top: start() configures JAX before a job's first array

    x = first(arrays["x_train"], compact_cfg.get("match_size")) if compact_cfg["matching"] == "activation" else None
    return dict(method=compact_cfg["matching"], x=x, key=jax.random.key(compact_cfg["seed"]))


def weight_rhat_before_and_after(model, samples, counts: list[int], perms) -> dict:
    """rhat.json's content: split R-hat of every weight across chains, before and after alignment by ``perms``.

    ``samples``: the chains pooled chain after chain, ``counts`` each chain's number; the chains are
    ravelled (and permuted) chunk by chunk. R-hat needs two or more chains of equal length, 4 samples each.
    """
    import jax

    from compactbnn.inference import diagnostics
    from compactbnn.symmetry import compact

    def chain_draws(aligned: bool) -> list[np.ndarray]:
        draws, start = [], 0
        for count in counts:
            part = jax.tree_util.tree_map(lambda leaf: leaf[start: start + count], samples)
            part_perms = [p[start: start + count] for p in perms]
            draws.append(np.asarray(compact.ravel_stack(model, part, part_perms if aligned else None), np.float32))
            start += count
        return draws

    rhat = {"chains": len(counts), "samples_per_chain": counts}
    if len(counts) >= 2 and len(set(counts)) == 1 and counts[0] >= 4:
        rhat["before_alignment"] = diagnostics.weight_rhat(chain_draws(aligned=False))
        rhat["after_alignment"] = diagnostics.weight_rhat(chain_draws(aligned=True))
    else:
        rhat["note"] = "R-hat of the weights needs at least two chains of equal length with 4 or more samples each"
    return rhat


# the compact representations, by the names the posterior_metrics rule gives its inputs (SG-MCMC's beyond the paper)
GAUSSIAN_INPUTS = {("hmc", "q_d"): "hmc_q_d", ("hmc", "q_r"): "hmc_q_r", ("ensemble", "q_d"): "ensemble_q_d",
                   ("ensemble", "q_r"): "ensemble_q_r", ("vi", "q"): "vi_q", ("sgmcmc", "q_d"): "sgmcmc_q_d",
                   ("sgmcmc", "q_r"): "sgmcmc_q_r"}
