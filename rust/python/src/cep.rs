//! `engine::cep` → `_native.CompiledGuard`, `_native.GuardMatcher`,
//! `_native.EventSet` and the guard compilers.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use maestro_engine::cep::compile::{self, Compiled};
use maestro_engine::cep::run::{Column, KeyLabel, Matcher, MatcherOptions, ViolationKind};
use maestro_engine::cep::{otlp, EventSet as EngEventSet, Value};
use numpy::{IntoPyArray, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::errors::{err, guard, run, InputError, InternalError, TraceFormatError};
use crate::span_wire::{self, Batch, Decoder, Read, Reader};

/// A compiled guard (immutable).
#[pyclass(frozen, module = "maestro_core._native")]
pub struct CompiledGuard {
    pub inner: Arc<Compiled>,
}

#[pymethods]
impl CompiledGuard {
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }
    #[getter]
    fn per(&self) -> &str {
        &self.inner.per
    }
    #[getter]
    fn contiguity(&self) -> &'static str {
        self.inner.contiguity.name()
    }
    #[getter]
    fn digest(&self) -> String {
        self.inner.digest()
    }
    /// The canonical JSON the digest covers.
    fn canonical(&self) -> String {
        String::from_utf8_lossy(&self.inner.canonical()).into_owned()
    }
    fn __repr__(&self) -> String {
        format!(
            "CompiledGuard({:?}, {})",
            self.inner.name,
            self.inner.digest()
        )
    }
}

#[pyfunction]
#[pyo3(signature = (source, origin = "<guards>"))]
pub fn compile_guards(py: Python<'_>, source: &str, origin: &str) -> PyResult<Vec<CompiledGuard>> {
    let v = run(py, || Ok(compile::compile_source(origin, source)?))?;
    Ok(v.into_iter()
        .map(|c| CompiledGuard { inner: Arc::new(c) })
        .collect())
}

#[pyfunction]
pub fn compile_guard_ast(ast_json: &str) -> PyResult<CompiledGuard> {
    guard(|| {
        let c = compile::compile_json(ast_json).map_err(err)?;
        Ok(CompiledGuard { inner: Arc::new(c) })
    })
}

/// Parse guard source into the AST (JSON text), `let`s expanded.
#[pyfunction]
#[pyo3(signature = (source, origin = "<guards>"))]
pub fn parse_guards(source: &str, origin: &str) -> PyResult<Vec<String>> {
    guard(|| {
        let v = maestro_engine::cep::parse::parse(origin, source).map_err(err)?;
        v.iter()
            .map(|g| serde_json::to_string(g).map_err(|e| InternalError::new_err(e.to_string())))
            .collect()
    })
}

/// Events read from a trace file or records.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct EventSet {
    pub inner: Arc<EngEventSet>,
}

fn value_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Str(s) => s.as_ref().into_pyobject(py)?.into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b)
            .to_owned()
            .into_any()
            .unbind(),
    })
}

/// An event as Python sees it: `(time, name, attributes dict)`.
fn event_py<'py>(py: Python<'py>, e: &maestro_engine::cep::Event) -> PyResult<Bound<'py, PyTuple>> {
    let d = PyDict::new(py);
    for (k, v) in &e.attrs {
        d.set_item(&**k, value_py(py, v)?)?;
    }
    PyTuple::new(
        py,
        [
            e.time.into_pyobject(py)?.into_any(),
            e.name.as_ref().into_pyobject(py)?.into_any(),
            d.into_any(),
        ],
    )
}

#[pymethods]
impl EventSet {
    /// Read a trace file: OTLP/JSON lines, or OTLP protobuf for `.pb`.
    #[staticmethod]
    fn read(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let path: PathBuf = crate::hash::path_arg(path)?;
        let es = run(py, || Ok(otlp::read_file(&path)?))?;
        Ok(EventSet {
            inner: Arc::new(es),
        })
    }
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<otlp-json>"))]
    fn from_otlp_json(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        let es = run(py, || Ok(otlp::from_json(origin, text)?))?;
        Ok(EventSet {
            inner: Arc::new(es),
        })
    }
    #[staticmethod]
    #[pyo3(signature = (data, origin = "<otlp-protobuf>"))]
    fn from_otlp_protobuf(py: Python<'_>, data: &[u8], origin: &str) -> PyResult<Self> {
        let es = run(py, || Ok(otlp::from_protobuf(origin, data)?))?;
        Ok(EventSet {
            inner: Arc::new(es),
        })
    }
    /// From `[{"time": ns, "name": str, "attributes": {...}}, ...]` JSON.
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<records>"))]
    fn from_records(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        let es = run(py, || Ok(otlp::from_records(origin, text)?))?;
        Ok(EventSet {
            inner: Arc::new(es),
        })
    }
    /// From finished OpenTelemetry SDK spans (`ReadableSpan`s).
    #[staticmethod]
    fn from_spans(py: Python<'_>, spans: &Bound<'_, PyList>) -> PyResult<Self> {
        let events = spans_to_events(py, spans)?;
        Ok(EventSet {
            inner: Arc::new(EngEventSet {
                events,
                origin: "<spans>".into(),
            }),
        })
    }
    #[getter]
    fn origin(&self) -> &str {
        &self.inner.origin
    }
    fn __len__(&self) -> usize {
        self.inner.events.len()
    }
    /// Events `indices` (default all) as records JSON text.
    #[pyo3(signature = (indices = None))]
    fn records_json(&self, indices: Option<Vec<usize>>) -> PyResult<String> {
        let ev = &self.inner.events;
        let picked: Vec<_> = match indices {
            None => ev.clone(),
            Some(ix) => {
                let mut v = Vec::with_capacity(ix.len());
                for i in ix {
                    v.push(ev.get(i).cloned().ok_or_else(|| {
                        InputError::new_err(format!(
                            "event index {i} out of range ({} events)",
                            ev.len()
                        ))
                    })?);
                }
                v
            }
        };
        Ok(otlp::to_records(&picked).to_string())
    }
    /// Indices of the events whose attribute `per` equals `key` (its
    /// text form) with time in `[t0, t1]`.
    fn select(&self, per: &str, key: &str, t0: i64, t1: i64) -> Vec<usize> {
        self.inner
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.time >= t0
                    && e.time <= t1
                    && e.attr(per).is_some_and(|v| match v {
                        Value::Str(s) => &**s == key,
                        Value::Int(i) => i.to_string() == key,
                        Value::Float(f) => f.to_string() == key,
                        Value::Bool(b) => b.to_string() == key,
                    })
            })
            .map(|(i, _)| i)
            .collect()
    }
    /// `(time, name, attributes dict)` of event `i`.
    fn event<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyTuple>> {
        let e = self
            .inner
            .events
            .get(i)
            .ok_or_else(|| InputError::new_err(format!("event index {i} out of range")))?;
        event_py(py, e)
    }
    /// Event times (ns) as a list.
    fn times(&self) -> Vec<i64> {
        self.inner.events.iter().map(|e| e.time).collect()
    }
}

