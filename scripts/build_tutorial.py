"""Build ``docs/tutorial.ipynb``, the reference notebook's story told with tripletrec.

The notebook's cells are written here as plain strings, so a change to the tutorial is
reviewed as a change to this file. Without ``--execute`` the notebook is written without
outputs; with it, the notebook is executed (nbclient, the ``python3`` kernel of the
running interpreter) and written with its outputs and inline plots, which is how the
committed copy is made::

    python scripts/build_tutorial.py --execute      # full settings (a few minutes)
    TRIPLETREC_TUTORIAL_QUICK=1 python scripts/build_tutorial.py --execute --out /tmp/t.ipynb

``tests/test_tutorial.py`` checks that the committed notebook's cells are the ones this
script builds and executes it with ``TRIPLETREC_TUTORIAL_QUICK=1`` (few epochs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "tutorial.ipynb"
#: Environment variable that switches the tutorial to few epochs and small settings.
QUICK_VARIABLE = "TRIPLETREC_TUTORIAL_QUICK"
#: Seconds one cell may run before execution fails.
CELL_TIMEOUT = 900

try:
    from tripletrec._files import write_text_atomic
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT / "src"))
    from tripletrec._files import write_text_atomic

# Each cell is ("markdown" | "code", source). Sources start at column 0 inside the
# triple quotes; the first and last newlines are stripped.
# fmt: off
CELLS: list[tuple[str, str]] = [
    ("markdown", r"""
# tripletrec tutorial: the triplet-loss notebook, retold

tripletrec grew out of a teaching notebook, *Triplet Loss for Implicit Feedback Neural
Recommender Systems* (Keras), here run on the Kaggle anime ratings. It builds a
recommender from positive feedback only: a user and an item embedding compared by cosine
(the *match model*), trained through a *triplet model* that scores a user, an item they
liked and a random other item, and pushes the liked one above the other by a margin. It
measures the model by its ROC AUC before and after training, trains a deeper match model
the same way, and ends with a list of possible extensions: ranking metrics, hard negatives,
side features, factorization machines.

This tutorial tells the same story with tripletrec's public API, then does the extensions
and compares tripletrec's default model with EASE and LightFM. Every number and plot below
was computed when the notebook was executed (`python scripts/build_tutorial.py --execute`);
the test suite runs it again with few epochs (`TRIPLETREC_TUTORIAL_QUICK=1`).
"""),
    ("markdown", r"""
## Parameters

Training lengths, taken from the environment so that the tests can run the whole notebook
in seconds. With `TRIPLETREC_TUTORIAL_QUICK=1` every model trains for one or two epochs:
the numbers are then those of barely trained models.
"""),
    ("code", r"""
import os

QUICK = os.environ.get("TRIPLETREC_TUTORIAL_QUICK", "") == "1"
SEED = 0                                      # every model's random_state
NOTEBOOK_BILINEAR_EPOCHS = 1 if QUICK else 10   # the notebook trained 10 epochs ...
NOTEBOOK_DEEP_EPOCHS = 1 if QUICK else 20       # ... and 20 for the deep model
# Epochs of the other tripletrec models: each preset's own unless quick.
EPOCHS = {"epochs": 1} if QUICK else {}
LIGHTFM_EPOCHS = 1 if QUICK else 40
print(f"quick: {QUICK}")
"""),
    ("code", r"""
%matplotlib inline
import warnings

# tqdm's notebook progress bars need ipywidgets; without it tqdm warns when tripletrec
# imports it, and falls back to text bars
warnings.filterwarnings("ignore", message="IProgress not found")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import tripletrec as tr
from tripletrec.data.datasets import anime_recipe, dataset_features, load_anime_5k_tables
from tripletrec.data.splits import cold_item_split
from tripletrec.evaluation.metrics import ranking_metrics
from tripletrec.models.interface import scoring
from tripletrec.models.scorers import TripletNet
from tripletrec.training.losses import margin_loss

pd.set_option("display.precision", 4)
plt.rcParams["figure.dpi"] = 80
print("tripletrec", tr.__version__)
"""),
    ("markdown", r"""
