//! Compile-time checks that OPA's compiler makes and regorus does not.
//!
//! regorus evaluates a rule whose body it cannot order (a variable that no
//! statement binds: an *unsafe* variable in OPA's terms) in source order and
//! only prints a warning, and it calls a builtin with the wrong number of
//! arguments without complaint. OPA rejects both when the policy is loaded
//! (`rego_unsafe_var_error`, `rego_type_error: arity mismatch`). A mutant that
//! OPA would not load is stillborn, so the runner asks [`problems`] about the
//! mutated module and calls a mutant stillborn when it has a problem the
//! original module does not have.
//!
//! The safety analysis follows OPA's rules (`ast/compile.go`, body reordering
//! for safety) in a conservative form: a statement can run once the variables
//! it reads are bound; it then binds the variables in its output positions
//! (the left of `:=`, either side of `=`, reference indices `a[i]`, the
//! key/value of `some .. in`, the last argument of a call made as a
//! statement). `not` binds nothing, and a `_` it reads is unsafe. A
//! comprehension or an `every` body is a closure: what it reads and does not
//! bind itself must come from the enclosing body. Rule names, imports,
//! `input`, `data` and function parameters are always bound. Where OPA's
//! rules are finer than these (unification both ways, set patterns), the
//! check errs on the side of "safe", so it never calls a loadable mutant
//! stillborn; a mutant it misses is evaluated as before.

use std::collections::BTreeSet;

use regorus::unstable::{AssignOp, Expr, Literal, Module, Query, Rule, RuleHead, BUILTINS};

/// Reads and binds of one statement (or expression).
#[derive(Default)]
struct Io {
    needs: BTreeSet<String>,
    binds: BTreeSet<String>,
    /// A `_` in a reading position: unsafe whatever else binds.
    wildcard_read: bool,
}

const WILDCARD: &str = "_";

fn var_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        _ => None,
    }
}

/// `out`: the expression is in an output position; `neg`: under `not`.
fn expr_io(e: &Expr, out: bool, neg: bool, io: &mut Io) {
    match e {
        Expr::Var { .. } => {
            let Some(name) = var_name(e) else { return };
            if name == WILDCARD {
                if !out || neg {
                    io.wildcard_read = true;
                }
            } else if out && !neg {
                io.binds.insert(name);
            } else {
                io.needs.insert(name);
            }
        }
        Expr::RefDot { refr, .. } => expr_io(refr, false, neg, io),
        Expr::RefBrack { refr, index, .. } => {
            expr_io(refr, false, neg, io);
            expr_io(index, true, neg, io);
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            for i in items {
                expr_io(i, out, neg, io);
            }
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                expr_io(k, out, neg, io);
                expr_io(v, out, neg, io);
            }
        }
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            closure(query, &[term], io);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => closure(query, &[key, value], io),
        Expr::Call { params, .. } => {
            for p in params {
                expr_io(p, false, neg, io);
            }
        }
        Expr::UnaryExpr { expr, .. } => expr_io(expr, false, neg, io),
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. } => {
            expr_io(lhs, false, neg, io);
            expr_io(rhs, false, neg, io);
        }
        Expr::AssignExpr { op, lhs, rhs, .. } => {
            expr_io(lhs, true, neg, io);
            expr_io(rhs, matches!(op, AssignOp::Eq), neg, io);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                expr_io(k, false, neg, io);
            }
            expr_io(value, false, neg, io);
            expr_io(collection, false, neg, io);
        }
        _ => {}
    }
}

/// A closure (comprehension): what its body and `terms` read and do not
/// bind themselves is read from the enclosing body.
fn closure(query: &Query, terms: &[&Expr], io: &mut Io) {
    let mut inner = Io::default();
    for t in terms {
        expr_io(t, false, false, &mut inner);
    }
    let (free, wild) = query_free(query, &BTreeSet::new(), inner.needs);
    io.needs.extend(free);
    io.wildcard_read |= wild || inner.wildcard_read;
}

