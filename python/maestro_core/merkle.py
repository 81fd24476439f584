"""RFC 9162 Merkle trees (the RFC 6962 tree), generic over the hash.

Leaf ``H(0x00 || d)``, node ``H(0x01 || l || r)``, split at the largest power
of two below ``n``, no duplication, empty tree ``H("")``. Trees are built in
Rust from a numpy ``(n, 32)`` array of leaf hashes, from rows of a 2-D array,
or from a list of ``bytes``.

>>> from maestro_core.merkle import MerkleTree, verify_inclusion
>>> t = MerkleTree.from_leaves([b"a", b"b", b"c"])
>>> proof = t.inclusion_proof(2)
>>> verify_inclusion(2, 3, t.leaf_hashes()[2].tobytes(), proof, t.root())
>>> len(proof)
1

Verifiers return ``None`` and raise :class:`~maestro_core.errors.VerificationError`
(with the reason) when a proof does not hold, and
:class:`~maestro_core.errors.InputError` for malformed arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _native
from ._native import MerkleTree
from .errors import MaestroError

__all__ = [
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "empty_root",
    "verify_inclusion",
    "verify_consistency",
    "is_valid_inclusion",
    "is_valid_consistency",
]


def leaf_hash(data: bytes, algorithm: str = "sha256") -> bytes:
    """``H(0x00 || data)``."""
    return _native.leaf_hash(data, algorithm)


def node_hash(left: bytes, right: bytes, algorithm: str = "sha256") -> bytes:
    """``H(0x01 || left || right)``."""
    return _native.node_hash(left, right, algorithm)


def empty_root(algorithm: str = "sha256") -> bytes:
    """``H("")``, the root of the empty tree."""
    return _native.empty_root(algorithm)


def verify_inclusion(
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
    algorithm: str = "sha256",
) -> None:
    """RFC 9162 §2.1.3.2; raises ``VerificationError`` on failure."""
    _native.verify_inclusion(index, size, leaf_hash, list(proof), root, algorithm)


def verify_consistency(
    size1: int,
    size2: int,
    root1: bytes,
    root2: bytes,
    proof: Sequence[bytes],
    algorithm: str = "sha256",
) -> None:
    """RFC 9162 §2.1.4.2; raises ``VerificationError`` on failure."""
    _native.verify_consistency(size1, size2, root1, root2, list(proof), algorithm)


def is_valid_inclusion(*args: object, **kwargs: object) -> bool:
    """``verify_inclusion`` as a boolean (any maestro error is ``False``)."""
    try:
        verify_inclusion(*args, **kwargs)  # type: ignore[arg-type]
    except MaestroError:
        return False
    return True


def is_valid_consistency(*args: object, **kwargs: object) -> bool:
    """``verify_consistency`` as a boolean (any maestro error is ``False``)."""
    try:
        verify_consistency(*args, **kwargs)  # type: ignore[arg-type]
    except MaestroError:
        return False
    return True
