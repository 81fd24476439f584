"""Mutation testing and the regorus-vs-OPA differential on the Gatekeeper
library (a snapshot fetched outside this repository; nothing of it is kept).

Run: .venv/bin/python benches/policy_gatekeeper.py SNAPSHOT [--json OUT] [--report OUT.md] [--only NAME]

SNAPSHOT is the fetched repository: a git directory (bare, as the fetch tool
leaves it) or a checked-out work tree of open-policy-agent/gatekeeper-library.
Its ``src/<category>/<policy>/`` folders hold each policy as plain Rego
(``src.rego`` plus the ``lib_*.rego`` it imports) with its own tests
(``src_test.rego``); the ``template.yaml`` files under ``library/`` embed the
same Rego in YAML and are generated from these folders, so the folders are
what we measure. Every folder with a ``*_test.rego`` file is one policy.

For each policy:

* mutation testing with the policy's own ``test_`` rules only (no decision
  set), all 13 operators, equivalence check on ``--equivalence-samples``
  random inputs (32 by default); the table gives mutants, stillborn, likely
  equivalent (each reached by some random input: the flag requires it),
  killed (timeouts and errors included, listed apart), survived (with a
  killing test / not reached by any random input), the tool's score and the
  lower bound that counts the likely-equivalent ones as survived;
* the survivors of policies scoring below 85%, each with the input that
  kills it and a ready-to-paste test (input and expected outcome), or the
  reason none was found; ``--report`` writes them all as Markdown;
* the differential: every ``test_`` rule evaluated by regorus and by the real
  OPA (opa-golib-python-bindings, OPA 1.x; the v0 modules are rewritten to v1
  first, as ``opa`` 1.x needs), pass or fail compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from maestro_core import policy
from maestro_core.errors import MaestroError

REPO = "open-policy-agent/gatekeeper-library"


def snapshot_tree(snapshot: Path, into: Path) -> tuple[Path, str]:
    """The ``src`` folder of the snapshot (extracted when it is a git dir) and its commit."""
    if (snapshot / "src").is_dir():
        commit = subprocess.run(["git", "-C", str(snapshot), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "(not a git work tree)"
        return snapshot / "src", commit
    git = ["git", "--git-dir", str(snapshot)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    tar = subprocess.run([*git, "archive", commit, "src", "LICENSE"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into / "src", commit


def policies(src: Path) -> list[tuple[str, Path]]:
    """``(category/name, folder)`` for every folder holding a ``*_test.rego``."""
    out = []
    for d in sorted({p.parent for p in src.rglob("*_test.rego")}):
        out.append((str(d.relative_to(src)), d))
    return out


def test_outcomes_regorus(ps: policy.PolicySet) -> dict[str, str]:
    ev = ps.evaluator(timeout_ms=10_000)
    out = {}
    for t in ps.tests():
        try:
            out[t] = "pass" if ev.eval(t) is True else "fail"
        except Exception as e:  # noqa: BLE001 - recorded as an outcome
            out[t] = f"error: {type(e).__name__}"
    return out


def test_outcomes_opa(ps: policy.PolicySet) -> tuple[dict[str, str], str | None]:
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

    try:
        v1 = ps.to_v1()
    except MaestroError as e:
        return {t: "not run" for t in ps.tests()}, f"our v0-to-v1 rewrite failed: {e}"[:300]
    out: dict[str, str] = {}
    with OpaEngine() as eng:
        try:
            for m in v1.modules:
                eng.add_policy(m.path, m.text)
            if v1.data:
                eng.add_data(v1.data)
        except OpaError as e:
            return {t: "error: load" for t in ps.tests()}, f"{e.code}: {e.message}"[:300]
        for t in ps.tests():
            try:
                out[t] = "pass" if eng.eval_document(t[len("data."):], {}) is True else "fail"
            except OpaUndefinedError:
                out[t] = "fail"
            except OpaError as e:
                out[t] = f"error: {e.code}"
    return out, None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshot", type=Path, help="the fetched gatekeeper-library (git dir or work tree)")
    ap.add_argument("--json")
    ap.add_argument("--only", help="run the policies whose name contains this")
    ap.add_argument("--no-opa", action="store_true", help="skip the differential")
    ap.add_argument("--equivalence-samples", type=int, default=32)
    ap.add_argument("--report", help="write the per-policy table and every survivor of the policies below "
                                     "85%% (with its killing test) as Markdown")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as home:
        src, commit = snapshot_tree(args.snapshot, Path(tmp))
        lic = (src.parent / "LICENSE")
        licence = lic.read_text().splitlines()[1].strip() if lic.is_file() else "(LICENSE not found)"
        print(f"{REPO} @ {commit} ({licence})")
        tot = {"generated": 0, "killed": 0, "survived": 0, "stillborn": 0, "equivalent": 0, "timeout": 0, "error": 0}
        diff_total = diff_agree = 0
        t_all = time.perf_counter()
        for name, d in policies(src):
            if args.only and args.only not in name:
                continue
            t = time.perf_counter()
            try:
                ps = policy.load(d)
                r = policy.mutate(ps, (), record_card=False, incremental=False, home=home,
                                  equivalence_samples=args.equivalence_samples)
            except MaestroError as e:
                # regorus cannot load the original: reported, not scored.
                reason = f"{type(e).__name__}: {e}".replace(str(d) + "/", "")
                print(f"{name:52} not loaded by regorus: {reason[:160]}", flush=True)
                rows.append({"policy": name, "not_loaded": reason})
                continue
            dt = time.perf_counter() - t
            c = r.counts
            for k in tot:
                tot[k] += c[k]
            bad_base = [t for t, o in r.tests if o != "pass"]
            row: dict[str, Any] = {
                "policy": name, "modules": [Path(m.path).name for m in ps.modules if not m.is_test],
                "tests": len(r.tests), "failing_tests": bad_base, "counts": c, "score": r.score, "seconds": dt,
                "survivors": [{"id": m.id, "where": f"{Path(m.file).name}:{m.line}:{m.col}", "diff": m.diff,
                               "operator": m.operator, "detail": m.detail, "reached": m.reached,
                               "input": m.killing_input, "test": m.suggested_test}
                              for m in r.survivors],
                "skipped": [f"{s.what}: {s.reason}" for s in r.skipped],
            }
            if not args.no_opa:
                ours = test_outcomes_regorus(ps)
                theirs, load_err = test_outcomes_opa(ps)
                dis = [{"test": k, "regorus": ours[k], "opa": theirs.get(k)} for k in ours if ours[k] != theirs.get(k)]
                diff_total += len(ours)
                diff_agree += len(ours) - len(dis)
                row["differential"] = {"tests": len(ours), "agree": len(ours) - len(dis), "disagreements": dis,
                                       "opa_load_error": load_err}
            rows.append(row)
            score = "n/a" if r.score is None else f"{r.score:.0%}"
            extra = f"  opa agree {row['differential']['agree']}/{row['differential']['tests']}" if not args.no_opa else ""
            print(f"{name:52} {score:>4}  gen {c['generated']:4} still {c['stillborn']:3} equiv {c['equivalent']:3} "
                  f"killed {c['killed'] + c['timeout'] + c['error']:4} surv {c['survived']:3}  {dt:5.1f}s{extra}", flush=True)
            if bad_base:
                print(f"    baseline: {len(bad_base)} of {len(r.tests)} tests do not pass: {bad_base[:3]}")
        elapsed = time.perf_counter() - t_all
        denom = tot["generated"] - tot["stillborn"] - tot["equivalent"]
        det = tot["killed"] + tot["timeout"] + tot["error"]
        print(f"total: {len(rows)} policies, {tot['generated']} mutants, score {det / max(denom, 1):.1%} "
              f"({det}/{denom}); {elapsed:.0f}s")
        if not args.no_opa:
            print(f"differential: {diff_agree}/{diff_total} test outcomes agree")
        low = det / max(tot["generated"] - tot["stillborn"], 1)
        scored = [r for r in rows if "counts" in r]
        below = [r for r in scored if r["score"] is not None and r["score"] < 0.85]
        below_low = [r for r in scored if _lower(r) is not None and (_lower(r) or 0.0) < 0.85]
        surv = [s for r in scored for s in r["survivors"]]
        with_test = sum(1 for s in surv if s["test"])
        print(f"lower bound (likely equivalent counted as survived): {low:.1%}; policies below 85%: {len(below)} by "
              f"the tool's score, {len(below_low)} by the lower bound; survivors: {len(surv)}, {with_test} with a "
              f"killing test, {sum(1 for s in surv if s['reached'] == 0)} not reached by any random input")
        if args.json:
            Path(args.json).write_text(json.dumps({"repo": REPO, "commit": commit, "licence": licence, "rows": rows,
                                                   "totals": tot, "equivalence_samples": args.equivalence_samples},
                                                  indent=2))
        if args.report:
            Path(args.report).write_text(report_md(rows, tot, commit, args.equivalence_samples))
    return 0


def _lower(row: dict[str, Any]) -> float | None:
    """``killed / (generated - stillborn)``: likely-equivalent mutants counted as survived."""
    c = row["counts"]
    denom = c["generated"] - c["stillborn"]
    return (c["killed"] + c["timeout"] + c["error"]) / denom if denom else None


def report_md(rows: list[dict[str, Any]], tot: dict[str, int], commit: str, samples: int) -> str:
    """The per-policy table and, for each policy below 85%, every survivor with its killing test."""
    det = tot["killed"] + tot["timeout"] + tot["error"]
    out = [f"# Mutation testing of {REPO} @ {commit}", "",
           f"Equivalence check on {samples} random inputs per survivor. Score: the tool's, "
           "`killed / (generated - stillborn - equivalent)`; lower bound: likely-equivalent mutants counted as "
           "survived. A mutant is flagged likely equivalent only if some random input reaches its line.", "",
           "| policy | mutants | stillborn | likely equivalent (reached) | killed | survived: with a killing test "
           "/ not reached | score | lower bound |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "counts" not in r:
            out.append(f"| {r['policy']} | — | — | — | — | — | not loaded by regorus | |")
            continue
        c = r["counts"]
        s = r["survivors"]
        wt = sum(1 for x in s if x["test"])
        nr = sum(1 for x in s if x["reached"] == 0)
        score = "n/a" if r["score"] is None else f"{r['score']:.0%}"
        low = _lower(r)
        out.append(f"| {r['policy']} | {c['generated']} | {c['stillborn']} | {c['equivalent']} | "
                   f"{c['killed'] + c['timeout'] + c['error']} | {c['survived']}: {wt} / {nr} | {score} | "
                   f"{'n/a' if low is None else f'{low:.0%}'} |")
    denom = tot["generated"] - tot["stillborn"] - tot["equivalent"]
    out.append(f"| **total** | {tot['generated']} | {tot['stillborn']} | {tot['equivalent']} | {det} | "
               f"{tot['survived']} | {det / max(denom, 1):.1%} | "
               f"{det / max(tot['generated'] - tot['stillborn'], 1):.1%} |")
    for r in rows:
        if "counts" not in r or r["score"] is None or r["score"] >= 0.85:
            continue
        out += ["", f"## {r['policy']} ({r['score']:.0%}): {len(r['survivors'])} survivors", ""]
        for x in r["survivors"]:
            out.append(f"- `{x['where']}` [{x['operator']}] {x['diff']}")
            if x["test"]:
                out += ["", "  ```rego", *("  " + line for line in x["test"].splitlines()), "  ```", ""]
            else:
                out.append(f"  ({x['detail']})")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
