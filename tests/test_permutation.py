import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import stack_trees

from compactbnn.models import MLP, PermutationSpec
from compactbnn.symmetry.permutation import (
    check_permutation,
    compose,
    count_transpositions,
    count_transpositions_many,
    identity,
    inverse,
    permutation_with_transpositions,
    permutations_with_transpositions,
    permute,
    permute_gaussian,
    permute_many,
    total_transpositions,
)


def _random_perm(seed, n):
    return np.random.default_rng(seed).permutation(n).astype(np.int32)




def _tree_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


# --- number of transpositions ---------------------------------------------------------------

def test_paper_example_has_three_transpositions():
    # 1->4, 2->1, 3->5, 4->2, 5->3 is (1 4 2)(3 5): 5 elements, 2 cycles.
    assert count_transpositions([3, 0, 4, 1, 2]) == 3


@pytest.mark.parametrize("perm, expected", [
    ([0, 1, 2, 3], 0),
    ([1, 0, 2, 3], 1),
    ([1, 2, 3, 0], 3),
    ([1, 0, 3, 2], 2),
    ([0], 0),
])
def test_count_transpositions_small_cases(perm, expected):
    assert count_transpositions(perm) == expected
    assert int(count_transpositions_many(np.array(perm))) == expected


def test_count_transpositions_equals_fewest_swaps_by_selection_sort():
    # Sorting a permutation by swapping each element into place needs exactly NoT swaps.
    for seed in range(20):
        perm = _random_perm(seed, 37).tolist()
        swaps = 0
        for i in range(len(perm)):
            while perm[i] != i:
                j = perm[i]
                perm[i], perm[j] = perm[j], perm[i]
                swaps += 1
        assert count_transpositions(_random_perm(seed, 37)) == swaps


def test_batched_count_matches_loop_and_keeps_leading_axes():
    perms = np.stack([_random_perm(s, 100) for s in range(12)]).reshape(3, 4, 100)
    counts = np.asarray(count_transpositions_many(perms))
    assert counts.shape == (3, 4)
    assert counts.ravel().tolist() == [count_transpositions(p) for p in perms.reshape(12, 100)]
    # Traced inputs are accepted (jit / vmap).
    jitted = jax.jit(jax.vmap(count_transpositions_many))(jnp.asarray(perms.reshape(12, 100)))
    assert np.array_equal(np.asarray(jitted), counts.ravel())


def test_total_transpositions_sums_layers():
    assert total_transpositions([np.array([1, 0, 2]), np.array([1, 2, 3, 0])]) == 4


# --- controlled permutations -----------------------------------------------------------------

def test_every_k_from_0_to_511_gives_exactly_k_transpositions():
    n = 512
    ks = np.arange(n)
    perms = np.asarray(permutations_with_transpositions(jax.random.split(jax.random.key(0), n), n, ks))
    check_permutation(perms)
    assert np.array_equal(np.asarray(count_transpositions_many(perms)), ks)
    assert [count_transpositions(p) for p in perms] == ks.tolist()


def test_single_draw_is_reproducible_and_varies_with_key():
    a = permutation_with_transpositions(jax.random.key(3), 64, 20)
    b = permutation_with_transpositions(jax.random.key(3), 64, 20)
    c = permutation_with_transpositions(jax.random.key(4), 64, 20)
    assert a.dtype == jnp.int32 and a.shape == (64,)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert count_transpositions(a) == 20 and count_transpositions(c) == 20


def test_generator_is_vmappable_over_keys_and_levels():
    keys = jax.random.split(jax.random.key(1), 6)
    ks = jnp.array([0, 1, 5, 17, 30, 31])
    perms = jax.vmap(lambda key, k: permutation_with_transpositions(key, 32, k))(keys, ks)
    assert np.array_equal(np.asarray(count_transpositions_many(perms)), np.asarray(ks))