/// The streaming matcher (thread-safe: one lock, GIL released while it runs).
#[pyclass(frozen, module = "maestro_core._native")]
pub struct GuardMatcher {
    inner: Arc<Mutex<Matcher>>,
    names: Vec<String>,
}

fn arr_i64<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray1<'py, i64>> {
    let a = obj.extract::<PyReadonlyArray1<'py, i64>>().map_err(|_| {
        let got = match (obj.getattr("dtype"), obj.getattr("ndim")) {
            (Ok(d), Ok(n)) => format!("a {n}-D {d} array"),
            _ => obj
                .get_type()
                .name()
                .map(|n| format!("a {n}"))
                .unwrap_or_else(|_| "another object".into()),
        };
        InputError::new_err(format!(
            "{what}: expected a 1-D numpy int64 array, got {got}"
        ))
    })?;
    if !a.is_contiguous() {
        return Err(InputError::new_err(format!(
            "{what}: array is not contiguous (use numpy.ascontiguousarray)"
        )));
    }
    Ok(a)
}

enum OwnedCol<'py> {
    I64(PyReadonlyArray1<'py, i64>),
    F64(PyReadonlyArray1<'py, f64>),
    Bool(PyReadonlyArray1<'py, bool>),
    Codes(PyReadonlyArray1<'py, i64>, Vec<String>),
}

fn column<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<OwnedCol<'py>> {
    let what = format!("attribute column {name:?}");
    if let Ok(t) = obj.cast::<PyTuple>() {
        if t.len() == 2 {
            let codes = arr_i64(&t.get_item(0)?, &what)?;
            let vocab: Vec<String> = t.get_item(1)?.extract().map_err(|_| {
                InputError::new_err(format!("{what}: expected (int64 codes, list of str)"))
            })?;
            return Ok(OwnedCol::Codes(codes, vocab));
        }
    }
    let contiguous = |ok: bool| -> PyResult<()> {
        if ok {
            Ok(())
        } else {
            Err(InputError::new_err(format!(
                "{what}: array is not contiguous (use numpy.ascontiguousarray)"
            )))
        }
    };
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
        contiguous(a.is_contiguous())?;
        return Ok(OwnedCol::I64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f64>>() {
        contiguous(a.is_contiguous())?;
        return Ok(OwnedCol::F64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, bool>>() {
        contiguous(a.is_contiguous())?;
        return Ok(OwnedCol::Bool(a));
    }
    let got = obj
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| {
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        });
    Err(InputError::new_err(format!(
        "{what}: unsupported attribute type {got} (use 1-D int64, float64 or bool arrays, or (int64 codes, list of str))"
    )))
}

fn key_py(py: Python<'_>, k: &KeyLabel) -> PyResult<Py<PyAny>> {
    Ok(match k {
        KeyLabel::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        KeyLabel::Str(s) => s.as_ref().into_pyobject(py)?.into_any().unbind(),
    })
}

impl GuardMatcher {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Matcher>> {
        self.inner
            .lock()
            .map_err(|_| InternalError::new_err("matcher lock poisoned"))
    }
}

#[pymethods]
impl GuardMatcher {
    #[new]
    #[pyo3(signature = (guards, lateness_ns = Some(0), max_late_kept = 100_000, threads = 0))]
    fn new(
        guards: Vec<PyRef<'_, CompiledGuard>>,
        lateness_ns: Option<i64>,
        max_late_kept: usize,
        threads: usize,
    ) -> PyResult<Self> {
        if guards.is_empty() {
            return Err(InputError::new_err("a matcher needs at least one guard"));
        }
        let names = guards.iter().map(|g| g.inner.name.clone()).collect();
        let cs: Vec<Compiled> = guards.iter().map(|g| (*g.inner).clone()).collect();
        let m = guard(|| {
            Matcher::new(
                cs,
                MatcherOptions {
                    lateness_ns,
                    max_late_kept,
                    threads,
                },
            )
            .map_err(err)
        })?;
        Ok(GuardMatcher {
            inner: Arc::new(Mutex::new(m)),
            names,
        })
    }

    #[getter]
    fn guard_names(&self) -> Vec<String> {
        self.names.clone()
    }

    #[getter]
    fn watermark(&self) -> PyResult<Option<i64>> {
        let w = self.lock()?.watermark();
        Ok((w != i64::MIN).then_some(w))
    }

    /// Feed a columnar batch (see the stub for the layout).
    #[pyo3(signature = (times, keys, codes, names, attrs = None))]
    fn feed_arrays(
        &self,
        py: Python<'_>,
        times: &Bound<'_, PyAny>,
        keys: &Bound<'_, PyAny>,
        codes: &Bound<'_, PyAny>,
        names: Vec<String>,
        attrs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let t = arr_i64(times, "times")?;
        let k = arr_i64(keys, "keys")?;
        let c = arr_i64(codes, "codes")?;
        let mut owned = Vec::new();
        if let Some(d) = attrs {
            for (key, val) in d.iter() {
                let name: String = key
                    .extract()
                    .map_err(|_| InputError::new_err("attribute column names must be str"))?;
                let col = column(&name, &val)?;
                owned.push((name, col));
            }
        }
        let ts = t
            .as_slice()
            .map_err(|_| InputError::new_err("times: not contiguous"))?;
        let ks = k
            .as_slice()
            .map_err(|_| InputError::new_err("keys: not contiguous"))?;
        let cs = c
            .as_slice()
            .map_err(|_| InputError::new_err("codes: not contiguous"))?;
        let mut cols: Vec<(String, Column<'_>)> = Vec::new();
        for (name, col) in &owned {
            let c = match col {
                OwnedCol::I64(a) => Column::I64(
                    a.as_slice()
                        .map_err(|_| InputError::new_err("column not contiguous"))?,
                ),
                OwnedCol::F64(a) => Column::F64(
                    a.as_slice()
                        .map_err(|_| InputError::new_err("column not contiguous"))?,
                ),
                OwnedCol::Bool(a) => Column::Bool(
                    a.as_slice()
                        .map_err(|_| InputError::new_err("column not contiguous"))?,
                ),
                OwnedCol::Codes(a, v) => Column::Codes(
                    a.as_slice()
                        .map_err(|_| InputError::new_err("column not contiguous"))?,
                    v,
                ),
            };
            cols.push((name.clone(), c));
        }
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.feed_columns(ts, ks, cs, &names, &cols)?))
    }

    /// Feed the events of an `EventSet` (keys from each guard's `per`).
    fn feed_events(&self, py: Python<'_>, events: PyRef<'_, EventSet>) -> PyResult<()> {
        let es = events.inner.clone();
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.feed_events(&es.events)?))
    }

    /// Feed rows `(time_ns, name, {attribute: value})` (the SpanProcessor's
    /// path); values are str, int, float, bool or sequences of those.
    fn feed_rows(&self, py: Python<'_>, rows: &Bound<'_, PyList>) -> PyResult<()> {
        let mut evs = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let (t, name, attrs): (i64, String, Bound<'_, PyDict>) =
                row.extract().map_err(|_| {
                    InputError::new_err(format!(
                        "rows[{i}]: expected (time_ns: int, name: str, attributes: dict)"
                    ))
                })?;
            let mut a = Vec::with_capacity(attrs.len());
            for (k, v) in attrs.iter() {
                let key: String = k.extract().map_err(|_| {
                    InputError::new_err(format!("rows[{i}]: attribute names must be str"))
                })?;
                let val = py_value(&v).map_err(|what| {
                    TraceFormatError::new_err(format!(
                        "rows[{i}].attributes[{key:?}]: unknown attribute value type {what}"
                    ))
                })?;
                a.push((Arc::<str>::from(key.as_str()), val));
            }
            evs.push(maestro_engine::cep::Event {
                time: t,
                name: Arc::from(name.as_str()),
                attrs: a,
            });
        }
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.feed_events(&evs)?))
    }

    /// Feed finished OpenTelemetry SDK spans (`ReadableSpan`s), converted
    /// here with the same mapping as the OTLP readers.
    fn feed_spans(&self, py: Python<'_>, spans: &Bound<'_, PyList>) -> PyResult<()> {
        let evs = spans_to_events(py, spans)?;
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.feed_events(&evs)?))
    }

    fn advance_watermark(&self, py: Python<'_>, t: i64) -> PyResult<()> {
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.advance_watermark(t)?))
    }

    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        let mut m = self.lock()?;
        let mm: &mut Matcher = &mut m;
        run(py, move || Ok(mm.finish()?))
    }

    /// Violations found so far, as dicts (removed from the matcher).
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let v = self.lock()?.drain();
        let out = PyList::empty(py);
        for x in &v {
            let d = PyDict::new(py);
            d.set_item(
                "guard",
                self.names.get(x.guard).cloned().unwrap_or_default(),
            )?;
            d.set_item("guard_index", x.guard)?;
            d.set_item("alternative", x.alternative)?;
            d.set_item("key", key_py(py, &x.key)?)?;
            d.set_item(
                "kind",
                match x.kind {
                    ViolationKind::Match => "match",
                    ViolationKind::Deadline => "deadline",
                },
            )?;
            d.set_item("time", x.time)?;
            d.set_item("seq", x.seq)?;
            d.set_item("start_time", x.start_time)?;
            d.set_item("start_seq", x.start_seq)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Violations found so far as numpy arrays (removed from the matcher):
    /// `guard` (index), `kind` (0 match, 1 deadline), `time`, `seq` (-1 for
    /// deadlines), `key` (int keys; string keys give -1 and are listed in
    /// `str_keys`, aligned).
    fn drain_arrays<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = self.lock()?.drain();
        let n = v.len();
        let (mut g, mut k, mut t, mut s, mut key) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut strs: Vec<Option<String>> = Vec::new();
        for x in &v {
            g.push(x.guard as i64);
            k.push(matches!(x.kind, ViolationKind::Deadline) as i64);
            t.push(x.time);
            s.push(x.seq.map(|q| q as i64).unwrap_or(-1));
            match &x.key {
                KeyLabel::Int(i) => {
                    key.push(*i);
                    if !strs.is_empty() {
                        strs.push(None);
                    }
                }
                KeyLabel::Str(st) => {
                    key.push(-1);
                    if strs.is_empty() {
                        strs = vec![None; key.len() - 1];
                    }
                    strs.push(Some(st.to_string()));
                }
            }
        }
        let d = PyDict::new(py);
        d.set_item("guard", g.into_pyarray(py))?;
        d.set_item("kind", k.into_pyarray(py))?;
        d.set_item("time", t.into_pyarray(py))?;
        d.set_item("seq", s.into_pyarray(py))?;
        d.set_item("key", key.into_pyarray(py))?;
        d.set_item("str_keys", if strs.is_empty() { None } else { Some(strs) })?;
        Ok(d)
    }

    /// Late events recorded so far (removed from the matcher).
    fn drain_late<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let v = self.lock()?.drain_late();
        let out = PyList::empty(py);
        for x in &v {
            let d = PyDict::new(py);
            d.set_item("seq", x.seq)?;
            d.set_item("time", x.time)?;
            d.set_item("watermark", x.watermark)?;
            d.set_item("name", &*x.name)?;
            out.append(d)?;
        }
        Ok(out)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.lock()?.stats();
        let d = PyDict::new(py);
        d.set_item("events", s.events)?;
        d.set_item("late", s.late)?;
        d.set_item("unkeyed", s.unkeyed)?;
        d.set_item("live_keys", s.live_keys)?;
        d.set_item("live_runs", s.live_runs)?;
        d.set_item("buffered", s.buffered)?;
        d.set_item("violations", s.violations)?;
        d.set_item("evicted_keys", s.evicted_keys)?;
        d.set_item(
            "watermark",
            (s.watermark != i64::MIN).then_some(s.watermark),
        )?;
        Ok(d)
    }
}

