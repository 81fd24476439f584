"""SpecLive guard benchmarks: ours vs peers, grouped by workload.

    .venv/bin/python -m pytest benches/bench_cep.py --benchmark-enable -p no:randomly -q -s

Groups (peers run in the same session, on the same input, and their
verdicts are checked against ours before any figure is kept):

* ``one-guard``: one guard over 10M events through the numpy path (ours),
  the same pattern on one key with reelay (a prefix: it is ~100x slower)
  and with the pure-Python reference matcher (tests/cep_ref.py).
* ``all-guards``: every shipped guard at once over 10M OTel-like events
  with attribute columns.
* ``otlp-ingest``: OTLP/JSON lines into events: ours (Rust, serde_json)
  vs ``json`` + a Python loop doing the same mapping.
* ``span-processor``: p50/p95 latency of an instrumented request with a
  no-op span processor vs with :class:`GuardSpanProcessor` (all guards).

``CEP_BENCH_N`` scales the event counts (default 10_000_000). Figures are
appended as JSON lines to ``benches/.cep_results.jsonl``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import cep_ref  # noqa: E402
import cep_workload as W  # noqa: E402

from maestro_core import guards  # noqa: E402

N = int(os.environ.get("CEP_BENCH_N", "10000000"))
RESULTS = HERE / ".cep_results.jsonl"

ONE_GUARD = "guard g { within 50us match a -> !c -> b }"
# The same pattern on one key, one event per step (event i at time i ns):
ONE_GUARD_1KEY = "guard g { within 50ns match a -> !c -> b }"
REELAY_FORMULA = "{b} and pre((not {c} and not {b}) since[0:49] {a})"
ONE_NAMES = ["a", "b", "c", "d"]


def _record(group: str, name: str, **fig: Any) -> None:
    with open(RESULTS, "a") as f:
        f.write(json.dumps({"group": group, "name": name, "n": N, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fig}) + "\n")
    print(f"[{group}] {name}: " + ", ".join(f"{k}={v}" for k, v in fig.items()))


def _one_key_stream(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=n, dtype=np.int64)


def _ours_one_key_run(g: Any, t: np.ndarray, k: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The timed part: match and collect the violations (numpy arrays)."""
    m = guards.Matcher([g])
    m.feed_arrays(t, k, codes, ONE_NAMES)
    m.finish()
    seq: np.ndarray = m.violation_arrays()["seq"]
    return seq


def _ours_one_key(codes: np.ndarray) -> list[int]:
    [g] = guards.compile(ONE_GUARD_1KEY)
    n = codes.size
    seq = _ours_one_key_run(g, np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64), codes)
    return sorted(int(x) for x in seq[seq >= 0])


# ---------------------------------------------------------------- one guard
@pytest.mark.benchmark(group="one-guard")
def test_one_guard_ours_numpy(benchmark: Any) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(N, dtype=np.int64) * 1_000
    k = rng.integers(0, 10_000, size=N, dtype=np.int64)
    c = rng.integers(0, 4, size=N, dtype=np.int64)
    [g] = guards.compile(ONE_GUARD)

    def run() -> int:
        m = guards.Matcher([g])
        m.feed_arrays(t, k, c, ONE_NAMES)
        m.finish()
        return len(m.violation_arrays()["time"])

    nv = benchmark.pedantic(run, rounds=3, iterations=1)
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(events=N, violations=nv, events_per_s=N / best)
    _record("one-guard", "ours numpy (10k keys)", events=N, seconds=round(best, 3), mev_s=round(N / best / 1e6, 2), violations=nv)


@pytest.mark.benchmark(group="one-guard")
def test_one_guard_ours_one_key(benchmark: Any) -> None:
    codes = _one_key_stream(N)
    [g] = guards.compile(ONE_GUARD_1KEY)
    t, k = np.arange(N, dtype=np.int64), np.zeros(N, dtype=np.int64)
    nv = benchmark.pedantic(lambda: int((_ours_one_key_run(g, t, k, codes) >= 0).sum()), rounds=3, iterations=1)
    best = benchmark.stats.stats.min
    first = benchmark.stats.stats.data[0]  # the process's first run pays fresh pages
    benchmark.extra_info.update(events=N, events_per_s=N / best)
    _record("one-guard", "ours numpy (1 key, reelay's stream)", events=N, seconds=round(best, 3), mev_s=round(N / best / 1e6, 2), violations=nv,
            first_round_mev_s=round(N / first / 1e6, 2), loadavg=[round(x, 2) for x in os.getloadavg()])


