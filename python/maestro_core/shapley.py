"""Shapley attribution: which change moved the KPI, and how sure we are.

When a KPI moves between a baseline and a changed configuration, the Shapley
value splits the change ``v(N) - v(∅)`` between the factors (*players*)
fairly, interactions included: each player gets its average marginal
contribution over all orders in which the changes could have been applied.
Taking each factor's own delta instead ignores interactions and does not add
up; this module does not do that.

Games
-----
* :class:`TableGame` -- a value table: a numpy array of length ``2^n`` whose
  entry ``k`` is ``v(S)`` for the players whose bits are set in ``k`` (bit
  ``i`` = player ``i``).
* :class:`SparseGame` -- the coalitions that were measured (a mapping from
  coalition to value); the exact method needs all ``2^n``.
* :class:`CallableGame` -- a Python function ``v(masks)`` evaluated in
  batches: ``masks`` is a ``(k, n)`` bool array (row = coalition) and the
  function returns ``k`` numbers. Results are cached; the GIL is released
  between batches.
* :class:`ChangeSetGame` -- a KPI over a change set: ``measure(config)`` on
  the baseline configuration with a subset of the factors switched to their
  changed values. :func:`attribute_change` is the one-call form.
* :class:`CommandGame` -- a shell command run once per coalition
  (``{mask}`` is replaced by the coalition), its last output line a number.

Methods
-------
``exact`` (``n ≤ 25``, ``O(n·2^n)`` in Rust), and sampled estimators that
report standard errors and Student-t confidence intervals: ``permutation``,
``antithetic`` (each order paired with its reverse), ``stratified`` (every
player at every position once per unit, i.e. stratified by coalition size)
and ``kernel`` (KernelSHAP regression with paired sampling). Sampling stops
at ``budget`` distinct evaluations or when every interval is at most
``ci_width`` wide. Results are bit-reproducible for a given ``seed``, on any
number of threads.

Examples
--------
A synergy of 3 between ``a`` and ``b`` is split evenly:

>>> from maestro_core.shapley import TableGame, shapley
>>> res = shapley(TableGame([0.0, 1.0, 2.0, 6.0], names=["a", "b"]))
>>> res.values
array([2.5, 3.5])
>>> bool(res.values.sum() == res.delta)
True

A KPI over a change set:

>>> from maestro_core.shapley import attribute_change
>>> base = {"cache": True, "workers": 4}
>>> new = {"cache": False, "workers": 2}
>>> def ci_minutes(cfg):
...     return 10.0 * (1.0 if cfg["cache"] else 1.5) * (4 / cfg["workers"])
>>> res = attribute_change(base, new, ci_minutes)
>>> [(name, round(float(v), 2)) for name, v, _, _ in res.top(2)]
[('workers', 12.5), ('cache', 7.5)]
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shlex
import signal
import subprocess
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, cast

import numpy as np
import numpy.typing as npt

from . import _native
from .errors import GameError, GameTimeoutError, InputError, MaestroError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .cards import DecisionCard

__all__ = [
    "Method",
    "TableGame",
    "SparseGame",
    "CallableGame",
    "ChangeSetGame",
    "CommandGame",
    "Game",
    "Attribution",
    "Interactions",
    "shapley",
    "interactions",
    "attribute_change",
    "read_table",
    "MAX_EXACT_PLAYERS",
    "MAX_PLAYERS",
]

Method = Literal["auto", "exact", "permutation", "antithetic", "stratified", "kernel"]
_METHODS = ("auto", "exact", "permutation", "antithetic", "stratified", "kernel")
_SAMPLED = ("permutation", "antithetic", "stratified", "kernel")

#: Largest number of players of the exact method (a table of 2^25 values).
MAX_EXACT_PLAYERS = 25
#: Largest number of players of a sampled game.
MAX_PLAYERS = 4096
#: Default budget (distinct evaluations) of the sampled methods.
DEFAULT_BUDGET = 10_000
#: Default budget when only a ``ci_width`` is requested.
DEFAULT_CI_BUDGET = 200_000

CoalitionKey = Union[int, str, Iterable[Union[int, str]]]


# ------------------------------------------------------------------ helpers
def _names(names: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"p{i}" for i in range(n))
    out = tuple(str(x) for x in names)
    if len(out) != n:
        raise InputError(f"names: {len(out)} names for {n} players")
    if len(set(out)) != n:
        dup = next(x for x in out if out.count(x) > 1)
        raise InputError(f"names: {dup!r} appears twice")
    return out


def _bits(mask: npt.ArrayLike) -> str:
    return "".join("1" if b else "0" for b in np.asarray(mask).ravel())


def _check_int(what: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what}: expected an integer, got {value!r}")
    v = int(value)
    if v < minimum:
        raise InputError(f"{what}: {v} is below the minimum {minimum}")
    if maximum is not None and v > maximum:
        raise InputError(f"{what}: {v} is above the maximum {maximum}")
    return v


def _abs_interval(lo: float, hi: float) -> tuple[float, float]:
    """The interval of ``|x|`` for ``x`` in ``[lo, hi]``."""
    if lo > 0 or hi < 0:
        a, b = abs(lo), abs(hi)
        return min(a, b), max(a, b)
    return 0.0, max(abs(lo), abs(hi))


def _players_of_table(length: int) -> int:
    if length < 1 or length & (length - 1):
        raise InputError(
            f"value table: length {length} is not a power of two (a table for n players has 2^n entries, "
            "entry k being v(S) for the players whose bits are set in k)"
        )
    return length.bit_length() - 1


def _as_values(out: Any, masks: np.ndarray) -> np.ndarray:
    """Check what a game function returned: ``len(masks)`` finite numbers."""
    k = len(masks)
    if isinstance(out, (str, bytes)):
        raise GameError(f"game function returned {type(out).__name__} {out!r:.60}, not numbers")
    try:
        raw = np.asarray(out)
    except Exception as e:  # ragged nested sequences and the like
        raise GameError(f"game function returned {type(out).__name__}, not an array of numbers ({e})") from None
    if raw.dtype.kind == "O":
        if not all(isinstance(x, numbers.Real) for x in raw.ravel()):
            bad = next(x for x in raw.ravel() if not isinstance(x, numbers.Real))
            raise GameError(f"game function returned {type(bad).__name__} {bad!r:.60}, not a number")
    elif raw.dtype.kind not in "biuf":
        raise GameError(f"game function returned {raw.dtype} values, not numbers")
    arr = raw.astype(np.float64, copy=False)
    if arr.ndim == 0 and k == 1:
        arr = arr.reshape(1)
    if arr.shape != (k,):
        raise GameError(f"game function returned shape {arr.shape} for {k} coalitions; expected ({k},)")
    bad_idx = np.flatnonzero(~np.isfinite(arr))
    if bad_idx.size:
        i = int(bad_idx[0])
        raise GameError(
            f"game function returned {arr[i]} for coalition {_bits(masks[i])}; values must be finite numbers"
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


def _mask_of(key: CoalitionKey, n: int, names: tuple[str, ...]) -> np.ndarray:
    row = np.zeros(n, dtype=np.uint8)
    if isinstance(key, bool):
        raise InputError(f"coalition {key!r}: expected an int bitmask, a 0/1 string or a collection of players")
    if isinstance(key, numbers.Integral):
        k = int(key)
        if k < 0 or k >> n:
            raise InputError(f"coalition {k}: not a bitmask of {n} players")
        for i in range(n):
            row[i] = (k >> i) & 1
        return row
    if isinstance(key, str):
        if len(key) != n or set(key) - {"0", "1"}:
            raise InputError(f"coalition {key!r}: expected {n} characters 0/1 (character i = player i)")
        return np.frombuffer(key.encode(), dtype=np.uint8) - ord("0")
    index = {name: i for i, name in enumerate(names)}
    for p in cast(Iterable[Any], key):
        if isinstance(p, str):
            if p not in index:
                raise InputError(f"coalition: unknown player {p!r}")
            row[index[p]] = 1
        elif isinstance(p, numbers.Integral) and not isinstance(p, bool) and 0 <= int(p) < n:
            row[int(p)] = 1
        else:
            raise InputError(f"coalition: {p!r} is not a player (0..{n - 1} or a name)")
    return row


# ------------------------------------------------------------------ games
class TableGame:
    """A game given by its full value table.

    Parameters
    ----------
    values : array_like of float, length ``2^n``
        ``values[k]`` is ``v(S)`` for the players whose bits are set in ``k``.
    names : sequence of str, optional
        Player names (default ``p0, p1, ...``).

    Raises
    ------
    InputError
        If the length is not a power of two or a value is not finite.
    """

    def __init__(self, values: npt.ArrayLike, names: Sequence[str] | None = None) -> None:
        try:
            arr = np.ascontiguousarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"value table: not an array of numbers ({e})") from None
        if arr.ndim != 1:
            raise InputError(f"value table: expected a 1-D array, got shape {arr.shape}")
        n = _players_of_table(len(arr))
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"value table: entry {i} (coalition {_bits([(i >> b) & 1 for b in range(n)])}) is {arr[i]}; "
                "values must be finite numbers"
            )
        self.values: np.ndarray = arr
        self.n_players: int = n
        self.names: tuple[str, ...] = _names(names, n)

    def table(self) -> np.ndarray:
        """The value table (no copy)."""
        return self.values

    def _native_game(self) -> Any:
        return self.values

    def _digest_parts(self) -> list[bytes]:
        return [b"table", self.values.tobytes()]

    def __repr__(self) -> str:
        return f"TableGame(n_players={self.n_players})"


class SparseGame:
    """The coalitions that were measured.

    Parameters
    ----------
    values : mapping
        Coalition -> value. A coalition is an int bitmask (bit ``i`` =
        player ``i``), a string of ``n`` characters ``0``/``1`` (character
        ``i`` = player ``i``), or a collection of player indices or names.
    n_players : int, optional
        Number of players (default: the length of ``names``).
    names : sequence of str, optional

    Notes
    -----
    The exact method needs every one of the ``2^n`` coalitions; a sampled
    method works only if every coalition it draws was measured. Either way a
    missing coalition raises :class:`~maestro_core.errors.InputError` naming it.
    """

    def __init__(
        self,
        values: Mapping[Any, float],
        n_players: int | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if n_players is None:
            if names is None:
                raise InputError("sparse game: give n_players or names")
            n_players = len(names)
        n = _check_int("n_players", n_players, 1, MAX_PLAYERS)
        self.names: tuple[str, ...] = _names(names, n)
        if not isinstance(values, Mapping) or not values:
            raise InputError("sparse game: expected a non-empty mapping coalition -> value")
        masks = np.zeros((len(values), n), dtype=np.uint8)
        vals = np.zeros(len(values), dtype=np.float64)
        for r, (key, v) in enumerate(values.items()):
            masks[r] = _mask_of(key, n, self.names)
            if isinstance(v, (str, bytes, bool)) or not isinstance(v, numbers.Real):
                raise InputError(f"sparse game: coalition {_bits(masks[r])} has value {v!r}, not a number")
            vals[r] = float(v)
        self._init_arrays(masks, vals, n)

    @classmethod
    def from_arrays(
        cls, masks: npt.ArrayLike, values: npt.ArrayLike, names: Sequence[str] | None = None
    ) -> SparseGame:
        """From a ``(m, n)`` 0/1 matrix of coalitions and their ``m`` values."""
        m = np.asarray(masks)
        if m.ndim != 2 or m.shape[1] < 1:
            raise InputError(f"sparse game: masks must be an (m, n) array, got shape {m.shape}")
        if not np.isin(m, (0, 1)).all():
            raise InputError("sparse game: masks must hold only 0 and 1")
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"sparse game: values are not numbers ({e})") from None
        self = cls.__new__(cls)
        n = _check_int("n_players", m.shape[1], 1, MAX_PLAYERS)
        self.names = _names(names, n)
        self._init_arrays(np.ascontiguousarray(m, dtype=np.uint8), np.ascontiguousarray(v.ravel()), n)
        return self

    def _init_arrays(self, masks: np.ndarray, vals: np.ndarray, n: int) -> None:
        self.n_players: int = n
        self.masks: np.ndarray = masks
        self.coalition_values: np.ndarray = vals
        self._inner = _native.SparseGame(masks, vals)

    @property
    def measured(self) -> int:
        """Distinct measured coalitions."""
        return int(self._inner.measured)

    @property
    def complete(self) -> bool:
        """``True`` when all ``2^n`` coalitions were measured."""
        return self.n_players <= MAX_EXACT_PLAYERS and self.measured == 1 << self.n_players

    def table(self) -> np.ndarray:
        """The full value table; raises ``InputError`` naming a missing coalition."""
        return self._inner.to_table()  # type: ignore[no-any-return]

    def _native_game(self) -> Any:
        return self._inner

    def _digest_parts(self) -> list[bytes]:
        return [b"sparse", self.masks.tobytes(), self.coalition_values.tobytes()]

    def __repr__(self) -> str:
        return f"SparseGame(n_players={self.n_players}, measured={self.measured})"


def _evaluator(ref: weakref.ReferenceType[CallableGame]) -> Callable[[np.ndarray], np.ndarray]:
    def evaluate(masks: np.ndarray) -> np.ndarray:
        game = ref()
        if game is None:  # pragma: no cover - the native game lives inside the object
            raise GameError("the game object no longer exists")
        return game._evaluate(masks)

    return evaluate


class CallableGame:
    """A game computed by a Python function, in batches, with a cache.

    Parameters
    ----------
    fn : callable
        With ``batched=True`` (default): ``fn(masks) -> values`` where
        ``masks`` is a ``(k, n)`` bool array, one coalition per row, and
        ``values`` has ``k`` finite numbers. With ``batched=False``:
        ``fn(mask) -> float`` for one 1-D bool mask.
    n_players : int
    names : sequence of str, optional
    batched : bool
    batch_size : int
        Most coalitions passed to ``fn`` per call.

    Notes
    -----
    Each distinct coalition is evaluated once per game object (the cache
    lives as long as the object); ``evaluations`` counts the calls. While an
    estimate runs, the GIL is released except during the calls to ``fn``.
    An exception raised by ``fn`` becomes :class:`~maestro_core.errors.GameError`
    (the original is its ``__cause__``); so does a returned value that is not a
    finite number.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        n_players: int,
        *,
        names: Sequence[str] | None = None,
        batched: bool = True,
        batch_size: int = 1024,
    ) -> None:
        if not callable(fn):
            raise InputError(f"game function: {fn!r} is not callable")
        n = _check_int("n_players", n_players, 1, MAX_PLAYERS)
        bs = _check_int("batch_size", batch_size, 1)
        self.n_players: int = n
        self.names: tuple[str, ...] = _names(names, n)
        self._fn = fn
        self._batched = batched
        # The native game holds only a weak reference back to this object: a
        # bound method would make a reference cycle, so every game (and its
        # cache) would wait for the cyclic garbage collector to be freed.
        self._inner = _native.CallableGame(_evaluator(weakref.ref(self)), n, bs)

    @property
    def evaluations(self) -> int:
        """Coalitions evaluated so far (each distinct coalition once)."""
        return int(self._inner.evaluations)

    def clear_cache(self) -> None:
        self._inner.clear_cache()

    def table(self) -> np.ndarray:
        """Evaluate all ``2^n`` coalitions (``n ≤ 25``) into a value table."""
        return self._inner.to_table()  # type: ignore[no-any-return]

    def _evaluate(self, masks: np.ndarray) -> np.ndarray:
        if self._batched:
            try:
                out = self._fn(masks)
            except MaestroError:
                raise
            except Exception as e:
                raise GameError(
                    f"game function raised {type(e).__name__}: {e} "
                    f"(batch of {len(masks)} coalitions, the first {_bits(masks[0])})"
                ) from e
            return _as_values(out, masks)
        vals = np.empty(len(masks), dtype=np.float64)
        for r, row in enumerate(masks):
            try:
                x = self._fn(row)
            except MaestroError:
                raise
            except Exception as e:
                raise GameError(f"game function raised {type(e).__name__}: {e} (coalition {_bits(row)})") from e
            if isinstance(x, (str, bytes)) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
                raise GameError(f"game function returned {type(x).__name__} {x!r:.60} for coalition {_bits(row)}, not a number")
            vals[r] = float(x)
        return _as_values(vals, masks)

    def _native_game(self) -> Any:
        return self._inner

    def _digest_parts(self) -> list[bytes]:
        return [b"callable", json.dumps(self.names).encode()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_players={self.n_players}, evaluations={self.evaluations})"


