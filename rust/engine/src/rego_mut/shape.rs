//! The shape of `input` a policy reads, and random inputs built from it.
//!
//! The equivalence check of the runner compares a survivor with the original
//! policy on random inputs. Perturbing the tests' own inputs never adds a
//! field the tests do not use, so a rule that reads such a field (say
//! `input.review.object.spec.ephemeralContainers[_]` when every test pod has
//! only `containers`) is never reached, and its mutants would look
//! equivalent. [`input_paths`] collects, by a small abstract interpretation
//! over the regorus AST, the *abstract paths* under `input` that the
//! non-test modules read: `review.object.spec.ephemeralContainers[*].image`.
//! Variables carry the paths they are bound to (`c := input.x[_]`,
//! `some c in input.x`, `input.x[i]`), rules carry the paths of the values
//! or set elements they produce (`input_containers[c] { c := ... }`, read back
//! as `input_containers[_]`), and user functions are followed at each call
//! with their parameters bound to the arguments' paths or string constants
//! (`has_field(obj, "f")` reads `obj.f`), as is `object.get(obj, key, d)`.
//! The analysis is best effort (a path it misses is a field no generated
//! input adds), never sound or complete, and only steers input generation.
//!
//! [`Generator`] then grows inputs: it puts one of those paths into a seed
//! input (one of the tests' inputs, or `{}`), creating the objects and
//! arrays on the way, with a leaf drawn from the policy's constants (strings,
//! numbers and their ±1, booleans, empty and non-empty arrays and objects)
//! or from the seeds' own leaves; or it *grafts* a sibling: where the policy
//! reads both `spec.containers[*].image` and `spec.ephemeralContainers[*].image`
//! and the seed has containers, it copies them under `ephemeralContainers`.
//! Everything is drawn from a seeded SplitMix64, so a run is reproducible.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regorus::unstable::{AssignOp, Expr, Literal, Module as Ast, Query, Ref, Rule, RuleHead};
use regorus::Value;
use serde_json::Value as Json;

/// One step of an abstract path: an object key, or any element of an array
/// (or any value of an object or set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Any,
}

/// A path under `input`.
pub type Path = Vec<Seg>;

/// `input.a.b[*].c` (keys that are not identifiers are bracketed).
pub fn render(p: &[Seg]) -> String {
    let mut s = String::from("input");
    for seg in p {
        match seg {
            Seg::Key(k)
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                s.push('.');
                s.push_str(k);
            }
            Seg::Key(k) => s.push_str(&format!("[{}]", Json::String(k.clone()))),
            Seg::Any => s.push_str("[*]"),
        }
    }
    s
}

/// What an expression may evaluate to, abstractly.
#[derive(Debug, Clone, Default)]
struct Av {
    /// The value is the input at one of these paths.
    paths: BTreeSet<Path>,
    /// The value is a collection whose elements are at these paths (a
    /// partial set rule, a comprehension).
    elems: BTreeSet<Path>,
    /// The value is one of these string constants.
    strs: BTreeSet<String>,
}

impl Av {
    fn path(p: Path) -> Self {
        let mut a = Av::default();
        a.paths.insert(p);
        a
    }
    fn union(&mut self, o: &Av) {
        self.paths.extend(o.paths.iter().cloned());
        self.elems.extend(o.elems.iter().cloned());
        self.strs.extend(o.strs.iter().cloned());
    }
    fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.elems.is_empty() && self.strs.is_empty()
    }
    /// The elements of this value as a collection (`x[_]`, `some x in ..`).
    fn members(&self) -> Av {
        let mut a = Av::default();
        for p in &self.paths {
            let mut q = p.clone();
            q.push(Seg::Any);
            a.paths.insert(q);
        }
        a.paths.extend(self.elems.iter().cloned());
        a
    }
}

type Env = HashMap<String, Av>;

/// Paths longer than this are not followed (recursive data, runaway
/// helper chains).
const MAX_LEN: usize = 12;
/// Nested user-function calls followed.
const MAX_DEPTH: usize = 6;
/// Pairs of compared paths kept.
const MAX_LINKS: usize = 256;
/// Passes over the rules (a rule may use a rule defined after it).
const PASSES: usize = 3;

/// A function definition's parameters, bodies (with an `else` value) and value.
type FuncParts<'a> = (
    &'a [regorus::unstable::Ref<Expr>],
    Vec<(&'a Query, Option<&'a Expr>)>,
    Option<&'a Expr>,
);

