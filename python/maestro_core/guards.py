"""SpecLive guards: temporal patterns over OpenTelemetry traces.

A guard describes a *violation* as a pattern over the events of one key
(one trace by default). Guards are written in the guard language
(``docs/guards.md``) or with the builder below; both compile, in Rust, to
the same automaton with the same digest.

>>> from maestro_core import guards
>>> [g] = guards.compile('guard slow_save { match save -> no success within 2s }')
>>> g.name, g.per, g.contiguity
('slow_save', 'trace_id', 'skip-till-next')
>>> b = guards.guard("slow_save").match(guards.E("save") >> guards.no(guards.E("success"), within="2s")).build()
>>> b.digest == g.digest
True
>>> import numpy as np
>>> m = guards.Matcher([g])
>>> t = np.array([0, 3_000_000_000], dtype=np.int64)
>>> m.feed_arrays(t, np.array([7, 7]), np.array([0, 1]), ["save", "other"])
>>> m.finish()
>>> [(v.guard, v.key, v.kind, v.time) for v in m.violations()]
[('slow_save', 7, 'deadline', 2000000000)]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

from . import _native
from .errors import GuardError, InputError

__all__ = [
    "Guard",
    "Violation",
    "LateEvent",
    "Matcher",
    "EventSet",
    "compile",
    "load",
    "shipped",
    "shipped_dir",
    "parse_duration",
    "guard",
    "GuardBuilder",
    "E",
    "ANY",
    "attr",
    "no",
    "not_",
    "count",
    "Seq",
    "Step",
    "EventMatcher",
]

EventSet = _native.EventSet

_DUR = re.compile(r"^(\d+)(ns|us|ms|s|m|h)$")
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
MAX_TIME = 1 << 62


def parse_duration(d: str | int) -> int:
    """``"1500ms"`` → ``1500000000`` ns; an ``int`` is taken as ns.

    >>> parse_duration("2s"), parse_duration(5)
    (2000000000, 5)
    """
    if isinstance(d, bool):
        raise InputError(f"duration: expected '5s' or ns, got {d!r}")
    if isinstance(d, int):
        ns = d
    elif str(d).strip().isdigit():
        ns = int(str(d).strip())
    else:
        m = _DUR.match(str(d).strip())
        if not m:
            raise InputError(f"duration {d!r}: expected an integer and a unit (ns, us, ms, s, m, h), e.g. '250ms'")
        ns = int(m.group(1)) * _UNITS[m.group(2)]
    if not 0 <= ns < MAX_TIME:
        raise InputError(f"duration {d!r}: out of range (0 .. 2^62 ns)")
    return ns


# ---------------------------------------------------------------- compiled guards
@dataclass(frozen=True)
class Guard:
    """A compiled guard, with the source text it came from (if any)."""

    _inner: Any = field(repr=False)
    source: str | None = None
    origin: str | None = None

    @classmethod
    def _from_native(cls, inner: Any, source: str | None = None, origin: str | None = None) -> Guard:
        return cls(inner, source, origin)

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def description(self) -> str | None:
        return self._inner.description  # type: ignore[no-any-return]

    @property
    def per(self) -> str:
        return str(self._inner.per)

    @property
    def contiguity(self) -> str:
        return str(self._inner.contiguity)

    @property
    def digest(self) -> str:
        """``blake3:<hex>`` of the compiled automaton (descriptions excluded)."""
        return str(self._inner.digest)

    def canonical(self) -> str:
        return str(self._inner.canonical())


def _split_sources(text: str) -> dict[str, str]:
    """The text of each guard (with the comment lines just above it)."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    depth = 0
    start = -1
    name = ""
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if depth == 0 and text.startswith("guard", i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r"guard\s+([A-Za-z_][A-Za-z0-9_.]*)", text[i:])
            if m:
                # include the comment block directly above
                s = text.rfind("\n", 0, i) + 1
                while s > 0:
                    prev = text.rfind("\n", 0, s - 1) + 1
                    if text[prev:s].lstrip().startswith("#"):
                        s = prev
                    else:
                        break
                start, name = s, m.group(1)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start >= 0:
                out[name] = text[start : i + 1] + "\n"
                start = -1
        i += 1
    return out