fn stmt_io(s: &regorus::unstable::LiteralStmt) -> Io {
    let mut io = Io::default();
    match &s.literal {
        Literal::SomeVars { .. } => {}
        Literal::SomeIn {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                expr_io(k, true, false, &mut io);
            }
            expr_io(value, true, false, &mut io);
            expr_io(collection, false, false, &mut io);
        }
        Literal::Expr { expr, .. } => match expr.as_ref() {
            // A call made as a statement may bind its last argument
            // (`f(x, out)`).
            Expr::Call { params, .. } => {
                let n = params.len();
                for (i, p) in params.iter().enumerate() {
                    expr_io(p, i + 1 == n && n > 1, false, &mut io);
                }
            }
            e => expr_io(e, false, false, &mut io),
        },
        Literal::NotExpr { expr, .. } => expr_io(expr, false, true, &mut io),
        Literal::Every {
            key,
            value,
            domain,
            query,
            ..
        } => {
            expr_io(domain, false, false, &mut io);
            let mut bound = BTreeSet::new();
            if let Some(k) = key {
                bound.insert(k.text().to_string());
            }
            bound.insert(value.text().to_string());
            let (free, wild) = query_free(query, &bound, BTreeSet::new());
            io.needs.extend(free);
            io.wildcard_read |= wild;
        }
    }
    for w in &s.with_mods {
        expr_io(&w.r#as, false, false, &mut io);
    }
    io
}

/// Order `query`'s statements as OPA would; return the variables read but
/// never bound inside it (to come from outside), plus `extra` reads (a
/// closure's terms, evaluated after the body), and whether a `_` is read.
fn query_free(
    query: &Query,
    bound: &BTreeSet<String>,
    extra: BTreeSet<String>,
) -> (BTreeSet<String>, bool) {
    let ios: Vec<Io> = query.stmts.iter().map(stmt_io).collect();
    let bindable: BTreeSet<&String> = ios.iter().flat_map(|i| i.binds.iter()).collect();
    let mut safe: BTreeSet<String> = bound.clone();
    let mut done = vec![false; ios.len()];
    loop {
        let mut progress = false;
        for (i, io) in ios.iter().enumerate() {
            // A variable no statement here binds comes from outside: assume it.
            if !done[i]
                && io
                    .needs
                    .iter()
                    .all(|v| safe.contains(v) || !bindable.contains(v))
            {
                done[i] = true;
                progress = true;
                safe.extend(io.binds.iter().cloned());
            }
        }
        if !progress {
            break;
        }
    }
    let mut free = BTreeSet::new();
    for io in &ios {
        for v in &io.needs {
            if !safe.contains(v) {
                free.insert(v.clone());
            }
        }
    }
    for v in extra {
        if !safe.contains(&v) {
            free.insert(v);
        }
    }
    (free, ios.iter().any(|i| i.wildcard_read))
}

fn head_vars(head: &RuleHead, out: &mut BTreeSet<String>) -> BTreeSet<String> {
    // (reads of the head, function parameters bound by the call)
    let mut params = BTreeSet::new();
    let mut io = Io::default();
    let refr = match head {
        RuleHead::Compr { refr, assign, .. } => {
            if let Some(a) = assign {
                expr_io(&a.value, false, false, &mut io);
            }
            refr
        }
        RuleHead::Set { refr, key, .. } => {
            if let Some(k) = key {
                expr_io(k, false, false, &mut io);
            }
            refr
        }
        RuleHead::Func { refr, args, .. } => {
            let mut a = Io::default();
            for x in args {
                expr_io(x, true, false, &mut a);
            }
            params = a.binds;
            refr
        }
    };
    // Indices of the head reference (`r[k] := v`) are read too.
    let mut r = refr.as_ref();
    loop {
        match r {
            Expr::RefBrack { refr, index, .. } => {
                expr_io(index, false, false, &mut io);
                r = refr;
            }
            Expr::RefDot { refr, .. } => r = refr,
            _ => break,
        }
    }
    out.extend(io.needs);
    params
}

