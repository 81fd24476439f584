"""Rego policies: mutation testing, and noisy-deny tuning with rollback.

Policies load as ``opa`` loads them: ``.rego`` modules (``_test.rego`` files
hold the ``test_`` rules) and ``data.json`` / ``data.yaml`` placed at their
folder's path. Evaluation runs on the ``regorus`` interpreter inside the Rust
engine.

Mutation testing (:func:`mutate`) applies 13 operators at AST spans, runs the
policy's own tests and any labelled decisions against every mutant in
parallel, and reports a score ``killed / (generated - stillborn -
equivalent)`` (timeouts and errors count as detected and are listed apart).
Survivors come with an input that kills them and a ready-to-paste test,
found on a pool of random inputs grown from the tests' inputs with the input
paths the policy reads. A survivor is flagged *likely equivalent* (and left
out of the score) only when some pool input reaches the mutated line (line
coverage of the original) and none tells it apart; an unreached one stays a
survivor.

Tuning (:class:`Tuner`) treats candidate variants of noisy rules (constant and
threshold mutants) as arms of a conservative bandit over a labelled decision
log: an arm is admitted only if the real engine shows it allows no
labelled-unsafe request, and any live false allow rolls it back at once. Every
run, admission and rollback is recorded as a Decision Card.

Examples
--------
>>> ps = PolicySet.from_texts({"p.rego": "package p\\nallow if input.n > 2\\n",
...                            "p_test.rego": "package p\\ntest_a if allow with input as {\\"n\\": 5}\\n"})
>>> rep = mutate(ps, record_card=False)
>>> rep.counts["generated"] > 0 and 0.0 <= (rep.score or 0.0) <= 1.0
True
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _native, cards
from .errors import DecisionLogError, FileError, InputError

__all__ = [
    "OPERATORS",
    "Module",
    "PolicySet",
    "Decision",
    "Skipped",
    "Evaluator",
    "MutantResult",
    "MutationReport",
    "load",
    "load_decisions",
    "mutate",
    "sarif",
    "LogEvent",
    "load_decision_log",
    "is_deny",
    "Variant",
    "Tuner",
    "TuningResult",
    "synth_nsg_log",
]

OPERATORS: tuple[str, ...] = (
    "relational_op", "negation_insert", "negation_remove", "statement_delete", "constant_boundary",
    "builtin_swap", "some_every", "default_flip", "rule_delete", "else_remove", "with_remove",
    "arithmetic_op", "boolean_flip",
)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Module:
    path: str
    text: str
    is_test: bool


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """A labelled decision: evaluate ``query`` with ``input``; ``expected`` is the label."""

    query: str
    input: Any
    expected: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "input": self.input, "expected": self.expected}


class PolicySet:
    """Rego modules plus the data document (immutable)."""

    def __init__(self, raw: str) -> None:
        self._inner = raw
        d = json.loads(raw)
        self.modules: tuple[Module, ...] = tuple(Module(**m) for m in d["modules"])
        self.data: dict[str, Any] = d["data"]
        self.rego_v0: bool = bool(d["rego_v0"])

    @classmethod
    def _from_native(cls, raw: str) -> PolicySet:
        return cls(raw)

    @classmethod
    def from_texts(cls, modules: Mapping[str, str], data: Mapping[str, Any] | None = None) -> PolicySet:
        """From ``{path: text}``; paths ending in ``_test.rego`` are tests."""
        ms = [{"path": p, "text": t, "is_test": p.endswith("_test.rego")} for p, t in modules.items()]
        return cls(_native.rego_from_modules(json.dumps(ms), json.dumps(dict(data or {}))))

    def with_module(self, index: int, text: str) -> PolicySet:
        """A copy with module ``index`` replaced by ``text``."""
        ms = [{"path": m.path, "text": (text if i == index else m.text), "is_test": m.is_test}
              for i, m in enumerate(self.modules)]
        return PolicySet(_native.rego_from_modules(json.dumps(ms), json.dumps(self.data)))

    def to_v1(self) -> PolicySet:
        """The set with every v0 module rewritten to v1 syntax (for OPA 1.x)."""
        if not self.rego_v0:
            return self
        ms = [{"path": m.path, "text": _native.rego_to_v1(m.path, m.text), "is_test": m.is_test}
              for m in self.modules]
        return PolicySet(_native.rego_from_modules(json.dumps(ms), json.dumps(self.data)))

    def tests(self) -> list[str]:
        """``data.<pkg>.test_*`` references, once each."""
        out: list[str] = []
        for m in self.modules:
            if not m.is_test:
                continue
            pkg = _package(m.text)
            for name in _test_names(m.text):
                q = f"data.{pkg}.{name}"
                if q not in out:
                    out.append(q)
        return out

    def evaluator(self, timeout_ms: int | None = None) -> Evaluator:
        return Evaluator(self, timeout_ms=timeout_ms)


def _package(text: str) -> str:
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("package "):
            return s[len("package "):].split("#")[0].strip()
    raise InputError("module without a package declaration")


def _test_names(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("test_"):
            name = ""
            for ch in line:
                if ch.isalnum() or ch == "_":
                    name += ch
                else:
                    break
            if name and name not in out:
                out.append(name)
    return out


def load(paths: PathLike | Sequence[PathLike], data: Sequence[PathLike] = ()) -> PolicySet:
    """Load policies (files or folders) and data files the way ``opa`` does.

    Raises :class:`~maestro_core.errors.PolicySyntaxError` (``file:line:col``)
    for a module that does not parse, :class:`~maestro_core.errors.FileError`
    for a missing path.
    """
    ps = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return PolicySet(_native.rego_load([os.fspath(p) for p in ps], [os.fspath(d) for d in data]))


def load_decisions(source: PathLike | str, default_query: str | None = None, *,
                   text: bool = False) -> tuple[list[Decision], list[Skipped]]:
    """Parse JSON lines of ``{input, expected[, query]}`` or OPA decision-log events.

    Malformed lines are skipped and returned; a file in which no line is a
    decision raises :class:`~maestro_core.errors.DecisionLogError`.
    """
    body = str(source) if text else _read(source)
    d, s = _native.rego_parse_decisions(body, default_query)
    decisions = [Decision(**x) for x in json.loads(d)]
    skipped = [Skipped(**x) for x in json.loads(s)]
    if not decisions and skipped:
        raise DecisionLogError(f"{'decisions' if text else source}: no usable line ({skipped[0].what}: {skipped[0].reason})")
    return decisions, skipped


def _read(path: PathLike) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FileError(f"{path}: {e}") from None


class Evaluator:
    """A compiled policy set evaluated many times (GIL released, thread-safe)."""

    def __init__(self, policy: PolicySet, replace: tuple[int, str] | None = None,
                 timeout_ms: int | None = None) -> None:
        self._inner = _native.RegoEvaluator(policy._inner, replace, timeout_ms)

    def eval(self, query: str, input: Any = None) -> Any:
        """The value of ``query`` (``None`` when undefined)."""
        return self.eval_many(query, [input])[0]

    def eval_many(self, query: str, inputs: Iterable[Any]) -> list[Any]:
        out = self._inner.eval_many(query, [json.dumps(i if i is not None else {}) for i in inputs])
        return [None if o is None else json.loads(o) for o in out]


# ------------------------------------------------------------------ mutation
@dataclass(frozen=True)
class MutantResult:
    id: str
    file: str
    rule: str
    operator: str
    line: int
    col: int
    original: str
    replacement: str
    diff: str
    status: str
    detail: str
    killing_input: Any
    suggested_test: str | None
    cached: bool
    millis: float
    #: For survivors and likely-equivalent mutants: how many inputs of the
    #: random pool evaluate the mutated lines of the original policy (0: not
    #: reached, so never called equivalent); ``None`` when not checked.
    reached: int | None = None


@dataclass
class MutationReport:
    files: list[str]
    rego_v0: bool
    counts: dict[str, int]
    score: float | None
    mutants: list[MutantResult]
    tests: list[tuple[str, str]]
    label_mismatches: list[Any]
    decisions: int
    skipped: list[Skipped]
    threads: int
    elapsed_ms: float
    mutants_per_second: float
    card: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def _from_native(cls, raw: str) -> MutationReport:
        d = json.loads(raw)
        ms = [
            MutantResult(
                id=m["mutant"]["id"], file=m["mutant"]["file"], rule=m["mutant"]["rule"],
                operator=m["mutant"]["operator"], line=m["mutant"]["line"], col=m["mutant"]["col"],
                original=m["mutant"]["original"], replacement=m["mutant"]["replacement"],
                diff=m["mutant"]["diff"], status=m["status"], detail=m["detail"],
                killing_input=m["killing_input"], suggested_test=m["suggested_test"], cached=m["cached"],
                millis=m["millis"], reached=m.get("reached"),
            )
            for m in d["mutants"]
        ]
        return cls(
            files=d["files"], rego_v0=d["rego_v0"], counts=d["counts"], score=d["score"], mutants=ms,
            tests=[tuple(t) for t in d["baseline"]["tests"]],  # type: ignore[misc]
            label_mismatches=d["baseline"]["label_mismatches"], decisions=d["baseline"]["decisions"],
            skipped=[Skipped(**s) for s in d["skipped"]], threads=d["threads"], elapsed_ms=d["elapsed_ms"],
            mutants_per_second=d["mutants_per_second"], raw=d,
        )

    @property
    def survivors(self) -> list[MutantResult]:
        return [m for m in self.mutants if m.status == "survived"]

    def by_status(self, status: str) -> list[MutantResult]:
        return [m for m in self.mutants if m.status == status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "rego_v0": self.rego_v0, "score": self.score, "counts": self.counts,
            "tests": [{"test": t, "outcome": o} for t, o in self.tests], "decisions": self.decisions,
            "label_mismatches": self.label_mismatches,
            "skipped": [{"what": s.what, "reason": s.reason} for s in self.skipped],
            "threads": self.threads, "elapsed_ms": self.elapsed_ms, "mutants_per_second": self.mutants_per_second,
            "card": self.card,
            "mutants": [m.__dict__ for m in self.mutants],
        }

    def summary(self) -> str:
        c = self.counts
        score = "n/a" if self.score is None else f"{self.score:.1%}"
        lines = [
            f"mutation score {score}: {c['killed']} killed, {c['survived']} survived, "
            f"{c['timeout']} timed out, {c['error']} errors (detected, listed apart), "
            f"{c['stillborn']} stillborn, {c['equivalent']} likely equivalent; {c['generated']} generated"
            + (f", {c['cached']} reused from the last run" if c["cached"] else ""),
            f"{len(self.tests)} tests, {self.decisions} decisions; {self.mutants_per_second:.0f} mutants/s on "
            f"{self.threads} threads ({self.elapsed_ms / 1e3:.2f} s)",
        ]
        failing = [t for t, o in self.tests if o != "pass"]
        if failing:
            lines.append(f"tests failing on the original policy: {', '.join(failing)}")
        for m in self.survivors:
            lines.append(f"  survived {m.file}:{m.line}:{m.col} [{m.operator}] {m.diff}")
            if m.suggested_test:
                lines.append("    a test that kills it:\n      " + m.suggested_test.replace("\n", "\n      "))
            elif m.detail:
                lines.append(f"    {m.detail}")
        for s in self.skipped:
            lines.append(f"  skipped {s.what}: {s.reason}")
        return "\n".join(lines)


def mutate(
    policy: PolicySet | PathLike | Sequence[PathLike],
    decisions: Sequence[Decision] = (),
    *,
    data: Sequence[PathLike] = (),
    threads: int = 0,
    timeout_ms: int = 2000,
    equivalence_samples: int = 64,
    seed: int = 0x5EED,
    operators: Sequence[str] | None = None,
    max_mutants: int | None = None,
    incremental: bool = True,
    home: PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    record_card: bool = True,
    now_ns: int | None = None,
) -> MutationReport:
    """Mutation-test a policy against its own tests and labelled decisions.

    ``time.now_ns()`` returns one value for the whole run (``now_ns``, or the
    time at the start of the run), so a verdict never depends on when a
    mutant happened to run.

    With ``incremental`` (the default) verdicts are kept in the store under
    ``home`` and reused for mutants whose rules did not change. A Decision
    Card (``policy.mutate``) records each run unless ``record_card`` is off.
    """
    ps = policy if isinstance(policy, PolicySet) else load(policy, data)
    ops = list(operators) if operators is not None else list(OPERATORS)
    unknown = [o for o in ops if o not in OPERATORS]
    if unknown:
        raise InputError(f"unknown mutation operator(s) {unknown}; known: {', '.join(OPERATORS)}")
    opts = {"threads": threads, "timeout_ms": timeout_ms, "equivalence_samples": equivalence_samples,
            "seed": seed, "operators": ops, "max_mutants": max_mutants, "now_ns": now_ns}
    store = None
    if incremental or record_card:
        from .store import open_store

        store = open_store(home)
    raw = _native.rego_mutate(ps._inner, json.dumps([d.to_dict() for d in decisions]), json.dumps(opts),
                              store if incremental else None, progress)
    rep = MutationReport._from_native(raw)
    if record_card:
        subject = ", ".join(rep.files) or "(policy)"
        reasons = [f"{len(rep.tests)} tests and {rep.decisions} decisions run against {rep.counts['generated']} mutants"]
        reasons += [f"survived: {m.file}:{m.line}:{m.col} {m.diff}" for m in rep.survivors[:20]]
        reasons += [f"skipped {s.what}: {s.reason}" for s in rep.skipped[:20]]
        card = cards.record(cards.DecisionCard(
            kind="policy.mutate", subject=subject,
            decision="no-score" if rep.score is None else ("pass" if rep.score >= 0.85 else "weak-tests"),
            reasons=reasons,
            inputs_digest=cards.digest_inputs(ps._inner.encode(), json.dumps([d.to_dict() for d in decisions]).encode()),
            metrics={"score": rep.score, **{k: v for k, v in rep.counts.items()},
                     "mutants_per_second": round(rep.mutants_per_second, 1)},
        ), store=store)
        rep.card = card.id
    return rep


def sarif(report: MutationReport, tool_version: str | None = None) -> dict[str, Any]:
    """SARIF 2.1.0: one result per surviving mutant, at its span, with its diff."""
    rules = [{"id": f"rego-mutant/{op}", "name": op, "shortDescription": {"text": f"surviving {op.replace('_', ' ')} mutant"}}
             for op in OPERATORS]
    results = []
    for m in report.survivors:
        msg = f"Surviving mutant ({m.operator}): {m.diff}. No test or decision detects this change."
        if m.suggested_test:
            msg += f" A test that kills it: {m.suggested_test}"
        elif m.reached == 0:
            msg += " No random input reaches it either, so it is not called equivalent."
        results.append({
            "ruleId": f"rego-mutant/{m.operator}",
            "ruleIndex": OPERATORS.index(m.operator),
            "level": "warning",
            "message": {"text": msg},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": Path(m.file).as_posix()},
                "region": {"startLine": m.line, "startColumn": m.col,
                           "snippet": {"text": m.original}},
            }}],
            "partialFingerprints": {"mutantId": m.id},
            "properties": {"replacement": m.replacement, "diff": m.diff, "killingInput": m.killing_input,
                           "reached": m.reached},
        })
    from . import __version__

    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "maestro policy mutate", "version": tool_version or __version__,
                                "informationUri": "https://maestro-core.dev", "rules": rules}},
            "results": results,
            "properties": {"score": report.score, "counts": report.counts},
        }],
    }


# ------------------------------------------------------------------ tuning
NOISY = "override"  # a deny a human overrode
UNSAFE = ("incident", "unsafe")  # an incident after an allow; a deny confirmed unsafe


@dataclass(frozen=True)
class LogEvent:
    """One OPA decision-log event with its outcome label."""

    decision_id: str
    query: str
    input: Any
    result: Any
    label: str  # override | incident | unsafe | ok

    @property
    def unsafe(self) -> bool:
        return self.label in UNSAFE


def is_deny(query: str, result: Any) -> bool:
    """Whether a decision is a deny: ``deny``/``violation`` rules deny when
    non-empty or true; other rules (``allow``) deny unless exactly true."""
    leaf = query.rsplit(".", 1)[-1]
    if leaf.startswith(("deny", "violation", "block")):
        return bool(result)
    return result is not True


def load_decision_log(source: PathLike | str, *, text: bool = False) -> tuple[list[LogEvent], list[Skipped]]:
    """Parse OPA decision-log JSON lines with outcome labels.

    A label is the event's ``outcome`` field or ``labels.outcome``: ``override``
    (a deny a human overrode: noisy), ``incident`` (an incident followed an
    allow: unsafe), ``unsafe`` (a deny confirmed unsafe), or ``ok``. Malformed
    lines are skipped and returned; none usable raises
    :class:`~maestro_core.errors.DecisionLogError`.
    """
    body = str(source) if text else _read(source)
    events: list[LogEvent] = []
    skipped: list[Skipped] = []
    for n, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(Skipped(f"decision log line {n}", f"not JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(ev, dict):
            skipped.append(Skipped(f"decision log line {n}", "not a JSON object"))
            continue
        path = ev.get("path")
        if not isinstance(path, str) or not path.strip("/"):
            skipped.append(Skipped(f"decision log line {n}", "no \"path\" (the decision's rule)"))
            continue
        if "input" not in ev:
            skipped.append(Skipped(f"decision log line {n}", "no \"input\""))
            continue
        raw_labels = ev.get("labels")
        labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
        label = ev.get("outcome", labels.get("outcome", "ok"))
        if label not in ("ok", NOISY, *UNSAFE):
            skipped.append(Skipped(f"decision log line {n}", f"unknown outcome label {label!r}"))
            continue
        q = path.strip("/").replace("/", ".")
        q = q if q.startswith("data.") else f"data.{q}"
        events.append(LogEvent(str(ev.get("decision_id", n)), q, ev["input"], ev.get("result"), label))
    if not events and skipped:
        raise DecisionLogError(f"{'decision log' if text else source}: no usable event ({skipped[0].what}: {skipped[0].reason})")
    return events, skipped


@dataclass(frozen=True)
class Variant:
    """A candidate variant of a noisy rule: one constant/threshold edit."""

    id: str
    module: int
    file: str
    rule: str
    line: int
    start: int
    end: int
    original: str
    replacement: str
    operator: str

    @property
    def diff(self) -> str:
        return f"{self.file}:{self.line} {self.rule}: {self.original} → {self.replacement}"


@dataclass
class _Arm:
    variant: Variant
    evaluator: Evaluator
    pulls: int = 0
    reward: float = 0.0
    eliminated: str | None = None

    def mean(self) -> float:
        return self.reward / self.pulls if self.pulls else 0.0


@dataclass
class TuningResult:
    admitted: Variant | None
    rolled_back: list[Variant]
    active: Variant | None
    noisy_rate_before: float
    noisy_rate_after: float
    false_allows: int
    live_decisions: int
    candidates: int
    eliminated: dict[str, str]
    cards: list[str]
    events: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "admitted": self.admitted.diff if self.admitted else None,
            "active": self.active.diff if self.active else None,
            "rolled_back": [v.diff for v in self.rolled_back],
            "noisy_rate_before": self.noisy_rate_before, "noisy_rate_after": self.noisy_rate_after,
            "false_allows": self.false_allows, "live_decisions": self.live_decisions,
            "candidates": self.candidates, "eliminated": self.eliminated, "cards": self.cards,
            "events": self.events,
        }


def _numbers(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class Tuner:
    """Noisy-deny tuning with a conservative UCB bandit and rollback.

    Arms are variants of the rules responsible for overridden denies: the
    constant-boundary and relational mutants of those rules, plus threshold
    steps of their numeric constants (±1, ±2, ±5, ±10, ×½, ×2). Replaying the
    history in batches, the bandit plays the arm with the highest upper
    confidence bound on *net noise removed* (overridden denies turned into
    allows, minus other denies turned into allows) among arms that have never
    allowed a labelled-unsafe request; an arm that allows one is eliminated
    for good. After the history, the arm with the best lower confidence bound
    is admitted if that bound is positive and the real engine confirms it
    denies every labelled-unsafe request in the log. Live events then run on
    the admitted variant: any false allow (an allowed request labelled
    unsafe) rolls it back at once, and the next admissible arm, if any, is
    admitted. A Decision Card records every admission and rollback.
    """

    def __init__(self, policy: PolicySet, *, home: PathLike | None = None, record_cards: bool = True,
                 batch: int = 8, seed: int = 7, alpha: float = 1.0) -> None:
        self.policy = policy
        self.home = home
        self.record_cards = record_cards
        self.batch = batch
        self.seed = seed
        self.alpha = alpha
        self._base = Evaluator(policy)
        self.arms: list[_Arm] = []
        self.active: _Arm | None = None
        self.rolled_back: list[Variant] = []
        self.cards: list[str] = []
        self.events: list[str] = []
        self._unsafe: list[LogEvent] = []
        self._store: Any = None

    # -- candidates ---------------------------------------------------------
    def noisy_rules(self, log: Sequence[LogEvent]) -> set[tuple[int, str]]:
        """(module, rule) pairs whose deletion or relaxation turns an overridden deny into an allow."""
        overridden = [e for e in log if e.label == NOISY]
        if not overridden:
            return set()
        muts = json.loads(_native.rego_mutants(self.policy._inner, ["rule_delete", "statement_delete"]))
        found: set[tuple[int, str]] = set()
        sample = overridden[:50]
        for m in muts:
            key = (m["module"], m["rule"])
            if key in found:
                continue
            text = self.policy.modules[m["module"]].text
            mutated = text[: m["start"]] + m["replacement"] + text[m["end"]:]
            try:
                ev = Evaluator(self.policy, (m["module"], mutated))
            except InputError:
                continue
            for e in sample:
                if is_deny(e.query, self._base.eval(e.query, e.input)) and not is_deny(e.query, ev.eval(e.query, e.input)):
                    found.add(key)
                    break
        return found

    def candidates(self, log: Sequence[LogEvent]) -> list[Variant]:
        rules = self.noisy_rules(log)
        muts = json.loads(_native.rego_mutants(self.policy._inner, ["constant_boundary", "relational_op"]))
        out: list[Variant] = []
        seen: set[tuple[int, int, int, str]] = set()

        def add(m: dict[str, Any], repl: str, op: str) -> None:
            k = (m["module"], m["start"], m["end"], repl)
            if k in seen or repl == m["original"]:
                return
            seen.add(k)
            out.append(Variant(f"v{len(out)}", m["module"], m["file"], m["rule"], m["line"], m["start"], m["end"],
                               m["original"], repl, op))

        for m in muts:
            if (m["module"], m["rule"]) not in rules:
                continue
            if m["operator"] == "relational_op" and m["replacement"] in ("true", "false"):
                continue
            add(m, m["replacement"], m["operator"])
            n = _numbers(m["original"])
            if m["operator"] == "constant_boundary" and n is not None and n == int(n):
                c = int(n)
                for d in (2, 5, 10):
                    add(m, str(c + d), "threshold_step")
                    add(m, str(c - d), "threshold_step")
                for f in (0.5, 2.0):
                    add(m, str(int(c * f)), "threshold_step")
        return out

    # -- bandit ---------------------------------------------------------------
    def _allows(self, ev: Evaluator, e: LogEvent) -> bool:
        return not is_deny(e.query, ev.eval(e.query, e.input))

    def _reward(self, ev: Evaluator, batch: Sequence[LogEvent]) -> tuple[float, LogEvent | None]:
        r = 0.0
        for e in batch:
            base_allows = self._allows(self._base, e)
            allows = self._allows(ev, e)
            if allows and e.unsafe:
                return r, e
            if allows and not base_allows:
                r += 1.0 if e.label == NOISY else -1.0
            elif base_allows and not allows:
                r -= 1.0
        return r / max(1, len(batch)), None

    def _card(self, kind: str, decision: str, subject: str, reasons: list[str], metrics: dict[str, Any],
              digest_parts: Sequence[bytes]) -> None:
        if not self.record_cards:
            return
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.home)
        c = cards.record(cards.DecisionCard(kind=kind, subject=subject, decision=decision, reasons=reasons,
                                            inputs_digest=cards.digest_inputs(*digest_parts), metrics=metrics),
                         store=self._store)
        self.cards.append(c.id)

    def fit(self, history: Sequence[LogEvent]) -> Variant | None:
        """Run the bandit over the history; admit the best safe arm (or none)."""
        variants = self.candidates(history)
        self.arms = []
        for v in variants:
            text = self.policy.modules[v.module].text
            mutated = text[: v.start] + v.replacement + text[v.end:]
            try:
                self.arms.append(_Arm(v, Evaluator(self.policy, (v.module, mutated))))
            except InputError:
                continue
        self._unsafe = [e for e in history if e.unsafe]
        rng = random.Random(self.seed)
        batches = [history[i:i + self.batch] for i in range(0, len(history), self.batch)]
        t = 0
        for b in batches:
            live = [a for a in self.arms if a.eliminated is None]
            if not live:
                break
            t += 1
            unplayed = [a for a in live if a.pulls == 0]
            if unplayed:
                arm = rng.choice(unplayed)
            else:
                arm = max(live, key=lambda a: a.mean() + self.alpha * math.sqrt(2 * math.log(t) / a.pulls))
            r, bad = self._reward(arm.evaluator, b)
            if bad is not None:
                arm.eliminated = f"allowed labelled-unsafe request {bad.decision_id} during replay"
                continue
            arm.pulls += 1
            arm.reward += r
        return self._admit(history)

    def _lcb(self, a: _Arm) -> float:
        n = max(1, sum(x.pulls for x in self.arms))
        return a.mean() - self.alpha * math.sqrt(2 * math.log(max(2, n)) / max(1, a.pulls))

    def _admit(self, history: Sequence[LogEvent]) -> Variant | None:
        ranked = sorted((a for a in self.arms if a.eliminated is None and a.pulls > 0),
                        key=lambda a: (self._lcb(a), a.mean()), reverse=True)
        for a in ranked:
            if self._lcb(a) <= 0 and a.mean() <= 0:
                break
            # The real engine, on every labelled-unsafe request seen: must deny all.
            leak = next((e for e in self._unsafe if self._allows(a.evaluator, e)), None)
            if leak is not None:
                a.eliminated = f"allows labelled-unsafe request {leak.decision_id}"
                continue
            self.active = a
            self.events.append(f"admit {a.variant.diff}")
            self._card("policy.tune.admit", "admit", a.variant.diff,
                       [f"conservative UCB over {a.pulls} replayed batches: mean net noise removed {a.mean():.3f}",
                        f"real-engine check: denies all {len(self._unsafe)} labelled-unsafe requests"],
                       {"pulls": a.pulls, "mean_reward": round(a.mean(), 4), "lcb": round(self._lcb(a), 4),
                        "unsafe_checked": len(self._unsafe)},
                       [self.policy._inner.encode(), a.variant.diff.encode(), str(len(history)).encode()])
            return a.variant
        return None

    def observe(self, e: LogEvent) -> bool:
        """One live decision on the active policy; returns whether it allowed.

        A labelled-unsafe request that the admitted variant allows is a false
        allow: the variant is rolled back at once (Decision Card), and the next
        admissible arm, if any, is admitted.
        """
        ev = self.active.evaluator if self.active else self._base
        allowed = self._allows(ev, e)
        if e.unsafe:
            self._unsafe.append(e)
        if allowed and e.unsafe and self.active is not None:
            bad = self.active
            bad.eliminated = f"live false allow on {e.decision_id}"
            self.active = None
            self.rolled_back.append(bad.variant)
            self.events.append(f"rollback {bad.variant.diff} on {e.decision_id}")
            self._card("policy.tune.rollback", "rollback", bad.variant.diff,
                       [f"live false allow: request {e.decision_id} labelled {e.label} was allowed",
                        "variant rolled back to the original policy at once"],
                       {"decision_id": e.decision_id},
                       [self.policy._inner.encode(), bad.variant.diff.encode(), json.dumps(e.input).encode()])
            self._admit([])
        return allowed

    def replay(self, history: Sequence[LogEvent], live: Sequence[LogEvent]) -> TuningResult:
        """Fit on ``history``, then replay ``live`` through :meth:`observe`."""
        admitted = self.fit(history)
        noisy_before = sum(1 for e in live if e.label == NOISY and not self._allows(self._base, e))
        noisy_after = 0
        false_allows = 0
        for e in live:
            allowed = self.observe(e)
            if e.label == NOISY and not allowed:
                noisy_after += 1
            if allowed and e.unsafe:
                false_allows += 1
        n = max(1, len(live))
        return TuningResult(
            admitted=admitted, rolled_back=list(self.rolled_back),
            active=self.active.variant if self.active else None,
            noisy_rate_before=noisy_before / n, noisy_rate_after=noisy_after / n, false_allows=false_allows,
            live_decisions=len(live), candidates=len(self.arms),
            eliminated={a.variant.diff: a.eliminated for a in self.arms if a.eliminated},
            cards=list(self.cards), events=list(self.events),
        )


def synth_nsg_log(n: int, seed: int, *, true_threshold: int = 990, policy_threshold: int = 1000,
                  override_rate: float = 0.95, unsafe_rate: float = 0.5) -> list[dict[str, Any]]:
    """A seeded, labelled decision log for an Azure NSG rule policy.

    Built for the corpus policy ``azure_nsg_policy.rego`` shipped in the
    regorus crate: inbound rules on dangerous ports from internal networks
    are allowed only at ``priority >= policy_threshold``. The hidden ground
    truth allows them from ``true_threshold``: denies in between are
    overridden by humans with probability ``override_rate`` (noisy), requests
    below it are unsafe and labelled so (a confirmed-unsafe deny) with
    probability ``unsafe_rate``. Other traffic (safe ports, internet sources)
    is mixed in. Events follow OPA's decision-log shape.
    """
    rng = random.Random(seed)
    dangerous = [22, 3389, 1433, 3306, 5432, 6379, 27017]
    out = []
    for i in range(n):
        kind = rng.random()
        port: Any
        if kind < 0.35:
            port, prio, src = rng.choice(dangerous), rng.randint(policy_threshold, 4096), "10.1.2.3"
        elif kind < 0.60:
            port, prio, src = rng.choice(dangerous), rng.randint(true_threshold, policy_threshold - 1), "10.4.0.9"
        elif kind < 0.75:
            port, prio, src = rng.choice(dangerous), rng.randint(true_threshold - 60, true_threshold - 1), "192.168.1.7"
        else:
            port, prio, src = rng.choice([80, 443, 8080, 8443]), rng.randint(100, 4096), rng.choice(["10.0.0.5", "172.16.3.4"])
        inp = {"operation": "Microsoft.Network/networkSecurityGroups/securityRules/write",
               "rule": {"direction": "Inbound", "access": "Allow", "destinationPortRange": port,
                        "sourceAddressPrefix": src, "priority": prio}}
        truth_allows = port not in dangerous or prio >= true_threshold
        policy_allows = port not in dangerous or prio >= policy_threshold
        if not policy_allows and truth_allows:
            label = NOISY if rng.random() < override_rate else "ok"
        elif not truth_allows:
            label = "unsafe" if rng.random() < unsafe_rate else "ok"
        else:
            label = "ok"
        out.append({"decision_id": f"d{i:05d}", "path": "bench/allow", "input": inp, "result": policy_allows,
                    "timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "outcome": label})
    return out
