//! Mutation testing for Rego policies, over the `regorus` interpreter.
//!
//! A policy set is loaded the way `opa test` loads it ([`load`]): `.rego`
//! modules (files ending in `_test.rego` hold the `test_` rules) and
//! `data.json` / `data.yaml` documents placed at their folder's path.
//! [`ops`] walks the regorus AST and proposes mutants at source spans
//! (relational operator replacement restricted to the subsumption set of
//! Kaminski, Ammann and Offutt, negation, statement and rule deletion,
//! constant boundaries, builtin swaps, `some`/`every`, `default`, `else` and
//! `with` removal, ...). [`run`] compiles every mutant (stillborn ones do not
//! compile), runs the policy's own tests and any labelled decisions against it
//! in parallel (rayon) with a per-mutant deadline, and flags likely-equivalent
//! survivors by differential evaluation on random inputs ([`shape`] grows
//! them with the input paths the policy reads; a survivor whose lines no
//! random input reaches is never flagged). Scores follow PIT
//! and Stryker: `killed / (generated − stillborn − equivalent)`, where
//! timeouts and errors count as detected but are listed apart.
//!
//! regorus may panic on odd input; every call into it from here runs under
//! `catch_unwind` so a panic becomes [`RegoError::Panic`] for that mutant only.

pub mod check;
pub mod load;
pub mod ops;
pub mod run;
pub mod shape;
pub mod v1;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

pub use load::{Decision, Module, PolicySet, Skipped};
pub use ops::{Mutant, Operator};
pub use run::{Baseline, Counts, MutantResult, Options, Report, Status};

/// Errors of Rego loading, compiling and mutation runs.
#[derive(Debug, thiserror::Error)]
pub enum RegoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax error, at `file:line:col`.
    #[error("{file}:{line}:{col}: syntax error: {message}")]
    Syntax {
        file: String,
        line: u32,
        col: u32,
        message: String,
    },
    /// The modules parse but do not compile together (missing import,
    /// undefined reference, recursion, ...).
    #[error("compile error: {0}")]
    Compile(String),
    /// A `data.json` / `data.yaml` document is malformed or conflicts.
    #[error("data {path}: {reason}")]
    Data { path: String, reason: String },
    /// A decision-log or decision-set line is malformed.
    #[error("decisions line {line}: {reason}")]
    Decision { line: usize, reason: String },
    #[error("evaluation of {query}: {reason}")]
    Eval { query: String, reason: String },
    #[error("evaluation of {query} exceeded the time limit of {limit_ms} ms")]
    Timeout { query: String, limit_ms: u64 },
    #[error("rego: {0}")]
    Invalid(String),
    /// regorus panicked; caught at this boundary.
    #[error("regorus panicked: {0}")]
    Panic(String),
}

pub type Result<T> = std::result::Result<T, RegoError>;

/// Run `f`, turning a panic inside regorus into [`RegoError::Panic`].
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(RegoError::Panic(what))
        }
    }
}

/// Turn a regorus parse error message (`file:line:col: error: msg` followed
/// by a source excerpt) into [`RegoError::Syntax`].
pub(crate) fn syntax_error(file: &str, err: &anyhow::Error) -> RegoError {
    let text = format!("{err:#}");
    // regorus formats "--> <file>:<line>:<col>", an excerpt, "error: <msg>".
    let mut line = 0;
    let mut col = 0;
    let mut message = String::new();
    for l in text.lines() {
        let t = l.trim();
        if let Some(loc) = t.strip_prefix("-->") {
            let loc = loc.trim();
            let mut parts = loc.rsplitn(3, ':');
            col = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            line = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        } else if let Some(m) = t.strip_prefix("error:") {
            message = m.trim().to_string();
        }
    }
    if message.is_empty() {
        message = text.lines().next().unwrap_or("").trim().to_string();
    }
    RegoError::Syntax {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

/// Whether an anyhow error from regorus is its execution time limit.
pub(crate) fn is_time_limit(err: &anyhow::Error) -> bool {
    if err
        .downcast_ref::<regorus::LimitError>()
        .is_some_and(|e| matches!(e, regorus::LimitError::TimeLimitExceeded { .. }))
    {
        return true;
    }
    format!("{err:#}").contains("exceeded time limit")
}

/// Evaluate `query` (a reference such as `data.authz.allow`) against a whole
/// policy set with `input`; `None` when undefined. A convenience for callers
/// that evaluate one policy many times: build once with [`run::Evaluator`].
pub fn eval_once(
    set: &PolicySet,
    query: &str,
    input: &serde_json::Value,
) -> Result<Option<serde_json::Value>> {
    let mut ev = run::Evaluator::new(set, None, None)?;
    ev.eval(query, Some(input))
}

/// A policy set of one policy module (and, if given, one test module), for
/// the unit tests of the rego modules.
#[cfg(test)]
pub(crate) fn test_set(policy: &str, test: Option<&str>) -> PolicySet {
    let mut modules = vec![Module {
        path: "p.rego".into(),
        text: policy.into(),
        is_test: false,
    }];
    if let Some(t) = test {
        modules.push(Module {
            path: "p_test.rego".into(),
            text: t.into(),
            is_test: true,
        });
    }
    PolicySet::from_modules(modules, serde_json::Value::Null).expect("test policy set")
}
