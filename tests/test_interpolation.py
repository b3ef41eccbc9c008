import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import stack_trees

from compactbnn.models import MLP
from compactbnn.symmetry import interpolation, rebasin
from compactbnn import train
from compactbnn.symmetry.permutation import permutation_with_transpositions, permute

LAMBDAS = np.linspace(0.0, 1.0, 11)
PAIR = MLP((64, 96, 10))  # the trained pair's model
SIGN = MLP((1, 2, 2))  # the hand-made networks'


def random_mlp(seed, sizes):
    """A PyTorch-default random network of MLP(sizes)."""
    return MLP(sizes).init(jax.random.key(seed))

@pytest.fixture(scope="module")
def pair(digits):
    """Two digits networks 64-96-10 trained from different initialisations."""
    config = train.TrainConfig(optimizer="adam", learning_rate=3e-3, batch_size=64, epochs=4)
    inits = stack_trees([random_mlp(0, [64, 96, 10]), random_mlp(1, [64, 96, 10])])
    result = train.train_many(PAIR, inits, digits["x_train"], digits["y_train"], jax.random.split(jax.random.key(2), 2),
                              config, progress=False)
    return [jax.tree_util.tree_map(lambda leaf: leaf[i], result.params) for i in range(2)]


@pytest.fixture(scope="module")
def splits(digits):
    return {"train": (digits["x_train"], digits["y_train"]), "test": (digits["x_test"], digits["y_test"])}


# --- interpolation -------------------------------------------------------------------------------

def test_interpolation_is_exact_at_the_ends_and_linear_between():
    a, b = random_mlp(0, [5, 7, 3]), random_mlp(1, [5, 7, 3])
    path = interpolation.interpolate(a, b, [0.0, 0.25, 0.5, 1.0])
    assert path[0]["weight"].shape == (4, 7, 5) and path[1]["bias"].shape == (4, 3)
    for layer in range(2):
        for name in ("weight", "bias"):
            w0, w1 = np.asarray(a[layer][name]), np.asarray(b[layer][name])
            np.testing.assert_array_equal(path[layer][name][0], w0)
            np.testing.assert_array_equal(path[layer][name][3], w1)
            np.testing.assert_allclose(path[layer][name][1], 0.75 * w0 + 0.25 * w1, atol=1e-7)
            np.testing.assert_allclose(path[layer][name][2], 0.5 * (w0 + w1), atol=1e-7)
    same = interpolation.interpolate(a, a, LAMBDAS)
    assert all(np.all(np.asarray(leaf) == np.asarray(orig)[None])
               for leaf, orig in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(a)))


def test_evaluate_path_equals_evaluating_each_lambda(pair, splits):
    a, b = pair
    result = interpolation.evaluate_path(PAIR, a, b, LAMBDAS, splits)
    assert set(result) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert all(v.shape == (11,) for v in result.values())
    for i in (0, 4, 10):
        w = jax.tree_util.tree_map(lambda p, q: (1 - LAMBDAS[i]) * p + LAMBDAS[i] * q, a, b)
        metrics = train.evaluate(PAIR, w, *splits["test"])
        assert abs(result["test_loss"][i] - metrics["loss"]) < 1e-5
        assert abs(result["test_accuracy"][i] - metrics["accuracy"]) < 1e-6


def test_evaluate_paths_batches_pairs(pair, splits):
    a, b = pair
    starts, ends = stack_trees([a, b, a]), stack_trees([b, a, a])
    many = interpolation.evaluate_paths(PAIR, starts, ends, [0.0, 0.5, 1.0], {"train": splits["train"]}, chunk_size=2)
    assert many["train_loss"].shape == (3, 3)
    one = interpolation.evaluate_path(PAIR, a, b, [0.0, 0.5, 1.0], {"train": splits["train"]})
    np.testing.assert_allclose(many["train_loss"][0], one["train_loss"], atol=1e-6)
    np.testing.assert_allclose(many["train_loss"][1], one["train_loss"][::-1], atol=1e-6)
    assert np.ptp(many["train_loss"][2]) == 0  # a network with itself


