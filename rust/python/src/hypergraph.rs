//! `engine::hypergraph` → `_native.Hypergraph`, `_native.KHop`,
//! `_native.select_tests`.
//!
//! Index arrays come in as 1-D numpy arrays (int32, int64 or uint32, the
//! dtypes scipy.sparse produces) and are validated while they are
//! converted to the engine's `u32` CSR, the one copy the docs mention.
//! Costs and results go out through `into_pyarray` without copies.
use maestro_engine::hypergraph::{self, Cut, HypergraphError, SelectParams, NONE};
use numpy::PyUntypedArrayMethods;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::errors::describe;
use crate::errors::{err, guard, run, InputError};

/// A 1-D index array as `u32`, checking the range of every entry.
fn index_array(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u32>> {
    fn conv<T: Copy + TryInto<u32> + std::fmt::Display>(s: &[T], what: &str) -> PyResult<Vec<u32>> {
        s.iter()
            .enumerate()
            .map(|(i, &x)| {
                x.try_into().map_err(|_| {
                    InputError::new_err(format!(
                        "{what}: entry {i} is {x} (must be in 0..{})",
                        u32::MAX
                    ))
                })
            })
            .collect()
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, u32>>() {
        return Ok(contig(&a, what)?.to_vec());
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, i32>>() {
        return conv(contig(&a, what)?, what);
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, i64>>() {
        return conv(contig(&a, what)?, what);
    }
    Err(InputError::new_err(format!(
        "{what}: expected a 1-D numpy int32, int64 or uint32 array, got {}",
        describe(obj)
    )))
}

fn contig<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        InputError::new_err(format!(
            "{what}: array is not contiguous (use numpy.ascontiguousarray)"
        ))
    })
}

fn f64_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray1<'py, f64>> {
    obj.extract::<PyReadonlyArray1<'py, f64>>().map_err(|_| {
        InputError::new_err(format!(
            "{what}: expected a 1-D numpy float64 array, got {}",
            describe(obj)
        ))
    })
}

/// A weighted directed hypergraph over CSR incidences (rows = hyperedges).
#[pyclass(frozen, module = "maestro_core._native")]
pub struct Hypergraph {
    inner: hypergraph::Hypergraph,
}

#[pymethods]
impl Hypergraph {
    #[new]
    #[pyo3(signature = (n_nodes, indptr, indices, weights, head_indptr = None, head_indices = None))]
    fn new(
        py: Python<'_>,
        n_nodes: usize,
        indptr: &Bound<'_, PyAny>,
        indices: &Bound<'_, PyAny>,
        weights: &Bound<'_, PyAny>,
        head_indptr: Option<&Bound<'_, PyAny>>,
        head_indices: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let tail = (
            index_array(indptr, "indptr")?,
            index_array(indices, "indices")?,
        );
        let head = match (head_indptr, head_indices) {
            (Some(p), Some(i)) => Some((
                index_array(p, "head_indptr")?,
                index_array(i, "head_indices")?,
            )),
            (None, None) => None,
            _ => {
                return Err(InputError::new_err(
                    "head_indptr and head_indices go together (give both or neither)",
                ))
            }
        };
        let w = f64_array(weights, "weights")?;
        let w = contig(&w, "weights")?.to_vec();
        let inner = run(py, || {
            Ok(hypergraph::Hypergraph::new(n_nodes, tail, head, w)?)
        })?;
        Ok(Hypergraph { inner })
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes()
    }

    #[getter]
    fn n_edges(&self) -> usize {
        self.inner.n_edges()
    }

