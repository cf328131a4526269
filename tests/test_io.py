"""Saved models: safetensors + JSON, atomic, validated on load."""

import json

import numpy as np
import pytest

import tripletrec as tr
from tripletrec.exceptions import ModelFileError
from tripletrec.persistence import MODEL_FILE, WEIGHTS_FILE, load_model, save_model


@pytest.fixture(scope="module")
def trained(anime_tv):
    train, _ = tr.random_split(anime_tv, 0.2, 42)
    positives = train.positives(7)
    models = {
        preset: tr.TripletRecommender.from_preset(
            preset, random_state=0, epochs=2, batch_size=4096, learning_rate=0.02
        ).fit(positives)
        for preset in ("bilinear", "deep")
    }
    return models, positives


@pytest.mark.parametrize("preset", ["bilinear", "deep"])
def test_round_trip_gives_identical_scores_and_recommendations(trained, tmp_path, preset):
    models, positives = trained
    model = models[preset]
    path = model.save(tmp_path / "model", metrics={"auc": 0.5})
    loaded = tr.TripletRecommender.load(path)
    users = positives.user_map.ids[:40]
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    for a, b in zip(loaded.recommend(users, k=7), model.recommend(users, k=7)):
        np.testing.assert_array_equal(a, b)
    items = positives.item_map.ids[:5]
    np.testing.assert_array_equal(loaded.similar_items(items)[0], model.similar_items(items)[0])
    assert loaded.get_params() == model.get_params()
    assert loaded.metrics_ == {"auc": 0.5}
    assert list(loaded.item_names(loaded.item_map_.ids[:3])) == list(
        model.item_names(model.item_map_.ids[:3])
    )
    assert (loaded.seen_ != model.seen_).nnz == 0


def test_model_directory_holds_no_pickle(trained, tmp_path):
    path = trained[0]["bilinear"].save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == [MODEL_FILE, WEIGHTS_FILE]
    manifest = json.loads((path / MODEL_FILE).read_text())
    assert manifest["format"] == "tripletrec-model" and manifest["format_version"] == 1
    assert manifest["library_version"] == tr.__version__
    assert (path / WEIGHTS_FILE).read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle stream


def test_saving_over_a_model_replaces_it_atomically(trained, tmp_path):
    models, _ = trained
    target = tmp_path / "m"
    models["bilinear"].save(target)
    models["deep"].save(target)
    assert load_model(target).model == "deep"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary leftovers


def test_refuses_to_overwrite_a_directory_that_is_not_a_model(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(ModelFileError, match="not a tripletrec model directory"):
        save_model(trained[0]["bilinear"], tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_failed_save_leaves_the_old_model_intact(trained, tmp_path, monkeypatch):
    models, _ = trained
    target = models["bilinear"].save(tmp_path / "m")
    before = (target / WEIGHTS_FILE).read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("tripletrec.persistence.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        models["deep"].save(target)
    assert (target / WEIGHTS_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


@pytest.fixture
def saved(trained, tmp_path):
    return trained[0]["bilinear"].save(tmp_path / "m")


def test_truncated_weights_are_rejected(saved):
    weights = saved / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(saved)


def test_flipped_byte_is_rejected(saved):
    weights = saved / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(saved)


def test_corrupt_json_and_wrong_versions_are_rejected(saved):
    manifest_path = saved / MODEL_FILE
    manifest = json.loads(manifest_path.read_text())

    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        load_model(saved)
    manifest_path.write_text(json.dumps({**manifest, "format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a tripletrec-model file"):
        load_model(saved)
    manifest_path.write_text(json.dumps({**manifest, "n_items": manifest["n_items"] + 1}))
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(saved)
    manifest_path.write_text("{ not json")
    with pytest.raises(ModelFileError, match="corrupt JSON"):
        load_model(saved)


def test_weights_of_the_wrong_shape_are_rejected(saved):
    manifest_path = saved / MODEL_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["params"]["n_factors"] = 32
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="weights do not match the model"):
        load_model(saved)


def test_missing_directory_and_missing_files(tmp_path, saved):
    with pytest.raises(ModelFileError, match="no such model directory"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="not a model directory"):
        load_model(tmp_path / "empty")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"missing weights\.safetensors"):
        load_model(saved)


def test_a_file_written_before_a_parameter_existed_keeps_its_behaviour(anime_tv, tmp_path):
    model = tr.TripletRecommender(ranking_bias_scale=1.0, epochs=1, random_state=0)
    path = model.fit(anime_tv.positives(7)).save(tmp_path / "old")
    manifest = json.loads((path / MODEL_FILE).read_text())
    for name in ("ranking_bias_scale", "feature_weight"):  # as files were written before
        del manifest["params"][name]
    (path / MODEL_FILE).write_text(json.dumps(manifest))
    loaded = load_model(path)  # with 1.0, not today's defaults
    assert loaded.ranking_bias_scale == 1.0 != tr.TripletRecommender().ranking_bias_scale
    assert loaded.feature_weight == 1.0 != tr.TripletRecommender().feature_weight
    users = np.arange(5)
    np.testing.assert_array_equal(loaded.score_indices(users), model.score_indices(users))
