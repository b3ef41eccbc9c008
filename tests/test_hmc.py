"""Tests of compactbnn.inference.hmc (NumPyro HMC of the Bayesian MLP) and compactbnn.inference.diagnostics, on digits."""

from __future__ import annotations

import dataclasses
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc import momentum_generator
from numpyro.infer.util import potential_energy as numpyro_potential_energy
from scipy.special import log_softmax
from scipy.stats import norm

from compactbnn.inference import diagnostics, hmc
from compactbnn.inference.diagnostics import az
from compactbnn.inference.hmc import programs
from compactbnn.models import MLP

MODEL = MLP((64, 12, 10))
N_TRAIN = 400

# Two chunks of 10 iterations, 20 leapfrog steps each; 8 kept samples over iterations 4..19.
SMALL = hmc.HMCConfig(step_size=1e-3, num_steps=20, num_iterations=20, keep_first=4, keep_last=19, num_kept=8, chunk_size=10)


@pytest.fixture(scope="module")
def problem(digits):
    return {
        "x": digits["x_train"][:N_TRAIN], "y": digits["y_train"][:N_TRAIN],
        "x_test": digits["x_test"], "y_test": digits["y_test"],
    }


def sample(problem, tmp_path, name, config=SMALL, seed=0, **kwargs):
    kwargs.setdefault("progress", False)
    return hmc.run_chain(MODEL, problem["x"], problem["y"], config, jax.random.PRNGKey(seed), tmp_path / name,
                         x_test=problem["x_test"], y_test=problem["y_test"], **kwargs)


# --- the model ---------------------------------------------------------------------------------


def hand_potential(params, x, y, prior_sd):
    """-log prior - log likelihood in float64 numpy, from scipy's densities."""
    leaves = [np.asarray(leaf, np.float64) for layer in params for leaf in (layer["weight"], layer["bias"])]
    log_prior = sum(norm.logpdf(leaf, 0.0, prior_sd).sum() for leaf in leaves)
    h = np.asarray(x, np.float64)
    for layer in params[:-1]:
        h = np.maximum(h @ np.asarray(layer["weight"], np.float64).T + np.asarray(layer["bias"], np.float64), 0.0)
    logits = h @ np.asarray(params[-1]["weight"], np.float64).T + np.asarray(params[-1]["bias"], np.float64)
    log_lik = log_softmax(logits, axis=1)[np.arange(len(y)), y].sum()
    return -log_prior - log_lik


def test_potential_energy_is_minus_log_prior_minus_log_likelihood(problem):
    prior_sd = 0.7
    params = MODEL.init(jax.random.PRNGKey(3))
    params = jax.tree.map(lambda a: 3 * a, params)  # away from zero, so the prior term matters
    expected = hand_potential(params, problem["x"], problem["y"], prior_sd)
    model_args = (MODEL, jnp.asarray(problem["x"]), jnp.asarray(problem["y"]), prior_sd)
    numpyro_value = jax.jit(lambda z: numpyro_potential_energy(hmc.bnn_model, model_args, {}, z))(MODEL.to_sites(params))
    plain_value = hmc.potential_energy(MODEL, params, problem["x"], problem["y"], prior_sd)
    assert abs(expected) > 100
    np.testing.assert_allclose(float(numpyro_value), expected, rtol=2e-6)
    np.testing.assert_allclose(float(plain_value), expected, rtol=2e-6)


