"""Exact chunked top-k, the approximate index, and recommend --all."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.cli import main
from tripletrec.evaluation.topk import top_k
from tripletrec.exceptions import ModelFileError, TripletrecError
from tripletrec.serving.retrieval import (
    INDEX_DIR,
    ANNIndex,
    IndexSettings,
    exact_top_k,
    has_index,
    model_vectors,
)

pytest.importorskip("faiss")


def test_exact_chunked_top_k_equals_one_block_with_ties_and_exclusions():
    rng = np.random.default_rng(0)
    queries = rng.integers(-2, 3, (30, 4)).astype(np.float32)  # many ties
    items = rng.integers(-2, 3, (1000, 4)).astype(np.float32)
    exclude = sp.random(30, 1000, density=0.05, random_state=0, format="csr")
    expected = top_k(queries @ items.T, 12, exclude=exclude)
    got = exact_top_k(queries, items, 12, exclude=exclude, item_chunk=97)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_exact_top_k_pads_when_k_exceeds_the_catalogue():
    idx, scores = exact_top_k(np.ones((2, 3)), np.eye(3), 5, item_chunk=2)
    assert (idx[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


@pytest.mark.parametrize("kind", ["cosine", "dot-bias"])
def test_ann_recall_against_exact_on_clustered_vectors(kind):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, 16)).astype(np.float32)
    items = centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.standard_normal((20_000, 16))
    items = items.astype(np.float32)
    queries = items[rng.integers(0, 20_000, 100)] + 0.1 * rng.standard_normal((100, 16))
    if kind == "cosine":
        items /= np.linalg.norm(items, axis=1, keepdims=True)
    else:  # varying norms plus a bias column: the MIPS transformation matters
        items *= rng.uniform(0.2, 3.0, (len(items), 1)).astype(np.float32)
        items = np.hstack([items, rng.normal(0, 0.5, (len(items), 1)).astype(np.float32)])
        queries = np.hstack([queries, np.ones((100, 1))])
    queries = queries.astype(np.float32)
    exact = exact_top_k(queries, items, 10)[0]
    index = ANNIndex.build(items, IndexSettings(n_lists=64, nprobe=16))
    approx, scores = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95
    # Returned scores are exact inner products, best first.
    np.testing.assert_allclose(
        scores, np.einsum("qd,qkd->qk", queries, items[approx]), rtol=1e-5, atol=1e-5
    )
    assert (np.diff(scores, axis=1) <= 0).all()


@pytest.fixture(scope="module")
def saved_models(anime_tv, tmp_path_factory):
    data = anime_tv.positives(7)
    root = tmp_path_factory.mktemp("retrieval")
    bilinear = tr.TripletRecommender(
        similarity="dot", item_bias=True, epochs=2, random_state=0
    ).fit(data)
    deep = tr.TripletRecommender.from_preset("deep", epochs=1, random_state=0).fit(data)
    return bilinear.save(root / "bilinear"), deep.save(root / "deep"), bilinear


def test_model_vectors_reproduce_the_model_scores(saved_models):
    _, _, model = saved_models
    users, items = model_vectors(model)
    np.testing.assert_allclose(users[:20] @ items.T, model.score_indices(np.arange(20)), atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        dict(model="fm"),  # item terms include the within-item pairs
        dict(similarity="cosine", learn_temperature=True, ranking_bias_scale=0.5),
    ],
)
def test_model_vectors_rank_as_the_model_does(anime_tv, settings):
    model = tr.TripletRecommender(**settings, epochs=1, random_state=0).fit(anime_tv.positives(7))
    users, items = model_vectors(model)
    scores = model.score_indices(np.arange(20))
    # Equal up to a per-user constant (the FM's user-only terms), which no ranking sees.
    vector_scores = users[:20] @ items.T
    np.testing.assert_allclose(
        vector_scores - vector_scores[:, :1], scores - scores[:, :1], atol=1e-4
    )


def test_index_command_builds_an_index_that_matches_exact_search(saved_models, capsys):
    path, _, model = saved_models
    assert main(["index", str(path), "--n-lists", "8", "--nprobe", "8"]) == 0
    assert has_index(path) and "indexed 293 items" in capsys.readouterr().out
    users, items = model_vectors(model)
    weights = tr.persistence.read_manifest(path)["weights_sha256"]
    index = ANNIndex.load(path, items, weights)
    seen = model.seen_[:50]
    approx = index.search(users[:50], 10, exclude=seen)[0]  # every list probed: exact
    expected = model.recommend(model.user_map_.ids[:50], k=10)[0]
    np.testing.assert_array_equal(model.item_map_.ids[approx], expected)
    with pytest.raises(ModelFileError, match="other model weights"):
        ANNIndex.load(path, items, "0" * 64)


def test_index_of_a_deep_model_is_refused_clearly(saved_models, capsys):
    _, deep_path, _ = saved_models
    assert main(["index", str(deep_path)]) == 2
    assert "no user/item vector space" in capsys.readouterr().err
    assert not (deep_path / INDEX_DIR).exists()
    with pytest.raises(TripletrecError):
        model_vectors(tr.load_model(deep_path))


def test_recommend_all_writes_every_user_top_k(saved_models, tmp_path, capsys):
    path, _, model = saved_models
    out = tmp_path / "recs.parquet"
    code = main(["recommend", str(path), "--all", "--out", str(out), "-k", "5",
                 "--chunk-users", "1000", "--quiet"])  # fmt: skip
    assert code == 0 and "users/s" in capsys.readouterr().out
    recs = pd.read_parquet(out)
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score"]
    assert len(recs) == model.n_users_ * 5
    first = recs[recs.user_id == model.user_map_.ids[7]].sort_values("rank")
    expected = model.recommend([model.user_map_.ids[7]], k=5)[0][0]
    np.testing.assert_array_equal(first.item_id.to_numpy(), expected)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--all"], "needs --out"),
        ([], "needs --user"),
        (["--all", "--out", "x", "--user", "1"], "not both"),
    ],
)
def test_recommend_all_bad_arguments(saved_models, capsys, args, message):
    path = saved_models[0]
    assert main(["recommend", str(path), *args]) == 2
    assert message in capsys.readouterr().err
