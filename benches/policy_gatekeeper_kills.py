"""Check the suggested killing tests of a Gatekeeper run: append each policy's
suggested tests to a copy of its ``src_test.rego``, rerun the mutation
analysis (no equivalence check) and count the targeted mutants now detected.

Run: .venv/bin/python benches/policy_gatekeeper_kills.py SNAPSHOT RUN.json
where RUN.json is written by ``policy_gatekeeper.py SNAPSHOT --json RUN.json``.
A test that regorus does not parse on its own is counted apart, not added.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from maestro_core import policy
from maestro_core.errors import MaestroError

sys.path.insert(0, str(Path(__file__).parent))
from policy_gatekeeper import snapshot_tree  # noqa: E402


def parses(test: str) -> bool:
    try:
        policy.PolicySet.from_texts({"a_test.rego": "package p\n\n" + test + "\n"})
    except MaestroError:
        return False
    return True


def main() -> int:
    snapshot, run = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    tot = detected = killed = unparsed = 0
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        src, _ = snapshot_tree(snapshot, Path(tmp) / "snap")
        for r in run["rows"]:
            tests = [s for s in r.get("survivors", []) if s["test"]]
            ok = [s for s in tests if parses(s["test"])]
            unparsed += len(tests) - len(ok)
            if not ok:
                continue
            dst = Path(tmp) / "copy" / r["policy"]
            shutil.copytree(src / r["policy"], dst)
            tf = next(dst.glob("*_test.rego"))
            tf.write_text(tf.read_text() + "\n\n" + "\n\n".join(s["test"] for s in ok) + "\n")
            rep = policy.mutate(policy.load(dst), record_card=False, incremental=False, equivalence_samples=0)
            status = {m.id: m.status for m in rep.mutants}
            for s in ok:
                tot += 1
                st = status.get(s["id"])
                killed += st == "killed"
                if st in ("killed", "error", "timeout"):
                    detected += 1
                else:
                    missed.append((r["policy"], s["id"], st, s["diff"][:80]))
    print(f"{detected}/{tot} suggested tests detect their mutant once added ({killed} killed, "
          f"{detected - killed} by an error in the new test, counted as detected); "
          f"{unparsed} do not parse with regorus on their own and were not added")
    for m in missed:
        print("  not detected:", m)
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
