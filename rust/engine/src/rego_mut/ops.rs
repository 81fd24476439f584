//! Mutation operators over the regorus AST.
//!
//! Each operator proposes text edits at AST spans (byte offsets into the
//! module); a mutant is the module with one edit applied. Relational operator
//! replacement uses the subsumption set of Kaminski, Ammann and Offutt
//! ("Improving logic-based testing", 2013): of the seven alternatives to a
//! relational operator, three subsume the rest (for `<`: `<=`, `!=`, `false`).

use regorus::unstable::{
    ArithOp, BoolOp, Expr, Literal, LiteralStmt, Module as Ast, Query, Rule, RuleHead,
};
use serde::{Deserialize, Serialize};

use super::load::rule_name;

/// The mutation operators (13 kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Relational operator replacement (subsumption set: 3 per operator).
    RelationalOp,
    /// `expr` → `not expr`.
    NegationInsert,
    /// `not expr` → `expr`.
    NegationRemove,
    /// A body statement replaced by `true`.
    StatementDelete,
    /// Numbers ±1 (integers) or ±epsilon; strings → `""`; arrays → `[]`; sets → `set()`.
    ConstantBoundary,
    /// `startswith`/`endswith`/`contains`, `any`/`all`, `min`/`max`, ...
    BuiltinSwap,
    /// `some x in xs; rest` ↔ `every x in xs { rest }`.
    SomeEvery,
    /// `default r := v`: booleans flipped, numbers ±1, strings emptied.
    DefaultFlip,
    /// A whole rule definition (one of possibly several) deleted.
    RuleDelete,
    /// An `else` clause removed.
    ElseRemove,
    /// A `with` modifier removed.
    WithRemove,
    /// `+` ↔ `-`, `*` ↔ `/`, `%` → `*`.
    ArithmeticOp,
    /// `true` ↔ `false` literals in bodies and rule values.
    BooleanFlip,
}

impl Operator {
    pub const ALL: [Operator; 13] = [
        Operator::RelationalOp,
        Operator::NegationInsert,
        Operator::NegationRemove,
        Operator::StatementDelete,
        Operator::ConstantBoundary,
        Operator::BuiltinSwap,
        Operator::SomeEvery,
        Operator::DefaultFlip,
        Operator::RuleDelete,
        Operator::ElseRemove,
        Operator::WithRemove,
        Operator::ArithmeticOp,
        Operator::BooleanFlip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::RelationalOp => "relational_op",
            Operator::NegationInsert => "negation_insert",
            Operator::NegationRemove => "negation_remove",
            Operator::StatementDelete => "statement_delete",
            Operator::ConstantBoundary => "constant_boundary",
            Operator::BuiltinSwap => "builtin_swap",
            Operator::SomeEvery => "some_every",
            Operator::DefaultFlip => "default_flip",
            Operator::RuleDelete => "rule_delete",
            Operator::ElseRemove => "else_remove",
            Operator::WithRemove => "with_remove",
            Operator::ArithmeticOp => "arithmetic_op",
            Operator::BooleanFlip => "boolean_flip",
        }
    }

    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.iter().copied().find(|o| o.name() == s)
    }
}

/// One mutant: a single text edit of one module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mutant {
    /// Stable within a run: `<module index>:<start>:<end>:<n>`.
    pub id: String,
    pub module: usize,
    pub file: String,
    /// The rule (head reference) the edit falls in.
    pub rule: String,
    pub operator: Operator,
    pub line: u32,
    pub col: u32,
    /// Byte range replaced.
    pub start: usize,
    pub end: usize,
    pub original: String,
    pub replacement: String,
    /// One-line diff: `L<line>: <before> → <after>`.
    pub diff: String,
    /// Byte range of the enclosing rule (for incremental keys).
    #[serde(skip)]
    pub rule_span: (usize, usize),
}

impl Mutant {
    /// The module text with this mutant's edit applied.
    pub fn apply(&self, text: &str) -> Option<String> {
        let head = text.get(..self.start)?;
        let tail = text.get(self.end..)?;
        Some(format!("{head}{}{tail}", self.replacement))
    }
}

