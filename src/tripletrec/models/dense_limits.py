"""Whether a dense items x items fit may start: memory, and what the linked LAPACK survives.

tripletrec's rule: no input, however large, ends the process by a signal or an
out-of-memory kill. A model that holds or factorises an items x items matrix
(:class:`~tripletrec.models.ease.EASERecommender`, the EASE part of
:class:`~tripletrec.models.hybrid.HybridRecommender`, an unpruned
:class:`~tripletrec.models.rp3beta.RP3BetaRecommender`) calls :func:`check_dense_fit`
before it allocates anything of that size, and gets one
:class:`~tripletrec.exceptions.DataError` line saying why and what to use instead.

Two limits, both measured (issue 23, ``docs/models.md``):

* Memory. The fit's peak is its n x n arrays (EASE: 4 bytes per item pair, a float32
  Gram matrix inverted and turned into the weights in place) and transients; it must fit
  in :data:`USABLE_FRACTION` of the memory available (``MemAvailable``, a cgroup's room).
* The LAPACK. The OpenBLAS that scipy's wheels link (scipy-openblas 0.3.30, LP64, work
  buffers of 32 MiB) dies by SIGSEGV in its Cholesky factorisation (``?potrf``) above a
  size its GEMM blocking sets: its threaded SYRK packs a thread's whole share of columns
  into that buffer. The law (:func:`lapack_max_items`) falls between the largest size
  that factorised and the smallest that crashed within a second in each of the four
  cases probed (``benchmarks/results/dense_limits.md``; the kernels forced with
  ``OPENBLAS_CORETYPE``): single precision 26,100 / 26,250 items on AVX-512 (SkylakeX)
  kernels (law 26,294) and 36,800 / 37,000 on AVX2 (Haswell) ones (36,941); double
  precision 15,400 / 15,700 (15,558) and 22,692 / 22,700 (22,702; ``dlauum`` of
  ``dpotri`` completes at 23,300). More threads raise the limit and one thread takes
  another path, but the count can change at run time, so the two-thread limit applies
  whatever it is. A 32-bit-integer (LP64) LAPACK other than OpenBLAS is held to
  ``n * n < 2**31``.
"""

from __future__ import annotations

import functools
import math
import platform
from pathlib import Path

import numpy as np

from tripletrec._system import available_memory_bytes
from tripletrec.exceptions import DataError

#: What a refusal tells the user to fit instead: one place to change when a scalable
#: item-item estimator lands.
INSTEAD = "RP3BetaRecommender(top_k=100) (sparse item-item weights)"
#: Share of the available memory a fit may plan to fill: the rest is for the process's own
#: later allocations (scores, copies a caller makes) and for other processes, which may
#: grow while a fit of minutes runs.
USABLE_FRACTION = 0.9
#: scipy-openblas's work buffer per thread (its wheels build OpenBLAS with BUFFERSIZE=20).
_OPENBLAS_BUFFER_BYTES = 32 << 20
#: OpenBLAS's GEMM blocking (P, Q) per element size (8: double, 4: single precision) for
#: the kernels it picks at run time: Haswell's (also Zen's) on AVX2 machines, SkylakeX's
#: (the smaller limit) on AVX-512 ones and wherever the CPU is not recognised (its
#: ``param.h``).
_AVX2_BLOCKING = {8: (512, 256), 4: (320, 320)}
_AVX512_BLOCKING = {8: (192, 384), 4: (448, 448)}
#: Margin below the size the buffer law gives (within 0.7 % of every measured crash).
_LAPACK_SAFETY = 0.97
#: Largest n whose n * n indices fit in a 32-bit integer.
_LP64_MAX_ITEMS = math.isqrt(2**31 - 1)


def check_dense_fit(
    model: str,
    n_items: int,
    bytes_needed: int,
    max_memory_bytes: int | None = None,
    factorises: type[np.floating] | None = None,
) -> None:
    """Refuse, before any large allocation, a dense fit that would not survive.

    Parameters
    ----------
    model : str
        The estimator to name in the message (e.g. ``"EASERecommender"``).
    n_items : int
        Side of the items x items matrices.
    bytes_needed : int
        Peak memory the fit adds, all copies included.
    max_memory_bytes : int, optional
        Memory the fit may use; None takes :data:`USABLE_FRACTION` of
        :func:`available_memory_bytes` (no memory check when that cannot be read).
    factorises : numpy floating type, optional
        The precision in which the fit factorises the matrix with LAPACK (then
        :func:`lapack_max_items` applies too); None when it factorises nothing.

    Raises
    ------
    DataError
        One line: the items, the bytes needed against the bytes available and/or the
        LAPACK's limit, and the model to use instead.
    """
    reasons = []
    if max_memory_bytes is None:
        available = available_memory_bytes()
        usable = None if available is None else int(available * USABLE_FRACTION)
        where = f"{USABLE_FRACTION:.0%} of the memory available"
    else:
        usable, where = max_memory_bytes, "max_memory_bytes"
    if usable is not None and bytes_needed > usable:
        reasons.append(
            f"its items x items matrices need {_gib(bytes_needed)} and {where} is {_gib(usable)}"
        )
    if factorises is not None:
        most, lapack = lapack_max_items(np.dtype(factorises).itemsize)
        if most is not None and n_items > most:
            reasons.append(f"{lapack} crashes factorising more than {most:,} items")
    if reasons:
        raise DataError(
            f"{model} cannot fit {n_items:,} items: {'; '.join(reasons)}; use {INSTEAD} "
            "instead, or fewer items"
        )


@functools.cache
def lapack_max_items(itemsize: int = 8) -> tuple[int | None, str]:
    """The largest catalogue whose Cholesky factorisation the LAPACK that scipy links
    survives in the precision of ``itemsize`` bytes (8 or 4), and that LAPACK's name;
    None when no limit is known."""
    config = _lapack_config()
    name = str(config.get("name", "OpenBLAS"))
    version = config.get("version")
    label = f"the LAPACK scipy links ({name}{f' {version}' if version else ''})"
    # Without build information scipy is assumed to be a wheel, which links OpenBLAS.
    if "openblas" in name.lower():
        blocking = _AVX2_BLOCKING if _cpu_has_avx2_not_avx512() else _AVX512_BLOCKING
        p, q = blocking[itemsize]
        # The threaded SYRK in potrf packs a thread's whole share of columns (q values
        # each) into the buffer left after the p x q panel; with two threads the larger
        # share is 1/sqrt(2) of the trailing matrix, which follows a q-wide panel.
        share = (_OPENBLAS_BUFFER_BYTES - p * q * itemsize) // (q * itemsize)
        return int(_LAPACK_SAFETY * (q + share * math.sqrt(2))), label
    if not config.get("has ilp64", False):
        return _LP64_MAX_ITEMS, label
    return None, label


def _lapack_config() -> dict:
    """scipy's build information about its LAPACK (empty when scipy does not give it)."""
    try:
        import scipy

        config = scipy.show_config(mode="dicts")
        return dict(config["Build Dependencies"]["lapack"])
    except Exception:  # an old scipy without mode="dicts", or another layout: no facts
        return {}


def _cpu_has_avx2_not_avx512() -> bool:
    """Whether OpenBLAS picks AVX2 (Haswell or Zen) kernels here: an x86-64 CPU with AVX2
    and without AVX-512; False (the smaller limit) when unsure."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx2" in flags and "avx512f" not in flags


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"
