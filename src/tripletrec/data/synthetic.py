"""Synthetic implicit feedback at any size, with the skew and structure of real data.

The generator is a topic model with power-law popularity, built to be learnable and to
stress a recommender the way real logs do:

* **Item popularity** follows a Zipf law: the item of popularity rank ``r`` has weight
  ``r ** -item_exponent`` (ranks are shuffled over the item ids).
* **User activity** follows one too: the user of activity rank ``r`` gets a number of
  distinct items proportional to ``r ** -user_exponent``, at least ``min_user_items`` and
  at most ``max_user_share`` of the catalogue, scaled so that the counts add up to exactly
  ``n_interactions``.
* **Latent preferences**: every item belongs to one of ``n_topics`` topics; every user has
  a taste over topics drawn from a sparse Dirichlet (``topic_concentration``), mixed with
  ``noise`` of the global popularity. A user's items are drawn without replacement from
  ``p_u(i) = taste_u[topic(i)] * popularity(i) / popularity(topic(i))``: who liked which
  topic is low-rank structure that a factor model can recover, popularity is the bias.

Everything is vectorised. Users are generated in fixed blocks of :data:`BLOCK_USERS`, each
from its own random stream derived from the seed, so a block's rows do not depend on how
many blocks are held in memory at once: :func:`write_synthetic_parquet` writes one block
per row group with memory bounded by a block, and :func:`generate_synthetic` returns the
very same rows as one DataFrame.

Drawing without replacement: each user's draws are made with replacement and only the
first occurrence of each item is kept, in draw order, until the user has their count.
That is exactly successive sampling without replacement (the next new item is drawn from
``p_u`` restricted to the items not yet drawn). Users whose count is a large share of the
catalogue, and the few still short after :data:`_MAX_ROUNDS` rounds, finish with the
Gumbel-top-k trick over the whole catalogue, which samples from the same distribution.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tripletrec._checks import finite_number, fraction, non_negative_int, positive_int
from tripletrec._files import atomic_path
from tripletrec._system import available_memory_bytes
from tripletrec.exceptions import DataError, ParameterError

#: Users generated together, from one random stream. A constant (not a parameter): the
#: rows a seed produces must not depend on how the caller chunks the work.
BLOCK_USERS = 1 << 16
#: Rounds of drawing with replacement before the Gumbel-top-k fallback.
_MAX_ROUNDS = 8
#: Users asking for more than this share of the catalogue go straight to Gumbel-top-k:
#: drawing them with replacement would mostly redraw items they already have.
_DENSE_SHARE = 0.1
#: Largest (users x items) block of Gumbel keys materialised at once.
_GUMBEL_BUDGET = 1 << 24
#: What generation holds, in bytes: per catalogue item, per user, per row of a block
#: (with its over-draws; measured on 1,000 to 6.5 million rows a block), and for the Gumbel
#: keys. The largest block is taken as 1.5 times the mean (user activity is skewed).
_BYTES_PER_ITEM, _BYTES_PER_USER, _BYTES_PER_BLOCK_ROW = 64, 24, 160
_GUMBEL_BYTES = 24 * _GUMBEL_BUDGET
#: Share of the available memory generation may plan to use.
_MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class SyntheticSpec:
    """The parameters of a synthetic dataset (see the module docstring).

    Attributes
    ----------
    n_users, n_items, n_interactions : int
        Size: every user gets at least ``min_user_items`` distinct items; the total is
        exactly ``n_interactions``.
    n_topics : int
        Latent topics (the rank of the preference structure).
    item_exponent, user_exponent : float
        Zipf exponents of item popularity and user activity (0 = flat).
    topic_concentration : float
        Dirichlet concentration of a user's taste over topics; small values give users a
        few favourite topics.
    noise : float
        Share of every user's draws that follows global popularity instead of their taste.
    min_user_items : int
        Fewest items per user.
    max_user_share : float
        Most items per user, as a share of the catalogue.
    random_state : int
        The seed: the same spec gives the same rows (with the same NumPy version; NumPy
        does not promise its random streams across versions).
    """

    n_users: int
    n_items: int
    n_interactions: int
    n_topics: int = 32
    item_exponent: float = 0.8
    user_exponent: float = 0.5
    topic_concentration: float = 0.1
    noise: float = 0.1
    min_user_items: int = 1
    max_user_share: float = 0.5
    random_state: int = 0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_interactions", "n_topics", "min_user_items"):
            positive_int(name, getattr(self, name))
        for name in ("item_exponent", "user_exponent"):
            finite_number(name, getattr(self, name), low=0.0, high=10.0, high_open=True)
        finite_number("topic_concentration", self.topic_concentration, low=0.0, low_open=True)
        fraction("noise", self.noise)
        non_negative_int("random_state", self.random_state)
        fraction("max_user_share", self.max_user_share, low_open=True)
        if self.min_user_items > self.max_user_items:
            raise ParameterError(
                f"min_user_items={self.min_user_items} is more than a user may have "
                f"({self.max_user_items} = max_user_share x n_items)"
            )
        low = self.n_users * self.min_user_items
        high = self.n_users * self.max_user_items
        if not low <= self.n_interactions <= high:
            raise ParameterError(
                f"{self.n_interactions:,} interactions cannot be spread over {self.n_users:,} "
                f"users with {self.min_user_items} to {self.max_user_items:,} items each "
                f"(possible: {low:,} to {high:,})"
            )

    @property
    def max_user_items(self) -> int:
        """Most distinct items one user may have."""
        return max(1, int(self.max_user_share * self.n_items))

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_users / BLOCK_USERS)


class _Catalogue:
    """What every block shares: item popularity, topics, user counts (one global stream)."""

    def __init__(self, spec: SyntheticSpec) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([spec.random_state, 0]))
        n_items, n_topics = spec.n_items, min(spec.n_topics, spec.n_items)
        popularity = rng.permutation(n_items).astype(np.float64) + 1.0
        popularity **= -spec.item_exponent
        popularity /= popularity.sum()
        # Round-robin over a permutation: every topic gets n_items / n_topics items, so no
        # topic is empty and each holds a mix of head and tail items.
        topic = (rng.permutation(n_items) % n_topics).astype(np.int64)
        self.topic_mass = np.bincount(topic, weights=popularity, minlength=n_topics)
        self.within_topic = popularity / self.topic_mass[topic]
        # Items sorted by topic, each topic's cumulative share spanning [t, t + 1): one
        # searchsorted of ``topic + uniform`` then draws an item within its topic.
        self.by_topic = np.argsort(topic, kind="stable")
        sorted_topic = topic[self.by_topic]
        cumulative = np.cumsum(self.within_topic[self.by_topic])
        starts = np.searchsorted(sorted_topic, np.arange(n_topics))
        topic_start_total = np.concatenate([[0.0], cumulative])[starts]
        self.item_edges = sorted_topic + cumulative - topic_start_total[sorted_topic]
        ends = np.append(starts[1:], n_items) - 1
        self.item_edges[ends] = np.arange(1, n_topics + 1)  # exact ends despite rounding
        self.topic = topic
        self.n_topics = n_topics
        self.counts = _user_counts(spec, rng)


def _user_counts(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Items per user: Zipf in activity rank, clipped, summing to ``n_interactions``."""
    weights = (rng.permutation(spec.n_users).astype(np.float64) + 1.0) ** -spec.user_exponent
    low, high, total = float(spec.min_user_items), float(spec.max_user_items), spec.n_interactions

    def spread(scale: float) -> np.ndarray:
        return np.clip(scale * weights, low, high)

    # The total is increasing in the scale: bisect (in log space) for the one that fits.
    lo, hi = math.log(low / weights.max()) - 1.0, math.log(high / weights.min()) + 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if spread(math.exp(mid)).sum() < total:
            lo = mid
        else:
            hi = mid
    exact = spread(math.exp(hi))
    counts = np.floor(exact).astype(np.int64)
    # Largest remainders first, among users still under the cap, to reach the exact total.
    short = total - int(counts.sum())
    if short > 0:
        room = np.where(counts < high, exact - counts, -1.0)
        counts[np.argpartition(-room, short - 1)[:short]] += 1
    elif short < 0:
        excess = np.where(counts > low, counts - exact + 1.0, -1.0)
        counts[np.argpartition(-excess, -short - 1)[:-short]] -= 1
    return counts


