"""Speed of rebasin: weight matching of many 784-512-10 networks, and activation matching over MNIST.

Weight matching: aligns ``--networks`` random 784-512-10 networks (PyTorch-default init) to one
reference with ``rebasin.align_many`` and compares the seconds per alignment with a bare
``scipy.optimize.linear_sum_assignment`` on a 512x512 similarity matrix of the same kind
(reference vs. a random network), measured in the same run, before and after the alignments
(the machine may be shared, so both are averaged). The ratio says how much the similarity
computation and the bookkeeping add to the LAP itself. Goals (issue 3): <= 30 s for 1,000
networks on a 2-core machine, ratio <= 2. The authors' code needs about 2.9 s per alignment.

Activation matching (Experiment C as the authors aligned HMC samples): aligns
``--activation-networks`` random 784-512-10 networks to a reference over all 60,000 MNIST training
images, streamed in batches (the reference's activations computed once per batch, shared by every
chunk of networks); seconds per alignment and samples aligned per second. The paper's 1,000 kept
HMC samples take 1,000 / that rate.

Compilation is excluded (a warm-up call on a few networks first). The last line printed is one
JSON object: {"seconds_per_weight_alignment", "ratio_to_lap", "seconds_per_activation_alignment",
"activation_samples_per_second"}.

Usage: python benchmarks/rebasin.py [--networks 1000] [--activation-networks 100] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from compactbnn import data
from compactbnn.models import MLP, Params
from compactbnn.symmetry import rebasin

MODEL = MLP((784, 512, 10))


def log(message: str) -> None:
    print(message, flush=True)


def random_networks(seed: int, count: int) -> Params:
    """``count`` random 784-512-10 networks stacked; drawn in groups to keep the init compilation small."""
    keys = jax.random.split(jax.random.key(seed), count)
    init = jax.jit(jax.vmap(MODEL.init))
    group = 100
    parts = [init(keys[start: start + group]) for start in range(0, count, group)]
    return jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves), *parts)


def bare_lap_seconds(params_ref, others, repeats: int) -> float:
    """Median seconds of one ``linear_sum_assignment`` on weight-matching similarities of real network pairs."""
    identity = [np.arange(n) for n in MODEL.perm_sizes]
    times = []
    for i in range(repeats):
        other = jax.tree_util.tree_map(lambda leaf: leaf[i % leaf.shape[0]], others)
        cost = np.asarray(rebasin.weight_similarity(MODEL, params_ref, other, identity, 0))
        start = time.perf_counter()
        linear_sum_assignment(cost, maximize=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=1000, help="networks aligned by weight matching")
    parser.add_argument("--activation-networks", type=int, default=100, help="networks aligned by activation matching (0 skips)")
    parser.add_argument("--chunk-size", type=int, default=None, help="networks per similarity computation")
    parser.add_argument("--workers", type=int, default=None, help="LAP threads (default: CPU count)")
    parser.add_argument("--batch-size", type=int, default=rebasin.DEFAULT_BATCH_SIZE, help="images per activation batch")
    parser.add_argument("--lap-repeats", type=int, default=30, help="bare LAPs timed before and after")
    parser.add_argument("--data-root", default="resources", help="folder holding mnist.npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    log(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}")
    options = dict(chunk_size=args.chunk_size, workers=args.workers)

    # --- weight matching -------------------------------------------------------------------------
    log(f"drawing {args.networks + 1} random networks of {MODEL}")
    stacked = random_networks(args.seed, args.networks + 1)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], stacked)
    networks = jax.tree_util.tree_map(lambda leaf: leaf[1:], stacked)
    jax.block_until_ready(networks)

    warm = jax.tree_util.tree_map(lambda leaf: leaf[:rebasin.DEFAULT_CHUNK_SIZE], networks)
    rebasin.align_many(MODEL, reference, warm, method="weight", **options)  # compile
    lap_before = bare_lap_seconds(reference, networks, args.lap_repeats)
    log(f"bare linear_sum_assignment on a 512x512 weight similarity: {lap_before * 1e3:.2f} ms (median of {args.lap_repeats})")

    log(f"weight matching of {args.networks} networks to one reference")
    start = time.perf_counter()
    perms = rebasin.align_many(MODEL, reference, networks, method="weight", progress="weight matching", **options)
    weight_total = time.perf_counter() - start
    lap_after = bare_lap_seconds(reference, networks, args.lap_repeats)
    lap = 0.5 * (lap_before + lap_after)
    per_weight = weight_total / args.networks
    log(f"bare LAP after: {lap_after * 1e3:.2f} ms; mean {lap * 1e3:.2f} ms")
    log(f"weight matching: {weight_total:.2f} s for {args.networks} networks, {per_weight * 1e3:.2f} ms per alignment, "
        f"{per_weight / lap:.2f} x the bare LAP (goals: <= 30 s per 1,000, ratio <= 2)")
    assert perms[0].shape == (args.networks, 512)
    del stacked, networks, warm, perms

    # --- activation matching -----------------------------------------------------------------------
    per_activation = None
    if args.activation_networks > 0:
        mnist = data.load("mnist", args.data_root)
        x = mnist["x_train"]
        nets = random_networks(args.seed + 1, args.activation_networks)
        # Warm-up on two batches, so that compilation is not timed.
        rebasin.align_many(MODEL, reference, nets, method="activation", x=x[: 2 * args.batch_size], batch_size=args.batch_size,
                           **options)
        log(f"activation matching of {args.activation_networks} networks over {x.shape[0]} images "
            f"(batches of {args.batch_size})")
        start = time.perf_counter()
        rebasin.align_many(MODEL, reference, nets, method="activation", x=x, batch_size=args.batch_size,
                           progress="activation matching", **options)
        activation_total = time.perf_counter() - start
        per_activation = activation_total / args.activation_networks
        log(f"activation matching: {activation_total:.2f} s for {args.activation_networks} networks, "
            f"{per_activation:.3f} s per alignment, {1 / per_activation:.2f} samples per second "
            f"(1,000 HMC samples: {1000 * per_activation / 60:.1f} min)")

    log(f"load average at the end {os.getloadavg()[0]:.2f}")
    result = {
        "seconds_per_weight_alignment": round(per_weight, 6),
        "ratio_to_lap": round(per_weight / lap, 3),
        "seconds_per_activation_alignment": None if per_activation is None else round(per_activation, 4),
        "activation_samples_per_second": None if per_activation is None else round(1 / per_activation, 3),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
