//! The live feed's span records. `SpanFeed.push` runs on the instrumented
//! program's request thread, so it copies only the fields the loaded guards
//! read, straight from the SDK span's fields through the C API, as bytes
//! appended to a buffer that is reused from batch to batch: no allocation
//! and no Python object per span. The feed thread decodes the records into
//! `RawSpan`s without the GIL.
//!
//! Why bytes: after an I/O wait the request thread's caches are cold, and
//! the copy's cost is then mostly the code and shared data it touches (the
//! allocator's, the per-field conversions'); a flat writer touches little
//! of either. `benches/RESULTS.md` (issue 4, span processor) has figures.
//!
//! Record layout, little endian:
//!
//! ```text
//! u32 resource            index into the batch's resources
//! u8  flags               1 end, 2 parent, 4 status message, 8 scope
//! i64 start, [i64 end], u128 trace id, u64 span id, [u64 parent]
//! u8  kind, u8 status     indices into SPAN_KINDS / STATUS_CODES
//! str name, [str status message], [str scope name]
//! attrs
//! u32 event count, then per event: i64 time, str name, attrs
//!
//! str:   u32 length, UTF-8 bytes
//! attrs: u32 count, then per attribute u32 key (index into Wanted::keys)
//!        and a value: u8 tag (0 false, 1 true, 2 i64, 3 f64, 4 str) + payload
//! ```

use std::sync::Arc;

use maestro_engine::cep::Value;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::cep::{py_value, Attrs, RawSpan, SpanEvent, Wanted, SPAN_KINDS, STATUS_CODES};

const F_END: u8 = 1;
const F_PARENT: u8 = 2;
const F_STATUS_MSG: u8 = 4;
const F_SCOPE: u8 = 8;

/// Spans waiting for the feed thread: their records and the resources they
/// point to. The feed thread swaps it with an emptied one, so the buffers'
/// capacity is reused.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) resources: Vec<Arc<Attrs>>,
    pub(crate) spans: usize,
}

impl Batch {
    /// Append one record (its resource index is filled in here).
    pub(crate) fn push(&mut self, rec: &[u8], resource: &Arc<Attrs>) {
        let ri = match self.resources.last() {
            Some(last) if Arc::ptr_eq(last, resource) => self.resources.len() - 1,
            _ => {
                self.resources.push(resource.clone());
                self.resources.len() - 1
            }
        };
        let at = self.bytes.len();
        self.bytes.extend_from_slice(rec);
        if let Some(slot) = self.bytes.get_mut(at..at + 4) {
            slot.copy_from_slice(&(ri as u32).to_le_bytes());
        }
        self.spans += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.resources.clear();
        self.spans = 0;
        // a burst's buffer is not kept for ever
        if self.bytes.capacity() > 1 << 24 {
            self.bytes = Vec::new();
        }
    }
}

// ------------------------------------------------------------------ writer

#[inline]
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn put_str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), ()> {
    let n = u32::try_from(s.len()).map_err(|_| ())?;
    put_u32(out, n);
    out.extend_from_slice(s);
    Ok(())
}

fn put_value(out: &mut Vec<u8>, v: &Value) -> Result<(), ()> {
    match v {
        Value::Bool(b) => out.push(*b as u8),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(4);
            put_str(out, s.as_bytes())?;
        }
    }
    Ok(())
}

fn put_attrs_of(out: &mut Vec<u8>, attrs: &[(Arc<str>, Value)], w: &Wanted) -> Result<(), ()> {
    let found: Vec<(u32, &Value)> = attrs
        .iter()
        .filter_map(|(k, v)| w.find(k.as_bytes()).map(|i| (i, v)))
        .collect();
    put_u32(out, found.len() as u32);
    for (i, v) in found {
        put_u32(out, i);
        put_value(out, v)?;
    }
    Ok(())
}

