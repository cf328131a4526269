"""The service's fast paths: precomputed top lists and the plain-GET middleware give
exactly the answers of live scoring and of the full FastAPI routes, and a reload refreshes
them."""

import dataclasses
import json

import numpy as np
import pytest
from _serve_process import serve_process

import tripletrec as tr

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient

from tripletrec.evaluation.topk import top_k_masked
from tripletrec.serving import hotpath
from tripletrec.serving.app import create_app
from tripletrec.serving.hotpath import HotPath, dumps
from tripletrec.serving.loaded import TOP_K, LoadedModel, _top_lists
from tripletrec.serving.service import Service

TOKEN = "precomputed-token"
KS = (1, 3, 10, 57, TOP_K, TOP_K + 1, 250, 1000)


@pytest.fixture(scope="module")
def paths(anime_tv, tmp_path_factory):
    data = anime_tv.positives(7)
    root = tmp_path_factory.mktemp("precomputed")
    first = tr.TripletRecommender(epochs=1, n_factors=16, random_state=0).fit(data)
    second = tr.TripletRecommender(epochs=1, n_factors=16, random_state=1).fit(data)
    return first.save(root / "a"), second.save(root / "b")


def _live(loaded: LoadedModel) -> LoadedModel:
    """The same loaded model without its precomputed lists: every answer scored live."""
    return dataclasses.replace(loaded, top_items=None, top_scores=None)


def _answers(loaded, users, ks, exclude):
    return [loaded.recommend_user(u, k, exclude) for u in users for k in ks]


def test_precomputed_lists_are_the_live_answers(paths):
    loaded = LoadedModel.load(paths[0])
    assert loaded.top_items.shape == (loaded.model.n_users_, min(TOP_K, loaded.model.n_items_))
    live = _live(loaded)
    users = [0, 1, 17, 404, loaded.model.n_users_ - 1]
    assert _answers(loaded, users, KS, np.empty(0, np.int64)) == _answers(
        live, users, KS, np.empty(0, np.int64)
    )
    # With exclusions both are live; still the same, and the excluded items are gone.
    exclude = np.array([0, 5, 9])
    with_exclusions = _answers(loaded, users, (10,), exclude)
    assert with_exclusions == _answers(live, users, (10,), exclude)
    excluded_ids = {loaded.item_ids[i] for i in exclude}
    assert not excluded_ids & {row["item_id"] for rows in with_exclusions for row in rows}
    # ... and what the model itself recommends (training items filtered).
    model = tr.load_model(paths[0])
    for u in users:
        raw = model.user_map_.ids[u]
        items, scores = model.recommend([raw], k=10)
        got = loaded.recommend_user(u, 10, np.empty(0, np.int64))
        assert [row["item_id"] for row in got] == items[0].tolist()
        np.testing.assert_allclose([row["score"] for row in got], scores[0], rtol=1e-5)
        assert not set(model.seen_[u].indices) & {
            int(model.item_map_.to_index([row["item_id"]])[0]) for row in got
        }


def test_the_prefix_of_the_top_lists_keeps_the_tie_rule():
    # Coarse scores: many ties, also across every cut-off; a few masked (seen) items.
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(60, 150)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[7, :] = -np.inf  # a user who has seen everything: all padding
    items, values = _top_lists(scores, TOP_K)
    assert items.dtype == np.int16 and items.shape == (60, TOP_K)
    for k in (1, 2, 9, 33, TOP_K):
        expected_items, expected_values = top_k_masked(scores, k)
        np.testing.assert_array_equal(items[:, :k], expected_items)
        np.testing.assert_array_equal(values[:, :k], expected_values)


def test_popularity_fallback_precomputed_equals_live(paths):
    loaded = LoadedModel.load(paths[0])
    none = np.empty(0, np.int64)
    for k in (1, 10, TOP_K, TOP_K + 5, 1000):
        order = loaded.popular_order[:k]
        assert loaded.popular(k, none) == loaded.rows(order, loaded.popularity[order])
    excluded = loaded.popular_order[:2]
    assert [r["item_id"] for r in loaded.popular(3, excluded)] == [
        loaded.item_ids[i] for i in loaded.popular_order[2:5]
    ]


def test_without_the_score_cache_nothing_is_precomputed_and_answers_agree(paths):
    cached = Service(paths[0])
    exact = Service(paths[0], cache_entries=0)
    assert cached.current.top_items is not None and exact.current.top_items is None
    users = cached.current.model.user_map_.ids[:20].tolist()
    for user in users:
        a, b = cached.recommend(str(user), 10), exact.recommend(str(user), 10)
        assert [r["item_id"] for r in a["items"]] == [r["item_id"] for r in b["items"]]
        np.testing.assert_allclose(
            [r["score"] for r in a["items"]], [r["score"] for r in b["items"]], rtol=1e-5
        )


