"""Speed of rebasin: weight matching against the bare LAPs it solves (an MLP, a CNN, a ResNet), activation matching.

Weight matching, one row per model: ``--networks`` random 784-512-10 MLPs (one permutation: one
512x512 LAP each, similarities in JAX), ``--cnn-networks`` CNNs ``CNN(image_shape=(1, 28, 28),
channels=(16, 32), dense=(64,))`` (three permutations, 16, 32 and 64 wide: coordinate descent,
``compactbnn.symmetry.descent``) and ``--resnet-networks`` ResNets ``ResNet(image_shape=(1, 28,
28), width=16, blocks=2)`` (three permutations of 16 channels), all random (PyTorch init), aligned
to one reference with ``rebasin.align_many``. Timed: the matching with ``--workers`` threads (by
default all CPUs for the MLP's LAP pool, one thread for a coordinate descent) and with one
thread; then the same matching runs a third time with each cost matrix it hands
``scipy.optimize.linear_sum_assignment`` solved once more, alone, timed: the bare LAPs it solves
(``linear_sum_assignment`` on the same matrices, side by side in one run). The ratio of the
matching's wall time to those LAPs' says what the similarity matrices and the bookkeeping add to
the LAPs themselves; goal (issue 18): <= 2. The three runs are repeated ``--repeats`` times,
interleaved, and their medians compared; on a shared machine the ratio of CPU seconds (the
one-thread matching's process time over the LAPs' thread time) is the steadier one. Compilation
and the sweep orders drawn are not timed (a warm-up call first, the orders' cache emptied before
each timed run).

Activation matching (Experiment C as the authors aligned HMC samples): aligns
``--activation-networks`` random 784-512-10 networks to a reference over all 60,000 MNIST training
images, streamed in batches (the reference's activations computed once per batch, shared by every
chunk of networks); seconds per alignment and samples aligned per second. The paper's 1,000 kept
HMC samples take 1,000 / that rate.

Activation matching's memory (the CNN): in a fresh process per data size
(``--cnn-activation-sizes`` MNIST training images, e.g. 1x and 4x), after a warm-up on 500
images (compilation), the peak resident memory while ``align_many`` streams the images in
batches (the kernel's high-water mark VmHWM, reset before the run through /proc/self/clear_refs),
minus the resident memory before it (data loaded, networks drawn), and the milliseconds per
image. Streamed, the peak must not grow with the number of images; storing the activations would
take about 0.3 MB per image for the five CNNs (printed per size).

The last line printed is one JSON object: per model m in (mlp, cnn, resnet) "m_seconds_per_weight_alignment",
"m_ratio_to_laps", "m_ratio_to_laps_one_thread", "m_cpu_ratio_to_laps_one_thread", "m_laps_per_network";
"seconds_per_activation_alignment", "activation_samples_per_second"; "cnn_activation_peak_growth_mb" and
"cnn_activation_ms_per_image" (keyed by the number of images).

Usage: python benchmarks/rebasin.py [--networks 1000] [--cnn-networks 100] [--resnet-networks 100]
                                    [--activation-networks 100] [--cnn-activation-sizes 1000,4000]
                                    [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from compactbnn import data
from compactbnn.models import CNN, MLP, Params, ResNet
from compactbnn.symmetry import descent, rebasin

MODELS = {
    "mlp": MLP((784, 512, 10)),
    "cnn": CNN(image_shape=(1, 28, 28), channels=(16, 32), dense=(64,), num_classes=10),
    "resnet": ResNet(image_shape=(1, 28, 28), width=16, blocks=2, num_classes=10),
}
MODEL, CNN_MODEL = MODELS["mlp"], MODELS["cnn"]


def log(message: str) -> None:
    print(message, flush=True)


def random_networks(seed: int, count: int, model=MODEL) -> Params:
    """``count`` random networks (PyTorch init) stacked; drawn in groups to keep the init compilation small."""
    keys = jax.random.split(jax.random.key(seed), count)
    init = jax.jit(jax.vmap(model.init))
    group = 100
    parts = [init(keys[start: start + group]) for start in range(0, count, group)]
    return jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves), *parts)


class TimedLaps:
    """Stands in for ``rebasin.linear_sum_assignment``: solves each cost matrix, then once more alone, timed."""

    def __init__(self):
        self.seconds, self.cpu, self.count, self.solve = 0.0, 0.0, 0, linear_sum_assignment

    def __call__(self, cost, maximize=False):
        answer = self.solve(cost, maximize=maximize)
        start, cpu = time.perf_counter(), time.thread_time()
        self.solve(cost, maximize=maximize)
        self.seconds += time.perf_counter() - start
        self.cpu += time.thread_time() - cpu
        self.count += 1
        return answer


def weight_row(name: str, count: int, args) -> dict:
    """Weight matching of ``count`` random networks of MODELS[name] to one reference, against its bare LAPs."""
    model = MODELS[name]
    stacked = random_networks(args.seed, count + 1, model)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], stacked)
    networks = jax.tree_util.tree_map(lambda leaf: leaf[1:], stacked)
    jax.block_until_ready(networks)
    align = lambda workers: rebasin.align_many(model, reference, networks, method="weight",  # noqa: E731
                                               chunk_size=args.chunk_size, workers=workers)
    # compile (the one-permutation MLP's JAX products, for the chunk shape the timed runs use)
    warm = jax.tree_util.tree_map(lambda leaf: leaf[:min(count, args.chunk_size or rebasin.DEFAULT_CHUNK_SIZE)], networks)
    rebasin.align_many(model, reference, warm, method="weight", chunk_size=args.chunk_size)
    runs = {"default": [], "default_cpu": [], "one": [], "one_cpu": [], "laps": [], "laps_cpu": []}
    for _ in range(args.repeats):  # interleaved, medians: the machine may be shared
        for label, workers in (("default", args.workers), ("one", 1)):
            descent.SweepOrders.drawn_before.clear()
            start, cpu = time.perf_counter(), time.process_time()
            perms = align(workers)
            runs[label].append(time.perf_counter() - start)
            runs[label + "_cpu"].append(time.process_time() - cpu)
        laps = TimedLaps()
        rebasin.linear_sum_assignment = laps  # the same matching again (same key), each LAP also solved alone
        try:
            again = align(1)
        finally:
            rebasin.linear_sum_assignment = laps.solve
        assert all(np.array_equal(a, b) for a, b in zip(perms, again))
        runs["laps"].append(laps.seconds)
        runs["laps_cpu"].append(laps.cpu)
    total, one, one_cpu, alone, alone_cpu = (float(np.median(runs[label]))
                                             for label in ("default", "one", "one_cpu", "laps", "laps_cpu"))
    log(f"{name} weight matching, {count} networks of {model}: {total:.3f} s ({total / count * 1e3:.2f} ms each); "
        f"its {laps.count} LAPs ({laps.count / count:.1f} per network) alone: {alone:.3f} s, ratio "
        f"{total / alone:.2f} (goal <= 2); with one thread {one:.3f} s, ratio {one / alone:.2f}; in CPU seconds, one "
        f"thread {one_cpu:.3f} s, LAPs {alone_cpu:.3f} s, ratio {one_cpu / alone_cpu:.2f} (medians of {args.repeats})")
    return {f"{name}_seconds_per_weight_alignment": round(total / count, 6),
            f"{name}_ratio_to_laps": round(total / alone, 3),
            f"{name}_ratio_to_laps_one_thread": round(one / alone, 3),
            f"{name}_cpu_ratio_to_laps_one_thread": round(one_cpu / alone_cpu, 3),
            f"{name}_laps_per_network": round(laps.count / count, 2)}


def status_mb(key: str) -> float:
    """A memory figure of /proc/self/status ("VmRSS": resident now, "VmHWM": its peak) in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))


