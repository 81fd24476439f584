#!/usr/bin/env python3
"""Paired, interleaved timing of the sampled Shapley workloads (issue 6).

On a shared machine the load comes in bursts, and pytest-benchmark runs all
rounds of one implementation before the next: a burst inflates whichever row
happens to run during it. Here each round times ours and the peer back to
back (alternating which goes first), and the ratio is taken per round; the
median of those ratios is robust to bursts that last longer than a round.
CPU time (``time.process_time``) is recorded too: both sides run on one
thread here (our small batches stay on the calling thread; the game uses no
BLAS), so it measures the work done, not the time spent waiting for a core.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benches/shapley_paired.py

Prints a markdown table (same games, budgets and settings as
``bench_shapley.py``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_shapley as b  # noqa: E402

PAIRS: list[tuple[str, str, int]] = [
    ("maestro_core antithetic", "shapiq PermutationSamplingSV", 41),
    ("maestro_core kernel", "shapiq KernelSHAP (paired)", 15),
]


def timed(fn: Callable[[b.Dividends, int], np.ndarray], game: b.Dividends, seed: int) -> tuple[float, float]:
    """(wall time, CPU time of the process) of one estimate."""
    w, c = time.perf_counter(), time.process_time()
    fn(game, seed)
    return time.perf_counter() - w, time.process_time() - c


def main() -> int:
    game = b.dividends(b.PLAYERS)
    print(f"Paired, interleaved rounds ({b.PLAYERS} players, budget {b.BUDGET}); ratio = peer time / our time "
          "per round:\n")
    print("| ours | peer | rounds | our median (wall / CPU) | peer median (wall / CPU) "
          "| median per-round ratio, wall | median per-round ratio, CPU | IQR of CPU ratios |")
    print("|---|---|---|---|---|---|---|---|")
    for ours, peer, rounds in PAIRS:
        f_ours, f_peer = b.SAMPLED_IMPLS[ours][3], b.SAMPLED_IMPLS[peer][3]
        timed(f_ours, game, 0), timed(f_peer, game, 0)  # warm-up
        t_o: list[tuple[float, float]] = []
        t_p: list[tuple[float, float]] = []
        for r in range(rounds):
            if r % 2:
                p, o = timed(f_peer, game, r), timed(f_ours, game, r)
            else:
                o, p = timed(f_ours, game, r), timed(f_peer, game, r)
            t_o.append(o)
            t_p.append(p)
        wall = [p[0] / o[0] for o, p in zip(t_o, t_p)]
        cpu = [p[1] / o[1] for o, p in zip(t_o, t_p)]
        q1, _, q3 = statistics.quantiles(cpu, n=4)

        def med(ts: list[tuple[float, float]], k: int) -> str:
            return f"{statistics.median(t[k] for t in ts) * 1e3:.2f}"

        print(f"| {ours} | {peer} | {rounds} | {med(t_o, 0)} / {med(t_o, 1)} ms | {med(t_p, 0)} / {med(t_p, 1)} ms "
              f"| {statistics.median(wall):.1f}x | {statistics.median(cpu):.1f}x | {q1:.1f}x - {q3:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
