"""Cyclical SG-MCMC through BlackJAX (compactbnn.inference.sgmcmc): the posterior it samples, its schedule, resuming, refusals.

The sampler must draw a Gaussian posterior known in closed form (Bayesian linear regression), with
mean and sd within Monte Carlo error: no noise would shrink the sd to almost 0, a likelihood not
scaled by N / B would widen it by about sqrt(N / B) = 4.5, noise of half or twice the variance
(the eta versus eta / 2 conventions of Langevin steps) would scale it by 0.71 or 1.41.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.sgmcmc import diffusions, gradients

from compactbnn.config import checks, cost
from compactbnn.config.fields import FieldError
from compactbnn.inference import diagnostics, sgmcmc
from compactbnn.inference.sgmcmc import programs
from compactbnn.models import MLP

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# A posterior known in closed form: y_n ~ N(w . x_n, 1), w ~ N(0, I)

N, D, B = 400, 2, 20


@functools.lru_cache(maxsize=1)
def regression():
    """(target, data, posterior mean, posterior sd); one target object, so that runs of one config share their programs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x @ np.array([0.5, -1.0]) + rng.normal(size=N)).astype(np.float32)
    precision = np.eye(D) + x.T.astype(np.float64) @ x
    cov = np.linalg.inv(precision)
    target = sgmcmc.Target(log_prior=lambda w: -0.5 * jnp.sum(w**2),
                           log_likelihood=lambda w, example: -0.5 * (example[1] - jnp.dot(w, example[0])) ** 2,
                           init=lambda key: jax.random.normal(key, (D,)), name="Bayesian linear regression")
    return target, (x, y), cov @ (x.T.astype(np.float64) @ y), np.sqrt(np.diag(cov))


@pytest.mark.parametrize("sampler", ["sgld", "sghmc"])
def test_samples_a_gaussian_posterior_known_in_closed_form(sampler, tmp_path):
    target, data, mean, sd = regression()
    # 2 chains x 60 cycles of 1,000 steps: each explores to the mode, then samples for 500 steps (eta * precision <= 0.05)
    config = sgmcmc.SGMCMCConfig(sampler=sampler, step_size=0.05, alpha=0.9, batch_size=B, epochs=3000, cycles=60,
                                 exploration_fraction=0.5, samples_per_cycle=3, thinning=50)
    results = sgmcmc.sample_target(target, data, config, jax.random.split(jax.random.key(0), 2), tmp_path,
                                   progress=False, chain_method="vectorized")
    samples = np.concatenate([r.samples for r in results])
    assert samples.shape == (2 * 60 * 3, D)
    # a cycle's three samples are correlated, the cycles nearly independent: 120 draws' worth of Monte Carlo error
    error = sd / math.sqrt(120)
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - mean), 4 * error)
    # the sd's Monte Carlo error is ~6.5 %, SGLD's bias ~3 %: noise of half or twice the variance (sd x 0.71, x 1.41) fails
    np.testing.assert_allclose(samples.std(axis=0), sd, rtol=0.2)


# ---------------------------------------------------------------------------------------------
# The schedule


def test_cosine_schedule_restarts_every_cycle_with_noise_only_in_its_sampling_stage():
    config = sgmcmc.SGMCMCConfig(step_size=0.5, batch_size=10, epochs=8, cycles=2, exploration_fraction=0.75,
                                 samples_per_cycle=3, thinning=4)
    layout = config.layout(105)  # 10 full batches an epoch, the last 5 examples sit each epoch out
    assert (layout.steps_per_epoch, layout.cycle_length, layout.exploration_steps, layout.sampling_steps) == (10, 40, 30, 10)
    schedule = sgmcmc.Schedule(layout, config.step_size)
    alpha = schedule.step_sizes(0, 80)
    k = np.arange(80)
    np.testing.assert_allclose(alpha, 0.25 * (np.cos(np.pi * (k % 40) / 40) + 1))  # the paper's eq. (1)
    assert alpha[0] == alpha[40] == 0.5 and np.all(np.diff(alpha[:40]) < 0) and alpha[39] > 0  # falls, restarts
    sampling = schedule.sampling(0, 80)
    np.testing.assert_array_equal(sampling, (k % 40) / 40 >= 0.75)  # r(k) >= beta: the sampling stage
    np.testing.assert_array_equal(schedule.kept_steps(), [31, 35, 39, 71, 75, 79])  # each cycle's end, thinning apart
    assert sampling[schedule.kept_steps()].all()
    np.testing.assert_array_equal(schedule.cycle_of(schedule.kept_steps()), [0, 0, 0, 1, 1, 1])


