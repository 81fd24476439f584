"""The append-only log in the SQLite store, checked from the outside.

Roots and proofs are compared with the RFC 9162 reference; checkpoints are
parsed and their Ed25519 signatures verified with the ``cryptography``
package following C2SP tlog-checkpoint / signed-note; the database is
tampered with through :mod:`sqlite3` and ``verify`` must notice.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import threading
from pathlib import Path

import pytest
import rfc9162_ref as ref
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import cards, keys
from maestro_core.errors import InputError, MaestroError, NotFoundError, StorageError, VerificationError
from maestro_core.log import TransparencyLog, verify_checkpoint
from maestro_core.store import open_store

DASH = "\u2014 "


def body(i: int) -> bytes:
    return f"entry {i} ".encode() * (i % 5 + 1)


def make_log(home: Path, n: int) -> TransparencyLog:
    log = TransparencyLog(open_store(home))
    if n:
        # a mix of batched and single appends
        half = n // 2
        assert log._store.log_append_many([("test.entry", body(i)) for i in range(half)]) == list(range(half))
        for i in range(half, n):
            assert log.append("test.entry", body(i)) == i
    return log


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> TransparencyLog:
    return make_log(tmp_path_factory.mktemp("biglog"), 300)


LEAVES = [ref.leaf("sha256", body(i)) for i in range(300)]


def test_entries_roundtrip(big_log: TransparencyLog) -> None:
    assert big_log.size == 300
    for i in (0, 1, 149, 150, 299):
        e = big_log._store.log_entry(i)
        assert e["index"] == i and e["kind"] == "test.entry" and e["body"] == body(i)
        assert e["leaf_hash"] == LEAVES[i]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["created"])
    with pytest.raises(NotFoundError, match="300"):
        big_log._store.log_entry(300)
    assert big_log._store.log_find(LEAVES[7]) == 7
    assert big_log._store.log_find(bytes(32)) is None
    assert big_log.verify() == 300


@settings(max_examples=60)
@given(st_data=st.data())
def test_roots_and_proofs_agree_with_reference(big_log: TransparencyLog, st_data: st.DataObject) -> None:
    n = st_data.draw(st.integers(1, 300))
    m = st_data.draw(st.integers(1, n))
    i = st_data.draw(st.integers(0, n - 1))
    size, root = big_log.root(n)
    assert size == n and root == ref.mth("sha256", LEAVES[:n])
    p = big_log.prove(i, n)
    assert p.leaf_hash == LEAVES[i] and p.entry == body(i)
    assert p.hashes == ref.path("sha256", i, LEAVES[:n])
    assert ref.verify_inclusion("sha256", i, n, LEAVES[i], p.hashes, root)
    p.verify(root, n)
    c = big_log.consistency(m, n)
    assert c.hashes == ref.proof("sha256", m, LEAVES[:n])
    assert ref.verify_consistency("sha256", m, n, ref.mth("sha256", LEAVES[:m]), root, c.hashes)


def test_root_of_empty_and_full(big_log: TransparencyLog, tmp_path: Path) -> None:
    assert big_log.root() == (300, ref.mth("sha256", LEAVES))
    assert big_log.root(0) == (0, hashlib.sha256(b"").digest())
    with pytest.raises(InputError):
        big_log.root(301)
    with pytest.raises(InputError):
        big_log.prove(5, 301)
    with pytest.raises(MaestroError):
        big_log.consistency(0, 10)
    with pytest.raises(MaestroError):
        big_log.consistency(20, 10)
    empty = make_log(tmp_path / "e", 0)
    assert empty.size == 0 and empty.verify() == 0
    assert empty.root() == (0, hashlib.sha256(b"").digest())


def test_incremental_heads(tmp_path: Path) -> None:
    log = make_log(tmp_path / "s", 0)
    for i in range(70):
        log.append("k", body(i))
        assert log.root()[1] == ref.mth("sha256", LEAVES[: i + 1])
    with pytest.raises(InputError, match="kind"):
        log.append("", b"x")
    assert log.size == 70


# ------------------------------------------------------------------ checkpoints


def parse_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Independent C2SP signed-note split: text and (name, signature blob) lines."""
    text, sep, sigs = note.partition("\n\n")
    assert sep, "a note has a blank line before its signatures"
    assert note.endswith("\n")
    out = []
    for line in sigs.rstrip("\n").split("\n"):
        assert line.startswith(DASH), line
        name, b64 = line[len(DASH):].split(" ")
        out.append((name, base64.b64decode(b64, validate=True)))
    return text + "\n", out


