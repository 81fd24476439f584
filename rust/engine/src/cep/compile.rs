//! Guard AST → a linear NFA with bounded counters (Flink CEP's model).
//!
//! A sequence `s0 -> s1 -> ... -> s(n-1)` becomes stages; the NFA state of a
//! run is `(stage, count)` with `count < hi(stage)` (a state that reached
//! `hi` moves on to the next stage), or `END` (`stage == n`). Unbounded
//! repetitions saturate their counter at `lo`, so the number of states is
//! `sum(min(hi, lo + 1))`, bounded by [`super::parse::MAX_REPEAT`] per stage.
//! Each distinct matcher becomes one bit of a 64-bit mask evaluated once per
//! event; stages refer to matchers by bit index.
//!
//! The compiled form is serialised canonically (serde_json, fixed field
//! order) and hashed with BLAKE3: the *compiled-guard digest* recorded in
//! violation bundles. Descriptions do not enter the digest; names do.

use serde::Serialize;

use super::parse::{self, AbsenceAst, Contiguity, GuardAst, MatcherAst, StepAst};
use super::CepError;

/// Marks an unbounded repetition (`{n,}`, `+`, `*`).
pub const INF: u32 = u32::MAX;
/// At most this many distinct matchers per guard (one bit each).
pub const MAX_MATCHERS: usize = 64;
/// Format tag entering the digest.
pub const FORMAT: &str = "maestro.guard.v1";

/// One stage of a sequence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stage {
    /// Matcher bit index.
    pub cond: u8,
    pub lo: u32,
    /// [`INF`] when unbounded.
    pub hi: u32,
    /// Mask of negated matchers: an event matching one of them ends a run
    /// that is in this stage.
    pub neg: u64,
}

/// A leading counting window `count(m) >= at_least within window_ns`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountIr {
    pub cond: u8,
    pub at_least: u32,
    pub window_ns: i64,
}

/// A trailing absence `no m within deadline_ns`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AbsenceIr {
    pub cond: u8,
    pub deadline_ns: i64,
}

/// One alternative of a guard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeqIr {
    pub count: Option<CountIr>,
    pub stages: Vec<Stage>,
    pub absence: Option<AbsenceIr>,
    /// Effective window (the alternative's, else the guard's).
    pub within_ns: Option<i64>,
    /// The pattern starts with a negation: a single run starts at the
    /// key's first event instead of one at every event.
    pub anchored: bool,
    /// `tail_end[i]`: every stage from `i` on is optional (`tail_end[n]`
    /// is true).
    #[serde(skip)]
    pub tail_end: Vec<bool>,
    /// `tail[i]`: stages a run entering stage `i` fresh can consume into
    /// (`i` itself, then on while stages are optional).
    #[serde(skip)]
    pub tail: Vec<Vec<u32>>,
    /// Runs merge only with an equal start (window + absence, not
    /// skip-till-any; see `run::push_run`).
    #[serde(skip)]
    pub exact_merge: bool,
}

impl SeqIr {
    /// Mask of the matchers one sequence reacts to (see [`Compiled::relevant`]).
    pub fn relevant(&self) -> u64 {
        let mut m = 0u64;
        for st in &self.stages {
            m |= 1 << st.cond;
            m |= st.neg;
        }
        if let Some(c) = &self.count {
            m |= 1 << c.cond;
        }
        if let Some(a) = &self.absence {
            m |= 1 << a.cond;
        }
        m
    }

    fn finish(mut self) -> Self {
        let n = self.stages.len();
        self.tail_end = vec![true; n + 1];
        self.tail = vec![Vec::new(); n + 1];
        for i in (0..n).rev() {
            self.tail_end[i] = self.stages[i].lo == 0 && self.tail_end[i + 1];
            let mut t = vec![i as u32];
            if self.stages[i].lo == 0 {
                t.extend_from_slice(&self.tail[i + 1]);
            }
            self.tail[i] = t;
        }
        self
    }

