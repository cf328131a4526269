import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec.exceptions import TripletrecError
from tripletrec.training.sampling import ExcludePositivesSampler, UniformSampler, make_sampler


def _positives(n_users=50, n_items=20, density=0.3, seed=0):
    return sp.random(n_users, n_items, density, random_state=seed, format="csr", dtype=np.float32)


def test_uniform_sampler_is_uniform_over_items():
    sampler = UniformSampler(10)
    draws = sampler(np.zeros(200_000, dtype=np.int64), np.random.default_rng(0))
    counts = np.bincount(draws, minlength=10)
    assert draws.min() >= 0 and draws.max() < 10
    # each count ~ Binomial(200k, 0.1): std ~134, so 1,000 is > 7 std
    assert np.abs(counts - 20_000).max() < 1_000


def test_exclude_positives_sampler_never_returns_a_positive():
    positives = _positives()
    sampler = ExcludePositivesSampler(positives)
    users = np.repeat(np.arange(50), 200)
    negatives = sampler(users, np.random.default_rng(1))
    dense = positives.toarray() > 0
    assert not dense[users, negatives].any()


def test_exclude_positives_sampler_is_uniform_over_each_users_negatives():
    positives = sp.csr_matrix(np.array([[1, 1, 0, 0, 0]], dtype=np.float32))
    sampler = ExcludePositivesSampler(positives)
    draws = sampler(np.zeros(60_000, dtype=np.int64), np.random.default_rng(2))
    counts = np.bincount(draws, minlength=5)
    assert counts[:2].sum() == 0
    assert np.abs(counts[2:] - 20_000).max() < 800  # std ~115


def test_is_positive_lookup():
    positives = _positives(seed=3)
    sampler = ExcludePositivesSampler(positives)
    users, items = np.meshgrid(np.arange(50), np.arange(20), indexing="ij")
    found = sampler.is_positive(users.ravel(), items.ravel()).reshape(50, 20)
    np.testing.assert_array_equal(found, positives.toarray() > 0)


def test_samplers_are_deterministic_given_the_generator():
    sampler = ExcludePositivesSampler(_positives())
    users = np.arange(50).repeat(3)
    a = sampler(users, np.random.default_rng(7))
    b = sampler(users, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_make_sampler_rejects_unknown_names():
    with pytest.raises(TripletrecError, match="unknown negative sampler 'popular'"):
        make_sampler("popular", _positives())


def test_popularity_sampler_follows_count_to_the_alpha():
    positives = sp.csr_matrix(
        np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float32)
    )
    sampler = make_sampler("popularity", positives, alpha=1.0)
    # counts 3, 2, 1, 0 -> weights (count + 1) = 4, 3, 2, 1 -> probabilities /10
    np.testing.assert_allclose(sampler.probabilities, [0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(np.exp(sampler.log_q), sampler.probabilities)
    draws = sampler(np.zeros(100_000, dtype=np.int64), np.random.default_rng(0))
    frequencies = np.bincount(draws, minlength=4) / 100_000
    np.testing.assert_allclose(frequencies, [0.4, 0.3, 0.2, 0.1], atol=0.01)
    uniform = make_sampler("popularity", positives, alpha=0.0)
    np.testing.assert_allclose(uniform.probabilities, 0.25)


@pytest.mark.parametrize("name", ["uniform", "exclude_positives", "popularity"])
def test_samplers_draw_several_negatives_per_user(name):
    positives = _positives()
    sampler = make_sampler(name, positives)
    users = np.arange(50)
    negatives = sampler(users, np.random.default_rng(0), n_negatives=4)
    assert negatives.shape == (50, 4) and negatives.min() >= 0 and negatives.max() < 20
    if name == "exclude_positives":
        assert not (positives.toarray() > 0)[users[:, None], negatives].any()


def test_in_batch_negatives_are_corrected_by_item_popularity():
    positives = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=np.float32))
    sampler = make_sampler("in_batch", positives)
    # item counts 3, 2, 0 of 5 positives: log q = log 0.6, log 0.4, and 0 for the unseen item
    np.testing.assert_allclose(sampler.log_q, [np.log(0.6), np.log(0.4), 0.0])
    assert sampler(np.arange(3), np.random.default_rng(0)) is None
