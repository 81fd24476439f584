"""RFC 9162 Merkle trees: ours against pymerkle and a hashlib reference.

Workloads (issue 3), one ``benchmark.group`` each, SHA-256 throughout
(pymerkle's default; its ``InmemoryTree`` hashes leaves as ``H(0x00||d)``
and nodes as ``H(0x01||l||r)`` with the RFC's split, so its roots and audit
paths equal RFC 9162's: checked below on every run):

* ``merkle-root``: the root of 1M leaves of 8..32 random bytes, starting
  from the same Python ``list[bytes]``. Each side builds its tree and reads
  the root: ours ``MerkleTree.from_leaves(...).root()`` (all levels stored,
  ready for proofs), pymerkle ``InmemoryTree.init_from_entries(...)
  .get_root()``, and the hashlib reference (``hashlib_merkle.root``, which
  keeps only one level at a time, i.e. does less than the other two).
  Goals: >= 10x the hashlib reference, >= 100x pymerkle.
* ``merkle-proofs``: 10,000 inclusion proofs (random leaves) on that tree,
  with every tree built beforehand, outside the timing (pymerkle's build
  alone is the ``merkle-root`` row). Ours returns the proofs as one
  ``(m, 32)`` array plus offsets (``as_array=True``) or as lists of
  ``bytes`` (shown too); pymerkle returns its ``InclusionProof`` objects;
  the reference lists of ``bytes``. Goal: >= 100x pymerkle.
"""

from __future__ import annotations

import gc
import random

import hashlib_merkle
import numpy as np
import pymerkle
import pytest

from maestro_core.merkle import MerkleTree, verify_inclusion

ALG = "sha256"

def frozen_gc() -> None:
    """As in conftest: keep prebuilt fixtures out of the collector's reach."""
    gc.collect()
    gc.freeze()


# pymerkle's tree is built once (about 13 s for 1M leaves): by the timed
# `merkle-root` row when it runs, and reused by `merkle-proofs`.
_PYMERKLE: dict[int, pymerkle.InmemoryTree] = {}


def pymerkle_build(data: list[bytes]) -> pymerkle.InmemoryTree:
    t = pymerkle.InmemoryTree.init_from_entries(data, algorithm=ALG)
    _PYMERKLE[id(data)] = t
    return t


def pymerkle_tree(data: list[bytes]) -> pymerkle.InmemoryTree:
    t = _PYMERKLE.get(id(data))
    if t is None:
        t = pymerkle_build(data)
    frozen_gc()
    return t


# --- root -------------------------------------------------------------------

ROOT_IMPLS = {
    "ours": ("ours", None, lambda d: MerkleTree.from_leaves(d, ALG).root()),
    "hashlib reference": ("baseline", 10.0, hashlib_merkle.root),
    "pymerkle InmemoryTree": ("peer", 100.0, lambda d: pymerkle_build(d).get_root()),
}
ROOT_ROUNDS = {"ours": 20, "hashlib reference": 5, "pymerkle InmemoryTree": 1}


@pytest.fixture(scope="module")
def reference_levels(leaves: list[bytes]) -> list[list[bytes]]:
    lv = hashlib_merkle.levels(leaves)
    frozen_gc()
    return lv


@pytest.mark.parametrize("impl", list(ROOT_IMPLS))
def test_root(benchmark, leaves: list[bytes], reference_levels: list[list[bytes]], sizes, impl: str) -> None:
    role, goal, fn = ROOT_IMPLS[impl]
    benchmark.group = "merkle-root"
    benchmark.extra_info.update(
        impl=impl, role=role, goal=goal, workload=f"root of {sizes.leaves} leaves (8..32 B), {ALG}, from list[bytes]"
    )
    rounds = ROOT_ROUNDS[impl]
    got = benchmark.pedantic(fn, args=(leaves,), rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    assert got == reference_levels[-1][0], f"{impl}: root differs from the RFC 9162 reference"


# --- proofs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def proof_indices(sizes) -> list[int]:
    return random.Random(4).sample(range(sizes.leaves), sizes.proofs)


@pytest.fixture(scope="module")
def reference_proofs(reference_levels: list[list[bytes]], proof_indices: list[int], leaves) -> list[list[bytes]]:
    return [hashlib_merkle.inclusion_proof(reference_levels, i, len(leaves)) for i in proof_indices]


@pytest.fixture(scope="module")
def our_tree(leaves: list[bytes]) -> MerkleTree:
    t = MerkleTree.from_leaves(leaves, ALG)
    frozen_gc()
    return t


PROOF_IMPLS = {
    "ours": ("ours", None),
    "ours (lists of bytes)": ("ours-variant", None),
    "hashlib reference": ("baseline", None),
    "pymerkle InmemoryTree": ("peer", 100.0),
}


@pytest.mark.parametrize("impl", list(PROOF_IMPLS))
def test_proofs(
    benchmark,
    request: pytest.FixtureRequest,
    leaves: list[bytes],
    reference_levels: list[list[bytes]],
    proof_indices: list[int],
    reference_proofs: list[list[bytes]],
    sizes,
    impl: str,
) -> None:
    role, goal = PROOF_IMPLS[impl]
    benchmark.group = "merkle-proofs"
    benchmark.extra_info.update(
        impl=impl,
        role=role,
        goal=goal,
        workload=f"{sizes.proofs} inclusion proofs on the {sizes.leaves}-leaf tree (prebuilt), {ALG}",
    )
    n = len(leaves)
    if impl.startswith("ours"):
        tree = request.getfixturevalue("our_tree")
        idx = np.array(proof_indices, dtype=np.uint64)
        as_array = impl == "ours"
        out = benchmark.pedantic(
            lambda: tree.inclusion_proofs(idx, as_array=as_array), rounds=20 if sizes.full else 3, warmup_rounds=1
        )
        if as_array:
            hashes, offsets = out
            assert hashes.dtype == np.uint8 and hashes.shape[1:] == (32,) and offsets.dtype == np.uint64
            got = [[bytes(h) for h in hashes[a:b]] for a, b in zip(offsets[:-1], offsets[1:])]
        else:
            got = out
        # Our own verifier accepts a sample of them against our root.
        root, lh = tree.root(), tree.leaf_hashes()
        for i, p in list(zip(proof_indices, got))[:50]:
            verify_inclusion(i, n, lh[i].tobytes(), p, root, ALG)
    elif impl == "pymerkle InmemoryTree":
        t = pymerkle_tree(leaves)
        proofs = benchmark.pedantic(lambda: [t.prove_inclusion(i + 1) for i in proof_indices], rounds=3)
        # pymerkle's path starts with the leaf hash itself, then the RFC path.
        for i, p in zip(proof_indices, proofs):
            assert p.path[0] == reference_levels[0][i]
        got = [p.path[1:] for p in proofs]
        root = t.get_root()
        for i, p in list(zip(proof_indices, proofs))[:50]:
            pymerkle.verify_inclusion(reference_levels[0][i], root, p)
    else:
        got = benchmark.pedantic(
            lambda: [hashlib_merkle.inclusion_proof(reference_levels, i, n) for i in proof_indices], rounds=3
        )
    assert got == reference_proofs, f"{impl}: proofs differ from the RFC 9162 reference"
