import jax
import numpy as np
import pytest

from compactbnn.symmetry import compact, permutation
from compactbnn.models import MLP

NOISE = 0.02


def _flat(params):
    """One network (num_params,) or a stack (S, num_params) as vectors, in the MLP's ravel order."""
    return np.asarray(MLP.of(params, batch_ndim=np.ndim(params[0]["bias"]) - 1).ravel(params))


def _planted(sizes, num=16, seed=0):
    """Noisy copies of one network, each with its hidden units randomly permuted."""
    key = jax.random.key(seed)
    model = MLP(sizes)
    base = jax.tree_util.tree_map(lambda leaf: 3.0 * leaf, model.init(key))
    perms = [np.stack([np.asarray(jax.random.permutation(jax.random.fold_in(key, 1000 * (layer + 1) + s), n))
                       for s in range(num)]).astype(np.int32) for layer, n in enumerate(sizes[1:-1])]
    noise = jax.random.normal(jax.random.fold_in(key, 7), (num, model.num_params)) * NOISE
    noisy = model.unravel(model.ravel(base)[None] + noise)
    return base, perms, permutation.permute_many(model, noisy, perms)


def _expected_alignment(perms, ref_index):
    # Sample s is base[perm_s]; permuting it by inv(perm_s)[perm_ref] gives base[perm_ref].
    return [np.stack([np.asarray(permutation.inverse(p[s]))[p[ref_index]] for s in range(len(p))]) for p in perms]


@pytest.mark.parametrize("method", ["weight", "activation"])
def test_planted_ensemble_q_rebasin_recovers_the_network(method):
    sizes = [6, 10, 4]
    model = MLP(sizes)
    base, perms, samples = _planted(sizes)
    x = np.asarray(jax.random.normal(jax.random.key(3), (500, 6)))  # every unit active somewhere
    result = compact.q_rebasin(model, samples, method=method, x=x if method == "activation" else None)
    expected = _expected_alignment(perms, 0)
    np.testing.assert_array_equal(result.perms[0], expected[0])
    np.testing.assert_array_equal(result.not_to_reference,
                                  [permutation.count_transpositions(p) for p in expected[0]])
    assert result.not_to_reference[0] == 0 and result.not_to_reference.max() > 5
    # Mean: the planted network in the first sample's basis; sd: the planted noise level.
    in_first_basis = permutation.permute(model, base, [p[0] for p in perms])
    np.testing.assert_allclose(_flat(result.q.mean), _flat(in_first_basis), atol=5 * NOISE / 4)
    sd_r = _flat(result.q.sd)
    assert 0.7 * NOISE < sd_r.mean() < 1.3 * NOISE
    sd_d = _flat(compact.q_direct(model, samples).sd)
    assert sd_d.mean() > 10 * sd_r.mean()
    np.testing.assert_array_equal(_flat(result.reference), _flat(jax.tree_util.tree_map(lambda l: l[0], samples)))


def test_planted_ensemble_with_a_given_reference_and_with_the_mean():
    sizes = [6, 10, 4]
    model = MLP(sizes)
    base, perms, samples = _planted(sizes, seed=1)
    given = compact.q_rebasin(model, samples, reference=base)
    np.testing.assert_array_equal(given.perms[0], np.asarray(permutation.inverse(perms[0])))
    np.testing.assert_allclose(_flat(given.q.mean), _flat(base), atol=5 * NOISE / 4)
    by_mean = compact.q_rebasin(model, samples, reference="mean", max_rounds=5)
    assert _flat(by_mean.q.sd).mean() < 1.3 * NOISE
    np.testing.assert_allclose(_flat(by_mean.reference), _flat(by_mean.q.mean), atol=1e-5)


