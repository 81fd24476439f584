//! The guard language: a hand-written lexer and recursive-descent parser.
//!
//! The grammar (EBNF) is in `docs/guards.md`. Every error carries the
//! `line:col` of the offending token and the source line with a caret.
//! `let` names are expanded while parsing, so the AST (which the Python
//! builder produces too) has none.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::CepError;

/// Largest repetition bound (`{n,m}` with `m` at most this).
pub const MAX_REPEAT: u32 = 10_000;

/// How events between two consumed events are treated (Flink CEP's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Contiguity {
    /// Every event after a run's first must be consumed by it, or it ends.
    Strict,
    /// Events the run cannot consume are skipped; one it can is taken.
    #[default]
    SkipTillNext,
    /// Like skip-till-next, but the run may also skip consumable events.
    SkipTillAny,
}

impl Contiguity {
    pub fn name(self) -> &'static str {
        match self {
            Contiguity::Strict => "strict",
            Contiguity::SkipTillNext => "skip-till-next",
            Contiguity::SkipTillAny => "skip-till-any",
        }
    }
}

/// A literal in a predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A comparison on one attribute (or `name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "op", content = "value")]
pub enum Op {
    Eq(Lit),
    Ne(Lit),
    Lt(Lit),
    Le(Lit),
    Gt(Lit),
    Ge(Lit),
    In(Vec<Lit>),
    /// Unanchored regex search (the `regex` crate's syntax) on a string.
    Regex(String),
    Exists,
}

/// `[key op value]`, optionally negated with a leading `!`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pred {
    pub key: String,
    #[serde(flatten)]
    pub op: Op,
    #[serde(default)]
    pub negated: bool,
}

/// Which events a step accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum MatcherAst {
    /// `*`: every event.
    Any,
    /// An event name (span name or span-event name).
    Name { name: String },
    /// `(m1 | m2 | ...)`.
    Or { any: Vec<MatcherAst> },
    /// `m[p1, p2, ...]`: `m` and every predicate.
    Where {
        base: Box<MatcherAst>,
        preds: Vec<Pred>,
    },
}

/// One element of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "step")]
pub enum StepAst {
    /// `!m`: no event matching `m` while the run is in the next stage.
    Not { matcher: MatcherAst },
    /// `m{lo,hi}` (`hi` absent: unbounded).
    Event {
        matcher: MatcherAst,
        lo: u32,
        hi: Option<u32>,
    },
    /// `count(m) >= n within d` (first step only).
    Count {
        matcher: MatcherAst,
        at_least: u32,
        within_ns: i64,
    },
}

/// `no m within d` at the end of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsenceAst {
    pub matcher: MatcherAst,
    pub within_ns: i64,
}

/// One alternative of a guard's pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqAst {
    pub steps: Vec<StepAst>,
    #[serde(default)]
    pub absence: Option<AbsenceAst>,
    /// Window of this alternative (overrides the guard's).
    #[serde(default)]
    pub within_ns: Option<i64>,
}

/// A parsed guard (also what the Python builder produces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardAst {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_per")]
    pub per: String,
    #[serde(default)]
    pub contiguity: Contiguity,
    #[serde(default)]
    pub within_ns: Option<i64>,
    pub patterns: Vec<SeqAst>,
}

fn default_per() -> String {
    "trace_id".into()
}

// ------------------------------------------------------------------ lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Dur(i64),
    Arrow,
    Bang,
    Pipe,
    Comma,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    Star,
    Plus,
    Question,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Tilde,
    NotTilde,
    Assign,
    Eof,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Dur(d) => format!("duration {d}ns"),
        Tok::Arrow => "'->'".into(),
        Tok::Bang => "'!'".into(),
        Tok::Pipe => "'|'".into(),
        Tok::Comma => "','".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBrack => "'['".into(),
        Tok::RBrack => "']'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::Star => "'*'".into(),
        Tok::Plus => "'+'".into(),
        Tok::Question => "'?'".into(),
        Tok::Eq => "'=='".into(),
        Tok::Ne => "'!='".into(),
        Tok::Lt => "'<'".into(),
        Tok::Le => "'<='".into(),
        Tok::Gt => "'>'".into(),
        Tok::Ge => "'>='".into(),
        Tok::Tilde => "'~'".into(),
        Tok::NotTilde => "'!~'".into(),
        Tok::Assign => "'='".into(),
        Tok::Eof => "end of input".into(),
    }
}

