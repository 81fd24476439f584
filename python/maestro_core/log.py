"""The append-only transparency log (RFC 9162 tree over SHA-256) in the store.

Entries are opaque byte bodies with a kind; a release manifest is logged as
the canonical JSON ``{"digest":"sha256:<hex of the envelope file>","kind":
"evidence.manifest"}``, so an auditor can recompute its leaf from the file.
Checkpoints are C2SP ``tlog-checkpoint`` signed notes. Proofs travel as small
JSON documents (:class:`InclusionProof`, :class:`ConsistencyProof`).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _native
from .cards import canonical_json
from .errors import InputError, VerificationError
from .keys import KeyPair, PublicKey
from .merkle import verify_consistency, verify_inclusion

__all__ = [
    "Checkpoint",
    "InclusionProof",
    "ConsistencyProof",
    "TransparencyLog",
    "manifest_entry",
    "read_checkpoint",
    "verify_checkpoint",
    "open_note",
]

ALGORITHM = "sha256"


def manifest_entry(envelope: bytes) -> bytes:
    """The log entry body that stands for a manifest file's bytes."""
    return canonical_json({"digest": "sha256:" + _native.hash_bytes(envelope, "sha256").hex(), "kind": "evidence.manifest"})


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str


def verify_checkpoint(text: str, key: PublicKey | str) -> Checkpoint:
    """Verify a signed checkpoint by the log key; raises on a bad signature/origin."""
    k = key.pem if isinstance(key, PublicKey) else key
    origin, size, root = _native.verify_checkpoint(text, k)
    return Checkpoint(origin, size, root, text)


def open_note(text: str, key: PublicKey | str) -> str:
    """Verify a C2SP signed note by ``key`` and return the signed text."""
    return _native.open_note(text, key.pem if isinstance(key, PublicKey) else key)


def read_checkpoint(path: str | os.PathLike[str]) -> str:
    from .keys import _read

    return _read(path, "checkpoint")


def _hexes(items: Any, where: str) -> list[bytes]:
    if not isinstance(items, list):
        raise InputError(f"{where}: expected a list of hex strings")
    out = []
    for i, h in enumerate(items):
        try:
            out.append(bytes.fromhex(h))
        except (TypeError, ValueError):
            raise InputError(f"{where}[{i}]: not a hex string") from None
    return out


def _load_json(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    from .keys import _read

    try:
        d = json.loads(_read(path, what))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    entry: bytes | None = None

    TYPE = "maestro.inclusion-proof/v1"

    def to_json(self) -> str:
        d = {
            "type": self.TYPE,
            "algorithm": ALGORITHM,
            "logIndex": self.index,
            "treeSize": self.tree_size,
            "leafHash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
        }
        if self.entry is not None:
            d["entry"] = base64.b64encode(self.entry).decode()
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> InclusionProof:
        d = _load_json(path, "inclusion proof")
        if d.get("type") != cls.TYPE:
            raise InputError(f"{path}: field type: expected {cls.TYPE!r}")
        try:
            idx, size = int(d["logIndex"]), int(d["treeSize"])
            leaf = bytes.fromhex(d["leafHash"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: field {e}: missing or malformed") from None
        return cls(idx, size, leaf, _hexes(d.get("hashes"), f"{path}: hashes"))

    def verify(self, root: bytes, size: int) -> None:
        if self.tree_size != size:
            raise VerificationError(f"inclusion proof is for tree size {self.tree_size}, the checkpoint has {size}")
        verify_inclusion(self.index, self.tree_size, self.leaf_hash, self.hashes, root, ALGORITHM)


@dataclass(frozen=True)
class ConsistencyProof:
    size1: int
    size2: int
    hashes: list[bytes]

    TYPE = "maestro.consistency-proof/v1"

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.TYPE, "algorithm": ALGORITHM, "size1": self.size1, "size2": self.size2,
             "hashes": [h.hex() for h in self.hashes]},
            indent=2,
        ) + "\n"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConsistencyProof:
        d = _load_json(path, "consistency proof")
        if d.get("type") != cls.TYPE:
            raise InputError(f"{path}: field type: expected {cls.TYPE!r}")
        try:
            s1, s2 = int(d["size1"]), int(d["size2"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: field {e}: missing or malformed") from None
        return cls(s1, s2, _hexes(d.get("hashes"), f"{path}: hashes"))

    def verify(self, old: Checkpoint, new: Checkpoint) -> None:
        if (self.size1, self.size2) != (old.size, new.size):
            raise VerificationError(
                f"consistency proof is for sizes {self.size1}->{self.size2}, checkpoints are {old.size}->{new.size}"
            )
        verify_consistency(old.size, new.size, old.root, new.root, self.hashes, ALGORITHM)


class TransparencyLog:
    """The log inside a store (see :func:`maestro_core.store.open_store`)."""

    def __init__(self, store: _native.Store) -> None:
        self._store = store

    @property
    def size(self) -> int:
        return self._store.log_size()

    def append(self, kind: str, body: bytes) -> int:
        return self._store.log_append(kind, body)

    def append_manifest(self, envelope: bytes) -> int:
        """Log a manifest (idempotent: an already logged manifest keeps its index)."""
        body = manifest_entry(envelope)
        found = self._store.log_find(_native.leaf_hash(body, ALGORITHM))
        if found is not None:
            return found
        return self._store.log_append("evidence.manifest", body)

    def find_manifest(self, envelope: bytes) -> int | None:
        return self._store.log_find(_native.leaf_hash(manifest_entry(envelope), ALGORITHM))

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        return self._store.log_root(size)

    def checkpoint(self, key: KeyPair) -> str:
        return self._store.log_checkpoint(key.private_pem)

    def prove(self, index: int, size: int) -> InclusionProof:
        e = self._store.log_entry(index)
        return InclusionProof(index, size, e["leaf_hash"], self._store.log_inclusion(index, size), e["body"])

    def consistency(self, size1: int, size2: int) -> ConsistencyProof:
        return ConsistencyProof(size1, size2, self._store.log_consistency(size1, size2))

    def verify(self) -> int:
        """Recompute every leaf, node and checkpoint root; returns the size."""
        return self._store.log_verify()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write atomically (temp file + rename): no partial output on failure."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)
