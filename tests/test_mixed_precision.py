"""Tests of compactbnn.inference.hmc.mixed_precision: low-precision leapfrog gradients, exact float32 accept test."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import HMC
from numpyro.infer.hmc_util import IntegratorState, euclidean_kinetic_energy, velocity_verlet

from compactbnn.inference import hmc
from compactbnn.inference.hmc import mixed_precision, programs
from compactbnn.models import MLP

MODEL = MLP((64, 12, 10))
N_TRAIN = 400
SMALL = hmc.HMCConfig(step_size=1e-3, num_steps=20, num_iterations=20, keep_first=4, keep_last=19, num_kept=8, chunk_size=10)


@pytest.fixture(scope="module")
def problem(digits):
    return {"x": jnp.asarray(digits["x_train"][:N_TRAIN]), "y": jnp.asarray(digits["y_train"][:N_TRAIN]),
            "x_test": digits["x_test"], "y_test": digits["y_test"]}


# --- low-precision products -------------------------------------------------------------------


def test_round_mantissa_is_round_to_nearest_even_as_a_bfloat16_cast():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-30, 30, 2000),
                        [0.0, -0.0, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, np.inf, -np.inf, 3.0e38]]).astype(np.float32)
    rounded = np.asarray(jax.jit(lambda v: mixed_precision.round_mantissa(v, 7))(x))
    cast = np.asarray(jnp.asarray(x).astype(jnp.bfloat16)).astype(np.float32)  # eager: one convert op
    np.testing.assert_array_equal(rounded, cast)
    assert rounded[-5] == 1.0 and rounded[-4] == 1.0 + 4 * 2.0**-8  # ties to even
    assert np.isnan(np.asarray(mixed_precision.round_mantissa(jnp.float32(np.nan), 7)))
    tf32 = np.asarray(mixed_precision.round_mantissa(jnp.float32(1.0 + 2.0**-11 + 2.0**-20), 10))
    assert tf32 == np.float32(1.0 + 2.0**-10)  # above the tie: rounds up to 10 bits


def test_cpu_ignores_the_bfloat16_dot_algorithm_so_the_emulation_rounds_bits():
    """On the CPU, JAX's BF16_BF16_F32 dot gives the float32 product: a low-precision CPU test needs the emulation."""
    a = jax.random.normal(jax.random.PRNGKey(0), (64, 300))
    b = jax.random.normal(jax.random.PRNGKey(1), (300, 20))
    exact = jnp.matmul(a, b, precision="highest")
    algorithm = jax.jit(partial(jnp.matmul, precision="BF16_BF16_F32"))(a, b)
    np.testing.assert_array_equal(np.asarray(algorithm), np.asarray(exact))
    with pytest.raises(Exception, match="not supported"):
        jax.jit(partial(jnp.matmul, precision="TF32_TF32_F32"))(a, b)
    emulated = jax.jit(mixed_precision.matmul("bfloat16", "cpu"))(a, b)
    rounded = jnp.matmul(mixed_precision.round_mantissa(a, 7), mixed_precision.round_mantissa(b, 7), precision="highest")
    np.testing.assert_array_equal(np.asarray(emulated), np.asarray(rounded))
    assert float(jnp.max(jnp.abs(emulated - exact))) > 1e-2
    assert mixed_precision.matmul("float32") is None
    with pytest.raises(ValueError, match="gradient_precision must be one of"):
        mixed_precision.matmul("float16")


@pytest.mark.parametrize("precision, low, high", [("tf32", 1e-5, 1e-2), ("bfloat16", 1e-4, 5e-2)])
def test_low_precision_gradient_is_close_to_but_not_the_float32_gradient(problem, precision, low, high):
    params = jax.tree.map(lambda a: 3 * a, MODEL.init(jax.random.PRNGKey(0)))
    grad = jax.jit(jax.grad(hmc.potential_energy, argnums=1), static_argnums=(0, 4, 5))
    exact = MODEL.ravel(grad(MODEL, params, problem["x"], problem["y"], 1.0, None))
    lowp = MODEL.ravel(grad(MODEL, params, problem["x"], problem["y"], 1.0, mixed_precision.matmul(precision, "cpu")))
    relative = float(jnp.linalg.norm(lowp - exact) / jnp.linalg.norm(exact))
    assert low < relative < high, relative


# --- the kernel -------------------------------------------------------------------------------


def run_kernel(kernel, problem, iterations):
    x, y = problem["x"], problem["y"]
    z0 = MODEL.to_sites(MODEL.init(jax.random.PRNGKey(1)))

    @jax.jit
    def go(z):
        state = kernel.init(jax.random.PRNGKey(2), 0, init_params=z, model_args=(x, y), model_kwargs={})

        def body(i, carry):
            state, accept = carry
            state = kernel.sample(state, (x, y), {})
            return state, accept.at[i].set(state.accept_prob)

        return jax.lax.fori_loop(0, iterations, body, (state, jnp.zeros(iterations)))

    return go(z0)


