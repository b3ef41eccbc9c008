"""Mean-field variational inference (Experiment C of PAPER.md) with NumPyro's SVI on HMC's model.

The model is ``bnn.bnn_model``, the one HMC samples: a N(0, prior_sd^2) prior on every weight
and bias and the categorical likelihood. The approximate posterior is a Gaussian per weight and
bias, ``q(theta) = N(mu, diag(sd^2))``, written as a NumPyro guide (``mean_field_guide``) with
the paper's parameterisation ``sd = exp(log_sd)`` (the authors' ``MFVILinear``; they clamp at
1e-5, we do not, since exp is positive and the clamp would stop gradients; NumPyro's
``AutoNormal`` would use a softplus scale instead). Means start at the PyTorch-default
initialisation (``model.init``), every sd at ``init_sd`` (paper: 0.05).

Per minibatch step, NumPyro's ``SVI`` with ``TraceMeanField_ELBO`` (the KL of every weight site in
closed form, ``numpyro.distributions.kl``) minimises the NELBO estimate

    N_train * mean NLL(batch; theta) + KL(q || prior),    theta = mu + sd * eps, eps ~ N(0, I)

with one reparameterised draw of all weights per step (``num_samples`` particles averaged if
set) and optax's Adam on (mu, log_sd). The minibatch goes through the model's plate: its indices
are substituted into the plate ``"data"`` (``subsample_size`` = batch size), which scales the
batch's log-likelihood by N / B. Minibatches follow ``train.py`` exactly: epoch e shuffles with
``fold_in(data_key, e)`` through ``train.minibatch_indices`` (last batch padded and masked, the
model rescales it to N times its real rows' mean), and one epoch is one jitted ``lax.scan`` of
``SVI.update``. Another guide (e.g. ``numpyro.infer.autoguide.AutoNormal(model)``) plugs into
``make_svi`` in one line.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro import handlers
from numpyro.infer import SVI, TraceMeanField_ELBO
from numpyro.optim import optax_to_numpyro
from tqdm.auto import tqdm

from compactbnn import train
from compactbnn.inference import bnn
from compactbnn.config.fields import VI_FIELDS, check_fields
from compactbnn.models import IN_LOOP_MATMUL, Model, Params


@dataclass(frozen=True)
class VIConfig:
    """Hyperparameters of mean-field VI (defaults: the paper's Adam lr 1e-3, batch 100, 50 epochs, N(0, 1) prior, sd 0.05).

    ``num_samples``: reparameterised weight draws per minibatch step (the ELBO's particles), averaged (paper: 1).
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
        # the rules the config check applies to posterior.vi too (compactbnn.config.fields)
        check_fields(VI_FIELDS, vars(self), "VIConfig")


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)


@dataclass
class VIResult:
    """The fitted q: ``mean`` and ``sd`` parameter pytrees of the fitted model (no model axis).

    ``history`` (numpy arrays):
      ``nelbo_running`` (epochs,): mean over the epoch's steps of the minibatch NELBO estimate,
        each step weighted by its number of real examples;
      ``kl`` (epochs + 1,): KL(q || prior) at initialisation and after every epoch;
      ``sd_mean`` (epochs + 1,): the mean sd over all parameters;
      for every evaluation set ``s``: ``s_loss`` and ``s_accuracy`` (epochs + 1,) of the mean
        weights alone (a deterministic network), cheap enough for every epoch.
    """

    mean: Params
    sd: Params
    history: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def q(self):
        """The fit as a ``compact.Gaussian`` (mean, sd)."""
        from compactbnn.symmetry.compact import Gaussian  # local import: compact pulls in rebasin

        return Gaussian(self.mean, self.sd)


def kl_divergence(mean, sd, prior_sd: float) -> jax.Array:
    """KL(N(mean, diag(sd^2)) || N(0, prior_sd^2 I)) summed over every entry of the pytrees.

    Per entry: ``log(prior_sd / sd) + (sd^2 + mean^2) / (2 prior_sd^2) - 1/2``. The closed form
    ``TraceMeanField_ELBO`` uses; here for the history and for checking the ELBO's KL term.
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


# ---------------------------------------------------------------------------------------------
# Model, guide and SVI


def minibatch_model(model: Model, x, y, indices, mask, *, prior_sd: float):
    """``bnn.bnn_model`` of ``model`` on the minibatch ``indices`` (B,) of the full (x, y): the indices go into its plate.

    ``mask`` (B,) marks the real rows of a padded batch, or None when no batch is padded.
    """
    with handlers.substitute(data={"data": indices}):
        bnn.bnn_model(model, x, y, prior_sd, IN_LOOP_MATMUL, subsample_size=indices.shape[0], mask=mask)  # in lax.scan


def loc_name(site: str) -> str:
    """Name of the guide's parameter holding the mean of ``site``, e.g. ``layer0.weight.loc``."""
    return f"{site}.loc"


def log_sd_name(site: str) -> str:
    """Name of the guide's parameter holding log sd of ``site``, e.g. ``layer0.weight.log_sd``."""
    return f"{site}.log_sd"


def mean_field_guide(model: Model, init_sd: float, kl_weight: float = 1.0):
    """The mean-field Gaussian guide of ``bnn_model``'s weight sites: N(loc, exp(log_sd)^2) per entry.

    One ``loc`` and one ``log_sd`` per site of ``model.sites``, in that order. Every ``log_sd``
    starts at log(init_sd); ``loc`` at the site's value in a ``model.init`` draw (PyTorch's
    default) from the param's own key, unless ``SVI.init(..., init_params=guide_params(model,
    mean, init_sd))`` gives the means (``fit`` does, with one ``model.init`` draw). The guide
    takes (and ignores) the model's arguments. ``kl_weight`` != 1 scales each site's KL term (the
    authors' beta) through ``handlers.scale`` of the guide's sites, which ``TraceMeanField_ELBO``
    applies to the closed-form KL.
    """
    log_init_sd = float(np.log(init_sd))
    sites = model.sites

    def guide(*args, **kwargs):
        with handlers.scale(scale=kl_weight) if kl_weight != 1 else contextlib.nullcontext():
            for site, shape in sites:
                # lazy initial values: called by SVI.init only (without init_params), so the compiled update holds no constants
                loc = numpyro.param(loc_name(site), lambda key, site=site: model.to_sites(model.init(key))[site])
                log_sd = numpyro.param(log_sd_name(site), lambda key, shape=shape: jnp.full(shape, log_init_sd, jnp.float32))
                numpyro.sample(site, dist.Normal(loc, jnp.exp(log_sd)).to_event(len(shape)))

    return guide


def guide_params(model: Model, mean: Params, init_sd: float) -> dict:
    """``mean_field_guide``'s parameters for the means ``mean`` and every sd ``init_sd`` (for ``SVI.init``'s init_params)."""
    params = {}
    for site, value in model.to_sites(mean).items():
        params[loc_name(site)] = jnp.array(value, jnp.float32)  # a copy: fit donates its state to the epoch
        params[log_sd_name(site)] = jnp.full(jnp.shape(value), np.log(init_sd), jnp.float32)
    return params


@functools.lru_cache(maxsize=16)
def make_svi(model: Model, config: VIConfig) -> SVI:
    """NumPyro's SVI of ``minibatch_model`` with ``mean_field_guide``, ``TraceMeanField_ELBO`` and optax's Adam.

    Cached per (model, config), so repeated fits with one config compile their epoch once.
    """
    svi_model = partial(minibatch_model, model, prior_sd=float(config.prior_sd))
    guide = mean_field_guide(model, config.init_sd, config.kl_weight)
    optimizer = optax_to_numpyro(optax.adam(config.learning_rate))
    return SVI(svi_model, guide, optimizer, TraceMeanField_ELBO(num_particles=config.num_samples))


def variational_params(model: Model, params: dict) -> tuple[Params, Params]:
    """(mean, sd) pytrees from the guide's parameters (``SVI.get_params``)."""
    mean = model.from_sites({s: params[loc_name(s)] for s, _ in model.sites})
    sd = model.from_sites({s: jnp.exp(params[log_sd_name(s)]) for s, _ in model.sites})
    return mean, sd


@functools.lru_cache(maxsize=16)
def make_epoch_fn(svi: SVI, config: VIConfig, num_train: int):
    """A jitted (svi_state, data_key, x, y) -> (svi_state, mean NELBO) over one epoch of ``SVI.update``.

    The mean weights each step's NELBO estimate by its number of real examples. Padding rows
    (mask) exist only when the batch size does not divide N; without them the model gets no mask.
    Cached per (svi, config, data size): one compilation per ``make_svi`` result.
    """
    padded = num_train % config.batch_size != 0

    def epoch(svi_state, data_key, x, y):
        indices, mask = train.minibatch_indices(data_key, num_train, config.batch_size)

        def step(svi_state, batch):
            idx, m = batch
            return svi.update(svi_state, x, y, idx, m if padded else None)

        svi_state, losses = jax.lax.scan(step, svi_state, (indices, mask))
        return svi_state, jnp.sum(losses * mask.sum(axis=1)) / num_train

    return jax.jit(epoch, donate_argnums=(0,))


def fit(
    model: Model,
    key: jax.Array,
    x,
    y,
    config: VIConfig = VIConfig(),
    *,
    init_mean: Params | None = None,
    evaluate_on: Mapping[str, tuple] | None = None,
    progress: bool | str = True,
) -> VIResult:
    """Fit mean-field VI of ``model`` to (x, y) with NumPyro's SVI; return the mean and sd pytrees with a per-epoch history.

    Args:
      model: the network (``compactbnn.models.Model``), e.g. ``MLP((784, 512, 10))``.
      key: split into (init, data, noise) keys. The init key draws the means with ``model.init``
        (PyTorch default) unless ``init_mean`` is given; epoch e shuffles the data with
        ``fold_in(data key, e)``; the noise key seeds SVI (its state splits it every step).
      x, y: training inputs (N, D) float32 and integer labels (N,). N is the N_train of the NELBO.
      config: ``VIConfig``.
      init_mean: optional starting means (an unstacked parameter pytree of ``model``).
      evaluate_on: optional ``{"test": (x, y), ...}``; the mean network is evaluated every epoch.
      progress: show a progress bar (a string is used as its label).

    Raises FloatingPointError naming the epoch if the NELBO becomes NaN or infinite.
    """
    if not isinstance(config, VIConfig):
        raise TypeError(f"config must be a vi.VIConfig, got {type(config).__name__}")
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,) with the same N, got {x.shape} and {y.shape}")
    if x.shape[1] != model.num_features:
        raise ValueError(f"inputs have {x.shape[1]} features, the model expects {model.num_features}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")

    init_key, data_key, noise_key = jax.random.split(key, 3)
    if init_mean is None:
        mean = model.init(init_key)
    else:
        model.check(init_mean, "init_mean")
        mean = jax.tree_util.tree_map(lambda leaf: jnp.array(leaf, jnp.float32), init_mean)

    num_train = int(x.shape[0])
    svi = make_svi(model, config)
    first_batch = jnp.arange(min(config.batch_size, num_train))
    # SVI.init runs the model once to learn its sites; NaN data is fit's concern (the NELBO check below).
    # Jitted, it compiles once instead of op by op: 0.4 instead of 13.6 CPU seconds for a small CNN, whose
    # convolutions are many small operations; the state is the same to the last bit.
    init = jax.jit(lambda key, x, y, batch, params: svi.init(key, x, y, batch, None, init_params=params))
    with numpyro.validation_enabled(False):
        svi_state = init(noise_key, x, y, first_batch, guide_params(model, mean, config.init_sd))
    epoch_fn = make_epoch_fn(svi, config, num_train)

    history: dict[str, list] = {"nelbo_running": [], "kl": [], "sd_mean": []}
    _record(history, model, variational_params(model, svi.get_params(svi_state)), config, evaluate_on)
    label = progress if isinstance(progress, str) else "mean-field VI"
    bar = tqdm(range(config.epochs), desc=label, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        svi_state, nelbo = epoch_fn(svi_state, jax.random.fold_in(data_key, epoch), x, y)
        nelbo = float(nelbo)
        if not np.isfinite(nelbo):
            raise FloatingPointError(
                f"VI diverged at epoch {epoch + 1} of {config.epochs}: the NELBO is {nelbo} "
                f"(learning_rate {config.learning_rate}, init_sd {config.init_sd})"
            )
        history["nelbo_running"].append(nelbo)
        bar.set_postfix(nelbo=f"{nelbo:.1f}")
        _record(history, model, variational_params(model, svi.get_params(svi_state)), config, evaluate_on)
    mean, sd = variational_params(model, svi.get_params(svi_state))
    return VIResult(mean=mean, sd=sd, history={k: np.asarray(v) for k, v in history.items()})


def _record(history: dict, model: Model, mean_sd, config: VIConfig, evaluate_on) -> None:
    mean, sd = mean_sd
    history["kl"].append(float(kl_divergence(mean, sd, config.prior_sd)))
    history["sd_mean"].append(float(jnp.mean(model.ravel(sd))))
    for name, (x_eval, y_eval) in (evaluate_on or {}).items():
        metrics = train.evaluate(model, mean, x_eval, y_eval)
        history.setdefault(f"{name}_loss", []).append(metrics["loss"])
        history.setdefault(f"{name}_accuracy", []).append(metrics["accuracy"])
