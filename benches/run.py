#!/usr/bin/env python3
"""Run the peer benchmarks and write ``benches/RESULTS.md``.

    python benches/run.py            # full sizes (minutes); writes RESULTS.md
    python benches/run.py --smoke    # tiny sizes (seconds); correctness only

Both run ``pytest benches`` (``bench_hash.py``, ``bench_merkle.py``), where
every implementation's answer is compared with a reference. ``--smoke``
writes nothing and exits non-zero if any check fails, or if no benchmark
ran at all. The full run also computes, per workload, the ratio
peer time / our time and checks it against the issue's goals. Ratios use
each row's fastest round (the least disturbed one: the machine these run on
is shared, and other jobs take cores at random moments); medians are shown
alongside.

The JSON (``benches/results.json``) also keeps the machine, versions, load
and command, so ``--report-only`` can rewrite RESULTS.md from it. Text
between ``<!-- notes -->`` and ``<!-- /notes -->`` in RESULTS.md is kept from
one run to the next.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import ssl
import subprocess
import sys
from importlib import metadata
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent

SMOKE_SIZES = {
    "MAESTRO_BENCH_FILE_MIB": "4",
    "MAESTRO_BENCH_FILES": "200",
    "MAESTRO_BENCH_LEAVES": "10000",
    "MAESTRO_BENCH_PROOFS": "100",
}

# Workload order and what each one measures (written under its table).
GROUPS = {
    "file-blake3": "One file, BLAKE3, with all cores on both sides. Ours cuts it into 1 MiB pieces, each "
    "read by a rayon task into its thread's buffer and hashed there as a BLAKE3 subtree (bounded memory; "
    "no memory map, since a file truncated under a map kills the process with SIGBUS); the package "
    "memory-maps the whole file. Warm page cache for both.",
    "file-sha256": "One file, SHA-256 (single-threaded by nature): ours streams it through `sha2` "
    "(SHA-NI); the baseline is `hashlib.file_digest` (OpenSSL). No goal in the issue.",
    "files-blake3": "Many small files, BLAKE3. Ours: one `hash_files` call, parallel across files, "
    "digests returned as an `(n, 32)` array. Peers: Python loops over the `blake3` package "
    "(reading each file, or `update_mmap`), and, for information, a thread pool over it.",
    "files-sha256": "The same files, SHA-256: ours `hash_files` vs a `hashlib.file_digest` loop. "
    "No goal in the issue.",
    "merkle-root": "Root of the tree from the same `list[bytes]` of leaf data. Every row builds its tree "
    "inside the timing: ours `MerkleTree.from_leaves(...).root()` (keeps every level, ready for "
    "proofs), pymerkle `InmemoryTree.init_from_entries(...).get_root()` (one round: ~15 s), and the "
    "hashlib reference (keeps one level at a time, so it does less than the other two).",
    "merkle-proofs": "Inclusion proofs for random leaves; every tree is built before the timing on every "
    "side (pymerkle's build is the merkle-root row). Ours returns one `(m, 32)` array plus offsets "
    "(`as_array=True`; the lists-of-bytes form is shown too); pymerkle returns `InclusionProof` "
    "objects; the reference lists of bytes. All proofs are checked equal to the reference's.",
}

PYTEST_ARGS = ["-p", "no:cacheprovider"]
# The suites this script runs and reports (issue 3). The other bench files
# have their own commands (see their sections of RESULTS.md); the Shapley
# suite also runs in the smoke check, on tiny games.
SUITES = ["bench_hash.py", "bench_merkle.py"]
SMOKE_SUITES = [*SUITES, "bench_shapley.py"]
SMOKE_SIZES_EXTRA = {
    "MAESTRO_BENCH_SHAPLEY_EXACT": "8,10",
    "MAESTRO_BENCH_SHAPLEY_PLAYERS": "12",
    "MAESTRO_BENCH_SHAPLEY_BUDGET": "600",
    "MAESTRO_BENCH_SHAPLEY_SEEDS": "3",
}
BEGIN, END = "<!-- issue-3:begin -->", "<!-- issue-3:end -->"


class Outcomes:
    """A pytest plugin counting test outcomes."""

    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001 (pytest hook)
        if report.when == "call" and report.passed:
            self.passed += 1
        elif report.failed:
            self.failed += 1
        elif report.skipped:
            self.skipped += 1


def run_pytest(args: list[str], suites: list[str] = SUITES) -> tuple[int, Outcomes]:
    import pytest

    counts = Outcomes()
    os.chdir(ROOT)
    files = [str((BENCHES / f).relative_to(ROOT)) for f in suites]
    code = pytest.main([*files, *PYTEST_ARGS, *args], plugins=[counts])
    return int(code), counts


def check(code: int, counts: Outcomes) -> str | None:
    """The reason the run does not count, or None."""
    if code != 0:
        return f"pytest exited with {code}" + (" (no benchmark collected)" if code == 5 else "")
    if counts.passed == 0:
        return "no benchmark ran"
    if counts.failed or counts.skipped:
        return f"{counts.failed} failed, {counts.skipped} skipped"
    return None


# --- the report -------------------------------------------------------------


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _autogroup() -> str:
    """The scheduler autogroup's nice value: with autogroups, a process's own
    nice only ranks it against its session, and the group's is what counts
    against other sessions' jobs."""
    try:
        text = Path("/proc/self/autogroup").read_text().split()
        return f"autogroup nice {text[-1]}"
    except (OSError, IndexError):
        return "no autogroup"


