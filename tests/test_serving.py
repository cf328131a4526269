"""The HTTP service: every endpoint, every bad input (never a 500), reload under load."""

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from _serve_process import serve_process

import tripletrec as tr

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient

from tripletrec.serving.app import MAX_HISTORY, create_app
from tripletrec.serving.loaded import LoadedModel

TOKEN = "s3cret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(anime_tv, tmp_path_factory):
    data = anime_tv.positives(7)
    root = tmp_path_factory.mktemp("serving")
    model = tr.TripletRecommender(epochs=1, random_state=0).fit(data)
    other = tr.TripletRecommender(epochs=1, random_state=1).fit(data)
    path = model.save(root / "a", metrics={"auc": 0.9})
    other_path = other.save(root / "b")
    client = TestClient(create_app(path, token=TOKEN))
    return client, model, path, other_path


def test_recommend_a_known_user_matches_the_model(served):
    client, model, _, _ = served
    user = int(model.user_map_.ids[3])
    body = client.get(f"/recommend?user={user}&k=7").json()
    items, scores = model.recommend([user], k=7)
    assert body["fallback"] is None and body["user"] == user
    assert [row["item_id"] for row in body["items"]] == items[0].tolist()
    np.testing.assert_allclose([row["score"] for row in body["items"]], scores[0], rtol=1e-5)
    assert all(isinstance(row["name"], str) for row in body["items"])


def test_exclude_leaves_items_out(served):
    client, model, _, _ = served
    user = int(model.user_map_.ids[3])
    first = [row["item_id"] for row in client.get(f"/recommend?user={user}&k=3").json()["items"]]
    body = client.get(f"/recommend?user={user}&k=3&exclude={first[0]},{first[1]}&exclude=-5")
    got = [row["item_id"] for row in body.json()["items"]]
    assert body.status_code == 200 and first[2] == got[0] and not set(first[:2]) & set(got)


def test_unknown_user_gets_popular_items(served):
    client, model, _, _ = served
    body = client.get("/recommend?user=987654321&k=5").json()
    popularity = np.asarray(model.seen_.sum(axis=0)).ravel()
    expected = model.item_map_.ids[np.argsort(-popularity, kind="stable")[:5]]
    assert body["fallback"] == "popularity"
    assert [row["item_id"] for row in body["items"]] == expected.tolist()


def test_history_recommendations_for_a_new_user(served):
    client, model, _, _ = served
    history = model.item_map_.ids[model.seen_[10].indices].tolist()[:20]
    response = client.post("/recommend", json={"history": history, "k": 5})
    assert response.status_code == 200, response.text
    items = [row["item_id"] for row in response.json()["items"]]
    assert len(items) == 5 and not set(items) & set(history)
    assert items == model.recommend_from_history([history], k=5)[0][0].tolist()
    assert response.json()["unknown_items"] == []
    with_unknown = [*history[:3], "zzz", 10**12, *history[3:], "zzz"]
    unknown_too = client.post("/recommend", json={"history": with_unknown, "k": 5}).json()
    assert [row["item_id"] for row in unknown_too["items"]] == items  # from the known ones
    assert unknown_too["unknown_items"] == ["zzz", 10**12]  # each once, in order
    none_known = client.post("/recommend", json={"history": ["zzz", 10**12]})
    assert none_known.status_code == 422 and none_known.json()["detail"]


def test_similar_items_and_unknown_item(served):
    client, model, _, _ = served
    item = int(model.item_map_.ids[0])
    body = client.get(f"/similar?item={item}&k=4").json()
    assert [row["item_id"] for row in body["items"]] == model.similar_items([item], 4)[0][
        0
    ].tolist()
    response = client.get("/similar?item=123456789")
    assert response.status_code == 404 and "unknown item" in response.json()["detail"]


def test_health_model_and_docs(served):
    client, model, _path, _ = served
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["n_items"] == model.n_items_ and info["metrics"] == {"auc": 0.9}
    assert info["retrieval"] == "cached-scores"
    assert client.get("/docs").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


BAD_GETS = [
    "/recommend",
    "/recommend?user=",
    "/recommend?user=abc",
    "/recommend?user=1.5",
    "/recommend?user=NaN",
    "/recommend?user=1e400",
    "/recommend?user=" + "9" * 300,
    "/recommend?user=99999999999999999999999",
    "/recommend?user=1&k=0",
    "/recommend?user=1&k=-3",
    "/recommend?user=1&k=1001",
    "/recommend?user=1&k=99999999999999999999999999",
    "/recommend?user=1&k=abc",
    "/recommend?user=1&k=NaN",
    "/recommend?user=1&k=2.5",
    "/recommend?user=1&exclude=abc",
    "/recommend?user=1&exclude=" + ",".join(["1"] * (MAX_HISTORY + 1)),
    "/similar",
    "/similar?item=abc",
    "/similar?item=1&k=0",
    "/similar?item=1&k=5000",
    "/similar?item=999999",
    "/nowhere",
]


