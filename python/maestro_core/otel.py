"""Live guard checking inside an OpenTelemetry Python SDK process.

:class:`GuardSpanProcessor` is a ``SpanProcessor``. ``on_end`` makes one
native call per span that copies only what the loaded guards can read
(name, times, trace/span ids as integers, kind, status, and the attributes
the guards name; under a microsecond) as a flat record into a reused
buffer (no allocation per span); a Rust thread converts
those to events with the same mapping as the OTLP readers (one event per
span at its start time, one per span event, the same pseudo-attributes),
feeds them to a Rust :class:`~maestro_core.guards.Matcher` and advances the
watermark with the wall clock, so absence deadlines fire even when no span
comes. That thread never takes the GIL; a Python thread sleeps (without
the GIL) until violations are ready and then calls ``on_violation``.

Spans reach a processor when they *end*, but events are timed at their
*start*: ``lateness`` must cover the longest span duration (default 30 s);
events later than that are counted in :attr:`GuardSpanProcessor.late`, not
matched.

Requires ``opentelemetry-sdk`` (the ``otel`` extra).

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from maestro_core import guards
>>> from maestro_core.otel import GuardSpanProcessor
>>> seen = []
>>> p = GuardSpanProcessor(guards.compile('guard no_delete { match "DELETE users" }'), on_violation=seen.append)
>>> tp = TracerProvider(); tp.add_span_processor(p)
>>> with tp.get_tracer("t").start_as_current_span("DELETE users"): pass
>>> tp.shutdown()
>>> [v.guard for v in seen]
['no_delete']
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import _native
from .guards import Guard, Matcher, Violation, parse_duration

__all__ = ["GuardSpanProcessor", "span_rows"]

_STATUS = {0: "unset", 1: "ok", 2: "error"}


def _resource_attrs(span: ReadableSpan, cache: dict[int, dict[str, Any]]) -> dict[str, Any]:
    res = span.resource
    key = id(res)
    got = cache.get(key)
    if got is None:
        got = dict(res.attributes) if res is not None else {}
        cache[key] = got
    return got


def span_rows(spans: Sequence[ReadableSpan], cache: dict[int, dict[str, Any]] | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """Events ``(time_ns, name, attributes)`` of finished spans, in Python.

    The processor converts in Rust (``EventSet.from_spans`` /
    ``GuardMatcher.feed_spans``); this is the readable reference of the
    same mapping, used by the tests to check it."""
    cache = {} if cache is None else cache
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for s in spans:
        ctx = s.context
        if ctx is None or s.start_time is None:
            continue
        a = dict(_resource_attrs(s, cache))
        if s.attributes:
            a.update(s.attributes)
        scope = s.instrumentation_scope
        if scope is not None and scope.name:
            a["scope.name"] = scope.name
        a["trace_id"] = format(ctx.trace_id, "032x")
        a["span_id"] = format(ctx.span_id, "016x")
        if s.parent is not None:
            a["parent_span_id"] = format(s.parent.span_id, "016x")
        a["span.kind"] = s.kind.name.lower()
        a["status.code"] = _STATUS.get(s.status.status_code.value, "unset")
        if s.status.description:
            a["status.message"] = s.status.description
        a["duration_ns"] = (s.end_time - s.start_time) if s.end_time else 0
        span_a = dict(a)
        span_a["event.kind"] = "span"
        rows.append((s.start_time, s.name, span_a))
        for e in s.events:
            ea = dict(a)
            ea["span.name"] = s.name
            if e.attributes:
                ea.update(e.attributes)
            ea["event.kind"] = "span_event"
            rows.append((e.timestamp, e.name, ea))
    return rows


def _shutdown_later(ref: weakref.ref[GuardSpanProcessor]) -> Callable[[], None]:
    def at_exit() -> None:
        p = ref()
        if p is not None:
            p.shutdown()

    return at_exit


class GuardSpanProcessor(SpanProcessor):
    """Check guards on the spans of this process, live.

    Parameters
    ----------
    guards:
        Compiled guards (:func:`maestro_core.guards.compile`, ``shipped()``).
    on_violation:
        Called (from a background thread) with each :class:`Violation`.
    lateness:
        Allowed out-of-orderness of span start times (``"30s"``).
    interval:
        How often (seconds) the watermark follows the wall clock.
    """

    def __init__(
        self,
        guards: Sequence[Guard],
        on_violation: Callable[[Violation], None] | None = None,
        lateness: str | int = "30s",
        interval: float = 0.05,
    ) -> None:
        self._lateness = parse_duration(lateness)
        # one thread: the feed thread is already off the request path
        self._matcher = Matcher(guards, lateness_ns=self._lateness, threads=1)
        self._feed = _native.SpanFeed(self._matcher._inner, self._lateness, max(1000, int(interval * 1e9)))
        self._on_violation = on_violation
        self._interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.violations: deque[Violation] = deque(maxlen=10_000)
        self.late = 0
        self.errors: list[str] = []
        # The SDK calls ``on_end`` on the request path: bind the native method
        # itself (no Python frame per span); it never raises, errors go to
        # ``errors`` through the feed.
        if type(self).on_end is GuardSpanProcessor.on_end:
            self.__dict__["on_end"] = self._feed.on_end
        self._thread = threading.Thread(target=self._loop, name="maestro-guards", daemon=True)
        self._thread.start()
        # A processor nobody shut down is shut down at exit, before the
        # interpreter finalizes: CPython 3.11 ends a thread that comes back
        # from a GIL-released native call during finalization with
        # pthread_exit, which aborts the process when it unwinds through
        # the native frames ("FATAL: exception not rethrown").
        self._at_exit = _shutdown_later(weakref.ref(self))
        atexit.register(self._at_exit)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # Replaced per instance by the native ``SpanFeed.on_end`` (see
        # ``__init__``); kept for subclasses that call ``super().on_end``.
        self._feed.on_end(span)

    def _collect(self) -> None:
        with self._lock:
            try:
                vs = self._matcher.violations()
                self.late += len(self._matcher.late_events())
            except Exception as e:  # never break the instrumented program
                self.errors.append(str(e))
                return
            self.errors.extend(self._feed.errors())
        for v in vs:
            self.violations.append(v)
            if self._on_violation is not None:
                try:
                    self._on_violation(v)
                except Exception as e:  # a faulty callback must not stop checking
                    self.errors.append(f"on_violation: {e}")

    def _loop(self) -> None:
        # sleeps in Rust, without the GIL, until something is ready
        while not self._stop.is_set():
            if self._feed.wait(1.0) and not self._stop.is_set():
                self._collect()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = bool(self._feed.flush(timeout_millis / 1000))
        self._collect()
        return ok

    def shutdown(self) -> None:
        if self._stop.is_set():
            return
        atexit.unregister(self._at_exit)
        self._stop.set()
        self._feed.close()
        self._thread.join(timeout=5)
        self._collect()

    def stats(self) -> dict[str, Any]:
        return {**self._matcher.stats(), "queued": self._feed.queued, "late_spans": self.late}
