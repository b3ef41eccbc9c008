"""Mean-field variational inference (Experiment C of PAPER.md), Bayes-by-backprop style.

The approximate posterior is a Gaussian per weight and bias, ``q(theta) = N(mu, diag(sd^2))``,
against the prior ``N(0, prior_sd^2)`` on every parameter. The standard deviation is
parameterised as ``sd = exp(log_sd)`` (the authors' ``MFVILinear``; they clamp at 1e-5, we do
not, since exp is positive and the clamp would stop gradients). Means start at the
PyTorch-default initialisation (``mlp.init``), every sd at ``init_sd`` (paper: 0.05).

Per minibatch step the objective is the NELBO estimate

    N_train * mean NLL(batch; theta) + KL(q || prior),    theta = mu + sd * eps, eps ~ N(0, I)

with one reparameterised draw of all weights per step (``num_samples`` draws averaged if set),
the KL in closed form, and Adam on (mu, log_sd). Minibatches follow ``train.py`` exactly:
epoch e shuffles with ``fold_in(data_key, e)`` through ``train.minibatch_indices`` (last batch
padded and masked), and one epoch is one jitted ``lax.scan``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from compactbnn import mlp, train


@dataclass(frozen=True)
class VIConfig:
    """Hyperparameters of mean-field VI (defaults: the paper's Adam lr 1e-3, batch 100, 50 epochs, N(0, 1) prior, sd 0.05).

    ``num_samples``: reparameterised weight draws per minibatch step, their NLLs averaged (paper: 1).
    ``kl_weight``: factor on the KL term (the authors' ``beta``); 1 gives the NELBO.
    """

    learning_rate: float = 1e-3
    batch_size: int = 100
    epochs: int = 50
    prior_sd: float = 1.0
    init_sd: float = 0.05
    num_samples: int = 1
    kl_weight: float = 1.0

    def __post_init__(self):
        if not _is_real(self.learning_rate) or not self.learning_rate > 0:
            raise ValueError(f"VIConfig.learning_rate must be a positive number, got {self.learning_rate!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"VIConfig.batch_size must be a positive integer, got {self.batch_size!r}")
        if not _is_int(self.epochs) or self.epochs < 0:
            raise ValueError(f"VIConfig.epochs must be a non-negative integer, got {self.epochs!r}")
        if not _is_real(self.prior_sd) or not self.prior_sd > 0:
            raise ValueError(f"VIConfig.prior_sd must be a positive number, got {self.prior_sd!r}")
        if not _is_real(self.init_sd) or not self.init_sd > 0:
            raise ValueError(f"VIConfig.init_sd must be a positive number, got {self.init_sd!r}")
        if not _is_int(self.num_samples) or self.num_samples < 1:
            raise ValueError(f"VIConfig.num_samples must be a positive integer, got {self.num_samples!r}")
        if not _is_real(self.kl_weight) or not self.kl_weight >= 0:
            raise ValueError(f"VIConfig.kl_weight must be a non-negative number, got {self.kl_weight!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)


@dataclass
class VIResult:
    """The fitted q: ``mean`` and ``sd`` pytrees shaped like ``mlp`` params (no model axis).

    ``history`` (numpy arrays):
      ``nelbo_running`` (epochs,): mean over the epoch's steps of the minibatch NELBO estimate,
        each step weighted by its number of real examples;
      ``nll_running`` (epochs,): the same for the mean NLL term (per example);
      ``kl`` (epochs + 1,): KL(q || prior) at initialisation and after every epoch;
      ``sd_mean`` (epochs + 1,): the mean sd over all parameters;
      for every evaluation set ``s``: ``s_loss`` and ``s_accuracy`` (epochs + 1,) of the mean
        weights alone (a deterministic network), cheap enough for every epoch.
    """

    mean: mlp.Params
    sd: mlp.Params
    history: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def q(self):
        """The fit as a ``compact.Gaussian`` (mean, sd)."""
        from compactbnn.compact import Gaussian  # local import: compact pulls in rebasin

        return Gaussian(self.mean, self.sd)


def kl_divergence(mean, sd, prior_sd: float) -> jax.Array:
    """KL(N(mean, diag(sd^2)) || N(0, prior_sd^2 I)) summed over every entry of the pytrees.

    Per entry: ``log(prior_sd / sd) + (sd^2 + mean^2) / (2 prior_sd^2) - 1/2``.
    """
    if _is_real(prior_sd) and not prior_sd > 0:
        raise ValueError(f"prior_sd must be positive, got {prior_sd}")
    mean_leaves = jax.tree_util.tree_leaves(mean)
    sd_leaves = jax.tree_util.tree_leaves(sd)
    if jax.tree_util.tree_structure(mean) != jax.tree_util.tree_structure(sd):
        raise ValueError("mean and sd must be pytrees of the same structure")
    total = jnp.zeros((), jnp.float32)
    for m, s in zip(mean_leaves, sd_leaves):
        if jnp.shape(m) != jnp.shape(s):
            raise ValueError(f"mean and sd leaves differ in shape: {jnp.shape(m)} vs {jnp.shape(s)}")
        m = jnp.asarray(m, jnp.float32)
        s = jnp.asarray(s, jnp.float32)
        variance_ratio = (s / prior_sd) ** 2
        # log(prior_sd / s) = -0.5 log(variance_ratio); written with log(s) for accuracy at small s.
        total = total + jnp.sum(jnp.log(prior_sd) - jnp.log(s) + 0.5 * variance_ratio + 0.5 * (m / prior_sd) ** 2 - 0.5)
    return total


def standard_normal_like(key: jax.Array, tree):
    """Independent N(0, 1) draws shaped like every leaf of ``tree`` (one split key per leaf)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf)) for k, leaf in zip(keys, leaves)]
    )


