"""Top-k retrieval over large catalogues: exact in chunks, or through an approximate index.

Both work on a *vector space*: a query vector per user and a vector per item whose dot
product is the model's score. For the bilinear model that is exact:

* cosine: the normalised user and item embeddings;
* dot: the raw embeddings;
* with an item bias: one more column, 1 for every user and, for every item, the bias as
  ranking weighs it (``ranking_bias_scale``).

The deep model scores through an MLP and has no such space; it is always scored exactly
(:meth:`~tripletrec.models.base.RecommenderBase.recommend`), and :func:`model_vectors` says so.

The approximate index is a faiss inverted-file index (IVF-Flat). Maximum inner product is
not a metric search, so items are first lifted to the same norm with the usual
transformation ``x -> [x, sqrt(M^2 - |x|^2)]`` (``M`` the largest item norm) and queries to
``q -> [q, 0]``: then ``|q - x|^2 = |q|^2 + M^2 - 2 q.x``, and the nearest item in L2 is the
one with the largest inner product. Candidates are re-scored exactly before the final cut,
so returned scores are the model's scores. hnswlib was measured too: on 2 cores it built
200,000 x 64 vectors in 33 s (over 3 minutes projected for 1,000,000), where IVF builds the
whole million in about 6 s at the same recall.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from tripletrec._files import (
    replace_directory,
    sha256_of_file,
    staging_directory,
    write_json_atomic,
)
from tripletrec.evaluation.topk import merge_top_k, top_k
from tripletrec.exceptions import DataError, ModelFileError, TripletrecError

#: Sub-directory of a model directory that holds its approximate index.
INDEX_DIR = "ann-index"
INDEX_FILE = "index.faiss"
INDEX_META = "index.json"
#: ``space`` of an index over a vector space's item vectors (:func:`model_vectors`).
VECTOR_SPACE = "vector_space"
#: Items scored at once by exact search: bounds memory at about queries x this floats.
ITEM_CHUNK = 65_536


def model_vectors(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors whose dot products are ``model``'s scores.

    Returns
    -------
    users : numpy.ndarray, shape (n_users, d), float32
    items : numpy.ndarray, shape (n_items, d), float32

    Raises
    ------
    TripletrecError
        For a model that has no vector space (the deep model).
    """
    space = model.vector_space()
    if space is None:
        raise TripletrecError(
            f"{type(model).__name__} has no user/item vector space (it declares: "
            f"{', '.join(model.capabilities().declared()) or 'none'}); it is scored exactly"
        )
    return space


