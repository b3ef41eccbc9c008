import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import stack_trees
from scipy.optimize import linear_sum_assignment

from compactbnn.models import CNN, MLP, PermutationSpec, ResNet
from compactbnn.symmetry import descent, rebasin
from compactbnn.symmetry import similarity as sim
from compactbnn import train
from compactbnn.symmetry.permutation import (
    compose,
    count_transpositions,
    count_transpositions_many,
    permutations_with_transpositions,
    permute,
    permute_many,
)


def random_mlp(seed, sizes):
    """A PyTorch-default random network of MLP(sizes)."""
    return MLP(sizes).init(jax.random.key(seed))


def _take(tree, i):
    return jax.tree_util.tree_map(lambda leaf: leaf[i], tree)


def _add_noise(params, seed, scale):
    # Gaussian noise of `scale` times each layer's weight spread: a perturbed copy, not an exact one.
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda leaf: leaf + scale * float(np.std(leaf)) * rng.standard_normal(np.shape(leaf)).astype(np.float32), params)


def _planted(model, params, levels, seed, noise=0.0):
    """Copies of `params` permuted with NoT levels[i] in every hidden layer (plus noise): stacked copies and the perms."""
    widths = model.perm_sizes
    m = len(levels)
    perms = [np.asarray(permutations_with_transpositions(jax.random.split(jax.random.key(seed + layer), m), n,
                                                         np.minimum(levels, n - 1)))
             for layer, n in enumerate(widths)]
    copies = [permute(model, params, [p[i] for p in perms]) for i in range(m)]
    if noise:
        copies = [_add_noise(c, seed + 100 + i, noise) for i, c in enumerate(copies)]
    return stack_trees(copies), perms


def _residual(planted, found):
    """NoT of (planted, then found) per copy and layer: 0 where the planted permutation is undone exactly."""
    return np.stack([np.asarray(count_transpositions_many(compose(p, f))) for p, f in zip(planted, found)], axis=-1)


@pytest.fixture(scope="module")
def trained(digits):
    """A briefly trained digits network 64-128-10 (and 64-64-48-10): activation matching needs real features."""
    config = train.TrainConfig(optimizer="adam", learning_rate=3e-3, batch_size=64, epochs=4)
    out = {}
    for sizes in ([64, 128, 10], [64, 64, 48, 10]):
        result = train.train(MLP(sizes), random_mlp(0, sizes), digits["x_train"], digits["y_train"],
                             jax.random.key(1), config, progress=False)
        out[len(sizes) - 2] = MLP(sizes), result.params
    return out


# --- weight matching ----------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[32, 128, 10], [32, 96, 64, 10]])
def test_weight_matching_recovers_planted_permutations(sizes):
    # Perturbed copies (noise 0.2 of each layer's weight spread); exact copies in test_rebasin_returns_the_aligned_network.
    noise = 0.2
    model = MLP(sizes)
    params = random_mlp(5, sizes)
    levels = np.array([1, 3, 17, 40, 63, 95, 127])  # across 1..n-1 (clipped to n - 1 per layer)
    copies, planted = _planted(model, params, levels, seed=11, noise=noise)
    for similarity in ("weight", "cosine_first_layer"):
        found = rebasin.align_many(model, params, copies, method=similarity, chunk_size=4)
        assert [f.shape for f in found] == [p.shape for p in planted]
        assert np.all(_residual(planted, found) == 0), similarity


def test_weight_matching_of_one_pair_equals_the_batched_call():
    sizes = [16, 40, 30, 10]
    model = MLP(sizes)
    params = random_mlp(0, sizes)
    others = [random_mlp(i, sizes) for i in (1, 2, 3)]
    key = jax.random.key(7)
    together = rebasin.align_many(model, params, stack_trees(others), method="weight", key=key, chunk_size=2)
    for i, other in enumerate(others):
        alone = rebasin.weight_matching(model, params, other, key=key)
        assert all(np.array_equal(a, t[i]) for a, t in zip(alone, together))
        assert all(a.dtype == np.int32 for a in alone)


def _layer_objective(model, params_ref, params, perms, layer):
    sim = np.asarray(rebasin.weight_similarity(model, params_ref, params, perms, layer), np.float64)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return sim[np.arange(len(perms[layer])), perms[layer]].sum(), sim[rows, cols].sum()