def test_planted_ensemble_with_two_hidden_layers():
    sizes = [6, 10, 8, 4]
    model = MLP(sizes)
    base, perms, samples = _planted(sizes, num=8, seed=2)
    result = compact.q_rebasin(model, samples)
    expected = _expected_alignment(perms, 0)
    for got, want in zip(result.perms, expected):
        np.testing.assert_array_equal(got, want)
    assert result.not_per_layer.shape == (8, 2)
    np.testing.assert_array_equal(result.not_to_reference, result.not_per_layer.sum(axis=1))
    assert _flat(result.q.sd).mean() < 1.3 * NOISE < 10 * 1.3 * NOISE < _flat(compact.q_direct(model, samples).sd).mean()


def test_moments_are_the_mean_and_sample_sd_whatever_the_chunking():
    model = MLP((5, 7, 3))
    stack = model.init_many(jax.random.key(0), 11)
    flat = _flat(stack).astype(np.float64)
    for ddof in (0, 1):
        q = compact.moments(model, jax.tree_util.tree_map(np.asarray, stack), ddof=ddof, chunk_size=3)
        np.testing.assert_allclose(_flat(q.mean), flat.mean(axis=0), atol=1e-7)
        np.testing.assert_allclose(_flat(q.sd), flat.std(axis=0, ddof=ddof), rtol=1e-5, atol=1e-7)
    whole, chunked = compact.q_direct(model, stack), compact.q_direct(model, stack, chunk_size=4)
    np.testing.assert_allclose(_flat(whole.sd), _flat(chunked.sd), rtol=1e-6)
    with pytest.raises(ValueError, match="ddof=1"):
        compact.q_direct(model, jax.tree_util.tree_map(lambda leaf: leaf[:1], stack))


def test_align_gaussian_moves_mean_and_sd_together():
    sizes = [6, 10, 4]
    model = MLP(sizes)
    mean = model.init(jax.random.key(0))
    sd = model.unravel(jax.random.uniform(jax.random.key(1), (model.num_params,), minval=0.1, maxval=1.0))
    p = np.asarray(jax.random.permutation(jax.random.key(2), 10)).astype(np.int32)
    scrambled = compact.Gaussian(permutation.permute(model, mean, [p]), permutation.permute(model, sd, [p]))
    aligned, perms = compact.align_gaussian(model, scrambled, mean)
    np.testing.assert_array_equal(perms[0], np.asarray(permutation.inverse(p)))
    np.testing.assert_array_equal(_flat(aligned.mean), _flat(mean))
    np.testing.assert_array_equal(_flat(aligned.sd), _flat(sd))
    wrapped = compact.CompactResult.from_gaussian(model, aligned, perms, reference=mean)
    assert wrapped.not_to_reference.tolist() == [permutation.count_transpositions(perms[0])]


def test_save_and_load_round_trip(tmp_path):
    sizes = [6, 10, 4]
    model = MLP(sizes)
    _, _, samples = _planted(sizes, num=4)
    result = compact.q_rebasin(model, samples)
    compact.save_compact(tmp_path / "q.npz", model, result)
    with np.load(tmp_path / "q.npz") as stored:
        assert {"mu", "sigma", "not_to_reference", "model", "reference", "perms_0"} <= set(stored)
        np.testing.assert_array_equal(stored["mu"], np.asarray(model.ravel(result.q.mean)))
        assert str(stored["model"]) == repr(model) == "MLP(layer_sizes=(6, 10, 4))"
    back = compact.load_compact(tmp_path / "q.npz", model)
    np.testing.assert_array_equal(_flat(back.q.sd), _flat(result.q.sd))
    np.testing.assert_array_equal(back.not_to_reference, result.not_to_reference)
    np.testing.assert_array_equal(back.perms[0], result.perms[0])
    compact.save_compact(tmp_path / "g.npz", model, result.q)  # a bare Gaussian
    bare = compact.load_compact(tmp_path / "g.npz", model)
    assert bare.perms is None and bare.reference is None and bare.not_to_reference.shape == (0,)
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="sigma"):
        compact.load_compact(tmp_path / "bad.npz", model)
    with pytest.raises(ValueError, match=r"holds a compact representation of MLP\(layer_sizes=\(6, 10, 4\)\), not of"):
        compact.load_compact(tmp_path / "q.npz", MLP((6, 11, 4)))


