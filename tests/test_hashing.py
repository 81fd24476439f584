"""Hashing (BLAKE3, SHA-256) against hashlib and the ``blake3`` package.

Sizes straddle every internal threshold of the engine: the 2 KiB GIL cut-off,
BLAKE3's 1 KiB chunks and 128 KiB rayon cut-off, the 1 MiB read buffer and
memory-map threshold, and the 64 MiB map window.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import hashing
from maestro_core.errors import FileChangedError, FileError, InputError, MaestroError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
ALGS = ["blake3", "sha256"]


def want(alg: str, data: bytes) -> bytes:
    return hashlib.sha256(data).digest() if alg == "sha256" else blake3.blake3(data).digest()


def want_file(alg: str, path: Path, chunk: int = 16 * MiB) -> bytes:
    h = hashlib.sha256() if alg == "sha256" else blake3.blake3(max_threads=blake3.blake3.AUTO)
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.digest()


EDGE_SIZES = [
    0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 4096,
    128 * KiB - 1, 128 * KiB, 128 * KiB + 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 7,
]


def test_known_answers() -> None:
    assert hashing.hash_bytes(b"abc", "sha256").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert hashing.hash_bytes(b"").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert hashing.ALGORITHMS == ("blake3", "sha256")


@pytest.mark.parametrize("alg", ALGS)
def test_bytes_at_threshold_sizes(alg: str) -> None:
    blob = os.urandom(max(EDGE_SIZES))
    for n in EDGE_SIZES:
        got = hashing.hash_bytes(blob[:n], alg)
        assert isinstance(got, bytes) and len(got) == 32
        assert got == want(alg, blob[:n]), n


@settings(max_examples=150)
@given(data=st.binary(max_size=5000), alg=st.sampled_from(ALGS))
def test_bytes_random(data: bytes, alg: str) -> None:
    assert hashing.hash_bytes(data, alg) == want(alg, data)


def test_bytes_like_inputs() -> None:
    data = os.urandom(5000)
    for alg in ALGS:
        for form in (bytearray(data), memoryview(data), memoryview(bytearray(data))):
            assert hashing.hash_bytes(form, alg) == want(alg, data)


def test_algorithm_names() -> None:
    assert hashing.hash_bytes(b"x", "SHA-256") == hashing.hash_bytes(b"x", "sha256")
    assert hashing.hash_bytes(b"x", "BLAKE3") == hashing.hash_bytes(b"x")
    for bad in ["md5", "", "sha-1", "blake2b", "sha256 "]:
        with pytest.raises(InputError) as ei:
            hashing.hash_bytes(b"x", bad)
        assert isinstance(ei.value, ValueError)
        assert "algorithm" in str(ei.value)


@pytest.mark.parametrize("alg", ALGS)
def test_files_at_threshold_sizes(tmp_path: Path, alg: str) -> None:
    blob = os.urandom(max(EDGE_SIZES))
    paths = []
    for n in EDGE_SIZES:
        p = tmp_path / f"f{n}"
        p.write_bytes(blob[:n])
        paths.append(p)
        assert hashing.hash_file(p, alg) == want(alg, blob[:n]), n
        assert hashing.hash_file(str(p), alg) == want(alg, blob[:n]), n
    arr = hashing.hash_files(paths, alg)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.shape == (len(paths), 32)
    assert arr.flags["C_CONTIGUOUS"]
    lst = hashing.hash_files(paths, alg, as_array=False)
    assert lst == [want(alg, blob[:n]) for n in EDGE_SIZES]
    assert [bytes(r) for r in arr] == lst
    # several batches, with progress
    seen: list[int] = []
    arr2 = hashing.hash_files(paths, alg, batch=4, progress=seen.append)
    assert np.array_equal(arr, arr2)
    assert sum(seen) == len(paths) and len(seen) == -(-len(paths) // 4)


def _sparse_with_islands(path: Path, size: int, offsets: list[int]) -> None:
    """A sparse file of ``size`` bytes with 4 KiB of random data at each offset."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in offsets:
            off = max(0, min(off, size - 4096))
            f.seek(off)
            f.write(os.urandom(min(4096, size)))


