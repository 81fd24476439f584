"""Release evidence: signed manifests of a folder and their one-command audit.

``build`` hashes every file of a folder (in parallel, in Rust), builds the
RFC 9162 tree over canonical ``{path, size, digest}`` leaves and signs an
in-toto Statement v1 in a DSSE envelope with Ed25519.

``verify`` recomputes every digest and the root, checks the signature, and
optionally the manifest's inclusion in a signed log checkpoint and that
checkpoint's consistency with an earlier one. It raises
:class:`~maestro_core.errors.VerificationError` naming the first file (or
proof step) that differs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _native
from .errors import InputError, VerificationError
from .keys import KeyPair, PublicKey, _read
from .log import Checkpoint, ConsistencyProof, InclusionProof, TransparencyLog, manifest_entry, verify_checkpoint

__all__ = [
    "Manifest", "Difference", "VerifyReport", "build", "verify", "read_manifest",
    "InclusionProof", "ConsistencyProof", "verify_checkpoint",
]

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Manifest:
    envelope: bytes
    algorithm: str
    root: bytes
    entries: list[tuple[str, int, bytes]]

    @property
    def size(self) -> int:
        return len(self.entries)

    @classmethod
    def _from(cls, envelope: bytes, info: dict[str, Any]) -> Manifest:
        return cls(envelope, info["algorithm"], info["root"], list(info["entries"]))


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | unexpected | size | digest
    path: str
    description: str


@dataclass
class VerifyReport:
    manifest: Manifest
    differences: list[Difference] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    log_index: int | None = None
    old_checkpoint: Checkpoint | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def build(
    directory: StrPath,
    key: KeyPair,
    algorithm: str = "blake3",
    progress: Callable[[int, int], None] | None = None,
    batch: int = 2048,
) -> Manifest:
    """Hash ``directory`` and sign its manifest. ``progress(done, total)``."""
    files = _native.scan_directory(os.fspath(directory))
    total = len(files)
    entries: list[tuple[str, int, bytes]] = []
    for start in range(0, total, batch):
        chunk = files[start : start + batch]
        digests, sizes = _native.hash_files([full for _, full in chunk], algorithm)
        entries.extend((rel, int(sz), bytes(d)) for (rel, _), d, sz in zip(chunk, digests, sizes))
        if progress is not None:
            progress(min(start + batch, total), total)
    env = _native.sign_entries(entries, key.private_pem, algorithm)
    return Manifest._from(env, _native.open_manifest(env, None))


def read_manifest(path: StrPath, key: PublicKey | None = None) -> Manifest:
    """Read a manifest file; checks the signature when ``key`` is given."""
    try:
        env = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read manifest ({e})") from None
    try:
        info = _native.open_manifest(env, key.pem if key else None)
    except InputError as e:
        raise type(e)(f"{path}: {e}") from None
    return Manifest._from(env, info)


def verify(
    manifest: StrPath,
    directory: StrPath,
    key: PublicKey,
    *,
    checkpoint: str | None = None,
    log_key: PublicKey | None = None,
    proof: InclusionProof | None = None,
    log: TransparencyLog | None = None,
    old_checkpoint: str | None = None,
    consistency: ConsistencyProof | None = None,
) -> VerifyReport:
    """Audit a release folder against its manifest (see module docs).

    Inclusion and consistency proofs come from ``proof``/``consistency`` when
    given (the offline auditor's case), else from ``log`` (the local store).
    Raises ``VerificationError`` on the first failure; on success returns a
    report listing the checks made.
    """
    m = read_manifest(manifest, key)
    report = VerifyReport(m)
    report.checks.append(f"signature by key {key.key_id[:16]} over the in-toto statement")
    report.checks.append(f"manifest canonical, {m.size} subjects sorted, root {m.root.hex()[:16]}… recomputed")
    diffs = _native.compare_manifest(m.envelope, key.pem, os.fspath(directory))
    report.differences = [Difference(*d) for d in diffs]
    if report.differences:
        first = report.differences[0]
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise _Failed(report, f"{first.description}{more}")
    report.checks.append(f"{m.size} files re-hashed with {m.algorithm}: all match")
    if checkpoint is None:
        if old_checkpoint is not None:
            raise InputError("--old-checkpoint needs --checkpoint")
        return report
    if log_key is None:
        raise InputError("a checkpoint needs the log's public key (--log-key)")
    cp = verify_checkpoint(checkpoint, log_key)
    report.checkpoint = cp
    report.checks.append(f"checkpoint {cp.origin} size {cp.size} signed by the log key")
    leaf = _native.leaf_hash(manifest_entry(m.envelope), "sha256")
    if proof is None:
        if log is None:
            raise InputError("no inclusion proof given (--proof) and no local log to derive one")
        idx = log.find_manifest(m.envelope)
        if idx is None or idx >= cp.size:
            raise _Failed(report, f"manifest is not in the log at checkpoint size {cp.size}")
        proof = log.prove(idx, cp.size)
    if proof.leaf_hash != leaf:
        raise _Failed(report, f"inclusion proof is for leaf {proof.leaf_hash.hex()[:16]}…, the manifest's leaf is {leaf.hex()[:16]}…")
    try:
        proof.verify(cp.root, cp.size)
    except VerificationError as e:
        raise _Failed(report, f"inclusion in checkpoint: {e}") from None
    report.log_index = proof.index
    report.checks.append(f"manifest is log entry {proof.index}, included in the checkpoint ({len(proof.hashes)} proof hashes)")
    if old_checkpoint is not None:
        old = verify_checkpoint(old_checkpoint, log_key)
        report.old_checkpoint = old
        if consistency is None:
            if old.size == cp.size:
                consistency = ConsistencyProof(old.size, cp.size, [])
            elif log is None:
                raise InputError("no consistency proof given (--consistency-proof) and no local log")
            else:
                consistency = log.consistency(old.size, cp.size)
        try:
            consistency.verify(old, cp)
        except VerificationError as e:
            raise _Failed(report, f"consistency with the earlier checkpoint: {e}") from None
        report.checks.append(f"checkpoint {cp.size} is consistent with earlier checkpoint {old.size} (append-only)")
    return report


class _Failed(VerificationError):
    """A verification failure carrying the partial report."""

    def __init__(self, report: VerifyReport, message: str) -> None:
        super().__init__(message)
        self.report = report


def load_key_text(path: StrPath, what: str) -> str:
    return _read(path, what)