def machine() -> dict[str, str]:
    lscpu = _cmd(["lscpu"])
    field = {
        k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines()) if v
    }
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        cores = int(field["Core(s) per socket"]) * int(field.get("Socket(s)", "1"))
    except (KeyError, ValueError):
        cores = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    rayon = os.environ.get("RAYON_NUM_THREADS")
    return {
        "CPU": field.get("Model name", platform.processor() or "unknown"),
        "cores": f"{cores} cores, {field.get('Thread(s) per core', '?')} thread(s) per core"
        if cores
        else "unknown",
        "os.cpu_count()": str(os.cpu_count()),
        "rayon threads": rayon + " (RAYON_NUM_THREADS)" if rayon else f"{affinity} (rayon default: available parallelism)",
        "RAM": mem,
        "priority": f"nice {os.nice(0)}, {_autogroup()} (every implementation runs in this one process, "
        "at this priority)",
        "OS": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "rust", "python"])
    return {
        "maestro-core": f"{v('maestro-core')} (git {commit}{', with uncommitted changes' if dirty else ''})",
        "rustc": _cmd(["rustc", "--version"]),
        "Python": platform.python_version(),
        "blake3 (package)": v("blake3"),
        "pymerkle": v("pymerkle"),
        "hashlib": ssl.OPENSSL_VERSION,
        "numpy": v("numpy"),
        "pytest-benchmark": v("pytest-benchmark"),
    }


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _ratio(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def tables(data: dict) -> tuple[list[str], list[tuple[str, str, float, float, float]]]:
    """Markdown per workload, and (group, peer, ratio of mins, ratio of
    medians, goal) for each goal."""
    by_group: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        by_group.setdefault(b["group"], []).append(b)
    lines: list[str] = []
    goals: list[tuple[str, str, float, float, float]] = []
    for group in [g for g in GROUPS if g in by_group] + [g for g in by_group if g not in GROUPS]:
        rows = by_group[group]
        ours = next(r for r in rows if r["extra_info"]["role"] == "ours")
        t_ours, m_ours = ours["stats"]["min"], ours["stats"]["median"]
        lines += [f"### {group}: {ours['extra_info']['workload']}", ""]
        nbytes = ours["extra_info"].get("bytes")
        head = "| implementation | role | min | median | rounds |" + (" throughput (min) |" if nbytes else "")
        head += " peer / ours | goal | |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        order = {"ours": 0, "ours-variant": 1, "peer": 2, "baseline": 3}
        for r in sorted(rows, key=lambda r: (order.get(r["extra_info"]["role"], 9), r["stats"]["min"])):
            info, st = r["extra_info"], r["stats"]
            ratio = st["min"] / t_ours
            goal = info.get("goal")
            status = ""
            if goal:
                status = "met" if ratio >= goal else "**short**"
                goals.append((group, info["impl"], ratio, st["median"] / m_ours, goal))
            cells = [
                f"**{info['impl']}**" if r is ours else info["impl"],
                info["role"],
                _fmt_time(st["min"]),
                _fmt_time(st["median"]),
                str(st["rounds"]),
            ]
            if nbytes:
                cells.append(f"{nbytes / st['min'] / 1e9:.2f} GB/s")
            cells += ["1 (ours)" if r is ours else _ratio(ratio), f">= {goal:g}x" if goal else "", status]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", GROUPS.get(group, ""), ""]
    return lines, goals


def run_info(command: str, load: tuple[tuple[float, ...], tuple[float, ...]]) -> dict:
    """What RESULTS.md says about the run besides the timings (kept in the JSON)."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(),
        "load": [list(load[0]), list(load[1])],
        "versions": versions(),
    }


def write_results(path: Path, data: dict) -> str:
    info = data["maestro"]
    body, goals = tables(data)
    notes = ""
    if path.exists():
        m = re.search(r"<!-- notes -->\n(.*?)<!-- /notes -->", path.read_text(), re.S)
        if m:
            notes = m.group(1)
    out = [
        "# Benchmarks: maestro_core vs peers",
        "",
        f"Generated by `benches/run.py` from the run of {info['date']} (`benches/results.json`). "
        "*peer / ours* is the peer's time over ours (above 1: we are faster), each taken as the fastest "
        "of its rounds: the machine is shared, and the fastest round is the one least disturbed by "
        "other jobs. Medians, and the ratio of medians, are shown too.",
        "",
        "## Goals (issue 3)",
        "",
        "| workload | compared with | peer / ours | goal | | by medians |",
        "|---|---|---|---|---|---|",
    ]
    for group, impl, ratio, ratio_med, goal in goals:
        status = "met" if ratio >= goal else "**short**"
        out.append(f"| {group} | {impl} | {_ratio(ratio)} | >= {goal:g}x | {status} | {_ratio(ratio_med)} |")
    out += ["", "## Command", "", "```", info["command"], "```", ""]
    out += ["## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info["machine"].items()]
    before, after = info["load"]
    out += [
        f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in after)} (the machine is shared: other jobs compete "
        "for the cores)",
        "",
        "## Versions",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in info["versions"].items()]
    out += ["", "## Results", "", *body]
    out += ["## Notes", "", "<!-- notes -->", notes.strip("\n"), "<!-- /notes -->", ""]
    section = "\n".join(out)
    # RESULTS.md also holds other suites' sections (issues 4-8, written by
    # their own scripts): replace only the part between our markers.
    old = path.read_text() if path.exists() else ""
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", old, re.S)
    block = f"{BEGIN}\n{section}{END}\n"
    path.write_text(old[: m.start()] + block + old[m.end() :] if m else block + ("\n" + old if old else ""))
    return "\n".join(f"{g}: {i}: {_ratio(r)} (goal {g_:g}x)" for g, i, r, _, g_ in goals)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, correctness only, writes nothing")
    ap.add_argument("--json", type=Path, default=BENCHES / "results.json", help="pytest-benchmark JSON output")
    ap.add_argument("--results", type=Path, default=BENCHES / "RESULTS.md", help="the report to write")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from --json, run nothing")
    ap.add_argument("-k", dest="keyword", help="only benchmarks matching this pytest -k expression (no report)")
    opts = ap.parse_args(argv)

    if opts.report_only:
        print(write_results(opts.results, json.loads(opts.json.read_text())))
        return 0
    extra = ["-k", opts.keyword] if opts.keyword else []
    if opts.smoke:
        for k, v in {**SMOKE_SIZES, **SMOKE_SIZES_EXTRA}.items():
            os.environ.setdefault(k, v)
        code, counts = run_pytest(["-q", "--benchmark-disable", *extra], SMOKE_SUITES)
        why = check(code, counts)
        if why:
            print(f"benches --smoke FAILED: {why}", file=sys.stderr)
            return 1
        print(f"benches --smoke: {counts.passed} implementation checks agree")
        return 0

    load_before = os.getloadavg()
    code, counts = run_pytest(["--benchmark-enable", f"--benchmark-json={opts.json}", "-v", *extra])
    load_after = os.getloadavg()
    why = check(code, counts)
    if why:
        print(f"benches FAILED: {why}; {opts.results} not written", file=sys.stderr)
        return 1
    if opts.keyword:
        print(f"-k given: {opts.results} not written (partial run)")
        return 0
    nice = os.nice(0)
    prefix = f"nice -n {nice} " if nice else ""
    group = _autogroup()
    setup = (
        f"echo {group.split()[-1]} > /proc/self/autogroup  # this shell's scheduler group, on a shared host\n"
        if group.startswith("autogroup") and not group.endswith(" 0")
        else ""
    )
    try:
        json_arg = opts.json.resolve().relative_to(ROOT)
    except ValueError:
        json_arg = opts.json
    command = (
        f"{setup}{prefix}make bench\n# which runs, from the repository root:\n"
        f"{prefix}env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benches/run.py\n"
        "# i.e. " + shlex.join(["pytest", *(f"benches/{f}" for f in SUITES), *PYTEST_ARGS, "--benchmark-enable", f"--benchmark-json={json_arg}"])
    )
    data = json.loads(opts.json.read_text())
    data["maestro"] = run_info(command, (load_before, load_after))
    opts.json.write_text(json.dumps(data, indent=2))
    print(write_results(opts.results, data))
    print(f"wrote {opts.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
