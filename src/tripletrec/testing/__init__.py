"""Contract tests that every tripletrec recommender must pass, shipped with the library.

:class:`RecommenderContract` holds ``test_*`` methods that check any
:class:`~tripletrec.models.base.RecommenderBase` estimator against the documented contract:
scikit-learn parameters, fitting, scoring, recommending, similar items, raw and index ids,
errors, the declared capabilities (fold-in of new users, explanations, vector spaces,
training further, fit options), persistence, the HTTP service and training callbacks. A
test module subclasses it once per estimator configuration (a class name starting with
``Test``) and says how to build the estimator; an estimator defined outside tripletrec can
run the same checks::

    from tripletrec.testing import RecommenderContract

    class TestMyRecommender(RecommenderContract):
        def make_estimator(self):
            return MyRecommender(random_state=0)

Every check fits on :func:`block_data`, a data set so small that a model fits in
milliseconds, and whose right answers are known: "the top recommendation is the held-out
item" is a real assertion, not a quality floor.

This module imports pytest, which comes with the ``test`` extra
(``pip install 'tripletrec[test]'``); the HTTP check also needs the ``serve`` extra and is
skipped without it.
"""

from tripletrec.testing.contract import RecommenderContract
from tripletrec.testing.data import BLOCK_SIZES, BlockData, block_data, fitted_ids

__all__ = ["BLOCK_SIZES", "BlockData", "RecommenderContract", "block_data", "fitted_ids"]
