"""maestro_core: explain, tune and prove CI decisions.

Modules: :mod:`~maestro_core.hashing`, :mod:`~maestro_core.merkle`,
:mod:`~maestro_core.keys`, :mod:`~maestro_core.evidence`,
:mod:`~maestro_core.log`, :mod:`~maestro_core.cards`,
:mod:`~maestro_core.store`, :mod:`~maestro_core.prompts`,
:mod:`~maestro_core.duel`, :mod:`~maestro_core.policy`,
:mod:`~maestro_core.shapley`, :mod:`~maestro_core.errors`.
"""

from __future__ import annotations

import os as _os

# Before the extension loads (its Rust code allocates through mimalloc): commit
# arena memory on demand. Eager commit made the first large run of a process
# pay ~0.4 s of page zeroing for memory it never used (README, "Environment").
_os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")

from . import _native  # noqa: E402
from .errors import (
    ConflictError,
    DuelError,
    FileChangedError,
    FileError,
    GenomeError,
    GameError,
    GameTimeoutError,
    InputError,
    InternalError,
    JudgeError,
    JudgeTimeoutError,
    MaestroError,
    ManifestError,
    NotFoundError,
    StorageError,
    VerificationError,
)

__version__: str = _native.__version__

__all__ = [
    "__version__",
    "MaestroError",
    "InputError",
    "GameError",
    "GameTimeoutError",
    "ManifestError",
    "NotFoundError",
    "FileError",
    "FileChangedError",
    "VerificationError",
    "StorageError",
    "InternalError",
    "ConflictError",
    "GenomeError",
    "DuelError",
    "JudgeError",
    "JudgeTimeoutError",
]
