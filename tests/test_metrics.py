import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactbnn.evaluation import metrics
from compactbnn.models import MLP
from compactbnn.symmetry import gaussian

P = np.array([[0.7, 0.2, 0.1],
              [0.1, 0.5, 0.4],
              [0.3, 0.3, 0.4],
              [0.0, 0.0, 1.0]])
P_REF = np.array([[0.6, 0.3, 0.1],
                  [0.1, 0.3, 0.6],
                  [0.2, 0.2, 0.6],
                  [1.0, 0.0, 0.0]])


def test_agreement_and_total_variation_on_a_hand_made_table():
    # argmax: P -> 0, 1, 2, 2; P_REF -> 0, 2, 2, 0: two of four agree.
    assert metrics.agreement(P, P_REF) == 0.5
    # Half L1 per row: 0.1, 0.2, 0.2, 1.0 -> mean 0.375.
    assert metrics.total_variation(P, P_REF) == pytest.approx(0.375)
    assert metrics.agreement(P, P) == 1.0 and metrics.total_variation(P, P) == 0.0
    # JAX arrays and float32 are accepted as well.
    assert metrics.total_variation(jnp.asarray(P, jnp.float32), jnp.asarray(P_REF)) == pytest.approx(0.375, abs=1e-6)


def test_accuracy_and_nll_on_a_hand_made_table():
    y = np.array([0, 2, 1, 2])
    # argmax 0, 1, 2, 2 against labels 0, 2, 1, 2: rows 1 and 4 are right.
    assert metrics.accuracy(P, y) == 0.5
    assert metrics.nll(P, y) == pytest.approx(-(np.log(0.7) + np.log(0.4) + np.log(0.3) + np.log(1.0)) / 4)
    # A zero probability on the label is floored, not infinite.
    assert metrics.nll(P, np.array([0, 0, 0, 0])) == pytest.approx(-(np.log(0.7) + np.log(0.1) + np.log(0.3) + np.log(1e-12)) / 4)


def test_ece_on_a_known_case():
    # Ten points predicted class 0 with confidence 0.9, eight right; five predicted class 1 with 0.62, all right.
    p = np.array([[0.9, 0.1]] * 10 + [[0.38, 0.62]] * 5)
    y = np.array([0] * 8 + [1] * 2 + [1] * 5)
    # 15 bins: 0.9 and 0.62 fall in different bins -> 10/15 * |0.8 - 0.9| + 5/15 * |1 - 0.62|.
    assert metrics.expected_calibration_error(p, y) == pytest.approx(10 / 15 * 0.1 + 5 / 15 * 0.38)
    # One bin: |overall accuracy - mean confidence| = |13/15 - 12.1/15|.
    assert metrics.expected_calibration_error(p, y, num_bins=1) == pytest.approx(0.9 / 15)
    # Perfectly confident and right: 0.
    assert metrics.expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_ece_bins_are_closed_on_the_right():
    # Confidence 0.5 (wrong) lies in the first of two bins, (0, 0.5]; 1, 1 and 0.9 (right) in (0.5, 1].
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    y = np.array([1, 0, 1, 0])
    assert metrics.expected_calibration_error(p, y, num_bins=2) == pytest.approx(0.25 * 0.5 + 0.75 * (0.1 / 3))


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.agreement(P * 3, P_REF)  # logits or unnormalised scores
    with pytest.raises(ValueError, match="shape"):
        metrics.total_variation(P, P_REF[:3])
    with pytest.raises(ValueError, match="label"):
        metrics.accuracy(P, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metrics.nll(P, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="num_bins"):
        metrics.expected_calibration_error(P, np.array([0, 1, 2, 2]), num_bins=0)


def _numpy_probabilities(model, params, x):
    # the MLP's forward pass written out in float64 numpy (its sites: weight, bias per layer, in order)
    sites = [np.asarray(value, np.float64) for value in model.to_sites(params).values()]
    h = x.astype(np.float64)
    for weight, bias in zip(sites[0:-2:2], sites[1:-2:2]):
        h = np.maximum(h @ weight.T + bias, 0)
    return _softmax(h @ sites[-2].T + sites[-1])


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_predictive_is_the_mean_softmax_whatever_the_batching():
    model = MLP((5, 6, 3))
    stack = model.init_many(jax.random.key(0), 7)
    stack = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf) * 4.0, stack)  # numpy, and sharper softmaxes
    x = np.asarray(jax.random.normal(jax.random.key(1), (23, 5)))
    by_hand = np.mean([_numpy_probabilities(model, jax.tree_util.tree_map(lambda l: l[s], stack), x) for s in range(7)], axis=0)
    whole = metrics.predictive(model, stack, x, batch_size=1000, sample_batch_size=1000)
    batched = metrics.predictive(model, stack, x, batch_size=4, sample_batch_size=3)
    assert whole.shape == (23, 3)
    np.testing.assert_allclose(whole, by_hand, atol=1e-6)
    np.testing.assert_allclose(batched, whole, atol=1e-6)
    one = metrics.network_probabilities(model, jax.tree_util.tree_map(lambda leaf: leaf[2], stack), x)
    np.testing.assert_allclose(one, _numpy_probabilities(model, jax.tree_util.tree_map(lambda l: l[2], stack), x), atol=1e-6)