# --- barriers ------------------------------------------------------------------------------------

def test_loss_barrier_by_hand():
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    losses = np.array([1.0, 2.0, 3.0, 5.0, 2.0])
    assert interpolation.loss_barrier(losses, lambdas) == pytest.approx(5.0 - 1.5)
    assert interpolation.loss_barrier(losses, lambdas, kind="midpoint") == pytest.approx(3.0 - 1.5)
    # Leading batch axes are kept; the grid need not be sorted.
    batch = np.stack([losses, losses[::-1] * 2]).reshape(2, 1, 5)
    np.testing.assert_allclose(interpolation.loss_barrier(batch, lambdas), [[3.5], [7.0]])
    np.testing.assert_allclose(interpolation.loss_barrier(losses[[4, 2, 0]], [1.0, 0.5, 0.0], kind="midpoint"), 1.5)


def test_loss_barrier_rejects_bad_grids():
    with pytest.raises(ValueError, match="lambda = 0.5"):
        interpolation.loss_barrier([1.0, 2.0, 1.0], [0.0, 0.4, 1.0], kind="midpoint")
    with pytest.raises(ValueError, match="lambda = 1.0"):
        interpolation.loss_barrier([1.0, 2.0], [0.0, 0.5])
    with pytest.raises(ValueError, match="3 values on the last axis"):
        interpolation.loss_barrier([1.0, 2.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="kind must be"):
        interpolation.loss_barrier([1.0, 2.0, 1.0], [0.0, 0.5, 1.0], kind="mean")
    with pytest.raises(ValueError, match="1-D grid"):
        interpolation.interpolate(random_mlp(0, [3, 4, 2]), random_mlp(1, [3, 4, 2]), [[0.0, 1.0]])


def _sign_network(swap: bool):
    """1-2-2 ReLU network computing logits [relu(x), relu(-x)]; ``swap`` stores its hidden units the other way round."""
    hidden, out = np.array([[1.0], [-1.0]]), np.eye(2)
    if swap:
        hidden, out = hidden[::-1], out[:, ::-1]
    return [{"weight": jnp.asarray(hidden, jnp.float32), "bias": jnp.zeros(2)},
            {"weight": jnp.asarray(out, jnp.float32), "bias": jnp.zeros(2)}]


def test_error_barrier_of_hand_made_networks():
    """Two permuted copies classify the sign of x perfectly; their midpoint has zero weights, ties, and predicts
    class 0 everywhere: 3 of 4 points right, so the 0-1 error barrier is 0.25 (0 at lambda = 0.25 and 0.75)."""
    x, y = np.array([[1.0], [2.0], [0.5], [-1.0]], np.float32), np.array([0, 0, 0, 1])
    a, b = _sign_network(False), _sign_network(True)
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    accuracy = interpolation.evaluate_path(SIGN, a, b, lambdas, {"s": (x, y)})["s_accuracy"]
    np.testing.assert_allclose(accuracy, [1.0, 1.0, 0.75, 1.0, 1.0])
    assert interpolation.error_barrier(accuracy, lambdas) == pytest.approx(0.25)
    assert interpolation.error_barrier(accuracy, lambdas, kind="midpoint") == pytest.approx(0.25)
    # aligned, the copies coincide: no error barrier
    aligned, _ = rebasin.rebasin(SIGN, a, b)
    aligned_accuracy = interpolation.evaluate_path(SIGN, a, aligned, lambdas, {"s": (x, y)})["s_accuracy"]
    assert interpolation.error_barrier(aligned_accuracy, lambdas) == 0.0
    # by hand: errors [0.1, 0.6, 0.3] -> 0.6 - 0.2; the error is 1 - accuracy, batch axes kept
    np.testing.assert_allclose(interpolation.error_barrier([[0.9, 0.4, 0.7]], [0.0, 0.5, 1.0]), [0.4])
    with pytest.raises(ValueError, match="lambda = 0.5"):
        interpolation.error_barrier([0.9, 0.4, 0.7], [0.0, 0.4, 1.0], kind="midpoint")


def test_squared_distance_per_layer_of_hand_made_networks():
    a, b = _sign_network(False), _sign_network(True)
    per_layer = {k: float(v) for k, v in interpolation.squared_distance_per_layer(SIGN, a, b).items()}
    # w1: [1, -1] vs [-1, 1] -> 4 + 4; w2: eye vs its columns swapped -> 4 entries of 1
    assert per_layer == {"w1": 8.0, "b1": 0.0, "w2": 4.0, "b2": 0.0}
    assert sum(per_layer.values()) == float(interpolation.squared_distance(SIGN, a, b))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, a)
    shifted = [{"weight": a[0]["weight"], "bias": jnp.array([3.0, 0.0])}, {"weight": a[1]["weight"], "bias": jnp.array([0.0, -2.0])}]
    assert {k: float(v) for k, v in interpolation.squared_distance_per_layer(SIGN, shifted, a).items()} == {
        "w1": 0.0, "b1": 9.0, "w2": 0.0, "b2": 4.0}
    # leading model axes broadcast; three layers are named w1 ... b3 in ravel order
    stacked = interpolation.squared_distance_per_layer(SIGN, stack_trees([a, b, zeros]), a)
    np.testing.assert_allclose(stacked["w1"], [0.0, 8.0, 2.0])
    np.testing.assert_allclose(stacked["w2"], [0.0, 4.0, 2.0])
    three = MLP((5, 4, 3, 2))
    deep = interpolation.squared_distance_per_layer(three, random_mlp(0, [5, 4, 3, 2]), random_mlp(1, [5, 4, 3, 2]))
    assert list(deep) == interpolation.parameter_names(three) == ["w1", "b1", "w2", "b2", "w3", "b3"]
    assert [name for name, _ in three.sites][:3] == ["layer0.weight", "layer0.bias", "layer1.weight"]
    assert sum(float(v) for v in deep.values()) == pytest.approx(
        float(interpolation.squared_distance(three, random_mlp(0, [5, 4, 3, 2]), random_mlp(1, [5, 4, 3, 2]))), rel=1e-5)


