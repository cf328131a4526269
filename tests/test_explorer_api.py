"""The explorer page's endpoints: GET /items, /users, /history, and the page itself."""

from __future__ import annotations

import re
from importlib.resources import files

import numpy as np
import pytest

import tripletrec as tr

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient

from tripletrec.serving.app import create_app
from tripletrec.serving.loaded import MAX_HISTORY, MAX_MATCHES
from tripletrec.serving.page import ASSETS
from tripletrec.serving.search import TextSearch


@pytest.fixture(scope="module")
def served(anime_tv, tmp_path_factory):
    model = tr.TripletRecommender(epochs=1, random_state=0).fit(anime_tv.positives(7))
    path = model.save(tmp_path_factory.mktemp("explorer") / "model")
    popularity = np.asarray(model.seen_.sum(axis=0)).ravel()
    return TestClient(create_app(path)), model, popularity


def _names(model) -> list[str]:
    return model.item_names(model.item_map_.ids).tolist()


def test_items_by_name_case_insensitive_most_popular_first(served):
    client, model, popularity = served
    names = _names(model)
    expected = [i for i, name in enumerate(names) if "sh" in name.lower()]
    assert len(expected) > 20  # prefixes and others, so the order is tested
    body = client.get("/items?query=sH&limit=100").json()
    assert body["matches"] == len(expected)
    got = [row["name"] for row in body["items"]]
    assert sorted(got) == sorted(names[i] for i in expected)
    # Names starting with the query first, each group most popular first.
    prefix = [not got_name.lower().startswith("sh") for got_name in got]
    assert prefix == sorted(prefix)
    for group in (False, True):
        counts = [row["popularity"] for row, p in zip(body["items"], prefix) if p == group]
        assert counts == sorted(counts, reverse=True)
    first = body["items"][0]
    index = model.item_map_.to_index([first["item_id"]])[0]
    assert first["popularity"] == popularity[index] and first["name"] == names[index]


def test_items_limit_and_empty_query(served):
    client, model, popularity = served
    body = client.get("/items?limit=7").json()
    top = np.argsort(-popularity, kind="stable")[:7]
    assert [row["item_id"] for row in body["items"]] == model.item_map_.ids[top].tolist()
    assert body["matches"] == model.n_items_
    blank = client.get("/items", params={"query": "   ", "limit": 7}).json()
    assert blank["items"] == body["items"]
    assert len(client.get("/items?query=a&limit=3").json()["items"]) == 3
    assert len(client.get("/items").json()["items"]) == 10  # the default limit


def test_items_by_id_exact_match_first(served):
    client, model, _ = served
    item = int(model.item_map_.ids[5])
    body = client.get(f"/items?query={item}&limit=100").json()
    assert body["items"][0]["item_id"] == item
    assert all(str(item) in str(row["item_id"]) or str(item) in row["name"].lower()
               for row in body["items"])  # fmt: skip


def test_items_query_is_text_not_a_pattern(served):
    client, model, _ = served
    names = _names(model)
    for query in (".", "(", "*", "[a-z]", "\\", "%", "zzz-no-such-name"):
        body = client.get("/items", params={"query": query, "limit": 100})
        assert body.status_code == 200, body.text
        expected = sorted(n for n in names if query in n.lower())
        assert sorted(row["name"] for row in body.json()["items"]) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/items?limit=0",
        f"/items?limit={MAX_MATCHES + 1}",
        "/items?limit=x",
        "/items?query=" + "a" * 201,
        "/users?limit=0",
        "/history",
        "/history?user=",
        "/history?user=abc",
        f"/history?user=1&limit={MAX_HISTORY + 1}",
    ],
)
def test_bad_requests_are_422_with_a_message(served, url):
    response = served[0].get(url)
    assert response.status_code == 422 and response.json()["detail"], response.text


def test_history_of_a_known_user(served):
    client, model, popularity = served
    user = int(model.user_map_.ids[10])
    body = client.get(f"/history?user={user}").json()
    seen = model.seen_[10].indices
    assert body["user"] == user and body["n_items"] == len(seen)
    ids = [row["item_id"] for row in body["items"]]
    assert sorted(ids) == sorted(model.item_map_.ids[seen].tolist())
    counts = popularity[model.item_map_.to_index(ids)]
    assert (np.diff(counts) <= 0).all()  # most popular first
    assert [row["name"] for row in body["items"]] == model.item_names(ids).tolist()
    # These are the items GET /recommend leaves out.
    recs = client.get(f"/recommend?user={user}&k=50").json()["items"]
    assert not {r["item_id"] for r in recs} & set(ids)
    short = client.get(f"/history?user={user}&limit=2").json()
    assert short["items"] == body["items"][:2] and short["n_items"] == len(seen)


def test_history_of_an_unknown_user_is_404(served):
    response = served[0].get("/history?user=987654321")
    assert response.status_code == 404 and "unknown user" in response.json()["detail"]


def test_users_by_id(served):
    client, model, _ = served
    ids = model.user_map_.ids
    body = client.get("/users?limit=5").json()
    assert [row["user"] for row in body["users"]] == ids[:5].tolist()
    assert body["matches"] == model.n_users_
    query = str(ids[20])
    found = client.get(f"/users?query={query}&limit=100").json()
    assert found["users"][0]["user"] == ids[20]  # the exact match first
    assert found["matches"] == sum(query in str(u) for u in ids.tolist())
    assert found["users"][0]["n_items"] == model.seen_[20].nnz


def test_text_search_ranks_exact_then_prefix_then_inside():
    search = TextSearch(["a1", "b2", "c3", "d4"], ["xfoo", "foo", "foobar", None])
    idx, matches = search.search("FOO", 10)
    assert idx.tolist() == [1, 2, 0] and matches == 3
    # The preference order breaks ties within a group; None names match nothing.
    popular = TextSearch(["a1", "b2", "c3"], ["foo1", "foo2", None], order=np.array([1, 0, 2]))
    assert popular.search("foo", 10)[0].tolist() == [1, 0]
    assert popular.search("", 2)[0].tolist() == [1, 0]
    assert popular.search("none", 10)[1] == 0


def test_page_and_assets(served):
    client = served[0]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    for name, media_type in ASSETS.items():
        assert f"/explorer/{name}" in page.text  # the page links every asset
        asset = client.get(f"/explorer/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"] == media_type
    missing = client.get("/explorer/../app.py")
    assert missing.status_code == 404
    assert client.get("/explorer/app.py").status_code == 404
    # The page's routes stay out of the API schema; the JSON endpoints are in it.
    schema = client.get("/openapi.json").json()["paths"]
    assert "/" not in schema and {"/items", "/users", "/history"} <= set(schema)


def test_page_files_fetch_nothing_from_elsewhere_and_insert_no_markup():
    folder = files("tripletrec.serving") / "explorer"
    texts = {name: (folder / name).read_text("utf-8") for name in ["index.html", *ASSETS]}
    for name, text in texts.items():
        # The one absolute URL allowed: the SVG namespace, which is a name, not a fetch.
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", text)) - {"http://www.w3.org"}
        assert not urls, (name, urls)
    script = texts["explorer.js"]
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)