def test_float32_gradients_reproduce_numpyros_hmc_bit_for_bit(problem):
    numpyro_hmc = HMC(partial(hmc.bnn_model, MODEL, prior_sd=1.0), step_size=1e-3, num_steps=20,
                      trajectory_length=None, adapt_step_size=False, adapt_mass_matrix=False, dense_mass=False)
    ours = hmc.make_kernel(MODEL, SMALL)
    assert isinstance(ours, mixed_precision.MixedPrecisionHMC) and ours.gradient_model is None
    expected, expected_accept = run_kernel(numpyro_hmc, problem, 8)
    state, accept = run_kernel(ours, problem, 8)
    assert jax.tree.structure(state) == jax.tree.structure(expected)  # checkpoints hold the same state
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(accept), np.asarray(expected_accept))


def test_bfloat16_state_holds_the_exact_potential_and_the_low_precision_force(problem):
    kernel = hmc.make_kernel(MODEL, dataclasses.replace(SMALL, gradient_precision="bfloat16"))
    state, accept = run_kernel(kernel, problem, 5)
    params = MODEL.from_sites(state.z)
    exact = hmc.potential_energy(MODEL, params, problem["x"], problem["y"])
    assert float(state.potential_energy) == pytest.approx(float(exact), rel=1e-6)
    force = jax.grad(lambda p: hmc.potential_energy(MODEL, p, problem["x"], problem["y"], 1.0, mixed_precision.matmul("bfloat16", "cpu")))(params)
    exact_grad = jax.grad(lambda p: hmc.potential_energy(MODEL, p, problem["x"], problem["y"]))(params)
    carried = MODEL.ravel(MODEL.from_sites(state.z_grad))
    np.testing.assert_allclose(np.asarray(carried), np.asarray(MODEL.ravel(force)), rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(carried - MODEL.ravel(exact_grad)))) > 1e-3
    assert 0.5 < float(jnp.mean(accept)) <= 1.0


def integrate(force_fn, z, r, step_size, steps):
    _, update = velocity_verlet(force_fn, euclidean_kinetic_energy)
    state = IntegratorState(z, r, *jax.value_and_grad(force_fn)(z))
    state = jax.lax.fori_loop(0, steps, lambda i, s: update(step_size, jnp.ones_like(r), s), state)
    return state.z, state.r


def test_leapfrog_with_bfloat16_force_is_reversible(problem):
    """Forward, flip the momentum, the same steps back: the start again, to float32 round-off.

    The control integrates back with a different force (exact float32): it does not return,
    which shows the check can fail and why the force must be deterministic.
    """
    x, y = problem["x"], problem["y"]
    flat0 = MODEL.ravel(MODEL.init(jax.random.PRNGKey(4)))
    r0 = jax.random.normal(jax.random.PRNGKey(5), flat0.shape)

    def potential(matmul):
        return lambda flat: hmc.potential_energy(MODEL, MODEL.unravel(flat), x, y, 1.0, matmul)

    bf16, exact = potential(mixed_precision.matmul("bfloat16", "cpu")), potential(None)
    go = jax.jit(integrate, static_argnums=(0, 4))
    z1, r1 = go(bf16, flat0, r0, 2e-3, 50)
    moved = float(jnp.max(jnp.abs(z1 - flat0)))
    z2, _ = go(bf16, z1, -r1, 2e-3, 50)
    back = float(jnp.max(jnp.abs(z2 - flat0)))
    z3, _ = go(exact, z1, -r1, 2e-3, 50)
    mismatched = float(jnp.max(jnp.abs(z3 - flat0)))
    assert moved > 0.05
    assert back < 1e-5 * max(1.0, moved) * 50, (back, moved)
    assert mismatched > 30 * back, (mismatched, back)


def regression_model(x, y=None, noise_sd=1.0, matmul=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand((x.shape[1],)).to_event(1))
    product = matmul if matmul is not None else jnp.matmul
    mean = product(x, w[:, None])[:, 0]
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(mean, noise_sd), obs=y)


