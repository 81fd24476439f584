//! The mutation runner.
//!
//! For each mutant: apply its edit, compile the whole set (a mutant that does
//! not parse or compile is *stillborn*), run every `test_` rule as `opa test`
//! does and every labelled decision, and compare each outcome with the
//! original policy's. The first changed outcome kills the mutant. A deadline
//! per mutant bounds the work (regorus's cooperative execution timer inside an
//! evaluation, a wall-clock check between evaluations). Survivors are then
//! evaluated against the original on a pool of random inputs derived from the
//! tests' and decisions' inputs and the policy's constants: a difference gives
//! an input (and a ready-to-paste test) that kills the survivor; no difference
//! flags it as likely equivalent. Mutants run in parallel on a rayon pool.
//!
//! Incremental runs key each mutant by BLAKE3 over its edit, the text of its
//! rule and of every rule that rule names (transitively), and everything the
//! verdict depends on besides (tests, decisions, data, options); a key seen
//! before reuses the stored verdict.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use regorus::unstable::Rule;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::Value;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::load::{package_path, rule_name, Decision, PolicySet, Skipped};
use super::ops::{generate, Mutant, Operator};
use super::{guarded, is_time_limit, syntax_error, RegoError, Result};

/// Options of a mutation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Worker threads (0: rayon's default, one per core).
    pub threads: usize,
    /// Deadline per mutant, in milliseconds.
    pub timeout_ms: u64,
    /// Random inputs tried on each survivor (0 disables the equivalence check).
    pub equivalence_samples: usize,
    pub seed: u64,
    pub operators: Vec<Operator>,
    /// Stop after this many mutants (in source order), if set.
    pub max_mutants: Option<usize>,
    /// The value of `time.now_ns()` for the whole run (the original and
    /// every mutant see the same clock, so a verdict never depends on when a
    /// mutant happened to run); `None`: the time at the start of the run.
    #[serde(default)]
    pub now_ns: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 0,
            timeout_ms: 2_000,
            equivalence_samples: 64,
            seed: 0x5eed,
            operators: Operator::ALL.to_vec(),
            max_mutants: None,
            now_ns: None,
        }
    }
}

/// Verdict on one mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Killed,
    Survived,
    Stillborn,
    Equivalent,
    Timeout,
    Error,
}

/// A mutant and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantResult {
    pub mutant: Mutant,
    pub status: Status,
    /// Why: the killing test or decision, the compile error, the timeout...
    pub detail: String,
    /// For survivors: an input on which the mutant and the original differ.
    pub killing_input: Option<Json>,
    /// For survivors: a `test_` rule that would kill the mutant.
    pub suggested_test: Option<String>,
    /// The verdict came from an earlier run (incremental).
    pub cached: bool,
    pub millis: f64,
    pub key: String,
}

/// Outcomes of the original policy.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Baseline {
    /// `(test, outcome)` with outcome `pass`, `fail` or `error: ...`.
    pub tests: Vec<(String, String)>,
    /// Decisions whose label disagrees with the original policy.
    pub label_mismatches: Vec<(usize, Json, Option<Json>)>,
    pub decisions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Counts {
    pub generated: usize,
    pub killed: usize,
    pub survived: usize,
    pub stillborn: usize,
    pub equivalent: usize,
    pub timeout: usize,
    pub error: usize,
    pub cached: usize,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub rego_v0: bool,
    pub files: Vec<String>,
    pub baseline: Baseline,
    pub mutants: Vec<MutantResult>,
    pub counts: Counts,
    /// `(killed + timeout + error) / (generated − stillborn − equivalent)`;
    /// `None` when nothing is left to score.
    pub score: Option<f64>,
    pub skipped: Vec<Skipped>,
    pub threads: usize,
    pub elapsed_ms: f64,
    pub mutants_per_second: f64,
}

/// A verdict as stored for incremental runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub status: Status,
    pub detail: String,
    pub killing_input: Option<Json>,
    pub suggested_test: Option<String>,
}

/// One outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Value(Value),
    Undefined,
    Error(String),
    Timeout,
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Value(v) => v.to_json_str().unwrap_or_else(|_| "<value>".into()),
            Outcome::Undefined => "undefined".into(),
            Outcome::Error(e) => format!("error: {e}"),
            Outcome::Timeout => "timeout".into(),
        }
    }
}

fn to_value(j: &Json) -> Result<Value> {
    let s = serde_json::to_string(j).map_err(|e| RegoError::Invalid(e.to_string()))?;
    guarded(|| Value::from_json_str(&s).map_err(|e| RegoError::Invalid(format!("{e:#}"))))
}

fn to_json(v: &Value) -> Option<Json> {
    if *v == Value::Undefined {
        return None;
    }
    v.to_json_str()
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// A compiled policy set (optionally with one module replaced).
pub struct Evaluator {
    engine: regorus::Engine,
    rules: HashMap<String, bool>,
}

/// The execution timer: checked every 16 steps (every step costs a clock
/// read in the hottest loop; 16 steps are microseconds).
fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN),
    }
}

/// An engine with every module of `set` but `skip`, and the data, parsed
/// once; [`Evaluator::from_base`] clones it for each mutant of `skip`.
fn base_engine(
    set: &PolicySet,
    skip: Option<usize>,
    data: &Value,
    now_ns: Option<i64>,
) -> Result<regorus::Engine> {
    guarded(|| {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(set.rego_v0);
        // As `opa eval` and `opa test`: a builtin error makes the
        // expression undefined; `print` output is gathered, not written.
        engine.set_strict_builtin_errors(false);
        engine.set_gather_prints(true);
        for (i, m) in set.modules.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            engine
                .add_policy(m.path.clone(), m.text.clone())
                .map_err(|e| syntax_error(&m.path, &e))?;
        }
        engine.add_data(data.clone()).map_err(|e| RegoError::Data {
            path: "(data)".into(),
            reason: format!("{e:#}"),
        })?;
        if let Some(now) = now_ns {
            pin(&mut engine, now)?;
        }
        Ok(engine)
    })
}

