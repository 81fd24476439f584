"""Lineage queries on a 10,000-genome evolution run (goal: under 50 ms).

``python benches/bench_prompts.py`` evolves 10,000 distinct genomes from the
demo's incumbent and a second seed (all six operators, seed 0) into a fresh
store, then times, median of 25 runs each:

* the ancestors of the deepest genome (the longest history),
* the ancestors of the last genome created,
* the descendants of the seed genome (the whole run: 10,000 nodes),

each as ``Registry.lineage`` (one recursive SQLite query plus the
rustworkx graph). Results go to ``benches/RESULTS.md``. The pytest-benchmark
tests (``pytest benches/bench_prompts.py --benchmark-enable``) time the same
queries on a 2,000-genome run.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from maestro_core.prompt_demo import INCUMBENT  # noqa: E402
from maestro_core.prompts import Genome, Registry, evolve  # noqa: E402

SECOND = Genome("Find the passage that answers: {query}\n\nUse the exact terms of the question.\n\nBe concise.",
                {"query": None, "top_k": 3}, "bm25", None, ("demo",))


def build(n: int, home: Path) -> tuple[Registry, list[str], float]:
    reg = Registry(home)
    t0 = time.perf_counter()
    ids = evolve(reg, [INCUMBENT, SECOND], n, seed=0)
    return reg, ids, time.perf_counter() - t0


def deepest(reg: Registry, ids: list[str]) -> tuple[str, int]:
    g = reg.lineage(ids[0], descendants=True)
    d = max(g.node_indices(), key=lambda i: g[i]["depth"])
    return g[d]["id"], g[d]["depth"]


def timed(fn, runs: int = 25) -> float:  # type: ignore[no-untyped-def]
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


@pytest.fixture(scope="module")
def run2k(tmp_path_factory):  # type: ignore[no-untyped-def]
    reg, ids, _ = build(2000, tmp_path_factory.mktemp("lineage"))
    return reg, ids


@pytest.mark.parametrize("query", ["ancestors-deepest", "ancestors-last", "descendants-root"])
def test_lineage(benchmark, run2k, query: str) -> None:  # type: ignore[no-untyped-def]
    reg, ids = run2k
    target, desc = {"ancestors-deepest": (deepest(reg, ids)[0], False), "ancestors-last": (ids[-1], False),
                    "descendants-root": (ids[0], True)}[query]
    g = benchmark(reg.lineage, target, desc)
    assert len(g) >= 1 and (not desc or len(g) > 1000)


def main() -> int:
    from duel_regret import update_section

    n = 10_000
    with tempfile.TemporaryDirectory() as d:
        reg, ids, secs = build(n, Path(d))
        deep, depth = deepest(reg, ids)
        rows = []
        for name, target, desc in [("ancestors of the deepest genome", deep, False),
                                   ("ancestors of the last genome", ids[-1], False),
                                   ("descendants of the seed genome", ids[0], True)]:
            g = reg.lineage(target, desc)
            ms = timed(lambda t=target, de=desc: reg.lineage(t, de))
            rows.append((name, len(g), len(g.edge_list()), ms))
            print(f"{name:<34} {len(g):>6} nodes {len(g.edge_list()):>6} edges  {ms:8.2f} ms", flush=True)
    lines = ["<!-- bench_prompts:begin -->", "",
             f"Lineage of a {n:,}-genome evolution run (`python benches/bench_prompts.py`; evolution with all six "
             f"operators took {secs:.1f} s including registration; deepest genome: {depth} generations). "
             "Median of 25 runs of `Registry.lineage` (recursive SQLite query + rustworkx graph); goal < 50 ms.", "",
             "| query | nodes | edges | median ms |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b:,} | {c:,} | {d:.2f} |" for a, b, c, d in rows]
    lines += ["", "<!-- bench_prompts:end -->"]
    update_section(Path(__file__).resolve().parent / "RESULTS.md", "\n".join(lines),
                   "<!-- bench_prompts:begin -->", "<!-- bench_prompts:end -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
