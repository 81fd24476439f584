//! `engine::merkle` → `_native.MerkleTree` and the verifiers.
use std::sync::Mutex;

use maestro_engine::hash::{Algorithm, Digest};
use maestro_engine::merkle::{self, MerkleError, Tree};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::errors::describe;
use crate::errors::{err, guard, run, InputError, InternalError};
use crate::hash::alg;

fn digest(what: &str, b: &[u8]) -> PyResult<Digest> {
    b.try_into().map_err(|_| {
        err(MerkleError::BadDigestLength {
            what: what.to_string(),
            got: b.len(),
        })
    })
}

fn bytes_list<'py>(py: Python<'py>, v: &[Digest]) -> Vec<Bound<'py, PyBytes>> {
    v.iter().map(|d| PyBytes::new(py, d)).collect()
}

/// The bytes of a `bytes` object.
///
/// # Safety
/// The caller must keep the object alive (and it must stay a `bytes`, which
/// never changes) for as long as the returned slice is used.
unsafe fn bytes_slice<'a>(b: &Bound<'_, PyBytes>) -> &'a [u8] {
    // SAFETY: `b` is a bytes object, whose buffer holds `size` bytes.
    unsafe {
        let ptr = pyo3::ffi::PyBytes_AsString(b.as_ptr()) as *const u8;
        let size = pyo3::ffi::PyBytes_Size(b.as_ptr()) as usize;
        std::slice::from_raw_parts(ptr, size)
    }
}

/// Whether the interpreter has a GIL (`sys._is_gil_enabled()`, Python
/// 3.13+; always before).
fn gil_enabled(py: Python<'_>) -> bool {
    py.import("sys")
        .and_then(|sys| sys.getattr("_is_gil_enabled"))
        .and_then(|f| f.call0())
        .and_then(|r| r.extract::<bool>())
        .unwrap_or(true)
}

/// Build a tree from leaves given as Python objects, reading `bytes` in
/// place (no copy, and no reference count change when avoidable: for a
/// million leaves, touching every object twice more cost ~10 ms).
///
/// * a `tuple` of `bytes`: the tuple cannot change and our argument keeps
///   it alive, so its items are borrowed and the GIL released;
/// * a `list` of `bytes`: a list can change under us once the GIL is
///   released, so its items are borrowed *with the GIL held* for the whole
///   build (no other Python thread runs meanwhile; rayon workers never touch
///   Python). Where there is no GIL (free-threaded Python), a new reference
///   to every item is kept instead, as for:
/// * any other iterable: a new reference to every item is kept while the
///   GIL is released.
///
/// Items that are not `bytes` (bytearray, memoryview, ...) may change, so
/// when there are any, every item is copied instead.
fn tree_from_py_leaves(leaves: &Bound<'_, PyAny>, a: Algorithm) -> PyResult<Tree> {
    let py = leaves.py();
    if let Ok(t) = leaves.cast::<PyTuple>() {
        let mut slices: Vec<&[u8]> = Vec::with_capacity(t.len());
        for item in t.iter_borrowed() {
            let Ok(b) = item.cast::<PyBytes>() else { break };
            // SAFETY: `t` holds the item, and our argument holds `t`, for
            // the whole call; a tuple's items never change.
            slices.push(unsafe { bytes_slice(&b) });
        }
        if slices.len() == t.len() {
            return run(py, || Ok(Tree::from_leaves(a, &slices)));
        }
    } else if let Ok(l) = leaves.cast::<PyList>() {
        if gil_enabled(py) {
            let n = l.len();
            let mut slices: Vec<&[u8]> = Vec::with_capacity(n);
            for i in 0..n {
                // SAFETY: `i` < the list's length; the reference is borrowed
                // from the list, which nothing can change while we hold the
                // GIL (we do until we return, and call no Python code).
                let item = unsafe { pyo3::ffi::PyList_GetItem(l.as_ptr(), i as isize) };
                if item.is_null() {
                    return Err(PyErr::fetch(py));
                }
                // SAFETY: `item` is a live object (see above).
                let item = unsafe { Borrowed::from_ptr(py, item) };
                let Ok(b) = item.cast::<PyBytes>() else { break };
                // SAFETY: the list keeps the bytes alive and in place until
                // we release the GIL, after the build.
                slices.push(unsafe { bytes_slice(&b) });
            }
            if slices.len() == n {
                return guard(|| Ok(Tree::from_leaves(a, &slices)));
            }
        }
    }
    let iter = leaves.try_iter().map_err(|_| {
        InputError::new_err(format!(
            "leaves: expected an iterable of bytes, got {}",
            type_name(leaves)
        ))
    })?;
    let n = leaves.len().unwrap_or(0);
    let mut items: Vec<Bound<'_, PyAny>> = Vec::with_capacity(n);
    let mut slices: Vec<&[u8]> = Vec::with_capacity(n);
    let mut all_bytes = true;
    for item in iter {
        let item = item?;
        if all_bytes {
            match item.cast::<PyBytes>() {
                // SAFETY: `item` goes into `items`, which holds this new
                // reference to the bytes object until the build is over.
                Ok(b) => slices.push(unsafe { bytes_slice(b) }),
                Err(_) => all_bytes = false,
            }
        }
        items.push(item);
    }
    if all_bytes {
        let t = run(py, || Ok(Tree::from_leaves(a, &slices)));
        drop(slices);
        drop(items);
        return t;
    }
    drop(slices);
    let mut owned: Vec<Vec<u8>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let copy = if item.is_instance_of::<PyString>() {
            None
        } else {
            item.extract::<Vec<u8>>().ok()
        };
        owned.push(copy.ok_or_else(|| {
            InputError::new_err(format!(
                "leaves[{i}]: expected bytes, got {}",
                type_name(item)
            ))
        })?);
    }
    run(py, || Ok(Tree::from_leaves(a, &owned)))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "another object".into())
}

