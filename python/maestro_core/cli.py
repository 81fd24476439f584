"""The ``maestro`` command line (also ``python -m maestro_core``).

Exit codes: 0 success, 1 a check failed, 2 bad usage or input, 3 internal
error. Errors print one line on stderr. ``--json`` prints machine-readable
results on stdout. The CLI only uses the public API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, cards, evidence, guards, hashing, keys
from .errors import InputError, MaestroError, VerificationError, exit_code
from .log import ConsistencyProof, InclusionProof, TransparencyLog, read_checkpoint, verify_checkpoint, write_bytes, write_text
from .store import default_home, open_store


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: one line, exit 2
        self.exit(2, f"maestro: error: {message} (see --help)\n")


def _out(args: argparse.Namespace, human: str, data: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(human)


def _progress(args: argparse.Namespace, desc: str) -> Any:
    """A tqdm bar on stderr when it is a terminal; ``None`` otherwise."""
    if args.json or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="file", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _store(args: argparse.Namespace) -> Any:
    return open_store(args.home)


def _record(args: argparse.Namespace, card: cards.DecisionCard) -> cards.DecisionCard:
    return cards.record(card, store=_store(args))


# ---------------------------------------------------------------- keys
def cmd_keys_generate(args: argparse.Namespace) -> int:
    kp = keys.generate(args.name)
    paths = kp.save(args.output, args.stem)
    _out(
        args,
        f"generated Ed25519 key {kp.name!r} (key id {kp.key_id[:16]})\n"
        + "\n".join(f"  {k:5} {p}" for k, p in paths.items()),
        {"name": kp.name, "key_id": kp.key_id, "vkey": kp.vkey, **{k: str(p) for k, p in paths.items()}},
    )
    return 0


# ---------------------------------------------------------------- evidence
def cmd_evidence_build(args: argparse.Namespace) -> int:
    kp = keys.load_private(args.key)
    m = evidence.build(args.directory, kp, args.algorithm, progress=_progress(args, "hashing"))
    write_bytes(args.output, m.envelope)
    index = None
    if not args.no_log:
        index = TransparencyLog(_store(args)).append_manifest(m.envelope)
    card = _record(
        args,
        cards.DecisionCard(
            kind="evidence.build",
            subject=str(args.directory),
            decision="built",
            reasons=[f"{m.size} files hashed with {m.algorithm}", f"manifest signed by key {kp.key_id[:16]}"],
            inputs_digest=cards.digest_inputs(m.root),
            metrics={"files": m.size, "bytes": sum(e[1] for e in m.entries)},
            evidence=f"log:{index}" if index is not None else str(args.output),
        ),
    )
    _out(
        args,
        f"manifest {args.output}: {m.size} files, {m.algorithm} root {m.root.hex()}"
        + (f"\nlogged as entry {index}" if index is not None else "")
        + f"\ndecision card {card.id}",
        {"manifest": str(args.output), "files": m.size, "algorithm": m.algorithm, "root": m.root.hex(),
         "log_index": index, "card": card.id},
    )
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    key_path = args.key or args.log_key
    if key_path is None:
        raise InputError("verify needs the manifest signer's public key (--key, or --log-key when it is the same key)")
    key = keys.load_public(key_path)
    log_key = keys.load_public(args.log_key) if args.log_key else None
    cp = read_checkpoint(args.checkpoint) if args.checkpoint else None
    old = read_checkpoint(args.old_checkpoint) if args.old_checkpoint else None
    proof = InclusionProof.load(args.proof) if args.proof else None
    cons = ConsistencyProof.load(args.consistency_proof) if args.consistency_proof else None
    log = None
    if cp is not None and (proof is None or (old is not None and cons is None)):
        home = default_home(args.home)
        if (home / "maestro.db").exists():
            log = TransparencyLog(open_store(home))
    subject = f"{args.manifest} vs {args.directory}"
    try:
        rep = evidence.verify(
            args.manifest, args.directory, key, checkpoint=cp, log_key=log_key, proof=proof, log=log,
            old_checkpoint=old, consistency=cons,
        )
    except VerificationError as e:
        if not args.no_card:
            _record(args, cards.DecisionCard(kind="evidence.verify", subject=subject, decision="fail",
                                             reasons=[str(e)], inputs_digest=cards.digest_inputs(
                                                 Path(args.manifest).read_bytes()), evidence=str(args.manifest)))
        if args.json:
            print(json.dumps({"ok": False, "error": str(e)}, indent=2))
        raise
    if not args.no_card:
        _record(args, cards.DecisionCard(kind="evidence.verify", subject=subject, decision="pass",
                                         reasons=rep.checks, inputs_digest=cards.digest_inputs(rep.manifest.envelope),
                                         metrics={"files": rep.manifest.size, "log_index": rep.log_index},
                                         evidence=str(args.manifest)))
    _out(args, "OK\n" + "\n".join(f"  ✓ {c}" for c in rep.checks),
         {"ok": True, "checks": rep.checks, "files": rep.manifest.size, "root": rep.manifest.root.hex(),
          "log_index": rep.log_index})
    return 0


# ---------------------------------------------------------------- log
def cmd_log_append(args: argparse.Namespace) -> int:
    log = TransparencyLog(_store(args))
    data = Path(args.file).read_bytes() if Path(args.file).is_file() else None
    if data is None:
        raise InputError(f"{args.file}: not a readable file")
    idx = log.append_manifest(data) if args.kind == "evidence.manifest" else log.append(args.kind, data)
    _out(args, f"appended entry {idx} (log size {log.size})", {"index": idx, "size": log.size})
    return 0


def cmd_log_checkpoint(args: argparse.Namespace) -> int:
    log = TransparencyLog(_store(args))
    note = log.checkpoint(keys.load_private(args.key))
    if args.output:
        write_text(args.output, note)
    size, root = log.root()
    _out(args, note if not args.output else f"checkpoint of size {size} written to {args.output}",
         {"size": size, "root": root.hex(), "note": note, "output": args.output})
    return 0


def cmd_log_prove(args: argparse.Namespace) -> int:
    log = TransparencyLog(_store(args))
    size = log.size
    if args.checkpoint:
        lk = keys.load_public(args.log_key) if args.log_key else None
        text = read_checkpoint(args.checkpoint)
        size = verify_checkpoint(text, lk).size if lk else _cp_size(text)
    if args.index is not None:
        idx = args.index
    else:
        if not args.manifest:
            raise InputError("give a MANIFEST or --index")
        found = log.find_manifest(Path(args.manifest).read_bytes())
        if found is None:
            raise InputError(f"{args.manifest}: not in the log")
        idx = found
    proof = log.prove(idx, size)
    out = args.output or (f"{args.manifest}.proof.json" if args.manifest else None)
    if out:
        write_text(out, proof.to_json())
    _out(args, f"inclusion proof of entry {idx} in tree size {size}: {len(proof.hashes)} hashes"
         + (f" -> {out}" if out else "\n" + proof.to_json()), json.loads(proof.to_json()))
    return 0


def _cp_size(text: str) -> int:
    from . import _native

    return int(_native.parse_checkpoint(text)[1])


def cmd_log_consistency(args: argparse.Namespace) -> int:
    log = TransparencyLog(_store(args))
    s1, s2 = _cp_size(read_checkpoint(args.old)), _cp_size(read_checkpoint(args.new))
    proof = log.consistency(s1, s2)
    if args.output:
        write_text(args.output, proof.to_json())
    _out(args, f"consistency proof {s1} -> {s2}: {len(proof.hashes)} hashes"
         + (f" -> {args.output}" if args.output else "\n" + proof.to_json()), json.loads(proof.to_json()))
    return 0


def cmd_log_verify(args: argparse.Namespace) -> int:
    log = TransparencyLog(_store(args))
    n = log.verify()
    size, root = log.root()
    _out(args, f"log verified: {n} entries, every node and checkpoint recomputed; root {root.hex()}",
         {"ok": True, "size": n, "root": root.hex()})
    return 0


# ---------------------------------------------------------------- cards
def cmd_cards_list(args: argparse.Namespace) -> int:
    cs = cards.list_cards(args.kind, args.limit, store=_store(args))
    if args.json:
        print(json.dumps([json.loads(c.to_json()) for c in cs], indent=2))
        return 0
    if not cs:
        print("no decision cards")
    for c in cs:
        print(f"{c.id}  {c.created}  {c.kind:<16} {c.decision:<8} {c.subject}")
    return 0


def cmd_cards_show(args: argparse.Namespace) -> int:
    c = cards.get(args.id, store=_store(args))
    print(c.to_json())
    return 0


# ---------------------------------------------------------------- guards
_TRACE_EXT = (".json", ".jsonl", ".pb", ".binpb")


def _trace_files(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(_TRACE_EXT))
            if not found:
                raise InputError(f"{p}: no trace files (*.json, *.jsonl, *.pb)")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def _junit(reports: list[guards.FileReport], gs: list[guards.Guard]) -> str:
    from xml.sax.saxutils import escape, quoteattr

    cases = []
    fails = 0
    for r in reports:
        for g in gs:
            vs = [v for v in r.violations if v.guard == g.name]
            name = quoteattr(g.name)
            cls = quoteattr(r.path)
            if vs:
                fails += 1
                body = "\n".join(f"{v.kind} on {g.per}={v.key} at {v.time} ns" for v in vs)
                cases.append(f'  <testcase classname={cls} name={name}><failure message={quoteattr(f"{len(vs)} violation(s)")}>'
                             f"{escape(body)}</failure></testcase>")
            else:
                cases.append(f"  <testcase classname={cls} name={name}/>")
    head = f'<testsuite name="maestro.guards" tests="{len(cases)}" failures="{fails}" errors="0">'
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "\n" + "\n".join(cases) + "\n</testsuite>\n"


def cmd_guards_check(args: argparse.Namespace) -> int:
    gs = guards.load(args.guards) if args.guards else guards.shipped()
    if args.only:
        keep = set(args.only)
        unknown = keep - {g.name for g in gs}
        if unknown:
            raise InputError(f"--only: unknown guard(s) {', '.join(sorted(unknown))}")
        gs = [g for g in gs if g.name in keep]
    files = _trace_files(args.traces)
    lateness = guards.parse_duration(args.lateness)
    reports = [guards.check_file(f, gs, lateness) for f in files]
    by_name = {g.name: g for g in gs}
    bundles: list[str] = []
    if args.bundles:
        out = Path(args.bundles)
        out.mkdir(parents=True, exist_ok=True)
        n = 0
        for r in reports:
            for v in r.violations[: args.max_bundles]:
                b = guards.make_bundle(by_name[v.guard], v, r)
                n += 1
                f = out / f"{v.guard}-{n:04d}.bundle.json"
                write_text(f, json.dumps(b, indent=2, sort_keys=True) + "\n")
                bundles.append(str(f))
    if args.junit:
        write_text(args.junit, _junit(reports, gs))
    nviol = sum(len(r.violations) for r in reports)
    nlate = sum(len(r.late) for r in reports)
    nevents = sum(r.events for r in reports)
    card_id = None
    if not args.no_card:
        parts = [hashing.hash_file(f) for f in files] + [g.digest.encode() for g in gs]
        reasons = [f"{r.path}: {v.guard} {v.kind} on {by_name[v.guard].per}={v.key} at {v.time} ns"
                   for r in reports for v in r.violations][:50] or [f"{len(gs)} guards hold on {len(files)} file(s)"]
        if nlate:
            reasons.append(f"{nlate} late event(s) were not matched")
        card = _record(args, cards.DecisionCard(
            kind="guards.check", subject=", ".join(map(str, files))[:500], decision="fail" if nviol else "pass",
            reasons=reasons, inputs_digest=cards.digest_inputs(*parts),
            metrics={"files": len(files), "events": nevents, "guards": len(gs), "violations": nviol, "late": nlate},
            evidence=args.bundles or None))
        card_id = card.id
    if args.json:
        print(json.dumps({
            "ok": nviol == 0, "files": len(files), "events": nevents, "guards": [g.name for g in gs],
            "violations": [{"file": r.path, "per": by_name[v.guard].per, **v.to_dict()} for r in reports for v in r.violations],
            "late": [{"file": r.path, **x.__dict__} for r in reports for x in r.late],
            "bundles": bundles, "card": card_id}, indent=2, sort_keys=True))
    else:
        for r in reports:
            for v in r.violations:
                print(f"VIOLATION {v.guard}: {v.kind} on {by_name[v.guard].per}={v.key} at {v.time} ns ({r.path})")
        print(f"{'FAIL' if nviol else 'OK'}: {nviol} violation(s) of {len(gs)} guard(s) in {nevents} events "
              f"from {len(files)} file(s); {nlate} late event(s)"
              + (f"; {len(bundles)} bundle(s) in {args.bundles}" if bundles else "")
              + (f"; decision card {card_id}" if card_id else ""))
    return 1 if nviol else 0


def cmd_guards_replay(args: argparse.Namespace) -> int:
    res = guards.replay(args.bundle)
    if not args.no_card:
        b = Path(args.bundle).read_bytes()
        _record(args, cards.DecisionCard(kind="guards.replay", subject=str(args.bundle), decision="reproduced" if res.ok else "differs",
                                         reasons=res.reasons, inputs_digest=cards.digest_inputs(b),
                                         metrics={"violations_found": len(res.found)}, evidence=str(args.bundle)))
    _out(args, ("OK" if res.ok else "DIFFERS") + "\n" + "\n".join(f"  {r}" for r in res.reasons),
         {"ok": res.ok, "reasons": res.reasons, "found": [v.to_dict() for v in res.found]})
    return 0 if res.ok else 1


def cmd_guards_list(args: argparse.Namespace) -> int:
    gs = guards.load(args.guards) if args.guards else guards.shipped()
    if args.json:
        print(json.dumps([{"name": g.name, "per": g.per, "contiguity": g.contiguity, "description": g.description,
                           "digest": g.digest, "origin": g.origin} for g in gs], indent=2))
        return 0
    for g in gs:
        print(f"{g.name:<30} per {g.per:<22} {g.description or ''}")
    return 0


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.output, args.home, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="maestro", description="maestro_core: explain, tune and prove CI decisions.")
    p.add_argument("--version", action="version", version=f"maestro {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="store folder (default: $MAESTRO_HOME or ./.maestro)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(parent: Any, name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help, parents=[common])
        sp.set_defaults(fn=fn)
        return sp

    kp = sub.add_parser("keys", help="Ed25519 keys").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    g = add(kp, "generate", cmd_keys_generate, "generate an Ed25519 key pair (.key, .pub, .vkey)")
    g.add_argument("--name", default="maestro.local/log", help="key name = log origin (no spaces, no '+')")
    g.add_argument("-o", "--output", default=".", help="folder for the key files")
    g.add_argument("--stem", default="maestro", help="file name stem")

    ep = sub.add_parser("evidence", help="signed release manifests").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    b = add(ep, "build", cmd_evidence_build, "hash a folder and write a signed manifest (DSSE, in-toto v1)")
    b.add_argument("directory")
    b.add_argument("-o", "--output", required=True, help="manifest file to write")
    b.add_argument("--key", required=True, help="private key (PEM) that signs the manifest")
    b.add_argument("--algorithm", default="blake3", choices=["blake3", "sha256"])
    b.add_argument("--no-log", action="store_true", help="do not append the manifest to the log")
    v = add(ep, "verify", cmd_evidence_verify, "audit a folder against a signed manifest (and the log)")
    v.add_argument("manifest")
    v.add_argument("--dir", dest="directory", required=True, help="the release folder")
    v.add_argument("--key", help="manifest signer's public key (default: --log-key)")
    v.add_argument("--checkpoint", help="signed log checkpoint the manifest must be included in")
    v.add_argument("--log-key", help="the log's public key (PEM or verifier key)")
    v.add_argument("--proof", help="inclusion proof JSON (default: derived from the local log)")
    v.add_argument("--old-checkpoint", help="an earlier checkpoint the new one must be consistent with")
    v.add_argument("--consistency-proof", help="consistency proof JSON (default: from the local log)")
    v.add_argument("--no-card", action="store_true", help="do not record a Decision Card")

    lp = sub.add_parser("log", help="the append-only transparency log").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    a = add(lp, "append", cmd_log_append, "append a file (a manifest by default) to the log")
    a.add_argument("file")
    a.add_argument("--kind", default="evidence.manifest")
    c = add(lp, "checkpoint", cmd_log_checkpoint, "sign a checkpoint (C2SP signed note) of the log head")
    c.add_argument("--key", required=True, help="the log's private key")
    c.add_argument("-o", "--output", help="file to write (default: print)")
    pr = add(lp, "prove", cmd_log_prove, "inclusion proof of a manifest (or --index) in a checkpoint")
    pr.add_argument("manifest", nargs="?")
    pr.add_argument("--index", type=int)
    pr.add_argument("--checkpoint", help="prove against this checkpoint's size (default: current size)")
    pr.add_argument("--log-key", help="check the checkpoint's signature first")
    pr.add_argument("-o", "--output", help="proof file (default: MANIFEST.proof.json)")
    cs = add(lp, "consistency", cmd_log_consistency, "consistency proof between two checkpoints")
    cs.add_argument("old")
    cs.add_argument("new")
    cs.add_argument("-o", "--output")
    add(lp, "verify", cmd_log_verify, "recompute every leaf, node and checkpoint root of the local log")

    cp = sub.add_parser("cards", help="Decision Cards").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    cl = add(cp, "list", cmd_cards_list, "list Decision Cards, newest first")
    cl.add_argument("--kind")
    cl.add_argument("--limit", type=int, default=50)
    sh = add(cp, "show", cmd_cards_show, "show one Decision Card (id or unique prefix)")
    sh.add_argument("id")

    gp = sub.add_parser("guards", help="SpecLive guards over OpenTelemetry traces").add_subparsers(
        dest="sub", required=True, parser_class=_Parser)
    gc = add(gp, "check", cmd_guards_check, "check trace files (OTLP/JSON lines or .pb protobuf) against guards")
    gc.add_argument("traces", nargs="+", metavar="TRACES", help="trace files or folders")
    gc.add_argument("--guards", help="a .guard file or a folder of them (default: the shipped guards)")
    gc.add_argument("--only", action="append", metavar="NAME", help="check only this guard (repeatable)")
    gc.add_argument("--junit", metavar="OUT", help="write a JUnit XML report")
    gc.add_argument("--bundles", metavar="DIR", help="write a repro bundle per violation into DIR")
    gc.add_argument("--max-bundles", type=int, default=20, help="bundles per file at most (default 20)")
    gc.add_argument("--lateness", default="0", help="allowed out-of-orderness, e.g. 500ms (default 0)")
    gc.add_argument("--no-card", action="store_true", help="do not record a Decision Card")
    gr = add(gp, "replay", cmd_guards_replay, "re-run a violation bundle; exit 0 when the same verdict is reached")
    gr.add_argument("bundle")
    gr.add_argument("--no-card", action="store_true", help="do not record a Decision Card")
    gl = add(gp, "list", cmd_guards_list, "list guards (default: the shipped ones)")
    gl.add_argument("--guards")

    d = add(sub, "demo", cmd_demo, "run the evidence flow end to end on the bundled example")
    d.add_argument("-o", "--output", default="maestro-demo", help="folder for the demo's files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except MaestroError as e:
        name = next(c.__name__ for c in type(e).__mro__ if not c.__name__.startswith("_"))
        print(f"maestro: {name}: {e}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        print("maestro: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