    pub fn n(&self) -> u32 {
        self.stages.len() as u32
    }

    /// A state from which the match is complete (END, or a stage whose
    /// remaining steps are all optional).
    #[inline]
    pub fn accepting(&self, stage: u32, count: u32) -> bool {
        let n = self.n();
        if stage >= n {
            return true;
        }
        let s = &self.stages[stage as usize];
        count >= s.lo && self.tail_end[stage as usize + 1]
    }

    /// The normalized state after consuming one event in stage `j` from
    /// count `c`.
    #[inline]
    pub fn advance(&self, j: u32, c: u32) -> (u32, u32) {
        let s = &self.stages[j as usize];
        let c2 = if s.hi == INF {
            (c + 1).min(s.lo)
        } else {
            c + 1
        };
        if s.hi != INF && c2 >= s.hi {
            (j + 1, 0)
        } else {
            (j, c2)
        }
    }
}

/// A compiled guard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Compiled {
    pub format: &'static str,
    pub name: String,
    #[serde(skip)]
    pub description: Option<String>,
    pub per: String,
    pub contiguity: Contiguity,
    /// Distinct matchers; bit `i` of an event's mask is `matchers[i]`.
    pub matchers: Vec<MatcherAst>,
    pub seqs: Vec<SeqIr>,
}

impl Compiled {
    /// Canonical bytes (what the digest covers).
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `blake3:<hex>` of [`Compiled::canonical`].
    pub fn digest(&self) -> String {
        format!("blake3:{}", blake3::hash(&self.canonical()).to_hex())
    }

    /// Mask of every matcher a run can react to (conditions, negations,
    /// absences and counts): events outside it change no run under
    /// skip-till-next and skip-till-any.
    pub fn relevant(&self) -> u64 {
        self.seqs.iter().fold(0, |m, s| m | s.relevant())
    }
}

fn invalid(g: &GuardAst, msg: impl Into<String>) -> CepError {
    CepError::Invalid {
        guard: g.name.clone(),
        msg: msg.into(),
    }
}

fn bit(g: &GuardAst, ms: &mut Vec<MatcherAst>, m: &MatcherAst) -> Result<u8, CepError> {
    if let Some(i) = ms.iter().position(|x| x == m) {
        return Ok(i as u8);
    }
    if ms.len() >= MAX_MATCHERS {
        return Err(invalid(
            g,
            format!("more than {MAX_MATCHERS} distinct event matchers"),
        ));
    }
    check_matcher(g, m)?;
    ms.push(m.clone());
    Ok((ms.len() - 1) as u8)
}

