"""Mutation testing throughput on the Rego corpus: ours vs real OPA.

Three paths over the same mutants of the same policies, each judged by the
same decisions (a mutant is detected when any outcome differs from the
original's, or when it does not load):

* ours: ``maestro_core.policy.mutate`` (regorus in the Rust engine, rayon
  across mutants, equivalence check off so that the work is the same);
* peer, in-process: a fresh embedded OPA engine (opa-golib-python-bindings)
  per mutant, loading the mutated modules and evaluating every decision;
* peer, subprocess: the same in a new Python process per mutant (as running
  ``opa eval`` per mutant), on a sample of mutants.

There is no pure-Python Rego evaluator to compare with. Correctness is
recorded: the fraction of mutants on which ours and OPA agree.

Run as pytest-benchmark (``pytest benches/bench_policy.py --benchmark-enable``)
or as a script that times all three in one run and prints the ratios
(``python benches/bench_policy.py``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from policy_common import agree, corpus, mutated_modules, opa_outcomes, opa_subprocess_outcomes  # noqa: E402

from maestro_core import _native, policy  # noqa: E402

SUBPROCESS_SAMPLE = 3  # mutants per policy through a subprocess each


def workload() -> list[tuple[str, policy.PolicySet, list[policy.Decision], list[dict[str, Any]]]]:
    out = []
    for cp in corpus():
        if cp.name.startswith("kata/"):
            continue  # v0 policies: OPA needs a rewrite that shifts the spans
        ps = policy.load(cp.paths, cp.data)
        muts = json.loads(_native.rego_mutants(ps._inner, None))
        out.append((cp.name, ps, cp.decisions, muts))
    return out


def run_ours(wl: Any, threads: int = 0) -> dict[str, bool]:
    detected = {}
    for name, ps, decs, _ in wl:
        r = policy.mutate(ps, decs, threads=threads, equivalence_samples=0, incremental=False, record_card=False)
        for m in r.mutants:
            detected[f"{name}#{m.id}"] = m.status in ("killed", "timeout", "error", "stillborn")
    return detected


def run_opa(wl: Any, subprocess_sample: int | None = None) -> dict[str, bool]:
    detected = {}
    for name, ps, decs, muts in wl:
        base = opa_outcomes([(m.path, m.text) for m in ps.modules], ps.data, decs)
        chosen = muts if subprocess_sample is None else muts[:subprocess_sample]
        for m in chosen:
            mods = mutated_modules(ps, m)
            outs = (opa_outcomes(mods, ps.data, decs) if subprocess_sample is None
                    else opa_subprocess_outcomes(mods, ps.data, decs))
            detected[f"{name}#{m['id']}"] = any(not agree(a, b) for a, b in zip(base, outs))
    return detected


@pytest.fixture(scope="module")
def wl() -> Any:
    return workload()


@pytest.mark.benchmark(group="rego-mutation")
def test_ours(benchmark: Any, wl: Any) -> None:
    res = benchmark.pedantic(run_ours, args=(wl,), rounds=3, iterations=1)
    benchmark.extra_info["mutants"] = len(res)


@pytest.mark.benchmark(group="rego-mutation")
def test_opa_in_process(benchmark: Any, wl: Any) -> None:
    res = benchmark.pedantic(run_opa, args=(wl,), rounds=1, iterations=1)
    benchmark.extra_info["mutants"] = len(res)
    ours = run_ours(wl)
    benchmark.extra_info["agreement"] = sum(ours[k] == v for k, v in res.items()) / len(res)


@pytest.mark.benchmark(group="rego-mutation")
def test_opa_subprocess(benchmark: Any, wl: Any) -> None:
    res = benchmark.pedantic(run_opa, args=(wl, SUBPROCESS_SAMPLE), rounds=1, iterations=1)
    benchmark.extra_info["mutants"] = len(res)


def main() -> int:
    """Interleaved rounds (ours, ours on 1 thread, OPA in-process), so that
    the load of a shared machine falls on all paths alike; the ratio is taken
    per round and the median reported, with the load average."""
    import statistics

    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    wl = workload()
    n = sum(len(w[3]) for w in wl)
    run_ours(wl)  # warm-up (page cache, allocator)
    times: dict[str, list[float]] = {"ours": [], "ours_1_thread": [], "opa_in_process": []}
    ours = opa = {}
    for _ in range(rounds):
        t = time.perf_counter()
        ours = run_ours(wl)
        times["ours"].append(time.perf_counter() - t)
        t = time.perf_counter()
        run_ours(wl, threads=1)
        times["ours_1_thread"].append(time.perf_counter() - t)
        t = time.perf_counter()
        opa = run_opa(wl)
        times["opa_in_process"].append(time.perf_counter() - t)
    t = time.perf_counter()
    sub = run_opa(wl, SUBPROCESS_SAMPLE)
    t_sub = time.perf_counter() - t
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    rate["opa_subprocess"] = len(sub) / t_sub
    per_round = [o / u for o, u in zip(times["opa_in_process"], times["ours"])]
    per_round_1 = [o / u for o, u in zip(times["opa_in_process"], times["ours_1_thread"])]
    agreement = sum(ours[k] == v for k, v in opa.items()) / len(opa)
    dis = [k for k, v in opa.items() if ours[k] != v]
    print(f"{len(wl)} policies, {n} mutants, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"{rounds} interleaved rounds; load average {os.getloadavg()}")
    for k, v in rate.items():
        print(f"  {k:16} {v:10.1f} mutants/s (median round)")
    print(f"  ratio ours / OPA in-process, per round: median {statistics.median(per_round):.1f}x "
          f"(min {min(per_round):.1f}x, max {max(per_round):.1f}x); 1 thread: median {statistics.median(per_round_1):.1f}x")
    print(f"  ours / OPA subprocess: {rate['ours'] / rate['opa_subprocess']:.1f}x")
    print(f"  verdict agreement with OPA: {agreement:.1%} ({len(opa) - len(dis)}/{len(opa)}); differ: {dis}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
