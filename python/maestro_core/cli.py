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

from . import __version__, cards, evidence, keys, tia
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


def _progress(args: argparse.Namespace, desc: str, unit: str = "file") -> Any:
    """A tqdm bar on stderr when it is a terminal; ``None`` otherwise."""
    if args.json or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit=unit, file=sys.stderr, leave=False)

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
        {"name": kp.name, "key_id": kp.key_id, "vkey": kp.vkey, "files": {k: str(p) for k, p in paths.items()}},
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
    if args.kind == "evidence.manifest":
        evidence.read_manifest(args.file)  # refuse to log what is not a manifest
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


# ---------------------------------------------------------------- prompts
def _registry(args: argparse.Namespace) -> Any:
    from .prompts import Registry

    return Registry(store=_store(args))


def _load_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read {what} ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def cmd_prompts_add(args: argparse.Namespace) -> int:
    from .prompts import Genome

    g = Genome.from_dict(_load_json_file(args.file, "genome"))
    rec = _registry(args).add(g, parents=args.parent or (), operator=args.operator)
    _out(args, f"{rec.id}  {rec.cost_tokens} tokens ({rec.tokenizer})  operator {rec.operator}", rec.summary())
    return 0


def cmd_prompts_list(args: argparse.Namespace) -> int:
    recs = _registry(args).list(args.tag, args.limit)
    if args.json:
        print(json.dumps([r.summary() for r in recs], indent=2))
        return 0
    if not recs:
        print("no genomes")
    for r in recs:
        first = r.genome.template.splitlines()[0][:60]
        print(f"{r.id[:15]}  {r.cost_tokens:>5} tok  {r.operator:<12} {','.join(r.genome.tags):<16} {first}")
    return 0


def cmd_prompts_show(args: argparse.Namespace) -> int:
    r = _registry(args).get(args.id)
    if args.json:
        print(json.dumps({**r.summary(), "genome": r.genome.canonical()}, indent=2))
        return 0
    print(f"id        {r.id}\noperator  {r.operator} {json.dumps(dict(r.op_params))}\nparents   "
          f"{', '.join(p[:15] for p in r.parents) or '-'}\ncost      {r.cost_tokens} tokens ({r.tokenizer})\n"
          f"model     {r.genome.model}\ntags      {', '.join(r.genome.tags) or '-'}\nparams    "
          f"{json.dumps(dict(r.genome.params))}\n--- template\n{r.genome.template}")
    return 0


def cmd_prompts_lineage(args: argparse.Namespace) -> int:
    from .prompts import lineage_dot, render_lineage

    g = _registry(args).lineage(args.id, args.descendants, args.depth)
    nodes = [g[i] for i in g.node_indices()]
    edges = [{"parent": g[a]["id"], "child": g[b]["id"], "operator": e["operator"]} for a, b, e in g.weighted_edge_list()]
    if args.output:
        render_lineage(g, args.output)
    if args.json:
        print(json.dumps({"nodes": nodes, "edges": edges, "output": args.output}, indent=2))
    elif args.output:
        print(f"lineage of {nodes[0]['id'][:15]}: {len(nodes)} genomes, {len(edges)} edges -> {args.output}")
    else:
        print(lineage_dot(g), end="")
    return 0


def cmd_prompts_diff(args: argparse.Namespace) -> int:
    print(_registry(args).diff(args.a, args.b))
    return 0


def cmd_prompts_mutate(args: argparse.Namespace) -> int:
    from .prompts import mutate

    reg = _registry(args)
    parents = [reg.get(args.id)] + ([reg.get(args.other)] if args.other else [])
    child, params = mutate([p.genome for p in parents], args.op, args.seed)
    rec = reg.add(child, [p.id for p in parents], args.op, params)
    _out(args, f"{rec.id}  {rec.cost_tokens} tokens  ({args.op} of {', '.join(p.id[:15] for p in parents)})",
         rec.summary())
    return 0


