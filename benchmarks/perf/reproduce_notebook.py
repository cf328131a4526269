"""Reproduce the reference notebook's models, then train the same models tripletrec's way.

For each dataset (anime-tv, bundled; MovieLens-100k, read from ``../shared/data`` when it is
there) and each model (bilinear cosine, deep MLP), trains with

* the notebook's settings (presets ``notebook-bilinear`` / ``notebook-deep``: batch 64,
  Adam 1e-3, 10 / 20 epochs), and
* tripletrec's settings (presets ``bilinear`` / ``deep``: large batches, larger steps),

over several seeds, on the notebook's protocol (random 80/20 row split with seed 42;
positives rating > 7 on anime-tv, >= 4 on MovieLens; full ranking without the user's train
positives). Fit time is the ``fit`` call alone. Writes ``results/reproduce_notebook.md`` and
``.json``.

Run: ``python benchmarks/perf/reproduce_notebook.py [--seeds 3]
[--datasets anime-tv,movielens-100k]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import tripletrec as tr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import test_parts
from _results import RESULTS, command, write_results

METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10")
#: AUC measured by an independent re-implementation of the notebook (reference-results.md).
REFERENCE_AUC = {
    ("anime-tv", "bilinear"): 0.810,
    ("anime-tv", "deep"): 0.841,
    ("movielens-100k", "bilinear"): 0.924,
    ("movielens-100k", "deep"): 0.920,
}


def run(preset: str, train: tr.Interactions, test: tr.Interactions, seed: int) -> dict:
    model = tr.TripletRecommender.from_preset(preset, random_state=seed).fit(train)
    result = tr.evaluate(model, train, test, METRICS)
    return {"seed": seed, "fit_seconds": model.fit_seconds_, **{m: result[m] for m in METRICS}}


def summarise(runs: list[dict]) -> dict:
    keys = ("fit_seconds", *METRICS)
    return {
        **{f"{k}_mean": float(np.mean([r[k] for r in runs])) for k in keys},
        **{f"{k}_std": float(np.std([r[k] for r in runs])) for k in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="anime-tv,movielens-100k")
    parser.add_argument("--out", default=str(RESULTS / "reproduce_notebook"))
    args = parser.parse_args()

    rows = []
    for dataset, train, test in test_parts(args.datasets):
        for model in ("bilinear", "deep"):
            per_setting = {}
            for setting, preset in (("notebook", f"notebook-{model}"), ("tripletrec", model)):
                runs = [run(preset, train, test, seed) for seed in range(args.seeds)]
                per_setting[setting] = summarise(runs)
                row = {
                    "dataset": dataset,
                    "model": model,
                    "settings": setting,
                    "preset": preset,
                    "params": tr.PRESETS[preset],
                    "runs": runs,
                    **per_setting[setting],
                }
                rows.append(row)
                print(
                    f"  {model:<8} {setting:<10} AUC {row['auc_mean']:.4f} +- {row['auc_std']:.4f}"
                    f"  NDCG@10 {row['ndcg@10_mean']:.4f}  fit {row['fit_seconds_mean']:.2f} s",
                    flush=True,
                )
            speedup = (
                per_setting["notebook"]["fit_seconds_mean"]
                / per_setting["tripletrec"]["fit_seconds_mean"]
            )
            rows[-1]["speedup_vs_notebook"] = speedup
            rows[-1]["auc_gain_vs_notebook"] = (
                per_setting["tripletrec"]["auc_mean"] - per_setting["notebook"]["auc_mean"]
            )
            print(f"  {model:<8} speed-up {speedup:.1f}x", flush=True)

    environment = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tripletrec": tr.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "seeds": args.seeds,
        "date": time.strftime("%Y-%m-%d"),
    }
    write_results(Path(args.out), rows, environment, markdown)


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The notebook's models: its settings vs tripletrec's",
        "",
        f"`{command(__file__)}` — {environment['seeds']} seeds, mean +- std; "
        f"torch {environment['torch']} on {environment['torch_threads']} CPU threads, "
        f"{environment['date']}. Fit = the `fit` call only. Reference = an independent "
        "re-implementation of the notebook on the same protocol.",
        "",
        "| data | model | settings | AUC | reference AUC | P@10 | R@10 | NDCG@10 | MAP@10 "
        "| fit s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        reference = REFERENCE_AUC.get((row["dataset"], row["model"]))
        ref_text = f"{reference:.3f}" if reference and row["settings"] == "notebook" else ""
        speedup = f"{row['speedup_vs_notebook']:.1f}x" if "speedup_vs_notebook" in row else ""
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['settings']} (`{row['preset']}`) "
            f"| {row['auc_mean']:.4f} +- {row['auc_std']:.4f} | {ref_text} "
            f"| {row['precision@10_mean']:.3f} | {row['recall@10_mean']:.3f} "
            f"| {row['ndcg@10_mean']:.3f} | {row['map@10_mean']:.3f} "
            f"| {row['fit_seconds_mean']:.2f} | {speedup} |"
        )
    lines += ["", "Presets:", ""]
    for preset in sorted({row["preset"] for row in rows}):
        lines.append(f"- `{preset}`: `{json.dumps(tr.PRESETS[preset])}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