@pytest.mark.parametrize(
    "size", [16 * MiB - 1, 16 * MiB, 16 * MiB + 1, 64 * MiB - 1, 64 * MiB, 64 * MiB + 1, 128 * MiB + 4097]
)
def test_files_at_window_edges(tmp_path: Path, size: int) -> None:
    """Read windows of 16 MiB (64 MiB maps before): data on both sides of each edge."""
    p = tmp_path / "big"
    islands = [0, size - 4096]
    for window in (16 * MiB, 32 * MiB, 64 * MiB):
        islands += [window - 4096, window - 2048, window, window + 1]
    _sparse_with_islands(p, size, [o for o in islands if o < size])
    for alg in ALGS:
        assert hashing.hash_file(p, alg) == want_file(alg, p), alg


def test_hash_files_empty_and_paths(tmp_path: Path) -> None:
    e = hashing.hash_files([])
    assert e.shape == (0, 32) and e.dtype == np.uint8
    assert hashing.hash_files([], as_array=False) == []
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").write_bytes(b"B")
    got = hashing.hash_files([tmp_path / "b", str(tmp_path / "a"), tmp_path / "b"], "sha256", as_array=False)
    assert got == [want("sha256", b"B"), want("sha256", b"A"), want("sha256", b"B")]


@settings(max_examples=25)
@given(contents=st.lists(st.binary(max_size=3000), min_size=1, max_size=30), alg=st.sampled_from(ALGS))
def test_hash_files_random(tmp_path_factory: pytest.TempPathFactory, contents: list[bytes], alg: str) -> None:
    d = tmp_path_factory.mktemp("many")
    paths = []
    for i, c in enumerate(contents):
        p = d / f"{i:03}"
        p.write_bytes(c)
        paths.append(p)
    assert hashing.hash_files(paths, alg, as_array=False) == [want(alg, c) for c in contents]


# ------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    for alg in ALGS:
        with pytest.raises(FileError) as ei:
            hashing.hash_file(missing, alg)
        assert isinstance(ei.value, OSError) and isinstance(ei.value, MaestroError)
        assert str(missing) in str(ei.value)
    ok = tmp_path / "ok"
    ok.write_bytes(b"x")
    with pytest.raises(FileError) as ei:
        hashing.hash_files([ok, ok, missing, ok])
    assert str(missing) in str(ei.value)


def test_directory_and_special_files(tmp_path: Path) -> None:
    with pytest.raises(FileError) as ei:
        hashing.hash_file(tmp_path)
    assert "not a regular file" in str(ei.value) and str(tmp_path) in str(ei.value)
    with pytest.raises(FileError):
        hashing.hash_files([tmp_path])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileError):  # would block forever if opened for reading without a check
        hashing.hash_file(fifo)


def test_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"content")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert hashing.hash_file(link) == want("blake3", b"content")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(FileError) as ei:
        hashing.hash_file(loop)
    assert str(loop) in str(ei.value)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileError):
        hashing.hash_file(dangling)