fn scalar_json(v: &Bound<'_, PyAny>) -> Result<serde_json::Value, String> {
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(serde_json::Value::Bool(b.is_true()));
    }
    if let Ok(i) = v.extract::<i64>() {
        if v.is_instance_of::<pyo3::types::PyInt>() {
            return Ok(serde_json::Value::from(i));
        }
    }
    if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
        return Ok(Value::Float(f.value()).to_json());
    }
    if let Ok(s) = v.cast::<pyo3::types::PyString>() {
        return Ok(serde_json::Value::String(s.to_string()));
    }
    Err(v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into()))
}

pub(crate) fn py_value(v: &Bound<'_, PyAny>) -> Result<Value, String> {
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<pyo3::types::PyInt>() {
        return v
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| "int beyond 64 bits".to_string());
    }
    if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = v.cast::<pyo3::types::PyString>() {
        return Ok(Value::Str(Arc::from(s.to_string().as_str())));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for x in v.try_iter().map_err(|e| e.to_string())? {
            let x = x.map_err(|e| e.to_string())?;
            out.push(scalar_json(&x)?);
        }
        return Ok(Value::Str(Arc::from(
            serde_json::Value::Array(out).to_string().as_str(),
        )));
    }
    Err(v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into()))
}

fn attr_pairs(obj: &Bound<'_, PyAny>, out: &mut Vec<(Arc<str>, Value)>) -> PyResult<()> {
    if obj.is_none() {
        return Ok(());
    }
    let items = obj.call_method0(pyo3::intern!(obj.py(), "items"))?;
    for kv in items.try_iter()? {
        let (k, v): (String, Bound<'_, PyAny>) = kv?.extract()?;
        let val = py_value(&v).map_err(|what| {
            TraceFormatError::new_err(format!(
                "span attribute {k:?}: unknown attribute value type {what}"
            ))
        })?;
        if let Some(x) = out.iter_mut().find(|(kk, _)| **kk == *k) {
            x.1 = val;
        } else {
            out.push((Arc::from(k.as_str()), val));
        }
    }
    Ok(())
}

fn set_attr(out: &mut Vec<(Arc<str>, Value)>, k: &str, v: Value) {
    if let Some(x) = out.iter_mut().find(|(kk, _)| **kk == *k) {
        x.1 = v;
    } else {
        out.push((Arc::from(k), v));
    }
}

fn spans_to_events(
    py: Python<'_>,
    spans: &Bound<'_, PyList>,
) -> PyResult<Vec<maestro_engine::cep::Event>> {
    use pyo3::intern;
    use std::collections::HashMap;
    const STATUS: [&str; 3] = ["unset", "ok", "error"];
    let mut res_cache: HashMap<usize, Vec<(Arc<str>, Value)>> = HashMap::new();
    let mut out = Vec::with_capacity(spans.len() * 2);
    for span in spans.iter() {
        let ctx = span.getattr(intern!(py, "context"))?;
        let start: Option<i64> = span.getattr(intern!(py, "start_time"))?.extract()?;
        let (false, Some(start)) = (ctx.is_none(), start) else {
            continue;
        };
        let end: Option<i64> = span.getattr(intern!(py, "end_time"))?.extract()?;
        let name: String = span.getattr(intern!(py, "name"))?.extract()?;
        let res = span.getattr(intern!(py, "resource"))?;
        let rid = res.as_ptr() as usize;
        let mut a = match res_cache.get(&rid) {
            Some(v) => v.clone(),
            None => {
                let mut v = Vec::new();
                if !res.is_none() {
                    attr_pairs(&res.getattr(intern!(py, "attributes"))?, &mut v)?;
                }
                res_cache.insert(rid, v.clone());
                v
            }
        };
        attr_pairs(&span.getattr(intern!(py, "attributes"))?, &mut a)?;
        let scope = span.getattr(intern!(py, "instrumentation_scope"))?;
        if !scope.is_none() {
            let sn: Option<String> = scope.getattr(intern!(py, "name"))?.extract()?;
            if let Some(sn) = sn.filter(|x| !x.is_empty()) {
                set_attr(&mut a, "scope.name", Value::Str(Arc::from(sn.as_str())));
            }
        }
        let tid: u128 = ctx.getattr(intern!(py, "trace_id"))?.extract()?;
        let sid: u64 = ctx.getattr(intern!(py, "span_id"))?.extract()?;
        set_attr(
            &mut a,
            "trace_id",
            Value::Str(Arc::from(format!("{tid:032x}").as_str())),
        );
        set_attr(
            &mut a,
            "span_id",
            Value::Str(Arc::from(format!("{sid:016x}").as_str())),
        );
        let parent = span.getattr(intern!(py, "parent"))?;
        if !parent.is_none() {
            let pid: u64 = parent.getattr(intern!(py, "span_id"))?.extract()?;
            set_attr(
                &mut a,
                "parent_span_id",
                Value::Str(Arc::from(format!("{pid:016x}").as_str())),
            );
        }
        let kind: String = span
            .getattr(intern!(py, "kind"))?
            .getattr(intern!(py, "name"))?
            .extract()?;
        set_attr(
            &mut a,
            "span.kind",
            Value::Str(Arc::from(kind.to_lowercase().as_str())),
        );
        let status = span.getattr(intern!(py, "status"))?;
        let code: usize = status
            .getattr(intern!(py, "status_code"))?
            .getattr(intern!(py, "value"))?
            .extract()?;
        set_attr(
            &mut a,
            "status.code",
            Value::Str(Arc::from(*STATUS.get(code).unwrap_or(&"unset"))),
        );
        let desc: Option<String> = status.getattr(intern!(py, "description"))?.extract()?;
        if let Some(d) = desc.filter(|d| !d.is_empty()) {
            set_attr(&mut a, "status.message", Value::Str(Arc::from(d.as_str())));
        }
        set_attr(
            &mut a,
            "duration_ns",
            Value::Int(end.map(|e| e - start).unwrap_or(0)),
        );
        let nm: Arc<str> = Arc::from(name.as_str());
        let mut span_a = a.clone();
        set_attr(&mut span_a, "event.kind", Value::Str(Arc::from("span")));
        out.push(maestro_engine::cep::Event {
            time: start,
            name: nm.clone(),
            attrs: span_a,
        });
        for e in span.getattr(intern!(py, "events"))?.try_iter()? {
            let e = e?;
            let mut ea = a.clone();
            set_attr(&mut ea, "span.name", Value::Str(nm.clone()));
            attr_pairs(&e.getattr(intern!(py, "attributes"))?, &mut ea)?;
            set_attr(&mut ea, "event.kind", Value::Str(Arc::from("span_event")));
            let et: i64 = e.getattr(intern!(py, "timestamp"))?.extract()?;
            let en: String = e.getattr(intern!(py, "name"))?.extract()?;
            out.push(maestro_engine::cep::Event {
                time: et,
                name: Arc::from(en.as_str()),
                attrs: ea,
            });
        }
    }
    Ok(out)
}

/// Engine version recorded in bundles.
#[pyfunction]
pub fn engine_version() -> &'static str {
    maestro_engine::VERSION
}

