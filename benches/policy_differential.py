"""Differential check: regorus (the engine) vs the real OPA on every policy
and test case of the Rego corpus.

Run: .venv/bin/python benches/policy_differential.py [--json OUT]

OPA 1.x (embedded by opa-golib-python-bindings) parses Rego v1 only, so v0
modules (the Kata policies) are rewritten to v1 first (``if`` before bodies,
``contains`` in partial-set heads) and the rewrite is reported. Values are
compared as JSON; sets are compared without order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from policy_common import agree, canon, corpus, opa_eval

from maestro_core import policy


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write the full result here")
    args = ap.parse_args()
    rows = []
    total = agreed = 0
    for cp in corpus():
        ps = policy.load(cp.paths, cp.data)
        ev = ps.evaluator()
        ours = []
        for d in cp.decisions:
            try:
                v = ev.eval(d.query, d.input)
                ours.append({"undefined": True} if v is None else v)
            except Exception as e:  # noqa: BLE001 - recorded as an outcome
                ours.append({"error": type(e).__name__})
        theirs, note = opa_eval(cp)
        diffs = []
        for i, (a, b, d) in enumerate(zip(ours, theirs, cp.decisions)):
            total += 1
            if agree(a, b):
                agreed += 1
            else:
                diffs.append({"case": i + 1, "query": d.query, "regorus": canon(a)[:200], "opa": canon(b)[:200]})
        rows.append({"policy": cp.name, "cases": len(cp.decisions), "agree": len(cp.decisions) - len(diffs),
                     "note": note, "disagreements": diffs})
        print(f"{cp.name:45} {len(cp.decisions) - len(diffs):4}/{len(cp.decisions):<4} agree"
              + (f"  ({note})" if note else ""))
        for x in diffs[:5]:
            print(f"    case {x['case']} {x['query']}: regorus {x['regorus'][:90]} | opa {x['opa'][:90]}")
    kinds = Counter("error" if '"error"' in x["opa"] else "value" for r in rows for x in r["disagreements"])
    print(f"total: {agreed}/{total} cases agree over {len(rows)} policies; disagreements by kind: {dict(kinds)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "agreed": agreed, "total": total}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