def note_key_id(name: str, raw_pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw_pub).digest()[:4]


def test_checkpoint_format_and_signature(big_log: TransparencyLog, tmp_path: Path) -> None:
    kp = keys.generate("log.example.org/prod")
    note = big_log.checkpoint(kp)
    text, sigs = parse_note(note)
    origin, size, root_b64, *ext = text[:-1].split("\n")
    assert (origin, size, ext) == ("log.example.org/prod", "300", [])
    assert base64.b64decode(root_b64) == ref.mth("sha256", LEAVES)
    assert len(sigs) == 1
    name, blob = sigs[0]
    assert name == kp.name and len(blob) == 4 + 64
    pk = serialization.load_pem_public_key(kp.public_pem.encode())
    raw = pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert blob[:4] == note_key_id(kp.name, raw)
    pk.verify(blob[4:], text.encode())  # raises InvalidSignature on failure
    # the verifier key: name+hex(key id)+base64(0x01 || key)
    vname, vid, vb64 = kp.vkey.split("+", 2)
    assert (vname, bytes.fromhex(vid), base64.b64decode(vb64)) == (kp.name, blob[:4], b"\x01" + raw)
    # verify through the API with the .pub PEM and the .vkey file
    files = kp.save(tmp_path / "keys")
    for form in ("pub", "vkey"):
        cp = verify_checkpoint(note, keys.load_public(files[form]))
        assert (cp.origin, cp.size, cp.root) == (kp.name, 300, ref.mth("sha256", LEAVES))
    assert verify_checkpoint(note, kp.vkey).size == 300
    # checkpoints are kept
    assert (300, note) in big_log._store.checkpoints()


def test_checkpoint_with_extra_signatures(big_log: TransparencyLog) -> None:
    """Signatures by other keys (witnesses) are skipped; a bad one by the log key is not."""
    kp = keys.generate("log.example.org/prod")
    witness = keys.generate("witness.example")
    note = big_log.checkpoint(kp)
    text, sigs = parse_note(note)
    wsk = serialization.load_pem_private_key(witness.private_pem.encode(), None)
    wpk = wsk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    wline = f"{DASH}{witness.name} " + base64.b64encode(note_key_id(witness.name, wpk) + wsk.sign(text.encode())).decode()
    cosigned = note + wline + "\n"
    assert verify_checkpoint(cosigned, kp.public).size == 300
    witness_first = text + "\n" + wline + "\n" + note.split("\n\n", 1)[1]
    assert verify_checkpoint(witness_first, kp.public).size == 300
    only_witness = text + "\n" + wline + "\n"
    with pytest.raises(VerificationError):
        verify_checkpoint(only_witness, kp.public)
    # a log-key signature over other text
    name, blob = sigs[0]
    forged = text.replace("\n300\n", "\n299\n")
    with pytest.raises(VerificationError):
        verify_checkpoint(forged + "\n" + f"{DASH}{name} " + base64.b64encode(blob).decode() + "\n", kp.public)


def test_checkpoint_signed_by_cryptography_is_accepted(tmp_path: Path) -> None:
    """A checkpoint written entirely by an independent implementation verifies."""
    kp = keys.generate("indep.example/log")
    sk = serialization.load_pem_private_key(kp.private_pem.encode(), None)
    raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    root = ref.mth("sha256", LEAVES[:17])
    text = f"{kp.name}\n17\n{base64.b64encode(root).decode()}\n"
    note = text + "\n" + f"{DASH}{kp.name} " + base64.b64encode(note_key_id(kp.name, raw) + sk.sign(text.encode())).decode() + "\n"
    cp = verify_checkpoint(note, kp.public)
    assert (cp.origin, cp.size, cp.root) == (kp.name, 17, root)
    cp = verify_checkpoint(note, kp.vkey)
    assert cp.size == 17