/// A 2-D uint8 numpy array, or an `InputError` naming what was given.
fn u8_matrix<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray2<'py, u8>> {
    obj.extract::<PyReadonlyArray2<'py, u8>>().map_err(|_| {
        InputError::new_err(format!(
            "{what}: expected a 2-D numpy uint8 array, got {}",
            describe(obj)
        ))
    })
}

/// The bytes of a C-contiguous array. `as_slice` alone also accepts
/// Fortran order, whose bytes are not in row order.
fn c_slice<'a>(a: &'a PyReadonlyArray2<'_, u8>, what: &str) -> PyResult<&'a [u8]> {
    if !a.is_c_contiguous() {
        return Err(InputError::new_err(format!(
            "{what}: array is not C-contiguous (use numpy.ascontiguousarray)"
        )));
    }
    a.as_slice()
        .map_err(|_| InputError::new_err(format!("{what}: array is not C-contiguous")))
}

/// Copy a C-contiguous `(n, 32)` uint8 array into digests.
fn digests_from_array(a: &PyReadonlyArray2<'_, u8>) -> PyResult<Vec<Digest>> {
    let shape = a.shape();
    if shape[1] != 32 {
        return Err(InputError::new_err(format!(
            "leaf hashes: expected an (n, 32) uint8 array, got shape ({}, {})",
            shape[0], shape[1]
        )));
    }
    let flat = c_slice(a, "leaf hashes")?;
    Ok(flat
        .chunks_exact(32)
        .map(|c| {
            let mut d = [0u8; 32];
            d.copy_from_slice(c);
            d
        })
        .collect())
}

#[pyclass(frozen, module = "maestro_core._native")]
pub struct MerkleTree {
    inner: Mutex<Tree>,
    alg: Algorithm,
}

impl MerkleTree {
    fn with<T>(&self, f: impl FnOnce(&mut Tree) -> PyResult<T>) -> PyResult<T> {
        let mut t = self
            .inner
            .lock()
            .map_err(|_| InternalError::new_err("tree lock poisoned"))?;
        f(&mut t)
    }
}

#[pymethods]
impl MerkleTree {
    #[new]
    #[pyo3(signature = (algorithm = "sha256"))]
    fn new(algorithm: &str) -> PyResult<Self> {
        let a = alg(algorithm)?;
        Ok(MerkleTree {
            inner: Mutex::new(Tree::new(a)),
            alg: a,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (leaf_hashes, algorithm = "sha256"))]
    fn from_leaf_hashes(
        py: Python<'_>,
        leaf_hashes: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let leaves = digests_from_array(&u8_matrix(leaf_hashes, "leaf hashes")?)?;
        let t = run(py, || Ok(Tree::from_leaf_hashes(a, leaves)))?;
        Ok(MerkleTree {
            inner: Mutex::new(t),
            alg: a,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (leaves, algorithm = "sha256"))]
    fn from_leaves(leaves: &Bound<'_, PyAny>, algorithm: &str) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let t = tree_from_py_leaves(leaves, a)?;
        Ok(MerkleTree {
            inner: Mutex::new(t),
            alg: a,
        })
    }

    /// Leaves given as the rows of a 2-D uint8 array (fixed-width data).
    #[staticmethod]
    #[pyo3(signature = (rows, algorithm = "sha256"))]
    fn from_leaf_rows(py: Python<'_>, rows: &Bound<'_, PyAny>, algorithm: &str) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let rows = u8_matrix(rows, "leaf rows")?;
        let w = rows.shape()[1];
        let flat = c_slice(&rows, "leaf rows")?;
        let t = if w == 0 {
            let n = rows.shape()[0];
            let empty: Vec<&[u8]> = vec![&[]; n];
            run(py, || Ok(Tree::from_leaves(a, &empty)))?
        } else {
            let chunks: Vec<&[u8]> = flat.chunks_exact(w).collect();
            run(py, || Ok(Tree::from_leaves(a, &chunks)))?
        };
        Ok(MerkleTree {
            inner: Mutex::new(t),
            alg: a,
        })
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.alg.name()
    }

    #[getter]
    fn size(&self) -> PyResult<u64> {
        self.with(|t| Ok(t.len()))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.with(|t| Ok(t.len() as usize))
    }

    fn append(&self, data: &[u8]) -> PyResult<u64> {
        self.with(|t| {
            t.push(data);
            Ok(t.len() - 1)
        })
    }

    fn append_leaf_hash(&self, leaf_hash: &[u8]) -> PyResult<u64> {
        let d = digest("leaf hash", leaf_hash)?;
        self.with(|t| {
            t.push_leaf_hash(d);
            Ok(t.len() - 1)
        })
    }

    #[pyo3(signature = (size = None))]
    fn root<'py>(&self, py: Python<'py>, size: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let d = self.with(|t| t.root_at(size.unwrap_or(t.len())).map_err(err))?;
        Ok(PyBytes::new(py, &d))
    }