def test_barrier_of_a_network_with_itself_is_zero(pair, splits):
    a, _ = pair
    losses = interpolation.evaluate_path(PAIR, a, a, LAMBDAS, splits)["train_loss"]
    assert interpolation.loss_barrier(losses, LAMBDAS) == 0.0
    assert interpolation.loss_barrier(losses, LAMBDAS, kind="midpoint") == 0.0


@pytest.mark.parametrize("method", ["weight", "activation", "cosine_first_layer"])
def test_midpoint_barrier_vanishes_after_aligning_a_permuted_copy(pair, splits, digits, method):
    a, _ = pair
    copy = permute(PAIR, a, [permutation_with_transpositions(jax.random.key(3), 96, 80)])
    grid = [0.0, 0.5, 1.0]
    before = interpolation.evaluate_path(PAIR, a, copy, grid, splits)["train_loss"]
    assert interpolation.loss_barrier(before, grid, kind="midpoint") > 0.1  # permuted copy: a real barrier
    aligned, _ = rebasin.rebasin(PAIR, a, copy, method=method, x=digits["x_train"])
    after = interpolation.evaluate_path(PAIR, a, aligned, grid, splits)["train_loss"]
    assert abs(interpolation.loss_barrier(after, grid, kind="midpoint")) < 1e-6