@pytest.mark.benchmark(group="one-guard")
def test_one_guard_reelay(benchmark: Any) -> None:
    reelay = pytest.importorskip("reelay")
    n = min(N, 200_000)
    codes = _one_key_stream(N)[:n]
    rows = [{"time": i, **{x: ONE_NAMES[c] == x for x in ONE_NAMES}} for i, c in enumerate(codes.tolist())]
    t0 = time.perf_counter()
    reelay.discrete_timed_monitor(pattern=REELAY_FORMULA, condense=False)
    build = time.perf_counter() - t0

    def run() -> list[int]:
        mon = reelay.discrete_timed_monitor(pattern=REELAY_FORMULA, condense=False)
        return [i for i, r in enumerate(rows) if mon.update(r)["value"]]

    # best of 3, as for ours (min of the rounds)
    got = benchmark.pedantic(run, rounds=3, iterations=1)
    secs = benchmark.stats.stats.min - build
    ours = _ours_one_key(codes)
    assert got == ours, "reelay and maestro disagree on the verdicts"
    benchmark.extra_info.update(events=n, events_per_s=n / secs, agree=True)
    first = benchmark.stats.stats.data[0] - build
    _record("one-guard", "reelay 25 (1 key)", events=n, seconds=round(secs, 3), mev_s=round(n / secs / 1e6, 4),
            violations=len(got), agree_with_ours=True, monitor_build_s=round(build, 4), first_round_mev_s=round(n / first / 1e6, 4))


@pytest.mark.benchmark(group="one-guard")
def test_one_guard_pure_python(benchmark: Any) -> None:
    n = min(N, 20_000)
    codes = _one_key_stream(N)[:n]
    ast = guards.parse_ast(ONE_GUARD_1KEY)[0]
    ops = [("ev", i, 0, ONE_NAMES[c], {}) for i, c in enumerate(codes.tolist())]
    got = benchmark.pedantic(lambda: cep_ref.check(ast, ops, 0)[0], rounds=1, iterations=1)
    secs = benchmark.stats.stats.min
    assert sorted(v[4] for v in got) == _ours_one_key(codes)
    _record("one-guard", "pure-Python reference (1 key)", events=n, seconds=round(secs, 3), mev_s=round(n / secs / 1e6, 4), agree_with_ours=True)


# ---------------------------------------------------------------- all guards
@pytest.mark.benchmark(group="all-guards")
@pytest.mark.parametrize("threads", [0, 1], ids=["threads-auto", "threads-1"])
@pytest.mark.parametrize("keys", ["trace-like", "uniform-100k"])
def test_all_guards_numpy(benchmark: Any, keys: str, threads: int) -> None:
    gs = guards.shipped()
    w = W.otel_columns(N, n_keys=100_000, live=1000 if keys == "trace-like" else None)

    def run() -> int:
        m = guards.Matcher(gs, lateness_ns=0, threads=threads)
        m.feed_arrays(w["times"], w["keys"], w["codes"], w["names"], w["attrs"])
        m.finish()
        return len(m.violation_arrays()["time"])

    nv = benchmark.pedantic(run, rounds=2, iterations=1)
    best = benchmark.stats.stats.min
    # the verdicts of the whole set equal those of each guard run alone (on a prefix)
    n = min(N, 200_000)
    alone = 0
    both = guards.Matcher(gs)
    sl = {k: (v[0][:n], v[1]) if isinstance(v, tuple) else v[:n] for k, v in w["attrs"].items()}
    both.feed_arrays(w["times"][:n], w["keys"][:n], w["codes"][:n], w["names"], sl)
    both.finish()
    together = {(v.guard, v.key, v.kind, v.time) for v in both.violations()}
    sep: set[Any] = set()
    for g in gs:
        m = guards.Matcher([g])
        m.feed_arrays(w["times"][:n], w["keys"][:n], w["codes"][:n], w["names"], sl)
        m.finish()
        vs = m.violations()
        alone += len(vs)
        sep |= {(v.guard, v.key, v.kind, v.time) for v in vs}
    assert together == sep
    benchmark.extra_info.update(events=N, guards=len(gs), events_per_s=N / best)
    nthreads = threads or os.cpu_count()  # 0: rayon's global pool, one thread per core
    _record("all-guards", f"ours numpy, {len(gs)} guards, 7 attribute columns, keys {keys}, {nthreads} thread(s)", events=N,
            seconds=round(best, 3), mev_s=round(N / best / 1e6, 2), violations=nv, threads=nthreads,
            loadavg=[round(x, 2) for x in os.getloadavg()])