struct Edit {
    op: Operator,
    start: usize,
    end: usize,
    replacement: String,
}

struct Walker<'a> {
    src: &'a str,
    edits: Vec<Edit>,
}

fn span_of(e: &Expr) -> (usize, usize) {
    let s = e.span();
    (s.start as usize, s.end as usize)
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n).collect();
        format!("{t}…")
    }
}

/// Relational replacements kept by subsumption, and the op's text.
fn ror_set(op: &BoolOp) -> (&'static str, [&'static str; 3]) {
    match op {
        BoolOp::Lt => ("<", ["<=", "!=", "false"]),
        BoolOp::Gt => (">", [">=", "!=", "false"]),
        BoolOp::Le => ("<=", ["<", "==", "true"]),
        BoolOp::Ge => (">=", [">", "==", "true"]),
        BoolOp::Eq => ("==", ["<=", ">=", "false"]),
        BoolOp::Ne => ("!=", ["<", ">", "true"]),
    }
}

fn builtin_swaps(name: &str) -> &'static [&'static str] {
    match name {
        "startswith" => &["endswith", "contains"],
        "endswith" => &["startswith", "contains"],
        "contains" => &["startswith", "endswith"],
        "any" => &["all"],
        "all" => &["any"],
        "max" => &["min"],
        "min" => &["max"],
        "upper" => &["lower"],
        "lower" => &["upper"],
        "trim_prefix" => &["trim_suffix"],
        "trim_suffix" => &["trim_prefix"],
        "object.get" => &["object.remove"],
        "array.slice" => &["array.concat"],
        "regex.match" => &["glob.match"],
        _ => &[],
    }
}

impl<'a> Walker<'a> {
    /// String spans exclude their delimiters; widen to include them.
    fn quoted(&self, s: usize, e: usize) -> (usize, usize) {
        let b = self.src.as_bytes();
        match (s.checked_sub(1).and_then(|i| b.get(i)), b.get(e)) {
            (Some(b'"'), Some(b'"')) | (Some(b'`'), Some(b'`')) => (s - 1, e + 1),
            _ => (s, e),
        }
    }