def test_bfloat16_gradients_sample_a_gaussian_posterior_with_its_moments():
    """Bayesian linear regression, posterior N(mu, Sigma) in closed form; bfloat16 leapfrog, exact accept test."""
    rng = np.random.default_rng(0)
    n, d, noise_sd = 200, 4, 0.5
    x = rng.normal(size=(n, d)).astype(np.float32) * np.array([1.0, 2.0, 0.6, 1.5], np.float32)
    y = (x @ np.array([0.5, -1.0, 2.0, 0.0], np.float32) + noise_sd * rng.normal(size=n)).astype(np.float32)
    precision = np.eye(d) + x.T.astype(np.float64) @ x / noise_sd**2
    cov = np.linalg.inv(precision)
    mu = cov @ x.T.astype(np.float64) @ y / noise_sd**2
    sd = np.sqrt(np.diag(cov))

    model = partial(regression_model, noise_sd=noise_sd)
    gradient_model = partial(regression_model, noise_sd=noise_sd, matmul=mixed_precision.matmul("bfloat16", "cpu"))
    # Path length 0.6 to 1.9 posterior sds per coordinate: far from the resonances at multiples of pi.
    kernel = mixed_precision.MixedPrecisionHMC(model, gradient_model, step_size=1.9 * sd.min() / 8, num_steps=8)
    mcmc = numpyro.infer.MCMC(kernel, num_warmup=0, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(y), init_params={"w": jnp.asarray(mu, jnp.float32)},
             extra_fields=("accept_prob", "z_grad"))
    w = np.asarray(mcmc.get_samples()["w"], np.float64)
    extra = mcmc.get_extra_fields()
    # The force really is low precision: it differs from the exact gradient at the samples.
    exact_grad = jax.vmap(jax.grad(lambda v: numpyro.infer.util.potential_energy(model, (jnp.asarray(x), jnp.asarray(y)), {}, {"w": v})))(
        jnp.asarray(w[-50:], jnp.float32))
    assert float(jnp.max(jnp.abs(extra["z_grad"]["w"][-50:] - exact_grad))) > 1e-3
    assert 0.6 < float(np.mean(extra["accept_prob"])) < 1.0

    # Monte Carlo error by batch means (robust to the anticorrelation of fixed-length HMC on a Gaussian).
    batches = w.reshape(20, -1, d)
    mean_se = batches.mean(1).std(0, ddof=1) / np.sqrt(20)
    var_se = batches.var(1).std(0, ddof=1) / np.sqrt(20)
    assert np.all(mean_se < 0.2 * sd) and np.all(var_se < 0.2 * sd**2)  # the chain mixes: the check has power
    assert np.all(np.abs(w.mean(0) - mu) < 4.5 * mean_se), ((w.mean(0) - mu) / mean_se)
    assert np.all(np.abs(w.var(0) - sd**2) < 4.5 * var_se), ((w.var(0) - sd**2) / var_se)


# --- the chunked driver and GPU determinism ---------------------------------------------------


def test_bfloat16_chain_resumes_bit_for_bit(problem, tmp_path):
    config = dataclasses.replace(SMALL, gradient_precision="bfloat16")
    run = partial(hmc.run_chain, MODEL, problem["x"], problem["y"], config, jax.random.PRNGKey(0), progress=False)
    full = run(tmp_path / "full")
    run(tmp_path / "resumed", max_chunks=1)
    programs.compile_programs.cache_clear()  # not needed, but as a new process would: compile again
    resumed = run(tmp_path / "resumed")
    np.testing.assert_array_equal(resumed.samples, full.samples)
    for name in hmc.TRACE_NAMES:
        np.testing.assert_array_equal(resumed.traces[name], full.traces[name], err_msg=name)
    assert 0.5 < full.accept_rate <= 1.0
    with pytest.raises(ValueError, match="config.gradient_precision"):
        hmc.run_chain(MODEL, problem["x"], problem["y"], SMALL, jax.random.PRNGKey(0), tmp_path / "resumed", progress=False)


def test_gpu_mixed_precision_needs_deterministic_reductions(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    with pytest.raises(RuntimeError, match="deterministic reductions.*xla_gpu_exclude_nondeterministic_ops"):
        hmc.make_kernel(MODEL, dataclasses.replace(SMALL, gradient_precision="tf32"), backend="gpu")
    hmc.make_kernel(MODEL, SMALL, backend="gpu")  # float32: NumPyro's HMC, nothing asked
    mixed_precision.set_deterministic_reductions()
    assert mixed_precision.DETERMINISTIC_GPU_FLAG in __import__("os").environ["XLA_FLAGS"].split()
    kernel = hmc.make_kernel(MODEL, dataclasses.replace(SMALL, gradient_precision="tf32"), backend="gpu")
    assert kernel.gradient_model is not None
    mixed_precision.check_deterministic_reductions("cpu")  # nothing to do on CPUs


def test_config_refuses_an_unknown_gradient_precision():
    with pytest.raises(ValueError, match="HMCConfig.gradient_precision must be one of"):
        hmc.HMCConfig(gradient_precision="float16")
    assert hmc.HMCConfig().gradient_precision == "float32"