fn check_matcher(g: &GuardAst, m: &MatcherAst) -> Result<(), CepError> {
    match m {
        MatcherAst::Any | MatcherAst::Name { .. } => Ok(()),
        MatcherAst::Or { any } => {
            if any.is_empty() {
                return Err(invalid(g, "an alternation needs at least one matcher"));
            }
            any.iter().try_for_each(|x| check_matcher(g, x))
        }
        MatcherAst::Where { base, preds } => {
            check_matcher(g, base)?;
            for p in preds {
                if let parse::Op::Regex(re) = &p.op {
                    regex::Regex::new(re)
                        .map_err(|e| invalid(g, format!("invalid regex {re:?}: {e}")))?;
                }
                if let parse::Op::In(v) = &p.op {
                    if v.is_empty() {
                        return Err(invalid(g, format!("'{} in ()' needs values", p.key)));
                    }
                }
            }
            Ok(())
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut ch = s.chars();
    matches!(ch.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        && !s.ends_with('.')
        && !s.contains("->")
}

/// Compile one guard AST (from the parser or the builder).
pub fn compile(g: &GuardAst) -> Result<Compiled, CepError> {
    if !is_ident(&g.name) || g.name.contains('-') {
        return Err(invalid(g, "a guard name is letters, digits, '_' and '.'"));
    }
    if g.per.is_empty() {
        return Err(invalid(g, "'per' needs an attribute name"));
    }
    if g.patterns.is_empty() {
        return Err(invalid(g, "no pattern"));
    }
    if let Some(w) = g.within_ns {
        if !(0..super::MAX_TIME).contains(&w) {
            return Err(invalid(g, "window out of range"));
        }
    }
    let mut ms: Vec<MatcherAst> = Vec::new();
    let mut seqs = Vec::new();
    for s in &g.patterns {
        parse::validate_seq(s).map_err(|m| invalid(g, m))?;
        let mut stages: Vec<Stage> = Vec::new();
        let mut count = None;
        let mut pending_neg = 0u64;
        for st in &s.steps {
            match st {
                StepAst::Not { matcher } => pending_neg |= 1 << bit(g, &mut ms, matcher)?,
                StepAst::Event { matcher, lo, hi } => {
                    stages.push(Stage {
                        cond: bit(g, &mut ms, matcher)?,
                        lo: *lo,
                        hi: hi.unwrap_or(INF),
                        neg: pending_neg,
                    });
                    pending_neg = 0;
                }
                StepAst::Count {
                    matcher,
                    at_least,
                    within_ns,
                } => {
                    count = Some(CountIr {
                        cond: bit(g, &mut ms, matcher)?,
                        at_least: *at_least,
                        window_ns: *within_ns,
                    })
                }
            }
        }
        let absence = match &s.absence {
            Some(AbsenceAst { matcher, within_ns }) => Some(AbsenceIr {
                cond: bit(g, &mut ms, matcher)?,
                deadline_ns: *within_ns,
            }),
            None => None,
        };
        let anchored = matches!(s.steps.first(), Some(StepAst::Not { .. }));
        seqs.push(
            SeqIr {
                count,
                stages,
                absence,
                within_ns: s.within_ns.or(g.within_ns),
                anchored,
                tail_end: Vec::new(),
                tail: Vec::new(),
                exact_merge: s.within_ns.or(g.within_ns).is_some()
                    && s.absence.is_some()
                    && g.contiguity != Contiguity::SkipTillAny,
            }
            .finish(),
        );
    }
    Ok(Compiled {
        format: FORMAT,
        name: g.name.clone(),
        description: g.description.clone(),
        per: g.per.clone(),
        contiguity: g.contiguity,
        matchers: ms,
        seqs,
    })
}

/// Parse and compile every guard of a source text.
pub fn compile_source(origin: &str, text: &str) -> Result<Vec<Compiled>, CepError> {
    parse::parse(origin, text)?.iter().map(compile).collect()
}

/// Compile a guard given as JSON (the Python builder's AST).
pub fn compile_json(text: &str) -> Result<Compiled, CepError> {
    let g: GuardAst =
        serde_json::from_str(text).map_err(|e| CepError::Input(format!("guard AST JSON: {e}")))?;
    compile(&g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_digest() {
        let c = &compile_source("t", "guard g { match a -> b{0,2} -> c+ }").unwrap()[0];
        let s = &c.seqs[0];
        assert_eq!(s.tail[1], vec![1, 2]);
        assert!(!s.accepting(1, 0));
        assert!(s.accepting(2, 1));
        assert_eq!(s.advance(0, 0), (1, 0));
        assert_eq!(s.advance(1, 1), (2, 0));
        assert_eq!(s.advance(2, 1), (2, 1));
        let d1 = c.digest();
        let c2 = &compile_source(
            "t",
            "guard g \"other text\" {\n match a -> b{0,2} -> c{1,}\n}",
        )
        .unwrap()[0];
        assert_eq!(d1, c2.digest());
        let c3 = &compile_source("t", "guard g { match a -> b{0,3} -> c+ }").unwrap()[0];
        assert_ne!(d1, c3.digest());
    }
}
