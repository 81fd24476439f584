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
    /// Event times (ns) as a list.
    fn times(&self) -> Vec<i64> {
        self.inner.events.iter().map(|e| e.time).collect()
    }
}

/// The streaming matcher (thread-safe: one lock, GIL released while it runs).
#[pyclass(frozen, module = "maestro_core._native")]
pub struct GuardMatcher {
    inner: Mutex<Matcher>,
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
    #[pyo3(signature = (guards, lateness_ns = Some(0), max_late_kept = 100_000))]
    fn new(
        guards: Vec<PyRef<'_, CompiledGuard>>,
        lateness_ns: Option<i64>,
        max_late_kept: usize,
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
                },
            )
            .map_err(err)
        })?;
        Ok(GuardMatcher {
            inner: Mutex::new(m),
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

fn py_value(v: &Bound<'_, PyAny>) -> Result<Value, String> {
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
