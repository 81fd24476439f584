"""Shapley attribution (issue 6): axioms, oracles, peers, intervals, errors, CLI."""

from __future__ import annotations

import doctest
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import maestro_core.shapley as sh
from maestro_core import _native, cards
from maestro_core.cli import main
from maestro_core.errors import GameError, GameTimeoutError, InputError, MaestroError
from maestro_core.shapley import (
    CallableGame,
    ChangeSetGame,
    CommandGame,
    SparseGame,
    TableGame,
    attribute_change,
    interactions,
    read_table,
    shapley,
)

sys.path.insert(0, str(Path(__file__).parent))
import shapley_oracle as oracle  # noqa: E402

SAMPLED = ["permutation", "antithetic", "stratified", "kernel"]
PY = sys.executable
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ helpers
@st.composite
def tables(draw: st.DrawFn, min_n: int = 1, max_n: int = 7) -> np.ndarray:
    n = draw(st.integers(min_n, max_n))
    elems = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
    return draw(hnp.arrays(np.float64, 1 << n, elements=elems))


def n_of(v: np.ndarray) -> int:
    return len(v).bit_length() - 1


def bits_matrix(n: int) -> np.ndarray:
    k = np.arange(1 << n)
    return ((k[:, None] >> np.arange(n)) & 1).astype(np.float64)


def swap_bits(k: np.ndarray, i: int, j: int) -> np.ndarray:
    bi, bj = (k >> i) & 1, (k >> j) & 1
    x = bi ^ bj
    return k ^ ((x << i) | (x << j))


def random_table(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=1 << n)


def tol(v: np.ndarray) -> float:
    return 1e-9 * max(1.0, float(np.abs(v).max()))


def shapiq_exact(v: np.ndarray, index: str = "SV", order: int = 1):  # type: ignore[no-untyped-def]
    from shapiq import ExactComputer

    n = n_of(v)
    w = 1 << np.arange(n)

    def game(coalitions: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(coalitions)  # shapiq sometimes passes one coalition as 1-D
        return v[c.astype(np.int64) @ w]

    return ExactComputer(game=game, n_players=n)(index, order)


# ------------------------------------------------------------------ exact: axioms
@HYP
@given(tables())
def test_exact_is_efficient(v: np.ndarray) -> None:
    phi = shapley(TableGame(v)).values
    assert abs(phi.sum() - (v[-1] - v[0])) <= tol(v)


@HYP
@given(tables(min_n=2), st.data())
def test_symmetric_players_get_equal_values(v: np.ndarray, data: st.DataObject) -> None:
    n = n_of(v)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    k = np.arange(len(v))
    sym = (v + v[swap_bits(k, i, j)]) / 2  # v(S) = v(S with i and j swapped)
    phi = shapley(TableGame(sym)).values
    assert abs(phi[i] - phi[j]) <= tol(v)


@HYP
@given(tables(min_n=2), st.data())
def test_dummy_player_gets_its_own_contribution(v: np.ndarray, data: st.DataObject) -> None:
    n = n_of(v)
    d = data.draw(st.integers(0, n - 1))
    c = data.draw(st.floats(-100, 100, allow_nan=False))
    k = np.arange(len(v))
    dummy = v[k & ~(1 << d)] + c * ((k >> d) & 1)  # v(S ∪ d) = v(S) + c
    phi = shapley(TableGame(dummy)).values
    assert abs(phi[d] - c) <= tol(dummy)
    null = v[k & ~(1 << d)]  # a null player (c = 0) gets exactly nothing
    assert abs(shapley(TableGame(null)).values[d]) <= tol(v)


@HYP
@given(st.integers(1, 7).flatmap(lambda n: st.tuples(*(hnp.arrays(
    np.float64, 1 << n, elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)) for _ in range(2)))),
    st.floats(-10, 10, allow_nan=False), st.floats(-10, 10, allow_nan=False))
def test_additivity_and_linearity(vw: tuple[np.ndarray, np.ndarray], a: float, b: float) -> None:
    v, w = vw
    pv, pw = shapley(TableGame(v)).values, shapley(TableGame(w)).values
    both = shapley(TableGame(v + w)).values
    assert np.allclose(both, pv + pw, rtol=0, atol=tol(v) + tol(w))
    lin = shapley(TableGame(a * v + b * w)).values
    assert np.allclose(lin, a * pv + b * pw, rtol=0, atol=30 * (tol(v) + tol(w)))


# ------------------------------------------------------------------ exact: oracles and peers
@HYP
@given(tables(max_n=8))
def test_exact_matches_bruteforce_definition(v: np.ndarray) -> None:
    phi = shapley(TableGame(v)).values
    want = oracle.shapley_by_subsets(v.tolist())
    assert np.allclose(phi, want, rtol=0, atol=tol(v))
    if n_of(v) <= 6:
        assert np.allclose(phi, oracle.shapley_by_orders(v.tolist()), rtol=0, atol=tol(v))


