//! Sampled Shapley estimators with standard errors and confidence intervals.
//!
//! Each estimator averages independent *units*; every unit is an unbiased
//! estimate of the whole vector `φ`, so the spread between units gives the
//! standard error and a Student-t interval with `units − 1` degrees of freedom.
//!
//! | method        | unit                                              | new coalitions per unit |
//! |---------------|---------------------------------------------------|-------------------------|
//! | `permutation` | one random order; marginal contribution of each player on entering | `n − 1` |
//! | `antithetic`  | an order and its reverse (averaged)               | `2(n − 1)`              |
//! | `stratified`  | an order and its `n` rotations: each player enters at every position (i.e. after a predecessor set of every size) exactly once | `n(n − 1)` |
//! | `kernel`      | a coalition drawn from the Shapley kernel and its complement (paired sampling) | 2 |
//!
//! The permutation family gives per-unit vectors that already add up to
//! `v(N) − v(∅)`, so the estimates are efficient by construction. KernelSHAP
//! solves the constrained weighted least squares
//! `min Σ_z k(z)(v(z) − v(∅) − zᵀφ)²` subject to `1ᵀφ = v(N) − v(∅)`, with the
//! coalition sizes whose expected sample count exceeds their number
//! enumerated exactly (the "border trick" of the reference implementation),
//! and a delta-method variance: `Var φ̂ ≈ P Cov(h) P / m`, where `P` projects
//! the inverse design onto the constraint and `h` is a pair's residual term.
//!
//! Budget: the number of *distinct* coalitions evaluated in the run (`v(∅)`
//! and `v(N)` included). A batch is only started if its worst-case cost fits,
//! so the budget is never exceeded.

use rayon::prelude::*;

/// Below this many words of work, a batch is built on the calling thread:
/// handing a few microseconds of work to the pool costs more than it saves
/// (and much more on a loaded machine). Results do not depend on it.
const PAR_MIN_WORDS: usize = 1 << 15;
/// The same for arithmetic (the KernelSHAP influence terms).
const PAR_MIN_FLOPS: usize = 1 << 23;

use super::exact::binom;
use super::rng::Rng;
use super::stats::{t_ppf, Moments};
use super::{has, set, Cache, Coalitions, Estimate, Game, Result, ShapleyError, MAX_PLAYERS};

/// A sampled estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Permutation sampling (ApproShapley, Castro et al. 2009).
    Permutation,
    /// Permutation sampling with antithetic pairs (a permutation and its reverse).
    Antithetic,
    /// Stratified by coalition size: each unit puts every player at every position once.
    Stratified,
    /// KernelSHAP regression with paired sampling.
    Kernel,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Permutation => "permutation",
            Method::Antithetic => "antithetic",
            Method::Stratified => "stratified",
            Method::Kernel => "kernel",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "permutation" => Some(Method::Permutation),
            "antithetic" => Some(Method::Antithetic),
            "stratified" => Some(Method::Stratified),
            "kernel" => Some(Method::Kernel),
            _ => None,
        }
    }

    fn stream(self) -> u64 {
        match self {
            Method::Permutation => 1,
            Method::Antithetic => 2,
            Method::Stratified => 3,
            Method::Kernel => 4,
        }
    }

    /// Worst-case new coalitions per unit.
    fn unit_cost(self, n: usize) -> usize {
        match self {
            Method::Permutation => n - 1,
            Method::Antithetic => 2 * (n - 1),
            Method::Stratified => n * (n - 1),
            Method::Kernel => 2,
        }
    }

    fn default_min_units(self) -> usize {
        match self {
            Method::Stratified => 5,
            _ => 30,
        }
    }

    /// Smallest budget accepted: two units (so a standard error) for the
    /// permutation family, `n` pairs for the regression (its design must
    /// span all players).
    pub fn min_budget(self, n: usize) -> usize {
        match self {
            _ if n <= 1 => 2,
            Method::Kernel => 2 + 2 * n,
            _ => 2 + 2 * self.unit_cost(n),
        }
    }
}

/// Why sampling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing was left to sample: the result is exact.
    Exact,
    /// Every interval reached the requested width.
    CiWidth,
    /// The evaluation budget (or the unit cap) was reached.
    Budget,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Exact => "exact",
            Stop::CiWidth => "ci_width",
            Stop::Budget => "budget",
        }
    }
}

/// Hard cap on sampling units per call: once every coalition of a small
/// game is cached, further units cost no evaluations, so the evaluation
/// budget alone would not end the run.
pub const MAX_UNITS: usize = 1 << 22;

