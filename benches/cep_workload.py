"""Synthetic workloads for the SpecLive guard benchmarks (deterministic)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

# Names the shipped guards react to, plus ordinary spans (most events).
GUARD_NAMES = [
    "save", "retry", "success", "request", "payment.charge", "authz.check", "db.transaction.begin",
    "db.transaction.commit", "db.transaction.rollback", "circuit_breaker.open", "circuit_breaker.close",
    "fanout.dispatch", "fanout.task", "fanout.complete", "login", "payment.authorize", "fraud.check",
    "payment.capture", "lock.acquire", "lock.release", "checkout.submit", "page.view",
]
PLAIN = ["GET /orders", "POST /orders", "SELECT orders", "INSERT orders", "UPDATE stock", "render", "cache.get", "publish"]
NAMES = GUARD_NAMES + PLAIN


def otel_columns(n: int, n_keys: int, seed: int = 1, live: int | None = None) -> dict[str, Any]:
    """``n`` events, 1 µs apart, with the attribute columns the shipped
    guards read; 70% are plain spans. Keys (traces): uniform over
    ``n_keys`` when ``live`` is None; else trace-like: about ``live``
    traces are open at any time, each gets ``n_keys``-independent ~32
    events, and traces end (``n / 32 + live`` distinct keys in all)."""
    rng = np.random.default_rng(seed)
    times = np.arange(n, dtype=np.int64) * 1_000
    if live is None:
        keys = rng.integers(0, n_keys, size=n, dtype=np.int64)
    else:
        keys = (np.arange(n, dtype=np.int64) * live) // (32 * live) + rng.integers(0, live, size=n, dtype=np.int64)
    plain = rng.random(n) < 0.7
    codes = np.where(plain, rng.integers(len(GUARD_NAMES), len(NAMES), size=n),
                     rng.integers(0, len(GUARD_NAMES), size=n)).astype(np.int64)
    kinds = ["internal", "server", "client"]
    status = ["unset", "ok", "error"]
    ops = ["SELECT", "INSERT", "UPDATE", "DELETE"]
    # mostly healthy traffic: 1% errors, 0.5% 5xx, ~0.1% spans over 2 s, 1% resends
    attrs = {
        "span.kind": (rng.integers(0, 3, size=n, dtype=np.int64), kinds),
        "status.code": (rng.choice(3, size=n, p=[0.6, 0.39, 0.01]).astype(np.int64), status),
        "http.response.status_code": rng.choice([200, 201, 404, 500, 503], size=n, p=[0.85, 0.1, 0.045, 0.0025, 0.0025]).astype(np.int64),
        "db.operation.name": (np.where(rng.random(n) < 0.2, rng.choice(4, size=n, p=[0.9, 0.04, 0.04, 0.02]), -1).astype(np.int64), ops),
        "duration_ns": np.minimum(rng.lognormal(16.1, 1.5, size=n), 6e10).astype(np.int64),
        "http.request.resend_count": rng.choice([0, 1], size=n, p=[0.99, 0.01]).astype(np.int64),
        "lock.name": (np.where(codes == NAMES.index("lock.acquire"), 0, -1).astype(np.int64), ["orders"]),
    }
    return {"times": times, "keys": keys, "codes": codes, "names": NAMES, "attrs": attrs}


def otlp_file(path: Path, n_traces: int, spans_per_trace: int = 8, seed: int = 2) -> int:
    """Write Collector-style OTLP/JSON lines; returns the number of spans."""
    rng = np.random.default_rng(seed)
    t0 = 1_750_000_000_000_000_000
    lines = []
    for i in range(n_traces):
        tid = f"{i:032x}"
        spans = []
        for j in range(spans_per_trace):
            start = t0 + i * 1_000_000 + j * 1_000
            name = NAMES[int(rng.integers(0, len(NAMES)))]
            spans.append({
                "traceId": tid, "spanId": f"{i * 64 + j:016x}", "parentSpanId": "" if j == 0 else f"{i * 64:016x}",
                "name": name, "kind": int(rng.integers(1, 4)),
                "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + int(rng.integers(1000, 10_000_000))),
                "attributes": [
                    {"key": "http.response.status_code", "value": {"intValue": str(int(rng.choice([200, 500])))}},
                    {"key": "db.operation.name", "value": {"stringValue": "INSERT"}},
                    {"key": "retry.ok", "value": {"boolValue": True}},
                ],
                "events": [{"timeUnixNano": str(start + 10), "name": "retry", "attributes": []}] if j % 4 == 0 else [],
                "status": {"code": int(rng.integers(0, 3))},
            })
        doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                                  "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}
        lines.append(json.dumps(doc, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")
    return n_traces * spans_per_trace


_KIND = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def _any(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    raise ValueError(f"unknown AnyValue {v}")


def python_ingest(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """The peer: ``json`` + a Python loop doing the same mapping to events."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            for rs in doc["resourceSpans"]:
                res = {a["key"]: _any(a["value"]) for a in rs.get("resource", {}).get("attributes", [])}
                for ss in rs["scopeSpans"]:
                    scope = ss.get("scope", {}).get("name")
                    for s in ss["spans"]:
                        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
                        a = dict(res)
                        a.update({x["key"]: _any(x["value"]) for x in s.get("attributes", [])})
                        if scope:
                            a["scope.name"] = scope
                        a["trace_id"] = s["traceId"].lower()
                        a["span_id"] = s["spanId"].lower()
                        if s.get("parentSpanId"):
                            a["parent_span_id"] = s["parentSpanId"].lower()
                        a["span.kind"] = _KIND[s.get("kind", 0)]
                        a["status.code"] = _STATUS[s.get("status", {}).get("code", 0)]
                        a["duration_ns"] = end - start
                        out.append((start, s["name"], {**a, "event.kind": "span"}))
                        for e in s.get("events", []):
                            ea = dict(a)
                            ea["span.name"] = s["name"]
                            ea.update({x["key"]: _any(x["value"]) for x in e.get("attributes", [])})
                            ea["event.kind"] = "span_event"
                            out.append((int(e["timeUnixNano"]), e["name"], ea))
    return out


def request(tr: Any, io: bool) -> None:
    """A request: an authz check, some CPU work, a database write (with a
    0.5 ms wait for the database when ``io``), save/success span events."""
    with tr.start_as_current_span("POST /orders") as s:
        with tr.start_as_current_span("authz.check"):
            pass
        x = 0
        for i in range(20_000 if not io else 5_000):
            x += i * i
        with tr.start_as_current_span("INSERT orders", attributes={"db.operation.name": "INSERT"}):
            if io:
                time.sleep(0.0005)
        s.add_event("save")
        s.add_event("success")