def cnn_activation_child(args) -> None:
    """In a fresh process: the peak resident memory added while activation matching streams ``args.cnn_activation_child`` images.

    The kernel's own high-water mark (VmHWM), reset before the run by writing 5 to
    /proc/self/clear_refs: exact, not sampled.
    """
    x = data.load("mnist", args.data_root)["x_train"][: args.cnn_activation_child]
    nets = random_networks(args.seed + 1, args.cnn_activation_networks + 1, CNN_MODEL)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], nets)
    nets = jax.tree_util.tree_map(lambda leaf: leaf[1:], nets)
    options = dict(batch_size=args.cnn_batch_size, chunk_size=args.chunk_size, workers=args.workers)
    rebasin.align_many(CNN_MODEL, reference, nets, method="activation", x=x[:500], **options)  # compile
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak starts again from the resident memory now
    before = status_mb("VmRSS")
    start = time.perf_counter()
    rebasin.align_many(CNN_MODEL, reference, nets, method="activation", x=x, **options)
    seconds = time.perf_counter() - start
    print(json.dumps({"images": int(x.shape[0]), "before_mb": round(before, 1),
                      "peak_growth_mb": round(status_mb("VmHWM") - before, 1), "seconds": round(seconds, 3)}), flush=True)


def cnn_activation_rows(args) -> dict:
    """Activation matching of CNNs over growing data, each size in a fresh process: the memory must stay flat."""
    growth, per_image = {}, {}
    for size in [int(s) for s in args.cnn_activation_sizes.split(",") if s]:
        command = [sys.executable, __file__, "--cnn-activation-child", str(size), "--data-root", args.data_root,
                   "--cnn-activation-networks", str(args.cnn_activation_networks), "--cnn-batch-size", str(args.cnn_batch_size),
                   "--seed", str(args.seed)]
        for flag, value in (("--chunk-size", args.chunk_size), ("--workers", args.workers)):
            command += [] if value is None else [flag, str(value)]
        row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        growth[size], per_image[size] = row["peak_growth_mb"], round(row["seconds"] / size * 1e3, 3)
        log(f"CNN activation matching of {args.cnn_activation_networks} networks over {size} images (batches of "
            f"{args.cnn_batch_size}): {per_image[size]:.3f} ms per image; peak resident memory {growth[size]:.1f} MB "
            f"above the {row['before_mb']:.0f} MB before it (storing the activations would take "
            f"{size * activation_bytes(args.cnn_activation_networks + 1) / 2**20:.0f} MB)")
    return {"cnn_activation_peak_growth_mb": growth, "cnn_activation_ms_per_image": per_image}