def test_unknown_algorithm_everywhere(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x")
    for call in (
        lambda: hashing.hash_bytes(b"x", "md5"),
        lambda: hashing.hash_file(p, "md5"),
        lambda: hashing.hash_files([p], "md5"),
        lambda: hashing.hash_files([], "md5"),
    ):
        with pytest.raises(InputError) as ei:
            call()
        assert isinstance(ei.value, ValueError)
        assert "md5" in str(ei.value)


def test_unreadable_file(tmp_path: Path) -> None:
    """Permission bits do not stop root, so use a file that cannot be read
    by anyone: a path under a regular file (ENOTDIR)."""
    p = tmp_path / "plain"
    p.write_bytes(b"x")
    with pytest.raises(FileError) as ei:
        hashing.hash_file(p / "child")
    assert str(p / "child") in str(ei.value)
    if os.geteuid() != 0:
        p.chmod(0)
        with pytest.raises(FileError):
            hashing.hash_file(p)


# ------------------------------------------------------------------ changes during hashing


def _hash_while(path: Path, alg: str, mutate) -> BaseException | None:
    """Hash ``path`` while a thread mutates it until hashing returns."""
    stop = threading.Event()
    started = threading.Event()

    def writer() -> None:
        with open(path, "r+b", buffering=0) as f:
            started.set()
            while not stop.is_set():
                mutate(f)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    started.wait(5)
    time.sleep(0.01)
    try:
        hashing.hash_file(path, alg)
        return None
    except BaseException as e:  # noqa: BLE001 - returned for inspection
        return e
    finally:
        stop.set()
        t.join(10)


def _append(f) -> None:
    f.seek(0, os.SEEK_END)
    f.write(b"more data " * 400)


def _rewrite_start(f) -> None:
    f.seek(0)
    f.write(os.urandom(4096))


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("mutate", [_append, _rewrite_start], ids=["append", "rewrite-in-place"])
def test_file_changing_during_hashing(tmp_path: Path, alg: str, mutate) -> None:
    p = tmp_path / "growing"
    with open(p, "wb") as f:
        f.truncate(256 * MiB)
    outcomes = []
    for _ in range(5):
        e = _hash_while(p, alg, mutate)
        outcomes.append(e)
        if isinstance(e, FileChangedError):
            break
    e = outcomes[-1]
    assert isinstance(e, FileChangedError), f"change never detected: {outcomes!r}"
    assert isinstance(e, FileError) and isinstance(e, OSError)
    assert str(p) in str(e) and "changed" in str(e)
    assert all(o is None or isinstance(o, FileChangedError) for o in outcomes), outcomes


TRUNCATING_CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    from maestro_core import hashing
    from maestro_core.errors import FileChangedError
    path, alg = sys.argv[1], sys.argv[2]
    big = 256 << 20
    with open(path, "wb") as f:
        f.truncate(big)
    stop = threading.Event()
    def shrink_and_grow():
        fd = os.open(path, os.O_RDWR)
        while not stop.is_set():
            os.ftruncate(fd, 4096)
            os.ftruncate(fd, big)
        os.close(fd)
    t = threading.Thread(target=shrink_and_grow)
    t.start()
    seen = {"ok": 0, "changed": 0}
    try:
        for _ in range(40):
            time.sleep(0.002)
            try:
                hashing.hash_file(path, alg)
                seen["ok"] += 1
            except FileChangedError:
                seen["changed"] += 1
    finally:
        stop.set()
        t.join()
    print(seen["ok"], seen["changed"])
    """
)


@pytest.mark.parametrize("alg", ALGS)
def test_truncation_during_hashing_is_a_typed_error(tmp_path: Path, alg: str) -> None:
    """A file truncated under the hasher must not kill the process (memory
    maps raise SIGBUS there); it is a FileChangedError like any change."""
    r = subprocess.run(
        [sys.executable, "-c", TRUNCATING_CHILD, str(tmp_path / "shrinking"), alg],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert r.returncode == 0, f"child died (signal {-r.returncode})" if r.returncode < 0 else r.stderr
    ok, changed = map(int, r.stdout.split())
    assert ok + changed == 40 and changed >= 1, r.stdout


# ------------------------------------------------------------------ 4 GiB streaming


CHILD = textwrap.dedent(
    """
    import sys
    from maestro_core import hashing
    digest = hashing.hash_file(sys.argv[1], sys.argv[2])
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print(digest.hex(), hwm)
    """
)


def _child_hash(path: Path, alg: str) -> tuple[str, int]:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), alg], capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    digest, hwm_kib = r.stdout.split()
    return digest, int(hwm_kib) * 1024


@pytest.mark.slow
def test_4gib_file_streams_with_bounded_memory(tmp_path: Path) -> None:
    p = tmp_path / "four-gib"
    size = 4 * GiB
    _sparse_with_islands(p, size, [0, 1 * GiB, 2 * GiB - 1, 3 * GiB + 12345, size - 4096])
    assert p.stat().st_size == size
    for alg in ALGS:
        digest, peak = _child_hash(p, alg)
        assert peak < 200 * MiB, f"{alg}: peak RSS {peak / MiB:.0f} MiB"
        assert len(bytes.fromhex(digest)) == 32
        if alg == "blake3":  # SHA-256 of big files is checked at the window edges above
            assert digest == want_file(alg, p, chunk=64 * MiB).hex(), alg
