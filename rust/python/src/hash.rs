//! `engine::hash` → `_native.hash_*`.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use maestro_engine::hash::{self, Algorithm};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyUnicodeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::{err, guard, run, InputError};

/// Inputs below this size are hashed without releasing the GIL (hashlib's cut-off).
const DETACH_MIN: usize = 2048;

pub fn alg(name: &str) -> PyResult<Algorithm> {
    name.parse::<Algorithm>().map_err(err)
}

/// A path argument (`str`, `bytes` or `os.PathLike`), converted like
/// `os.fsencode`. PyO3's own `PathBuf` extraction panics on a `str` the
/// file-system encoding cannot encode (a lone surrogate); this raises
/// `InputError` instead.
pub fn path_arg(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(s) = s.to_str() {
            return Ok(PathBuf::from(s));
        }
    }
    let py = obj.py();
    let enc = PyModule::import(py, "os")?
        .call_method1("fsencode", (obj,))
        .map_err(|e| {
            if e.is_instance_of::<PyUnicodeError>(py) {
                InputError::new_err(format!(
                    "path {}: {e}",
                    obj.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            } else {
                e
            }
        })?;
    let bytes = enc.cast::<PyBytes>()?;
    Ok(PathBuf::from(OsStr::from_bytes(bytes.as_bytes())))
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
    path: &Bound<'py, PyAny>,
    algorithm: &str,
) -> PyResult<(u64, Bound<'py, PyBytes>)> {
    let path = path_arg(path)?;
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
    paths: Vec<Bound<'py, PyAny>>,
    algorithm: &str,
) -> PyResult<(Bound<'py, PyArray2<u8>>, Bound<'py, PyArray1<u64>>)> {
    let paths = paths.iter().map(path_arg).collect::<PyResult<Vec<_>>>()?;
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
