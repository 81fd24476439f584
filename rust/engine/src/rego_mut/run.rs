//! The mutation runner.
//!
//! For each mutant: apply its edit, compile the whole set (a mutant that does
//! not parse or compile is *stillborn*), run every `test_` rule as `opa test`
//! does and every labelled decision, and compare each outcome with the
//! original policy's. The first changed outcome kills the mutant. A deadline
//! per mutant bounds the work (regorus's cooperative execution timer inside an
//! evaluation, a wall-clock check between evaluations). Survivors are then
//! evaluated against the original on a pool of random inputs: the tests' and
//! decisions' inputs, perturbations of them, and inputs grown from them (and
//! from `{}`) with the input paths the policy reads ([`super::shape`]),
//! chosen to cover as many lines of the original as they can. A difference
//! gives an input (and a ready-to-paste test) that kills the survivor. No
//! difference flags it as likely equivalent only if some pool input makes the
//! original evaluate the mutated lines (regorus's line coverage); otherwise
//! it stays a survivor, "not reached". Mutants run in parallel on a rayon pool.
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
use super::shape::{edits, input_shape, Generator, Rng};
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
    /// For survivors and likely-equivalent mutants: how many inputs of the
    /// random pool evaluate the mutated lines of the original policy (0: the
    /// mutant is not reached, so it cannot be called equivalent).
    #[serde(default)]
    pub reached: Option<usize>,
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
    #[serde(default)]
    pub reached: Option<usize>,
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

fn perturb(v: &mut Json, rng: &mut Rng, strs: &[String], nums: &[f64]) {
    let mut paths = vec![];
    leaves(v, &mut vec![], &mut paths);
    let Some(path) = paths.get(rng.below(paths.len())).cloned() else {
        return;
    };
    let Some(target) = super::shape::at_mut(v, &path) else {
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

/// Byte spans of every `X` in `with input as X` of a module (in nested
/// queries too).
fn with_input_spans(ast: &regorus::unstable::Module) -> Vec<(usize, usize)> {
    use regorus::unstable::{Expr, Literal, Query};
    fn q(query: &Query, out: &mut Vec<(usize, usize)>) {
        for s in &query.stmts {
            for w in &s.with_mods {
                if w.refr.span().text() == "input" {
                    let sp = w.r#as.span();
                    out.push((sp.start as usize, sp.end as usize));
                }
                e(&w.r#as, out);
            }
            match &s.literal {
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => e(expr, out),
                Literal::SomeIn { collection, .. } => e(collection, out),
                Literal::Every { domain, query, .. } => {
                    e(domain, out);
                    q(query, out);
                }
                Literal::SomeVars { .. } => {}
            }
        }
    }
    fn e(expr: &Expr, out: &mut Vec<(usize, usize)>) {
        match expr {
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                e(term, out);
                q(query, out);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                e(key, out);
                e(value, out);
                q(query, out);
            }
            Expr::Call { params, .. } => params.iter().for_each(|p| e(p, out)),
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| e(i, out))
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
                e(k, out);
                e(v, out);
            }),
            Expr::UnaryExpr { expr, .. } => e(expr, out),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                e(lhs, out);
                e(rhs, out);
            }
            _ => {}
        }
    }
    let mut out = vec![];
    for r in &ast.policy {
        if let Rule::Spec { bodies, .. } = r.as_ref() {
            for b in bodies {
                q(&b.query, &mut out);
            }
        }
    }
    out
}

/// The name of the extension that records the tests' inputs.
const CAPTURE: &str = "__maestro_input";
/// At most this many captured inputs are kept.
const MAX_CAPTURED: usize = 512;