def compile(source: str, origin: str = "<guards>") -> list[Guard]:
    """Compile guard source; raises :class:`~maestro_core.errors.GuardSyntaxError`
    (``origin:line:col:`` and a caret) when it does not parse."""
    compiled = _native.compile_guards(source, origin)
    parts = _split_sources(source)
    return [Guard._from_native(c, parts.get(c.name, source), origin) for c in compiled]


def load(path: str | Path) -> list[Guard]:
    """Guards of a ``.guard`` file, or of every ``*.guard`` file in a folder (sorted)."""
    p = Path(path)
    files = sorted(p.glob("*.guard")) if p.is_dir() else [p]
    if p.is_dir() and not files:
        raise InputError(f"{p}: no *.guard files")
    out: list[Guard] = []
    seen: dict[str, Path] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as e:
            from .errors import FileError

            raise FileError(f"{f}: {e.strerror or e}") from None
        for g in compile(text, str(f)):
            if g.name in seen:
                raise GuardError(f"{f}: guard {g.name!r} is also defined in {seen[g.name]}")
            seen[g.name] = f
            out.append(g)
    return out


def shipped_dir() -> Path:
    """Folder of the guards shipped with the package."""
    return Path(str(resources.files("maestro_core").joinpath("guards")))


def shipped() -> list[Guard]:
    """The guards shipped with maestro_core (``maestro_core/guards/*.guard``)."""
    return load(shipped_dir())


# ---------------------------------------------------------------- matching
@dataclass(frozen=True)
class Violation:
    guard: str
    key: str | int
    kind: str  # "match" or "deadline"
    time: int
    seq: int | None
    start_time: int | None
    start_seq: int | None
    alternative: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LateEvent:
    seq: int
    time: int
    watermark: int
    name: str


class Matcher:
    """Streaming matcher over compiled guards.

    Feed columnar batches (:meth:`feed_arrays`) or :class:`EventSet` s
    (:meth:`feed`), move the watermark, and collect violations. The
    watermark rises to ``max time seen - lateness_ns`` (``None``: only
    :meth:`advance_watermark` moves it); events behind it are *late*:
    counted, reported by :meth:`late_events`, not matched.

    ``threads``: independent guards are stepped in parallel on this many
    threads (``0``: rayon's pool, one per core; ``1``: the calling thread).
    The violations, and their order, are the same for any value.
    """

    def __init__(
        self, guards: Sequence[Guard], lateness_ns: int | str | None = 0, max_late_kept: int = 100_000, threads: int = 0
    ) -> None:
        gs = list(guards)
        lat = None if lateness_ns is None else parse_duration(lateness_ns)
        self._inner = _native.GuardMatcher([g._inner for g in gs], lat, max_late_kept, threads)
        self.guards = gs

    def feed_arrays(
        self,
        times: Any,
        keys: Any,
        codes: Any,
        names: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """One batch: ``times`` int64 ns, ``keys`` int64 partition keys (used
        instead of each guard's ``per``), ``codes`` int64 indices into
        ``names``; ``attrs`` maps attribute names to int64/float64 (NaN =
        missing)/bool arrays or ``(int64 codes, list of str)`` (code < 0 =
        missing). Arrays must be 1-D and contiguous."""
        self._inner.feed_arrays(times, keys, codes, list(names), dict(attrs) if attrs else None)

    def feed(self, events: Any) -> None:
        """Feed an :class:`EventSet` (keys from each guard's ``per``)."""
        self._inner.feed_events(events)

    def advance_watermark(self, t: int) -> None:
        self._inner.advance_watermark(int(t))

    def finish(self) -> None:
        """End of input: everything buffered is matched, every deadline fires."""
        self._inner.finish()

    def violations(self) -> list[Violation]:
        """Violations found since the last call."""
        out = []
        for d in self._inner.drain():
            d.pop("guard_index")
            out.append(Violation(**d))
        return out

    def violation_arrays(self) -> dict[str, Any]:
        """Violations since the last call as numpy int64 arrays (no Python
        object per violation): ``guard`` (index into :attr:`guards`),
        ``kind`` (0 match, 1 deadline), ``time``, ``seq`` (-1 for deadlines),
        ``key`` (-1 for string keys, then listed in ``str_keys``)."""
        return dict(self._inner.drain_arrays())

    def late_events(self) -> list[LateEvent]:
        return [LateEvent(**d) for d in self._inner.drain_late()]

    def stats(self) -> dict[str, Any]:
        return dict(self._inner.stats())

    @property
    def watermark(self) -> int | None:
        return self._inner.watermark  # type: ignore[no-any-return]


# ---------------------------------------------------------------- builder
Literal = Union[str, int, float, bool]


def _lit(v: Literal) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"str": v}
    raise GuardError(f"unsupported literal {v!r} (str, int, float or bool)")


