"""The paper's scale on one device in minutes: HMC per gradient precision, trainings, alignment, projected wall times.

Writes one JSON file (``--out``, default ``gpu_check.json``) with:

* ``hmc``: for each gradient precision (float32, tf32, bfloat16; ``compactbnn.inference.hmc.mixed_precision``): ms
  per leapfrog step of the workflow's HMC chunk and ms per bare gradient with the same matmuls,
  their ratio, the acceptance rate of the first ``--hmc-iterations`` iterations from the
  PyTorch-default init (step 1e-3, 500 leapfrog steps: the paper's), and the relative error of
  the low-precision gradient at the init (0 would mean the precision did not take effect);
* ``experiment_a``: Experiment A's trainings, all NoT levels of one run vmapped (100 networks,
  SGD, batch 64): seconds per epoch and model-epochs per second;
* ``ensemble``, ``vi``: seconds per epoch (5 members, Adam, batch 100; mean-field VI, batch 100);
* ``evaluation``: forward passes of a stack of networks (losses, predictives), example-parameters
  per second;
* ``alignment``: activation matching (``rebasin.align_many(method="activation")``) of stand-in
  networks (PyTorch-default draws: the cost does not depend on the weights) over all training
  images: samples per second;
* ``determinism_flag``: ms per bare gradient of each precision with the flag that makes GPU
  reductions deterministic (this process) and without it (a child process), and the slowdown;
* ``projection``: from those, with ``compactbnn.config.cost``, the expected seconds of one job of every
  rule of the paper preset (config.yaml) and the sum over all its jobs (one device, one job at a
  time, overheads as measured on this repository's CPU figures), HMC for each precision.

Sizes: paper (784-512-10, MNIST 60,000 / 10,000; ``resources/mnist.npz`` must exist), or with
``--reduced`` a CPU-sized check (digits 64-32-10, a few iterations) that CI runs in about a
minute. Every timing except the HMC chunk's is of a second call, after a first one that
compiles. The determinism flag of mixed-precision HMC (``mixed_precision.DETERMINISTIC_GPU_FLAG``) is
set for the whole process, float32 included (``determinism_flag`` says what it costs).

On the GPU machine (jax 0.11, numpyro 0.21 preinstalled, no package registry), from the checkout:
``PYTHONPATH=src python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json`` (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from compactbnn.inference.hmc import mixed_precision  # noqa: E402

WITHOUT_FLAG = "--without-determinism-flag"  # the child process that times gradients without it
if WITHOUT_FLAG not in sys.argv:
    mixed_precision.set_deterministic_reductions()  # before JAX starts its backends

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpyro  # noqa: E402

from compactbnn.config import cost  # noqa: E402
from compactbnn import data, train
from compactbnn.inference import ensemble, hmc, vi
from compactbnn.models import MLP
from compactbnn.symmetry import rebasin

PAPER = {"hidden": 512, "hmc_steps": 500, "hmc_iterations": 20, "gradients": 20, "not_models": 100, "members": 5,
         "align_samples": 16, "eval_models": 16}
REDUCED = {"hidden": 32, "hmc_steps": 10, "hmc_iterations": 5, "gradients": 5, "not_models": 12, "members": 4,
           "align_samples": 4, "eval_models": 8}
CPU_FIGURES = REPO / "benchmarks" / "figures" / "cpu.json"


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call, blocking until JAX has finished."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - start


def second_call(fn, *args, **kwargs):
    """Seconds of a second call (the first compiles), and the first call's seconds."""
    _, first = timed(fn, *args, **kwargs)
    _, second = timed(fn, *args, **kwargs)
    return second, first


