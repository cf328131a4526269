"""HTML run reports: ``tripletrec train --out`` writes report.html; ``tripletrec report``
rewrites it, or puts runs side by side. Self-contained, and every name escaped."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import tripletrec as tr
import tripletrec.config
from tripletrec.cli import main
from tripletrec.data.summary import describe
from tripletrec.data.synthetic import generate_synthetic
from tripletrec.plots import close_figure
from tripletrec.report import write_comparison_report, write_run_report
from tripletrec.report.html import cell, number, table
from tripletrec.report.run import is_metric
from tripletrec.report.samples import collect_samples, sample_user_rows

QUICK = [
    "--estimator",
    "triplet",
    "--epochs",
    "2",
    "--batch-size",
    "4096",
    "--learning-rate",
    "0.02",
    "--quiet",
]
#: Prefixed to every anime name: a name is user data, and the page must show it as text.
HOSTILE = "<script>alert(1)</script>\"'"


def hostile_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every item name of the bundled data start with :data:`HOSTILE`."""
    load = tripletrec.config.load_dataset

    def load_hostile(name, **kwargs):
        data = load(name, **kwargs)
        metadata = data.item_metadata.assign(name=HOSTILE + data.item_metadata["name"])
        return replace(data, item_metadata=metadata)

    monkeypatch.setattr(tripletrec.config, "load_dataset", load_hostile)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs on anime-tv (different sizes), and run ``a``'s report rewritten by
    ``tripletrec report``."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as monkeypatch:
        hostile_names(monkeypatch)
        base = ["train", "anime-tv", *QUICK, "--validation-fraction", "0.1"]
        assert main([*base, "--out", str(root / "a")]) == 0
        assert main([*base, "--n-factors", "16", "--out", str(root / "b")]) == 0
        first = (root / "a" / "report.html").read_text(encoding="utf-8")
        assert main(["report", str(root / "a"), "--out", str(root / "again.html")]) == 0
    return root, first


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"https?://", page)  # nothing to fetch, no link out
    assert not re.search(r"<(script|link|iframe|object|embed)\b", page, re.IGNORECASE)
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in page and "@import" not in page


def metric_cell(name: str, value: float) -> str:
    return f'<tr><td>{name}</td><td class="num">{number(value)}</td></tr>'


def test_train_writes_a_self_contained_report_with_the_run_metrics(runs):
    root, page = runs
    assert_self_contained(page)
    assert '<img src="data:image/png;base64,' in page
    metrics = json.loads((root / "a" / "metrics.json").read_text())
    for name in ("auc", "precision@10", "recall@10", "ndcg@10", "map@10"):
        assert metric_cell(name, metrics[name]) in page
        assert f"{metrics[name]:.4f}" in page  # as the command line printed it
    assert metric_cell("n_parameters", metrics["n_parameters"]) in page
    for name in ("fit_seconds", "prepare_seconds", "evaluate_seconds"):
        assert metrics[name] >= 0 and metric_cell(name, metrics[name]) in page
    # The learning curve: the PNG train wrote, and the epochs of history.json.
    curve = (root / "a" / "learning_curve.png").read_bytes()
    assert base64.b64encode(curve).decode() in page
    history = json.loads((root / "a" / "history.json").read_text())
    for record in history:
        assert f"<td>{record['epoch']}</td>" in page
        assert number(record["validation_auc"]) in page
    config = json.loads((root / "a" / "config.json").read_text())
    assert metric_cell("n_factors", config["model"]["n_factors"]) in page


def test_the_report_summarises_the_data_from_the_run_config(runs):
    _, page = runs
    summary = describe(tr.load_dataset("anime-tv"), threshold=7)
    data = page.split('<section id="data">', 1)[1].split("</section>", 1)[0]
    assert "<h2>Data: anime-tv</h2>" in data
    for name in ("n_users", "n_items", "n_interactions", "sparsity"):
        assert metric_cell(name, summary.to_dict()[name]) in data
    assert metric_cell("n_users", 4610) in data and metric_cell("n_interactions", 163_416) in data
    assert metric_cell("gini", summary.popularity.gini) in data
    figures = summary.figures()
    assert data.count('<img src="data:image/png;base64,') == len(figures) == 3
    for figure in figures.values():
        close_figure(figure)


def test_sample_users_show_escaped_names_history_and_because(runs):
    root, page = runs
    model = tr.load_model(root / "a")
    samples = collect_samples(model)
    assert len(samples.users) == 3 and samples.explain_note is None
    for user in samples.users:
        assert f"<h3>user {user.user}</h3>" in page
        assert len(user.recommendations) == 10 and user.history
        for rec in user.recommendations:
            assert rec.because and rec.item.name.startswith(HOSTILE)
            assert html.escape(rec.item.name) in page
            if rec.because[0].share >= 0.005:  # reasons shown from 1% up
                assert html.escape(rec.because[0].item.name) in page
        assert html.escape(user.history[0].name) in page
    assert "because you liked" in page
    assert HOSTILE not in page and "<script" not in page
    assert html.escape(HOSTILE, quote=True) in page  # shown as text, quotes included


def test_report_command_rewrites_the_same_report(runs):
    root, first = runs
    again = (root / "again.html").read_text(encoding="utf-8")
    assert again == first  # from disk (model, data) as from memory at the end of train