def sample_weights(key: jax.Array, mean, sd):
    """One reparameterised draw ``mean + sd * eps``."""
    eps = standard_normal_like(key, mean)
    return jax.tree_util.tree_map(lambda m, s, e: m + s * e, mean, sd, eps)


def _sd_of(log_sd):
    return jax.tree_util.tree_map(jnp.exp, log_sd)


def nelbo_estimate(variational, x, y, mask, key, config: VIConfig, num_train: int):
    """One minibatch's NELBO estimate and its parts (mean NLL per example, KL).

    ``variational = {"mean": params, "log_sd": params}``; ``mask`` marks real rows (padding 0).
    """
    mean, sd = variational["mean"], _sd_of(variational["log_sd"])

    def masked_nll(sample_key):
        theta = sample_weights(sample_key, mean, sd)
        nll = train.cross_entropy(mlp.apply(theta, x), y)
        return jnp.sum(nll * mask) / jnp.sum(mask)

    nll = jnp.mean(jax.vmap(masked_nll)(jax.random.split(key, config.num_samples)))
    kl = kl_divergence(mean, sd, config.prior_sd)
    return num_train * nll + config.kl_weight * kl, (nll, kl)


@functools.lru_cache(maxsize=16)
def make_epoch_fn(config: VIConfig, num_train: int):
    """A jitted (variational, opt_state, data_key, noise_key, x, y) -> (variational, opt_state, sums).

    ``sums``: the epoch's size-weighted mean NELBO and mean NLL. Cached per (config, N_train), so
    repeated fits with one config compile once.
    """
    optimizer = optax.adam(config.learning_rate)
    grad_fn = jax.value_and_grad(nelbo_estimate, has_aux=True)

    def epoch(variational, opt_state, data_key, noise_key, x, y):
        indices, mask = train.minibatch_indices(data_key, num_train, config.batch_size)
        step_keys = jax.random.split(noise_key, indices.shape[0])

        def step(carry, batch):
            variational, opt_state = carry
            idx, m, k = batch
            (loss, (nll, _)), grads = grad_fn(variational, x[idx], y[idx], m, k, config, num_train)
            updates, opt_state = optimizer.update(grads, opt_state, variational)
            return (optax.apply_updates(variational, updates), opt_state), (loss, nll)

        (variational, opt_state), (losses, nlls) = jax.lax.scan(step, (variational, opt_state), (indices, mask, step_keys))
        sizes = mask.sum(axis=1)
        return variational, opt_state, (jnp.sum(losses * sizes) / num_train, jnp.sum(nlls * sizes) / num_train)

    return jax.jit(epoch, donate_argnums=(0, 1)), optimizer


