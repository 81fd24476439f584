"""RFC 9162 trees against the independent reference in ``rfc9162_ref``.

Random trees (both algorithms, 0..~300 leaves, every way of building one)
must agree with the reference on roots and proofs; every single-bit change
of a proof element, root or leaf hash, and every change of index is
rejected; a changed size is rejected exactly when the reference rejects it
(a proof can honestly fit two tree sizes, e.g. leaf 0 of 3 and of 4 leaves).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import rfc9162_ref as ref
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from maestro_core import merkle
from maestro_core.errors import InputError, MaestroError, VerificationError
from maestro_core.merkle import MerkleTree

ALGS = ["sha256", "blake3"]
U64 = 2**64 - 1

algs = st.sampled_from(ALGS)


@st.composite
def leaf_data(draw: st.DrawFn, max_n: int = 300) -> list[bytes]:
    """Leaf data: either drawn directly (shrinks well) or from a seed (large trees fast)."""
    if draw(st.booleans()):
        return draw(st.lists(st.binary(max_size=12), max_size=40))
    n = draw(st.integers(0, max_n))
    rng = random.Random(draw(st.integers(0, 2**32)))
    return [rng.randbytes(rng.randrange(0, 24)) for _ in range(n)]


def _bitflips(b: bytes):
    for i in range(len(b) * 8):
        m = bytearray(b)
        m[i // 8] ^= 1 << (i % 8)
        yield bytes(m)


def _index_changes(i: int) -> set[int]:
    out = {i + 1, i - 1} | {i ^ (1 << b) for b in range(64)}
    return {x for x in out if 0 <= x <= U64 and x != i}


def _builds(alg: str, data: list[bytes]) -> dict[str, MerkleTree]:
    lh = [ref.leaf(alg, d) for d in data]
    arr = np.frombuffer(b"".join(lh), dtype=np.uint8).reshape(len(lh), 32)
    inc = MerkleTree(alg)
    for d in data:
        inc.append(d)
    inc_h = MerkleTree(alg)
    for h in lh:
        inc_h.append_leaf_hash(h)
    return {
        "from_leaves": MerkleTree.from_leaves(data, alg),
        "from_leaf_hashes": MerkleTree.from_leaf_hashes(np.ascontiguousarray(arr), alg),
        "append": inc,
        "append_leaf_hash": inc_h,
    }


# ------------------------------------------------------------------ building


@settings(max_examples=150)
@given(alg=algs, data=leaf_data(), st_m=st.data())
def test_roots_agree_with_reference(alg: str, data: list[bytes], st_m: st.DataObject) -> None:
    lh = [ref.leaf(alg, d) for d in data]
    want = ref.mth(alg, lh)
    ms = sorted({0, len(data), *st_m.draw(st.lists(st.integers(0, len(data)), max_size=4))})
    for how, t in _builds(alg, data).items():
        assert t.algorithm == alg
        assert t.size == len(t) == len(data), how
        assert t.root() == want, how
        got = t.leaf_hashes()
        assert got.dtype == np.uint8 and got.shape == (len(data), 32), how
        assert [bytes(r) for r in got] == lh, how
        for m in ms:
            assert t.root(m) == ref.mth(alg, lh[:m]), (how, m)
        with pytest.raises(InputError):
            t.root(len(data) + 1)


@settings(max_examples=80)
@given(alg=algs, n=st.integers(0, 300), width=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_from_leaf_rows(alg: str, n: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    t = MerkleTree.from_leaf_rows(rows, alg)
    lh = [ref.leaf(alg, bytes(r)) for r in rows]
    assert t.size == n
    assert t.root() == ref.mth(alg, lh)
    assert t.root() == MerkleTree.from_leaves([bytes(r) for r in rows], alg).root()


def test_incremental_equals_batch_at_every_size() -> None:
    for alg in ALGS:
        data = [i.to_bytes(4, "big") for i in range(130)]
        lh = [ref.leaf(alg, d) for d in data]
        t = MerkleTree(alg)
        assert t.root() == ref.H(alg, b"") == merkle.empty_root(alg)
        for n, d in enumerate(data, 1):
            assert t.append(d) == n - 1
            assert t.root() == ref.mth(alg, lh[:n])


def test_hash_primitives_match_reference() -> None:
    for alg in ALGS:
        for d in [b"", b"\x00", b"abc" * 100]:
            assert merkle.leaf_hash(d, alg) == ref.leaf(alg, d)
        a, b = ref.leaf(alg, b"a"), ref.leaf(alg, b"b")
        assert merkle.node_hash(a, b, alg) == ref.node(alg, a, b)
        assert merkle.node_hash(a, b, alg) != merkle.node_hash(b, a, alg)
        with pytest.raises(InputError):
            merkle.node_hash(a[:31], b, alg)
        with pytest.raises(InputError):
            merkle.node_hash(a, b + b"\x00", alg)


def _naive_duplicating_root(alg: str, data: list[bytes]) -> bytes:
    """The flawed sketch: no prefixes, odd levels duplicate their last node."""
    level = [ref.H(alg, d) for d in data]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [ref.H(alg, level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("alg", ALGS)
def test_no_duplication_collision(alg: str) -> None:
    abc, abcc = [b"a", b"b", b"c"], [b"a", b"b", b"c", b"c"]
    # The naive construction really collides ...
    assert _naive_duplicating_root(alg, abc) == _naive_duplicating_root(alg, abcc)
    # ... RFC 9162 does not, however the tree is built.
    assert MerkleTree.from_leaves(abc, alg).root() != MerkleTree.from_leaves(abcc, alg).root()
    t = MerkleTree.from_leaves(abcc, alg)
    assert t.root(3) != t.root(4)
    assert t.root(3) == ref.mth(alg, [ref.leaf(alg, x) for x in abc])
    # Leaves and interior nodes are domain separated: a leaf whose data is
    # the concatenation of two leaf hashes is not the node above them.
    la, lb = ref.leaf(alg, b"a"), ref.leaf(alg, b"b")
    assert MerkleTree.from_leaves([la + lb], alg).root() != MerkleTree.from_leaves([b"a", b"b"], alg).root()
    assert MerkleTree.from_leaves([b"\x01" + la + lb], alg).root() != MerkleTree.from_leaves([b"a", b"b"], alg).root()


# ------------------------------------------------------------------ inclusion


@st.composite
def tree_and_leaf(draw: st.DrawFn) -> tuple[str, list[bytes], int, int]:
    alg = draw(algs)
    data = draw(leaf_data())
    assume(data)
    size = draw(st.integers(1, len(data)))
    index = draw(st.integers(0, size - 1))
    return alg, data, index, size


@settings(max_examples=150)
@given(case=tree_and_leaf())
def test_inclusion_proofs_agree_and_every_change_is_rejected(case: tuple[str, list[bytes], int, int]) -> None:
    alg, data, index, size = case
    lh = [ref.leaf(alg, d) for d in data]
    root = ref.mth(alg, lh[:size])
    want = ref.path(alg, index, lh[:size])
    for how, t in _builds(alg, data).items():
        assert t.inclusion_proof(index, size) == want, how
    t = MerkleTree.from_leaves(data, alg)
    if size == len(data):
        assert t.inclusion_proof(index) == want
    batch = t.inclusion_proofs(np.array([index, 0, size - 1], dtype=np.uint64), size)
    assert batch == [want, ref.path(alg, 0, lh[:size]), ref.path(alg, size - 1, lh[:size])]
    leaf = lh[index]
    assert merkle.verify_inclusion(index, size, leaf, want, root, alg) is None
    assert ref.verify_inclusion(alg, index, size, leaf, want, root)

    def rejected(i: int, n: int, lf: bytes, p: list[bytes], r: bytes) -> bool:
        try:
            merkle.verify_inclusion(i, n, lf, p, r, alg)
        except (VerificationError, InputError):
            return True
        return False

    # Every single-bit flip of every proof element, of the root and of the leaf.
    for k in range(len(want)):
        for flipped in _bitflips(want[k]):
            assert rejected(index, size, leaf, [*want[:k], flipped, *want[k + 1 :]], root), (k,)
    for r in _bitflips(root):
        assert rejected(index, size, leaf, want, r)
    for lf in _bitflips(leaf):
        assert rejected(index, size, lf, want, root)
    # Every change of the index: ±1 and each of the 64 bits. With repeated
    # leaves another index can honestly hold the same leaf (the reference
    # says so); with distinct leaves every change must be refused.
    distinct = len(set(lh[:size])) == size
    for i2 in _index_changes(index):
        ok_ref = ref.verify_inclusion(alg, i2, size, leaf, want, root)
        assert not (distinct and ok_ref), i2
        assert rejected(i2, size, leaf, want, root) is not ok_ref, i2
    # A changed size is accepted only when the same proof honestly fits it.
    for n2 in _index_changes(size):
        ok_ref = ref.verify_inclusion(alg, index, n2, leaf, want, root)
        assert rejected(index, n2, leaf, want, root) is not ok_ref, n2
    # Wrong-length proofs: one hash more or less, anywhere.
    extra = ref.H(alg, b"extra")
    for p in ([*want, extra], [extra, *want], want[1:], want[:-1], [*want, want[-1]] if want else [root]):
        if p != want:
            assert rejected(index, size, leaf, p, root)


@settings(max_examples=30)
@given(case=tree_and_leaf(), bad_len=st.sampled_from([0, 1, 16, 31, 33, 64]))
def test_inclusion_malformed_digests(case: tuple[str, list[bytes], int, int], bad_len: int) -> None:
    alg, data, index, size = case
    t = MerkleTree.from_leaves(data, alg)
    proof, root, leaf = t.inclusion_proof(index, size), t.root(size), t.leaf_hashes()[index].tobytes()
    with pytest.raises(InputError):
        merkle.verify_inclusion(index, size, leaf[:0] + bytes(bad_len), proof, root, alg)
    with pytest.raises(MaestroError):
        merkle.verify_inclusion(index, size, leaf, proof, bytes(bad_len), alg)
    if proof:
        k = len(proof) // 2
        with pytest.raises(InputError):
            merkle.verify_inclusion(index, size, leaf, [*proof[:k], bytes(bad_len), *proof[k + 1 :]], root, alg)


def test_inclusion_range_errors() -> None:
    t = MerkleTree.from_leaves([b"x"] * 5)
    leaf = t.leaf_hashes()[0].tobytes()
    with pytest.raises(InputError, match="5"):
        t.inclusion_proof(5, 5)
    with pytest.raises(InputError):
        t.inclusion_proof(0, 6)
    with pytest.raises(InputError):
        t.inclusion_proof(0, 0)
    with pytest.raises(InputError):
        t.inclusion_proofs(np.array([1, 9], dtype=np.uint64))
    with pytest.raises(MaestroError):  # index >= size
        merkle.verify_inclusion(5, 5, leaf, t.inclusion_proof(4), t.root())
    with pytest.raises(MaestroError):  # size 0
        merkle.verify_inclusion(0, 0, leaf, [], merkle.empty_root())
    empty = MerkleTree()
    with pytest.raises(InputError):
        empty.inclusion_proof(0)


@settings(max_examples=200)
@given(
    alg=algs,
    size=st.one_of(st.integers(1, 2**20), st.integers(1, U64), st.just(U64), st.integers(2**63, U64)),
    st_i=st.data(),
    seed=st.integers(0, 2**32),
)
def test_inclusion_for_huge_trees(alg: str, size: int, st_i: st.DataObject, seed: int) -> None:
    """Any sibling hashes along the path describe *some* tree of that size:
    the root the reference computes from them must verify, up to 2**64 - 1."""
    index = st_i.draw(st.one_of(st.integers(0, size - 1), st.sampled_from([0, size - 1, size // 2])))
    rng = random.Random(seed)
    leaf = rng.randbytes(32)
    # Length of PATH(index, D[size]): one hash per split on the way down.
    length, i, n = 0, index, size
    while n > 1:
        k = ref.largest_pow2_below(n)
        i, n = (i, k) if i < k else (i - k, n - k)
        length += 1
    proof = [rng.randbytes(32) for _ in range(length)]
    root = ref.root_from_path(alg, index, size, leaf, proof)
    merkle.verify_inclusion(index, size, leaf, proof, root, alg)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(index, size, leaf, [*proof, leaf], root, alg)
    if proof:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(index, size, leaf, proof[:-1], root, alg)


# ------------------------------------------------------------------ consistency


@st.composite
def tree_and_sizes(draw: st.DrawFn) -> tuple[str, list[bytes], int, int]:
    alg = draw(algs)
    data = draw(leaf_data())
    assume(data)
    n = draw(st.integers(1, len(data)))
    m = draw(st.integers(1, n))
    return alg, data, m, n


@settings(max_examples=150)
@given(case=tree_and_sizes())
def test_consistency_proofs_agree_and_every_change_is_rejected(case: tuple[str, list[bytes], int, int]) -> None:
    alg, data, m, n = case
    lh = [ref.leaf(alg, d) for d in data]
    r1, r2 = ref.mth(alg, lh[:m]), ref.mth(alg, lh[:n])
    want = ref.proof(alg, m, lh[:n])
    for how, t in _builds(alg, data).items():
        assert t.consistency_proof(m, n) == want, how
    if n == len(data):
        assert MerkleTree.from_leaves(data, alg).consistency_proof(m) == want
    assert merkle.verify_consistency(m, n, r1, r2, want, alg) is None
    assert ref.verify_consistency(alg, m, n, r1, r2, want)

    def rejected(s1: int, s2: int, a: bytes, b: bytes, p: list[bytes]) -> bool:
        try:
            merkle.verify_consistency(s1, s2, a, b, p, alg)
        except (VerificationError, InputError):
            return True
        return False

    for k in range(len(want)):
        for flipped in _bitflips(want[k]):
            assert rejected(m, n, r1, r2, [*want[:k], flipped, *want[k + 1 :]]), k
    for r in _bitflips(r1):
        assert rejected(m, n, r, r2, want)
    for r in _bitflips(r2):
        assert rejected(m, n, r1, r, want)
    for m2 in _index_changes(m):
        assert rejected(m2, n, r1, r2, want) is not ref.verify_consistency(alg, m2, n, r1, r2, want), m2
    for n2 in _index_changes(n):
        assert rejected(m, n2, r1, r2, want) is not ref.verify_consistency(alg, m, n2, r1, r2, want), n2
    assert rejected(m, n, r2, r1, want) or r1 == r2  # swapped roots
    extra = ref.H(alg, b"extra")
    for p in ([*want, extra], [extra, *want], want[1:], want[:-1]):
        if p != want:
            assert rejected(m, n, r1, r2, p)


@settings(max_examples=200)
@given(
    alg=algs,
    n=st.one_of(st.integers(2, 2**20), st.integers(2, U64), st.just(U64)),
    st_m=st.data(),
    seed=st.integers(0, 2**32),
)
def test_consistency_for_huge_trees(alg: str, n: int, st_m: st.DataObject, seed: int) -> None:
    m = st_m.draw(st.one_of(st.integers(1, n - 1), st.sampled_from([1, n - 1, n // 2]), st.just(1 << ((n - 1).bit_length() - 1))))
    rng = random.Random(seed)
    # Find the proof length by asking the reference with growing proofs.
    old_root = rng.randbytes(32)
    for length in range(0, 130):
        proof = [rng.randbytes(32) for _ in range(length)]
        try:
            r1, r2 = ref.roots_from_proof(alg, m, n, old_root, proof)
        except ref.RefError:
            continue
        break
    else:
        raise AssertionError("no proof length fits")
    merkle.verify_consistency(m, n, r1, r2, proof, alg)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, r1, r2, [*proof, old_root], alg)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, r1, r2, proof[:-1], alg)


def test_consistency_argument_errors() -> None:
    t = MerkleTree.from_leaves([b"x"] * 8)
    with pytest.raises(MaestroError):
        t.consistency_proof(0, 8)
    with pytest.raises(MaestroError):
        t.consistency_proof(5, 4)
    with pytest.raises(InputError):
        t.consistency_proof(3, 9)
    r = t.root()
    with pytest.raises(VerificationError):  # empty old tree proves nothing
        merkle.verify_consistency(0, 8, merkle.empty_root(), r, [])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(8, 4, r, t.root(4), [])
    with pytest.raises(VerificationError):  # equal sizes, non-empty proof
        merkle.verify_consistency(8, 8, r, r, [r])
    merkle.verify_consistency(8, 8, r, r, [])
    with pytest.raises(InputError):
        merkle.verify_consistency(4, 8, t.root(4), r, [b"short"])


# ------------------------------------------------------------------ numpy input


def test_numpy_input_validation() -> None:
    good = np.zeros((4, 32), dtype=np.uint8)
    good[:, 0] = np.arange(4)
    base = MerkleTree.from_leaf_hashes(good).root()
    assert base == ref.mth("sha256", [bytes(r) for r in good])
    wide = np.zeros((4, 64), dtype=np.uint8)
    wide[:, ::2] = good
    tall = np.zeros((8, 32), dtype=np.uint8)
    tall[::2] = good
    bad_arrays = {
        "column-strided": wide[:, ::2],
        "row-strided": tall[::2],
        "fortran-order": np.asfortranarray(good),
        "reversed": good[::-1],
        "width 31": np.zeros((4, 31), dtype=np.uint8),
        "width 33": np.zeros((4, 33), dtype=np.uint8),
        "1-D": np.zeros(128, dtype=np.uint8),
        "3-D": np.zeros((2, 2, 32), dtype=np.uint8),
        "float64": good.astype(np.float64),
        "int64": good.astype(np.int64),
        "int8": good.astype(np.int8),
    }
    for name, a in bad_arrays.items():
        with pytest.raises(InputError) as ei:
            MerkleTree.from_leaf_hashes(a)
        assert "leaf hashes" in str(ei.value), name
    for name, a in bad_arrays.items():
        if name.startswith("width"):
            continue  # any width is fine for rows of data
        with pytest.raises(InputError) as ei:
            MerkleTree.from_leaf_rows(a)
        assert "leaf rows" in str(ei.value), name
    # Fortran order must not silently permute bytes: a contiguous copy works.
    assert MerkleTree.from_leaf_hashes(np.ascontiguousarray(np.asfortranarray(good))).root() == base
    assert MerkleTree.from_leaf_hashes(np.zeros((0, 32), dtype=np.uint8)).root() == merkle.empty_root()
    t = MerkleTree.from_leaf_hashes(good)
    with pytest.raises((InputError, TypeError)):
        t.inclusion_proofs(np.array([0, 1], dtype=np.float64))
    with pytest.raises(InputError):
        t.append_leaf_hash(b"\x00" * 31)
