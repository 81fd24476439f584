"""Test impact analysis benchmarks (pytest-benchmark), grouped by workload.

* ``khop``: hop-bounded min-cost paths (k = 3) from 10 changed nodes on a
  random 100k-node, 1M-hyperedge hypergraph: maestro (Rust, rayon) vs the
  same min-plus rounds in numpy over scipy.sparse CSR.
* ``sssp``: unbounded min-cost paths on the same graph: maestro run to its
  fixpoint vs scipy.sparse.csgraph.dijkstra and rustworkx Dijkstra on the
  bipartite expansion (node → hyperedge → node), the form those libraries take.
* ``index``: indexing throughput of a synthetic repository (files/s).
* ``select``: selection latency for a 3-function diff in a synthetic
  repository of 5000 tests (safe mode, new process state, graph cache warm).

Each benchmark checks its result against the reference before timing.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest benches/bench_tia.py \\
        --benchmark-enable -p no:cacheprovider --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import math
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rustworkx as rx
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from maestro_core.hypergraph import Hypergraph
from maestro_core.tia import Index

N_NODES = int(os.environ.get("TIA_BENCH_NODES", 100_000))
N_EDGES = int(os.environ.get("TIA_BENCH_EDGES", 1_000_000))
K = 3


@pytest.fixture(scope="module")
def big() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    sizes = rng.integers(2, 5, N_EDGES)  # 2..4 nodes per hyperedge
    indptr = np.zeros(N_EDGES + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(sizes)
    indices = rng.integers(0, N_NODES, int(indptr[-1])).astype(np.int32)
    w = rng.uniform(0.1, 5.0, N_EDGES)
    tail = sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(N_EDGES, N_NODES))
    src = rng.choice(N_NODES, 10, replace=False)
    return {"tail": tail, "w": w, "src": src, "g": Hypergraph.from_scipy(tail, w)}


def scipy_minplus(tail: sp.csr_array, head_t: sp.csr_array, w: np.ndarray, src: np.ndarray, k: int) -> np.ndarray:
    d = np.full(tail.shape[1], np.inf)
    d[src] = 0.0
    for _ in range(k):
        h = np.minimum.reduceat(d[tail.indices], tail.indptr[:-1]) + w
        nd = d.copy()
        rows = np.diff(head_t.indptr) > 0
        nd[rows] = np.minimum(nd[rows], np.minimum.reduceat(h[head_t.indices], head_t.indptr[:-1][rows]))
        d = nd
    return d


@pytest.mark.benchmark(group="khop k=3, 100k nodes, 1M hyperedges")
def test_khop_maestro(benchmark: Any, big: dict[str, Any]) -> None:
    head_t = big["tail"].T.tocsr()
    want = scipy_minplus(big["tail"], head_t, big["w"], big["src"], K)
    r = benchmark(big["g"].khop, big["src"], K)
    np.testing.assert_array_equal(r.dist, want)


@pytest.mark.benchmark(group="khop k=3, 100k nodes, 1M hyperedges")
def test_khop_scipy_minplus(benchmark: Any, big: dict[str, Any]) -> None:
    head_t = big["tail"].T.tocsr()
    benchmark(scipy_minplus, big["tail"], head_t, big["w"], big["src"], K)


@pytest.fixture(scope="module")
def expansion(big: dict[str, Any]) -> dict[str, Any]:
    t: sp.csr_array = big["tail"]
    n, m = N_NODES, N_EDGES
    rows = np.repeat(np.arange(m), np.diff(t.indptr))
    cols = t.indices.astype(np.int64)
    eps = 1e-12  # csgraph drops explicit zeros
    a_src = np.concatenate([cols, n + rows])
    a_dst = np.concatenate([n + rows, cols])
    a_w = np.concatenate([big["w"][rows], np.full(len(rows), eps)])
    # a node listed twice in one hyperedge would be summed by scipy: keep one
    _, first = np.unique(a_src * (n + m + 1) + a_dst, return_index=True)
    a_src, a_dst, a_w = a_src[first], a_dst[first], a_w[first]
    A = sp.csr_array((a_w, (a_src, a_dst)), shape=(n + m + 1, n + m + 1))
    sup = n + m
    A = sp.csr_array((np.concatenate([a_w, np.full(10, eps)]),
                      (np.concatenate([a_src, np.full(10, sup)]), np.concatenate([a_dst, big["src"]]))),
                     shape=(n + m + 1, n + m + 1))
    g = rx.PyDiGraph()
    g.add_nodes_from(range(n + m + 1))
    g.extend_from_weighted_edge_list(list(zip(a_src.tolist(), a_dst.tolist(), a_w.tolist()))
                                     + [(sup, int(s), 0.0) for s in big["src"]])
    return {"A": A, "rx": g, "sup": sup}


def fixpoint(g: Hypergraph, src: np.ndarray) -> np.ndarray:
    return g.khop(src, 10_000).dist  # stops at the fixpoint


@pytest.mark.benchmark(group="sssp unbounded, 100k nodes, 1M hyperedges")
def test_sssp_maestro(benchmark: Any, big: dict[str, Any], expansion: dict[str, Any]) -> None:
    want = dijkstra(expansion["A"], indices=expansion["sup"])[:N_NODES]
    d = benchmark(fixpoint, big["g"], big["src"])
    np.testing.assert_allclose(d, want, rtol=1e-9, atol=1e-6)


@pytest.mark.benchmark(group="sssp unbounded, 100k nodes, 1M hyperedges")
def test_sssp_scipy_dijkstra(benchmark: Any, expansion: dict[str, Any]) -> None:
    benchmark(dijkstra, expansion["A"], indices=expansion["sup"])


@pytest.mark.benchmark(group="sssp unbounded, 100k nodes, 1M hyperedges")
def test_sssp_rustworkx_dijkstra(benchmark: Any, big: dict[str, Any], expansion: dict[str, Any]) -> None:
    def run() -> Any:
        return rx.digraph_dijkstra_shortest_path_lengths(expansion["rx"], expansion["sup"], edge_cost_fn=float)

    lengths = benchmark.pedantic(run, rounds=3, iterations=1)
    want = fixpoint(big["g"], big["src"])
    some = [u for u in range(0, N_NODES, 997) if math.isfinite(want[u]) and u not in set(big["src"].tolist())]
    for u in some:
        assert lengths[u] == pytest.approx(want[u], rel=1e-9, abs=1e-6)


# ---------------------------------------------------------------- synthetic repository
def make_repo(root: Path, modules: int, funcs: int, tests_per_module: int) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    rnd = random.Random(3)
    for i in range(modules):
        deps = sorted({rnd.randrange(modules) for _ in range(2)} - {i})
        imports = "".join(f"from . import m{d}\n" for d in deps)
        body = "".join(f"\n\ndef f{j}(x):\n    y = x + {j}\n    return y * 2\n" for j in range(funcs))
        (root / "pkg" / f"m{i}.py").write_text(imports + "\nLIMIT = 1\n" + body)
        tbody = "".join(f"\n\ndef test_{j}():\n    assert m{i}.f{j % funcs}({j}) >= 0\n" for j in range(tests_per_module))
        (root / "tests" / f"test_m{i}.py").write_text(f"from pkg import m{i}\n" + tbody)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)


@pytest.mark.benchmark(group="index (files/s)")
def test_index_throughput(benchmark: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("idx")
    make_repo(root, modules=1000, funcs=10, tests_per_module=5)
    homes = iter(range(10_000))

    def run() -> dict[str, Any]:
        idx = Index(root, root.parent / f"home{next(homes)}")  # cold: every file parsed
        try:
            return idx.index()
        finally:
            idx.close()

    rep = benchmark.pedantic(run, rounds=3, iterations=1)
    assert rep["parsed"] == rep["files"] == 2001
    benchmark.extra_info["files"] = rep["files"]
    benchmark.extra_info["files_per_s"] = rep["files"] / benchmark.stats.stats.median


@pytest.mark.benchmark(group="select, 5000 tests, 3 changed functions")
def test_select_latency_5k_tests(benchmark: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("sel")
    make_repo(root, modules=500, funcs=10, tests_per_module=10)
    home = root.parent / "sel-home"
    idx = Index(root, home)
    idx.index()
    rnd = random.Random(5)
    durations, cov = {}, {}
    for i in range(500):
        for j in range(10):
            nid = f"tests/test_m{i}.py::test_{j}"
            durations[nid] = (f"tests/test_m{i}.py", rnd.uniform(0.001, 0.05), "passed")
            f = j % 10
            cov[nid] = {f"tests/test_m{i}.py": [1, 4 + 3 * j, 5 + 3 * j], f"pkg/m{i}.py": [6 + 4 * f + 1, 6 + 4 * f + 2]}
    idx.record_run(durations, cov)
    idx.graph()  # builds and caches the graph (as the collect run leaves it)
    idx.close()
    for m in (3, 77, 301):
        f = root / "pkg" / f"m{m}.py"
        f.write_text(f.read_text().replace("y = x + 4\n", "y = x + 5\n"))

    def run() -> Any:
        i = Index(root, home)  # a new process's view: graph loaded from the store cache
        try:
            return i.select("HEAD", safe=True, k=3, threshold=7.0)
        finally:
            i.close()

    sel = benchmark(run)
    assert sel.fallback is None and len(sel.decisions) == 5000
    assert len(sel.changed) == 3
    assert "tests/test_m3.py::test_4" in sel.selected
    benchmark.extra_info["selected"] = len(sel.selected)