def test_coordinate_descent_stops_at_a_fixed_point_for_unrelated_networks():
    # Two independent networks: no planted answer, so the descent needs several sweeps; at its end
    # no single layer's LAP can improve the objective any more.
    sizes = [16, 48, 40, 32, 10]
    model = MLP(sizes)
    ref, other = random_mlp(0, sizes), random_mlp(1, sizes)
    perms = rebasin.weight_matching(model, ref, other, key=jax.random.key(3))
    assert sum(count_transpositions(p) for p in perms) > 0
    for layer in range(3):
        current, best = _layer_objective(model, ref, other, perms, layer)
        assert current >= best - 1e-6 * abs(best)
    # And the alignment brought the weights closer than the identity did.
    sq = lambda a, b: float(jnp.sum((model.ravel(a) - model.ravel(b)) ** 2))  # noqa: E731
    assert sq(ref, permute(model, other, perms)) < sq(ref, other)


def test_one_hidden_layer_needs_exactly_one_lap_per_network(monkeypatch):
    calls = []
    real = rebasin.linear_sum_assignment

    def counting(cost, maximize=False):
        calls.append(cost.shape)
        return real(cost, maximize=maximize)

    monkeypatch.setattr(rebasin, "linear_sum_assignment", counting)
    sizes = [16, 32, 10]
    model = MLP(sizes)
    ref = random_mlp(0, sizes)
    others = stack_trees([random_mlp(i, sizes) for i in range(1, 6)])
    rebasin.align_many(model, ref, others, method="weight", workers=1)
    assert calls == [(32, 32)] * 5
    calls.clear()
    rebasin.weight_matching(model, ref, _take(others, 0), max_sweeps=50)
    assert len(calls) == 1
    calls.clear()
    deeper = [16, 32, 24, 10]
    rebasin.weight_matching(MLP(deeper), random_mlp(0, deeper), random_mlp(1, deeper))
    # at least two sweeps over two layers: the last one confirms nothing improves (its LAPs skipped
    # where neither neighbour moved since: the same matrix, the same answer)
    assert len(calls) >= 4


def test_match_pairs_aligns_each_network_to_its_own_reference():
    sizes = [16, 32, 10]
    model = MLP(sizes)
    refs = [random_mlp(i, sizes) for i in range(4)]
    levels = [1, 5, 20, 31]
    copies, planted = [], []
    for i, ref in enumerate(refs):
        c, p = _planted(model, ref, [levels[i]], seed=20 + i, noise=0.1)
        copies.append(_take(c, 0))
        planted.append(p[0][0])
    found = rebasin.match_pairs(model, stack_trees(refs), stack_trees(copies), method="weight", chunk_size=3)
    assert np.all(_residual([np.stack(planted)], found) == 0)
    # Aligning all of them to the first reference instead does not recover the others' perms.
    to_first = rebasin.align_many(model, refs[0], stack_trees(copies), method="weight")
    assert np.any(_residual([np.stack(planted)], to_first)[1:] > 0)