// ------------------------------------------------------------------ live feed

pub(crate) const SPAN_KINDS: [&str; 5] = ["internal", "server", "client", "producer", "consumer"];
pub(crate) const STATUS_CODES: [&str; 3] = ["unset", "ok", "error"];

/// Attributes as (shared key, value) pairs.
pub(crate) type Attrs = Vec<(Arc<str>, Value)>;
/// A span event: time, name, attributes.
pub(crate) type SpanEvent = (i64, String, Attrs);

/// The fields of one finished span that the loaded guards can read, taken
/// from the Python object on the request thread (no formatting, no
/// attribute the guards do not name); the GIL-free feed thread builds the
/// events from it.
pub(crate) struct RawSpan {
    pub(crate) name: String,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) parent: Option<u64>,
    pub(crate) kind: &'static str,
    pub(crate) status: &'static str,
    pub(crate) status_msg: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Arc<Attrs>,
    pub(crate) attrs: Vec<(Arc<str>, Value)>,
    pub(crate) events: Vec<SpanEvent>,
}

enum FeedMsg {
    Flush(std::sync::mpsc::SyncSender<()>),
    Close,
}

#[derive(Default)]
struct FeedState {
    /// Violations or late events wait in the matcher, or the feed closed.
    ready: bool,
    closed: bool,
    errors: Vec<String>,
}