def exact_top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: sp.spmatrix | None = None,
    item_chunk: int = ITEM_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product, scoring ``item_chunk`` items at a time.

    Ties are ordered by item index, lower first, as :func:`tripletrec.evaluation.topk.top_k`.

    Parameters
    ----------
    queries : numpy.ndarray, shape (n_queries, d)
    items : numpy.ndarray, shape (n_items, d)
    k : int
    exclude : sparse matrix, shape (n_queries, n_items), optional
        Non-zero where the item must not be returned for that query.
    item_chunk : int
        Items per block; memory is about ``n_queries x (item_chunk + 2 k)`` floats.

    Returns
    -------
    indices : numpy.ndarray of int64, shape (n_queries, k), -1 padded
    scores : numpy.ndarray of float32, shape (n_queries, k), -inf padded
    """
    queries = np.asarray(queries, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    n_queries, n_items = len(queries), len(items)
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise DataError(f"queries {queries.shape} and items {items.shape} do not match")
    exclude = None if exclude is None else sp.csr_matrix(exclude, dtype=bool)
    best_idx = np.full((n_queries, 0), -1, np.int64)
    best_scores = np.full((n_queries, 0), -np.inf, np.float32)
    for start in range(0, n_items, item_chunk):
        stop = min(start + item_chunk, n_items)
        block = queries @ items[start:stop].T
        mask = None if exclude is None else exclude[:, start:stop]
        idx, scores = top_k(block, k, exclude=mask)
        idx = np.where(idx >= 0, idx + start, -1)
        best_idx, best_scores = merge_top_k(
            np.hstack([best_idx, idx]), np.hstack([best_scores, scores.astype(np.float32)]), k
        )
    return best_idx, best_scores


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # an optional dependency
        raise TripletrecError(
            "the approximate index needs faiss: pip install 'tripletrec[ann]' (faiss-cpu)"
        ) from exc
    return faiss


@dataclass
class IndexSettings:
    """Parameters of the IVF index; ``None`` picks them from the catalogue size."""

    n_lists: int | None = None
    nprobe: int | None = None
    train_size: int | None = None
    random_state: int = 0

    def resolved(self, n_items: int) -> IndexSettings:
        # About 2 sqrt(n) lists keeps list scans short; faiss wants >= 39 points per list.
        n_lists = self.n_lists or int(np.clip(2 * np.sqrt(n_items), 1, max(1, n_items // 39)))
        nprobe = self.nprobe or int(min(n_lists, max(8, n_lists // 32)))
        train_size = self.train_size or int(min(n_items, max(100 * n_lists, 10_000)))
        if n_lists < 1 or nprobe < 1 or train_size < n_lists:
            raise DataError(f"invalid index settings {self}")
        return IndexSettings(n_lists, nprobe, train_size, self.random_state)


class ANNIndex:
    """Approximate maximum-inner-product search over item vectors (faiss IVF-Flat).

    Build with :meth:`build`, query with :meth:`search`; :meth:`save` / :meth:`load` keep it
    inside a model directory.
    """

    def __init__(self, index: Any, items: np.ndarray, max_norm: float, settings: IndexSettings):
        self._index = index
        self.items = items
        self.max_norm = max_norm
        self.settings = settings
        self._index.nprobe = settings.nprobe
        #: What :meth:`load` read from ``index.json`` (empty for a built index).
        self.meta: dict = {}

    @classmethod
    def build(cls, items: np.ndarray, settings: IndexSettings | None = None) -> ANNIndex:
        """Index ``items`` (n_items x d) for inner-product search."""
        faiss = _faiss()
        items = np.ascontiguousarray(items, dtype=np.float32)
        if items.ndim != 2 or len(items) == 0 or not np.isfinite(items).all():
            raise DataError("item vectors must be a non-empty finite 2-d array")
        settings = (settings or IndexSettings()).resolved(len(items))
        lifted, max_norm = _lift_items(items)
        quantiser = faiss.IndexFlatL2(lifted.shape[1])
        index = faiss.IndexIVFFlat(quantiser, lifted.shape[1], settings.n_lists, faiss.METRIC_L2)
        index.cp.seed = settings.random_state
        rng = np.random.default_rng(settings.random_state)
        sample = np.sort(rng.choice(len(items), settings.train_size, replace=False))
        index.train(lifted[sample])
        index.add(lifted)
        return cls(index, items, max_norm, settings)

    def __len__(self) -> int:
        return len(self.items)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: sp.spmatrix | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` items by inner product, excluded items left out.

        Enough extra candidates are fetched to cover each row's exclusions; the candidates
        are re-scored exactly, so scores are exact and only the candidate set is
        approximate. Returns ``(indices, scores)`` as :func:`exact_top_k`.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.items.shape[1]:
            raise DataError(f"queries of shape {queries.shape} do not fit the index")
        exclude = None if exclude is None else sp.csr_matrix(exclude, dtype=bool)
        extra = 0 if exclude is None or exclude.nnz == 0 else int(np.diff(exclude.indptr).max())
        n_fetch = min(len(self.items), k + extra)
        candidates = self.candidates(queries, n_fetch, nprobe)
        valid = candidates >= 0
        safe = np.where(valid, candidates, 0)
        scores = np.einsum("qd,qkd->qk", queries, self.items[safe]).astype(np.float32)
        if exclude is not None and exclude.nnz:
            rows = np.repeat(np.arange(len(queries)), n_fetch)
            valid &= ~np.asarray(exclude[rows, safe.ravel()]).reshape(safe.shape)
        # Excluded and missing candidates become padding; ties go to the lower item index.
        return merge_top_k(np.where(valid, safe, -1), scores, k)

    def candidates(self, queries: np.ndarray, n: int, nprobe: int | None = None) -> np.ndarray:
        """The approximately ``n`` best items of each query by inner product, unscored:
        int64 indices, shape (n_queries, n), -1 where the probed lists held fewer."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        self._index.nprobe = nprobe or self.settings.nprobe
        lifted = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        _, found = self._index.search(lifted, min(n, len(self.items)))
        return found.astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        model_dir: str | Path,
        weights_sha256: str,
        space: str = VECTOR_SPACE,
        answers: tuple[np.ndarray, np.ndarray, bool] | None = None,
    ) -> Path:
        """Write the index into ``model_dir/ann-index``, replacing any old one atomically.

        ``weights_sha256`` ties it to the model's weights and ``space`` names what its
        item vectors are (:data:`VECTOR_SPACE`, or a blend's parts side by side):
        :meth:`load` refuses an index built for other weights or another space.
        ``answers``: every known user's precomputed best items, their scores and whether
        they are exact (:mod:`tripletrec.serving.answers`), written beside the index.
        """
        from tripletrec.serving.answers import ANSWERS_FILE, save_answers

        faiss = _faiss()
        model_dir = Path(model_dir)
        staging = staging_directory(model_dir / INDEX_DIR)
        try:
            faiss.write_index(self._index, str(staging / INDEX_FILE))
            answers_meta = None
            if answers is not None:
                save_answers(staging, answers[0], answers[1])
                answers_meta = {
                    "width": int(answers[0].shape[1]),
                    "exact": bool(answers[2]),
                    "sha256": sha256_of_file(staging / ANSWERS_FILE),
                }
            meta = {
                "backend": "faiss-ivf-flat",
                "transform": "mips-l2",
                "space": space,
                "n_items": len(self.items),
                "dim": int(self.items.shape[1]),
                "max_norm": self.max_norm,
                "settings": asdict(self.settings),
                "weights_sha256": weights_sha256,
                "answers": answers_meta,
            }
            write_json_atomic(staging / INDEX_META, meta)
            replace_directory(staging, model_dir / INDEX_DIR)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return model_dir / INDEX_DIR

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        items: np.ndarray,
        weights_sha256: str,
        space: str = VECTOR_SPACE,
    ) -> ANNIndex:
        """The index saved in ``model_dir`` for these ``items``, weights and ``space``.

        Raises
        ------
        ModelFileError
            If the index is missing, unreadable, or was built for other weights, items or
            another space.
        """
        faiss = _faiss()
        folder = Path(model_dir) / INDEX_DIR
        try:
            meta = json.loads((folder / INDEX_META).read_text())
            index = faiss.read_index(str(folder / INDEX_FILE))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{folder}: no readable index ({exc})") from exc
        if not isinstance(meta, dict):
            raise ModelFileError(f"{folder}: {INDEX_META} is not a JSON object")
        if meta.get("weights_sha256") != weights_sha256:
            raise ModelFileError(
                f"{folder}: built for other model weights; rebuild it with 'tripletrec index'"
            )
        if meta.get("n_items") != len(items) or index.ntotal != len(items):
            raise ModelFileError(
                f"{folder}: holds {index.ntotal} items, the model has {len(items)}"
            )
        saved_space = meta.get("space", VECTOR_SPACE)
        if saved_space != space or index.d != items.shape[1] + 1:
            raise ModelFileError(
                f"{folder}: built for {saved_space!r} vectors of {index.d - 1} dimensions, "
                f"this model searches {space!r} ones of {items.shape[1]}; rebuild it with "
                "'tripletrec index'"
            )
        loaded = cls(index, np.ascontiguousarray(items, np.float32), float(meta["max_norm"]),
                     IndexSettings(**meta["settings"]))  # fmt: skip
        loaded.meta = meta
        return loaded


