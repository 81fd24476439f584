//! `engine::hash` → `_native.hash_*`.
use std::path::PathBuf;

use maestro_engine::hash::{self, Algorithm};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{err, guard, run};

/// Inputs below this size are hashed without releasing the GIL (hashlib's cut-off).
const DETACH_MIN: usize = 2048;

pub fn alg(name: &str) -> PyResult<Algorithm> {
    name.parse::<Algorithm>().map_err(err)
}

#[pyfunction]
#[pyo3(signature = (data, algorithm = "blake3"))]
pub fn hash_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    algorithm: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let a = alg(algorithm)?;
    let d = if data.len() >= DETACH_MIN {
        run(py, || Ok(a.hash(data)))?
    } else {
        guard(|| Ok(a.hash(data)))?
    };
    Ok(PyBytes::new(py, &d))
}

#[pyfunction]
#[pyo3(signature = (path, algorithm = "blake3"))]
pub fn hash_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    algorithm: &str,
) -> PyResult<(u64, Bound<'py, PyBytes>)> {
    let a = alg(algorithm)?;
    let fd = run(py, || Ok(hash::hash_file(&path, a)?))?;
    Ok((fd.size, PyBytes::new(py, &fd.digest)))
}

/// Returns `(digests (n, 32) uint8, sizes (n,) uint64)`, no copies out.
#[pyfunction]
#[pyo3(signature = (paths, algorithm = "blake3"))]
#[allow(clippy::type_complexity)]
pub fn hash_files<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    algorithm: &str,
) -> PyResult<(Bound<'py, PyArray2<u8>>, Bound<'py, PyArray1<u64>>)> {
    let a = alg(algorithm)?;
    let res = run(py, || Ok(hash::hash_files(&paths, a)?))?;
    let n = res.len();
    let mut flat = Vec::with_capacity(n * 32);
    let mut sizes = Vec::with_capacity(n);
    for fd in &res {
        flat.extend_from_slice(&fd.digest);
        sizes.push(fd.size);
    }
    let arr = Array2::from_shape_vec((n, 32), flat)
        .map_err(|e| crate::errors::InternalError::new_err(e.to_string()))?;
    Ok((arr.into_pyarray(py), sizes.into_pyarray(py)))
}
