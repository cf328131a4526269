"""Property-based tests of the HTTP service: no generated request gets a 5xx.

The app of :func:`tripletrec.serving.app.create_app` serves two tiny saved models (integer
ids with an admin token, string ids without one). Requests are driven straight through ASGI,
so query strings and bodies reach the app byte for byte as a client sent them (an HTTP
client library would re-encode or refuse the odd ones): query strings of every route and
parameter (wrong types, huge k, unicode, percent-escapes valid and not, NaN-like values),
JSON bodies (from the request schemas, with wrong types, deep nesting, unicode and
non-finite numbers), bodies that are not JSON, and admin requests with and without tokens.
Every answer must be below 500, JSON, and of the documented shape: ``{"detail": message}``
for a 4xx, the route's fields for a 200.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
from _fuzz import any_k, jsonable, mostly, rarely
from hypothesis import event, given
from hypothesis import strategies as st

from tripletrec import EASERecommender, Interactions, TripletRecommender

pytest.importorskip("fastapi")
from tripletrec.serving.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore")

TOKEN = "s3cret-token"
INT_USERS, INT_ITEMS = list(range(10, 22)), list(range(500, 515))
STR_USERS, STR_ITEMS = [f"u{i}" for i in range(12)], [f"it-{i}" for i in range(15)]


def _data(users: list, items: list) -> Interactions:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user_id": rng.choice(users, 70), "item_id": rng.choice(items, 70)})
    names = pd.DataFrame({"name": [f"“{i}”\n" for i in items]}, index=items)
    return Interactions.from_dataframe(frame.drop_duplicates(), item_metadata=names)


@pytest.fixture(scope="module")
def apps() -> dict:
    """``int``: a TripletRecommender with integer ids and an admin token; ``str``: a
    EASERecommender with string ids and no token (admin endpoints disabled)."""
    with tempfile.TemporaryDirectory(prefix="tripletrec-fuzz-api-") as folder:
        root = Path(folder)
        triplet = TripletRecommender(epochs=1, n_factors=8, random_state=0)
        triplet.fit(_data(INT_USERS, INT_ITEMS)).save(root / "int")
        EASERecommender().fit(_data(STR_USERS, STR_ITEMS)).save(root / "str")
        (root / "not-a-model").mkdir()
        yield {
            "int": create_app(root / "int", token=TOKEN),
            "str": create_app(root / "str"),
            "root": root,
        }


def request(app, method: str, path: str, query: bytes = b"", body: bytes = b"", headers=()):
    """``(status, headers, body)`` of one request sent to ``app`` through ASGI.

    An exception the app raises (a bug: its handler answers 500 and re-raises) propagates.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"content-length", b"%d" % len(body)), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), content


def check_answer(status: int, headers: dict, content: bytes, method: str, path: str) -> None:
    """Below 500; a 4xx is ``{"detail": str}``; a 200 of the recommendation routes has
    ``k`` and ranked ``items``."""
    event(f"{method} {path.split('?')[0]} -> {status}")
    assert status < 500, content[:300]
    if method == "HEAD" or status in (204, 304) or path in ("/docs", "/redoc"):
        return
    body = json.loads(content)
    if status >= 400:
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]
    elif status == 200 and path in ("/recommend", "/similar"):
        assert isinstance(body["k"], int) and len(body["items"]) <= body["k"]
        assert [row["rank"] for row in body["items"]] == list(range(1, len(body["items"]) + 1))
        scores = [row["score"] for row in body["items"]]
        assert scores == sorted(scores, reverse=True)


# ---------------------------------------------------------------------- query strings
def ids_text(known: list) -> st.SearchStrategy[str]:
    return mostly(
        st.sampled_from([str(v) for v in known]),
        st.one_of(
            st.text(max_size=8),
            st.sampled_from(["", " ", "nan", "NaN", "inf", "-1", "1e9", "0x10", "null", "1,2"]),
            st.integers(-(2**70), 2**70).map(str),
            st.text(min_size=190, max_size=260),
        ),
    )


def query_value(known_users: list, known_items: list) -> st.SearchStrategy[tuple[str, str]]:
    return st.one_of(
        st.tuples(st.just("user"), ids_text(known_users)),
        st.tuples(st.just("item"), ids_text(known_items)),
        st.tuples(st.just("k"), st.one_of(any_k.map(str), st.text(max_size=4))),
        st.tuples(
            st.just("exclude"),
            st.one_of(
                ids_text(known_items),
                st.lists(st.sampled_from([str(v) for v in known_items]), max_size=4).map(",".join),
            ),
        ),
        st.tuples(st.text(max_size=5), st.text(max_size=5)),
    )


def encode_query(pairs: list[tuple[str, str]], raw: bool) -> bytes:
    """``pairs`` percent-encoded, or as raw UTF-8 (what a careless client sends)."""
    if raw:
        return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()


# The two routes with parameters three times as often as the rest.
ROUTES = ["/recommend", "/similar"] * 3 + ["/health", "/model", "/reload", "/openapi.json", "/nope"]


@st.composite
def get_requests(draw: st.DrawFn) -> tuple[str, str, str, bytes]:
    which = draw(st.sampled_from(["int", "str"]))
    users, items = (INT_USERS, INT_ITEMS) if which == "int" else (STR_USERS, STR_ITEMS)
    path = draw(st.sampled_from(ROUTES))
    pairs = draw(st.lists(query_value(users, items), max_size=3))
    # The route's own id, usually: without it every request is the same 422.
    main = {"/recommend": ("user", users), "/similar": ("item", items)}.get(path)
    if main is not None and not draw(rarely):
        at = draw(st.integers(0, len(pairs)))
        pairs.insert(at, (main[0], draw(ids_text(main[1]))))
    if draw(rarely):  # broken escapes, bytes that are not UTF-8
        query = encode_query(pairs, raw=True) + draw(
            st.sampled_from([b"%", b"%zz", b"%ff%fe", b"\xff", b"&&&", b"=", b"k=%00"])
        )
    else:
        query = encode_query(pairs, raw=draw(st.booleans()))
    return which, draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "DELETE"])), path, query


