from __future__ import annotations

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    h = tmp_path / "store"
    monkeypatch.setenv("MAESTRO_HOME", str(h))
    return h
