"""Tests of tripletrec.evaluation.metrics: hand-computed cases, brute force and scikit-learn."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, ndcg_score, roc_auc_score

from tripletrec.evaluation import metrics
from tripletrec.evaluation.metrics import (
    auc_per_user,
    coverage_at_k,
    hit_rate_at_k,
    map_at_k,
    mean_popularity_at_k,
    metric_key,
    mrr,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    top_k,
)
from tripletrec.exceptions import DataError

NAN = np.nan
LOG2_3 = np.log2(3)  # 1.5849625; 1 / log2(3) = 0.6309298, the discount of rank 2


def csr(shape: tuple[int, int], entries: dict[int, list[int]]) -> sp.csr_matrix:
    """Boolean matrix with the given items set in the given rows."""
    rows = [r for r, items in entries.items() for _ in items]
    cols = [c for items in entries.values() for c in items]
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)


# --------------------------------------------------------------------------------------
# A small case computed by hand
# --------------------------------------------------------------------------------------
#
# Six items (0..5), five users:
#   user 0: scores .9 .8 .7 .6 .5 .4, item 1 excluded, relevant {1, 2, 5}; item 1 is both,
#           so it is excluded and the relevant items are {2, 5}. Ranking: 0 2 3 4 5.
#   user 1: scores .5 .5 .5 .1 .2 .3 (a three-way tie), nothing excluded, relevant {2, 3}.
#           Ranking (ties by lower index): 0 1 2 5 4 3.
#   user 2: no relevant item                            -> NaN everywhere.
#   user 3: relevant {0, 3}, both excluded               -> NaN everywhere.
#   user 4: scores .1 .2 .3 .4 .5 .6, relevant {2, 3, 4, 5}. Ranking: 5 4 3 2 1 0.

SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        [0.5, 0.5, 0.5, 0.1, 0.2, 0.3],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.3, 0.1, 0.2, 0.6, 0.5, 0.4],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    ]
)
RELEVANT = csr(SCORES.shape, {0: [1, 2, 5], 1: [2, 3], 3: [0, 3], 4: [2, 3, 4, 5]})
EXCLUDE = csr(SCORES.shape, {0: [1], 3: [0, 3]})


def test_top_k_hand_case() -> None:
    indices, values = top_k(SCORES, 3, EXCLUDE)
    np.testing.assert_array_equal(
        indices,
        [
            [0, 2, 3],
            [0, 1, 2],  # three equal scores: lower index first
            [5, 4, 3],
            [4, 5, 2],  # items 0 and 3 excluded
            [5, 4, 3],
        ],
    )
    np.testing.assert_array_equal(values, np.take_along_axis(SCORES, indices, axis=1))


def test_top_k_pads_when_k_exceeds_the_candidates() -> None:
    indices, values = top_k(SCORES, 8, EXCLUDE)
    # User 0 has 5 candidates, user 3 has 4, the others 6; k = 8 > 6 items.
    np.testing.assert_array_equal(indices[0], [0, 2, 3, 4, 5, -1, -1, -1])
    np.testing.assert_array_equal(indices[1], [0, 1, 2, 5, 4, 3, -1, -1])
    np.testing.assert_array_equal(indices[3], [4, 5, 2, 1, -1, -1, -1, -1])
    assert np.isneginf(values[indices == -1]).all()
    assert np.isfinite(values[indices >= 0]).all()
    assert indices.dtype == np.int64


def test_hand_case_at_3() -> None:
    got = ranking_metrics(SCORES, RELEVANT, EXCLUDE, k=3)
    assert list(got) == ["auc", "precision@3", "recall@3", "ndcg@3", "map@3", "mrr", "hit_rate@3"]
    idcg2 = 1 + 1 / LOG2_3  # ideal DCG of 2 hits = 1 + 0.6309 = 1.6309
    expected = {
        # user 0: positives 2 (.7) and 5 (.4), negatives 0 3 4 (.9 .6 .5):
        #   item 2 beats 3 and 4, item 5 beats none -> 2 / (2 * 3) = 1/3.
        # user 1: positives 2 (.5) and 3 (.1), negatives 0 1 4 5 (.5 .5 .2 .3):
        #   item 2 ties 0 and 1 (0.5 each) and beats 4, 5 -> 3; item 3 -> 0; 3 / 8.
        # user 4: every positive beats both negatives -> 1.
        "auc": [1 / 3, 3 / 8, NAN, NAN, 1.0],
        # hits in the top 3: user 0 [0 1 0], user 1 [0 0 1], user 4 [1 1 1].
        "precision@3": [1 / 3, 1 / 3, NAN, NAN, 3 / 3],
        "recall@3": [1 / 2, 1 / 2, NAN, NAN, 3 / 4],
        # user 0: DCG = 1/log2(3) = 0.6309, IDCG over min(3, 2) = 2 items -> 0.3869.
        # user 1: DCG = 1/log2(4) = 0.5 -> 0.5 / 1.6309 = 0.3066.
        # user 4: three hits out of three possible -> 1.
        "ndcg@3": [(1 / LOG2_3) / idcg2, 0.5 / idcg2, NAN, NAN, 1.0],
        # user 0: (1 / min(3, 2)) * P@2 = 1/2 * 1/2 = 0.25.
        # user 1: (1 / 2) * P@3 = 1/2 * 1/3 = 1/6.
        # user 4: (1 / 3) * (1/1 + 2/2 + 3/3) = 1.
        "map@3": [0.25, 1 / 6, NAN, NAN, 1.0],
        # first relevant item at rank 2, 3 and 1.
        "mrr": [1 / 2, 1 / 3, NAN, NAN, 1.0],
        "hit_rate@3": [1.0, 1.0, NAN, NAN, 1.0],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-12, err_msg=name)
    # The decimal values, for the reader: 0.38685 and 0.30657.
    np.testing.assert_allclose(got["ndcg@3"][:2], [0.386853, 0.306574], atol=1e-6)


def test_hand_case_k_larger_than_catalogue() -> None:
    got = ranking_metrics(SCORES, RELEVANT, EXCLUDE, k=10)
    idcg2 = 1 + 1 / LOG2_3  # 1.6309
    expected = {
        # user 0: ranking 0 2 3 4 5, hits at ranks 2 and 5; user 1: ranking 0 1 2 5 4 3,
        # hits at ranks 3 and 6; user 4: hits at ranks 1..4. Padding counts as misses.
        "precision@10": [2 / 10, 2 / 10, NAN, NAN, 4 / 10],
        "recall@10": [1.0, 1.0, NAN, NAN, 1.0],
        # user 0: (1/log2(3) + 1/log2(6)) / 1.6309 = (0.6309 + 0.3869) / 1.6309 = 0.6241.
        # user 1: (1/log2(4) + 1/log2(7)) / 1.6309 = (0.5 + 0.3562) / 1.6309 = 0.5250.
        "ndcg@10": [
            (1 / LOG2_3 + 1 / np.log2(6)) / idcg2,
            (1 / np.log2(4) + 1 / np.log2(7)) / idcg2,
            NAN,
            NAN,
            1.0,
        ],
        # user 0: (1 / min(10, 2)) * (1/2 + 2/5) = 0.45; user 1: (1/2) * (1/3 + 2/6) = 1/3.
        "map@10": [0.45, 1 / 3, NAN, NAN, 1.0],
        "hit_rate@10": [1.0, 1.0, NAN, NAN, 1.0],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(got["ndcg@10"][:2], [0.624051, 0.524981], atol=1e-6)


def test_single_metric_functions_match_hand_case() -> None:
    np.testing.assert_allclose(
        precision_at_k(SCORES, RELEVANT, EXCLUDE, k=3), [1 / 3, 1 / 3, NAN, NAN, 1]
    )
    np.testing.assert_allclose(
        recall_at_k(SCORES, RELEVANT, EXCLUDE, k=3), [0.5, 0.5, NAN, NAN, 0.75]
    )
    np.testing.assert_allclose(
        ndcg_at_k(SCORES, RELEVANT, EXCLUDE, k=1), [0, 0, NAN, NAN, 1]
    )  # top-1 items 0, 0, -, -, 5: only user 4's is relevant
    np.testing.assert_allclose(map_at_k(SCORES, RELEVANT, EXCLUDE, k=3), [0.25, 1 / 6, NAN, NAN, 1])
    np.testing.assert_allclose(hit_rate_at_k(SCORES, RELEVANT, EXCLUDE, k=2), [1, 0, NAN, NAN, 1])
    np.testing.assert_allclose(mrr(SCORES, RELEVANT, EXCLUDE), [1 / 2, 1 / 3, NAN, NAN, 1])
    np.testing.assert_allclose(auc_per_user(SCORES, RELEVANT, EXCLUDE), [1 / 3, 3 / 8, NAN, NAN, 1])


def test_recall_denominator_is_the_number_of_relevant_items() -> None:
    # 4 relevant items, k = 2, a perfect ranking: recall = 2 / 4, not 2 / min(2, 4) = 1;
    # precision@2 = 2 / 2 and NDCG / AP (normalised by min(k, n_rel)) are 1.
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.1]])
    relevant = csr(scores.shape, {0: [0, 1, 2, 3]})
    got = ranking_metrics(scores, relevant, k=2)
    assert got["recall@2"][0] == 0.5
    assert got["precision@2"][0] == got["ndcg@2"][0] == got["map@2"][0] == 1.0


# --------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------


def test_all_items_excluded_but_relevant() -> None:
    scores = np.array([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]])
    relevant = csr(scores.shape, {0: [0, 1, 2], 1: [1]})
    exclude = csr(scores.shape, {0: [0, 1, 2]})
    indices, values = top_k(scores, 2, exclude)
    np.testing.assert_array_equal(indices, [[-1, -1], [0, 1]])
    assert np.isneginf(values[0]).all()
    got = ranking_metrics(scores, relevant, exclude, k=2)
    for name, value in got.items():
        assert np.isnan(value[0]), name  # nothing left to rank, nothing relevant
    np.testing.assert_allclose(got["recall@2"][1], 1.0)  # user 1: item 1 at rank 2
    np.testing.assert_allclose(got["mrr"][1], 0.5)


def test_users_without_relevant_items_get_nan() -> None:
    scores = np.random.default_rng(0).random((4, 7))
    relevant = csr(scores.shape, {})
    got = ranking_metrics(scores, relevant, k=3)
    for name, value in got.items():
        assert np.isnan(value).all(), name


def test_auc_is_nan_without_negatives() -> None:
    scores = np.array([[0.1, 0.2, 0.3]])
    relevant = csr(scores.shape, {0: [0, 1]})
    exclude = csr(scores.shape, {0: [2]})
    assert np.isnan(auc_per_user(scores, relevant, exclude)[0])
    assert ranking_metrics(scores, relevant, exclude, metrics=["mrr"])["mrr"][0] == 1.0


def test_top_k_zero_and_empty_blocks() -> None:
    indices, values = top_k(SCORES, 0)
    assert indices.shape == values.shape == (5, 0)
    indices, values = top_k(np.zeros((0, 4)), 3)
    assert indices.shape == (0, 3)
    indices, _ = top_k(np.zeros((2, 0)), 2)
    np.testing.assert_array_equal(indices, [[-1, -1], [-1, -1]])


def test_top_k_breaks_ties_at_the_cut_off_by_index() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(top_k(scores, 2)[0], [[1, 2], [0, 1]])
    np.testing.assert_array_equal(top_k(scores, 5)[0], [[1, 2, 3, 5, 0], [0, 1, 2, 3, 4]])
    exclude = csr(scores.shape, {0: [2], 1: [0, 2]})
    np.testing.assert_array_equal(top_k(scores, 3, exclude)[0], [[1, 3, 5], [1, 3, 4]])


def test_top_k_keeps_float32() -> None:
    scores = SCORES.astype(np.float32)
    indices, values = top_k(scores, 2)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(indices, top_k(scores.astype(np.float64), 2)[0])


def test_input_validation() -> None:
    with pytest.raises(DataError):
        top_k(np.array([1.0, 2.0]), 1)
    with pytest.raises(DataError):
        top_k(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(DataError):
        ranking_metrics(SCORES, RELEVANT[:2], EXCLUDE)
    with pytest.raises(ValueError):
        top_k(SCORES, -1)
    with pytest.raises(ValueError):
        precision_at_k(SCORES, RELEVANT, k=0)
    with pytest.raises(ValueError):
        ranking_metrics(SCORES, RELEVANT, k=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ranking_metrics(SCORES, RELEVANT, metrics=[])
    with pytest.raises(DataError):
        ranking_metrics(SCORES, RELEVANT, metrics=["ndcg@5"], top_items=np.zeros((5, 3), int))


def test_callers_matrices_are_not_modified() -> None:
    relevant = sp.csr_matrix(
        (np.array([True, False, True]), np.array([0, 1, 2]), np.array([0, 3, 3])), shape=(2, 3)
    )
    before = (relevant.data.copy(), relevant.indices.copy(), relevant.indptr.copy())
    ranking_metrics(np.ones((2, 3)), relevant, relevant, k=2)
    for array, saved in zip(
        (relevant.data, relevant.indices, relevant.indptr), before, strict=True
    ):
        np.testing.assert_array_equal(array, saved)


# --------------------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ndcg@20", ("ndcg", 20)),
        ("NDCG@20", ("ndcg", 20)),
        (" recall @ 5 ", ("recall", 5)),
        ("precision", ("precision", 7)),
        ("hit_rate@1", ("hit_rate", 1)),
        ("map", ("map", 7)),
        ("auc", ("auc", None)),
        ("mrr", ("mrr", None)),
    ],
)
def test_parse_metric(name: str, expected: tuple[str, int | None]) -> None:
    assert parse_metric(name, default_k=7) == expected


@pytest.mark.parametrize("name", ["ndcg@0", "ndcg@-1", "ndcg@x", "ndcg@", "auc@10", "mrr@5", "f1"])
def test_parse_metric_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        parse_metric(name)


def test_metric_key() -> None:
    assert metric_key("ndcg", 20) == "ndcg@20"
    assert metric_key("mrr", None) == "mrr"


def test_ranking_metrics_mixed_cut_offs_select_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = metrics.top_k_masked

    def counting(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(k)
        return original(masked, k)

    monkeypatch.setattr(metrics, "top_k_masked", counting)
    names = ["ndcg@20", "precision@5", "recall", "ndcg", "ndcg@10", "mrr", "hit_rate@2"]
    got = ranking_metrics(SCORES, RELEVANT, EXCLUDE, k=10, metrics=names)
    assert calls == [20]
    # "ndcg" with k=10 and "ndcg@10" are the same metric.
    assert list(got) == ["ndcg@20", "precision@5", "recall@10", "ndcg@10", "mrr", "hit_rate@2"]
    np.testing.assert_array_equal(got["precision@5"], precision_at_k(SCORES, RELEVANT, EXCLUDE, 5))
    np.testing.assert_array_equal(got["ndcg@20"], ndcg_at_k(SCORES, RELEVANT, EXCLUDE, 20))


def test_ranking_metrics_reuses_given_top_items() -> None:
    scores, relevant, exclude = random_case(np.random.default_rng(3), 40, 30, ties=True)
    indices, _ = top_k(scores, 12, exclude)
    names = ["precision@5", "ndcg@12", "map@8", "mrr", "hit_rate@3", "auc"]
    given = ranking_metrics(scores, relevant, exclude, metrics=names, top_items=indices)
    fresh = ranking_metrics(scores, relevant, exclude, metrics=names)
    for name in names:
        np.testing.assert_array_equal(given[name], fresh[name], err_msg=name)


# --------------------------------------------------------------------------------------
# Brute-force references (a Python loop per user, fine for tests)
# --------------------------------------------------------------------------------------


def random_case(
    rng: np.random.Generator, n_users: int, n_items: int, *, ties: bool
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    if ties:
        scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float64)
    else:
        scores = rng.standard_normal((n_users, n_items))
    relevant = sp.csr_matrix(rng.random((n_users, n_items)) < rng.uniform(0, 0.3, (n_users, 1)))
    exclude = sp.csr_matrix(rng.random((n_users, n_items)) < rng.uniform(0, 0.6, (n_users, 1)))
    return scores, relevant, exclude


def reference_ranking(scores: np.ndarray, excluded: np.ndarray) -> list[int]:
    candidates = [i for i in range(len(scores)) if not excluded[i]]
    return sorted(candidates, key=lambda i: (-scores[i], i))


def reference_metrics(
    scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix, k: int
) -> dict[str, np.ndarray]:
    relevant_dense, exclude_dense = relevant.toarray(), exclude.toarray()
    out: dict[str, list[float]] = {
        name: [] for name in ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
    }
    for u in range(len(scores)):
        ranking = reference_ranking(scores[u], exclude_dense[u])
        wanted = {i for i in ranking if relevant_dense[u, i]}
        if not wanted:
            for values in out.values():
                values.append(np.nan)
            continue
        hits = [i in wanted for i in ranking[:k]]
        n_hits = sum(hits)
        out["precision"].append(n_hits / k)
        out["recall"].append(n_hits / len(wanted))
        out["hit_rate"].append(float(n_hits > 0))
        dcg = sum(1 / np.log2(j + 2) for j, hit in enumerate(hits) if hit)
        idcg = sum(1 / np.log2(j + 2) for j in range(min(k, len(wanted))))
        out["ndcg"].append(dcg / idcg)
        ap = sum(sum(hits[: j + 1]) / (j + 1) for j, hit in enumerate(hits) if hit)
        out["map"].append(ap / min(k, len(wanted)))
        first = next(j for j, i in enumerate(ranking) if i in wanted)
        out["mrr"].append(1 / (first + 1))
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("k", [1, 3, 10, 29, 30, 45])
def test_against_brute_force(ties: bool, k: int) -> None:
    rng = np.random.default_rng(k + 100 * ties)
    scores, relevant, exclude = random_case(rng, 60, 30, ties=ties)
    expected = reference_metrics(scores, relevant, exclude, k)
    got = ranking_metrics(scores, relevant, exclude, k=k)
    for name in ("precision", "recall", "ndcg", "map", "hit_rate"):
        np.testing.assert_allclose(got[f"{name}@{k}"], expected[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(got["mrr"], expected["mrr"], rtol=1e-12)
    np.testing.assert_allclose(mrr(scores, relevant, exclude), expected["mrr"], rtol=1e-12)

    indices, values = top_k(scores, k, exclude)
    exclude_dense = exclude.toarray()
    for u in range(len(scores)):
        ranking = reference_ranking(scores[u], exclude_dense[u])[:k]
        padded = ranking + [-1] * (k - len(ranking))
        np.testing.assert_array_equal(indices[u], padded)
        np.testing.assert_array_equal(values[u, : len(ranking)], scores[u, ranking])


def test_top_k_mixed_tie_rows_large() -> None:
    # Rows with and without a tie at the cut-off in the same block, several cut-offs.
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((200, 300))
    scores[::3] = np.round(scores[::3], 1)  # many ties in every third row
    exclude = sp.csr_matrix(rng.random(scores.shape) < 0.2)
    exclude_dense = exclude.toarray()
    for k in (1, 5, 50, 299):
        indices, _ = top_k(scores, k, exclude)
        for u in range(0, 200, 7):
            ranking = reference_ranking(scores[u], exclude_dense[u])[:k]
            np.testing.assert_array_equal(indices[u, : len(ranking)], ranking)


def test_chunks_give_the_same_values() -> None:
    scores, relevant, exclude = random_case(np.random.default_rng(11), 50, 25, ties=True)
    whole = ranking_metrics(scores, relevant, exclude, k=5)
    parts = [
        ranking_metrics(scores[a:b], relevant[a:b], exclude[a:b], k=5)
        for a, b in ((0, 17), (17, 18), (18, 50))
    ]
    for name, values in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), values)


def test_float32_scores_give_the_same_values() -> None:
    scores, relevant, exclude = random_case(np.random.default_rng(5), 40, 35, ties=False)
    scores32 = scores.astype(np.float32)
    got32 = ranking_metrics(scores32, relevant, exclude, k=7)
    got64 = ranking_metrics(scores32.astype(np.float64), relevant, exclude, k=7)
    for name in got64:
        np.testing.assert_array_equal(got32[name], got64[name], err_msg=name)


# --------------------------------------------------------------------------------------
# Agreement with scikit-learn
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 5, 20, 40])
def test_ndcg_matches_sklearn_without_ties(k: int) -> None:
    scores, relevant, exclude = random_case(np.random.default_rng(k), 80, 40, ties=False)
    got = ndcg_at_k(scores, relevant, exclude, k=k)
    relevant_dense, keep = relevant.toarray(), ~exclude.toarray()
    checked = 0
    for u in range(len(scores)):
        y_true = relevant_dense[u][keep[u]].astype(float)
        if y_true.sum() == 0:
            assert np.isnan(got[u])
            continue
        if y_true.size < 2:
            continue  # ndcg_score needs at least two items
        expected = ndcg_score([y_true], [scores[u][keep[u]]], k=k, ignore_ties=True)
        assert got[u] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked > 40


def test_untruncated_ap_matches_sklearn_average_precision() -> None:
    n_items = 35
    scores, relevant, exclude = random_case(np.random.default_rng(2), 80, n_items, ties=False)
    got = map_at_k(scores, relevant, exclude, k=n_items)
    relevant_dense, keep = relevant.toarray(), ~exclude.toarray()
    checked = 0
    for u in range(len(scores)):
        y_true = relevant_dense[u][keep[u]]
        if not y_true.any():
            assert np.isnan(got[u])
            continue
        expected = average_precision_score(y_true, scores[u][keep[u]])
        assert got[u] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties_and_exclusions(seed: int) -> None:
    # Integer-valued scores in 0..3 force many ties; exclusions are random.
    scores, relevant, exclude = random_case(np.random.default_rng(seed), 100, 25, ties=True)
    got = auc_per_user(scores, relevant, exclude)
    combined = ranking_metrics(scores, relevant, exclude, metrics=["auc"])["auc"]
    np.testing.assert_array_equal(got, combined)
    relevant_dense, keep = relevant.toarray(), ~exclude.toarray()
    checked = 0
    for u in range(len(scores)):
        y_true = relevant_dense[u][keep[u]]
        if y_true.all() or not y_true.any():
            assert np.isnan(got[u])
            continue
        expected = roc_auc_score(y_true, scores[u][keep[u]])
        assert got[u] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked > 50


# --------------------------------------------------------------------------------------
# Catalogue-level metrics
# --------------------------------------------------------------------------------------


def test_coverage_hand_case() -> None:
    # Items {0, 2, 3} and {0, 1, 2}: 4 distinct items of 6 -> 4/6; padding (-1) is ignored.
    top_items = np.array([[0, 2, 3], [0, 1, 2], [-1, -1, -1]])
    assert coverage_at_k(top_items, 6) == pytest.approx(4 / 6)
    assert coverage_at_k(top_k(SCORES, 3, EXCLUDE)[0], 6) == pytest.approx(1.0)  # all 6 items
    assert coverage_at_k(np.zeros((0, 3), dtype=int), 6) == 0.0
    with pytest.raises(DataError):
        coverage_at_k(np.array([[0, 6]]), 6)


def test_mean_popularity_hand_case() -> None:
    popularity = np.array([10, 5, 1, 0, 2, 8])
    top_items = np.array([[0, 2, 3], [5, 4, -1], [-1, -1, -1]])
    # (10 + 1 + 0) / 3 = 3.667; (8 + 2) / 2 = 5 (padding ignored); no item -> NaN.
    np.testing.assert_allclose(
        mean_popularity_at_k(top_items, popularity), [11 / 3, 5.0, NAN], rtol=1e-12
    )
    with pytest.raises(DataError):
        mean_popularity_at_k(np.array([[6]]), popularity)


# --------------------------------------------------------------------------------------
# scikit-learn is a test dependency only
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(Path(metrics.__file__).parent.glob("*.py")))
def test_metrics_module_does_not_import_sklearn(module: Path) -> None:
    # Every module of tripletrec.evaluation (metrics, topk, auc, names, ...).
    tree = ast.parse(module.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "sklearn" for name in imported)