def test_cycle_sizes_follow_the_authors_generator():
    # n - k cycles, k extra elements spread uniformly: with n = 8, k = 2 over 6 cycles the
    # chance that both extras join the same cycle (one 3-cycle) is 1/6, else two 2-cycles.
    n, k, draws = 8, 2, 3000
    perms = np.asarray(permutations_with_transpositions(jax.random.split(jax.random.key(2), draws), n, np.full(draws, k)))
    has_three_cycle = np.array([any(p[p[i]] != i and p[p[p[i]]] == i for i in range(n)) for p in perms])
    assert abs(has_three_cycle.mean() - 1 / 6) < 0.03
    # Every element is moved equally often: 4 of 8 elements lie in non-trivial cycles on average.
    moved = (perms != np.arange(n)).mean(axis=0)
    assert np.all(np.abs(moved - np.mean(moved)) < 0.05)


@pytest.mark.parametrize("k", [-1, 512, 600])
def test_impossible_number_of_transpositions_is_rejected(k):
    with pytest.raises(ValueError, match="0..511"):
        permutation_with_transpositions(jax.random.key(0), 512, k)
    with pytest.raises(ValueError, match="0..511"):
        permutations_with_transpositions(jax.random.split(jax.random.key(0), 2), 512, [3, k])


def test_generator_rejects_bad_sizes_and_levels():
    with pytest.raises(ValueError, match="positive"):
        permutation_with_transpositions(jax.random.key(0), 0, 0)
    with pytest.raises(ValueError, match="integer"):
        permutation_with_transpositions(jax.random.key(0), 10, 2.5)
    with pytest.raises(ValueError, match="one key per k"):
        permutations_with_transpositions(jax.random.split(jax.random.key(0), 3), 10, [1, 2])


# --- composition, inverse, checks --------------------------------------------------------------

def test_compose_and_inverse():
    p, q = _random_perm(0, 50), _random_perm(1, 50)
    assert np.array_equal(compose(p, inverse(p)), identity(50))
    assert np.array_equal(compose(inverse(p), p), identity(50))
    assert np.array_equal(compose(p, q), p[q])
    assert count_transpositions(inverse(p)) == count_transpositions(p)
    stacked = np.stack([p, q])
    assert np.array_equal(compose(stacked, inverse(stacked)), np.tile(np.arange(50), (2, 1)))


@pytest.mark.parametrize("bad, message", [
    ([0, 0, 1], "occurs 2 times"),
    ([0, 1, 3], "outside 0..2"),
    ([[0, 1], [1, 1]], "occurs 2 times"),
    ([], "empty"),
])
def test_non_permutations_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        check_permutation(np.array(bad, dtype=np.int32))
    with pytest.raises(ValueError, match=message):
        count_transpositions_many(np.array(bad, dtype=np.int32))


def test_float_and_wrong_length_permutations_are_rejected():
    with pytest.raises(TypeError, match="integers"):
        check_permutation(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="length 3, expected 4"):
        check_permutation([0, 1, 2], n=4)
    with pytest.raises(ValueError, match="3 and 4"):
        compose([0, 1, 2], [0, 1, 2, 3])


# --- permuting networks ------------------------------------------------------------------------

def test_mlp_spec_lists_rows_bias_and_next_columns():
    spec = MLP((5, 4, 3, 2)).spec
    assert isinstance(spec, PermutationSpec) and spec.num_perms == 2
    assert spec.perm_to_axes[1] == ((1, "weight", 0), (1, "bias", 0), (2, "weight", 1))
    assert spec.axes_to_perm[(1, "weight")] == {0: 1, 1: 0}
    hash(spec)  # usable as a static jit argument


@pytest.mark.parametrize("sizes", [[20, 64, 10], [20, 48, 32, 10]])
def test_permuted_network_gives_the_same_logits(sizes):
    model = MLP(sizes)
    params = model.init(jax.random.key(0))
    perms = [permutation_with_transpositions(jax.random.key(i + 1), n, n - 1) for i, n in enumerate(sizes[1:-1])]
    permuted = permute(model, params, perms)
    x = jax.random.uniform(jax.random.key(9), (256, sizes[0]))
    np.testing.assert_allclose(model.apply(permuted, x), model.apply(params, x), atol=1e-5, rtol=0)
    # The weights themselves moved: hidden layer 0's rows are those of perm.
    assert np.array_equal(permuted[0]["weight"], np.asarray(params[0]["weight"])[np.asarray(perms[0])])
    assert not np.allclose(permuted[0]["weight"], params[0]["weight"])


