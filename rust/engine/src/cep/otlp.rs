//! OpenTelemetry traces into events.
//!
//! * **OTLP/JSON** as the Collector's `file` exporter writes it: one
//!   `TracesData` object per line (`resourceSpans` → `scopeSpans` (or the
//!   old `instrumentationLibrarySpans`) → `spans`), trace and span ids as
//!   hex strings, enums as integers, 64-bit integers as decimal strings.
//!   A single pretty-printed document is read too. Errors name the line
//!   and the JSON path (`$.resourceSpans[0].scopeSpans[0].spans[3].name`).
//! * **OTLP protobuf**: one `TracesData` or `ExportTraceServiceRequest`
//!   (same wire layout), decoded with `prost` from the hand-written messages
//!   below (field numbers of `opentelemetry/proto/trace/v1/trace.proto` and
//!   `common/v1/common.proto`).
//! * **Records**: `{"time": ns, "name": str, "attributes": {...}}` objects
//!   (violation bundles).
//!
//! Each span becomes one event at its start time, named after the span,
//! with the resource's, the span's and these pseudo-attributes:
//! `trace_id`, `span_id`, `parent_span_id` (not on roots), `span.kind`
//! (`internal`, `server`, ...), `status.code` (`unset`, `ok`, `error`),
//! `status.message`, `duration_ns`, `event.kind` = `span`. Each span event
//! becomes an event at its own time with the same attributes plus its own,
//! `span.name`, and `event.kind` = `span_event`. Events are in file order,
//! each span before its events.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value as J;

use super::{check_time, CepError, Event, EventSet, Value};

type R<T> = Result<T, CepError>;

struct Ctx<'a> {
    origin: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn err(&self, path: &str, msg: impl Into<String>) -> CepError {
        CepError::Otlp {
            origin: self.origin.to_string(),
            line: self.line,
            path: path.to_string(),
            msg: msg.into(),
        }
    }
}

/// A span event: time, name, attributes.
type SpanEventIn = (i64, String, Vec<(Arc<str>, Value)>);

struct SpanIn {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i64,
    start: i64,
    end: i64,
    attrs: Vec<(Arc<str>, Value)>,
    events: Vec<SpanEventIn>,
    status_code: i64,
    status_msg: String,
}

/// Attribute keys and common values, allocated once.
struct Keys {
    scope: Arc<str>,
    trace_id: Arc<str>,
    span_id: Arc<str>,
    parent: Arc<str>,
    span_kind: Arc<str>,
    status_code: Arc<str>,
    status_msg: Arc<str>,
    duration: Arc<str>,
    event_kind: Arc<str>,
    span_name: Arc<str>,
    span: Arc<str>,
    span_event: Arc<str>,
    kinds: Vec<Arc<str>>,
    status: Vec<Arc<str>>,
}

fn keys() -> &'static Keys {
    static K: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    K.get_or_init(|| Keys {
        scope: Arc::from("scope.name"),
        trace_id: Arc::from("trace_id"),
        span_id: Arc::from("span_id"),
        parent: Arc::from("parent_span_id"),
        span_kind: Arc::from("span.kind"),
        status_code: Arc::from("status.code"),
        status_msg: Arc::from("status.message"),
        duration: Arc::from("duration_ns"),
        event_kind: Arc::from("event.kind"),
        span_name: Arc::from("span.name"),
        span: Arc::from("span"),
        span_event: Arc::from("span_event"),
        kinds: KINDS.iter().map(|x| Arc::from(*x)).collect(),
        status: STATUS.iter().map(|x| Arc::from(*x)).collect(),
    })
}

const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
const STATUS: [&str; 3] = ["unset", "ok", "error"];

