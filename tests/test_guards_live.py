"""The OpenTelemetry SpanProcessor, and bounded state (eviction)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_core import guards

otel = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.trace import SpanKind  # noqa: E402


def _provider(p: object) -> object:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    tp = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    tp.add_span_processor(p)  # type: ignore[arg-type]
    return tp


def test_span_processor_reports_live_and_at_shutdown() -> None:
    from maestro_core.otel import GuardSpanProcessor

    seen: list[guards.Violation] = []
    gs = [g for g in guards.shipped() if g.name in ("auth_before_write", "save_acknowledged", "request_timeout")]
    p = GuardSpanProcessor(gs, on_violation=seen.append, lateness="200ms", interval=0.01)
    tp = _provider(p)
    tr = tp.get_tracer("test")  # type: ignore[attr-defined]
    with tr.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        with tr.start_as_current_span("authz.check"):
            pass
        with tr.start_as_current_span("INSERT orders", attributes={"db.operation.name": "INSERT"}):
            pass
    with tr.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as s:
        s.add_event("save")
        with tr.start_as_current_span("UPDATE orders", attributes={"db.operation.name": "UPDATE", "tags": ["a", "b"]}):
            pass
    deadline = time.time() + 5
    while not any(v.guard == "auth_before_write" for v in seen) and time.time() < deadline:
        time.sleep(0.02)
    live = [v.guard for v in seen]
    assert live == ["auth_before_write"], live  # found live, before shutdown
    tp.shutdown()  # type: ignore[attr-defined]
    assert sorted(v.guard for v in seen) == ["auth_before_write", "save_acknowledged"]
    assert p.errors == [] and p.late == 0
    st = p.stats()
    assert st["events"] == 6


def test_span_processor_counts_late_spans() -> None:
    from maestro_core.otel import GuardSpanProcessor

    [g] = guards.compile("guard g { match x }")
    p = GuardSpanProcessor([g], lateness="10ms", interval=0.01)
    tp = _provider(p)
    tr = tp.get_tracer("t")  # type: ignore[attr-defined]
    with tr.start_as_current_span("x"):
        pass
    time.sleep(0.1)
    old = time.time_ns() - 5_000_000_000
    tr.start_span("x", start_time=old).end(end_time=old + 10)
    tp.shutdown()  # type: ignore[attr-defined]
    assert [v.guard for v in p.violations] == ["g"]
    assert p.late == 1


def test_state_is_evicted() -> None:
    """1M events over 200k keys: live keys stay near those active in the window."""
    [g] = guards.compile("guard g { within 1ms match a -> !c -> b }")
    m = guards.Matcher([g])
    rng = np.random.default_rng(7)
    n, keys = 1_000_000, 200_000
    for part in range(4):
        t = np.arange(part * n // 4, (part + 1) * n // 4, dtype=np.int64) * 1_000  # 1 µs apart
        k = rng.integers(0, keys, size=t.size, dtype=np.int64)
        c = rng.integers(0, 4, size=t.size, dtype=np.int64)
        m.feed_arrays(t, k, c, ["a", "b", "c", "d"])
        st = m.stats()
        # a run lives at most 1 ms = 1000 events: at most ~1000 keys hold one
        assert st["live_keys"] <= 1100, st
    assert m.stats()["evicted_keys"] > 150_000
    m.finish()
    assert m.stats()["live_keys"] == 0
    assert len(m.violations()) > 0


def test_doctests() -> None:
    import doctest

    from maestro_core import otel as otel_mod

    for mod in (guards, otel_mod):
        r = doctest.testmod(mod)
        assert r.attempted > 0 and r.failed == 0, mod.__name__


def test_violation_arrays_match_objects() -> None:
    [g] = guards.compile("guard g { match a -> no b within 2ns | a -> c }")
    t = np.arange(12, dtype=np.int64)
    c = np.array([0, 2, 0, 3, 3, 3, 0, 1, 0, 2, 3, 3], dtype=np.int64)
    k = np.array([1, 1, 2, 2, 2, 2, 1, 1, 3, 3, 3, 3], dtype=np.int64)
    vs = []
    arrs = []
    for take in ("objects", "arrays"):
        m = guards.Matcher([g])
        m.feed_arrays(t, k, c, ["a", "b", "c", "d"])
        m.finish()
        if take == "objects":
            vs = [(0, int(v.kind == "deadline"), v.time, -1 if v.seq is None else v.seq, v.key) for v in m.violations()]
        else:
            a = m.violation_arrays()
            assert a["str_keys"] is None
            arrs = list(zip(*(a[x].tolist() for x in ("guard", "kind", "time", "seq", "key"))))
    assert vs == arrs and len(vs) >= 3


def test_rust_span_conversion_matches_python_mapping() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from maestro_core.otel import span_rows

    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "shop", "n": 3}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tr = tp.get_tracer("scope-x")
    with tr.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"f": 1.5, "b": True, "l": [1, 2]}) as s:
        s.add_event("ev", {"k": "v"})
        with tr.start_as_current_span("child", kind=SpanKind.CLIENT) as c:
            c.set_status(Status(StatusCode.ERROR, "boom"))
    spans = list(exp.get_finished_spans())
    rows = span_rows(spans)
    es = guards.EventSet.from_spans(spans)
    assert len(es) == len(rows) == 3
    got = sorted((es.event(i)[0], es.event(i)[1], sorted(es.event(i)[2].items())) for i in range(len(es)))
    want = sorted((t, n, sorted({k: (v if not isinstance(v, tuple) else "[1,2]") for k, v in a.items()}.items())) for t, n, a in rows)
    assert got == want


class _Public:
    """Only the public ReadableSpan API: the feed's fallback reader."""

    def __init__(self, span: object) -> None:
        self._span_ = span

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._span_, name)


