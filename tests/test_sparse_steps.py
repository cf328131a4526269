"""Row-sparse training steps in one process: ``TripletRecommender(gradients=...)``."""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import tripletrec as tr
from tripletrec.data.features import matrix_history_features
from tripletrec.models.embeddings import FeatureEmbedding
from tripletrec.models.fm import FactorizationMachineScorer
from tripletrec.models.scorers import BilinearScorer
from tripletrec.models.triplet.settings import resolve_gradients
from tripletrec.training.losses import resolve_loss
from tripletrec.training.sparse import RowSparseAdam, sparse_embeddings

#: A short in-batch fit of the history-aware factor model (the blend's, past the full
#: softmax's budget), on anime-tv.
IN_BATCH = dict(
    negatives="in_batch", batch_by="positive", feature_weight=1.0, epochs=3, batch_size=1024,
    random_state=0, n_threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def split(anime_tv):
    train, test = tr.random_split(anime_tv, test_size=0.2, random_state=42)
    return train.positives(7), test.positives(7)


def test_auto_is_sparse_exactly_with_in_batch_negatives():
    assert resolve_gradients("auto", "in_batch") == "sparse"
    for negatives in ("all", "uniform", "popularity"):
        assert resolve_gradients("auto", negatives) == "dense"
    assert resolve_gradients("dense", "in_batch") == "dense"
    assert resolve_gradients("sparse", "all") == "sparse"


def test_a_bad_gradients_setting_is_refused_before_any_work(split):
    train, _ = split
    with pytest.raises(tr.ParameterError, match="gradients"):
        tr.TripletRecommender(gradients="lazy").fit(train)


def test_the_max_norm_bounds_the_updated_rows_as_renorm_does():
    generator = torch.Generator().manual_seed(0)
    table = torch.nn.Parameter(3.0 * torch.randn(20, 4, generator=generator))
    before = table.detach().clone()
    optimizer = RowSparseAdam([table], lr=0.01, max_norm=1.0)
    rows = torch.tensor([2, 5, 5, 11])
    table.grad = torch.sparse_coo_tensor(
        rows[None], torch.randn(4, 4, generator=generator), (20, 4), check_invariants=True
    )
    optimizer.step()
    touched = torch.tensor([2, 5, 11])
    untouched = torch.tensor([r for r in range(20) if r not in (2, 5, 11)])
    assert torch.equal(table.detach()[untouched], before[untouched])  # not even bounded
    assert (table.detach()[touched].norm(dim=1) <= 1.0 + 1e-6).all()
    # The bound is renorm_'s on the updated rows: the update, then the same rescaling.
    plain = torch.nn.Parameter(before.clone())
    plain.grad = table.grad
    RowSparseAdam([plain], lr=0.01).step()
    expected = plain.detach()[touched].renorm(2, 0, 1.0)
    torch.testing.assert_close(table.detach()[touched], expected)


def test_feature_tables_can_have_sparse_gradients():
    generator = torch.Generator().manual_seed(0)
    features = sp.random(5, 7, density=0.4, format="csr", random_state=0, dtype=np.float32)
    scorer = BilinearScorer(5, 4, 3, "dot", True, 0.05, generator, user_features=features)
    in_batch = resolve_loss("softmax", 1.0, "in_batch")
    assert isinstance(scorer.user_embedding, FeatureEmbedding)
    assert sparse_embeddings(scorer, in_batch) == [
        scorer.user_embedding.table, scorer.item_embedding, scorer.item_bias,
    ]  # fmt: skip


def test_a_sparse_feature_table_gets_one_summed_row_per_feature_read():
    generator = torch.Generator().manual_seed(0)
    features = sp.random(8, 30, density=0.3, format="csr", random_state=2, dtype=np.float32)
    embedding = FeatureEmbedding(features, 4, 0.1, generator)
    users = torch.tensor([3, 5, 3, 7, 0, 6])  # a user twice: its rows are added twice
    weights = torch.randn(len(users), 4, generator=generator)
    (embedding(users) * weights).sum().backward()
    dense = embedding.table.weight.grad
    embedding.table.weight.grad = None
    embedding.table.sparse = True
    (embedding(users) * weights).sum().backward()
    sparse = embedding.table.weight.grad
    rows = sparse._indices()[0]
    assert sparse.is_sparse and bool((rows[1:] > rows[:-1]).all())  # distinct, increasing
    read = np.unique(features[users.numpy()].indices)
    np.testing.assert_array_equal(rows.numpy(), read)
    torch.testing.assert_close(sparse.to_dense(), dense)


def test_row_sparse_adam_sums_repeated_rows_and_takes_distinct_ones_as_they_are():
    def step(indices, values):
        table = torch.nn.Parameter(torch.zeros(6, 2))
        table.grad = torch.sparse_coo_tensor(
            torch.tensor([indices]), torch.tensor(values), (6, 2), check_invariants=False
        )
        RowSparseAdam([table], lr=0.1).step()
        return table.detach()

    repeated = step([4, 1, 4], [[1.0, -2.0], [3.0, 1.0], [-0.5, 4.0]])
    distinct = step([1, 4], [[3.0, 1.0], [0.5, 2.0]])  # increasing: taken as they are
    torch.testing.assert_close(repeated, distinct)
    assert torch.equal(distinct[[0, 2, 3, 5]], torch.zeros(4, 2))
    assert (distinct[[1, 4]] != 0).all()


def test_a_factorization_machine_scores_the_same_with_sparse_feature_gradients():
    generator = torch.Generator().manual_seed(0)
    features = sp.random(6, 9, density=0.5, format="csr", random_state=1, dtype=np.float32)
    scorer = FactorizationMachineScorer(6, 4, 3, 0.1, generator, user_features=features)
    users, items = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 0])
    dense = scorer(users, items)
    table = scorer.user_embedding.table
    table.sparse = True
    sparse = scorer(users, items)
    torch.testing.assert_close(sparse, dense)
    sparse.sum().backward()
    assert table.weight.grad.is_sparse  # the pairwise term reads rows only


def _history_fit(train, **settings):
    seen = train.to_csr()
    features = matrix_history_features(seen, np.arange(seen.shape[0]))
    return tr.TripletRecommender(**{**IN_BATCH, **settings}).fit(seen, user_features=features)


@pytest.mark.slow  # three short fits on anime-tv
def test_sparse_steps_train_as_well_as_dense_ones_and_leave_dense_tables(split):
    train, test = split
    auto = _history_fit(train)
    dense = _history_fit(train, gradients="dense")
    # Every table is back to dense gradients for serving and later fits.
    assert not any(m.sparse for m in auto.module_.modules() if isinstance(m, torch.nn.Embedding))
    seen, held_out = train.to_csr(), test.to_csr()
    scores = {
        name: tr.evaluate(model, seen, held_out, ["auc", "ndcg@10"])
        for name, model in (("sparse", auto), ("dense", dense))
    }
    for metric in ("auc", "ndcg@10"):
        assert scores["sparse"][metric] >= scores["dense"][metric] - 0.01, scores
    assert scores["sparse"]["auc"] > 0.8
    again = _history_fit(train)
    np.testing.assert_array_equal(
        again.score_indices(np.arange(5)), auto.score_indices(np.arange(5))
    )


def test_the_training_command_reuses_freed_memory():
    # In a child process: the allocator setting is process-wide.
    code = "from tripletrec._system import reuse_freed_memory; print(reuse_freed_memory())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert result.returncode == 0 and result.stdout.strip() == str(glibc)
