"""Trainer throughput against a bare jitted gradient-plus-update loop, side by side in one run.

A 784-512-10 MLP on MNIST with batch 64 (the paper's Experiment A setting), for 1 model and for
8 models at once. The baseline is the loop every JAX user writes first: a jitted step
(value_and_grad plus an optax update, vmapped over models for 8) called from Python once per
minibatch, with each epoch's shuffled minibatches gathered on the device beforehand. The
trainer (compactbnn.train.train_many) runs an epoch as one lax.scan. Both compute the same
SGD-with-momentum updates on the same shapes; the two are timed alternately, best of
``--repeats``, after a warm-up that compiles both.

Prints model-epochs per second and the ratio trainer / baseline (goal >= 0.9); the last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import optax

from compactbnn import data, train
from compactbnn.models import MLP, Model


def bare_loop(model: Model, config: train.TrainConfig, x, y, num_models: int):
    """Returns run(params, keys) -> params: one epoch by a jitted step called per minibatch."""
    optimizer = optax.sgd(config.learning_rate, momentum=config.momentum)

    def loss_fn(params, xb, yb):
        return jnp.mean(train.cross_entropy(model.apply(params, xb), yb))

    def step(params, opt_state, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(jax.vmap(step), donate_argnums=(0, 1))
    n = x.shape[0]
    num_full = n // config.batch_size  # the baseline drops the last partial batch: a little less work

    @jax.jit
    def epoch_batches(keys):
        order = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)[:, : num_full * config.batch_size]
        idx = order.reshape(num_models, num_full, config.batch_size).transpose(1, 0, 2)
        return x[idx], y[idx]

    def run(params, keys):
        opt_state = jax.vmap(optimizer.init)(params)
        xs, ys = epoch_batches(keys)
        for i in range(num_full):
            params, opt_state = step(params, opt_state, xs[i], ys[i])
        return params

    return run


def measure(num_models: int, x, y, epochs: int, repeats: int) -> dict:
    config = train.TrainConfig(optimizer="sgd", learning_rate=1e-3, momentum=0.9, batch_size=64, epochs=epochs)
    model = MLP((784, 512, 10))
    params = model.init_many(jax.random.key(0), num_models)
    keys = jax.random.split(jax.random.key(1), num_models)
    baseline = bare_loop(model, config, x, y, num_models)

    def time_trainer():
        start = time.perf_counter()
        result = train.train_many(model, params, x, y, keys, config, progress=False)
        jax.block_until_ready(result.params)
        return time.perf_counter() - start

    def time_baseline():
        start = time.perf_counter()
        p = jax.tree_util.tree_map(jnp.array, params)
        for epoch in range(epochs):
            p = baseline(p, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, epoch))
        jax.block_until_ready(p)
        return time.perf_counter() - start

    # warm-up: compile both
    warm = train.TrainConfig(**{**config.__dict__, "epochs": 1})
    jax.block_until_ready(train.train_many(model, params, x, y, keys, warm, progress=False).params)
    jax.block_until_ready(baseline(jax.tree_util.tree_map(jnp.array, params), keys))
    trainer_times, baseline_times = [], []
    for _ in range(repeats):  # alternate, so that load on the machine hits both alike
        trainer_times.append(time_trainer())
        baseline_times.append(time_baseline())
    model_epochs = num_models * epochs
    trainer_rate = model_epochs / min(trainer_times)
    baseline_rate = model_epochs / min(baseline_times)
    row = {"models": num_models, "trainer_model_epochs_per_s": trainer_rate,
           "baseline_model_epochs_per_s": baseline_rate, "ratio": trainer_rate / baseline_rate}
    print(f"{num_models} model(s): trainer {trainer_rate:.3f} model-epochs/s, bare loop {baseline_rate:.3f}, "
          f"ratio {row['ratio']:.3f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="resources", help="data root holding mnist.npz")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=60000, help="use the first N training images")
    args = parser.parse_args()
    mnist = data.load("mnist", args.root)
    x = jnp.asarray(mnist["x_train"][: args.train_size])
    y = jnp.asarray(mnist["y_train"][: args.train_size])
    print(f"device: {jax.devices()[0].device_kind}; 784-512-10, batch 64, {x.shape[0]} images, "
          f"{args.epochs} epoch(s), best of {args.repeats}", flush=True)
    one = measure(1, x, y, args.epochs, args.repeats)
    eight = measure(8, x, y, args.epochs, args.repeats)
    print(json.dumps({
        "model_epochs_per_s_1": round(one["trainer_model_epochs_per_s"], 4), "ratio_1": round(one["ratio"], 4),
        "model_epochs_per_s_8": round(eight["trainer_model_epochs_per_s"], 4), "ratio_8": round(eight["ratio"], 4),
    }))


if __name__ == "__main__":
    main()
