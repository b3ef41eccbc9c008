import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn import mlp, train, vi


def test_kl_matches_the_hand_formula():
    # KL(N(m, s^2) || N(0, p^2)) = 0.5 * (s^2/p^2 + m^2/p^2 - 1 - ln(s^2/p^2)), summed over entries.
    mean = [{"weight": jnp.array([[0.3, -1.2]]), "bias": jnp.array([0.0])}]
    sd = [{"weight": jnp.array([[0.5, 2.0]]), "bias": jnp.array([1.5])}]
    prior = 1.5
    m = np.array([0.3, -1.2, 0.0])
    s = np.array([0.5, 2.0, 1.5])
    hand = np.sum(0.5 * (s**2 / prior**2 + m**2 / prior**2 - 1 - np.log(s**2 / prior**2)))
    np.testing.assert_allclose(float(vi.kl_divergence(mean, sd, prior)), hand, rtol=1e-6)
    # Worked by hand for one entry: m 0.3, s 0.5, p 1: ln 2 + (0.25 + 0.09) / 2 - 1/2.
    one = vi.kl_divergence({"w": jnp.array([0.3])}, {"w": jnp.array([0.5])}, 1.0)
    np.testing.assert_allclose(float(one), np.log(2) + 0.17 - 0.5, rtol=1e-6)


def test_kl_matches_a_monte_carlo_estimate():
    mean = {"w": jnp.array([0.4, -0.7, 1.1])}
    sd = {"w": jnp.array([0.3, 0.9, 1.4])}
    prior = 1.0
    theta = mean["w"] + sd["w"] * jax.random.normal(jax.random.key(0), (400_000, 3))
    log_q = -0.5 * ((theta - mean["w"]) / sd["w"]) ** 2 - jnp.log(sd["w"])
    log_p = -0.5 * (theta / prior) ** 2 - jnp.log(prior)
    estimate = float(jnp.mean(jnp.sum(log_q - log_p, axis=1)))
    np.testing.assert_allclose(float(vi.kl_divergence(mean, sd, prior)), estimate, atol=0.01)


def test_kl_is_zero_at_the_prior():
    params = mlp.init(jax.random.key(0), [5, 4, 3])
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    twos = jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, 2.0), params)
    assert abs(float(vi.kl_divergence(zeros, twos, 2.0))) < 1e-5
    assert float(vi.kl_divergence(params, twos, 2.0)) > 0


def test_nelbo_estimate_is_n_times_nll_plus_kl(digits):
    config = vi.VIConfig(prior_sd=1.0)
    mean = mlp.init(jax.random.key(0), [64, 8, 10])
    log_sd = jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, np.log(0.1)), mean)
    x, y = jnp.asarray(digits["x_train"][:20]), jnp.asarray(digits["y_train"][:20])
    mask = jnp.asarray([1.0] * 15 + [0.0] * 5)
    key = jax.random.key(7)
    estimate = jax.jit(vi.nelbo_estimate, static_argnums=(5, 6))  # jitted: eager dispatch of every op is slower
    loss, (nll, kl) = estimate({"mean": mean, "log_sd": log_sd}, x, y, mask, key, config, 1000)
    sd = jax.tree_util.tree_map(jnp.exp, log_sd)
    theta = jax.jit(vi.sample_weights)(jax.random.split(key, 1)[0], mean, sd)
    by_hand_nll = float(jnp.mean(train.cross_entropy(mlp.apply(theta, x[:15]), y[:15])))
    np.testing.assert_allclose(float(nll), by_hand_nll, rtol=1e-5)
    np.testing.assert_allclose(float(kl), float(vi.kl_divergence(mean, sd, 1.0)), rtol=1e-6)
    np.testing.assert_allclose(float(loss), 1000 * by_hand_nll + float(kl), rtol=1e-5)


def test_vi_learns_digits_and_moves_its_sd(digits):
    config = vi.VIConfig(learning_rate=1e-2, batch_size=64, epochs=15)
    result = vi.fit(jax.random.key(0), [64, 32, 10], digits["x_train"], digits["y_train"], config,
                    evaluate_on={"test": (digits["x_test"], digits["y_test"])}, progress=False)
    history = result.history
    assert history["test_accuracy"][0] < 0.3 and history["test_accuracy"][-1] >= 0.9
    assert history["nelbo_running"].shape == (15,) and history["kl"].shape == (16,)
    assert history["nelbo_running"][-1] < 0.5 * history["nelbo_running"][0]
    sd = np.asarray(mlp.ravel(result.sd))
    assert history["sd_mean"][0] == pytest.approx(0.05)
    assert sd.mean() > 0.1 and sd.std() > 0.01  # the sd left its initial 0.05, differently per parameter
    assert np.all(sd > 0)
    np.testing.assert_allclose(history["kl"][-1], float(vi.kl_divergence(result.mean, result.sd, 1.0)), rtol=1e-5)
    assert result.q.mean is result.mean and result.q.sd is result.sd


def test_same_key_same_fit_and_init_mean_is_used(digits):
    config = vi.VIConfig(epochs=1, batch_size=200)
    x, y = digits["x_train"], digits["y_train"]
    a = vi.fit(jax.random.key(1), [64, 8, 10], x, y, config, progress=False)
    b = vi.fit(jax.random.key(1), [64, 8, 10], x, y, config, progress=False)
    np.testing.assert_array_equal(np.asarray(mlp.ravel(a.mean)), np.asarray(mlp.ravel(b.mean)))
    np.testing.assert_array_equal(np.asarray(mlp.ravel(a.sd)), np.asarray(mlp.ravel(b.sd)))
    start = mlp.init(jax.random.key(99), [64, 8, 10])
    zero_epochs = vi.fit(jax.random.key(1), [64, 8, 10], x, y, vi.VIConfig(epochs=0), init_mean=start, progress=False)
    np.testing.assert_array_equal(np.asarray(mlp.ravel(zero_epochs.mean)), np.asarray(mlp.ravel(start)))
    np.testing.assert_allclose(np.asarray(mlp.ravel(zero_epochs.sd)), 0.05, rtol=1e-6)


def test_a_nan_loss_names_the_epoch(digits):
    x = np.array(digits["x_train"])
    x[3, 5] = np.nan
    with pytest.raises(FloatingPointError, match="epoch 1"):
        vi.fit(jax.random.key(0), [64, 8, 10], x, digits["y_train"], vi.VIConfig(epochs=2), progress=False)


@pytest.mark.parametrize("field, value", [("learning_rate", 0.0), ("batch_size", 0), ("epochs", -1), ("prior_sd", -1.0),
                                          ("init_sd", 0.0), ("num_samples", 0), ("kl_weight", -0.5), ("batch_size", 1.5)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        vi.VIConfig(**{field: value})


def test_bad_inputs_are_rejected(digits):
    with pytest.raises(ValueError, match="features"):
        vi.fit(jax.random.key(0), [32, 8, 10], digits["x_train"], digits["y_train"], progress=False)
    with pytest.raises(ValueError, match="init_mean"):
        vi.fit(jax.random.key(0), [64, 8, 10], digits["x_train"], digits["y_train"],
               init_mean=mlp.init(jax.random.key(0), [64, 9, 10]), progress=False)