fn pin(engine: &mut regorus::Engine, now_ns: i64) -> Result<()> {
    engine
        .add_extension(
            "time.now_ns".into(),
            0,
            Box::new(move |_: Vec<Value>| Ok(Value::from(now_ns))),
        )
        .map_err(|e| RegoError::Invalid(format!("pin time: {e:#}")))
}

impl Evaluator {
    /// Parse and compile; `replace` substitutes module `i`'s text.
    pub fn new(
        set: &PolicySet,
        replace: Option<(usize, &str)>,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        let data = to_value(&set.data)?;
        let skip = replace.map(|(i, _)| i);
        let base = base_engine(set, skip, &data, None)?;
        Self::from_base(set, &base, skip, replace.map(|(_, t)| t), timeout, None)
    }

    /// Clone `base` (every module but `module`, parsed once, with the data)
    /// and add `module` with `text` (its own text when `None`); then compile.
    /// With `module` `None`, `base` already holds every module.
    fn from_base(
        set: &PolicySet,
        base: &regorus::Engine,
        module: Option<usize>,
        text: Option<&str>,
        timeout: Option<Duration>,
        check: Option<(&[String], &BTreeSet<String>)>,
    ) -> Result<Self> {
        guarded(|| {
            let mut engine = base.clone();
            let mut order: Vec<usize> = (0..set.modules.len()).collect();
            if let Some(i) = module {
                let m = set
                    .modules
                    .get(i)
                    .ok_or_else(|| RegoError::Invalid(format!("no module {i}")))?;
                engine
                    .add_policy(m.path.clone(), text.unwrap_or(&m.text).to_string())
                    .map_err(|e| syntax_error(&m.path, &e))?;
                order.retain(|&j| j != i);
                order.push(i);
                // OPA's compile checks before regorus's own compile step: a
                // module that OPA rejects (an unsafe variable, a builtin's arity)
                // is stillborn, and regorus's scheduler would only print a
                // warning to stderr for it and evaluate on.
                if let Some((original, globals)) = check {
                    let now = engine
                        .get_modules()
                        .last()
                        .map(|md| super::check::problems(md, globals))
                        .unwrap_or_default();
                    let new = super::check::new_problems(original, &now);
                    if !new.is_empty() {
                        return Err(RegoError::Compile(format!(
                            "as OPA's compiler reports it: {}",
                            new.join("; ")
                        )));
                    }
                }
            }
            if let Some(t) = timeout {
                engine.set_execution_timer_config(timer(t));
            }
            // The compile step: analysis, scheduling, imports, functions.
            engine
                .eval_query("true".into(), false)
                .map_err(|e| RegoError::Compile(format!("{e:#}")))?;
            check_calls(set, &order, engine.get_modules())?;
            Ok(Evaluator {
                engine,
                rules: HashMap::new(),
            })
        })
    }

    /// Make `time.now_ns()` return `now_ns` (as OPA fixes the clock once per
    /// query, here once per run): an extension of that name is looked up
    /// before the builtin.
    pub fn pin_time(&mut self, now_ns: i64) -> Result<()> {
        guarded(|| pin(&mut self.engine, now_ns))
    }

    fn set_limit(&mut self, limit: Duration) {
        self.engine.set_execution_timer_config(timer(limit));
    }