def fit(
    key: jax.Array,
    layer_sizes: Sequence[int],
    x,
    y,
    config: VIConfig = VIConfig(),
    *,
    init_mean: mlp.Params | None = None,
    evaluate_on: Mapping[str, tuple] | None = None,
    progress: bool | str = True,
) -> VIResult:
    """Fit mean-field VI to (x, y) and return the mean and sd pytrees with a per-epoch history.

    Args:
      key: split into (init, data, noise) keys. The init key draws the means with ``mlp.init``
        (PyTorch default) unless ``init_mean`` is given; epoch e shuffles the data with
        ``fold_in(data key, e)`` and draws the step noise from ``fold_in(noise key, e)``.
      layer_sizes: input, hidden and output widths, e.g. [784, 512, 10].
      x, y: training inputs (N, D) float32 and integer labels (N,). N is the N_train of the NELBO.
      config: ``VIConfig``.
      init_mean: optional starting means (an unstacked params pytree of ``layer_sizes``).
      evaluate_on: optional ``{"test": (x, y), ...}``; the mean network is evaluated every epoch.
      progress: show a progress bar (a string is used as its label).

    Raises FloatingPointError naming the epoch if the NELBO becomes NaN or infinite.
    """
    if not isinstance(config, VIConfig):
        raise TypeError(f"config must be a vi.VIConfig, got {type(config).__name__}")
    sizes = mlp.check_layer_sizes(layer_sizes)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,) with the same N, got {x.shape} and {y.shape}")
    if x.shape[1] != sizes[0]:
        raise ValueError(f"inputs have {x.shape[1]} features, layer_sizes start with {sizes[0]}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")

    init_key, data_key, noise_key = jax.random.split(key, 3)
    if init_mean is None:
        mean = mlp.init(init_key, sizes)
    else:
        if mlp.layer_sizes_of(init_mean) != sizes:
            raise ValueError(f"init_mean has layer sizes {mlp.layer_sizes_of(init_mean)}, expected {sizes}")
        mean = jax.tree_util.tree_map(lambda leaf: jnp.array(leaf, jnp.float32), init_mean)
    log_sd = jax.tree_util.tree_map(lambda leaf: jnp.full(leaf.shape, np.log(config.init_sd), jnp.float32), mean)
    variational = {"mean": mean, "log_sd": log_sd}

    num_train = int(x.shape[0])
    epoch_fn, optimizer = make_epoch_fn(config, num_train)
    opt_state = optimizer.init(variational)

    history: dict[str, list] = {"nelbo_running": [], "nll_running": [], "kl": [], "sd_mean": []}
    _record(history, variational, config, evaluate_on)
    label = progress if isinstance(progress, str) else "mean-field VI"
    bar = tqdm(range(config.epochs), desc=label, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        variational, opt_state, (nelbo, nll) = epoch_fn(
            variational, opt_state, jax.random.fold_in(data_key, epoch), jax.random.fold_in(noise_key, epoch), x, y
        )
        nelbo, nll = float(nelbo), float(nll)
        if not np.isfinite(nelbo):
            raise FloatingPointError(
                f"VI diverged at epoch {epoch + 1} of {config.epochs}: the NELBO is {nelbo} "
                f"(learning_rate {config.learning_rate}, init_sd {config.init_sd})"
            )
        history["nelbo_running"].append(nelbo)
        history["nll_running"].append(nll)
        bar.set_postfix(nelbo=f"{nelbo:.1f}", nll=f"{nll:.4f}")
        _record(history, variational, config, evaluate_on)
    return VIResult(
        mean=variational["mean"],
        sd=_sd_of(variational["log_sd"]),
        history={k: np.asarray(v) for k, v in history.items()},
    )


def _record(history: dict, variational, config: VIConfig, evaluate_on) -> None:
    sd = _sd_of(variational["log_sd"])
    history["kl"].append(float(kl_divergence(variational["mean"], sd, config.prior_sd)))
    history["sd_mean"].append(float(jnp.mean(mlp.ravel(sd))))
    for name, (x_eval, y_eval) in (evaluate_on or {}).items():
        metrics = train.evaluate(variational["mean"], x_eval, y_eval)
        history.setdefault(f"{name}_loss", []).append(metrics["loss"])
        history.setdefault(f"{name}_accuracy", []).append(metrics["accuracy"])
