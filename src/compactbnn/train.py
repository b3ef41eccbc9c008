"""Training many networks of one ``Model`` at once: ``jax.vmap`` over networks, one epoch as one ``lax.scan``.

Every network has its own initialisation, its own minibatch order (a PRNG key per model) and,
optionally, its own learning rate; all models share the architecture and the data. Epochs
follow PyTorch's ``DataLoader(shuffle=True, drop_last=False)``: a fresh permutation of the
training set per epoch and a last, smaller batch where the batch size does not divide the data
(here padded to a full batch and masked out of the loss, so every step has the same shape).

The loss is mean cross-entropy over the batch, plus, for MAP training with a Gaussian prior
N(0, prior_sd^2), ``sum(theta^2) / (2 prior_sd^2 N_train)`` (PAPER.md's deep ensemble), i.e.
the negative log posterior divided by N_train.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from compactbnn.config.fields import TRAIN_FIELDS, check_fields
from compactbnn.models import IN_LOOP_MATMUL, Model, Params

EVAL_BATCH_SIZE = 2000


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by all models of one call (the paper's SGD: lr 1e-3, momentum 0.9, batch 64, 50 epochs)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # SGD only; 0 gives plain SGD
    batch_size: int = 64
    epochs: int = 50
    prior_sd: float | None = None  # None: maximum likelihood; else MAP with N(0, prior_sd^2)

    def __post_init__(self):
        # the rules the config check applies to the training sections too (compactbnn.config.fields)
        check_fields(TRAIN_FIELDS, vars(self), "TrainConfig")


@dataclass
class TrainResult:
    """Trained parameters (leading model axis), optional per-epoch snapshots and history.

    ``snapshots``: parameters at epochs 0 (the initialisation), 1, ..., epochs, stacked as
    (epochs + 1, models, ...) numpy arrays; None unless requested.
    ``history``: ``train_loss_running`` (epochs, models), the mean minibatch loss of each epoch,
    and, for every evaluation set named ``s``, ``s_loss`` and ``s_accuracy`` (epochs + 1, models).
    """

    params: Params
    snapshots: Params | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example negative log-likelihood of integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_optimizer(config: TrainConfig, learning_rate) -> optax.GradientTransformation:
    """The optimiser with its learning rate held in its state, so models can differ in it."""
    if config.optimizer == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=config.momentum or None)
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def minibatch_indices(key: jax.Array, num_examples: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """One epoch's shuffled indices as (num_batches, batch_size) and a 0/1 mask of real entries.

    The last batch is padded (mask 0) when batch_size does not divide num_examples.
    """
    num_batches = -(-num_examples // batch_size)
    order = jax.random.permutation(key, num_examples)
    padding = num_batches * batch_size - num_examples
    indices = jnp.concatenate([order, order[:padding]]).reshape(num_batches, batch_size)
    mask = (jnp.arange(num_batches * batch_size) < num_examples).astype(jnp.float32).reshape(num_batches, batch_size)
    return indices, mask


def map_objective(model: Model, params: Params, x: jax.Array, y: jax.Array, mask: jax.Array, prior_sd: float | None,
                  num_train: int) -> jax.Array:
    """Masked mean cross-entropy of ``model.apply``, plus the Gaussian prior term divided by N_train for MAP."""
    nll = cross_entropy(model.apply(params, x, IN_LOOP_MATMUL), y)  # runs inside an epoch's lax.scan
    loss = jnp.sum(nll * mask) / jnp.sum(mask)
    if prior_sd is not None:
        squared = sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(params))
        loss = loss + squared / (2.0 * prior_sd**2 * num_train)
    return loss


@functools.lru_cache(maxsize=32)
def make_epoch_fn(model: Model, config: TrainConfig, num_train: int) -> Callable:
    """A jitted function (params, opt_state, keys, x, y) -> (params, opt_state, mean losses) for stacked networks.

    Cached per (model, config, data size), so repeated calls reuse one compilation.
    """
    update = make_optimizer(config, config.learning_rate).update
    grad_fn = jax.value_and_grad(functools.partial(map_objective, model))

    def one_model_epoch(params, opt_state, key, x, y):
        indices, mask = minibatch_indices(key, num_train, config.batch_size)

        def step(carry, batch):
            params, opt_state = carry
            idx, m = batch
            loss, grads = grad_fn(params, x[idx], y[idx], m, config.prior_sd, num_train)
            updates, opt_state = update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (indices, mask))
        # Weight each batch's loss by its size so the epoch mean is per example.
        sizes = mask.sum(axis=1)
        return params, opt_state, jnp.sum(losses * sizes) / num_train

    return jax.jit(jax.vmap(one_model_epoch, in_axes=(0, 0, 0, None, None)), donate_argnums=(0, 1))


def train_many(
    model: Model,
    params: Params,
    x: np.ndarray | jax.Array,
    y: np.ndarray | jax.Array,
    data_keys: jax.Array,
    config: TrainConfig,
    *,
    learning_rates: np.ndarray | None = None,
    snapshots: bool = False,
    evaluate_on: Mapping[str, tuple] | None = None,
    progress: bool | str = True,
) -> TrainResult:
    """Train a stack of networks of ``model`` (leading model axis M) together.

    Args:
      model: the architecture every network of the stack shares (``compactbnn.models.Model``).
      params: stacked parameters, e.g. from ``model.init_many``; every leaf (M, ...).
      x, y: training inputs (N, D) float32 and integer labels (N,), shared by all models.
      data_keys: (M,) PRNG keys (or (M, 2) raw keys); epoch e of model m shuffles with
        ``fold_in(data_keys[m], e)``, so a model's data order does not depend on its neighbours.
      config: shared hyperparameters.
      learning_rates: optional (M,) per-model learning rates overriding ``config.learning_rate``.
      snapshots: keep the parameters after every epoch (and at epoch 0) on the host.
      evaluate_on: optional ``{"train": (x, y), "test": (x, y)}`` evaluated at every epoch.
      progress: show a progress bar (a string is used as its label).
    """
    model.check(params, "params", batch_ndim=1)
    m = model.num_stacked(params)
    data_keys = jnp.asarray(data_keys)
    if data_keys.shape[0] != m:
        raise ValueError(f"data_keys has {data_keys.shape[0]} keys for {m} models")
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if x.shape[1] != model.num_features:
        raise ValueError(f"inputs have {x.shape[1]} features, the model expects {model.num_features}")
    lrs = jnp.full((m,), config.learning_rate, jnp.float32) if learning_rates is None else jnp.asarray(learning_rates, jnp.float32)
    if lrs.shape != (m,):
        raise ValueError(f"learning_rates must have shape ({m},), got {lrs.shape}")

    params = jax.tree_util.tree_map(jnp.array, params)  # a copy: the epoch function donates its input
    opt_state = jax.vmap(lambda p, lr: make_optimizer(config, lr).init(p))(params, lrs)
    epoch_fn = make_epoch_fn(model, config, x.shape[0])

    history: dict[str, list] = {"train_loss_running": []}
    kept = [jax.device_get(params)] if snapshots else None
    _record_evaluation(history, model, params, evaluate_on)
    label = progress if isinstance(progress, str) else f"training {m} model{'s' if m > 1 else ''}"
    bar = tqdm(range(config.epochs), desc=label, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(data_keys, epoch)
        params, opt_state, losses = epoch_fn(params, opt_state, keys, x, y)
        losses = np.asarray(losses)
        if not np.all(np.isfinite(losses)):
            bad = np.flatnonzero(~np.isfinite(losses)).tolist()
            raise FloatingPointError(f"training diverged at epoch {epoch + 1}: non-finite loss for models {bad}")
        history["train_loss_running"].append(losses)
        bar.set_postfix(loss=f"{losses.mean():.4f}")
        if snapshots:
            kept.append(jax.device_get(params))
        _record_evaluation(history, model, params, evaluate_on)
    stacked_snapshots = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *kept) if snapshots else None
    return TrainResult(
        params=params,
        snapshots=stacked_snapshots,
        history={k: np.asarray(v).reshape(len(v), m) for k, v in history.items()},
    )


def train(model: Model, params: Params, x, y, data_key: jax.Array, config: TrainConfig, **kwargs) -> TrainResult:
    """Train one network (no model axis); snapshots and history keep a model axis of size 1."""
    stacked = model.stack_one(params)
    result = train_many(model, stacked, x, y, jnp.asarray(data_key)[None], config, **kwargs)
    result.params = jax.tree_util.tree_map(lambda leaf: leaf[0], result.params)
    return result


def _record_evaluation(history: dict, model: Model, params: Params, evaluate_on: Mapping[str, tuple] | None) -> None:
    for name, (x_eval, y_eval) in (evaluate_on or {}).items():
        metrics = evaluate_many(model, params, x_eval, y_eval)
        history.setdefault(f"{name}_loss", []).append(np.asarray(metrics["loss"]))
        history.setdefault(f"{name}_accuracy", []).append(np.asarray(metrics["accuracy"]))


def evaluate_many(model: Model, params: Params, x, y, batch_size: int = EVAL_BATCH_SIZE) -> dict[str, jax.Array]:
    """Mean cross-entropy and accuracy of every network of a stack on (x, y); each (M,).

    The data is processed in batches so that memory stays at models x batch x width.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    return _evaluate_many(model, params, x, y, min(batch_size, x.shape[0]))