/// The problems OPA's compiler would report in `module` and regorus does
/// not: unsafe variables and builtin calls with a wrong argument count.
/// `globals` are names always bound (rule names of every module, imports).
pub fn problems(module: &Module, globals: &BTreeSet<String>) -> Vec<String> {
    let mut out = vec![];
    let mut g = globals.clone();
    for imp in &module.imports {
        match &imp.r#as {
            Some(a) => g.insert(a.text().to_string()),
            None => g.insert(
                imp.refr
                    .span()
                    .text()
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
        };
    }
    g.insert("input".into());
    g.insert("data".into());
    for r in &module.policy {
        let Rule::Spec { head, bodies, .. } = r.as_ref() else {
            continue;
        };
        let name = super::load::rule_name(r);
        let mut head_reads = BTreeSet::new();
        let params = head_vars(head, &mut head_reads);
        let mut bound: BTreeSet<String> = g.clone();
        bound.extend(params);
        if bodies.is_empty() {
            // `r := <term>`: the head alone.
            for v in &head_reads {
                if !bound.contains(v) {
                    out.push(format!("{name}: var {v} is unsafe"));
                }
            }
        }
        for b in bodies {
            let mut reads = head_reads.clone();
            if let Some(a) = &b.assign {
                let mut io = Io::default();
                expr_io(&a.value, false, false, &mut io);
                reads.extend(io.needs);
            }
            let (free, wild) = query_free(&b.query, &bound, reads);
            for v in free {
                if !bound.contains(&v) {
                    out.push(format!("{name}: var {v} is unsafe"));
                }
            }
            if wild {
                out.push(format!("{name}: var _ is unsafe"));
            }
        }
        arity(r, &name, &mut out);
    }
    out.sort();
    out
}

fn arity(rule: &Rule, name: &str, out: &mut Vec<String>) {
    fn walk(e: &Expr, stmt_level: bool, name: &str, out: &mut Vec<String>) {
        if let Expr::Call { fcn, params, .. } = e {
            let f = fcn.span().text().to_string();
            if let Some((_, n)) = BUILTINS.get(f.as_str()) {
                let n = *n as usize;
                let ok = params.len() == n || (stmt_level && params.len() == n + 1);
                if !ok {
                    out.push(format!(
                        "{name}: {f}: arity mismatch ({} arguments, {n} wanted)",
                        params.len()
                    ));
                }
            }
        }
        visit_children(e, &mut |c| walk(c, false, name, out));
    }
    fn q(query: &Query, name: &str, out: &mut Vec<String>) {
        for s in &query.stmts {
            match &s.literal {
                Literal::Expr { expr, .. } => walk(expr, true, name, out),
                Literal::NotExpr { expr, .. } => walk(expr, false, name, out),
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        walk(k, false, name, out);
                    }
                    walk(value, false, name, out);
                    walk(collection, false, name, out);
                }
                Literal::Every { domain, query, .. } => {
                    walk(domain, false, name, out);
                    q(query, name, out);
                }
                Literal::SomeVars { .. } => {}
            }
            for w in &s.with_mods {
                walk(&w.r#as, false, name, out);
            }
        }
    }
    if let Rule::Spec { head, bodies, .. } = rule {
        match head {
            RuleHead::Compr {
                assign: Some(a), ..
            }
            | RuleHead::Func {
                assign: Some(a), ..
            } => walk(&a.value, false, name, out),
            RuleHead::Set { key: Some(k), .. } => walk(k, false, name, out),
            _ => {}
        }
        for b in bodies {
            if let Some(a) = &b.assign {
                walk(&a.value, false, name, out);
            }
            q(&b.query, name, out);
        }
    }
}