/// Spans queued by `push` are picked up by the feed thread every interval
/// (no wake-up, so no system call, on the request path); at most this many
/// spans or bytes wait.
const MAX_QUEUED: usize = 1 << 20;
const MAX_QUEUED_BYTES: usize = 1 << 28;

/// `push`'s side of the feed: the waiting spans (the feed thread swaps the
/// batch out) and the resources seen, converted once (the reference keeps
/// the object alive, so its address is not reused). One lock per span.
#[derive(Default)]
struct Queue {
    batch: Batch,
    resources: Vec<(Py<PyAny>, Arc<Attrs>)>,
}

impl Queue {
    #[inline]
    fn resource(&self, obj: *mut pyo3::ffi::PyObject) -> Option<Arc<Attrs>> {
        let (_, a) = self.resources.iter().find(|(o, _)| o.as_ptr() == obj)?;
        Some(a.clone())
    }

    fn enqueue(&mut self, rec: &[u8], resource: &Arc<Attrs>, shared: &FeedShared) {
        use std::sync::atomic::Ordering;
        let b = &mut self.batch;
        if b.spans >= MAX_QUEUED || b.bytes.len() + rec.len() > MAX_QUEUED_BYTES {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            b.push(rec, resource);
            shared.queued.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct FeedShared {
    spans: Mutex<Queue>,
    /// Spans refused because `MAX_QUEUED` (or `MAX_QUEUED_BYTES`) were waiting.
    dropped: std::sync::atomic::AtomicU64,
    open: std::sync::atomic::AtomicBool,
    state: Mutex<FeedState>,
    cv: std::sync::Condvar,
    queued: std::sync::atomic::AtomicU64,
}

impl FeedShared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record an error for `SpanFeed.errors` (the first 1000 are kept).
    fn note(&self, e: String) {
        let mut st = self.lock();
        if st.errors.len() < 1000 {
            st.errors.push(e);
        }
        st.ready = true;
        self.cv.notify_all();
    }
}

/// Which pseudo-attributes and attributes the guards read.
pub(crate) struct Wanted {
    /// The attribute names: the shared keys the events carry (cloned per
    /// attribute instead of allocated), and their index (`find`).
    pub(crate) keys: Vec<Arc<str>>,
    index: rustc_hash::FxHashMap<Arc<str>, u32>,
    pub(crate) trace_id: bool,
    pub(crate) span_id: bool,
    pub(crate) parent: bool,
    pub(crate) kind: bool,
    pub(crate) status: bool,
    pub(crate) status_msg: bool,
    pub(crate) duration: bool,
    pub(crate) scope: bool,
    event_kind: bool,
    span_name: bool,
}

impl Wanted {
    fn new(mut names: Vec<String>) -> Self {
        names.sort();
        names.dedup();
        let keys: Vec<Arc<str>> = names.iter().map(|n| Arc::from(n.as_str())).collect();
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        let h = |k: &str| names.iter().any(|n| n == k);
        Wanted {
            trace_id: h("trace_id"),
            span_id: h("span_id"),
            parent: h("parent_span_id"),
            kind: h("span.kind"),
            status: h("status.code"),
            status_msg: h("status.message"),
            duration: h("duration_ns"),
            scope: h("scope.name"),
            event_kind: h("event.kind"),
            span_name: h("span.name"),
            keys,
            index,
        }
    }

    /// The index of attribute `k` in `keys`, if a guard reads it (a scan
    /// of a few lengths for the usual handful of names).
    #[inline]
    pub(crate) fn find(&self, k: &[u8]) -> Option<u32> {
        if self.keys.len() <= 24 {
            return self
                .keys
                .iter()
                .position(|x| x.len() == k.len() && x.as_bytes() == k)
                .map(|i| i as u32);
        }
        self.index.get(std::str::from_utf8(k).ok()?).copied()
    }
}

/// An AttributeError from reading a span means it was not one.
#[cold]
#[inline(never)]
fn not_a_span(py: Python<'_>, e: PyErr) -> PyErr {
    if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) {
        InputError::new_err(format!(
            "expected a finished OpenTelemetry SDK span (ReadableSpan): {e}"
        ))
    } else {
        e
    }
}

/// A span's resource: its object (looked up in the converted ones) or,
/// from the fallback reader, its attributes.
enum Res<'py> {
    Obj(Bound<'py, PyAny>),
    Attrs(Arc<Attrs>),
}

thread_local! {
    /// `SpanFeed.push`'s record buffer, reused from span to span.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Live guard checking for `GuardSpanProcessor`: `push` takes the fields
/// the guards read from a finished span (one call per span) and hands them
/// to a Rust thread that converts them, feeds the shared matcher and moves
/// the watermark with the wall clock, without the GIL.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct SpanFeed {
    tx: Mutex<Option<std::sync::mpsc::Sender<FeedMsg>>>,
    shared: Arc<FeedShared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    wanted: Arc<Wanted>,
    /// The SDK field names `Reader` looks up, interned once.
    fields: Vec<Py<pyo3::types::PyString>>,
    /// `opentelemetry.trace.SpanKind` and `StatusCode` members, by value
    /// (compared by identity on the fast path; empty without the SDK).
    kinds: Vec<Py<PyAny>>,
    codes: Vec<Py<PyAny>>,
}

/// A timeout in seconds, clamped to `0 ..= 1 h` (NaN: 0).
fn secs(t: f64) -> std::time::Duration {
    if t.is_nan() {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::from_secs_f64(t.clamp(0.0, 3600.0))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(maestro_engine::cep::MAX_TIME as u128) as i64)
        .unwrap_or(0)
}

fn raw_to_events(r: RawSpan, w: &Wanted, out: &mut Vec<maestro_engine::cep::Event>) {
    let mut a: Vec<(Arc<str>, Value)> = (*r.resource).clone();
    for (k, v) in r.attrs {
        set_attr_arc(&mut a, k, v);
    }
    if w.scope {
        if let Some(sn) = r.scope.filter(|x| !x.is_empty()) {
            set_attr(&mut a, "scope.name", Value::Str(Arc::from(sn.as_str())));
        }
    }
    if w.trace_id {
        let tid = r.trace_id;
        set_attr(
            &mut a,
            "trace_id",
            Value::Str(Arc::from(format!("{tid:032x}").as_str())),
        );
    }
    if w.span_id {
        let sid = r.span_id;
        set_attr(
            &mut a,
            "span_id",
            Value::Str(Arc::from(format!("{sid:016x}").as_str())),
        );
    }
    if w.parent {
        if let Some(pid) = r.parent {
            set_attr(
                &mut a,
                "parent_span_id",
                Value::Str(Arc::from(format!("{pid:016x}").as_str())),
            );
        }
    }
    if w.kind {
        set_attr(&mut a, "span.kind", Value::Str(Arc::from(r.kind)));
    }
    if w.status {
        set_attr(&mut a, "status.code", Value::Str(Arc::from(r.status)));
    }
    if w.status_msg {
        if let Some(d) = r.status_msg.filter(|d| !d.is_empty()) {
            set_attr(&mut a, "status.message", Value::Str(Arc::from(d.as_str())));
        }
    }
    if w.duration {
        set_attr(
            &mut a,
            "duration_ns",
            Value::Int(r.end.map(|e| e - r.start).unwrap_or(0)),
        );
    }
    let nm: Arc<str> = Arc::from(r.name.as_str());
    let mut span_a = a.clone();
    if w.event_kind {
        set_attr(&mut span_a, "event.kind", Value::Str(Arc::from("span")));
    }
    out.push(maestro_engine::cep::Event {
        time: r.start,
        name: nm.clone(),
        attrs: span_a,
    });
    for (et, en, eattrs) in r.events {
        let mut ea = a.clone();
        if w.span_name {
            set_attr(&mut ea, "span.name", Value::Str(nm.clone()));
        }
        for (k, v) in eattrs {
            set_attr_arc(&mut ea, k, v);
        }
        if w.event_kind {
            set_attr(&mut ea, "event.kind", Value::Str(Arc::from("span_event")));
        }
        out.push(maestro_engine::cep::Event {
            time: et,
            name: Arc::from(en.as_str()),
            attrs: ea,
        });
    }
}

fn set_attr_arc(out: &mut Vec<(Arc<str>, Value)>, k: Arc<str>, v: Value) {
    if let Some(x) = out.iter_mut().find(|(kk, _)| *kk == k) {
        x.1 = v;
    } else {
        out.push((k, v));
    }
}

/// The feed thread: batches spans, feeds the matcher, advances the
/// watermark to `now - lateness` every `interval`, finishes on close.
fn feed_loop(
    rx: std::sync::mpsc::Receiver<FeedMsg>,
    matcher: Arc<Mutex<Matcher>>,
    shared: Arc<FeedShared>,
    w: Arc<Wanted>,
    lateness: i64,
    interval: std::time::Duration,
) {
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::RecvTimeoutError;
    let mut taken = Batch::default();
    let mut last_wm = std::time::Instant::now();
    let mut events = Vec::new();
    let mut acks: Vec<std::sync::mpsc::SyncSender<()>> = Vec::new();
    let mut closing = false;
    let note = |shared: &FeedShared, e: String| shared.note(e);
    loop {
        let first = rx.recv_timeout(interval);
        let mut msgs = Vec::new();
        match first {
            Ok(m) => msgs.push(m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => closing = true,
        }
        while let Ok(m) = rx.try_recv() {
            msgs.push(m);
        }
        for m in msgs {
            match m {
                FeedMsg::Flush(a) => acks.push(a),
                FeedMsg::Close => closing = true,
            }
        }
        std::mem::swap(&mut taken, &mut shared.queue().batch);
        let spans = taken.spans as u64;
        let mut dec = Decoder::new(&taken.bytes);
        while !dec.done() {
            match dec.span(&taken.resources, &w) {
                Some(r) => raw_to_events(r, &w, &mut events),
                None => {
                    note(&shared, "internal error: a malformed span record".into());
                    break;
                }
            }
        }
        taken.clear();
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            note(
                &shared,
                format!("{dropped} spans dropped: more than {MAX_QUEUED} were waiting"),
            );
        }
        let advance = closing || !acks.is_empty() || last_wm.elapsed() >= interval;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut m = matcher.lock().unwrap_or_else(|p| p.into_inner());
            let mut errs = Vec::new();
            if !events.is_empty() {
                if let Err(e) = m.feed_events(&events) {
                    errs.push(e.to_string());
                }
            }
            if closing {
                if let Err(e) = m.finish() {
                    errs.push(e.to_string());
                }
            } else if advance {
                let wm = now_ns().saturating_sub(lateness);
                if wm > m.watermark() {
                    if let Err(e) = m.advance_watermark(wm) {
                        errs.push(e.to_string());
                    }
                }
            }
            (m.has_output(), errs)
        }));
        events.clear();
        if advance {
            last_wm = std::time::Instant::now();
        }
        shared.queued.fetch_sub(spans, Ordering::Relaxed);
        match res {
            Ok((ready, errs)) => {
                for e in errs {
                    note(&shared, e);
                }
                if ready {
                    let mut st = shared.lock();
                    st.ready = true;
                    shared.cv.notify_all();
                }
            }
            Err(_) => note(
                &shared,
                "internal error: the guard feed thread panicked".into(),
            ),
        }
        for a in acks.drain(..) {
            let _ = a.send(());
        }
        if closing {
            let mut st = shared.lock();
            st.closed = true;
            st.ready = true;
            shared.cv.notify_all();
            return;
        }
    }
}