# ---------------------------------------------------------------- tournaments
def _tournament(args: argparse.Namespace) -> Any:
    from .duel import Tournament

    return Tournament.open(_registry(args), args.tournament)


def _t_summary(t: Any) -> dict[str, Any]:
    return {"tournament": t.id, "algorithm": t.duel.algorithm, "arms": t.arms, "incumbent": t.incumbent,
            "steps": t.steps, "duels": t.judged, "best": t.best(), "confidence": round(t.confidence(), 6)}


def cmd_tournament_create(args: argparse.Namespace) -> int:
    from .duel import Tournament

    t = Tournament.create(_registry(args), args.genomes, args.algorithm, args.seed, args.incumbent, args.name)
    _out(args, f"tournament {t.id}: {len(t.arms)} genomes, {t.duel.algorithm}", _t_summary(t))
    return 0


def cmd_tournament_run(args: argparse.Namespace) -> int:
    from .duel import CommandJudge, StopRule

    t = _tournament(args)
    judge = CommandJudge(args.judge, timeout=args.timeout)
    res = t.run(judge, StopRule(delta=args.delta, max_duels=args.max_duels), progress=None)
    _out(args, f"tournament {t.id}: best {res.best[:15]} (confidence {res.confidence:.3f}) after "
         f"{res.judged} judged duels, stopped: {res.stopped}", _t_summary(t) | {"stopped": res.stopped})
    return 0


def cmd_tournament_vote(args: argparse.Namespace) -> int:
    t = _tournament(args)
    n = t.apply_votes(args.votes)
    _out(args, f"tournament {t.id}: {n['recorded']} votes recorded, {n['skipped']} already counted",
         _t_summary(t) | n)
    return 0


def cmd_tournament_show(args: argparse.Namespace) -> int:
    t = _tournament(args)
    t.verify()
    s = _t_summary(t)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"tournament {t.id} ({s['algorithm']}): {s['duels']} judged duels, {s['steps']} steps\n"
          f"best {s['best'][:15]}, confidence {s['confidence']:.3f}; incumbent {t.incumbent[:15]}")
    w = t.duel.wins()
    for i, a in enumerate(t.arms):
        won, lost = int(w[i].sum()), int(w[:, i].sum())
        print(f"  {i:>3} {a[:15]}  won {won:>5}  lost {lost:>5}")
    return 0


def cmd_tournament_promote(args: argparse.Namespace) -> int:
    t = _tournament(args)
    scores = None
    if args.scores:
        raw = _load_json_file(args.scores, "eval scores")
        if not isinstance(raw, dict):
            raise InputError(f"{args.scores}: expected an object of genome id -> score")
        reg = _registry(args)
        scores = {reg.resolve(k): float(v) for k, v in raw.items()}
    card = t.promote(scores, args.min_eval_delta, args.min_cost_cut, args.min_confidence)
    _out(args, f"{card.decision}: {card.metrics['winner'][:15]} (card {card.id})", json.loads(card.to_json()))
    return 0


def cmd_tournament_demo(args: argparse.Namespace) -> int:
    from .prompt_demo import run_prompt_demo

    s = run_prompt_demo(args.output, args.home, seed=args.seed)
    _out(args, (
        f"evolved {s['population']} genomes; {s['arms']} in the tournament\n"
        f"{s['algorithm']}: winner {s['winner'][:15]} after {s['duels']} judged duels ({s['stopped']}, "
        f"confidence {s['confidence']:.3f}); uniform sampling needed {s['uniform_duels']} ({s['uniform_stopped']})\n"
        f"eval (MRR, BM25): {s['eval_incumbent']:.4f} -> {s['eval_winner']:.4f} ({s['eval_delta']:+.4f}); "
        f"cost {s['cost_incumbent']} -> {s['cost_winner']} tokens (-{s['cost_cut']:.1%}, {s['tokenizer']})\n"
        f"decision card {s['card']}: {s['decision']}; lineage: {', '.join(s['lineage'])}"), s)
    return 0 if s["target_met"] else 1