def test_rebasin_returns_the_aligned_network():
    model = MLP((16, 32, 24, 10))
    params = random_mlp(0, model.layer_sizes)
    copies, planted = _planted(model, params, [9], seed=3)
    aligned, perms = rebasin.rebasin(model, params, _take(copies, 0), method="weight")
    for a, b in zip(jax.tree_util.tree_leaves(aligned), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert [count_transpositions(p) for p in perms] == [9, 9]


def plain_weight_matching(model, ref, other, key, max_sweeps=rebasin.DEFAULT_MAX_SWEEPS):
    """Git Re-Basin's coordinate descent as written there: every similarity computed afresh, every LAP solved."""
    perms = [np.arange(n) for n in model.perm_sizes]
    for sweep in range(max_sweeps):
        progress = False
        for p in np.asarray(jax.random.permutation(jax.random.fold_in(key, sweep), len(perms))):
            cost = np.asarray(rebasin.weight_similarity(model, ref, other, perms, int(p)), np.float64)
            cols = linear_sum_assignment(cost, maximize=True)[1]
            rows = np.arange(len(cols))
            new, old = cost[rows, cols].sum(), cost[rows, perms[p]].sum()
            if new - old > rebasin.RELATIVE_TOLERANCE * max(1.0, abs(old)):
                perms[p], progress = cols, True
        if not progress:
            break
    return perms


@pytest.mark.parametrize("model", [MLP((16, 24, 20, 12, 10)), CNN((1, 8, 8), (4, 6), (5,), 10), ResNet((1, 8, 8), 5, 2, 10)],
                         ids=["mlp", "cnn", "resnet"])
def test_weight_matching_equals_a_plain_coordinate_descent(model):
    # The descent keeps its similarity matrices up to date and skips LAPs whose matrix did not
    # change (``descent``); it must find what recomputing and solving everything finds.
    nets = model.init_many(jax.random.key(3), 5)
    ref, others = _take(nets, 0), jax.tree_util.tree_map(lambda leaf: leaf[1:], nets)
    key = jax.random.key(5)
    together = rebasin.align_many(model, ref, others, method="weight", key=key, chunk_size=3)
    for i in range(4):
        plain = plain_weight_matching(model, ref, _take(others, i), key)
        assert all(np.array_equal(a[i], b) for a, b in zip(together, plain)), i


def test_descent_keeps_its_similarities_equal_to_fresh_ones_as_permutations_move():
    # A made-up spec with what the built-in models do not all have: a block size, and a parameter
    # under three permutations (its terms are recomputed, the others updated by differences).
    spec = PermutationSpec((((0, "w", 0), (0, "b", 0), (1, "w", 1, 3), (2, "t", 2)),
                            ((1, "w", 0), (2, "t", 0)),
                            ((2, "t", 1), (3, "v", 1))))
    sizes = (5, 6, 4)
    shapes = [{"w": (5, 7), "b": (5,)}, {"w": (6, 15)}, {"t": (6, 4, 5)}, {"v": (3, 4)}]
    rng = np.random.default_rng(0)
    draw = lambda lead: [{k: rng.standard_normal(lead + s).astype(np.float32) for k, s in layer.items()}  # noqa: E731
                         for layer in shapes]
    count = 6
    params = draw((count,))
    for ref_stacked in (False, True):
        ref = draw((count,) if ref_stacked else ())
        chunk = descent.ChunkDescent(spec, sizes, descent.arrange_terms(spec, ref, int(ref_stacked)), params,
                                     ref_stacked=ref_stacked)
        everyone = np.arange(count)
        for step in range(40):
            p = step % 3 if step < 3 else int(rng.integers(3))
            rows, costs = chunk.matrices(p, everyone)
            for row, cost in zip(rows, costs):
                one = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[row], tree)  # noqa: E731
                fresh = sim.layer_similarity(one(ref) if ref_stacked else ref, one(params),
                                             [jnp.asarray(q[row]) for q in chunk.perms], spec=spec, perm=p,
                                             similarity="weight")
                np.testing.assert_allclose(cost, fresh, rtol=1e-5, atol=1e-5 * float(np.abs(fresh).max()))
            # move permutation p of some networks: a transposition or two, or a new permutation
            moving = rng.random(len(rows)) < 0.7
            found = chunk.perms[p][rows].copy()
            for i in np.flatnonzero(moving):
                if rng.random() < 0.5:
                    found[i] = rng.permutation(sizes[p])
                else:
                    a, b = rng.choice(sizes[p], 2, replace=False)
                    found[i, [a, b]] = found[i, [b, a]]
            chunk.accept(p, rows, found, moving)
            assert len(chunk.matrices(p, everyone)[0]) == 0  # nothing moved since: no LAP to solve


# --- activation matching --------------------------------------------------------------------------

def _alive(model, params, x):
    return [np.asarray(a).max(axis=0) > 0 for a in model.hidden_activations(params, x)]


@pytest.mark.parametrize("depth", [1, 2])
def test_activation_matching_recovers_planted_permutations_of_a_trained_network(trained, digits, depth):
    (model, params), x = trained[depth], digits["x_train"]
    levels = np.array([1, 10, 33, 63]) if depth == 2 else np.array([1, 10, 64, 127])
    copies, planted = _planted(model, params, levels, seed=4)
    # batch_size 500 does not divide the 1,438 images: the padded last batch must be masked.
    found = rebasin.align_many(model, params, copies, method="activation", x=x, batch_size=500, chunk_size=3)
    alive = _alive(model, params, x)
    for layer, (p, f) in enumerate(zip(planted, found)):
        undone = np.asarray(compose(p, f))  # identity wherever the planted permutation was undone
        fixed = undone == np.arange(p.shape[1])
        assert np.all(fixed[:, alive[layer]]), f"layer {layer}: active units matched wrongly"
    # match_pairs, each copy against its own reference (here the same network), recovers them too.
    pairs = rebasin.match_pairs(model, stack_trees([params] * len(levels)), copies, method="activation", x=x, batch_size=700)
    for layer, (p, f) in enumerate(zip(planted, pairs)):
        fixed = np.asarray(compose(p, f)) == np.arange(p.shape[1])
        assert np.all(fixed[:, alive[layer]])


