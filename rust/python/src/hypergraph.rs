//! `engine::hypergraph` → `_native.Hypergraph`, `_native.KHop`,
//! `_native.select_tests`.
//!
//! Index arrays come in as 1-D numpy arrays. C-contiguous `uint32` and
//! `int32` arrays (scipy.sparse's usual index dtype; non-negative `int32`
//! has the bits of the same `u32`) and C-contiguous `float64` weights are
//! *lent* to the engine: it reads the caller's buffers in place and the
//! graph keeps a reference to each array for its lifetime (no copy). Other
//! integer dtypes (`int64`) are validated and converted to `u32`, one copy.
//! Only the node → hyperedge transpose is built by the engine.
//! Costs and results go out through `into_pyarray` without copies (the
//! engine's `Vec` becomes the array's buffer).
use std::sync::Arc;

use maestro_engine::hypergraph::{self, Cut, Floats, HypergraphError, Indices, SelectParams, NONE};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use numpy::{PyArrayMethods, PyUntypedArrayMethods};
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

/// A numpy array's buffer lent to the engine, read in place.
struct Lent<T> {
    ptr: *const T,
    len: usize,
    /// Keeps the array (so its buffer) alive while the engine holds this.
    _owner: Py<PyAny>,
}

// SAFETY: `ptr`/`len` describe the C-contiguous buffer of the numpy array
// `_owner`, which this struct keeps alive, and numpy does not move or free
// the buffer of a live array (`resize` refuses while we hold a reference).
// The engine only reads through it. Python code could still write into the
// array; the docs say not to, and every index the engine reads from these
// buffers is bounds-checked (`get`), so such a write gives wrong results or
// an empty row, never an out-of-bounds access.
unsafe impl<T: Sync> Send for Lent<T> {}
// SAFETY: as for `Send`: shared read-only access.
unsafe impl<T: Sync> Sync for Lent<T> {}

