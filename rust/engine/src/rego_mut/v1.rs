//! Rewrite of Rego v0 modules into v1 syntax, for engines (OPA 1.x as
//! embedded by `opa-golib-python-bindings`) that parse v1 only.
//!
//! The edits are those of `opa fmt --v0-v1` that change parsing: `if` before
//! every rule body, and `contains` in partial-set heads (`deny[msg] { .. }` →
//! `deny contains msg if { .. }`). Modules that already import `rego.v1` are
//! returned unchanged. v0-only forms with no one-to-one v1 spelling (several
//! query blocks on one head) are refused. The result is checked to parse as
//! v1.

use regorus::unstable::{Parser, Rule, RuleHead};
use regorus::Source;

use super::{guarded, syntax_error, RegoError, Result};

/// Rewrite `text` (v0) into v1.
pub fn to_v1(path: &str, text: &str) -> Result<String> {
    let ast = guarded(|| {
        let source = Source::from_contents(path.to_string(), text.to_string())
            .map_err(|e| syntax_error(path, &e))?;
        let mut p = Parser::new(&source).map_err(|e| syntax_error(path, &e))?;
        p.parse().map_err(|e| syntax_error(path, &e))
    })?;
    if ast.rego_v1 {
        return Ok(text.to_string());
    }
    // (position, deleted length, inserted text), applied from the end.
    let mut edits: Vec<(usize, usize, String)> = vec![];
    for r in &ast.policy {
        let Rule::Spec { head, bodies, .. } = r.as_ref() else {
            continue;
        };
        if let RuleHead::Set {
            span,
            refr,
            key: Some(k),
        } = head
        {
            let head_text = span.text();
            let name = refr.span().text();
            if !head_text.contains(" contains ") {
                // The key as written between the brackets (a key's own span
                // can stop short of a nested object's closing brace).
                let key = head_text
                    .strip_prefix(name)
                    .map(str::trim_start)
                    .and_then(|t| t.strip_prefix('['))
                    .and_then(|t| t.trim_end().strip_suffix(']'))
                    .map(str::to_string)
                    .unwrap_or_else(|| k.span().text().to_string());
                edits.push((
                    span.start as usize,
                    (span.end - span.start) as usize,
                    format!("{name} contains {}", key.trim()),
                ));
            }
        }
        // `f(x)` alone (v0: true when called with matching arguments).
        if let RuleHead::Func {
            span, assign: None, ..
        } = head
        {
            if bodies.is_empty() {
                edits.push((span.end as usize, 0, " := true".into()));
            }
        }
        let mut plain_bodies = 0;
        for b in bodies {
            if !b.is_else {
                plain_bodies += 1;
            }
            // The body's `{`: at the body start, or (for `else [= v]`)
            // after the keyword and the optional value.
            let from = match (&b.assign, b.is_else) {
                (Some(a), _) => a.value.span().end as usize,
                (None, true) => b.span.start as usize + "else".len(),
                (None, false) => b.span.start as usize,
            };
            let mut rest = text.get(from..).unwrap_or("");
            let mut skip = 0;
            // String spans exclude their quotes.
            if b.assign.is_some() && (rest.starts_with('"') || rest.starts_with('`')) {
                rest = &rest[1..];
                skip = 1;
            }
            skip += rest.len() - rest.trim_start().len();
            let qs = from + skip;
            if text.get(qs..qs + 1) == Some("{") {
                let head = text.get(..qs).unwrap_or("");
                if !head.trim_end().ends_with(" if") {
                    // `name{` (no space) must not become `nameif {`
                    let sep = if head.ends_with(char::is_whitespace) {
                        ""
                    } else {
                        " "
                    };
                    edits.push((qs, 0, format!("{sep}if ")));
                }
            }
        }
        if plain_bodies > 1 {
            return Err(RegoError::Invalid(format!(
                "{path}:{}: rule {} has several query blocks (v0 only); no v1 rewrite",
                r.span().line,
                super::load::rule_name(r)
            )));
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (pos, del, ins) in edits {
        if out.get(pos..pos + del).is_none() {
            return Err(RegoError::Invalid(format!("{path}: edit outside the text")));
        }
        out.replace_range(pos..pos + del, &ins);
    }
    // Check: v1 must parse it.
    guarded(|| {
        let source = Source::from_contents(path.to_string(), out.clone())
            .map_err(|e| syntax_error(path, &e))?;
        let mut p = Parser::new(&source).map_err(|e| syntax_error(path, &e))?;
        p.enable_rego_v1().map_err(|e| syntax_error(path, &e))?;
        p.parse().map_err(|e| syntax_error(path, &e))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_heads_and_bodies() {
        let v0 = "package k\n\ndefault allow = false\n\nallow { input.a == 1 }\n\ndeny[msg] {\n  input.b\n  msg := \"b\"\n}\n\nf(x) = y { y := x + 1 }\n\nlevel = \"hi\" { input.h } else = \"lo\" { true }\n";
        let v1 = to_v1("k.rego", v0).expect("rewrite");
        assert!(v1.contains("allow if { input.a == 1 }"));
        assert!(v1.contains("deny contains msg if {"));
        assert!(v1.contains("f(x) = y if {"));
        assert!(v1.contains("else = \"lo\" if { true }"));
    }

    #[test]
    fn body_brace_without_a_space() {
        // Gatekeeper's tests have `test_x{`; the keyword must not join the name
        let v1 = to_v1("k.rego", "package k\n\ntest_x{\n  true\n}\n").expect("rewrite");
        assert!(v1.contains("test_x if {"), "{v1}");
        assert!(regorus::unstable::Parser::new(
            &regorus::unstable::Source::from_contents("k.rego".into(), v1.clone()).expect("source")
        )
        .is_ok());
    }

    #[test]
    fn v1_modules_unchanged() {
        let t = "package k\nimport rego.v1\nallow if input.a\n";
        assert_eq!(to_v1("k.rego", t).expect("same"), t);
    }
}
