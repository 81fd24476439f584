"""Shapley attribution (issue 6): ours against shapiq and vectorised numpy.

Run (numpy/BLAS-facing, so in its own command without the OpenBLAS overrides)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest \\
        benches/bench_shapley.py --benchmark-enable -p no:cacheprovider \\
        --benchmark-json benches/shapley.json
    .venv/bin/python benches/shapley_report.py benches/shapley.json   # updates RESULTS.md

Workloads, one ``benchmark.group`` each:

* ``shapley-exact-n16`` / ``shapley-exact-n20``: exact Shapley values of a
  random value table of ``2^n`` entries. Ours: ``shapley(TableGame(v))``
  (validation included); shapiq: ``ExactComputer(game, n)("SV")`` over a
  table-lookup game; numpy: the weighted-difference formula vectorised per
  player. All three must agree to 1e-9. Goal: >= 50x shapiq.
* ``shapley-sampled-n50-permutation`` / ``shapley-sampled-n50-kernel``: a
  fixed budget of game evaluations on a 50-player game whose Shapley values
  are known in closed form (a sum of unanimity games ``c_T·[T ⊆ S]`` with
  ``|T|`` from 1 to 6, so ``φ_i = Σ_{T∋i} c_T/|T|``), evaluated by the same
  vectorised numpy function for everybody (integer bit operations on packed
  coalitions, no BLAS: about 0.7 ms per 5000 coalitions, single-threaded;
  ``MAESTRO_BENCH_SHAPLEY_GAME=legacy`` selects the original, slower
  formulation, 1.1 ms). Each round
  is one estimate on a fresh game (no cache carried over). The error is the
  RMSE against the closed form, averaged over 50 seeds, recorded in
  ``extra_info`` and checked. Goal: >= 10x faster than shapiq's
  ``PermutationSamplingSV`` / ``KernelSHAP`` at equal or lower error.

Sizes come from the environment (smaller for a smoke run):
``MAESTRO_BENCH_SHAPLEY_EXACT`` (``16,20``), ``MAESTRO_BENCH_SHAPLEY_PLAYERS``
(``50``), ``MAESTRO_BENCH_SHAPLEY_BUDGET`` (``5000``),
``MAESTRO_BENCH_SHAPLEY_SEEDS`` (``50``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from scipy.special import comb

from maestro_core.shapley import CallableGame, TableGame, shapley

EXACT_NS = [int(x) for x in os.environ.get("MAESTRO_BENCH_SHAPLEY_EXACT", "16,20").split(",")]
PLAYERS = int(os.environ.get("MAESTRO_BENCH_SHAPLEY_PLAYERS", "50"))
BUDGET = int(os.environ.get("MAESTRO_BENCH_SHAPLEY_BUDGET", "5000"))
SEEDS = int(os.environ.get("MAESTRO_BENCH_SHAPLEY_SEEDS", "50"))
# The sampled workloads' game function: the faster formulation (default) or
# the original one (``legacy``); both compute the same values for everybody.
LEGACY_GAME = os.environ.get("MAESTRO_BENCH_SHAPLEY_GAME", "") == "legacy"


# ------------------------------------------------------------------ exact
@lru_cache(maxsize=None)
def table(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=1 << n)


def numpy_exact(v: np.ndarray) -> np.ndarray:
    """φ_i = Σ_{S∌i} w(|S|)(v(S∪i) − v(S)), one vectorised pass per player."""
    n = len(v).bit_length() - 1
    pc = np.bitwise_count(np.arange(1 << n, dtype=np.uint32))
    w = 1.0 / (n * comb(n - 1, np.arange(n)))
    phi = np.empty(n)
    for i in range(n):
        vv = v.reshape(-1, 2, 1 << i)
        s = pc.reshape(-1, 2, 1 << i)[:, 0, :]
        phi[i] = float((w[s] * (vv[:, 1, :] - vv[:, 0, :])).sum())
    return phi


def shapiq_exact(v: np.ndarray) -> np.ndarray:
    from shapiq import ExactComputer

    n = len(v).bit_length() - 1
    bits = 1 << np.arange(n)

    def game(coalitions: np.ndarray) -> np.ndarray:
        return v[np.atleast_2d(coalitions).astype(np.int64) @ bits]

    sv = ExactComputer(game=game, n_players=n)("SV")
    return np.array([sv[(i,)] for i in range(n)])


def ours_exact(v: np.ndarray) -> np.ndarray:
    return shapley(TableGame(v)).values


def _warm_up_peers() -> None:
    """Run each peer once on a tiny game, so lazy imports and first-call
    set-up are not charged to single-round timings."""
    v = np.arange(16, dtype=np.float64)
    shapiq_exact(v)
    tiny = Dividends(6)
    shapiq_permutation(tiny, 0, budget=40)
    shapiq_kernel(tiny, 0, budget=40)


EXACT_IMPLS: dict[str, tuple[str, float | None, Callable[[np.ndarray], np.ndarray], dict[str, int]]] = {
    "maestro_core": ("ours", None, ours_exact, {"rounds": 20, "warmup_rounds": 2}),
    "numpy (vectorised)": ("baseline", None, numpy_exact, {"rounds": 5, "warmup_rounds": 1}),
    "shapiq ExactComputer": ("peer", 50.0, shapiq_exact, {"rounds": 1, "warmup_rounds": 0}),
}


@pytest.mark.parametrize("impl", list(EXACT_IMPLS))
@pytest.mark.parametrize("n", EXACT_NS)
def test_exact(benchmark: Any, impl: str, n: int) -> None:
    role, goal, fn, rounds = EXACT_IMPLS[impl]
    v = table(n)
    benchmark.group = f"shapley-exact-n{n}"
    benchmark.extra_info.update(impl=impl, role=role, goal=goal, players=n,
                                workload=f"exact Shapley values, random table of 2^{n} values")
    got = benchmark.pedantic(fn, args=(v,), iterations=1, **rounds)
    ref = numpy_exact(v)
    err = float(np.abs(got - ref).max())
    benchmark.extra_info["max_abs_diff_vs_numpy"] = err
    assert err < 1e-9
    assert abs(got.sum() - (v[-1] - v[0])) < 1e-9


# ------------------------------------------------------------------ sampled
class Dividends:
    """v(S) = Σ_T c_T·[T ⊆ S] for random T of sizes 1, 2, 3, 4, 6 (n/2 of each)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        sets = [rng.choice(n, size=k, replace=False) for k in (1, 2, 3, 4, 6) for _ in range(max(1, n // 2))]
        assert n <= 64, "coalitions are packed into uint64"
        self.n = n
        self.coef = rng.normal(size=len(sets))
        self.truth = np.zeros(n)
        for t, c in zip(sets, self.coef):
            self.truth[t] += c / len(t)
        self.bits = np.left_shift(np.uint64(1), np.arange(n, dtype=np.uint64))
        self.terms = np.array([int(self.bits[t].sum()) for t in sets], dtype=np.uint64)

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        # Integer bit operations only: no BLAS threads, the same single-threaded
        # cost for every implementation (about 0.7 ms per 5000 coalitions;
        # 1.1 ms with the original formulation, MAESTRO_BENCH_SHAPLEY_GAME=legacy).
        m = np.atleast_2d(masks)
        if LEGACY_GAME:
            codes = (m.astype(np.uint64) * self.bits).sum(1, dtype=np.uint64)
            hits = (codes[:, None] & self.terms) == self.terms
            return (hits * self.coef).sum(1)
        # Pack each row's bits into one little-endian uint64 (n <= 64): the same
        # codes as Σ_i m_i 2^i without a (k, n) uint64 temporary.
        packed = np.packbits(m, axis=1, bitorder="little")
        buf = np.zeros((len(m), 8), np.uint8)
        buf[:, : packed.shape[1]] = packed
        codes = buf.view("<u8").ravel()
        hits = (codes[:, None] & self.terms) == self.terms
        # einsum's own loop (no BLAS), no (k, terms) float temporary.
        return np.einsum("ij,j->i", hits, self.coef)


@lru_cache(maxsize=None)
def dividends(n: int) -> Dividends:
    return Dividends(n)


def ours(method: str) -> Callable[[Dividends, int], np.ndarray]:
    def run(game: Dividends, seed: int) -> np.ndarray:
        # One game call for the whole budget, as shapiq's permutation
        # sampler gets with batch_size=100 permutations (4900 coalitions).
        g = CallableGame(game, game.n, batch_size=BUDGET)
        return shapley(g, method, budget=BUDGET, seed=seed).values

    return run


def numpy_permutation(game: Dividends, seed: int) -> np.ndarray:
    """Permutation sampling, vectorised: all prefixes of all orders in one call."""
    n = game.n
    rng = np.random.default_rng(seed)
    m = (BUDGET - 2) // (n - 1)
    perms = rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1)
    rank = np.empty_like(perms)
    rank[np.arange(m)[:, None], perms] = np.arange(n)
    masks = rank[:, None, :] < np.arange(1, n)[None, :, None]
    mid = game(masks.reshape(-1, n)).reshape(m, n - 1)
    ends = game(np.array([np.zeros(n, bool), np.ones(n, bool)]))
    path = np.concatenate([np.full((m, 1), ends[0]), mid, np.full((m, 1), ends[1])], axis=1)
    phi = np.zeros(n)
    np.add.at(phi, perms, np.diff(path, axis=1))
    return phi / m


def shapiq_permutation(game: Dividends, seed: int, budget: int | None = None) -> np.ndarray:
    from shapiq.approximator import PermutationSamplingSV

    # batch_size=100 permutations per game call (the default is 5): fewer, larger calls.
    iv = PermutationSamplingSV(game.n, random_state=seed).approximate(budget or BUDGET, game, batch_size=100)
    return np.array([iv[(i,)] for i in range(game.n)])


def shapiq_kernel(game: Dividends, seed: int, budget: int | None = None) -> np.ndarray:
    from shapiq.approximator import KernelSHAP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iv = KernelSHAP(game.n, pairing_trick=True, random_state=seed).approximate(budget or BUDGET, game)
    return np.array([iv[(i,)] for i in range(game.n)])


_warm_up_peers()


SAMPLED_IMPLS: dict[str, tuple[str, str, float | None, Callable[[Dividends, int], np.ndarray], int]] = {
    # name: (group suffix, role, goal, fn, rounds)
    "maestro_core antithetic": ("permutation", "ours", None, ours("antithetic"), 40),
    "maestro_core permutation": ("permutation", "ours-variant", None, ours("permutation"), 40),
    "maestro_core stratified": ("permutation", "ours-variant", None, ours("stratified"), 40),
    "shapiq PermutationSamplingSV": ("permutation", "peer", 10.0, shapiq_permutation, 15),
    "numpy permutation (vectorised)": ("permutation", "baseline", None, numpy_permutation, 40),
    "maestro_core kernel": ("kernel", "ours", None, ours("kernel"), 40),
    "shapiq KernelSHAP (paired)": ("kernel", "peer", 10.0, shapiq_kernel, 5),
}


def rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((est - truth) ** 2)))


