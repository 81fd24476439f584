"""``maestro demo``: the evidence flow end to end on the bundled example.

keys → manifest of the example release (logged) → checkpoint → more log
entries (Decision Cards) → second checkpoint → inclusion and consistency
proofs → offline audit (passes) → audit of a tampered copy (fails, naming
the file). Everything lands under the output folder and the store.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from . import cards, evidence, keys
from .errors import VerificationError
from .log import TransparencyLog, read_checkpoint, write_bytes, write_text
from .store import open_store


def _say(on: bool, msg: str) -> None:
    if on:
        print(msg, flush=True)


def run_demo(output: str, home: str | None, as_json: bool = False) -> int:
    show = not as_json
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(home)
    log = TransparencyLog(store)
    _say(show, f"maestro demo: store {store.path}, files in {out}/")

    key_file = out / "keys" / "maestro.key"
    kp = keys.load_private(key_file) if key_file.exists() else None
    if kp is None:
        kp = keys.generate("maestro.local/log")
        kp.save(out / "keys")
    pub = kp.public
    _say(show, f"1. key {kp.name!r} (id {kp.key_id[:16]}) in {out / 'keys'}")

    release = out / "release"
    if release.exists():
        shutil.rmtree(release)
    src = resources.files("maestro_core").joinpath("example/release")
    with resources.as_file(src) as p:
        shutil.copytree(p, release, ignore=shutil.ignore_patterns("__pycache__"))
    m = evidence.build(release, kp)
    manifest = out / "release.manifest.json"
    write_bytes(manifest, m.envelope)
    idx = log.append_manifest(m.envelope)
    cards.record(cards.DecisionCard(kind="evidence.build", subject=str(release), decision="built",
                                    reasons=[f"{m.size} files hashed with {m.algorithm}"],
                                    inputs_digest=cards.digest_inputs(m.root), metrics={"files": m.size},
                                    evidence=f"log:{idx}"), store=store)
    _say(show, f"2. manifest {manifest}: {m.size} files, {m.algorithm} root {m.root.hex()[:32]}…, log entry {idx}")

    cp1 = out / "checkpoint-1.txt"
    write_text(cp1, log.checkpoint(kp))
    _say(show, f"3. checkpoint {cp1} at size {log.size}")

    for i in range(3):
        cards.record(cards.DecisionCard(kind="demo.note", subject=f"later decision {i}", decision="noted",
                                        reasons=["the log keeps growing after the release"],
                                        inputs_digest=cards.digest_inputs(str(i).encode())), store=store)
    cp2 = out / "checkpoint-2.txt"
    write_text(cp2, log.checkpoint(kp))
    size1 = evidence.verify_checkpoint(read_checkpoint(cp1), pub).size
    size2 = evidence.verify_checkpoint(read_checkpoint(cp2), pub).size
    _say(show, f"4. three more Decision Cards logged; checkpoint {cp2} at size {size2}")

    proof = out / "release.manifest.json.proof.json"
    write_text(proof, log.prove(idx, size2).to_json())
    cons = out / "consistency-1-2.json"
    write_text(cons, log.consistency(size1, size2).to_json())
    _say(show, f"5. inclusion proof {proof}, consistency proof {cons}")

    rep = evidence.verify(manifest, release, pub, checkpoint=read_checkpoint(cp2), log_key=pub,
                          proof=evidence.InclusionProof.load(proof), old_checkpoint=read_checkpoint(cp1),
                          consistency=evidence.ConsistencyProof.load(cons))
    cards.record(cards.DecisionCard(kind="evidence.verify", subject=str(release), decision="pass",
                                    reasons=rep.checks, inputs_digest=cards.digest_inputs(m.envelope),
                                    metrics={"files": m.size, "log_index": rep.log_index},
                                    evidence=str(manifest)), store=store)
    _say(show, "6. offline audit of the release: OK")
    for c in rep.checks:
        _say(show, f"     ✓ {c}")

    tampered = out / "release-tampered"
    if tampered.exists():
        shutil.rmtree(tampered)
    shutil.copytree(release, tampered)
    (tampered / "config.json").write_text('{"service": "acme", "version": "1.4.2", "replicas": 30}\n')
    try:
        evidence.verify(manifest, tampered, pub)
        caught = None
    except VerificationError as e:
        caught = str(e)
    if caught is None:
        _say(True, "demo: the tampered copy was NOT detected")
        return 1
    _say(show, f"7. audit of a tampered copy fails as it must: {caught}")
    n = log.verify()
    _say(show, f"8. log verified: {n} entries; Decision Cards: `maestro cards list`")
    _say(show, f"   auditor's one command: maestro evidence verify {manifest} --dir {release} "
               f"--log-key {out / 'keys' / 'maestro.pub'} --checkpoint {cp2} --proof {proof}")
    if as_json:
        print(json.dumps({"ok": True, "manifest": str(manifest), "files": m.size, "log_size": n,
                          "checks": rep.checks, "tampered_detected": caught}, indent=2))
    return 0