    /// `(weight, tail nodes, head nodes)` of hyperedge `e`.
    #[allow(clippy::type_complexity)]
    fn edge<'py>(
        &self,
        py: Python<'py>,
        e: usize,
    ) -> PyResult<(f64, Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>)> {
        let w = self.inner.weight(e).ok_or_else(|| {
            err(HypergraphError::Invalid(format!(
                "hyperedge {e} out of range ({} hyperedges)",
                self.inner.n_edges()
            )))
        })?;
        Ok((
            w,
            self.inner.tail(e).to_vec().into_pyarray(py),
            self.inner.head(e).to_vec().into_pyarray(py),
        ))
    }

    /// Min cost from `sources` to every node over at most `k` hyperedges.
    fn khop(&self, py: Python<'_>, sources: &Bound<'_, PyAny>, k: usize) -> PyResult<KHop> {
        let s = index_array(sources, "sources")?;
        let r = run(py, || Ok(self.inner.khop(&s, k)?))?;
        Ok(KHop { inner: r })
    }

    /// `(len(sources), n_nodes)` costs, one k-hop run per source.
    fn khop_each<'py>(
        &self,
        py: Python<'py>,
        sources: &Bound<'_, PyAny>,
        k: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let s = index_array(sources, "sources")?;
        let n = self.inner.n_nodes();
        let rows = run(py, || Ok(self.inner.khop_each(&s, k)?))?;
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        let a = numpy::ndarray::Array2::from_shape_vec((s.len(), n), flat)
            .map_err(|e| InputError::new_err(format!("khop_each: {e}")))?;
        Ok(a.into_pyarray(py))
    }
}

/// The result of `Hypergraph.khop`: costs and cheapest paths.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct KHop {
    inner: hypergraph::KHop,
}

#[pymethods]
impl KHop {
    /// Cost per node (`inf` = no path within k); a new array per call.
    fn dist<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.dist.clone().into_pyarray(py)
    }

    #[getter]
    fn rounds(&self) -> usize {
        self.inner.rounds()
    }

    /// `(nodes, edges)` of the cheapest path to `node`, source first;
    /// `edges[i]` leads into `nodes[i + 1]`. `None` when unreachable.
    #[allow(clippy::type_complexity)]
    fn path<'py>(
        &self,
        py: Python<'py>,
        node: i64,
    ) -> PyResult<Option<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>)>> {
        let n = self.inner.dist.len();
        let u = u32::try_from(node)
            .ok()
            .filter(|&u| (u as usize) < n)
            .ok_or_else(|| {
                err(HypergraphError::NodeOutOfRange {
                    node: node as u64,
                    nodes: n,
                })
            })?;
        guard(|| {
            Ok(self.inner.path(u).map(|steps| {
                let nodes: Vec<u32> = steps.iter().map(|s| s.node).collect();
                let edges: Vec<u32> = steps
                    .iter()
                    .filter(|s| s.edge != NONE)
                    .map(|s| s.edge)
                    .collect();
                (nodes.into_pyarray(py), edges.into_pyarray(py))
            }))
        })
    }
}

/// Budgeted lazy-greedy selection. Returns `(decision, order)`: decision
/// per test (0 selected, 1 cost, 2 budget, 3 redundant, 4 unreachable) and
/// the selected tests in selection order.
#[pyfunction]
#[pyo3(signature = (cover, durations, budget = f64::INFINITY, threshold = f64::INFINITY, safe = false))]
#[allow(clippy::type_complexity)]
pub fn select_tests<'py>(
    py: Python<'py>,
    cover: &Bound<'py, PyAny>,
    durations: &Bound<'py, PyAny>,
    budget: f64,
    threshold: f64,
    safe: bool,
) -> PyResult<(Bound<'py, PyArray1<u8>>, Bound<'py, PyArray1<u64>>)> {
    let c: PyReadonlyArray2<'py, f64> = cover.extract().map_err(|_| {
        InputError::new_err(format!(
            "cover: expected a 2-D numpy float64 array, got {}",
            describe(cover)
        ))
    })?;
    let d = f64_array(durations, "durations")?;
    let d = contig(&d, "durations")?.to_vec();
    let shape = c.shape();
    let rows: Vec<Vec<f64>> = c
        .as_array()
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    debug_assert_eq!(rows.len(), shape[0]);
    let p = SelectParams {
        budget,
        threshold,
        safe,
    };
    let (cut, order) = run(py, || Ok(hypergraph::select(&rows, &d, &p)?))?;
    let codes: Vec<u8> = cut
        .iter()
        .map(|c| match c {
            Cut::Selected => 0,
            Cut::Cost => 1,
            Cut::Budget => 2,
            Cut::Redundant => 3,
            Cut::Unreachable => 4,
        })
        .collect();
    let order: Vec<u64> = order.into_iter().map(|x| x as u64).collect();
    Ok((codes.into_pyarray(py), order.into_pyarray(py)))
}