struct Func<'a> {
    args: &'a [regorus::unstable::Ref<Expr>],
    bodies: Vec<(&'a Query, Option<&'a Expr>)>,
    value: Option<&'a Expr>,
}

struct Interp<'a> {
    /// Rule name (its last name segment) to what it produces.
    rules: HashMap<String, Av>,
    funcs: HashMap<String, Vec<Func<'a>>>,
    out: BTreeSet<Path>,
    /// Pairs of paths compared with each other.
    links: BTreeSet<(Path, Path)>,
    depth: usize,
    /// (function, argument summary) already followed.
    seen_calls: BTreeSet<String>,
}

fn last_name(text: &str) -> &str {
    let head = text.split('[').next().unwrap_or(text);
    head.rsplit('.').next().unwrap_or(head).trim()
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        _ => None,
    }
}

impl<'a> Interp<'a> {
    fn record(&mut self, p: &Path) {
        if !p.is_empty() && p.len() <= MAX_LEN {
            self.out.insert(p.clone());
        }
    }

    fn extend(&mut self, base: &Av, seg: &[Seg]) -> Av {
        let mut a = Av::default();
        for p in &base.paths {
            for s in seg {
                if p.len() >= MAX_LEN {
                    continue;
                }
                let mut q = p.clone();
                q.push(s.clone());
                self.record(&q);
                a.paths.insert(q);
            }
        }
        a
    }

    fn var(&self, name: &str, env: &Env) -> Av {
        if name == "input" {
            return Av::path(vec![]);
        }
        if let Some(a) = env.get(name) {
            return a.clone();
        }
        self.rules.get(name).cloned().unwrap_or_default()
    }

    /// Bind `target` (a variable, or a pattern we skip) to `v`.
    fn bind(&mut self, target: &Expr, v: Av, env: &mut Env) {
        if let Expr::Var { span, .. } = target {
            let n = span.text().to_string();
            if n != "_" {
                env.entry(n).or_default().union(&v);
            }
        }
    }

    fn is_unbound(&self, e: &Expr, env: &Env) -> bool {
        match e {
            Expr::Var { span, .. } => {
                let n = span.text();
                n != "input"
                    && n != "data"
                    && !env.contains_key(n)
                    && !self.rules.contains_key(n)
                    && !self.funcs.contains_key(n)
            }
            _ => false,
        }
    }

    /// `[key,] value in collection` (an expression, or `some` in a body):
    /// the collection's member paths are read, and an unbound `value` is
    /// bound to them.
    fn member_of(
        &mut self,
        key: Option<&'a Ref<Expr>>,
        value: &'a Ref<Expr>,
        collection: &'a Ref<Expr>,
        env: &mut Env,
    ) {
        let c = self.expr(collection, env);
        let members = c.members();
        for p in &members.paths {
            self.record(p);
        }
        if self.is_unbound(value, env) {
            self.bind(value, members, env);
        } else {
            self.expr(value, env);
        }
        if let Some(k) = key {
            if !self.is_unbound(k, env) {
                self.expr(k, env);
            }
        }
    }