@dataclass(frozen=True)
class Pred:
    key: str
    op: str
    value: Any = None
    negated: bool = False

    def __invert__(self) -> Pred:
        return Pred(self.key, self.op, self.value, not self.negated)

    def ast(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "op": self.op}
        if self.op == "in":
            d["value"] = [_lit(v) for v in self.value]
        elif self.op == "regex":
            d["value"] = self.value
        elif self.op != "exists":
            d["value"] = _lit(self.value)
        d["negated"] = self.negated
        return d


class attr:
    """An attribute in a predicate: ``attr("http.status") >= 500``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __eq__(self, v: object) -> Pred:  # type: ignore[override]
        return Pred(self.key, "eq", v)

    def __ne__(self, v: object) -> Pred:  # type: ignore[override]
        return Pred(self.key, "ne", v)

    def __lt__(self, v: Literal) -> Pred:
        return Pred(self.key, "lt", v)

    def __le__(self, v: Literal) -> Pred:
        return Pred(self.key, "le", v)

    def __gt__(self, v: Literal) -> Pred:
        return Pred(self.key, "gt", v)

    def __ge__(self, v: Literal) -> Pred:
        return Pred(self.key, "ge", v)

    def isin(self, values: Iterable[Literal]) -> Pred:
        return Pred(self.key, "in", list(values))

    def matches(self, regex: str) -> Pred:
        return Pred(self.key, "regex", regex)

    def exists(self) -> Pred:
        return Pred(self.key, "exists")

    __hash__ = None  # type: ignore[assignment]


class EventMatcher:
    """Which events a step accepts: a name, ``ANY``, alternatives, predicates."""

    def __init__(self, ast: dict[str, Any]) -> None:
        self._ast = ast

    def ast(self) -> dict[str, Any]:
        return self._ast

    def where(self, *preds: Pred) -> EventMatcher:
        return EventMatcher({"kind": "where", "base": self._ast, "preds": [p.ast() for p in preds]})

    def __or__(self, other: EventMatcher) -> EventMatcher:
        a = self._ast["any"] if self._ast["kind"] == "or" and getattr(self, "_flat", False) else [self._ast]
        m = EventMatcher({"kind": "or", "any": a + [other._ast]})
        m._flat = True  # type: ignore[attr-defined]
        return m

    def times(self, lo: int, hi: int | None = -1) -> Step:
        """``{lo}`` (default), ``{lo,hi}``, or ``{lo,}`` with ``hi=None``."""
        return Step({"step": "event", "matcher": self._ast, "lo": lo, "hi": lo if hi == -1 else hi})

    def optional(self) -> Step:
        return self.times(0, 1)

    def one_or_more(self) -> Step:
        return self.times(1, None)

    def zero_or_more(self) -> Step:
        return self.times(0, None)

    def __rshift__(self, other: Any) -> Seq:
        return Seq([self.times(1)]) >> other


def E(name: str) -> EventMatcher:
    """Events named ``name`` (span or span-event name)."""
    return EventMatcher({"kind": "name", "name": name})


ANY = EventMatcher({"kind": "any"})


class Step:
    def __init__(self, ast: dict[str, Any]) -> None:
        self._ast = ast

    def __rshift__(self, other: Any) -> Seq:
        return Seq([self]) >> other


def not_(m: EventMatcher) -> Step:
    """``!m``: no event matching ``m`` while the run is in the next step."""
    return Step({"step": "not", "matcher": m.ast()})


def count(m: EventMatcher, at_least: int, within: str | int) -> Step:
    """``count(m) >= at_least within d`` (first step only)."""
    return Step({"step": "count", "matcher": m.ast(), "at_least": at_least, "within_ns": parse_duration(within)})


@dataclass(frozen=True)
class _Absence:
    matcher: EventMatcher
    within_ns: int


def no(m: EventMatcher, within: str | int) -> _Absence:
    """``no m within d`` (last step)."""
    return _Absence(m, parse_duration(within))


class Seq:
    """A sequence ``a >> b >> ...`` (the text's ``a -> b -> ...``)."""

    def __init__(self, steps: list[Step], absence: _Absence | None = None, within_ns: int | None = None) -> None:
        self.steps, self.absence, self.within_ns = steps, absence, within_ns

    def __rshift__(self, other: Any) -> Seq:
        if self.absence is not None:
            raise GuardError("'no ... within' must be the last step")
        if isinstance(other, _Absence):
            return Seq(self.steps, other, self.within_ns)
        if isinstance(other, EventMatcher):
            other = other.times(1)
        if isinstance(other, Seq):
            return Seq(self.steps + other.steps, other.absence, other.within_ns)
        if not isinstance(other, Step):
            raise GuardError(f"cannot sequence {other!r}")
        return Seq(self.steps + [other])

    def within(self, d: str | int) -> Seq:
        return Seq(self.steps, self.absence, parse_duration(d))

    def ast(self) -> dict[str, Any]:
        return {
            "steps": [s._ast for s in self.steps],
            "absence": None if self.absence is None else {"matcher": self.absence.matcher.ast(), "within_ns": self.absence.within_ns},
            "within_ns": self.within_ns,
        }


class GuardBuilder:
    """Build a guard in Python: ``guard("name").per("trace_id").match(...).build()``."""

    def __init__(self, name: str, description: str | None = None) -> None:
        self._d: dict[str, Any] = {
            "name": name,
            "description": description,
            "per": "trace_id",
            "contiguity": "skip-till-next",
            "within_ns": None,
            "patterns": [],
        }

    def per(self, key: str) -> GuardBuilder:
        self._d["per"] = key
        return self

    def contiguity(self, c: str) -> GuardBuilder:
        if c not in ("strict", "skip-till-next", "skip-till-any"):
            raise GuardError(f"contiguity {c!r}: expected strict, skip-till-next or skip-till-any")
        self._d["contiguity"] = c
        return self

    def within(self, d: str | int) -> GuardBuilder:
        self._d["within_ns"] = parse_duration(d)
        return self

    def match(self, *alternatives: Seq | Step | EventMatcher) -> GuardBuilder:
        for a in alternatives:
            if isinstance(a, EventMatcher):
                a = Seq([a.times(1)])
            elif isinstance(a, Step):
                a = Seq([a])
            self._d["patterns"].append(a.ast())
        return self

    def ast(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._d))  # type: ignore[no-any-return]

    def build(self) -> Guard:
        return Guard._from_native(_native.compile_guard_ast(json.dumps(self._d)))