def test_plain_gets_answer_as_the_full_routes(paths):
    client = TestClient(create_app(paths[0]))
    model = client.app.state.service.current.model
    users = [*model.user_map_.ids[:5].tolist(), 987654321]  # the last one is unknown
    for user in users:
        for k in ("", "&k=1", "&k=10", f"&k={TOP_K + 3}"):
            fast = client.get(f"/recommend?user={user}{k}")
            # An empty exclude means the same, but only the FastAPI route takes it.
            full = client.get(f"/recommend?user={user}{k}&exclude=")
            assert fast.status_code == full.status_code == 200
            assert fast.json() == full.json()
            assert fast.headers["content-type"] == full.headers["content-type"]
    item = int(model.item_map_.ids[3])
    fast = client.get(f"/similar?item={item}&k=4")
    full = client.get(f"/similar?k=4&item=%{ord(str(item)[0]):X}{str(item)[1:]}")  # encoded
    assert fast.status_code == full.status_code == 200 and fast.json() == full.json()
    # Refusals are the routes' own: status and message.
    for url, status in [
        ("/recommend?user=abc", 422),
        ("/recommend?user=1&k=1001", 422),
        ("/recommend?user=1&k=0", 422),
        ("/similar?item=123456789", 404),
        ("/similar?item=1&k=5000", 422),
    ]:
        response = client.get(url)
        assert response.status_code == status and response.json()["detail"], url


def test_the_short_path_takes_only_plain_requests_and_leaves_the_rest_to_fastapi(paths):
    service = Service(paths[0])
    hot = HotPath(app=None, service=service)
    user = service.current.model.user_map_.ids[2]
    item = service.current.model.item_map_.ids[2]
    plain = hot.answer(hot.routes["/recommend"], f"user={user}&k=7".encode())
    assert json.loads(plain) == service.recommend(str(user), 7)
    assert json.loads(hot.answer(hot.routes["/recommend"], f"user={user}".encode()))["k"] == 10
    assert json.loads(hot.answer(hot.routes["/similar"], f"k=3&item={item}".encode())) == (
        service.similar(str(item), 3)
    )
    for query in [
        f"user={user}&exclude=1",  # exclusions: the full route
        f"user=%{ord(str(user)[0]):X}{str(user)[1:]}",  # needs decoding
        f"user={user}&user={user}",  # repeated
        f"user={user}&k=0",
        f"user={user}&k=010",
        f"user={user}&k=1001",
        f"user={user}&",
        "k=5",
        "user=abc",  # refused by the service: FastAPI gives the error
        "",
    ]:
        assert hot.answer(hot.routes["/recommend"], query.encode()) is None, query
    assert hot.answer(hot.routes["/similar"], b"item=123456789") is None  # unknown: 404 there


def test_a_reload_refreshes_the_precomputed_answers(paths):
    client = TestClient(create_app(paths[0], token=TOKEN))
    service = client.app.state.service
    users = service.current.model.user_map_.ids[:30].tolist()

    def served():
        return [client.get(f"/recommend?user={u}&k=10").json()["items"] for u in users]

    def expected(path):
        live = _live(LoadedModel.load(path))
        none = np.empty(0, np.int64)
        return [live.recommend_user(live.user_index(u), 10, none) for u in users]

    first, second = expected(paths[0]), expected(paths[1])
    assert first != second and served() == first
    old = service.current
    reply = client.post(
        "/reload", json={"path": str(paths[1])}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert reply.status_code == 200, reply.text
    assert service.current is not old and served() == second
    assert not np.array_equal(service.current.top_scores, old.top_scores)


def test_answers_beyond_what_orjson_encodes_still_go_out(paths, monkeypatch):
    client = TestClient(create_app(paths[0]))
    model = client.app.state.service.current.model
    history = model.item_map_.ids[model.seen_[3].indices].tolist()[:10]
    response = client.post("/recommend", json={"history": [*history, 10**30], "k": 3})
    assert response.status_code == 200, response.text
    assert response.json()["unknown_items"] == [10**30]
    content = {"big": 10**30, "s": "é", "x": [1.5, None, True]}
    assert json.loads(dumps(content)) == content
    fast = dumps({"s": "é", "x": [0.1, 2**40, None]})
    monkeypatch.setattr(hotpath, "_orjson", None)  # without orjson: the standard encoder
    assert (
        dumps({"s": "é", "x": [0.1, 2**40, None]})
        == fast
        == '{"s":"é","x":[0.1,1099511627776,null]}'.encode()
    )


def test_serve_two_workers_on_a_free_port(paths):
    with serve_process(str(paths[0]), "--workers", "2") as (line, _):
        assert line.startswith("serving ")
