//! `engine::merkle` → `_native.MerkleTree` and the verifiers.
use std::sync::Mutex;

use maestro_engine::hash::{Algorithm, Digest};
use maestro_engine::merkle::{self, MerkleError, Tree};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

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

/// Copy a C-contiguous `(n, 32)` uint8 array into digests.
fn digests_from_array(a: &PyReadonlyArray2<'_, u8>) -> PyResult<Vec<Digest>> {
    let shape = a.shape();
    if shape[1] != 32 {
        return Err(InputError::new_err(format!(
            "leaf hashes: expected an (n, 32) uint8 array, got shape ({}, {})",
            shape[0], shape[1]
        )));
    }
    let flat = a.as_slice().map_err(|_| {
        InputError::new_err("leaf hashes: array is not C-contiguous (use numpy.ascontiguousarray)")
    })?;
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
        leaf_hashes: PyReadonlyArray2<'_, u8>,
        algorithm: &str,
    ) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let leaves = digests_from_array(&leaf_hashes)?;
        let t = run(py, || Ok(Tree::from_leaf_hashes(a, leaves)))?;
        Ok(MerkleTree {
            inner: Mutex::new(t),
            alg: a,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (leaves, algorithm = "sha256"))]
    fn from_leaves(py: Python<'_>, leaves: Vec<Vec<u8>>, algorithm: &str) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let t = run(py, || Ok(Tree::from_leaves(a, &leaves)))?;
        Ok(MerkleTree {
            inner: Mutex::new(t),
            alg: a,
        })
    }

    /// Leaves given as the rows of a 2-D uint8 array (fixed-width data).
    #[staticmethod]
    #[pyo3(signature = (rows, algorithm = "sha256"))]
    fn from_leaf_rows(
        py: Python<'_>,
        rows: PyReadonlyArray2<'_, u8>,
        algorithm: &str,
    ) -> PyResult<Self> {
        let a = alg(algorithm)?;
        let w = rows.shape()[1];
        let flat = rows
            .as_slice()
            .map_err(|_| InputError::new_err("leaf rows: array is not C-contiguous"))?;
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
    #[pyo3(signature = (indices, size = None))]
    fn inclusion_proofs<'py>(
        &self,
        py: Python<'py>,
        indices: PyReadonlyArray1<'_, u64>,
        size: Option<u64>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyBytes>>>> {
        let idx: Vec<u64> = indices.as_array().iter().copied().collect();
        let t = self
            .inner
            .lock()
            .map_err(|_| InternalError::new_err("tree lock poisoned"))?;
        let tree: &Tree = &t;
        let n = size.unwrap_or(tree.len());
        let proofs = run(py, || {
            use rayon::prelude::*;
            idx.par_iter()
                .map(|&i| tree.inclusion_proof(i, n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })?;
        Ok(proofs.iter().map(|p| bytes_list(py, p)).collect())
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
