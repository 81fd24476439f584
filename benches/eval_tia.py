"""Replay consecutive commits of a real project: tests selected vs all, test
time saved, and escapes (full-suite failures the selection missed), for real
commits and for mutants injected into each commit's changed lines; the same
commits with pytest-testmon for comparison.

    python benches/eval_tia.py CHECKOUT [--commits 30] [--mutants 2] [--out results.json]

CHECKOUT is a git checkout of the project (it is cloned into a temporary
folder; the checkout itself is never modified). The project's tests must run
with this interpreter's pytest (install the project's test dependencies).
Nothing of the project is stored here.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from maestro_core.tia import SAFE_THRESHOLD, Index, changed_lines

PY = sys.executable


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


TESTS = "tests"


def pytest(cwd: Path, home: Path, *args: str, testmon: Path | None = None) -> tuple[float, str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAESTRO_HOME", "PYTEST_ADDOPTS")}
    if testmon is not None:
        env["TESTMON_DATAFILE"] = str(testmon / ".testmondata")
    t0 = time.perf_counter()
    # testmon needs the cache provider (its --lf handling)
    no_cache = ["-p", "no:cacheprovider"] if testmon is None else []
    p = subprocess.run([PY, "-m", "pytest", "-q", *no_cache, "-p", "no:randomly",
                        f"--maestro-home={home}", *args, TESTS], cwd=cwd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, p.stdout + p.stderr, p.returncode


def outcomes(home: Path) -> dict[str, tuple[float, str]]:
    db = sqlite3.connect(home / "maestro.db")
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT nodeid, duration, outcome FROM tia_tests")}
    finally:
        db.close()


def full_run(work: Path, home: Path) -> tuple[float, dict[str, tuple[float, str]]]:
    """The full suite with --maestro-collect into a scratch copy of the index;
    returns wall time and {nodeid: (duration, outcome)} of this run only."""
    scratch = Path(tempfile.mkdtemp(prefix="tia-full-"))
    try:
        if (home / "maestro.db").exists():
            src = sqlite3.connect(home / "maestro.db")
            db = sqlite3.connect(scratch / "maestro.db")
            src.backup(db)  # consistent copy, WAL included
            src.close()
            db.execute("DELETE FROM tia_tests")
            db.commit()
            db.close()
        wall, _out, _rc = pytest(work, scratch, "--maestro-collect")
        return wall, outcomes(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


MUTATIONS = [
    (r"(?<![=!<>])==(?!=)", "!="), (r"!=", "=="), (r"(?<![<>=])<(?![<=])", ">="), (r"(?<![<>=-])>(?![>=])", "<="),
    (r"<=", ">"), (r">=", "<"), (r"\bTrue\b", "False"), (r"\bFalse\b", "True"), (r"\band\b", "or"), (r"\bor\b", "and"),
    (r"(?<![+\-*/])\+(?![+=])", "-"), (r"(?<![+\-*/])-(?![-=>])", "+"), (r"\bis not\b", "is"), (r"\bis\b(?! not)", "is not"),
    (r"\breturn (?!None\b)(.+)$", r"return None"), (r"\b(\d+)\b", "MUTNUM"), (r"\bnot ", ""), (r"\bif (.+):$", r"if not (\1):"),
]


def code_lines(text: str) -> set[int]:
    """Lines holding statements (not docstrings, comments or blank lines)."""
    tree = ast.parse(text)
    doc: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Expr) and isinstance(getattr(n, "value", None), ast.Constant) and isinstance(n.value.value, str):
            doc.update(range(n.lineno, (n.end_lineno or n.lineno) + 1))
    lines = text.splitlines()
    return {i for i in range(1, len(lines) + 1)
            if lines[i - 1].strip() and not lines[i - 1].strip().startswith("#") and i not in doc}


def mutants(work: Path, base: str, rng: random.Random, want: int) -> list[tuple[str, int, str, str]]:
    """Up to ``want`` mutants ``(file, line, old, new)`` on changed, non-test code lines."""
    cands = []
    for ch in changed_lines(work, base):
        p = ch.new_path
        if not p or not p.endswith(".py") or "test" in Path(p).name or p.startswith(("tests/", "docs/")):
            continue
        text = (work / p).read_text()
        try:
            ok = code_lines(text)
        except SyntaxError:
            continue
        src = text.splitlines()
        for ln in sorted(ch.new_lines & ok):
            line = src[ln - 1]
            for pat, rep in MUTATIONS:
                if re.search(pat, line):
                    if rep == "MUTNUM":
                        new = re.sub(pat, lambda m: str(int(m.group(1)) + 1), line, count=1)
                    else:
                        new = re.sub(pat, rep, line, count=1)
                    if new != line:
                        cand = src.copy()
                        cand[ln - 1] = new
                        try:
                            ast.parse("\n".join(cand))
                        except SyntaxError:
                            continue
                        cands.append((p, ln, line, new))
    rng.shuffle(cands)
    seen, out = set(), []
    for c in cands:  # at most one mutant per line
        if (c[0], c[1]) not in seen:
            seen.add((c[0], c[1]))
            out.append(c)
        if len(out) == want:
            break
    return out


def apply(work: Path, m: tuple[str, int, str, str]) -> str:
    f = work / m[0]
    orig = f.read_text()
    lines = orig.split("\n")
    lines[m[1] - 1] = m[3]
    f.write_text("\n".join(lines))
    return orig


def testmon_run(work: Path, home: Path, tm: Path) -> tuple[float, set[str]]:
    """``pytest --testmon`` with its data file in ``tm``; wall time and the test ids it ran."""
    wall, out, _rc = pytest(work, home, "--testmon", "-rA", testmon=tm)
    ran = set(re.findall(r"^(?:PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+::\S+)", out, re.M))
    return wall, ran


def resummarize(path: str) -> None:
    """Recompute the summary of a saved ``--out`` file."""
    data = json.loads(Path(path).read_text())
    print(json.dumps(summarize(data["rows"]), indent=2))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        resummarize(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout")
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--mutants", type=int, default=2)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--tests", default="tests", help="test folder inside the project")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    global TESTS
    TESTS = a.tests
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="tia-eval-"))
    work, home, tm, scratch = tmp / "work", tmp / "home", tmp / "testmon", tmp / "scratch"
    tm.mkdir()
    sh(tmp, "git", "clone", "-q", os.path.abspath(a.checkout), str(work))
    shas = sh(work, "git", "rev-list", "--first-parent", f"-n{a.commits + 1}", "HEAD").split()[::-1]
    sh(work, "git", "checkout", "-q", shas[0])
    Index(work, home).close()
    pytest(work, home, "--maestro-collect")  # index at the first parent
    pytest(work, scratch, "--testmon", testmon=tm)  # testmon's database, same point
    rows: list[dict[str, Any]] = []
    for p, c in zip(shas, shas[1:]):
        sh(work, "git", "checkout", "-q", c)
        subj = sh(work, "git", "log", "-1", "--format=%s", c).strip()
        idx = Index(work, home)
        sels = {}
        for name, kw in (("safe", {"safe": True, "k": a.k, "threshold": SAFE_THRESHOLD}),
                         ("cover_only", {"safe": True, "k": 1})):
            sel = idx.select(p, **kw)  # type: ignore[arg-type]
            sels[name] = (sel, set(sel.selected) if not sel.run_all else None)
        t_sel = sels["safe"][0].elapsed
        # real run with the plugin (wall time), then the full suite (truth + new index)
        wall_sel, out_sel, rc_sel = pytest(work, home, f"--maestro-select={p}", f"--maestro-k={a.k}")
        ms = mutants(work, p, rng, a.mutants)
        mut_rows = []
        for m in ms:
            orig = apply(work, m)
            try:
                chs = changed_lines(work, p)
                msel = idx.select(p, safe=True, k=a.k, changes=chs, threshold=SAFE_THRESHOLD)
                mset = None if msel.run_all else set(msel.selected)
                shutil.copytree(tm, tmp / "tm-mut", dirs_exist_ok=True)
                _w, tm_ran = testmon_run(work, scratch, tmp / "tm-mut")
                shutil.rmtree(tmp / "tm-mut", ignore_errors=True)
                _wf, mres = full_run(work, home)
            finally:
                (work / m[0]).write_text(orig)
            mut_rows.append({"file": m[0], "line": m[1], "old": m[2].strip(), "new": m[3].strip(), "res": mres,
                             "sel": mset, "tm": tm_ran})
        wall_tm, tm_ran_c = testmon_run(work, scratch, tm)
        # the full suite at c: the truth, and the index for the next commit (as CI would collect)
        idx.db.execute("DELETE FROM tia_tests")
        idx.db.commit()
        idx.close()
        wall_full, _o, rc_full = pytest(work, home, "--maestro-collect")
        res = outcomes(home)
        all_t = sum(d for d, _ in res.values())
        new_tests = {t for t in res if t not in {d.nodeid for d in sels["safe"][0].decisions}}

        def stats(chosen: set[str] | None, ran_new: bool = True) -> dict[str, Any]:
            run = set(res) if chosen is None else (chosen | (new_tests if ran_new else set())) & set(res)
            fails = {t for t, (_d, o) in res.items() if o == "failed"}
            return {"selected": len(run), "time": sum(res[t][0] for t in run), "escapes": sorted(fails - run),
                    "fallback": chosen is None}

        def mstats(chosen_of: Any) -> dict[str, int]:
            killed = esc = missed_tests = 0
            base_fail = {t for t, (_d, o) in res.items() if o == "failed"}
            for mr in mut_rows:
                f = {t for t, (_d, o) in mr["res"].items() if o == "failed"} - base_fail
                if not f:
                    continue
                killed += 1
                chosen = chosen_of(mr)
                run = set(mr["res"]) if chosen is None else chosen | new_tests
                if not (f & run):
                    esc += 1
                missed_tests += len(f - run)
            return {"mutants": len(mut_rows), "killed": killed, "escaped": esc, "missed_failing_tests": missed_tests}

        row = {
            "commit": c[:10], "subject": subj[:70], "tests": len(res), "all_time": all_t, "wall_full": wall_full,
            "wall_select": wall_sel, "wall_testmon": wall_tm, "select_latency": t_sel,
            "changed_nodes": len(sels["safe"][0].changed), "fallback": sels["safe"][0].fallback,
            "safe": stats(sels["safe"][1]), "cover_only": stats(sels["cover_only"][1]),
            "testmon": stats(tm_ran_c & set(res), ran_new=False),
            "failing": sorted(t for t, (_d, o) in res.items() if o == "failed"),
            # pytest exit codes: a collection error (exit 2) fails the suite without any
            # failed test outcome, so the exit codes are kept beside the outcomes
            "full_rc": rc_full, "select_rc": rc_sel,
            "mut_safe": mstats(lambda mr: mr["sel"]), "mut_testmon": mstats(lambda mr: mr["tm"] & set(mr["res"])),
            "mutants": [{k: v for k, v in mr.items() if k in ("file", "line", "old", "new")} for mr in mut_rows],
            "plugin_summary": next((ln for ln in out_sel.splitlines() if ln.startswith("maestro tia:")), ""),
        }
        rows.append(row)
        s = row["safe"]
        print(f"{c[:8]} tests {len(res):4d} safe {s['selected']:4d} ({s['time']:.2f}/{all_t:.2f}s) "
              f"esc {len(s['escapes'])} | testmon {row['testmon']['selected']:4d} esc {len(row['testmon']['escapes'])} "
              f"| mutants {row['mut_safe']} tm {row['mut_testmon']} | {row['fallback'] or ''} | {subj[:50]}",
              flush=True)
    summary = summarize(rows)
    print(json.dumps(summary, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2, default=list))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _red(rc: int | None) -> bool:
    """A pytest exit code that means the run failed (1 tests failed, 2 interrupted,
    e.g. collection errors, 3 internal error, 4 usage error); 0 passed, 5 no tests."""
    return rc is not None and rc not in (0, 5)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tot = sum(r["all_time"] for r in rows)
    out: dict[str, Any] = {"commits": len(rows), "all_time_s": round(tot, 3),
                           "wall_full_s": round(sum(r["wall_full"] for r in rows), 2),
                           "wall_select_s": round(sum(r["wall_select"] for r in rows), 2),
                           "wall_testmon_s": round(sum(r["wall_testmon"] for r in rows), 2),
                           "fallbacks": sum(1 for r in rows if r["fallback"]),
                           "real_failing_commits": sum(1 for r in rows if r["failing"] or _red(r.get("full_rc"))),
                           # the full suite fails (failed tests or collection errors) but the
                           # selected run passes: a real failure the selection missed
                           "real_failures_missed": sum(1 for r in rows if (r["failing"] or _red(r.get("full_rc")))
                                                       and not _red(r.get("select_rc")))}
    # a failure the change caused: failing at the commit, not at its parent
    # (the previous row's full run; every failure of the first row counts)
    prev: set[str] | None = None
    caused = []
    for r in rows:
        f = set(r["failing"])
        caused.append(f if prev is None else f - prev)
        prev = f
    out["failures_caused_by_a_commit"] = sum(len(c) for c in caused)
    for k in ("safe", "cover_only", "testmon"):
        t = sum(r[k]["time"] for r in rows)
        out[k] = {"tests_run": sum(r[k]["selected"] for r in rows), "tests_all": sum(r["tests"] for r in rows),
                  "time_s": round(t, 3), "time_saved": round(1 - t / tot, 4) if tot else 0.0,
                  "missed_failing_tests": sum(len(r[k]["escapes"]) for r in rows),
                  "escapes_caused_by_the_commit": sum(len(set(r[k]["escapes"]) & c) for r, c in zip(rows, caused))}
    for k in ("mut_safe", "mut_testmon"):
        out[k] = {f: sum(r[k][f] for r in rows) for f in ("mutants", "killed", "escaped", "missed_failing_tests")}
    lat = sorted(r["select_latency"] for r in rows)
    out["select_latency_median_s"] = round(lat[len(lat) // 2], 4) if lat else None
    return out


if __name__ == "__main__":
    sys.exit(main())
