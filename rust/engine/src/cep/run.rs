//! The streaming matcher: event time, watermarks, per-key NFA runs.
//!
//! * **Reorder buffer.** Events are accepted in any order. The watermark
//!   `W` says that no event older than `W` will still come: it rises to
//!   `t - lateness` after each event (bounded out-of-orderness) and with
//!   [`Matcher::advance_watermark`]. An event with `t < W` on arrival is
//!   *late*: it is not matched, but counted and reported
//!   ([`Matcher::drain_late`]). Buffered events with `t <= W` are matched in
//!   `(time, arrival)` order, so the verdicts do not depend on the order or
//!   batching of the input, only on which events were late.
//! * **Runs.** Per guard alternative and key, a run is `(stage, count,
//!   start, entry)`. Runs in the same NFA state are merged, keeping the
//!   latest start (it dominates: same future, later window end); runs that
//!   wait on an absence are kept per entry time (each has its own deadline).
//!   So a key holds at most `states x pending deadlines` runs.
//! * **Timers.** Absence deadlines, window expiries and counting-window
//!   expiries sit in one min-heap keyed by event time, fired when the
//!   watermark passes them (one live timer per key).
//! * **Eviction.** A key whose runs are all gone (completed, killed or
//!   expired) is removed; keys of anchored patterns (leading negation) keep
//!   a tombstone (their one run from the start of the key is used up).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use regex::Regex;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::compile::{Compiled, SeqIr};
use super::parse::{Contiguity, Lit, MatcherAst, Op};
use super::{check_time, CepError, Event, Value, MAX_TIME};

const NONE: i64 = i64::MIN;
/// Events buffered before a forced match pass inside one large feed.
const CHUNK: usize = 1 << 16;

/// Matcher settings.
#[derive(Debug, Clone)]
pub struct MatcherOptions {
    /// Bounded out-of-orderness: after each event the watermark rises to
    /// `t - lateness`. `None`: only [`Matcher::advance_watermark`] moves it.
    pub lateness_ns: Option<i64>,
    /// How many late events are kept for [`Matcher::drain_late`] (all are
    /// counted).
    pub max_late_kept: usize,
    /// Threads stepping independent guards at once: `0` uses rayon's
    /// global pool (one thread per core), `1` runs on the calling thread.
    /// The violations and their order do not depend on it.
    pub threads: usize,
}

impl Default for MatcherOptions {
    fn default() -> Self {
        MatcherOptions {
            lateness_ns: Some(0),
            max_late_kept: 100_000,
            threads: 0,
        }
    }
}

/// Largest accepted [`MatcherOptions::threads`].
pub const MAX_THREADS: usize = 256;

/// The partition key of a violation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyLabel {
    Int(i64),
    Str(Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// The pattern completed at an event.
    Match,
    /// A trailing `no m within d` expired.
    Deadline,
}

/// One violation of one guard on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Violation {
    /// When it became final: the completing event's time, or the deadline.
    pub time: i64,
    /// Arrival index of the completing event (`None` for deadlines).
    pub seq: Option<u64>,
    pub guard: usize,
    pub key: KeyLabel,
    pub kind: ViolationKind,
    /// Alternative (`|`) of the guard's pattern that matched.
    pub alternative: usize,
    /// First event of the matching run (time, arrival index), if any.
    pub start_time: Option<i64>,
    pub start_seq: Option<u64>,
}

/// An event refused because it arrived behind the watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent {
    pub seq: u64,
    pub time: i64,
    pub watermark: i64,
    pub name: Arc<str>,
}

/// Counters of a matcher.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub events: u64,
    pub late: u64,
    pub matched_events: u64,
    pub unkeyed: u64,
    pub live_keys: u64,
    pub live_runs: u64,
    pub buffered: u64,
    pub violations: u64,
    pub evicted_keys: u64,
    pub watermark: i64,
}

enum Admit {
    /// Late, or no guard reacts to it.
    Skip,
    Now,
    Buffer,
}

#[derive(Debug)]
struct Pending {
    time: i64,
    seq: u64,
    name: u32,
    key: Option<i64>,
    attrs: Vec<(u32, Value)>,
    /// Hash and label of each distinct `per` attribute of the guards,
    /// computed once per event instead of once per guard.
    keys: Vec<(u32, u64, Arc<str>)>,
}

/// A buffered event's attributes with its precomputed partition keys.
struct PAttrs<'a> {
    attrs: &'a [(u32, Value)],
    keys: &'a [(u32, u64, Arc<str>)],
}

impl Attrs for PAttrs<'_> {
    #[inline]
    fn get(&self, id: u32) -> Option<VRef<'_>> {
        Attrs::get(self.attrs, id)
    }
    fn key(&self, id: u32) -> Option<(u64, Arc<str>)> {
        match self.keys.iter().find(|(k, _, _)| *k == id) {
            Some((_, h, l)) => Some((*h, l.clone())),
            None => self.attrs.key(id),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    stage: u32,
    count: u32,
    start: i64,
    start_seq: u64,
    entry: i64,
}

#[derive(Debug, Default)]
struct KeyState {
    runs: SmallVec<[Run; 2]>,
    /// Last `at_least` (time, seq) of the counted matcher.
    window: VecDeque<(i64, u64)>,
    label: Option<Arc<str>>,
    /// Earliest event time at which `expire` would change something
    /// (`next_check`, kept exact by every step; `i64::MAX`: never).
    timer: i64,
    /// Time of this key's live entry in the timer heap (`i64::MAX`: none).
    /// Entries at other times are stale and skipped. When `timer` has
    /// moved later than the entry, the entry re-arms at `timer` when it
    /// fires, so steps never push to the heap for a later deadline.
    heap_at: i64,
}

struct Unit {
    /// Matchers this alternative reacts to.
    rel: u64,
    /// Matchers that start a run (stage conditions reachable from the
    /// start; 0 for counting and anchored patterns, which start otherwise).
    seed: u64,
    keys: FxHashMap<u64, KeyState>,
    timers: BinaryHeap<Reverse<(i64, u64)>>,
}

#[derive(Clone)]
enum PKey {
    Name,
    Attr(u32),
}

#[derive(Clone)]
enum EOp {
    Eq(Lit),
    Ne(Lit),
    Lt(Lit),
    Le(Lit),
    Gt(Lit),
    Ge(Lit),
    In(Vec<Lit>),
    Re(Regex),
    Exists,
}

#[derive(Clone)]
struct EPred {
    key: PKey,
    op: EOp,
    negated: bool,
    /// Index of this predicate among the matcher's distinct predicates
    /// (equal predicates of different guards share it): its outcome is
    /// resolved once per event for all guards, per chunk of a columnar
    /// batch.
    id: usize,
}

/// A distinct predicate of the matcher (without negation).
struct PredDef {
    src: (Option<u32>, Op),
    key: PKey,
    op: EOp,
}

impl PredDef {
    fn key_col<'c, 'd>(
        &self,
        col_of: &impl Fn(u32) -> Option<&'c Column<'d>>,
    ) -> Option<&'c Column<'d>> {
        match self.key {
            PKey::Attr(id) => col_of(id),
            PKey::Name => None,
        }
    }
}

enum EM {
    Any,
    Name(u32),
    Or(Vec<EM>),
    Where(Box<EM>, Vec<EPred>),
}

/// One conjunction of an attribute matcher in disjunctive normal form:
/// the event name passes `name_ok` (its base matcher and predicates on
/// the name, tabled per name id) and the resolved attribute predicates
/// under `need` have the outcomes in `val` (bits of the per-event mask).
struct Term {
    name: Option<u32>,
    name_preds: Vec<EPred>,
    name_ok: Vec<bool>,
    need: u64,
    val: u64,
}

/// `m` as terms, or `None` when some attribute predicate has no bit.
fn dnf(m: &EM, bit_of: &[Option<u8>]) -> Option<Vec<Term>> {
    Some(match m {
        EM::Any => vec![Term {
            name: None,
            name_preds: Vec::new(),
            name_ok: Vec::new(),
            need: 0,
            val: 0,
        }],
        EM::Name(n) => vec![Term {
            name: Some(*n),
            name_preds: Vec::new(),
            name_ok: Vec::new(),
            need: 0,
            val: 0,
        }],
        EM::Or(v) => {
            let mut out = Vec::new();
            for x in v {
                out.extend(dnf(x, bit_of)?);
            }
            out
        }
        EM::Where(b, ps) => {
            let mut out = Vec::new();
            'terms: for mut t in dnf(b, bit_of)? {
                for p in ps {
                    match p.key {
                        PKey::Name => t.name_preds.push(p.clone()),
                        PKey::Attr(_) => {
                            let b = 1u64 << (*bit_of.get(p.id)?)?;
                            let want = if p.negated { 0 } else { b };
                            if t.need & b != 0 && t.val & b != want {
                                continue 'terms; // contradiction: never holds
                            }
                            t.need |= b;
                            t.val |= want;
                        }
                    }
                }
                out.push(t);
            }
            out
        }
    })
}

