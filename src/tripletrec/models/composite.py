"""Estimators made of estimators: :class:`CompositeRecommender`.

A composite fits its parts on its own training data, so they share its id maps and seen
items, and speaks to them only through their public, index-level API
(:mod:`tripletrec.models.index_level`): ``score_indices``, ``score_histories``,
``history_contributions``, ``item_vectors``, ``model_state``, ``fit_summary`` and
``restore``. Saving and loading nest generically: each part's arrays are kept under its
name, and the saved fit summary names each part's class and hyper-parameters, so a
composite of any registered estimators round-trips without knowing their classes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from tripletrec import _registry
from tripletrec._files import json_lists_to_tuples
from tripletrec.models.base import RecommenderBase
from tripletrec.models.capabilities import Capabilities
from tripletrec.models.index_level import PARTS_KEY


class CompositeRecommender(RecommenderBase):
    """Base class of estimators whose fitted state is other, fitted estimators.

    Subclasses fit their parts in ``fit`` and install them with :meth:`_install_parts`
    (which also runs on load), score from the parts' public scores, and may add facts of
    their own to the saved fit summary with :meth:`_own_fit_summary`.
    """

    parts_: dict[str, RecommenderBase]

    def capabilities(self) -> Capabilities:
        """New users' histories and explanations where every part has them; no vector
        space, since a blend of scores is no inner product."""
        parts = [part.capabilities() for part in self._part_prototypes().values()]
        return Capabilities(
            history_scoring=all(c.history_scoring for c in parts),
            explain=all(c.explain for c in parts),
        )

    @abstractmethod
    def _part_prototypes(self) -> Mapping[str, RecommenderBase]:
        """The unfitted parts these hyper-parameters describe, by name."""

    @abstractmethod
    def _install_parts(self, parts: Mapping[str, RecommenderBase], fit_summary: dict) -> None:
        """Keep fitted ``parts`` (after ``fit``, or rebuilt by a load) as fitted state."""

    def _own_fit_summary(self) -> dict:
        """Facts of the composite's own fit, saved beside its parts'."""
        return {}

    # ------------------------------------------------------------------ persistence
    def _fit_summary(self) -> dict:
        parts = {
            name: {
                "estimator": type(part).__name__,
                "params": part.get_params(),
                "fit": part.fit_summary(),
            }
            for name, part in self.parts_.items()
        }
        return {**self._own_fit_summary(), PARTS_KEY: parts}

    def _model_state(self) -> dict[str, np.ndarray]:
        return {
            f"{name}.{key}": array
            for name, part in self.parts_.items()
            for key, array in part.model_state().items()
        }

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        parts: dict[str, RecommenderBase] = {}
        for name, saved in dict(fit_summary[PARTS_KEY]).items():
            part_cls = _registry.lookup(saved["estimator"])
            if part_cls is None:
                raise ValueError(
                    f"part {name!r} is a {saved['estimator']!r}, not a known estimator"
                )
            params = json_lists_to_tuples(dict(saved["params"]))
            part = part_cls(**_registry.saved_params(saved["estimator"], params))
            prefix = f"{name}."
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            parts[name] = part.restore(
                self.user_map_, self.item_map_, self.item_metadata_, self.seen_, own,
                dict(saved["fit"]),
            )  # fmt: skip
        self._install_parts(parts, fit_summary)


def part_entry(part: RecommenderBase, fit: Mapping[str, Any]) -> dict[str, Any]:
    """A part's entry of the saved fit summary, for files written before parts were named
    by class (see :class:`~tripletrec.models.hybrid.HybridRecommender`)."""
    return {"estimator": type(part).__name__, "params": part.get_params(), "fit": dict(fit)}