def check_hmc(x, y, sizes, scale):
    import hmc as hmc_benchmark  # benchmarks/hmc.py: the workflow's compiled chunk against a bare gradient

    model = MLP(tuple(sizes))
    params = model.init(jax.random.PRNGKey(1))
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    # data as arguments, not closed-over constants (XLA would constant-fold the rounding of x)
    exact = model.ravel(jax.jit(jax.grad(lambda p, x, y: hmc.potential_energy(model, p, x, y)))(params, xd, yd))
    out = {}
    for precision in mixed_precision.GRADIENT_PRECISIONS:
        t0 = time.perf_counter()
        m = hmc_benchmark.measure(x, y, sizes, scale["hmc_steps"], scale["hmc_iterations"], scale["gradients"], repeats=1,
                                  precision="highest", gradient_precision=precision, warmup=False, numpyro_gradient=False)
        product = mixed_precision.matmul(precision)
        lowp = model.ravel(jax.jit(jax.grad(lambda p, x, y: hmc.potential_energy(model, p, x, y, 1.0, product)))(params, xd, yd))
        out[precision] = {
            "ms_per_leapfrog": m["ms_per_leapfrog"], "ms_per_gradient": m["ms_per_gradient"], "ratio": m["ratio"],
            "accept_rate": m["accept_rate"], "iterations": scale["hmc_iterations"], "num_steps": scale["hmc_steps"],
            "leapfrog_steps_per_second": m["leapfrog_steps_per_second"], "compile_s": m["compile_s"],
            "gradient_relative_error": float(jnp.linalg.norm(lowp - exact) / jnp.linalg.norm(exact)),
            "wall_s": round(time.perf_counter() - t0, 2),
        }
        print(f"hmc {precision}: {out[precision]}", flush=True)
    speedup = {p: out["float32"]["ms_per_leapfrog"] / out[p]["ms_per_leapfrog"] for p in out}
    return out, speedup


def bare_gradients(x, y, sizes, calls):
    """ms per bare gradient of the potential, for each gradient precision (median of 3 timings of ``calls`` calls)."""
    model = MLP(tuple(sizes))
    params = model.init(jax.random.PRNGKey(1))
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    out = {}
    for precision in mixed_precision.GRADIENT_PRECISIONS:
        product = mixed_precision.matmul(precision)
        grad = jax.jit(jax.grad(lambda p, x, y: hmc.potential_energy(model, p, x, y, 1.0, product)))
        jax.block_until_ready(grad(params, xd, yd))
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(calls):
                g = grad(params, xd, yd)
            jax.block_until_ready(g)
            timings.append(1e3 * (time.perf_counter() - start) / calls)
        out[precision] = sorted(timings)[1]
    return out


def check_determinism_flag(x, y, sizes, scale, argv):
    """Bare gradients with the determinism flag (this process) and without it (a child process): its cost."""
    import subprocess
    import tempfile

    with_flag = bare_gradients(x, y, sizes, scale["gradients"])
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != mixed_precision.DETERMINISTIC_GPU_FLAG]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "without.json"
        child = subprocess.run([sys.executable, __file__, WITHOUT_FLAG, *argv, "--out", str(out)], capture_output=True, text=True,
                               env={**os.environ, "XLA_FLAGS": " ".join(flags)}, timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"the child process without the determinism flag failed:\n{child.stderr[-2000:]}")
        without = json.loads(out.read_text())
    result = {"ms_per_gradient_with_flag": with_flag, "ms_per_gradient_without_flag": without,
              "slowdown": {p: with_flag[p] / without[p] for p in with_flag}}
    print(f"determinism flag: {result}", flush=True)
    return result


def check_trainings(x, y, sizes, scale):
    models = scale["not_models"]
    model = MLP(tuple(sizes))
    params = model.init_many(jax.random.key(2), models)
    keys = jax.random.split(jax.random.key(3), models)
    sgd = train.TrainConfig(optimizer="sgd", learning_rate=1e-3, momentum=0.9, batch_size=64, epochs=1)
    s, first = second_call(lambda: train.train_many(model, params, x, y, keys, sgd, progress=False).params)
    experiment_a = {"models": models, "batch_size": 64, "s_per_epoch": s, "model_epochs_per_s": models / s, "first_call_s": first}
    print(f"experiment_a: {experiment_a}", flush=True)

    adam = train.TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=100, epochs=1, prior_sd=1.0)
    s, first = second_call(lambda: ensemble.train_ensemble(model, jax.random.key(4), x, y, scale["members"], adam, progress=False).params)
    members = {"members": scale["members"], "batch_size": 100, "s_per_epoch": s, "first_call_s": first}
    print(f"ensemble: {members}", flush=True)

    s, first = second_call(lambda: vi.fit(model, jax.random.key(5), x, y, vi.VIConfig(epochs=1), progress=False).mean)
    variational = {"batch_size": 100, "s_per_epoch": s, "first_call_s": first}
    print(f"vi: {variational}", flush=True)
    return experiment_a, members, variational