struct GuardRt {
    /// Per matcher: its terms (attribute matchers only; empty for the
    /// others), used when the event carries a resolved predicate mask.
    terms: Vec<Vec<Term>>,
    /// Every attribute matcher has terms.
    has_terms: bool,
    c: Compiled,
    ms: Vec<EM>,
    /// Bits of matchers that depend on the name only, per name id.
    name_bits: Vec<u64>,
    /// Bits of attribute matchers that may hold for a name id.
    maybe: Vec<u64>,
    attr_dep: u64,
    relevant: u64,
    strict: bool,
    per: u32,
    units: Vec<Unit>,
}

#[derive(Default)]
struct Interner {
    map: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let a: Arc<str> = Arc::from(s);
        let i = self.names.len() as u32;
        self.map.insert(a.clone(), i);
        self.names.push(a);
        i
    }
}

/// The streaming guard matcher (see the module docs).
pub struct Matcher {
    guards: Vec<GuardRt>,
    names: Interner,
    attrs: Interner,
    opts: MatcherOptions,
    wm: i64,
    seq: u64,
    /// The reorder buffer: `buf[buf_head..]` waits to be matched (the
    /// matched front is dropped in bulk, not moved on every pump).
    buf: Vec<Pending>,
    buf_head: usize,
    /// `buf[buf_head..buf_sorted]` is in `(time, seq)` order (checked on
    /// push, so a pump sorts only what arrived out of order since the last
    /// one and merges it in, instead of resorting the whole buffer).
    buf_sorted: usize,
    out: Vec<Violation>,
    late: Vec<LateEvent>,
    stats: Stats,
    finished: bool,
    /// Per name id: some guard may react to an event of this name (events
    /// no guard reacts to are counted for lateness, then dropped).
    care: Vec<bool>,
    empty_name: Arc<str>,
    /// The distinct predicates of all guards (`EPred::id` indexes them).
    defs: Vec<PredDef>,
    /// Per predicate: its bit in the per-event predicate mask.
    bit_of: Vec<Option<u8>>,
    /// The distinct `per` attributes of the guards.
    pers: Vec<u32>,
    /// A private pool when `MatcherOptions::threads` asks for one.
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// A borrowed attribute value.
#[derive(Clone, Copy)]
enum VRef<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl<'a> From<&'a Value> for VRef<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Str(s) => VRef::Str(s),
            Value::Int(i) => VRef::Int(*i),
            Value::Float(f) => VRef::Float(*f),
            Value::Bool(b) => VRef::Bool(*b),
        }
    }
}

/// Where an event's attributes live: a list of pairs (buffered events,
/// OTLP) or a row of numpy columns (matched in place, nothing copied).
trait Attrs {
    fn get(&self, id: u32) -> Option<VRef<'_>>;
    /// The outcome (before negation) of predicate `pred` when it was
    /// resolved for the whole batch.
    #[inline]
    fn resolved(&self, _pred: usize) -> Option<bool> {
        None
    }
    /// Hash and label of a string-keyed partition attribute.
    fn key(&self, id: u32) -> Option<(u64, Arc<str>)>;
    /// The outcomes of every attribute predicate that has a bit, when
    /// they were resolved for the whole batch.
    #[inline]
    fn pred_mask(&self) -> Option<u64> {
        None
    }
}

impl Attrs for [(u32, Value)] {
    #[inline]
    fn get(&self, id: u32) -> Option<VRef<'_>> {
        self.iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| VRef::from(v))
    }
    fn key(&self, id: u32) -> Option<(u64, Arc<str>)> {
        self.iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| (key_hash(VRef::from(v)), label_of(v)))
    }
}

/// One row of the attribute columns of a batch.
struct Row<'a> {
    cols: &'a [(u32, &'a Column<'a>)],
    row: usize,
    /// Per predicate id: its outcome on the rows `off..` of the current
    /// chunk (resolved once for all guards).
    res: &'a [Option<Vec<bool>>],
    off: usize,
    /// Per row of the chunk: the predicate outcomes as bits (empty when
    /// the predicates do not fit in 64 bits).
    pm: &'a [u64],
}

impl Attrs for Row<'_> {
    #[inline]
    fn pred_mask(&self) -> Option<u64> {
        self.pm.get(self.row.wrapping_sub(self.off)).copied()
    }
    #[inline]
    fn resolved(&self, pred: usize) -> Option<bool> {
        self.res
            .get(pred)?
            .as_ref()?
            .get(self.row.wrapping_sub(self.off))
            .copied()
    }
    #[inline]
    fn get(&self, id: u32) -> Option<VRef<'_>> {
        let (_, c) = self.cols.iter().find(|(k, _)| *k == id)?;
        c.get(self.row)
    }
    fn key(&self, id: u32) -> Option<(u64, Arc<str>)> {
        let v = self.get(id)?;
        let lab: Arc<str> = match v {
            VRef::Str(s) => Arc::from(s),
            VRef::Int(i) => Arc::from(i.to_string()),
            VRef::Float(f) => Arc::from(f.to_string()),
            VRef::Bool(b) => Arc::from(b.to_string()),
        };
        Some((key_hash(v), lab))
    }
}

