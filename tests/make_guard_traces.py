"""Write the passing and violating OTLP/JSON trace of every shipped guard.

    python tests/make_guard_traces.py   # rewrites python/maestro_core/guards/traces/

The files are committed; tests read them (and check they are what this
script writes). Each file is Collector file-exporter output: one
``TracesData`` JSON object per line, ids in hex, enums as integers, 64-bit
integers as strings.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "python" / "maestro_core" / "guards" / "traces"
T0 = 1_750_000_000_000_000_000  # ns
MS = 1_000_000
KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
STATUS = {"unset": 0, "ok": 1, "error": 2}


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _val(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _val(v)} for k, v in d.items()]


def span(name: str, at_ms: float, dur_ms: float = 1, kind: str = "internal", status: str = "unset",
         events: list[tuple[str, float, dict[str, Any]]] | None = None, **attrs: Any) -> dict[str, Any]:
    return {"name": name, "at": at_ms, "dur": dur_ms, "kind": kind, "status": status, "events": events or [], "attrs": attrs}


def ev(name: str, at_ms: float, **attrs: Any) -> tuple[str, float, dict[str, Any]]:
    return (name, at_ms, attrs)


def otlp(traces: list[tuple[str, str, list[dict[str, Any]]]]) -> str:
    """``[(trace seed, service, spans)]`` → JSON lines (one per trace)."""
    lines = []
    for seed, service, spans in traces:
        tid = _hex(seed, 32)
        out = []
        for i, s in enumerate(spans):
            start = T0 + int(s["at"] * MS)
            out.append({
                "traceId": tid,
                "spanId": _hex(f"{seed}/{i}", 16),
                "parentSpanId": "" if i == 0 else _hex(f"{seed}/0", 16),
                "name": s["name"],
                "kind": KIND[s["kind"]],
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + int(s["dur"] * MS)),
                "attributes": _attrs(s["attrs"]),
                "events": [{"timeUnixNano": str(T0 + int(t * MS)), "name": n, "attributes": _attrs(a)} for n, t, a in s["events"]],
                "status": {"code": STATUS[s["status"]]},
            })
        doc = {"resourceSpans": [{
            "resource": {"attributes": _attrs({"service.name": service})},
            "scopeSpans": [{"scope": {"name": "maestro.example"}, "spans": out}],
        }]}
        lines.append(json.dumps(doc, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def one(spans: list[dict[str, Any]], seed: str = "t1", service: str = "shop") -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(seed, service, spans)]


W = {"db.operation.name": "INSERT", "db.system.name": "postgresql"}

CASES: dict[str, tuple[Any, Any]] = {
    "save_acknowledged": (
        one([span("POST /orders", 0, 900, "server"), span("save", 10), span("retry", 500), span("success", 2400)]),
        one([span("POST /orders", 0, 900, "server"), span("save", 10), span("retry", 500), span("other", 2000), span("success", 2600)]),
    ),
    "retry_budget": (
        one([span("request", 0, 100, "client"), span("retry", 10), span("retry", 20), span("retry", 30), span("success", 40), span("retry", 50)]),
        one([span("request", 0, 100, "client"), span("retry", 10), span("retry", 20),
             span("GET /stock", 25, 5, "client", **{"http.request.resend_count": 3}), span("retry", 40)]),
    ),
    "request_timeout": (
        one([span("GET /orders", 0, 1999, "server"), span("SELECT orders", 5, 2500, "client")]),
        one([span("GET /orders", 0, 2001, "server")]),
    ),
    "idempotency_key_reuse": (
        [("t1", "pay", [span("payment.charge", 0, 5, "client", **{"idempotency.key": "k-1"})]),
         ("t2", "pay", [span("payment.charge", 100, 5, "client", "error", **{"idempotency.key": "k-1"})]),
         ("t3", "pay", [span("payment.charge", 200, 5, "client", **{"idempotency.key": "k-2"})])],
        [("t1", "pay", [span("payment.charge", 0, 5, "client", **{"idempotency.key": "k-1"})]),
         ("t2", "pay", [span("payment.charge", 100, 5, "client", **{"idempotency.key": "k-1"})])],
    ),
    "auth_before_write": (
        one([span("POST /orders", 0, 50, "server"), span("authz.check", 1), span("INSERT orders", 5, 2, "client", **W)]),
        one([span("POST /orders", 0, 50, "server"), span("INSERT orders", 5, 2, "client", **W), span("authz.check", 10)]),
    ),
    "txn_completes": (
        one([span("db.transaction.begin", 0), span("INSERT orders", 5, 2, "client", **W), span("db.transaction.commit", 10)]),
        one([span("db.transaction.begin", 0), span("INSERT orders", 5, 2, "client", **W), span("db.transaction.commit", 31000)]),
    ),
    "no_write_after_rollback": (
        one([span("db.transaction.rollback", 0), span("db.transaction.begin", 5), span("INSERT orders", 6, 1, "client", **W)]),
        one([span("db.transaction.begin", 0), span("db.transaction.rollback", 3), span("INSERT orders", 6, 1, "client", **W)]),
    ),
    "circuit_breaker_opens": (
        one([span("GET /stock", i * 100, 5, "client", "error") for i in range(5)]
            + [span("breaker", 450, 1, events=[ev("circuit_breaker.open", 450)])], service="cart"),
        one([span("GET /stock", i * 100, 5, "client", "error") for i in range(5)]
            + [span("breaker", 1500, 1, events=[ev("circuit_breaker.open", 1500)])], service="cart"),
    ),
    "no_calls_while_open": (
        one([span("breaker", 0, 1, events=[ev("circuit_breaker.open", 0), ev("circuit_breaker.half_open", 5000)]),
             span("GET /stock", 5001, 5, "client")], service="cart"),
        one([span("breaker", 0, 1, events=[ev("circuit_breaker.open", 0)]), span("GET /stock", 100, 5, "client")], service="cart"),
    ),
    "fanout_completes": (
        one([span("fanout.dispatch", 0), span("fanout.task", 10), span("fanout.task", 12), span("fanout.complete", 300)]),
        one([span("fanout.dispatch", 0), span("fanout.task", 10), span("fanout.task", 12, status="error"), span("fanout.complete", 300)]),
    ),
    "error_burst": (
        one([span("GET /a", i * 3000, 5, "server", **{"http.response.status_code": 503}) for i in range(5)]),
        one([span("GET /a", i * 1000, 5, "server", **{"http.response.status_code": 500 + i}) for i in range(5)]),
    ),
    "db_query_storm": (
        one([span("SELECT item", i * 25, 1, "client", **{"db.system.name": "postgresql"}) for i in range(49)]),
        one([span("SELECT item", i * 10, 1, "client", **{"db.system": "mysql"}) for i in range(50)]),
    ),
    "login_bruteforce": (
        one([span("login", i * 20000, 5, "server", "error", **{"enduser.id": "alice"}) for i in range(5)]),
        one([span("login", i * 1000, 5, "server", "error", **{"enduser.id": "bob"}) for i in range(5)]),
    ),
    "message_settled": (
        one([span("orders receive", 0, 1, "consumer", **{"messaging.operation.type": "receive", "messaging.message.id": "m1"}),
             span("orders ack", 50, 1, "consumer", **{"messaging.operation.type": "settle", "messaging.message.id": "m1"})]),
        one([span("orders receive", 0, 1, "consumer", **{"messaging.operation.type": "receive", "messaging.message.id": "m2"})]),
    ),
    "capture_without_fraud_check": (
        one([span("payment.authorize", 0), span("fraud.check", 5), span("payment.capture", 10)]),
        one([span("fraud.check", 0), span("payment.authorize", 5), span("payment.capture", 10)]),
    ),
    "lock_reacquire": (
        one([span("lock.acquire", 0, **{"lock.name": "orders"}), span("lock.release", 5), span("lock.acquire", 10, **{"lock.name": "orders"})]),
        one([span("lock.acquire", 0, **{"lock.name": "orders"}), span("work", 5), span("lock.acquire", 10, **{"lock.name": "orders"})]),
    ),
    "checkout_double_submit": (
        one([span("checkout.submit", 0, **{"enduser.id": "u1"}), span("cart.update", 500, **{"enduser.id": "u1"}),
             span("checkout.submit", 900, **{"enduser.id": "u1"})]),
        one([span("checkout.submit", 0, **{"enduser.id": "u1"}), span("page.view", 500, **{"enduser.id": "u1"}),
             span("checkout.submit", 900, **{"enduser.id": "u1"})]),
    ),
}


def render() -> dict[str, str]:
    out = {}
    for name, (good, bad) in CASES.items():
        out[f"{name}.pass.jsonl"] = otlp(good)
        out[f"{name}.fail.jsonl"] = otlp(bad)
    return out


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, text in render().items():
        (OUT / fname).write_text(text)
    print(f"wrote {len(CASES) * 2} files to {OUT}", file=sys.stderr)