## 1. The data and the notebook's recipe

The notebook used the Kaggle *Anime Recommendations Database* (73,515 users): every
user's list of anime with a rating from 1 to 10, or -1 for "watched, not rated". Its
recipe: keep the TV anime with more than 5,000 list entries, drop the -1 rows, re-index
users and items to contiguous integers.

tripletrec bundles a 5,000-user random sample of that data (CC0), as three tables: the
ratings, the full lists (`history`, rated or not) and the anime. On the sample the
popularity threshold scales to 5,000 x 5,000 / 73,515 = 340 list entries.
`tripletrec.data.datasets.load_kaggle_anime` applies the same recipe to the full Kaggle
files when you have them.
"""),
    ("code", r"""
ratings, history, anime = load_anime_5k_tables()
print(f"{len(ratings):,} ratings and {len(history):,} list entries of "
      f"{history.user_id.nunique():,} users; {len(anime):,} anime")
anime.head()
"""),
    ("markdown", r"""
The Kaggle file has one row per list entry with -1 for the unrated ones; the sample keeps
those apart, in `history`. Putting them back gives the Kaggle layout, and the recipe
(`anime_recipe`: TV anime, popularity > 340, rating > -1) gives the same interactions as
`load_dataset("anime-tv")`.
"""),
    ("code", r"""
kaggle_layout = history.merge(ratings, on=["user_id", "item_id"], how="left")
kaggle_layout["rating"] = kaggle_layout["rating"].fillna(-1).astype(int)
print(f"-1 rows (watched, not rated): {(kaggle_layout.rating == -1).sum():,}")

from_kaggle_layout = anime_recipe(kaggle_layout, history, anime, item_type="TV",
                                  min_popularity=340)
data = tr.load_dataset("anime-tv")
print("recipe on the Kaggle layout:", from_kaggle_layout)
print("load_dataset('anime-tv'):   ", data)
assert len(from_kaggle_layout) == len(data)
assert set(from_kaggle_layout.item_map.ids) == set(data.item_map.ids)
"""),
    ("markdown", r"""
`Interactions` holds the re-indexed arrays (`users`, `items`, `ratings`) and the maps
between raw ids and indices both ways (`user_map`, `item_map`); the anime table rides
along as `item_metadata`, row `i` for item index `i`.
"""),
    ("code", r"""
print("users", data.users[:5], "items", data.items[:5], "ratings", data.ratings[:5])
print("raw item ids of item indices 0-4:", data.item_map.to_raw(np.arange(5)))
print("item index of Death Note (raw id 6):", data.item_map.to_index([6]))
data.item_metadata[["name", "genre", "episodes", "members", "popularity"]].head()
"""),
    ("markdown", r"""
What the matrix looks like: how the ratings are spread, how concentrated popularity is
(a long tail), and how long users' histories are.
"""),
    ("code", r"""
# The same summary as `tripletrec data describe anime-tv`; its figures show inline here.
summary = tr.describe(data, threshold=7)
print(summary.to_text())
figures = summary.figures()
"""),
    ("code", r"""
n_ratings_per_item = np.bincount(data.items, minlength=data.n_items)
most_rated = np.argsort(-n_ratings_per_item, kind="stable")[:10]
pd.DataFrame({
    "anime": data.item_metadata["name"].to_numpy()[most_rated],
    "ratings": n_ratings_per_item[most_rated],
    "mean rating": [data.ratings[data.items == i].mean() for i in most_rated],
})
"""),
    ("markdown", r"""
## 2. Train / test split and implicit feedback

As in the notebook: a random 80 / 20 split of the rating rows with seed 42
(`tr.random_split` draws exactly the rows of scikit-learn's
`train_test_split(test_size=0.2, random_state=42)`), then only the ratings above 7 are
kept as positive feedback. Both parts keep the full id maps, so users and items have the
same index in each.
"""),
    ("code", r"""