fn cmp_num(a: VRef<'_>, b: &Lit) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (VRef::Int(x), Lit::Int(y)) => Some(x.cmp(y)),
        (VRef::Int(x), Lit::Float(y)) => (x as f64).partial_cmp(y),
        (VRef::Float(x), Lit::Int(y)) => x.partial_cmp(&(*y as f64)),
        (VRef::Float(x), Lit::Float(y)) => x.partial_cmp(y),
        (VRef::Str(x), Lit::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

fn eq_lit(a: VRef<'_>, b: &Lit) -> bool {
    match (a, b) {
        (VRef::Bool(x), Lit::Bool(y)) => x == *y,
        _ => cmp_num(a, b) == Some(std::cmp::Ordering::Equal),
    }
}

impl EPred {
    fn eval<A: Attrs + ?Sized>(&self, name: &str, attrs: &A) -> bool {
        if let Some(r) = attrs.resolved(self.id) {
            return r != self.negated;
        }
        self.holds(name, attrs) != self.negated
    }

    /// The predicate without its negation.
    fn holds<A: Attrs + ?Sized>(&self, name: &str, attrs: &A) -> bool {
        let v = match self.key {
            PKey::Name => Some(VRef::Str(name)),
            PKey::Attr(id) => attrs.get(id),
        };
        self.op.holds(v)
    }
}

impl EOp {
    /// The operator on a value (`None`: the attribute is missing).
    #[inline]
    fn holds(&self, v: Option<VRef<'_>>) -> bool {
        use std::cmp::Ordering::*;
        match v {
            None => false,
            Some(v) => match self {
                EOp::Exists => true,
                EOp::Eq(l) => eq_lit(v, l),
                EOp::Ne(l) => !eq_lit(v, l),
                EOp::Lt(l) => cmp_num(v, l) == Some(Less),
                EOp::Le(l) => matches!(cmp_num(v, l), Some(Less | Equal)),
                EOp::Gt(l) => cmp_num(v, l) == Some(Greater),
                EOp::Ge(l) => matches!(cmp_num(v, l), Some(Greater | Equal)),
                EOp::In(ls) => ls.iter().any(|l| eq_lit(v, l)),
                EOp::Re(re) => matches!(v, VRef::Str(s) if re.is_match(s)),
            },
        }
    }

    /// The operator over rows `lo..hi` of a column, appended to `out`
    /// (the common integer comparisons as plain loops the compiler
    /// vectorises; string columns through a table over the vocabulary).
    fn resolve(
        &self,
        col: Option<&Column<'_>>,
        voc_table: Option<&[bool]>,
        lo: usize,
        hi: usize,
        out: &mut Vec<bool>,
    ) {
        let Some(col) = col else {
            out.resize(out.len() + (hi - lo), false);
            return;
        };
        match (col, self) {
            (Column::I64(v), EOp::Gt(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x > y)),
            (Column::I64(v), EOp::Ge(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x >= y)),
            (Column::I64(v), EOp::Lt(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x < y)),
            (Column::I64(v), EOp::Le(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x <= y)),
            (Column::I64(v), EOp::Eq(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x == y)),
            (Column::I64(v), EOp::Ne(Lit::Int(y))) => out.extend(v[lo..hi].iter().map(|x| x != y)),
            (Column::I64(_) | Column::Bool(_), EOp::Exists) => {
                out.resize(out.len() + (hi - lo), true)
            }
            (Column::Codes(v, _), _) => {
                let tab = voc_table.unwrap_or(&[]);
                out.extend(
                    v[lo..hi]
                        .iter()
                        .map(|&c| c >= 0 && tab.get(c as usize).copied().unwrap_or(false)),
                )
            }
            _ => out.extend((lo..hi).map(|i| self.holds(col.get(i)))),
        }
    }
}

impl EM {
    fn eval<A: Attrs + ?Sized>(&self, nid: u32, name: &str, attrs: &A) -> bool {
        match self {
            EM::Any => true,
            EM::Name(n) => *n == nid,
            EM::Or(v) => v.iter().any(|m| m.eval(nid, name, attrs)),
            EM::Where(b, ps) => b.eval(nid, name, attrs) && ps.iter().all(|p| p.eval(name, attrs)),
        }
    }
    fn name_only(&self) -> bool {
        match self {
            EM::Any | EM::Name(_) => true,
            EM::Or(v) => v.iter().all(EM::name_only),
            // predicates on the event name only are decided per name
            EM::Where(b, ps) => b.name_only() && ps.iter().all(|p| matches!(p.key, PKey::Name)),
        }
    }
    /// Relaxation: predicates taken as true.
    fn maybe(&self, nid: u32) -> bool {
        match self {
            EM::Any => true,
            EM::Name(n) => *n == nid,
            EM::Or(v) => v.iter().any(|m| m.maybe(nid)),
            EM::Where(b, _) => b.maybe(nid),
        }
    }
}

fn build_em(
    m: &MatcherAst,
    names: &mut Interner,
    attrs: &mut Interner,
    defs: &mut Vec<PredDef>,
) -> Result<EM, CepError> {
    Ok(match m {
        MatcherAst::Any => EM::Any,
        MatcherAst::Name { name } => EM::Name(names.id(name)),
        MatcherAst::Or { any } => EM::Or(
            any.iter()
                .map(|x| build_em(x, names, attrs, defs))
                .collect::<Result<_, _>>()?,
        ),
        MatcherAst::Where { base, preds } => {
            let b = build_em(base, names, attrs, defs)?;
            let mut ps = Vec::new();
            for p in preds {
                let key = if p.key == "name" {
                    PKey::Name
                } else {
                    PKey::Attr(attrs.id(&p.key))
                };
                let op = match &p.op {
                    Op::Eq(l) => EOp::Eq(l.clone()),
                    Op::Ne(l) => EOp::Ne(l.clone()),
                    Op::Lt(l) => EOp::Lt(l.clone()),
                    Op::Le(l) => EOp::Le(l.clone()),
                    Op::Gt(l) => EOp::Gt(l.clone()),
                    Op::Ge(l) => EOp::Ge(l.clone()),
                    Op::In(v) => EOp::In(v.clone()),
                    Op::Regex(r) => EOp::Re(
                        Regex::new(r).map_err(|e| CepError::Input(format!("regex {r:?}: {e}")))?,
                    ),
                    Op::Exists => EOp::Exists,
                };
                let src = (
                    match key {
                        PKey::Name => None,
                        PKey::Attr(a) => Some(a),
                    },
                    p.op.clone(),
                );
                let id = match defs.iter().position(|d| d.src == src) {
                    Some(i) => i,
                    None => {
                        defs.push(PredDef {
                            src,
                            key: key.clone(),
                            op: op.clone(),
                        });
                        defs.len() - 1
                    }
                };
                ps.push(EPred {
                    key,
                    op,
                    negated: p.negated,
                    id,
                });
            }
            EM::Where(Box::new(b), ps)
        }
    })
}

/// The fixed keys of the key hash (recorded in bundles as the seed).
pub const KEY_HASH_KEYS: (u64, u64) = (0x6d61_6573_7472_6f00, 0x6365_7000_0000_0001);

/// Hash of a key value (SipHash-2-4 with fixed keys: deterministic across
/// runs; two distinct keys collide with probability about 2^-64).
fn key_hash(v: VRef<'_>) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(KEY_HASH_KEYS.0, KEY_HASH_KEYS.1);
    match v {
        VRef::Str(s) => {
            0u8.hash(&mut h);
            s.hash(&mut h);
        }
        VRef::Int(i) => {
            1u8.hash(&mut h);
            i.hash(&mut h);
        }
        VRef::Float(f) => {
            2u8.hash(&mut h);
            f.to_bits().hash(&mut h);
        }
        VRef::Bool(b) => {
            3u8.hash(&mut h);
            b.hash(&mut h);
        }
    }
    h.finish()
}

fn label_of(v: &Value) -> Arc<str> {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => Arc::from(i.to_string()),
        Value::Float(f) => Arc::from(f.to_string()),
        Value::Bool(b) => Arc::from(b.to_string()),
    }
}

/// A numeric attribute column of a columnar batch.
pub enum Column<'a> {
    I64(&'a [i64]),
    F64(&'a [f64]),
    Bool(&'a [bool]),
    /// String codes into a vocabulary (negative: missing).
    Codes(&'a [i64], &'a [String]),
}

impl Column<'_> {
    #[inline]
    fn get(&self, i: usize) -> Option<VRef<'_>> {
        match self {
            Column::I64(v) => v.get(i).map(|x| VRef::Int(*x)),
            Column::F64(v) => v.get(i).filter(|x| !x.is_nan()).map(|x| VRef::Float(*x)),
            Column::Bool(v) => v.get(i).map(|x| VRef::Bool(*x)),
            Column::Codes(v, voc) => v
                .get(i)
                .filter(|&&x| x >= 0)
                .and_then(|&x| voc.get(x as usize))
                .map(|s| VRef::Str(s.as_str())),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::I64(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Codes(v, _) => v.len(),
        }
    }
}

struct StepCtx<'a> {
    seq: &'a SeqIr,
    cont: Contiguity,
    t: i64,
    ev_seq: u64,
    bits: u64,
    guard: usize,
    alt: usize,
}

#[inline]
fn abscap(s: &SeqIr, r: &Run) -> bool {
    s.absence.is_some() && s.accepting(r.stage, r.count)
}

/// Merge `r` into `runs` (same state, and same entry when waiting on an
/// absence): the latest start dominates. Not so when the alternative has a
/// window *and* an absence under strict or skip-till-next: there an
/// expired run cannot consume, so it keeps waiting on the absence while a
/// later-starting twin moves on; such runs are merged only with the same
/// start (`SeqIr::exact_merge`).
#[inline]
fn push_run(s: &SeqIr, runs: &mut SmallVec<[Run; 2]>, r: Run) {
    let cap = abscap(s, &r);
    for x in runs.iter_mut() {
        if x.stage == r.stage
            && x.count == r.count
            && (!cap || x.entry == r.entry)
            && (!s.exact_merge || x.start == r.start)
        {
            if (r.start, r.start_seq) > (x.start, x.start_seq) {
                *x = r;
            }
            return;
        }
    }
    runs.push(r);
}

fn opt(t: i64) -> Option<i64> {
    (t != NONE).then_some(t)
}

impl Unit {
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn violation(
        out: &mut Vec<Violation>,
        cx_guard: usize,
        alt: usize,
        key: (u64, &Option<Arc<str>>),
        kind: ViolationKind,
        time: i64,
        seq: Option<u64>,
        r: &Run,
    ) {
        let key = match key.1 {
            Some(s) => KeyLabel::Str(s.clone()),
            None => KeyLabel::Int(key.0 as i64),
        };
        out.push(Violation {
            time,
            seq,
            guard: cx_guard,
            key,
            kind,
            alternative: alt,
            start_time: opt(r.start),
            start_seq: (r.start != NONE).then_some(r.start_seq),
        });
    }
}

/// Fire deadlines `< bound` (`<=` when `inclusive`, at finish) and drop
/// runs and window entries that can no longer matter for events at or
/// after `bound`.
fn expire(
    s: &SeqIr,
    ks: &mut KeyState,
    key: u64,
    bound: i64,
    out: &mut Vec<Violation>,
    guard: usize,
    alt: usize,
) {
    let mut i = 0;
    while i < ks.runs.len() {
        let r = ks.runs[i];
        if abscap(s, &r) {
            let d = s.absence.as_ref().map(|a| a.deadline_ns).unwrap_or(0);
            let t = r.entry.saturating_add(d);
            if t < bound {
                Unit::violation(
                    out,
                    guard,
                    alt,
                    (key, &ks.label),
                    ViolationKind::Deadline,
                    t,
                    None,
                    &r,
                );
                ks.runs.remove(i);
                continue;
            }
        } else if let Some(w) = s.within_ns {
            if r.start != NONE && r.start.saturating_add(w) < bound {
                ks.runs.remove(i);
                continue;
            }
        }
        i += 1;
    }
    if let Some(c) = &s.count {
        while ks
            .window
            .front()
            .is_some_and(|&(t, _)| t.saturating_add(c.window_ns) < bound)
        {
            ks.window.pop_front();
        }
    }
}

/// Earliest event time at which `expire` would change something.
#[inline]
fn next_check(s: &SeqIr, ks: &KeyState) -> i64 {
    let mut m = i64::MAX;
    for r in &ks.runs {
        if abscap(s, r) {
            let d = s.absence.as_ref().map(|a| a.deadline_ns).unwrap_or(0);
            m = m.min(r.entry.saturating_add(d));
        } else if let (Some(w), true) = (s.within_ns, r.start != NONE) {
            m = m.min(r.start.saturating_add(w));
        }
    }
    if let (Some(c), Some(&(t, _))) = (&s.count, ks.window.front()) {
        m = m.min(t.saturating_add(c.window_ns));
    }
    m
}

#[inline]
fn evictable(s: &SeqIr, ks: &KeyState) -> bool {
    ks.runs.is_empty() && ks.window.is_empty() && !s.anchored
}

impl Unit {
    /// Step the runs of one key over one event.
    fn step(
        &mut self,
        cx: &StepCtx<'_>,
        key: u64,
        lab: Option<&Arc<str>>,
        out: &mut Vec<Violation>,
        stats: &mut Stats,
    ) {
        let s = cx.seq;
        let unit_rel = self.rel;
        // One hash lookup per step: the entry is kept to insert or evict.
        #[allow(clippy::incompatible_msrv)]
        let mut slot = match self.keys.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o,
            std::collections::hash_map::Entry::Vacant(v) => {
                if cx.bits & unit_rel == 0 {
                    return;
                }
                let mut k = KeyState {
                    timer: i64::MAX,
                    heap_at: i64::MAX,
                    label: lab.cloned(),
                    ..KeyState::default()
                };
                if s.anchored {
                    k.runs.push(Run {
                        stage: 0,
                        count: 0,
                        start: NONE,
                        start_seq: 0,
                        entry: NONE,
                    });
                }
                v.insert_entry(k)
            }
        };
        let ks = slot.get_mut();
        let t = cx.t;
        // Nothing running and nothing to start: only the eviction below
        // could change (`expire` and `next_check` have nothing to see).
        if ks.runs.is_empty() && s.count.is_none() && cx.bits & self.seed == 0 {
            stats.matched_events += 1;
            if evictable(s, ks) && ks.heap_at == i64::MAX {
                slot.remove();
                stats.evicted_keys += 1;
            }
            return;
        }
        // `ks.timer` is the earliest time `expire` would act at (set by
        // every step and firing), so below it this is a no-op.
        if t > ks.timer {
            expire(s, ks, key, t, out, cx.guard, cx.alt);
        }
        let lab = ks.label.clone();
        let n = s.n();
        let old: SmallVec<[Run; 2]> = std::mem::take(&mut ks.runs);
        let mut new: SmallVec<[Run; 2]> = SmallVec::new();
        let has = |b: u8| cx.bits & (1u64 << b) != 0;
        let mut emit = |target: (u32, u32), parent: &Run, new: &mut SmallVec<[Run; 2]>| {
            let (start, start_seq) = if parent.start == NONE {
                (t, cx.ev_seq)
            } else {
                (parent.start, parent.start_seq)
            };
            let r = Run {
                stage: target.0,
                count: target.1,
                start,
                start_seq,
                entry: t,
            };
            if s.accepting(r.stage, r.count) && s.absence.is_none() {
                Unit::violation(
                    out,
                    cx.guard,
                    cx.alt,
                    (key, &lab),
                    ViolationKind::Match,
                    t,
                    Some(cx.ev_seq),
                    &r,
                );
            } else {
                push_run(s, new, r);
            }
        };
        for r in old.iter() {
            let cap = abscap(s, r);
            let expired = s
                .within_ns
                .is_some_and(|w| r.start != NONE && t - r.start > w);
            if expired && !cap {
                continue;
            }
            if cap {
                if let Some(a) = &s.absence {
                    if has(a.cond) {
                        continue;
                    }
                }
            }
            if r.stage < n && cx.bits & s.stages[r.stage as usize].neg != 0 {
                continue;
            }
            let mut consumed = false;
            if !expired && r.stage < n {
                let st = &s.stages[r.stage as usize];
                if has(st.cond) {
                    consumed = true;
                    emit(s.advance(r.stage, r.count), r, &mut new);
                }
                if r.count >= st.lo {
                    for &j in &s.tail[r.stage as usize + 1] {
                        if has(s.stages[j as usize].cond) {
                            consumed = true;
                            emit(s.advance(j, 0), r, &mut new);
                        }
                    }
                }
            }
            let keep = match cx.cont {
                Contiguity::Strict => !consumed && (r.start == NONE || cap),
                Contiguity::SkipTillNext => !consumed,
                Contiguity::SkipTillAny => true,
            };
            if keep {
                push_run(s, &mut new, *r);
            }
        }
        let seed = Run {
            stage: 0,
            count: 0,
            start: NONE,
            start_seq: 0,
            entry: NONE,
        };
        if let Some(c) = &s.count {
            if has(c.cond) {
                ks.window.push_back((t, cx.ev_seq));
                while ks.window.len() > c.at_least as usize {
                    ks.window.pop_front();
                }
                if let Some(&(t0, s0)) = ks.window.front() {
                    if ks.window.len() >= c.at_least as usize && t - t0 <= c.window_ns {
                        let r = Run {
                            stage: 0,
                            count: 0,
                            start: t0,
                            start_seq: s0,
                            entry: t,
                        };
                        if s.accepting(0, 0) && s.absence.is_none() {
                            Unit::violation(
                                out,
                                cx.guard,
                                cx.alt,
                                (key, &lab),
                                ViolationKind::Match,
                                t,
                                Some(cx.ev_seq),
                                &r,
                            );
                        } else {
                            push_run(s, &mut new, r);
                        }
                    }
                }
            }
        } else if !s.anchored {
            for &j in &s.tail[0] {
                if has(s.stages[j as usize].cond) {
                    emit(s.advance(j, 0), &seed, &mut new);
                }
            }
        }
        ks.runs = new;
        stats.matched_events += 1;
        // A key with a timer still pending is left to that timer (it
        // evicts it if it is still empty): a busy key then keeps its state
        // slot and its one heap entry instead of churning both.
        if evictable(s, ks) && ks.heap_at == i64::MAX {
            slot.remove();
            stats.evicted_keys += 1;
            return;
        }
        let nc = next_check(s, ks);
        ks.timer = nc;
        if nc < ks.heap_at {
            ks.heap_at = nc;
            self.timers.push(Reverse((nc, key)));
        }
    }

    /// Fire timers below the watermark.
    fn advance(
        &mut self,
        s: &SeqIr,
        wm: i64,
        out: &mut Vec<Violation>,
        guard: usize,
        alt: usize,
        stats: &mut Stats,
    ) {
        while let Some(&Reverse((t, key))) = self.timers.peek() {
            if t >= wm {
                break;
            }
            self.timers.pop();
            let Some(ks) = self.keys.get_mut(&key) else {
                continue;
            };
            if ks.heap_at != t {
                continue; // stale: a lower entry was pushed since
            }
            ks.heap_at = i64::MAX;
            if ks.timer >= wm {
                // Its deadline moved later since the entry was pushed:
                // re-arm there (or evict a key with nothing left).
                if ks.timer != i64::MAX {
                    ks.heap_at = ks.timer;
                    self.timers.push(Reverse((ks.timer, key)));
                } else if evictable(s, ks) {
                    self.keys.remove(&key);
                    stats.evicted_keys += 1;
                }
                continue;
            }
            expire(s, ks, key, wm, out, guard, alt);
            if evictable(s, ks) {
                self.keys.remove(&key);
                stats.evicted_keys += 1;
                continue;
            }
            let nc = next_check(s, ks);
            ks.timer = nc;
            if nc != i64::MAX {
                ks.heap_at = nc;
                self.timers.push(Reverse((nc, key)));
            }
        }
    }

    /// End of input: every deadline fires.
    fn finish(&mut self, s: &SeqIr, out: &mut Vec<Violation>, guard: usize, alt: usize) {
        let mut keys: Vec<u64> = self.keys.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(ks) = self.keys.get_mut(&k) {
                expire(s, ks, k, i64::MAX, out, guard, alt);
                // A deadline exactly at i64::MAX cannot exist (times are
                // at most 2^62 and windows below 2^62).
            }
        }
        self.keys.clear();
        self.timers.clear();
    }
}

