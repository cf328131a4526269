"""A long-tail catalogue must not be ranked like popularity.

On Gowalla (29,858 users, 40,981 items) the factor model once learnt nothing but its item
bias: Adam's coupled weight decay shrank the rarely updated rows to zero and the ranking
was popularity's (``docs/models.md``, "Weight decay and sparse catalogues"). These tests
fit the default factor model in per-user batches (the large-catalogue setting, one step
per user and epoch) and the default blend with its large-catalogue item-item part on a
synthetic Zipf catalogue with topic structure, and require both to rank well above
popularity: a model that collapses to popularity fails them. (The collapse itself needs
Gowalla's size; at this size they guard the floor, in seconds.)
"""

from __future__ import annotations

import pytest

import tripletrec as tr
from tripletrec.data.synthetic import generate_synthetic

#: A model must reach this multiple of popularity's NDCG@10 (both measured above 2).
FLOOR = 1.5


@pytest.fixture(scope="module")
def parts() -> tuple[tr.Interactions, tr.Interactions, float]:
    frame = generate_synthetic(3000, 2000, 45000, n_topics=20, random_state=0)
    fit, validation = tr.validation_split(
        tr.Interactions.from_dataframe(frame), 0.2, random_state=0
    )
    popularity = tr.PopularityRecommender().fit(fit)
    return fit, validation, tr.evaluate(popularity, fit, validation, ["ndcg@10"])["ndcg@10"]


@pytest.mark.parametrize(
    "model",
    [
        tr.TripletRecommender(random_state=0, batch_by="user", batch_size=256, epochs=3),
        tr.Recommender(
            random_state=0, item_item="graph_filter", factor={"epochs": 3, "batch_size": 256}
        ),
    ],
    ids=["factor model, per-user batches", "blend with the graph filter"],
)
def test_the_defaults_rank_a_long_tail_well_above_popularity(parts, model):
    fit, validation, popularity = parts
    ndcg = tr.evaluate(model.fit(fit), fit, validation, ["ndcg@10"])["ndcg@10"]
    assert ndcg > FLOOR * popularity, (ndcg, popularity)
