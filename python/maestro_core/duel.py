"""Dueling-bandit tournaments between prompt genomes.

:class:`Duel` wraps the Rust engine (``maestro_engine::duel``): RUCB (Zoghi et
al. 2014), RMED1 (Komiyama et al. 2015), Double Thompson Sampling (Wu & Liu
2016), Copeland Confidence Bound (Zoghi et al. 2015) and a uniform baseline,
behind one interface: :meth:`Duel.select` a pair, :meth:`Duel.record` an
outcome, :meth:`Duel.best`.

A :class:`Tournament` keeps a duel's state in the store. Each duel is one
transaction (the duel row plus the new state, guarded by the expected duel
count), so a runner killed at any point resumes with no duel lost or counted
twice: the state before the duel still proposes the same pair.

Judges decide a duel between two genomes: :class:`CallableJudge` (a Python
function), :class:`CommandJudge` (a shell command printing the winner) and
recorded votes (:meth:`Tournament.apply_votes`, JSON lines shaped like the
future ``POST /api/duel`` body: ``{"tournament", "a", "b", "winner",
"vote_id"}``).

Examples
--------
>>> d = Duel("dts", arms=3, seed=1)
>>> a, b = d.select()
>>> d.record(a, b)
>>> d.steps
1
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import _native, cards
from .errors import DuelError, InputError, JudgeError, JudgeTimeoutError, StorageError
from .prompts import TOKENIZER, GenomeRecord, Registry
from .store import open_store

__all__ = [
    "ALGORITHMS",
    "Duel",
    "arithmetic_matrix",
    "cyclic_matrix",
    "copeland_matrix",
    "preference_regrets",
    "Verdict",
    "Judge",
    "CallableJudge",
    "CommandJudge",
    "Tournament",
    "StopRule",
    "RunResult",
]

ALGORITHMS = ("rucb", "rmed1", "dts", "ccb", "uniform")


class Duel:
    """A seedable dueling-bandit state (see the module docstring)."""

    def __init__(self, algorithm: str = "dts", arms: int = 2, seed: int = 0, alpha: float | None = None,
                 f_k: float | None = None) -> None:
        self._inner = _native.Duel(algorithm, arms, seed, alpha, f_k)

    @classmethod
    def _from_native(cls, inner: Any) -> Duel:
        d = cls.__new__(cls)
        d._inner = inner
        return d

    @classmethod
    def from_json(cls, state: str) -> Duel:
        return cls._from_native(_native.Duel.from_json(state))

    def to_json(self) -> str:
        return str(self._inner.to_json())

    def copy(self) -> Duel:
        return Duel._from_native(self._inner.copy())

    algorithm = property(lambda self: str(self._inner.algorithm))
    arms = property(lambda self: int(self._inner.arms))
    steps = property(lambda self: int(self._inner.steps))
    seed = property(lambda self: int(self._inner.seed))
    alpha = property(lambda self: float(self._inner.alpha))
    pending = property(lambda self: self._inner.pending)

    def select(self) -> tuple[int, int]:
        """The next pair (idempotent until recorded; may be ``(c, c)``)."""
        return tuple(self._inner.select())  # type: ignore[return-value]

    def record(self, winner: int, loser: int) -> None:
        self._inner.record(winner, loser)

    def best(self) -> int:
        return int(self._inner.best())

    def confidence(self, arm: int) -> float:
        """``min_j P(p_arm,j > 1/2)`` under Beta(1, 1) priors."""
        return float(self._inner.confidence(arm))

    def beats_probability(self, i: int, j: int) -> float:
        return float(self._inner.beats_probability(i, j))

    def wins(self) -> npt.NDArray[np.uint64]:
        return self._inner.wins()  # type: ignore[no-any-return]

    def simulate(self, matrix: npt.ArrayLike, steps: int, env_seed: int = 0, every: int = 1) -> npt.NDArray[np.float64]:
        """Run ``steps`` duels against a preference matrix; cumulative regret every ``every`` steps."""
        m = np.ascontiguousarray(matrix, dtype=np.float64)
        return self._inner.simulate(m, steps, env_seed, every)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return str(self._inner.__repr__())


# ---------------------------------------------------------------- synthetic matrices
def arithmetic_matrix(k: int = 8, gap: float = 0.05) -> npt.NDArray[np.float64]:
    """``p_ij = 1/2 + gap (j − i)``: a total order, arm 0 the Condorcet winner."""
    i = np.arange(k)
    m = 0.5 + gap * (i[None, :] - i[:, None])
    if m.max() > 1 or m.min() < 0:
        raise InputError(f"arithmetic matrix: gap {gap} too large for {k} arms")
    return m.astype(np.float64)


def cyclic_matrix(k: int = 4, top: float = 0.6, cycle: float = 0.9) -> npt.NDArray[np.float64]:
    """Arm 0 beats every arm with ``top``; the others beat each other in a
    cycle (``i`` beats ``i + 1`` with ``cycle``): a Condorcet winner hidden
    behind strongly intransitive suboptimal arms."""
    m = np.full((k, k), 0.5)
    m[0, 1:] = top
    m[1:, 0] = 1 - top
    for a in range(1, k):
        b = a % (k - 1) + 1
        if a != b:
            m[a, b] = cycle
            m[b, a] = 1 - cycle
    return m


def copeland_matrix() -> npt.NDArray[np.float64]:
    """Six arms, no Condorcet winner: 0 → 2 → 1 → 0 is a cycle; arm 0 beats
    everyone else and is the unique Copeland winner (4 wins; arms 1 and 3
    have 3)."""
    k = 6
    m = np.full((k, k), 0.5)

    def s(i: int, j: int, v: float) -> None:
        m[i, j], m[j, i] = v, 1 - v

    s(1, 0, 0.7)
    s(2, 1, 0.7)
    s(0, 2, 0.7)
    for j in range(3, 6):
        s(0, j, 0.8)
        s(j, 2, 0.6)
    s(3, 1, 0.6)
    s(1, 4, 0.6)
    s(1, 5, 0.6)
    s(3, 4, 0.6)
    s(4, 5, 0.6)
    s(5, 3, 0.6)
    return m


def preference_regrets(matrix: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], int | None]:
    """Per-arm regret (Condorcet, or normalised Copeland) and the Condorcet winner."""
    r, cw = _native.preference_regrets(np.ascontiguousarray(matrix, dtype=np.float64))
    return r, cw


# ---------------------------------------------------------------- judges
@dataclass(frozen=True)
class Verdict:
    """``winner`` is 0 when the first genome won, 1 when the second did."""

    winner: int
    detail: Mapping[str, Any] = field(default_factory=dict)


class Judge(Protocol):
    name: str

    def __call__(self, a: GenomeRecord, b: GenomeRecord) -> Verdict: ...


def _parse_winner(out: Any, a: GenomeRecord, b: GenomeRecord, who: str) -> int:
    if isinstance(out, Verdict):
        return out.winner
    if isinstance(out, bool) or out is None:
        raise JudgeError(f"{who}: returned {out!r}; expected 'A', 'B', 0, 1 or a genome id")
    if isinstance(out, int):
        if out in (0, 1):
            return out
        raise JudgeError(f"{who}: returned {out}; expected 0 (first) or 1 (second)")
    if isinstance(out, str):
        s = out.strip()
        if s.upper() in ("A", "FIRST", "0"):
            return 0
        if s.upper() in ("B", "SECOND", "1"):
            return 1
        if len(s) >= 6 and a.id.startswith(s) and not b.id.startswith(s):
            return 0
        if len(s) >= 6 and b.id.startswith(s) and not a.id.startswith(s):
            return 1
        shown = s if len(s) <= 60 else s[:57] + "..."
        raise JudgeError(f"{who}: cannot read a winner from {shown!r}; expected A, B or one of the two genome ids")
    raise JudgeError(f"{who}: returned a {type(out).__name__}; expected 'A', 'B', 0, 1 or a genome id")


class CallableJudge:
    """A Python function ``f(a, b) -> 'A' | 'B' | 0 | 1 | genome id | Verdict``."""

    def __init__(self, fn: Callable[[GenomeRecord, GenomeRecord], Any], name: str = "python") -> None:
        self.fn = fn
        self.name = name

    def __call__(self, a: GenomeRecord, b: GenomeRecord) -> Verdict:
        out = self.fn(a, b)
        if isinstance(out, Verdict):
            if out.winner not in (0, 1):
                raise JudgeError(f"judge {self.name}: verdict winner must be 0 or 1, got {out.winner!r}")
            return out
        return Verdict(_parse_winner(out, a, b, f"judge {self.name}"))


class CommandJudge:
    """A shell command that decides a duel.

    It gets the two genomes as JSON on stdin (``{"a": {...}, "b": {...}}``
    with ``id``, ``template``, ``params``, ``model``) and in the environment
    (``MAESTRO_DUEL_A``/``_B`` = the ids, ``MAESTRO_DUEL_A_TEMPLATE``/
    ``_B_TEMPLATE``), and prints the winner — ``A``, ``B`` or a genome id —
    as the last non-empty line of stdout. A non-zero exit, a time-out or an
    unreadable answer raise :class:`JudgeError` / :class:`JudgeTimeoutError`.
    """

    def __init__(self, command: str | Sequence[str], timeout: float = 60.0, name: str | None = None) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise InputError("judge command is empty")
        if not (timeout > 0):
            raise InputError(f"judge timeout must be > 0 seconds, got {timeout}")
        self.timeout = timeout
        self.name = name or f"command:{Path(self.argv[0]).name}"

    def __call__(self, a: GenomeRecord, b: GenomeRecord) -> Verdict:
        payload = json.dumps({k: {"id": r.id, "template": r.genome.template, "params": dict(r.genome.params),
                                  "model": r.genome.model} for k, r in (("a", a), ("b", b))})
        env = {**os.environ, "MAESTRO_DUEL_A": a.id, "MAESTRO_DUEL_B": b.id,
               "MAESTRO_DUEL_A_TEMPLATE": a.genome.template, "MAESTRO_DUEL_B_TEMPLATE": b.genome.template}
        t0 = time.monotonic()
        try:
            r = subprocess.run(self.argv, input=payload.encode(), capture_output=True, timeout=self.timeout, env=env)
        except subprocess.TimeoutExpired:
            raise JudgeTimeoutError(f"judge {self.argv[0]}: no answer within {self.timeout:g} s") from None
        except OSError as e:
            raise JudgeError(f"judge {self.argv[0]}: cannot run ({e.strerror or e})") from None
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            tail = f": {err[-1][:200]}" if err else ""
            raise JudgeError(f"judge {self.argv[0]}: exited with status {r.returncode}{tail}")
        lines = [s for s in r.stdout.decode(errors="replace").splitlines() if s.strip()]
        if not lines:
            raise JudgeError(f"judge {self.argv[0]}: printed nothing; expected A, B or a genome id")
        w = _parse_winner(lines[-1], a, b, f"judge {self.argv[0]}")
        return Verdict(w, {"seconds": round(time.monotonic() - t0, 4)})


# ---------------------------------------------------------------- tournaments
@dataclass(frozen=True)
class StopRule:
    """Stop when the leader beats every other arm with posterior probability
    ``≥ 1 − delta`` (checked every ``check_every`` judged duels after
    ``min_duels``), or after ``max_duels`` judged duels."""

    delta: float = 0.05
    max_duels: int = 5000
    min_duels: int = 0
    check_every: int = 1

    def __post_init__(self) -> None:
        if not (0 < self.delta < 1):
            raise InputError(f"stop rule: delta must be in (0, 1), got {self.delta}")
        if self.max_duels < 1 or self.check_every < 1 or self.min_duels < 0:
            raise InputError("stop rule: max_duels and check_every must be >= 1, min_duels >= 0")


@dataclass(frozen=True)
class RunResult:
    best: str
    confidence: float
    judged: int
    steps: int
    stopped: str


class Tournament:
    """A dueling-bandit tournament over registered genomes, kept in the store."""

    def __init__(self, registry: Registry, tid: str, config: Mapping[str, Any], duel: Duel, judged: int) -> None:
        self.registry = registry
        self.id = tid
        self.config = dict(config)
        self.arms: list[str] = list(config["arms"])
        self._duel = duel
        self._judged = judged

    # -- creation
    @classmethod
    def create(cls, registry: Registry, arms: Sequence[str], algorithm: str = "dts", seed: int = 0,
               incumbent: str | None = None, name: str | None = None, alpha: float | None = None) -> Tournament:
        ids = [registry.resolve(a) for a in arms]
        if len(set(ids)) != len(ids):
            raise DuelError("tournament: the same genome is listed twice")
        if len(ids) < 2:
            raise DuelError("tournament: needs at least two genomes")
        inc = registry.resolve(incumbent) if incumbent else ids[0]
        if inc not in ids:
            raise DuelError(f"tournament: incumbent {inc[:15]} is not one of the arms")
        duel = Duel(algorithm, len(ids), seed, alpha)
        config = {"arms": ids, "algorithm": duel.algorithm, "seed": seed, "alpha": duel.alpha, "incumbent": inc}
        tid = name or "t-" + cards.digest_inputs(json.dumps(config, sort_keys=True).encode(),
                                                  str(time.time_ns()).encode())[7:23]
        registry.store.tournament_create(tid, json.dumps(config, sort_keys=True), duel.to_json())
        return cls(registry, tid, config, duel, 0)

    @classmethod
    def open(cls, registry: Registry, tid: str) -> Tournament:
        row = registry.store.tournament(tid)
        config = json.loads(row["config"])
        duel = Duel.from_json(row["state"])
        if duel.steps != row["duels"] or duel.arms != len(config["arms"]):
            raise StorageError(f"tournament {tid}: state has {duel.steps} steps, the store {row['duels']} duels")
        judged = sum(1 for d in registry.store.duels(tid) if d["winner"] != d["loser"])
        return cls(registry, tid, config, duel, judged)

    @property
    def duel(self) -> Duel:
        return self._duel

    @property
    def steps(self) -> int:
        return self._duel.steps

    @property
    def judged(self) -> int:
        """Duels that needed a judgement (self-comparisons excluded)."""
        return self._judged

    @property
    def incumbent(self) -> str:
        return str(self.config["incumbent"])

    def arm(self, genome: str) -> int:
        try:
            return self.arms.index(self.registry.resolve(genome))
        except (ValueError, InputError):
            raise DuelError(f"tournament {self.id}: genome {genome[:20]!r} is not one of its arms") from None

    def best(self) -> str:
        return self.arms[self._duel.best()]

    def confidence(self) -> float:
        return self._duel.confidence(self._duel.best())

    # -- recording
    def _commit(self, winner: int, loser: int, source: str, vote_id: str | None, detail: Mapping[str, Any]) -> bool:
        new = self._duel.copy()
        new.record(winner, loser)
        seq = self.registry.store.duel_record(self.id, self._duel.steps, winner, loser, source, vote_id,
                                              json.dumps(dict(detail), sort_keys=True, default=str), new.to_json())
        if seq is None:
            return False
        self._duel = new
        if winner != loser:
            self._judged += 1
        return True

    def step(self, judge: Judge) -> tuple[int, int, int]:
        """Judge the next pair and record it; returns ``(first, second, winner)`` arm indices."""
        a, b = self._duel.select()
        if a == b:
            self._commit(a, a, "self", None, {})
            return a, b, a
        ra, rb = self.registry.get(self.arms[a]), self.registry.get(self.arms[b])
        v = judge(ra, rb)
        w, l = (a, b) if v.winner == 0 else (b, a)
        self._commit(w, l, judge.name, None, v.detail)
        return a, b, w

    def run(self, judge: Judge, stop: StopRule | None = None, progress: Callable[[int, int], None] | None = None) -> RunResult:
        """Duel until the stop rule holds (see :class:`StopRule`)."""
        stop = stop or StopRule()
        reason = "budget"
        while self._judged < stop.max_duels:
            if self._judged >= stop.min_duels and self._judged % stop.check_every == 0 and \
                    self.confidence() >= 1 - stop.delta:
                reason = "confident"
                break
            self.step(judge)
            if progress is not None:
                progress(self._judged, stop.max_duels)
        else:
            if self.confidence() >= 1 - stop.delta:
                reason = "confident"
        return RunResult(self.best(), self.confidence(), self._judged, self.steps, reason)

    def apply_votes(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Record human votes from a JSON-lines file.

        Each line: ``{"a": id, "b": id, "winner": id, "vote_id": str}`` (and
        optionally ``"tournament"``, which must match). Votes already
        recorded (same ``vote_id``) are skipped; a malformed line or a vote
        for an unknown pair raises before anything is recorded.
        """
        votes = list(_read_votes(path, self))
        added = skipped = 0
        for line, w, l, vid, voter in votes:
            if self._commit(w, l, "vote", vid, {"line": line, "voter": voter}):
                added += 1
            else:
                skipped += 1
        return {"recorded": added, "skipped": skipped}

    def verify(self) -> None:
        """Recompute the win counts from the duel rows and compare with the state."""
        rows = self.registry.store.duels(self.id)
        k = len(self.arms)
        w = np.zeros((k, k), dtype=np.uint64)
        for r in rows:
            if r["winner"] != r["loser"]:
                w[r["winner"], r["loser"]] += 1
        row = self.registry.store.tournament(self.id)
        state = Duel.from_json(row["state"])
        if len(rows) != row["duels"] or state.steps != len(rows) or not np.array_equal(state.wins(), w):
            raise StorageError(f"tournament {self.id}: {len(rows)} duel rows, {row['duels']} counted, "
                               f"state at step {state.steps}: inconsistent")

    # -- promotion
    def promote(self, eval_scores: Mapping[str, float] | None = None, min_eval_delta: float = 0.0,
                min_cost_cut: float = 0.0, min_confidence: float = 0.0) -> cards.DecisionCard:
        """Write a ``prompts.promote`` Decision Card for the current winner.

        ``decision`` is ``promote`` when the winner is not the incumbent, its
        confidence is at least ``min_confidence``, its eval delta (when
        scores are given) at least ``min_eval_delta`` and its cost cut at
        least ``min_cost_cut`` (a fraction); otherwise ``keep``.
        """
        win, inc = self.registry.get(self.best()), self.registry.get(self.incumbent)
        conf = self.confidence()
        cost_cut = 1 - win.cost_tokens / inc.cost_tokens if inc.cost_tokens else 0.0
        delta = None
        if eval_scores is not None:
            if win.id not in eval_scores or inc.id not in eval_scores:
                raise InputError("promote: eval scores must include the winner and the incumbent")
            delta = float(eval_scores[win.id]) - float(eval_scores[inc.id])
        lineage = self.registry.lineage(win.id)
        chain = _lineage_chain(lineage, win.id)
        reasons = [
            f"{self._duel.algorithm} tournament over {len(self.arms)} genomes: {self._judged} judged duels "
            f"({self.steps} steps)",
            f"winner {win.id[:15]} beats every other arm with posterior probability >= {conf:.3f}",
            f"cost {inc.cost_tokens} -> {win.cost_tokens} tokens ({TOKENIZER}), cut {cost_cut:.1%}",
        ]
        if delta is not None and eval_scores is not None:
            reasons.append(f"eval score {eval_scores[inc.id]:.4f} -> {eval_scores[win.id]:.4f} (delta {delta:+.4f})")
        reasons.append(f"lineage: {chain}")
        ok = win.id != inc.id and conf >= min_confidence and cost_cut >= min_cost_cut and \
            (delta is None or delta >= min_eval_delta)
        if win.id == inc.id:
            reasons.append("the incumbent won: nothing to promote")
        metrics: dict[str, Any] = {
            "winner": win.id, "incumbent": inc.id, "confidence": round(conf, 6), "duels": self._judged,
            "steps": self.steps, "algorithm": self._duel.algorithm, "arms": len(self.arms),
            "cost_winner": win.cost_tokens, "cost_incumbent": inc.cost_tokens, "cost_delta": win.cost_tokens - inc.cost_tokens,
            "cost_cut": round(cost_cut, 6), "lineage_depth": max((lineage[i]["depth"] for i in lineage.node_indices()), default=0),
            "lineage": chain,
        }
        if delta is not None and eval_scores is not None:
            metrics.update({"eval_winner": round(float(eval_scores[win.id]), 6),
                            "eval_incumbent": round(float(eval_scores[inc.id]), 6), "eval_delta": round(delta, 6)})
        rows = self.registry.store.duels(self.id)
        digest = cards.digest_inputs(json.dumps(self.config, sort_keys=True).encode(),
                                     json.dumps([(r["winner"], r["loser"]) for r in rows]).encode())
        card = cards.DecisionCard(kind="prompts.promote", subject=f"tournament {self.id}",
                                  decision="promote" if ok else "keep", reasons=reasons, inputs_digest=digest,
                                  metrics=metrics, evidence=f"tournament:{self.id}")
        rec = cards.record(card, store=self.registry.store)
        status = "promoted" if ok else "kept"
        self.registry.store.tournament_save(self.id, self.steps, self._duel.to_json(), status)
        return rec