fn emit(
    cx: &Ctx<'_>,
    s: SpanIn,
    resource: &[(Arc<str>, Value)],
    scope: Option<&str>,
    path: &dyn Fn() -> String,
    out: &mut Vec<Event>,
) -> R<()> {
    if s.end != 0 && s.end < s.start {
        return Err(CepError::NonMonotonic {
            what: format!("{}:{}: {}", cx.origin, cx.line, path()),
            detail: format!(
                "span {:?} ends ({} ns) before it starts ({} ns)",
                s.name, s.end, s.start
            ),
        });
    }
    let k = keys();
    let mut base: Vec<(Arc<str>, Value)> = Vec::with_capacity(resource.len() + s.attrs.len() + 10);
    base.extend_from_slice(resource);
    fn set(base: &mut Vec<(Arc<str>, Value)>, k: &Arc<str>, v: Value) {
        if let Some(x) = base.iter_mut().find(|(kk, _)| **kk == **k) {
            x.1 = v;
        } else {
            base.push((k.clone(), v));
        }
    }
    for (key, v) in s.attrs {
        set(&mut base, &key, v);
    }
    if let Some(sc) = scope {
        set(&mut base, &k.scope, Value::Str(Arc::from(sc)));
    }
    set(
        &mut base,
        &k.trace_id,
        Value::Str(Arc::from(s.trace_id.as_str())),
    );
    set(
        &mut base,
        &k.span_id,
        Value::Str(Arc::from(s.span_id.as_str())),
    );
    if !s.parent.is_empty() {
        set(
            &mut base,
            &k.parent,
            Value::Str(Arc::from(s.parent.as_str())),
        );
    }
    let kind = k
        .kinds
        .get(s.kind as usize)
        .filter(|_| s.kind >= 0)
        .ok_or_else(|| {
            cx.err(
                &format!("{}.kind", path()),
                format!("unknown span kind {}", s.kind),
            )
        })?;
    set(&mut base, &k.span_kind, Value::Str(kind.clone()));
    let st = k
        .status
        .get(s.status_code as usize)
        .filter(|_| s.status_code >= 0)
        .ok_or_else(|| {
            cx.err(
                &format!("{}.status.code", path()),
                format!("unknown status code {}", s.status_code),
            )
        })?;
    set(&mut base, &k.status_code, Value::Str(st.clone()));
    if !s.status_msg.is_empty() {
        set(
            &mut base,
            &k.status_msg,
            Value::Str(Arc::from(s.status_msg.as_str())),
        );
    }
    let dur = if s.end == 0 { 0 } else { s.end - s.start };
    set(&mut base, &k.duration, Value::Int(dur));
    let name: Arc<str> = Arc::from(s.name.as_str());
    set(&mut base, &k.event_kind, Value::Str(k.span.clone()));
    if s.events.is_empty() {
        out.push(Event {
            time: s.start,
            name,
            attrs: base,
        });
        return Ok(());
    }
    out.push(Event {
        time: s.start,
        name: name.clone(),
        attrs: base.clone(),
    });
    for (t, en, ea) in s.events {
        let mut a = base.clone();
        set(&mut a, &k.span_name, Value::Str(name.clone()));
        for (key, v) in ea {
            set(&mut a, &key, v);
        }
        set(&mut a, &k.event_kind, Value::Str(k.span_event.clone()));
        out.push(Event {
            time: t,
            name: Arc::from(en.as_str()),
            attrs: a,
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ JSON

/// A JSON path built on the stack and rendered only for error messages.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Idx(usize),
}

#[derive(Clone, Copy)]
struct P<'a> {
    parent: Option<&'a P<'a>>,
    seg: Seg<'a>,
}

impl<'a> P<'a> {
    const ROOT: P<'static> = P {
        parent: None,
        seg: Seg::Root,
    };
    fn k(&'a self, k: &'a str) -> P<'a> {
        P {
            parent: Some(self),
            seg: Seg::Key(k),
        }
    }
    fn i(&'a self, i: usize) -> P<'a> {
        P {
            parent: Some(self),
            seg: Seg::Idx(i),
        }
    }
    fn s(&self) -> String {
        let mut out = match self.parent {
            Some(p) => p.s(),
            None => String::new(),
        };
        match self.seg {
            Seg::Root => out.push('$'),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Idx(i) => out.push_str(&format!("[{i}]")),
        }
        out
    }
}

type Map = serde_json::Map<String, J>;

fn obj<'a>(cx: &Ctx<'_>, v: &'a J, path: &P<'_>) -> R<&'a Map> {
    v.as_object().ok_or_else(|| {
        cx.err(
            &path.s(),
            format!("expected an object, found {}", kind_of(v)),
        )
    })
}

