"""Admin endpoints of the service: the bearer token, the model root, and the Service object
on its own (no HTTP)."""

import os
import time

import pytest

import tripletrec as tr

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient

from tripletrec.cli.querying import TOKEN_ENV, admin_token
from tripletrec.exceptions import TripletrecError
from tripletrec.serving.app import create_app
from tripletrec.serving.loaded import ServiceError
from tripletrec.serving.security import AdminToken, ModelRoot
from tripletrec.serving.service import Service

TOKEN = "correct horse battery staple"


@pytest.fixture(scope="module")
def models(anime_tv, tmp_path_factory):
    """Two model directories under one root, and one outside it."""
    data = anime_tv.positives(7)
    base = tmp_path_factory.mktemp("admin")
    model = tr.TripletRecommender(epochs=1, n_factors=16, random_state=0).fit(data)
    other = tr.TripletRecommender(epochs=1, n_factors=16, random_state=1).fit(data)
    first = model.save(base / "root" / "a")
    second = other.save(base / "root" / "b")
    outside = other.save(base / "elsewhere" / "c")
    return model, first, second, outside


@pytest.fixture
def client(models):
    return TestClient(create_app(models[1], token=TOKEN))


def _sha(client):
    return client.get("/model").json()["weights_sha256"]


def test_reload_needs_the_right_bearer_token(client, models):
    _, _, second, _ = models
    body = {"path": str(second)}
    before = _sha(client)
    missing = client.post("/reload", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    wrong = client.post("/reload", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    basic = client.post("/reload", json=body, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert _sha(client) == before  # nothing was swapped
    right = client.post("/reload", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.json()["model_dir"] == str(second.resolve())
    assert _sha(client) != before


def test_the_token_is_checked_before_the_body(client):
    response = client.post("/reload", content=b"{not json", headers={"content-type": "x"})
    assert response.status_code == 401


def test_without_a_token_admin_endpoints_are_forbidden_and_reads_stay_open(models):
    model, first, second, _ = models
    client = TestClient(create_app(first))
    for headers in ({}, {"Authorization": "Bearer anything"}):
        response = client.post("/reload", json={"path": str(second)}, headers=headers)
        assert response.status_code == 403 and "--token-file" in response.json()["detail"]
    user = int(model.user_map_.ids[0])
    assert client.get(f"/recommend?user={user}&k=3").status_code == 200
    assert client.get("/health").status_code == 200


def test_reload_refuses_a_path_outside_the_model_root(client, models, tmp_path):
    _, first, _, outside = models
    admin = {"Authorization": f"Bearer {TOKEN}"}
    before = _sha(client)
    escapes = [
        str(outside),
        str(first.parent / ".." / "elsewhere" / "c"),  # .. is resolved first
        "/etc",
    ]
    link = first.parent / "link-out"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    escapes.append(str(link))  # a symlink inside the root that points out of it
    for path in escapes:
        response = client.post("/reload", json={"path": path}, headers=admin)
        assert response.status_code == 403, (path, response.text)
        assert "outside the model root" in response.json()["detail"]
    assert _sha(client) == before


def test_an_explicit_model_root_widens_or_narrows_what_reload_accepts(models):
    _, first, second, outside = models
    admin = {"Authorization": f"Bearer {TOKEN}"}
    wide = TestClient(create_app(first, token=TOKEN, model_root=first.parent.parent))
    assert wide.post("/reload", json={"path": str(outside)}, headers=admin).status_code == 200
    narrow = TestClient(create_app(first, token=TOKEN, model_root=first))
    assert narrow.post("/reload", json={"path": str(second)}, headers=admin).status_code == 403
    assert narrow.post("/reload", headers=admin).status_code == 200  # the current directory


def test_the_service_answers_without_http(models):
    model, first, second, outside = models
    service = Service(first, token=TOKEN)
    user = int(model.user_map_.ids[2])
    body = service.recommend(str(user), 5)
    assert [row["item_id"] for row in body["items"]] == model.recommend([user], k=5)[0][0].tolist()
    history = model.item_map_.ids[:4].tolist()
    answer = service.recommend_history([*history, "nope"], k=3)
    assert answer["unknown_items"] == ["nope"] and len(answer["items"]) == 3
    assert service.health()["status"] == "ok" and service.model_info()["n_items"] == model.n_items_
    with pytest.raises(ServiceError) as refused:
        service.reload(outside)
    assert refused.value.status == 403
    assert service.reload(second)["status"] == "reloaded"
    assert service.reload_if_replaced() is False  # nothing changed on disk since


def test_a_reload_gives_the_freed_heap_back(models, monkeypatch):
    import tripletrec.serving.service as service_module
    from tripletrec._system import release_freed_memory

    _, first, second, _ = models
    service = Service(first, token=TOKEN)
    calls = []
    monkeypatch.setattr(service_module, "release_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(service_module, "TRIM_AGAIN_SECONDS", 0.0)
    service.reload(second)
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [1, 1]  # at the swap, and again once the requests in flight are done
    assert isinstance(release_freed_memory(), bool)  # the real call: harmless anywhere


def test_admin_token_check():
    with pytest.raises(ServiceError) as disabled:
        AdminToken(None).check(f"Bearer {TOKEN}")
    assert disabled.value.status == 403
    assert not AdminToken("  ").configured  # a blank token is no token
    token = AdminToken(TOKEN)
    token.check(f"Bearer {TOKEN}")
    token.check(f"bearer   {TOKEN}  ")
    for header in (None, "", "Bearer", f"Bearer {TOKEN}x", TOKEN, "Bearer ünï"):
        with pytest.raises(ServiceError) as refused:
            token.check(header)
        assert refused.value.status == 401 and "Bearer" in refused.value.headers["WWW-Authenticate"]


def test_model_root_resolves_before_checking(tmp_path):
    root = ModelRoot(tmp_path / "models" / ".." / "models")
    assert root.path == (tmp_path / "models").resolve()
    assert root.check(tmp_path / "models" / "x") == (tmp_path / "models" / "x").resolve()
    with pytest.raises(ServiceError):
        root.check(tmp_path / "models-other")  # a prefix of the name is not "under"


def test_the_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert admin_token(None) is None
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert admin_token(None) == "from-env"
    path = tmp_path / "token"
    path.write_text("from-file\n")
    os.chmod(path, 0o600)
    assert admin_token(str(path)) == "from-file"  # the file wins over the environment
    path.write_text("\n")
    with pytest.raises(TripletrecError, match="empty"):
        admin_token(str(path))
    with pytest.raises(TripletrecError, match="cannot read"):
        admin_token(str(tmp_path / "missing"))