def test_gaussian_draws_and_their_predictive():
    model = MLP((4, 5, 3))
    mean = model.init(jax.random.key(0))
    sd = jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, 0.3), mean)
    q = (mean, sd)
    draws = gaussian.sample_gaussian(model, jax.random.key(2), q, 4000)
    flat = np.asarray(model.ravel(draws))
    assert flat.shape == (4000, model.num_params)
    np.testing.assert_allclose(flat.mean(axis=0), np.asarray(model.ravel(mean)), atol=4 * 0.3 / np.sqrt(4000))
    np.testing.assert_allclose(flat.std(axis=0), 0.3, rtol=0.1)
    # The first draws do not depend on how many are drawn.
    few = np.asarray(model.ravel(gaussian.sample_gaussian(model, jax.random.key(2), q, 4)))
    np.testing.assert_allclose(few, flat[:4], rtol=0, atol=1e-6)
    # The chunked predictive of 10 draws (chunks of 4) is the predictive of the first 10 draws.
    x = np.asarray(jax.random.normal(jax.random.key(1), (11, 4)))
    chunked = metrics.gaussian_predictive(model, jax.random.key(2), q, x, num_samples=10, batch_size=5, sample_batch_size=4)
    direct = metrics.predictive(model, jax.tree_util.tree_map(lambda leaf: leaf[:10], draws), x, batch_size=5,
                                sample_batch_size=4)
    np.testing.assert_allclose(chunked, direct, atol=1e-6)
    with pytest.raises(ValueError, match="q's sd"):  # a q of another network
        gaussian.sample_gaussian(model, jax.random.key(2), (mean, MLP((4, 6, 3)).init(jax.random.key(0))), 2)


def test_predictive_rejects_bad_input():
    model = MLP((5, 6, 3))
    stack = model.init_many(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        metrics.predictive(model, stack, np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="leading model axes"):
        metrics.predictive(model, model.init(jax.random.key(0)), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="layer sizes"):
        metrics.predictive(MLP((5, 7, 3)), stack, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        metrics.predictive(model, stack, np.zeros((4, 5), np.float32), batch_size=0)


# ----------------------------------------------------------------------------- running predictive


def test_running_predictive_is_the_mean_softmax_of_the_first_n_samples():
    """Entry n - 1 is the predictive of the first n networks (in ``order``), whatever the chunking."""
    model = MLP((5, 6, 3))
    stack = model.init_many(jax.random.key(3), 7)
    stack = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf) * 4.0, stack)  # sharper softmaxes: distinct NLLs
    x = np.asarray(jax.random.normal(jax.random.key(4), (23, 5)))
    y = np.asarray(jax.random.randint(jax.random.key(5), (23,), 0, 3))
    order = np.array([6, 2, 0, 5, 1, 3, 4, 2])  # any order, repeats allowed
    probabilities = metrics.sample_probabilities(model, stack, x, batch_size=10, sample_batch_size=3)
    assert probabilities.shape == (7, 23, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.mean(axis=0), metrics.predictive(model, stack, x), atol=1e-6)
    running = metrics.running_predictive(probabilities, y, order=order, chunk_size=3)
    assert set(running) == {"accuracy", "nll", "sample_accuracy", "sample_nll"}
    softmax = [_numpy_probabilities(model, jax.tree_util.tree_map(lambda l: l[s], stack), x) for s in range(7)]
    for n in range(1, len(order) + 1):
        mean_softmax = np.mean([softmax[s] for s in order[:n]], axis=0)
        assert running["nll"][n - 1] == pytest.approx(metrics.nll(mean_softmax, y), abs=1e-5)
        assert running["accuracy"][n - 1] == pytest.approx(metrics.accuracy(mean_softmax, y))
        assert running["sample_nll"][n - 1] == pytest.approx(metrics.nll(softmax[order[n - 1]], y), abs=1e-5)
        assert running["sample_accuracy"][n - 1] == pytest.approx(metrics.accuracy(softmax[order[n - 1]], y))
    assert len(set(np.round(running["nll"], 6))) == len(order)  # the curve moves: a real running mean
    default = metrics.running_predictive(probabilities, y)  # default order: 0, 1, ..., S - 1
    assert default["nll"][-1] == pytest.approx(metrics.nll(metrics.predictive(model, stack, x), y), abs=1e-5)
    assert default["sample_nll"][0] == pytest.approx(running["sample_nll"][2], abs=1e-6)  # network 0 both times
    with pytest.raises(ValueError, match="outside the 7 networks"):
        metrics.running_predictive(probabilities, y, order=[0, 7])
    with pytest.raises(ValueError, match=r"\(S, N, C\)"):
        metrics.running_predictive(probabilities[0], y)