# ---------------------------------------------------------------- policy
def cmd_policy_mutate(args: argparse.Namespace) -> int:
    from . import policy

    ps = policy.load(args.path, args.data or ())
    decisions: list[policy.Decision] = []
    skipped_lines: list[policy.Skipped] = []
    if args.decisions:
        decisions, skipped_lines = policy.load_decisions(args.decisions, args.query)
    rep = policy.mutate(
        ps, decisions, threads=args.threads, timeout_ms=args.timeout_ms, equivalence_samples=args.samples,
        operators=args.operators.split(",") if args.operators else None, max_mutants=args.max_mutants,
        incremental=not args.no_incremental, home=args.home, progress=_progress(args, "mutants", "mutant"),
    )
    rep.skipped[:0] = skipped_lines
    if args.sarif:
        write_text(args.sarif, json.dumps(policy.sarif(rep), indent=2))
    _out(args, rep.summary() + f"\ndecision card {rep.card}" + (f"\nSARIF -> {args.sarif}" if args.sarif else ""),
         rep.to_dict())
    if args.min_score is not None and (rep.score or 0.0) < args.min_score:
        if not args.json:
            print(f"maestro: score below --min-score {args.min_score:.0%}", file=sys.stderr)
        return 1
    return 0


def cmd_policy_tune(args: argparse.Namespace) -> int:
    from . import policy

    ps = policy.load(args.path, args.data or ())
    events, skipped = policy.load_decision_log(args.log)
    cut = int(len(events) * args.history)
    tuner = policy.Tuner(ps, home=args.home, seed=args.seed)
    res = tuner.replay(events[:cut], events[cut:])
    human = [
        f"{res.candidates} candidate variants; admitted: {res.admitted.diff if res.admitted else 'none'}",
        f"noisy-deny rate on the {res.live_decisions} live decisions: {res.noisy_rate_before:.1%} -> {res.noisy_rate_after:.1%}",
        f"false allows: {res.false_allows}; rollbacks: {len(res.rolled_back)}",
        *[f"  {e}" for e in res.events],
        *[f"  skipped {s.what}: {s.reason}" for s in skipped],
        f"decision cards: {', '.join(res.cards) or 'none'}",
    ]
    data = res.to_dict()
    data["skipped"] = [{"what": s.what, "reason": s.reason} for s in skipped]
    _out(args, "\n".join(human), data)
    return 0


# ---------------------------------------------------------------- attribute
ATTRIBUTE_HELP = """\
table format (CSV, or parquet with the same columns): a header, then one row per
measured coalition (the players present in it) and the KPI measured for it.
  player columns   a,b,c,value      one 0/1 column per player, named by its header,
                   0,0,0,12.5       plus the value column (--value-column)
                   1,0,0,13.0
  mask column      mask,value       mask: n characters 0/1, character i = player i
                   000,12.5         (names from --names, default p0,p1,...)
                   100,13.0
With all 2^n coalitions the values are exact; with fewer, the exact method names a
missing coalition.

--command 'CMD {mask}' runs CMD once per coalition ({mask} becomes e.g. 0110,
{players} the quoted, comma-separated names present); the last line it prints
must be a number. Failures, timeouts (--timeout) and garbage are errors (exit 2).
"""