/// Options of [`sample`].
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Maximum distinct coalitions to evaluate, `v(∅)` and `v(N)` included.
    pub budget: usize,
    /// Stop once every interval is at most this wide.
    pub ci_width: Option<f64>,
    /// Confidence level of the intervals, in `(0, 1)`.
    pub confidence: f64,
    pub seed: u64,
    /// Coalitions per call to the game (approximately); 0 = 1024.
    pub batch: usize,
    /// Units required before the `ci_width` rule may stop; 0 = method default
    /// (30, or 5 for `stratified`).
    pub min_units: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            budget: 10_000,
            ci_width: None,
            confidence: 0.95,
            seed: 0,
            batch: 0,
            min_units: 0,
        }
    }
}

impl Options {
    fn check(&self) -> Result<()> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(ShapleyError::Invalid {
                what: "confidence",
                reason: format!("{} is not in (0, 1)", self.confidence),
            });
        }
        if let Some(w) = self.ci_width {
            if !(w > 0.0 && w.is_finite()) {
                return Err(ShapleyError::Invalid {
                    what: "ci_width",
                    reason: format!("{w} is not a positive finite number"),
                });
            }
        }
        Ok(())
    }

    fn batch(&self) -> usize {
        if self.batch == 0 {
            1024
        } else {
            self.batch
        }
    }
}

/// A game behind the per-run cache.
struct Run<'g, G: Game + ?Sized> {
    game: &'g mut G,
    cache: Cache,
    n: usize,
    words: usize,
}

impl<G: Game + ?Sized> Run<'_, G> {
    fn eval(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
        let game = &mut *self.game;
        self.cache.evaluate(batch, out, |b, o| {
            game.evaluate(b, o)?;
            Ok(())
        })
    }

    fn used(&self) -> usize {
        self.cache.evaluations()
    }
}

/// Estimate the Shapley values of `game` with `method` (see the module docs).
pub fn sample<G: Game + ?Sized>(game: &mut G, method: Method, opts: &Options) -> Result<Estimate> {
    let n = game.players();
    if n == 0 || n > MAX_PLAYERS {
        return Err(ShapleyError::PlayerCount {
            n,
            min: 1,
            max: MAX_PLAYERS,
        });
    }
    opts.check()?;
    let needed = method.min_budget(n);
    if opts.budget < needed {
        return Err(ShapleyError::Budget {
            method: method.name(),
            budget: opts.budget,
            n,
            needed,
        });
    }
    let words = super::words_for(n);
    let mut run = Run {
        game,
        cache: Cache::new(),
        n,
        words,
    };
    let mut ends = Coalitions::zeroed(n, 2);
    if let Some(full) = ends.raw_mut().get_mut(words..) {
        for i in 0..n {
            set(full, i);
        }
    }
    let mut v = [0.0; 2];
    run.eval(&ends, &mut v)?;
    let (empty, full) = (v[0], v[1]);
    if n == 1 {
        let d = vec![full - empty];
        return Ok(Estimate {
            values: d.clone(),
            stderr: vec![0.0],
            ci_low: d.clone(),
            ci_high: d,
            evaluations: run.used(),
            units: 0,
            df: f64::INFINITY,
            empty,
            full,
            stop: Stop::Exact,
        });
    }
    match method {
        Method::Kernel => kernel(&mut run, opts, empty, full),
        _ => permutations(&mut run, method, opts, empty, full),
    }
}

fn finish(
    values: Vec<f64>,
    stderr: Vec<f64>,
    df: f64,
    confidence: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let q = t_ppf(0.5 + confidence / 2.0, df);
    let lo = values.iter().zip(&stderr).map(|(m, s)| m - q * s).collect();
    let hi = values.iter().zip(&stderr).map(|(m, s)| m + q * s).collect();
    (values, stderr, lo, hi)
}

fn widest(stderr: &[f64], df: f64, confidence: f64) -> f64 {
    let q = t_ppf(0.5 + confidence / 2.0, df);
    stderr.iter().fold(0.0_f64, |w, s| w.max(2.0 * q * s))
}

/// Player at `pos` of the `q`-th order derived from the base order `perm`.
#[inline]
fn player_at(method: Method, perm: &[u32], q: usize, pos: usize) -> usize {
    let n = perm.len();
    let idx = match method {
        Method::Antithetic if q == 1 => n - 1 - pos,
        Method::Stratified => (q + pos) % n,
        _ => pos,
    };
    perm.get(idx).copied().unwrap_or(0) as usize
}

fn orders(method: Method, n: usize) -> usize {
    match method {
        Method::Antithetic => 2,
        Method::Stratified => n,
        _ => 1,
    }
}