_ABSENT = object()


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        eq = a == b
        return bool(eq) if not isinstance(eq, np.ndarray) else bool(np.all(eq)) and np.shape(a) == np.shape(b)
    except Exception:
        return False


class ChangeSetGame(CallableGame):
    """A KPI over a change set.

    The players are the factors whose value differs between ``baseline`` and
    ``changed``; ``v(S) = measure(config_S)`` where ``config_S`` is the baseline
    with the factors in ``S`` switched to their changed values (a factor
    missing from ``changed`` is removed). So ``v(∅)`` is the baseline KPI and
    ``v(N)`` the changed one, and the attribution splits their difference.

    Parameters
    ----------
    baseline, changed : mapping or sequence
        Configurations (dicts of factor -> value, or two sequences of the same
        length, whose factors are then named ``factor0, factor1, ...``).
    measure : callable
        ``measure(config: dict) -> float``.
    batch_size : int
    """

    def __init__(
        self,
        baseline: Mapping[str, Any] | Sequence[Any],
        changed: Mapping[str, Any] | Sequence[Any],
        measure: Callable[[dict[str, Any]], Any],
        *,
        batch_size: int = 256,
    ) -> None:
        base, new = self._as_dicts(baseline, changed)
        if not callable(measure):
            raise InputError(f"measure: {measure!r} is not callable")
        keys = list(dict.fromkeys([*base, *new]))
        factors = [k for k in keys if not _same(base.get(k, _ABSENT), new.get(k, _ABSENT))]
        if not factors:
            raise InputError("change set: baseline and changed configurations are identical; nothing to attribute")
        if len(factors) > MAX_PLAYERS:
            raise InputError(f"change set: {len(factors)} changed factors; at most {MAX_PLAYERS}")
        self.baseline: dict[str, Any] = base
        self.changed: dict[str, Any] = new
        self.factors: tuple[str, ...] = tuple(factors)
        self.unchanged: tuple[str, ...] = tuple(k for k in keys if k not in set(factors))
        self._measure = measure
        super().__init__(self._measure_one, len(factors), names=[str(f) for f in factors],
                         batched=False, batch_size=batch_size)

    @staticmethod
    def _as_dicts(baseline: Any, changed: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(baseline, Mapping) and isinstance(changed, Mapping):
            return dict(baseline), dict(changed)
        if isinstance(baseline, (str, bytes, Mapping)) or isinstance(changed, (str, bytes, Mapping)):
            raise InputError("change set: baseline and changed must both be mappings or both be sequences")
        try:
            b, c = list(baseline), list(changed)
        except TypeError:
            raise InputError("change set: baseline and changed must be mappings or sequences") from None
        if len(b) != len(c):
            raise InputError(f"change set: baseline has {len(b)} factors, changed has {len(c)}")
        return {f"factor{i}": x for i, x in enumerate(b)}, {f"factor{i}": x for i, x in enumerate(c)}

    def config(self, mask: npt.ArrayLike) -> dict[str, Any]:
        """The configuration of coalition ``mask`` (1-D, one entry per factor)."""
        m = np.asarray(mask, dtype=bool).ravel()
        if m.shape != (self.n_players,):
            raise InputError(f"change set: mask of {m.size} entries for {self.n_players} factors")
        cfg = dict(self.baseline)
        for on, k in zip(m, self.factors):
            if on:
                if k in self.changed:
                    cfg[k] = self.changed[k]
                else:
                    cfg.pop(k, None)
        return cfg

    def _measure_one(self, mask: np.ndarray) -> Any:
        return self._measure(self.config(mask))


class CommandGame(CallableGame):
    """A KPI measured by a shell command, once per coalition.

    ``{mask}`` in ``command`` is replaced by the coalition as ``n`` characters
    ``0``/``1`` (character ``i`` = player ``i``) and ``{players}`` by the
    shell-quoted, comma-separated names of the players present. The last
    non-empty line of the command's standard output must be a number.

    Raises (during evaluation)
    --------------------------
    GameTimeoutError
        The command ran longer than ``timeout`` seconds (its process group is
        killed).
    GameError
        It exited with a non-zero status or printed no number.
    """

    def __init__(
        self,
        command: str,
        n_players: int,
        *,
        names: Sequence[str] | None = None,
        timeout: float = 60.0,
        jobs: int = 1,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(command, str) or ("{mask}" not in command and "{players}" not in command):
            raise InputError("command: it must contain {mask} (or {players}), replaced per coalition")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise InputError(f"timeout: {timeout!r} is not a positive number of seconds")
        self.command = command
        self.timeout = float(timeout)
        self.jobs = _check_int("jobs", jobs, 1, 256)
        super().__init__(self._run_batch, n_players, names=names, batched=True,
                         batch_size=batch_size or max(64, 8 * self.jobs))

    def _command_for(self, mask: np.ndarray) -> tuple[str, str]:
        bits = _bits(mask)
        present = ",".join(n for n, on in zip(self.names, mask) if on)
        return bits, self.command.replace("{mask}", bits).replace("{players}", shlex.quote(present))

    def _run_one(self, mask: np.ndarray) -> float:
        bits, cmd = self._command_for(mask)
        with subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as p:
            try:
                out, err = p.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(p)
                p.communicate()
                raise GameTimeoutError(
                    f"command timed out after {self.timeout:g}s for coalition {bits}: {cmd}") from None
            except BaseException:
                _kill_group(p)
                raise
        if p.returncode != 0:
            tail = (err or "").strip().splitlines()[-1:] or ["(no stderr)"]
            raise GameError(f"command exited with status {p.returncode} for coalition {bits}: {cmd}: {tail[0]:.200}")
        lines = [ln.strip() for ln in (out or "").splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        try:
            value = float(last)
        except ValueError:
            raise GameError(
                f"command printed no number for coalition {bits} (last output line {last[:80]!r}): {cmd}") from None
        if not math.isfinite(value):
            raise GameError(f"command printed {last!r} for coalition {bits}; values must be finite numbers")
        return value

    def _run_batch(self, masks: np.ndarray) -> np.ndarray:
        if self.jobs == 1 or len(masks) == 1:
            return np.array([self._run_one(m) for m in masks], dtype=np.float64)
        with ThreadPoolExecutor(max_workers=self.jobs) as ex:
            return np.array(list(ex.map(self._run_one, list(masks))), dtype=np.float64)

    def _digest_parts(self) -> list[bytes]:
        return [b"command", self.command.encode(), json.dumps(self.names).encode()]


def _kill_group(p: subprocess.Popen[str]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        p.kill()


Game = Union[TableGame, SparseGame, CallableGame]


def _as_game(game: Any) -> Game:
    if isinstance(game, (TableGame, SparseGame, CallableGame)):
        return game
    if isinstance(game, np.ndarray) or (isinstance(game, Sequence) and not isinstance(game, (str, bytes))):
        return TableGame(game)
    if isinstance(game, Mapping):
        raise InputError("a mapping of coalitions needs its players: use SparseGame(values, n_players=...)")
    if callable(game):
        raise InputError("a function needs its number of players: use CallableGame(fn, n_players)")
    raise InputError(f"not a game: {type(game).__name__} (use TableGame, SparseGame or CallableGame)")


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Attribution:
    """Shapley values with their uncertainty.

    Attributes
    ----------
    values, stderr, ci_low, ci_high : numpy.ndarray
        One entry per player; ``stderr`` is 0 and the interval collapses to the
        value for the exact method.
    evaluations : int
        Distinct coalitions evaluated.
    units : int
        Independent sampling units averaged (0 for exact).
    method, stop : str
        The method used; why it stopped (``exact``, ``ci_width`` or ``budget``).
    confidence : float
    names : tuple of str
    empty, full : float
        ``v(∅)`` and ``v(N)``.
    df : float
        Degrees of freedom of the t-quantile of the intervals.
    """

    values: np.ndarray
    stderr: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    evaluations: int
    units: int
    method: str
    stop: str
    confidence: float
    names: tuple[str, ...]
    empty: float
    full: float
    df: float
    seed: int | None = None
    _digest_parts: Callable[[], list[bytes]] | None = field(default=None, repr=False, compare=False)

    @property
    def inputs_digest(self) -> str:
        """``blake3:<hex>`` of the game's inputs and the options (computed on
        demand: hashing a large table is not free)."""
        from .cards import digest_inputs

        parts = self._digest_parts() if self._digest_parts is not None else [b"attribution"]
        return digest_inputs(*parts)

    @property
    def n_players(self) -> int:
        return len(self.values)

    @property
    def delta(self) -> float:
        """``v(N) − v(∅)``, which the values add up to."""
        return self.full - self.empty

    @property
    def exact(self) -> bool:
        return self.stop == "exact"

    def order(self) -> np.ndarray:
        """Player indices by decreasing ``|value|`` (stable)."""
        return np.argsort(-np.abs(self.values), kind="stable")

    def top(self, k: int = 3) -> list[tuple[str, float, float, float]]:
        """The ``k`` largest contributors: ``(name, value, ci_low, ci_high)``."""
        return [
            (self.names[i], float(self.values[i]), float(self.ci_low[i]), float(self.ci_high[i]))
            for i in self.order()[: max(0, k)]
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (lists of floats)."""
        return {
            "method": self.method,
            "stop": self.stop,
            "confidence": self.confidence,
            "players": list(self.names),
            "values": self.values.tolist(),
            "stderr": self.stderr.tolist(),
            "ci_low": self.ci_low.tolist(),
            "ci_high": self.ci_high.tolist(),
            "evaluations": self.evaluations,
            "units": self.units,
            "df": None if math.isinf(self.df) else self.df,
            "v_empty": self.empty,
            "v_full": self.full,
            "delta": self.delta,
            "seed": self.seed,
            "inputs_digest": self.inputs_digest,
        }

    def summary(self, top: int | None = None) -> str:
        """A text table, largest contributors first."""
        pct = f"{self.confidence:.0%}"
        how = (f"exact over all {2 ** self.n_players} coalitions" if self.exact
               else f"{self.method}, {self.units} units, {self.evaluations} evaluations, stopped at {self.stop}")
        lines = [
            f"Shapley attribution of Δ = {self.delta:+.6g} (v(∅) = {self.empty:.6g}, v(N) = {self.full:.6g}); {how}",
        ]
        width = max([len(n) for n in self.names] + [6])
        lines.append(f"  {'player':<{width}}  {'value':>12}" + ("" if self.exact else f"  {pct + ' CI':>27}"))
        for name, v, lo, hi in self.top(self.n_players if top is None else top):
            ci = "" if self.exact else f"  [{lo:>+12.6g}, {hi:>+12.6g}]"
            lines.append(f"  {name:<{width}}  {v:>+12.6g}{ci}")
        shown = self.n_players if top is None else min(top, self.n_players)
        if shown < self.n_players:
            lines.append(f"  ... {self.n_players - shown} more")
        return "\n".join(lines)

    def plot(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        kind: Literal["waterfall", "bar"] = "waterfall",
        top: int = 12,
        title: str | None = None,
    ) -> Figure:
        """A waterfall (``v(∅)`` → each contribution → ``v(N)``) or bar chart.

        The largest ``top`` contributors are drawn with their confidence
        intervals as error bars, the rest merged into one bar. Written to
        ``path`` when given (``.png``, ``.svg`` or ``.pdf``).
        """
        from matplotlib.figure import Figure

        if kind not in ("waterfall", "bar"):
            raise InputError(f"plot kind {kind!r}: expected waterfall or bar")
        fmt = None
        if path is not None:
            fmt = Path(path).suffix.lower().lstrip(".")
            if fmt not in ("png", "svg", "pdf"):
                raise InputError(f"plot {os.fspath(path)}: the file must end in .png, .svg or .pdf")
        top = _check_int("top", top, 1)
        order = self.order()
        shown, rest = order[:top], order[top:]
        labels = [self.names[i] for i in shown]
        vals = [float(self.values[i]) for i in shown]
        err_lo = [float(self.values[i] - self.ci_low[i]) for i in shown]
        err_hi = [float(self.ci_high[i] - self.values[i]) for i in shown]
        if len(rest):
            labels.append(f"{len(rest)} others")
            vals.append(float(self.values[rest].sum()))
            err_lo.append(0.0)
            err_hi.append(0.0)
        pos, neg = "#2a9d8f", "#e76f51"
        colors = [pos if v >= 0 else neg for v in vals]
        rows = len(labels) + (2 if kind == "waterfall" else 0)
        fig = Figure(figsize=(8.0, 1.4 + 0.38 * rows), layout="constrained")
        ax = fig.add_subplot()
        show_err = not self.exact
        if kind == "waterfall":
            ys = np.arange(rows)
            starts, cum = [], self.empty
            for v in vals:
                starts.append(cum)
                cum += v
            ax.barh(ys[1:-1], vals, left=starts, color=colors, height=0.6)
            if show_err:
                ends = np.array(starts) + np.array(vals)
                ax.errorbar(ends, ys[1:-1], xerr=[err_lo, err_hi], fmt="none", ecolor="#333333", capsize=3, lw=1)
            for y, (s, v) in enumerate(zip(starts, vals), start=1):
                ax.plot([s + v, s + v], [y + 0.3, y + 0.7], color="#888888", lw=0.8)
            ax.barh([0, rows - 1], [0, 0])  # keep the end rows on the axis
            for y, x, name in ((0, self.empty, "v(∅)"), (rows - 1, self.full, "v(N)")):
                ax.plot([x], [y], marker="D", color="#264653")
                ax.annotate(f"{x:.6g}", (x, y), xytext=(6, -3), textcoords="offset points", fontsize=8)
            ax.set_yticks(ys, ["v(∅) baseline", *labels, "v(N) changed"])
            lo_x = min([self.empty, self.full, *starts, *(np.array(starts) + np.array(vals))])
            hi_x = max([self.empty, self.full, *starts, *(np.array(starts) + np.array(vals))])
            pad = 0.08 * (hi_x - lo_x or 1.0)
            ax.set_xlim(lo_x - pad, hi_x + pad)
        else:
            ys = np.arange(len(labels))
            ax.barh(ys, vals, color=colors, height=0.6,
                    xerr=[err_lo, err_hi] if show_err else None, capsize=3 if show_err else 0)
            ax.axvline(0, color="#333333", lw=0.8)
            ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.set_xlabel("KPI" if kind == "waterfall" else "Shapley value")
        how = "exact" if self.exact else f"{self.method}, {self.confidence:.0%} CI"
        ax.set_title(title or f"Shapley attribution of Δ = {self.delta:+.4g} ({how})", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if path is not None:
            fig.savefig(os.fspath(path), format=fmt, dpi=150)
        return fig

    def card(
        self,
        subject: str,
        *,
        inputs_digest: str | None = None,
        evidence: str | None = None,
        top: int = 3,
    ) -> DecisionCard:
        """A Decision Card naming the top contributors and how sure we are
        (not recorded; see :meth:`record`)."""
        from .cards import DecisionCard

        pct = f"{self.confidence:.0%}"
        leaders = self.top(top)
        reasons: list[str] = []
        for name, v, lo, hi in leaders:
            share = f" ({v / self.delta:.0%} of the change)" if self.delta != 0 else ""
            ci = "" if self.exact else f", {pct} CI [{lo:+.4g}, {hi:+.4g}]"
            reasons.append(f"{name}: {v:+.4g}{share}{ci}")
        if self.exact:
            reasons.append(f"exact Shapley values over all {2 ** self.n_players} coalitions: no sampling error")
        else:
            reasons.append(
                f"{self.method} estimate from {self.evaluations} evaluations ({self.units} units, stopped at "
                f"{self.stop}); widest {pct} interval {float(np.max(self.ci_high - self.ci_low)):.4g}"
            )
            if len(leaders) >= 2:
                (n1, _, lo1, hi1), (n2, _, lo2, hi2) = leaders[0], leaders[1]
                if _abs_interval(lo1, hi1)[0] > _abs_interval(lo2, hi2)[1]:
                    reasons.append(f"{n1} ranks first with confidence: its interval clears {n2}'s")
                else:
                    reasons.append(f"the ranking of {n1} over {n2} is uncertain: their intervals overlap")
            if leaders:
                n1, _, lo1, hi1 = leaders[0]
                if lo1 > 0 or hi1 < 0:
                    reasons.append(f"{n1}'s effect is nonzero at {pct}")
                else:
                    reasons.append(f"{n1}'s interval includes 0: its effect is not established at {pct}")
        metrics: dict[str, float | int | str | bool | None] = {
            "players": self.n_players,
            "delta": self.delta,
            "v_empty": self.empty,
            "v_full": self.full,
            "method": self.method,
            "evaluations": self.evaluations,
            "confidence": self.confidence,
            "exact": self.exact,
        }
        for name, v, lo, hi in leaders:
            metrics[f"phi[{name}]"] = v
            if not self.exact:
                metrics[f"ci_low[{name}]"] = lo
                metrics[f"ci_high[{name}]"] = hi
        if leaders and leaders[0][1] != 0:
            decision = f"top contributor: {leaders[0][0]}"
        else:
            decision = "no contributor: the KPI did not move"
        return DecisionCard(
            kind="shapley.attribute",
            subject=subject,
            decision=decision,
            reasons=reasons,
            inputs_digest=inputs_digest or self.inputs_digest,
            metrics=metrics,
            evidence=evidence,
        )

    def record(self, subject: str, *, home: Any = None, store: Any = None, **kwargs: Any) -> DecisionCard:
        """Record :meth:`card` in the store (and the transparency log)."""
        from . import cards

        return cards.record(self.card(subject, **kwargs), home=home, store=store)

    def __repr__(self) -> str:
        return (f"Attribution(method={self.method!r}, n_players={self.n_players}, delta={self.delta:.6g}, "
                f"evaluations={self.evaluations})")


@dataclass(frozen=True)
class Interactions:
    """Pairwise Shapley interaction indices.

    ``matrix[i, j]`` (``i ≠ j``) is the Shapley interaction index of players
    ``i`` and ``j`` (positive: synergy, negative: redundancy); the diagonal
    holds the Shapley values.
    """

    matrix: np.ndarray
    names: tuple[str, ...]

    def pairs(self, k: int = 5) -> list[tuple[str, str, float]]:
        """The ``k`` strongest pairs by ``|index|``."""
        n = len(self.names)
        iu = np.triu_indices(n, 1)
        vals = self.matrix[iu]
        order = np.argsort(-np.abs(vals), kind="stable")[: max(0, k)]
        return [(self.names[iu[0][t]], self.names[iu[1][t]], float(vals[t])) for t in order]


# ------------------------------------------------------------------ entry points
def _digest(game: Game, *extra: Any) -> Callable[[], list[bytes]]:
    return lambda: [*game._digest_parts(), json.dumps(extra).encode()]


def shapley(
    game: Game | npt.ArrayLike,
    method: Method = "auto",
    *,
    budget: int | None = None,
    ci_width: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int | None = None,
    min_units: int | None = None,
    threads: int | None = None,
) -> Attribution:
    """Shapley values of ``game``, exact or estimated with confidence intervals.

    Parameters
    ----------
    game : TableGame, SparseGame, CallableGame or array_like
        An array is taken as a value table.
    method : {"auto", "exact", "permutation", "antithetic", "stratified", "kernel"}
        ``auto``: exact for a table or sparse game (up to 25 players) and for
        a callable game whose ``2^n`` coalitions fit in the budget; otherwise
        ``kernel``.
    budget : int, optional
        Most distinct coalitions to evaluate (sampled methods), ``v(∅)`` and
        ``v(N)`` included. Default 10 000, or 200 000 when ``ci_width`` is
        given.
    ci_width : float, optional
        Stop as soon as every confidence interval is at most this wide.
    confidence : float
        Level of the intervals (default 0.95).
    seed : int
        Results are bit-identical for the same seed and options, whatever the
        number of threads.
    batch_size : int, optional
        Coalitions per batch (default: the game's, or 1024).
    min_units : int, optional
        Units before the ``ci_width`` rule may stop (default 30; 5 for
        ``stratified``).
    threads : int, optional
        Run on a dedicated pool of this many threads (built once per size
        and reused). Default: rayon's global pool over all cores, where
        small batches run on the calling thread. Results do not depend on
        it.

    Returns
    -------
    Attribution

    Raises
    ------
    InputError
        Bad arguments; a table of the wrong length or with NaN/inf; more than
        25 players for ``exact`` (the message points to the sampled methods);
        a budget too small for the method.
    GameError
        The game's function or command failed or returned a non-number.
    """
    g = _as_game(game)
    if method not in _METHODS:
        raise InputError(f"method {method!r}: expected one of {', '.join(_METHODS)}")
    if not (isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and 0 < confidence < 1):
        raise InputError(f"confidence: {confidence!r} is not in (0, 1)")
    if ci_width is not None and not (isinstance(ci_width, (int, float)) and math.isfinite(ci_width) and ci_width > 0):
        raise InputError(f"ci_width: {ci_width!r} is not a positive number")
    seed = _check_int("seed", seed, 0, 2**64 - 1)
    if budget is not None:
        budget = _check_int("budget", budget, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1, 1024)
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    if min_units is not None:
        min_units = _check_int("min_units", min_units, 2)
    n = g.n_players
    if method == "auto":
        if isinstance(g, (TableGame, SparseGame)):
            method = "exact" if n <= MAX_EXACT_PLAYERS else "kernel"
        else:
            limit = budget if budget is not None else DEFAULT_BUDGET
            method = "exact" if n <= MAX_EXACT_PLAYERS and (1 << n) <= limit else "kernel"
    if method == "exact":
        if n > MAX_EXACT_PLAYERS:
            raise InputError(
                f"the exact method needs all 2^{n} coalition values and is limited to n ≤ {MAX_EXACT_PLAYERS} "
                "players; use a sampled method (permutation, stratified or kernel) with a budget or a ci_width instead"
            )
        if isinstance(g, CallableGame) and budget is not None and (1 << n) > budget:
            raise InputError(
                f"the exact method evaluates all 2^{n} = {1 << n} coalitions, more than the budget of {budget}; "
                "raise the budget or use a sampled method"
            )
        table = g.table()
        phi = _native.shapley_exact(table, threads)
        zero = np.zeros_like(phi)
        return Attribution(
            values=phi, stderr=zero, ci_low=phi.copy(), ci_high=phi.copy(),
            evaluations=len(table), units=0, method="exact", stop="exact", confidence=float(confidence),
            names=g.names, empty=float(table[0]), full=float(table[-1]), df=math.inf, seed=None,
            _digest_parts=_digest(g, "exact"),
        )
    if budget is None:
        budget = DEFAULT_BUDGET if ci_width is None else DEFAULT_CI_BUDGET
    d = _native.shapley_sample(
        g._native_game(), method, budget, None if ci_width is None else float(ci_width), float(confidence),
        seed, batch_size or 0, min_units or 0, threads,
    )
    return Attribution(
        values=d["values"], stderr=d["stderr"], ci_low=d["ci_low"], ci_high=d["ci_high"],
        evaluations=int(d["evaluations"]), units=int(d["units"]), method=method, stop=str(d["stop"]),
        confidence=float(confidence), names=g.names, empty=float(d["empty"]), full=float(d["full"]),
        df=float(d["df"]), seed=seed,
        _digest_parts=_digest(g, method, budget, ci_width, confidence, seed),
    )


def interactions(game: Game | npt.ArrayLike, *, threads: int | None = None) -> Interactions:
    """Exact pairwise Shapley interaction indices (``n ≤ 25``; a callable game
    is evaluated on all ``2^n`` coalitions).

    >>> from maestro_core.shapley import TableGame, interactions
    >>> ix = interactions(TableGame([0.0, 1.0, 2.0, 6.0], names=["a", "b"]))
    >>> ix.pairs(1)
    [('a', 'b', 3.0)]
    """
    g = _as_game(game)
    if threads is not None:
        threads = _check_int("threads", threads, 1, 1024)
    if g.n_players > MAX_EXACT_PLAYERS:
        raise InputError(
            f"interactions need all 2^{g.n_players} coalition values and are limited to n ≤ {MAX_EXACT_PLAYERS}"
        )
    m = _native.shapley_interactions(g.table(), threads)
    return Interactions(matrix=m, names=g.names)


def attribute_change(
    baseline: Mapping[str, Any] | Sequence[Any],
    changed: Mapping[str, Any] | Sequence[Any],
    measure: Callable[[dict[str, Any]], Any],
    method: Method = "auto",
    **kwargs: Any,
) -> Attribution:
    """Attribute ``measure(changed) − measure(baseline)`` to the factors that
    changed (see :class:`ChangeSetGame`); ``kwargs`` go to :func:`shapley`."""
    return shapley(ChangeSetGame(baseline, changed, measure), method, **kwargs)


# ------------------------------------------------------------------ files
def _parse01(cell: Any, where: str) -> int:
    s = str(cell).strip().lower()
    if s in ("1", "true", "1.0"):
        return 1
    if s in ("0", "false", "0.0", ""):
        if s == "":
            raise InputError(f"{where}: empty cell (expected 0 or 1)")
        return 0
    raise InputError(f"{where}: {cell!r} is not 0 or 1")


def _parse_value(cell: Any, where: str) -> float:
    if isinstance(cell, bool):
        raise InputError(f"{where}: {cell!r} is not a number")
    try:
        v = float(cell)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{where}: {cell!r} is not a finite number")
    return v


def read_table(
    path: str | os.PathLike[str],
    *,
    value_column: str = "value",
    names: Sequence[str] | None = None,
) -> TableGame | SparseGame:
    """Read measured coalitions from a CSV (or parquet) file.

    Two layouts, each with a header row and one row per measured coalition:

    * **player columns**: a ``value`` column and one column per player
      holding ``0``/``1`` (``true``/``false`` also accepted); the column
      headers are the player names, in order.
    * **mask column**: a ``mask`` column holding ``n`` characters ``0``/``1``
      (character ``i`` = player ``i``) and a ``value`` column; player names
      come from ``names`` (default ``p0, p1, ...``).

    A coalition may appear more than once only with the same value. Returns a
    :class:`TableGame` when all ``2^n`` coalitions are present (``n ≤ 25``),
    otherwise a :class:`SparseGame`. Parquet needs ``pyarrow``
    (``pip install 'maestro-core[parquet]'``).
    """
    p = Path(path)
    if not p.is_file():
        from .errors import FileError

        raise FileError(f"{p}: no such file")
    if p.suffix.lower() in (".parquet", ".pq"):
        header, rows = _read_parquet(p)
    else:
        header, rows = _read_csv(p)
    if value_column not in header:
        raise InputError(f"{p}: no {value_column!r} column (columns: {', '.join(header)})")
    vi = header.index(value_column)
    if "mask" in header:
        others = [h for h in header if h not in ("mask", value_column)]
        if others:
            raise InputError(f"{p}: with a 'mask' column, only 'mask' and {value_column!r} are allowed (also: {', '.join(others)})")
        mi = header.index("mask")
        masks_s = [str(r[mi]).strip() for r in rows]
        if not masks_s:
            raise InputError(f"{p}: no rows")
        n = len(masks_s[0])
        if n == 0:
            raise InputError(f"{p}: line 2: empty mask")
        masks = np.zeros((len(rows), n), dtype=np.uint8)
        for r, m in enumerate(masks_s):
            if len(m) != n or set(m) - {"0", "1"}:
                raise InputError(f"{p}: line {r + 2}: mask {m!r} is not {n} characters 0/1")
            masks[r] = np.frombuffer(m.encode(), dtype=np.uint8) - ord("0")
        player_names = _names(names, n)
    else:
        cols = [i for i in range(len(header)) if i != vi]
        if not cols:
            raise InputError(f"{p}: no player columns besides {value_column!r}")
        if not rows:
            raise InputError(f"{p}: no rows")
        player_names = _names([header[i] for i in cols] if names is None else names, len(cols))
        masks = np.array([[_parse01(r[i], f"{p}: line {k + 2}, column {header[i]!r}") for i in cols]
                          for k, r in enumerate(rows)], dtype=np.uint8).reshape(len(rows), len(cols))
    values = np.array([_parse_value(r[vi], f"{p}: line {k + 2}, column {value_column!r}") for k, r in enumerate(rows)],
                      dtype=np.float64)
    n = masks.shape[1]
    if n > MAX_PLAYERS:
        raise InputError(f"{p}: {n} players; at most {MAX_PLAYERS}")
    sparse = SparseGame.from_arrays(masks, values, player_names)
    if sparse.complete:
        return TableGame(sparse.table(), player_names)
    return sparse


def _read_csv(p: Path) -> tuple[list[str], list[list[str]]]:
    import csv

    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            lines = [row for row in reader]
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not a UTF-8 text file ({e.reason})") from None
    except csv.Error as e:
        raise InputError(f"{p}: malformed CSV ({e})") from None
    if not lines:
        raise InputError(f"{p}: empty file")
    header = [h.strip() for h in lines[0]]
    if len(set(header)) != len(header):
        raise InputError(f"{p}: duplicate column names in the header")
    rows = []
    for k, row in enumerate(lines[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{p}: line {k}: {len(row)} fields, the header has {len(header)}")
        rows.append(row)
    return header, rows


def _read_parquet(p: Path) -> tuple[list[str], list[list[Any]]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise InputError(
            f"{p}: reading parquet needs pyarrow: pip install 'maestro-core[parquet]'"
        ) from None
    try:
        t = pq.read_table(p)
    except Exception as e:
        raise InputError(f"{p}: not a readable parquet file ({e})") from None
    header = [str(c) for c in t.column_names]
    cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
    rows = [list(r) for r in zip(*cols)]
    return header, rows