def test_report_of_two_runs_puts_them_side_by_side(runs, tmp_path, capsys):
    root, _ = runs
    out = tmp_path / "side.html"
    assert main(["report", str(root / "a"), str(root / "b"), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert len(re.findall(r"<img ", page)) == 1  # the curves of both runs, overlaid
    metrics = [json.loads((root / d / "metrics.json").read_text()) for d in "ab"]
    header = "<tr><th></th><th>a</th><th>b</th></tr>"
    assert header in page
    # Settings that differ: n_factors (128 and 16), nothing that is the same.
    diff = page.split("settings that differ", 1)[1].split("</table>", 1)[0]
    assert '<td>model.n_factors</td><td class="num">128</td><td class="num">16</td>' in diff
    assert "model.epochs" not in diff
    for name in ("auc", "ndcg@10"):
        values = [m[name] for m in metrics]
        best = max(values)
        a, b = (f"<b>{number(v)}</b>" if v == best else number(v) for v in values)
        assert f'<td>{name}</td><td class="num">{a}</td><td class="num">{b}</td>' in page
    # Same directory names under different parents: the paths label the columns.
    shutil.copytree(root / "a", tmp_path / "a")
    other = write_comparison_report([root / "a", tmp_path / "a"], tmp_path / "x.html")
    header = f"<tr><th></th><th>{root / 'a'}</th><th>{tmp_path / 'a'}</th></tr>"
    assert header in other.read_text(encoding="utf-8")


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no metrics.json; not a run directory" in err and err.count("\n") == 1
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "history.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "expected a list of epoch records" in capsys.readouterr().err
    with pytest.raises(tr.ParameterError):
        write_comparison_report([], tmp_path / "x.html")


# --------------------------------------------------------------------------- fast units
@pytest.fixture(scope="module")
def tiny():
    """Six users, five items named with markup; EASE explains exactly."""
    rows = [(u, i) for u in range(6) for i in range(5) if (u + i) % 3 != 0]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    names = pd.DataFrame({"name": [f"<b>item {i}</b> & co" for i in range(5)]}, index=range(5))
    return tr.Interactions.from_dataframe(frame, item_metadata=names)


def test_sample_users_are_light_typical_and_heavy_ties_to_the_lower_index():
    lengths = np.array([5, 0, 1, 3, 3, 9, 3, 2, 7, 1, 4])
    rows = sample_user_rows(lengths)
    # Non-empty users by (length, index): 2 9 7 3 4 6 10 0 8 5; quantiles 0.1, 0.5, 0.9.
    assert rows.tolist() == [9, 6, 8]
    assert sample_user_rows(np.zeros(4, np.int64)).tolist() == []
    assert sample_user_rows(np.array([0, 2])).tolist() == [1]


def test_samples_explain_with_the_model_and_note_when_it_cannot(tiny):
    ease = tr.EASERecommender(l2=1.0).fit(tiny)
    samples = collect_samples(ease, k=2)
    assert samples.explain_note is None
    for user in samples.users:
        for rec in user.recommendations:
            explanation = ease.explain(user.user, rec.item.item, n=3)
            assert [b.item.item for b in rec.because] == explanation.items.tolist()
            assert [b.share for b in rec.because] == explanation.shares.tolist()
            assert rec.item.name == f"<b>item {rec.item.item}</b> & co"
    popular = collect_samples(tr.PopularityRecommender().fit(tiny), k=2)
    assert popular.users and popular.users[0].recommendations
    assert popular.explain_note is not None and "because you liked" in popular.explain_note
    assert all(not rec.because for u in popular.users for rec in u.recommendations)


def test_cells_escape_text_and_format_numbers():
    assert cell("<a href='x'>") == "&lt;a href=&#x27;x&#x27;&gt;"
    assert table(["<th>"], [["<td>"]]).count("<td>") == 1  # the tag, not the text
    assert [number(v) for v in (0.81789, 3.00271, 500.418, 12345.6, 3.5e-05, 91591, 4.0)] == [
        "0.8179", "3.003", "500.4", "12,346", "3.5e-05", "91,591", "4",
    ]  # fmt: skip
    assert number(float("nan")) == "nan" and cell(True) == "True" and cell(None) == ""


def test_metric_names_are_told_from_facts():
    assert all(map(is_metric, ("auc", "mrr", "ndcg@10", "hit_rate@5")))
    assert not any(map(is_metric, ("n_users", "fit_seconds", "NDCG@10", "ndcg")))


def test_write_run_report_from_a_directory_of_another_estimator(tiny, tmp_path):
    """A run directory that train did not write (no config, no history) still reports."""
    model = tr.EASERecommender(l2=1.0).fit(tiny)
    model.save(tmp_path / "run", extra_json={"metrics.json": {"auc": 0.75, "fit_seconds": 0.5}})
    path = write_run_report(tmp_path / "run")
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "run" / "report.html"
    assert not re.search(r"https?://|<script", page)
    assert metric_cell("auc", 0.75) in page and "no config.json" in page
    assert "&lt;b&gt;item" in page and "<b>item" not in page


def test_training_a_run_on_new_data_rewrites_its_report(tmp_path):
    """``train --resume DIR --data NEW`` replaces the run directory: the report too."""
    frame = generate_synthetic(200, 60, 3000, random_state=0)
    old = frame.sample(frac=0.8, random_state=0)
    new = frame.drop(old.index).assign(user_id=lambda f: f.user_id + 1000)
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "run"
    flags = ["--estimator", "triplet", "--epochs", "2", "--n-threads", "1", "--quiet"]
    assert main(["train", str(tmp_path / "old.csv"), *flags, "--out", str(out)]) == 0
    before = (out / "report.html").read_text(encoding="utf-8")
    argv = ["train", "--resume", str(out), "--data", str(tmp_path / "new.csv"), "--quiet"]
    assert main(argv) == 0
    after = (out / "report.html").read_text(encoding="utf-8")
    assert "partial_fits" in after and "partial_fits" not in before
    assert '<td>n_users</td><td class="num">200</td>' in after  # the first fit's metrics.json
