"""A small, obviously-correct guard matcher, written from docs/guards.md.

It interprets the guard AST (the builder's JSON form) directly: no merging
of runs, no timers, no buffers, no eviction, no bitmasks. Every run is kept
explicitly and every event of a key is replayed in (time, arrival) order.
Slow (exponential in the worst case) and only meant for small inputs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

INF = None


# ---------------------------------------------------------------- matchers
def _lit(d: dict[str, Any]) -> Any:
    ((k, v),) = d.items()
    return (k, v)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(v: Any, lit: tuple[str, Any]) -> bool:
    kind, x = lit
    if kind == "bool":
        return isinstance(v, bool) and v == x
    if kind in ("int", "float"):
        return _num(v) and not (isinstance(v, float) and math.isnan(v)) and v == x
    return isinstance(v, str) and v == x


def _cmp(v: Any, lit: tuple[str, Any]) -> int | None:
    kind, x = lit
    if kind in ("int", "float") and _num(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return (v > x) - (v < x)
    if kind == "str" and isinstance(v, str):
        a, b = v.encode(), x.encode()
        return (a > b) - (a < b)
    return None


def pred_holds(p: dict[str, Any], name: str, attrs: dict[str, Any]) -> bool:
    key = p["key"]
    v = name if key == "name" else attrs.get(key)
    op = p["op"]
    if v is None:
        r = False
    elif op == "exists":
        r = True
    elif op == "eq":
        r = _eq(v, _lit(p["value"]))
    elif op == "ne":
        r = not _eq(v, _lit(p["value"]))
    elif op == "in":
        r = any(_eq(v, _lit(x)) for x in p["value"])
    elif op == "regex":
        r = isinstance(v, str) and re.search(p["value"], v) is not None
    else:
        c = _cmp(v, _lit(p["value"]))
        r = c is not None and {"lt": c < 0, "le": c <= 0, "gt": c > 0, "ge": c >= 0}[op]
    return r != p.get("negated", False)


def matches(m: dict[str, Any], name: str, attrs: dict[str, Any]) -> bool:
    k = m["kind"]
    if k == "any":
        return True
    if k == "name":
        return bool(name == m["name"])
    if k == "or":
        return any(matches(x, name, attrs) for x in m["any"])
    return matches(m["base"], name, attrs) and all(pred_holds(p, name, attrs) for p in m["preds"])


# ---------------------------------------------------------------- one alternative
@dataclass
class Stage:
    matcher: dict[str, Any]
    lo: int
    hi: int | None
    negs: list[dict[str, Any]]


@dataclass
class Run:
    stage: int
    count: int
    first: tuple[int, int] | None  # (time, seq) of its first event
    entry: int | None


@dataclass(frozen=True)
class Ev:
    time: int
    seq: int
    key: Any
    name: str
    attrs: dict[str, Any]

    def __hash__(self) -> int:
        return hash((self.time, self.seq))


class Alternative:
    def __init__(self, seq: dict[str, Any], guard_within: int | None) -> None:
        self.stages: list[Stage] = []
        self.count: dict[str, Any] | None = None
        negs: list[dict[str, Any]] = []
        for st in seq["steps"]:
            if st["step"] == "not":
                negs.append(st["matcher"])
            elif st["step"] == "count":
                self.count = st
            else:
                self.stages.append(Stage(st["matcher"], st["lo"], st["hi"], negs))
                negs = []
        self.absence = seq.get("absence")
        self.within = seq.get("within_ns") if seq.get("within_ns") is not None else guard_within
        self.anchored = seq["steps"][0]["step"] == "not"

    @property
    def n(self) -> int:
        return len(self.stages)

    def advance(self, j: int, c: int) -> tuple[int, int]:
        s = self.stages[j]
        c2 = c + 1
        if s.hi is None:
            c2 = min(c2, s.lo)
        elif c2 >= s.hi:
            return (j + 1, 0)
        return (j, c2)

    def accepting(self, stage: int, c: int) -> bool:
        if stage == self.n:
            return True
        return c >= self.stages[stage].lo and all(s.lo == 0 for s in self.stages[stage + 1 :])

    def waiting(self, r: Run) -> bool:
        return self.absence is not None and self.accepting(r.stage, r.count)

    def options(self, r: Run) -> list[tuple[int, tuple[int, int]]]:
        """(stage whose matcher must hold, target state)."""
        if r.stage == self.n:
            return []
        out = [(r.stage, self.advance(r.stage, r.count))]
        if r.count >= self.stages[r.stage].lo:
            j = r.stage + 1
            while j < self.n:
                out.append((j, self.advance(j, 0)))
                if self.stages[j].lo > 0:
                    break
                j += 1
        return out

    def run_key(self, events: list[Ev], contiguity: str) -> set[tuple[str, int, int | None]]:
        """Violations on one key's events (already in (time, seq) order)."""
        out: set[tuple[str, int, int | None]] = set()
        runs: list[Run] = [Run(0, 0, None, None)] if self.anchored else []
        counted: list[Ev] = []
        d = self.absence["within_ns"] if self.absence else 0
        for e in events:
            t = e.time
            new: list[Run] = []
            for r in runs:
                waiting = self.waiting(r)
                # 1. deadline
                if waiting and r.entry is not None and r.entry + d < t:
                    out.add(("deadline", r.entry + d, None))
                    continue
                # 2. window
                expired = self.within is not None and r.first is not None and t - r.first[0] > self.within
                if expired and not waiting:
                    continue
                # 3. absence
                if waiting and self.absence and matches(self.absence["matcher"], e.name, e.attrs):
                    continue
                # 4. negation
                if r.stage < self.n and any(matches(m, e.name, e.attrs) for m in self.stages[r.stage].negs):
                    continue
                # 5. consume
                gave = False
                if not expired:
                    for j, target in self.options(r):
                        if matches(self.stages[j].matcher, e.name, e.attrs):
                            gave = True
                            self._new(new, out, Run(target[0], target[1], r.first or (t, e.seq), t), e)
                # 6. contiguity
                if contiguity == "skip-till-next":
                    stays = not gave
                elif contiguity == "skip-till-any":
                    stays = True
                else:
                    stays = not gave and (r.first is None or waiting)
                if stays:
                    new.append(r)
            if self.count is not None:
                if matches(self.count["matcher"], e.name, e.attrs):
                    counted.append(e)
                    n = self.count["at_least"]
                    recent = [x for x in counted if x.time >= t - self.count["within_ns"]]
                    if len(recent) >= n:
                        oldest = counted[-n]
                        self._new(new, out, Run(0, 0, (oldest.time, oldest.seq), t), e)
            elif not self.anchored:
                fresh = Run(0, 0, None, None)
                for j, target in self.options(fresh):
                    if matches(self.stages[j].matcher, e.name, e.attrs):
                        self._new(new, out, Run(target[0], target[1], (t, e.seq), t), e)
            runs = new
        for r in runs:
            if self.waiting(r) and r.entry is not None:
                out.add(("deadline", r.entry + d, None))
        return out

    def _new(self, new: list[Run], out: set[tuple[str, int, int | None]], r: Run, e: Ev) -> None:
        if self.accepting(r.stage, r.count) and self.absence is None:
            out.add(("match", e.time, e.seq))
        else:
            new.append(r)