/// Below this many (event, guard) steps a batch is stepped on the calling
/// thread (a rayon fork costs a few microseconds).
const PAR_MIN_WORK: usize = 1 << 14;

/// Run `f` on every guard: in parallel (one rayon task per guard) when
/// `par`, with each guard's violations and counters collected apart and
/// then appended in guard order, so `out` holds the same violations in the
/// same order for any thread count.
fn for_each_guard<F>(
    guards: &mut [GuardRt],
    pool: Option<&rayon::ThreadPool>,
    threads: usize,
    par: bool,
    out: &mut Vec<Violation>,
    stats: &mut Stats,
    f: F,
) where
    F: Fn(usize, &mut GuardRt, &mut Vec<Violation>, &mut Stats) + Sync + Send,
{
    if !par || threads == 1 || (pool.is_none() && rayon::current_num_threads() < 2) {
        for (gi, g) in guards.iter_mut().enumerate() {
            f(gi, g, out, stats);
        }
        return;
    }
    use rayon::prelude::*;
    let mut work = move || -> Vec<(Vec<Violation>, Stats)> {
        guards
            .par_iter_mut()
            .enumerate()
            .map(|(gi, g)| {
                let mut o = Vec::new();
                let mut s = Stats::default();
                f(gi, g, &mut o, &mut s);
                (o, s)
            })
            .collect()
    };
    let parts = match pool {
        Some(p) => p.install(work),
        None => work(),
    };
    for (o, s) in parts {
        out.extend(o);
        stats.matched_events += s.matched_events;
        stats.unkeyed += s.unkeyed;
        stats.evicted_keys += s.evicted_keys;
    }
}