#[derive(Debug, Clone)]
struct Spanned {
    tok: Tok,
    pos: usize,
}

struct Src<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Src<'_> {
    /// A syntax error at byte offset `pos`.
    fn err(&self, pos: usize, msg: impl Into<String>) -> CepError {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = self.text[pos..]
            .find('\n')
            .map(|i| pos + i)
            .unwrap_or(self.text.len());
        let text = self.text[line_start..line_end].to_string();
        let col = self.text[line_start..pos].chars().count() + 1;
        let caret = format!(
            "{}^",
            self.text[line_start..pos]
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect::<String>()
        );
        CepError::Syntax {
            origin: self.origin.to_string(),
            line,
            col,
            msg: msg.into(),
            text,
            caret,
        }
    }
}

fn dur_unit(u: &str) -> Option<i64> {
    Some(match u {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

fn lex(src: &Src<'_>) -> Result<Vec<Spanned>, CepError> {
    let b = src.text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let tok = match c {
            b'-' if two == b'>' => {
                i += 2;
                Tok::Arrow
            }
            b'!' if two == b'=' => {
                i += 2;
                Tok::Ne
            }
            b'!' if two == b'~' => {
                i += 2;
                Tok::NotTilde
            }
            b'=' if two == b'=' => {
                i += 2;
                Tok::Eq
            }
            b'<' if two == b'=' => {
                i += 2;
                Tok::Le
            }
            b'>' if two == b'=' => {
                i += 2;
                Tok::Ge
            }
            b'!' | b'|' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'*' | b'+' | b'?'
            | b'<' | b'>' | b'~' | b'=' => {
                i += 1;
                match c {
                    b'!' => Tok::Bang,
                    b'|' => Tok::Pipe,
                    b',' => Tok::Comma,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBrack,
                    b']' => Tok::RBrack,
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b'*' => Tok::Star,
                    b'+' => Tok::Plus,
                    b'?' => Tok::Question,
                    b'<' => Tok::Lt,
                    b'>' => Tok::Gt,
                    b'~' => Tok::Tilde,
                    _ => Tok::Assign,
                }
            }
            b'"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(ch) = src.text[i..].chars().next() else {
                        return Err(src.err(start, "unterminated string"));
                    };
                    match ch {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\n' => return Err(src.err(start, "unterminated string")),
                        '\\' => {
                            let esc = src.text[i + 1..].chars().next();
                            let r = match esc {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                _ => {
                                    return Err(src.err(
                                        i,
                                        "unknown escape (use \\\" \\\\ \\n or \\t; regexes keep \\ by doubling it)",
                                    ))
                                }
                            };
                            s.push(r);
                            i += 2;
                        }
                        _ => {
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' => {
                if c == b'-' && !two.is_ascii_digit() {
                    return Err(src.err(start, "unexpected '-' (did you mean '->'?)"));
                }
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                    i += 1;
                }
                let mut is_float = false;
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    is_float = true;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let num = src.text[start..i].replace('_', "");
                let us = i;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let unit = &src.text[us..i];
                if !unit.is_empty() {
                    let Some(mult) = dur_unit(unit) else {
                        return Err(src.err(
                            us,
                            format!("unknown duration unit {unit:?} (use ns, us, ms, s, m or h)"),
                        ));
                    };
                    if is_float || c == b'-' {
                        return Err(src.err(
                            start,
                            "a duration is a non-negative integer with a unit, e.g. 1500ms",
                        ));
                    }
                    let v: i64 = num
                        .parse()
                        .map_err(|_| src.err(start, "duration is too large"))?;
                    let ns = v
                        .checked_mul(mult)
                        .filter(|&n| n < super::MAX_TIME)
                        .ok_or_else(|| src.err(start, "duration is too large (below 2^62 ns)"))?;
                    Tok::Dur(ns)
                } else if is_float {
                    Tok::Float(
                        num.parse()
                            .map_err(|_| src.err(start, "malformed number"))?,
                    )
                } else {
                    Tok::Int(
                        num.parse()
                            .map_err(|_| src.err(start, "integer out of 64-bit range"))?,
                    )
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                i += 1;
                loop {
                    if i >= b.len() {
                        break;
                    }
                    let d = b[i];
                    if d.is_ascii_alphanumeric() || d == b'_' || d == b'.' {
                        i += 1;
                    } else if d == b'-' && i + 1 < b.len() && b[i + 1].is_ascii_alphabetic() {
                        // hyphenated words (skip-till-next) but never '->'
                        i += 1;
                    } else {
                        break;
                    }
                }
                let w = &src.text[start..i];
                if w.ends_with('.') {
                    return Err(src.err(i - 1, "a name cannot end with '.'"));
                }
                Tok::Ident(w.to_string())
            }
            _ => {
                let ch = src.text[i..].chars().next().unwrap_or('?');
                return Err(src.err(start, format!("unexpected character {ch:?}")));
            }
        };
        out.push(Spanned { tok, pos: start });
    }
    out.push(Spanned {
        tok: Tok::Eof,
        pos: src.text.len(),
    });
    Ok(out)
}

// ------------------------------------------------------------------ parser

const KEYWORDS: &[&str] = &[
    "guard",
    "per",
    "contiguity",
    "within",
    "let",
    "match",
    "no",
    "count",
    "in",
    "exists",
    "true",
    "false",
];

struct Parser<'a> {
    src: Src<'a>,
    toks: Vec<Spanned>,
    i: usize,
    lets: HashMap<String, MatcherAst>,
}

type R<T> = Result<T, CepError>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }
    fn err_here(&self, msg: impl Into<String>) -> CepError {
        self.src.err(self.pos(), msg)
    }
    fn expected(&self, what: &str) -> CepError {
        self.err_here(format!("expected {what}, found {}", describe(self.peek())))
    }
    fn expect(&mut self, t: Tok, what: &str) -> R<()> {
        if *self.peek() == t {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }
    fn expect_kw(&mut self, kw: &str) -> R<()> {
        if self.is_kw(kw) {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(&format!("'{kw}'")))
        }
    }
    fn ident(&mut self, what: &str) -> R<String> {
        match self.peek().clone() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }
    fn duration(&mut self) -> R<i64> {
        match self.peek().clone() {
            Tok::Dur(d) => {
                self.bump();
                Ok(d)
            }
            Tok::Int(_) => Err(self.err_here("a duration needs a unit: ns, us, ms, s, m or h")),
            _ => Err(self.expected("a duration such as 5s or 250ms")),
        }
    }
    fn uint(&mut self, what: &str) -> R<u32> {
        match self.peek().clone() {
            Tok::Int(v) if (0..=MAX_REPEAT as i64).contains(&v) => {
                self.bump();
                Ok(v as u32)
            }
            Tok::Int(_) => Err(self.err_here(format!("{what} must be between 0 and {MAX_REPEAT}"))),
            _ => Err(self.expected(what)),
        }
    }

    fn file(&mut self) -> R<Vec<GuardAst>> {
        let mut out: Vec<GuardAst> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        while *self.peek() != Tok::Eof {
            let at = self.pos();
            let g = self.guard()?;
            if seen.insert(g.name.clone(), at).is_some() {
                return Err(self
                    .src
                    .err(at, format!("guard {:?} is defined twice", g.name)));
            }
            out.push(g);
        }
        if out.is_empty() {
            return Err(self.err_here("no guard defined (expected 'guard NAME { ... }')"));
        }
        Ok(out)
    }

    fn guard(&mut self) -> R<GuardAst> {
        self.expect_kw("guard")?;
        let np = self.pos();
        let name = self.ident("a guard name")?;
        if name.contains('-') {
            return Err(self
                .src
                .err(np, "a guard name is letters, digits, '_' and '.' (no '-')"));
        }
        let description = match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Some(s)
            }
            _ => None,
        };
        let open = self.pos();
        self.expect(Tok::LBrace, "'{'")?;
        self.lets.clear();
        let mut g = GuardAst {
            name,
            description,
            per: default_per(),
            contiguity: Contiguity::default(),
            within_ns: None,
            patterns: Vec::new(),
        };
        let (mut got_per, mut got_cont, mut got_within) = (false, false, false);
        loop {
            let at = self.pos();
            match self.peek().clone() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Ident(k) if k == "per" => {
                    if got_per {
                        return Err(self.err_here("'per' given twice"));
                    }
                    got_per = true;
                    self.bump();
                    g.per = match self.bump() {
                        Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => s,
                        Tok::Str(s) => s,
                        _ => {
                            return Err(self.src.err(at, "expected an attribute name after 'per'"))
                        }
                    };
                }
                Tok::Ident(k) if k == "contiguity" => {
                    if got_cont {
                        return Err(self.err_here("'contiguity' given twice"));
                    }
                    got_cont = true;
                    self.bump();
                    let p = self.pos();
                    g.contiguity = match self.bump() {
                        Tok::Ident(s) if s == "strict" => Contiguity::Strict,
                        Tok::Ident(s) if s == "skip-till-next" || s == "relaxed" => {
                            Contiguity::SkipTillNext
                        }
                        Tok::Ident(s) if s == "skip-till-any" => Contiguity::SkipTillAny,
                        _ => {
                            return Err(self
                                .src
                                .err(p, "expected strict, skip-till-next or skip-till-any"))
                        }
                    };
                }
                Tok::Ident(k) if k == "within" => {
                    if got_within {
                        return Err(self.err_here("'within' given twice"));
                    }
                    got_within = true;
                    self.bump();
                    g.within_ns = Some(self.duration()?);
                }
                Tok::Ident(k) if k == "let" => {
                    self.bump();
                    let np = self.pos();
                    let n = self.ident("a name to bind")?;
                    if self.lets.contains_key(&n) {
                        return Err(self.src.err(np, format!("{n:?} is already bound by 'let'")));
                    }
                    self.expect(Tok::Assign, "'='")?;
                    let m = self.matcher()?;
                    self.lets.insert(n, m);
                }
                Tok::Ident(k) if k == "match" => {
                    self.bump();
                    loop {
                        g.patterns.push(self.seq()?);
                        if *self.peek() == Tok::Pipe {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                Tok::Eof => {
                    return Err(self
                        .src
                        .err(open, "this '{' is never closed (expected '}')"))
                }
                _ => {
                    return Err(
                        self.expected("'per', 'contiguity', 'within', 'let', 'match' or '}'")
                    )
                }
            }
        }
        if g.patterns.is_empty() {
            return Err(self
                .src
                .err(open, format!("guard {:?} has no 'match' clause", g.name)));
        }
        Ok(g)
    }

    fn seq(&mut self) -> R<SeqAst> {
        let start = self.pos();
        let mut steps = Vec::new();
        let mut absence = None;
        let mut within_ns = None;
        loop {
            let at = self.pos();
            if *self.peek() == Tok::Bang {
                self.bump();
                let m = self.matcher()?;
                steps.push(StepAst::Not { matcher: m });
                if *self.peek() != Tok::Arrow {
                    return Err(self.src.err(
                        at,
                        "a negation '!m' must be followed by '->' and the step it guards",
                    ));
                }
                self.bump();
                continue;
            }
            if self.is_kw("no") {
                if !steps.iter().any(|s| !matches!(s, StepAst::Not { .. })) {
                    return Err(self.err_here("'no ... within' needs a step before it"));
                }
                self.bump();
                let m = self.matcher()?;
                self.expect_kw("within")?;
                let d = self.duration()?;
                absence = Some(AbsenceAst {
                    matcher: m,
                    within_ns: d,
                });
                if *self.peek() == Tok::Arrow {
                    return Err(self.err_here("'no ... within' must be the last step"));
                }
            } else if self.is_kw("count") {
                self.bump();
                self.expect(Tok::LParen, "'(' after count")?;
                let m = self.matcher()?;
                self.expect(Tok::RParen, "')'")?;
                let strict = match self.bump() {
                    Tok::Ge => false,
                    Tok::Gt => true,
                    _ => {
                        self.i -= 1;
                        return Err(self.expected("'>=' or '>' after count(...)"));
                    }
                };
                let np = self.pos();
                let n = self.uint("a count")?;
                let n = if strict { n + 1 } else { n };
                if n == 0 {
                    return Err(self
                        .src
                        .err(np, "count(...) >= 0 always holds; use 1 or more"));
                }
                self.expect_kw("within")?;
                let w = self.duration()?;
                if !steps.is_empty() {
                    return Err(self.src.err(at, "count(...) can only be the first step"));
                }
                steps.push(StepAst::Count {
                    matcher: m,
                    at_least: n,
                    within_ns: w,
                });
            } else {
                let m = self.matcher()?;
                let qp = self.pos();
                let (lo, hi) = self.quantifier()?;
                if let Some(h) = hi {
                    if h == 0 {
                        return Err(self
                            .src
                            .err(qp, "a repetition needs an upper bound of 1 or more"));
                    }
                    if lo > h {
                        return Err(self
                            .src
                            .err(qp, format!("lower bound {lo} exceeds upper bound {h}")));
                    }
                }
                steps.push(StepAst::Event { matcher: m, lo, hi });
            }
            if absence.is_none() && *self.peek() == Tok::Arrow {
                self.bump();
                continue;
            }
            break;
        }
        if self.is_kw("within") {
            self.bump();
            within_ns = Some(self.duration()?);
        }
        let s = SeqAst {
            steps,
            absence,
            within_ns,
        };
        validate_seq(&s).map_err(|m| self.src.err(start, m))?;
        Ok(s)
    }

    fn quantifier(&mut self) -> R<(u32, Option<u32>)> {
        Ok(match self.peek() {
            Tok::Star => {
                self.bump();
                (0, None)
            }
            Tok::Plus => {
                self.bump();
                (1, None)
            }
            Tok::Question => {
                self.bump();
                (0, Some(1))
            }
            Tok::LBrace => {
                self.bump();
                let lo = self.uint("a repetition count")?;
                let hi = if *self.peek() == Tok::Comma {
                    self.bump();
                    if *self.peek() == Tok::RBrace {
                        None
                    } else {
                        Some(self.uint("an upper bound")?)
                    }
                } else {
                    Some(lo)
                };
                self.expect(Tok::RBrace, "'}'")?;
                (lo, hi)
            }
            _ => (1, Some(1)),
        })
    }

    fn matcher(&mut self) -> R<MatcherAst> {
        let at = self.pos();
        let base = match self.bump() {
            Tok::Star => MatcherAst::Any,
            Tok::Str(s) => MatcherAst::Name { name: s },
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => match self.lets.get(&s) {
                Some(m) => m.clone(),
                None => MatcherAst::Name { name: s },
            },
            Tok::LParen => {
                let mut any = vec![self.matcher()?];
                while *self.peek() == Tok::Pipe {
                    self.bump();
                    any.push(self.matcher()?);
                }
                self.expect(Tok::RParen, "'|' or ')'")?;
                if any.len() == 1 {
                    any.pop().unwrap_or(MatcherAst::Any)
                } else {
                    MatcherAst::Or { any }
                }
            }
            t => {
                let hint = match &t {
                    Tok::Ident(k) => format!(
                        "expected an event name, '*' or '(', found keyword '{k}' (quote it to use it as a name)"
                    ),
                    _ => format!("expected an event name, '*' or '(', found {}", describe(&t)),
                };
                return Err(self.src.err(at, hint));
            }
        };
        if *self.peek() != Tok::LBrack {
            return Ok(base);
        }
        self.bump();
        let mut preds = Vec::new();
        loop {
            preds.push(self.pred()?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrack => {
                    self.bump();
                    break;
                }
                _ => return Err(self.expected("',' or ']'")),
            }
        }
        Ok(MatcherAst::Where {
            base: Box::new(base),
            preds,
        })
    }

    fn lit(&mut self) -> R<Lit> {
        Ok(match self.bump() {
            Tok::Str(s) => Lit::Str(s),
            Tok::Int(i) => Lit::Int(i),
            Tok::Float(f) => Lit::Float(f),
            Tok::Ident(s) if s == "true" => Lit::Bool(true),
            Tok::Ident(s) if s == "false" => Lit::Bool(false),
            _ => {
                self.i -= 1;
                return Err(self.expected("a value (string, number, true or false)"));
            }
        })
    }

    fn pred(&mut self) -> R<Pred> {
        let mut negated = false;
        if *self.peek() == Tok::Bang {
            self.bump();
            negated = true;
        }
        let key = match self.bump() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => s,
            Tok::Str(s) => s,
            _ => {
                self.i -= 1;
                return Err(self.expected("an attribute name"));
            }
        };
        let at = self.pos();
        let op = match self.bump() {
            Tok::Eq => Op::Eq(self.lit()?),
            Tok::Ne => Op::Ne(self.lit()?),
            Tok::Lt => Op::Lt(self.lit()?),
            Tok::Le => Op::Le(self.lit()?),
            Tok::Gt => Op::Gt(self.lit()?),
            Tok::Ge => Op::Ge(self.lit()?),
            Tok::Tilde | Tok::NotTilde => {
                let neg = matches!(self.toks[self.i - 1].tok, Tok::NotTilde);
                let rp = self.pos();
                let Tok::Str(re) = self.bump() else {
                    return Err(self
                        .src
                        .err(rp, "expected a regex as a string, e.g. \"^db\\\\.\""));
                };
                if let Err(e) = regex::Regex::new(&re) {
                    let first = e.to_string();
                    let first = first
                        .lines()
                        .last()
                        .unwrap_or("invalid regex")
                        .trim()
                        .to_string();
                    return Err(self.src.err(rp, format!("invalid regex: {first}")));
                }
                if neg {
                    negated = !negated;
                }
                Op::Regex(re)
            }
            Tok::Ident(s) if s == "in" => {
                self.expect(Tok::LParen, "'(' after in")?;
                let mut v = vec![self.lit()?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    v.push(self.lit()?);
                }
                self.expect(Tok::RParen, "',' or ')'")?;
                Op::In(v)
            }
            Tok::Ident(s) if s == "exists" => Op::Exists,
            _ => {
                return Err(self
                    .src
                    .err(at, "expected ==, !=, <, <=, >, >=, in, ~, !~ or exists"))
            }
        };
        Ok(Pred { key, op, negated })
    }
}

