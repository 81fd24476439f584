"""Weighted directed hypergraphs with hop-bounded min-cost paths (native).

A hyperedge has a cost, a *tail* (nodes a change enters through) and a
*head* (nodes it reaches); without a head it is undirected. Incidences are
CSR matrices with one row per hyperedge, as ``scipy.sparse.csr_array``.

Copies: C-contiguous ``int32`` or ``uint32`` index arrays (``int32`` is what
``scipy.sparse`` usually holds) and C-contiguous ``float64`` weights are read
in place, not copied: the graph keeps a reference to them for its lifetime
(:meth:`Hypergraph.csr` returns them), so do not modify them afterwards.
Other integer dtypes (``int64``) are converted once, other layouts are made
contiguous once. Costs come back as read-only arrays that own the engine's
buffer (no copy).

>>> import numpy as np
>>> from maestro_core.hypergraph import Hypergraph
>>> g = Hypergraph(3, np.array([0, 2, 4]), np.array([0, 1, 1, 2]), np.array([1.0, 2.0]))
>>> r = g.khop([0], k=2)
>>> r.dist.tolist()
[0.0, 1.0, 3.0]
>>> r.path(2)
([0, 1, 2], [0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native

__all__ = ["Hypergraph", "KHop", "select_tests", "DECISIONS"]

#: Codes returned by :func:`select_tests`.
DECISIONS = ("selected", "cost", "budget", "redundant", "unreachable")


@dataclass(frozen=True)
class KHop:
    """Costs from the changed nodes (``inf``: no path within k, a read-only
    array that owns the engine's buffer) and paths."""

    _inner: Any
    dist: npt.NDArray[np.float64]

    def path(self, node: int) -> tuple[list[int], list[int]] | None:
        """``(nodes, edges)`` of the cheapest path, source first, or ``None``."""
        p = self._inner.path(int(node))
        if p is None:
            return None
        return [int(x) for x in p[0]], [int(x) for x in p[1]]


class Hypergraph:
    """A hypergraph held natively; see the module docstring."""

    def __init__(
        self,
        n_nodes: int,
        indptr: npt.ArrayLike,
        indices: npt.ArrayLike,
        weights: npt.ArrayLike,
        head_indptr: npt.ArrayLike | None = None,
        head_indices: npt.ArrayLike | None = None,
    ) -> None:
        def ix(a: npt.ArrayLike | None) -> Any:
            if a is None:
                return None
            arr = np.asarray(a)
            return np.ascontiguousarray(arr) if arr.dtype.kind in "iu" else arr

        w = np.asarray(weights)
        if w.dtype.kind in "fiu":  # other dtypes reach the native check and its InputError
            w = np.ascontiguousarray(w, dtype=np.float64)
        self._inner = _native.Hypergraph(
            int(n_nodes), ix(indptr), ix(indices), w,
            ix(head_indptr), ix(head_indices),
        )

    @classmethod
    def from_scipy(cls, tail: Any, weights: npt.ArrayLike, head: Any | None = None) -> Hypergraph:
        """From ``scipy.sparse`` incidence matrices (rows = hyperedges)."""
        t = tail.tocsr()
        h = head.tocsr() if head is not None else None
        return cls(
            t.shape[1], t.indptr, t.indices, weights,
            None if h is None else h.indptr, None if h is None else h.indices,
        )

    def csr(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float64], Any, Any]:
        """``(indptr, indices, weights, head_indptr, head_indices)`` as the
        graph reads them: the caller's own arrays where they were read in
        place, else new ``uint32``/``float64`` copies; the head pair is
        ``None`` for an undirected graph.

        >>> ix = np.array([0, 1, 1, 2], dtype=np.int32)
        >>> g = Hypergraph(3, np.array([0, 2, 4], dtype=np.int32), ix, np.array([1.0, 2.0]))
        >>> g.csr()[1] is ix
        True
        """
        return self._inner.csr()  # type: ignore[no-any-return]

    @property
    def n_nodes(self) -> int:
        return int(self._inner.n_nodes)

    @property
    def n_edges(self) -> int:
        return int(self._inner.n_edges)

    def edge(self, e: int) -> tuple[float, list[int], list[int]]:
        """``(weight, tail, head)`` of hyperedge ``e``."""
        w, t, h = self._inner.edge(int(e))
        return float(w), [int(x) for x in t], [int(x) for x in h]

    def khop(self, sources: Sequence[int] | npt.ArrayLike, k: int) -> KHop:
        """Min cost from any of ``sources`` over at most ``k`` hyperedges."""
        r = self._inner.khop(np.ascontiguousarray(sources, dtype=np.int64), int(k))
        return KHop(r, r.dist())

    def khop_each(self, sources: Sequence[int] | npt.ArrayLike, k: int) -> npt.NDArray[np.float64]:
        """``(len(sources), n_nodes)`` costs, one run per source."""
        return self._inner.khop_each(np.ascontiguousarray(sources, dtype=np.int64), int(k))  # type: ignore[no-any-return]

    def to_rustworkx(self, labels: Sequence[Any] | None = None) -> Any:
        """A ``rustworkx.PyDiGraph`` view: the bipartite expansion, one graph
        node per node and per hyperedge; tail → hyperedge edges carry the
        hyperedge's weight, hyperedge → head edges carry 0. A path of
        ``k`` hyperedges is a graph path of ``2k`` edges with the same cost."""
        import rustworkx as rx

        g = rx.PyDiGraph(multigraph=False)
        n, m = self.n_nodes, self.n_edges
        g.add_nodes_from([{"kind": "node", "id": i, "label": labels[i] if labels else i} for i in range(n)])
        g.add_nodes_from([{"kind": "hyperedge", "id": e} for e in range(m)])
        edges = []
        for e in range(m):
            w, t, h = self.edge(e)
            edges += [(v, n + e, w) for v in t] + [(n + e, u, 0.0) for u in h]
        g.add_edges_from(edges)
        return g


def select_tests(
    cover: npt.NDArray[np.float64],
    durations: npt.NDArray[np.float64],
    budget: float = float("inf"),
    threshold: float = float("inf"),
    safe: bool = False,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint64]]:
    """Lazy-greedy budgeted selection (see :data:`DECISIONS` for the codes).

    ``cover[s, t]`` is the cost from changed node ``s`` to test ``t``.
    Returns the decision per test and the selected tests in order.
    """
    return _native.select_tests(  # type: ignore[no-any-return]
        np.ascontiguousarray(cover, dtype=np.float64), np.ascontiguousarray(durations, dtype=np.float64),
        float(budget), float(threshold), bool(safe),
    )
