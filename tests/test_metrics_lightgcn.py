"""LightGCN's Recall@k and NDCG@k are tripletrec's ``recall@k`` and ``ndcg@k``.

LightGCN's code (and NGCF's, UltraGCN's, SimpleX's, the BARS logs' on Gowalla) ranks every
item but the user's training items and computes Recall@k = hits in the top k / the user's
number of test items (not min(k, n)) and NDCG@k with binary gains, log2 discounts and the
ideal DCG over the first min(k, n) positions, averaged over the users with a test item.
Checked here against numbers worked out by hand and against a port of LightGCN's code.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec import IdMap, Interactions, evaluate
from tripletrec.evaluation.metrics import ndcg_at_k, ranking_metrics, recall_at_k

# Eight items, four users, k = 3. D[j] = 1 / log2(j + 2) is the discount of rank j + 1.
D = 1.0 / np.log2(np.arange(2, 10))
#   user 0: ranking 0 1 2 3 4 5 6 7, item 0 excluded -> 1 2 3 ...; relevant {2, 5, 6, 7}
#           (four, more than k). One hit, at rank 2.
#           recall = 1 / 4 (the min(k, n) variant would give 1 / 3);
#           ndcg = D[1] / (D[0] + D[1] + D[2]) (ideal DCG over min(3, 4) = 3 ranks).
#   user 1: ranking 7 6 5 4 ..., nothing excluded, relevant {7, 4}. One hit, at rank 1.
#           recall = 1 / 2; ndcg = D[0] / (D[0] + D[1]).
#   user 2: no test item: NaN, and left out of the averages.
#   user 3: item 0 scores highest but is excluded, so item 3 (relevant) is ranked first.
#           recall = 1; ndcg = 1.
SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2],
        [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        [0.9, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1],
    ],
    dtype=np.float32,
)
TEST = {0: [2, 5, 6, 7], 1: [7, 4], 3: [3]}
TRAIN = {0: [0], 2: [1], 3: [0]}
RECALL = np.array([1 / 4, 1 / 2, np.nan, 1.0])
NDCG = np.array([D[1] / (D[0] + D[1] + D[2]), D[0] / (D[0] + D[1]), np.nan, 1.0])


def csr(entries: dict[int, list[int]], shape: tuple[int, int] = SCORES.shape) -> sp.csr_matrix:
    rows = [u for u, items in entries.items() for _ in items]
    cols = [i for items in entries.values() for i in items]
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)


def test_hand_case_per_user() -> None:
    np.testing.assert_allclose(NDCG[:2], [0.2960819, 0.6131472], atol=1e-7)  # by hand
    values = ranking_metrics(SCORES, csr(TEST), csr(TRAIN), metrics=["recall@3", "ndcg@3"])
    np.testing.assert_allclose(values["recall@3"], RECALL)
    np.testing.assert_allclose(values["ndcg@3"], NDCG)
    np.testing.assert_allclose(recall_at_k(SCORES, csr(TEST), csr(TRAIN), k=3), RECALL)
    np.testing.assert_allclose(ndcg_at_k(SCORES, csr(TEST), csr(TRAIN), k=3), NDCG)


class FixedScores:
    """The little of a fitted model that :func:`evaluate` uses: maps and a score block."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.n_users_, self.n_items_ = scores.shape
        self.user_map_ = IdMap(np.arange(self.n_users_), "user")
        self.item_map_ = IdMap(np.arange(self.n_items_), "item")

    def score_indices(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        block = self.scores[np.asarray(users)]
        return block if items is None else block[:, items]


def interactions(entries: dict[int, list[int]], model: FixedScores) -> Interactions:
    users = np.array([u for u, items in entries.items() for _ in items], dtype=np.int64)
    items = np.array([i for row in entries.values() for i in row], dtype=np.int64)
    return Interactions(users, items, None, None, model.user_map_, model.item_map_)


def test_evaluate_averages_over_users_with_a_test_item() -> None:
    model = FixedScores(SCORES)
    result = evaluate(
        model, interactions(TRAIN, model), interactions(TEST, model), ["recall@3", "ndcg@3"]
    )
    assert result["n_users"] == 3  # user 2 has no test item
    assert result["recall@3"] == pytest.approx((1 / 4 + 1 / 2 + 1) / 3)  # 0.5833333
    assert result["ndcg@3"] == pytest.approx(0.6364097, abs=1e-7)
    assert result["ndcg@3"] == pytest.approx(np.nanmean(NDCG))


# A port of LightGCN's evaluation (gusye1234/LightGCN-PyTorch, code/utils.py getLabel,
# RecallPrecision_ATk and NDCGatK_r; code/Procedure.py Test: training items scored
# -(1 << 10), torch.topk, sums divided by the number of test users), kept close to the
# original so that a reader can compare them line by line.
def lightgcn_reference(
    scores: np.ndarray, test: list[list[int]], train: list[list[int]], k: int
) -> tuple[float, float]:
    rating = scores.astype(np.float64).copy()
    for user, items in enumerate(train):
        rating[user, items] = -(1 << 10)
    users = [u for u in range(len(test)) if test[u]]
    top = np.argsort(-rating[users], axis=1, kind="stable")[:, :k]
    r = np.array([[item in test[u] for item in top[row]] for row, u in enumerate(users)], float)
    right_pred = r[:, :k].sum(1)
    recall_n = np.array([len(test[u]) for u in users])
    recall = np.sum(right_pred / recall_n)
    test_matrix = np.zeros((len(users), k))
    for row, u in enumerate(users):
        length = k if k <= len(test[u]) else len(test[u])
        test_matrix[row, :length] = 1
    idcg = np.sum(test_matrix * 1.0 / np.log2(np.arange(2, k + 2)), axis=1)
    dcg = np.sum(r * (1.0 / np.log2(np.arange(2, k + 2))), axis=1)
    idcg[idcg == 0.0] = 1.0
    ndcg = dcg / idcg
    return recall / len(users), np.sum(ndcg) / len(users)


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_lightgcn_code(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 40
    # Distinct scores: LightGCN's torch.topk orders ties arbitrarily.
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(np.float64)
    train, test = [], []
    for user in range(n_users):
        items = rng.permutation(n_items)
        n_train, n_test = rng.integers(0, 10), rng.integers(0, 30) if user % 7 else 0
        train.append(sorted(items[:n_train].tolist()))  # train and test disjoint, as in
        test.append(sorted(items[n_train : n_train + n_test].tolist()))  # LightGCN's files
    expected = lightgcn_reference(scores, test, train, k)
    relevant = csr(dict(enumerate(test)), (n_users, n_items))
    exclude = csr(dict(enumerate(train)), (n_users, n_items))
    values = ranking_metrics(scores, relevant, exclude, metrics=[f"recall@{k}", f"ndcg@{k}"])
    got = (np.nanmean(values[f"recall@{k}"]), np.nanmean(values[f"ndcg@{k}"]))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
