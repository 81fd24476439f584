//! Loading policies, data and decision sets the way `opa` does.
//!
//! A path is a `.rego` file, a data file, or a folder walked recursively
//! (hidden folders skipped). In a folder, `data.json` / `data.yaml` /
//! `data.yml` are placed at the folder's path relative to the root, as OPA's
//! loader does (`a/b/data.json` becomes `data.a.b`); data files given
//! directly are merged at the root. Objects merge deeply; a conflict is an
//! error naming the path. Modules are parsed as Rego v1 unless one of them
//! only parses as v0 (then the set is evaluated in v0 mode, as
//! `opa --v0-compatible` would).

use std::path::{Path, PathBuf};

use regorus::unstable::{Parser, Rule, RuleHead};
use regorus::Source;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::{guarded, syntax_error, RegoError, Result};

/// One Rego module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Module {
    /// Path as given (or relative to the loaded folder).
    pub path: String,
    pub text: String,
    /// A `_test.rego` file, or a module whose rules are all `test_` rules.
    pub is_test: bool,
}

/// A policy set: modules plus the data document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicySet {
    pub modules: Vec<Module>,
    pub data: Json,
    /// Evaluate in Rego v0 mode (some module is v0-only syntax).
    pub rego_v0: bool,
}

/// Something a load or run skipped, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

/// One labelled decision: evaluate `query` with `input`; `expected` is the
/// label (for a mutation run the original policy's answer is the oracle and
/// `expected` is reported when it disagrees).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub query: String,
    pub input: Json,
    #[serde(default)]
    pub expected: Option<Json>,
}

fn io(path: &Path, e: std::io::Error) -> RegoError {
    RegoError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Whether a file name is a data document OPA loads from a folder.
fn is_data_name(name: &str) -> bool {
    matches!(name, "data.json" | "data.yaml" | "data.yml")
}

fn parse_data(path: &Path, text: &str) -> Result<Json> {
    let is_yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "yaml" || e == "yml");
    let bad = |reason: String| RegoError::Data {
        path: path.display().to_string(),
        reason,
    };
    let v: Json = if is_yaml {
        let v = guarded(|| regorus::Value::from_yaml_str(text).map_err(|e| bad(format!("{e:#}"))))?;
        let s = v.to_json_str().map_err(|e| bad(format!("{e:#}")))?;
        serde_json::from_str(&s).map_err(|e| bad(e.to_string()))?
    } else {
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?
    };
    Ok(v)
}

/// Deep-merge `v` into `root` at `prefix`.
pub fn merge_at(root: &mut Json, prefix: &[String], v: Json, origin: &str) -> Result<()> {
    let mut cur = root;
    for (i, k) in prefix.iter().enumerate() {
        let obj = match cur {
            Json::Object(m) => m,
            _ => {
                return Err(RegoError::Data {
                    path: origin.into(),
                    reason: format!("data.{} is not an object", prefix[..i].join(".")),
                })
            }
        };
        cur = obj
            .entry(k.clone())
            .or_insert_with(|| Json::Object(Map::new()));
    }
    merge(cur, v, &prefix.join("."), origin)
}