train_ratings, test_ratings = tr.random_split(data, test_size=0.2, random_state=42)
train, test = train_ratings.positives(7), test_ratings.positives(7)
print(f"train: {len(train_ratings):,} ratings -> {len(train):,} positives")
print(f"test:  {len(test_ratings):,} ratings -> {len(test):,} positives")

try:
    from sklearn.model_selection import train_test_split
except ImportError:
    print("(scikit-learn is not installed: the comparison with train_test_split is skipped)")
else:
    sk_train, _ = train_test_split(np.arange(len(data)), test_size=0.2, random_state=42)
    print("same rows as scikit-learn's train_test_split:",
          np.array_equal(train_ratings.users, data.users[sk_train])
          and np.array_equal(train_ratings.items, data.items[sk_train]))

train_matrix, test_matrix = train.to_csr(), test.to_csr()   # users x items, binary
"""),
    ("markdown", r"""
**The protocol.** For every user with at least one test positive, rank every anime except
the user's training positives, and measure how high the test positives come.
`tr.evaluate(model, train, test, metrics)` does this for a fitted model. For score
matrices that did not come from a fitted tripletrec model (an untrained network, LightFM
below) the same computation is `ranking_metrics(scores, test_matrix, train_matrix)`,
averaged over the users that have a test positive:
"""),
    ("code", r"""
def full_ranking(scores, metrics=("auc",)):
    # tr.evaluate's protocol for a (n_users, n_items) score matrix
    per_user = ranking_metrics(scores, test_matrix, train_matrix, metrics=list(metrics))
    return {name: float(np.nanmean(values)) for name, values in per_user.items()}

print(f"{(np.diff(test_matrix.indptr) > 0).sum():,} users have a test positive")
"""),
    ("markdown", r"""
## 3. The triplet model: margin loss, cosine similarity, shared weights

