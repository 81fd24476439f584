"""Differential tests: the Rust matcher agrees with tests/cep_ref.py.

Random guards (built with the builder API) × random event streams, with
out-of-order arrival, late events, explicit watermarks and random batching.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cep_ref
from maestro_core import guards
from maestro_core.errors import EventTimeError, GuardError

NAMES = ["a", "b", "c", "d", "e"]

# ---------------------------------------------------------------- strategies
lits = st.one_of(st.integers(0, 3), st.sampled_from([1.5, 2.0]), st.sampled_from(["x", "y"]), st.booleans())


@st.composite
def preds(draw: Any) -> guards.Pred:
    key = draw(st.sampled_from(["v", "v", "w", "s", "name"]))
    a = guards.attr(key)
    kind = draw(st.sampled_from(["eq", "ne", "lt", "ge", "in", "exists", "regex"]))
    if kind == "regex":
        p = a.matches(draw(st.sampled_from(["^a", "b|c", "x", "^[a-c]$"])))
    elif kind == "exists":
        p = a.exists()
    elif kind == "in":
        p = a.isin(draw(st.lists(lits, min_size=1, max_size=3)))
    else:
        v = draw(lits)
        p = {"eq": a == v, "ne": a != v, "lt": a < v, "ge": a >= v}[kind]
    return ~p if draw(st.booleans()) and draw(st.booleans()) else p


@st.composite
def matchers(draw: Any, depth: int = 0) -> guards.EventMatcher:
    r = draw(st.integers(0, 11))
    if r <= 6:
        return guards.E(draw(st.sampled_from(NAMES[:3])))
    if r == 7:
        return guards.ANY.where(draw(preds()))
    if r == 6 and depth == 0:
        return draw(matchers(1)) | draw(matchers(1))
    base = guards.E(draw(st.sampled_from(NAMES[:4])))
    return base.where(*draw(st.lists(preds(), min_size=1, max_size=2)))


QUANTS = [(1, 1), (1, 1), (0, 1), (1, 2), (0, 2), (2, 2), (1, None), (0, None), (2, 3)]


@st.composite
def sequences(draw: Any) -> guards.Seq:
    steps: list[Any] = []
    start = draw(st.sampled_from(["plain", "plain", "anchored", "count"]))
    if start == "anchored":
        steps.append(guards.not_(draw(matchers())))
    elif start == "count":
        steps.append(guards.count(draw(matchers()), draw(st.integers(1, 3)), draw(st.integers(0, 12))))
    n = draw(st.integers(0 if start == "count" else 1, 3))
    prev_fixed = start != "count"
    for i in range(n):
        lo, hi = draw(st.sampled_from(QUANTS))
        if start == "anchored" and i == 0:
            lo = max(lo, 1)
            hi = None if hi is None else max(hi, lo)
        elif i > 0 and prev_fixed and lo >= 1 and draw(st.integers(0, 3)) == 0:
            steps.append(guards.not_(draw(matchers())))
        steps.append(draw(matchers()).times(lo, hi))
        prev_fixed = hi == lo
    seq = guards.Seq(steps)
    if draw(st.integers(0, 2)) == 0:
        seq = seq >> guards.no(draw(matchers()), within=draw(st.integers(1, 12)))
    if draw(st.integers(0, 3)) == 0:
        seq = seq.within(draw(st.integers(0, 15)))
    return seq


@st.composite
def guard_asts(draw: Any) -> dict[str, Any]:
    b = guards.guard("g").contiguity(draw(st.sampled_from(["strict", "skip-till-next", "skip-till-any"])))
    if draw(st.booleans()):
        b = b.within(draw(st.integers(0, 20)))
    b = b.match(*draw(st.lists(sequences(), min_size=1, max_size=2)))
    return b.ast()


@st.composite
def streams(draw: Any) -> list[tuple[Any, ...]]:
    n = draw(st.integers(0, 36))
    ops: list[tuple[Any, ...]] = []
    clock = 0
    for _ in range(n):
        clock += draw(st.integers(0, 3))
        t = max(0, clock - draw(st.sampled_from([0, 0, 0, 1, 2, 5])))
        if draw(st.integers(0, 9)) == 0:
            ops.append(("wm", max(0, clock - draw(st.integers(0, 6)))))
        attrs: dict[str, Any] = {"v": draw(st.integers(0, 3))}
        w = draw(st.sampled_from([None, 1.5, 2.0, 0.5]))
        if w is not None:
            attrs["w"] = w
        s = draw(st.sampled_from([None, "x", "y", "ab"]))
        if s is not None:
            attrs["s"] = s
        ops.append(("ev", t, draw(st.integers(0, 1)), draw(st.sampled_from(NAMES)), attrs))
    return ops


def _fix_watermarks(ops: list[tuple[Any, ...]], lateness: int | None) -> list[tuple[Any, ...]]:
    """Drop explicit watermarks that would move it backwards (tested apart)."""
    wm: int | None = None
    out = []
    for op in ops:
        if op[0] == "wm":
            if wm is not None and op[1] < wm:
                continue
            wm = op[1]
        elif lateness is not None and (wm is None or op[1] >= wm):
            wm = op[1] - lateness if wm is None else max(wm, op[1] - lateness)
        out.append(op)
    return out


def run_rust(ast: dict[str, Any], ops: list[tuple[Any, ...]], lateness: int | None, cuts: list[int]) -> tuple[set[Any], list[int]]:
    g = guards.Guard._from_native(guards._native.compile_guard_ast(json.dumps(ast)))
    m = guards.Matcher([g], lateness_ns=lateness)
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        if not batch:
            return
        t = np.array([e[1] for e in batch], dtype=np.int64)
        k = np.array([e[2] for e in batch], dtype=np.int64)
        c = np.array([NAMES.index(e[3]) for e in batch], dtype=np.int64)
        v = np.array([e[4]["v"] for e in batch], dtype=np.int64)
        w = np.array([e[4].get("w", math.nan) for e in batch], dtype=np.float64)
        voc = ["x", "y", "ab"]
        s = np.array([voc.index(e[4]["s"]) if "s" in e[4] else -1 for e in batch], dtype=np.int64)
        m.feed_arrays(t, k, c, NAMES, {"v": v, "w": w, "s": (s, voc)})
        batch.clear()

    for i, op in enumerate(ops):
        if op[0] == "wm":
            flush()
            m.advance_watermark(op[1])
        else:
            batch.append(op)
            if i in cuts:
                flush()
    flush()
    m.finish()
    got = {(v.guard, v.key, v.kind, v.time, v.seq) for v in m.violations()}
    late = sorted(x.seq for x in m.late_events())
    assert m.stats()["late"] == len(late)
    return got, late


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ast=guard_asts(), ops=streams(), lateness=st.sampled_from([None, 0, 2, 5, 100]), cuts=st.lists(st.integers(0, 25), max_size=4))
def test_rust_agrees_with_reference(ast: dict[str, Any], ops: list[tuple[Any, ...]], lateness: int | None, cuts: list[int]) -> None:
    try:
        guards._native.compile_guard_ast(json.dumps(ast))
    except GuardError:
        assume(False)
    ops = _fix_watermarks(ops, lateness)
    want, want_late = cep_ref.check(ast, ops, lateness)
    got, got_late = run_rust(ast, ops, lateness, cuts)
    assert got_late == want_late
    assert got == want, (json.dumps(ast), ops)


@given(ops=streams(), lateness=st.sampled_from([None, 0, 2]))
@settings(max_examples=200)
def test_text_and_records_path_agree(ops: list[tuple[Any, ...]], lateness: int | None) -> None:
    """The EventSet path (string keys from `per`) agrees with the reference too."""
    text = """guard g { per k  within 12
      match a -> !c -> b{1,2} -> no d within 5ns
          | count(e[v >= 2]) >= 2 within 6ns }""".replace("within 12", "within 12ns")
    [g] = guards.compile(text)
    ast = guards.parse_ast(text)[0]
    ops = [op for op in _fix_watermarks(ops, lateness) if op[0] == "ev"]
    recs = [{"time": op[1], "name": op[3], "attributes": {**op[4], "k": f"key{op[2]}"}} for op in ops]
    m = guards.Matcher([g], lateness_ns=lateness)
    m.feed(guards.EventSet.from_records(json.dumps(recs)))
    m.finish()
    got = {(v.guard, v.key, v.kind, v.time, v.seq) for v in m.violations()}
    ref_ops = [("ev", op[1], f"key{op[2]}", op[3], op[4]) for op in ops]
    want, _ = cep_ref.check(ast, ref_ops, lateness)
    assert got == want


def test_watermark_regression_is_typed() -> None:
    [g] = guards.compile("guard g { match a }")
    m = guards.Matcher([g], lateness_ns=None)
    m.advance_watermark(10)
    with pytest.raises(EventTimeError, match="backwards"):
        m.advance_watermark(5)
    with pytest.raises(cep_ref.WatermarkRegression):
        cep_ref.accept([("wm", 10), ("wm", 5)], None)


def test_late_events_are_counted_and_reported() -> None:
    [g] = guards.compile("guard g { match a -> b }")
    m = guards.Matcher([g], lateness_ns=5)
    t = np.array([100, 90, 94, 96, 101], dtype=np.int64)
    m.feed_arrays(t, np.zeros(5, dtype=np.int64), np.array([0, 1, 1, 1, 1]), ["a", "b"])
    m.finish()
    late = m.late_events()
    assert [x.seq for x in late] == [1, 2] and all(x.watermark == 95 for x in late)
    assert m.stats()["late"] == 2
    assert [(v.time, v.seq) for v in m.violations()] == [(101, 4)]