def _block_rows(
    spec: SyntheticSpec, catalogue: _Catalogue, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(user ids, item ids)`` of block ``block``, users in order, items in draw order."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.random_state, 1, block]))
    first = block * BLOCK_USERS
    counts = catalogue.counts[first : first + BLOCK_USERS]
    n_users, n_topics, n_items = len(counts), catalogue.n_topics, spec.n_items

    taste = rng.standard_gamma(spec.topic_concentration, size=(n_users, n_topics))
    totals = taste.sum(1, keepdims=True)
    taste = np.divide(taste, totals, out=np.zeros_like(taste), where=totals > 0)
    taste[totals[:, 0] == 0] = catalogue.topic_mass  # all draws underflowed: plain popularity
    taste = (1.0 - spec.noise) * taste + spec.noise * catalogue.topic_mass
    topic_edges = np.cumsum(taste, axis=1)
    topic_edges[:, -1] = 1.0
    topic_edges += np.arange(n_users)[:, None]  # row u spans [u, u + 1): one flat search

    def draw(users: np.ndarray) -> np.ndarray:
        topics = np.searchsorted(topic_edges.ravel(), users + rng.random(len(users)), "right")
        topics = np.minimum(topics - users * n_topics, n_topics - 1)
        position = np.searchsorted(catalogue.item_edges, topics + rng.random(len(users)), "right")
        return catalogue.by_topic[np.minimum(position, n_items - 1)]

    dense = counts > _DENSE_SHARE * n_items
    kept_users = np.empty(0, np.int64)
    kept_items = np.empty(0, np.int64)
    have = np.zeros(n_users, np.int64)
    for round_ in range(_MAX_ROUNDS):
        deficit = np.where(dense, 0, counts - have)
        todo = np.flatnonzero(deficit > 0)
        if len(todo) == 0:
            break
        # Draw a little more than missing (more each round) so that few users need another.
        extra = np.ceil(deficit[todo] * (0.1 * 2**round_)).astype(np.int64) + 1
        users = np.repeat(todo, deficit[todo] + extra)
        all_users = np.concatenate([kept_users, users])
        all_items = np.concatenate([kept_items, draw(users)])
        # First occurrence of each (user, item), then the first ``count`` per user, in
        # draw order (kept rows come first, so they always stay).
        _, first_seen = np.unique(all_users * n_items + all_items, return_index=True)
        first_seen.sort()
        all_users, all_items = all_users[first_seen], all_items[first_seen]
        order = np.argsort(all_users, kind="stable")
        all_users, all_items = all_users[order], all_items[order]
        rank = np.arange(len(all_users)) - np.searchsorted(all_users, all_users, "left")
        keep = rank < counts[all_users]
        kept_users, kept_items = all_users[keep], all_items[keep]
        have = np.bincount(kept_users, minlength=n_users)

    rest = np.flatnonzero(counts > have)
    if len(rest):
        more_users, more_items = _gumbel_top_k(
            rest, counts[rest] - have[rest], taste, catalogue, kept_users, kept_items, rng
        )
        kept_users = np.concatenate([kept_users, more_users])
        kept_items = np.concatenate([kept_items, more_items])
        order = np.argsort(kept_users, kind="stable")
        kept_users, kept_items = kept_users[order], kept_items[order]
    return kept_users + first, kept_items


def _gumbel_top_k(
    users: np.ndarray,
    wanted: np.ndarray,
    taste: np.ndarray,
    catalogue: _Catalogue,
    kept_users: np.ndarray,
    kept_items: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``wanted[j]`` more items for each of ``users``, none of those already kept."""
    n_items = len(catalogue.topic)
    log_item = np.log(catalogue.within_topic)
    rows_per_chunk = max(1, _GUMBEL_BUDGET // n_items)
    out_users, out_items = [], []
    for start in range(0, len(users), rows_per_chunk):
        chunk, need = users[start : start + rows_per_chunk], wanted[start : start + rows_per_chunk]
        with np.errstate(divide="ignore"):
            keys = np.log(taste[chunk][:, catalogue.topic]) + log_item
        keys += rng.gumbel(size=keys.shape)
        row_of = np.full(len(taste), -1, np.int64)
        row_of[chunk] = np.arange(len(chunk))
        taken = row_of[kept_users] >= 0
        keys[row_of[kept_users[taken]], kept_items[taken]] = -np.inf
        ranked = np.argsort(-keys, axis=1, kind="stable")
        select = np.arange(n_items)[None, :] < need[:, None]
        out_users.append(np.repeat(chunk, need))
        out_items.append(ranked[select])
    return np.concatenate(out_users), np.concatenate(out_items)


def _id_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def check_synthetic_fits(spec: SyntheticSpec, *, rows_in_memory: bool, out: Path | None) -> None:
    """Refuse, in one line and before any work, data that cannot be generated here: more
    memory than is available (the rows too when ``rows_in_memory``), or a file larger than
    the free space at ``out`` (counting each item id at its least, in bits)."""
    block_rows = 1.5 * spec.n_interactions * min(1.0, BLOCK_USERS / spec.n_users)
    needed = (
        _BYTES_PER_ITEM * spec.n_items
        + _BYTES_PER_USER * spec.n_users
        + _BYTES_PER_BLOCK_ROW * block_rows
        + _GUMBEL_BYTES
    )
    if rows_in_memory:  # the blocks, then their concatenation
        id_bytes = (
            np.dtype(_id_dtype(spec.n_users)).itemsize + np.dtype(_id_dtype(spec.n_items)).itemsize
        )
        needed += 2 * id_bytes * spec.n_interactions
    available = available_memory_bytes()
    size = f"{spec.n_users:,} users x {spec.n_items:,} items, {spec.n_interactions:,} rows"
    if available is not None and needed > _MEMORY_SHARE * available:
        raise DataError(
            f"synthetic data of {size} needs about {needed / 2**30:,.1f} GiB of memory, "
            f"{available / 2**30:,.1f} GiB is available; ask for fewer users, items or rows"
        )
    if out is not None:
        least = spec.n_interactions * math.ceil(math.log2(max(spec.n_items, 2))) / 8
        free = shutil.disk_usage(out).free
        if least > free:
            raise DataError(
                f"synthetic data of {size} needs at least {least / 2**30:,.1f} GiB on disk, "
                f"{free / 2**30:,.1f} GiB is free under {out}; ask for fewer rows"
            )


def iter_synthetic_blocks(spec: SyntheticSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(user_id, item_id)`` arrays block by block (see :data:`BLOCK_USERS`)."""
    catalogue = _Catalogue(spec)
    for block in range(spec.n_blocks):
        users, items = _block_rows(spec, catalogue, block)
        yield users.astype(_id_dtype(spec.n_users)), items.astype(_id_dtype(spec.n_items))


def generate_synthetic(
    n_users: int, n_items: int, n_interactions: int, **options: float | int
) -> pd.DataFrame:
    """Synthetic implicit feedback as one DataFrame (``user_id``, ``item_id``).

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Size of the data; the result has exactly ``n_interactions`` distinct
        (user, item) rows and every user has at least one.
    **options
        The other fields of :class:`SyntheticSpec` (``n_topics``, ``item_exponent``,
        ``user_exponent``, ``topic_concentration``, ``noise``, ``min_user_items``,
        ``max_user_share``, ``random_state``).

    Returns
    -------
    pandas.DataFrame
        Ids are ``0 .. n - 1`` (int32 while they fit); rows are grouped by user, each
        user's items in draw order. Equal, row for row, to the file
        :func:`write_synthetic_parquet` writes for the same arguments.

    Examples
    --------
    >>> from tripletrec.data.synthetic import generate_synthetic
    >>> df = generate_synthetic(1_000, 500, 20_000, random_state=0)
    >>> len(df), df.duplicated().any()
    (20000, False)
    """
    spec = SyntheticSpec(n_users, n_items, n_interactions, **options)
    check_synthetic_fits(spec, rows_in_memory=True, out=None)
    users, items = zip(*iter_synthetic_blocks(spec))
    return pd.DataFrame({"user_id": np.concatenate(users), "item_id": np.concatenate(items)})


def write_synthetic_parquet(
    path: str | Path, n_users: int, n_items: int, n_interactions: int, **options: float | int
) -> dict:
    """Generate synthetic data block by block into a Parquet file, atomically.

    Memory stays bounded by one block of :data:`BLOCK_USERS` users whatever the size. The
    file is written under a temporary name next to ``path`` and renamed into place; the
    generator's parameters are stored in the file's metadata (key ``tripletrec.data.synthetic``).

    Parameters
    ----------
    path : str or Path
        The Parquet file to write.
    n_users, n_items, n_interactions, **options
        As :func:`generate_synthetic`.

    Returns
    -------
    dict
        ``path``, ``n_rows``, ``n_users``, ``n_items`` (items with at least one row),
        ``seconds`` and the spec.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = SyntheticSpec(n_users, n_items, n_interactions, **options)
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a file name ending in .parquet")
    check_synthetic_fits(spec, rows_in_memory=False, out=path.parent)
    schema = pa.schema(
        [
            ("user_id", pa.from_numpy_dtype(_id_dtype(spec.n_users))),
            ("item_id", pa.from_numpy_dtype(_id_dtype(spec.n_items))),
        ],
        metadata={"tripletrec.data.synthetic": json.dumps(asdict(spec))},
    )
    start = time.perf_counter()
    item_used = np.zeros(spec.n_items, bool)
    n_rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for users, items in iter_synthetic_blocks(spec):
            writer.write_table(pa.table({"user_id": users, "item_id": items}, schema=schema))
            item_used[items] = True
            n_rows += len(users)
    return {
        "path": str(path),
        "n_rows": n_rows,
        "n_users": spec.n_users,
        "n_items": int(item_used.sum()),
        "seconds": time.perf_counter() - start,
        "spec": asdict(spec),
    }