def test_kernel_takes_configured_step_size_and_path_length(problem):
    """One iteration of the kernel equals num_steps hand-made leapfrog steps of size step_size."""
    config = dataclasses.replace(SMALL, step_size=2e-3, num_steps=7)
    kernel = hmc.make_kernel(MODEL, config)
    assert kernel._step_size == 2e-3 and kernel._num_steps == 7 and kernel._trajectory_length is None
    x, y = jnp.asarray(problem["x"]), jnp.asarray(problem["y"])
    z0 = MODEL.to_sites(MODEL.init(jax.random.PRNGKey(1)))
    state = jax.jit(lambda z: kernel.init(jax.random.PRNGKey(2), 0, init_params=z, model_args=(x, y), model_kwargs={}))(z0)
    new = jax.jit(lambda s: kernel.sample(s, (x, y), {}))(state)
    assert float(new.adapt_state.step_size) == np.float32(2e-3)
    assert int(new.num_steps) == 7
    assert new.trajectory_length is None
    assert float(new.accept_prob) > 0.5 and not bool(new.diverging)

    # Rebuild the momentum NumPyro drew (same key split as its sample_kernel) and integrate by hand.
    _, momentum_key, _ = jax.random.split(state.rng_key, 3)
    r = momentum_generator(state.z, state.adapt_state.mass_matrix_sqrt, momentum_key)
    grad = jax.grad(lambda z: hmc.potential_energy(MODEL, MODEL.from_sites(z), x, y, config.prior_sd))
    eps = config.step_size

    @jax.jit
    def leapfrog(z, r):
        r = jax.tree.map(lambda r, g: r - 0.5 * eps * g, r, grad(z))
        z = jax.tree.map(lambda z, r: z + eps * r, z, r)
        return z, jax.tree.map(lambda r, g: r - 0.5 * eps * g, r, grad(z))

    z = dict(z0)
    for _ in range(config.num_steps):
        z, r = leapfrog(z, r)
    moved = max(float(jnp.max(jnp.abs(new.z[k] - z0[k]))) for k in z0)
    assert moved > 1e-3  # accepted: the proposal is the state
    for name in z0:
        np.testing.assert_allclose(np.asarray(new.z[name]), np.asarray(z[name]), rtol=1e-5, atol=1e-6, err_msg=name)


# --- configuration ----------------------------------------------------------------------------


