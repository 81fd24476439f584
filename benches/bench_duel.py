"""Steps per second of the dueling-bandit algorithms at K = 100 arms: ours vs duelpy.

Three implementations per algorithm, on the same 100-arm Arithmetic matrix
(``p_ij = 1/2 + 0.004 (j − i)``), from a fresh state, same horizon:

* ``ours-python``: a Python loop calling ``Duel.select`` / ``Duel.record``
  and drawing the outcome with numpy (what a tournament runner does);
* ``ours-native``: ``Duel.simulate`` (the whole loop in Rust);
* ``duelpy``: the peer, driven by its own ``step()`` with ``MatrixFeedback``.

Each run also records its correctness signal (the regret accumulated, so a
fast but wrong run shows). Run as pytest-benchmark tests
(``pytest benches/bench_duel.py --benchmark-enable``) or as a script, which
measures all of them in one process and writes the table and the ratios to
``benches/RESULTS.md``::

    python benches/bench_duel.py [--repeat 3]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from maestro_core.duel import Duel, arithmetic_matrix, preference_regrets  # noqa: E402

K = 100
MATRIX = np.ascontiguousarray(arithmetic_matrix(K, 0.004))
REG, _ = preference_regrets(MATRIX)
# RMED1 spends its first K(K-1)/2 = 4,950 duels on the initial phase: time past it.
STEPS = {"rucb": 200, "rmed1": 6000, "dts": 200, "ccb": 200}


def ours_python(alg: str, steps: int, seed: int = 0) -> float:
    d = Duel(alg, K, seed=seed)
    rng = np.random.default_rng(seed + 1)
    u = rng.random(steps)
    cum = 0.0
    for s in range(steps):
        a, b = d.select()
        cum += 0.5 * (REG[a] + REG[b])
        if a == b or u[s] < MATRIX[a, b]:
            d.record(a, b)
        else:
            d.record(b, a)
    return cum


def ours_native(alg: str, steps: int, seed: int = 0) -> float:
    d = Duel(alg, K, seed=seed)
    return float(d.simulate(MATRIX, steps, env_seed=seed + 1, every=steps)[-1])


def peer(alg: str, steps: int, seed: int = 0) -> float:
    warnings.filterwarnings("ignore")
    from _duelpy import run_peer

    c, _ = run_peer(alg, MATRIX, steps, seed)
    return float(c[-1])


IMPLS: dict[str, Callable[[str, int, int], float]] = {"ours-python": ours_python, "ours-native": ours_native,
                                                       "duelpy": peer}


@pytest.mark.parametrize("alg", list(STEPS))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_steps(benchmark, impl: str, alg: str) -> None:  # type: ignore[no-untyped-def]
    steps = STEPS[alg]
    regret = benchmark.pedantic(IMPLS[impl], args=(alg, steps, 0), rounds=1, iterations=1)
    benchmark.extra_info.update({"steps": steps, "regret": regret, "workload": f"{alg}@K={K}"})
    # correctness: the regret of `steps` duels is bounded by the worst arm's regret
    assert 0 <= regret <= steps * REG.max()


def measure(repeat: int = 3) -> dict[str, dict[str, tuple[float, float]]]:
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for alg, steps in STEPS.items():
        out[alg] = {}
        for name, fn in IMPLS.items():
            best, regret = float("inf"), 0.0
            for r in range(repeat if name != "duelpy" else 1):
                t0 = time.perf_counter()
                regret = fn(alg, steps, 0)
                best = min(best, time.perf_counter() - t0)
            out[alg][name] = (steps / best, regret)
            print(f"{alg:<6} {name:<12} {steps / best:12.1f} steps/s  (regret {regret:.1f})", flush=True)
    return out


def main() -> int:
    import argparse

    from duel_regret import update_section

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    res = measure(a.repeat)
    lines = ["<!-- bench_duel:begin -->", "",
             f"Throughput at K = {K} arms (`python benches/bench_duel.py`, one process, one run; best of "
             f"{a.repeat} for ours, one run for duelpy; 2-core machine shared with other jobs). Horizon per "
             f"algorithm from a fresh state: {', '.join(f'{k} {v:,}' for k, v in STEPS.items())} steps. "
             "The regret column is the correctness signal of the same run.", "",
             "| algorithm | duelpy steps/s | ours (Python loop) steps/s | ratio | ours (native loop) steps/s | ratio | regret duelpy / ours-python / ours-native |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for alg, r in res.items():
        p, op, on = r["duelpy"], r["ours-python"], r["ours-native"]
        lines.append(f"| {alg} | {p[0]:,.0f} | {op[0]:,.0f} | {op[0] / p[0]:,.0f}× | {on[0]:,.0f} | {on[0] / p[0]:,.0f}× | "
                     f"{p[1]:.1f} / {op[1]:.1f} / {on[1]:.1f} |")
    lines += ["", "<!-- bench_duel:end -->"]
    update_section(Path(__file__).resolve().parent / "RESULTS.md", "\n".join(lines),
                   "<!-- bench_duel:begin -->", "<!-- bench_duel:end -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
