"""k-hop path costs against scipy.sparse (min-plus) and rustworkx references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rustworkx as rx
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from maestro_core import InputError, _native
from maestro_core.hypergraph import DECISIONS, Hypergraph, select_tests


def minplus_khop(tail: sp.csr_array, head: sp.csr_array, w: np.ndarray, src: list[int], k: int) -> np.ndarray:
    """Reference: k Jacobi rounds of the min-plus products, vectorised with
    numpy over scipy.sparse CSR incidences (rows = hyperedges)."""
    n = tail.shape[1]
    d = np.full(n, np.inf)
    d[src] = 0.0
    head_t = head.T.tocsr()
    for _ in range(k):
        h = np.full(tail.shape[0], np.inf)
        nz = np.diff(tail.indptr) > 0
        if tail.nnz:
            h[nz] = np.minimum.reduceat(d[tail.indices], tail.indptr[:-1][nz])
        h += w
        nd = d.copy()
        rows = np.diff(head_t.indptr) > 0
        if head_t.nnz:
            nd[rows] = np.minimum(nd[rows], np.minimum.reduceat(h[head_t.indices], head_t.indptr[:-1][rows]))
        d = nd
    return d


@st.composite
def hypergraphs(draw: st.DrawFn) -> tuple[int, list[list[int]], list[list[int]], list[float], list[int], int]:
    n = draw(st.integers(2, 14))
    m = draw(st.integers(0, 25))
    node = st.integers(0, n - 1)
    tails = [draw(st.lists(node, min_size=1, max_size=4, unique=True)) for _ in range(m)]
    heads = [draw(st.lists(node, min_size=1, max_size=4, unique=True)) for _ in range(m)]
    w = [draw(st.integers(0, 40)) / 8.0 for _ in range(m)]
    src = draw(st.lists(node, min_size=1, max_size=3))
    k = draw(st.integers(0, 7))
    return n, tails, heads, w, src, k


def csr(rows: list[list[int]], n: int) -> sp.csr_array:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([x for r in rows for x in r], dtype=np.int32)
    return sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(len(rows), n))


def check_path(g: Hypergraph, r, src: list[int], u: int, k: int) -> None:
    p = r.path(u)
    if not math.isfinite(r.dist[u]):
        assert p is None
        return
    assert p is not None
    nodes, edges = p
    assert nodes[0] in src and nodes[-1] == u and len(edges) == len(nodes) - 1 <= k
    cost = 0.0
    for a, e, b in zip(nodes, edges, nodes[1:]):
        w, t, h = g.edge(e)
        assert a in t and b in h
        cost += w
    assert cost == r.dist[u]


@settings(max_examples=150, deadline=None)
@given(hypergraphs())
def test_khop_matches_scipy_minplus(case) -> None:
    n, tails, heads, w, src, k = case
    T, H = csr(tails, n), csr(heads, n)
    g = Hypergraph.from_scipy(T, np.array(w), H)
    r = g.khop(src, k)
    np.testing.assert_array_equal(r.dist, minplus_khop(T, H, np.array(w), src, k))
    for u in range(n):
        check_path(g, r, src, u, k)


@settings(max_examples=100, deadline=None)
@given(hypergraphs())
def test_unbounded_khop_matches_scipy_dijkstra_and_rustworkx(case) -> None:
    n, tails, heads, w, src, _k = case
    m = len(w)
    T, H = csr(tails, n), csr(heads, n)
    g = Hypergraph.from_scipy(T, np.array(w), H)
    r = g.khop(src, n + m + 1)  # more rounds than any simple path
    # bipartite expansion: node -> hyperedge (w), hyperedge -> node (0); a tiny
    # epsilon stands in for 0 because csgraph treats explicit zeros as absent
    eps = 1e-300
    rows = [v for e, t in enumerate(tails) for v in t] + [n + e for e, h in enumerate(heads) for _ in h]
    cols = [n + e for e, t in enumerate(tails) for _ in t] + [u for h in heads for u in h]
    vals = [w[e] + eps for e, t in enumerate(tails) for _ in t] + [eps for h in heads for _ in h]
    A = sp.csr_array((vals, (rows, cols)), shape=(n + m, n + m))
    ref = dijkstra(A, directed=True, indices=sorted(set(src)), min_only=True)[:n]
    np.testing.assert_allclose(r.dist, ref, rtol=1e-12, atol=1e-9)
    # rustworkx on the PyDiGraph view, from a super source
    view = g.to_rustworkx()
    s = view.add_node({"kind": "source"})
    for v in set(src):
        view.add_edge(s, v, 0.0)
    lengths = rx.digraph_dijkstra_shortest_path_lengths(view, s, edge_cost_fn=float)
    for u in range(n):
        want = 0.0 if u in src else (lengths[u] if u in lengths else math.inf)
        assert r.dist[u] == pytest.approx(want)


def test_hop_bound_is_respected() -> None:
    # chain 0-1-2-3 of cheap edges and a costly shortcut 0-3
    g = Hypergraph(4, np.array([0, 2, 4, 6, 8]), np.array([0, 1, 1, 2, 2, 3, 0, 3]), np.array([1.0, 1.0, 1.0, 10.0]))
    assert g.khop([0], 1).dist[3] == 10.0
    assert g.khop([0], 3).dist[3] == 3.0
    assert g.khop([0], 3).path(3) == ([0, 1, 2, 3], [0, 1, 2])
    assert g.khop([0], 0).dist.tolist() == [0.0, math.inf, math.inf, math.inf]


def test_khop_each_rows_are_single_source_runs() -> None:
    rng = np.random.default_rng(1)
    T = sp.random_array((60, 40), density=0.08, random_state=rng, format="csr")
    w = rng.uniform(0, 3, 60)
    g = Hypergraph.from_scipy(T, w)
    m = g.khop_each([0, 5, 7], 3)
    assert m.shape == (3, 40)
    for i, s in enumerate([0, 5, 7]):
        np.testing.assert_array_equal(m[i], g.khop([s], 3).dist)


@pytest.mark.parametrize(
    "args, match",
    [
        ((2, [0, 1], [5], [1.0]), "out of range"),
        ((2, [0, 1], [1], [-1.0]), "weight"),
        ((2, [0, 1], [1], [math.nan]), "weight"),
        ((2, [1, 1], [1], [1.0]), "start at 0"),
        ((2, [0, 2, 1], [1, 0], [1.0, 1.0]), "decreases"),
        ((2, [0, 1, 2], [1, 0], [1.0]), "rows"),
        ((2, [0, 1], [-1], [1.0]), "entry 0"),
        ((2, [0.0, 1.0], [1], [1.0]), "int32"),
        ((2, [0, 1], [1], ["a"]), "float64"),
    ],
)
def test_bad_graphs_raise_input_error(args, match) -> None:
    n, p, i, w = args
    with pytest.raises(InputError, match=match):
        Hypergraph(n, np.asarray(p), np.asarray(i), np.asarray(w))


def test_bad_queries_raise_input_error() -> None:
    g = Hypergraph(2, np.array([0, 2]), np.array([0, 1]), np.array([1.0]))
    with pytest.raises(InputError, match="node 7 out of range"):
        g.khop([7], 2)
    r = g.khop([0], 2)
    with pytest.raises(InputError, match="out of range"):
        r.path(5)
    with pytest.raises(InputError, match="out of range"):
        r.path(-1)
    with pytest.raises(InputError, match="hyperedge 3"):
        g.edge(3)
    with pytest.raises(InputError, match="give both"):
        Hypergraph(2, np.array([0, 2]), np.array([0, 1]), np.array([1.0]), np.array([0, 1]))


def _random_csr(n: int, m: int, seed: int) -> sp.csr_array:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, m)
    indptr = np.zeros(m + 1, dtype=np.int32)
    indptr[1:] = np.cumsum(sizes)
    indices = rng.integers(0, n, int(indptr[-1])).astype(np.int32)
    return sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(m, n))


def test_scipy_int32_csr_and_float64_weights_are_read_in_place() -> None:
    T = _random_csr(50, 200, 3)
    assert T.indices.dtype == np.int32 and T.indptr.dtype == np.int32
    w = np.random.default_rng(4).uniform(0, 2, 200)
    g = Hypergraph.from_scipy(T, w)
    indptr, indices, weights, hp, hi = g.csr()
    # the graph holds the caller's arrays themselves: no copy was made
    assert indptr is T.indptr and indices is T.indices and weights is w
    assert np.shares_memory(indices, T.indices) and np.shares_memory(weights, w)
    assert hp is None and hi is None  # undirected: the head is the tail, not a copy
    # uint32 is the engine's own dtype: read in place too, also for the head
    H = _random_csr(50, 200, 5)
    hp32, hi32 = H.indptr.astype(np.uint32), H.indices.astype(np.uint32)
    d = Hypergraph(50, T.indptr, T.indices, w, hp32, hi32)
    assert d.csr()[3] is hp32 and d.csr()[4] is hi32
    # the graph keeps them alive: dropping every other reference is safe
    src = [0, 7]
    want = minplus_khop(T, H, w, src, 3)
    del hp32, hi32
    np.testing.assert_array_equal(d.khop(src, 3).dist, want)


def test_other_dtypes_and_layouts_are_copied_once_and_still_work() -> None:
    T = _random_csr(40, 120, 6)
    w = np.random.default_rng(7).uniform(0, 2, 120)
    want = Hypergraph.from_scipy(T, w).khop([1, 2], 3).dist
    ip64, ix64 = T.indptr.astype(np.int64), T.indices.astype(np.int64)
    g = Hypergraph(40, ip64, ix64, w.astype(np.float32))  # int64 indices, float32 weights
    indptr, indices, weights, _, _ = g.csr()
    assert indices.dtype == np.uint32 and not np.shares_memory(indices, ix64)
    assert weights.dtype == np.float64
    np.testing.assert_array_equal(indices, T.indices)
    np.testing.assert_array_equal(g.khop([1, 2], 3).dist, Hypergraph(40, ip64, ix64, w.astype(np.float32)).khop([1, 2], 3).dist)
    # a strided (non-contiguous) int32 view: the wrapper makes it contiguous
    strided = np.repeat(T.indices, 2)[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(Hypergraph(40, T.indptr, strided, w).khop([1, 2], 3).dist, want)
    # the native layer names the problem instead of copying silently
    with pytest.raises(InputError, match="not contiguous"):
        _native.Hypergraph(40, T.indptr, strided, w)
    # negative int32 entries are refused before anything is lent
    bad = T.indices.copy()
    bad[3] = -2
    with pytest.raises(InputError, match="entry 3 is -2"):
        Hypergraph(40, T.indptr, bad, w)
    # wrong dtypes give typed errors
    with pytest.raises(InputError, match="int32, int64 or uint32"):
        _native.Hypergraph(40, T.indptr.astype(np.float64), T.indices, w)
    with pytest.raises(InputError, match="float64"):
        _native.Hypergraph(40, T.indptr, T.indices, w.astype(np.float32))


def test_costs_come_out_without_copies() -> None:
    T = _random_csr(30, 90, 8)
    g = Hypergraph.from_scipy(T, np.ones(90))
    r = g._inner.khop(np.array([0]), 3)
    a, b = r.dist(), r.dist()
    assert a is b  # one array, handed out as is on every call
    # its buffer is the engine's Vec (numpy's base is the Rust owner, not a
    # numpy array a copy was made from)
    assert a.base is not None and not isinstance(a.base, np.ndarray)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 5.0  # read-only: the paths are walked against these costs
    assert g.khop([0], 3).path(0) == ([0], [])
    m = g._inner.khop_each(np.array([0, 1]), 2)
    assert m.shape == (2, 30) and m.flags.c_contiguous
    assert m.base is not None and not isinstance(m.base, np.ndarray)


def test_select_tests_reads_a_contiguous_cover_in_place_and_strided_by_copy() -> None:
    cover = np.array([[0.0, 0.5, np.inf, np.inf], [np.inf, 0.5, 0.0, np.inf]])
    d = np.ones(4)
    a = _native.select_tests(cover, d, 1.0, np.inf, False)
    wide = np.zeros((2, 8))
    wide[:, ::2] = cover
    b = _native.select_tests(wide[:, ::2], d, 1.0, np.inf, False)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist() == [1]
    assert _native.select_tests(np.zeros((2, 0)), np.zeros(0))[0].tolist() == []


def test_select_budget_threshold_safe() -> None:
    inf = math.inf
    cover = np.array([[0.0, 0.5, inf, inf], [inf, 0.5, 0.0, inf]])
    d = np.ones(4)
    codes, order = select_tests(cover, d, budget=1.0)
    assert [DECISIONS[c] for c in codes] == ["budget", "selected", "budget", "unreachable"]
    assert order.tolist() == [1]
    codes, order = select_tests(cover, d, budget=3.0)
    assert sorted(order.tolist()) == [0, 1, 2]
    codes, _ = select_tests(cover, d, safe=True, threshold=0.25)
    assert [DECISIONS[c] for c in codes] == ["selected", "cost", "selected", "unreachable"]
    # a redundant test: covers nothing the first one does not
    codes, order = select_tests(np.array([[0.0, 0.0]]), np.array([1.0, 2.0]))
    assert [DECISIONS[c] for c in codes] == ["selected", "redundant"]
    with pytest.raises(InputError, match="durations"):
        select_tests(cover, np.ones(3))
    with pytest.raises(InputError, match="duration of test 0"):
        select_tests(cover, np.array([-1.0, 1, 1, 1]))
    with pytest.raises(InputError, match="budget"):
        select_tests(cover, d, budget=-1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 12), st.data())
def test_greedy_respects_budget_and_is_lazy_equivalent(s: int, t: int, data) -> None:
    vals = st.one_of(st.just(math.inf), st.integers(0, 8).map(float))
    cover = np.array([[data.draw(vals) for _ in range(t)] for _ in range(s)])
    d = np.array([data.draw(st.integers(1, 5)) for _ in range(t)], dtype=float)
    budget = float(data.draw(st.integers(0, 20)))
    codes, order = select_tests(cover, d, budget=budget)
    assert d[order.astype(int)].sum() <= budget
    # plain (non-lazy) greedy reference gives the same objective value
    value = np.where(np.isfinite(cover), 1.0 / (1.0 + cover), 0.0)
    reachable = np.isfinite(cover).any(axis=0)
    got = value[:, order.astype(int)].max(axis=1, initial=0.0).sum()
    best = np.zeros(s)
    spent, chosen, left = 0.0, [], set(np.flatnonzero(reachable).tolist())
    while left:
        gains = {j: np.maximum(value[:, j] - best, 0).sum() / max(d[j], 1e-3) for j in left}
        j = max(sorted(gains), key=lambda x: gains[x])
        left.discard(j)
        if gains[j] <= 0 or spent + d[j] > budget:
            continue
        spent += d[j]
        chosen.append(j)
        best = np.maximum(best, value[:, j])
    assert got == pytest.approx(best.sum())