def test_kept_indices_for_the_paper():
    indices = hmc.kept_indices(600, 9999, 1000)
    assert len(indices) == 1000 and indices[0] == 600 and indices[-1] == 9999
    assert np.all(np.diff(indices) >= 9) and np.all(np.diff(indices) <= 10)
    assert indices.dtype.kind == "i"
    np.testing.assert_array_equal(hmc.HMCConfig().kept_indices, indices)
    np.testing.assert_array_equal(hmc.kept_indices(3, 7, 5), [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(hmc.kept_indices(0, 10, 3), [0, 5, 10])
    # rounded down, as numpy's linspace(..., dtype=int) in the authors' code: 0, 1.5, 3 -> 0, 1, 3
    np.testing.assert_array_equal(hmc.kept_indices(0, 3, 3), [0, 1, 3])


def authors_kept_transitions(num_samples=10_000, burn=100, list_indices=np.linspace(500, 9899, 1000, dtype=int)):
    """The transitions behind the authors' kept list indices, worked out from hamiltorch's ``sample``.

    hamiltorch's loop ``for n in range(num_samples)`` makes transition n + 1 and appends the new
    state to its list only when ``n > burn``; the list starts with ``params_init``. So list index j
    (j >= 1) holds the state after transition burn + j + 1, which is our iteration burn + j
    (iteration i = the state after i + 1 transitions).
    """
    appended_at = [n for n in range(num_samples) if n > burn]  # loop index of list entries 1, 2, ...
    assert len(appended_at) + 1 == 9900  # the authors' list: params_init and 9,899 samples
    return np.array([appended_at[j - 1] for j in list_indices])


def test_kept_indices_are_the_authors_transitions():
    np.testing.assert_array_equal(hmc.HMCConfig().kept_indices, authors_kept_transitions())


def test_paper_defaults():
    config = hmc.HMCConfig()
    assert (config.step_size, config.num_steps, config.num_iterations, config.num_kept, config.prior_sd) == (1e-3, 500, 10_000, 1000, 1.0)
    assert not config.adapt_step_size and config.init == "pytorch" and config.path_length == pytest.approx(0.5)


@pytest.mark.parametrize("field, value", [
    ("step_size", 0.0), ("step_size", float("nan")), ("num_steps", 0), ("num_steps", 2.5), ("num_iterations", 0),
    ("keep_last", 10_000), ("keep_first", 9900), ("num_kept", 9401), ("num_kept", 0), ("chunk_size", 0),
    ("prior_sd", -1.0), ("num_warmup", 5), ("target_accept_prob", 1.0), ("init", "xavier"),
    ("matmul_precision", "fastest"), ("adapt_step_size", "yes"),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        hmc.HMCConfig(**{field: value})


def test_adaptation_needs_warmup():
    with pytest.raises(ValueError, match="num_warmup"):
        hmc.HMCConfig(adapt_step_size=True)
    assert hmc.HMCConfig(adapt_step_size=True, num_warmup=100).total_iterations == 10_100


# --- sampling ---------------------------------------------------------------------------------


def test_interrupted_and_resumed_run_equals_uninterrupted_run(problem, tmp_path):
    full = sample(problem, tmp_path, "full")
    assert full.complete and full.samples.shape == (8, MODEL.num_params) and full.samples.dtype == np.float32
    np.testing.assert_array_equal(full.kept_indices, SMALL.kept_indices)
    assert 0.5 < full.accept_rate <= 1.0 and full.num_divergent == 0 and full.num_nan_energy == 0
    assert full.step_size == pytest.approx(1e-3) and full.num_steps == 20
    assert full.leapfrog_steps == 400 and full.leapfrog_steps_per_second > 0
    assert np.all(np.isfinite(full.traces["log_likelihood"])) and full.traces["log_likelihood"].shape == (20,)
    assert full.test_log_likelihood.shape == (8,) and np.all(full.test_log_likelihood < 0)
    # The trace's log-likelihood (from NumPyro's potential energy) is the log-likelihood of the state.
    last = MODEL.unravel(jnp.asarray(full.samples[-1]))
    np.testing.assert_allclose(full.traces["log_likelihood"][-1],
                               float(hmc.log_likelihood(MODEL, last, problem["x"], problem["y"])), rtol=1e-4)
    # Samples move: consecutive kept samples differ.
    assert np.all(np.abs(np.diff(full.samples, axis=0)).max(axis=1) > 0)

    part = sample(problem, tmp_path, "resumed", max_chunks=1)
    assert not part.complete and part.completed_iterations == 10 and len(part.samples) == 3  # kept 4, 6, 8
    programs.compile_programs.cache_clear()  # not needed, but as a new process would: compile again
    resumed = sample(problem, tmp_path, "resumed")
    assert resumed.complete
    np.testing.assert_array_equal(resumed.samples, full.samples)
    np.testing.assert_array_equal(resumed.test_log_likelihood, full.test_log_likelihood)
    for name in hmc.TRACE_NAMES:
        np.testing.assert_array_equal(resumed.traces[name], full.traces[name], err_msg=name)

    # A finished checkpoint is returned as it is, and load_chain reads it without data.
    again = sample(problem, tmp_path, "resumed")
    np.testing.assert_array_equal(again.samples, full.samples)
    loaded = hmc.load_chain(MODEL, tmp_path / "resumed")
    np.testing.assert_array_equal(loaded.samples, full.samples)
    assert loaded.summary()["num_kept"] == 8
    other = MLP((64, 13, 10))
    with pytest.raises(ValueError, match=r"holds chains of MLP\(layer_sizes=\(64, 12, 10\)\), not of MLP\(layer_sizes=\(64, 13, 10\)\)"):
        hmc.load_chain(other, tmp_path / "resumed")

    # Resuming with another config, key or data is refused.
    with pytest.raises(ValueError, match="config.step_size"):
        sample(problem, tmp_path, "resumed", config=dataclasses.replace(SMALL, step_size=2e-3))
    with pytest.raises(ValueError, match="keys differs"):
        sample(problem, tmp_path, "resumed", seed=1)
    with pytest.raises(ValueError, match="model differs"):
        hmc.run_chain(other, problem["x"], problem["y"], SMALL, jax.random.PRNGKey(0), tmp_path / "resumed", progress=False)
    with pytest.raises(ValueError, match="refusing to mix runs"):
        hmc.run_chain(MODEL, problem["x"][:300], problem["y"][:300], SMALL, jax.random.PRNGKey(0), tmp_path / "resumed", progress=False)


def test_a_checkpoint_of_another_format_is_refused_not_taken_for_a_damaged_one(problem, tmp_path):
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / hmc.STATE_FILE).write_bytes(pickle.dumps({"fingerprint": {"format": 1}}))
    with pytest.raises(ValueError, match=f"format 1, this version reads format {hmc.CHECKPOINT_FORMAT}; delete it"):
        sample(problem, tmp_path, "old")
    (directory / hmc.STATE_FILE).write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="is no HMC checkpoint"):
        hmc.load_chain(MODEL, directory)
    with pytest.raises(FileNotFoundError, match="no HMC checkpoint"):
        hmc.load_chain(MODEL, tmp_path / "nothing")


def test_initial_parameters_as_a_pytree_equal_the_same_vector(problem, tmp_path):
    params = MODEL.init(jax.random.PRNGKey(9))
    config = dataclasses.replace(SMALL, num_iterations=10, keep_first=2, keep_last=9, num_kept=2)
    as_tree = sample(problem, tmp_path, "tree", config=config, init_params=params)
    as_vector = sample(problem, tmp_path, "vector", config=config, init_params=np.asarray(MODEL.ravel(params)))
    np.testing.assert_array_equal(as_tree.samples, as_vector.samples)
    with pytest.raises(ValueError, match="init_params of chain"):
        sample(problem, tmp_path, "wrong", config=config, init_params=MLP((64, 13, 10)).init(jax.random.PRNGKey(9)))


def test_nan_data_is_refused(problem, tmp_path):
    x = problem["x"].copy()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN"):
        hmc.run_chain(MODEL, x, problem["y"], SMALL, jax.random.PRNGKey(0), tmp_path / "nan", progress=False)


def test_nan_initial_parameters_raise_naming_chain_and_iteration(problem, tmp_path):
    init = np.asarray(MODEL.ravel(MODEL.init(jax.random.PRNGKey(0)))).copy()
    init[5] = np.nan
    with pytest.raises(FloatingPointError, match="chain7.*iteration 4 .*energy was NaN at 10 of"):
        sample(problem, tmp_path, "naninit", init_params=init, chain_name="chain7")


def test_exploding_proposals_are_counted_as_divergences_not_a_crash(problem, tmp_path):
    config = dataclasses.replace(SMALL, step_size=50.0, num_steps=5, chunk_size=20)
    result = sample(problem, tmp_path, "explode", config=config)
    assert result.complete
    assert result.num_divergent == 20 and result.accept_rate < 1e-6
    assert np.all(np.isfinite(result.samples))


def test_sequential_and_vectorized_chains(problem, tmp_path):
    config = dataclasses.replace(SMALL, num_iterations=10, keep_first=2, keep_last=9, num_kept=4, chunk_size=5)
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    x, y = problem["x"], problem["y"]
    sequential = hmc.run_chains(MODEL, x, y, config, keys, tmp_path / "seq", chain_method="sequential", progress=False)
    single = hmc.run_chain(MODEL, x, y, config, keys[1], tmp_path / "one", progress=False, chain_name="chain1")
    np.testing.assert_array_equal(sequential[1].samples, single.samples)
    vectorized = hmc.run_chains(MODEL, x, y, config, keys, tmp_path / "vec", chain_method="vectorized", progress=False)
    assert [r.chain_name for r in vectorized] == ["chain0", "chain1"]
    for seq, vec in zip(sequential, vectorized):
        assert vec.samples.shape == seq.samples.shape and vec.complete
        np.testing.assert_allclose(vec.samples, seq.samples, atol=1e-4)
    assert not np.allclose(sequential[0].samples, sequential[1].samples)


def test_step_size_adaptation_during_warmup(problem, tmp_path):
    config = dataclasses.replace(SMALL, step_size=0.05, adapt_step_size=True, num_warmup=15, target_accept_prob=0.9)
    result = sample(problem, tmp_path, "adapt", config=config)
    assert result.traces["accept_prob"].shape == (35,) and result.num_warmup == 15
    assert result.step_size != pytest.approx(0.05)
    assert 0 < result.step_size < 0.05  # 0.05 is far too large for this posterior
    np.testing.assert_array_equal(result.kept_indices, config.kept_indices)


# --- diagnostics ------------------------------------------------------------------------------


def test_split_rhat_and_ess():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(4, 500, 3))
    assert np.all(np.abs(diagnostics.split_rhat(mixed) - 1) < 0.02)
    assert np.all(diagnostics.ess(mixed) > 1000)
    stuck = mixed + np.arange(4)[:, None, None] * 3.0  # each chain in its own mode
    assert np.all(diagnostics.split_rhat(stuck) > 2)
    summary = diagnostics.chain_summary(stuck[:, :, 0])
    assert summary["num_chains"] == 4 and summary["split_rhat"] > 2 and len(summary["chain_means"]) == 4
    with pytest.raises(ValueError, match="draws"):
        diagnostics.split_rhat(mixed[:, :3])


def test_split_rhat_is_arviz_rank_normalised_rhat():
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(3, 41, 6)) + rng.normal(size=(3, 1, 6))  # odd length: ArviZ drops the middle draw
    draws[:, :, 4] = np.round(draws[:, :, 4])  # ties, as repeated HMC states give
    draws[:, :, 5] = rng.standard_t(2, size=(3, 41)) * np.array([1.0, 3.0, 9.0])[:, None]  # chains differing in scale only
    expected = az.rhat(az.convert_to_dataset(draws), method="rank")["x"].values
    np.testing.assert_allclose(diagnostics.split_rhat(draws), expected, rtol=1e-9)
    np.testing.assert_allclose(diagnostics.ess(draws), az.ess(az.convert_to_dataset(draws), method="bulk")["x"].values, rtol=1e-9)


