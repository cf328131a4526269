"""Metric names: ``"ndcg@20"`` <-> ``("ndcg", 20)``, and the metrics tripletrec knows.

The command line, the configuration files, tuning, early stopping and
:func:`~tripletrec.evaluation.metrics.ranking_metrics` all read metric names through
:func:`parse_metric`, so they accept and reject the same names.
"""

from __future__ import annotations

from tripletrec._checks import positive_int
from tripletrec.exceptions import ParameterError

#: Per-user metrics that need a cut-off ``k`` (``"ndcg@20"``); a bare name uses the default.
METRICS_AT_K: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate")
#: Per-user metrics over the full ranking; they take no ``@k``.
METRICS_FULL_RANKING: tuple[str, ...] = ("auc", "mrr")
#: What :func:`ranking_metrics` computes when ``metrics`` is not given.
DEFAULT_METRICS: tuple[str, ...] = (
    "auc",
    "precision",
    "recall",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
)


def parse_metric(name: str, default_k: int = 10) -> tuple[str, int | None]:
    """Split a metric name such as ``"ndcg@20"`` into its base name and cut-off.

    Parameters
    ----------
    name : str
        ``"<base>@<k>"`` or ``"<base>"``, case-insensitive. Bases with a cut-off are
        ``precision``, ``recall``, ``ndcg``, ``map`` and ``hit_rate``; ``auc`` and ``mrr``
        use the full ranking and take no ``@k``.
    default_k : int, default 10
        The cut-off of a base name given without ``@k``.

    Returns
    -------
    base : str
    k : int or None
        None for ``auc`` and ``mrr``.

    Examples
    --------
    >>> parse_metric("NDCG@20")
    ('ndcg', 20)
    >>> parse_metric("recall", default_k=5)
    ('recall', 5)
    >>> parse_metric("mrr")
    ('mrr', None)
    """
    if not isinstance(name, str):
        raise ParameterError(f"metric names are strings, got {name!r}")
    base, sep, k_text = name.strip().lower().partition("@")
    base = base.strip()
    known = METRICS_AT_K + METRICS_FULL_RANKING
    if base not in known:
        raise ParameterError(f"unknown metric {name!r}; known: {', '.join(known)}")
    if base in METRICS_FULL_RANKING:
        if sep:
            raise ParameterError(f"{base} uses the full ranking and takes no @k (got {name!r})")
        return base, None
    if not sep:
        return base, positive_int("default_k", default_k)
    k_text = k_text.strip()
    if not k_text.isdigit():
        raise ParameterError(f"the cut-off in {name!r} must be a positive integer")
    return base, positive_int(f"the cut-off in {name!r}", int(k_text))


def metric_key(base: str, k: int | None) -> str:
    """The canonical name of a parsed metric: ``metric_key("ndcg", 20) == "ndcg@20"``."""
    return base if k is None else f"{base}@{k}"