# ------------------------------------------------------------------ tampering


def _db(log: TransparencyLog) -> Path:
    return Path(log._store.path)


TAMPERS = {
    "node hash": "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 3",
    "top node hash": "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 5 AND idx = 0",
    "leaf node": "UPDATE log_nodes SET hash = randomblob(32) WHERE level = 0 AND idx = 40",
    "short node": "UPDATE log_nodes SET hash = zeroblob(31) WHERE level = 2 AND idx = 1",
    "missing node": "DELETE FROM log_nodes WHERE level = 3 AND idx = 2",
    "stray node": "INSERT INTO log_nodes(level, idx, hash) VALUES (7, 9, zeroblob(32))",
    "entry body": "UPDATE log_entries SET body = X'00' WHERE idx = 10",
    "entry leaf hash": "UPDATE log_entries SET leaf_hash = zeroblob(32) WHERE idx = 11",
    "missing entry": "DELETE FROM log_entries WHERE idx = 12",
    "checkpoint root": "UPDATE checkpoints SET root = zeroblob(32)",
    "checkpoint beyond": "UPDATE checkpoints SET size = 1000",
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_tampering_is_detected(tmp_path: Path, what: str) -> None:
    log = make_log(tmp_path / "s", 64)
    log.checkpoint(keys.generate("t.example/log"))
    assert log.verify() == 64
    con = sqlite3.connect(_db(log))
    with con:
        assert con.execute(TAMPERS[what]).rowcount == 1
    con.close()
    with pytest.raises(StorageError) as ei:
        log.verify()
    assert str(ei.value) and "\n" not in str(ei.value)
    # a reopened store sees the same damage
    with pytest.raises(StorageError):
        TransparencyLog(open_store(tmp_path / "s")).verify()


def test_store_errors(tmp_path: Path) -> None:
    bad = tmp_path / "notastore"
    bad.mkdir()
    (bad / "maestro.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="maestro.db"):
        open_store(bad)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(StorageError):
        open_store(afile)  # home is a regular file
    log = make_log(tmp_path / "v", 3)
    con = sqlite3.connect(_db(log))
    with con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    con.close()
    with pytest.raises(StorageError, match="schema"):
        open_store(tmp_path / "v")


def test_reopen_and_concurrent_writers(tmp_path: Path) -> None:
    home = tmp_path / "c"
    make_log(home, 10)
    stores = [TransparencyLog(open_store(home)) for _ in range(4)]
    got: list[list[int]] = [[] for _ in stores]

    def work(k: int) -> None:
        for j in range(25):
            got[k].append(stores[k].append(f"w{k}", f"{k}:{j}".encode()))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    idx = sorted(i for g in got for i in g)
    assert idx == list(range(10, 110))
    log = TransparencyLog(open_store(home))
    assert log.verify() == 110
    for k, g in enumerate(got):
        for j, i in enumerate(g):
            e = log._store.log_entry(i)
            assert (e["kind"], e["body"]) == (f"w{k}", f"{k}:{j}".encode())


def test_cards_are_logged(tmp_path: Path) -> None:
    st_ = open_store(tmp_path / "cards")
    log = TransparencyLog(st_)
    log.append("x", b"first")
    c = cards.record(
        cards.DecisionCard(kind="test.decide", subject="s", decision="ok", reasons=["r"],
                           inputs_digest=cards.digest_inputs(b"in"), metrics={"m": 1.5}),
        store=st_,
    )
    assert c.log_index == 1 and c.id.startswith("dc-")
    e = st_.log_entry(1)
    assert e["kind"] == "decision.card"
    assert b'"id":"%s"' % c.id.encode() in e["body"]
    # recording the same card again does not log twice
    again = cards.record(cards.DecisionCard(kind="test.decide", subject="s", decision="ok", reasons=["r"],
                                            inputs_digest=c.inputs_digest, metrics={"m": 1.5}, created=c.created),
                         store=st_)
    assert again.id == c.id and again.log_index == 1 and log.size == 2
    assert log.verify() == 2