/// Step one guard over one event.
#[allow(clippy::too_many_arguments)]
#[inline]
fn step_guard<A: Attrs + ?Sized>(
    g: &mut GuardRt,
    gi: usize,
    time: i64,
    seq: u64,
    name: u32,
    names: &[Arc<str>],
    pkey: Option<i64>,
    attrs: &A,
    out: &mut Vec<Violation>,
    stats: &mut Stats,
) {
    let nid = name as usize;
    let mut bits = g.name_bits.get(nid).copied().unwrap_or(0);
    let mut maybe = g.maybe.get(nid).copied().unwrap_or(0);
    match attrs.pred_mask() {
        Some(pm) if g.has_terms => {
            while maybe != 0 {
                let i = maybe.trailing_zeros();
                maybe &= maybe - 1;
                let hit = g.terms[i as usize]
                    .iter()
                    .any(|t| pm & t.need == t.val && t.name_ok.get(nid).copied().unwrap_or(false));
                if hit {
                    bits |= 1 << i;
                }
            }
        }
        _ => {
            // the name text is only read by attribute matchers' fallback
            let nm: &str = if maybe != 0 {
                names.get(nid).map_or("", |s| s)
            } else {
                ""
            };
            while maybe != 0 {
                let i = maybe.trailing_zeros();
                maybe &= maybe - 1;
                if g.ms[i as usize].eval(name, nm, attrs) {
                    bits |= 1 << i;
                }
            }
        }
    }
    if bits & g.relevant == 0 && !g.strict {
        return;
    }
    let (key, lab) = match pkey {
        Some(k) => (k as u64, None),
        None => match attrs.key(g.per) {
            Some((h, l)) => (h, Some(l)),
            None => {
                stats.unkeyed += 1;
                return;
            }
        },
    };
    for (ai, u) in g.units.iter_mut().enumerate() {
        let cx = StepCtx {
            seq: &g.c.seqs[ai],
            cont: g.c.contiguity,
            t: time,
            ev_seq: seq,
            bits,
            guard: gi,
            alt: ai,
        };
        u.step(&cx, key, lab.as_ref(), out, stats);
    }
}