@pytest.mark.parametrize("impl", list(SAMPLED_IMPLS))
def test_sampled(benchmark: Any, impl: str) -> None:
    group, role, goal, fn, rounds = SAMPLED_IMPLS[impl]
    game = dividends(PLAYERS)
    benchmark.group = f"shapley-sampled-n{PLAYERS}-{group}"
    benchmark.extra_info.update(
        impl=impl, role=role, goal=goal, players=PLAYERS, budget=BUDGET,
        workload=f"{PLAYERS} players, budget {BUDGET} evaluations, closed-form game "
        f"({len(game.coef)} unanimity terms), same numpy game function for all",
    )
    est = benchmark.pedantic(fn, args=(game, 0), rounds=rounds, iterations=1, warmup_rounds=1)
    errors = [rmse(fn(game, seed), game.truth) for seed in range(1, SEEDS + 1)]
    benchmark.extra_info.update(rmse=float(np.mean(errors)), rmse_sd=float(np.std(errors)), seeds=SEEDS)
    delta = game(np.ones((1, PLAYERS), bool))[0] - game(np.zeros((1, PLAYERS), bool))[0]
    # Agreement with the closed form: every estimator's error is a fraction of
    # the values' spread (and the permutation family is efficient).
    spread = float(np.std(game.truth))
    assert rmse(est, game.truth) < spread, (impl, rmse(est, game.truth), spread)
    if "shapiq" not in impl:
        assert abs(est.sum() - delta) < 1e-6