def test_rebasin_lowers_the_barrier_between_independent_networks(pair, splits, digits):
    a, b = pair
    before = interpolation.loss_barrier(interpolation.evaluate_path(PAIR, a, b, LAMBDAS, splits)["train_loss"], LAMBDAS)
    aligned, _ = rebasin.rebasin(PAIR, a, b, method="activation", x=digits["x_train"])
    after = interpolation.loss_barrier(interpolation.evaluate_path(PAIR, a, aligned, LAMBDAS, splits)["train_loss"],
                                       LAMBDAS)
    assert after < 0.5 * before


# --- distances and NoT ---------------------------------------------------------------------------

def test_squared_distance():
    model = MLP((5, 7, 3))
    a, b = random_mlp(0, [5, 7, 3]), random_mlp(1, [5, 7, 3])
    by_hand = sum(float(np.sum((np.asarray(x) - np.asarray(y)) ** 2))
                  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert float(interpolation.squared_distance(model, a, b)) == pytest.approx(by_hand, rel=1e-5)
    assert float(interpolation.squared_distance(model, a, a)) == 0.0
    stacked = interpolation.squared_distance(model, stack_trees([a, b, a]), b)  # leading model axes broadcast
    np.testing.assert_allclose(stacked, [by_hand, 0.0, by_hand], rtol=1e-5)
    perm = [permutation_with_transpositions(jax.random.key(0), 7, 4)]
    aligned, _ = rebasin.rebasin(model, a, permute(model, a, perm))
    assert float(interpolation.squared_distance(model, a, aligned)) == 0.0
    assert float(interpolation.squared_distance(model, a, permute(model, a, perm))) > 0.0


@pytest.mark.parametrize("k", [0, 1, 30, 63])
def test_transpositions_between_recovers_the_planted_level(k):
    model = MLP((20, 64, 48, 10))
    params = random_mlp(0, [20, 64, 48, 10])
    perms = [permutation_with_transpositions(jax.random.key(1), 64, k),
             permutation_with_transpositions(jax.random.key(2), 48, min(k, 47))]
    copy = permute(model, params, perms)
    assert interpolation.transpositions_between(model, params, copy) == k + min(k, 47)
    # Aligning the original to the copy undoes the inverse permutation: the same NoT.
    assert interpolation.transpositions_between(model, copy, params, method="cosine_first_layer") == k + min(k, 47)


def test_transpositions_between_pairs_matches_single_calls():
    model = MLP((10, 32, 5))
    refs = [random_mlp(i, [10, 32, 5]) for i in range(3)]
    copies = [permute(model, r, [permutation_with_transpositions(jax.random.key(i), 32, 5 * i + 1)])
              for i, r in enumerate(refs)]
    nots = interpolation.transpositions_between_pairs(model, stack_trees(refs), stack_trees(copies))
    assert nots.tolist() == [1, 6, 11]
    assert nots.tolist() == [interpolation.transpositions_between(model, r, c) for r, c in zip(refs, copies)]


def test_mismatched_networks_are_rejected():
    model = MLP((5, 7, 3))
    a = random_mlp(0, [5, 7, 3])
    with pytest.raises(ValueError, match="params0 and params1 differ in structure"):
        interpolation.interpolate(a, random_mlp(1, [5, 7, 7, 3]), LAMBDAS)
    with pytest.raises(ValueError, match=r"params1 has layer sizes \[5, 8, 3\], the model \[5, 7, 3\]"):
        interpolation.squared_distance(model, a, random_mlp(1, [5, 8, 3]))
    with pytest.raises(ValueError, match=r"params1 has layer sizes \[5, 7, 7, 3\], the model \[5, 7, 3\]"):
        interpolation.squared_distance_per_layer(model, a, random_mlp(1, [5, 7, 7, 3]))
    with pytest.raises(ValueError, match="pair"):
        interpolation.evaluate_path(model, a, a, LAMBDAS, {"train": (np.zeros((2, 5)),)})
    with pytest.raises(ValueError, match="splits"):
        interpolation.evaluate_path(model, a, a, LAMBDAS, {})