fn kind_of(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

fn arr<'a>(cx: &Ctx<'_>, m: &'a Map, k: &str, path: &P<'_>) -> R<&'a [J]> {
    match m.get(k) {
        None | Some(J::Null) => Ok(&[]),
        Some(J::Array(a)) => Ok(a),
        Some(v) => Err(cx.err(
            &path.k(k).s(),
            format!("expected an array, found {}", kind_of(v)),
        )),
    }
}

fn str_ref<'a>(cx: &Ctx<'_>, m: &'a Map, k: &str, path: &P<'_>) -> R<&'a str> {
    match m.get(k) {
        None | Some(J::Null) => Ok(""),
        Some(J::String(s)) => Ok(s),
        Some(v) => Err(cx.err(
            &path.k(k).s(),
            format!("expected a string, found {}", kind_of(v)),
        )),
    }
}

fn string(cx: &Ctx<'_>, m: &Map, k: &str, path: &P<'_>) -> R<String> {
    str_ref(cx, m, k, path).map(str::to_string)
}

/// A 64-bit integer: OTLP/JSON writes them as decimal strings; numbers are
/// accepted too.
fn int64(cx: &Ctx<'_>, v: &J, path: &P<'_>) -> R<i128> {
    match v {
        J::String(s) => s
            .parse::<i128>()
            .ok()
            .filter(|x| *x >= i64::MIN as i128 && *x <= u64::MAX as i128)
            .ok_or_else(|| {
                cx.err(
                    &path.s(),
                    format!("expected a 64-bit integer as a decimal string, found {s:?}"),
                )
            }),
        J::Number(n) => n
            .as_i64()
            .map(|x| x as i128)
            .or_else(|| n.as_u64().map(|x| x as i128))
            .ok_or_else(|| cx.err(&path.s(), format!("expected an integer, found {n}"))),
        _ => Err(cx.err(
            &path.s(),
            format!("expected a 64-bit integer, found {}", kind_of(v)),
        )),
    }
}

fn time(cx: &Ctx<'_>, m: &Map, k: &str, path: &P<'_>, required: bool) -> R<i64> {
    let p = path.k(k);
    match m.get(k) {
        None | Some(J::Null) if !required => Ok(0),
        None | Some(J::Null) => Err(cx.err(&p.s(), "missing")),
        Some(v) => {
            let t = int64(cx, v, &p)?;
            check_time(|| format!("{}:{}: {}", cx.origin, cx.line, p.s()), t)
        }
    }
}

