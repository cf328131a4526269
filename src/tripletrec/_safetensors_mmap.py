"""Read a safetensors file as read-only numpy views over one memory map of it.

``safetensors.numpy.load_file`` copies every tensor into the process's own memory, so N
serving workers that load one model hold N copies of it. Mapping the file instead lets
the operating system keep one copy in the page cache, shared by every process that maps
the same file; each array here is a view into that mapping.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
length ``n``, ``n`` bytes of UTF-8 JSON mapping each tensor name to its ``dtype``,
``shape`` and ``data_offsets`` (begin and end, relative to the end of the header), and an
optional ``"__metadata__"`` object of strings; then the tensors' bytes, little-endian and
C-ordered, back to back. The header is checked strictly, because nothing else stands
between a damaged file and a view that reads outside its tensor: every inconsistency is a
:class:`~tripletrec.exceptions.ModelFileError` naming the file and what is wrong.

A mapped file must be replaced, not rewritten: ``save_model`` renames a new directory into
place, and the old file lives on, unchanged, for as long as a process maps it; a file
truncated in place would instead end the processes mapping it with ``SIGBUS``.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tripletrec._checks import printable
from tripletrec.exceptions import ModelFileError, first_line

#: The safetensors dtypes numpy has, as little-endian numpy dtypes (the format's byte
#: order). BF16 and the float8 types have no numpy dtype; tripletrec never writes them.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
#: The largest header the safetensors library itself accepts (100 MB): a larger length is
#: a damaged file, not a header worth reading into memory.
MAX_HEADER_BYTES = 100_000_000
_METADATA_KEY = "__metadata__"
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def _is_count(value: object) -> bool:
    # bool is an int to Python, not a count to JSON.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_header(header: bytes, data_bytes: int) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """The tensors that a safetensors ``header`` declares, checked against the data size.

    Parameters
    ----------
    header : bytes
        The JSON header (without its 8-byte length).
    data_bytes : int
        Bytes in the file after the header: the tensors must cover exactly these.

    Returns
    -------
    dict
        ``name -> (dtype, shape, begin, end)``, offsets relative to the data's start.

    Raises
    ------
    ValueError
        Naming the first inconsistency (the caller adds the file name).
    """
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not JSON ({first_line(exc)})") from exc
    if not isinstance(parsed, dict):
        raise ValueError("header is not a JSON object")
    metadata = parsed.pop(_METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{_METADATA_KEY} is not an object of strings")
    tensors: dict[str, tuple[np.dtype, tuple, int, int]] = {}
    for name, entry in parsed.items():
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise ValueError(f"tensor {name!r}: entry must have exactly {sorted(_ENTRY_KEYS)}")
        dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise ValueError(f"tensor {name!r}: unsupported dtype {entry['dtype']!r}")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
            raise ValueError(f"tensor {name!r}: shape {shape!r} is not a list of counts")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(n) for n in offsets)
            or offsets[0] > offsets[1]
        ):
            raise ValueError(f"tensor {name!r}: data_offsets {offsets!r} are not [begin, end]")
        begin, end = offsets
        if end > data_bytes:
            raise ValueError(
                f"tensor {name!r}: data_offsets {offsets} point past the end of the data "
                f"({data_bytes} bytes)"
            )
        if math.prod(shape) * dtype.itemsize != end - begin:
            raise ValueError(
                f"tensor {name!r}: shape {shape} of {entry['dtype']} needs "
                f"{math.prod(shape) * dtype.itemsize} bytes, data_offsets give {end - begin}"
            )
        tensors[name] = (dtype, tuple(shape), begin, end)
    # Back to back from the data's start to the file's end, as the writer lays them out:
    # no overlap (two tensors sharing bytes) and no gap (bytes nobody accounts for).
    position = 0
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else "leaves a gap"
            raise ValueError(f"tensor {name!r}: data_offsets [{begin}, {end}] {what}")
        position = end
    if position != data_bytes:
        raise ValueError(
            f"the tensors cover {position} of the {data_bytes} data bytes (trailing bytes)"
        )
    return tensors


def map_safetensors(path: str | Path, handle: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """Every tensor of the safetensors file ``path``, as a read-only view over one
    read-only memory map of the file.

    Parameters
    ----------
    path : str or Path
        The file; named in errors.
    handle : binary file, optional
        The file already open (for instance after checking its checksum through it): the
        map is then of exactly the file that was checked, even if ``path`` has been
        replaced since. Default: ``path`` is opened.

    Returns
    -------
    dict of str to numpy.ndarray
        By tensor name, in the header's order. The arrays are not writeable; the mapping
        stays open as long as any of them does (closing the file does not unmap it, and
        a file replaced or deleted meanwhile stays readable through it on POSIX systems).

    Raises
    ------
    ModelFileError
        If the file cannot be read, is truncated, or its header is inconsistent.
    """
    path = Path(path)
    try:
        if handle is None:
            with open(path, "rb") as own:
                return _map(path, own)
        return _map(path, handle)
    except OSError as exc:
        if isinstance(exc, ModelFileError):  # a subclass of OSError
            raise
        raise ModelFileError(f"{printable(path)}: cannot read ({first_line(exc)})") from exc


def _map(path: Path, handle: BinaryIO) -> dict[str, np.ndarray]:
    size = os.fstat(handle.fileno()).st_size
    if size < 8:  # an empty file cannot even be mapped
        raise ModelFileError(
            f"{printable(path)}: not a safetensors file ({size} bytes, shorter than the "
            "8-byte header length)"
        )
    # The map covers the whole file (length 0), read-only: a stray write through a view
    # raises instead of changing the page cache every other worker reads.
    buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _views(path, buffer)
    except BaseException:
        # Unmap now rather than at garbage collection; views still held by the traceback
        # (BufferError) leave that to the collector.
        with contextlib.suppress(BufferError):
            buffer.close()
        raise


def _views(path: Path, buffer: mmap.mmap) -> dict[str, np.ndarray]:
    size = len(buffer)  # the mapped length, which every offset is checked against
    header_bytes = int.from_bytes(buffer[:8], "little")
    if header_bytes > min(MAX_HEADER_BYTES, size - 8):
        raise ModelFileError(
            f"{printable(path)}: header length {header_bytes} does not fit the file "
            f"({size} bytes; at most {MAX_HEADER_BYTES})"
        )
    start = 8 + header_bytes
    try:
        tensors = parse_header(buffer[8:start], size - start)
    except ValueError as exc:
        raise ModelFileError(f"{printable(path)}: {first_line(exc)}") from exc
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, shape, begin, end) in tensors.items():
        count = (end - begin) // dtype.itemsize
        view = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + begin)
        if not dtype.isnative:  # a big-endian host: a copy in its own byte order
            view = view.astype(dtype.newbyteorder())
            view.flags.writeable = False  # read-only like the views elsewhere
        arrays[name] = view.reshape(shape)
    return arrays
