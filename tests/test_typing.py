"""The stub of the native module matches it (stubtest) and the package type-checks (mypy)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_stubtest_native() -> None:
    r = _run("mypy.stubtest", "maestro_core._native", "--allowlist", "stubtest-allowlist.txt")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_package() -> None:
    r = _run("mypy", "python/maestro_core")
    assert r.returncode == 0, r.stdout + r.stderr
