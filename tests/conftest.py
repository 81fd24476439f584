"""Shared fixtures for the maestro_core test suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from maestro_core import keys

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # for `import rfc9162_ref` whatever the import mode
    sys.path.insert(0, str(TESTS))

# One profile for the suite: no deadlines (the machine is shared and has two
# cores) and no "too slow" health check; example counts are set per test.
settings.register_profile(
    "maestro", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "maestro"))


@pytest.fixture(scope="session")
def keypair() -> keys.KeyPair:
    return keys.generate("test.example/log")


@pytest.fixture(scope="session")
def other_keypair() -> keys.KeyPair:
    return keys.generate("test.example/log")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test touch a store outside its temporary folders."""
    monkeypatch.setenv("MAESTRO_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store folder, also exported as MAESTRO_HOME."""
    h = tmp_path / "store"
    monkeypatch.setenv("MAESTRO_HOME", str(h))
    return h