@pytest.mark.parametrize("n", [9, 10])
def test_exact_matches_bruteforce_at_n10(n: int) -> None:
    for seed in range(3):
        v = random_table(n, seed) * 100
        phi = shapley(TableGame(v)).values
        assert np.allclose(phi, oracle.shapley_by_subsets(v.tolist()), rtol=0, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(tables(max_n=7))
def test_exact_matches_shapiq(v: np.ndarray) -> None:
    phi = shapley(TableGame(v)).values
    sv = shapiq_exact(v)
    want = np.array([sv[(i,)] for i in range(n_of(v))])
    assert np.allclose(phi, want, rtol=0, atol=1e-9)


def test_exact_matches_shapiq_at_n10() -> None:
    v = random_table(10, 7)
    sv = shapiq_exact(v)
    want = np.array([sv[(i,)] for i in range(10)])
    assert np.abs(shapley(TableGame(v)).values - want).max() < 1e-9


@settings(max_examples=30, deadline=None)
@given(tables(min_n=2, max_n=7))
def test_interactions_match_bruteforce(v: np.ndarray) -> None:
    n = n_of(v)
    ix = interactions(TableGame(v))
    assert ix.matrix.shape == (n, n)
    assert np.allclose(ix.matrix, ix.matrix.T, rtol=0, atol=0)
    assert np.allclose(np.diag(ix.matrix), shapley(TableGame(v)).values, rtol=0, atol=tol(v))
    for i in range(n):
        for j in range(i + 1, n):
            assert abs(ix.matrix[i, j] - oracle.interaction(v.tolist(), i, j)) <= tol(v)


def test_interactions_match_shapiq_sii() -> None:
    v = random_table(7, 3)
    sii = shapiq_exact(v, "SII", 2)
    m = interactions(v).matrix
    for i in range(7):
        for j in range(i + 1, 7):
            assert abs(m[i, j] - sii[(i, j)]) < 1e-9


def test_interactions_detect_synergy_and_redundancy() -> None:
    # v = [a and b] - [b and c]: synergy a×b, redundancy... b×c negative.
    k = np.arange(8)
    a, b, c = k & 1, (k >> 1) & 1, (k >> 2) & 1
    v = (a & b).astype(float) - (b & c).astype(float)
    ix = interactions(TableGame(v, names=["a", "b", "c"]))
    assert ix.pairs(2) == [("a", "b", 1.0), ("b", "c", -1.0)]
    assert ix.matrix[0, 2] == 0.0


def test_every_game_kind_gives_the_same_exact_values() -> None:
    n = 6
    v = random_table(n, 11)
    want = shapley(TableGame(v)).values
    keyed_int = SparseGame({k: float(v[k]) for k in range(1 << n)}, n_players=n)
    keyed_str = SparseGame({"".join(str((k >> i) & 1) for i in range(n)): float(v[k]) for k in range(1 << n)},
                           n_players=n)
    w = 1 << np.arange(n)
    batched = CallableGame(lambda m: v[m.astype(np.int64) @ w], n)
    single = CallableGame(lambda m: float(v[int(m.astype(np.int64) @ w)]), n, batched=False)
    for g in (keyed_int, keyed_str, batched, single, v, v.tolist()):
        res = shapley(g)
        assert res.method == "exact" and res.evaluations == 1 << n
        assert np.array_equal(res.values, want), g
    assert batched.evaluations == 1 << n


def test_exact_is_bit_identical_on_any_thread_count() -> None:
    v = random_table(18, 5)
    ref = shapley(TableGame(v), threads=1).values
    for t in (2, 3, 4):
        assert shapley(TableGame(v), threads=t).values.tobytes() == ref.tobytes()
    assert interactions(v[: 1 << 10], threads=1).matrix.tobytes() == interactions(v[: 1 << 10], threads=3).matrix.tobytes()


def test_gil_is_released_during_native_work() -> None:
    v = random_table(23, 1)  # ~0.1-1 s of Rust work
    g = TableGame(v)
    ticks = 0
    done = threading.Event()

    def work() -> None:
        for _ in range(3):
            shapley(g, threads=1)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert ticks > 20, "the Python thread could not run while Rust computed"


# ------------------------------------------------------------------ sampled estimators
def coverage_game(n: int = 12, seed: int = 1) -> tuple[TableGame, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = bits_matrix(n).sum(1)
    v = rng.normal(size=1 << n) + 0.3 * sizes**1.5
    g = TableGame(v)
    return g, shapley(g).values


@pytest.mark.slow
@pytest.mark.parametrize("method", SAMPLED)
def test_confidence_intervals_cover_the_truth(method: str) -> None:
    """200 seeded repetitions: the 95% intervals cover the exact values ~95% of the time."""
    g, truth = coverage_game()
    hits, widths = [], []
    for seed in range(200):
        r = shapley(g, method, budget=1500, seed=seed)
        assert r.stop == "budget" and r.evaluations <= 1500
        hits.append((r.ci_low <= truth) & (truth <= r.ci_high))
        widths.append(r.ci_high - r.ci_low)
    cover = float(np.mean(hits))
    print(f"{method}: 95% CI coverage {cover:.3f} over 200 repetitions x 12 players")
    assert 0.90 <= cover <= 0.99, cover
    assert float(np.mean(widths)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["permutation", "kernel"])
def test_coverage_follows_the_requested_level(method: str) -> None:
    g, truth = coverage_game(seed=4)
    hits = [
        (r.ci_low <= truth) & (truth <= r.ci_high)
        for r in (shapley(g, method, budget=1500, seed=s, confidence=0.8) for s in range(200))
    ]
    assert 0.74 <= float(np.mean(hits)) <= 0.86


def additive_pairwise(n: int, seed: int) -> tuple[CallableGame, np.ndarray]:
    """v(S) = Σ a_i + Σ_{i<j} b_ij over S: φ_i = a_i + Σ_j b_ij / 2 (closed form)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = np.triu(rng.normal(size=(n, n)) * (rng.random((n, n)) < 0.3), 1)
    b = b + b.T

    def v(masks: np.ndarray) -> np.ndarray:
        x = masks.astype(np.float64)
        return x @ a + 0.5 * np.einsum("ki,ij,kj->k", x, b, x)

    return CallableGame(v, n), a + b.sum(1) / 2


def dividend_game(n: int, seed: int) -> tuple[CallableGame, np.ndarray]:
    """A sum of unanimity games c_T·[T ⊆ S] with |T| from 1 to 6: φ_i = Σ_{T∋i} c_T/|T|."""
    rng = np.random.default_rng(seed)
    terms = [(rng.choice(n, size=k, replace=False), rng.normal()) for k in (1, 2, 3, 4, 6) for _ in range(n // 2)]
    coef = np.array([c for _, c in terms])
    truth = np.zeros(n)
    for t, c in terms:
        truth[t] += c / len(t)

    def v(masks: np.ndarray) -> np.ndarray:
        return np.stack([masks[:, t].all(1) for t, _ in terms], axis=1).astype(np.float64) @ coef

    return CallableGame(v, n), truth


@pytest.mark.slow
@pytest.mark.parametrize("method", SAMPLED)
def test_coverage_on_a_closed_form_callable_game(method: str) -> None:
    hits = []
    for seed in range(100):
        g, truth = dividend_game(16, 0)
        r = shapley(g, method, budget=3000, seed=seed)
        hits.append((r.ci_low <= truth) & (truth <= r.ci_high))
    cover = float(np.mean(hits))
    print(f"{method}: closed-form game, 95% CI coverage {cover:.3f}")
    assert 0.90 <= cover <= 0.99


@pytest.mark.slow
def test_reported_standard_errors_match_the_spread() -> None:
    g, truth = coverage_game(seed=2)
    for method in SAMPLED:
        runs = [shapley(g, method, budget=1500, seed=s) for s in range(100)]
        emp = np.array([r.values for r in runs]).var(0).mean()
        rep = np.mean([r.stderr**2 for r in runs])
        assert 0.65 < rep / emp < 1.5, (method, rep, emp)


def variance_games(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    bits = bits_matrix(n)
    w = rng.uniform(0.5, 2.0, size=n)
    return {
        # marginals linear in the predecessors' weight: reversal cancels them
        "square": (bits @ w) ** 2 + 0.5 * rng.normal(size=1 << n),
        # marginals driven by coalition size: stratifying by size removes that
        "size": (bits @ w) * (bits.sum(1) / n) ** 2,
    }


@pytest.mark.slow
def test_antithetic_and_stratified_reduce_variance() -> None:
    """Same budget (2000 evaluations), 100 seeds: mean squared error vs exact."""
    mse = {}
    for name, v in variance_games().items():
        g = TableGame(v)
        truth = shapley(g).values
        for method in ("permutation", "antithetic", "stratified"):
            runs = [shapley(g, method, budget=2000, seed=s) for s in range(100)]
            assert max(r.evaluations for r in runs) <= 2000
            mse[name, method] = float(np.mean([(r.values - truth) ** 2 for r in runs]))
    print({k: f"{x:.3g}" for k, x in mse.items()})
    assert mse["square", "antithetic"] < mse["square", "permutation"] / 20
    assert mse["square", "stratified"] < mse["square", "permutation"] / 3
    assert mse["size", "stratified"] < mse["size", "permutation"] / 20
    assert mse["size", "antithetic"] < mse["size", "permutation"] / 3


@pytest.mark.parametrize("method", SAMPLED)
def test_sampled_results_are_bit_reproducible(method: str) -> None:
    g, _ = coverage_game(n=11)
    ref = shapley(g, method, budget=3000, seed=9, threads=1)
    for t in (2, 3):
        other = shapley(g, method, budget=3000, seed=9, threads=t)
        for f in ("values", "stderr", "ci_low", "ci_high"):
            assert getattr(other, f).tobytes() == getattr(ref, f).tobytes(), (method, t, f)
        assert (other.evaluations, other.units) == (ref.evaluations, ref.units)
    callable_game = CallableGame(lambda m: g.values[m.astype(np.int64) @ (1 << np.arange(11))], 11, batch_size=97)
    via_callable = shapley(callable_game, method, budget=3000, seed=9, batch_size=97)
    assert via_callable.values.tobytes() == shapley(g, method, budget=3000, seed=9, batch_size=97).values.tobytes()
    # below 2^11 coalitions, so that the kernel method samples too
    assert not np.array_equal(shapley(g, method, budget=1000, seed=10).values,
                              shapley(g, method, budget=1000, seed=9).values)


@pytest.mark.parametrize("method", SAMPLED)
def test_sampled_estimates_are_efficient_and_within_budget(method: str) -> None:
    g, n_truth = additive_pairwise(30, 1)
    smallest = {"permutation": 60, "antithetic": 118, "stratified": 1742, "kernel": 62}[method]
    for budget in (smallest, 5000):
        r = shapley(g, method, budget=budget, seed=1)
        assert r.evaluations <= budget and r.units >= 2
        assert abs(r.values.sum() - r.delta) < 1e-8
        assert np.all(r.ci_low <= r.values) and np.all(r.values <= r.ci_high)
    assert g.evaluations >= r.evaluations  # the game's cache counts every distinct call
    with pytest.raises(InputError, match=f"needs at least {smallest}"):
        shapley(g, method, budget=smallest - 1)


def test_ci_width_stops_early_or_reports_the_budget() -> None:
    g, truth = dividend_game(25, 2)
    r = shapley(g, "kernel", ci_width=0.05, budget=100_000)
    assert r.stop == "ci_width" and r.evaluations < 100_000
    assert float(np.max(r.ci_high - r.ci_low)) <= 0.05
    r = shapley(g, "permutation", ci_width=1e-6, budget=3000)
    assert r.stop == "budget" and r.evaluations <= 3000
    assert float(np.max(r.ci_high - r.ci_low)) > 1e-6


def test_kernel_is_exact_when_the_budget_covers_every_coalition() -> None:
    v = random_table(6, 3)
    r = shapley(TableGame(v), "kernel", budget=64)
    assert r.stop == "exact" and r.evaluations == 64
    assert np.allclose(r.values, shapley(TableGame(v)).values, rtol=0, atol=1e-12)
    assert np.all(r.stderr == 0)


def test_auto_picks_exact_or_sampling() -> None:
    assert shapley(random_table(8, 1)).method == "exact"
    small = CallableGame(lambda m: m.sum(1).astype(float), 10)
    assert shapley(small).method == "exact"
    big = CallableGame(lambda m: m.sum(1).astype(float) ** 2, 40)
    r = shapley(big, budget=3000)
    assert r.method == "kernel" and r.evaluations <= 3000
    assert np.allclose(r.values, 40.0, atol=1e-6)  # symmetric game: (n)² / n each


def test_one_player_game() -> None:
    for method in ["exact", *SAMPLED]:
        r = shapley(TableGame([2.0, 5.0]), method, budget=10)
        assert r.values.tolist() == [3.0] and r.stderr.tolist() == [0.0]


# ------------------------------------------------------------------ callable games and caching
def test_callable_game_batches_and_caches() -> None:
    seen: list[tuple[tuple[int, ...], str]] = []

    def v(masks: np.ndarray) -> np.ndarray:
        seen.append((masks.shape, str(masks.dtype)))
        return masks.sum(1) ** 2.0

    g = CallableGame(v, 30, batch_size=100)
    r1 = shapley(g, "permutation", budget=2000)
    calls = g.evaluations
    assert calls == r1.evaluations <= 2000
    assert all(shape[1] == 30 and shape[0] <= 100 and dtype == "bool" for shape, dtype in seen)
    n_batches = len(seen)
    r2 = shapley(g, "permutation", budget=2000)  # same seed: every coalition is cached
    assert len(seen) == n_batches and g.evaluations == calls
    assert r2.values.tobytes() == r1.values.tobytes()
    g.clear_cache()
    assert g.evaluations == 0


@pytest.mark.parametrize("method", ["permutation", "antithetic"])
def test_a_fixed_budget_is_one_call_when_the_batch_allows(method: str) -> None:
    seen: list[int] = []

    def v(masks: np.ndarray) -> np.ndarray:
        seen.append(len(masks))
        return masks.sum(1) ** 2.0

    g = CallableGame(v, 40, batch_size=3000)
    r = shapley(g, method, budget=3000, seed=3)
    assert len(seen) == 1 and seen[0] == r.evaluations <= 3000  # v(∅), v(N) and every unit at once
    small = CallableGame(v, 40, batch_size=500)
    seen.clear()
    assert shapley(small, method, budget=3000, seed=3).values.tobytes() == r.values.tobytes()
    assert max(seen) <= 500 and sum(seen) == r.evaluations


def test_a_callable_game_is_freed_without_the_cyclic_collector() -> None:
    import gc
    import weakref

    gc.disable()
    try:
        g = CallableGame(lambda m: m.sum(1).astype(float), 5)
        shapley(g, "kernel", budget=40)
        ref = weakref.ref(g)
        del g
        assert ref() is None
    finally:
        gc.enable()


def test_change_set_attributes_the_kpi_delta() -> None:
    base = {"cache": True, "workers": 4, "image": "v1", "region": "eu"}
    new = {"cache": False, "workers": 2, "image": "v1", "debug": True}
    calls = []

    def minutes(cfg: dict) -> float:
        calls.append(dict(cfg))
        t = 10.0 * (1.0 if cfg["cache"] else 1.5) * (4 / cfg["workers"])
        return t + (3.0 if cfg.get("debug") else 0.0) + (1.0 if "region" in cfg else 0.0)

    g = ChangeSetGame(base, new, minutes)
    assert not calls and g.factors == ("cache", "workers", "region", "debug") and g.unchanged == ("image",)
    assert g.config([0, 0, 1, 0]) == {"cache": True, "workers": 4, "image": "v1"}  # region removed
    res = shapley(g)
    assert len(calls) == 16  # each of the 2^4 configurations measured once
    assert res.empty == minutes(base) and res.full == minutes(new)
    assert abs(res.values.sum() - res.delta) < 1e-12
    # cache and workers interact multiplicatively: Shapley splits the joint
    # term evenly, unlike "each factor's own delta" (which does not add up).
    own = {k: minutes(g.config(np.eye(4, dtype=bool)[i])) - res.empty for i, k in enumerate(g.factors)}
    assert abs(sum(own.values()) - res.delta) > 1.0
    vals = dict(zip(res.names, res.values))
    # joint term 30 − 15 − 20 + 10 = 5, split evenly on top of the own effects 5 and 10
    assert vals["cache"] == pytest.approx(7.5) and vals["workers"] == pytest.approx(12.5)
    assert vals["debug"] == pytest.approx(3.0) and vals["region"] == pytest.approx(-1.0)
    seq = attribute_change([1, 2], [1, 5], lambda cfg: cfg["factor1"] * 2.0)
    assert seq.names == ("factor1",) and seq.values.tolist() == [6.0]


def test_change_set_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="identical"):
        ChangeSetGame({"a": 1}, {"a": 1}, lambda c: 0.0)
    with pytest.raises(InputError, match="both be mappings"):
        ChangeSetGame({"a": 1}, [1], lambda c: 0.0)
    with pytest.raises(InputError, match="2 factors"):
        ChangeSetGame([1, 2], [1], lambda c: 0.0)
    with pytest.raises(InputError, match="not callable"):
        ChangeSetGame({"a": 1}, {"a": 2}, 3)  # type: ignore[arg-type]
    g = ChangeSetGame({"a": 1}, {"a": 2}, lambda c: "fast")
    with pytest.raises(GameError, match="not a number"):
        shapley(g)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("length", [0, 3, 6, 1000])
def test_table_of_wrong_length(length: int) -> None:
    with pytest.raises(InputError, match="power of two"):
        TableGame(np.zeros(length))
    with pytest.raises(InputError, match="power of two"):
        _native.shapley_exact(np.zeros(length))
    with pytest.raises(InputError, match="power of two"):
        _native.shapley_sample(np.zeros(length), "kernel", 100)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_table_with_nan_or_inf(bad: float) -> None:
    v = np.zeros(16)
    v[5] = bad
    with pytest.raises(InputError, match=r"entry 5 \(coalition 1010\)"):
        TableGame(v)
    for native in (_native.shapley_exact, _native.shapley_interactions):
        with pytest.raises(InputError, match=r"entry 5 \(coalition 1010\)"):
            native(v)
    with pytest.raises(InputError, match="finite"):
        _native.shapley_sample(v, "permutation", 100)


def test_table_of_the_wrong_type_or_shape() -> None:
    with pytest.raises(InputError, match="1-D"):
        TableGame(np.zeros((4, 4)))
    with pytest.raises(InputError, match="not an array of numbers"):
        TableGame(["a", "b"])
    with pytest.raises(InputError, match="contiguous"):
        _native.shapley_exact(np.zeros(8)[::2])
    with pytest.raises(InputError, match="not a game"):
        shapley("abc")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="CallableGame"):
        shapley(lambda m: 0.0)  # type: ignore[arg-type]


def test_too_many_players_for_exact_points_to_sampling() -> None:
    big = np.zeros(1 << 26)  # calloc'd: the length is refused before any value is read
    with pytest.raises(InputError, match="sampled method"):
        _native.shapley_exact(big)
    g = CallableGame(lambda m: m.sum(1) * 1.0, 30)
    with pytest.raises(InputError, match="sampled method"):
        shapley(g, "exact")
    with pytest.raises(InputError, match="limited to n ≤ 25"):
        interactions(g)
    assert g.evaluations == 0
    with pytest.raises(InputError, match="more than the budget"):
        shapley(CallableGame(lambda m: m.sum(1) * 1.0, 12), "exact", budget=100)


def test_callable_that_raises() -> None:
    def boom(masks: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("no KPI today")

    for method in ["exact", *SAMPLED]:
        with pytest.raises(GameError, match="raised ZeroDivisionError: no KPI today") as ei:
            shapley(CallableGame(boom, 5), method, budget=200)
        assert isinstance(ei.value.__cause__, ZeroDivisionError)
    single = CallableGame(lambda m: 1 / 0, 3, batched=False)
    with pytest.raises(GameError, match="coalition 000"):
        shapley(single)


@pytest.mark.parametrize(
    "ret, match",
    [
        (lambda m: "fast", "str"),
        (lambda m: None, "NoneType None, not a number"),
        (lambda m: [object()] * len(m), "not a number"),
        (lambda m: np.ones(len(m) + 1), "shape"),
        (lambda m: np.ones((len(m), 2)), "shape"),
        (lambda m: np.where(m.sum(1) == 2, np.nan, 1.0), "nan for coalition"),
        (lambda m: np.where(m.sum(1) == 3, np.inf, 1.0), "inf for coalition"),
        (lambda m: np.array(["1"] * len(m)), "not numbers"),
        (lambda m: {"a": 1}, "dict .* not a number"),
    ],
)
def test_callable_returning_non_numbers(ret, match: str) -> None:  # type: ignore[no-untyped-def]
    for method in ("exact", "kernel"):
        with pytest.raises(GameError, match=match):
            shapley(CallableGame(ret, 4), method, budget=100)


def test_unbatched_callable_returning_garbage() -> None:
    with pytest.raises(GameError, match="returned str '1.5' for coalition 00"):
        shapley(CallableGame(lambda m: "1.5", 2, batched=False))
    with pytest.raises(GameError, match="nan for coalition"):
        shapley(CallableGame(lambda m: float("nan"), 2, batched=False))


def test_keyboard_interrupt_in_the_callable_propagates() -> None:
    def stop(masks: np.ndarray) -> np.ndarray:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shapley(CallableGame(stop, 8), "kernel", budget=500)


def test_cache_stays_usable_after_a_failure() -> None:
    state = {"fail": True}

    def flaky(masks: np.ndarray) -> np.ndarray:
        if state["fail"] and masks.sum() > 3:
            raise RuntimeError("flaky runner")
        return masks.sum(1).astype(float)

    g = CallableGame(flaky, 6, batch_size=8)
    with pytest.raises(GameError, match="flaky runner"):
        shapley(g)
    state["fail"] = False
    assert np.allclose(shapley(g).values, 1.0)
    assert g.evaluations == 64


def test_reentrant_use_of_a_game_is_an_error_not_a_deadlock() -> None:
    holder: dict[str, CallableGame] = {}

    def v(masks: np.ndarray) -> np.ndarray:
        shapley(holder["g"], "permutation", budget=50)
        return masks.sum(1) * 1.0

    holder["g"] = CallableGame(v, 4)
    with pytest.raises(InputError, match="already being evaluated"):
        shapley(holder["g"], "permutation", budget=50)


@pytest.mark.parametrize("method, budget", [("permutation", 15), ("antithetic", 29), ("stratified", 113),
                                            ("kernel", 17)])
def test_budget_too_small(method: str, budget: int) -> None:
    with pytest.raises(InputError, match="needs at least"):
        shapley(TableGame(random_table(8, 0)), method, budget=budget)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "magic"}, "method"),
        ({"method": "kernel", "confidence": 1.0}, "confidence"),
        ({"method": "kernel", "confidence": True}, "confidence"),
        ({"method": "kernel", "ci_width": 0.0}, "ci_width"),
        ({"method": "kernel", "ci_width": float("nan")}, "ci_width"),
        ({"method": "kernel", "seed": -1}, "seed"),
        ({"method": "kernel", "seed": 2**64}, "seed"),
        ({"method": "kernel", "seed": 1.5}, "seed"),
        ({"method": "kernel", "threads": 0}, "threads"),
        ({"method": "kernel", "budget": -5}, "budget"),
        ({"method": "kernel", "budget": "many"}, "budget"),
        ({"method": "kernel", "min_units": 1}, "min_units"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        shapley(TableGame(random_table(5, 0)), **kwargs)


def test_sparse_games() -> None:
    with pytest.raises(InputError, match="coalition 110 was not measured"):
        shapley(SparseGame({0: 0.0, 1: 1.0, 2: 2.0, 0b111: 7.0}, n_players=3))
    with pytest.raises(InputError, match="different values"):
        SparseGame.from_arrays([[0, 1], [0, 1]], [1.0, 2.0])
    assert SparseGame.from_arrays([[0, 1], [0, 1]], [1.0, 1.0]).measured == 1
    with pytest.raises(InputError, match="not a finite number"):
        SparseGame.from_arrays([[0, 1]], [np.nan])
    with pytest.raises(InputError, match="unknown player"):
        SparseGame({("a", "z"): 1.0}, names=["a", "b"])
    with pytest.raises(InputError, match="not a number"):
        SparseGame({0: "x"}, n_players=2)
    with pytest.raises(InputError, match="bitmask"):
        SparseGame({9: 1.0}, n_players=2)
    g = SparseGame({(): 0.0, ("a",): 1.0, ("b",): 2.0, ("a", "b"): 6.0}, names=["a", "b"])
    assert g.complete and shapley(g).values.tolist() == [2.5, 3.5]
    # a sampled method on an incomplete table names what it is missing
    part = SparseGame({k: float(k) for k in range(0, 1 << 8, 3)} | {255: 1.0, 0: 0.0}, n_players=8)
    with pytest.raises(InputError, match="was not measured"):
        shapley(part, "kernel", budget=300)


def command(body: str) -> str:
    return f"{PY} -c {json.dumps(body)} {{mask}}"


def test_command_game_measures_each_coalition() -> None:
    g = CommandGame(command("import sys; m=sys.argv[1]; print('log line'); print(int(m[0]) * 5 + int(m[1]) * 2 + "
                            "3 * int(m[0]) * int(m[1]))"), 2, names=["x", "y"], jobs=2)
    r = shapley(g)
    assert np.allclose(r.values, [6.5, 3.5], rtol=0, atol=1e-12) and g.evaluations == 4


@pytest.mark.parametrize(
    "body, exc, match",
    [
        ("import sys; sys.exit(3)", GameError, "exited with status 3 for coalition"),
        ("print('fast')", GameError, "printed no number"),
        ("print('nan')", GameError, "finite"),
        ("import sys; print('oops', file=sys.stderr); sys.exit(1)", GameError, "oops"),
    ],
)
def test_command_game_failures(body: str, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        shapley(CommandGame(command(body), 2))


def test_command_game_timeout_kills_the_process_group() -> None:
    # the shell's grandchild keeps the pipes open: only a group kill ends it
    g = CommandGame("sleep 30; echo 1 {mask}", 2, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(GameTimeoutError, match="timed out after 0.5s for coalition"):
        shapley(g)
    assert time.monotonic() - t0 < 10
    assert isinstance(GameTimeoutError("x"), TimeoutError)


def test_command_game_rejects_bad_setup() -> None:
    with pytest.raises(InputError, match="mask"):
        CommandGame("echo 1", 2)
    with pytest.raises(InputError, match="timeout"):
        CommandGame("echo {mask}", 2, timeout=0)
    with pytest.raises(InputError, match="n_players"):
        CommandGame("echo {mask}", 0)


# ------------------------------------------------------------------ results: plots, cards
def sampled_result() -> sh.Attribution:
    g, _ = dividend_game(14, 5)
    return shapley(g, "antithetic", budget=3000, seed=3)


@pytest.mark.parametrize("kind", ["waterfall", "bar"])
def test_plots_are_written(tmp_path: Path, kind: str) -> None:
    r = sampled_result()
    png, svg = tmp_path / "a.png", tmp_path / "a.svg"
    r.plot(png, kind=kind, top=5)
    r.plot(svg, kind=kind)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and "Shapley attribution" in text
    fig = shapley(TableGame([0.0, 1.0, 2.0, 6.0], names=["a", "b"])).plot(kind=kind)
    assert fig.axes
    with pytest.raises(InputError, match=r"\.png, \.svg or \.pdf"):
        r.plot(tmp_path / "a.jpg")
    with pytest.raises(InputError, match="plot kind"):
        r.plot(kind="pie")  # type: ignore[arg-type]


def test_decision_card_names_top_contributors_and_certainty(tmp_path: Path) -> None:
    r = sampled_result()
    card = r.record("ci-time regression", home=tmp_path)
    leader = r.top(1)[0][0]
    assert card.kind == "shapley.attribute" and card.decision == f"top contributor: {leader}"
    assert card.reasons[0].startswith(f"{leader}: ") and "95% CI [" in card.reasons[0]
    assert any("antithetic estimate from" in x for x in card.reasons)
    assert any("ranks first" in x or "uncertain" in x for x in card.reasons)
    assert card.metrics[f"phi[{leader}]"] == pytest.approx(r.top(1)[0][1])
    assert cards.get(card.id, home=tmp_path).reasons == card.reasons
    exact = shapley(TableGame([0.0, 1.0, 2.0, 6.0], names=["a", "b"])).card("toy")
    assert exact.decision == "top contributor: b" and any("no sampling error" in x for x in exact.reasons)
    flat = shapley(TableGame([1.0, 1.0, 1.0, 1.0])).card("flat")
    assert flat.decision == "no contributor: the KPI did not move"
    flat.with_id().validate()


def test_inputs_digest_identifies_the_game_and_options() -> None:
    v = random_table(5, 1)
    a, b = shapley(TableGame(v)), shapley(TableGame(v.copy()))
    assert a.inputs_digest == b.inputs_digest and a.inputs_digest.startswith("blake3:")
    w = v.copy()
    w[3] += 1e-9
    assert shapley(TableGame(w)).inputs_digest != a.inputs_digest
    s1 = shapley(TableGame(v), "kernel", budget=100, seed=1)
    s2 = shapley(TableGame(v), "kernel", budget=100, seed=2)
    assert len({s1.inputs_digest, s2.inputs_digest, a.inputs_digest}) == 3
    assert s1.card("x").inputs_digest == s1.inputs_digest


def test_summary_and_dict() -> None:
    r = sampled_result()
    text = r.summary(top=3)
    assert "95% CI" in text and "... 11 more" in text
    d = json.loads(json.dumps(r.to_dict()))
    assert d["method"] == "antithetic" and len(d["values"]) == 14 and d["evaluations"] <= 3000
    assert abs(sum(d["values"]) - d["delta"]) < 1e-9


# ------------------------------------------------------------------ files and CLI
def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def table_rows(v: np.ndarray, n: int) -> list[list[object]]:
    return [[(k >> i) & 1 for i in range(n)] + [repr(float(v[k]))] for k in range(1 << n)]


def test_read_table_layouts(tmp_path: Path) -> None:
    v = random_table(4, 2)
    cols = write_csv(tmp_path / "c.csv", ["a", "b", "c", "d", "value"], table_rows(v, 4)[::-1])
    g = read_table(cols)
    assert isinstance(g, TableGame) and g.names == ("a", "b", "c", "d") and np.array_equal(g.values, v)
    rows = [["".join(str((k >> i) & 1) for i in range(4)), repr(float(v[k]))] for k in range(16)]
    masks = write_csv(tmp_path / "m.csv", ["mask", "kpi"], rows)
    g2 = read_table(masks, value_column="kpi", names=["w", "x", "y", "z"])
    assert isinstance(g2, TableGame) and np.array_equal(g2.values, v) and g2.names == ("w", "x", "y", "z")
    part = read_table(write_csv(tmp_path / "p.csv", ["mask", "value"], rows[:10]))
    assert isinstance(part, SparseGame) and part.measured == 10


@pytest.mark.parametrize(
    "header, rows, match",
    [
        (["a", "value"], [[0, 1], [2, 3]], "line 3, column 'a': '2' is not 0 or 1"),
        (["a", "value"], [[0, 1], [1, "nan"]], "line 3, column 'value': 'nan' is not a finite number"),
        (["a", "value"], [[0, 1], [1, "x"]], "'x' is not a number"),
        (["a", "b"], [[0, 1]], "no 'value' column"),
        (["mask", "value", "extra"], [["01", 1, 2]], "only 'mask'"),
        (["mask", "value"], [["01", 1], ["012", 1]], "line 3: mask '012'"),
        (["a", "value"], [[0, 1], [0, 2]], "different values"),
        (["a", "value"], [], "no rows"),
    ],
)
def test_read_table_errors(tmp_path: Path, header: list[str], rows: list[list[object]], match: str) -> None:
    with pytest.raises(InputError, match=match):
        read_table(write_csv(tmp_path / "t.csv", header, rows))


def test_read_parquet_and_missing_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    v = random_table(3, 1)
    cols = {n: [(k >> i) & 1 for k in range(8)] for i, n in enumerate("abc")}
    pq.write_table(pa.table({**cols, "value": v.tolist()}), tmp_path / "t.parquet")
    g = read_table(tmp_path / "t.parquet")
    assert isinstance(g, TableGame) and np.array_equal(g.values, v) and g.names == ("a", "b", "c")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"pip install 'maestro-core\[parquet\]'"):
        read_table(tmp_path / "t.parquet")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_attribute_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = random_table(4, 8)
    csv = write_csv(tmp_path / "kpi.csv", ["cache", "workers", "image", "flags", "value"], table_rows(v, 4))
    home = str(tmp_path / "home")
    rc, out, err = run_cli(["attribute", "--table", str(csv), "--home", home, "--json", "--interactions",
                            "--plot", str(tmp_path / "w.svg")], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert np.allclose(d["values"], shapley(TableGame(v)).values, rtol=0, atol=0)
    assert d["players"] == ["cache", "workers", "image", "flags"] and d["method"] == "exact"
    assert np.allclose(d["interactions"], interactions(v).matrix)
    assert (tmp_path / "w.svg").read_text().startswith("<?xml")
    card = cards.get(d["card"], home=home)
    assert card.kind == "shapley.attribute" and card.subject == str(csv)
    assert card.inputs_digest == cards.digest_inputs(b"table", csv.read_bytes())
    rc, out, _ = run_cli(["attribute", "--table", str(csv), "--home", home, "--method", "kernel",
                          "--budget", "100", "--no-card"], capsys)
    assert rc == 0 and "exact over all 16" in out and "95% CI" not in out  # all sizes enumerated
    rc, out, _ = run_cli(["attribute", "--table", str(csv), "--home", home, "--method", "permutation",
                          "--budget", "16", "--no-card", "--plot", str(tmp_path / "p.png")], capsys)
    assert rc == 0 and "95% CI" in out and (tmp_path / "p.png").exists()


def test_cli_attribute_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["".join(str((k >> i) & 1) for i in range(3)), k] for k in range(7)]
    csv = write_csv(tmp_path / "part.csv", ["mask", "value"], rows)
    rc, _, err = run_cli(["attribute", "--table", str(csv), "--home", str(tmp_path)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("maestro: InputError: coalition 111 was not measured")
    rc, _, err = run_cli(["attribute", "--command", "echo 1 {mask}", "--home", str(tmp_path)], capsys)
    assert rc == 2 and "--players" in err
    rc, _, err = run_cli(["attribute", "--command", "sleep 20 {mask}", "--players", "2", "--timeout", "0.3",
                          "--home", str(tmp_path)], capsys)
    assert rc == 2 and err.startswith("maestro: GameTimeoutError: command timed out")
    rc, _, err = run_cli(["attribute", "--command", "echo fast {mask}", "--players", "2", "--home", str(tmp_path)],
                         capsys)
    assert rc == 2 and "GameError: command printed no number" in err
    rc, _, err = run_cli(["attribute", "--table", str(tmp_path / "nope.csv"), "--home", str(tmp_path)], capsys)
    assert rc == 2 and "FileError" in err
    full = write_csv(tmp_path / "full.csv", ["a", "value"], [[0, 1], [1, 2]])
    rc, _, err = run_cli(["attribute", "--table", str(full), "--home", str(tmp_path),
                          "--plot", str(tmp_path / "x.gif")], capsys)
    assert rc == 2 and "InputError: plot" in err


def test_cli_attribute_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = "import sys; m=sys.argv[1]; print(10 + 5*int(m[0]) + 2*int(m[1]) + 3*int(m[0])*int(m[1]) - int(m[2]))"
    rc, out, err = run_cli(["attribute", "--command", command(body), "--names", "cache,workers,flags",
                            "--home", str(tmp_path), "--jobs", "2", "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert np.allclose(d["values"], [6.5, 3.5, -1.0], rtol=0, atol=1e-12) and d["evaluations"] == 8
    assert cards.get(d["card"], home=tmp_path).decision == "top contributor: cache"


def test_module_doctests() -> None:
    res = doctest.testmod(sh, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 8 and res.failed == 0


def test_errors_are_maestro_errors() -> None:
    assert issubclass(GameError, InputError) and issubclass(GameTimeoutError, GameError)
    assert issubclass(GameError, MaestroError) and issubclass(GameError, ValueError)