fn permutations<G: Game + ?Sized>(
    run: &mut Run<'_, G>,
    method: Method,
    opts: &Options,
    empty: f64,
    full: f64,
) -> Result<Estimate> {
    let (n, words) = (run.n, run.words);
    let p = orders(method, n);
    let rows_per = p * (n - 1);
    let cost = method.unit_cost(n);
    let batch_units = (opts.batch() / rows_per).max(1);
    let min_units = if opts.min_units == 0 {
        method.default_min_units()
    } else {
        opts.min_units
    }
    .max(2);
    let max_units = opts.budget.min(MAX_UNITS);
    let stream = method.stream();
    let mut moments = Moments::new(n);
    let mut units = 0usize;
    let mut perms: Vec<u32> = Vec::new();
    let mut vals: Vec<f64> = Vec::new();
    let mut x = vec![0.0; n];
    let stop = loop {
        let remaining = opts.budget.saturating_sub(run.used());
        let k = batch_units
            .min(remaining / cost)
            .min(max_units.saturating_sub(units));
        if k == 0 {
            break Stop::Budget;
        }
        perms.clear();
        perms.resize(k * n, 0);
        let mut batch = Coalitions::zeroed(n, k * rows_per);
        let first = units;
        let fill = |(u, (rows, perm)): (usize, (&mut [u64], &mut [u32]))| {
            let mut rng = Rng::for_unit(opts.seed, stream, (first + u) as u64);
            rng.permutation(perm);
            let mut it = rows.chunks_exact_mut(words);
            for q in 0..p {
                let mut prev: Option<&mut [u64]> = None;
                for pos in 0..n - 1 {
                    let Some(row) = it.next() else { return };
                    if let Some(pr) = prev {
                        row.copy_from_slice(pr);
                    }
                    set(row, player_at(method, perm, q, pos));
                    prev = Some(row);
                }
            }
        };
        // Each unit depends only on its own stream: sequential and parallel
        // generation give the same rows.
        if batch.raw().len() >= PAR_MIN_WORDS {
            batch
                .raw_mut()
                .par_chunks_mut(rows_per * words)
                .zip(perms.par_chunks_mut(n))
                .enumerate()
                .for_each(fill);
        } else {
            batch
                .raw_mut()
                .chunks_mut(rows_per * words)
                .zip(perms.chunks_mut(n))
                .enumerate()
                .for_each(fill);
        }
        vals.clear();
        vals.resize(batch.len(), 0.0);
        run.eval(&batch, &mut vals)?;
        let scale = 1.0 / p as f64;
        for (perm, uv) in perms.chunks_exact(n).zip(vals.chunks_exact(rows_per)) {
            x.fill(0.0);
            for (q, pv) in uv.chunks_exact(n - 1).enumerate() {
                let mut prev = empty;
                for pos in 0..n {
                    let cur = if pos + 1 < n {
                        pv.get(pos).copied().unwrap_or(full)
                    } else {
                        full
                    };
                    if let Some(xi) = x.get_mut(player_at(method, perm, q, pos)) {
                        *xi += cur - prev;
                    }
                    prev = cur;
                }
            }
            if p > 1 {
                x.iter_mut().for_each(|v| *v *= scale);
            }
            moments.push(&x);
        }
        units += k;
        if let Some(target) = opts.ci_width {
            if units >= min_units
                && widest(&moments.stderr(), (units - 1) as f64, opts.confidence) <= target
            {
                break Stop::CiWidth;
            }
        }
    };
    if units < 2 {
        return Err(ShapleyError::Budget {
            method: method.name(),
            budget: opts.budget,
            n,
            needed: method.min_budget(n),
        });
    }
    let df = (units - 1) as f64;
    let (values, stderr, ci_low, ci_high) =
        finish(moments.mean.clone(), moments.stderr(), df, opts.confidence);
    Ok(Estimate {
        values,
        stderr,
        ci_low,
        ci_high,
        evaluations: run.used(),
        units,
        df,
        empty,
        full,
        stop,
    })
}