    fn leaf_hashes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let flat: Vec<u8> = self.with(|t| Ok(t.leaf_hashes().concat()))?;
        let n = flat.len() / 32;
        let arr = Array2::from_shape_vec((n, 32), flat)
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        Ok(arr.into_pyarray(py))
    }

    #[pyo3(signature = (index, size = None))]
    fn inclusion_proof<'py>(
        &self,
        py: Python<'py>,
        index: u64,
        size: Option<u64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let p = self.with(|t| {
            t.inclusion_proof(index, size.unwrap_or(t.len()))
                .map_err(err)
        })?;
        Ok(bytes_list(py, &p))
    }

    /// Proofs for many indices at once (GIL released while computing).
    ///
    /// A list of proofs (lists of bytes), or with `as_array=True`
    /// `(hashes, offsets)`: an `(m, 32)` uint8 array holding every proof
    /// back to back and a `(k + 1,)` uint64 array, proof `i` being
    /// `hashes[offsets[i]:offsets[i + 1]]`, with no per-hash Python object.
    #[pyo3(signature = (indices, size = None, *, as_array = false))]
    fn inclusion_proofs<'py>(
        &self,
        py: Python<'py>,
        indices: PyReadonlyArray1<'_, u64>,
        size: Option<u64>,
        as_array: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let idx: Vec<u64> = indices.as_array().iter().copied().collect();
        let (hashes, offsets) = {
            let t = self
                .inner
                .lock()
                .map_err(|_| InternalError::new_err("tree lock poisoned"))?;
            let tree: &Tree = &t;
            let n = size.unwrap_or(tree.len());
            run(py, || Ok(tree.inclusion_proofs_flat(&idx, n)?))?
        };
        if as_array {
            let m = hashes.len();
            let arr = Array2::from_shape_vec((m, 32), hashes.into_flattened())
                .map_err(|e| InternalError::new_err(e.to_string()))?;
            let offs: Vec<u64> = offsets.iter().map(|&o| o as u64).collect();
            return Ok((arr.into_pyarray(py), offs.into_pyarray(py))
                .into_pyobject(py)?
                .into_any());
        }
        let proofs: Vec<Vec<Bound<'py, PyBytes>>> = offsets
            .windows(2)
            .map(|w| bytes_list(py, &hashes[w[0]..w[1]]))
            .collect();
        Ok(proofs.into_pyobject(py)?.into_any())
    }

    #[pyo3(signature = (old, new = None))]
    fn consistency_proof<'py>(
        &self,
        py: Python<'py>,
        old: u64,
        new: Option<u64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let p = self.with(|t| {
            t.consistency_proof(old, new.unwrap_or(t.len()))
                .map_err(err)
        })?;
        Ok(bytes_list(py, &p))
    }
}

#[pyfunction]
#[pyo3(signature = (data, algorithm = "sha256"))]
pub fn leaf_hash<'py>(
    py: Python<'py>,
    data: &[u8],
    algorithm: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &merkle::leaf_hash(alg(algorithm)?, data)))
}

#[pyfunction]
#[pyo3(signature = (left, right, algorithm = "sha256"))]
pub fn node_hash<'py>(
    py: Python<'py>,
    left: &[u8],
    right: &[u8],
    algorithm: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let (l, r) = (digest("left", left)?, digest("right", right)?);
    Ok(PyBytes::new(
        py,
        &merkle::node_hash(alg(algorithm)?, &l, &r),
    ))
}

#[pyfunction]
#[pyo3(signature = (algorithm = "sha256"))]
pub fn empty_root<'py>(py: Python<'py>, algorithm: &str) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &merkle::empty_root(alg(algorithm)?)))
}

#[pyfunction]
#[pyo3(signature = (index, size, leaf_hash, proof, root, algorithm = "sha256"))]
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: Vec<Vec<u8>>,
    root: &[u8],
    algorithm: &str,
) -> PyResult<()> {
    let a = alg(algorithm)?;
    guard(|| merkle::verify_inclusion(a, index, size, leaf_hash, &proof, root).map_err(err))
}

#[pyfunction]
#[pyo3(signature = (size1, size2, root1, root2, proof, algorithm = "sha256"))]
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: Vec<Vec<u8>>,
    algorithm: &str,
) -> PyResult<()> {
    let a = alg(algorithm)?;
    guard(|| merkle::verify_consistency(a, size1, size2, root1, root2, &proof).map_err(err))
}