@given(get_requests())
def test_query_strings_never_get_a_5xx(apps, case):
    which, method, path, query = case
    status, headers, content = request(apps[which], method, path, query)
    check_answer(status, headers, content, method, path)


# ---------------------------------------------------------------------- JSON bodies
def item_values(known: list) -> st.SearchStrategy:
    return mostly(
        st.one_of(st.sampled_from(known), st.sampled_from([str(v) for v in known])),
        st.one_of(jsonable(4), st.integers(-(2**70), 2**70), st.text(max_size=6)),
    )


@st.composite
def history_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A POST /recommend body after the HistoryRequest schema, some fields wrong."""
    which = draw(st.sampled_from(["int", "str"]))
    items = INT_ITEMS if which == "int" else STR_ITEMS
    body: dict = {}
    if not draw(rarely):
        body["history"] = draw(
            mostly(st.lists(item_values(items), min_size=1, max_size=6), jsonable())
        )
    for key, strategy in (
        ("k", mostly(st.integers(1, 20), st.one_of(any_k, jsonable(2)))),
        ("exclude", mostly(st.lists(item_values(items), max_size=4), jsonable())),
        ("filter_history", mostly(st.booleans(), jsonable(2))),
        ("extra", jsonable(3)),
    ):
        if draw(rarely if key == "extra" else st.booleans()):
            body[key] = draw(strategy)
    if draw(rarely):
        body = draw(jsonable())  # not an object at all
    text = json.dumps(body, allow_nan=True, default=str)
    return which, text.encode("utf-8", "surrogatepass")


deep = st.integers(1, 30_000).map(lambda n: ("[" * n + "]" * n).encode())
raw_bodies = st.one_of(
    st.binary(max_size=40),
    deep,
    st.integers(1, 5_000).map(lambda n: ('{"history":' + "[" * n + "1" + "]" * n + "}").encode()),
    st.sampled_from(
        [b"", b"{", b"null", b"NaN", b'{"history": [NaN], "k": Infinity}', b'{"history": "abc"}']
    ),
)
content_types = st.sampled_from(
    [
        [(b"content-type", b"application/json")],
        [(b"content-type", b"application/json; charset=latin-1")],
        [(b"content-type", b"text/plain")],
        [],
    ]
)


@given(
    mostly(history_bodies(), st.tuples(st.sampled_from(["int", "str"]), raw_bodies)),
    mostly(st.just([(b"content-type", b"application/json")]), content_types),
)
def test_post_recommend_bodies_never_get_a_5xx(apps, case, headers):
    which, body = case
    status, response_headers, content = request(
        apps[which], "POST", "/recommend", body=body, headers=headers
    )
    check_answer(status, response_headers, content, "POST", "/recommend")


# ---------------------------------------------------------------------- admin requests
authorizations = mostly(
    st.sampled_from([f"Bearer {TOKEN}", f"bearer   {TOKEN}  "]),
    st.one_of(
        st.none(),
        st.sampled_from(["Bearer", "Bearer ", f"Basic {TOKEN}", "", TOKEN]),
        st.text(max_size=20).map(lambda t: f"Bearer {t}"),
    ),
)


@st.composite
def reload_bodies(draw: st.DrawFn, root: Path) -> bytes:
    path = draw(
        mostly(
            st.sampled_from(
                [
                    str(root / "int"),
                    str(root / "not-a-model"),
                    str(root / "nope"),
                    str(root),
                    str(root / ".." / "etc"),
                    "/",
                    "",
                    ".",
                    "\x00",
                    str(root / "int\x00"),
                    "~",
                    "a" * 5000,
                    str(root / ("a" * 300)),
                ]
            ),
            st.one_of(st.text(max_size=12), jsonable(3)),
        )
    )
    shape = draw(st.sampled_from(["object"] * 5 + ["empty", "none", "other"]))
    if shape == "object":
        return json.dumps({"path": path}).encode()
    if shape == "empty":
        return b""
    if shape == "none":
        return b"null"
    return json.dumps(draw(jsonable())).encode()


@given(st.sampled_from(["int", "str"]), authorizations, st.data())
def test_admin_requests_never_get_a_5xx(apps, which, authorization, data):
    body = data.draw(reload_bodies(apps["root"]), label="body")
    headers = [(b"content-type", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("utf-8")))
    method = data.draw(st.sampled_from(["POST", "POST", "GET", "PUT"]), label="method")
    status, response_headers, content = request(
        apps[which], method, "/reload", body=body, headers=headers
    )
    check_answer(status, response_headers, content, method, "/reload")
    if authorization is None or which == "str":  # no token sent, or none configured
        assert status in (401, 403, 405), status


# ---------------------------------------------------------------------- the bugs found
# A NUL byte (Path.resolve's ValueError) or a name too long for the file system (OSError)
# answered 500 until ModelRoot.check turned both into a 422.
@pytest.mark.parametrize("name", ["\x00", "model\x00dir", "a" * 300])
def test_reload_of_an_impossible_path_is_a_4xx(apps, name):
    body = json.dumps({"path": str(apps["root"] / name)}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
    ]
    status, _, content = request(apps["int"], "POST", "/reload", body=body, headers=headers)
    assert 400 <= status < 500 and json.loads(content)["detail"]
