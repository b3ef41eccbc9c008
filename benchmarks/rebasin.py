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

CNN rows (``CNN(image_shape=(1, 28, 28), channels=(16, 32), dense=(64,))``, the workflow's CNN):
weight matching of ``--cnn-networks`` random CNNs to one reference (coordinate descent over its
three permutations, 16, 32 and 64 channels and units) against the bare LAPs it solves: every cost
matrix the descent hands ``linear_sum_assignment`` is recorded in a second, identical run and
solved again alone, and the ratio is the matching's wall time over those LAPs' (goal, issue 18:
<= 2). Activation matching memory: in a fresh process per data size (``--cnn-activation-sizes``
MNIST training images), the peak resident memory while ``align_many`` streams the images in
batches, minus the memory before it (data loaded, networks drawn); a thread reads
/proc/self/statm every 5 ms. Streamed, it must not grow with the number of images.

Compilation is excluded (a warm-up call on a few networks first). The last line printed is one
JSON object: {"seconds_per_weight_alignment", "ratio_to_lap", "seconds_per_activation_alignment",
"activation_samples_per_second", "cnn_seconds_per_weight_alignment", "cnn_ratio_to_laps",
"cnn_laps_per_network", "cnn_ratio_to_laps_and_products", "cnn_seconds_per_activation_alignment",
"cnn_activation_peak_growth_mb"} (the last keyed by the number of images). The CNN's LAPs are small
(16 to 64 wide, tens of microseconds each), so its similarity products (each sweep multiplies the
first dense weight, 64 x 1,568, with the reference's) are most of the time; the ratio to LAPs and
products together says what the bookkeeping adds.

Usage: python benchmarks/rebasin.py [--networks 1000] [--activation-networks 100] [--workers N]
                                    [--cnn-networks 100] [--cnn-activation-sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from compactbnn import data
from compactbnn.models import CNN, MLP, Params
from compactbnn.symmetry import rebasin
from compactbnn.symmetry import similarity as sim

MODEL = MLP((784, 512, 10))
CNN_MODEL = CNN(image_shape=(1, 28, 28), channels=(16, 32), dense=(64,), num_classes=10)


def log(message: str) -> None:
    print(message, flush=True)


def random_networks(seed: int, count: int, model=MODEL) -> Params:
    """``count`` random networks (PyTorch init) stacked; drawn in groups to keep the init compilation small."""
    keys = jax.random.split(jax.random.key(seed), count)
    init = jax.jit(jax.vmap(model.init))
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


class RecordedLaps:
    """Stands in for ``rebasin.linear_sum_assignment`` and keeps a copy of every cost matrix it is handed."""

    def __init__(self):
        self.costs, self.lock, self.solve = [], threading.Lock(), linear_sum_assignment

    def __call__(self, cost, maximize=False):
        with self.lock:
            self.costs.append(np.array(cost))
        return self.solve(cost, maximize=maximize)


def cnn_weight_rows(args, options) -> dict:
    """Weight matching of random CNNs, and the bare LAPs it solves, timed alone."""
    stacked = random_networks(args.seed, args.cnn_networks + 1, CNN_MODEL)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], stacked)
    networks = jax.tree_util.tree_map(lambda leaf: leaf[1:], stacked)
    warm = jax.tree_util.tree_map(lambda leaf: leaf[:rebasin.DEFAULT_CHUNK_SIZE], networks)
    rebasin.align_many(CNN_MODEL, reference, warm, method="weight", **options)  # compile
    log(f"weight matching of {args.cnn_networks} networks of {CNN_MODEL} to one reference")
    start = time.perf_counter()
    perms = rebasin.align_many(CNN_MODEL, reference, networks, method="weight", **options)
    total = time.perf_counter() - start
    recorder = RecordedLaps()
    rebasin.linear_sum_assignment = recorder  # the same descent again (same key), its LAPs recorded
    try:
        again = rebasin.align_many(CNN_MODEL, reference, networks, method="weight", **options)
    finally:
        rebasin.linear_sum_assignment = recorder.solve
    assert all(np.array_equal(a, b) for a, b in zip(perms, again))
    laps = []
    for _ in range(5):  # tiny LAPs on a shared machine: the median of five passes
        start = time.perf_counter()
        for cost in recorder.costs:
            linear_sum_assignment(cost, maximize=True)
        laps.append(time.perf_counter() - start)
    laps = float(np.median(laps))
    per_network = len(recorder.costs) / args.cnn_networks
    products = similarity_seconds(reference, networks, options.get("chunk_size")) * per_network / CNN_MODEL.spec.num_perms
    log(f"CNN weight matching: {total:.3f} s for {args.cnn_networks} networks ({total / args.cnn_networks * 1e3:.2f} ms "
        f"each); its {len(recorder.costs)} LAPs ({per_network:.1f} per network) alone: {laps:.3f} s, ratio "
        f"{total / laps:.2f} (goal <= 2); its similarity products alone: {products:.3f} s, ratio to LAPs and products "
        f"{total / (laps + products):.2f}")
    return {"cnn_seconds_per_weight_alignment": round(total / args.cnn_networks, 6),
            "cnn_ratio_to_laps": round(total / laps, 3), "cnn_laps_per_network": round(per_network, 2),
            "cnn_ratio_to_laps_and_products": round(total / (laps + products), 3)}


def similarity_seconds(reference, networks, chunk_size) -> float:
    """Seconds of one sweep's similarity matrices (every permutation, every network, in the matcher's chunks), compiled first."""
    indices = np.arange(CNN_MODEL.num_stacked(networks))
    chunks = sim.chunks(indices, rebasin.DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size)

    def sweep():
        for perm in range(CNN_MODEL.spec.num_perms):
            for chunk in chunks:
                identity = [jnp.tile(jnp.arange(n, dtype=jnp.int32), (len(chunk), 1)) for n in CNN_MODEL.perm_sizes]
                np.asarray(sim.weight_similarities(CNN_MODEL, reference, networks, jnp.asarray(chunk), identity, perm=perm,
                                                   ref_stacked=False, similarity="weight"))

    sweep()  # compile
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sweep()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cnn_activation_child(args) -> None:
    """In a fresh process: peak memory growth while activation matching streams ``args.cnn_activation_child`` images."""
    x = data.load("mnist", args.data_root)["x_train"][: args.cnn_activation_child]
    nets = random_networks(args.seed + 1, args.cnn_activation_networks + 1, CNN_MODEL)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], nets)
    nets = jax.tree_util.tree_map(lambda leaf: leaf[1:], nets)
    options = dict(x=x, batch_size=args.cnn_batch_size, chunk_size=args.chunk_size, workers=args.workers)
    jax.block_until_ready(nets)
    before, peak, done = resident_mb(), [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    rebasin.align_many(CNN_MODEL, reference, nets, method="activation", **options)  # compilation included: same for every size
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    print(json.dumps({"images": int(x.shape[0]), "before_mb": round(before, 1), "peak_growth_mb": round(peak[0] - before, 1),
                      "seconds": round(seconds, 3)}), flush=True)


def cnn_activation_rows(args) -> dict:
    """Activation matching of CNNs over growing data, each size in a fresh process: the memory must stay flat."""
    growth, per_alignment = {}, None
    for size in [int(s) for s in args.cnn_activation_sizes.split(",") if s]:
        command = [sys.executable, __file__, "--cnn-activation-child", str(size), "--data-root", args.data_root,
                   "--cnn-activation-networks", str(args.cnn_activation_networks), "--cnn-batch-size", str(args.cnn_batch_size),
                   "--seed", str(args.seed)]
        for flag, value in (("--chunk-size", args.chunk_size), ("--workers", args.workers)):
            command += [] if value is None else [flag, str(value)]
        row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        growth[size] = row["peak_growth_mb"]
        per_alignment = row["seconds"] / args.cnn_activation_networks
        log(f"CNN activation matching of {args.cnn_activation_networks} networks over {size} images (batches of "
            f"{args.cnn_batch_size}): {row['seconds']:.2f} s with compilation, peak memory {row['peak_growth_mb']:.1f} MB "
            f"above the {row['before_mb']:.0f} MB before it")
    return {"cnn_seconds_per_activation_alignment": None if per_alignment is None else round(per_alignment, 4),
            "cnn_activation_peak_growth_mb": growth}


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
    parser.add_argument("--cnn-networks", type=int, default=100, help="CNNs aligned by weight matching (0 skips)")
    parser.add_argument("--cnn-activation-sizes", default="1000,10000",
                        help="comma-separated numbers of MNIST images for CNN activation matching ('' skips)")
    parser.add_argument("--cnn-activation-networks", type=int, default=4, help="CNNs aligned by activation matching")
    parser.add_argument("--cnn-batch-size", type=int, default=250, help="images per CNN activation batch")
    parser.add_argument("--cnn-activation-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cnn_activation_child is not None:
        return cnn_activation_child(args)

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

    cnn = cnn_weight_rows(args, options) if args.cnn_networks > 0 else {}
    cnn.update(cnn_activation_rows(args))

    log(f"load average at the end {os.getloadavg()[0]:.2f}")
    result = {
        "seconds_per_weight_alignment": round(per_weight, 6),
        "ratio_to_lap": round(per_weight / lap, 3),
        "seconds_per_activation_alignment": None if per_activation is None else round(per_activation, 4),
        "activation_samples_per_second": None if per_activation is None else round(1 / per_activation, 3),
        **cnn,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
