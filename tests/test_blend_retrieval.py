"""Approximate retrieval for the default blend: exact moments, exact scores, high recall."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tripletrec as tr
from tripletrec.exceptions import ModelFileError, TripletrecError
from tripletrec.models.score_terms import ItemMoments
from tripletrec.serving import answers
from tripletrec.serving.app import create_app
from tripletrec.serving.blend_retrieval import BLEND_SPACE, BlendRetriever
from tripletrec.serving.loaded import LoadedModel
from tripletrec.serving.retrieval import INDEX_DIR, ANNIndex, IndexSettings, build_model_index

faiss = pytest.importorskip("faiss")

ITEM_ITEM_KINDS = ("ease", "graph_filter")


@pytest.fixture(scope="module", params=ITEM_ITEM_KINDS)
def blend(request, anime_tv):
    model = tr.Recommender(item_item=request.param, factor={"epochs": 2}, random_state=0)
    return model.fit(anime_tv.positives(7))


def _exact_top(model, users, k):
    scores = model.score_indices(users)
    rows, cols = model.seen_[users].nonzero()
    scores[rows, cols] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k], scores


@pytest.mark.parametrize("part", ["factor_", "item_item_"])
def test_score_terms_rebuild_the_scores_and_their_moments(blend, part):
    model = getattr(blend, part)
    users = np.arange(0, model.n_users_, 97)
    terms = model.score_terms(users)
    items = model.term_items()
    rebuilt = terms.queries @ items.T + (0 if terms.rest is None else terms.rest)
    scores = model.score_indices(users)
    np.testing.assert_allclose(rebuilt, scores, rtol=1e-4, atol=1e-5)
    mean, spread = terms.moments(ItemMoments.of(items))
    np.testing.assert_allclose(mean, scores.mean(axis=1, dtype=np.float64), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(spread, scores.std(axis=1, dtype=np.float64), rtol=1e-4)


def test_blend_retrieval_returns_exact_scores_and_high_recall(blend):
    retriever = BlendRetriever.build(blend, IndexSettings(random_state=0))
    users = np.arange(0, blend.n_users_, 11)
    k = 10
    idx, scores = retriever.search(users, k, exclude=blend.seen_[users])
    top, exact = _exact_top(blend, users, k)
    assert (idx >= 0).all()
    np.testing.assert_allclose(scores, np.take_along_axis(exact, idx, 1), rtol=1e-4, atol=1e-5)
    assert not blend.seen_[users][np.arange(len(users))[:, None], idx].toarray().any()
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx.tolist(), top.tolist())])
    assert recall >= 0.98


def test_blend_retrieval_leaves_out_extra_exclusions(blend):
    retriever = BlendRetriever.build(blend)
    user = np.array([5])
    first, _ = retriever.search(user, 5, exclude=blend.seen_[user])
    exclude = blend.seen_[user].tolil()
    exclude[0, first[0, :2]] = 1
    again, _ = retriever.search(user, 5, exclude=exclude)
    assert not set(first[0, :2].tolist()) & set(again[0].tolist())
    assert again[0, :3].tolist() == first[0, 2:].tolist()


def test_the_index_command_serves_the_blend(blend, tmp_path):
    path = blend.save(tmp_path / "model")
    _, index = build_model_index(path, IndexSettings(random_state=0))
    assert len(index) == blend.n_items_
    client = TestClient(create_app(path))
    assert client.get("/model").json()["retrieval"] == "ann-index"
    for user in blend.user_map_.ids[:40:4].tolist():
        # Every known user's best items were scored exactly when the index was built.
        got = [row["item_id"] for row in client.get(f"/recommend?user={user}&k=10").json()["items"]]
        assert got == blend.recommend([user], k=10)[0][0].tolist()
        # With an exclusion, the request is searched through the index.
        excluded = got[0]
        body = client.get(f"/recommend?user={user}&k=5&exclude={excluded}").json()
        assert excluded not in [row["item_id"] for row in body["items"]]


def test_answers_come_from_the_index_beyond_the_exact_budget(blend, tmp_path, monkeypatch):
    monkeypatch.setattr(answers, "EXACT_SCORE_ENTRIES", 0)
    path = blend.save(tmp_path / "model")
    build_model_index(path, IndexSettings(random_state=0))
    meta = json.loads((path / INDEX_DIR / "index.json").read_text())
    assert meta["answers"]["exact"] is False and meta["answers"]["width"] == answers.WIDTH
    loaded = LoadedModel.load(path)
    users = np.arange(0, blend.n_users_, 50)
    expected, _ = loaded.index.search(users, answers.WIDTH, exclude=blend.seen_[users])
    np.testing.assert_array_equal(loaded.top_items[users], expected)
    assert not loaded.top_items.flags.writeable  # memory-mapped, shared by workers


def test_damaged_answers_leave_the_index_out(blend, tmp_path):
    path = blend.save(tmp_path / "model")
    build_model_index(path, IndexSettings(random_state=0))
    file = path / INDEX_DIR / answers.ANSWERS_FILE
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    loaded = LoadedModel.load(path)
    assert loaded.index is None  # scored as without an index (here: the score cache)
    with pytest.raises(ModelFileError, match="checksum"):
        answers.load_answers(path / INDEX_DIR, blend.n_users_, {"sha256": "0" * 64})


def test_an_index_of_another_space_is_refused(blend, tmp_path):
    retriever = BlendRetriever.build(blend)
    retriever.save(tmp_path, "sha")
    items = retriever.index.items
    with pytest.raises(ModelFileError, match="rebuild it"):
        ANNIndex.load(tmp_path, items, "sha")  # a vector-space loader
    assert len(ANNIndex.load(tmp_path, items, "sha", BLEND_SPACE)) == blend.n_items_


def test_a_model_without_parts_or_vectors_has_no_blend_retrieval(anime_tv):
    ease = tr.EASERecommender().fit(anime_tv.positives(7))
    with pytest.raises(TripletrecError, match="not a blend"):
        BlendRetriever.build(ease)