    fn expr(&mut self, e: &'a Expr, env: &mut Env) -> Av {
        match e {
            Expr::Var { span, .. } => self.var(span.text(), env),
            Expr::String { value, .. } | Expr::RawString { value, .. } => {
                let mut a = Av::default();
                if let Some(s) = string_of(value) {
                    a.strs.insert(s);
                }
                a
            }
            Expr::RefDot {
                refr, field, span, ..
            } => {
                let base = self.expr(refr, env);
                let key = string_of(&field.1).unwrap_or_else(|| field.0.text().to_string());
                let mut out = self.extend(&base, &[Seg::Key(key)]);
                // `data.pkg.rule`: the rule's own value.
                if span.text().starts_with("data.") {
                    if let Some(r) = self.rules.get(last_name(span.text())) {
                        out.union(&r.clone());
                    }
                }
                out
            }
            Expr::RefBrack { refr, index, .. } => {
                let base = self.expr(refr, env);
                let unbound = self.is_unbound(index, env);
                let idx = self.expr(index, env);
                let segs: Vec<Seg> = if idx.strs.is_empty() {
                    vec![Seg::Any]
                } else {
                    idx.strs.iter().map(|s| Seg::Key(s.clone())).collect()
                };
                let mut out = self.extend(&base, &segs);
                // A set rule indexed by a variable: the element itself.
                out.paths.extend(base.elems.iter().cloned());
                if unbound && !base.elems.is_empty() {
                    let mut el = Av::default();
                    el.paths.extend(base.elems.iter().cloned());
                    self.bind(index, el, env);
                }
                out
            }
            Expr::Call { fcn, params, .. } => self.call(fcn, params, env),
            Expr::AssignExpr { op, lhs, rhs, .. } => {
                if self.is_unbound(lhs, env) || matches!(op, AssignOp::ColEq) {
                    let v = self.expr(rhs, env);
                    self.bind(lhs, v, env);
                } else if self.is_unbound(rhs, env) {
                    let v = self.expr(lhs, env);
                    self.bind(rhs, v, env);
                } else {
                    self.expr(lhs, env);
                    self.expr(rhs, env);
                }
                Av::default()
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                self.member_of(key.as_ref(), value, collection, env);
                Av::default()
            }
            Expr::BoolExpr { lhs, rhs, .. } => {
                // `a.x == input.y`: inputs where both sides are equal reach
                // what follows (and sit on the boundary of `<`, `<=`, ...).
                let l = self.expr(lhs, env);
                let r = self.expr(rhs, env);
                for p in l.paths.iter().take(8) {
                    for q in r.paths.iter().take(8) {
                        if p != q && self.links.len() < MAX_LINKS {
                            self.links.insert((p.clone(), q.clone()));
                        }
                    }
                }
                Av::default()
            }
            Expr::BinExpr { lhs, rhs, .. } | Expr::ArithExpr { lhs, rhs, .. } => {
                self.expr(lhs, env);
                self.expr(rhs, env);
                Av::default()
            }
            Expr::UnaryExpr { expr, .. } => {
                self.expr(expr, env);
                Av::default()
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                let mut a = Av::default();
                for i in items {
                    let v = self.expr(i, env);
                    // `["a", "b"]` as an `object.get` key path, or a set of
                    // paths: keep what the items are.
                    a.strs.extend(v.strs.iter().cloned());
                    a.elems.extend(v.paths.iter().cloned());
                }
                a
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k, env);
                    self.expr(v, env);
                }
                Av::default()
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                let mut inner = env.clone();
                self.query(query, &mut inner);
                let t = self.expr(term, &mut inner);
                let mut a = Av::default();
                a.elems.extend(t.paths.iter().cloned());
                a
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                let mut inner = env.clone();
                self.query(query, &mut inner);
                self.expr(key, &mut inner);
                let v = self.expr(value, &mut inner);
                let mut a = Av::default();
                a.elems.extend(v.paths.iter().cloned());
                a
            }
            _ => Av::default(),
        }
    }

    fn call(
        &mut self,
        fcn: &'a Expr,
        params: &'a [regorus::unstable::Ref<Expr>],
        env: &mut Env,
    ) -> Av {
        let name = fcn.span().text().to_string();
        let args: Vec<Av> = params.iter().map(|p| self.expr(p, env)).collect();
        match name.as_str() {
            "object.get" => {
                let (Some(obj), Some(key)) = (args.first(), args.get(1)) else {
                    return Av::default();
                };
                let mut out = Av::default();
                let keys: Vec<Seg> = key.strs.iter().map(|s| Seg::Key(s.clone())).collect();
                if let Some(Expr::Array { items, .. }) = params.get(1).map(|p| p.as_ref()) {
                    // A key path: every key in turn.
                    let mut cur = obj.clone();
                    for it in items {
                        let k = match it.as_ref() {
                            Expr::String { value, .. } | Expr::RawString { value, .. } => {
                                string_of(value)
                            }
                            _ => None,
                        };
                        let seg = k.map(Seg::Key).unwrap_or(Seg::Any);
                        cur = self.extend(&cur, &[seg]);
                    }
                    out.union(&cur);
                } else if !keys.is_empty() {
                    out.union(&self.extend(obj, &keys));
                }
                if let Some(d) = args.get(2) {
                    out.union(d);
                }
                return out;
            }
            "walk" | "json.filter" | "json.remove" | "object.remove" | "object.filter" => {
                return Av::default();
            }
            _ => {}
        }
        let key = last_name(&name).to_string();
        let Some(defs) = self.funcs.get(key.as_str()) else {
            return Av::default();
        };
        if self.depth >= MAX_DEPTH {
            return Av::default();
        }
        let summary = format!(
            "{key}({})",
            args.iter()
                .map(|a| format!("{:?}|{:?}|{:?}", a.paths, a.elems, a.strs))
                .collect::<Vec<_>>()
                .join(";")
        );
        if !self.seen_calls.insert(summary) {
            return Av::default();
        }
        // Copy out what we need (the definitions borrow from the AST, not
        // from `self`).
        let defs: Vec<FuncParts<'a>> = defs
            .iter()
            .map(|f| (f.args, f.bodies.clone(), f.value))
            .collect();
        self.depth += 1;
        let mut result = Av::default();
        for (formals, bodies, value) in defs {
            let mut fenv = Env::new();
            for (f, a) in formals.iter().zip(args.iter()) {
                if !a.is_empty() {
                    self.bind(f, a.clone(), &mut fenv);
                }
            }
            if bodies.is_empty() {
                if let Some(v) = value {
                    result.union(&self.expr(v, &mut fenv));
                }
            }
            for (q, assign) in bodies {
                let mut benv = fenv.clone();
                self.query(q, &mut benv);
                if let Some(v) = assign.or(value) {
                    result.union(&self.expr(v, &mut benv));
                }
            }
        }
        self.depth -= 1;
        result
    }

    fn query(&mut self, q: &'a Query, env: &mut Env) {
        for s in &q.stmts {
            match &s.literal {
                Literal::SomeVars { .. } => {}
                Literal::Expr { expr, .. } => {
                    self.expr(expr, env);
                }
                Literal::NotExpr { expr, .. } => {
                    let mut inner = env.clone();
                    self.expr(expr, &mut inner);
                }
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => self.member_of(key.as_ref(), value, collection, env),
                Literal::Every {
                    value,
                    domain,
                    query,
                    ..
                } => {
                    let c = self.expr(domain, env);
                    let members = c.members();
                    for p in &members.paths {
                        self.record(p);
                    }
                    let mut inner = env.clone();
                    inner.insert(value.text().to_string(), members);
                    self.query(query, &mut inner);
                }
            }
            for w in &s.with_mods {
                self.expr(&w.r#as, env);
            }
        }
    }

    fn rule(&mut self, r: &'a Rule) {
        let Rule::Spec { head, bodies, .. } = r else {
            return;
        };
        // What the rule produces, and whether that is one element of a
        // collection (a set rule's key, `name[k] := v`'s values).
        let (refr, value, as_elems): (&'a Expr, Option<&'a Expr>, bool) = match head {
            RuleHead::Compr { refr, assign, .. } => (
                refr.as_ref(),
                assign.as_ref().map(|a| a.value.as_ref()),
                matches!(refr.as_ref(), Expr::RefBrack { .. }),
            ),
            RuleHead::Set { refr, key, .. } => {
                (refr.as_ref(), key.as_ref().map(|k| k.as_ref()), true)
            }
            RuleHead::Func { .. } => return,
        };
        let name = last_name(refr.span().text()).to_string();
        let runs: Vec<(Option<&'a Query>, Option<&'a Expr>)> = if bodies.is_empty() {
            vec![(None, None)]
        } else {
            bodies
                .iter()
                .map(|b| {
                    (
                        Some(b.query.as_ref()),
                        b.assign.as_ref().map(|a| a.value.as_ref()),
                    )
                })
                .collect()
        };
        let mut produced = Av::default();
        for (q, own) in runs {
            let mut env = Env::new();
            if let Some(q) = q {
                self.query(q, &mut env);
            }
            if let Expr::RefBrack { index, .. } = refr {
                self.expr(index, &mut env);
            }
            if let Some(v) = own.or(value) {
                let a = self.expr(v, &mut env);
                if as_elems {
                    produced.elems.extend(a.paths.iter().cloned());
                    produced.elems.extend(a.elems.iter().cloned());
                } else {
                    produced.union(&a);
                }
            }
        }
        self.rules.entry(name).or_default().union(&produced);
    }
}