impl<T> AsRef<[T]> for Lent<T> {
    fn as_ref(&self) -> &[T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see the `Send` impl: a live, aligned (numpy element
        // alignment, checked when lent), contiguous buffer of `len` `T`s.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

fn aligned<T>(s: &[T]) -> bool {
    (s.as_ptr() as usize) % std::mem::align_of::<T>() == 0
}

/// An index array for the engine: lent when it is C-contiguous `uint32` or
/// `int32` (checked non-negative), else converted (`int64`: one copy).
/// Returns the lent array too (`None` when copied).
fn index_input(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Indices, Option<Py<PyAny>>)> {
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, u32>>() {
        let s = contig(&a, what)?;
        if aligned(s) {
            let lent = Lent {
                ptr: s.as_ptr(),
                len: s.len(),
                _owner: obj.clone().unbind(),
            };
            return Ok((Arc::new(lent), Some(obj.clone().unbind())));
        }
        return Ok((Arc::new(s.to_vec()), None));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, i32>>() {
        let s = contig(&a, what)?;
        if let Some((i, x)) = s.iter().enumerate().find(|(_, &x)| x < 0) {
            return Err(InputError::new_err(format!(
                "{what}: entry {i} is {x} (must be in 0..{})",
                u32::MAX
            )));
        }
        if aligned(s) {
            // Non-negative i32 and u32 share their bits: lend as u32.
            let lent: Lent<u32> = Lent {
                ptr: s.as_ptr().cast::<u32>(),
                len: s.len(),
                _owner: obj.clone().unbind(),
            };
            return Ok((Arc::new(lent), Some(obj.clone().unbind())));
        }
        return Ok((
            Arc::new(s.iter().map(|&x| x as u32).collect::<Vec<u32>>()),
            None,
        ));
    }
    Ok((Arc::new(index_array(obj, what)?), None))
}

/// Weights for the engine: a C-contiguous float64 array is lent.
fn weights_input(obj: &Bound<'_, PyAny>) -> PyResult<(Floats, Option<Py<PyAny>>)> {
    let a = f64_array(obj, "weights")?;
    let s = contig(&a, "weights")?;
    if aligned(s) {
        let lent = Lent {
            ptr: s.as_ptr(),
            len: s.len(),
            _owner: obj.clone().unbind(),
        };
        return Ok((Arc::new(lent), Some(obj.clone().unbind())));
    }
    Ok((Arc::new(s.to_vec()), None))
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
    /// The lent arrays (indptr, indices, weights, head_indptr,
    /// head_indices); `None` where the input was copied or absent.
    lent: [Option<Py<PyAny>>; 5],
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
        let (tp, tp_l) = index_input(indptr, "indptr")?;
        let (ti, ti_l) = index_input(indices, "indices")?;
        let (head, hp_l, hi_l) = match (head_indptr, head_indices) {
            (Some(p), Some(i)) => {
                let (hp, hp_l) = index_input(p, "head_indptr")?;
                let (hi, hi_l) = index_input(i, "head_indices")?;
                (Some((hp, hi)), hp_l, hi_l)
            }
            (None, None) => (None, None, None),
            _ => {
                return Err(InputError::new_err(
                    "head_indptr and head_indices go together (give both or neither)",
                ))
            }
        };
        let (w, w_l) = weights_input(weights)?;
        let inner = run(py, || {
            Ok(hypergraph::Hypergraph::from_shared(
                n_nodes,
                (tp, ti),
                head,
                w,
            )?)
        })?;
        Ok(Hypergraph {
            inner,
            lent: [tp_l, ti_l, w_l, hp_l, hi_l],
        })
    }

    /// `(indptr, indices, weights, head_indptr, head_indices)` as the graph
    /// reads them: the caller's own arrays where they were lent (no copy),
    /// new `uint32`/`float64` arrays where the input was converted; the
    /// head pair is `None` for an undirected graph.
    #[allow(clippy::type_complexity)]
    fn csr<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Option<Bound<'py, PyAny>>,
        Option<Bound<'py, PyAny>>,
    ) {
        let ix = |i: usize, s: &[u32]| -> Bound<'py, PyAny> {
            match &self.lent[i] {
                Some(a) => a.bind(py).clone(),
                None => s.to_vec().into_pyarray(py).into_any(),
            }
        };
        let t = self.inner.tail_csr();
        let w = match &self.lent[2] {
            Some(a) => a.bind(py).clone(),
            None => self.inner.weights().to_vec().into_pyarray(py).into_any(),
        };
        let directed =
            self.lent[3].is_some() || !std::ptr::eq(self.inner.head_csr().indices(), t.indices());
        let (hp, hi) = if directed {
            let h = self.inner.head_csr();
            (Some(ix(3, h.indptr())), Some(ix(4, h.indices())))
        } else {
            (None, None)
        };
        (ix(0, t.indptr()), ix(1, t.indices()), w, hp, hi)
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
        // The engine's Vec becomes the array's buffer (no copy); read-only,
        // since the paths are walked against it.
        let dist = r.dist.into_pyarray(py);
        dist.getattr("flags")?.setattr("writeable", false)?;
        Ok(KHop {
            dist: dist.unbind(),
            paths: r.paths,
        })
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
        let flat = run(py, || Ok(self.inner.khop_each(&s, k)?))?;
        // Row-major as the engine wrote it: moved into the array, no copy.
        let a = numpy::ndarray::Array2::from_shape_vec((s.len(), n), flat)
            .map_err(|e| InputError::new_err(format!("khop_each: {e}")))?;
        Ok(a.into_pyarray(py))
    }
}

/// The result of `Hypergraph.khop`: costs and cheapest paths.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct KHop {
    /// The costs, read-only, handed out without copies.
    dist: Py<PyArray1<f64>>,
    paths: hypergraph::Paths,
}

#[pymethods]
impl KHop {
    /// Cost per node (`inf` = no path within k): the same read-only array
    /// on every call (no copy).
    fn dist<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.dist.bind(py).clone()
    }

    #[getter]
    fn rounds(&self) -> usize {
        self.paths.rounds()
    }

    /// `(nodes, edges)` of the cheapest path to `node`, source first;
    /// `edges[i]` leads into `nodes[i + 1]`. `None` when unreachable.
    #[allow(clippy::type_complexity)]
    fn path<'py>(
        &self,
        py: Python<'py>,
        node: i64,
    ) -> PyResult<Option<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>)>> {
        let d = self.dist.bind(py).try_readonly().map_err(|e| {
            err(HypergraphError::Invalid(format!(
                "KHop.path: costs busy ({e})"
            )))
        })?;
        let dist = d.as_slice().map_err(|e| {
            err(HypergraphError::Invalid(format!(
                "KHop.path: costs not contiguous ({e})"
            )))
        })?;
        let n = dist.len();
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
            Ok(self.paths.path(dist, u).map(|steps| {
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
    let (nr, nc) = (c.shape()[0], c.shape()[1]);
    let p = SelectParams {
        budget,
        threshold,
        safe,
    };
    // A C-contiguous matrix is read in place, row by row; otherwise the rows
    // are copied once.
    let (cut, order) = match c.as_slice() {
        Ok(flat) => {
            let rows: Vec<&[f64]> = if nc == 0 {
                vec![&[][..]; nr]
            } else {
                flat.chunks(nc).collect()
            };
            run(py, || Ok(hypergraph::select(&rows, &d, &p)?))?
        }
        Err(_) => {
            let rows: Vec<Vec<f64>> = c
                .as_array()
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect();
            run(py, || Ok(hypergraph::select(&rows, &d, &p)?))?
        }
    };
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