def test_bad_references_are_rejected():
    model = MLP((6, 10, 4))
    _, _, samples = _planted([6, 10, 4], num=3)
    with pytest.raises(ValueError, match="reference"):
        compact.q_rebasin(model, samples, reference="last")
    with pytest.raises(ValueError, match="layer sizes"):
        compact.q_rebasin(model, samples, reference=MLP((6, 9, 4)).init(jax.random.key(0)))


def test_ravel_stack_equals_ravel_of_the_permuted_stack():
    model = MLP((6, 5, 4, 3))
    samples = model.init_many(jax.random.key(0), 7)
    perms = [np.stack([np.random.default_rng(i + 10 * layer).permutation(width) for i in range(7)]).astype(np.int32)
             for layer, width in enumerate([5, 4])]
    expected = np.asarray(model.ravel(permutation.permute_many(model, samples, perms)))
    np.testing.assert_array_equal(compact.ravel_stack(model, samples, perms, chunk_size=3), expected)
    np.testing.assert_array_equal(compact.ravel_stack(model, samples, chunk_size=4), np.asarray(model.ravel(samples)))


# --- Experiment C as the authors aligned it -----------------------------------------------------


def _hmc_like(num=12, seed=0, live=8, dead=24, hidden=10):
    """HMC-like samples: inputs with always-black pixels, whose first-layer weights wander at prior scale.

    Every sample is one network with small noise on the weights that touch live pixels, fresh
    N(0, 1) draws on the weights of the ``dead`` always-zero pixels, and its hidden units permuted.
    Returns (inputs with the dead pixels zero, planted perms (num, hidden), samples).
    """
    rng = np.random.default_rng(seed)
    model = MLP((live + dead, hidden, 3))
    base = model.unravel(np.asarray(model.ravel(model.init(jax.random.key(seed)))) * 3.0)
    perms = np.stack([rng.permutation(hidden) for _ in range(num)]).astype(np.int32)
    networks = []
    for s in range(num):
        layers = jax.tree_util.tree_map(lambda leaf: np.array(leaf) + rng.normal(0, NOISE, np.shape(leaf)), base)
        layers[0]["weight"][:, live:] = rng.normal(0, 1.0, (hidden, dead))  # no data touches these weights
        networks.append(permutation.permute(model, layers, [perms[s]]))
    samples = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves).astype(np.float32), *networks)
    x = np.zeros((400, live + dead), np.float32)
    x[:, :live] = rng.normal(0, 1, (400, live))  # every hidden unit active on some inputs: no ties
    return x, perms, samples


def test_activation_matching_aligns_hmc_like_samples_where_weight_matching_fails():
    model = MLP((32, 10, 3))
    x, perms, samples = _hmc_like()
    expected = _expected_alignment([perms], 0)[0]
    by_activation = compact.q_rebasin(model, samples, method="activation", x=x)
    np.testing.assert_array_equal(by_activation.perms[0], expected)
    by_weight = compact.q_rebasin(model, samples, method="weight")
    recovered = np.mean([np.array_equal(a, b) for a, b in zip(by_weight.perms[0][1:], expected[1:])])
    assert recovered < 0.5, f"weight matching recovered {recovered:.0%} of the planted permutations"


def test_unaligned_mean_reference_is_the_mean_of_q_d():
    sizes = [6, 10, 4]
    model = MLP(sizes)
    _, _, samples = _planted(sizes, seed=2)
    result = compact.q_rebasin(model, samples, reference="unaligned_mean")
    np.testing.assert_allclose(_flat(result.reference), _flat(compact.q_direct(model, samples).mean), atol=1e-6)
    np.testing.assert_allclose(_flat(compact.moments(model, samples, perms=result.perms).mean), _flat(result.q.mean), atol=1e-6)