    /// Evaluate a query (a rule path such as `data.authz.allow`, or any
    /// expression) with `input`.
    pub fn outcome(&mut self, query: &str, input: Option<&Value>) -> Outcome {
        let r = guarded(|| {
            match input {
                Some(v) => self.engine.set_input(v.clone()),
                None => self.engine.set_input(Value::new_object()),
            }
            let is_rule = *self.rules.entry(query.to_string()).or_insert(true);
            if is_rule {
                match self.engine.eval_rule(query.to_string()) {
                    Ok(v) => return Ok(Ok(v)),
                    Err(e) if is_time_limit(&e) => return Ok(Err(Outcome::Timeout)),
                    Err(_) => {
                        self.rules.insert(query.to_string(), false);
                    }
                }
            }
            match self.engine.eval_query(query.to_string(), false) {
                Ok(rs) => Ok(Ok(rs
                    .result
                    .first()
                    .and_then(|r| r.expressions.first())
                    .map(|e| e.value.clone())
                    .unwrap_or(Value::Undefined))),
                Err(e) if is_time_limit(&e) => Ok(Err(Outcome::Timeout)),
                Err(e) => Ok(Err(Outcome::Error(format!("{e:#}")))),
            }
        });
        // Drain gathered `print` output so that it does not pile up.
        let _ = guarded(|| {
            let _ = self.engine.take_prints();
            Ok(())
        });
        match r {
            Ok(Ok(Value::Undefined)) => Outcome::Undefined,
            Ok(Ok(v)) => Outcome::Value(v),
            Ok(Err(o)) => o,
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    /// Evaluate to JSON (`None` when undefined); errors are typed.
    pub fn eval(&mut self, query: &str, input: Option<&Json>) -> Result<Option<Json>> {
        let v = match input {
            Some(j) => Some(to_value(j)?),
            None => None,
        };
        match self.outcome(query, v.as_ref()) {
            Outcome::Value(v) => Ok(to_json(&v)),
            Outcome::Undefined => Ok(None),
            Outcome::Error(reason) => Err(RegoError::Eval {
                query: query.into(),
                reason,
            }),
            Outcome::Timeout => Err(RegoError::Timeout {
                query: query.into(),
                limit_ms: 0,
            }),
        }
    }

    /// A test outcome as `opa test` reports it.
    fn test_outcome(&mut self, q: &str) -> Outcome {
        match self.outcome(q, None) {
            Outcome::Value(Value::Bool(true)) => Outcome::Value(Value::Bool(true)),
            Outcome::Value(_) | Outcome::Undefined => Outcome::Value(Value::Bool(false)),
            o => o,
        }
    }
}

/// Every called function must be a builtin or a function some module
/// defines (directly, by `data.` path, or through an import alias), as OPA's
/// compiler requires; regorus itself only fails when the call is evaluated.
fn check_calls(
    set: &PolicySet,
    order: &[usize],
    modules: &[regorus::unstable::Ref<regorus::unstable::Module>],
) -> Result<()> {
    use regorus::unstable::{Expr, Literal, Query, RuleHead, BUILTINS};
    // The engine's own ASTs (no second parse), in the order added.
    let asts: Vec<(String, &regorus::unstable::Module)> = order
        .iter()
        .zip(modules.iter())
        .filter_map(|(&i, a)| set.modules.get(i).map(|m| (m.path.clone(), a.as_ref())))
        .collect();
    let mut defined = BTreeSet::new();
    for (_, ast) in &asts {
        let pkg = package_path(ast);
        for r in &ast.policy {
            if let Rule::Spec {
                head: RuleHead::Func { refr, .. },
                ..
            } = r.as_ref()
            {
                defined.insert(format!("data.{pkg}.{}", refr.span().text()));
            }
        }
    }
    fn walk_q(q: &Query, out: &mut Vec<(String, u32, u32)>) {
        for s in &q.stmts {
            match &s.literal {
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => walk_e(expr, out),
                Literal::SomeIn { collection, .. } => walk_e(collection, out),
                Literal::Every { domain, query, .. } => {
                    walk_e(domain, out);
                    walk_q(query, out);
                }
                Literal::SomeVars { .. } => {}
            }
            for w in &s.with_mods {
                walk_e(&w.r#as, out);
            }
        }
    }
    fn walk_e(e: &Expr, out: &mut Vec<(String, u32, u32)>) {
        match e {
            Expr::Call { fcn, params, .. } => {
                let sp = fcn.span();
                out.push((sp.text().to_string(), sp.line, sp.col));
                for p in params {
                    walk_e(p, out);
                }
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| walk_e(i, out))
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
                walk_e(k, out);
                walk_e(v, out);
            }),
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                walk_e(term, out);
                walk_q(query, out);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                walk_e(key, out);
                walk_e(value, out);
                walk_q(query, out);
            }
            Expr::UnaryExpr { expr, .. } => walk_e(expr, out),
            Expr::RefDot { refr, .. } => walk_e(refr, out),
            Expr::RefBrack { refr, index, .. } => {
                walk_e(refr, out);
                walk_e(index, out);
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                walk_e(lhs, out);
                walk_e(rhs, out);
            }
            Expr::Membership {
                value, collection, ..
            } => {
                walk_e(value, out);
                walk_e(collection, out);
            }
            _ => {}
        }
    }
    for (path, ast) in &asts {
        let pkg = package_path(ast);
        let mut aliases: HashMap<String, String> = HashMap::new();
        for imp in &ast.imports {
            let target = imp.refr.span().text().to_string();
            let alias = match &imp.r#as {
                Some(a) => a.text().to_string(),
                None => target.rsplit('.').next().unwrap_or("").to_string(),
            };
            aliases.insert(alias, target);
        }
        let mut calls = vec![];
        for r in &ast.policy {
            if let Rule::Spec { head, bodies, .. } = r.as_ref() {
                match head {
                    RuleHead::Compr {
                        assign: Some(a), ..
                    }
                    | RuleHead::Func {
                        assign: Some(a), ..
                    } => walk_e(&a.value, &mut calls),
                    _ => {}
                }
                for b in bodies {
                    if let Some(a) = &b.assign {
                        walk_e(&a.value, &mut calls);
                    }
                    walk_q(&b.query, &mut calls);
                }
            }
        }
        for (name, line, col) in calls {
            if BUILTINS.contains_key(name.as_str()) || matches!(name.as_str(), "print" | "trace") {
                continue;
            }
            let first = name.split('.').next().unwrap_or("");
            let full = if name.starts_with("data.") {
                name.clone()
            } else if let Some(t) = aliases.get(first) {
                format!("{t}{}", &name[first.len()..])
            } else {
                format!("data.{pkg}.{name}")
            };
            if !defined.contains(&full) {
                return Err(RegoError::Compile(format!(
                    "{path}:{line}:{col}: undefined function {name}"
                )));
            }
        }
    }
    Ok(())
}

fn test_word(o: &Outcome) -> String {
    match o {
        Outcome::Value(Value::Bool(true)) => "pass".into(),
        Outcome::Value(_) | Outcome::Undefined => "fail".into(),
        o => o.describe(),
    }
}