fn hex_id(cx: &Ctx<'_>, m: &Map, k: &str, path: &P<'_>, len: usize, required: bool) -> R<String> {
    let s = str_ref(cx, m, k, path)?;
    if s.is_empty() && !required {
        return Ok(String::new());
    }
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(cx.err(
            &path.k(k).s(),
            format!("expected {len} hex digits, found {s:?} (OTLP/JSON ids are hex, not base64)"),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

fn any_value(cx: &Ctx<'_>, v: &J, path: &P<'_>) -> R<Option<Value>> {
    let m = obj(cx, v, path)?;
    if m.is_empty() {
        return Ok(None);
    }
    if m.len() > 1 {
        return Err(cx.err(&path.s(), "an AnyValue has exactly one field"));
    }
    let Some((k, x)) = m.iter().next() else {
        return Ok(None);
    };
    let p = path.k(k);
    Ok(Some(match k.as_str() {
        "stringValue" => Value::Str(Arc::from(x.as_str().ok_or_else(|| {
            cx.err(&p.s(), format!("expected a string, found {}", kind_of(x)))
        })?)),
        "boolValue" => {
            Value::Bool(x.as_bool().ok_or_else(|| {
                cx.err(&p.s(), format!("expected a boolean, found {}", kind_of(x)))
            })?)
        }
        "intValue" => {
            let i = int64(cx, x, &p)?;
            Value::Int(
                i64::try_from(i).map_err(|_| {
                    cx.err(&p.s(), format!("{i} does not fit a signed 64-bit integer"))
                })?,
            )
        }
        "doubleValue" => Value::Float(match x {
            J::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            J::String(s) if s == "NaN" => f64::NAN,
            J::String(s) if s == "Infinity" => f64::INFINITY,
            J::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
            _ => return Err(cx.err(&p.s(), format!("expected a number, found {}", kind_of(x)))),
        }),
        "bytesValue" => {
            let s = x
                .as_str()
                .ok_or_else(|| cx.err(&p.s(), "expected base64 text"))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| cx.err(&p.s(), format!("invalid base64: {e}")))?;
            Value::Str(Arc::from(s))
        }
        "arrayValue" | "kvlistValue" => Value::Str(Arc::from(plain(cx, v, path)?.to_string())),
        other => {
            return Err(CepError::UnknownAttributeType {
                origin: cx.origin.to_string(),
                line: cx.line,
                path: path.s(),
                kind: other.to_string(),
            })
        }
    }))
}

/// An AnyValue as plain JSON (arrays and kvlists kept as text).
fn plain(cx: &Ctx<'_>, v: &J, path: &P<'_>) -> R<J> {
    let m = obj(cx, v, path)?;
    if let Some(a) = m.get("arrayValue") {
        let p = path.k("arrayValue");
        let am = obj(cx, a, &p)?;
        let vals = arr(cx, am, "values", &p)?;
        let pv = p.k("values");
        let mut out = Vec::new();
        for (i, x) in vals.iter().enumerate() {
            out.push(plain(cx, x, &pv.i(i))?);
        }
        return Ok(J::Array(out));
    }
    if let Some(a) = m.get("kvlistValue") {
        let p = path.k("kvlistValue");
        let am = obj(cx, a, &p)?;
        let vals = arr(cx, am, "values", &p)?;
        let pv = p.k("values");
        let mut out = serde_json::Map::new();
        for (i, kv) in vals.iter().enumerate() {
            let pp = pv.i(i);
            let km = obj(cx, kv, &pp)?;
            let key = string(cx, km, "key", &pp)?;
            let val = match km.get("value") {
                Some(x) => plain(cx, x, &pp.k("value"))?,
                None => J::Null,
            };
            out.insert(key, val);
        }
        return Ok(J::Object(out));
    }
    Ok(match any_value(cx, v, path)? {
        Some(x) => x.to_json(),
        None => J::Null,
    })
}

fn attributes(cx: &Ctx<'_>, m: &Map, path: &P<'_>) -> R<Vec<(Arc<str>, Value)>> {
    let list = arr(cx, m, "attributes", path)?;
    let mut out = Vec::with_capacity(list.len());
    let pa = path.k("attributes");
    for (i, kv) in list.iter().enumerate() {
        let p = pa.i(i);
        let km = obj(cx, kv, &p)?;
        let key = match km.get("key") {
            Some(J::String(s)) => s,
            _ => return Err(cx.err(&p.k("key").s(), "missing attribute key")),
        };
        let Some(v) = km.get("value") else {
            continue;
        };
        if let Some(v) = any_value(cx, v, &p.k("value"))? {
            out.push((Arc::from(key.as_str()), v));
        }
    }
    Ok(out)
}

fn enum_int(cx: &Ctx<'_>, m: &Map, k: &str, path: &P<'_>) -> R<i64> {
    match m.get(k) {
        None | Some(J::Null) => Ok(0),
        Some(J::Number(n)) => n.as_i64().ok_or_else(|| {
            cx.err(
                &path.k(k).s(),
                format!("expected an integer enum, found {n}"),
            )
        }),
        Some(v) => Err(cx.err(
            &path.k(k).s(),
            format!(
                "expected an integer enum (OTLP/JSON writes enums as integers), found {}",
                kind_of(v)
            ),
        )),
    }
}

fn traces_json(cx: &Ctx<'_>, doc: &J, out: &mut Vec<Event>) -> R<()> {
    let root_p = P::ROOT;
    let root = obj(cx, doc, &root_p)?;
    if !root.contains_key("resourceSpans") {
        return Err(cx.err("$", "expected a TracesData object with \"resourceSpans\""));
    }
    let prs = root_p.k("resourceSpans");
    for (ri, rs) in arr(cx, root, "resourceSpans", &root_p)?.iter().enumerate() {
        let rp = prs.i(ri);
        let rsm = obj(cx, rs, &rp)?;
        let resource = match rsm.get("resource") {
            Some(r) => {
                let pr = rp.k("resource");
                attributes(cx, obj(cx, r, &pr)?, &pr)?
            }
            None => Vec::new(),
        };
        let sk = if rsm.contains_key("scopeSpans") {
            "scopeSpans"
        } else {
            "instrumentationLibrarySpans"
        };
        let scopes = arr(cx, rsm, sk, &rp)?;
        let psk = rp.k(sk);
        for (si, ss) in scopes.iter().enumerate() {
            let sp = psk.i(si);
            let ssm = obj(cx, ss, &sp)?;
            let scope = match ssm
                .get("scope")
                .or_else(|| ssm.get("instrumentationLibrary"))
            {
                Some(s) => {
                    let ps = sp.k("scope");
                    Some(string(cx, obj(cx, s, &ps)?, "name", &ps)?)
                }
                None => None,
            };
            let pspans = sp.k("spans");
            for (i, span) in arr(cx, ssm, "spans", &sp)?.iter().enumerate() {
                let p = pspans.i(i);
                let m = obj(cx, span, &p)?;
                let name = match m.get("name") {
                    Some(J::String(s)) => s.clone(),
                    Some(v) => {
                        return Err(cx.err(
                            &p.k("name").s(),
                            format!("expected a string, found {}", kind_of(v)),
                        ))
                    }
                    None => return Err(cx.err(&p.k("name").s(), "missing")),
                };
                let evs = arr(cx, m, "events", &p)?;
                let mut events = Vec::with_capacity(evs.len());
                let pe = p.k("events");
                for (ei, e) in evs.iter().enumerate() {
                    let ep = pe.i(ei);
                    let em = obj(cx, e, &ep)?;
                    events.push((
                        time(cx, em, "timeUnixNano", &ep, true)?,
                        string(cx, em, "name", &ep)?,
                        attributes(cx, em, &ep)?,
                    ));
                }
                let (code, msg) = match m.get("status") {
                    Some(s) => {
                        let stp = p.k("status");
                        let sm = obj(cx, s, &stp)?;
                        (
                            enum_int(cx, sm, "code", &stp)?,
                            string(cx, sm, "message", &stp)?,
                        )
                    }
                    None => (0, String::new()),
                };
                let s = SpanIn {
                    trace_id: hex_id(cx, m, "traceId", &p, 32, true)?,
                    span_id: hex_id(cx, m, "spanId", &p, 16, true)?,
                    parent: hex_id(cx, m, "parentSpanId", &p, 16, false)?,
                    kind: enum_int(cx, m, "kind", &p)?,
                    start: time(cx, m, "startTimeUnixNano", &p, true)?,
                    end: time(cx, m, "endTimeUnixNano", &p, false)?,
                    attrs: attributes(cx, m, &p)?,
                    events,
                    status_code: code,
                    status_msg: msg,
                    name,
                };
                emit(cx, s, &resource, scope.as_deref(), &|| p.s(), out)?;
            }
        }
    }
    Ok(())
}

/// Parse OTLP/JSON text (JSON lines or one document).
pub fn from_json(origin: &str, text: &str) -> R<EventSet> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<J>();
    // line numbers are counted incrementally (each document once)
    let (mut counted_to, mut line) = (0usize, 1usize);
    loop {
        let at = stream.byte_offset();
        let next = stream.next();
        let rest = text.get(at..).unwrap_or("");
        let start = at + (rest.len() - rest.trim_start().len());
        if start >= counted_to {
            line += text
                .get(counted_to..start)
                .map(|x| x.bytes().filter(|&b| b == b'\n').count())
                .unwrap_or(0);
            counted_to = start;
        }
        match next {
            None => break,
            Some(Ok(doc)) => traces_json(&Ctx { origin, line }, &doc, &mut out)?,
            Some(Err(e)) => {
                return Err(CepError::Otlp {
                    origin: origin.to_string(),
                    line: e.line(),
                    path: "$".into(),
                    msg: format!("invalid JSON: {e}"),
                })
            }
        }
    }
    Ok(EventSet {
        events: out,
        origin: origin.to_string(),
    })
}

fn read(path: &Path) -> R<Vec<u8>> {
    let io = |source| CepError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Refuse FIFOs, sockets and devices before opening: opening a FIFO
    // with no writer blocks forever.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    std::fs::read(path).map_err(io)
}

/// Read a trace file: `.pb`/`.binpb`/`.proto` as protobuf, else OTLP/JSON.
pub fn read_file(path: &Path) -> R<EventSet> {
    let origin = path.display().to_string();
    let bytes = read(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if matches!(ext, "pb" | "binpb" | "protobuf") {
        return from_protobuf(&origin, &bytes);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| CepError::Otlp {
        origin: origin.clone(),
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        path: "$".into(),
        msg: "file is not UTF-8 text (protobuf files need a .pb extension)".into(),
    })?;
    from_json(&origin, text)
}

// ------------------------------------------------------------------ records

/// Events as `{"time", "name", "attributes"}` records (bundles).
pub fn from_records(origin: &str, text: &str) -> R<EventSet> {
    let cx = Ctx { origin, line: 1 };
    let doc: J = serde_json::from_str(text).map_err(|e| CepError::Otlp {
        origin: origin.into(),
        line: e.line(),
        path: "$".into(),
        msg: format!("invalid JSON: {e}"),
    })?;
    let list = doc
        .as_array()
        .ok_or_else(|| cx.err("$", "expected an array of event records"))?;
    let mut out = Vec::with_capacity(list.len());
    let root = P::ROOT;
    for (i, r) in list.iter().enumerate() {
        let p = root.i(i);
        let m = obj(&cx, r, &p)?;
        let t = time(&cx, m, "time", &p, true)?;
        let name = match m.get("name") {
            Some(J::String(s)) => s.clone(),
            _ => return Err(cx.err(&p.k("name").s(), "expected a string")),
        };
        let mut attrs = Vec::new();
        if let Some(a) = m.get("attributes") {
            let ap = p.k("attributes");
            for (k, v) in obj(&cx, a, &ap)? {
                let vp = ap.k(k).s();
                let val = match v {
                    J::String(s) => Value::Str(Arc::from(s.as_str())),
                    J::Bool(b) => Value::Bool(*b),
                    J::Number(n) => match n.as_i64() {
                        Some(x) if !n.to_string().contains(['.', 'e', 'E']) => Value::Int(x),
                        _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    other => {
                        return Err(CepError::UnknownAttributeType {
                            origin: origin.into(),
                            line: 1,
                            path: vp,
                            kind: kind_of(other).into(),
                        })
                    }
                };
                attrs.push((Arc::from(k.as_str()), val));
            }
        }
        out.push(Event {
            time: t,
            name: Arc::from(name.as_str()),
            attrs,
        });
    }
    Ok(EventSet {
        events: out,
        origin: origin.into(),
    })
}

/// Events as records (the inverse of [`from_records`]).
pub fn to_records(events: &[Event]) -> J {
    J::Array(
        events
            .iter()
            .map(|e| {
                let mut a = serde_json::Map::new();
                for (k, v) in &e.attrs {
                    a.insert(k.to_string(), v.to_json());
                }
                serde_json::json!({"time": e.time, "name": &*e.name, "attributes": a})
            })
            .collect(),
    )
}

// ------------------------------------------------------------------ protobuf

/// OTLP protobuf messages (the fields this reader uses; unknown fields
/// are skipped by prost).
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TracesData {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<SpanEvent>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SpanEvent {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }
    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

fn pb_plain(v: &pb::AnyValue) -> J {
    use pb::any_value::Value as V;
    match &v.value {
        None => J::Null,
        Some(V::StringValue(s)) => J::String(s.clone()),
        Some(V::BoolValue(b)) => J::Bool(*b),
        Some(V::IntValue(i)) => J::from(*i),
        Some(V::DoubleValue(f)) => Value::Float(*f).to_json(),
        Some(V::BytesValue(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(V::ArrayValue(a)) => J::Array(a.values.iter().map(pb_plain).collect()),
        Some(V::KvlistValue(l)) => J::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map(pb_plain).unwrap_or(J::Null),
                    )
                })
                .collect(),
        ),
    }
}

fn pb_attrs(kvs: &[pb::KeyValue]) -> Vec<(Arc<str>, Value)> {
    use pb::any_value::Value as V;
    let mut out = Vec::new();
    for kv in kvs {
        let Some(v) = kv.value.as_ref() else { continue };
        let val = match &v.value {
            None => continue,
            Some(V::StringValue(s)) => Value::Str(Arc::from(s.as_str())),
            Some(V::BoolValue(b)) => Value::Bool(*b),
            Some(V::IntValue(i)) => Value::Int(*i),
            Some(V::DoubleValue(f)) => Value::Float(*f),
            Some(V::BytesValue(_)) => match pb_plain(v) {
                J::String(s) => Value::Str(Arc::from(s.as_str())),
                _ => continue,
            },
            Some(V::ArrayValue(_) | V::KvlistValue(_)) => {
                Value::Str(Arc::from(pb_plain(v).to_string()))
            }
        };
        out.push((Arc::from(kv.key.as_str()), val));
    }
    out
}

fn pb_id(
    cx: &Ctx<'_>,
    b: &[u8],
    len: usize,
    path: &dyn Fn() -> String,
    required: bool,
) -> R<String> {
    if b.is_empty() && !required {
        return Ok(String::new());
    }
    if b.len() != len {
        return Err(cx.err(&path(), format!("expected {len} bytes, found {}", b.len())));
    }
    Ok(hex::encode(b))
}

/// Decode an OTLP protobuf `TracesData` / `ExportTraceServiceRequest`.
pub fn from_protobuf(origin: &str, bytes: &[u8]) -> R<EventSet> {
    use prost::Message as _;
    let cx = Ctx { origin, line: 1 };
    let doc = pb::TracesData::decode(bytes)
        .map_err(|e| cx.err("TracesData", format!("invalid protobuf: {e}")))?;
    let mut out = Vec::new();
    for (ri, rs) in doc.resource_spans.iter().enumerate() {
        let rp = || format!("resource_spans[{ri}]");
        let resource = rs
            .resource
            .as_ref()
            .map(|r| pb_attrs(&r.attributes))
            .unwrap_or_default();
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            let sp = || format!("{}.scope_spans[{si}]", rp());
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .filter(|s| !s.is_empty());
            for (i, s) in ss.spans.iter().enumerate() {
                let p = || format!("{}.spans[{i}]", sp());
                let t = |what: &str, v: u64| {
                    check_time(|| format!("{origin}: {}.{what}", p()), v as i128)
                };
                let mut events = Vec::new();
                for (ei, e) in s.events.iter().enumerate() {
                    events.push((
                        check_time(
                            || format!("{origin}: {}.events[{ei}].time_unix_nano", p()),
                            e.time_unix_nano as i128,
                        )?,
                        e.name.clone(),
                        pb_attrs(&e.attributes),
                    ));
                }
                let st = s.status.clone().unwrap_or_default();
                let sin = SpanIn {
                    trace_id: pb_id(&cx, &s.trace_id, 16, &|| format!("{}.trace_id", p()), true)?,
                    span_id: pb_id(&cx, &s.span_id, 8, &|| format!("{}.span_id", p()), true)?,
                    parent: pb_id(
                        &cx,
                        &s.parent_span_id,
                        8,
                        &|| format!("{}.parent_span_id", p()),
                        false,
                    )?,
                    name: s.name.clone(),
                    kind: s.kind as i64,
                    start: t("start_time_unix_nano", s.start_time_unix_nano)?,
                    end: t("end_time_unix_nano", s.end_time_unix_nano)?,
                    attrs: pb_attrs(&s.attributes),
                    events,
                    status_code: st.code as i64,
                    status_msg: st.message,
                };
                emit(&cx, sin, &resource, scope.as_deref(), &p, &mut out)?;
            }
        }
    }
    Ok(EventSet {
        events: out,
        origin: origin.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"save","kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":"5000","attributes":[{"key":"n","value":{"intValue":"7"}}],"events":[{"timeUnixNano":"2000","name":"retry","attributes":[]}],"status":{"code":2}}]}]}]}"#;

    #[test]
    fn reads_collector_line() {
        let es = from_json("f", &format!("{LINE}\n{LINE}\n")).unwrap();
        assert_eq!(es.events.len(), 4);
        let e = &es.events[0];
        assert_eq!(&*e.name, "save");
        assert_eq!(e.attr("n"), Some(&Value::Int(7)));
        assert_eq!(
            e.attr("trace_id"),
            Some(&Value::Str(Arc::from("5b8efff798038103d269b633813fc60c")))
        );
        assert_eq!(e.attr("status.code"), Some(&Value::Str(Arc::from("error"))));
        assert_eq!(e.attr("duration_ns"), Some(&Value::Int(4000)));
        assert_eq!(es.events[1].time, 2000);
    }

    #[test]
    fn errors_name_path_and_line() {
        let bad = LINE.replace(
            r#""startTimeUnixNano":"1000""#,
            r#""startTimeUnixNano":"x""#,
        );
        let e = from_json("f", &format!("{LINE}\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f:2: $.resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"),
            "{e}"
        );
        let bad = LINE.replace(r#"{"intValue":"7"}"#, r#"{"fooValue":"7"}"#);
        let e = from_json("f", &bad).unwrap_err();
        assert!(matches!(e, CepError::UnknownAttributeType { .. }), "{e}");
        let bad = LINE.replace(r#""endTimeUnixNano":"5000""#, r#""endTimeUnixNano":"500""#);
        assert!(matches!(
            from_json("f", &bad).unwrap_err(),
            CepError::NonMonotonic { .. }
        ));
        let bad = LINE.replace(r#""1000""#, r#""18446744073709551615""#);
        assert!(matches!(
            from_json("f", &bad).unwrap_err(),
            CepError::TimeOutOfRange { .. }
        ));
    }

    #[test]
    fn protobuf_roundtrip() {
        use prost::Message as _;
        let d = pb::TracesData {
            resource_spans: vec![pb::ResourceSpans {
                resource: None,
                scope_spans: vec![pb::ScopeSpans {
                    scope: None,
                    spans: vec![pb::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "save".into(),
                        kind: 1,
                        start_time_unix_nano: 10,
                        end_time_unix_nano: 20,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let es = from_protobuf("p", &d.encode_to_vec()).unwrap();
        assert_eq!(es.events.len(), 1);
        assert_eq!(
            es.events[0].attr("span.kind"),
            Some(&Value::Str(Arc::from("internal")))
        );
        assert!(from_protobuf("p", &[0xff, 0xff]).is_err());
    }
}