/// Call `f` with each player of coalition `row`, in increasing order.
#[inline]
fn for_each_member(row: &[u64], mut f: impl FnMut(usize)) {
    for (k, &word) in row.iter().enumerate() {
        let mut w = word;
        while w != 0 {
            f(k * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

/// Cholesky factor (lower, row-major) of a symmetric positive definite matrix.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    let scale = (0..n)
        .map(|i| a.get(i * n + i).copied().unwrap_or(0.0).abs())
        .fold(0.0_f64, f64::max);
    for j in 0..n {
        let mut d = a.get(j * n + j).copied()?;
        for k in 0..j {
            let x = l.get(j * n + k).copied()?;
            d -= x * x;
        }
        if d.is_nan() || d <= 1e-12 * scale {
            return None;
        }
        let d = d.sqrt();
        *l.get_mut(j * n + j)? = d;
        for i in j + 1..n {
            let mut s = a.get(i * n + j).copied()?;
            for k in 0..j {
                s -= l.get(i * n + k).copied()? * l.get(j * n + k).copied()?;
            }
            *l.get_mut(i * n + j)? = s / d;
        }
    }
    Some(l)
}

/// Inverse of `L Lᵀ` from the Cholesky factor.
fn chol_inverse(l: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; n * n];
    let mut y = vec![0.0; n];
    for c in 0..n {
        // Solve L y = e_c, then Lᵀ x = y.
        for i in 0..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l.get(i * n + k).copied()? * y.get(k).copied()?;
            }
            *y.get_mut(i)? = s / l.get(i * n + i).copied()?;
        }
        for i in (0..n).rev() {
            let mut s = y.get(i).copied()?;
            for k in i + 1..n {
                s -= l.get(k * n + i).copied()? * inv.get(k * n + c).copied()?;
            }
            *inv.get_mut(i * n + c)? = s / l.get(i * n + i).copied()?;
        }
    }
    Some(inv)
}

/// Running sums of the sampled part of the KernelSHAP regression.
struct KernelSums {
    n: usize,
    /// Pairs seen.
    m: usize,
    /// Per pair: the smaller side `z` (words) and `(y(z), y(z̄))`.
    zs: Vec<u64>,
    ys: Vec<(f64, f64)>,
    /// `Σ z_i` and `Σ z_i z_j` (exact integer counts).
    cnt: Vec<u64>,
    dd: Vec<u64>,
    /// `Σ y(z̄)` and `Σ z_i (y(z) − y(z̄))`, added in pair order.
    ysum: f64,
    e: Vec<f64>,
}

struct Solution {
    phi: Vec<f64>,
    stderr: Vec<f64>,
}

fn solve_kernel(
    sums: &KernelSums,
    a_diag: f64,
    a_off: f64,
    b_det: &[f64],
    w: f64,
    delta: f64,
    words: usize,
) -> Result<Solution> {
    let n = sums.n;
    let m = sums.m;
    let f = if m > 0 { w / (2.0 * m as f64) } else { 0.0 };
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    for i in 0..n {
        let ci = sums.cnt.get(i).copied().unwrap_or(0);
        for j in 0..n {
            let cj = sums.cnt.get(j).copied().unwrap_or(0);
            let d = sums.dd.get(i * n + j).copied().unwrap_or(0);
            // Σ_pairs [z_i z_j + z̄_i z̄_j] = m − cnt_i − cnt_j + 2 Σ z_i z_j.
            let c = m as f64 - ci as f64 - cj as f64 + 2.0 * d as f64;
            let det = if i == j { a_diag } else { a_off };
            if let Some(x) = a.get_mut(i * n + j) {
                *x = det + f * c;
            }
        }
        if let Some(x) = b.get_mut(i) {
            *x = b_det.get(i).copied().unwrap_or(0.0)
                + f * (sums.ysum + sums.e.get(i).copied().unwrap_or(0.0));
        }
    }
    let singular = || ShapleyError::Singular { units: m };
    let l = cholesky(&a, n).ok_or_else(singular)?;
    let inv = chol_inverse(&l, n).ok_or_else(singular)?;
    // u = A⁻¹1, x = A⁻¹b; φ = x − u (1ᵀx − Δ)/(1ᵀu).
    let u: Vec<f64> = inv.chunks_exact(n).map(|r| r.iter().sum()).collect();
    let x: Vec<f64> = inv
        .chunks_exact(n)
        .map(|r| r.iter().zip(&b).map(|(p, q)| p * q).sum())
        .collect();
    let su: f64 = u.iter().sum();
    let sx: f64 = x.iter().sum();
    if su.is_nan() || su <= 0.0 {
        return Err(singular());
    }
    let lam = (sx - delta) / su;
    let phi: Vec<f64> = x.iter().zip(&u).map(|(xi, ui)| xi - ui * lam).collect();
    if m < 2 {
        return Ok(Solution {
            stderr: vec![0.0; n],
            phi,
        });
    }
    // P = A⁻¹ − u uᵀ / (1ᵀu): the constrained inverse (P·1 = 0).
    let mut proj = inv;
    for (i, row) in proj.chunks_exact_mut(n).enumerate() {
        let ui = u.get(i).copied().unwrap_or(0.0);
        for (pij, uj) in row.iter_mut().zip(&u) {
            *pij -= ui * uj / su;
        }
    }
    // Influence of pair k: g_k = (W/2)(e_z − e_z̄) P z, with residuals
    // e_z = y(z) − zᵀφ and e_z̄ = y(z̄) − (Δ − zᵀφ).
    let mut moments = Moments::new(n);
    const BLOCK: usize = 2048;
    let pairs: Vec<(&[u64], &(f64, f64))> = sums.zs.chunks_exact(words).zip(&sums.ys).collect();
    for block in pairs.chunks(BLOCK) {
        // P is symmetric, so P z is the sum of the rows of P of the players in z.
        let influence = |(z, &(y1, y2)): &(&[u64], &(f64, f64)), g: &mut [f64]| {
            g.fill(0.0);
            let mut zphi = 0.0;
            for_each_member(z, |j| {
                zphi += phi.get(j).copied().unwrap_or(0.0);
                if let Some(row) = proj.get(j * n..(j + 1) * n) {
                    for (gi, pj) in g.iter_mut().zip(row) {
                        *gi += pj;
                    }
                }
            });
            let coeff = 0.5 * w * ((y1 - zphi) - (y2 - (delta - zphi)));
            g.iter_mut().for_each(|x| *x *= coeff);
        };
        let mut gs = vec![0.0; block.len() * n];
        // About n·|z| ≤ n²/2 flops per pair.
        if block.len() * n * n / 2 >= PAR_MIN_FLOPS {
            gs.par_chunks_mut(n)
                .zip(block.par_iter())
                .for_each(|(g, pair)| influence(pair, g));
        } else {
            gs.chunks_mut(n)
                .zip(block.iter())
                .for_each(|(g, pair)| influence(pair, g));
        }
        for g in gs.chunks_exact(n) {
            moments.push(g);
        }
    }
    Ok(Solution {
        phi,
        stderr: moments.stderr(),
    })
}