/// The abstract input paths the non-test modules read (every prefix of a
/// path read is itself read and not listed apart).
pub fn input_paths<'a>(modules: impl IntoIterator<Item = &'a Ast> + Clone) -> Vec<Path> {
    input_shape(modules).paths
}

/// What the policy reads of `input`.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// The maximal abstract paths read.
    pub paths: Vec<Path>,
    /// Pairs of paths the policy compares with each other
    /// (`kvs.deprecatedAPI == input.review.object.apiVersion`).
    pub links: Vec<(Path, Path)>,
}

/// The paths the non-test modules read, and the pairs they compare.
pub fn input_shape<'a>(modules: impl IntoIterator<Item = &'a Ast> + Clone) -> Shape {
    let mut it = Interp {
        rules: HashMap::new(),
        funcs: HashMap::new(),
        out: BTreeSet::new(),
        links: BTreeSet::new(),
        depth: 0,
        seen_calls: BTreeSet::new(),
    };
    for m in modules.clone() {
        for r in &m.policy {
            if let Rule::Spec {
                head: RuleHead::Func {
                    refr, args, assign, ..
                },
                bodies,
                ..
            } = r.as_ref()
            {
                let name = last_name(refr.span().text()).to_string();
                it.funcs.entry(name).or_default().push(Func {
                    args: args.as_slice(),
                    bodies: bodies
                        .iter()
                        .map(|b| {
                            (
                                b.query.as_ref(),
                                b.assign.as_ref().map(|a| a.value.as_ref()),
                            )
                        })
                        .collect(),
                    value: assign.as_ref().map(|a| a.value.as_ref()),
                });
            }
        }
    }
    for _ in 0..PASSES {
        it.seen_calls.clear();
        for m in modules.clone() {
            for r in &m.policy {
                it.rule(r.as_ref());
            }
        }
    }
    // Functions no rule calls (or calls with nothing known): their own
    // reads of `input`.
    let funcs: Vec<(String, usize)> = it.funcs.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    for (name, n) in funcs {
        for i in 0..n {
            let Some(f) = it.funcs.get(&name).and_then(|v| v.get(i)) else {
                continue;
            };
            let bodies = f.bodies.clone();
            let value = f.value;
            for (q, assign) in bodies {
                let mut env = Env::new();
                it.query(q, &mut env);
                if let Some(v) = assign.or(value) {
                    it.expr(v, &mut env);
                }
            }
        }
    }
    let all: Vec<Path> = it.out.into_iter().collect();
    // Keep the maximal paths: a prefix is implied by its extensions.
    let paths = all
        .iter()
        .filter(|p| {
            !all.iter()
                .any(|q| q.len() > p.len() && q.starts_with(p.as_slice()))
        })
        .cloned()
        .collect();
    Shape {
        paths,
        links: it.links.into_iter().collect(),
    }
}