The notebook's match model embeds user `u` and item `i` in 64 dimensions and scores them by
the cosine of the two vectors (Keras' `Dot(normalize=True)`). The triplet model takes
`(u, i+, i-)`, a positive and a uniformly drawn negative item, scores both pairs with the
*same* embeddings and minimises the margin loss

$$\max(0,\ m - \cos(u, i^+) + \cos(u, i^-)),\quad m = 1.$$

In tripletrec the match model is a `Scorer` (here `BilinearScorer`) and the triplet
model is `TripletNet`, which holds the scorer itself: the two share their weights because
they are the same tensors. The preset `notebook-bilinear` has the notebook's settings
(Adam with its default step 1e-3, batches of 64, 10 epochs).
"""),
    ("code", r"""
print(tr.PRESETS["notebook-bilinear"])
bilinear = tr.TripletRecommender.from_preset(
    "notebook-bilinear", epochs=NOTEBOOK_BILINEAR_EPOCHS, random_state=SEED)

# The network as fit builds it, before any training step.
untrained = bilinear.build_module(data.n_users, data.n_items,
                                  torch.Generator().manual_seed(SEED))
triplet_model = TripletNet(untrained)
print(untrained)
print("parameters:", sum(p.numel() for p in untrained.parameters()),
      f"= ({data.n_users} users + {data.n_items} items) x 64")
print("the triplet model's weights are the match model's:",
      all(a is b for a, b in zip(triplet_model.parameters(), untrained.parameters())))
"""),
    ("markdown", r"""
The triplet model on a few training triplets, with random negatives as the notebook draws
them:
"""),
    ("code", r"""
rng = np.random.default_rng(SEED)
users = torch.as_tensor(train.users[:5])
positives = torch.as_tensor(train.items[:5])
negatives = torch.as_tensor(rng.integers(0, data.n_items, size=5))
with torch.no_grad():
    positive_scores, negative_scores = triplet_model(users, positives, negatives)
print("cos(u, i+):", positive_scores.numpy().round(3))
print("cos(u, i-):", negative_scores.numpy().round(3))
print(f"margin loss: {float(margin_loss(positive_scores, negative_scores, margin=1.0)):.4f}")
"""),
    ("markdown", r"""
### AUC of the untrained model

With random embeddings the scores carry no information, so a test positive is ranked
above a random other item half of the time: the AUC is close to 0.5.
"""),
    ("code", r"""
def all_scores(scorer):
    # every user against every item, as the model ranks them (eval mode, no autograd)
    with scoring(scorer):
        return scorer.score_all(torch.arange(data.n_users), for_ranking=True).numpy()

untrained_scores = all_scores(untrained)
untrained_metrics = full_ranking(untrained_scores, ["auc", "precision@10", "recall@10",
                                                    "map@10", "ndcg@10"])
print(f"untrained AUC: {untrained_metrics['auc']:.4f}")
"""),
    ("markdown", r"""
### Training

The notebook re-sampled the negatives every epoch and printed the test AUC after each
one. tripletrec draws each epoch's negatives in one vectorised pass; `fit(on_epoch_end=)`
calls back after every epoch, which is where this tutorial records the test AUC, for the
plot only (to *choose* anything, epochs included, use a validation split of the training
positives: `fit(validation=tr.validation_split(train, 0.1)[1], patience=...)`).
"""),
    ("code", r"""
def record_test_auc(model):
    def on_epoch_end(epoch, record):
        record["test_auc"] = tr.evaluate(model, train, test, ["auc"])["auc"]
    return on_epoch_end

bilinear.fit(train, on_epoch_end=record_test_auc(bilinear))
pd.DataFrame(bilinear.history_).set_index("epoch")[["loss", "test_auc"]]
"""),
    ("code", r"""
trained_scores = bilinear.score_indices(np.arange(data.n_users))
trained_metrics = tr.evaluate(bilinear, train, test, ["auc", "precision@10", "recall@10",
                                                      "map@10", "ndcg@10"])
print(f"AUC: untrained {untrained_metrics['auc']:.4f} -> trained {trained_metrics['auc']:.4f}")
# the score-matrix route gives tr.evaluate's figures
assert np.isclose(full_ranking(trained_scores)["auc"], trained_metrics["auc"])
"""),
    ("markdown", r"""
What training did to the scores: for every user, the cosines of their test positives
against those of the items that are positive in neither part ("negatives", most of them
never rated by the user). Untrained, both are the same bump around 0; trained, the
positives move up and apart.
"""),
    ("code", r"""
is_test = test_matrix.toarray() > 0
is_negative = ~is_test & ~(train_matrix.toarray() > 0)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
for axis, scores, title in ((axes[0], untrained_scores, "untrained"),
                            (axes[1], trained_scores, "trained")):
    bins = np.linspace(scores.min(), scores.max(), 60)
    axis.hist(scores[is_negative], bins=bins, density=True, alpha=0.6, label="negatives")
    axis.hist(scores[is_test], bins=bins, density=True, alpha=0.6, label="test positives")
    axis.set(title=f"{title} model", xlabel="cosine score", ylabel="density")
    axis.legend()
history = pd.DataFrame(bilinear.history_)
axes[2].plot([0, *history.epoch], [untrained_metrics["auc"], *history.test_auc], marker="o")
axes[2].set(title="learning curve (epoch 0: untrained)", xlabel="epoch", ylabel="test AUC")
axes[2].grid(alpha=0.3)
axes[2].xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
"""),
    ("markdown", r"""
### Recommendations with names

`recommend` takes raw user ids and returns raw item ids (the user's training positives
left out); `item_names` reads the names from the item metadata. User 1's best-rated
anime, then the model's top 10, marked when they are among the user's test positives:
"""),
    ("code", r"""
user = 1
rated = train_ratings.subset(train_ratings.users == data.user_map.to_index([user])[0])
best = np.argsort(-rated.ratings, kind="stable")[:8]
print(f"user {user} rated highly:",
      ", ".join(bilinear.item_names(rated.item_map.to_raw(rated.items[best]))))

items, scores = bilinear.recommend([user], k=10)
held_out = set(test.item_map.to_raw(test.items[test.users == data.user_map.to_index([user])[0]]))
pd.DataFrame({"anime": bilinear.item_names(items[0]), "score": scores[0],
              "a test positive": [item in held_out for item in items[0]]})
"""),
    ("code", r"""
similar, similarity = bilinear.similar_items([6], k=6)   # 6: Death Note
pd.DataFrame({"anime": bilinear.item_names(similar[0]), "cosine": similarity[0]})
"""),
    ("markdown", r"""
## 4. The deep match model

The notebook's second model replaces the cosine by a small network: the user (32-d) and
item (64-d) embeddings are concatenated and fed to a hidden layer of 128 ReLU units with
dropout 0.1, whose output unit is the score. It is trained through the same triplet model
with a margin of 0.5 (preset `notebook-deep`, 20 epochs in the notebook).
"""),
    ("code", r"""
print(tr.PRESETS["notebook-deep"])
deep = tr.TripletRecommender.from_preset("notebook-deep", epochs=NOTEBOOK_DEEP_EPOCHS,
                                         random_state=SEED)
deep_untrained = deep.build_module(data.n_users, data.n_items,
                                   torch.Generator().manual_seed(SEED))
deep_untrained_auc = full_ranking(all_scores(deep_untrained))["auc"]
deep.fit(train, on_epoch_end=record_test_auc(deep))
print(deep.module_)
print("parameters:", sum(p.numel() for p in deep.module_.parameters()))
deep_metrics = tr.evaluate(deep, train, test, ["auc", "precision@10", "recall@10",
                                               "map@10", "ndcg@10"])
print(f"deep model AUC: untrained {deep_untrained_auc:.4f} -> trained "
      f"{deep_metrics['auc']:.4f} (bilinear: {trained_metrics['auc']:.4f})")
"""),
    ("code", r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for model, label, before in ((bilinear, "bilinear cosine", untrained_metrics["auc"]),
                             (deep, "deep MLP", deep_untrained_auc)):
    history = pd.DataFrame(model.history_)
    axes[0].plot(history.epoch, history.loss, marker="o", label=label)
    axes[1].plot([0, *history.epoch], [before, *history.test_auc], marker="o", label=label)
axes[0].set(title="training loss", xlabel="epoch", ylabel="margin loss")
axes[1].set(title="test AUC (epoch 0: untrained)", xlabel="epoch", ylabel="AUC")
for axis in axes:
    axis.grid(alpha=0.3)
    axis.legend()
    axis.xaxis.get_major_locator().set_params(integer=True)   # epochs are whole
fig.tight_layout()
"""),
    ("markdown", r"""
In this run the deep model ends above the bilinear one, as in the notebook; it also trained
twice as many epochs. Both stay below what other models reach on the same data (section 6).
"""),
    ("markdown", r"""
## 5. Extensions

The notebook closed with a list of things to try. Each is a parameter or a call in
tripletrec.

### 5.1 Ranking metrics: precision@k, recall@k, MAP, NDCG

AUC weighs every position in the ranking alike; a user sees the first few. Precision@k is
the share of the top k that are test positives, recall@k the share of the user's test
positives in the top k, MAP@k averages the precision at each hit, NDCG@k discounts each
hit by the log of its rank (`docs/metrics.md` has the exact formulas).
"""),
    ("code", r"""
pd.DataFrame({"untrained": untrained_metrics, "bilinear (notebook)": trained_metrics,
              "deep (notebook)": deep_metrics}).T.drop(columns="n_users", errors="ignore")
"""),
    ("code", r"""
cutoffs = [1, 2, 3, 5, 10, 15, 20]
names = [f"{m}@{k}" for m in ("precision", "recall") for k in cutoffs]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for model, label in ((bilinear, "bilinear"), (deep, "deep")):
    result = tr.evaluate(model, train, test, names)
    for axis, metric in zip(axes, ("precision", "recall")):
        axis.plot(cutoffs, [result[f"{metric}@{k}"] for k in cutoffs], marker="o", label=label)
for axis, metric in zip(axes, ("precision", "recall")):
    axis.set(title=f"{metric}@k", xlabel="k", ylabel=metric)
    axis.grid(alpha=0.3)
    axis.legend()
fig.tight_layout()
"""),
    ("markdown", r"""
### 5.2 Hard negatives and WARP

A uniformly drawn negative is soon easy: the model already ranks it far below the
positive, the hinge is zero and the triplet teaches nothing. Harder negatives keep the
gradient alive where the ranking is wrong:

* `negatives="exclude_positives"`: never draw one of the user's own positives as a
  negative (the notebook's sampler sometimes does);
* `loss="adaptive_hinge"`: draw `n_negatives` and use the highest-scoring one;
* `loss="warp"` (Weston et al. 2011): draw until one violates the margin, and weigh the
  loss by the rank that the number of draws implies.

All four below are the bilinear cosine model with tripletrec's training settings (preset
`bilinear`: batches of 4,096, step 0.02), only the negatives and the loss changed.
"""),
    ("code", r"""
METRICS = ["auc", "precision@10", "map@10", "ndcg@10"]
negative_settings = {
    "margin, uniform negatives (the notebook)": {},
    "margin, never a positive": {"negatives": "exclude_positives"},
    "adaptive hinge, hardest of 5": {"loss": "adaptive_hinge", "n_negatives": 5},
    "WARP, up to 10 draws": {"loss": "warp", "n_negatives": 10},
}
negative_results = {}
for label, settings in negative_settings.items():
    model = tr.TripletRecommender.from_preset("bilinear", **settings, **EPOCHS,
                                              random_state=SEED).fit(train)
    negative_results[label] = tr.evaluate(model, train, test, METRICS)
pd.DataFrame(negative_results).T.drop(columns="n_users")
"""),
    ("markdown", r"""
In this run the adaptive hinge gives the best top of the list (precision, MAP and NDCG at
10) for a little AUC: it trains on the items the model wrongly ranks high, which is what the
top of a ranking is made of. Never drawing a positive changes little here, and WARP with
these settings does not beat the plain margin loss; tripletrec's default (section 6) drops
sampling altogether and uses the softmax over every item.
"""),
    ("markdown", r"""
### 5.3 Side features

What we know about the anime (genres, type, number of episodes, size of its MyAnimeList
community) can enter the model: each item's vector becomes its own (identity) embedding
plus `feature_weight` times the mean of its feature embeddings, as in LightFM. A
`Features` table declares the columns; `dataset_features` has anime-tv's.
"""),
    ("code", r"""
_, item_features = dataset_features("anime-tv", data)
print(item_features.spec())
item_features.table[item_features.columns].head()
"""),
    ("markdown", r"""
For users and anime seen in training, features add little: their identity embeddings
have learned from their ratings already. Features matter for anime the model has never
seen.
`cold_item_split` holds out a fifth of the anime with all their positives; the
`cold-start` preset (identity dropout, full feature weight) learns to represent items by
their features, `add_items` adds the held-out anime from their features without
retraining, and `evaluate(..., items=cold)` ranks only those for each user. A model
without features can only guess there (AUC 0.5).
"""),
    ("code", r"""
warm_train, cold_test = cold_item_split(train, 0.2, random_state=SEED)
cold = np.setdiff1d(train.item_map.ids, warm_train.item_map.ids)
print(f"{len(cold)} anime held out; the model trains on {warm_train.n_items}")

feature_results = {}
plain = tr.TripletRecommender(**EPOCHS, random_state=SEED).fit(train)
feature_results["default, no features"] = tr.evaluate(plain, train, test, METRICS)
with_features = tr.TripletRecommender(**EPOCHS, random_state=SEED).fit(
    train, item_features=item_features)
feature_results["default + item features"] = tr.evaluate(with_features, train, test, METRICS)

cold_start = tr.TripletRecommender.from_preset("cold-start", **EPOCHS, random_state=SEED)
cold_start.fit(warm_train, item_features=item_features)
cold_start.add_items(item_features.for_ids(cold))
cold_results = {"cold-start + item features":
                tr.evaluate(cold_start, warm_train, cold_test, METRICS, items=cold)}
pd.DataFrame(feature_results).T.drop(columns="n_users")
"""),
    ("markdown", r"""
The most watched of the held-out anime, and the known anime whose vectors are nearest to
its vector, made of its features alone:
"""),
    ("code", r"""
# the held-out anime with the most positives, and the known anime nearest to it
counts = np.bincount(cold_test.items, minlength=cold_test.n_items)
new_anime = cold[np.argmax(counts[cold_test.item_map.to_index(cold)])]
names = data.item_metadata["name"]   # the model's metadata has no names for added items
print("never seen in training:", names[new_anime], "-", item_features.table.genre[new_anime])
similar, similarity = cold_start.similar_items([new_anime], k=cold_start.n_items_)
known = ~np.isin(similar[0], cold)
pd.DataFrame({"known anime": names[similar[0][known][:6]].to_numpy(),
              "cosine": similarity[0][known][:6],
              "genre": item_features.table.genre[similar[0][known][:6]].to_numpy()})
"""),
    ("markdown", r"""
### 5.4 The factorization machine

A factorization machine (Rendle 2010) scores a user and an item from all their features
at once, identities included: linear terms plus the factorised interactions between every
pair of features, in O(k n). `model="fm"` trains one through the same triplet machinery;
with the `cold-start` settings it ranks the held-out anime as well.
"""),
    ("code", r"""
fm = tr.TripletRecommender.from_preset("cold-start", model="fm", **EPOCHS, random_state=SEED)
fm.fit(train, item_features=item_features)
feature_results["factorization machine + item features"] = tr.evaluate(fm, train, test,
                                                                      METRICS)
fm_cold = tr.TripletRecommender.from_preset("cold-start", model="fm", **EPOCHS,
                                            random_state=SEED)
fm_cold.fit(warm_train, item_features=item_features)
fm_cold.add_items(item_features.for_ids(cold))
cold_results["factorization machine + item features"] = tr.evaluate(
    fm_cold, warm_train, cold_test, METRICS, items=cold)

print("known anime (the test split):")
display(pd.DataFrame(feature_results).T.drop(columns="n_users"))
print(f"the {len(cold)} held-out anime, ranked from their features alone:")
display(pd.DataFrame(cold_results).T.drop(columns="n_users"))
"""),
    ("markdown", r"""
Known anime gain a few thousandths from their features at most. The held-out ones, which
the model has never seen rated, are ranked from their features well above chance (AUC 0.5);
the factorization machine does as well as the cold-start preset there, and less well on the
known anime. `docs/features.md` and `benchmarks/perf/cold_start.py` have the measured figures
over several seeds.
"""),
    ("markdown", r"""
## 6. The default preset against EASE and LightFM

Everything above trains the notebook's models. `TripletRecommender()` without arguments
is tripletrec's `default` preset: a dot product with item biases, 128 factors, the softmax
over the whole catalogue instead of the margin loss, weight decay with a max-norm bound and
a decaying step (chosen on validation splits; `docs/models.md`). Two strong references:

* **EASE** (Steck 2019), a closed-form item-item model, in tripletrec as
  `tr.EASERecommender`. Its one parameter, `l2`, is chosen here on a validation split of
  the training positives, never on the test part.
* **LightFM** with the WARP loss (40 epochs, step 0.02, 64 factors, as in
  `benchmarks/perf/compare.py`), when it is installed (`pip install lightfm`; it is optional).
  Its scores go through the same `full_ranking`.

All rank the same items for the same users with the same metric code.
"""),
    ("code", r"""
fit_part, validation = tr.validation_split(train, 0.1, random_state=SEED)
l2_grid = [10.0, 30.0, 100.0, 200.0, 500.0, 1000.0, 3000.0]
validation_ndcg = {l2: tr.evaluate(tr.EASERecommender(l2=l2).fit(fit_part), fit_part,
                                   validation, ["ndcg@10"])["ndcg@10"] for l2 in l2_grid}
best_l2 = max(validation_ndcg, key=validation_ndcg.get)
print("EASE validation NDCG@10 by l2:", {k: round(v, 4) for k, v in validation_ndcg.items()})
print("chosen l2:", best_l2)

final = {
    "tripletrec default": tr.TripletRecommender(**EPOCHS, random_state=SEED).fit(train),
    f"EASE (l2 {best_l2:g})": tr.EASERecommender(l2=best_l2).fit(train),
    "bilinear (notebook)": bilinear,
    "deep (notebook)": deep,
}
final_results = {label: tr.evaluate(model, train, test, METRICS)
                 for label, model in final.items()}
"""),
    ("code", r"""
try:
    from lightfm import LightFM
except ImportError:
    print("LightFM is not installed here: its row is left out "
          "(pip install lightfm; benchmarks/perf/compare.py has measured figures).")
else:
    lightfm = LightFM(no_components=64, loss="warp", learning_rate=0.02, random_state=SEED)
    lightfm.fit(train_matrix.tocoo(), epochs=LIGHTFM_EPOCHS, num_threads=1)
    user_bias, user_factors = lightfm.get_user_representations()
    item_bias, item_factors = lightfm.get_item_representations()
    # LightFM's score; the user bias is left out: it does not change a user's ranking
    lightfm_scores = user_factors @ item_factors.T + item_bias
    final_results["LightFM WARP"] = full_ranking(lightfm_scores, METRICS)

comparison = pd.DataFrame(final_results).T.drop(columns="n_users", errors="ignore")
comparison = comparison.sort_values("auc", ascending=False)
comparison
"""),
    ("code", r"""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for axis, metric in zip(axes, ("auc", "ndcg@10")):
    values = comparison[metric]
    axis.barh(values.index[::-1], values.to_numpy()[::-1], color="tab:blue")
    axis.set(title=metric, xlim=(values.min() * 0.9, values.max() * 1.02))
    for y, value in enumerate(values.to_numpy()[::-1]):
        axis.text(value, y, f" {value:.3f}", va="center", fontsize="small")
fig.tight_layout()
"""),
    ("markdown", r"""
In this run the default preset has the best AUC, above LightFM's WARP and EASE, and EASE
ranks the top 10 best (NDCG@10): the same order as the benchmark over three seeds in the
README (`benchmarks/perf/compare.py`). Both notebook models, the starting point of this
project, trail all three.
"""),
    ("markdown", r"""
## Where next

* The same runs from the command line: `tripletrec train --preset notebook-bilinear --out
  runs/nb` (model, metrics, learning curve), `tripletrec evaluate runs/nb --metrics
  auc,ndcg@10`, `tripletrec recommend runs/nb --user 1`, `tripletrec serve runs/nb`.
* Measured comparisons over several seeds, with fit times: `benchmarks/perf/compare.py` and
  `benchmarks/perf/reproduce_notebook.py` (results in `benchmarks/results/`).
* Models, losses and presets: `docs/models.md`; side features and cold start:
  `docs/features.md`; metrics: `docs/metrics.md`; protocols: `docs/protocols.md`.
"""),
]
# fmt: on


def build_notebook() -> nbformat.NotebookNode:
    """The tutorial notebook, without outputs."""
    cells = []
    for number, (kind, source) in enumerate(CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        # numbered ids instead of random ones: a rebuild does not change them
        cells.append(make(source.strip("\n"), id=f"cell-{number:02d}"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }  # fmt: skip
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh ``python3`` kernel (stops at an error)."""
    from nbclient import NotebookClient

    resources = {"metadata": {"path": str(cwd)}}  # the kernel's working directory
    # No execution timestamps in the cells: a rebuild then differs only where outputs do.
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=CELL_TIMEOUT, resources=resources,
        record_timing=False,
    )  # fmt: skip
    client.execute()
    return notebook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run it and keep the outputs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    notebook = build_notebook()
    if args.execute:
        notebook = execute(notebook, ROOT / "docs")
    nbformat.validate(notebook)
    write_text_atomic(args.out, nbformat.writes(notebook) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
