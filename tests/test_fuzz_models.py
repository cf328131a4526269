"""Property-based tests of the fitted-model API and of loading damaged model directories.

Three small models are fitted once per module (a TripletRecommender for one epoch, a
PopularityRecommender, an EASERecommender); ``recommend``, ``score``, ``similar_items``,
``recommend_from_history`` and ``score_from_history`` then get users, items, ``k``,
exclusions and histories of every type. Saved copies of the models get byte flips,
truncations, deletions, junk files and rewritten ``model.json`` fields. Each call must give
a result of the documented shape or raise a TripletrecError with a one-line message
(``load_model``: a ModelFileError).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _fuzz import any_k, any_seed, anything, assert_one_line, jsonable, mostly, result_or_error
from hypothesis import event, given
from hypothesis import strategies as st

from tripletrec import (
    EASERecommender,
    Interactions,
    ModelFileError,
    ParameterError,
    PopularityRecommender,
    TripletrecError,
    TripletRecommender,
    load_model,
)

pytestmark = pytest.mark.filterwarnings("ignore")

N_USERS, N_ITEMS = 12, 15
USER_IDS = list(range(100, 100 + N_USERS))  # integer users, string items: both id paths
ITEM_IDS = [f"i{i}" for i in range(N_ITEMS)]
MODEL_NAMES = ("triplet", "popularity", "ease")


@pytest.fixture(scope="module")
def data() -> Interactions:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.choice(USER_IDS, 80),
            "item_id": rng.choice(ITEM_IDS, 80),
        }
    ).drop_duplicates()
    metadata = pd.DataFrame({"name": [f"Item {i}\n“{i}”" for i in ITEM_IDS]}, index=ITEM_IDS)
    return Interactions.from_dataframe(frame, item_metadata=metadata)


@pytest.fixture(scope="module")
def models(data) -> dict:
    return {
        "triplet": TripletRecommender(epochs=1, n_factors=8, batch_size=64, random_state=0).fit(
            data
        ),
        "popularity": PopularityRecommender().fit(data),
        "ease": EASERecommender().fit(data),
    }


known_users = st.sampled_from(USER_IDS)
known_items = st.sampled_from(ITEM_IDS)


def ids_like(known: st.SearchStrategy) -> st.SearchStrategy:
    """One known id, a list or array of them (maybe empty), mostly; else a list with an
    id of any kind in it, or anything at all."""
    return mostly(
        st.one_of(
            known,
            st.lists(known, max_size=4),
            st.lists(known, min_size=1, max_size=3).map(np.array),
        ),
        st.one_of(st.lists(st.one_of(known, anything), max_size=3), anything),
    )


def width(k: int) -> int:
    return min(k, N_ITEMS)


def check_ranking(items: np.ndarray, scores: np.ndarray, n_rows: int, n_cols: int) -> None:
    """Rows of raw item ids (padding -1 or None) with float32 scores, best first."""
    assert items.shape == scores.shape == (n_rows, n_cols)
    assert scores.dtype == np.float32
    padding = np.isneginf(scores)
    assert all(item in ITEM_IDS for item in items[~padding].tolist())
    assert all(item is None for item in items[padding].tolist())
    finite = np.where(padding, -np.finfo(np.float32).max, scores)
    assert (np.diff(finite, axis=1) <= 0).all(), "not best first"


@given(st.sampled_from(MODEL_NAMES), ids_like(known_users), any_k, ids_like(known_items))
def test_recommend(models, data, name, users, k, exclude):
    model = models[name]
    exclude = None if isinstance(exclude, list) and not exclude else exclude
    result = result_or_error(lambda: model.recommend(users, k=k, exclude=exclude))
    if isinstance(result, TripletrecError):
        return
    items, scores = result
    n_users = len(np.atleast_1d(np.asarray(users, dtype=object)))
    check_ranking(items, scores, n_users, width(k))
    seen = data.to_csr()
    for row, user in enumerate(np.atleast_1d(np.asarray(users, dtype=object)).tolist()):
        liked = set(data.item_map.ids[seen[data.user_map.to_index(user)[0]].indices])
        assert not liked & set(items[row].tolist()), "a seen item was recommended"


@given(st.sampled_from(MODEL_NAMES), ids_like(known_users), st.none() | ids_like(known_items))
def test_score(models, name, users, items):
    model = models[name]
    result = result_or_error(lambda: model.score(users, items))
    if not isinstance(result, TripletrecError):
        n_users = len(np.atleast_1d(np.asarray(users, dtype=object)))
        n_items = N_ITEMS if items is None else len(np.atleast_1d(np.asarray(items, dtype=object)))
        assert result.shape == (n_users, n_items) and result.dtype == np.float32
        assert np.isfinite(result).all()


@given(st.sampled_from(MODEL_NAMES), ids_like(known_items), any_k)
def test_similar_items(models, name, items, k):
    model = models[name]
    result = result_or_error(lambda: model.similar_items(items, k=k))
    if not isinstance(result, TripletrecError):
        queries = np.atleast_1d(np.asarray(items, dtype=object)).tolist()
        check_ranking(*result, len(queries), width(k))
        for row, query in enumerate(queries):
            assert query not in result[0][row].tolist()


def history() -> st.SearchStrategy:
    return mostly(
        st.one_of(
            st.lists(known_items, min_size=1, max_size=4),
            st.lists(st.one_of(known_items, st.text(max_size=2)), min_size=1, max_size=4),
            st.lists(known_items, min_size=1, max_size=3).map(np.array),
        ),
        st.one_of(st.lists(st.one_of(known_items, anything), max_size=3), anything),
    )


histories = mostly(
    st.one_of(
        st.lists(history(), min_size=1, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), history(), max_size=3),
    ),
    st.one_of(st.lists(history(), max_size=0), anything),
)


@given(st.sampled_from(MODEL_NAMES), histories, any_k, ids_like(known_items), any_seed)
def test_recommend_from_history(models, name, histories, k, exclude, seed):
    model = models[name]
    exclude = None if isinstance(exclude, list) and not exclude else exclude
    result = result_or_error(
        lambda: model.recommend_from_history(histories, k=k, exclude=exclude, random_state=seed)
    )
    if not isinstance(result, TripletrecError):
        check_ranking(*result, len(histories), width(k))


@given(st.sampled_from(MODEL_NAMES), histories, any_seed)
def test_score_from_history(models, name, histories, seed):
    model = models[name]
    result = result_or_error(lambda: model.score_from_history(histories, random_state=seed))
    if not isinstance(result, TripletrecError):
        assert result.shape == (len(histories), N_ITEMS) and result.dtype == np.float32


# ---------------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def saved(models) -> dict[str, Path]:
    """Each model saved once, with an extra JSON file (as the command line writes)."""
    with tempfile.TemporaryDirectory(prefix="tripletrec-fuzz-models-") as folder:
        paths = {}
        for name, model in models.items():
            paths[name] = model.save(
                Path(folder) / name, metrics={"auc": 0.5}, extra_json={"config.json": {"a": 1}}
            )
        yield paths


@pytest.fixture(scope="module")
def scratch() -> Path:
    with tempfile.TemporaryDirectory(prefix="tripletrec-fuzz-copy-") as folder:
        yield Path(folder)


def fresh_copy(source: Path, scratch: Path) -> Path:
    target = scratch / "model"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


def check_loads_or_model_file_error(path: Path) -> None:
    """``load_model`` gives a model that answers (or fails cleanly), or a ModelFileError."""
    try:
        model = load_model(path)
    except ModelFileError as exc:
        assert_one_line(exc)
        event("load_model raised ModelFileError")
        return
    event("load_model returned")
    result_or_error(lambda: model.recommend(USER_IDS[:2], k=3))
    result_or_error(lambda: model.similar_items(ITEM_IDS[:1], k=3))


damage = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("delete"), st.just(0), st.just(0)),
    st.tuples(st.just("empty"), st.just(0), st.just(0)),
    st.tuples(st.just("directory"), st.just(0), st.just(0)),
)


@given(
    st.sampled_from(MODEL_NAMES),
    st.integers(0, 10),
    st.lists(damage, min_size=1, max_size=3),
    st.one_of(st.none(), st.binary(max_size=16)),
)
def test_damaged_model_directories(saved, scratch, name, which, damages, junk):
    path = fresh_copy(saved[name], scratch)
    files = sorted(p.name for p in path.iterdir())
    target = path / files[which % len(files)]  # every file in the directory, in turn
    for kind, position, value in damages:
        if not target.is_file():
            break
        payload = target.read_bytes()
        at = position % max(len(payload), 1)
        if kind == "flip" and payload:
            payload = payload[:at] + bytes([payload[at] ^ value]) + payload[at + 1 :]
            target.write_bytes(payload)
        elif kind == "truncate":
            target.write_bytes(payload[:at])
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind in ("delete", "directory"):
            target.unlink()
            if kind == "directory":
                target.mkdir()
    if junk is not None:
        (path / "junk.bin").write_bytes(junk)
    check_loads_or_model_file_error(path)


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (keys and list positions), the root first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for position, child in enumerate(value[:3]):
            found += _paths(child, (*prefix, position))
    return found


@given(st.sampled_from(MODEL_NAMES), st.data())
def test_model_json_with_any_field_replaced_or_removed(saved, scratch, name, draw):
    path = fresh_copy(saved[name], scratch)
    manifest = json.loads((path / "model.json").read_text())
    where = draw.draw(st.sampled_from(_paths(manifest)[1:]), label="field")
    parent = manifest
    for key in where[:-1]:
        parent = parent[key]
    if draw.draw(st.booleans(), label="remove") and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = draw.draw(jsonable(), label="value")
    (path / "model.json").write_text(json.dumps(manifest))
    check_loads_or_model_file_error(path)


@given(st.sampled_from(MODEL_NAMES), jsonable())
def test_model_json_of_any_json_value(saved, scratch, name, value):
    path = fresh_copy(saved[name], scratch)
    (path / "model.json").write_text(json.dumps(value))
    check_loads_or_model_file_error(path)


# ---------------------------------------------------------------------- the bugs found
@pytest.mark.parametrize(
    "ids", [[[100, 101]], [[100], [101, 102]], np.array([[100, 101]]), {"a": 1}, {100, 101}]
)
def test_nested_or_unhashable_ids_are_parameter_errors(models, ids):
    for model in models.values():
        for call in (
            lambda: model.recommend(ids),  # noqa: B023
            lambda: model.score(ids),  # noqa: B023
            lambda: model.score(USER_IDS[:1], ids),  # noqa: B023
            lambda: model.similar_items(ids),  # noqa: B023
            lambda: model.recommend(USER_IDS[:1], exclude=ids),  # noqa: B023
            lambda: model.recommend_from_history([[ITEM_IDS[0], ids]]),  # noqa: B023
        ):
            with pytest.raises(ParameterError, match="ids must be"):
                call()


def test_similar_items_with_a_huge_k_returns_every_item(models):
    for model in models.values():
        items, scores = model.similar_items(ITEM_IDS[:2], k=10**30)
        assert items.shape == scores.shape == (2, N_ITEMS)


def test_model_json_with_a_duplicated_id_is_a_model_file_error(saved, scratch):
    path = fresh_copy(saved["popularity"], scratch)
    manifest = json.loads((path / "model.json").read_text())
    manifest["user_ids"][1] = manifest["user_ids"][0]
    (path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="user_ids"):
        load_model(path)


@pytest.mark.parametrize(
    "field, value",
    [("user_ids", 5), ("n_users", "12"), ("params", []), ("fit", 3), ("item_metadata", [1])],
)
def test_model_json_fields_of_the_wrong_type_are_model_file_errors(saved, scratch, field, value):
    path = fresh_copy(saved["triplet"], scratch)
    manifest = json.loads((path / "model.json").read_text())
    manifest[field] = value
    (path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=field):
        load_model(path)


def test_bad_parameters_in_model_json_are_model_file_errors(saved, scratch):
    path = fresh_copy(saved["triplet"], scratch)
    manifest = json.loads((path / "model.json").read_text())
    manifest["params"]["n_factors"] = 9  # the weights have 8
    (path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="weights do not match") as caught:
        load_model(path)
    assert_one_line(caught.value)  # torch's size-mismatch report spans several lines


@pytest.mark.parametrize("name", ["model.json", "weights.safetensors"])
def test_unreadable_model_files_are_model_file_errors(saved, scratch, monkeypatch, name):
    path = fresh_copy(saved["popularity"], scratch)
    if os.geteuid() != 0:  # root reads files whatever their mode
        (path / name).chmod(0)
    else:
        real_open = open

        def refuse(file, *args, **kwargs):
            if Path(file).name == name:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refuse)
        monkeypatch.setattr("io.open", refuse)  # what pathlib opens files with
    with pytest.raises(ModelFileError, match=f"{name}: cannot read"):
        load_model(path)


@given(st.one_of(st.text(max_size=20), st.text(min_size=250, max_size=300)))
def test_load_model_of_any_path(scratch, path):
    with pytest.raises(ModelFileError) as caught:
        load_model(scratch / "none" / path.replace("/", "_"))  # never a real directory
    assert_one_line(caught.value)


def test_load_model_of_a_name_too_long_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model(tmp_path / ("a" * 300))


def test_a_path_with_a_newline_is_quoted_in_the_message(tmp_path):
    with pytest.raises(ModelFileError, match=r"a\\nb'?: no such model directory") as caught:
        load_model(tmp_path / "a\nb")
    assert_one_line(caught.value)


def test_item_metadata_with_ragged_columns_is_a_model_file_error(saved, scratch):
    path = fresh_copy(saved["triplet"], scratch)
    manifest = json.loads((path / "model.json").read_text())
    manifest["item_metadata"]["columns"] = [[], []]
    (path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="item_metadata is not a table"):
        load_model(path)