/// Render a regorus value as a Rego literal (sets as `{..}`/`set()`).
pub fn rego_literal(v: &Value) -> String {
    match v {
        Value::Set(s) => {
            if s.is_empty() {
                "set()".into()
            } else {
                let items: Vec<String> = s.iter().map(rego_literal).collect();
                format!("{{{}}}", items.join(", "))
            }
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(rego_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", rego_literal(k), rego_literal(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => other.to_json_str().unwrap_or_else(|_| "null".into()),
    }
}

// ---------------------------------------------------------------- inputs

/// SplitMix64: a small, seedable generator (no global state).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// String and number constants of the policy's own text.
fn constants(set: &PolicySet) -> (Vec<String>, Vec<f64>) {
    let mut strs = BTreeSet::new();
    let mut nums: Vec<f64> = vec![];
    for m in set.modules.iter().filter(|m| !m.is_test) {
        let b = m.text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'#' {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if c == b'"' {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(s) = m.text.get(start..i.min(b.len())) {
                    if !s.contains('\\') && s.len() < 64 {
                        strs.insert(s.to_string());
                    }
                }
                i += 1;
            } else if c.is_ascii_digit()
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            {
                let start = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if let Some(n) = m.text.get(start..i).and_then(|s| s.parse::<f64>().ok()) {
                    if !nums.contains(&n) {
                        nums.push(n);
                    }
                }
            } else {
                i += 1;
            }
        }
    }
    (strs.into_iter().collect(), nums)
}

fn leaves(v: &Json, path: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
    out.push(path.clone());
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                path.push(Json::String(k.clone()));
                leaves(x, path, out);
                path.pop();
            }
        }
        Json::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Json::from(i));
                leaves(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Json, path: &[Json]) -> Option<&'a mut Json> {
    let mut cur = v;
    for p in path {
        cur = match (cur, p) {
            (Json::Object(m), Json::String(k)) => m.get_mut(k)?,
            (Json::Array(a), Json::Number(n)) => a.get_mut(n.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn perturb(v: &mut Json, rng: &mut Rng, strs: &[String], nums: &[f64]) {
    let mut paths = vec![];
    leaves(v, &mut vec![], &mut paths);
    let Some(path) = paths.get(rng.below(paths.len())).cloned() else {
        return;
    };
    let Some(target) = at_mut(v, &path) else {
        return;
    };
    let pick_str =
        |rng: &mut Rng| -> String { strs.get(rng.below(strs.len())).cloned().unwrap_or_default() };
    match target {
        Json::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let c = nums.get(rng.below(nums.len())).copied().unwrap_or(x);
            let choices = [x + 1.0, x - 1.0, 0.0, -x, c, c + 1.0, c - 1.0, x * 2.0];
            let y = choices[rng.below(choices.len())];
            *target = if y.fract() == 0.0 && y.abs() < 9e15 {
                Json::from(y as i64)
            } else {
                serde_json::Number::from_f64(y)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            };
        }
        Json::String(s) => {
            let c = pick_str(rng);
            let choices = [
                String::new(),
                c.clone(),
                format!("{c}{s}"),
                format!("{s}{c}"),
                s.to_uppercase(),
                format!("{s}x"),
            ];
            *target = Json::String(choices[rng.below(choices.len())].clone());
        }
        Json::Bool(b) => *target = Json::Bool(!*b),
        Json::Null => *target = Json::String(pick_str(rng)),
        Json::Array(a) => match rng.below(3) {
            0 if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            1 if !a.is_empty() => {
                let i = rng.below(a.len());
                let x = a[i].clone();
                a.push(x);
            }
            _ => a.clear(),
        },
        Json::Object(m) => {
            if !m.is_empty() && rng.below(2) == 0 {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = &keys[rng.below(keys.len())];
                m.remove(k);
            } else {
                let k = pick_str(rng);
                let val = match rng.below(3) {
                    0 => Json::Bool(true),
                    1 => Json::String(pick_str(rng)),
                    _ => nums
                        .get(rng.below(nums.len()))
                        .and_then(|n| serde_json::Number::from_f64(*n))
                        .map(Json::Number)
                        .unwrap_or(Json::Null),
                };
                m.insert(k, val);
            }
        }
    }
}

/// Inputs the tests use (`with input as <expr>`, evaluated where constant).
fn test_inputs(set: &PolicySet, ev: &mut Evaluator) -> Vec<Json> {
    let mut out = vec![];
    for (i, m) in set.modules.iter().enumerate() {
        if !m.is_test {
            continue;
        }
        let Ok(ast) = set.parse(i) else { continue };
        let pkg = package_path(&ast);
        let mut texts = vec![];
        collect_with_inputs(&m.text, &mut texts);
        for t in texts {
            let t = t.trim().to_string();
            let mut q = vec![t.clone()];
            if t.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
            {
                q.push(format!("data.{pkg}.{t}"));
            }
            for query in q {
                if let Outcome::Value(v) = ev.outcome(&query, None) {
                    if let Some(j) = to_json(&v) {
                        if !out.contains(&j) {
                            out.push(j);
                        }
                        break;
                    }
                }
            }
        }
    }
    out
}

/// Texts of the `X` in `with input as X` (up to the end of a balanced term).
fn collect_with_inputs(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(p) = rest.find("with input as") {
        let after = &rest[p + "with input as".len()..];
        let b = after.as_bytes();
        let mut depth = 0i32;
        let mut end = 0;
        let mut in_str = false;
        let mut started = false;
        while end < b.len() {
            let c = b[end];
            if in_str {
                if c == b'\\' {
                    end += 1;
                } else if c == b'"' {
                    in_str = false;
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' | b'(' => depth += 1,
                    b'}' | b']' | b')' => {
                        if depth == 0 {
                            break;
                        }
                        depth -= 1;
                    }
                    b'\n' | b';' if depth == 0 && started => break,
                    b' ' if depth == 0 && started => {
                        if after[end..].trim_start().starts_with("with ") {
                            break;
                        }
                    }
                    _ => {}
                }
                if !c.is_ascii_whitespace() {
                    started = true;
                }
            }
            end += 1;
        }
        if let Some(s) = after.get(..end) {
            out.push(s.to_string());
        }
        rest = &after[end.min(after.len())..];
    }
}

// ---------------------------------------------------------------- keys

fn idents(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            cur.push(c);
        } else if !cur.is_empty() {
            out.insert(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.insert(cur);
    }
    out
}

/// For each rule (module, span): the texts of the rules it names, closed
/// transitively over the non-test modules.
struct DepIndex {
    by_name: HashMap<String, Vec<String>>,
}

impl DepIndex {
    fn new(set: &PolicySet) -> Self {
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for (i, m) in set.modules.iter().enumerate() {
            if m.is_test {
                continue;
            }
            let Ok(ast) = set.parse(i) else { continue };
            for r in &ast.policy {
                let name = rule_name(r);
                let first = name.split(['.', '[']).next().unwrap_or("").to_string();
                by_name
                    .entry(first)
                    .or_default()
                    .push(r.span().text().to_string());
            }
            for imp in &ast.imports {
                by_name
                    .entry("__imports__".into())
                    .or_default()
                    .push(imp.span.text().to_string());
            }
        }
        for v in by_name.values_mut() {
            v.sort();
        }
        DepIndex { by_name }
    }

    fn closure(&self, text: &str) -> String {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = idents(text).into_iter().collect();
        let mut out = String::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(texts) = self.by_name.get(&n) {
                for t in texts {
                    out.push_str(t);
                    out.push('\0');
                    todo.extend(idents(t));
                }
            }
        }
        out
    }
}

fn h(parts: &[&[u8]]) -> String {
    let mut hasher = blake3::Hasher::new();
    for p in parts {
        hasher.update(&(p.len() as u64).to_be_bytes());
        hasher.update(p);
    }
    hasher.finalize().to_hex().to_string()
}

// ---------------------------------------------------------------- run

struct Ctx<'a> {
    set: &'a PolicySet,
    tests: Vec<String>,
    test_base: Vec<Outcome>,
    decisions: Vec<(String, Value)>,
    decision_base: Vec<Outcome>,
    pool: Vec<Value>,
    /// Non-test packages: `data.<pkg>` queries compared on the pool.
    packages: Vec<String>,
    pool_base: Vec<Vec<Outcome>>,
    timeout: Duration,
    /// Names always bound, and each module's own static problems (see
    /// [`super::check`]): a mutant is stillborn when it adds one.
    globals: BTreeSet<String>,
    problems: Vec<Vec<String>>,
    /// Per module with mutants: an engine holding every other module and
    /// the data, parsed once (time pinned); each mutant clones it.
    bases: Vec<Option<regorus::Engine>>,
    /// Which queries are rule paths (`eval_rule`) and which need a query,
    /// as learnt on the original policy.
    rules: HashMap<String, bool>,
}

impl Ctx<'_> {
    /// The mutant's evaluator: a clone of its module's base plus the
    /// mutated module, compiled.
    fn evaluator(&self, m: &Mutant, text: &str) -> Result<Evaluator> {
        let base = self
            .bases
            .get(m.module)
            .and_then(Option::as_ref)
            .ok_or_else(|| RegoError::Invalid(format!("no base engine for module {}", m.module)))?;
        let mut ev = Evaluator::from_base(
            self.set,
            base,
            Some(m.module),
            Some(text),
            Some(self.timeout),
            Some((
                self.problems
                    .get(m.module)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                &self.globals,
            )),
        )?;
        ev.rules = self.rules.clone();
        Ok(ev)
    }
}