/// Structural rules shared by text and builder ASTs (messages without position).
pub fn validate_seq(s: &SeqAst) -> Result<(), String> {
    let n = s.steps.len();
    if !s.steps.iter().any(|st| !matches!(st, StepAst::Not { .. })) {
        return Err("a pattern needs at least one event step".into());
    }
    if matches!(s.steps.last(), Some(StepAst::Not { .. })) {
        return Err("a negation '!m' must be followed by the step it guards".into());
    }
    let mut any_required = false;
    for (i, st) in s.steps.iter().enumerate() {
        match st {
            StepAst::Count {
                at_least,
                within_ns,
                ..
            } => {
                if i != 0 {
                    return Err("count(...) can only be the first step".into());
                }
                if *at_least == 0 || *at_least > MAX_REPEAT + 1 {
                    return Err(format!("count threshold must be 1 ..= {}", MAX_REPEAT + 1));
                }
                check_dur(*within_ns)?;
                any_required = true;
            }
            StepAst::Event { lo, hi, .. } => {
                if *lo > MAX_REPEAT || hi.is_some_and(|h| h > MAX_REPEAT || h == 0 || h < *lo) {
                    return Err(format!(
                        "repetition bounds {{{lo},{}}} must satisfy 0 <= lo <= hi <= {MAX_REPEAT}, hi >= 1",
                        hi.map(|h| h.to_string()).unwrap_or_default()
                    ));
                }
                if *lo > 0 {
                    any_required = true;
                }
            }
            StepAst::Not { .. } => {
                // The guarded step must need at least one event, and the
                // step before (if any) must have a fixed count, so that
                // the gap the negation guards is unambiguous.
                let next = s.steps.get(i + 1);
                match next {
                    Some(StepAst::Event { lo, .. }) if *lo >= 1 => {}
                    Some(StepAst::Not { .. }) => {}
                    _ => {
                        return Err(
                            "a negation must guard an event step that needs at least one event (lo >= 1)"
                                .into(),
                        )
                    }
                }
                let mut j = i;
                while j > 0 && matches!(s.steps[j - 1], StepAst::Not { .. }) {
                    j -= 1;
                }
                if j > 0 {
                    match &s.steps[j - 1] {
                        StepAst::Event { lo, hi, .. } if Some(*lo) == *hi => {}
                        StepAst::Count { .. } => {
                            return Err("a negation cannot follow count(...)".into())
                        }
                        _ => {
                            return Err(
                                "a negation must follow a step with a fixed count (e.g. a or a{3})"
                                    .into(),
                            )
                        }
                    }
                }
            }
        }
    }
    if !any_required {
        return Err("the pattern can match without any event (every step is optional)".into());
    }
    if let Some(a) = &s.absence {
        check_dur(a.within_ns)?;
        if a.within_ns == 0 {
            return Err("'no ... within 0' can never hold; use a positive duration".into());
        }
    }
    if let Some(w) = s.within_ns {
        check_dur(w)?;
    }
    let _ = n;
    Ok(())
}