// ------------------------------------------------------------ generation

/// SplitMix64: a small, seedable generator (no global state).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

fn num(x: f64) -> Json {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Json::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

/// Builds inputs that add the policy's input paths to seeds.
pub struct Generator {
    paths: Vec<Path>,
    /// Pairs of paths that differ in one key: `(i, j, at)`.
    siblings: Vec<(usize, usize, usize)>,
    /// Pairs of paths the policy compares.
    links: Vec<(Path, Path)>,
    leaves: Vec<Json>,
    /// The numbers and the strings among `leaves`: a leaf replacing a
    /// number is mostly a number, one replacing a string mostly a string.
    numbers: Vec<Json>,
    strings: Vec<Json>,
}

impl Generator {
    /// `strs`/`nums`: the policy's constants; `seeds`: the tests' inputs
    /// (their scalar leaves join the leaf values).
    pub fn new(shape: Shape, strs: &[String], nums: &[f64], seeds: &[Json]) -> Self {
        let Shape { paths, links } = shape;
        let mut leaves: Vec<Json> = vec![
            Json::Bool(true),
            Json::Bool(false),
            Json::Null,
            Json::Array(vec![]),
            Json::Object(Default::default()),
            Json::from(0),
            Json::String(String::new()),
        ];
        for s in strs {
            leaves.push(Json::String(s.clone()));
            // The constant inside a longer string, at either end: tells
            // `startswith`, `endswith`, `contains` and `==` apart.
            leaves.push(Json::String(format!("x{s}")));
            leaves.push(Json::String(format!("{s}x")));
            leaves.push(Json::Array(vec![Json::String(s.clone())]));
            let mut m = serde_json::Map::new();
            m.insert(s.clone(), Json::String(s.clone()));
            leaves.push(Json::Object(m));
        }
        for &n in nums {
            for x in [n, n + 1.0, n - 1.0] {
                leaves.push(num(x));
            }
            leaves.push(Json::Array(vec![num(n)]));
        }
        let mut seen: BTreeSet<String> = leaves.iter().map(|l| l.to_string()).collect();
        for s in seeds {
            let mut scalars = vec![];
            scalar_leaves(s, &mut scalars);
            for l in scalars {
                if seen.insert(l.to_string()) && seen.len() < 4096 {
                    leaves.push(l);
                }
            }
        }
        let mut siblings = vec![];
        for (i, p) in paths.iter().enumerate() {
            for (j, q) in paths.iter().enumerate() {
                if i == j || p.len() != q.len() {
                    continue;
                }
                let diff: Vec<usize> = (0..p.len()).filter(|&k| p[k] != q[k]).collect();
                if let [at] = diff.as_slice() {
                    if matches!((&p[*at], &q[*at]), (Seg::Key(_), Seg::Key(_))) {
                        siblings.push((i, j, *at));
                    }
                }
            }
        }
        let numbers = leaves.iter().filter(|l| l.is_number()).cloned().collect();
        let strings = leaves.iter().filter(|l| l.is_string()).cloned().collect();
        Generator {
            paths,
            siblings,
            links,
            leaves,
            numbers,
            strings,
        }
    }

    /// A leaf to put where `old` is: three times in four of the same kind
    /// when `old` is a number, a string or a boolean.
    fn leaf(&self, old: &Json, rng: &mut Rng) -> Json {
        let same = rng.below(4) != 0;
        let pool = match old {
            Json::Number(_) if same && !self.numbers.is_empty() => &self.numbers,
            Json::String(_) if same && !self.strings.is_empty() => &self.strings,
            Json::Bool(b) if same => return Json::Bool(!b),
            _ => &self.leaves,
        };
        pool[rng.below(pool.len())].clone()
    }

    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// A new input: `seed` with one path put in or grafted (half the time:
    /// the seed's other values stay as a test chose them), or two or three.
    pub fn grow(&self, seed: &Json, rng: &mut Rng) -> Json {
        let mut v = seed.clone();
        if self.paths.is_empty() {
            return v;
        }
        for _ in 0..edits(rng) {
            if !self.links.is_empty() && rng.below(4) == 0 {
                let (p, q) = &self.links[rng.below(self.links.len())];
                let (p, q) = if rng.below(2) == 0 { (p, q) } else { (q, p) };
                link(&mut v, p, q, &|old, rng| self.leaf(old, rng), rng);
                continue;
            }
            if !self.siblings.is_empty() && rng.below(3) == 0 {
                let (i, j, at) = self.siblings[rng.below(self.siblings.len())];
                if graft(&mut v, &self.paths[i], &self.paths[j], at, rng) {
                    continue;
                }
            }
            let p = &self.paths[rng.below(self.paths.len())];
            // Sometimes stop short of the leaf: an empty or odd container
            // in the middle of the path.
            let cut = if rng.below(4) == 0 {
                1 + rng.below(p.len())
            } else {
                p.len()
            };
            put(&mut v, &p[..cut], &|old, rng| self.leaf(old, rng), rng);
        }
        v
    }
}

/// How many edits make one input: one half the time, else two or three.
pub fn edits(rng: &mut Rng) -> usize {
    if rng.below(2) == 0 {
        1
    } else {
        2 + rng.below(2)
    }
}

fn scalar_leaves(v: &Json, out: &mut Vec<Json>) {
    match v {
        Json::Object(m) => m.values().for_each(|x| scalar_leaves(x, out)),
        Json::Array(a) => a.iter().for_each(|x| scalar_leaves(x, out)),
        Json::String(s) if s.len() > 64 => {}
        other => out.push(other.clone()),
    }
}

/// Put `leaf` at `path` in `v`, making objects and arrays on the way; at a
/// `[*]` step, into an existing element or a new one (a copy of an existing
/// element, so that its other fields come along).
fn put(v: &mut Json, path: &[Seg], leaf: &dyn Fn(&Json, &mut Rng) -> Json, rng: &mut Rng) {
    let Some((first, rest)) = path.split_first() else {
        *v = leaf(v, rng);
        return;
    };
    match first {
        Seg::Key(k) => {
            if !v.is_object() {
                *v = Json::Object(Default::default());
            }
            if let Json::Object(m) = v {
                let child = m.entry(k.clone()).or_insert(Json::Null);
                put(child, rest, leaf, rng);
            }
        }
        Seg::Any => match v {
            Json::Array(a) if !a.is_empty() && rng.below(2) == 0 => {
                let i = rng.below(a.len());
                put(&mut a[i], rest, leaf, rng);
            }
            Json::Array(a) => {
                let mut e = if a.is_empty() {
                    Json::Null
                } else {
                    a[rng.below(a.len())].clone()
                };
                put(&mut e, rest, leaf, rng);
                a.push(e);
            }
            Json::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = &keys[rng.below(keys.len())];
                if let Some(child) = m.get_mut(k) {
                    put(child, rest, leaf, rng);
                }
            }
            _ => {
                let mut e = Json::Null;
                put(&mut e, rest, leaf, rng);
                *v = Json::Array(vec![e]);
            }
        },
    }
}