/// Call `f` on each direct sub-expression (queries of comprehensions are
/// walked statement by statement).
fn visit_children(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    let query = |qr: &Query, f: &mut dyn FnMut(&Expr)| {
        for s in &qr.stmts {
            match &s.literal {
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => f(expr),
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        f(k);
                    }
                    f(value);
                    f(collection);
                }
                Literal::Every { domain, .. } => f(domain),
                Literal::SomeVars { .. } => {}
            }
        }
    };
    match e {
        Expr::Array { items, .. } | Expr::Set { items, .. } => items.iter().for_each(|i| f(i)),
        Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
            f(k);
            f(v);
        }),
        Expr::ArrayCompr {
            term, query: qr, ..
        }
        | Expr::SetCompr {
            term, query: qr, ..
        } => {
            f(term);
            query(qr, f);
        }
        Expr::ObjectCompr {
            key,
            value,
            query: qr,
            ..
        } => {
            f(key);
            f(value);
            query(qr, f);
        }
        Expr::Call { params, .. } => params.iter().for_each(|p| f(p)),
        Expr::UnaryExpr { expr, .. } => f(expr),
        Expr::RefDot { refr, .. } => f(refr),
        Expr::RefBrack { refr, index, .. } => {
            f(refr);
            f(index);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            f(lhs);
            f(rhs);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                f(k);
            }
            f(value);
            f(collection);
        }
        _ => {}
    }
}

/// Names bound everywhere: the first component of every rule name of every
/// module (a rule of another package is reached through `data.`, but a name
/// clash only makes the check more lenient).
pub fn globals<'a>(modules: impl IntoIterator<Item = &'a Module>) -> BTreeSet<String> {
    let mut g = BTreeSet::new();
    for m in modules {
        for r in &m.policy {
            let n = super::load::rule_name(r);
            if let Some(first) = n.split(['.', '[']).next() {
                g.insert(first.trim().to_string());
            }
        }
    }
    g
}

/// Problems of `mutated` that `original` does not have (as a multiset).
pub fn new_problems(original: &[String], mutated: &[String]) -> Vec<String> {
    let mut left: Vec<&String> = original.iter().collect();
    let mut out = vec![];
    for p in mutated {
        if let Some(i) = left.iter().position(|o| *o == p) {
            left.swap_remove(i);
        } else {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(src: &str) -> Vec<String> {
        let m = crate::rego_mut::test_set(src, None);
        let ast = m.parse(0).expect("parse");
        problems(&ast, &globals([&ast]))
    }

    #[test]
    fn unsafe_vars_as_opa_reports_them() {
        assert_eq!(
            probs("package p\nr if { not input.xs[_] == 1 }\n"),
            vec!["r: var _ is unsafe"]
        );
        assert_eq!(
            probs("package p\nr if { not input.xs[i] == 1 }\n"),
            vec!["r: var i is unsafe"]
        );
        assert_eq!(
            probs("package p\nr contains x if { y := input.a }\n"),
            vec!["r: var x is unsafe"]
        );
        assert_eq!(
            probs("package p\nr := count([x | y := input.a[_]])\n"),
            vec!["r: var x is unsafe"]
        );
        assert_eq!(
            probs("package p\nr if { every y in input.a { z := y }\n z == 1 }\n"),
            vec!["r: var z is unsafe"]
        );
        // Bound later in the body: OPA reorders.
        assert!(
            probs("package p\nr if { some i\n not input.xs[i] == 1\n input.ys[i] }\n").is_empty()
        );
        assert!(probs(
            "package p\nr contains p if { some p in input.a }\nf(x) := y if y := x + 1\n"
        )
        .is_empty());
        assert!(probs("package p\nr := [x | x := input.a[_]; x > 1]\n").is_empty());
        assert!(probs("package p\nr if { object.remove({}, [], x)\n x == {} }\n").is_empty());
    }

    #[test]
    fn builtin_arity() {
        assert_eq!(
            probs("package p\nr if { x := object.remove({}, [], 1)\n x }\n"),
            vec!["r: object.remove: arity mismatch (3 arguments, 2 wanted)"]
        );
        assert!(probs("package p\nr if { x := object.get({}, \"a\", 1)\n x }\n").is_empty());
    }
}