fn kernel<G: Game + ?Sized>(
    run: &mut Run<'_, G>,
    opts: &Options,
    empty: f64,
    full: f64,
) -> Result<Estimate> {
    let (n, words) = (run.n, run.words);
    let delta = full - empty;
    let nf = n as f64;
    // Shapley kernel mass of each size: q(s) ∝ 1 / (s (n − s)).
    let raw: Vec<f64> = (0..=n)
        .map(|s| {
            if s == 0 || s == n {
                0.0
            } else {
                1.0 / (s as f64 * (n - s) as f64)
            }
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let q: Vec<f64> = raw.iter().map(|r| r / total).collect();
    let qs = |s: usize| q.get(s).copied().unwrap_or(0.0);

    // Border trick: enumerate size pairs (s, n−s) we would expect to sample
    // completely anyway, as long as `2n` evaluations stay for sampling the
    // other sizes (or none are left to sample).
    let mut enumerated = vec![false; n + 1];
    let mut left = opts.budget.saturating_sub(run.used());
    for s in 1..=n / 2 {
        let t = n - s;
        let count = if s == t {
            binom(n, s)
        } else {
            2.0 * binom(n, s)
        };
        let mass = if s == t { qs(s) } else { qs(s) + qs(t) };
        let rem: f64 = (1..n)
            .filter(|&k| !enumerated.get(k).copied().unwrap_or(true))
            .map(qs)
            .sum();
        let reserve = if s == n / 2 { 0.0 } else { 2.0 * nf };
        if rem <= 0.0 || count + reserve > left as f64 || (left as f64) * mass / rem < count {
            break;
        }
        for k in [s, t] {
            if let Some(e) = enumerated.get_mut(k) {
                *e = true;
            }
        }
        left -= count as usize;
    }

    // Deterministic part: A_det = a_diag I + a_off (11ᵀ − I) in closed form,
    // b_det from the enumerated coalitions (κ_s = q(s)/C(n,s) each).
    let mut a_diag = 0.0;
    let mut a_off = 0.0;
    let mut b_det = vec![0.0; n];
    let mut batch = Coalitions::new(n);
    let mut vals: Vec<f64> = Vec::new();
    let mut kappas: Vec<f64> = Vec::new();
    let chunk = opts.batch();
    let flush = |run: &mut Run<'_, G>,
                 batch: &mut Coalitions,
                 kappas: &mut Vec<f64>,
                 vals: &mut Vec<f64>,
                 b_det: &mut [f64]|
     -> Result<()> {
        vals.clear();
        vals.resize(batch.len(), 0.0);
        run.eval(batch, vals)?;
        for (r, (&v, &k)) in vals.iter().zip(kappas.iter()).enumerate() {
            let row = batch.row(r);
            for (i, b) in b_det.iter_mut().enumerate() {
                if has(row, i) {
                    *b += k * (v - empty);
                }
            }
        }
        batch.clear();
        kappas.clear();
        Ok(())
    };
    let mut combo: Vec<usize> = Vec::with_capacity(n);
    let mut row = vec![0u64; words];
    for s in 1..n {
        if !enumerated.get(s).copied().unwrap_or(false) {
            continue;
        }
        let sf = s as f64;
        a_diag += qs(s) * sf / nf;
        a_off += qs(s) * sf * (sf - 1.0) / (nf * (nf - 1.0));
        let kappa = qs(s) / binom(n, s);
        combo.clear();
        combo.extend(0..s);
        loop {
            row.fill(0);
            for &i in &combo {
                set(&mut row, i);
            }
            batch.push(&row);
            kappas.push(kappa);
            if batch.len() >= chunk {
                flush(run, &mut batch, &mut kappas, &mut vals, &mut b_det)?;
            }
            // Next combination in lexicographic order.
            let mut i = s;
            loop {
                if i == 0 {
                    break;
                }
                i -= 1;
                if combo.get(i).copied().unwrap_or(n) < n - s + i {
                    break;
                }
                if i == 0 {
                    i = usize::MAX;
                    break;
                }
            }
            if i == usize::MAX {
                break;
            }
            let Some(ci) = combo.get_mut(i) else { break };
            *ci += 1;
            let base = *ci;
            for (off, c) in combo.iter_mut().enumerate().skip(i + 1) {
                *c = base + (off - i);
            }
        }
    }
    if !batch.is_empty() {
        flush(run, &mut batch, &mut kappas, &mut vals, &mut b_det)?;
    }

    // Sampled sizes.
    let sampled: Vec<usize> = (1..n)
        .filter(|&s| !enumerated.get(s).copied().unwrap_or(false))
        .collect();
    let w: f64 = sampled.iter().map(|&s| qs(s)).sum();
    let mut cdf = Vec::with_capacity(sampled.len());
    let mut acc = 0.0;
    for &s in &sampled {
        acc += qs(s);
        cdf.push(acc);
    }
    let mut sums = KernelSums {
        n,
        m: 0,
        zs: Vec::new(),
        ys: Vec::new(),
        cnt: vec![0; n],
        dd: vec![0; n * n],
        ysum: 0.0,
        e: vec![0.0; n],
    };
    if sampled.is_empty() {
        let sol = solve_kernel(&sums, a_diag, a_off, &b_det, 0.0, delta, words)?;
        let (values, stderr, ci_low, ci_high) =
            finish(sol.phi, vec![0.0; n], f64::INFINITY, opts.confidence);
        return Ok(Estimate {
            values,
            stderr,
            ci_low,
            ci_high,
            evaluations: run.used(),
            units: 0,
            df: f64::INFINITY,
            empty,
            full,
            stop: Stop::Exact,
        });
    }

    let batch_units = (opts.batch() / 2).max(1);
    let min_units = if opts.min_units == 0 {
        Method::Kernel.default_min_units()
    } else {
        opts.min_units
    }
    .max(2);
    let max_units = opts.budget.min(MAX_UNITS);
    let stream = Method::Kernel.stream();
    let mut next_check = min_units;
    let mut members: Vec<usize> = Vec::with_capacity(n);
    let mut last: Option<Solution> = None;
    let stop = loop {
        let remaining = opts.budget.saturating_sub(run.used());
        let k = batch_units
            .min(remaining / 2)
            .min(max_units.saturating_sub(sums.m));
        if k == 0 {
            break Stop::Budget;
        }
        let first = sums.m;
        let mut pairs = Coalitions::zeroed(n, 2 * k);
        let fill = |(u, rows): (usize, &mut [u64])| {
            let mut rng = Rng::for_unit(opts.seed, stream, (first + u) as u64);
            let target = rng.uniform() * w;
            let pick = cdf.partition_point(|&c| c <= target).min(sampled.len() - 1);
            let s = sampled.get(pick).copied().unwrap_or(1);
            // Keep the smaller side as z (the pair is unordered).
            let small = s.min(n - s);
            let (z, zbar) = rows.split_at_mut(words);
            // Floyd's algorithm: a uniform `small`-subset of 0..n.
            for j in n - small..n {
                let t = rng.below(j as u64 + 1) as usize;
                if has(z, t) {
                    set(z, j);
                } else {
                    set(z, t);
                }
            }
            for i in 0..n {
                if !has(z, i) {
                    set(zbar, i);
                }
            }
        };
        if pairs.raw().len() >= PAR_MIN_WORDS {
            pairs
                .raw_mut()
                .par_chunks_mut(2 * words)
                .enumerate()
                .for_each(fill);
        } else {
            pairs
                .raw_mut()
                .chunks_mut(2 * words)
                .enumerate()
                .for_each(fill);
        }
        vals.clear();
        vals.resize(2 * k, 0.0);
        run.eval(&pairs, &mut vals)?;
        for (u, yy) in vals.chunks_exact(2).enumerate() {
            let z = pairs.row(2 * u);
            let &[vz, vzbar] = yy else { continue };
            let (y1, y2) = (vz - empty, vzbar - empty);
            members.clear();
            for_each_member(z, |i| members.push(i));
            for &i in &members {
                if let Some(c) = sums.cnt.get_mut(i) {
                    *c += 1;
                }
                if let Some(e) = sums.e.get_mut(i) {
                    *e += y1 - y2;
                }
                for &j in &members {
                    if let Some(d) = sums.dd.get_mut(i * n + j) {
                        *d += 1;
                    }
                }
            }
            sums.ysum += y2;
            sums.zs.extend_from_slice(z);
            sums.ys.push((y1, y2));
            sums.m += 1;
        }
        if let Some(target) = opts.ci_width {
            if sums.m >= next_check {
                let sol = solve_kernel(&sums, a_diag, a_off, &b_det, w, delta, words)?;
                let wide = widest(&sol.stderr, (sums.m - 1) as f64, opts.confidence);
                last = Some(sol);
                if wide <= target {
                    break Stop::CiWidth;
                }
                next_check = sums.m + (sums.m / 5).max(1);
            }
        }
    };
    if sums.m < 2 {
        return Err(ShapleyError::Budget {
            method: Method::Kernel.name(),
            budget: opts.budget,
            n,
            needed: Method::Kernel.min_budget(n),
        });
    }
    let sol = match (stop, last) {
        (Stop::CiWidth, Some(sol)) => sol,
        _ => solve_kernel(&sums, a_diag, a_off, &b_det, w, delta, words)?,
    };
    let df = (sums.m - 1) as f64;
    let (values, stderr, ci_low, ci_high) = finish(sol.phi, sol.stderr, df, opts.confidence);
    Ok(Estimate {
        values,
        stderr,
        ci_low,
        ci_high,
        evaluations: run.used(),
        units: sums.m,
        df,
        empty,
        full,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{exact, with_threads, TableGame};
    use super::*;

    /// v(S) = (Σ_{i∈S} w_i)²: φ_i = w_i · W (W = Σ w) in closed form.
    struct Square(Vec<f64>);

    impl Game for Square {
        fn players(&self) -> usize {
            self.0.len()
        }
        fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
            for (r, o) in out.iter_mut().enumerate() {
                let s: f64 = (0..self.0.len())
                    .filter(|&i| batch.contains(r, i))
                    .map(|i| self.0[i])
                    .sum();
                *o = s * s;
            }
            Ok(())
        }
    }

    fn table(n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::for_unit(seed, 77, 0);
        (0..1usize << n).map(|_| r.uniform()).collect()
    }

    const ALL: [Method; 4] = [
        Method::Permutation,
        Method::Antithetic,
        Method::Stratified,
        Method::Kernel,
    ];

    #[test]
    fn estimates_are_close_efficient_and_within_budget() {
        let v = table(6, 1);
        let truth = exact(&v).unwrap();
        for m in ALL {
            let mut g = TableGame::new(&v).unwrap();
            let opts = Options {
                budget: 3000,
                ..Options::default()
            };
            let e = sample(&mut g, m, &opts).unwrap();
            assert!(
                e.evaluations <= 64,
                "{m:?}: at most 2^6 distinct coalitions"
            );
            let total: f64 = e.values.iter().sum();
            assert!((total - (v[63] - v[0])).abs() < 1e-9, "{m:?} efficiency");
            for i in 0..6 {
                assert!(
                    (e.values[i] - truth[i]).abs() < 6.0 * e.stderr[i] + 1e-9,
                    "{m:?} player {i}: {} vs {} (se {})",
                    e.values[i],
                    truth[i],
                    e.stderr[i]
                );
                assert!(e.ci_low[i] <= e.values[i] && e.values[i] <= e.ci_high[i]);
            }
        }
    }

    #[test]
    fn bit_identical_across_threads_and_runs() {
        let w: Vec<f64> = (0..20).map(|i| 1.0 + i as f64 / 7.0).collect();
        for m in ALL {
            let opts = Options {
                budget: 5000,
                seed: 42,
                batch: 300,
                ..Options::default()
            };
            let one = with_threads(Some(1), || sample(&mut Square(w.clone()), m, &opts)).unwrap();
            let two = with_threads(Some(2), || sample(&mut Square(w.clone()), m, &opts)).unwrap();
            let four = with_threads(Some(4), || sample(&mut Square(w.clone()), m, &opts)).unwrap();
            assert_eq!(one, two, "{m:?}");
            assert_eq!(one, four, "{m:?}");
            let other = sample(&mut Square(w.clone()), m, &Options { seed: 43, ..opts }).unwrap();
            assert_ne!(one.values, other.values, "{m:?}: the seed matters");
        }
    }

    #[test]
    fn antithetic_is_exact_on_a_square_game() {
        // Marginals are linear in the predecessors' weight, so a permutation
        // and its reverse average to the Shapley value exactly.
        let w: Vec<f64> = (0..12).map(|i| (i as f64 - 4.0) / 3.0).collect();
        let total: f64 = w.iter().sum();
        let e = sample(
            &mut Square(w.clone()),
            Method::Antithetic,
            &Options {
                budget: 2000,
                ..Options::default()
            },
        )
        .unwrap();
        for (i, wi) in w.iter().enumerate() {
            assert!((e.values[i] - wi * total).abs() < 1e-9);
            assert!(e.stderr[i] < 1e-9);
        }
    }

    #[test]
    fn ci_width_stops_early() {
        let w: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let opts = Options {
            budget: 200_000,
            ci_width: Some(2.0),
            ..Options::default()
        };
        let e = sample(&mut Square(w), Method::Permutation, &opts).unwrap();
        assert_eq!(e.stop, Stop::CiWidth);
        assert!(e.evaluations < 200_000);
        for (lo, hi) in e.ci_low.iter().zip(&e.ci_high) {
            assert!(hi - lo <= 2.0);
        }
    }

    #[test]
    fn kernel_enumerates_everything_when_the_budget_allows() {
        let v = table(5, 9);
        let truth = exact(&v).unwrap();
        let mut g = TableGame::new(&v).unwrap();
        let e = sample(
            &mut g,
            Method::Kernel,
            &Options {
                budget: 32,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(e.stop, Stop::Exact);
        assert_eq!(e.evaluations, 32);
        for (a, b) in e.values.iter().zip(&truth) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn budgets_and_options_are_checked() {
        let mut g = Square(vec![1.0; 8]);
        for m in ALL {
            let need = m.min_budget(8);
            let err = sample(
                &mut g,
                m,
                &Options {
                    budget: need - 1,
                    ..Options::default()
                },
            )
            .unwrap_err();
            assert!(matches!(err, ShapleyError::Budget { .. }), "{m:?}");
            let ok = sample(
                &mut g,
                m,
                &Options {
                    budget: need,
                    ..Options::default()
                },
            );
            assert!(
                ok.is_ok() || matches!(ok, Err(ShapleyError::Singular { .. })),
                "{m:?}"
            );
            if let Ok(e) = ok {
                assert!(e.evaluations <= need);
            }
        }
        for bad in [0.0, 1.0, f64::NAN] {
            let o = Options {
                confidence: bad,
                ..Options::default()
            };
            assert!(sample(&mut g, Method::Permutation, &o).is_err());
        }
        let o = Options {
            ci_width: Some(-1.0),
            ..Options::default()
        };
        assert!(sample(&mut g, Method::Kernel, &o).is_err());
    }

    #[test]
    fn game_errors_propagate() {
        struct Fails;
        impl Game for Fails {
            fn players(&self) -> usize {
                4
            }
            fn evaluate(&mut self, _: &Coalitions, _: &mut [f64]) -> Result<()> {
                Err(ShapleyError::Game("boom".into()))
            }
        }
        struct Nan;
        impl Game for Nan {
            fn players(&self) -> usize {
                4
            }
            fn evaluate(&mut self, b: &Coalitions, out: &mut [f64]) -> Result<()> {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = if b.row(r)[0] == 0b0110 { f64::NAN } else { 1.0 };
                }
                Ok(())
            }
        }
        for m in ALL {
            assert!(matches!(
                sample(&mut Fails, m, &Options::default()),
                Err(ShapleyError::Game(_))
            ));
            match sample(&mut Nan, m, &Options::default()) {
                Err(ShapleyError::GameValue { coalition, .. }) => assert_eq!(coalition, "0110"),
                other => panic!("{m:?}: {other:?}"),
            }
        }
    }
}
