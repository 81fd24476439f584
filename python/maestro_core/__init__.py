"""maestro_core: explain, tune and prove CI decisions.

Modules: :mod:`~maestro_core.hashing`, :mod:`~maestro_core.merkle`,
:mod:`~maestro_core.keys`, :mod:`~maestro_core.evidence`,
:mod:`~maestro_core.log`, :mod:`~maestro_core.cards`,
:mod:`~maestro_core.store`, :mod:`~maestro_core.prompts`,
:mod:`~maestro_core.duel`, :mod:`~maestro_core.policy`,
:mod:`~maestro_core.shapley`, :mod:`~maestro_core.errors`.
"""

from __future__ import annotations

from . import _native
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
