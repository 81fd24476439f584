//! `engine::rego_mut` → `_native.rego_*` and `_native.RegoEvaluator`.
//!
//! Structured values cross as JSON text (policy sets, decisions, options,
//! reports); the Python wrapper in `maestro_core.policy` parses them into
//! dataclasses.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use maestro_engine::rego_mut::{self, load, run, v1, RegoError};
use maestro_engine::Error;
use pyo3::prelude::*;

use crate::hash::path_arg;

use crate::errors::run as detach;
use crate::store::Store;

fn bad_json(what: &str, e: serde_json::Error) -> Error {
    Error::Rego(RegoError::Invalid(format!("{what}: {e}")))
}

fn set_of(set_json: &str) -> Result<load::PolicySet, Error> {
    serde_json::from_str(set_json).map_err(|e| bad_json("policy set", e))
}

fn to_text<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| bad_json("serialize", e))
}

/// Load policies and data from files and folders; the set as JSON.
#[pyfunction]
pub fn rego_load(
    py: Python<'_>,
    paths: Vec<Bound<'_, PyAny>>,
    data: Vec<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let paths = paths
        .iter()
        .map(path_arg)
        .collect::<PyResult<Vec<PathBuf>>>()?;
    let data = data
        .iter()
        .map(path_arg)
        .collect::<PyResult<Vec<PathBuf>>>()?;
    detach(py, || to_text(&load::PolicySet::load(&paths, &data)?))
}

/// Build a set from `[{path, text, is_test}]` JSON and a data JSON object.
#[pyfunction]
pub fn rego_from_modules(py: Python<'_>, modules_json: &str, data_json: &str) -> PyResult<String> {
    detach(py, || {
        let modules: Vec<load::Module> =
            serde_json::from_str(modules_json).map_err(|e| bad_json("modules", e))?;
        let data: serde_json::Value =
            serde_json::from_str(data_json).map_err(|e| bad_json("data", e))?;
        to_text(&load::PolicySet::from_modules(modules, data)?)
    })
}

/// Parse a decision set or decision log: `(decisions JSON, skipped JSON)`.
#[pyfunction]
#[pyo3(signature = (text, default_query=None))]
pub fn rego_parse_decisions(text: &str, default_query: Option<&str>) -> PyResult<(String, String)> {
    let (d, s) = load::parse_decisions(text, default_query);
    Ok((
        to_text(&d).map_err(crate::errors::to_py)?,
        to_text(&s).map_err(crate::errors::to_py)?,
    ))
}

/// The mutants of a set (JSON list), without running them.
#[pyfunction]
#[pyo3(signature = (set_json, operators=None))]
pub fn rego_mutants(
    py: Python<'_>,
    set_json: &str,
    operators: Option<Vec<String>>,
) -> PyResult<String> {
    detach(py, || {
        let set = set_of(set_json)?;
        let ops = parse_ops(operators)?;
        to_text(&run::mutants(&set, &ops)?)
    })
}

fn parse_ops(operators: Option<Vec<String>>) -> Result<Vec<rego_mut::Operator>, Error> {
    match operators {
        None => Ok(rego_mut::Operator::ALL.to_vec()),
        Some(v) => v
            .iter()
            .map(|s| {
                rego_mut::Operator::parse(s).ok_or_else(|| {
                    Error::Rego(RegoError::Invalid(format!(
                        "unknown mutation operator {s:?}"
                    )))
                })
            })
            .collect(),
    }
}

/// Run a mutation analysis; the report as JSON. With `store`, verdicts of
/// earlier runs are reused for unchanged mutants and the new ones stored.
#[pyfunction]
#[pyo3(signature = (set_json, decisions_json, options_json, store=None, progress=None))]
pub fn rego_mutate(
    py: Python<'_>,
    set_json: &str,
    decisions_json: &str,
    options_json: &str,
    store: Option<&Store>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    detach(py, || {
        let set = set_of(set_json)?;
        let decisions: Vec<load::Decision> =
            serde_json::from_str(decisions_json).map_err(|e| bad_json("decisions", e))?;
        let opts: run::Options =
            serde_json::from_str(options_json).map_err(|e| bad_json("options", e))?;
        let prior = |keys: &[String]| -> HashMap<String, run::Cached> {
            let Some(st) = store else {
                return HashMap::new();
            };
            let Ok(guard) = st.inner.lock() else {
                return HashMap::new();
            };
            guard
                .mutation_verdicts(keys)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|c| (k, c)))
                .collect()
        };
        let cb = |done: usize, total: usize| {
            if let Some(p) = &progress {
                let step = (total / 100).max(1);
                if done % step == 0 || done == total {
                    Python::attach(|py| {
                        let _ = p.call1(py, (done, total));
                    });
                }
            }
        };
        let report = run::run(&set, &decisions, &opts, &prior, Some(&cb))?;
        if let Some(st) = store {
            let rows: Vec<(String, String)> = run::cache_rows(&report)
                .into_iter()
                .filter_map(|(k, c)| serde_json::to_string(&c).ok().map(|v| (k, v)))
                .collect();
            let mut guard = st.inner.lock().map_err(|_| {
                Error::Store(maestro_engine::store::StoreError::Corrupt(
                    "store lock poisoned".into(),
                ))
            })?;
            guard.put_mutation_verdicts(&rows)?;
        }
        to_text(&report)
    })
}

/// Rewrite a Rego v0 module into v1 syntax.
#[pyfunction]
pub fn rego_to_v1(py: Python<'_>, path: &str, text: &str) -> PyResult<String> {
    detach(py, || Ok(v1::to_v1(path, text)?))
}

/// A compiled policy set, evaluated many times (thread-safe).
#[pyclass(frozen, module = "maestro_core._native")]
pub struct RegoEvaluator {
    inner: Mutex<run::Evaluator>,
}

#[pymethods]
impl RegoEvaluator {
    #[new]
    #[pyo3(signature = (set_json, replace=None, timeout_ms=None))]
    fn new(
        py: Python<'_>,
        set_json: &str,
        replace: Option<(usize, String)>,
        timeout_ms: Option<u64>,
    ) -> PyResult<Self> {
        let ev = detach(py, || {
            let set = set_of(set_json)?;
            let r = replace.as_ref().map(|(i, t)| (*i, t.as_str()));
            Ok(run::Evaluator::new(
                &set,
                r,
                timeout_ms.map(Duration::from_millis),
            )?)
        })?;
        Ok(RegoEvaluator {
            inner: Mutex::new(ev),
        })
    }

    /// Evaluate `query` on each input (JSON texts); JSON text or None.
    fn eval_many(
        &self,
        py: Python<'_>,
        query: &str,
        inputs: Vec<String>,
    ) -> PyResult<Vec<Option<String>>> {
        detach(py, || {
            let mut ev = self
                .inner
                .lock()
                .map_err(|_| Error::Rego(RegoError::Invalid("evaluator lock poisoned".into())))?;
            let mut out = Vec::with_capacity(inputs.len());
            for (i, t) in inputs.iter().enumerate() {
                let j: serde_json::Value =
                    serde_json::from_str(t).map_err(|e| bad_json(&format!("input {i}"), e))?;
                let v = ev.eval(query, Some(&j))?;
                out.push(match v {
                    Some(v) => Some(to_text(&v)?),
                    None => None,
                });
            }
            Ok(out)
        })
    }
}
