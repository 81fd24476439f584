"""Hashing: ours against the ``blake3`` package and ``hashlib``.

Workloads (issue 3), one ``benchmark.group`` each:

* ``file-blake3``:  one large file (1 GiB); ours vs ``blake3`` with
  ``max_threads=AUTO`` and ``update_mmap`` (goal: ours >= 0.9x its speed).
* ``file-sha256``:  the same file; ours vs ``hashlib`` (no goal stated).
* ``files-blake3``: 10,000 files of 100 KiB; ours (``hash_files``, parallel
  across files) vs Python loops over the ``blake3`` package (goal >= 2x the
  loop). A thread pool over the package is shown as well, without a goal.
* ``files-sha256``: the same files; ours vs a ``hashlib.file_digest`` loop.

Every implementation's digests are compared with a reference computed once
(the peer's), so a row that timed a wrong answer fails instead of reporting.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import pytest

from maestro_core import hashing

# --- one large file ---------------------------------------------------------


def blake3_package_file(path: Path) -> bytes:
    return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).digest()


def hashlib_file(path: Path, algorithm: str = "sha256") -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).digest()


# name -> (role, goal: peer time / our time, function)
FILE_IMPLS: dict[str, dict[str, tuple[str, float | None, Callable[[Path], bytes]]]] = {
    "blake3": {
        "ours": ("ours", None, lambda p: hashing.hash_file(p, "blake3")),
        "blake3-package (AUTO threads, mmap)": ("peer", 0.9, blake3_package_file),
    },
    "sha256": {
        "ours": ("ours", None, lambda p: hashing.hash_file(p, "sha256")),
        "hashlib.file_digest": ("baseline", None, hashlib_file),
    },
}


@pytest.fixture(scope="module")
def file_reference(big_file: Path) -> dict[str, bytes]:
    return {"blake3": blake3_package_file(big_file), "sha256": hashlib_file(big_file)}


@pytest.mark.parametrize(
    ("algorithm", "impl"),
    [(a, name) for a, impls in FILE_IMPLS.items() for name in impls],
)
def test_file(benchmark, big_file: Path, file_reference: dict[str, bytes], sizes, algorithm: str, impl: str) -> None:
    role, goal, fn = FILE_IMPLS[algorithm][impl]
    benchmark.group = f"file-{algorithm}"
    benchmark.extra_info.update(
        impl=impl, role=role, goal=goal, workload=f"one {sizes.file_mib} MiB file, {algorithm}", bytes=sizes.file_mib << 20
    )
    got = benchmark.pedantic(fn, args=(big_file,), rounds=sizes.rounds, warmup_rounds=1)
    assert got == file_reference[algorithm], f"{impl} disagrees with the reference {algorithm} digest"


# --- many small files -------------------------------------------------------


def blake3_loop_read(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(blake3.blake3(f.read()).digest())
    return out


def blake3_loop_mmap(paths: list[str]) -> list[bytes]:
    return [blake3.blake3().update_mmap(p).digest() for p in paths]


def _one_blake3(p: str) -> bytes:
    with open(p, "rb") as f:
        return blake3.blake3(f.read()).digest()


def blake3_thread_pool(paths: list[str]) -> list[bytes]:
    with ThreadPoolExecutor(os.cpu_count()) as ex:
        return list(ex.map(_one_blake3, paths, chunksize=64))


def hashlib_loop(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(hashlib.file_digest(f, "sha256").digest())
    return out


FILES_IMPLS: dict[str, dict[str, tuple[str, float | None, Callable[[list[str]], object]]]] = {
    "blake3": {
        # Ours returns an (n, 32) uint8 array (no per-digest object).
        "ours": ("ours", None, lambda paths: hashing.hash_files(paths, "blake3")),
        "blake3-package loop (read)": ("peer", 2.0, blake3_loop_read),
        "blake3-package loop (update_mmap)": ("peer", 2.0, blake3_loop_mmap),
        "blake3-package thread pool (read)": ("peer", None, blake3_thread_pool),
    },
    "sha256": {
        "ours": ("ours", None, lambda paths: hashing.hash_files(paths, "sha256")),
        "hashlib.file_digest loop": ("baseline", None, hashlib_loop),
    },
}


@pytest.fixture(scope="module")
def files_reference(many_files: list[str]) -> dict[str, list[bytes]]:
    return {"blake3": blake3_loop_read(many_files), "sha256": hashlib_loop(many_files)}


@pytest.mark.parametrize(
    ("algorithm", "impl"),
    [(a, name) for a, impls in FILES_IMPLS.items() for name in impls],
)
def test_files(
    benchmark, many_files: list[str], files_reference: dict[str, list[bytes]], sizes, algorithm: str, impl: str
) -> None:
    role, goal, fn = FILES_IMPLS[algorithm][impl]
    benchmark.group = f"files-{algorithm}"
    benchmark.extra_info.update(
        impl=impl,
        role=role,
        goal=goal,
        workload=f"{sizes.files} files x {sizes.file_kib} KiB, {algorithm}",
        bytes=sizes.files * (sizes.file_kib << 10),
    )
    got = benchmark.pedantic(fn, args=(many_files,), rounds=sizes.rounds, warmup_rounds=1)
    if role == "ours":  # the array, turned into bytes outside the timing
        assert got.shape == (len(many_files), 32)
        got = [bytes(row) for row in got]
    assert got == files_reference[algorithm], f"{impl} disagrees with the reference {algorithm} digests"