def cmd_attribute(args: argparse.Namespace) -> int:
    from . import shapley as sh

    names = [x.strip() for x in args.names.split(",")] if args.names else None
    if args.table:
        game: sh.Game = sh.read_table(args.table, value_column=args.value_column, names=names)
        subject = args.subject or str(args.table)
        digest = cards.digest_inputs(b"table", Path(args.table).read_bytes())
    else:
        n = args.players if args.players is not None else (len(names) if names else None)
        if n is None:
            raise InputError("--command needs the number of players: --players N or --names a,b,...")
        game = sh.CommandGame(args.command, n, names=names, timeout=args.timeout, jobs=args.jobs)
        subject = args.subject or args.command
        digest = cards.digest_inputs(b"command", args.command.encode(), json.dumps(list(game.names)).encode())
    res = sh.shapley(game, args.method, budget=args.budget, ci_width=args.ci_width,
                     confidence=args.confidence, seed=args.seed)
    ix = sh.interactions(game) if args.interactions else None
    if args.plot:
        res.plot(args.plot, kind=args.plot_kind, top=args.top)
    card = None
    if not args.no_card:
        card = _record(args, res.card(subject, inputs_digest=digest, evidence=str(args.plot) if args.plot else None))
    human = res.summary(top=args.top)
    if ix is not None:
        human += "\nstrongest pairwise interactions:\n" + "\n".join(
            f"  {a} × {b}: {x:+.6g}" for a, b, x in ix.pairs(min(args.top, 5)))
    if args.plot:
        human += f"\nplot written to {args.plot}"
    if card is not None:
        human += f"\ndecision card {card.id}: {card.decision}"
    data = res.to_dict()
    data.update({
        "card": card.id if card else None,
        "plot": args.plot,
        "interactions": ix.matrix.tolist() if ix is not None else None,
    })
    _out(args, human, data)
    return 0


# ---------------------------------------------------------------- tia
def _index(args: argparse.Namespace) -> tia.Index:
    return tia.Index(args.repo, args.home)


def cmd_tia_index(args: argparse.Namespace) -> int:
    idx = _index(args)
    rep = idx.index(history=args.history)
    rate = rep["parsed"] / rep["seconds"] if rep["seconds"] > 0 else 0.0
    _out(args, f"indexed {rep['files']} Python files ({rep['parsed']} parsed, {rate:.0f} files/s), "
         f"{rep['new_commits']} new commits, in {idx.home}"
         + "".join(f"\n  warning: {e}" for e in rep["errors"])
         + ("\n  warning: shallow clone, co-change history is partial" if rep["shallow"] else ""),
         {**rep, "home": str(idx.home)})
    return 0


def cmd_tia_select(args: argparse.Namespace) -> int:
    idx = _index(args)
    budget = tia.parse_duration(args.budget) if args.budget else float("inf")
    safe = args.safe or args.budget is None
    threshold = args.threshold if args.threshold is not None else (tia.SAFE_THRESHOLD if safe else float("inf"))
    sel = idx.select(args.base, budget=budget, threshold=threshold, k=args.k, safe=safe)
    card = tia.record_selection(sel, home=idx.home)
    lines = [sel.summary()] + [f"  warning: {w}" for w in sel.warnings]
    if not sel.run_all:
        lines += ["  " + d.explain() for d in sel.decisions if d.selected]
        cut = [d for d in sel.decisions if not d.selected and d.cost is not None]
        lines += ["  " + d.explain() for d in cut]
    lines.append(f"decision card {card.id}")
    _out(args, "\n".join(lines), {**sel.to_dict(), "card": card.id})
    return 0