fn merge(dst: &mut Json, src: Json, at: &str, origin: &str) -> Result<()> {
    match (dst, src) {
        (Json::Object(d), Json::Object(s)) => {
            for (k, v) in s {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match d.get_mut(&k) {
                    Some(existing) => merge(existing, v, &here, origin)?,
                    None => {
                        d.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (d, s) if *d == s => Ok(()),
        (d, s) if d.as_object().is_some_and(|m| m.is_empty()) => {
            *d = s;
            Ok(())
        }
        _ => Err(RegoError::Data {
            path: origin.into(),
            reason: format!("conflicting values at data.{at}"),
        }),
    }
}

/// Parse one module; `Ok(true)` if it needs v0 mode.
pub(crate) fn parse_module(path: &str, text: &str, v1: bool) -> Result<regorus::unstable::Module> {
    guarded(|| {
        let source = Source::from_contents(path.to_string(), text.to_string())
            .map_err(|e| syntax_error(path, &e))?;
        let mut parser = Parser::new(&source).map_err(|e| syntax_error(path, &e))?;
        if v1 {
            parser
                .enable_rego_v1()
                .map_err(|e| syntax_error(path, &e))?;
        }
        parser.parse().map_err(|e| syntax_error(path, &e))
    })
}

/// The head reference text of a rule (`allow`, `deny`, `test_x`, `f`).
pub fn rule_name(rule: &Rule) -> String {
    match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr.span().text().to_string(),
        },
        Rule::Default { refr, .. } => refr.span().text().to_string(),
    }
}

/// The package path text of a module (`authz`, `kubernetes.admission`).
pub fn package_path(m: &regorus::unstable::Module) -> String {
    m.package.refr.span().text().to_string()
}

impl PolicySet {
    /// Build from in-memory modules and data, choosing v0/v1 as `opa` would.
    pub fn from_modules(mut modules: Vec<Module>, data: Json) -> Result<Self> {
        let mut rego_v0 = false;
        for m in &modules {
            if parse_module(&m.path, &m.text, true).is_err() {
                // v1 failed: accept v0 syntax, but report the v0 error if
                // that fails too (it is the more permissive grammar).
                match parse_module(&m.path, &m.text, false) {
                    Ok(_) => rego_v0 = true,
                    Err(_) => {
                        // Report the v1 error: it names the first problem
                        // in the syntax users write today.
                        parse_module(&m.path, &m.text, true)?;
                    }
                }
            }
        }
        let data = if data.is_null() {
            Json::Object(Map::new())
        } else {
            data
        };
        if !data.is_object() {
            return Err(RegoError::Data {
                path: "(data)".into(),
                reason: "the data document must be an object".into(),
            });
        }
        number_duplicate_tests(&mut modules, !rego_v0)?;
        Ok(PolicySet {
            modules,
            data,
            rego_v0,
        })
    }

    /// Load from paths (files or folders) plus extra data files.
    ///
    /// Modules that fail to parse are an error naming `file:line:col`.
    pub fn load(paths: &[PathBuf], data_paths: &[PathBuf]) -> Result<Self> {
        let mut modules = vec![];
        let mut data = Json::Object(Map::new());
        for p in paths.iter().chain(data_paths.iter()) {
            let meta = std::fs::metadata(p).map_err(|e| io(p, e))?;
            if meta.is_dir() {
                load_dir(p, &mut modules, &mut data)?;
            } else {
                load_file(p, &[], &mut modules, &mut data, true)?;
            }
        }
        if modules.is_empty() {
            return Err(RegoError::Invalid(format!(
                "no .rego modules under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        Self::from_modules(modules, data)
    }

    /// The parsed AST of module `i`.
    pub fn parse(&self, i: usize) -> Result<regorus::unstable::Module> {
        let m = self
            .modules
            .get(i)
            .ok_or_else(|| RegoError::Invalid(format!("no module {i}")))?;
        parse_module(&m.path, &m.text, !self.rego_v0)
    }

    /// `data.<pkg>.<rule>` for every `test_` rule, in source order, once each.
    pub fn tests(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = vec![];
        for (i, m) in self.modules.iter().enumerate() {
            let ast = self.parse(i)?;
            let pkg = package_path(&ast);
            for r in &ast.policy {
                let name = rule_name(r);
                if name.starts_with("test_") && !matches!(r.as_ref(), Rule::Default { .. }) {
                    let q = format!("data.{pkg}.{name}");
                    if !out.contains(&q) {
                        out.push(q);
                    }
                }
            }
            let _ = m;
        }
        Ok(out)
    }
}

/// `opa test` runs every `test_` rule on its own, even when several share a
/// name (it reports them as `test_x#01`, `test_x#02`); evaluated by name,
/// such rules would be one rule whose bodies are or-ed, and a failing body
/// would hide behind a passing one. So the second and later `test_` rules of
/// a name in a package are renamed `test_x__2`, `test_x__3`, ... in the
/// test modules' text (which is never mutated).
fn number_duplicate_tests(modules: &mut [Module], v1: bool) -> Result<()> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for m in modules.iter_mut() {
        if !m.is_test {
            continue;
        }
        let ast = parse_module(&m.path, &m.text, v1)?;
        let pkg = package_path(&ast);
        let mut edits: Vec<(usize, usize, String)> = vec![];
        for r in &ast.policy {
            if matches!(r.as_ref(), Rule::Default { .. }) {
                continue;
            }
            let name = rule_name(r);
            if !name.starts_with("test_") {
                continue;
            }
            let n = seen.entry(format!("{pkg}.{name}")).or_insert(0);
            *n += 1;
            let start = r.span().start as usize;
            if *n > 1 && m.text.get(start..start + name.len()) == Some(name.as_str()) {
                edits.push((start, start + name.len(), format!("{name}__{n}")));
            }
        }
        for (s, e, new) in edits.into_iter().rev() {
            m.text.replace_range(s..e, &new);
        }
    }
    Ok(())
}

fn load_file(
    p: &Path,
    prefix: &[String],
    modules: &mut Vec<Module>,
    data: &mut Json,
    explicit: bool,
) -> Result<()> {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let is_rego = name.ends_with(".rego");
    let is_data = is_data_name(name)
        || (explicit
            && (name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")));
    if !is_rego && !is_data {
        return Ok(());
    }
    let text = std::fs::read_to_string(p).map_err(|e| io(p, e))?;
    if is_rego {
        modules.push(Module {
            path: p.display().to_string(),
            text,
            is_test: name.ends_with("_test.rego"),
        });
    } else {
        let v = parse_data(p, &text)?;
        merge_at(data, prefix, v, &p.display().to_string())?;
    }
    Ok(())
}

fn load_dir(root: &Path, modules: &mut Vec<Module>, data: &mut Json) -> Result<()> {
    let walker = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || !e.file_name().to_str().is_some_and(|n| n.starts_with('.'))
        });
    for entry in walker {
        let entry = entry.map_err(|e| RegoError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let p = entry.path();
        let rel = p.strip_prefix(root).unwrap_or(p);
        let prefix: Vec<String> = rel
            .parent()
            .map(|d| {
                d.components()
                    .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        load_file(p, &prefix, modules, data, false)?;
    }
    Ok(())
}

/// Parse a decision set: JSON lines of `{input, expected[, query]}` or OPA
/// decision-log events (`{path, input, result, labels...}`). Malformed lines
/// are skipped and reported, never fatal; `default_query` applies to lines
/// without a query or path.
pub fn parse_decisions(text: &str, default_query: Option<&str>) -> (Vec<Decision>, Vec<Skipped>) {
    let mut out = vec![];
    let mut skipped = vec![];
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_decision_line(line, default_query) {
            Ok(d) => out.push(d),
            Err(reason) => skipped.push(Skipped {
                what: format!("decisions line {n}"),
                reason,
            }),
        }
    }
    (out, skipped)
}

/// `authz/allow` or `data.authz.allow` → `data.authz.allow`.
pub fn query_of_path(path: &str) -> String {
    let p = path.trim().trim_start_matches('/');
    if p.starts_with("data.") || p == "data" {
        p.to_string()
    } else if p.is_empty() {
        "data".into()
    } else {
        format!("data.{}", p.replace('/', "."))
    }
}

fn parse_decision_line(
    line: &str,
    default_query: Option<&str>,
) -> std::result::Result<Decision, String> {
    let v: Json = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let input = obj.get("input").cloned().ok_or("no \"input\" field")?;
    let query = match (obj.get("query"), obj.get("path")) {
        (Some(Json::String(q)), _) => query_of_path(q),
        (_, Some(Json::String(p))) => query_of_path(p),
        (Some(_), _) | (_, Some(_)) => return Err("\"query\"/\"path\" must be a string".into()),
        (None, None) => match default_query {
            Some(q) => query_of_path(q),
            None => return Err("no \"query\" or \"path\" field and no default query".into()),
        },
    };
    let expected = obj.get("expected").or_else(|| obj.get("result")).cloned();
    Ok(Decision {
        query,
        input,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_detected_and_tests_listed() {
        let set = PolicySet::from_modules(
            vec![
                Module {
                    path: "p.rego".into(),
                    text: "package p\nallow { input.x > 1 }\n".into(),
                    is_test: false,
                },
                Module {
                    path: "p_test.rego".into(),
                    text: "package p\ntest_a { allow with input as {\"x\": 2} }\n".into(),
                    is_test: true,
                },
            ],
            Json::Null,
        )
        .expect("loads");
        assert!(set.rego_v0);
        assert_eq!(set.tests().expect("tests"), vec!["data.p.test_a"]);
    }

    #[test]
    fn duplicate_test_names_run_apart() {
        let set = PolicySet::from_modules(
            vec![
                Module {
                    path: "p.rego".into(),
                    text: "package p\nallow if input.x > 1\n".into(),
                    is_test: false,
                },
                Module {
                    path: "p_test.rego".into(),
                    text: "package p\ntest_a if allow with input as {\"x\": 2}\ntest_a if not allow with input as {\"x\": 2}\n".into(),
                    is_test: true,
                },
            ],
            Json::Null,
        )
        .expect("loads");
        assert_eq!(
            set.tests().expect("tests"),
            vec!["data.p.test_a", "data.p.test_a__2"]
        );
    }

    #[test]
    fn syntax_error_has_line_and_col() {
        let e = PolicySet::from_modules(
            vec![Module {
                path: "bad.rego".into(),
                text: "package p\n\nallow if {\n  input.x >\n}\n".into(),
                is_test: false,
            }],
            Json::Null,
        )
        .expect_err("bad syntax");
        match e {
            RegoError::Syntax { file, line, .. } => {
                assert_eq!(file, "bad.rego");
                assert!(line >= 3, "line {line}");
            }
            other => panic!("wrong error {other}"),
        }
    }

    #[test]
    fn data_merges_and_conflicts() {
        let mut root = Json::Object(Map::new());
        merge_at(&mut root, &["a".into()], serde_json::json!({"x": 1}), "f1").expect("ok");
        merge_at(&mut root, &["a".into()], serde_json::json!({"y": 2}), "f2").expect("ok");
        assert_eq!(root, serde_json::json!({"a": {"x": 1, "y": 2}}));
        let e = merge_at(&mut root, &[], serde_json::json!({"a": {"x": 3}}), "f3");
        assert!(matches!(e, Err(RegoError::Data { .. })));
    }

    #[test]
    fn decisions_skip_malformed_lines() {
        let text = "{\"input\": {\"a\": 1}, \"expected\": true, \"query\": \"x/allow\"}\nnot json\n{\"expected\": 1}\n\n{\"path\": \"x/allow\", \"input\": {}, \"result\": false}\n";
        let (d, s) = parse_decisions(text, None);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].query, "data.x.allow");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].what, "decisions line 2");
    }
}