fn check_dur(d: i64) -> Result<(), String> {
    if !(0..super::MAX_TIME).contains(&d) {
        return Err(format!("duration {d} ns out of range (0 .. 2^62 ns)"));
    }
    Ok(())
}

/// Parse guard source; `origin` names it in errors (a file name).
pub fn parse(origin: &str, text: &str) -> Result<Vec<GuardAst>, CepError> {
    let src = Src { origin, text };
    let toks = lex(&src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        lets: HashMap::new(),
    };
    p.file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> GuardAst {
        let mut v = parse("t.guard", s).expect("parses");
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn parses_full_guard() {
        let g = one(r#"# doc
            guard save_ok "saves succeed" {
              per "trace_id"
              contiguity skip-till-any
              within 30s
              let ok = (success | "save.ok")[http.status < 400, !error exists]
              match save -> !abort -> retry{1,3} -> no ok within 2s
                  | count(error) >= 5 within 10s
            }"#);
        assert_eq!(g.name, "save_ok");
        assert_eq!(g.contiguity, Contiguity::SkipTillAny);
        assert_eq!(g.within_ns, Some(30_000_000_000));
        assert_eq!(g.patterns.len(), 2);
        assert_eq!(g.patterns[0].steps.len(), 3);
        assert!(g.patterns[0].absence.is_some());
    }

    fn err(s: &str) -> (usize, usize, String) {
        match parse("t.guard", s) {
            Err(CepError::Syntax { line, col, msg, .. }) => (line, col, msg),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn errors_have_positions() {
        let (l, c, m) = err("guard a {\n  match x -> \n}");
        assert_eq!((l, c), (3, 1), "{m}");
        let (l, c, _) = err("guard a { match x{3,1} }");
        assert_eq!((l, c), (1, 18));
        let (l, c, m) = err("guard a { match x[k ~ \"(\"] }");
        assert_eq!((l, c), (1, 23));
        assert!(m.contains("regex"));
        let (_, _, m) = err("guard a { match x -> no y within 5 }");
        assert!(m.contains("unit"), "{m}");
        let (_, _, m) = err("guard a { match x{0,2} }");
        assert!(m.contains("without any event"), "{m}");
        let (_, _, m) = err("guard a { match x{1,2} -> !y -> z }");
        assert!(m.contains("fixed count"), "{m}");
        let full = parse("f.guard", "guard a {\n  match x -> -> y\n}")
            .unwrap_err()
            .to_string();
        assert!(full.starts_with("f.guard:2:14:"), "{full}");
        assert!(full.ends_with("             ^"), "{full:?}");
    }
}
