"""Milliseconds per leapfrog step of our HMC against a bare jitted full-batch gradient, side by side in one run.

Each leapfrog step evaluates one gradient of the potential U(theta) = -log prior - log
likelihood over the whole training set, so a gradient is the floor of a step's cost; the ratio
ms_per_gradient / ms_per_leapfrog (goal >= 0.9) says how much NumPyro's kernel, the chunk loop
and the bookkeeping of ``compactbnn.inference.hmc`` add on top.

* HMC: the compiled chunk that ``hmc.run_chain`` runs (``hmc.programs.compile_programs``) (NumPyro's HMC kernel, fixed step size,
  kept-sample buffer and per-iteration traces), timed per call with ``--iterations`` iterations
  of ``num_steps`` leapfrog steps; compilation and checkpoint writing are outside the timing.
* Gradient: ``jax.jit(jax.grad(hmc.potential_energy))``, the same potential in plain JAX, called
  ``--gradients`` times back to back per timing. For reference, the gradient of NumPyro's own
  potential of ``hmc.bnn_model`` is timed too (``ms_per_gradient_numpyro``).

The two are timed alternately ``--repeats`` times on the same device; the median of each is
reported, and the ratio of the minima as well (robust to other jobs sharing the machine). Sizes:

* small: 784-64-10 on the first 2,000 MNIST training images, 50 leapfrog steps per iteration
  (CPU, about a minute; ``--hidden`` and ``--num-train`` change it).
* paper: 784-512-10 on all 60,000 images, 500 leapfrog steps per iteration; runs when JAX sees
  a GPU or with ``--paper`` (on a CPU a step takes seconds: ``--paper-steps`` lowers the steps
  per iteration there, default 5).

Each gradient precision (``--gradient-precision``, default all three) is measured in turn: the
HMC kernel of ``mixed_precision`` with TF32 or bfloat16 leapfrog gradients against a bare gradient
with the same matmuls (emulated on CPUs, so there the low precisions cost more, not less). On
GPUs the process sets ``mixed_precision.DETERMINISTIC_GPU_FLAG`` for every precision.

The last line printed is one JSON object: ``{"small": {precision: {"device", "ms_per_leapfrog",
"ms_per_gradient", "ratio", ...}}, "paper": null or {precision: {...}}}``.
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
from numpyro.infer.util import potential_energy as numpyro_potential_energy

from compactbnn import data
from compactbnn.inference import hmc
from compactbnn.inference.hmc import mixed_precision
from compactbnn.inference.hmc.programs import chunk_slots, compile_programs
from compactbnn.models import MLP

mixed_precision.set_deterministic_reductions()  # before JAX starts its backends (GPU reductions for reversibility)

REPO = Path(__file__).resolve().parents[1]


def device_name() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


def measure(x, y, sizes, num_steps, iterations, gradients, repeats, precision, gradient_precision="float32", warmup=True,
            numpyro_gradient=True):
    """Median ms per leapfrog step (HMC chunk) and per bare gradient, timed alternately.

    ``gradient_precision``: of the leapfrog gradient (``mixed_precision``); the bare gradient uses the
    same matmuls. ``warmup=False`` times the first chunk, from the initial state, so its
    acceptance is that of the first ``iterations`` iterations from the PyTorch-default init.
    ``numpyro_gradient=False`` skips the reference timing of NumPyro's own potential gradient.
    """
    config = hmc.HMCConfig(step_size=1e-3, num_steps=num_steps, num_iterations=iterations, keep_first=0,
                           keep_last=iterations - 1, num_kept=1, chunk_size=iterations, matmul_precision=precision,
                           gradient_precision=gradient_precision)
    model = MLP(tuple(sizes))
    with jax.default_matmul_precision(precision):
        # The programs run_chain runs (same compiled chunk), called directly.
        x_dev, y_dev = jnp.asarray(np.asarray(x, np.float32)), jnp.asarray(np.asarray(y, np.int32))
        start = time.perf_counter()
        programs = compile_programs(model, config, int(x.shape[0]), None, 1, False, jax.default_backend())
        state = jax.device_get(programs.init(np.asarray(jax.random.PRNGKey(0)), x_dev, y_dev, None))
        slots, _ = chunk_slots(config, 0, iterations)
        chunk = programs.chunk
        compile_hmc = time.perf_counter() - start

        params = model.init(jax.random.PRNGKey(1))
        product = mixed_precision.matmul(gradient_precision)
        grad = jax.jit(jax.grad(lambda p, x, y: hmc.potential_energy(model, p, x, y, config.prior_sd, product)))
        grad_numpyro = jax.jit(jax.grad(lambda z, x, y: numpyro_potential_energy(hmc.bnn_model, (model, x, y, config.prior_sd), {}, z)))
        sites = model.to_sites(params)
        jax.block_until_ready(grad(params, x_dev, y_dev))
        if numpyro_gradient:
            jax.block_until_ready(grad_numpyro(sites, x_dev, y_dev))

        def time_chunk():
            nonlocal state
            t0 = time.perf_counter()
            out = chunk(state, x_dev, y_dev, np.int32(iterations), slots)
            jax.block_until_ready(out)
            elapsed = time.perf_counter() - t0
            state = jax.device_get(out[0])
            return 1e3 * elapsed / (iterations * num_steps), float(np.mean(out[2]["accept_prob"]))

        def time_grad(fn, arg):
            t0 = time.perf_counter()
            for _ in range(gradients):
                g = fn(arg, x_dev, y_dev)
            jax.block_until_ready(g)
            return 1e3 * (time.perf_counter() - t0) / gradients

        if warmup:
            time_chunk()  # warm-up run of the compiled chunk
        else:  # one iteration, discarded: the timed chunk starts at the init but without first-call costs
            jax.block_until_ready(chunk(state, x_dev, y_dev, np.int32(1), slots))
        leapfrog, grads, grads_numpyro, accepts = [], [], [], []
        for _ in range(repeats):
            ms, accept = time_chunk()
            leapfrog.append(ms)
            accepts.append(accept)
            grads.append(time_grad(grad, params))
            if numpyro_gradient:
                grads_numpyro.append(time_grad(grad_numpyro, sites))
    ms_leapfrog, ms_gradient = statistics.median(leapfrog), statistics.median(grads)
    return {
        "device": device_name(),
        "layer_sizes": list(sizes),
        "num_train": int(x.shape[0]),
        "num_steps": num_steps,
        "matmul_precision": precision,
        "gradient_precision": gradient_precision,
        "ms_per_leapfrog": round(ms_leapfrog, 4),
        "ms_per_gradient": round(ms_gradient, 4),
        "ratio": round(ms_gradient / ms_leapfrog, 4),
        "ratio_of_minima": round(min(grads) / min(leapfrog), 4),  # less sensitive to other load on the machine
        "ms_per_gradient_numpyro": round(statistics.median(grads_numpyro), 4) if numpyro_gradient else None,
        "leapfrog_steps_per_second": round(1e3 / ms_leapfrog, 2),
        "accept_rate": round(float(np.mean(accepts)), 4),
        "compile_s": round(compile_hmc, 2),
        "ms_per_leapfrog_all": [round(v, 4) for v in leapfrog],
        "ms_per_gradient_all": [round(v, 4) for v in grads],
    }


def report(name, result):
    print(f"{name}: {result['layer_sizes']} on {result['num_train']} images, {result['device']}, precision {result['matmul_precision']}")
    print(f"  HMC leapfrog step  {result['ms_per_leapfrog']:9.3f} ms  ({result['leapfrog_steps_per_second']:.1f} steps/s, "
          f"{result['num_steps']} steps/iteration, acceptance {result['accept_rate']:.3f})")
    print(f"  bare gradient      {result['ms_per_gradient']:9.3f} ms  (NumPyro potential's gradient {result['ms_per_gradient_numpyro']:.3f} ms)")
    print(f"  ratio gradient / leapfrog = {result['ratio']:.3f} (medians), {result['ratio_of_minima']:.3f} (minima)  (goal >= 0.9)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper", action="store_true", help="run the paper size even without a GPU")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper size even with a GPU")
    parser.add_argument("--hidden", type=int, default=64, help="hidden width of the small size")
    parser.add_argument("--num-train", type=int, default=2000, help="training images of the small size")
    parser.add_argument("--iterations", type=int, default=4, help="HMC iterations per timed chunk")
    parser.add_argument("--gradients", type=int, default=50, help="gradients per timed call sequence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paper-steps", type=int, default=None, help="leapfrog steps per iteration at paper size (default 500 on a GPU, 5 on a CPU)")
    parser.add_argument("--paper-num-train", type=int, default=60000, help="training images at paper size (fewer only to try the script)")
    parser.add_argument("--precision", default="highest", choices=hmc.MATMUL_PRECISIONS)
    parser.add_argument("--gradient-precision", default="all", choices=("all",) + mixed_precision.GRADIENT_PRECISIONS,
                        help="of the leapfrog gradient (default: each in turn)")
    args = parser.parse_args()
    precisions = mixed_precision.GRADIENT_PRECISIONS if args.gradient_precision == "all" else (args.gradient_precision,)

    mnist = data.load("mnist", REPO / "resources")
    results = {"small": {}, "paper": None}
    x, y = mnist["x_train"][: args.num_train], mnist["y_train"][: args.num_train]
    for gradient_precision in precisions:
        results["small"][gradient_precision] = measure(x, y, [784, args.hidden, 10], 50, args.iterations, args.gradients,
                                                       args.repeats, args.precision, gradient_precision)
        report(f"small, {gradient_precision} gradients", results["small"][gradient_precision])

    on_gpu = jax.default_backend() != "cpu"
    if (on_gpu or args.paper) and not args.no_paper:
        steps = args.paper_steps or (500 if on_gpu else 5)
        iterations = max(1, min(args.iterations, 2)) if on_gpu else 1
        gradients = args.gradients if on_gpu else 3
        n = args.paper_num_train
        results["paper"] = {}
        for gradient_precision in precisions:
            results["paper"][gradient_precision] = measure(mnist["x_train"][:n], mnist["y_train"][:n], [784, 512, 10], steps,
                                                           iterations, gradients, args.repeats, args.precision, gradient_precision)
            report(f"paper, {gradient_precision} gradients", results["paper"][gradient_precision])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