# ---------------------------------------------------------------- whole input
class WatermarkRegression(Exception):
    pass


def accept(ops: list[tuple[Any, ...]], lateness: int | None) -> tuple[list[Ev], list[int]]:
    """Split events into on-time and late (by arrival seq).

    ``ops``: ``("ev", time, key, name, attrs)`` or ``("wm", t)``.
    """
    wm: int | None = None
    seq = 0
    ok: list[Ev] = []
    late: list[int] = []
    for op in ops:
        if op[0] == "wm":
            if wm is not None and op[1] < wm:
                raise WatermarkRegression(op[1])
            wm = op[1]
            continue
        _, t, key, name, attrs = op
        if wm is not None and t < wm:
            late.append(seq)
        else:
            ok.append(Ev(t, seq, key, name, attrs))
            if lateness is not None:
                wm = t - lateness if wm is None else max(wm, t - lateness)
        seq += 1
    return ok, late


def check(guard: dict[str, Any], ops: list[tuple[Any, ...]], lateness: int | None) -> tuple[set[tuple[Any, ...]], list[int]]:
    """Violations ``(guard, key, kind, time, seq)`` and late seqs."""
    ok, late = accept(ops, lateness)
    by_key: dict[Any, list[Ev]] = {}
    for e in ok:
        by_key.setdefault(e.key, []).append(e)
    out: set[tuple[Any, ...]] = set()
    for seq in guard["patterns"]:
        alt = Alternative(seq, guard.get("within_ns"))
        for key, evs in by_key.items():
            evs = sorted(evs, key=lambda e: (e.time, e.seq))
            for kind, t, s in alt.run_key(evs, guard.get("contiguity", "skip-till-next")):
                out.add((guard["name"], key, kind, t, s))
    return out, late
