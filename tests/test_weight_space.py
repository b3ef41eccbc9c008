"""The weight-space comparison across inference methods (Figure 4) on planted data."""

import jax
import numpy as np
import pytest

from compactbnn.evaluation import weight_space
from compactbnn.models import MLP
from compactbnn.symmetry import compact, permutation

MODEL = MLP((8, 16, 3))


def _method(base_mean, base_sd, key, noise=0.05, permute=True):
    """A "method": the planted Gaussian with small noise on mu and sigma, its hidden units permuted (before rebasin)."""
    k1, k2, k3 = jax.random.split(key, 3)
    flat_mean, flat_sd = MODEL.ravel(base_mean), MODEL.ravel(base_sd)
    mean = MODEL.unravel(flat_mean + noise * jax.random.normal(k1, flat_mean.shape))
    sd = MODEL.unravel(flat_sd * jnp_exp(noise * jax.random.normal(k2, flat_sd.shape)))
    width = MODEL.perm_sizes[0]
    perm = np.asarray(jax.random.permutation(k3, width), np.int32) if permute else np.arange(width, dtype=np.int32)
    return compact.Gaussian(mean, sd), compact.Gaussian(*permutation.permute_gaussian(MODEL, mean, sd, [perm]))


def jnp_exp(x):
    return np.exp(np.asarray(x))


@pytest.fixture(scope="module")
def planted():
    key = jax.random.key(0)
    base_mean = jax.tree_util.tree_map(lambda leaf: 4.0 * leaf, MODEL.init(key))
    base_sd = MODEL.unravel(np.asarray(jax.random.uniform(jax.random.key(1), (MODEL.num_params,), minval=0.1, maxval=1.0)))
    after, before = {}, {}
    for i, method in enumerate(weight_space.METHODS):
        aligned, permuted = _method(base_mean, base_sd, jax.random.fold_in(key, 10 + i))
        after[method], before[method] = aligned, permuted
    values = weight_space.weight_space_values(MODEL, before, after)
    return values, weight_space.weight_space_correlations(values)


def test_values_table(planted):
    values, _ = planted
    assert list(values.columns) == ["alignment", "parameter", "mu_hmc", "sigma_hmc", "mu_ensemble", "sigma_ensemble",
                                    "mu_vi", "sigma_vi"]
    assert len(values) == 2 * MODEL.num_params
    assert weight_space.methods_of(values) == list(weight_space.METHODS)


def test_correlations_near_one_after_alignment_and_near_zero_before(planted):
    _, table = planted
    assert len(table) == 2 * 3 * 2  # quantities x method pairs x alignments
    after = table[table["alignment"] == "after"]
    before = table[table["alignment"] == "before"]
    assert (after["pearson"] > 0.9).all() and (after["spearman"] > 0.9).all()
    assert (after["top10_overlap"] >= 0.5).all()
    # before rebasin the hidden units of each method are shuffled: the weights touching them are unrelated
    # (every parameter but the 3 output biases touches a hidden unit)
    assert (before["pearson"].abs() < 0.4).all()
    assert (before["top10_overlap"] < 0.4).all()


def test_top_overlap():
    a = np.arange(100.0)
    assert weight_space.top_overlap(a, a) == 1.0
    assert weight_space.top_overlap(a, -a) == 0.0
    assert weight_space.top_overlap(np.zeros(100), np.zeros(100)) == 1.0  # stable ties: the same first positions
    rng = np.random.default_rng(0)
    assert abs(weight_space.top_overlap(rng.normal(size=20000), rng.normal(size=20000)) - 0.1) < 0.02
    with pytest.raises(ValueError):
        weight_space.top_overlap(a, a[:10])


def test_constant_sigma_gives_nan_not_an_error(planted):
    values, _ = planted
    flat = values.copy()
    flat["sigma_ensemble"] = 0.0
    table = weight_space.weight_space_correlations(flat)
    sigma_pairs = table[(table["quantity"] == "sigma") & ((table["method_a"] == "ensemble") | (table["method_b"] == "ensemble"))]
    assert sigma_pairs["pearson"].isna().all()