def _lift_items(items: np.ndarray) -> tuple[np.ndarray, float]:
    """``x -> [x, sqrt(M^2 - |x|^2)]``: equal norms, so L2 order = inner-product order."""
    squared = np.einsum("nd,nd->n", items, items)
    max_squared = float(squared.max())
    extra = np.sqrt(np.maximum(max_squared - squared, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([items, extra[:, None]])), float(np.sqrt(max_squared))


def has_index(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds an approximate index."""
    return (Path(model_dir) / INDEX_DIR / INDEX_META).is_file()


class Retriever:
    """What every retriever shares: an :class:`ANNIndex` over the item vectors of one kind
    of space (``space``, recorded in the saved index and checked when it is loaded)."""

    space: ClassVar[str]
    index: ANNIndex

    def save(self, model_dir: str | Path, weights_sha256: str, answers: Any = None) -> Path:
        """Write the index (and ``answers``) into ``model_dir`` (see :meth:`ANNIndex.save`)."""
        return self.index.save(model_dir, weights_sha256, self.space, answers)


class VectorRetriever(Retriever):
    """Approximate top-k of a vector space's known users: an :class:`ANNIndex` over its
    item vectors, queried with its user vectors (kept: no forward pass per request)."""

    space = VECTOR_SPACE

    def __init__(self, index: ANNIndex, user_vectors: np.ndarray) -> None:
        self.index = index
        self.user_vectors = user_vectors

    def search(
        self,
        user_idx: np.ndarray,
        k: int,
        exclude: sp.spmatrix | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`ANNIndex.search`; ``user_idx``: known users' indices."""
        return self.index.search(self.user_vectors[user_idx], k, exclude=exclude, nprobe=nprobe)


def load_retriever(model_dir: str | Path, model: Any, weights_sha256: str) -> Any:
    """The approximate retrieval saved in ``model_dir`` for ``model``: a
    :class:`VectorRetriever`, or a :class:`~tripletrec.serving.blend_retrieval.BlendRetriever`
    for a blend. Both answer ``search(user_idx, k, exclude)``.

    Raises
    ------
    TripletrecError
        If the model has neither a vector space nor blend parts, or (``ModelFileError``)
        the saved index is missing, unreadable or built for another model.
    """
    from tripletrec.serving.blend_retrieval import BlendRetriever, has_blend

    if has_blend(model):
        return BlendRetriever.load(model_dir, model, weights_sha256)
    users, items = model_vectors(model)
    return VectorRetriever(ANNIndex.load(model_dir, items, weights_sha256), users)


def build_model_index(
    model_dir: str | Path, settings: IndexSettings | None = None, *, progress: bool = False
) -> tuple[Path, ANNIndex]:
    """Build the approximate index of the saved model in ``model_dir``: over its vector
    space (the bilinear and FM models), or over a blend's parts (``tripletrec.Recommender``,
    :mod:`tripletrec.serving.blend_retrieval`), with every known user's best items
    (:mod:`tripletrec.serving.answers`); ``progress``: a bar over the steps (load, cluster
    and fill, answer, save)."""
    from tqdm.auto import tqdm

    from tripletrec.persistence import load_model, read_manifest
    from tripletrec.serving.answers import compute_answers
    from tripletrec.serving.blend_retrieval import BlendRetriever, has_blend

    with tqdm(total=4, desc="index", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("loading")
        model = load_model(model_dir)
        bar.update()
        bar.set_postfix_str("clustering")
        retriever: Any
        if has_blend(model):
            retriever = BlendRetriever.build(model, settings)
        else:
            users, items = model_vectors(model)
            retriever = VectorRetriever(ANNIndex.build(items, settings), users)
        bar.update()
        bar.set_postfix_str("answering known users")
        answers = compute_answers(model, retriever)
        bar.update()
        bar.set_postfix_str("saving")
        sha = read_manifest(model_dir)["weights_sha256"]
        path = retriever.save(model_dir, sha, answers)
        bar.update()
    return path, retriever.index
