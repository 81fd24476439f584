"""SpecLive guards: shipped guards, bundles, builder, CLI, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import make_guard_traces
from maestro_core import cards, guards
from maestro_core.cli import main
from maestro_core.errors import (
    EventTimeError,
    GuardError,
    GuardSyntaxError,
    InputError,
    TraceFormatError,
)
from maestro_core.guards import ANY, E, attr, count, no, not_

TRACES = guards.shipped_dir() / "traces"
SHIPPED = guards.shipped()


# ---------------------------------------------------------------- shipped guards
def test_at_least_15_documented_guards() -> None:
    assert len(SHIPPED) >= 15
    for g in SHIPPED:
        assert g.description, g.name
        assert g.source is not None and g.source.lstrip().startswith("#"), f"{g.name}: no comment header"
        assert (TRACES / f"{g.name}.pass.jsonl").is_file() and (TRACES / f"{g.name}.fail.jsonl").is_file()


def test_trace_files_are_what_the_generator_writes() -> None:
    for fname, text in make_guard_traces.render().items():
        assert (TRACES / fname).read_text() == text, fname


@pytest.mark.parametrize("g", SHIPPED, ids=lambda g: g.name)
def test_shipped_guard_pass_and_fail(g: guards.Guard) -> None:
    ok = guards.check_file(TRACES / f"{g.name}.pass.jsonl", [g])
    assert ok.violations == [] and ok.late == []
    bad = guards.check_file(TRACES / f"{g.name}.fail.jsonl", [g])
    assert bad.violations, g.name
    for v in bad.violations:
        b = guards.make_bundle(g, v, bad)
        assert b["guard_digest"] == g.digest and b["events"]
        assert 1 <= len(b["events"]) <= bad.events
        assert b["trace_ids"]
        res = guards.replay(json.loads(json.dumps(b)))
        assert res.ok, res.reasons


def test_bundle_slice_is_minimal() -> None:
    [g] = [x for x in SHIPPED if x.name == "capture_without_fraud_check"]
    r = guards.check_file(TRACES / "capture_without_fraud_check.fail.jsonl", [g])
    b = guards.make_bundle(g, r.violations[0], r)
    # fraud.check came before the authorization: only authorize + capture matter
    assert [e["name"] for e in b["events"]] == ["payment.authorize", "payment.capture"]


def test_tampered_bundle_does_not_replay(tmp_path: Path) -> None:
    [g] = [x for x in SHIPPED if x.name == "save_acknowledged"]
    r = guards.check_file(TRACES / "save_acknowledged.fail.jsonl", [g])
    b = guards.make_bundle(g, r.violations[0], r)
    late_ack = dict(b["events"][-1], name="success")
    late_ack["time"] = b["events"][-1]["time"] + 1
    b2 = {**b, "events": b["events"] + [late_ack]}
    assert not guards.replay(b2).ok
    b3 = {**b, "guard_source": b["guard_source"].replace("2s", "3s")}
    res = guards.replay(b3)
    assert not res.ok and any("digest" in x for x in res.reasons)


# ---------------------------------------------------------------- builder
def test_builder_matches_text_digest() -> None:
    text = {g.name: g for g in SHIPPED}
    ok = E("success") | E("save.ok")
    built = [
        guards.guard("save_acknowledged").match(E("save") >> E("retry").times(0, 3) >> no(ok, within="2s")).build(),
        guards.guard("auth_before_write").match(
            not_(ANY.where(attr("name").matches("^authz\\."))) >> ANY.where(attr("db.operation.name").isin(["INSERT", "UPDATE", "DELETE", "MERGE"]))
        ).build(),
        guards.guard("circuit_breaker_opens").per("service.name").match(
            count(ANY.where(attr("span.kind") == "client", attr("status.code") == "error"), 5, "10s") >> no(E("circuit_breaker.open"), within="1s")
        ).build(),
        guards.guard("checkout_double_submit").per("enduser.id").contiguity("strict").within("2s").match(
            E("checkout.submit") >> E("page.view").zero_or_more() >> E("checkout.submit")
        ).build(),
        guards.guard("idempotency_key_reuse").per("idempotency.key").within("24h").match(
            E("payment.charge").where(~(attr("status.code") == "error")) >> E("payment.charge").where(~(attr("status.code") == "error"))
        ).build(),
    ]
    for b in built:
        assert b.digest == text[b.name].digest, b.name
    # and the builder's AST is the parser's
    src = text["save_acknowledged"].source
    assert src is not None
    assert guards.parse_ast(src)[0]["patterns"] == guards.guard("x").match(
        E("save") >> E("retry").times(0, 3) >> no(ok, within="2s")).ast()["patterns"]
    assert built[0].digest != guards.guard("save_acknowledged").match(E("save") >> no(ok, within="2s")).build().digest


def test_builder_rejects_invalid() -> None:
    with pytest.raises(GuardError, match="fixed count"):
        guards.guard("g").match(E("a").times(1, 2) >> not_(E("b")) >> E("c")).build()
    with pytest.raises(GuardError, match="without any event"):
        guards.guard("g").match(E("a").optional()).build()
    with pytest.raises(GuardError, match="last step"):
        (E("a") >> no(E("b"), within="1s")) >> E("c")
    with pytest.raises(InputError, match="duration"):
        no(E("b"), within="5 parsecs")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "src, line, col, msg",
    [
        ("guard a {\n  match x -> \n}", 3, 1, "expected an event name"),
        ("guard a { match x{3,1} }", 1, 18, "exceeds"),
        ('guard a { match x[k ~ "("] }', 1, 23, "invalid regex"),
        ("guard a { match x -> no y within 5 }", 1, 34, "unit"),
        ("guard a {\n per\n}", 2, 2, "attribute name"),
        ("guard a { match x }\nguard a { match y }", 2, 1, "defined twice"),
        ("guard a { match x[v >= ] }", 1, 24, "a value"),
        ("guard a { contiguity sometimes match x }", 1, 22, "skip-till"),
        ("guard a { match count(x) >= 2 within 1s -> count(y) >= 1 within 1s }", 1, 44, "first step"),
        ("guard a { match x", 1, 9, "never closed"),
        ('guard a { match "unterminated }', 1, 17, "unterminated"),
        ("guard a { match x @ }", 1, 19, "unexpected character"),
        ("guard a { match x -> no y within 99999999999h }", 1, 34, "too large"),
    ],
)
def test_syntax_errors_have_position_and_caret(src: str, line: int, col: int, msg: str) -> None:
    with pytest.raises(GuardSyntaxError) as ei:
        guards.compile(src, "g.guard")
    text = str(ei.value)
    assert text.startswith(f"g.guard:{line}:{col}: "), text
    assert msg in text
    shown, caret = text.splitlines()[1:3]
    assert caret.index("^") == col - 1 + 2 and shown.startswith("  ")


LINE = make_guard_traces.otlp(make_guard_traces.one([make_guard_traces.span("save", 0, 5, **{"n": 1})])).strip()


@pytest.mark.parametrize(
    "old, new, exc, where",
    [
        ('"startTimeUnixNano":"', '"startTimeUnixNano":"x', TraceFormatError, "spans[0].startTimeUnixNano"),
        ('{"intValue":"1"}', '{"funnyValue":"1"}', TraceFormatError, "attributes[0].value"),
        ('"traceId":"', '"traceId":"zz', TraceFormatError, "spans[0].traceId"),
        ('"kind":1', '"kind":"SPAN_KIND_INTERNAL"', TraceFormatError, "spans[0].kind"),
        ('"scopeSpans":[', '"scopeSpans":[7,', TraceFormatError, "scopeSpans[0]"),
        ('"startTimeUnixNano":"', '"startTimeUnixNano":"99999999999999999999', TraceFormatError, "startTimeUnixNano"),
        ('"startTimeUnixNano":"1750', '"startTimeUnixNano":"9750', EventTimeError, "out of range"),
        ('"endTimeUnixNano":"1750', '"endTimeUnixNano":"1650', EventTimeError, "not monotonic"),
    ],
)
def test_malformed_otlp_names_json_path(old: str, new: str, exc: type, where: str) -> None:
    bad = LINE.replace(old, new, 1)
    assert bad != LINE
    with pytest.raises(exc) as ei:
        guards.EventSet.from_otlp_json(LINE + "\n" + bad + "\n", "t.jsonl")
    assert where in str(ei.value)
    if exc is TraceFormatError:
        assert str(ei.value).startswith("t.jsonl:2: $.resourceSpans[0]") or "t.jsonl:2:" in str(ei.value)


def test_invalid_json_and_protobuf_are_typed(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="invalid JSON"):
        guards.EventSet.from_otlp_json('{"resourceSpans": [}', "x")
    with pytest.raises(TraceFormatError, match="resourceSpans"):
        guards.EventSet.from_otlp_json('{"spans": []}', "x")
    p = tmp_path / "bad.pb"
    p.write_bytes(b"\xff\xff\xff")
    with pytest.raises(TraceFormatError, match="protobuf"):
        guards.EventSet.read(str(p))
    with pytest.raises(TraceFormatError, match="unknown attribute value type"):
        guards.EventSet.from_records('[{"time": 1, "name": "a", "attributes": {"x": [1]}}]')


def test_numpy_input_errors() -> None:
    [g] = guards.compile("guard g { match a }")
    m = guards.Matcher([g])
    t = np.arange(4, dtype=np.int64)
    k = np.zeros(4, dtype=np.int64)
    c = np.zeros(4, dtype=np.int64)
    with pytest.raises(InputError, match="int64"):
        m.feed_arrays(t.astype(np.int32), k, c, ["a"])
    with pytest.raises(InputError, match="contiguous"):
        m.feed_arrays(np.arange(8, dtype=np.int64)[::2], k, c, ["a"])
    with pytest.raises(InputError, match="same length"):
        m.feed_arrays(t, k[:3], c, ["a"])
    with pytest.raises(InputError, match="codes\\[0\\]"):
        m.feed_arrays(t, k, c + 3, ["a"])
    with pytest.raises(EventTimeError, match="times\\[2\\]"):
        m.feed_arrays(np.array([0, 1, -5, 2], dtype=np.int64), k, c, ["a"])
    with pytest.raises(EventTimeError, match="out of range"):
        m.feed_arrays(np.array([0, 1, 2**63 - 1, 2], dtype=np.int64), k, c, ["a"])
    with pytest.raises(InputError, match="unsupported attribute type"):
        m.feed_arrays(t, k, c, ["a"], {"x": np.zeros(4, dtype=np.complex64)})
    with pytest.raises(InputError, match="vocabulary"):
        m.feed_arrays(t, k, c, ["a"], {"x": (np.full(4, 5, dtype=np.int64), ["only"])})
    m.finish()
    with pytest.raises(InputError, match="finished"):
        m.feed_arrays(t, k, c, ["a"])


def test_attribute_columns_and_string_keys() -> None:
    [g] = guards.compile('guard g { match a[v >= 2, s ~ "^x", !f < 1.0] -> b[ok == true] }')
    m = guards.Matcher([g])
    t = np.array([1, 2, 3, 4], dtype=np.int64)
    m.feed_arrays(t, np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1]), ["a", "b"], {
        "v": np.array([2, 0, 1, 0]), "s": (np.array([0, -1, 0, -1]), ["xy"]),
        "f": np.array([np.nan, 0, 5.0, 0]), "ok": np.array([True, True, True, True])})
    m.finish()
    assert [(v.key, v.time) for v in m.violations()] == [(1, 2)]


# ---------------------------------------------------------------- protobuf
def test_protobuf_and_json_agree(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.common")
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tr = tp.get_tracer("t")
    base = 1_700_000_000_000_000_000
    with tr.start_as_current_span("POST /x", start_time=base, end_on_exit=False) as root:
        s = tr.start_span("save", start_time=base + 10)
        s.add_event("retry", {"n": 1}, timestamp=base + 20)
        s.set_status(Status(StatusCode.ERROR))
        s.set_attribute("db.operation.name", "INSERT")
        s.end(end_time=base + 30)
        root.end(end_time=base + 40)
    spans = exp.get_finished_spans()
    pb = tmp_path / "t.pb"
    pb.write_bytes(encode_spans(spans).SerializeToString())
    es = guards.EventSet.read(str(pb))
    assert len(es) == 3
    names = [es.event(i)[1] for i in range(len(es))]
    assert sorted(names) == ["POST /x", "retry", "save"]
    save = next(es.event(i) for i in range(len(es)) if es.event(i)[1] == "save")
    assert save[2]["status.code"] == "error" and save[2]["db.operation.name"] == "INSERT" and save[2]["duration_ns"] == 20
    r = guards.check_file(pb, [g for g in SHIPPED if g.name == "auth_before_write"])
    assert len(r.violations) == 1


# ---------------------------------------------------------------- CLI
def test_cli_check_exit_codes_junit_json_and_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guards", "check", str(TRACES / "txn_completes.pass.jsonl"), "--only", "txn_completes"]) == 0
    assert capsys.readouterr().out.startswith("OK: 0 violation(s)")
    out = tmp_path / "junit.xml"
    rc = main(["guards", "check", str(TRACES / "txn_completes.fail.jsonl"), "--only", "txn_completes",
               "--junit", str(out), "--bundles", str(tmp_path / "b"), "--json"])
    assert rc == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and len(data["violations"]) == 1 and data["card"].startswith("dc-")
    assert 'failures="1"' in out.read_text()
    card = cards.get(data["card"])
    assert card.kind == "guards.check" and card.decision == "fail" and card.metrics["violations"] == 1
    [bundle] = data["bundles"]
    assert main(["guards", "replay", bundle]) == 0
    b = json.loads(Path(bundle).read_text())
    b["events"] = b["events"][:1] + [dict(b["events"][0], name="db.transaction.commit", time=b["events"][0]["time"] + 1)]
    Path(bundle).write_text(json.dumps(b))
    assert main(["guards", "replay", bundle]) == 1
    capsys.readouterr()


def test_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.guard"
    bad.write_text("guard x { match a -> }")
    assert main(["guards", "check", str(TRACES / "txn_completes.pass.jsonl"), "--guards", str(bad)]) == 2
    err = capsys.readouterr().err
    assert re.match(r"maestro: GuardSyntaxError: .*bad.guard:1:22:", err)
    t = tmp_path / "t.jsonl"
    t.write_text('{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":1}]}]}]}\n')
    assert main(["guards", "check", str(t)]) == 2
    assert "$.resourceSpans[0].scopeSpans[0].spans[0].name" in capsys.readouterr().err
    assert main(["guards", "check", str(tmp_path / "missing.jsonl")]) == 2
    j = tmp_path / "notbundle.json"
    j.write_text("{}")
    assert main(["guards", "replay", str(j)]) == 2
    capsys.readouterr()


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guards", "list", "--json"]) == 0
    names = {g["name"] for g in json.loads(capsys.readouterr().out)}
    assert names == {g.name for g in SHIPPED}


# ---------------------------------------------------------------- fuzzed bad input
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

GUARD_SRC = (TRACES.parent / "save_acknowledged.guard").read_text()


def _mutate(text: str, cuts: list[tuple[int, int, str]]) -> str:
    for pos, length, ins in cuts:
        p = pos % (len(text) + 1)
        text = text[:p] + ins + text[p + length:]
    return text


mutations = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4), st.text(max_size=3)), min_size=1, max_size=4)


@settings(max_examples=300)
@given(cuts=mutations)
def test_mutated_otlp_gives_typed_errors(cuts: list[tuple[int, int, str]]) -> None:
    bad = _mutate(LINE, cuts)
    try:
        guards.EventSet.from_otlp_json(bad, "m.jsonl")
    except (TraceFormatError, EventTimeError) as e:
        assert str(e).startswith("m.jsonl:") or "m.jsonl" in str(e)


@settings(max_examples=300)
@given(cuts=mutations)
def test_mutated_guards_give_positioned_errors(cuts: list[tuple[int, int, str]]) -> None:
    bad = _mutate(GUARD_SRC, cuts)
    try:
        guards.compile(bad, "m.guard")
    except GuardSyntaxError as e:
        assert re.match(r"m\.guard:\d+:\d+: ", str(e)), str(e)
    except GuardError as e:  # structural errors from the compiler name the guard
        assert "guard" in str(e)
