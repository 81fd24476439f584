"""Same-process A/B of the live span feed's request-path copy.

    .venv/bin/python benches/span_copy_ab.py OLD.so NEW.so [--requests N] [--cpu]

Loads two builds of the extension (``_native*.so`` copied aside, e.g. from
``git stash; maturin develop --release`` and back), each with its own
``SpanFeed`` and all shipped guards, and runs the paired request of
``bench_cep.py`` with a no-op, the OLD or the NEW feed's ``on_end`` in
random order per round, so all three share the process, its caches and the
host's noise. Prints request p50/p95 overhead against the no-op and the
copy's own time per request (p50, p90, p95, and its mean on the requests at
or above the p95, where the cold copies are). Do not import ``maestro_core``
here: a third copy of the extension does not fit in the static TLS block.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cep_workload import request  # noqa: E402  (the paired benchmark's request)

os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
GUARDS = Path(__file__).resolve().parent.parent / "python" / "maestro_core" / "guards"
LATENESS_NS, INTERVAL_NS = 5_000_000_000, 50_000_000


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("maestro_core._native", path)
    assert spec is not None and spec.loader is not None
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _feed(mod: Any) -> Any:
    gs = [g for f in sorted(GUARDS.glob("*.guard")) for g in mod.compile_guards(f.read_text(), str(f))]
    return mod.SpanFeed(mod.GuardMatcher(gs, LATENESS_NS, 100_000, 1), LATENESS_NS, INTERVAL_NS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--cpu", action="store_true", help="the cpu-bound request (default: io-mixed)")
    a = ap.parse_args()
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    feeds = {"old": _feed(_load(a.old)), "new": _feed(_load(a.new))}
    acc = [0]
    pc = time.perf_counter_ns

    def timed(fn: Any) -> SpanProcessor:
        class Timed(SpanProcessor):
            def on_end(self, span: Any) -> None:
                t = pc()
                fn(span)
                acc[0] += pc() - t

        return Timed()

    procs = {"noop": timed(lambda s: None), "old": timed(feeds["old"].on_end), "new": timed(feeds["new"].on_end)}
    tp = TracerProvider()
    tp.add_span_processor(SpanProcessor())
    multi = tp._active_span_processor
    tr = tp.get_tracer("bench")
    io = not a.cpu
    sides = list(procs)
    for sd in sides:
        multi._span_processors = (procs[sd],)
        for _ in range(200):
            request(tr, io)
    lat: dict[str, list[float]] = {sd: [] for sd in sides}
    copy: dict[str, list[float]] = {sd: [] for sd in sides}
    rng = np.random.default_rng(1)
    for _ in range(a.requests):
        for j in rng.permutation(len(sides)):
            sd = sides[j]
            multi._span_processors = (procs[sd],)
            acc[0] = 0
            t0 = pc()
            request(tr, io)
            lat[sd].append((pc() - t0) / 1e3)
            copy[sd].append(acc[0] / 1e3)
    for f in feeds.values():
        f.close()
        assert f.errors() == [], f.errors()
    b = np.array(lat["noop"])
    b50, b95 = np.percentile(b, [50, 95])
    timer = float(np.mean(copy["noop"]))
    print(f"{'io-mixed' if io else 'cpu-bound'} request, {a.requests} per side: no-op p50 {b50:.1f} us, p95 {b95:.1f} us")
    for sd in ("old", "new"):
        o = np.array(lat[sd])
        c = np.array(copy[sd]) - timer
        o50, o95 = np.percentile(o, [50, 95])
        top = o >= o95
        print(f"{sd}: request p50 {100 * (o50 / b50 - 1):+.2f}%, p95 {100 * (o95 / b95 - 1):+.2f}%; copy per request "
              f"p50 {np.percentile(c, 50):.2f}, p90 {np.percentile(c, 90):.2f}, p95 {np.percentile(c, 95):.2f} us, "
              f"mean on requests >= p95 {c[top].mean():.2f} us")


if __name__ == "__main__":
    main()
