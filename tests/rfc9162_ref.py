"""A small, independent pure-Python RFC 9162 reference (section 2.1), used as an oracle.

Written from the RFC's recursive definitions, not from the Rust code:

* ``MTH({}) = HASH()``; ``MTH({d0}) = HASH(0x00 || d0)``;
  ``MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the
  largest power of two smaller than ``n`` (2.1.1).
* ``PATH(m, D[n])`` (2.1.3.1) and ``PROOF(m, D[n])`` / ``SUBPROOF`` (2.1.4.1).
* The verifiers recompute roots by walking the same recursions backwards
  (they consume the proof from its last element, the sibling nearest the
  root), which is a different route from the iterative algorithms of
  2.1.3.2 / 2.1.4.2 that the library follows. Recursion depth is at most 64,
  so they also work for sizes up to 2**64 - 1 without building a tree.

Trees are given as lists of leaf *hashes* (``leaf(d)``), so that the
functions can be fed a numpy array's rows as well as leaf data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import blake3 as _blake3

__all__ = [
    "H",
    "leaf",
    "node",
    "largest_pow2_below",
    "mth",
    "path",
    "proof",
    "root_from_path",
    "roots_from_proof",
    "verify_inclusion",
    "verify_consistency",
    "RefError",
]


class RefError(Exception):
    """The reference refuses an input."""


def H(alg: str, data: bytes) -> bytes:
    if alg == "sha256":
        return hashlib.sha256(data).digest()
    if alg == "blake3":
        return _blake3.blake3(data).digest()
    raise ValueError(alg)


def leaf(alg: str, d: bytes) -> bytes:
    """Leaf hash ``HASH(0x00 || d)``."""
    return H(alg, b"\x00" + d)


def node(alg: str, left: bytes, right: bytes) -> bytes:
    """Interior node ``HASH(0x01 || left || right)``."""
    return H(alg, b"\x01" + left + right)


def largest_pow2_below(n: int) -> int:
    """``k`` with ``k < n <= 2k`` (``n >= 2``)."""
    assert n >= 2
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(alg: str, leaves: Sequence[bytes]) -> bytes:
    """``MTH`` over leaf hashes (the ``n == 1`` case is the leaf hash itself)."""
    n = len(leaves)
    if n == 0:
        return H(alg, b"")
    if n == 1:
        return bytes(leaves[0])
    k = largest_pow2_below(n)
    return node(alg, mth(alg, leaves[:k]), mth(alg, leaves[k:]))


def path(alg: str, m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PATH(m, D[n])``: the audit path of leaf ``m``, leaf side first."""
    n = len(leaves)
    if not 0 <= m < n:
        raise RefError("index out of range")
    if n == 1:
        return []
    k = largest_pow2_below(n)
    if m < k:
        return path(alg, m, leaves[:k]) + [mth(alg, leaves[k:])]
    return path(alg, m - k, leaves[k:]) + [mth(alg, leaves[:k])]


def _subproof(alg: str, m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(alg, leaves)]
    k = largest_pow2_below(n)
    if m <= k:
        return _subproof(alg, m, leaves[:k], b) + [mth(alg, leaves[k:])]
    return _subproof(alg, m - k, leaves[k:], False) + [mth(alg, leaves[:k])]


def proof(alg: str, m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PROOF(m, D[n])`` for ``0 < m <= n``."""
    if not 0 < m <= len(leaves):
        raise RefError("need 0 < m <= n")
    return _subproof(alg, m, leaves, True)


# ----------------------------------------------------------------- verifiers


def root_from_path(alg: str, index: int, size: int, leaf_hash: bytes, hashes: Sequence[bytes]) -> bytes:
    """The root that ``hashes`` (an audit path of ``index``) leads to.

    Undoes ``PATH``: its last element is the sibling of the top split.
    Raises :class:`RefError` when the path has the wrong length.
    """
    if not 0 <= index < size:
        raise RefError("index out of range")
    if size == 1:
        if hashes:
            raise RefError("path too long")
        return leaf_hash
    if not hashes:
        raise RefError("path too short")
    k = largest_pow2_below(size)
    *rest, top = hashes
    if index < k:
        return node(alg, root_from_path(alg, index, k, leaf_hash, rest), top)
    return node(alg, top, root_from_path(alg, index - k, size - k, leaf_hash, rest))


def verify_inclusion(
    alg: str, index: int, size: int, leaf_hash: bytes, hashes: Sequence[bytes], root: bytes
) -> bool:
    if len(leaf_hash) != 32 or len(root) != 32 or any(len(h) != 32 for h in hashes):
        return False
    try:
        return root_from_path(alg, index, size, leaf_hash, list(hashes)) == root
    except RefError:
        return False


def _roots(alg: str, m: int, n: int, b: bool, hashes: list[bytes], old_root: bytes) -> tuple[bytes, bytes]:
    """Undo ``SUBPROOF(m, D[lo:lo+n], b)``: (hash of the first m leaves, hash of all n)."""
    if m == n:
        if b:
            if hashes:
                raise RefError("proof too long")
            return old_root, old_root
        if len(hashes) != 1:
            raise RefError("proof has the wrong length")
        return hashes[0], hashes[0]
    if not hashes:
        raise RefError("proof too short")
    k = largest_pow2_below(n)
    *rest, top = hashes
    if m <= k:
        old, new = _roots(alg, m, k, b, rest, old_root)
        return old, node(alg, new, top)
    old, new = _roots(alg, m - k, n - k, False, rest, old_root)
    return node(alg, top, old), node(alg, top, new)


def roots_from_proof(alg: str, m: int, n: int, old_root: bytes, hashes: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The (old root, new root) a consistency proof leads to."""
    if not 0 < m <= n:
        raise RefError("need 0 < m <= n")
    return _roots(alg, m, n, True, list(hashes), old_root)


def verify_consistency(
    alg: str, m: int, n: int, old_root: bytes, new_root: bytes, hashes: Sequence[bytes]
) -> bool:
    if any(len(h) != 32 for h in hashes):
        return False
    if m == n and m > 0:
        # PROOF(n, D[n]) is empty and both trees are the same tree.
        return not hashes and old_root == new_root
    if len(old_root) != 32 or len(new_root) != 32:
        return False
    try:
        old, new = roots_from_proof(alg, m, n, old_root, hashes)
    except RefError:
        return False
    return old == old_root and new == new_root