def test_permuting_twice_is_permuting_by_the_composition():
    model = MLP((8, 16, 12, 4))
    params = model.init(jax.random.key(0))
    p = [_random_perm(1, 16), _random_perm(2, 12)]
    q = [_random_perm(3, 16), _random_perm(4, 12)]
    composed = [compose(a, b) for a, b in zip(p, q)]
    assert _tree_equal(permute(model, permute(model, params, p), q), permute(model, params, composed))
    assert _tree_equal(permute(model, permute(model, params, p), [inverse(a) for a in p]), params)


def test_permute_under_vmap_and_permute_many_match_one_by_one():
    sizes, m = [8, 16, 12, 4], 5
    model = MLP(sizes)
    stacked = stack_trees([model.init(jax.random.key(i)) for i in range(m)])
    perms = [np.stack([_random_perm(10 * i + j, n) for i in range(m)]) for j, n in enumerate(sizes[1:-1])]
    by_vmap = jax.jit(jax.vmap(lambda p, q: permute(model, p, q)))(stacked, [jnp.asarray(p) for p in perms])
    together = permute_many(model, stacked, perms)
    for i in range(m):
        one = permute(model, jax.tree_util.tree_map(lambda leaf: leaf[i], stacked), [p[i] for p in perms])
        assert _tree_equal(jax.tree_util.tree_map(lambda leaf: leaf[i], by_vmap), one)
        assert _tree_equal(jax.tree_util.tree_map(lambda leaf: leaf[i], together), one)


def test_gaussian_mean_and_sd_move_together():
    model = MLP((6, 10, 3))
    mu = model.init(jax.random.key(0))
    sigma = jax.tree_util.tree_map(lambda leaf: jnp.abs(leaf) + 0.1, model.init(jax.random.key(1)))
    perm = [_random_perm(5, 10)]
    mu_p, sigma_p = permute_gaussian(model, mu, sigma, perm)
    assert _tree_equal(mu_p, permute(model, mu, perm)) and _tree_equal(sigma_p, permute(model, sigma, perm))
    # Each weight keeps its own sd: pairs (mu, sigma) are the same multiset per layer.
    for a, b, c, d in zip(jax.tree_util.tree_leaves(mu), jax.tree_util.tree_leaves(sigma),
                          jax.tree_util.tree_leaves(mu_p), jax.tree_util.tree_leaves(sigma_p)):
        before = sorted(zip(np.ravel(a).tolist(), np.ravel(b).tolist()))
        after = sorted(zip(np.ravel(c).tolist(), np.ravel(d).tolist()))
        assert before == after


def test_permute_rejects_bad_input():
    model = MLP((6, 10, 8, 3))
    params = model.init(jax.random.key(0))
    good = [np.arange(10), np.arange(8)]
    with pytest.raises(ValueError, match="the model's spec has 2"):
        permute(model, params, good[:1])
    with pytest.raises(ValueError, match=r"perms\[1\] has shape \(10,\), the spec's permutation 1 needs \(8,\)"):
        permute(model, params, [np.arange(10), np.arange(10)])
    with pytest.raises(ValueError, match=r"perms\[0\] is not a permutation"):
        permute(model, params, [np.zeros(10, np.int32), np.arange(8)])
    with pytest.raises(TypeError, match="list"):
        permute(model, params, np.arange(10))
    broken = [dict(params[0]), {"weight": params[1]["weight"][:, :9], "bias": params[1]["bias"]}, params[2]]
    with pytest.raises(ValueError, match="takes 9 inputs"):
        permute(model, broken, good)
    with pytest.raises(ValueError, match="layer sizes"):
        permute_gaussian(model, params, MLP((6, 10, 9, 3)).init(jax.random.key(0)), good)