/// The record of a span read through the public API (the fallback reader).
#[cold]
pub(crate) fn encode_raw(r: &RawSpan, w: &Wanted, out: &mut Vec<u8>) -> Result<(), ()> {
    put_u32(out, 0);
    let mut flags = 0;
    flags |= if r.end.is_some() { F_END } else { 0 };
    flags |= if r.parent.is_some() { F_PARENT } else { 0 };
    flags |= if r.status_msg.is_some() {
        F_STATUS_MSG
    } else {
        0
    };
    flags |= if r.scope.is_some() { F_SCOPE } else { 0 };
    out.push(flags);
    out.extend_from_slice(&r.start.to_le_bytes());
    if let Some(e) = r.end {
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(&r.trace_id.to_le_bytes());
    out.extend_from_slice(&r.span_id.to_le_bytes());
    if let Some(p) = r.parent {
        out.extend_from_slice(&p.to_le_bytes());
    }
    let idx = |t: &[&str], s: &str| t.iter().position(|x| *x == s).unwrap_or(0) as u8;
    out.push(idx(&SPAN_KINDS, r.kind));
    out.push(idx(&STATUS_CODES, r.status));
    put_str(out, r.name.as_bytes())?;
    if let Some(m) = &r.status_msg {
        put_str(out, m.as_bytes())?;
    }
    if let Some(s) = &r.scope {
        put_str(out, s.as_bytes())?;
    }
    put_attrs_of(out, &r.attrs, w)?;
    put_u32(out, r.events.len() as u32);
    for (t, n, a) in &r.events {
        out.extend_from_slice(&t.to_le_bytes());
        put_str(out, n.as_bytes())?;
        put_attrs_of(out, a, w)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ reader

/// Attribute names the reader looks up on the SDK's objects, interned once.
const CONTEXT: usize = 0;
const START: usize = 1;
const END: usize = 2;
const NAME: usize = 3;
const PARENT: usize = 4;
const KIND: usize = 5;
const STATUS: usize = 6;
const STATUS_CODE: usize = 7;
const DESCRIPTION: usize = 8;
const SCOPE: usize = 9;
const PLAIN_NAME: usize = 10;
const RESOURCE: usize = 11;
const ATTRIBUTES: usize = 12;
const DICT: usize = 13;
const EVENTS: usize = 14;
const DQ: usize = 15;
const TIMESTAMP: usize = 16;

pub(crate) fn field_names(py: Python<'_>) -> Vec<Py<PyString>> {
    [
        "_context",
        "_start_time",
        "_end_time",
        "_name",
        "_parent",
        "_kind",
        "_status",
        "_status_code",
        "_description",
        "_instrumentation_scope",
        "name",
        "_resource",
        "_attributes",
        "_dict",
        "_events",
        "_dq",
        "_timestamp",
    ]
    .iter()
    .map(|n| PyString::intern(py, n).unbind())
    .collect()
}

/// What `Reader::read` found.
pub(crate) enum Read<'py> {
    /// No context or start time: not a started span, nothing to check.
    Skip,
    /// The record is written; the span's resource object.
    Record(Bound<'py, PyAny>),
}

/// Any surprise (another SDK version, another span class, a value the
/// flat writer does not take): the caller rereads the span through the
/// public API, which also reports real errors.
#[cold]
#[inline(never)]
fn miss() {
    // SAFETY: called with the GIL held (every caller holds a `Python`).
    unsafe { ffi::PyErr_Clear() }
}

/// Reads an SDK span's private fields (one C-API call each; the public
/// properties are Python calls and `events` copies a tuple).
pub(crate) struct Reader<'a> {
    pub(crate) names: &'a [Py<PyString>],
    pub(crate) kinds: &'a [Py<PyAny>],
    pub(crate) codes: &'a [Py<PyAny>],
    pub(crate) w: &'a Wanted,
}

impl Reader<'_> {
    #[inline]
    fn get<'py>(&self, o: &Bound<'py, PyAny>, n: usize) -> Result<Bound<'py, PyAny>, ()> {
        let name = self.names.get(n).ok_or(())?;
        // SAFETY: both pointers are live objects; the result is a new
        // reference or NULL with an exception set.
        let p = unsafe { ffi::PyObject_GetAttr(o.as_ptr(), name.as_ptr()) };
        if p.is_null() {
            miss();
            return Err(());
        }
        // SAFETY: `p` is a new, non-NULL reference.
        Ok(unsafe { Bound::from_owned_ptr(o.py(), p) })
    }

    #[inline(never)]
    pub(crate) fn read<'py>(
        &self,
        span: &Bound<'py, PyAny>,
        out: &mut Vec<u8>,
    ) -> Result<Read<'py>, ()> {
        let w = self.w;
        let ctx = self.get(span, CONTEXT)?;
        let start = self.get(span, START)?;
        if ctx.is_none() || start.is_none() {
            return Ok(Read::Skip);
        }
        if !is_tuple(&ctx) {
            return Err(());
        }
        put_u32(out, 0);
        let flags_at = out.len();
        out.push(0);
        let mut flags = 0;
        put_i64(out, int64(&start)?);
        if w.duration {
            let end = self.get(span, END)?;
            if !end.is_none() {
                put_i64(out, int64(&end)?);
                flags |= F_END;
            }
        }
        let trace_id = if w.trace_id {
            self.u128(&tuple_item(&ctx, 0)?)?
        } else {
            0
        };
        out.extend_from_slice(&trace_id.to_le_bytes());
        let span_id = if w.span_id {
            uint64(&tuple_item(&ctx, 1)?)?
        } else {
            0
        };
        out.extend_from_slice(&span_id.to_le_bytes());
        if w.parent {
            let p = self.get(span, PARENT)?;
            if !p.is_none() {
                if !is_tuple(&p) {
                    return Err(());
                }
                out.extend_from_slice(&uint64(&tuple_item(&p, 1)?)?.to_le_bytes());
                flags |= F_PARENT;
            }
        }
        let kind = if w.kind {
            let k = self.get(span, KIND)?;
            self.kinds
                .iter()
                .position(|x| x.as_ptr() == k.as_ptr())
                .ok_or(())? as u8
        } else {
            0
        };
        out.push(kind);
        let mut status_msg = None;
        let status = if w.status || w.status_msg {
            let st = self.get(span, STATUS)?;
            let c = self.get(&st, STATUS_CODE)?;
            if w.status_msg {
                let d = self.get(&st, DESCRIPTION)?;
                if !d.is_none() {
                    status_msg = Some(d);
                    flags |= F_STATUS_MSG;
                }
            }
            self.codes
                .iter()
                .position(|x| x.as_ptr() == c.as_ptr())
                .ok_or(())? as u8
        } else {
            0
        };
        out.push(status);
        put_pystr(out, &self.get(span, NAME)?)?;
        if let Some(d) = status_msg {
            put_pystr(out, &d)?;
        }
        if w.scope {
            let sc = self.get(span, SCOPE)?;
            if !sc.is_none() {
                let n = self.get(&sc, PLAIN_NAME)?;
                if !n.is_none() {
                    put_pystr(out, &n)?;
                    flags |= F_SCOPE;
                }
            }
        }
        if let Some(f) = out.get_mut(flags_at) {
            *f = flags;
        }
        let resource = self.get(span, RESOURCE)?;
        self.put_attrs(&self.get(span, ATTRIBUTES)?, out)?;
        let dq = self.get(&self.get(span, EVENTS)?, DQ)?;
        // SAFETY: `dq` is a live object; -1 means an exception is set.
        let n = unsafe { ffi::PyObject_Size(dq.as_ptr()) };
        if n < 0 {
            miss();
            return Err(());
        }
        put_u32(out, u32::try_from(n).map_err(|_| ())?);
        if n > 0 {
            let mut seen = 0;
            for e in dq.try_iter().map_err(|_| ())? {
                let e = e.map_err(|_| ())?;
                put_i64(out, int64(&self.get(&e, TIMESTAMP)?)?);
                put_pystr(out, &self.get(&e, NAME)?)?;
                self.put_attrs(&self.get(&e, ATTRIBUTES)?, out)?;
                seen += 1;
            }
            if seen != n {
                return Err(()); // changed while read
            }
        }
        Ok(Read::Record(resource))
    }

    /// The wanted attributes of an SDK `BoundedAttributes` (its `_dict`).
    fn put_attrs(&self, obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), ()> {
        let count_at = out.len();
        put_u32(out, 0);
        if obj.is_none() {
            return Ok(());
        }
        let d = self.get(obj, DICT)?;
        let d = d.cast::<pyo3::types::PyDict>().map_err(|_| ())?;
        let mut count = 0u32;
        for (k, v) in d.iter() {
            if k.get_type_ptr() != &raw mut ffi::PyUnicode_Type && !k.is_instance_of::<PyString>() {
                continue;
            }
            let Some(i) = self.w.find(str_bytes(&k)?) else {
                continue;
            };
            put_u32(out, i);
            put_pyvalue(out, &v)?;
            count += 1;
        }
        if let Some(slot) = out.get_mut(count_at..count_at + 4) {
            slot.copy_from_slice(&count.to_le_bytes());
        }
        Ok(())
    }

    /// A trace id (128 bits, read in C).
    fn u128(&self, o: &Bound<'_, PyAny>) -> Result<u128, ()> {
        o.extract::<u128>().map_err(|_| ())
    }
}