/// The span events in `evs` (an iterable of SDK `Event`s), read through the
/// names of their timestamp, name and attributes: the private fields on the
/// fast path, the public properties on the fallback.
fn span_events(
    evs: &Bound<'_, PyAny>,
    [ts, name, attrs]: [&Bound<'_, pyo3::types::PyString>; 3],
    w: &Wanted,
) -> PyResult<Vec<SpanEvent>> {
    let mut events = Vec::new();
    if evs.len().unwrap_or(1) == 0 {
        return Ok(events);
    }
    for e in evs.try_iter()? {
        let e = e?;
        let mut ea = Vec::new();
        filtered_attrs(&e.getattr(attrs)?, w, &mut ea)?;
        events.push((e.getattr(ts)?.extract()?, e.getattr(name)?.extract()?, ea));
    }
    Ok(events)
}

fn filtered_attrs(
    obj: &Bound<'_, PyAny>,
    w: &Wanted,
    out: &mut Vec<(Arc<str>, Value)>,
) -> PyResult<()> {
    if obj.is_none() {
        return Ok(());
    }
    let mut put = |k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>| -> PyResult<()> {
        let Ok(ks) = k.cast::<pyo3::types::PyString>() else {
            return Ok(());
        };
        let key = ks.to_cow()?;
        let Some(shared_key) = w.find(key.as_bytes()).and_then(|i| w.keys.get(i as usize)) else {
            return Ok(());
        };
        let val = py_value(v).map_err(|what| {
            TraceFormatError::new_err(format!(
                "span attribute {key:?}: unknown attribute value type {what}"
            ))
        })?;
        set_attr_arc(out, shared_key.clone(), val);
        Ok(())
    };
    // A plain dict (SDK's BoundedAttributes keeps one in `_dict`) is read
    // in C; any other mapping through `items()`.
    let py = obj.py();
    let inner = obj.getattr(pyo3::intern!(py, "_dict")).ok();
    if let Some(d) = inner.as_ref().and_then(|x| x.cast::<PyDict>().ok()) {
        for (k, v) in d.iter() {
            put(&k, &v)?;
        }
        return Ok(());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            put(&k, &v)?;
        }
        return Ok(());
    }
    let items = obj.call_method0(pyo3::intern!(py, "items"))?;
    for kv in items.try_iter()? {
        let kv = kv?;
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = kv.extract()?;
        put(&k, &v)?;
    }
    Ok(())
}

