#!/usr/bin/env python3
"""Write the ``## Shapley attribution (issue 6)`` section of ``benches/RESULTS.md``
from a pytest-benchmark JSON of ``benches/bench_shapley.py``.

    python benches/shapley_report.py benches/shapley.json [--command "..."]

Only that section is replaced (or appended); the rest of the file is kept.
Ratios are peer median time / our median time (above 1: we are faster);
errors are RMSE against the closed-form values, averaged over seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

HEADING = "## Shapley attribution (issue 6)"
DEFAULT_COMMAND = (
    "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest benches/bench_shapley.py "
    "--benchmark-enable -p no:cacheprovider --benchmark-json benches/shapley.json"
)


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> list[str]:
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in _cmd(["lscpu"]).splitlines()) if v}
    rayon = os.environ.get("RAYON_NUM_THREADS")
    threads = rayon or str(len(os.sched_getaffinity(0)))
    def v(d: str) -> str:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            return "not installed"
    return [
        f"- CPU: {fields.get('Model name', 'unknown')}, {fields.get('Core(s) per socket', '?')} cores x "
        f"{fields.get('Socket(s)', '?')} socket(s), {fields.get('Thread(s) per core', '?')} thread(s) per core "
        "(shared with other jobs)",
        f"- threads: {threads} (rayon default: all available cores; numpy single BLAS pool)",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"{_cmd(['rustc', '--version'])}",
        f"- versions: maestro-core {v('maestro-core')} (git {_cmd(['git', 'rev-parse', '--short', 'HEAD'])}), "
        f"shapiq {v('shapiq')}, numpy {v('numpy')}, pytest-benchmark {v('pytest-benchmark')}",
    ]


def fmt_t(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def fmt_r(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def section(data: dict, command: str) -> tuple[str, list[str]]:
    groups: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    when = data.get("datetime", dt.datetime.now(dt.timezone.utc).isoformat())[:16].replace("T", " ")
    head = [HEADING, "", f"Run on {when} UTC. Commands (from the repository root, after `make build`):", "",
            "```", command,
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benches/shapley_paired.py > paired.md",
            ".venv/bin/python benches/shapley_report.py benches/shapley.json --notes NOTES.md  # NOTES.md: paired.md + analysis",
            "```", "", *machine(), ""]
    out: list[str] = []
    summary: list[str] = []
    order = {"ours": 0, "ours-variant": 1, "peer": 2, "baseline": 3}
    def natural(name: str) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

    for name in sorted(groups, key=natural):
        rows = sorted(groups[name], key=lambda r: (order.get(r["extra_info"]["role"], 9), r["stats"]["median"]))
        ours = next(r for r in rows if r["extra_info"]["role"] == "ours")
        t0 = ours["stats"]["median"]
        e0 = ours["extra_info"].get("rmse")
        out += [f"### {name}: {ours['extra_info']['workload']}", ""]
        err = e0 is not None
        hdr = "| implementation | role | median | min | rounds | time / ours |" + (" RMSE: mean over seeds ± its SE (sd) |" if err else "") + " goal | |"
        out += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
        for r in rows:
            info, st = r["extra_info"], r["stats"]
            ratio = st["median"] / t0
            goal = info.get("goal")
            status = ""
            if goal:
                ratio_min = st["min"] / ours["stats"]["min"]
                fast = "met" if ratio >= goal else ("met on min time only" if ratio_min >= goal else "**short**")
                if err:
                    k = info.get("seeds", 1)
                    se = ((info["rmse_sd"] ** 2 + ours["extra_info"]["rmse_sd"] ** 2) / k) ** 0.5
                    diff = e0 - info["rmse"]
                    if diff <= 0:
                        acc = "lower"
                    elif diff < 2 * se:
                        acc = f"equal within noise (+{diff / info['rmse']:.0%}, {diff / se:.1f} SE)"
                    else:
                        acc = f"**higher** (+{diff / info['rmse']:.0%})"
                    status = f"speed: {fast}; error: {acc}"
                    errs = f"{e0:.4f} vs {info['rmse']:.4f}"
                else:
                    status, errs = fast, "exact, max diff < 1e-9"
                summary.append(f"| {name} | {info['impl']} | {fmt_r(ratio)} | {fmt_r(ratio_min)} | >= {goal:g}x"
                               + (" at equal or lower error" if err else "") + f" | {errs} | {status} |")
            cells = [f"**{info['impl']}**" if r is ours else info["impl"], info["role"], fmt_t(st["median"]),
                     fmt_t(st["min"]), str(st["rounds"]), "1" if r is ours else fmt_r(ratio)]
            if err:
                k = max(int(info.get("seeds", 1)), 1)
                cells.append(f"{info['rmse']:.4f} ± {info['rmse_sd'] / k ** 0.5:.4f} ({info['rmse_sd']:.4f})")
            cells += [f">= {goal:g}x" if goal else "", "see goals" if goal else ""]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    goals = ["Goals (time ratios: peer / ours, by median and by minimum over rounds):", "",
             "| workload | peer | median ratio | min ratio | goal | our error vs peer's | status |",
             "|---|---|---|---|---|---|---|", *summary, ""]
    return "\n".join(head + goals + out), summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path)
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    ap.add_argument("--command", default=DEFAULT_COMMAND)
    ap.add_argument("--notes", type=Path, help="markdown appended to the section (analysis)")
    a = ap.parse_args()
    text, summary = section(json.loads(a.json.read_text()), a.command)
    if a.notes:
        text += "\n" + a.notes.read_text().strip() + "\n"
    old = a.results.read_text() if a.results.exists() else "# Benchmarks: maestro_core vs peers\n"
    pat = re.compile(re.escape(HEADING) + r"\n.*?(?=\n## |\Z)", re.S)
    new = pat.sub(lambda _: text.rstrip("\n"), old) if pat.search(old) else old.rstrip("\n") + "\n\n" + text
    a.results.write_text(new.rstrip("\n") + "\n")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
