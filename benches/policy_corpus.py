"""Mutation score per corpus policy, with survivors and the tests that kill them.

Run: .venv/bin/python benches/policy_corpus.py [--kata-max N] [--json OUT]

The Kata policies (1,600-2,900 lines each) are run on their first N mutants
in source order (default 120) to keep the run within minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from policy_common import corpus

from maestro_core import policy


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kata-max", type=int, default=120)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for cp in corpus():
            ps = policy.load(cp.paths, cp.data)
            mx = args.kata_max if cp.name.startswith("kata/") else None
            t = time.perf_counter()
            r = policy.mutate(ps, cp.decisions, home=home, record_card=False, max_mutants=mx, incremental=False)
            dt = time.perf_counter() - t
            c = r.counts
            score = "n/a" if r.score is None else f"{r.score:.0%}"
            print(f"{cp.name:38} score {score:>4}  gen {c['generated']:4} killed {c['killed']:4} surv {c['survived']:3} "
                  f"still {c['stillborn']:3} equiv {c['equivalent']:3} tmo {c['timeout']} err {c['error']}  {dt:.1f}s"
                  + (f" (first {mx} mutants)" if mx else ""))
            if r.score is not None and r.score < 0.85:
                for m in r.survivors[:3]:
                    print(f"    survivor {m.diff}")
                    if m.suggested_test:
                        print("      killed by: " + m.suggested_test.replace("\n", " ")[:200])
            rows.append({"policy": cp.name, "score": r.score, "counts": c, "seconds": dt, "sampled": mx,
                         "survivors": [{"diff": m.diff, "test": m.suggested_test} for m in r.survivors]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