fn strip_tests(o: Outcome) -> Outcome {
    match o {
        Outcome::Value(Value::Object(m)) => {
            let mut m2 = std::collections::BTreeMap::new();
            for (k, v) in m.iter() {
                let is_test = matches!(k, Value::String(s) if s.starts_with("test_"));
                if !is_test {
                    m2.insert(k.clone(), v.clone());
                }
            }
            Outcome::Value(Value::from(m2))
        }
        o => o,
    }
}

fn run_one(ctx: &Ctx<'_>, m: &Mutant) -> (Status, String) {
    let start = Instant::now();
    let Some(text) = ctx
        .set
        .modules
        .get(m.module)
        .and_then(|md| m.apply(&md.text))
    else {
        return (Status::Error, "edit outside the module".into());
    };
    let mut ev = match ctx.evaluator(m, &text) {
        Ok(ev) => ev,
        Err(RegoError::Panic(p)) => return (Status::Error, format!("regorus panicked: {p}")),
        Err(e) => return (Status::Stillborn, e.to_string()),
    };

    let remaining = |start: Instant| ctx.timeout.checked_sub(start.elapsed());
    for (q, base) in ctx.tests.iter().zip(&ctx.test_base) {
        let Some(left) = remaining(start) else {
            return (
                Status::Timeout,
                format!(
                    "deadline of {} ms reached before {q}",
                    ctx.timeout.as_millis()
                ),
            );
        };
        ev.set_limit(left);
        let o = ev.test_outcome(q);
        if o == Outcome::Timeout {
            return (
                Status::Timeout,
                format!("{q} exceeded the {} ms deadline", ctx.timeout.as_millis()),
            );
        }
        if &o != base {
            if let Outcome::Error(e) = &o {
                return (Status::Error, format!("{q}: {e}"));
            }
            return (
                Status::Killed,
                format!("{q}: {} → {}", test_word(base), test_word(&o)),
            );
        }
    }
    for (i, ((q, input), base)) in ctx.decisions.iter().zip(&ctx.decision_base).enumerate() {
        let Some(left) = remaining(start) else {
            return (
                Status::Timeout,
                format!(
                    "deadline of {} ms reached before decision {}",
                    ctx.timeout.as_millis(),
                    i + 1
                ),
            );
        };
        ev.set_limit(left);
        let o = ev.outcome(q, Some(input));
        if o == Outcome::Timeout {
            return (
                Status::Timeout,
                format!(
                    "decision {} exceeded the {} ms deadline",
                    i + 1,
                    ctx.timeout.as_millis()
                ),
            );
        }
        if &o != base {
            if let Outcome::Error(e) = &o {
                return (Status::Error, format!("decision {}: {e}", i + 1));
            }
            return (
                Status::Killed,
                format!(
                    "decision {} ({q}): {} → {}",
                    i + 1,
                    base.describe(),
                    o.describe()
                ),
            );
        }
    }
    (Status::Survived, String::new())
}

/// Differential evaluation of a survivor on the random pool.
fn equivalence(
    ctx: &Ctx<'_>,
    m: &Mutant,
    v0: bool,
) -> (Status, String, Option<Json>, Option<String>) {
    let Some(text) = ctx
        .set
        .modules
        .get(m.module)
        .and_then(|md| m.apply(&md.text))
    else {
        return (Status::Survived, String::new(), None, None);
    };
    let Ok(mut ev) = ctx.evaluator(m, &text) else {
        return (Status::Survived, String::new(), None, None);
    };
    for (i, input) in ctx.pool.iter().enumerate() {
        for (p, pkg) in ctx.packages.iter().enumerate() {
            let Some(base) = ctx.pool_base.get(i).and_then(|b| b.get(p)) else {
                continue;
            };
            if matches!(base, Outcome::Timeout | Outcome::Error(_)) {
                continue;
            }
            let o = strip_tests(ev.outcome(pkg, Some(input)));
            if matches!(o, Outcome::Timeout) {
                continue;
            }
            if &o != base {
                let (rule, want) = match base {
                    Outcome::Value(v) => (pkg.clone(), Some(v.clone())),
                    _ => (pkg.clone(), None),
                };
                let input_json = to_json(input);
                let input_lit = rego_literal(input);
                let name = format!("test_kills_{}", m.id.replace(':', "_"));
                let check = match &want {
                    Some(v) => format!("{rule} == {}", rego_literal(v)),
                    None => format!("not {rule}"),
                };
                let kw = if v0 { "" } else { " if" };
                let t = format!("{name}{kw} {{\n    {check} with input as {input_lit}\n}}");
                return (
                    Status::Survived,
                    format!("differs from the original on a random input at {rule}"),
                    input_json,
                    Some(t),
                );
            }
        }
    }
    (
        Status::Equivalent,
        format!(
            "likely equivalent: no difference on {} random inputs",
            ctx.pool.len()
        ),
        None,
        None,
    )
}