def test_the_codes_cycles_are_the_default_layout():
    """cifar_csgmcmc.py: 50-epoch cycles, noise in epochs 46-50, the network saved after epochs 48, 49 and 50."""
    config = sgmcmc.SGMCMCConfig()
    layout = config.layout(60_000)
    spe = 60_000 // 64
    assert layout.steps_per_epoch == spe and layout.cycle_length == 50 * spe and layout.exploration_steps == 45 * spe
    kept = sgmcmc.Schedule(layout, config.step_size).kept_steps()
    np.testing.assert_array_equal(kept[:3], [48 * spe - 1, 49 * spe - 1, 50 * spe - 1])
    assert len(kept) == 12 and kept[-1] == 200 * spe - 1


def test_solver_steps_are_the_codes_learning_rates_on_the_log_posterior():
    lr = np.array([0.5, 1e-3])
    np.testing.assert_allclose(programs.solver_steps(lr, 1000, "sgld"), lr / 1000, rtol=1e-6)  # eta = lr / N
    np.testing.assert_allclose(programs.solver_steps(lr, 1000, "sghmc"), np.sqrt(lr / 1000), rtol=1e-6)  # eps = sqrt(eta)


@pytest.mark.parametrize("sampler", ["sgld", "sghmc"])
def test_exploration_is_blackjaxs_solver_without_noise_and_the_gradient_blackjaxs_estimator(sampler):
    target, (x, y), _, _ = regression()
    config = sgmcmc.SGMCMCConfig(sampler=sampler, alpha=0.3, batch_size=B, epochs=1, cycles=1)
    position, momentum = jnp.array([0.3, -0.2]), jnp.array([0.05, 0.1]) if sampler == "sghmc" else ()
    minibatch = (jnp.asarray(x[:B]), jnp.asarray(y[:B]))
    step = jnp.float32(1e-3)
    new, value = programs.make_step(target, config, N, sampling=False)((position, momentum), jax.random.key(0), minibatch, step)
    grad = gradients.grad_estimator(target.log_prior, target.log_likelihood, N)(position, minibatch)
    expected_value = target.log_prior(position) + N * jnp.mean(jax.vmap(target.log_likelihood, (None, 0))(position, minibatch))
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    if sampler == "sgld":
        reference = diffusions.overdamped_langevin()(jax.random.key(1), position, grad, step, 0.0), ()
    else:
        reference = diffusions.sghmc(alpha=0.3 / step)(jax.random.key(1), position, momentum, grad, step, 0.0)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    noisy, _ = programs.make_step(target, config, N, sampling=True)((position, momentum), jax.random.key(0), minibatch, step)
    # the sampling stage adds BlackJAX's noise (SGHMC's to the momentum, which moves the position a step later)
    assert not all(np.allclose(a, b, rtol=1e-7, atol=0) for a, b in zip(jax.tree.leaves(noisy), jax.tree.leaves(new)))


# ---------------------------------------------------------------------------------------------
# A network: resuming, the record, the diagnostics


def tiny_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    config = sgmcmc.SGMCMCConfig(sampler="sghmc", step_size=0.1, batch_size=8, epochs=4, cycles=2, exploration_fraction=0.5,
                                 samples_per_cycle=2, thinning=3)
    return MLP((4, 5, 3)), x, y, config


