"""Signed release manifests: build, verify, and every way they must fail.

The manifest format is cross-checked against an independent implementation:
statements are rebuilt here with :mod:`json`, leaves and roots with the
RFC 9162 reference, and DSSE envelopes signed and verified with the
``cryptography`` package's Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import blake3
import pytest
import rfc9162_ref as ref
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import evidence, keys, merkle
from maestro_core.errors import (
    FileError,
    InputError,
    MaestroError,
    ManifestError,
    VerificationError,
)
from maestro_core.log import ConsistencyProof, InclusionProof, TransparencyLog, manifest_entry
from maestro_core.store import open_store

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://maestro-core.dev/evidence/manifest/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
LEAF_RULE = "H(0x00 || JCS({digest,path,size}))"


# ------------------------------------------------------------------ independent helpers


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def file_digest(alg: str, data: bytes) -> bytes:
    return hashlib.sha256(data).digest() if alg == "sha256" else blake3.blake3(data).digest()


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement_for(alg: str, entries: list[tuple[str, int, bytes]], root: bytes | None = None) -> dict:
    """The in-toto statement for ``(path, size, digest)`` entries, built by hand."""
    leaves = [ref.leaf(alg, canonical({"digest": d.hex(), "path": p, "size": n})) for p, n, d in entries]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": p, "digest": {alg: d.hex()}, "annotations": {"size": n}} for p, n, d in entries],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "algorithm": alg,
            "treeSize": len(entries),
            "root": (root if root is not None else ref.mth(alg, leaves)).hex(),
            "leaf": LEAF_RULE,
        },
    }


def dsse_sign(payload: bytes, kp: keys.KeyPair, payload_type: str = PAYLOAD_TYPE) -> bytes:
    sk = serialization.load_pem_private_key(kp.private_pem.encode(), password=None)
    assert isinstance(sk, Ed25519PrivateKey)
    sig = sk.sign(pae(payload_type, payload))
    env = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": kp.key_id, "sig": base64.b64encode(sig).decode()}],
    }
    return canonical(env)


def dsse_open(envelope: bytes, kp: keys.KeyPair) -> bytes:
    env = json.loads(envelope)
    pk = serialization.load_pem_public_key(kp.public_pem.encode())
    assert isinstance(pk, Ed25519PublicKey)
    payload = base64.b64decode(env["payload"])
    pk.verify(base64.b64decode(env["signatures"][0]["sig"]), pae(env["payloadType"], payload))
    return payload


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


SAMPLE = {
    "README.txt": b"hello\n",
    "empty": b"",
    "bin/tool": os.urandom(3000),
    "docs/a b.md": b"# spaces in names\n",
    "docs/\u00e9t\u00e9.txt": "unicode".encode(),
    "z/deep/er/file.bin": os.urandom(70_000),
}


@pytest.fixture
def release(tmp_path: Path) -> Path:
    d = tmp_path / "release"
    d.mkdir()
    write_tree(d, SAMPLE)
    return d


def _save(tmp_path: Path, m: evidence.Manifest, name: str = "m.json") -> Path:
    p = tmp_path / name
    p.write_bytes(m.envelope)
    return p


# ------------------------------------------------------------------ round trip and format


@pytest.mark.parametrize("alg", ["blake3", "sha256"])
def test_build_verify_round_trip(tmp_path: Path, release: Path, keypair: keys.KeyPair, alg: str) -> None:
    seen: list[tuple[int, int]] = []
    m = evidence.build(release, keypair, alg, progress=lambda d, t: seen.append((d, t)))
    assert m.algorithm == alg and m.size == len(SAMPLE)
    assert seen and seen[-1] == (len(SAMPLE), len(SAMPLE))
    want = sorted(SAMPLE, key=lambda s: s.encode())
    assert [e[0] for e in m.entries] == want
    for path, size, digest in m.entries:
        assert size == len(SAMPLE[path]) and digest == file_digest(alg, SAMPLE[path])
    mp = _save(tmp_path, m)
    rep = evidence.verify(mp, release, keypair.public)
    assert rep.ok and rep.differences == [] and len(rep.checks) >= 3
    assert evidence.read_manifest(mp, keypair.public) == m
    assert evidence.read_manifest(mp) == m  # unverified parse for inspection


@pytest.mark.parametrize("alg", ["blake3", "sha256"])
def test_manifest_format_is_independently_reproducible(release: Path, keypair: keys.KeyPair, alg: str) -> None:
    m = evidence.build(release, keypair, alg)
    env = json.loads(m.envelope)
    assert env["payloadType"] == PAYLOAD_TYPE
    # keyid: SHA-256 of the SPKI DER of the signing key
    pk = serialization.load_pem_public_key(keypair.public_pem.encode())
    der = pk.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert env["signatures"][0]["keyid"] == hashlib.sha256(der).hexdigest() == keypair.key_id
    # the signature verifies with an independent Ed25519 over our own PAE
    payload = dsse_open(m.envelope, keypair)
    # the statement is exactly the canonical JSON we build by hand
    entries = [(p, len(SAMPLE[p]), file_digest(alg, SAMPLE[p])) for p in sorted(SAMPLE, key=str.encode)]
    assert payload == canonical(statement_for(alg, entries))
    assert m.root == bytes.fromhex(json.loads(payload)["predicate"]["root"])
    # the envelope itself is canonical JSON
    assert m.envelope == canonical(env)
    # and an envelope signed by the independent implementation is accepted
    ours = dsse_sign(payload, keypair)
    mine = release.parent / "independent.json"
    mine.write_bytes(ours)
    info = evidence.read_manifest(mine, keypair.public)
    assert info.root == m.root and info.entries == m.entries


def test_empty_folder(tmp_path: Path, keypair: keys.KeyPair) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "sub").mkdir()  # empty folders are not files
    m = evidence.build(d, keypair, "sha256")
    assert m.size == 0 and m.root == merkle.empty_root("sha256")
    evidence.verify(_save(tmp_path, m), d, keypair.public)
    (d / "sub" / "new").write_bytes(b"")
    with pytest.raises(VerificationError, match="sub/new"):
        evidence.verify(_save(tmp_path, m, "m2.json"), d, keypair.public)


# ------------------------------------------------------------------ folder mutations (hypothesis)

names = st.text(alphabet="abcxyz019._-\u00e9", min_size=1, max_size=5).filter(lambda s: s not in {".", ".."})
rel_paths = st.lists(names, min_size=1, max_size=3).map("/".join)


def _no_prefix_clash(paths: list[str]) -> bool:
    s = set(paths)
    return not any("/".join(p.split("/")[:i]) in s for p in s for i in range(1, p.count("/") + 1))


folders = st.dictionaries(rel_paths, st.binary(max_size=200), min_size=1, max_size=12).filter(
    lambda d: _no_prefix_clash(list(d))
)


@settings(max_examples=80)
@given(
    files=folders,
    alg=st.sampled_from(["blake3", "sha256"]),
    kind=st.sampled_from(["tamper", "tamper-same-size", "add", "remove", "rename"]),
    pick=st.integers(0, 10**6),
    new_name=rel_paths,
    new_data=st.binary(max_size=50),
)
def test_any_change_to_the_folder_is_named(
    keypair: keys.KeyPair, files: dict[str, bytes], alg: str, kind: str, pick: int, new_name: str, new_data: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "rel"
        d.mkdir()
        write_tree(d, files)
        m = evidence.build(d, keypair, alg)
        mp = Path(tmp) / "m.json"
        mp.write_bytes(m.envelope)
        evidence.verify(mp, d, keypair.public)  # unchanged folder passes

        victim = sorted(files)[pick % len(files)]
        expect: set[tuple[str, str]]
        if kind == "tamper":
            data = files[victim] + b"!"
            (d / victim).write_bytes(data)
            expect = {("size", victim)}
        elif kind == "tamper-same-size":
            old = files[victim]
            data = bytes([old[0] ^ 1]) + old[1:] if old else b""
            if not old:
                return  # an empty file has no same-size change
            (d / victim).write_bytes(data)
            expect = {("digest", victim)}
        elif kind == "add":
            if not _no_prefix_clash([*files, new_name]) or new_name in files:
                return
            write_tree(d, {new_name: new_data})
            expect = {("unexpected", new_name)}
        elif kind == "remove":
            (d / victim).unlink()
            expect = {("missing", victim)}
        else:
            rest = [p for p in files if p != victim]
            if new_name in files or not _no_prefix_clash([*rest, new_name]) or not _no_prefix_clash([victim, new_name]):
                return
            (d / new_name).parent.mkdir(parents=True, exist_ok=True)
            os.rename(d / victim, d / new_name)
            expect = {("missing", victim), ("unexpected", new_name)}

        with pytest.raises(VerificationError) as ei:
            evidence.verify(mp, d, keypair.public)
        e = ei.value
        got = {(x.kind, x.path) for x in e.report.differences}
        assert got == expect
        first = min((p for _, p in expect), key=str.encode)
        msg = str(e)
        assert "\n" not in msg
        assert msg.startswith(first + ":"), msg


# ------------------------------------------------------------------ non-canonical manifests


def _entries(alg: str) -> list[tuple[str, int, bytes]]:
    return [(p, len(SAMPLE[p]), file_digest(alg, SAMPLE[p])) for p in sorted(SAMPLE, key=str.encode)]


def _variants(alg: str) -> dict[str, bytes]:
    """Statements wrong only in their canonical form (each re-signed validly)."""
    es = _entries(alg)
    good = statement_for(alg, es)
    out: dict[str, bytes] = {}
    swapped = [es[1], es[0], *es[2:]]
    out["reordered"] = canonical(statement_for(alg, swapped))
    dup = [es[0], es[0], *es[1:]]
    out["duplicated"] = canonical(statement_for(alg, dup))
    out["indented"] = json.dumps(good, sort_keys=True, indent=1, ensure_ascii=False).encode()
    out["unsorted keys"] = json.dumps(good, ensure_ascii=False, separators=(",", ":")).encode()
    out["trailing newline"] = canonical(good) + b"\n"
    out["ascii escapes"] = json.dumps(good, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    extra = json.loads(canonical(good))
    extra["extra"] = 1
    out["extra field"] = canonical(extra)
    upper = json.loads(canonical(good))
    upper["subject"][0]["digest"][alg] = upper["subject"][0]["digest"][alg].upper()
    out["upper-case hex"] = canonical(upper)
    wrong_root = statement_for(alg, es, root=bytes(32))
    out["wrong root"] = canonical(wrong_root)
    size = json.loads(canonical(good))
    size["predicate"]["treeSize"] += 1
    out["wrong treeSize"] = canonical(size)
    for bad in ["../escape", "/abs", "a//b", "./a", "a\\b"]:
        out[f"path {bad!r}"] = canonical(statement_for(alg, [(bad, 0, bytes(32))]))
    other = json.loads(canonical(good))
    other["predicate"]["algorithm"] = "md5"
    out["unknown algorithm"] = canonical(other)
    out["not JSON"] = b"{not json"
    out["JSON array"] = b"[]"
    return out


@pytest.mark.parametrize("alg", ["blake3", "sha256"])
def test_non_canonical_manifests_are_rejected(tmp_path: Path, keypair: keys.KeyPair, release: Path, alg: str) -> None:
    # control: the hand-made canonical statement, signed here, is accepted
    good = dsse_sign(canonical(statement_for(alg, _entries(alg))), keypair)
    p = tmp_path / "good.json"
    p.write_bytes(good)
    evidence.verify(p, release, keypair.public)
    for name, payload in _variants(alg).items():
        env = dsse_sign(payload, keypair)
        assert dsse_open(env, keypair) == payload  # the signature is valid
        p = tmp_path / "bad.json"
        p.write_bytes(env)
        with pytest.raises(ManifestError) as ei:
            evidence.read_manifest(p, keypair.public)
        assert str(p) in str(ei.value), name
        with pytest.raises(InputError):
            evidence.verify(p, release, keypair.public)


def test_field_names_in_manifest_errors(tmp_path: Path, keypair: keys.KeyPair) -> None:
    es = _entries("sha256")
    cases = {
        "subject[1].name": canonical(statement_for("sha256", [es[1], es[0], *es[2:]])),
        "predicate.root": canonical(statement_for("sha256", es, root=bytes(32))),
        "predicate.treeSize": None,
    }
    st_ = json.loads(canonical(statement_for("sha256", es)))
    st_["predicate"]["treeSize"] = 99
    cases["predicate.treeSize"] = canonical(st_)
    for field, payload in cases.items():
        p = tmp_path / "x.json"
        p.write_bytes(dsse_sign(payload, keypair))
        with pytest.raises(ManifestError, match=field.replace("[", r"\[").replace("]", r"\]")):
            evidence.read_manifest(p, keypair.public)


# ------------------------------------------------------------------ signatures and keys


def test_wrong_key_and_wrong_signature(
    tmp_path: Path, release: Path, keypair: keys.KeyPair, other_keypair: keys.KeyPair
) -> None:
    m = evidence.build(release, keypair)
    mp = _save(tmp_path, m)
    with pytest.raises(VerificationError, match="signature"):
        evidence.verify(mp, release, other_keypair.public)
    env = json.loads(m.envelope)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    for bit in (0, 100, 511):
        s2 = bytearray(sig)
        s2[bit // 8] ^= 1 << (bit % 8)
        env2 = dict(env, signatures=[{"keyid": env["signatures"][0]["keyid"], "sig": base64.b64encode(s2).decode()}])
        p = tmp_path / "flipped.json"
        p.write_bytes(canonical(env2))
        with pytest.raises(VerificationError):
            evidence.verify(p, release, keypair.public)
    # a statement changed after signing
    payload = base64.b64decode(env["payload"]).replace(b'"size":6', b'"size":7')
    p = tmp_path / "changed.json"
    p.write_bytes(canonical(dict(env, payload=base64.b64encode(payload).decode())))
    with pytest.raises(VerificationError):
        evidence.read_manifest(p, keypair.public)
    # signed by another key under the same name
    p.write_bytes(dsse_sign(base64.b64decode(env["payload"]), other_keypair))
    with pytest.raises(VerificationError):
        evidence.read_manifest(p, keypair.public)
    # signature over another payload type
    p.write_bytes(dsse_sign(base64.b64decode(env["payload"]), keypair, payload_type="text/plain"))
    with pytest.raises(MaestroError):
        evidence.read_manifest(p, keypair.public)
    # no signatures, truncated signature, signature not base64
    for sigs in ([], [{"keyid": "", "sig": base64.b64encode(sig[:63]).decode()}], [{"keyid": "", "sig": "@@@"}]):
        p.write_bytes(canonical(dict(env, signatures=sigs)))
        with pytest.raises(VerificationError):
            evidence.read_manifest(p, keypair.public)
    # cryptography agrees that the original signature is valid and a flipped one is not
    pk = serialization.load_pem_public_key(keypair.public_pem.encode())
    msg = pae(PAYLOAD_TYPE, base64.b64decode(env["payload"]))
    pk.verify(bytes(sig), msg)
    sig[0] ^= 1
    with pytest.raises(InvalidSignature):
        pk.verify(bytes(sig), msg)


def test_verifier_key_file_forms(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    paths = keypair.save(tmp_path / "k", "signer")
    assert (paths["key"].stat().st_mode & 0o777) == 0o600
    m = evidence.build(release, keys.load_private(paths["key"]))
    mp = _save(tmp_path, m)
    for form in ("pub", "vkey"):
        evidence.verify(mp, release, keys.load_public(paths[form]))
    with pytest.raises(InputError):
        keypair.save(tmp_path / "k", "signer")  # never overwrite a key
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(InputError, match="bad.pub"):
        keys.load_public(bad)
    with pytest.raises(FileError, match="nope.pub"):
        keys.load_public(tmp_path / "nope.pub")
    with pytest.raises(InputError):
        keys.load_private(bad)


def test_malformed_manifest_files(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    for content in [b"", b"{", b"null", b"[1,2]", b'{"payload": 1}', b"\xff\xfe", b'{"payloadType":"x","payload":"","signatures":[]}']:
        p = tmp_path / "bad.json"
        p.write_bytes(content)
        with pytest.raises(InputError) as ei:
            evidence.verify(p, release, keypair.public)
        assert str(p) in str(ei.value)
    with pytest.raises(InputError, match="not found"):
        evidence.verify(tmp_path / "missing.json", release, keypair.public)


# ------------------------------------------------------------------ unreadable inputs


def test_missing_or_unreadable_folders(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileError) as ei:
        evidence.build(missing, keypair)
    assert str(missing) in str(ei.value)
    afile = release / "README.txt"
    with pytest.raises(FileError, match="not a directory"):
        evidence.build(afile, keypair)
    mp = _save(tmp_path, evidence.build(release, keypair))
    with pytest.raises(FileError) as ei:
        evidence.verify(mp, missing, keypair.public)
    assert str(missing) in str(ei.value)


@pytest.mark.parametrize("bad", ["file-loop", "dir-loop", "dangling", "fifo", "unreadable"])
def test_bad_entries_inside_the_folder(tmp_path: Path, release: Path, keypair: keys.KeyPair, bad: str) -> None:
    mp = _save(tmp_path, evidence.build(release, keypair))
    target = release / "docs" / "bad-entry"
    if bad == "file-loop":
        target.symlink_to(target)
    elif bad == "dir-loop":
        target.symlink_to(release)
    elif bad == "dangling":
        target.symlink_to(tmp_path / "nowhere")
    elif bad == "fifo":
        os.mkfifo(target)
    else:
        # Root reads through permission bits, so a mode-000 file is only
        # unreadable for other users; as root use a file no one can read:
        # /proc/self/mem fails with EIO at offset 0.
        if os.geteuid() == 0:
            target.symlink_to("/proc/self/mem")
        else:
            target.write_bytes(b"secret")
            target.chmod(0)
    with pytest.raises(FileError) as ei:
        evidence.build(release, keypair)
    assert "bad-entry" in str(ei.value), str(ei.value)
    # verify names it too: the walk refuses it, or (readable as a directory
    # entry but not as data) it is reported as a file not in the manifest
    with pytest.raises(FileError if bad != "unreadable" else (FileError, VerificationError)) as ei:
        evidence.verify(mp, release, keypair.public)
    assert "bad-entry" in str(ei.value)
    if bad.endswith("loop"):
        assert "loop" in str(ei.value)


def test_non_utf8_file_name(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    bad = os.fsencode(release / "docs") + b"/caf\xe9.txt"
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    with pytest.raises(FileError, match="UTF-8") as ei:
        evidence.build(release, keypair)
    assert "docs/caf" in str(ei.value)


def test_cli_writes_no_partial_manifest(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    from maestro_core.cli import main

    paths = keypair.save(tmp_path / "k")
    (release / "loop").symlink_to(release / "loop")
    out = tmp_path / "out.json"
    assert main(["evidence", "build", str(release), "-o", str(out), "--key", str(paths["key"])]) == 2
    assert not out.exists()
    assert not list(tmp_path.glob(".out.json.tmp*"))


# ------------------------------------------------------------------ checkpoints and proofs


@pytest.fixture
def logged(tmp_path: Path, release: Path, keypair: keys.KeyPair):
    """A log holding some entries, the release manifest, a checkpoint, more entries, a second checkpoint."""
    log = TransparencyLog(open_store(tmp_path / "store"))
    for i in range(5):
        log.append("test.entry", f"before {i}".encode())
    m = evidence.build(release, keypair)
    mp = _save(tmp_path, m)
    idx = log.append_manifest(m.envelope)
    assert log.append_manifest(m.envelope) == idx  # idempotent
    cp1 = log.checkpoint(keypair)
    for i in range(7):
        log.append("test.entry", f"after {i}".encode())
    cp2 = log.checkpoint(keypair)
    return log, m, mp, idx, cp1, cp2


def test_full_offline_audit(logged, release: Path, keypair: keys.KeyPair) -> None:
    log, m, mp, idx, cp1, cp2 = logged
    size2 = evidence.verify_checkpoint(cp2, keypair.public).size
    size1 = evidence.verify_checkpoint(cp1, keypair.public).size
    assert (size1, size2) == (6, 13) and idx == 5
    proof, cons = log.prove(idx, size2), log.consistency(size1, size2)
    # proofs travel as JSON files and come back equal
    tmp = mp.parent
    (tmp / "p.json").write_text(proof.to_json())
    (tmp / "c.json").write_text(cons.to_json())
    proof2, cons2 = InclusionProof.load(tmp / "p.json"), ConsistencyProof.load(tmp / "c.json")
    assert (proof2.index, proof2.tree_size, proof2.leaf_hash, proof2.hashes) == (
        proof.index, proof.tree_size, proof.leaf_hash, proof.hashes)
    assert cons2 == cons
    assert proof.leaf_hash == ref.leaf("sha256", manifest_entry(m.envelope))
    rep = evidence.verify(mp, release, keypair.public, checkpoint=cp2, log_key=keypair.public, proof=proof2,
                          old_checkpoint=cp1, consistency=cons2)
    assert rep.log_index == idx and rep.checkpoint.size == 13 and rep.old_checkpoint.size == 6
    # the same with proofs taken from the local log
    rep = evidence.verify(mp, release, keypair.public, checkpoint=cp2, log_key=keypair.public, log=log, old_checkpoint=cp1)
    assert rep.log_index == idx


def _replace_line(note: str, lineno: int, new: str) -> str:
    lines = note.split("\n")
    lines[lineno] = new
    return "\n".join(lines)


def test_checkpoint_origin_line(logged, keypair: keys.KeyPair) -> None:
    log, m, mp, idx, cp1, cp2 = logged
    origin = cp2.split("\n")[0]
    assert origin == keypair.name
    for bad in ["", " " + origin, origin + " ", origin + "+x", "a b", "\u00a0" + origin]:
        with pytest.raises(InputError, match="line 1") as ei:
            evidence.verify_checkpoint(_replace_line(cp2, 0, bad), keypair.public)
        assert "\n" not in str(ei.value)
    with pytest.raises(InputError, match="control"):
        evidence.verify_checkpoint(_replace_line(cp2, 0, "x\ty"), keypair.public)
    with pytest.raises(InputError, match="line 1"):  # well-formed but not this log
        evidence.verify_checkpoint(_replace_line(cp2, 0, "other.example/log"), keypair.public)


def test_checkpoint_other_lines(logged, keypair: keys.KeyPair, other_keypair: keys.KeyPair) -> None:
    log, m, mp, idx, cp1, cp2 = logged
    for bad in ["", "-1", "013", "1e3", "99999999999999999999999", " 13"]:
        with pytest.raises(InputError, match="line 2"):
            evidence.verify_checkpoint(_replace_line(cp2, 1, bad), keypair.public)
    for bad in ["", "!!!", base64.b64encode(bytes(31)).decode(), base64.b64encode(bytes(33)).decode()]:
        with pytest.raises(InputError, match="line 3"):
            evidence.verify_checkpoint(_replace_line(cp2, 2, bad), keypair.public)
    # a well-formed change is caught by the signature
    with pytest.raises(VerificationError):
        evidence.verify_checkpoint(_replace_line(cp2, 1, "14"), keypair.public)
    with pytest.raises(VerificationError):
        evidence.verify_checkpoint(cp2, other_keypair.public)
    with pytest.raises(MaestroError):
        evidence.verify_checkpoint(cp2.split("\n\n")[0] + "\n", keypair.public)  # no signature block


def test_proof_errors_in_the_audit(tmp_path: Path, logged, release: Path, keypair: keys.KeyPair) -> None:
    log, m, mp, idx, cp1, cp2 = logged
    good = log.prove(idx, 13)
    kw = dict(checkpoint=cp2, log_key=keypair.public)

    def audit(proof: InclusionProof) -> None:
        evidence.verify(mp, release, keypair.public, proof=proof, **kw)

    audit(good)
    # proof of wrong length
    for hs in (good.hashes[:-1], [*good.hashes, good.hashes[0]], []):
        with pytest.raises(VerificationError, match="inclusion"):
            audit(InclusionProof(idx, 13, good.leaf_hash, hs))
    # index >= size, for the checkpoint's size
    with pytest.raises(InputError, match="out of range"):
        audit(InclusionProof(13, 13, good.leaf_hash, good.hashes))
    # a proof for another tree size than the checkpoint
    with pytest.raises(VerificationError, match="tree size"):
        audit(InclusionProof(idx, 12, good.leaf_hash, log.prove(idx, 12).hashes))
    # a proof for another leaf
    with pytest.raises(VerificationError, match="leaf"):
        audit(log.prove(idx - 1, 13))
    # every single-bit flip of a proof hash
    for k, h in enumerate(good.hashes):
        b = bytearray(h)
        b[k % 32] ^= 0x10
        with pytest.raises(VerificationError):
            audit(InclusionProof(idx, 13, good.leaf_hash, [*good.hashes[:k], bytes(b), *good.hashes[k + 1:]]))


def test_size_zero_checkpoint(tmp_path: Path, release: Path, keypair: keys.KeyPair) -> None:
    log = TransparencyLog(open_store(tmp_path / "empty-store"))
    cp0 = log.checkpoint(keypair)
    c = evidence.verify_checkpoint(cp0, keypair.public)
    assert c.size == 0 and c.root == hashlib.sha256(b"").digest()
    m = evidence.build(release, keypair)
    mp = _save(tmp_path, m)
    leaf = ref.leaf("sha256", manifest_entry(m.envelope))
    with pytest.raises(InputError, match="out of range"):
        evidence.verify(mp, release, keypair.public, checkpoint=cp0, log_key=keypair.public,
                        proof=InclusionProof(0, 0, leaf, []))
    with pytest.raises(VerificationError, match="not in the log"):
        evidence.verify(mp, release, keypair.public, checkpoint=cp0, log_key=keypair.public, log=log)
    with pytest.raises(InputError):
        log.prove(0, 0)


def test_consistency_errors_in_the_audit(logged, release: Path, keypair: keys.KeyPair) -> None:
    log, m, mp, idx, cp1, cp2 = logged
    proof = log.prove(idx, 13)
    cons = log.consistency(6, 13)
    kw = dict(checkpoint=cp2, log_key=keypair.public, proof=proof, old_checkpoint=cp1)
    evidence.verify(mp, release, keypair.public, consistency=cons, **kw)
    for hs in (cons.hashes[:-1], [*cons.hashes, cons.hashes[0]], [], [bytes(32)] * len(cons.hashes)):
        with pytest.raises(VerificationError, match="consistency"):
            evidence.verify(mp, release, keypair.public, consistency=ConsistencyProof(6, 13, hs), **kw)
    with pytest.raises(VerificationError, match="sizes"):
        evidence.verify(mp, release, keypair.public, consistency=ConsistencyProof(5, 13, log.consistency(5, 13).hashes), **kw)
    with pytest.raises(InputError):  # an old checkpoint without a new one
        evidence.verify(mp, release, keypair.public, old_checkpoint=cp1)
    with pytest.raises(InputError):  # a checkpoint without the log key
        evidence.verify(mp, release, keypair.public, checkpoint=cp2)


def test_malformed_proof_files(tmp_path: Path) -> None:
    cases = {
        "not json": "{",
        "not object": "[]",
        "wrong type": json.dumps({"type": "x"}),
        "missing index": json.dumps({"type": InclusionProof.TYPE, "treeSize": 3, "leafHash": "00" * 32, "hashes": []}),
        "bad hex": json.dumps({"type": InclusionProof.TYPE, "logIndex": 0, "treeSize": 3, "leafHash": "zz", "hashes": []}),
        "bad hashes": json.dumps({"type": InclusionProof.TYPE, "logIndex": 0, "treeSize": 3, "leafHash": "00" * 32, "hashes": ["xyz"]}),
        "hashes not list": json.dumps({"type": InclusionProof.TYPE, "logIndex": 0, "treeSize": 3, "leafHash": "00" * 32, "hashes": "00"}),
    }
    for name, text in cases.items():
        p = tmp_path / "p.json"
        p.write_text(text)
        with pytest.raises(InputError) as ei:
            InclusionProof.load(p)
        assert str(p) in str(ei.value), name
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"type": ConsistencyProof.TYPE, "size1": "a", "size2": 3, "hashes": []}))
    with pytest.raises(InputError):
        ConsistencyProof.load(p)
    with pytest.raises(FileError):
        ConsistencyProof.load(tmp_path / "missing.json")
