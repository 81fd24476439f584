"""A straightforward RFC 9162 §2.1 Merkle tree over ``hashlib``: the
pure-Python baseline of ``bench_merkle.py``.

Leaf ``H(0x00 || d)``, node ``H(0x01 || l || r)``, empty tree ``H("")``.
Built level by level: pairing neighbours and carrying an odd last node up
unchanged gives exactly the RFC's split at the largest power of two below
``n``, without duplicating anything.
"""

from __future__ import annotations

from hashlib import sha256


def levels(data: list[bytes]) -> list[list[bytes]]:
    """Every level, leaves first; level ``l`` holds the hashes of the perfect
    subtrees of ``2**l`` leaves, plus a carried last node when ``n`` is odd
    at that level (the carried node is then not a perfect subtree)."""
    level = [sha256(b"\x00" + d).digest() for d in data]
    out = [level]
    while len(level) > 1:
        nxt = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        out.append(nxt)
        level = nxt
    return out


def root(data: list[bytes]) -> bytes:
    """``MTH(data)``."""
    if not data:
        return sha256(b"").digest()
    return levels(data)[-1][0]


def _split(n: int) -> int:
    """Largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree(lv: list[list[bytes]], lo: int, hi: int) -> bytes:
    """``MTH(D[lo:hi])`` from stored perfect subtrees, recursing only on the
    tree's ragged right edge."""
    n = hi - lo
    if n & (n - 1) == 0 and lo % n == 0:
        return lv[n.bit_length() - 1][lo // n]
    k = _split(n)
    return sha256(b"\x01" + _subtree(lv, lo, lo + k) + _subtree(lv, lo + k, hi)).digest()


def inclusion_proof(lv: list[list[bytes]], index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 ``PATH(index, D[0:size])``, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} out of range for size {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree(lv, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree(lv, lo, lo + k))
            lo += k
    path.reverse()
    return path