/// Generate every mutant of the set's non-test modules.
pub fn mutants(set: &PolicySet, ops: &[Operator]) -> Result<Vec<Mutant>> {
    let mut out = vec![];
    for (i, m) in set.modules.iter().enumerate() {
        if m.is_test {
            continue;
        }
        let ast = set.parse(i)?;
        // Mutating `test_` rules (outside `_test.rego` files) would mutate
        // the oracle: skip them.
        let mut ms = generate(&ast, i, &m.path, &m.text, ops);
        let tests: Vec<(usize, usize)> = ast
            .policy
            .iter()
            .filter(|r| {
                rule_name(r).starts_with("test_") && !matches!(r.as_ref(), Rule::Default { .. })
            })
            .map(|r| (r.span().start as usize, r.span().end as usize))
            .collect();
        ms.retain(|mu| !tests.iter().any(|(s, e)| mu.start >= *s && mu.end <= *e));
        out.extend(ms);
    }
    Ok(out)
}

/// Verdicts of earlier runs, looked up by mutant key (once per run).
pub type Prior<'a> = &'a dyn Fn(&[String]) -> HashMap<String, Cached>;

/// No earlier verdicts.
pub fn no_prior(_: &[String]) -> HashMap<String, Cached> {
    HashMap::new()
}