impl Matcher {
    /// A matcher over compiled guards.
    pub fn new(guards: Vec<Compiled>, opts: MatcherOptions) -> Result<Matcher, CepError> {
        if let Some(l) = opts.lateness_ns {
            if !(0..MAX_TIME).contains(&l) {
                return Err(CepError::Input(format!(
                    "lateness {l} ns out of range (0 .. 2^62)"
                )));
            }
        }
        if opts.threads > MAX_THREADS {
            return Err(CepError::Input(format!(
                "threads {} out of range (0 .. {MAX_THREADS})",
                opts.threads
            )));
        }
        let pool = if opts.threads > 1 {
            Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(opts.threads)
                    .build()
                    .map_err(|e| CepError::Input(format!("thread pool: {e}")))?,
            ))
        } else {
            None
        };
        let mut names = Interner::default();
        let mut attrs = Interner::default();
        let mut gs = Vec::new();
        let mut defs = Vec::new();
        for c in guards {
            let ms = c
                .matchers
                .iter()
                .map(|m| build_em(m, &mut names, &mut attrs, &mut defs))
                .collect::<Result<Vec<_>, _>>()?;
            let mut attr_dep = 0u64;
            for (i, m) in ms.iter().enumerate() {
                if !m.name_only() {
                    attr_dep |= 1 << i;
                }
            }
            let per = attrs.id(&c.per);
            let units = c
                .seqs
                .iter()
                .map(|s| Unit {
                    rel: s.relevant(),
                    seed: if s.count.is_some() || s.anchored {
                        0
                    } else {
                        s.tail[0]
                            .iter()
                            .fold(0u64, |m, &j| m | 1u64 << s.stages[j as usize].cond)
                    },
                    keys: FxHashMap::default(),
                    timers: BinaryHeap::new(),
                })
                .collect();
            gs.push(GuardRt {
                terms: Vec::new(),
                has_terms: false,
                relevant: c.relevant(),
                strict: c.contiguity == Contiguity::Strict,
                c,
                ms,
                name_bits: Vec::new(),
                maybe: Vec::new(),
                attr_dep,
                per,
                units,
            });
        }
        // Bits of the per-event predicate mask: attribute predicates, while
        // they fit in 64.
        let mut nbits = 0u32;
        let bit_of: Vec<Option<u8>> = defs
            .iter()
            .map(|d| match d.key {
                PKey::Attr(_) if nbits < 64 => {
                    nbits += 1;
                    Some((nbits - 1) as u8)
                }
                _ => None,
            })
            .collect();
        for g in &mut gs {
            let mut terms = Vec::with_capacity(g.ms.len());
            let mut ok = true;
            for (i, m) in g.ms.iter().enumerate() {
                if g.attr_dep & (1 << i) == 0 {
                    terms.push(Vec::new());
                    continue;
                }
                match dnf(m, &bit_of) {
                    Some(t) => terms.push(t),
                    None => {
                        ok = false;
                        terms.push(Vec::new());
                    }
                }
            }
            g.terms = terms;
            g.has_terms = ok;
        }
        let mut pers: Vec<u32> = gs.iter().map(|g| g.per).collect();
        pers.sort_unstable();
        pers.dedup();
        let mut m = Matcher {
            pers,
            bit_of,
            guards: gs,
            names,
            attrs,
            opts,
            wm: NONE,
            seq: 0,
            buf: Vec::new(),
            buf_head: 0,
            buf_sorted: 0,
            out: Vec::new(),
            late: Vec::new(),
            stats: Stats::default(),
            finished: false,
            care: Vec::new(),
            empty_name: Arc::from(""),
            defs,
            pool,
        };
        m.refresh_tables();
        Ok(m)
    }

    fn refresh_tables(&mut self) {
        let n = self.names.names.len();
        for g in &mut self.guards {
            for nid in g.name_bits.len()..n {
                let (mut b, mut mb) = (0u64, 0u64);
                let name = self.names.names.get(nid).unwrap_or(&self.empty_name);
                for (i, m) in g.ms.iter().enumerate() {
                    if g.attr_dep & (1 << i) == 0 {
                        if m.eval(nid as u32, name, &[] as &[(u32, Value)]) {
                            b |= 1 << i;
                        }
                    } else if m.maybe(nid as u32) {
                        mb |= 1 << i;
                    }
                }
                g.name_bits.push(b);
                g.maybe.push(mb);
                for t in g.terms.iter_mut().flatten() {
                    let ok = t.name.map_or(true, |x| x as usize == nid)
                        && t.name_preds
                            .iter()
                            .all(|p| p.eval(name, &[] as &[(u32, Value)]));
                    t.name_ok.push(ok);
                }
            }
        }
        let any_strict = self
            .guards
            .iter()
            .any(|g| g.c.contiguity == Contiguity::Strict);
        self.care = (0..n)
            .map(|nid| {
                any_strict
                    || self
                        .guards
                        .iter()
                        .any(|g| (g.name_bits[nid] | g.maybe[nid]) & g.relevant != 0)
            })
            .collect();
    }

    /// The compiled guards, in order.
    pub fn guards(&self) -> impl Iterator<Item = &Compiled> {
        self.guards.iter().map(|g| &g.c)
    }

    pub fn watermark(&self) -> i64 {
        self.wm
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.live_keys = 0;
        s.live_runs = 0;
        for g in &self.guards {
            for u in &g.units {
                s.live_keys += u.keys.len() as u64;
                s.live_runs += u.keys.values().map(|k| k.runs.len() as u64).sum::<u64>();
            }
        }
        s.buffered = (self.buf.len() - self.buf_head) as u64;
        s.watermark = self.wm;
        s
    }

    fn check_open(&self) -> Result<(), CepError> {
        if self.finished {
            return Err(CepError::Finished);
        }
        Ok(())
    }

    /// Lateness check and watermark update for one arriving event.
    #[inline(always)]
    fn admit(&mut self, time: i64, seq: u64, name: u32) -> Admit {
        self.stats.events += 1;
        if time < self.wm {
            self.stats.late += 1;
            if self.late.len() < self.opts.max_late_kept {
                self.late.push(LateEvent {
                    seq,
                    time,
                    watermark: self.wm,
                    name: self
                        .names
                        .names
                        .get(name as usize)
                        .cloned()
                        .unwrap_or_else(|| Arc::from("")),
                });
            }
            return Admit::Skip;
        }
        if let Some(l) = self.opts.lateness_ns {
            self.wm = self.wm.max(time - l);
        }
        if !self.care.get(name as usize).copied().unwrap_or(true) {
            return Admit::Skip;
        }
        // No later on-time event can be older than the watermark, so an
        // event at or below it is matched at once when nothing waits
        // before it (in-order input never touches the buffer).
        if self.buf.len() == self.buf_head && time <= self.wm {
            Admit::Now
        } else {
            Admit::Buffer
        }
    }

    fn buffer(&mut self, p: Pending) {
        if self.buf.len() == self.buf_head {
            self.buf.clear();
            self.buf_head = 0;
            self.buf_sorted = 0;
        }
        let in_order = self
            .buf
            .last()
            .map_or(true, |l| (l.time, l.seq) <= (p.time, p.seq));
        if in_order && self.buf_sorted == self.buf.len() {
            self.buf_sorted += 1;
        }
        self.buf.push(p);
    }

    /// Put the waiting part of the reorder buffer in `(time, seq)` order:
    /// the tail that came since the last sort is sorted, then merged with
    /// the part of the sorted prefix it overlaps (out-of-orderness is
    /// bounded in practice, so that part is short).
    fn sort_buffer(&mut self) {
        let n = self.buf.len();
        if self.buf_sorted >= n {
            return;
        }
        let key = |p: &Pending| (p.time, p.seq);
        let k = self.buf_sorted.max(self.buf_head);
        self.buf[k..].sort_unstable_by_key(key);
        if k > self.buf_head && k < n {
            let first = key(&self.buf[k]);
            let from =
                self.buf_head + self.buf[self.buf_head..k].partition_point(|x| key(x) <= first);
            // two sorted runs: the stable sort merges them in linear time
            self.buf[from..].sort_by_key(key);
        }
        self.buf_sorted = n;
    }

    fn accept(&mut self, p: Pending) {
        match self.admit(p.time, p.seq, p.name) {
            Admit::Skip => {}
            Admit::Now => self.process(&p),
            Admit::Buffer => self.buffer(p),
        }
    }

    /// Feed events (OTLP or records); times are checked first, so a bad
    /// event leaves the matcher unchanged.
    pub fn feed_events(&mut self, events: &[Event]) -> Result<(), CepError> {
        self.check_open()?;
        for (i, e) in events.iter().enumerate() {
            check_time(|| format!("event {i} ({})", e.name), e.time as i128)?;
        }
        let before = self.names.names.len();
        for (i, e) in events.iter().enumerate() {
            let name = self.names.id(&e.name);
            if self.names.names.len() > self.care.len() {
                self.refresh_tables();
            }
            let attrs: Vec<(u32, Value)> = e
                .attrs
                .iter()
                .map(|(k, v)| (self.attrs.id(k), v.clone()))
                .collect();
            let keys = self
                .pers
                .iter()
                .filter_map(|&id| attrs[..].key(id).map(|(h, l)| (id, h, l)))
                .collect();
            let p = Pending {
                time: e.time,
                seq: self.seq,
                name,
                key: None,
                attrs,
                keys,
            };
            self.seq += 1;
            self.accept(p);
            if i % CHUNK == CHUNK - 1 {
                self.refresh_if(before);
                self.pump(false);
            }
        }
        self.refresh_if(before);
        self.pump(false);
        Ok(())
    }

    fn refresh_if(&mut self, before: usize) {
        if self.names.names.len() != before
            || self
                .guards
                .iter()
                .any(|g| g.name_bits.len() != self.names.names.len())
        {
            self.refresh_tables();
        }
    }

    /// Feed a columnar batch: `times` (ns), partition `keys`, event `codes`
    /// into `vocab`, and optional attribute columns.
    pub fn feed_columns(
        &mut self,
        times: &[i64],
        keys: &[i64],
        codes: &[i64],
        vocab: &[String],
        columns: &[(String, Column<'_>)],
    ) -> Result<(), CepError> {
        self.check_open()?;
        let n = times.len();
        if keys.len() != n || codes.len() != n {
            return Err(CepError::Input(format!(
                "times, keys and codes must have the same length (got {}, {}, {})",
                n,
                keys.len(),
                codes.len()
            )));
        }
        for (name, c) in columns {
            if c.len() != n {
                return Err(CepError::Input(format!(
                    "attribute column {name:?} has length {}, expected {n}",
                    c.len()
                )));
            }
            if let Column::Codes(v, voc) = c {
                if let Some(i) = v.iter().position(|&x| x >= voc.len() as i64) {
                    return Err(CepError::Input(format!(
                        "attribute column {name:?}: code {} at index {i} is outside its vocabulary of {} strings",
                        v[i],
                        voc.len()
                    )));
                }
            }
        }
        if let Some(i) = times.iter().position(|&t| !(0..=MAX_TIME).contains(&t)) {
            return Err(CepError::TimeOutOfRange {
                what: format!("times[{i}]"),
                value: times[i].to_string(),
            });
        }
        if let Some(i) = codes
            .iter()
            .position(|&c| c < 0 || c as usize >= vocab.len())
        {
            return Err(CepError::Input(format!(
                "codes[{i}] = {} is not an index into the {} event names",
                codes[i],
                vocab.len()
            )));
        }
        let map: Vec<u32> = vocab.iter().map(|v| self.names.id(v)).collect();
        self.refresh_tables();
        let care_code: Vec<u8> = map
            .iter()
            .map(|&n| self.care.get(n as usize).copied().unwrap_or(true) as u8)
            .collect();
        // Only columns some guard reads are used.
        let used: Vec<(u32, &Column<'_>)> = columns
            .iter()
            .filter_map(|(k, c)| self.attrs.map.get(k.as_str()).map(|&id| (id, c)))
            .collect();
        let col_of = |id: u32| used.iter().find(|(k, _)| *k == id).map(|(_, c)| *c);
        // Attribute predicates on string-code columns are decided once per
        // vocabulary entry.
        let voc_tables: Vec<Option<Vec<bool>>> = self
            .defs
            .iter()
            .map(|d| match (&d.key, d.key_col(&col_of)) {
                (PKey::Attr(_), Some(Column::Codes(_, voc))) => Some(
                    voc.iter()
                        .map(|sv| d.op.holds(Some(VRef::Str(sv.as_str()))))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        let str_cols: Vec<Vec<Arc<str>>> = used
            .iter()
            .map(|(_, c)| match c {
                Column::Codes(_, voc) => voc.iter().map(|s| Arc::from(s.as_str())).collect(),
                _ => Vec::new(),
            })
            .collect();
        let seq0 = self.seq;
        let mut res: Vec<Option<Vec<bool>>> = self.defs.iter().map(|_| None).collect();
        let mut now: Vec<u32> = Vec::new();
        let mut pm: Vec<u64> = Vec::new();
        let mut lo = 0;
        while lo < n {
            let hi = (lo + CHUNK).min(n);
            // Admission in arrival order (watermark, lateness, buffering);
            // events matched at once are then stepped guard by guard.
            now.clear();
            // In-order input with no lateness allowance and nothing waiting:
            // every event is on time and matched at once (the per-event
            // admission below would decide the same, one branch at a time).
            let fast = self.opts.lateness_ns == Some(0)
                && self.buf.len() == self.buf_head
                && times[lo] >= self.wm
                && times[lo..hi].windows(2).all(|w| w[0] <= w[1]);
            if fast {
                self.stats.events += (hi - lo) as u64;
                self.wm = self.wm.max(times[hi - 1]);
                // branch-free: write every index, keep those some guard
                // reacts to (codes were checked against the vocabulary)
                now.resize(hi - lo, 0);
                let mut w = 0;
                for i in lo..hi {
                    now[w] = i as u32;
                    w += care_code[codes[i] as usize] as usize;
                }
                now.truncate(w);
            }
            let slow = if fast { lo..lo } else { lo..hi };
            for i in slow {
                let (t, name, seq) = (times[i], map[codes[i] as usize], seq0 + i as u64);
                match self.admit(t, seq, name) {
                    Admit::Skip => {}
                    Admit::Now => now.push(i as u32),
                    Admit::Buffer => {
                        let mut attrs = Vec::new();
                        for (j, (id, c)) in used.iter().enumerate() {
                            let v = match c {
                                Column::I64(v) => Some(Value::Int(v[i])),
                                Column::F64(v) => (!v[i].is_nan()).then(|| Value::Float(v[i])),
                                Column::Bool(v) => Some(Value::Bool(v[i])),
                                Column::Codes(v, _) => (v[i] >= 0)
                                    .then(|| str_cols[j].get(v[i] as usize).cloned())
                                    .flatten()
                                    .map(Value::Str),
                            };
                            if let Some(v) = v {
                                attrs.push((*id, v));
                            }
                        }
                        self.buffer(Pending {
                            time: t,
                            seq,
                            name,
                            key: Some(keys[i]),
                            attrs,
                            keys: Vec::new(),
                        });
                    }
                }
            }
            self.seq = seq0 + hi as u64;
            if !now.is_empty() {
                // Each distinct attribute predicate once per row, for all
                // guards (only where some event of this chunk may need it).
                for (k, (d, r)) in self.defs.iter().zip(res.iter_mut()).enumerate() {
                    if let PKey::Attr(_) = d.key {
                        let mut v = r.take().unwrap_or_default();
                        v.clear();
                        let tab = voc_tables.get(k).and_then(|t| t.as_deref());
                        d.op.resolve(d.key_col(&col_of), tab, lo, hi, &mut v);
                        *r = Some(v);
                    }
                }
                pm.clear();
                // (no attribute predicate: no mask, nothing to zero per row)
                if self.bit_of.iter().any(Option::is_some) {
                    pm.resize(hi - lo, 0);
                }
                for (k, r) in res.iter().enumerate() {
                    if let (Some(v), Some(Some(b))) = (r, self.bit_of.get(k)) {
                        for (m, &x) in pm.iter_mut().zip(v) {
                            *m |= (x as u64) << b;
                        }
                    }
                }
                let names = &self.names.names;
                let (used, res, now, pm) = (&used, &res, &now, &pm[..]);
                let par = self.guards.len() > 1 && now.len() * self.guards.len() >= PAR_MIN_WORK;
                for_each_guard(
                    &mut self.guards,
                    self.pool.as_deref(),
                    self.opts.threads,
                    par,
                    &mut self.out,
                    &mut self.stats,
                    |gi, g, out, stats| {
                        for &i in now {
                            let i = i as usize;
                            let name = map[codes[i] as usize];
                            // matched in place from the columns: nothing copied
                            let row = Row {
                                cols: used,
                                row: i,
                                res,
                                off: lo,
                                pm,
                            };
                            step_guard(
                                g,
                                gi,
                                times[i],
                                seq0 + i as u64,
                                name,
                                names,
                                Some(keys[i]),
                                &row,
                                out,
                                stats,
                            );
                        }
                    },
                );
            }
            self.pump(false);
            lo = hi;
        }
        self.pump(false);
        Ok(())
    }

    /// Move the watermark to `t` (it never moves back).
    pub fn advance_watermark(&mut self, t: i64) -> Result<(), CepError> {
        self.check_open()?;
        check_time(|| "watermark".into(), t as i128)?;
        if t < self.wm {
            return Err(CepError::WatermarkRegression {
                current: self.wm,
                requested: t,
            });
        }
        self.wm = t;
        self.pump(false);
        Ok(())
    }

    /// End of input: match everything buffered, fire every deadline.
    pub fn finish(&mut self) -> Result<(), CepError> {
        self.check_open()?;
        self.pump(true);
        self.finished = true;
        Ok(())
    }

    /// Violations found so far (sorted, duplicates across alternatives
    /// merged), removed from the matcher.
    pub fn drain(&mut self) -> Vec<Violation> {
        let mut v = std::mem::take(&mut self.out);
        v.sort_by(|a, b| {
            (a.time, a.seq, a.guard, &a.key, a.kind, a.alternative).cmp(&(
                b.time,
                b.seq,
                b.guard,
                &b.key,
                b.kind,
                b.alternative,
            ))
        });
        v.dedup_by(|b, a| {
            a.time == b.time
                && a.seq == b.seq
                && a.guard == b.guard
                && a.key == b.key
                && a.kind == b.kind
        });
        self.stats.violations += v.len() as u64;
        v
    }

    /// Late events recorded so far, removed from the matcher.
    pub fn drain_late(&mut self) -> Vec<LateEvent> {
        std::mem::take(&mut self.late)
    }

    /// Match buffered events at or below the watermark (all at the end).
    fn pump(&mut self, all: bool) {
        let bound = if all { i64::MAX } else { self.wm };
        if self.buf.len() == self.buf_head
            && !all
            && self.guards.iter().all(|g| {
                g.units
                    .iter()
                    .all(|u| u.timers.peek().map_or(true, |Reverse((t, _))| *t >= bound))
            })
        {
            return;
        }
        self.sort_buffer();
        let live = &self.buf[self.buf_head..];
        let cut = if all {
            live.len()
        } else {
            live.partition_point(|p| p.time <= bound)
        };
        let buf = &live[..cut];
        let names = &self.names.names;
        let par = self.guards.len() > 1 && cut * self.guards.len() >= PAR_MIN_WORK;
        for_each_guard(
            &mut self.guards,
            self.pool.as_deref(),
            self.opts.threads,
            par,
            &mut self.out,
            &mut self.stats,
            |gi, g, out, stats| {
                for p in buf {
                    step_guard(
                        g,
                        gi,
                        p.time,
                        p.seq,
                        p.name,
                        names,
                        p.key,
                        &PAttrs {
                            attrs: &p.attrs,
                            keys: &p.keys,
                        },
                        out,
                        stats,
                    );
                }
                for (ai, u) in g.units.iter_mut().enumerate() {
                    let s = &g.c.seqs[ai];
                    if all {
                        u.finish(s, out, gi, ai);
                    } else {
                        u.advance(s, bound, out, gi, ai, stats);
                    }
                }
            },
        );
        self.buf_head += cut;
        // Matched events are dropped in bulk once they are half the buffer.
        if self.buf_head == self.buf.len() {
            self.buf.clear();
            self.buf_head = 0;
            self.buf_sorted = 0;
        } else if self.buf_head >= 4096 && self.buf_head * 2 >= self.buf.len() {
            self.buf.drain(..self.buf_head);
            self.buf_sorted -= self.buf_head;
            self.buf_head = 0;
        }
    }

    fn process(&mut self, p: &Pending) {
        let a = PAttrs {
            attrs: &p.attrs,
            keys: &p.keys,
        };
        self.process_at(p.time, p.seq, p.name, p.key, &a);
    }

    /// Step every guard over one event.
    fn process_at<A: Attrs + ?Sized>(
        &mut self,
        time: i64,
        seq: u64,
        name: u32,
        pkey: Option<i64>,
        attrs: &A,
    ) {
        let names = &self.names.names;
        for (gi, g) in self.guards.iter_mut().enumerate() {
            step_guard(
                g,
                gi,
                time,
                seq,
                name,
                names,
                pkey,
                attrs,
                &mut self.out,
                &mut self.stats,
            );
        }
    }

    /// Whether violations or late events wait to be drained.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.late.is_empty()
    }

    /// Every attribute some guard reads (predicates and `per` keys).
    pub fn attribute_names(&self) -> Vec<String> {
        self.attrs.names.iter().map(|s| s.to_string()).collect()
    }

    /// Name of an interned event name id (for reports).
    pub fn name_of(&self, id: u32) -> Option<&str> {
        self.names.names.get(id as usize).map(|s| &**s)
    }
}