def test_live_feed_agrees_with_offline_conversion() -> None:
    """The processor's per-span copy (only the attributes the guards read,
    through the SDK's fields) finds what the full conversion finds."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from maestro_core.otel import GuardSpanProcessor

    gs = guards.shipped()
    exp = InMemorySpanExporter()
    p = GuardSpanProcessor(gs, lateness="1h")
    tp = TracerProvider(resource=Resource.create({"service.name": "shop", "enduser.id": "u1"}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tp.add_span_processor(p)
    tr = tp.get_tracer("t")
    rng = np.random.default_rng(5)
    names = ["save", "retry", "success", "authz.check", "INSERT orders", "login", "payment.charge", "lock.acquire",
             "db.transaction.begin", "db.transaction.rollback", "fanout.dispatch", "fanout.task", "checkout.submit"]
    for _ in range(60):
        with tr.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as root:
            for _ in range(int(rng.integers(1, 6))):
                n = names[int(rng.integers(0, len(names)))]
                attrs = {"db.operation.name": "INSERT", "lock.name": "l", "idempotency.key": "k",
                         "http.request.resend_count": int(rng.integers(0, 2)), "ignored": [1, 2]}
                kind = [SpanKind.CLIENT, SpanKind.INTERNAL][int(rng.integers(0, 2))]
                with tr.start_as_current_span(n, kind=kind, attributes=attrs) as c:
                    if rng.random() < 0.3:
                        c.set_status(Status(StatusCode.ERROR, "boom"))
                    if rng.random() < 0.3:
                        c.add_event(names[int(rng.integers(0, len(names)))], {"k": "v"})
            root.add_event("save")
    tp.shutdown()
    assert p.errors == [] and p.late == 0
    m = guards.Matcher(gs, lateness_ns=None)
    m.feed(guards.EventSet.from_spans(list(exp.get_finished_spans())))
    m.finish()
    want = sorted((v.guard, v.key, v.kind, v.time) for v in m.violations())
    got = sorted((v.guard, v.key, v.kind, v.time) for v in p.violations)
    assert got == want and len(want) > 10

    # a span object with only the public ReadableSpan API (another SDK's, or a
    # wrapper) goes through the fallback reader and finds the same
    q = GuardSpanProcessor(gs, lateness="1h")
    for sp in exp.get_finished_spans():
        q.on_end(_Public(sp))  # type: ignore[arg-type]
    q.shutdown()
    assert q.errors == [] and q.late == 0
    assert sorted((v.guard, v.key, v.kind, v.time) for v in q.violations) == want


@pytest.mark.parametrize("keys", ["trace-like", "uniform"])
def test_thread_count_does_not_change_violations(keys: str) -> None:
    """Guards stepped in parallel: the same violations in the same order."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
    import cep_workload as W

    w = W.otel_columns(200_000, n_keys=2000, live=100 if keys == "trace-like" else None)
    out = []
    for threads in (1, 2, 3, 0):
        m = guards.Matcher(guards.shipped(), lateness_ns=0, threads=threads)
        half = 120_000  # two batches, the second not aligned to a chunk
        for lo, hi in ((0, half), (half, 200_000)):
            attrs = {k: (v[0][lo:hi], v[1]) if isinstance(v, tuple) else v[lo:hi] for k, v in w["attrs"].items()}
            m.feed_arrays(w["times"][lo:hi], w["keys"][lo:hi], w["codes"][lo:hi], w["names"], attrs)
        m.finish()
        out.append([(v.guard, v.key, v.kind, v.time, v.seq, v.start_time) for v in m.violations()])
    assert len(out[0]) > 100
    assert all(o == out[0] for o in out[1:])


def test_on_end_with_a_bad_span_records_an_error_and_never_raises() -> None:
    """``on_end`` is the native ``SpanFeed.on_end`` bound on the instance: a
    non-span must not raise into the instrumented program; it is reported."""
    from maestro_core.otel import GuardSpanProcessor

    p = GuardSpanProcessor(guards.shipped(), lateness="1s")
    assert p.on_end is not GuardSpanProcessor.on_end  # bound to the native method
    p.on_end(object())  # type: ignore[arg-type]
    p.on_end(None)  # type: ignore[arg-type]
    p.shutdown()
    assert len(p.errors) == 2
    assert all(e.startswith("on_end: expected a finished OpenTelemetry SDK span") for e in p.errors), p.errors