@pytest.mark.parametrize("url", BAD_GETS)
def test_bad_get_requests_are_4xx_with_a_message(served, url):
    response = served[0].get(url)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


BAD_BODIES = [
    b"{not json",
    b"",
    b"null",
    b"[]",
    b'{"history": []}',
    b'{"history": "1,2,3"}',
    b'{"history": [NaN]}',
    b'{"history": [Infinity]}',
    b'{"history": [1.5]}',
    b'{"history": [{"a": 1}]}',
    b'{"history": [null]}',
    b'{"history": [99999999]}',
    b'{"history": ["only", "unknown"]}',
    b'{"history": [1], "k": 0}',
    b'{"history": [1], "k": 1001}',
    b'{"history": [1], "k": "ten"}',
    b'{"history": [1], "exclude": "x"}',
    json.dumps({"history": list(range(MAX_HISTORY + 1))}).encode(),
    b'{"history": [1]' + b" " * (1 << 20) + b"}",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_history_requests_are_4xx_with_a_message(served, body):
    response = served[0].post(
        "/recommend", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


def test_reload_under_load_drops_nothing(served, monkeypatch):
    client, model, path, other_path = served
    users = model.user_map_.ids[:50].tolist()
    old = {u: model.recommend([u], k=10)[0][0].tolist() for u in users}
    new_model = tr.load_model(other_path)
    new = {u: new_model.recommend([u], k=10)[0][0].tolist() for u in users}
    failures, done, reloading = [], threading.Event(), threading.Event()
    overlapped = []  # requests that started and finished while the reload was loading
    load = LoadedModel.load.__func__

    def slow_load(cls, directory, **kwargs):
        # The reload holds off until requests have provably been answered meanwhile, so
        # the test cannot pass by reloading before (or after) the load arrives.
        reloading.set()
        deadline = time.monotonic() + 60
        while len(overlapped) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            return load(cls, directory, **kwargs)
        finally:
            reloading.clear()

    def fire():
        i = 0
        while not done.is_set():
            user = users[i % 50]
            during = reloading.is_set()
            response = client.get(f"/recommend?user={user}&k=10")
            items = [row["item_id"] for row in response.json().get("items", [])]
            if response.status_code != 200 or items not in (old[user], new[user]):
                failures.append(response.text)
            if during and reloading.is_set():
                overlapped.append(items == old[user])  # still served by the old model
            i += 1

    threads = [threading.Thread(target=fire) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        before = client.get("/model").json()["weights_sha256"]
        monkeypatch.setattr(LoadedModel, "load", classmethod(slow_load))
        reply = client.post("/reload", json={"path": str(other_path)}, headers=ADMIN)
        assert reply.status_code == 200, reply.text
        monkeypatch.undo()
        middle = client.get("/model").json()["weights_sha256"]
        assert client.post("/reload", json={"path": str(path)}, headers=ADMIN).status_code == 200
        bad = client.post("/reload", json={"path": str(path / "missing")}, headers=ADMIN)
        assert bad.status_code == 422 and "no such model directory" in bad.json()["detail"]
        assert client.post("/reload", headers=ADMIN).status_code == 200  # same directory again
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(overlapped) >= 30 and all(overlapped)
    assert before != middle and client.get("/model").json()["weights_sha256"] == before


def test_service_uses_the_ann_index_when_present(served, tmp_path):
    pytest.importorskip("faiss")
    from tripletrec.serving.retrieval import IndexSettings, build_model_index

    _, model, _path, _ = served
    copy = model.save(tmp_path / "indexed")
    build_model_index(copy, IndexSettings(n_lists=4, nprobe=4))  # all lists: exact
    client = TestClient(create_app(copy))
    assert client.get("/model").json()["retrieval"] == "ann-index"
    for user in model.user_map_.ids[:5].tolist():
        got = [row["item_id"] for row in client.get(f"/recommend?user={user}&k=10").json()["items"]]
        assert got == model.recommend([user], k=10)[0][0].tolist()


def test_cli_serve_starts_answers_and_shuts_down_gracefully(served, tmp_path):
    path = served[2]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with serve_process(str(path), "--token-file", str(token_file), start_timeout=60) as (
        line,
        base,
    ):
        assert line.startswith(f"serving {path} on http://127.0.0.1:"), line
        reload = urllib.request.Request(f"{base}/reload", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(reload, timeout=30)
        assert refused.value.code == 401
        reload.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(reload, timeout=30) as r:
            assert json.loads(r.read())["status"] == "reloaded"


def test_serve_refuses_a_missing_model_directory(tmp_path, capsys):
    from tripletrec.cli import main

    assert main(["serve", str(tmp_path / "none")]) == 2
    assert "no such model directory" in capsys.readouterr().err
