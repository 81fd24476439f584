"""Fixtures and sizes for the peer benchmarks (run them with ``benches/run.py``).

Sizes come from the environment so that ``run.py --smoke`` can run the same
suites on tiny inputs, as a correctness check of every implementation:

* ``MAESTRO_BENCH_FILE_MIB``  size of the single large file (1024)
* ``MAESTRO_BENCH_FILES``     number of 100 KiB files (10000)
* ``MAESTRO_BENCH_FILE_KIB``  size of each of those files (100)
* ``MAESTRO_BENCH_LEAVES``    Merkle leaves, 8..32 random bytes each (1000000)
* ``MAESTRO_BENCH_PROOFS``    inclusion proofs asked of that tree (10000)
* ``MAESTRO_BENCH_DIR``       where the files are written (a new temporary
  directory by default; it is removed when the session ends)

Files are written once per session and hashed warm (from the page cache) by
every implementation alike.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCHES = Path(__file__).resolve().parent
if str(BENCHES) not in sys.path:  # for `import hashlib_merkle` whatever the import mode
    sys.path.insert(0, str(BENCHES))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Sizes:
    file_mib: int = _env_int("MAESTRO_BENCH_FILE_MIB", 1024)
    files: int = _env_int("MAESTRO_BENCH_FILES", 10_000)
    file_kib: int = _env_int("MAESTRO_BENCH_FILE_KIB", 100)
    leaves: int = _env_int("MAESTRO_BENCH_LEAVES", 1_000_000)
    proofs: int = _env_int("MAESTRO_BENCH_PROOFS", 10_000)

    @property
    def rounds(self) -> int:
        """Rounds per file benchmark (each side of a comparison gets as many)."""
        return 10 if self.full else 3

    @property
    def full(self) -> bool:
        """Whether these are the sizes the acceptance goals are stated for."""
        return self == Sizes(1024, 10_000, 100, 1_000_000, 10_000)


SIZES = Sizes()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` here (``pytest benches``), not only ``test_*.py``."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if not parent.session.isinitpath(file_path):  # given by name: already collected
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_report_header() -> str:
    return f"maestro benches: {SIZES} (full={SIZES.full})"


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    return SIZES


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    base = os.environ.get("MAESTRO_BENCH_DIR")
    d = Path(tempfile.mkdtemp(prefix="maestro-bench-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _write_random(path: Path, size: int, rng: random.Random) -> None:
    block = 4 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(rng.randbytes(n))
            left -= n


@pytest.fixture(scope="session")
def big_file(workdir: Path) -> Path:
    p = workdir / "big.bin"
    _write_random(p, SIZES.file_mib << 20, random.Random(1))
    return p


@pytest.fixture(scope="session")
def many_files(workdir: Path) -> list[str]:
    d = workdir / "many"
    d.mkdir()
    rng = random.Random(2)
    paths = []
    for i in range(SIZES.files):
        p = d / f"f{i:05d}.bin"
        p.write_bytes(rng.randbytes(SIZES.file_kib << 10))
        paths.append(str(p))
    return paths


@pytest.fixture(scope="session")
def leaves() -> list[bytes]:
    """Leaf data: ``SIZES.leaves`` random entries of 8..32 bytes."""
    rng = random.Random(3)
    data = [rng.randbytes(rng.randint(8, 32)) for _ in range(SIZES.leaves)]
    frozen_gc()
    return data


def frozen_gc() -> None:
    """Move every object alive now (fixtures: leaf lists, prebuilt trees) out
    of the collector's reach, so a benchmark that allocates containers is not
    charged for traversing another implementation's million-node fixture."""
    gc.collect()
    gc.freeze()
