"""Gradients per second of our cyclical SG-MCMC against a bare jitted minibatch gradient, side by side in one run.

Each SG-MCMC step evaluates one minibatch gradient of the log posterior estimate log p(theta) +
N / B sum_batch log p(y | x, theta), so a bare gradient is the floor of a step's cost; the ratio
gradients per second of the sampler / of the bare gradient (goal >= 0.9) says what BlackJAX's
estimator and solver, the minibatch gather, the schedule and the bookkeeping of
``compactbnn.inference.sgmcmc`` add on top.

* Sampler: the compiled epoch program that ``sgmcmc.run_chains`` runs
  (``sgmcmc.programs.compile_programs``), timed per call of ``--steps`` steps, once in the
  exploration stage (no noise) and once in the sampling stage (BlackJAX's solver draws one Gaussian
  per parameter and step); the run's mean is the two weighted by the exploration fraction.
  The epoch's shuffle (once per epoch), checkpoints (once per cycle) and the evaluation of kept
  samples are outside the timing (a real run's ``sampling_time`` includes the shuffles).
* Gradient: ``jax.jit(jax.grad(...))`` of the same estimate written in plain JAX with
  ``bnn.log_prior`` and ``bnn.log_likelihood`` on one fixed minibatch, called ``--gradients``
  times back to back per timing.

The two are timed alternately ``--repeats`` times; medians are reported. With ``--chains C`` > 1 the
sampler advances C chains in one vmapped program (``chain_method="vectorized"``) and its rate counts
the gradients of all chains. Sizes: small, 784-64-10 on 2,000 MNIST images (seconds); paper,
784-512-10 on all 60,000 (``--paper``, or by default on a GPU).

The last line printed is one JSON object: ``{"small": {...}, "paper": null or {...}}``.
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

from compactbnn import data
from compactbnn.inference import bnn, sgmcmc
from compactbnn.inference.sgmcmc import programs
from compactbnn.models import MLP

REPO = Path(__file__).resolve().parents[1]


def device_name() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


def sampler_timer(model, x, y, config, chains, steps):
    """A function (sampling: bool) -> seconds per step of the compiled epoch program, for ``steps`` steps."""
    target = sgmcmc.network_target(model, config.prior_sd, config.init)
    schedule = sgmcmc.Schedule(config.layout(len(x)), config.step_size)
    spe = schedule.layout.steps_per_epoch
    steps = min(steps, spe)  # one call runs steps of one epoch
    vectorized = chains > 1
    keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(0), chains)))
    init = jax.vmap(lambda k: programs.initial_state(config, target.init(k)))(keys)
    state = jax.device_get(init if vectorized else jax.tree.map(lambda a: a[0], init))
    keys = keys if vectorized else keys[0]
    data_dev = (jnp.asarray(x), jnp.asarray(y))
    compiled = programs.compile_programs(target, config, schedule, len(x), vectorized, state, data_dev)
    state = jax.device_put(state)
    batches = compiled.shuffle(keys, np.int32(0))
    sizes = programs.solver_steps(schedule.step_sizes(schedule.layout.cycle_length - spe, schedule.layout.cycle_length),
                                  len(x), config.sampler)  # the last epoch's (small) step sizes: no divergence

    def time_steps(sampling: bool) -> tuple[float, float]:
        nonlocal state
        t0, c0 = time.perf_counter(), time.process_time()
        state, values = compiled.epoch[sampling](state, data_dev, batches, keys, np.int32(0), np.int32(0), np.int32(steps), sizes)
        jax.block_until_ready(values)
        return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps

    time_steps(False), time_steps(True)  # first calls
    return time_steps, compiled.compile_time


def gradient_timer(model, x, y, config, gradients, noise_impl="threefry2x32"):
    """A function (noise: bool) -> seconds per bare minibatch gradient of the same estimate, called back to back.

    With noise, each call also draws one standard Gaussian per parameter (``jax.random.normal``, as
    BlackJAX's solvers do) and adds it: the floor of a sampling-stage step. ``noise_impl``: the PRNG
    of those draws (JAX's ``jax.random.key(seed, impl=...)``: threefry2x32, JAX's default and the
    sampler's, or rbg / unsafe_rbg, XLA's RngBitGenerator).
    """
    n, batch = len(x), config.batch_size
    params = model.init(jax.random.key(1))
    xb, yb = jnp.asarray(x[:batch]), jnp.asarray(y[:batch])

    def gradient(p, xb, yb):
        return jax.grad(lambda p: bnn.log_prior(p, config.prior_sd) + n / batch * bnn.log_likelihood(model, p, xb, yb))(p)

    def noisy(p, xb, yb, key):
        keys = jax.random.split(key, len(jax.tree.leaves(p)))
        noise = jax.tree.unflatten(jax.tree.structure(p), [jax.random.normal(k, a.shape) for k, a in zip(keys, jax.tree.leaves(p))])
        return jax.tree.map(jnp.add, gradient(p, xb, yb), noise)

    programs_ = {False: jax.jit(gradient), True: jax.jit(noisy)}
    key = jax.random.key(2, impl=noise_impl)
    jax.block_until_ready(programs_[False](params, xb, yb))
    jax.block_until_ready(programs_[True](params, xb, yb, key))

    def time_gradients(noise: bool) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(gradients):
            g = programs_[True](params, xb, yb, jax.random.fold_in(key, i)) if noise else programs_[False](params, xb, yb)
        jax.block_until_ready(g)
        return (time.perf_counter() - t0) / gradients, (time.process_time() - c0) / gradients

    return time_gradients


def measure(x, y, sizes, config, chains, steps, gradients, repeats, noise_impls=()):
    """Gradients per second of the sampler (exploration, sampling, the run's mean) and of the bare gradient.

    Every timing is taken in wall-clock seconds and in this process's CPU seconds: on a machine that
    other jobs load, the CPU seconds (the work done, summed over threads) compare more stably.
    ``noise_impls``: further PRNGs (rbg, unsafe_rbg) whose "bare gradient + one Gaussian per parameter"
    is timed in the same rounds, side by side with the default threefry2x32's (``bare_with_noise``).
    """
    model = MLP(tuple(sizes))
    with jax.default_matmul_precision(config.matmul_precision):
        time_steps, compile_s = sampler_timer(model, x, y, config, chains, steps)
        time_gradients = gradient_timer(model, x, y, config, gradients)
        others = {impl: gradient_timer(model, x, y, config, gradients, impl) for impl in noise_impls}
        runs = {"exploration": [], "bare": [], "sampling": [], "bare_with_noise": [],
                **{f"bare_with_noise_{impl}": [] for impl in noise_impls}}
        for _ in range(repeats):
            runs["exploration"].append(time_steps(False))
            runs["bare"].append(time_gradients(False))
            runs["sampling"].append(time_steps(True))
            runs["bare_with_noise"].append(time_gradients(True))
            for impl, timer in others.items():
                runs[f"bare_with_noise_{impl}"].append(timer(True))
    beta = config.exploration_fraction
    out = {"device": device_name(), "layer_sizes": list(sizes), "num_train": int(len(x)), "batch_size": config.batch_size,
           "sampler": config.sampler, "chains": chains, "exploration_fraction": beta,
           "matmul_precision": config.matmul_precision, "compile_s": round(compile_s, 2)}
    for clock, index in (("wall", 0), ("cpu", 1)):
        seconds = {name: statistics.median(t[index] for t in values) for name, values in runs.items()}
        seconds["run"] = beta * seconds["exploration"] + (1 - beta) * seconds["sampling"]
        rates = {stage: chains / seconds[stage] for stage in ("exploration", "sampling", "run")}
        out[clock] = {
            "ms_per_step": {stage: round(1e3 * seconds[stage], 4) for stage in rates},
            "gradients_per_second": {stage: round(r, 2) for stage, r in rates.items()},
            "bare_gradients_per_second": round(1 / seconds["bare"], 2),
            "ratio": {stage: round(r * seconds["bare"], 4) for stage, r in rates.items()},
            "bare_gradients_with_noise_per_second": round(1 / seconds["bare_with_noise"], 2),
            "sampling_ratio_to_gradient_with_noise": round(rates["sampling"] * seconds["bare_with_noise"], 4),
            "bare_gradients_with_noise_per_second_by_impl": {
                "threefry2x32": round(1 / seconds["bare_with_noise"], 2),
                **{impl: round(1 / seconds[f"bare_with_noise_{impl}"], 2) for impl in noise_impls}},
            "all_ms": {name: [round(1e3 * t[index], 4) for t in values] for name, values in runs.items()},
        }
    return out


def report(name, result):
    r = result
    print(f"{name}: {r['layer_sizes']} on {r['num_train']} images, batch {r['batch_size']}, {r['sampler']}, "
          f"{r['chains']} chain(s){' vmapped' if r['chains'] > 1 else ''}, {r['device']}")
    for clock in ("wall", "cpu"):
        c = r[clock]
        print(f"  [{clock} clock] bare minibatch gradient {c['bare_gradients_per_second']:9.1f} gradients/s")
        for stage in ("exploration", "sampling", "run"):
            label = {"exploration": "exploration stage (no noise)", "sampling": "sampling stage (noise)",
                     "run": f"run (beta = {r['exploration_fraction']})"}[stage]
            print(f"    SG-MCMC {label:28s} {c['gradients_per_second'][stage]:9.1f} gradients/s  "
                  f"({c['ms_per_step'][stage]:.3f} ms/step)  ratio {c['ratio'][stage]:.3f}")
        print(f"    bare gradient + one Gaussian per parameter {c['bare_gradients_with_noise_per_second']:.1f}/s (a sampling "
              f"step's floor): the sampling stage reaches {c['sampling_ratio_to_gradient_with_noise']:.3f} of it")
        for impl, rate in c["bare_gradients_with_noise_per_second_by_impl"].items():
            if impl != "threefry2x32":
                print(f"    the same with {impl} keys (jax.random.key(seed, impl={impl!r})): {rate:.1f}/s")
    print("  (goal: ratio >= 0.9)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper", action="store_true", help="run the paper size even without a GPU")
    parser.add_argument("--no-small", action="store_true", help="skip the small size")
    parser.add_argument("--chains", type=int, nargs="+", default=[1], help="chains advanced together (each value measured)")
    parser.add_argument("--sampler", choices=sgmcmc.SGMCMC_SAMPLERS, default="sgld")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="steps per timed call (at most an epoch)")
    parser.add_argument("--gradients", type=int, default=300, help="bare gradients per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paper-num-train", type=int, default=60000)
    parser.add_argument("--noise-impls", nargs="*", default=[], choices=("rbg", "unsafe_rbg"),
                        help="also time the bare gradient + one Gaussian per parameter with these PRNGs' keys")
    args = parser.parse_args()
    config = sgmcmc.SGMCMCConfig(sampler=args.sampler, batch_size=args.batch_size)
    mnist = data.load("mnist", REPO / "resources")
    results = {"small": None, "paper": None}
    if not args.no_small:
        results["small"] = {}
        for chains in args.chains:
            r = measure(mnist["x_train"][:2000], mnist["y_train"][:2000], [784, 64, 10], config, chains, args.steps,
                        args.gradients, args.repeats, args.noise_impls)
            results["small"][chains] = r
            report("small", r)
    if args.paper or jax.default_backend() != "cpu":
        results["paper"] = {}
        n = args.paper_num_train
        for chains in args.chains:
            r = measure(mnist["x_train"][:n], mnist["y_train"][:n], [784, 512, 10], config, chains, args.steps,
                        args.gradients, args.repeats, args.noise_impls)
            results["paper"][chains] = r
            report("paper", r)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