#[inline]
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn is_tuple(o: &Bound<'_, PyAny>) -> bool {
    o.is_instance_of::<pyo3::types::PyTuple>()
}

fn tuple_item<'py>(t: &Bound<'py, PyAny>, i: isize) -> Result<Bound<'py, PyAny>, ()> {
    // SAFETY: `t` is a tuple (checked by the callers); the result is a
    // borrowed reference or NULL with an exception set.
    let p = unsafe { ffi::PyTuple_GetItem(t.as_ptr(), i) };
    if p.is_null() {
        miss();
        return Err(());
    }
    // SAFETY: a borrowed, non-NULL reference; we take our own.
    Ok(unsafe { Bound::from_borrowed_ptr(t.py(), p) })
}

/// An int (a non-int raises TypeError in C: a miss).
#[inline]
fn int64(o: &Bound<'_, PyAny>) -> Result<i64, ()> {
    // SAFETY: `o` is a live object.
    let v = unsafe { ffi::PyLong_AsLongLong(o.as_ptr()) };
    if v == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
        miss();
        return Err(());
    }
    Ok(v)
}

#[inline]
fn uint64(o: &Bound<'_, PyAny>) -> Result<u64, ()> {
    // SAFETY: `o` is a live object.
    let v = unsafe { ffi::PyLong_AsUnsignedLongLong(o.as_ptr()) };
    if v == u64::MAX && unsafe { !ffi::PyErr_Occurred().is_null() } {
        miss();
        return Err(());
    }
    Ok(v)
}