/// Run a mutation analysis. `prior` returns verdicts of earlier runs by key;
/// `progress(done, total)` is called from worker threads.
pub fn run(
    set: &PolicySet,
    decisions: &[Decision],
    opts: &Options,
    prior: Prior<'_>,
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Result<Report> {
    let t0 = Instant::now();
    let timeout = Duration::from_millis(opts.timeout_ms.max(1));
    let mut skipped = vec![];
    let tests = set.tests()?;
    let mut base_ev = Evaluator::new(set, None, Some(timeout.saturating_mul(4)))?;
    let now_ns = opts.now_ns.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    });
    base_ev.pin_time(now_ns)?;
    let asts: Vec<regorus::unstable::Ref<regorus::unstable::Module>> =
        guarded(|| Ok(base_ev.engine.get_modules().clone()))?;
    let globals = super::check::globals(asts.iter().map(|m| m.as_ref()));
    let problems: Vec<Vec<String>> = asts
        .iter()
        .map(|m| guarded(|| Ok(super::check::problems(m, &globals))).unwrap_or_default())
        .collect();
    let mut test_base = vec![];
    let mut baseline = Baseline::default();
    for q in &tests {
        let o = base_ev.test_outcome(q);
        baseline.tests.push((q.clone(), test_word(&o)));
        if o == Outcome::Timeout {
            skipped.push(Skipped {
                what: q.clone(),
                reason: format!(
                    "the original policy exceeded {} ms on this test",
                    timeout.as_millis() * 4
                ),
            });
        }
        test_base.push(o);
    }
    let mut dec = vec![];
    let mut decision_base = vec![];
    for (i, d) in decisions.iter().enumerate() {
        let input = match to_value(&d.input) {
            Ok(v) => v,
            Err(e) => {
                skipped.push(Skipped {
                    what: format!("decision {}", i + 1),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let o = base_ev.outcome(&d.query, Some(&input));
        if let Outcome::Error(e) = &o {
            skipped.push(Skipped {
                what: format!("decision {} ({})", i + 1, d.query),
                reason: format!("the original policy fails on it: {e}"),
            });
            continue;
        }
        if let Some(exp) = &d.expected {
            let got = match &o {
                Outcome::Value(v) => to_json(v),
                _ => None,
            };
            if got.as_ref() != Some(exp) {
                baseline.label_mismatches.push((i + 1, exp.clone(), got));
            }
        }
        dec.push((d.query.clone(), input));
        decision_base.push(o);
    }
    baseline.decisions = dec.len();

    // Random input pool for the equivalence check.
    let (strs, nums) = constants(set);
    let mut seeds: Vec<Json> = decisions.iter().map(|d| d.input.clone()).collect();
    for j in test_inputs(set, &mut base_ev) {
        if !seeds.contains(&j) {
            seeds.push(j);
        }
    }
    if seeds.is_empty() {
        seeds.push(Json::Object(Default::default()));
    }
    let mut rng = Rng(opts.seed);
    let mut pool_json: Vec<Json> = vec![];
    for s in seeds.iter().take(opts.equivalence_samples.min(seeds.len())) {
        pool_json.push(s.clone());
    }
    let mut guard = 0;
    while pool_json.len() < opts.equivalence_samples && guard < opts.equivalence_samples * 20 {
        guard += 1;
        let Some(seed) = seeds.get(rng.below(seeds.len())) else {
            break;
        };
        let mut v = seed.clone();
        for _ in 0..=rng.below(3) {
            perturb(&mut v, &mut rng, &strs, &nums);
        }
        if !pool_json.contains(&v) {
            pool_json.push(v);
        }
    }
    let pool: Vec<Value> = pool_json.iter().filter_map(|j| to_value(j).ok()).collect();
    // Each non-test rule of the policy on its own (not the package
    // document, which would evaluate every `test_` rule sharing the
    // package for each random input).
    let mut packages = BTreeSet::new();
    for (i, m) in set.modules.iter().enumerate() {
        if !m.is_test {
            let ast = set.parse(i)?;
            let pkg = package_path(&ast);
            for r in &ast.policy {
                if let Rule::Spec {
                    head: regorus::unstable::RuleHead::Func { .. },
                    ..
                } = r.as_ref()
                {
                    continue;
                }
                let name = rule_name(r);
                let first = name.split(['.', '[']).next().unwrap_or("").trim();
                if !first.is_empty() && !first.starts_with("test_") {
                    packages.insert(format!("data.{pkg}.{first}"));
                }
            }
        }
    }
    let packages: Vec<String> = packages.into_iter().collect();
    let pool_base: Vec<Vec<Outcome>> = pool
        .iter()
        .map(|inp| {
            packages
                .iter()
                .map(|p| strip_tests(base_ev.outcome(p, Some(inp))))
                .collect()
        })
        .collect();

    let mut all = mutants(set, &opts.operators)?;
    if let Some(n) = opts.max_mutants {
        all.truncate(n);
    }
    // Keys for incremental runs.
    let deps = DepIndex::new(set);
    let mut ctx_fp = String::new();
    for m in set.modules.iter().filter(|m| m.is_test) {
        ctx_fp.push_str(&m.text);
        ctx_fp.push('\0');
    }
    let fp = h(&[
        crate::VERSION.as_bytes(),
        ctx_fp.as_bytes(),
        serde_json::to_string(&set.data)
            .unwrap_or_default()
            .as_bytes(),
        serde_json::to_string(decisions)
            .unwrap_or_default()
            .as_bytes(),
        &opts.timeout_ms.to_be_bytes(),
        &(opts.equivalence_samples as u64).to_be_bytes(),
        &opts.seed.to_be_bytes(),
        &[u8::from(set.rego_v0)],
    ]);
    let keys: Vec<String> = all
        .iter()
        .map(|m| {
            let text = &set.modules[m.module].text;
            let rule_text = text.get(m.rule_span.0..m.rule_span.1).unwrap_or("");
            let pkg_line = text
                .lines()
                .find(|l| l.trim_start().starts_with("package"))
                .unwrap_or("");
            h(&[
                fp.as_bytes(),
                pkg_line.as_bytes(),
                m.operator.name().as_bytes(),
                &((m.start.saturating_sub(m.rule_span.0)) as u64).to_be_bytes(),
                &((m.end.saturating_sub(m.rule_span.0)) as u64).to_be_bytes(),
                m.replacement.as_bytes(),
                rule_text.as_bytes(),
                deps.closure(rule_text).as_bytes(),
            ])
        })
        .collect();

    let prior = prior(&keys);
    let rules = base_ev.rules.clone();
    let data = to_value(&set.data)?;
    let mut bases: Vec<Option<regorus::Engine>> = (0..set.modules.len()).map(|_| None).collect();
    for m in &all {
        if let Some(b) = bases.get_mut(m.module) {
            if b.is_none() {
                *b = Some(base_engine(set, Some(m.module), &data, Some(now_ns))?);
            }
        }
    }
    let ctx = Ctx {
        set,
        tests,
        test_base,
        decisions: dec,
        decision_base,
        pool,
        packages,
        pool_base,
        timeout,
        globals,
        problems,
        bases,
        rules,
    };
    let total = all.len();
    let done = AtomicUsize::new(0);
    let work = || -> Vec<MutantResult> {
        all.par_iter()
            .zip(keys.par_iter())
            .map(|(m, key)| {
                let t = Instant::now();
                let r = if let Some(c) = prior.get(key) {
                    MutantResult {
                        mutant: m.clone(),
                        status: c.status,
                        detail: c.detail.clone(),
                        killing_input: c.killing_input.clone(),
                        suggested_test: c.suggested_test.clone(),
                        cached: true,
                        millis: 0.0,
                        key: key.clone(),
                    }
                } else {
                    let (mut status, mut detail) = run_one(&ctx, m);
                    let mut ki = None;
                    let mut st = None;
                    if status == Status::Survived && !ctx.pool.is_empty() {
                        let (s2, d2, k2, t2) = equivalence(&ctx, m, set.rego_v0);
                        status = s2;
                        detail = d2;
                        ki = k2;
                        st = t2;
                    }
                    MutantResult {
                        mutant: m.clone(),
                        status,
                        detail,
                        killing_input: ki,
                        suggested_test: st,
                        cached: false,
                        millis: t.elapsed().as_secs_f64() * 1e3,
                        key: key.clone(),
                    }
                };
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(p) = progress {
                    p(n, total);
                }
                r
            })
            .collect()
    };
    let (results, threads) = if opts.threads > 0 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| RegoError::Invalid(format!("thread pool: {e}")))?;
        (pool.install(work), opts.threads)
    } else {
        (work(), rayon::current_num_threads())
    };

    let mut counts = Counts {
        generated: results.len(),
        ..Counts::default()
    };
    for r in &results {
        match r.status {
            Status::Killed => counts.killed += 1,
            Status::Survived => counts.survived += 1,
            Status::Stillborn => counts.stillborn += 1,
            Status::Equivalent => counts.equivalent += 1,
            Status::Timeout => counts.timeout += 1,
            Status::Error => counts.error += 1,
        }
        if r.cached {
            counts.cached += 1;
        }
        if matches!(r.status, Status::Timeout | Status::Error) {
            skipped.push(Skipped {
                what: format!(
                    "mutant {} ({} at {}:{}:{})",
                    r.mutant.id,
                    r.mutant.operator.name(),
                    r.mutant.file,
                    r.mutant.line,
                    r.mutant.col
                ),
                reason: r.detail.clone(),
            });
        }
    }
    let denom = counts.generated - counts.stillborn - counts.equivalent;
    let score =
        (denom > 0).then(|| (counts.killed + counts.timeout + counts.error) as f64 / denom as f64);
    let elapsed = t0.elapsed().as_secs_f64();
    let files = set
        .modules
        .iter()
        .filter(|m| !m.is_test)
        .map(|m| m.path.clone())
        .collect();
    Ok(Report {
        rego_v0: set.rego_v0,
        files,
        baseline,
        counts,
        score,
        skipped,
        threads,
        elapsed_ms: elapsed * 1e3,
        mutants_per_second: if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        },
        mutants: results,
    })
}