/// Every value the tests give `input` as they run on the original policy:
/// each `with input as X` of the test modules becomes
/// `with input as __maestro_input(X)`, an extension function that records
/// its argument and returns it. This finds the inputs that tests build in
/// local variables or helper rules (`inp := {"review": review(...)}` then
/// `with input as inp`), which the text alone does not give.
fn captured_inputs(set: &PolicySet, tests: &[String], limit: Duration, now_ns: i64) -> Vec<Value> {
    use std::sync::{Arc, Mutex};
    let store: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(vec![]));
    let sink = Arc::clone(&store);
    let r = guarded(|| {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(set.rego_v0);
        engine.set_strict_builtin_errors(false);
        engine.set_gather_prints(true);
        for (i, m) in set.modules.iter().enumerate() {
            let mut text = m.text.clone();
            if m.is_test {
                let mut spans = with_input_spans(&set.parse(i)?);
                spans.sort_unstable();
                spans.dedup();
                // Only the outermost (a `with` inside another's value is
                // recorded through it), edited from the end of the text.
                let outer: Vec<(usize, usize)> = spans
                    .iter()
                    .filter(|(s, e)| {
                        !spans
                            .iter()
                            .any(|(s2, e2)| (s2, e2) != (s, e) && s2 <= s && e <= e2)
                    })
                    .copied()
                    .collect();
                for (s, e) in outer.into_iter().rev() {
                    if text.get(s..e).is_some() {
                        text.insert(e, ')');
                        text.insert_str(s, &format!("{CAPTURE}("));
                    }
                }
            }
            engine
                .add_policy(m.path.clone(), text)
                .map_err(|e| syntax_error(&m.path, &e))?;
        }
        engine
            .add_data(to_value(&set.data)?)
            .map_err(|e| RegoError::Invalid(format!("{e:#}")))?;
        pin(&mut engine, now_ns)?;
        engine
            .add_extension(
                CAPTURE.into(),
                1,
                Box::new(move |args: Vec<Value>| {
                    let v = args.into_iter().next().unwrap_or(Value::Undefined);
                    if let Ok(mut seen) = sink.lock() {
                        if seen.len() < MAX_CAPTURED && !seen.contains(&v) {
                            seen.push(v.clone());
                        }
                    }
                    Ok(v)
                }),
            )
            .map_err(|e| RegoError::Invalid(format!("{e:#}")))?;
        engine.set_execution_timer_config(timer(limit));
        let mut ev = Evaluator {
            engine,
            rules: HashMap::new(),
        };
        for t in tests {
            let _ = ev.test_outcome(t);
        }
        Ok(())
    });
    if r.is_err() {
        return vec![];
    }
    let got = store.lock().map(|v| v.clone()).unwrap_or_default();
    got
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
                    b' ' if depth == 0
                        && started
                        && after[end..].trim_start().starts_with("with ") =>
                    {
                        break;
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
    /// Non-test rules: `data.<pkg>.<rule>` queries compared on the pool,
    /// the `roots` first ones named by no other rule.
    packages: Vec<String>,
    roots: usize,
    pool_base: Vec<Vec<Outcome>>,
    /// Per pool input: the `(module, line)`s the original evaluates on it.
    pool_cov: Vec<BTreeSet<(usize, u32)>>,
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

/// The verdict of the equivalence check on one survivor.
struct Equivalence {
    status: Status,
    detail: String,
    killing_input: Option<Json>,
    suggested_test: Option<String>,
    /// Pool inputs on which the original evaluates the mutated lines.
    reached: usize,
}

/// The lines `(module, line)` a mutant edits, in the original module.
fn mutated_lines(set: &PolicySet, m: &Mutant) -> Vec<(usize, u32)> {
    let extra = set
        .modules
        .get(m.module)
        .and_then(|md| md.text.get(m.start..m.end))
        .map(|t| t.matches('\n').count() as u32)
        .unwrap_or(0);
    (m.line..=m.line + extra).map(|l| (m.module, l)).collect()
}

/// The survivor told apart by pool input `i` at rule `p`: that input and a
/// `test_` rule checking the original's outcome there.
fn killing(ctx: &Ctx<'_>, m: &Mutant, v0: bool, i: usize, p: usize, reached: usize) -> Equivalence {
    let rule = ctx.packages.get(p).cloned().unwrap_or_default();
    let base = ctx.pool_base.get(i).and_then(|b| b.get(p));
    let input = ctx.pool.get(i);
    let want = match base {
        Some(Outcome::Value(v)) => Some(rego_literal(v)),
        _ => None,
    };
    let input_lit = input.map(rego_literal).unwrap_or_else(|| "{}".into());
    let name = format!("test_kills_{}", m.id.replace(':', "_"));
    let kw = if v0 { "" } else { " if" };
    let one_line = match &want {
        Some(w) => format!("{name}{kw} {{\n    {rule} == {w} with input as {input_lit}\n}}"),
        None => format!("{name}{kw} {{\n    not {rule} with input as {input_lit}\n}}"),
    };
    // regorus's v0 parser rejects some long one-line comparisons followed
    // by `with` (seen on Gatekeeper's messages, cause not isolated); the
    // same check split over statements parses, so the first form that
    // parses is suggested.
    let parses = |t: &str| {
        super::load::parse_module("suggested.rego", &format!("package p\n\n{t}\n"), !v0).is_ok()
    };
    let mut forms = vec![];
    if let Some(w) = &want {
        forms.push(format!(
            "{name}{kw} {{\n    got := {rule} with input as {input_lit}\n    got == {w}\n}}"
        ));
        forms.push(format!(
            "{name}{kw} {{\n    inp := {input_lit}\n    want := {w}\n    {rule} == want with input as inp\n}}"
        ));
    } else {
        forms.push(format!(
            "{name}{kw} {{\n    inp := {input_lit}\n    not {rule} with input as inp\n}}"
        ));
    }
    let test = if parses(&one_line) {
        one_line
    } else {
        forms.into_iter().find(|t| parses(t)).unwrap_or(one_line)
    };
    Equivalence {
        status: Status::Survived,
        detail: format!("differs from the original on a random input at {rule}"),
        killing_input: input.and_then(to_json),
        suggested_test: Some(test),
        reached,
    }
}

/// Differential evaluation of a survivor on the random pool.
///
/// Only the pool inputs on which the original policy evaluates one of the
/// mutated lines (regorus's line coverage, gathered once per run on the
/// original) can tell the mutant apart: up to the first evaluation of the
/// mutated code the two run alike. A survivor that no pool input reaches is
/// left *survived* (nothing supports calling it equivalent); one that some
/// inputs reach and none tells apart is flagged likely equivalent.
fn equivalence(ctx: &Ctx<'_>, m: &Mutant, v0: bool) -> Equivalence {
    let lines = mutated_lines(ctx.set, m);
    let reaching: Vec<usize> = ctx
        .pool_cov
        .iter()
        .enumerate()
        .filter(|(_, cov)| lines.iter().any(|l| cov.contains(l)))
        .map(|(i, _)| i)
        .collect();
    let survived = |detail: String, reached: usize| Equivalence {
        status: Status::Survived,
        detail,
        killing_input: None,
        suggested_test: None,
        reached,
    };
    if reaching.is_empty() {
        return survived(
            format!(
                "not reached: the original evaluates L{} on none of {} random inputs",
                m.line,
                ctx.pool.len()
            ),
            0,
        );
    }
    let Some(text) = ctx
        .set
        .modules
        .get(m.module)
        .and_then(|md| m.apply(&md.text))
    else {
        return survived(String::new(), reaching.len());
    };
    let Ok(mut ev) = ctx.evaluator(m, &text) else {
        return survived(String::new(), reaching.len());
    };
    // A difference at a rule no other rule names (the decision) makes the
    // better test; one only at a helper rule is kept in case none does.
    let mut helper_only: Option<(usize, usize)> = None;
    for &i in &reaching {
        let Some(input) = ctx.pool.get(i) else {
            continue;
        };
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
                if p < ctx.roots {
                    return killing(ctx, m, v0, i, p, reaching.len());
                }
                helper_only.get_or_insert((i, p));
                break;
            }
        }
    }
    if let Some((i, p)) = helper_only {
        return killing(ctx, m, v0, i, p, reaching.len());
    }
    Equivalence {
        status: Status::Equivalent,
        detail: format!(
            "likely equivalent: L{} reached on {} of {} random inputs, no difference",
            m.line,
            reaching.len(),
            ctx.pool.len()
        ),
        killing_input: None,
        suggested_test: None,
        reached: reaching.len(),
    }
}