impl SpanFeed {
    /// Write the record of `span` into `rec`; its resource's attributes,
    /// or None for a span that never started. The SDK's fields are read
    /// directly (`span_wire::Reader`); anything else goes through the
    /// public `ReadableSpan` API, which also reports real errors.
    fn record<'py>(
        &self,
        py: Python<'py>,
        span: &Bound<'py, PyAny>,
        rec: &mut Vec<u8>,
    ) -> PyResult<Option<Res<'py>>> {
        let reader = Reader {
            names: &self.fields,
            kinds: &self.kinds,
            codes: &self.codes,
            w: &self.wanted,
        };
        match reader.read(span, rec) {
            Ok(Read::Skip) => return Ok(None),
            Ok(Read::Record(res)) => return Ok(Some(Res::Obj(res))),
            Err(()) => {}
        }
        rec.clear();
        let Some(r) = self.raw_public(py, span)? else {
            return Ok(None);
        };
        span_wire::encode_raw(&r, &self.wanted, rec)
            .map_err(|()| InputError::new_err("a span field longer than 4 GiB"))?;
        Ok(Some(Res::Attrs(r.resource)))
    }

    /// The wanted attributes of a resource, converted once (no lock is
    /// held while Python code runs: a property may end a span).
    fn resource_attrs(&self, py: Python<'_>, res: &Bound<'_, PyAny>) -> PyResult<Arc<Attrs>> {
        if let Some(a) = self.shared.queue().resource(res.as_ptr()) {
            return Ok(a);
        }
        let mut v = Vec::new();
        if !res.is_none() {
            filtered_attrs(
                &res.getattr(pyo3::intern!(py, "attributes"))?,
                &self.wanted,
                &mut v,
            )?;
        }
        let v = Arc::new(v);
        let mut q = self.shared.queue();
        if q.resources.len() >= 64 {
            q.resources.remove(0);
        }
        q.resources.push((res.clone().unbind(), v.clone()));
        Ok(v)
    }

    #[cold]
    #[inline(never)]
    fn raw_public(&self, py: Python<'_>, span: &Bound<'_, PyAny>) -> PyResult<Option<RawSpan>> {
        use pyo3::intern;
        let w = &self.wanted;
        let ctx = span.getattr(intern!(py, "context"))?;
        let start: Option<i64> = span.getattr(intern!(py, "start_time"))?.extract()?;
        let (false, Some(start)) = (ctx.is_none(), start) else {
            return Ok(None);
        };
        let end: Option<i64> = if w.duration {
            span.getattr(intern!(py, "end_time"))?.extract()?
        } else {
            None
        };
        let name: String = span.getattr(intern!(py, "name"))?.extract()?;
        let trace_id: u128 = if w.trace_id {
            ctx.getattr(intern!(py, "trace_id"))?.extract()?
        } else {
            0
        };
        let span_id: u64 = if w.span_id {
            ctx.getattr(intern!(py, "span_id"))?.extract()?
        } else {
            0
        };
        let parent = if w.parent {
            let p = span.getattr(intern!(py, "parent"))?;
            if p.is_none() {
                None
            } else {
                Some(p.getattr(intern!(py, "span_id"))?.extract::<u64>()?)
            }
        } else {
            None
        };
        let kind = if w.kind {
            let k = span.getattr(intern!(py, "kind"))?;
            let v: usize = k.getattr(intern!(py, "value"))?.extract()?;
            match SPAN_KINDS.get(v) {
                Some(s) => *s,
                None => "internal",
            }
        } else {
            ""
        };
        let (status, status_msg) = if w.status || w.status_msg {
            let st = span.getattr(intern!(py, "status"))?;
            let code: usize = st
                .getattr(intern!(py, "status_code"))?
                .getattr(intern!(py, "value"))?
                .extract()?;
            let msg: Option<String> = if w.status_msg {
                st.getattr(intern!(py, "description"))?.extract()?
            } else {
                None
            };
            (*STATUS_CODES.get(code).unwrap_or(&"unset"), msg)
        } else {
            ("unset", None)
        };
        let scope = if w.scope {
            let sc = span.getattr(intern!(py, "instrumentation_scope"))?;
            if sc.is_none() {
                None
            } else {
                sc.getattr(intern!(py, "name"))?.extract()?
            }
        } else {
            None
        };
        let resource = self.resource_attrs(py, &span.getattr(intern!(py, "resource"))?)?;
        let mut attrs = Vec::new();
        let sa = span
            .getattr(intern!(py, "_attributes"))
            .or_else(|_| span.getattr(intern!(py, "attributes")))?;
        filtered_attrs(&sa, w, &mut attrs)?;
        let events = span_events(
            &span.getattr(intern!(py, "events"))?,
            [
                intern!(py, "timestamp"),
                intern!(py, "name"),
                intern!(py, "attributes"),
            ],
            w,
        )?;
        Ok(Some(RawSpan {
            name,
            start,
            end,
            trace_id,
            span_id,
            parent,
            kind,
            status,
            status_msg,
            scope,
            resource,
            attrs,
            events,
        }))
    }
}

