"""``tripletrec.Recommender``: the product's one default estimator.

Users who do not want to choose a model construct this one; ``tripletrec train`` with no
``--estimator`` fits it, and ``make demo`` and the README start from it. Its constructor
defaults are the product's defaults, chosen on validation splits of the training positives
(``docs/models.md`` lists the studies); today it is the history-aware factor model and EASE
blended per user, :class:`~tripletrec.models.hybrid.HybridRecommender`, under the name a
user looks for. A saved ``Recommender`` loads as a ``Recommender``, so the default can
change parts without changing what a user's code names.
"""

from __future__ import annotations

from tripletrec.models.hybrid import HybridRecommender


class Recommender(HybridRecommender):
    """The default recommender: the best ranking tripletrec measures, with no choices to make.

    A history-aware factor model (:class:`~tripletrec.models.triplet.TripletRecommender`)
    and EASE (:class:`~tripletrec.models.ease.EASERecommender`), blended per user on
    standardised scores; every parameter and attribute is
    :class:`~tripletrec.models.hybrid.HybridRecommender`'s, with the same defaults.

    Examples
    --------
    >>> import tripletrec as tr
    >>> data = tr.load_dataset("anime-tv").positives(7)
    >>> model = tr.Recommender(random_state=0).fit(data)  # doctest: +SKIP
    >>> items, scores = model.recommend([1, 2], k=10)  # doctest: +SKIP
    """