def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_samples(tmp_path):
    model, x, y, config = tiny_problem()
    keys = jax.random.split(jax.random.key(3), 2)
    kwargs = dict(x_test=x[:20], y_test=y[:20], progress=False, chain_method="vectorized")
    whole = sgmcmc.run_chains(model, x, y, config, keys, tmp_path / "whole", **kwargs)
    first = sgmcmc.run_chains(model, x, y, config, keys, tmp_path / "cut", max_cycles=1, **kwargs)
    assert not first[0].complete and first[0].completed_cycles == 1 and len(first[0].samples) == 2
    shutil.copytree(tmp_path / "cut", tmp_path / "copy")  # a copy: the record alone says where to go on
    resumed = sgmcmc.run_chains(model, x, y, config, keys, tmp_path / "copy", **kwargs)
    for a, b in zip(whole, resumed):
        assert b.complete and b.completed_steps == a.completed_steps == 2 * 2 * 8
        np.testing.assert_array_equal(a.samples, b.samples)  # bit for bit
        np.testing.assert_array_equal(a.traces["log_density"], b.traces["log_density"])
        for name in a.metrics:
            np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    # the record a workflow rule needs
    result = whole[1]
    assert result.samples.shape == (4, model.num_params) and result.samples.dtype == np.float32
    np.testing.assert_array_equal(result.kept_steps, [12, 15, 28, 31])
    np.testing.assert_array_equal(result.kept_cycles, [0, 0, 1, 1])
    assert set(result.metrics) == {"log_prior", "train_log_likelihood", "train_accuracy", "test_log_likelihood", "test_accuracy"}
    assert result.traces["log_density"].shape == (32,) and np.isfinite(result.traces["log_density"]).all()
    assert json.loads(json.dumps(result.summary()))["num_kept"] == 4
    # the kept samples' metrics are the exact ones, recomputed from the samples
    params = model.unravel(jnp.asarray(result.samples[2]))
    logits = model.apply(params, jnp.asarray(x[:20]))
    test_ll = float(jnp.sum(jax.nn.log_softmax(logits)[np.arange(20), y[:20]]))
    assert result.metrics["test_log_likelihood"][2] == pytest.approx(test_ll, rel=1e-5)
    # a finished checkpoint is returned as is; another setup is refused by name
    again = sgmcmc.load_chains(tmp_path / "whole")
    np.testing.assert_array_equal(again[0].samples, whole[0].samples)
    with pytest.raises(ValueError, match="config.step_size"):
        sgmcmc.run_chains(model, x, y, sgmcmc.SGMCMCConfig(**{**config.to_dict(), "step_size": 0.2}), keys, tmp_path / "cut", **kwargs)
    # ArviZ traces and split R-hat across chains, as HMC's
    idata = diagnostics.sgmcmc_chain_trace(result, 1)
    path = tmp_path / "trace.nc"
    diagnostics.write_trace(path, idata)
    back = diagnostics.read_trace(path)
    np.testing.assert_array_equal(back.posterior["draw"].values, result.kept_steps)
    assert back.iteration_stats["sampling"].values.sum() == 16
    rhat = diagnostics.weight_rhat([r.samples for r in whole])
    assert rhat["num_chains"] == 2 and rhat["num_params"] == model.num_params


def test_one_chain_per_job_in_its_own_directory(tmp_path):
    model, x, y, config = tiny_problem()
    keys = jax.random.split(jax.random.key(3), 2)
    both = sgmcmc.run_chains(model, x, y, config, keys, tmp_path / "seq", progress=False, chain_method="sequential")
    one = sgmcmc.run_chain(model, x, y, config, keys[1], tmp_path / "one", progress=False, chain_name="chain1")
    np.testing.assert_array_equal(one.samples, both[1].samples)  # the same chain whichever way it runs
    assert (tmp_path / "one" / "state.pkl").exists() and one.chain_name == "chain1"


# ---------------------------------------------------------------------------------------------
# Refusals


def test_nan_stops_the_run_naming_the_chain_and_the_step(tmp_path):
    target, data, _, _ = regression()
    # eta * precision ~ 1e3 at the start: the chains diverge
    config = sgmcmc.SGMCMCConfig(step_size=1e3, batch_size=B, epochs=2, cycles=1, samples_per_cycle=1)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(FloatingPointError, match=r"SG-MCMC chain1: the log-posterior estimate is nan at step 0 \(cycle 0, epoch 0"):
        sgmcmc.sample_target(target, data, config, keys, tmp_path / "init", progress=False, chain_method="vectorized",
                             init_positions=[jnp.zeros(D), jnp.array([np.nan, 0.0])])
    with pytest.raises(FloatingPointError, match=r"SG-MCMC chain\d: .* at step [1-9]\d* .*exploration stage.*lower step_size"):
        sgmcmc.sample_target(target, data, config, keys, tmp_path / "diverging", progress=False, chain_method="vectorized",
                             init_positions=[jnp.zeros(D), jnp.zeros(D)])