# ---------------------------------------------------------------- OTLP ingest
@pytest.fixture(scope="module")
def otlp_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    p = tmp_path_factory.mktemp("otlp") / "traces.jsonl"
    spans = W.otlp_file(p, n_traces=max(1000, N // 400))
    return p, spans


@pytest.mark.benchmark(group="otlp-ingest")
def test_otlp_ingest_ours(benchmark: Any, otlp_path: tuple[Path, int]) -> None:
    p, spans = otlp_path
    n = benchmark.pedantic(lambda: len(guards.EventSet.read(str(p))), rounds=3, iterations=1)
    secs = benchmark.stats.stats.min
    mb = p.stat().st_size / 1e6
    _record("otlp-ingest", "ours (Rust serde_json)", spans=spans, events=n, mb=round(mb, 1), seconds=round(secs, 3),
            mb_s=round(mb / secs, 1), kspans_s=round(spans / secs / 1e3, 1))


@pytest.mark.benchmark(group="otlp-ingest")
def test_otlp_ingest_python(benchmark: Any, otlp_path: tuple[Path, int]) -> None:
    p, spans = otlp_path
    rows = benchmark.pedantic(lambda: W.python_ingest(p), rounds=1, iterations=1)
    secs = benchmark.stats.stats.min
    es = guards.EventSet.read(str(p))
    assert len(rows) == len(es)
    for i in range(0, len(rows), max(1, len(rows) // 500)):
        t, name, attrs = es.event(i)
        assert (t, name, attrs) == rows[i], i
    mb = p.stat().st_size / 1e6
    _record("otlp-ingest", "json + Python loop", spans=spans, events=len(rows), mb=round(mb, 1), seconds=round(secs, 3),
            mb_s=round(mb / secs, 1), kspans_s=round(spans / secs / 1e3, 1), agree_with_ours=True)


# ---------------------------------------------------------------- live SpanProcessor
def _latencies(with_guards: bool, n: int, io: bool) -> tuple[list[float], Any]:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from maestro_core.otel import GuardSpanProcessor

    tp = TracerProvider()
    p: Any = GuardSpanProcessor(guards.shipped(), lateness="5s") if with_guards else SpanProcessor()
    tp.add_span_processor(p)
    tr = tp.get_tracer("bench")
    for _ in range(200):
        W.request(tr, io)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        W.request(tr, io)
        lat.append((time.perf_counter_ns() - t0) / 1e3)
    tp.shutdown()
    return lat, p


@pytest.mark.benchmark(group="span-processor")
@pytest.mark.parametrize("io", [False, True], ids=["cpu-bound", "io-mixed"])
def test_span_processor_overhead(benchmark: Any, io: bool) -> None:
    """p50/p95 of the request with a no-op processor vs GuardSpanProcessor.

    Rounds alternate which side runs first (ABBA), so drift hits both; the
    p95 overhead is taken on the pooled latencies, with a 95% bootstrap
    interval from resampling whole rounds (paired: a round's two sides stay
    together). ``CEP_SPAN_ROUNDS`` (default 40) x 1000 requests per side."""
    pytest.importorskip("opentelemetry.sdk.trace")
    rounds = int(os.environ.get("CEP_SPAN_ROUNDS", "40")) if N >= 1_000_000 else 4
    per = 1000 if N >= 1_000_000 else 150
    base_r: list[np.ndarray] = []
    ours_r: list[np.ndarray] = []

    def one() -> Any:
        p = None
        for r in range(rounds):
            if r % 2 == 0:
                b, _ = _latencies(False, per, io)
                o, p = _latencies(True, per, io)
            else:
                o, p = _latencies(True, per, io)
                b, _ = _latencies(False, per, io)
            base_r.append(np.asarray(b))
            ours_r.append(np.asarray(o))
        return p

    p = benchmark.pedantic(one, rounds=1, iterations=1)
    assert p.errors == [] and p.late == 0 and len(p.violations) == 0
    base, ours = np.concatenate(base_r), np.concatenate(ours_r)
    b50, b95 = np.percentile(base, [50, 95])
    o50, o95 = np.percentile(ours, [50, 95])
    rng = np.random.default_rng(0)
    boot95, boot50 = [], []
    for _ in range(1000):
        idx = rng.integers(0, rounds, size=rounds)
        bb = np.concatenate([base_r[i] for i in idx])
        oo = np.concatenate([ours_r[i] for i in idx])
        qb, qo = np.percentile(bb, [50, 95]), np.percentile(oo, [50, 95])
        boot50.append((qo[0] / qb[0] - 1) * 100)
        boot95.append((qo[1] / qb[1] - 1) * 100)
    ci95 = [round(float(x), 2) for x in np.percentile(boot95, [2.5, 97.5])]
    ci50 = [round(float(x), 2) for x in np.percentile(boot50, [2.5, 97.5])]
    per_round = [(np.percentile(o, 95) / np.percentile(b, 95) - 1) * 100 for b, o in zip(base_r, ours_r)]
    _record("span-processor", f"no-op processor vs GuardSpanProcessor (all guards), {'io-mixed' if io else 'cpu-bound'} request",
            requests=int(base.size),
            base_p50_us=round(float(b50), 1), base_p95_us=round(float(b95), 1),
            guards_p50_us=round(float(o50), 1), guards_p95_us=round(float(o95), 1),
            p95_overhead_pct=round(float((o95 / b95 - 1) * 100), 2), p95_overhead_ci95=ci95,
            p50_overhead_pct=round(float((o50 / b50 - 1) * 100), 2), p50_overhead_ci95=ci50,
            rounds=rounds, round_p95_overhead_pct_min_median_max=[round(float(min(per_round)), 1),
                                                                   round(float(statistics.median(per_round)), 1),
                                                                   round(float(max(per_round)), 1)],
            loadavg=[round(x, 2) for x in os.getloadavg()])


@pytest.mark.benchmark(group="span-processor")
@pytest.mark.parametrize("io", [False, True], ids=["cpu-bound", "io-mixed"])
def test_span_processor_overhead_paired(benchmark: Any, io: bool) -> None:
    """The request-path cost alone: one TracerProvider whose span processor is
    switched between a no-op ``SpanProcessor`` and ``GuardSpanProcessor`` from
    one request to the next (pairs, alternating which goes first), so both
    sides share the process, its threads, heap and caches and any drift. The
    guard processor and its feed thread stay alive throughout: the feed
    thread's work (matching, off the request path, every 50 ms) falls on both
    sides alike, and its CPU is reported apart (``feed_cpu_us_per_span``).
    95% bootstrap intervals resample blocks of 1000 pairs."""
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from maestro_core.otel import GuardSpanProcessor

    pairs = int(os.environ.get("CEP_SPAN_PAIRS", "40000")) if N >= 1_000_000 else 600
    block = 1000 if pairs >= 10_000 else 100
    tp = TracerProvider()
    noop, gp = SpanProcessor(), GuardSpanProcessor(guards.shipped(), lateness="5s")
    tp.add_span_processor(noop)
    multi = tp._active_span_processor  # the SDK's SynchronousMultiSpanProcessor
    tr = tp.get_tracer("bench")
    use_base, use_guards = (noop,), (gp,)

    def one() -> tuple[np.ndarray, np.ndarray]:
        base = np.empty(pairs)
        ours = np.empty(pairs)
        for procs in (use_base, use_guards):
            multi._span_processors = procs
            for _ in range(300):
                W.request(tr, io)
        for i in range(pairs):
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                multi._span_processors = use_guards if side else use_base
                t0 = time.perf_counter_ns()
                W.request(tr, io)
                dt = (time.perf_counter_ns() - t0) / 1e3
                if side:
                    ours[i] = dt
                else:
                    base[i] = dt
        return base, ours

    cpu0 = time.thread_time()
    t_all0 = time.process_time()
    base, ours = benchmark.pedantic(one, rounds=1, iterations=1)
    other_threads_cpu = (time.process_time() - t_all0) - (time.thread_time() - cpu0)
    gp.force_flush()
    st = gp.stats()
    gp.shutdown()  # not on the provider: only switched in
    tp.shutdown()
    assert gp.errors == [] and gp.late == 0 and len(gp.violations) == 0
    b50, b95 = np.percentile(base, [50, 95])
    o50, o95 = np.percentile(ours, [50, 95])
    rng = np.random.default_rng(0)
    nb = pairs // block
    bb_, oo_ = base[: nb * block].reshape(nb, block), ours[: nb * block].reshape(nb, block)
    boot50, boot95 = [], []
    for _ in range(1000):
        idx = rng.integers(0, nb, size=nb)
        qb = np.percentile(bb_[idx], [50, 95])
        qo = np.percentile(oo_[idx], [50, 95])
        boot50.append((qo[0] / qb[0] - 1) * 100)
        boot95.append((qo[1] / qb[1] - 1) * 100)
    ci95 = [round(float(x), 2) for x in np.percentile(boot95, [2.5, 97.5])]
    ci50 = [round(float(x), 2) for x in np.percentile(boot50, [2.5, 97.5])]
    guarded_spans = 3 * (pairs + 300)
    _record("span-processor", f"paired per request, no-op vs GuardSpanProcessor (all guards), {'io-mixed' if io else 'cpu-bound'} request",
            pairs=pairs,
            base_p50_us=round(float(b50), 1), base_p95_us=round(float(b95), 1),
            guards_p50_us=round(float(o50), 1), guards_p95_us=round(float(o95), 1),
            p95_overhead_pct=round(float((o95 / b95 - 1) * 100), 2), p95_overhead_ci95=ci95,
            p50_overhead_pct=round(float((o50 / b50 - 1) * 100), 2), p50_overhead_ci95=ci50,
            matched_events=st.get("events"),
            feed_cpu_us_per_span=round(other_threads_cpu / guarded_spans * 1e6, 2),
            loadavg=[round(x, 2) for x in os.getloadavg()])