def guard(name: str, description: str | None = None) -> GuardBuilder:
    return GuardBuilder(name, description)


def parse_ast(source: str, origin: str = "<guards>") -> list[dict[str, Any]]:
    """The AST of guard source (``let`` expanded), as the builder produces it."""
    return [json.loads(s) for s in _native.parse_guards(source, origin)]


# ---------------------------------------------------------------- checking files, bundles
BUNDLE_FORMAT = "maestro.guard-bundle.v1"
#: Events kept in a bundle's slice are minimised one by one up to this size.
MINIMISE_MAX = 400


@dataclass
class FileReport:
    """Result of checking one trace file."""

    path: str
    events: int
    violations: list[Violation]
    late: list[LateEvent]
    event_set: Any = field(repr=False, default=None)


def check_file(path: str | Path, gs: Sequence[Guard], lateness_ns: int | str | None = 0) -> FileReport:
    """Check one trace file (OTLP/JSON lines, or protobuf for ``.pb``)."""
    es = EventSet.read(str(path))
    m = Matcher(gs, lateness_ns=lateness_ns)
    m.feed(es)
    m.finish()
    return FileReport(str(path), len(es), m.violations(), m.late_events(), es)


def _replay_events(g: Guard, records_json: str, lateness_ns: int | None) -> list[Violation]:
    m = Matcher([g], lateness_ns=lateness_ns)
    m.feed(EventSet.from_records(records_json, "<bundle>"))
    m.finish()
    return m.violations()


def _same(v: Violation, w: Violation) -> bool:
    return (v.guard, str(v.key), v.kind, v.time) == (w.guard, str(w.key), w.kind, w.time)


