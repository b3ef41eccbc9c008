"""Seconds per epoch of mean-field VI through NumPyro's SVI against the hand-written loop it replaced, side by side.

``compactbnn.inference.vi.fit`` runs an epoch as one jitted ``lax.scan`` of NumPyro's ``SVI.update`` on
``bnn.bnn_model`` with ``vi.mean_field_guide`` and ``TraceMeanField_ELBO``. The reference is the
loop vi.py held before (commit 8a43eed): the same NELBO (N x mean NLL of one reparameterised
draw + closed-form KL), the same minibatches (``train.minibatch_indices``) and the same optax
Adam, written out in plain JAX; it lives on here only for this comparison. Both epoch programs
are compiled first and then timed alternately ``--repeats`` times on the same data; the median
and the minimum of each are printed, and the ratios old / SVI of the minima and of the medians
(goal >= 0.9: SVI at most ~10 % slower; on a shared machine both are noisy, the minima less so).

Default size: the paper's 784-512-10 MLP on all 60,000 MNIST images, batch 100 (600 steps per
epoch). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from compactbnn import data, train
from compactbnn.inference import vi
from compactbnn.models import MLP, Model

REPO = Path(__file__).resolve().parents[1]


# --- the loop vi.py held before NumPyro's SVI (kept here only as the reference) --------------


def old_epoch_fn(model: Model, config: vi.VIConfig, num_train: int):
    """A jitted (variational, opt_state, data_key, noise_key, x, y) -> (variational, opt_state, (NELBO, NLL)), and the optimiser."""
    optimizer = optax.adam(config.learning_rate)

    def nelbo_estimate(variational, x, y, mask, key):
        mean = variational["mean"]
        sd = jax.tree_util.tree_map(jnp.exp, variational["log_sd"])
        leaves, treedef = jax.tree_util.tree_flatten(mean)
        eps = jax.tree_util.tree_unflatten(treedef, [jax.random.normal(k, leaf.shape, leaf.dtype)
                                                     for k, leaf in zip(jax.random.split(key, len(leaves)), leaves)])
        theta = jax.tree_util.tree_map(lambda m, s, e: m + s * e, mean, sd, eps)
        nll = jnp.sum(train.cross_entropy(model.apply(theta, x), y) * mask) / jnp.sum(mask)
        kl = vi.kl_divergence(mean, sd, config.prior_sd)
        return num_train * nll + config.kl_weight * kl, nll

    grad_fn = jax.value_and_grad(nelbo_estimate, has_aux=True)

    def epoch(variational, opt_state, data_key, noise_key, x, y):
        indices, mask = train.minibatch_indices(data_key, num_train, config.batch_size)
        step_keys = jax.random.split(noise_key, indices.shape[0])

        def step(carry, batch):
            variational, opt_state = carry
            idx, m, k = batch
            (loss, nll), grads = grad_fn(variational, x[idx], y[idx], m, k)
            updates, opt_state = optimizer.update(grads, opt_state, variational)
            return (optax.apply_updates(variational, updates), opt_state), (loss, nll)

        (variational, opt_state), (losses, nlls) = jax.lax.scan(step, (variational, opt_state), (indices, mask, step_keys))
        sizes = mask.sum(axis=1)
        return variational, opt_state, (jnp.sum(losses * sizes) / num_train, jnp.sum(nlls * sizes) / num_train)

    return jax.jit(epoch, donate_argnums=(0, 1)), optimizer


# --- timing -----------------------------------------------------------------------------------


def measure(x, y, model: Model, config: vi.VIConfig, repeats: int) -> dict:
    num_train = int(x.shape[0])
    key = jax.random.key(0)
    mean = model.init(key)

    old_fn, optimizer = old_epoch_fn(model, config, num_train)
    variational = {"mean": mean, "log_sd": jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, np.log(config.init_sd)), mean)}
    old_state = [variational, optimizer.init(variational)]

    svi = vi.make_svi(model, config)
    new_fn = vi.make_epoch_fn(svi, config, num_train)
    new_state = [svi.init(key, x, y, jnp.arange(config.batch_size), None,
                          init_params=vi.guide_params(model, mean, config.init_sd))]

    def run_old(epoch):
        variational, opt_state, out = old_fn(*old_state, jax.random.fold_in(key, epoch), jax.random.fold_in(key, 10_000 + epoch), x, y)
        jax.block_until_ready(out)
        old_state[:] = [variational, opt_state]
        return float(out[0])

    def run_new(epoch):
        state, out = new_fn(new_state[0], jax.random.fold_in(key, epoch), x, y)
        jax.block_until_ready(out)
        new_state[0] = state
        return float(out)

    t0 = time.perf_counter(); run_old(0); compile_old = time.perf_counter() - t0  # noqa: E702
    t0 = time.perf_counter(); run_new(0); compile_new = time.perf_counter() - t0  # noqa: E702
    old_times, new_times, old_nelbo, new_nelbo = [], [], [], []
    for r in range(1, repeats + 1):
        t0 = time.perf_counter(); old_nelbo.append(run_old(r)); old_times.append(time.perf_counter() - t0)  # noqa: E702
        t0 = time.perf_counter(); new_nelbo.append(run_new(r)); new_times.append(time.perf_counter() - t0)  # noqa: E702
    return {
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "layer_sizes": list(model.layer_sizes),
        "num_train": num_train,
        "batch_size": config.batch_size,
        "steps_per_epoch": -(-num_train // config.batch_size),
        "s_per_epoch_old": statistics.median(old_times),
        "s_per_epoch_svi": statistics.median(new_times),
        "min_s_per_epoch_old": min(old_times),
        "min_s_per_epoch_svi": min(new_times),
        "ratio": min(old_times) / min(new_times),
        "ratio_of_medians": statistics.median(old_times) / statistics.median(new_times),
        "first_epoch_with_compile_s_old": compile_old,
        "first_epoch_with_compile_s_svi": compile_new,
        "nelbo_old": old_nelbo,
        "nelbo_svi": new_nelbo,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512, help="hidden width (paper: 512)")
    parser.add_argument("--num-train", type=int, default=60000, help="use the first N training images (paper: 60,000)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each, alternately")
    args = parser.parse_args()
    mnist = data.load("mnist", REPO / "resources")
    x = jnp.asarray(mnist["x_train"][: args.num_train], jnp.float32)
    y = jnp.asarray(mnist["y_train"][: args.num_train])
    model = MLP((x.shape[1], args.hidden, 10))
    with jax.default_matmul_precision("highest"):
        result = measure(x, y, model, vi.VIConfig(batch_size=args.batch_size), args.repeats)
    print(f"{result['device']}  {list(model.layer_sizes)} on {result['num_train']} images, batch {result['batch_size']}: "
          f"old loop {result['s_per_epoch_old']:.3f} s/epoch, NumPyro SVI {result['s_per_epoch_svi']:.3f} s/epoch "
          f"(medians); ratio old/SVI of the minima {result['ratio']:.3f}, of the medians "
          f"{result['ratio_of_medians']:.3f} (goal >= 0.9)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
