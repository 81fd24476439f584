//! SpecLive guards: complex-event processing over OpenTelemetry traces.
//!
//! A guard (see `docs/guards.md`) describes a *violation*: a temporal pattern
//! over the events of one partition key (by default one trace). The pipeline
//! is
//!
//! * [`parse`]: guard text → [`parse::GuardAst`] (errors carry `line:col`
//!   and a caret line);
//! * [`compile`]: AST → [`compile::Compiled`], a linear NFA in the style of
//!   Flink CEP (stages with bounded counters `{lo,hi}`, negations guarding a
//!   stage, an optional leading counting window and an optional trailing
//!   absence with deadline), with a BLAKE3 digest of its canonical form;
//! * [`run`]: the streaming matcher: a reorder buffer driven by event-time
//!   watermarks (bounded out-of-orderness, late events counted and
//!   reported), per-key run sets with dominance merging, event-time timers
//!   for absences, and eviction of keys on which no run can complete;
//! * [`otlp`]: OTLP/JSON (the Collector's file exporter) and OTLP protobuf
//!   (`ExportTraceServiceRequest`/`TracesData`) into [`EventSet`]s.

pub mod compile;
pub mod otlp;
pub mod parse;
pub mod run;

use std::path::PathBuf;
use std::sync::Arc;

pub use compile::{compile, compile_source, Compiled};
pub use parse::{parse, GuardAst};
pub use run::{LateEvent, Matcher, MatcherOptions, Violation, ViolationKind};

/// Largest accepted timestamp (ns since the Unix epoch): 2^62 ns is about
/// the year 2116. The margin below `i64::MAX` keeps `t + window` exact.
pub const MAX_TIME: i64 = 1 << 62;

/// Errors of the guard engine.
#[derive(Debug, thiserror::Error)]
pub enum CepError {
    /// A syntax or validation error in guard source, with its position.
    #[error("{origin}:{line}:{col}: {msg}\n  {text}\n  {caret}")]
    Syntax {
        origin: String,
        line: usize,
        col: usize,
        msg: String,
        text: String,
        caret: String,
    },
    /// A guard given as an AST (builder API) is not valid.
    #[error("guard {guard:?}: {msg}")]
    Invalid { guard: String, msg: String },
    /// Malformed OTLP input; `path` is the JSON path (or protobuf field path).
    #[error("{origin}:{line}: {path}: {msg}")]
    Otlp {
        origin: String,
        line: usize,
        path: String,
        msg: String,
    },
    /// An attribute value whose type is not an OTLP `AnyValue` kind.
    #[error("{origin}:{line}: {path}: unknown attribute value type {kind:?} (expected stringValue, intValue, doubleValue, boolValue, bytesValue, arrayValue or kvlistValue)")]
    UnknownAttributeType {
        origin: String,
        line: usize,
        path: String,
        kind: String,
    },
    /// A timestamp outside `0..=MAX_TIME` ns.
    #[error("{what}: timestamp {value} ns is out of range (0 ..= 2^62 ns, about year 2116)")]
    TimeOutOfRange { what: String, value: String },
    /// A clock went backwards where it must not (span end before start).
    #[error("{what}: clock is not monotonic: {detail}")]
    NonMonotonic { what: String, detail: String },
    /// The watermark was asked to move backwards.
    #[error("watermark cannot move backwards (current {current} ns, requested {requested} ns)")]
    WatermarkRegression { current: i64, requested: i64 },
    /// The matcher was finished; it accepts no more input.
    #[error("matcher is finished: it accepts no more events or watermarks")]
    Finished,
    /// A malformed argument (array lengths, unknown codes, column types).
    #[error("{0}")]
    Input(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An attribute value (the scalar kinds of OTLP `AnyValue`; arrays and
/// key-value lists are kept as their compact JSON text, bytes as base64).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Arc<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    /// The value as it appears in JSON (bundles, reports).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::Bool(b) => serde_json::Value::Bool(*b),
        }
    }
}

/// One event: a span (at its start time) or a span event, or a row of a
/// columnar batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, ns since the Unix epoch.
    pub time: i64,
    pub name: Arc<str>,
    /// Attributes (span, resource and pseudo-attributes such as `trace_id`).
    pub attrs: Vec<(Arc<str>, Value)>,
}

impl Event {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        if key == "name" {
            return None;
        }
        self.attrs.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }
}

/// Events read from a trace file, in file order.
#[derive(Debug, Clone, Default)]
pub struct EventSet {
    pub events: Vec<Event>,
    /// Where they came from (file name), for messages.
    pub origin: String,
}

/// Check a timestamp against `0..=MAX_TIME`.
pub fn check_time(what: impl FnOnce() -> String, t: i128) -> Result<i64, CepError> {
    if t < 0 || t > MAX_TIME as i128 {
        return Err(CepError::TimeOutOfRange {
            what: what(),
            value: t.to_string(),
        });
    }
    Ok(t as i64)
}