def cmd_tia_explain(args: argparse.Namespace) -> int:
    idx = _index(args)
    d = tia.explain(idx, args.test, args.base, args.k)
    _out(args, d.explain(), d.to_dict())
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

    pp = sub.add_parser("prompts", help="the Prompt Genome registry").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    pa = add(pp, "add", cmd_prompts_add, "register a genome from a JSON file (template, params, model, output_schema, tags)")
    pa.add_argument("file")
    pa.add_argument("--parent", action="append", help="a parent genome id (repeatable)")
    pa.add_argument("--operator", default="seed", help="the operator that produced it (default: seed)")
    pl = add(pp, "list", cmd_prompts_list, "list genomes, newest first")
    pl.add_argument("--tag")
    pl.add_argument("--limit", type=int, default=50)
    ps = add(pp, "show", cmd_prompts_show, "show one genome (id or unique prefix)")
    ps.add_argument("id")
    pn = add(pp, "lineage", cmd_prompts_lineage, "ancestors (or descendants) of a genome: DOT on stdout, or a .dot/.svg/.png file")
    pn.add_argument("id")
    pn.add_argument("--descendants", action="store_true")
    pn.add_argument("--depth", type=int, default=1_000_000)
    pn.add_argument("-o", "--output", help="picture to write (.dot, .svg or .png)")
    pd = add(pp, "diff", cmd_prompts_diff, "unified diff of two genomes")
    pd.add_argument("a")
    pd.add_argument("b")
    pm = add(pp, "mutate", cmd_prompts_mutate, "derive and register a genome with an evolution operator")
    pm.add_argument("id")
    pm.add_argument("--op", required=True, choices=["insert", "delete", "perturb", "shorten", "crossover", "section_swap"])
    pm.add_argument("--with", dest="other", help="second parent (crossover, section_swap)")
    pm.add_argument("--seed", type=int, default=0)

    tp = sub.add_parser("tournament", help="dueling-bandit tournaments between genomes").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    tc = add(tp, "create", cmd_tournament_create, "start a tournament between registered genomes")
    tc.add_argument("genomes", nargs="+")
    tc.add_argument("--algorithm", default="dts", choices=["rucb", "rmed1", "dts", "ccb", "uniform"])
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--incumbent", help="the genome in production (default: the first)")
    tc.add_argument("--name", help="tournament id (default: derived)")
    tr = add(tp, "run", cmd_tournament_run, "duel with a judge command that prints A, B or a genome id")
    tr.add_argument("tournament")
    tr.add_argument("--judge", required=True, help="command; gets both genomes as JSON on stdin")
    tr.add_argument("--timeout", type=float, default=60.0, help="seconds per judgement")
    tr.add_argument("--max-duels", type=int, default=500)
    tr.add_argument("--delta", type=float, default=0.05, help="stop when the leader wins with probability >= 1 - delta")
    tv = add(tp, "vote", cmd_tournament_vote, "record human votes from a JSON-lines file")
    tv.add_argument("tournament")
    tv.add_argument("votes")
    tsh = add(tp, "show", cmd_tournament_show, "standings of a tournament (and a consistency check)")
    tsh.add_argument("tournament")
    tpr = add(tp, "promote", cmd_tournament_promote, "write the promotion Decision Card for the current winner")
    tpr.add_argument("tournament")
    tpr.add_argument("--scores", help="JSON file of genome id -> eval score")
    tpr.add_argument("--min-eval-delta", type=float, default=0.0)
    tpr.add_argument("--min-cost-cut", type=float, default=0.0, help="fraction, e.g. 0.08")
    tpr.add_argument("--min-confidence", type=float, default=0.95)
    tdm = add(tp, "demo", cmd_tournament_demo, "evolve, duel and promote prompts on the bundled retrieval set")
    tdm.add_argument("-o", "--output", default="maestro-prompt-demo")
    tdm.add_argument("--seed", type=int, default=7)
    pp = sub.add_parser("policy", help="Rego policies: mutation testing and noisy-deny tuning").add_subparsers(
        dest="sub", required=True, parser_class=_Parser)
    mu = add(pp, "mutate", cmd_policy_mutate, "mutation-test Rego policies against their tests and labelled decisions")
    mu.add_argument("path", nargs="+", help="policy files or folders (loaded as opa does)")
    mu.add_argument("--data", action="append", help="extra data file (JSON/YAML), repeatable")
    mu.add_argument("--decisions", help="labelled decisions: JSON lines {input, expected[, query]} or OPA decision log")
    mu.add_argument("--query", help="query for decision lines without one (e.g. data.authz.allow)")
    mu.add_argument("--sarif", help="write surviving mutants as SARIF 2.1.0 to this file")
    mu.add_argument("--threads", type=int, default=0, help="worker threads (0: one per core)")
    mu.add_argument("--timeout-ms", type=int, default=2000, help="deadline per mutant")
    mu.add_argument("--samples", type=int, default=64, help="random inputs per survivor (equivalence check)")
    mu.add_argument("--operators", help="comma-separated operator names (default: all 13)")
    mu.add_argument("--max-mutants", type=int)
    mu.add_argument("--no-incremental", action="store_true", help="ignore verdicts of earlier runs")
    mu.add_argument("--min-score", type=float, help="exit 1 when the score is below this fraction")
    tu = add(pp, "tune", cmd_policy_tune, "quiet noisy denies with a conservative bandit; roll back on any false allow")
    tu.add_argument("path", nargs="+", help="policy files or folders")
    tu.add_argument("--data", action="append")
    tu.add_argument("--log", required=True, help="OPA decision log (JSON lines) with outcome labels")
    tu.add_argument("--history", type=float, default=0.7, help="fraction of the log replayed before admission")
    tu.add_argument("--seed", type=int, default=7)
    at = add(sub, "attribute", cmd_attribute,
             "Shapley attribution of a KPI change to its factors, with confidence intervals")
    at.formatter_class = argparse.RawDescriptionHelpFormatter
    at.epilog = ATTRIBUTE_HELP
    src = at.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="measured coalitions: FILE.csv or FILE.parquet (format below)")
    src.add_argument("--command", help="shell command measuring the KPI of one coalition: 'CMD {mask}'")
    at.add_argument("--players", type=int, help="number of players (with --command)")
    at.add_argument("--names", help="comma-separated player names")
    at.add_argument("--value-column", default="value", help="name of the value column (default: value)")
    at.add_argument("--method", default="auto",
                    choices=["auto", "exact", "permutation", "antithetic", "stratified", "kernel"])
    at.add_argument("--budget", type=int, help="most coalitions to evaluate (sampled methods)")
    at.add_argument("--ci-width", type=float, help="stop when every confidence interval is this narrow")
    at.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    at.add_argument("--seed", type=int, default=0)
    at.add_argument("--timeout", type=float, default=60.0, help="seconds per command run (default 60)")
    at.add_argument("--jobs", type=int, default=1, help="command runs in parallel (default 1)")
    at.add_argument("--interactions", action="store_true", help="also compute pairwise interaction indices")
    at.add_argument("--plot", help="write a plot: OUT.png, OUT.svg or OUT.pdf")
    at.add_argument("--plot-kind", default="waterfall", choices=["waterfall", "bar"])
    at.add_argument("--top", type=int, default=10, help="contributors shown (default 10)")
    at.add_argument("--subject", help="subject of the Decision Card (default: the table or command)")
    at.add_argument("--no-card", action="store_true", help="do not record a Decision Card")
    tp = sub.add_parser("tia", help="test impact analysis").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    ti = add(tp, "index", cmd_tia_index, "index the repository (files, symbols, imports, co-change)")
    ti.add_argument("--repo", default=".", help="a folder inside the git work tree")
    ti.add_argument("--history", type=int, default=300, help="commits of co-change history")
    ts = add(tp, "select", cmd_tia_select, "select the tests the changes against BASE need, with reasons")
    ts.add_argument("--repo", default=".")
    ts.add_argument("--base", required=True, help="git ref to diff the work tree against")
    ts.add_argument("--budget", help="time budget (60, 60s, 2m); without it every test with a path is kept")
    ts.add_argument("--threshold", type=float, default=None,
                    help="max path cost (default: 7 in safe mode, i.e. dependency paths only; none with --budget)")
    ts.add_argument("-k", type=int, default=3, help="max hyperedges on a path")
    ts.add_argument("--safe", action="store_true", help="every test with a path within k (ignores --budget)")
    te = add(tp, "explain", cmd_tia_explain, "why a test is (or is not) needed for the changes against BASE")
    te.add_argument("test")
    te.add_argument("--repo", default=".")
    te.add_argument("--base", default="HEAD")
    te.add_argument("-k", type=int, default=3)
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