/// Make `v` hold one value at both `p` and `q`: the value it has at `p`
/// (some concrete match) if any, else a new leaf put at both.
fn link(v: &mut Json, p: &[Seg], q: &[Seg], leaf: &dyn Fn(&Json, &mut Rng) -> Json, rng: &mut Rng) {
    let mut found = vec![];
    locate(v, p, &mut vec![], &mut found);
    let value = match found.get(rng.below(found.len())) {
        Some(loc) => at_mut(v, loc).cloned(),
        _ => None,
    };
    let value = value.unwrap_or_else(|| {
        let x = leaf(&Json::Null, rng);
        put(v, p, &|_, _| x.clone(), rng);
        x
    });
    put(v, q, &|_, _| value.clone(), rng);
}

/// Concrete locations of `path` in `v` (`[*]` matches every element).
fn locate(v: &Json, path: &[Seg], at: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
    let Some((first, rest)) = path.split_first() else {
        out.push(at.clone());
        return;
    };
    match (first, v) {
        (Seg::Key(k), Json::Object(m)) => {
            if let Some(x) = m.get(k) {
                at.push(Json::String(k.clone()));
                locate(x, rest, at, out);
                at.pop();
            }
        }
        (Seg::Any, Json::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                at.push(Json::from(i));
                locate(x, rest, at, out);
                at.pop();
            }
        }
        (Seg::Any, Json::Object(m)) => {
            for (k, x) in m {
                at.push(Json::String(k.clone()));
                locate(x, rest, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The value at `path` (object keys and array indices) inside `v`.
pub(crate) fn at_mut<'v>(v: &'v mut Json, path: &[Json]) -> Option<&'v mut Json> {
    let mut cur = v;
    for p in path {
        cur = match (cur, p) {
            (Json::Object(m), Json::String(k)) => m.get_mut(k)?,
            (Json::Array(a), Json::Number(n)) => a.get_mut(usize::try_from(n.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Copy the value `v` has at `from[..=at]` (some concrete match) to the
/// sibling key `to[at]`; false when `v` has nothing at `from[..=at]`.
fn graft(v: &mut Json, to: &[Seg], from: &[Seg], at: usize, rng: &mut Rng) -> bool {
    let (Some(prefix), Some(Seg::Key(new_key))) = (from.get(..=at), to.get(at)) else {
        return false;
    };
    let mut found = vec![];
    locate(v, prefix, &mut vec![], &mut found);
    if found.is_empty() {
        return false;
    }
    let loc = found.swap_remove(rng.below(found.len()));
    let Some(value) = at_mut(v, &loc).map(|x| x.clone()) else {
        return false;
    };
    let Some((_, parent)) = loc.split_last() else {
        return false;
    };
    match at_mut(v, parent) {
        Some(Json::Object(m)) => {
            m.insert(new_key.clone(), value);
            true
        }
        _ => false,
    }
}

/// Deduplicate JSON values, keeping the first of each.
pub fn dedup(vs: Vec<Json>) -> Vec<Json> {
    let mut seen = BTreeMap::new();
    let mut out = vec![];
    for v in vs {
        let k = v.to_string();
        if seen.insert(k, ()).is_none() {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_of(src: &str) -> Vec<String> {
        let set = crate::rego_mut::test_set(src, None);
        let ast = set.parse(0).expect("parse");
        input_paths([&ast]).iter().map(|p| render(p)).collect()
    }

    #[test]
    fn follows_helper_rules_variables_and_functions() {
        let got = paths_of(
            r#"package p
import rego.v1

input_containers contains c if { c := input.review.object.spec.containers[_] }
input_containers contains c if { c := input.review.object.spec.ephemeralContainers[_] }

has_field(obj, field) if { obj[field] }

violation contains msg if {
    container := input_containers[_]
    container.securityContext.privileged
    not has_field(container, "image")
    some repo in input.parameters.repos
    x := object.get(input.review.object.metadata, "labels", {})
    msg := sprintf("%v %v", [repo, x])
}
"#,
        );
        for want in [
            "input.review.object.spec.containers[*].securityContext.privileged",
            "input.review.object.spec.ephemeralContainers[*].securityContext.privileged",
            "input.review.object.spec.ephemeralContainers[*].image",
            "input.parameters.repos[*]",
            "input.review.object.metadata.labels",
        ] {
            assert!(got.iter().any(|g| g == want), "{want} not in {got:#?}");
        }
    }

    #[test]
    fn v0_set_rules_and_some_in() {
        let got = paths_of(
            r#"package p
import future.keywords.in
containers[c] { c := input.spec.containers[_] }
containers[c] { some c in input.spec.initContainers }
deny[msg] {
    c := containers[_]
    c.ports[_].hostPort > 100
    msg := "x"
}
"#,
        );
        assert!(
            got.contains(&"input.spec.initContainers[*].ports[*].hostPort".to_string()),
            "{got:#?}"
        );
        assert!(
            got.contains(&"input.spec.containers[*].ports[*].hostPort".to_string()),
            "{got:#?}"
        );
    }

    #[test]
    fn grow_adds_the_paths_and_is_deterministic() {
        let paths = vec![
            vec![
                Seg::Key("spec".into()),
                Seg::Key("containers".into()),
                Seg::Any,
                Seg::Key("image".into()),
            ],
            vec![
                Seg::Key("spec".into()),
                Seg::Key("ephemeralContainers".into()),
                Seg::Any,
                Seg::Key("image".into()),
            ],
        ];
        let seed = serde_json::json!({"spec": {"containers": [{"image": "nginx", "name": "a"}]}});
        let shape = Shape {
            paths,
            links: vec![],
        };
        let g = Generator::new(shape, &["registry/".into()], &[1.0], &[seed.clone()]);
        let mut a = Rng(7);
        let mut b = Rng(7);
        let xs: Vec<Json> = (0..64).map(|_| g.grow(&seed, &mut a)).collect();
        let ys: Vec<Json> = (0..64).map(|_| g.grow(&seed, &mut b)).collect();
        assert_eq!(xs, ys);
        assert!(xs
            .iter()
            .any(|x| x["spec"]["ephemeralContainers"].is_array()));
        // A graft copies the whole container, its name too.
        assert!(xs
            .iter()
            .any(|x| x["spec"]["ephemeralContainers"][0]["name"] == "a"));
        let empty = serde_json::json!({});
        let mut c = Rng(1);
        assert!((0..32).any(|_| g.grow(&empty, &mut c)["spec"]["containers"].is_array()));
    }

    #[test]
    fn compared_paths_are_linked_and_grown_equal() {
        let set = crate::rego_mut::test_set(
            "package p\n\ndeny contains 1 if {\n    kvs := input.parameters.kvs[_]\n    kvs.api == input.review.object.apiVersion\n}\n",
            None,
        );
        let ast = set.parse(0).expect("parse");
        let shape = input_shape([&ast]);
        let rendered: Vec<(String, String)> = shape
            .links
            .iter()
            .map(|(a, b)| (render(a), render(b)))
            .collect();
        assert!(
            rendered.contains(&(
                "input.parameters.kvs[*].api".into(),
                "input.review.object.apiVersion".into()
            )),
            "{rendered:?}"
        );
        let g = Generator::new(shape, &[], &[], &[]);
        let mut rng = Rng(3);
        let empty = serde_json::json!({});
        let hit = (0..64).map(|_| g.grow(&empty, &mut rng)).any(|x| {
            let v = &x["review"]["object"]["apiVersion"];
            !v.is_null()
                && x["parameters"]["kvs"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|k| &k["api"] == v))
        });
        assert!(hit);
    }
}