def evaluate(model: Model, params: Params, x, y, batch_size: int = EVAL_BATCH_SIZE) -> dict[str, float]:
    """Mean cross-entropy and accuracy of one network."""
    stacked = model.stack_one(params)
    return {k: float(v[0]) for k, v in evaluate_many(model, stacked, x, y, batch_size).items()}


@functools.partial(jax.jit, static_argnums=0)
def _batch_sums(model, params, x, y, mask):
    logits = jax.vmap(model.apply, in_axes=(0, None))(params, x)
    nll = jax.vmap(cross_entropy, in_axes=(0, None))(logits, y)
    correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    return jnp.sum(nll * mask, axis=-1), jnp.sum(correct * mask, axis=-1)


def _evaluate_many(model, params, x, y, batch_size):
    n = x.shape[0]
    total_loss = total_correct = 0.0
    for start in range(0, n, batch_size):
        xb, yb = x[start: start + batch_size], y[start: start + batch_size]
        real = xb.shape[0]
        if real < batch_size:  # pad so that every batch has one shape and one compilation
            xb = jnp.pad(xb, ((0, batch_size - real), (0, 0)))
            yb = jnp.pad(yb, (0, batch_size - real))
        mask = (jnp.arange(batch_size) < real).astype(jnp.float32)
        loss_sum, correct_sum = _batch_sums(model, params, xb, yb, mask)
        total_loss = total_loss + loss_sum
        total_correct = total_correct + correct_sum
    return {"loss": total_loss / n, "accuracy": total_correct / n}