def smoke_config() -> dict:
    cfg = checks.read_config_file(REPO / "config.yaml")
    checks.merge(cfg, checks.read_config_file(REPO / "presets" / "smoke.yaml"))
    return cfg


@pytest.mark.parametrize("override, key, words", [
    ({"step_size": -0.5}, "posterior.sgmcmc.step_size", "> 0"),
    ({"step_size": float("nan")}, "posterior.sgmcmc.step_size", "finite"),
    ({"sampler": "sghcm"}, "posterior.sgmcmc.sampler", "did you mean sghmc"),
    ({"epochs": 10, "cycles": 4}, "posterior.sgmcmc.epochs", "multiple of posterior.sgmcmc.cycles"),
    ({"exploration_fraction": 1.0}, "posterior.sgmcmc.exploration_fraction", "< 1"),
    ({"samples_per_cycle": 40}, "posterior.sgmcmc.samples_per_cycle", "sampling stage"),
    ({"batch_size": 5000}, "posterior.sgmcmc.batch_size", "training examples"),
    ({"train_size": 100_000}, "posterior.sgmcmc.train_size", "exceeds"),
    ({"temperature": 0}, "posterior.sgmcmc.temperature", "> 0"),
    ({"thinning": 2.0}, "posterior.sgmcmc.thinning", "integer"),
    ({"steps": 3}, "posterior.sgmcmc.steps", "unknown key"),
])
def test_a_bad_value_is_refused_naming_its_key(override, key, words):
    cfg = smoke_config()
    cfg["posterior"]["sgmcmc"].update(override)
    with pytest.raises(checks.ConfigError) as error:
        checks.check_config(copy.deepcopy(cfg))
    first = str(error.value).splitlines()[0]
    assert first.startswith(f"config key {key}:") and words in first, first


def test_the_settings_class_applies_the_same_rules():
    with pytest.raises(FieldError, match=r"SGMCMCConfig.alpha must lie in \(0, 1\]"):
        sgmcmc.SGMCMCConfig(alpha=0.0)
    with pytest.raises(FieldError, match="SGMCMCConfig.epochs must be a multiple of cycles"):
        sgmcmc.SGMCMCConfig(epochs=10, cycles=4)
    with pytest.raises(FieldError, match="SGMCMCConfig.samples_per_cycle"):
        sgmcmc.SGMCMCConfig(epochs=4, cycles=4).layout(60_000)  # one epoch a cycle: 93 sampling steps < 2 epochs


def test_the_presets_are_valid_and_the_papers_chains_take_about_an_hour():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import cost as cost_script
    finally:
        sys.path.pop(0)
    paper = cost_script.merged_config([])
    figures = cost.load_figures(REPO / "benchmarks" / "figures" / "cpu.json")
    expected = cost.sgmcmc_seconds(paper, cost.rates(figures)["forward"])
    assert expected["steps"] == 300 * 937 and expected["kept"] == 12
    assert 30 * 60 <= expected["all_chains_s"] <= 75 * 60, expected
    assert "posterior.sgmcmc" in cost_script.sgmcmc_line(paper, figures, "cpu")
    for preset in sorted((REPO / "presets").glob("*.yaml")):
        assert cost.sgmcmc_seconds(cost_script.merged_config([str(preset)]), 1e10)["chain_s"] > 0


def test_importing_the_inference_package_leaves_jax_unstarted_for_the_jobs_thread_limit():
    """A workflow job imports compactbnn.inference (hmc_chain.py) before start() limits its threads, which must precede
    JAX's backends; importing BlackJAX starts them (it computes at import), so sgmcmc loads on first use only."""
    code = ("from compactbnn import threads; import compactbnn.inference, compactbnn.paper; "
            "from compactbnn.inference import diagnostics, hmc; threads.limit(1); "
            "from compactbnn.inference import sgmcmc; import compactbnn.inference as i; print(i.sgmcmc is sgmcmc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]