type Pool = (Vec<Value>, Vec<Vec<Outcome>>, Vec<BTreeSet<(usize, u32)>>);
/// A candidate input, the original's outcomes on it and the lines it evaluates.
type Candidate = (Value, Vec<Outcome>, BTreeSet<(usize, u32)>);

/// Where the tests' inputs come from, for [`random_pool`].
struct Seeding<'a> {
    decisions: &'a [Decision],
    tests: &'a [String],
    /// Time limit of each test evaluation while capturing inputs.
    limit: Duration,
    now_ns: i64,
}

/// The random input pool of the equivalence check, with the original's
/// outcome on each rule and the lines it evaluates, per input.
///
/// Candidates: the tests' and decisions' inputs (the seeds), perturbations of
/// the seeds (values changed, fields removed), and inputs grown from the
/// seeds and from `{}` with the input paths the policy reads (see
/// [`super::shape`]), twice as many of those. The original runs on every
/// candidate with regorus's coverage on; the pool keeps, in candidate order,
/// each candidate that evaluates a line no earlier pick does, then fills up
/// to `equivalence_samples` with random picks. All from `opts.seed`.
fn random_pool(
    set: &PolicySet,
    seeding: &Seeding<'_>,
    opts: &Options,
    base_ev: &mut Evaluator,
    packages: &[String],
) -> Result<Pool> {
    let Seeding {
        decisions,
        tests,
        limit,
        now_ns,
    } = *seeding;
    let n = opts.equivalence_samples;
    let (strs, nums) = constants(set);
    let mut seeds: Vec<Json> = decisions.iter().map(|d| d.input.clone()).collect();
    let captured = captured_inputs(set, tests, limit, now_ns);
    for j in captured
        .iter()
        .filter_map(to_json)
        .chain(test_inputs(set, base_ev))
    {
        if !seeds.contains(&j) {
            seeds.push(j);
        }
    }
    let mut bases = seeds.clone();
    let empty = Json::Object(Default::default());
    if !bases.contains(&empty) {
        bases.push(empty);
    }
    let mut asts = vec![];
    for (i, m) in set.modules.iter().enumerate() {
        if !m.is_test {
            asts.push(set.parse(i)?);
        }
    }
    let gen = Generator::new(input_shape(asts.iter()), &strs, &nums, &seeds);
    let mut rng = Rng(opts.seed);
    let mut candidates: Vec<Json> = seeds.iter().take(2 * n).cloned().collect();
    let mut guard = 0;
    let mut made = 0;
    while made < 3 * n && guard < 3 * n * 20 {
        guard += 1;
        let Some(seed) = bases.get(rng.below(bases.len())) else {
            break;
        };
        let v = if made % 3 == 0 && !seeds.is_empty() {
            let mut v = seeds[rng.below(seeds.len())].clone();
            for _ in 0..edits(&mut rng) {
                perturb(&mut v, &mut rng, &strs, &nums);
            }
            v
        } else {
            gen.grow(seed, &mut rng)
        };
        if !candidates.contains(&v) {
            candidates.push(v);
            made += 1;
        }
    }
    // The original on every candidate, with line coverage.
    let mut cov_ev = Evaluator {
        engine: base_ev.engine.clone(),
        rules: base_ev.rules.clone(),
    };
    guarded(|| {
        cov_ev.engine.set_enable_coverage(true);
        Ok(())
    })?;
    let module_of: HashMap<&str, usize> = set
        .modules
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.is_test)
        .map(|(i, m)| (m.path.as_str(), i))
        .collect();
    let mut evaluated: Vec<Candidate> = vec![];
    for c in &candidates {
        let Ok(v) = to_value(c) else { continue };
        let outs: Vec<Outcome> = packages
            .iter()
            .map(|p| strip_tests(cov_ev.outcome(p, Some(&v))))
            .collect();
        let cov = guarded(|| {
            let report = cov_ev
                .engine
                .get_coverage_report()
                .map_err(|e| RegoError::Invalid(format!("coverage: {e:#}")))?;
            cov_ev.engine.clear_coverage_data();
            let mut lines = BTreeSet::new();
            for f in &report.files {
                if let Some(&i) = module_of.get(f.path.as_str()) {
                    lines.extend(f.covered.iter().map(|&l| (i, l)));
                }
            }
            Ok(lines)
        })
        .unwrap_or_default();
        evaluated.push((v, outs, cov));
    }
    // Greedy cover: the candidate adding the most lines not yet evaluated
    // (the first of equals), while any adds one.
    let mut chosen = vec![false; evaluated.len()];
    let mut seen: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut picks = vec![];
    while picks.len() < n {
        let best = evaluated
            .iter()
            .enumerate()
            .filter(|(i, _)| !chosen[*i])
            .map(|(i, (_, _, cov))| (cov.difference(&seen).count(), i))
            .filter(|(gain, _)| *gain > 0)
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let Some((_, i)) = best else { break };
        seen.extend(evaluated[i].2.iter().copied());
        chosen[i] = true;
        picks.push(i);
    }
    let mut rest: Vec<usize> = (0..evaluated.len()).filter(|&i| !chosen[i]).collect();
    while picks.len() < n && !rest.is_empty() {
        picks.push(rest.remove(rng.below(rest.len())));
    }
    picks.sort_unstable();
    let mut pool = vec![];
    let mut pool_base = vec![];
    let mut pool_cov = vec![];
    for (i, (v, outs, cov)) in evaluated.into_iter().enumerate() {
        if picks.binary_search(&i).is_ok() {
            pool.push(v);
            pool_base.push(outs);
            pool_cov.push(cov);
        }
    }
    Ok((pool, pool_base, pool_cov))
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

    // Each non-test rule of the policy on its own (not the package
    // document, which would evaluate every `test_` rule sharing the
    // package for each random input). The rules no other rule names (the
    // decisions: `violation`, `deny`, `allow`) come first, so that a
    // suggested test checks one of them rather than a helper when both differ.
    let mut packages = BTreeSet::new();
    let mut named_by_others: BTreeSet<String> = BTreeSet::new();
    for (i, m) in set.modules.iter().enumerate() {
        if !m.is_test {
            let ast = set.parse(i)?;
            let pkg = package_path(&ast);
            for r in &ast.policy {
                let name = rule_name(r);
                let first = name.split(['.', '[']).next().unwrap_or("").trim();
                let mut ids = idents(r.span().text());
                ids.remove(first);
                named_by_others.extend(ids);
                if let Rule::Spec {
                    head: regorus::unstable::RuleHead::Func { .. },
                    ..
                } = r.as_ref()
                {
                    continue;
                }
                if !first.is_empty() && !first.starts_with("test_") {
                    packages.insert((first.to_string(), format!("data.{pkg}.{first}")));
                }
            }
        }
    }
    let mut packages: Vec<(String, String)> = packages.into_iter().collect();
    packages.sort_by_key(|(first, q)| (named_by_others.contains(first), q.clone()));
    let roots = packages
        .iter()
        .filter(|(first, _)| !named_by_others.contains(first))
        .count();
    let packages: Vec<String> = packages.into_iter().map(|(_, q)| q).collect();
    let (pool, pool_base, pool_cov) = if opts.equivalence_samples > 0 {
        let seeding = Seeding {
            decisions,
            tests: &tests,
            limit: timeout.saturating_mul(4),
            now_ns,
        };
        random_pool(set, &seeding, opts, &mut base_ev, &packages)?
    } else {
        (vec![], vec![], vec![])
    };

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
        // The equivalence check's method: verdicts of an older one are not reused.
        b"equivalence: structure-aware pool, reach by line coverage",
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
        roots,
        pool_base,
        pool_cov,
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
                        reached: c.reached,
                        cached: true,
                        millis: 0.0,
                        key: key.clone(),
                    }
                } else {
                    let (mut status, mut detail) = run_one(&ctx, m);
                    let mut ki = None;
                    let mut st = None;
                    let mut reached = None;
                    if status == Status::Survived && !ctx.pool.is_empty() {
                        let e = equivalence(&ctx, m, set.rego_v0);
                        status = e.status;
                        detail = e.detail;
                        ki = e.killing_input;
                        st = e.suggested_test;
                        reached = Some(e.reached);
                    }
                    MutantResult {
                        mutant: m.clone(),
                        status,
                        detail,
                        killing_input: ki,
                        suggested_test: st,
                        reached,
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
                    reached: r.reached,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(policy: &str, test: &str) -> PolicySet {
        crate::rego_mut::test_set(policy, Some(test))
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

    const TWO_LISTS: &str = "package p\n\ndeny contains msg if {\n    c := input.spec.containers[_]\n    not startswith(c.image, \"ok/\")\n    msg := sprintf(\"bad %v\", [c.image])\n}\n\ndeny contains msg if {\n    c := input.spec.ephemeralContainers[_]\n    not startswith(c.image, \"ok/\")\n    msg := sprintf(\"bad %v\", [c.image])\n}\n";
    const TWO_LISTS_TEST: &str = "package p\n\ntest_bad if { count(deny) == 1 with input as {\"spec\": {\"containers\": [{\"image\": \"evil/x\"}]}} }\n\ntest_ok if { count(deny) == 0 with input as {\"spec\": {\"containers\": [{\"image\": \"ok/x\"}]}} }\n";

    /// Mutants of the rule over `ephemeralContainers`, which no test input
    /// has: perturbing the tests' inputs never reaches them (they were
    /// flagged equivalent); inputs grown from the policy's paths do, and the
    /// suggested tests kill them.
    #[test]
    fn untested_field_gives_survivors_with_killing_tests() {
        let s = set(TWO_LISTS, TWO_LISTS_TEST);
        let o = Options::default();
        let r = run(&s, &[], &o, &no_prior, None).expect("run");
        let second: Vec<&MutantResult> = r
            .mutants
            .iter()
            .filter(|m| m.mutant.line >= 9 && !matches!(m.status, Status::Stillborn))
            .collect();
        assert!(!second.is_empty());
        for m in &second {
            assert_ne!(
                m.status,
                Status::Equivalent,
                "{} {}",
                m.mutant.diff,
                m.detail
            );
            assert_ne!(m.status, Status::Killed, "{} {}", m.mutant.diff, m.detail);
        }
        let negation = second
            .iter()
            .find(|m| m.mutant.operator == Operator::NegationRemove)
            .expect("negation removal in the untested rule");
        assert_eq!(negation.status, Status::Survived);
        assert!(negation.reached.unwrap_or(0) > 0);
        let ki = negation.killing_input.as_ref().expect("killing input");
        assert!(ki["spec"]["ephemeralContainers"].is_array(), "{ki}");
        // Add every suggested test: each of those mutants is then killed.
        let suggested: Vec<String> = second
            .iter()
            .filter_map(|m| m.suggested_test.clone())
            .collect();
        assert!(suggested.len() >= second.len() / 2, "{suggested:#?}");
        let stronger = set(
            TWO_LISTS,
            &format!("{TWO_LISTS_TEST}\n{}\n", suggested.join("\n\n")),
        );
        let r2 = run(&stronger, &[], &o, &no_prior, None).expect("run 2");
        for m in &second {
            if m.suggested_test.is_none() {
                continue;
            }
            let again = r2
                .mutants
                .iter()
                .find(|x| x.mutant.id == m.mutant.id)
                .expect("same mutant");
            assert_eq!(
                again.status,
                Status::Killed,
                "{} {}",
                again.mutant.diff,
                again.detail
            );
        }
    }

    /// `input.n >= 1` after `input.n > 5`: `>= 1` → `> 1` cannot change
    /// anything (Rego orders values of every type, so also not for strings
    /// or null); the line is reached, so the flag stands.
    #[test]
    fn reached_equivalent_mutant_is_still_flagged() {
        let s = set(
            "package p\n\nallow if {\n    input.n > 5\n    input.n >= 1\n}\n",
            "package p\n\ntest_big if { allow with input as {\"n\": 10} }\n\ntest_small if { not allow with input as {\"n\": 3} }\n",
        );
        let r = run(&s, &[], &Options::default(), &no_prior, None).expect("run");
        let m = r
            .mutants
            .iter()
            .find(|m| m.mutant.original == ">=" && m.mutant.replacement == ">")
            .expect("ROR >= to >");
        assert_eq!(m.status, Status::Equivalent, "{}", m.detail);
        assert!(m.reached.unwrap_or(0) > 0);
        assert!(m.suggested_test.is_none());
    }

    /// A line the original never evaluates on the pool (the rule needs
    /// `data.config.on`, which no input sets): not equivalent, survived.
    #[test]
    fn unreached_survivor_is_not_equivalent() {
        let s = set(
            "package p\n\nallow if input.n > 5\n\nextra if {\n    data.config.on\n    input.n > 100\n}\n",
            "package p\n\ntest_big if { allow with input as {\"n\": 10} }\n\ntest_small if { not allow with input as {\"n\": 3} }\n",
        );
        let r = run(&s, &[], &Options::default(), &no_prior, None).expect("run");
        let m = r
            .mutants
            .iter()
            .find(|m| m.mutant.original == ">" && m.mutant.line == 7)
            .expect("ROR on line 7");
        assert_eq!(m.status, Status::Survived, "{}", m.detail);
        assert_eq!(m.reached, Some(0));
        assert!(m.detail.starts_with("not reached"), "{}", m.detail);
        for m in r.mutants.iter().filter(|m| m.mutant.line == 7) {
            assert_ne!(m.status, Status::Equivalent, "{}", m.mutant.diff);
        }
    }

    /// Inputs built in a local variable or a helper rule of the tests are
    /// seeds too (captured as the tests run), so the survivors of a rule
    /// that needs their values are reached.
    #[test]
    fn tests_inputs_in_variables_are_captured() {
        let s = set(
            "package p\n\ndeny contains msg if {\n    input.review.object.metadata.name == \"system:edit\"\n    r := input.review.object.rules[_]\n    r.verbs[_] == \"create\"\n    msg := \"no\"\n}\n",
            "package p\n\nreview(verbs) := {\"object\": {\"metadata\": {\"name\": \"system:edit\"}, \"rules\": [{\"verbs\": verbs}]}}\n\ntest_create if {\n    inp := {\"review\": review([\"create\"])}\n    count(deny) == 1 with input as inp\n}\n",
        );
        let ev = &mut Evaluator::new(&s, None, None).expect("evaluator");
        // The text alone gives nothing (`inp` is local).
        assert!(test_inputs(&s, ev).is_empty());
        let tests = s.tests().expect("tests");
        let got = captured_inputs(&s, &tests, Duration::from_secs(2), 0);
        let want = to_value(&serde_json::json!({"review": {"object": {"metadata": {"name": "system:edit"}, "rules": [{"verbs": ["create"]}]}}})).expect("value");
        assert_eq!(got, vec![want]);
        let r = run(&s, &[], &Options::default(), &no_prior, None).expect("run");
        // `msg := "no"` → `""` survives the test (it counts), and is told
        // apart on the captured input.
        let m = r
            .mutants
            .iter()
            .find(|m| m.mutant.line == 7 && m.mutant.replacement == "\"\"")
            .expect("constant mutant");
        assert_eq!(m.status, Status::Survived, "{}", m.detail);
        assert!(m.suggested_test.is_some(), "{}", m.detail);
    }
}
