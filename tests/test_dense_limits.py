"""Dense items x items fits refuse, in one line and before any large allocation, what
would exhaust memory or crash the linked LAPACK (issue 23: EASE on Gowalla's 40,981 items
died by SIGSEGV inside OpenBLAS)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.exceptions import DataError
from tripletrec.models import dense_limits, hybrid

#: Gowalla's catalogue: even EASE's 4 * N**2 bytes are 6.7 GB, so the refusal must come first.
N_ITEMS = 40_981
#: What a test lets a refused fit allocate (Python-tracked): the sparse data, its copies.
SMALL_BYTES = 64 << 20


@pytest.fixture(scope="module")
def wide() -> sp.csr_matrix:
    """A large but nearly empty catalogue: every item liked once, by 2,000 users."""
    users = np.arange(N_ITEMS) % 2_000
    return sp.csr_matrix(
        (np.ones(N_ITEMS, np.float32), (users, np.arange(N_ITEMS))), shape=(2_000, N_ITEMS)
    )


@pytest.fixture(scope="module")
def wide_liked_by_five() -> sp.csr_matrix:
    """The same catalogue with every item liked by five users: as many positives as the
    hybrid's EASE part asks of an item it keeps (``hybrid.EASE_MIN_ITEM_POSITIVES``)."""
    assert hybrid.EASE_MIN_ITEM_POSITIVES <= 5
    items = np.tile(np.arange(N_ITEMS), 5)
    users = (items + 400 * np.repeat(np.arange(5), N_ITEMS)) % 2_000  # five distinct users
    return sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(2_000, N_ITEMS))


@pytest.fixture
def machine(monkeypatch):
    """Set the memory available and the LAPACK's limit that the checks read."""

    def set_to(available: int | None, lapack_items: int | None) -> None:
        monkeypatch.setattr(dense_limits, "available_memory_bytes", lambda: available)
        monkeypatch.setattr(
            dense_limits,
            "lapack_max_items",
            lambda itemsize=8: (lapack_items, "the test's LAPACK"),
        )

    return set_to


def refusal(fit) -> tuple[str, int]:
    """The DataError line ``fit()`` raises, and the peak of Python-tracked allocation."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            fit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return str(caught.value), peak


def test_ease_refuses_what_memory_cannot_hold_before_allocating(wide, machine):
    machine(available=4 << 30, lapack_items=None)
    model = tr.EASERecommender()
    message, peak = refusal(lambda: model.fit(wide))
    assert message == (
        "EASERecommender cannot fit 40,981 items: its items x items matrices need 6.4 GiB "
        f"and 90% of the memory available is 3.6 GiB; use {dense_limits.INSTEAD} instead, "
        "or fewer items"
    )
    assert "\n" not in message
    assert peak < SMALL_BYTES  # no items x items array was allocated
    with pytest.raises(tr.NotFittedError):
        model.score([0])


def test_ease_refuses_what_the_lapack_cannot_factorise(wide, machine):
    machine(available=1 << 50, lapack_items=22_021)
    message, peak = refusal(lambda: tr.EASERecommender().fit(wide))
    assert message.startswith(
        "EASERecommender cannot fit 40,981 items: the test's LAPACK crashes factorising "
        "more than 22,021 items; use RP3BetaRecommender(top_k="
    )
    assert peak < SMALL_BYTES


def test_both_reasons_share_one_line(wide, machine):
    machine(available=4 << 30, lapack_items=22_021)
    message, _ = refusal(lambda: tr.EASERecommender().fit(wide))
    assert "need 6.4 GiB" in message and "more than 22,021 items" in message
    assert "\n" not in message


def test_a_catalogue_within_both_limits_fits(machine):
    machine(available=1 << 30, lapack_items=30)
    matrix = sp.random(40, 30, density=0.3, random_state=0, format="csr")
    assert tr.EASERecommender(l2=5.0).fit(matrix).weights_.shape[0] <= 30


def test_the_default_blend_does_not_pick_ease_for_such_a_catalogue(wide):
    assert wide.shape[1] > hybrid.EASE_MAX_ITEMS
    assert tr.Recommender()._item_item_kind(wide.shape[1]) == "graph_filter"


@pytest.mark.parametrize("estimator", [tr.HybridRecommender, tr.Recommender])
def test_the_blend_refuses_before_its_l2_search_and_factor_model(
    estimator, wide_liked_by_five, machine, monkeypatch
):
    machine(available=4 << 30, lapack_items=None)

    def must_not_run(*args, **kwargs):
        raise AssertionError("ran before the refusal")

    monkeypatch.setattr(hybrid, "chosen_l2", must_not_run)
    monkeypatch.setattr(tr.TripletRecommender, "fit", must_not_run)
    model = estimator(item_item="ease", random_state=0)  # "auto" picks the graph filter here
    message, peak = refusal(lambda: model.fit(wide_liked_by_five))
    assert message.startswith(
        f"{estimator.__name__} (its EASE part) cannot fit 40,981 items: its items x items "
        "matrices need 6.4 GiB"
    )
    assert dense_limits.INSTEAD in message
    assert peak < SMALL_BYTES
    with pytest.raises(tr.NotFittedError):
        model.score([0])


def test_unpruned_rp3beta_refuses_a_dense_w_that_would_not_fit(wide, machine):
    machine(available=4 << 30, lapack_items=0)  # RP3beta factorises nothing
    message, peak = refusal(lambda: tr.RP3BetaRecommender(top_k=None).fit(wide))
    assert message.startswith(
        "RP3BetaRecommender(top_k=None) cannot fit 40,981 items: its items x items matrices "
        "need 6.3 GiB"
    )
    assert peak < SMALL_BYTES


def test_the_lapack_limits_follow_the_measured_law(monkeypatch):
    def limit(config: dict, avx2: bool, itemsize: int = 8) -> int | None:
        monkeypatch.setattr(dense_limits, "_lapack_config", lambda: config)
        monkeypatch.setattr(dense_limits, "_cpu_has_avx2_not_avx512", lambda: avx2)
        dense_limits.lapack_max_items.cache_clear()
        return dense_limits.lapack_max_items(itemsize)[0]

    try:
        openblas = {"name": "scipy-openblas", "version": "0.3.30", "has ilp64": False}
        # Measured with 2 threads on AVX2 kernels: 22,692 items factorise, 22,700 crash;
        # 17,600 items fitted in a benchmark. Below the crash, above what is known to work.
        assert 17_600 < limit(openblas, avx2=True) < 22_692
        assert limit(openblas, avx2=False) < limit(openblas, avx2=True)  # AVX-512 kernels
        # Single precision, as EASE factorises. Measured with 2 threads: on AVX-512
        # (SkylakeX) kernels 25,000 items factorise and invert, 26,100 factorise, 26,250
        # crash; on AVX2 (Haswell) ones 36,800 factorise, 37,000 crash
        # (benchmarks/results/dense_limits.md).
        assert 25_000 <= limit(openblas, avx2=False, itemsize=4) < 26_100
        assert 26_250 < limit(openblas, avx2=True, itemsize=4) < 36_800
        assert limit({"name": "mkl", "has ilp64": False}, avx2=True) == 46_340  # 32-bit ints
        assert 46_341**2 > 2**31 - 1
        assert limit({"name": "mkl", "has ilp64": True}, avx2=True) is None
    finally:
        dense_limits.lapack_max_items.cache_clear()


def test_available_memory_is_read_on_linux():
    available = dense_limits.available_memory_bytes()
    assert available is None or available > 0