    fn text(&self, s: usize, e: usize) -> &'a str {
        self.src.get(s..e).unwrap_or("")
    }

    fn push(&mut self, op: Operator, start: usize, end: usize, replacement: impl Into<String>) {
        let replacement = replacement.into();
        if start > end || end > self.src.len() || self.src.get(start..end).is_none() {
            return;
        }
        if self.text(start, end) == replacement {
            return;
        }
        self.edits.push(Edit {
            op,
            start,
            end,
            replacement,
        });
    }

    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Default { span, value, .. } => {
                let (s, e) = span_of(value);
                let t = self.text(s, e).trim().to_string();
                match t.as_str() {
                    "true" => self.push(Operator::DefaultFlip, s, e, "false"),
                    "false" => self.push(Operator::DefaultFlip, s, e, "true"),
                    _ => match value.as_ref() {
                        Expr::Number { .. } => {
                            if let Ok(n) = t.parse::<i64>() {
                                self.push(Operator::DefaultFlip, s, e, (n + 1).to_string());
                            }
                        }
                        Expr::String { .. } | Expr::RawString { .. } => {
                            let (qs, qe) = self.quoted(s, e);
                            if qe - qs > 2 {
                                self.push(Operator::DefaultFlip, qs, qe, "\"\"")
                            }
                        }
                        Expr::Array { items, .. } if !items.is_empty() => {
                            self.push(Operator::DefaultFlip, s, e, "[]")
                        }
                        _ => {}
                    },
                }
                let _ = span;
            }
            Rule::Spec { span, head, bodies } => {
                self.push(
                    Operator::RuleDelete,
                    span.start as usize,
                    span.end as usize,
                    "",
                );
                match head {
                    RuleHead::Compr {
                        assign: Some(a), ..
                    }
                    | RuleHead::Func {
                        assign: Some(a), ..
                    } => self.expr(&a.value),
                    RuleHead::Set { key: Some(k), .. } => self.expr(k),
                    _ => {}
                }
                for b in bodies.iter() {
                    if b.is_else {
                        self.push(
                            Operator::ElseRemove,
                            b.span.start as usize,
                            b.span.end as usize,
                            "",
                        );
                    }
                    if let Some(a) = &b.assign {
                        self.expr(&a.value);
                    }
                    self.query(&b.query);
                }
            }
        }
    }

    fn query(&mut self, q: &Query) {
        for (i, stmt) in q.stmts.iter().enumerate() {
            self.stmt(q, i, stmt);
        }
    }

    fn literal_span(l: &Literal) -> (usize, usize) {
        let s = match l {
            Literal::SomeVars { span, .. }
            | Literal::SomeIn { span, .. }
            | Literal::Expr { span, .. }
            | Literal::NotExpr { span, .. }
            | Literal::Every { span, .. } => span,
        };
        (s.start as usize, s.end as usize)
    }

    fn stmt(&mut self, q: &Query, i: usize, stmt: &LiteralStmt) {
        let (ss, se) = (stmt.span.start as usize, stmt.span.end as usize);
        if !matches!(stmt.literal, Literal::SomeVars { .. }) {
            self.push(Operator::StatementDelete, ss, se, "true");
        }
        // `with` removal: from the end of what precedes the modifier.
        let (_, lit_end) = Self::literal_span(&stmt.literal);
        let mut prev_end = lit_end;
        for w in &stmt.with_mods {
            let we = w.span.end as usize;
            self.push(Operator::WithRemove, prev_end, we, "");
            prev_end = we;
        }
        match &stmt.literal {
            Literal::Expr { span, expr } => {
                let is_binding = matches!(expr.as_ref(), Expr::AssignExpr { .. });
                if !is_binding {
                    let (s, e) = (span.start as usize, span.end as usize);
                    let t = self.text(s, e).to_string();
                    self.push(Operator::NegationInsert, s, e, format!("not {t}"));
                }
                self.expr(expr);
            }
            Literal::NotExpr { span, expr } => {
                let (s, _) = (span.start as usize, span.end as usize);
                let (es, _) = span_of(expr);
                self.push(Operator::NegationRemove, s, es, "");
                self.expr(expr);
            }
            Literal::SomeIn {
                span,
                key,
                value,
                collection,
            } => {
                // some x in xs; rest...  →  every x in xs { rest }
                if i + 1 < q.stmts.len() {
                    let vars = match key {
                        Some(k) => format!("{}, {}", k.span().text(), value.span().text()),
                        None => value.span().text().to_string(),
                    };
                    let rest: Vec<String> = q.stmts[i + 1..]
                        .iter()
                        .map(|s| s.span.text().to_string())
                        .collect();
                    let last_end = q.stmts.last().map(|s| s.span.end as usize).unwrap_or(se);
                    self.push(
                        Operator::SomeEvery,
                        span.start as usize,
                        last_end,
                        format!(
                            "every {vars} in {} {{ {} }}",
                            collection.span().text(),
                            rest.join("; ")
                        ),
                    );
                }
                self.expr(collection);
            }
            Literal::Every {
                span,
                key,
                value,
                domain,
                query,
            } => {
                let vars = match key {
                    Some(k) => format!("{}, {}", k.text(), value.text()),
                    None => value.text().to_string(),
                };
                let body: Vec<String> = query
                    .stmts
                    .iter()
                    .map(|s| s.span.text().to_string())
                    .collect();
                let mut repl = format!("some {vars} in {}", domain.span().text());
                for b in body {
                    repl.push_str("; ");
                    repl.push_str(&b);
                }
                self.push(
                    Operator::SomeEvery,
                    span.start as usize,
                    span.end as usize,
                    repl,
                );
                self.expr(domain);
                self.query(query);
            }
            Literal::SomeVars { .. } => {}
        }
        for w in &stmt.with_mods {
            self.expr(&w.r#as);
        }
    }

    fn expr(&mut self, e: &Expr) {
        let (s, en) = span_of(e);
        match e {
            Expr::BoolExpr { op, lhs, rhs, .. } => {
                let (_, le) = span_of(lhs);
                let (rs, _) = span_of(rhs);
                let (op_text, repl) = ror_set(op);
                let between = self.text(le, rs);
                if let Some(off) = between.find(op_text) {
                    let os = le + off;
                    for r in repl {
                        if r == "true" || r == "false" {
                            self.push(Operator::RelationalOp, s, en, r);
                        } else {
                            self.push(Operator::RelationalOp, os, os + op_text.len(), r);
                        }
                    }
                }
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::ArithExpr { op, lhs, rhs, .. } => {
                let (_, le) = span_of(lhs);
                let (rs, _) = span_of(rhs);
                let (t, r) = match op {
                    ArithOp::Add => ("+", "-"),
                    ArithOp::Sub => ("-", "+"),
                    ArithOp::Mul => ("*", "/"),
                    ArithOp::Div => ("/", "*"),
                    ArithOp::Mod => ("%", "*"),
                };
                let between = self.text(le, rs);
                if let Some(off) = between.find(t) {
                    self.push(Operator::ArithmeticOp, le + off, le + off + 1, r);
                }
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Number { .. } => {
                let t = self.text(s, en).to_string();
                if let Ok(n) = t.parse::<i64>() {
                    self.push(Operator::ConstantBoundary, s, en, (n + 1).to_string());
                    self.push(Operator::ConstantBoundary, s, en, (n - 1).to_string());
                } else if let Ok(f) = t.parse::<f64>() {
                    let eps = (f.abs() * 1e-6).max(1e-9);
                    self.push(Operator::ConstantBoundary, s, en, format!("{}", f + eps));
                    self.push(Operator::ConstantBoundary, s, en, format!("{}", f - eps));
                }
            }
            Expr::String { .. } | Expr::RawString { .. } => {
                let (qs, qe) = self.quoted(s, en);
                if qe - qs > 2 {
                    self.push(Operator::ConstantBoundary, qs, qe, "\"\"");
                }
            }
            Expr::Bool { .. } => {
                let t = self.text(s, en).trim().to_string();
                if t == "true" {
                    self.push(Operator::BooleanFlip, s, en, "false");
                } else if t == "false" {
                    self.push(Operator::BooleanFlip, s, en, "true");
                }
            }
            Expr::Array { items, .. } => {
                if !items.is_empty() {
                    self.push(Operator::ConstantBoundary, s, en, "[]");
                }
                for i in items {
                    self.expr(i);
                }
            }
            Expr::Set { items, .. } => {
                if !items.is_empty() {
                    self.push(Operator::ConstantBoundary, s, en, "set()");
                }
                for i in items {
                    self.expr(i);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, _k, v) in fields {
                    self.expr(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                let (fs, fe) = span_of(fcn);
                let name = self.text(fs, fe).to_string();
                for r in builtin_swaps(&name) {
                    self.push(Operator::BuiltinSwap, fs, fe, *r);
                }
                for p in params {
                    self.expr(p);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::RefDot { refr, .. } => self.expr(refr),
            Expr::RefBrack { refr, index, .. } => {
                self.expr(refr);
                self.expr(index);
            }
            Expr::BinExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::AssignExpr { rhs, .. } => self.expr(rhs),
            Expr::Membership {
                value, collection, ..
            } => {
                self.expr(value);
                self.expr(collection);
            }
            _ => {}
        }
    }
}

fn line_of(src: &str, pos: usize) -> (u32, u32, usize, usize) {
    let before = src.get(..pos).unwrap_or("");
    let line = before.matches('\n').count() as u32 + 1;
    let ls = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let le = src
        .get(pos..)
        .and_then(|t| t.find('\n'))
        .map(|i| pos + i)
        .unwrap_or(src.len());
    let col = src.get(ls..pos).map(|t| t.chars().count()).unwrap_or(0) as u32 + 1;
    (line, col, ls, le)
}

/// Generate the mutants of one parsed module, in source order.
pub fn generate(ast: &Ast, module: usize, file: &str, src: &str, ops: &[Operator]) -> Vec<Mutant> {
    let mut out: Vec<Mutant> = vec![];
    for rule in &ast.policy {
        let name = rule_name(rule);
        let rs = rule.span();
        let rule_span = (rs.start as usize, rs.end as usize);
        let mut w = Walker { src, edits: vec![] };
        w.rule(rule);
        let mut edits = w.edits;
        edits.sort_by_key(|a| (a.start, a.end));
        for (n, ed) in edits.into_iter().enumerate() {
            if !ops.contains(&ed.op) {
                continue;
            }
            let dup = out.iter().any(|m| {
                m.module == module
                    && m.start == ed.start
                    && m.end == ed.end
                    && m.replacement == ed.replacement
            });
            if dup {
                continue;
            }
            let original = src.get(ed.start..ed.end).unwrap_or("").to_string();
            let (line, col, ls, _) = line_of(src, ed.start);
            let (_, _, _, le) = line_of(src, ed.end);
            let before = src.get(ls..le).unwrap_or("");
            let after = format!(
                "{}{}{}",
                src.get(ls..ed.start).unwrap_or(""),
                ed.replacement,
                src.get(ed.end..le).unwrap_or("")
            );
            let diff = format!(
                "L{line}: {} → {}",
                truncate(&collapse(before), 120),
                truncate(&collapse(&after), 120)
            );
            out.push(Mutant {
                id: format!("{module}:{}:{}:{n}", ed.start, ed.end),
                module,
                file: file.to_string(),
                rule: name.clone(),
                operator: ed.op,
                line,
                col,
                start: ed.start,
                end: ed.end,
                original,
                replacement: ed.replacement,
                diff,
                rule_span,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regorus::unstable::Parser;
    use regorus::Source;

    fn muts(src: &str) -> Vec<Mutant> {
        let source = Source::from_contents("t.rego".into(), src.into()).expect("source");
        let mut p = Parser::new(&source).expect("parser");
        p.enable_rego_v1().expect("v1");
        let ast = p.parse().expect("parse");
        generate(&ast, 0, "t.rego", src, &Operator::ALL)
    }

    #[test]
    fn ror_uses_subsumption_set() {
        let m = muts("package t\nallow if input.x < 10\n");
        let ror: Vec<_> = m
            .iter()
            .filter(|m| m.operator == Operator::RelationalOp)
            .map(|m| m.replacement.clone())
            .collect();
        assert_eq!(ror.len(), 3);
        assert!(ror.contains(&"<=".to_string()));
        assert!(ror.contains(&"!=".to_string()));
        assert!(ror.contains(&"false".to_string()));
        let b: Vec<_> = m
            .iter()
            .filter(|m| m.operator == Operator::ConstantBoundary)
            .map(|m| m.replacement.clone())
            .collect();
        assert_eq!(b, vec!["11".to_string(), "9".to_string()]);
    }

    #[test]
    fn string_constants_keep_their_quotes() {
        let src = "package t\nallow if input.c == \"FR\"\n";
        let m = muts(src);
        let e = m
            .iter()
            .find(|m| m.operator == Operator::ConstantBoundary)
            .expect("string mutant");
        assert_eq!(e.original, "\"FR\"");
        assert_eq!(
            e.apply(src).expect("apply"),
            "package t\nallow if input.c == \"\"\n"
        );
    }

    #[test]
    fn operators_cover_the_kinds() {
        let src = r#"package t
default allow := false
allow if {
    not input.blocked
    startswith(input.name, "adm")
    some r in input.roles
    r == "admin"
    input.n + 1 > 2
}
ok if {
    every x in input.xs { x > 0 }
}
level := "a" if input.v > 1
else := "b"
t if { allow with input as {"name": "admin"} }
f := true
"#;
        let m = muts(src);
        let kinds: std::collections::BTreeSet<_> = m.iter().map(|m| m.operator).collect();
        for k in Operator::ALL {
            assert!(kinds.contains(&k), "missing {k:?}");
        }
        for mm in &m {
            let applied = mm.apply(src).expect("apply");
            assert_ne!(applied, src);
            assert!(mm.diff.starts_with(&format!("L{}:", mm.line)));
        }
    }
}