def test_rank_normalised_rhat_equals_numpyro_split_rhat_where_both_definitions_agree():
    # Draws that are already their own normal scores (rank r of S -> Phi^-1((r - 3/8) / (S + 1/4))),
    # in chains at different locations but with the same spread about the median: rank
    # normalisation changes nothing and the folded (tail) R-hat is the smaller one, so ArviZ's
    # R-hat is the classic split R-hat (numpyro.diagnostics.split_gelman_rubin, our old one).
    from numpyro.diagnostics import split_gelman_rubin

    chains, n = 4, 60
    scores = norm.ppf((np.arange(1, chains * n + 1) - 0.375) / (chains * n + 0.25))
    order = np.random.default_rng(3).permutation(chains * n).reshape(chains, n)
    shifted = np.sort(order, axis=0)  # chain c gets ranks near c: different locations
    draws = scores[shifted][:, :, None]
    old = float(np.asarray(split_gelman_rubin(draws))[0])
    assert old > 1.5
    assert float(diagnostics.split_rhat(draws)[0]) == pytest.approx(old, rel=1e-12)
    # well mixed, the two differ slightly (here the tail R-hat is the larger): both near 1
    mixed = scores[order][:, :, None]
    assert abs(float(diagnostics.split_rhat(mixed)[0]) - float(np.asarray(split_gelman_rubin(mixed))[0])) < 0.01