def check_evaluation_and_alignment(x, y, sizes, scale):
    model = MLP(tuple(sizes))
    num_params = model.num_params
    nets = model.init_many(jax.random.key(6), scale["eval_models"])
    s, first = second_call(lambda: train.evaluate_many(model, nets, x, y))
    evaluation = {"models": scale["eval_models"], "images": len(x), "s": s,
                  "example_params_per_s": scale["eval_models"] * len(x) * num_params / s, "first_call_s": first}
    print(f"evaluation: {evaluation}", flush=True)

    reference = model.init(jax.random.key(7))
    samples = model.init_many(jax.random.key(8), scale["align_samples"])
    s, first = second_call(lambda: rebasin.align_many(model, reference, samples, method="activation", x=x))
    alignment = {"samples": scale["align_samples"], "match_size": len(x), "s": s,
                 "samples_per_s": scale["align_samples"] / s, "first_call_s": first}
    print(f"alignment: {alignment}", flush=True)
    return evaluation, alignment


def projection(figures):
    """Seconds of one job of every rule of the paper preset, and the sum over its jobs, HMC per precision."""
    import yaml

    with open(REPO / "config.yaml") as handle:
        config = yaml.safe_load(handle)
    cpu = cost.load_figures(CPU_FIGURES) if CPU_FIGURES.exists() else {}
    overheads = cpu.get("overhead_s", {})
    counts = cost.job_counts(config)
    out = {"overheads_from": str(CPU_FIGURES.relative_to(REPO)) if overheads else None, "rules": {}, "total_s": {}}
    for precision in mixed_precision.GRADIENT_PRECISIONS:
        config["posterior"]["hmc"]["gradient_precision"] = precision
        total = 0.0
        for rule, count in counts.items():
            seconds = cost.job_seconds(rule, config, figures, overheads)
            total += count * seconds
            if rule != "hmc_chain" and precision != "float32":
                continue
            name = rule if rule != "hmc_chain" else f"hmc_chain ({precision})"
            out["rules"][name] = {"jobs": count, "seconds_per_job": round(seconds, 1)}
        out["total_s"][precision] = round(total, 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="digits 64-32-10 and a few iterations: a CPU check in about a minute")
    parser.add_argument("--hidden", type=int, help="hidden width instead of the paper's 512 (CPU figures: the quick preset's 64)")
    parser.add_argument("--num-train", type=int, help="the first N MNIST training images instead of all 60,000")
    parser.add_argument("--hmc-steps", type=int, help="leapfrog steps per HMC iteration instead of 500")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file to write")
    parser.add_argument(WITHOUT_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size_args = [a for a in (sys.argv[1:] if argv is None else argv) if a != WITHOUT_FLAG]
    size_args = [a for i, a in enumerate(size_args) if a != "--out" and (i == 0 or size_args[i - 1] != "--out")]
    start = time.perf_counter()
    scale = dict(REDUCED if args.reduced else PAPER)
    scale.update({k: v for k, v in (("hidden", args.hidden), ("hmc_steps", args.hmc_steps)) if v is not None})
    arrays = data.load("digits") if args.reduced else data.load("mnist", REPO / "resources")
    if args.num_train is not None:
        arrays = data.take_first(arrays, args.num_train, None)
    x, y = arrays["x_train"], arrays["y_train"]
    sizes = [x.shape[1], scale["hidden"], 10]
    if args.without_determinism_flag:
        with open(args.out, "w") as handle:
            json.dump(bare_gradients(x, y, sizes, scale["gradients"]), handle)
        return None
    device = jax.devices()[0]
    print(f"device {device.platform}:{device.device_kind}, jax {jax.__version__}, numpyro {numpyro.__version__}, sizes {sizes}, "
          f"{len(x)} images", flush=True)

    figures = {
        "schema": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{device.platform}:{device.device_kind}",
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "reduced": args.reduced,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "size": {"layer_sizes": sizes, "num_params": MLP(tuple(sizes)).num_params, "num_train": int(len(x)),
                 "num_test": int(len(arrays["x_test"]))},
    }
    figures["hmc"], figures["hmc_speedup_over_float32"] = check_hmc(x, y, sizes, scale)
    figures["experiment_a"], figures["ensemble"], figures["vi"] = check_trainings(x, y, sizes, scale)
    figures["evaluation"], figures["alignment"] = check_evaluation_and_alignment(x, y, sizes, scale)
    figures["determinism_flag"] = check_determinism_flag(x, y, sizes, scale, size_args)
    figures["projection"] = projection(figures)
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(figures, handle, indent=2)
    print(json.dumps(figures["projection"]))
    print(f"wrote {args.out} in {figures['wall_s']} s")
    return figures


if __name__ == "__main__":
    main()