def test_single_activation_matching_equals_batched(trained, digits):
    (model, params), x = trained[1], digits["x_train"]
    copies, planted = _planted(model, params, [50], seed=8, noise=0.3)
    one = rebasin.activation_matching(model, params, _take(copies, 0), x, batch_size=300)
    many = rebasin.align_many(model, params, copies, method="activation", x=x, batch_size=300)
    assert np.array_equal(one[0], many[0][0])
    _, via_rebasin = rebasin.rebasin(model, params, _take(copies, 0), method="activation", x=x, batch_size=300)
    assert np.array_equal(via_rebasin[0], one[0])


def test_streamed_similarity_equals_full_product(trained, digits):
    (model, params), x = trained[2], digits["x_train"][:1000]
    other = _add_noise(params, 0, 0.5)
    streamed = rebasin.activation_similarity(model, params, other, x, batch_size=128)
    full = [np.asarray(a, np.float64).T @ np.asarray(b, np.float64)
            for a, b in zip(model.hidden_activations(params, x), model.hidden_activations(other, x))]
    for s, f in zip(streamed, full):
        np.testing.assert_allclose(s, f, rtol=1e-4, atol=1e-3)


# --- alignment to the mean ----------------------------------------------------------------------

def test_align_to_mean_puts_every_network_in_one_basis():
    model = MLP((16, 40, 10))
    base = random_mlp(0, model.layer_sizes)
    copies, planted = _planted(model, base, [5, 12, 20, 39, 30, 8], seed=30, noise=0.3)
    mean, perms = rebasin.align_to_mean(model, copies, method="weight", max_rounds=5)
    undone = np.asarray(compose(planted[0], perms[0]))
    assert np.all(undone == undone[0])  # every copy mapped to the same basis (the first copy's)
    target = permute(model, base, [undone[0]])
    # The mean of 6 noisy aligned copies is closer to the common network than one copy is.
    sq = lambda a, b: float(jnp.sum((model.ravel(a) - model.ravel(b)) ** 2))  # noqa: E731
    assert sq(mean, target) < 0.5 * sq(_take(permute_many(model, copies, perms), 0), target)
    # An explicit reference sets the basis.
    mean_ref, perms_ref = rebasin.align_to_mean(model, copies, method="weight", reference=base)
    assert np.all(np.asarray(compose(planted[0], perms_ref[0])) == np.arange(40))
    assert sq(mean_ref, base) < 0.5 * sq(_take(copies, 0), permute(model, base, [planted[0][0]]))


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_rejected(digits):
    model = MLP((64, 32, 10))
    ref = random_mlp(0, [64, 32, 10])
    other = random_mlp(1, [64, 32, 10])
    with pytest.raises(ValueError, match=r"params has layer sizes \[64, 32, 32, 10\], the model \[64, 32, 10\]"):
        rebasin.weight_matching(model, ref, random_mlp(1, [64, 32, 32, 10]))
    with pytest.raises(ValueError, match=r"params has layer sizes \[64, 33, 10\], the model \[64, 32, 10\]"):
        rebasin.weight_matching(model, ref, random_mlp(1, [64, 33, 10]))
    with pytest.raises(ValueError, match="method must be one of"):
        rebasin.rebasin(model, ref, other, method="procrustes")
    with pytest.raises(ValueError, match="similarity must be one of"):
        rebasin.weight_matching(model, ref, other, similarity="activation")
    with pytest.raises(ValueError, match="needs inputs x"):
        rebasin.rebasin(model, ref, other, method="activation")
    with pytest.raises(ValueError, match="x has 63 features"):
        rebasin.activation_matching(model, ref, other, digits["x_train"][:, :63])
    with pytest.raises(ValueError, match="nothing to permute"):
        rebasin.weight_matching(MLP((64, 10)), random_mlp(0, [64, 10]), random_mlp(1, [64, 10]))
    with pytest.raises(ValueError, match="holds 2 networks but params_stacked holds 3"):
        rebasin.match_pairs(model, stack_trees([ref, other]), stack_trees([ref, other, ref]))
    with pytest.raises(ValueError, match="leading model axes"):
        rebasin.align_many(model, ref, other)  # an unstacked network where a stack is expected
    with pytest.raises(TypeError, match="dict with keys"):
        rebasin.weight_matching(model, ref, [{"w": 1}])