def _lineage_chain(graph: Any, root: str) -> str:
    """``id (op) <- parent (op) <- ...`` along first parents."""
    by_id = {graph[i]["id"]: i for i in graph.node_indices()}
    out = []
    cur: int | None = by_id.get(root)
    seen = set()
    while cur is not None and cur not in seen:
        seen.add(cur)
        d = graph[cur]
        out.append(f"{d['id'][:11]} ({d['operator']})")
        preds = sorted(graph.in_edges(cur), key=lambda e: e[2]["pos"])
        cur = preds[0][0] if preds else None
    return " <- ".join(out)


def _read_votes(path: str | os.PathLike[str], t: Tournament) -> Iterator[tuple[int, int, int, str | None, Any]]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InputError(f"{p}: cannot read votes ({e.strerror})") from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            v = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{p} line {n}: malformed JSON ({e.msg})") from None
        if not isinstance(v, dict):
            raise InputError(f"{p} line {n}: expected a JSON object")
        for f in ("a", "b", "winner"):
            if not isinstance(v.get(f), str):
                raise InputError(f"{p} line {n}: field {f!r} missing or not a genome id")
        if v.get("tournament") not in (None, t.id):
            raise DuelError(f"{p} line {n}: vote is for tournament {v['tournament']!r}, not {t.id!r}")
        vid = v.get("vote_id")
        if vid is not None and not isinstance(vid, str):
            raise InputError(f"{p} line {n}: field 'vote_id' must be a string")
        try:
            a, b = t.arm(v["a"]), t.arm(v["b"])
        except DuelError as e:
            raise DuelError(f"{p} line {n}: unknown pair: {e}") from None
        if a == b:
            raise DuelError(f"{p} line {n}: a vote needs two different genomes")
        try:
            w = t.arm(v["winner"])
        except DuelError:
            w = -1
        if w not in (a, b):
            raise DuelError(f"{p} line {n}: winner {v['winner'][:20]!r} is neither a nor b")
        out.append((n, w, b if w == a else a, vid, v.get("voter")))
    return iter(out)