#[pymethods]
impl SpanFeed {
    /// Start the feed thread on `matcher` (shared: drain it for results).
    #[new]
    #[pyo3(signature = (matcher, lateness_ns, interval_ns))]
    fn new(matcher: PyRef<'_, GuardMatcher>, lateness_ns: i64, interval_ns: u64) -> PyResult<Self> {
        if !(0..maestro_engine::cep::MAX_TIME).contains(&lateness_ns) {
            return Err(InputError::new_err(format!(
                "lateness {lateness_ns} ns out of range (0 .. 2^62)"
            )));
        }
        if !(1_000..=3_600_000_000_000).contains(&interval_ns) {
            return Err(InputError::new_err(format!(
                "interval {interval_ns} ns out of range (1 us .. 1 h)"
            )));
        }
        let names = matcher.lock()?.attribute_names();
        let wanted = Arc::new(Wanted::new(names));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(FeedShared {
            spans: Mutex::new(Queue::default()),
            dropped: std::sync::atomic::AtomicU64::new(0),
            open: std::sync::atomic::AtomicBool::new(true),
            state: Mutex::new(FeedState::default()),
            cv: std::sync::Condvar::new(),
            queued: std::sync::atomic::AtomicU64::new(0),
        });
        let m = matcher.inner.clone();
        let sh = shared.clone();
        let interval = std::time::Duration::from_nanos(interval_ns);
        let th = std::thread::Builder::new()
            .name("maestro-guard-feed".into())
            .spawn({
                let w = wanted.clone();
                move || feed_loop(rx, m, sh, w, lateness_ns, interval)
            })
            .map_err(|e| InternalError::new_err(format!("cannot start the feed thread: {e}")))?;
        let members = |cls: &str, n: usize| -> Vec<Py<PyAny>> {
            let py = matcher.py();
            let Ok(m) = py.import("opentelemetry.trace") else {
                return Vec::new();
            };
            let Ok(c) = m.getattr(cls) else {
                return Vec::new();
            };
            let mut v = Vec::new();
            for i in 0..n {
                match c.call1((i,)) {
                    Ok(x) => v.push(x.unbind()),
                    Err(_) => return Vec::new(),
                }
            }
            v
        };
        let kinds = members("SpanKind", SPAN_KINDS.len());
        let codes = members("StatusCode", STATUS_CODES.len());
        let py = matcher.py();
        Ok(SpanFeed {
            kinds,
            codes,
            fields: span_wire::field_names(py),
            tx: Mutex::new(Some(tx)),
            shared,
            thread: Mutex::new(Some(th)),
            wanted,
        })
    }

    /// Take the fields the guards read from a finished span and queue them
    /// (spans without a context or start time are skipped). Returns False
    /// when the feed is closed.
    fn push(&self, py: Python<'_>, span: &Bound<'_, PyAny>) -> PyResult<bool> {
        use std::sync::atomic::Ordering;
        if !self.shared.open.load(Ordering::Acquire) {
            return Ok(false);
        }
        // The record is written into this thread's scratch buffer (taken
        // out, so a re-entrant call from Python code run by a getattr
        // finds an empty one) and copied into the queue under its lock.
        let mut rec = SCRATCH.take();
        rec.clear();
        let res = guard(|| self.record(py, span, &mut rec)).map_err(|e| not_a_span(py, e));
        let res = match res {
            Ok(Some(r)) => {
                let mut q = self.shared.queue();
                let hit = match &r {
                    Res::Attrs(a) => Some(a.clone()),
                    Res::Obj(o) => q.resource(o.as_ptr()),
                };
                match (hit, r) {
                    (Some(a), _) => {
                        q.enqueue(&rec, &a, &self.shared);
                        Ok(())
                    }
                    (None, r) => {
                        drop(q);
                        let a = match r {
                            Res::Obj(o) => guard(|| self.resource_attrs(py, &o)),
                            Res::Attrs(a) => Ok(a),
                        };
                        a.map(|a| self.shared.queue().enqueue(&rec, &a, &self.shared))
                    }
                }
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if rec.capacity() <= 1 << 16 {
            SCRATCH.set(rec);
        }
        res.map(|()| true)
    }

    /// `push` for use as a `SpanProcessor.on_end`: it never raises (the
    /// instrumented program must not break); an error is recorded for
    /// `errors()` instead. Saves the Python frame of a wrapper per span.
    fn on_end(&self, py: Python<'_>, span: &Bound<'_, PyAny>) {
        if let Err(e) = self.push(py, span) {
            self.shared.note(format!("on_end: {}", e.value(py)));
        }
    }

    /// Wait (without the GIL) until every span queued so far is matched
    /// and the watermark has moved; False on timeout or when closed.
    #[pyo3(signature = (timeout = 30.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let (atx, arx) = std::sync::mpsc::sync_channel(1);
        {
            let tx = self
                .tx
                .lock()
                .map_err(|_| InternalError::new_err("feed lock poisoned"))?;
            let Some(tx) = tx.as_ref() else {
                return Ok(false);
            };
            if tx.send(FeedMsg::Flush(atx)).is_err() {
                return Ok(false);
            }
        }
        let t = secs(timeout);
        Ok(py.detach(move || arx.recv_timeout(t).is_ok()))
    }

    /// Wait (without the GIL) until violations, late events or errors are
    /// ready, or the feed closed; True then (and the flag is reset).
    #[pyo3(signature = (timeout = 1.0))]
    fn wait(&self, py: Python<'_>, timeout: f64) -> bool {
        let t = secs(timeout);
        let sh = self.shared.clone();
        py.detach(move || {
            let st = sh.lock();
            let (mut st, _) = sh
                .cv
                .wait_timeout_while(st, t, |s| !s.ready && !s.closed)
                .unwrap_or_else(|p| p.into_inner());
            let r = st.ready || st.closed;
            st.ready = false;
            r
        })
    }

    /// Match what is queued, finish the matcher (every deadline fires) and
    /// stop the thread. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| InternalError::new_err("feed lock poisoned"))?
            .take();
        self.shared
            .open
            .store(false, std::sync::atomic::Ordering::Release);
        if let Some(tx) = tx {
            let _ = tx.send(FeedMsg::Close);
        }
        let th = self
            .thread
            .lock()
            .map_err(|_| InternalError::new_err("feed lock poisoned"))?
            .take();
        if let Some(th) = th {
            py.detach(move || th.join())
                .map_err(|_| InternalError::new_err("the guard feed thread panicked"))?;
        }
        Ok(())
    }

    /// Errors of the feed thread since the last call.
    fn errors(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().errors)
    }

    /// Spans queued and not yet matched.
    #[getter]
    fn queued(&self) -> u64 {
        self.shared
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// The attributes read from spans (the guards' predicates and keys).
    #[getter]
    fn attributes(&self) -> Vec<String> {
        self.wanted.keys.iter().map(|k| k.to_string()).collect()
    }

    /// The events `push` would queue for `span` (time, name, attributes),
    /// built by the same reader and record, without queueing: what the
    /// guards see of a span.
    fn events_of<'py>(
        &self,
        py: Python<'py>,
        span: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut rec = Vec::new();
        let out = PyList::empty(py);
        let Some(r) = guard(|| self.record(py, span, &mut rec)).map_err(|e| not_a_span(py, e))?
        else {
            return Ok(out);
        };
        let resource = match r {
            Res::Obj(o) => self.resource_attrs(py, &o)?,
            Res::Attrs(a) => a,
        };
        let raw = Decoder::new(&rec)
            .span(&[resource], &self.wanted)
            .ok_or_else(|| InternalError::new_err("a malformed span record"))?;
        let mut evs = Vec::new();
        raw_to_events(raw, &self.wanted, &mut evs);
        for e in &evs {
            out.append(event_py(py, e)?)?;
        }
        Ok(out)
    }
}
