"""Cumulative regret of the dueling-bandit engine on standard synthetic matrices.

Usage::

    python benches/duel_regret.py [--steps 100000] [--seeds 20] [--peer-steps 10000] [--peer-seeds 10]

For each matrix (Arithmetic and Cyclic, both with a Condorcet winner, and a
six-arm matrix without one) and each algorithm (RUCB, RMED1, DTS, CCB, and
uniform sampling as the linear reference), run ``--seeds`` seeds of
``--steps`` duels and record the mean cumulative regret (Condorcet regret
when a Condorcet winner exists, normalised Copeland regret otherwise). The
same matrices and seeds are run through duelpy (the peer) for the
algorithms it has, over ``--peer-steps`` (duelpy runs ~3,000 steps/s, so the
full horizon for every seed would take hours); the statistics are compared at
that horizon, since the random streams differ.

Writes ``benches/duel_regret.png`` (curves), ``benches/duel_regret.json``
(numbers) and the table in ``benches/RESULTS.md`` under
``## Dueling bandits (issue 7)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from maestro_core.duel import Duel, arithmetic_matrix, copeland_matrix, cyclic_matrix

HERE = Path(__file__).resolve().parent
ALGS = ("rucb", "rmed1", "dts", "ccb", "uniform")
MATRICES = {
    "arithmetic-8": (arithmetic_matrix(8, 0.05), "Condorcet"),
    "cyclic-6": (cyclic_matrix(6, 0.6, 0.9), "Condorcet"),
    "copeland-6": (copeland_matrix(), "Copeland (no Condorcet winner)"),
}


def ours(alg: str, m: np.ndarray, steps: int, seed: int, every: int) -> tuple[np.ndarray, int]:
    d = Duel(alg, len(m), seed=seed)
    curve = d.simulate(m, steps, env_seed=seed + 1_000_003, every=every)
    return curve, d.best()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--peer-steps", type=int, default=10_000)
    ap.add_argument("--peer-seeds", type=int, default=10)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args(argv)
    every = max(1, a.steps // 200)
    out = Path(a.out)
    res: dict[str, dict[str, dict[str, float | list[float]]]] = {}
    for mname, (m, kind) in MATRICES.items():
        res[mname] = {}
        for alg in ALGS:
            t0 = time.perf_counter()
            curves, bests, at_peer = [], [], []
            for s in range(a.seeds):
                c, b = ours(alg, m, a.steps, s, every)
                curves.append(c)
                bests.append(b)
                if a.peer_steps <= a.steps and s < a.peer_seeds:
                    pc, _ = ours(alg, m, a.peer_steps, s, a.peer_steps)
                    at_peer.append(float(pc[-1]))
            C = np.array(curves)
            mean = C.mean(axis=0)
            half = mean[len(mean) // 2 - 1]
            res[mname][alg] = {
                "kind": kind, "mean_final": float(mean[-1]), "sd_final": float(C[:, -1].std(ddof=1)),
                "mean_half": float(half), "growth_last_half": float((mean[-1] - half) / max(half, 1e-12)),
                "best_correct": float(np.mean([b == 0 for b in bests])), "curve": mean.tolist(),
                "mean_at_peer_steps": float(np.mean(at_peer)) if at_peer else float("nan"),
                "sd_at_peer_steps": float(np.std(at_peer, ddof=1)) if len(at_peer) > 1 else float("nan"),
                "seconds": time.perf_counter() - t0,
            }
            print(f"{mname:<13} {alg:<8} R(T)={mean[-1]:9.1f} ± {C[:, -1].std(ddof=1):7.1f}  "
                  f"growth over last half {res[mname][alg]['growth_last_half']:.3f}  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    peer: dict[str, dict[str, dict[str, float]]] = {}
    if not a.no_peer:
        warnings.filterwarnings("ignore")
        sys.path.insert(0, str(HERE))
        from _duelpy import PEER, run_peer

        for mname, (m, _) in MATRICES.items():
            peer[mname] = {}
            for alg in PEER:
                finals, secs = [], 0.0
                for s in range(a.peer_seeds):
                    c, dt = run_peer(alg, m, a.peer_steps, s)
                    finals.append(float(c[-1]))
                    secs += dt
                peer[mname][alg] = {"mean": float(np.mean(finals)), "sd": float(np.std(finals, ddof=1)),
                                    "steps_per_s": a.peer_steps * a.peer_seeds / secs}
                print(f"duelpy {mname:<13} {alg:<6} R({a.peer_steps})={np.mean(finals):8.1f} ± {np.std(finals, ddof=1):6.1f}"
                      f"  ours {res[mname][alg]['mean_at_peer_steps']:8.1f}", flush=True)
    meta = {"steps": a.steps, "seeds": a.seeds, "peer_steps": a.peer_steps, "peer_seeds": a.peer_seeds, "every": every}
    (out / "duel_regret.json").write_text(json.dumps({"meta": meta, "ours": res, "duelpy": peer}, indent=1))
    plot(res, meta, out / "duel_regret.png")
    write_results(res, peer, meta, out / "RESULTS.md")
    return 0


def plot(res: dict, meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res), figsize=(5 * len(res), 4))
    x = np.arange(1, len(next(iter(next(iter(res.values())).values()))["curve"]) + 1) * meta["every"]
    for ax, (mname, algs) in zip(axes, res.items()):
        for alg, r in algs.items():
            ax.plot(x, r["curve"], label=alg, ls="--" if alg == "uniform" else "-")
        ax.set_title(f"{mname} ({next(iter(algs.values()))['kind'].split(' ')[0]} regret)")
        ax.set_xlabel("t")
        ax.set_ylabel(f"mean cumulative regret ({meta['seeds']} seeds)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("maestro_core dueling bandits: cumulative regret (log scale; uniform = linear reference)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


BEGIN, END = "<!-- duel_regret:begin -->", "<!-- duel_regret:end -->"


def write_results(res: dict, peer: dict, meta: dict, path: Path) -> None:
    lines = [BEGIN, "",
             f"Regret (`python benches/duel_regret.py`): T = {meta['steps']:,} steps, mean ± sd over "
             f"{meta['seeds']} seeds; *growth* = (R(T) − R(T/2)) / R(T/2), about 0.06 for log T regret and 1 "
             f"for linear regret. duelpy columns: T = {meta['peer_steps']:,}, {meta['peer_seeds']} seeds (same "
             "matrices and seeds, different random streams). Curves: `benches/duel_regret.png`.", "",
             f"| matrix | algorithm | R(T) | growth | best arm found | ours R({meta['peer_steps']:,}) | duelpy R({meta['peer_steps']:,}) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for mname, algs in res.items():
        for alg, r in algs.items():
            p = peer.get(mname, {}).get(alg)
            ps = f"{p['mean']:.1f} ± {p['sd']:.1f}" if p else "—"
            lines.append(f"| {mname} | {alg} | {r['mean_final']:.1f} ± {r['sd_final']:.1f} | {r['growth_last_half']:.3f} | "
                         f"{r['best_correct']:.0%} | {r['mean_at_peer_steps']:.1f} ± {r['sd_at_peer_steps']:.1f} | {ps} |")
    lines += ["", END]
    update_section(path, "\n".join(lines))


def update_section(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    head = "## Dueling bandits (issue 7)"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if head not in text:
        text = text.rstrip() + f"\n\n{head}\n\n"
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        text = text[:i] + block + text[j:]
    else:
        k = text.index(head) + len(head)
        text = text[:k] + "\n\n" + block + "\n" + text[k:]
    path.write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