/// The UTF-8 of a str, borrowed from the object (cached by CPython); a
/// non-str raises TypeError in C (a miss).
#[inline]
fn str_bytes<'a>(s: &'a Bound<'_, PyAny>) -> Result<&'a [u8], ()> {
    let mut n: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live object; for a str the buffer lives as long as `s`.
    let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut n) };
    if p.is_null() {
        miss(); // e.g. a lone surrogate
        return Err(());
    }
    // SAFETY: CPython returns `n` valid bytes at `p`.
    Ok(unsafe { std::slice::from_raw_parts(p as *const u8, n as usize) })
}

#[inline]
fn put_pystr(out: &mut Vec<u8>, o: &Bound<'_, PyAny>) -> Result<(), ()> {
    put_str(out, str_bytes(o)?)
}

fn put_pyvalue(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Result<(), ()> {
    // the exact built-in types by address first (no call in the limited API)
    let t = v.get_type_ptr();
    let (s_t, i_t) = (&raw mut ffi::PyUnicode_Type, &raw mut ffi::PyLong_Type);
    if t == s_t {
        out.push(4);
        return put_str(out, str_bytes(v)?);
    }
    if t == i_t {
        out.push(2);
        put_i64(out, int64(v)?);
        return Ok(());
    }
    put_pyvalue_other(out, v)
}

/// Bools, floats, subclasses and sequences (kept out of the common path).
#[inline(never)]
fn put_pyvalue_other(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Result<(), ()> {
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        out.push(b.is_true() as u8);
    } else if v.is_instance_of::<pyo3::types::PyInt>() {
        out.push(2);
        put_i64(out, int64(v)?);
    } else if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
        out.push(3);
        out.extend_from_slice(&f.value().to_le_bytes());
    } else if v.is_instance_of::<PyString>() {
        out.push(4);
        put_str(out, str_bytes(v)?)?;
    } else {
        // sequences become their JSON text, as in the other readers
        put_value(out, &py_value(v).map_err(|_| ())?)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ decoder

/// Reads records back on the feed thread. `None` means a malformed batch,
/// which only a bug here can produce.
pub(crate) struct Decoder<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Decoder { b, at: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.b.len()
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.at..self.at + N)?;
        self.at += N;
        s.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        std::str::from_utf8(s).ok()
    }

    fn attrs(&mut self, w: &Wanted) -> Option<Attrs> {
        let n = self.u32()? as usize;
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let k = w.keys.get(self.u32()? as usize)?.clone();
            let v = match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                2 => Value::Int(self.i64()?),
                3 => Value::Float(f64::from_le_bytes(self.take()?)),
                4 => Value::Str(Arc::from(self.str()?)),
                _ => return None,
            };
            out.push((k, v));
        }
        Some(out)
    }

    /// The next record as a `RawSpan`.
    pub(crate) fn span(&mut self, resources: &[Arc<Attrs>], w: &Wanted) -> Option<RawSpan> {
        let resource = resources.get(self.u32()? as usize)?.clone();
        let flags = self.u8()?;
        let start = self.i64()?;
        let end = if flags & F_END != 0 {
            Some(self.i64()?)
        } else {
            None
        };
        let trace_id = u128::from_le_bytes(self.take()?);
        let span_id = self.u64()?;
        let parent = if flags & F_PARENT != 0 {
            Some(self.u64()?)
        } else {
            None
        };
        let kind = *SPAN_KINDS.get(self.u8()? as usize)?;
        let status = *STATUS_CODES.get(self.u8()? as usize)?;
        let name = self.str()?.to_string();
        let status_msg = if flags & F_STATUS_MSG != 0 {
            Some(self.str()?.to_string())
        } else {
            None
        };
        let scope = if flags & F_SCOPE != 0 {
            Some(self.str()?.to_string())
        } else {
            None
        };
        let attrs = self.attrs(w)?;
        let n = self.u32()? as usize;
        let mut events: Vec<SpanEvent> = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let t = self.i64()?;
            let en = self.str()?.to_string();
            events.push((t, en, self.attrs(w)?));
        }
        Some(RawSpan {
            name,
            start,
            end,
            trace_id,
            span_id,
            parent,
            kind: if w.kind { kind } else { "" },
            status,
            status_msg,
            scope,
            resource,
            attrs,
            events,
        })
    }
}