/// The verdicts of a report, to store for the next incremental run.
pub fn cache_rows(report: &Report) -> Vec<(String, Cached)> {
    report
        .mutants
        .iter()
        .filter(|r| !r.cached && !matches!(r.status, Status::Timeout | Status::Error))
        .map(|r| {
            (
                r.key.clone(),
                Cached {
                    status: r.status,
                    detail: r.detail.clone(),
                    killing_input: r.killing_input.clone(),
                    suggested_test: r.suggested_test.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rego_mut::load::Module;

    fn set(policy: &str, test: &str) -> PolicySet {
        PolicySet::from_modules(
            vec![
                Module {
                    path: "p.rego".into(),
                    text: policy.into(),
                    is_test: false,
                },
                Module {
                    path: "p_test.rego".into(),
                    text: test.into(),
                    is_test: true,
                },
            ],
            Json::Null,
        )
        .expect("set")
    }

    const POLICY: &str = "package p\n\ndefault allow := false\n\nallow if {\n    input.age >= 18\n    input.country == \"FR\"\n}\n";

    #[test]
    fn weak_tests_leave_survivors_with_killing_inputs() {
        let s = set(
            POLICY,
            "package p\n\ntest_adult if { allow with input as {\"age\": 30, \"country\": \"FR\"} }\n",
        );
        let r = run(&s, &[], &Options::default(), &no_prior, None).expect("run");
        assert_eq!(
            r.baseline.tests,
            vec![("data.p.test_adult".into(), "pass".into())]
        );
        assert!(r.counts.killed > 0);
        assert!(r.counts.survived > 0, "{:?}", r.counts);
        let boundary = r
            .mutants
            .iter()
            .find(|m| m.mutant.replacement == ">" && m.mutant.original == ">=")
            .expect("ROR mutant");
        assert_eq!(boundary.status, Status::Survived);
        let score = r.score.expect("score");
        assert!(score < 1.0);
    }

    #[test]
    fn boundary_tests_kill_more() {
        let weak = set(
            POLICY,
            "package p\n\ntest_adult if { allow with input as {\"age\": 30, \"country\": \"FR\"} }\n",
        );
        let strong = set(
            POLICY,
            "package p\n\ntest_adult if { allow with input as {\"age\": 30, \"country\": \"FR\"} }\ntest_edge if { allow with input as {\"age\": 18, \"country\": \"FR\"} }\ntest_minor if { not allow with input as {\"age\": 17, \"country\": \"FR\"} }\ntest_other if { not allow with input as {\"age\": 30, \"country\": \"DE\"} }\ntest_gb if { not allow with input as {\"age\": 30, \"country\": \"GB\"} }\n",
        );
        let o = Options::default();
        let a = run(&weak, &[], &o, &no_prior, None).expect("weak");
        let b = run(&strong, &[], &o, &no_prior, None).expect("strong");
        assert!(b.score.unwrap_or(0.0) > a.score.unwrap_or(1.0));
        assert_eq!(
            b.counts.survived,
            0,
            "{:#?}",
            b.mutants
                .iter()
                .filter(|m| m.status == Status::Survived)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn incremental_reuses_verdicts() {
        let s = set(
            POLICY,
            "package p\n\ntest_adult if { allow with input as {\"age\": 30, \"country\": \"FR\"} }\n",
        );
        let o = Options::default();
        let a = run(&s, &[], &o, &no_prior, None).expect("a");
        let prior: HashMap<String, Cached> = cache_rows(&a).into_iter().collect();
        let b = run(&s, &[], &o, &|_| prior.clone(), None).expect("b");
        assert_eq!(b.counts.cached, b.counts.generated);
        // Changing the rule invalidates its mutants only.
        let s2 = set(
            &format!("{POLICY}\nextra if input.x == 1\n"),
            "package p\n\ntest_adult if { allow with input as {\"age\": 30, \"country\": \"FR\"} }\n",
        );
        let c = run(&s2, &[], &o, &|_| prior.clone(), None).expect("c");
        assert!(c.counts.cached > 0 && c.counts.cached < c.counts.generated);
        for (x, y) in a.mutants.iter().zip(b.mutants.iter()) {
            assert_eq!(x.status, y.status);
        }
    }

    #[test]
    fn slow_mutants_time_out_and_the_run_continues() {
        let s = set(
            "package p\n\nn := 20\n\nbig if {\n    count([x | some x in numbers.range(1, n); some y in numbers.range(1, n)]) > 1\n}\n",
            "package p\n\ntest_big if { big }\n",
        );
        let mut o = Options::default();
        o.timeout_ms = 300;
        o.equivalence_samples = 4;
        // 20 → 2e9 via a hand-made edit: check the runner's deadline on it.
        let r = run(&s, &[], &o, &no_prior, None).expect("run");
        assert!(r.counts.generated > 0);
        let mut slow = s.clone();
        slow.modules[0].text = slow.modules[0].text.replace("n := 20", "n := 30000");
        let r2 = run(&slow, &[], &o, &no_prior, None);
        // The baseline itself is slow: reported as a skipped test, not a hang.
        let r2 = r2.expect("run");
        assert!(
            r2.skipped.iter().any(|s| s.what == "data.p.test_big"),
            "{:?}",
            r2.skipped
        );
    }

    #[test]
    fn stillborn_by_compile() {
        let s = set(
            "package p\n\nallow if {\n    x := input.a\n    x > 1\n}\n",
            "package p\n\ntest_a if { allow with input as {\"a\": 2} }\n",
        );
        let r = run(&s, &[], &Options::default(), &no_prior, None).expect("run");
        // Deleting `x := input.a` leaves `x` unbound: does not compile.
        let del = r
            .mutants
            .iter()
            .find(|m| {
                m.mutant.operator == Operator::StatementDelete && m.mutant.original.contains(":=")
            })
            .expect("deletion");
        assert_eq!(del.status, Status::Stillborn, "{}", del.detail);
    }

    #[test]
    fn decisions_kill() {
        let s = set(POLICY, "package p\n");
        let d = vec![
            Decision {
                query: "data.p.allow".into(),
                input: serde_json::json!({"age": 18, "country": "FR"}),
                expected: Some(Json::Bool(true)),
            },
            Decision {
                query: "data.p.allow".into(),
                input: serde_json::json!({"age": 17, "country": "FR"}),
                expected: Some(Json::Bool(false)),
            },
        ];
        let r = run(&s, &d, &Options::default(), &no_prior, None).expect("run");
        assert_eq!(r.baseline.decisions, 2);
        assert!(r.baseline.label_mismatches.is_empty());
        assert!(r
            .mutants
            .iter()
            .any(|m| m.status == Status::Killed && m.detail.starts_with("decision")));
    }
}
