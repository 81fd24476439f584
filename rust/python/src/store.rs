//! `engine::store` → `_native.Store`.
use std::path::PathBuf;
use std::sync::Mutex;

use maestro_engine::hash::Digest;
use maestro_engine::sign::KeyPair;
use maestro_engine::store::{self, CardRow};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{err, run, InputError, InternalError};

#[pyclass(frozen, module = "maestro_core._native")]
pub struct Store {
    inner: Mutex<store::Store>,
}

fn card_dict<'py>(py: Python<'py>, c: &CardRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &c.id)?;
    d.set_item("kind", &c.kind)?;
    d.set_item("subject", &c.subject)?;
    d.set_item("created", &c.created)?;
    d.set_item("body", &c.body)?;
    d.set_item("log_index", c.log_index)?;
    Ok(d)
}

fn bl<'py>(py: Python<'py>, v: &[Digest]) -> Vec<Bound<'py, PyBytes>> {
    v.iter().map(|d| PyBytes::new(py, d)).collect()
}

impl Store {
    /// Run with the store locked and the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut store::Store) -> Result<T, maestro_engine::Error> + Send,
    ) -> PyResult<T> {
        run(py, || {
            let mut s = self.inner.lock().map_err(|_| {
                maestro_engine::Error::Store(store::StoreError::Corrupt(
                    "store lock poisoned".into(),
                ))
            })?;
            f(&mut s)
        })
    }
}

#[pymethods]
impl Store {
    #[new]
    fn new(py: Python<'_>, home: PathBuf) -> PyResult<Self> {
        let s = run(py, || Ok(store::Store::open(&home)?))?;
        Ok(Store {
            inner: Mutex::new(s),
        })
    }

    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        let s = self
            .inner
            .lock()
            .map_err(|_| InternalError::new_err("store lock poisoned"))?;
        Ok(s.path().to_path_buf())
    }

    fn log_size(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| Ok(s.log_size()?))
    }

    fn log_append(&self, py: Python<'_>, kind: String, body: Vec<u8>) -> PyResult<u64> {
        let v = self.with(py, move |s| {
            Ok(s.log_append(&[(kind.as_str(), body.as_slice())])?)
        })?;
        v.first()
            .copied()
            .ok_or_else(|| InternalError::new_err("append returned no index"))
    }

    fn log_append_many(&self, py: Python<'_>, items: Vec<(String, Vec<u8>)>) -> PyResult<Vec<u64>> {
        self.with(py, move |s| {
            let refs: Vec<(&str, &[u8])> = items
                .iter()
                .map(|(k, b)| (k.as_str(), b.as_slice()))
                .collect();
            Ok(s.log_append(&refs)?)
        })
    }

    fn log_entry<'py>(&self, py: Python<'py>, index: u64) -> PyResult<Bound<'py, PyDict>> {
        let e = self.with(py, |s| Ok(s.log_entry(index)?))?;
        let d = PyDict::new(py);
        d.set_item("index", e.index)?;
        d.set_item("kind", e.kind)?;
        d.set_item("body", PyBytes::new(py, &e.body))?;
        d.set_item("leaf_hash", PyBytes::new(py, &e.leaf_hash))?;
        d.set_item("created", e.created)?;
        Ok(d)
    }

    fn log_find(&self, py: Python<'_>, leaf_hash: Vec<u8>) -> PyResult<Option<u64>> {
        let d: Digest = leaf_hash.as_slice().try_into().map_err(|_| {
            InputError::new_err(format!(
                "leaf hash: must be 32 bytes, got {}",
                leaf_hash.len()
            ))
        })?;
        self.with(py, |s| Ok(s.log_find(&d)?))
    }

    #[pyo3(signature = (size = None))]
    fn log_root<'py>(
        &self,
        py: Python<'py>,
        size: Option<u64>,
    ) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let (n, r) = self.with(py, |s| Ok(s.log_root(size)?))?;
        Ok((n, PyBytes::new(py, &r)))
    }

    fn log_inclusion<'py>(
        &self,
        py: Python<'py>,
        index: u64,
        size: u64,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let p = self.with(py, |s| Ok(s.log_inclusion(index, size)?))?;
        Ok(bl(py, &p))
    }

    fn log_consistency<'py>(
        &self,
        py: Python<'py>,
        old: u64,
        new: u64,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let p = self.with(py, |s| Ok(s.log_consistency(old, new)?))?;
        Ok(bl(py, &p))
    }

    fn log_checkpoint(&self, py: Python<'_>, private_pem: &str) -> PyResult<String> {
        let key = KeyPair::from_pem(private_pem, "log key").map_err(err)?;
        self.with(py, move |s| Ok(s.log_checkpoint(&key)?))
    }

    fn checkpoints(&self, py: Python<'_>) -> PyResult<Vec<(u64, String)>> {
        self.with(py, |s| Ok(s.checkpoints()?))
    }

    fn log_verify(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| Ok(s.log_verify()?))
    }

    #[allow(clippy::too_many_arguments)]
    fn put_card(
        &self,
        py: Python<'_>,
        id: String,
        kind: String,
        subject: String,
        created: String,
        body: String,
        log_body: Vec<u8>,
    ) -> PyResult<u64> {
        let row = CardRow {
            id,
            kind,
            subject,
            created,
            body,
            log_index: 0,
        };
        self.with(py, move |s| Ok(s.put_card(&row, &log_body)?))
    }

    fn card<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyDict>> {
        let c = self.with(py, move |s| Ok(s.card(&id)?))?;
        card_dict(py, &c)
    }

    #[pyo3(signature = (kind = None, limit = 50))]
    fn cards<'py>(
        &self,
        py: Python<'py>,
        kind: Option<String>,
        limit: u64,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let rows = self.with(py, move |s| Ok(s.cards(kind.as_deref(), limit)?))?;
        rows.iter().map(|c| card_dict(py, c)).collect()
    }
}