@pytest.mark.parametrize("method", ["weight", "activation"])
def test_two_stage_alignment_recovers_a_planted_ensemble(method):
    sizes = [6, 10, 4]
    model = MLP(sizes)
    base, perms, members = _planted(sizes, num=6, seed=3)
    x = np.asarray(jax.random.normal(jax.random.key(4), (500, 6)))
    shared = np.asarray(jax.random.permutation(jax.random.key(5), 10), np.int32)
    reference = permutation.permute(model, base, [shared])  # e.g. HMC's first sample, in another basis
    result = compact.q_rebasin_two_stage(model, members, reference, method=method, x=x if method == "activation" else None)
    # The planted ensemble: the unpermuted noisy members' mean and sd, in the reference's basis.
    unpermuted = permutation.permute_many(model, members, [np.stack([np.asarray(permutation.inverse(p)) for p in perms[0]])])
    planted = compact.moments(model, unpermuted)
    np.testing.assert_allclose(_flat(result.q.mean), _flat(permutation.permute(model, planted.mean, [shared])), atol=1e-5)
    np.testing.assert_allclose(_flat(result.q.sd), _flat(permutation.permute(model, planted.sd, [shared])), atol=1e-5)
    # each member's permutation composes both stages
    np.testing.assert_allclose(_flat(compact.moments(model, members, perms=result.perms).mean), _flat(result.q.mean), atol=1e-5)
    assert result.reference is reference and result.not_to_reference.shape == (6,)


def test_align_gaussian_by_draws_recovers_the_permutation_of_a_wide_gaussian():
    """VI as the authors aligned it: activations averaged over draws from q, mean and sd permuted together."""
    sizes = [6, 12, 4]
    model = MLP(sizes)
    key = jax.random.key(6)
    mean = jax.tree_util.tree_map(lambda leaf: 3.0 * leaf, model.init(key))
    sd = jax.tree_util.tree_map(lambda leaf: 0.2 * jnp_abs(leaf) + 0.05, mean)
    planted = np.asarray(jax.random.permutation(jax.random.key(7), 12), np.int32)
    q = compact.Gaussian(*permutation.permute_gaussian(model, mean, sd, [planted]))
    x = np.asarray(jax.random.normal(jax.random.key(8), (500, 6)))
    aligned, perms = compact.align_gaussian(model, q, mean, method="activation", x=x, activation_draws=10, key=key)
    np.testing.assert_array_equal(perms[0], np.asarray(permutation.inverse(planted)))
    np.testing.assert_allclose(_flat(aligned.mean), _flat(mean), atol=1e-6)
    np.testing.assert_allclose(_flat(aligned.sd), _flat(sd), atol=1e-6)
    with pytest.raises(ValueError, match="activation_draws needs method='activation'"):
        compact.align_gaussian(model, q, mean, activation_draws=10)


def jnp_abs(leaf):
    return np.abs(np.asarray(leaf))


def test_low_rank_gaussian_reproduces_a_planted_ensembles_covariance():
    sizes = [6, 10, 4]
    model = MLP(sizes)
    _, perms, members = _planted(sizes, num=5, seed=4)
    aligned = compact.q_rebasin(model, members)
    low_rank = compact.low_rank_gaussian(model, members, aligned.perms)
    flat = np.asarray(compact.ravel_stack(model, members, aligned.perms), np.float64)
    centred = flat - flat.mean(axis=0)
    covariance = centred.T @ centred / (len(flat) - 1)
    np.testing.assert_allclose(low_rank.factor @ low_rank.factor.T, covariance, atol=1e-6)
    assert low_rank.factor.shape == (model.num_params, 5)
    np.testing.assert_allclose(_flat(low_rank.mean), _flat(aligned.q.mean), atol=1e-6)
    # its diagonal is q_r's variance; draws lie in the ensemble's span around the mean
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), _flat(aligned.q.sd), rtol=1e-4)
    draws = np.asarray(model.ravel(compact.sample_low_rank(model, jax.random.key(0), low_rank, 2000)), np.float64)
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.15 * np.abs(covariance).max())
    with pytest.raises(ValueError, match="at least 2 networks"):
        compact.low_rank_gaussian(model, jax.tree_util.tree_map(lambda leaf: leaf[:1], members))