def make_bundle(g: Guard, v: Violation, report: FileReport, minimise: bool = True) -> dict[str, Any]:
    """A repro bundle (a JSON-able dict) for violation ``v`` of guard ``g``.

    The slice is the key's on-time events from the run's first event to the
    violation; events whose removal keeps the same violation are dropped
    (one pass, up to :data:`MINIMISE_MAX` events).
    """
    es = report.event_set
    late = {x.seq for x in report.late}
    t0 = v.start_time if v.start_time is not None else 0
    if any(s.get("step") == "not" for p in _ast_of(g)["patterns"] for s in p["steps"][:1]):
        t0 = 0  # anchored: the run started with the key
    idx = [i for i in es.select(g.per, str(v.key), t0, v.time) if i not in late]
    # keep (time, arrival) order: the replay uses no lateness
    idx.sort(key=lambda i: (es.event(i)[0], i))
    recs = json.loads(es.records_json(idx))

    def reproduces(rs: list[dict[str, Any]]) -> bool:
        return any(_same(v, w) for w in _replay_events(g, json.dumps(rs), None))

    if not reproduces(recs):  # pragma: no cover - a bug if it happens
        raise GuardError(f"internal: slice of {len(recs)} events does not reproduce {v}")
    if minimise and len(recs) <= MINIMISE_MAX:
        i = len(recs) - 1
        while i >= 0:
            trial = recs[:i] + recs[i + 1 :]
            if trial and reproduces(trial):
                recs = trial
            i -= 1
    trace_ids = sorted({r["attributes"].get("trace_id") for r in recs if isinstance(r["attributes"].get("trace_id"), str)})
    return {
        "format": BUNDLE_FORMAT,
        "guard": g.name,
        "guard_source": g.source,
        "guard_digest": g.digest,
        "per": g.per,
        "key": v.key,
        "violation": {"kind": v.kind, "time": v.time, "start_time": v.start_time, "alternative": v.alternative},
        "trace_ids": trace_ids,
        "events": recs,
        "source_file": report.path,
        "engine_version": _native.engine_version(),
        "seed": _native.KEY_HASH_SEED,
        "lateness_ns": None,
    }


def _ast_of(g: Guard) -> dict[str, Any]:
    if g.source is None:
        return {"patterns": []}
    for a in parse_ast(g.source):
        if a["name"] == g.name:
            return a
    return {"patterns": []}


@dataclass
class ReplayResult:
    ok: bool
    reasons: list[str]
    found: list[Violation]


def replay(bundle: Mapping[str, Any] | str | Path) -> ReplayResult:
    """Re-run a bundle: recompile its source, check the digest, match the
    slice and look for the same violation (guard, key, kind, time)."""
    if not isinstance(bundle, Mapping):
        p = Path(bundle)
        try:
            bundle = json.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            from .errors import FileError

            raise FileError(f"{p}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{p}: not a JSON bundle ({e})") from None
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        raise InputError(f"not a guard bundle (expected format {BUNDLE_FORMAT!r})")
    for k in ("guard", "guard_source", "guard_digest", "key", "violation", "events"):
        if k not in bundle:
            raise InputError(f"bundle: missing field {k!r}")
    reasons: list[str] = []
    gs = [g for g in compile(str(bundle["guard_source"]), "<bundle>") if g.name == bundle["guard"]]
    if not gs:
        raise InputError(f"bundle: its source does not define guard {bundle['guard']!r}")
    g = gs[0]
    ok = True
    if g.digest != bundle["guard_digest"]:
        ok = False
        reasons.append(f"compiled digest differs: bundle {bundle['guard_digest']}, now {g.digest}")
    else:
        reasons.append(f"guard {g.name} compiles to the recorded digest {g.digest[:23]}")
    if bundle.get("engine_version") != _native.engine_version():
        reasons.append(f"note: bundle made by engine {bundle.get('engine_version')}, replayed by {_native.engine_version()}")
    if bundle.get("seed") not in (None, _native.KEY_HASH_SEED):
        reasons.append(f"note: bundle key-hash seed {bundle.get('seed')} differs from {_native.KEY_HASH_SEED}")
    want = bundle["violation"]
    found = _replay_events(g, json.dumps(bundle["events"]), bundle.get("lateness_ns"))
    target = Violation(g.name, bundle["key"], want["kind"], int(want["time"]), None, None, None)
    if any(_same(target, w) for w in found):
        reasons.append(f"same verdict: {want['kind']} violation on {g.per}={bundle['key']} at {want['time']} ns")
    else:
        ok = False
        reasons.append(f"verdict differs: expected a {want['kind']} violation at {want['time']} ns, found {len(found)} other(s)")
    return ReplayResult(ok, reasons, found)