def activation_bytes(networks: int) -> int:
    """Bytes of the hidden activations of one image for ``networks`` CNNs (float32): what streaming avoids keeping."""
    x = jnp.zeros((1, CNN_MODEL.num_features))
    params = CNN_MODEL.init(jax.random.key(0))
    return networks * 4 * sum(int(np.prod(a.shape)) for a in CNN_MODEL.hidden_activations(params, x))


def mlp_activation_row(args) -> dict:
    """Activation matching of random 784-512-10 networks over all MNIST training images."""
    x = data.load("mnist", args.data_root)["x_train"]
    nets = random_networks(args.seed + 1, args.activation_networks + 1)
    reference = jax.tree_util.tree_map(lambda leaf: leaf[0], nets)
    nets = jax.tree_util.tree_map(lambda leaf: leaf[1:], nets)
    options = dict(batch_size=args.batch_size, chunk_size=args.chunk_size, workers=args.workers)
    rebasin.align_many(MODEL, reference, nets, method="activation", x=x[: 2 * args.batch_size], **options)  # compile
    log(f"activation matching of {args.activation_networks} networks over {x.shape[0]} images (batches of {args.batch_size})")
    start = time.perf_counter()
    rebasin.align_many(MODEL, reference, nets, method="activation", x=x, progress="activation matching", **options)
    per_alignment = (time.perf_counter() - start) / args.activation_networks
    log(f"activation matching: {per_alignment:.3f} s per alignment, {1 / per_alignment:.2f} samples per second "
        f"(1,000 HMC samples: {1000 * per_alignment / 60:.1f} min)")
    return {"seconds_per_activation_alignment": round(per_alignment, 4),
            "activation_samples_per_second": round(1 / per_alignment, 3)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=1000, help="MLPs aligned by weight matching (0 skips)")
    parser.add_argument("--cnn-networks", type=int, default=100, help="CNNs aligned by weight matching (0 skips)")
    parser.add_argument("--resnet-networks", type=int, default=100, help="ResNets aligned by weight matching (0 skips)")
    parser.add_argument("--activation-networks", type=int, default=100, help="MLPs aligned by activation matching (0 skips)")
    parser.add_argument("--chunk-size", type=int, default=None, help="networks per similarity computation")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPU count)")
    parser.add_argument("--batch-size", type=int, default=rebasin.DEFAULT_BATCH_SIZE, help="images per activation batch")
    parser.add_argument("--data-root", default="resources", help="folder holding mnist.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each weight matching (medians)")
    parser.add_argument("--cnn-activation-sizes", default="1000,4000",
                        help="comma-separated numbers of MNIST images for CNN activation matching ('' skips)")
    parser.add_argument("--cnn-activation-networks", type=int, default=4, help="CNNs aligned by activation matching")
    parser.add_argument("--cnn-batch-size", type=int, default=250, help="images per CNN activation batch")
    parser.add_argument("--cnn-activation-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cnn_activation_child is not None:
        return cnn_activation_child(args)

    log(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}")
    result = {}
    for name, count in (("mlp", args.networks), ("cnn", args.cnn_networks), ("resnet", args.resnet_networks)):
        if count > 0:
            result.update(weight_row(name, count, args))
    if args.activation_networks > 0:
        result.update(mlp_activation_row(args))
    result.update(cnn_activation_rows(args))
    log(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