@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping")  # ArviZ 0.23 plotting on matplotlib 3.11
def test_chain_trace_is_arviz_data(problem, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = sample(problem, tmp_path, "a")
    path = tmp_path / "trace.nc"
    diagnostics.write_trace(path, diagnostics.chain_trace(result, 3))
    idata = diagnostics.read_trace(path)
    summary = az.summary(idata)
    assert set(summary.index) == {"train_log_likelihood", "potential_energy", "test_log_likelihood", "test_accuracy"}
    assert idata.posterior.sizes == {"chain": 1, "draw": SMALL.num_kept}
    np.testing.assert_array_equal(idata.posterior["draw"], SMALL.kept_indices)
    np.testing.assert_allclose(idata.posterior["test_log_likelihood"].values[0], result.test_log_likelihood, rtol=1e-6)
    np.testing.assert_allclose(idata.sample_stats["acceptance_rate"].values[0], result.traces["accept_prob"][SMALL.kept_indices], rtol=1e-6)
    every = idata.iteration_stats
    assert every.sizes["draw"] == SMALL.num_iterations
    np.testing.assert_allclose(every["lp"].values[0], -result.traces["potential_energy"], rtol=1e-6)
    np.testing.assert_allclose(every["acceptance_rate"].values[0], result.traces["accept_prob"], rtol=1e-6)
    assert every["diverging"].dtype == bool and every["diverging"].shape == (1, SMALL.num_iterations)
    assert set(az.summary(idata, group="iteration_stats", var_names=["lp", "acceptance_rate"]).index) == {"lp", "acceptance_rate"}
    az.plot_trace(idata)
    az.plot_trace(idata.iteration_stats, var_names=["lp"])
    plt.close("all")
    # chains join along "chain"; R-hat across them then comes from ArviZ's summary
    other = diagnostics.chain_trace(result, 4)
    both = az.concat(idata, other, dim="chain", reset_dim=False)
    assert list(both.posterior["chain"].values) == [3, 4]
    assert np.isfinite(az.summary(both)["r_hat"]).all()


def test_weight_rhat_summary():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(3, 100, 50))
    samples[:, :, :10] += np.arange(3)[:, None, None] * 5.0  # 10 of 50 parameters not mixed
    samples[:, :, 49] = 1.0  # constant: no R-hat
    summary = diagnostics.weight_rhat(samples, block_size=7)
    assert summary["num_params"] == 50 and summary["num_undefined"] == 1
    assert summary["fraction_above_threshold"] == pytest.approx(10 / 49)
    assert summary["max"] > 2 and abs(summary["median"] - 1) < 0.05
    assert diagnostics.weight_rhat([s for s in samples], block_size=50) == summary
    assert summary["method"].startswith("rank-normalised split R-hat")