def test_subclass_overriding_on_end_keeps_its_own_method() -> None:
    from maestro_core.otel import GuardSpanProcessor

    seen: list[object] = []

    class Counting(GuardSpanProcessor):
        def on_end(self, span: object) -> None:  # type: ignore[override]
            seen.append(span)
            super().on_end(span)

    p = Counting(guards.shipped(), lateness="1s")
    p.on_end(object())  # type: ignore[arg-type]
    p.shutdown()
    assert len(seen) == 1 and len(p.errors) == 1


# Every pseudo-attribute and a few attributes, so the feed copies all it can.
_WIDE = """
guard wide {
  per trace_id
  match x[span_id exists, parent_span_id exists, span.kind exists, status.code exists, status.message exists,
          duration_ns >= 0, scope.name exists, event.kind exists, span.name exists, service.name exists,
          a exists, b exists, big exists, l exists] -> y within 1s
}
"""

_attr_value = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.lists(st.text(max_size=3), max_size=2).map(tuple),
)
_attrs = st.dictionaries(st.sampled_from(["a", "b", "l", "unread", "big"]), _attr_value, max_size=4)
_span_spec = st.fixed_dictionaries({
    "name": st.text(min_size=1, max_size=8),
    "kind": st.sampled_from(list(SpanKind)),
    "attrs": _attrs,
    "big": st.one_of(st.none(), st.integers(2**63, 2**70)),
    "events": st.lists(st.tuples(st.text(max_size=5), _attrs), max_size=3),
    "status": st.sampled_from([None, ("ERROR", "boom"), ("ERROR", None), ("OK", None)]),
    "child": st.booleans(),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(_span_spec, min_size=1, max_size=3), scope=st.sampled_from(["", "lib-x"]))
def test_span_record_matches_the_public_reader_and_the_offline_conversion(specs: list[dict], scope: str) -> None:
    """What the live feed copies from an SDK span (its private fields, as a
    byte record decoded on the feed thread) is what the public-API reader
    and the offline span conversion (`EventSet.from_spans`) give, restricted
    to the attributes the guards read; values it cannot take fail both
    readers with the same error."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from maestro_core.errors import TraceFormatError
    from maestro_core.otel import GuardSpanProcessor

    p = GuardSpanProcessor(guards.compile(_WIDE), lateness="1h")
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "shop", "unread": 1}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tr = tp.get_tracer(scope)
    for sp in specs:
        attrs = dict(sp["attrs"])
        if sp["big"] is not None:
            attrs["big"] = sp["big"]
        with tr.start_as_current_span(sp["name"], kind=sp["kind"], attributes=attrs) as s:
            for en, ea in sp["events"]:
                s.add_event(en, ea)
            if sp["status"]:
                s.set_status(Status(StatusCode[sp["status"][0]], sp["status"][1]))
            if sp["child"]:
                with tr.start_as_current_span("child"):
                    pass
    feed = p._feed
    wanted = set(feed.attributes)
    assert {"trace_id", "span_id", "parent_span_id", "status.message", "scope.name", "a", "big"} <= wanted
    try:
        for span in exp.get_finished_spans():
            try:
                fast = feed.events_of(span)
            except TraceFormatError as e:
                with pytest.raises(TraceFormatError) as slow_e:
                    feed.events_of(_Public(span))
                assert str(slow_e.value) == str(e) and "beyond 64 bits" in str(e)
                continue
            slow = feed.events_of(_Public(span))
            es = guards.EventSet.from_spans([span])
            offline = [es.event(i) for i in range(len(es))]
            offline = [(t, n, {k: v for k, v in a.items() if k in wanted}) for t, n, a in offline]
            assert fast == slow
            assert sorted(fast, key=repr) == sorted(offline, key=repr)
            assert len(fast) == 1 + len(span.events)
    finally:
        p.shutdown()
        tp.shutdown()


def test_a_processor_never_shut_down_is_shut_down_at_exit() -> None:
    """Its thread must not be in a native wait when the interpreter
    finalizes (CPython 3.11 would end it with pthread_exit through native
    frames: an abort). An exit hook registered before the processor runs
    after the processor's own and sees it shut down."""
    import subprocess
    import sys

    code = """
import atexit
def check():
    print("stopped" if p._stop.is_set() and not p._thread.is_alive() else "running", flush=True)
atexit.register(check)
from maestro_core import guards
from maestro_core.otel import GuardSpanProcessor
p = GuardSpanProcessor(guards.shipped(), lateness="1s", interval=0.001)
q = GuardSpanProcessor(guards.shipped(), lateness="1s")
q.shutdown()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stopped", (r.stdout, r.stderr)
