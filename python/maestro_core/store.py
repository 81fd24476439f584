"""The embedded store: one SQLite database (WAL) under ``.maestro/``.

The folder is, in order: the ``home`` argument, ``$MAESTRO_HOME``, or
``.maestro`` in the working directory. It holds the append-only log and the
Decision Cards; every card is also logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _native

__all__ = ["Store", "default_home", "open_store"]

Store = _native.Store


def default_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the store folder: argument, ``$MAESTRO_HOME``, ``./.maestro``."""
    if home is not None:
        return Path(home)
    env = os.environ.get("MAESTRO_HOME")
    if env:
        return Path(env)
    return Path.cwd() / ".maestro"


def open_store(home: str | os.PathLike[str] | None = None) -> _native.Store:
    """Open (creating if needed) the store."""
    return _native.Store(os.fspath(default_home(home)))
