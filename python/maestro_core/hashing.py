"""Content hashing: BLAKE3 (default) and SHA-256, in Rust.

Large inputs release the GIL; many files are hashed in parallel across files
(rayon). Files are streamed (BLAKE3 through windowed memory maps), so peak
memory does not grow with file size.

>>> from maestro_core.hashing import hash_bytes
>>> hash_bytes(b"abc", "sha256").hex()[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _native

__all__ = ["ALGORITHMS", "hash_bytes", "hash_file", "hash_files"]

ALGORITHMS = ("blake3", "sha256")
StrPath = str | os.PathLike[str]


def hash_bytes(data: bytes | bytearray | memoryview, algorithm: str = "blake3") -> bytes:
    """Digest (32 bytes) of ``data`` (``bytearray``/``memoryview`` are copied once)."""
    return _native.hash_bytes(data if isinstance(data, bytes) else bytes(data), algorithm)


def hash_file(path: StrPath, algorithm: str = "blake3") -> bytes:
    """Digest (32 bytes) of one file, streamed."""
    return _native.hash_file(os.fspath(path), algorithm)[1]


@overload
def hash_files(
    paths: Sequence[StrPath],
    algorithm: str = ...,
    *,
    as_array: Literal[True] = ...,
    progress: Callable[[int], None] | None = ...,
    batch: int = ...,
) -> npt.NDArray[np.uint8]: ...
@overload
def hash_files(
    paths: Sequence[StrPath],
    algorithm: str = ...,
    *,
    as_array: Literal[False],
    progress: Callable[[int], None] | None = ...,
    batch: int = ...,
) -> list[bytes]: ...
def hash_files(
    paths: Sequence[StrPath],
    algorithm: str = "blake3",
    *,
    as_array: bool = True,
    progress: Callable[[int], None] | None = None,
    batch: int = 4096,
) -> npt.NDArray[np.uint8] | list[bytes]:
    """Digests of many files, hashed in parallel across files.

    Returns an ``(n, 32)`` uint8 array (no copy out of Rust), or a list of
    ``bytes`` with ``as_array=False``. ``progress`` is called with the number
    of files done after each batch of ``batch`` files.
    """
    fs = [os.fspath(p) for p in paths]
    parts = []
    for start in range(0, max(len(fs), 1), batch):
        chunk = fs[start : start + batch]
        if not chunk and fs:
            break
        digests, _sizes = _native.hash_files(chunk, algorithm)
        parts.append(digests)
        if progress is not None:
            progress(len(chunk))
    arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if as_array:
        return arr
    return [bytes(row) for row in arr]
