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
//! | `kernel`      | a coalition `z` of a sampled size pair `{s, n − s}` and its complement (paired sampling) | 2 |
//!
//! The permutation family gives per-unit vectors that already add up to
//! `v(N) − v(∅)`, so the estimates are efficient by construction. KernelSHAP
//! solves the constrained weighted least squares
//! `min Σ_z k(z)(v(z) − v(∅) − zᵀφ)²` subject to `1ᵀφ = v(N) − v(∅)`:
//! * the coalition sizes whose expected sample count exceeds their number are
//!   enumerated exactly (the "border trick" of the reference
//!   implementation); they carry no sampling variance;
//! * the other sizes are sampled stratified by size pair `{s, n − s}`, each
//!   stratum's pairs drawn uniformly *without replacement*, two per stratum
//!   first, then a pilot third of the pairs allocated in proportion to the
//!   kernel mass and the rest by Neyman allocation on the pilot's spread of
//!   each stratum's influence terms (budgets too small for two pairs per
//!   stratum fall back to i.i.d. pairs from the kernel);
//! * a delta-method variance from the sampled part only:
//!   `Var φ̂ ≈ Σ_strata (1 − m/N) s²(g)/m`, `g = (M/2)(e_z − e_z̄) P z` for a
//!   stratum of kernel mass `M`, `m` of `N` pairs drawn, `P` the inverse
//!   design projected onto the constraint; `units − strata` degrees of
//!   freedom.
//!
//! Planning: samplers reserve coalitions in the run's cache as they build
//! units (deduplicating at once) and flush the queue in one call to the game
//! per batch; `v(∅)` and `v(N)` go with the first one. With a fixed budget
//! and a large enough batch, a run of the permutation family is one call.
//!
//! Budget: the number of *distinct* coalitions evaluated in the run (`v(∅)`
//! and `v(N)` included). A batch is only started if its worst-case cost fits,
//! so the budget is never exceeded.

use rayon::prelude::*;

/// Below this many flops of work, the KernelSHAP influence terms are
/// computed on the calling thread: handing a few microseconds of work to the
/// pool costs more than it saves. Results do not depend on it.
const PAR_MIN_FLOPS: usize = 1 << 23;

use super::exact::binom;
use super::rng::Rng;
use super::stats::{t_ppf, Moments};
use super::{has, set, Cache, Estimate, Game, Result, ShapleyError, MAX_PLAYERS};

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

/// The run's cache: its own, or the one a game keeps across runs.
enum RunCache<'g> {
    Own(Cache),
    Shared(&'g mut Cache),
}

impl std::ops::Deref for RunCache<'_> {
    type Target = Cache;
    fn deref(&self) -> &Cache {
        match self {
            RunCache::Own(c) => c,
            RunCache::Shared(c) => c,
        }
    }
}

impl std::ops::DerefMut for RunCache<'_> {
    fn deref_mut(&mut self) -> &mut Cache {
        match self {
            RunCache::Own(c) => c,
            RunCache::Shared(c) => c,
        }
    }
}

/// A game behind the run's cache.
struct Run<'g> {
    game: &'g mut dyn Game,
    cache: RunCache<'g>,
    n: usize,
    words: usize,
}

impl Run<'_> {
    /// Evaluate every queued coalition in one call to the game.
    fn flush(&mut self) -> Result<()> {
        let game = &mut *self.game;
        self.cache.flush(self.n, |b, o| game.evaluate(b, o))
    }

    /// Distinct coalitions this run used (evaluated now or by an earlier
    /// run of a game that keeps its cache), queued ones included: what the
    /// budget is charged.
    fn used(&self) -> usize {
        self.cache.charged()
    }

    fn planned(&self) -> usize {
        self.cache.charged()
    }
}

/// Most rows planned per round when no `ci_width` rule needs frequent checks
/// (bounds the memory of the plan; the game still gets at most `batch` new
/// coalitions per call).
const PLAN_ROWS: usize = 1 << 16;

/// Estimate the Shapley values of `game` with `method` (see the module docs).
pub fn sample<G: Game>(game: &mut G, method: Method, opts: &Options) -> Result<Estimate> {
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
    let room = opts.budget.min(1 << 20);
    let mut run = if game.keeps_cache() {
        let Some((cache, game)) = game.shared_cache() else {
            return Err(ShapleyError::Invalid {
                what: "game",
                reason: "it keeps a cache but did not lend it".into(),
            });
        };
        cache.reserve_capacity(room);
        Run {
            game,
            cache: RunCache::Shared(cache),
            n,
            words,
        }
    } else {
        Run {
            game,
            cache: RunCache::Own(Cache::with_capacity(n, room)),
            n,
            words,
        }
    };
    run.cache.begin_run();
    // v(∅) and v(N) are queued now and evaluated with the first batch (one
    // call to the game fewer).
    let mut row = vec![0u64; words];
    let empty_slot = run.cache.reserve(&row);
    for i in 0..n {
        set(&mut row, i);
    }
    let full_slot = run.cache.reserve(&row);
    let ends = Ends {
        empty: empty_slot,
        full: full_slot,
    };
    if n == 1 {
        run.flush()?;
        let (empty, full) = ends.values(&run.cache);
        return Ok(Estimate::exact(vec![full - empty], run.used(), empty, full));
    }
    match method {
        Method::Kernel => kernel(&mut run, opts, ends),
        _ => permutations(&mut run, method, opts, ends),
    }
}

/// Cache slots of `v(∅)` and `v(N)`.
#[derive(Clone, Copy)]
struct Ends {
    empty: usize,
    full: usize,
}

impl Ends {
    fn values(self, cache: &Cache) -> (f64, f64) {
        (cache.value(self.empty), cache.value(self.full))
    }
}

impl Estimate {
    /// Values computed without sampling (every coalition needed was
    /// evaluated): zero standard errors, intervals of zero width.
    fn exact(values: Vec<f64>, evaluations: usize, empty: f64, full: f64) -> Self {
        Estimate {
            stderr: vec![0.0; values.len()],
            ci_low: values.clone(),
            ci_high: values.clone(),
            values,
            evaluations,
            units: 0,
            df: f64::INFINITY,
            empty,
            full,
            stop: Stop::Exact,
        }
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

fn permutations(run: &mut Run<'_>, method: Method, opts: &Options, ends: Ends) -> Result<Estimate> {
    let (n, words) = (run.n, run.words);
    let p = orders(method, n);
    let rows_per = p * (n - 1);
    let cost = method.unit_cost(n);
    let chunk = opts.batch();
    // Rows planned per round: with a ci_width rule, a batch (so the rule is
    // checked as often as before); otherwise as many as fit the plan's
    // memory bound, so a fixed budget is usually one call to the game.
    let plan_rows = if opts.ci_width.is_some() {
        chunk
    } else {
        chunk.max(PLAN_ROWS)
    };
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
    let mut slots: Vec<usize> = Vec::new();
    let mut perm = vec![0u32; n];
    let mut row = vec![0u64; words];
    let mut x = vec![0.0; n];
    let (mut empty, mut full) = (f64::NAN, f64::NAN);
    let stop = loop {
        // Plan units (deduplicating their coalitions as we go) while the next
        // one surely fits the budget, the game's batch and the plan.
        let mut k = 0usize;
        loop {
            let u = units + k;
            if u >= max_units || run.planned() + cost > opts.budget {
                break;
            }
            if k > 0 && (run.cache.queued() + cost > chunk || (k + 1) * rows_per > plan_rows) {
                break;
            }
            // Each unit depends only on its own stream (not on the round or
            // the thread count).
            let mut rng = Rng::for_unit(opts.seed, stream, u as u64);
            rng.permutation(&mut perm);
            perms.extend_from_slice(&perm);
            for q in 0..p {
                row.fill(0);
                for pos in 0..n - 1 {
                    set(&mut row, player_at(method, &perm, q, pos));
                    slots.push(run.cache.reserve(&row));
                }
            }
            k += 1;
        }
        if k == 0 {
            break Stop::Budget;
        }
        run.flush()?;
        if units == 0 {
            (empty, full) = ends.values(&run.cache);
        }
        let scale = 1.0 / p as f64;
        for (perm, us) in perms.chunks_exact(n).zip(slots.chunks_exact(rows_per)) {
            x.fill(0.0);
            for (q, pv) in us.chunks_exact(n - 1).enumerate() {
                let mut prev = empty;
                for pos in 0..n {
                    let cur = match pv.get(pos) {
                        Some(&s) => run.cache.value(s),
                        None => full,
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
        perms.clear();
        slots.clear();
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

/// One stratum of the sampled part of the KernelSHAP regression.
///
/// Stratified (the default when the budget allows two pairs per stratum):
/// one stratum per unordered size pair `{s, n − s}` that is not enumerated;
/// its pairs `(z, z̄)` are drawn uniformly *without replacement* among the
/// `C(n, s)` (or `C(n, n/2)/2`) pairs, and the number of pairs per stratum is
/// allocated in proportion to the stratum's kernel mass. I.i.d. (fallback
/// for budgets too small to give every stratum two pairs): one stratum for
/// all sampled sizes, pairs drawn with replacement from the kernel.
struct Stratum {
    /// Smaller side `s` (stratified) or 0 (the i.i.d. stratum).
    size: usize,
    /// Kernel mass of the sizes it covers.
    mass: f64,
    /// Allocation weight: the mass at first, then the estimated spread of
    /// the stratum's influence terms (Neyman allocation, see [`kernel`]).
    weight: f64,
    /// Number of distinct pairs (∞ for the i.i.d. stratum: no finite-population correction).
    pop: f64,
    /// Pairs drawn so far.
    m: usize,
    /// Most pairs it may draw (half its population: rejection stays cheap).
    cap: usize,
    rng: Rng,
}

/// Pairs drawn so far (in draw order).
struct KernelPairs {
    n: usize,
    words: usize,
    /// Per pair: the side `z` (words), `(y(z), y(z̄))` relative to `v(∅)`, and its stratum.
    zs: Vec<u64>,
    ys: Vec<(f64, f64)>,
    stratum: Vec<u32>,
}

impl KernelPairs {
    fn len(&self) -> usize {
        self.ys.len()
    }
}

struct Solution {
    phi: Vec<f64>,
    stderr: Vec<f64>,
    df: f64,
    /// Per stratum: `sqrt(Σ_i s²(g_i))`, the spread of its influence terms
    /// (0 below two pairs).
    spread: Vec<f64>,
}

/// Solve the constrained weighted least squares from the enumerated part
/// (`a_diag`, `a_off`, `b_det`) and the sampled pairs, each pair weighted by
/// `mass / (2 m)` of its stratum, and its delta-method standard errors:
/// `Var φ̂ = Σ_strata (1 − m/N) s²(g) / m`, where `g` is a pair's influence
/// and `(1 − m/N)` the finite-population correction of sampling without
/// replacement (1 for the i.i.d. stratum). The enumerated part has no
/// sampling variance.
#[allow(clippy::too_many_arguments)]
fn solve_kernel(
    pairs: &KernelPairs,
    strata: &[Stratum],
    a_diag: f64,
    a_off: f64,
    b_det: &[f64],
    delta: f64,
) -> Result<Solution> {
    let (n, words) = (pairs.n, pairs.words);
    let m = pairs.len();
    let weight = |k: usize| -> f64 {
        let st = pairs.stratum.get(k).and_then(|&s| strata.get(s as usize));
        match st {
            Some(st) if st.m > 0 => st.mass / (2.0 * st.m as f64),
            _ => 0.0,
        }
    };
    // Weighted sums: C = Σ c, cnt_i = Σ c z_i, dd_ij = Σ c z_i z_j,
    // ysum = Σ c y(z̄), e_i = Σ c z_i (y(z) − y(z̄)).
    let mut big_c = 0.0;
    let mut cnt = vec![0.0; n];
    let mut dd = vec![0.0; n * n];
    let mut ysum = 0.0;
    let mut e = vec![0.0; n];
    let mut members: Vec<usize> = Vec::with_capacity(n);
    for (k, (z, &(y1, y2))) in pairs.zs.chunks_exact(words).zip(&pairs.ys).enumerate() {
        let c = weight(k);
        big_c += c;
        ysum += c * y2;
        members.clear();
        for_each_member(z, |i| members.push(i));
        for &i in &members {
            if let Some(x) = cnt.get_mut(i) {
                *x += c;
            }
            if let Some(x) = e.get_mut(i) {
                *x += c * (y1 - y2);
            }
            if let Some(row) = dd.get_mut(i * n..(i + 1) * n) {
                for &j in &members {
                    if let Some(x) = row.get_mut(j) {
                        *x += c;
                    }
                }
            }
        }
    }
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    for i in 0..n {
        let ci = cnt.get(i).copied().unwrap_or(0.0);
        for j in 0..n {
            let cj = cnt.get(j).copied().unwrap_or(0.0);
            let d = dd.get(i * n + j).copied().unwrap_or(0.0);
            // Σ c [z_i z_j + z̄_i z̄_j] = C − cnt_i − cnt_j + 2 dd_ij.
            let s = big_c - ci - cj + 2.0 * d;
            let det = if i == j { a_diag } else { a_off };
            if let Some(x) = a.get_mut(i * n + j) {
                *x = det + s;
            }
        }
        if let Some(x) = b.get_mut(i) {
            *x = b_det.get(i).copied().unwrap_or(0.0) + ysum + e.get(i).copied().unwrap_or(0.0);
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
    let used: Vec<&Stratum> = strata.iter().filter(|s| s.m > 0).collect();
    if m < 2 || used.iter().any(|s| s.m < 2) {
        return Ok(Solution {
            stderr: vec![if m == 0 { 0.0 } else { f64::INFINITY }; n],
            df: f64::INFINITY,
            spread: vec![0.0; strata.len()],
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
    // Influence of pair k of a stratum of mass M: g_k = (M/2)(e_z − e_z̄) P z,
    // with residuals e_z = y(z) − zᵀφ and e_z̄ = y(z̄) − (Δ − zᵀφ).
    let influence = |k: usize, mass: f64, g: &mut [f64]| {
        g.fill(0.0);
        let (Some(z), Some(&(y1, y2))) =
            (pairs.zs.get(k * words..(k + 1) * words), pairs.ys.get(k))
        else {
            return;
        };
        let mut zphi = 0.0;
        for_each_member(z, |j| {
            zphi += phi.get(j).copied().unwrap_or(0.0);
            if let Some(row) = proj.get(j * n..(j + 1) * n) {
                for (gi, pj) in g.iter_mut().zip(row) {
                    *gi += pj;
                }
            }
        });
        let coeff = 0.5 * mass * ((y1 - zphi) - (y2 - (delta - zphi)));
        g.iter_mut().for_each(|x| *x *= coeff);
    };
    // Pairs of each stratum, in draw order.
    let mut by_stratum: Vec<Vec<usize>> = vec![Vec::new(); strata.len()];
    for (k, &s) in pairs.stratum.iter().enumerate() {
        if let Some(v) = by_stratum.get_mut(s as usize) {
            v.push(k);
        }
    }
    let mut var = vec![0.0; n];
    let mut spread = vec![0.0; strata.len()];
    const BLOCK: usize = 2048;
    for ((st, ks), sp) in strata.iter().zip(&by_stratum).zip(spread.iter_mut()) {
        if ks.len() < 2 {
            continue;
        }
        let mut moments = Moments::new(n);
        for block in ks.chunks(BLOCK) {
            let mut gs = vec![0.0; block.len() * n];
            // About n·|z| ≤ n²/2 flops per pair.
            if block.len() * n * n / 2 >= PAR_MIN_FLOPS {
                gs.par_chunks_mut(n)
                    .zip(block.par_iter())
                    .for_each(|(g, &k)| influence(k, st.mass, g));
            } else {
                gs.chunks_mut(n)
                    .zip(block.iter())
                    .for_each(|(g, &k)| influence(k, st.mass, g));
            }
            for g in gs.chunks_exact(n) {
                moments.push(g);
            }
        }
        let fpc = if st.pop.is_finite() {
            (1.0 - ks.len() as f64 / st.pop).max(0.0)
        } else {
            1.0
        };
        let k = ks.len() as f64;
        let mut s2 = 0.0;
        for (v, se) in var.iter_mut().zip(moments.stderr()) {
            *v += fpc * se * se;
            s2 += se * se * k;
        }
        *sp = s2.sqrt();
    }
    Ok(Solution {
        phi,
        spread,
        stderr: var.iter().map(|v| v.sqrt()).collect(),
        df: (m - used.len()).max(1) as f64,
    })
}

/// Neyman weights from the estimated spreads; a stratum whose terms did not
/// vary keeps a small share of its mass, so that every weight stays positive.
fn reweight(strata: &mut [Stratum], spread: &[f64]) {
    let total: f64 = spread.iter().sum();
    let mass: f64 = strata.iter().map(|s| s.mass).sum();
    if !(total > 0.0 && total.is_finite() && mass > 0.0) {
        return;
    }
    for (st, &sp) in strata.iter_mut().zip(spread) {
        st.weight = sp.max(1e-3 * total * st.mass / mass);
    }
}

/// Next combination of `combo` (sorted, `s` of `0..n`) in lexicographic
/// order; `false` after the last one.
fn next_combination(combo: &mut [usize], n: usize) -> bool {
    let s = combo.len();
    let mut i = s;
    while i > 0 {
        i -= 1;
        if combo.get(i).copied().unwrap_or(n) < n - s + i {
            let base = combo.get(i).copied().unwrap_or(0) + 1;
            for (off, c) in combo.iter_mut().enumerate().skip(i) {
                *c = base + (off - i);
            }
            return true;
        }
    }
    false
}

/// Floyd's algorithm: a uniform `k`-subset of `0..n` into the zeroed `z`.
fn floyd(rng: &mut Rng, z: &mut [u64], n: usize, k: usize) {
    for j in n - k..n {
        let t = rng.below(j as u64 + 1) as usize;
        if has(z, t) {
            set(z, j);
        } else {
            set(z, t);
        }
    }
}

fn kernel(run: &mut Run<'_>, opts: &Options, ends: Ends) -> Result<Estimate> {
    let (n, words) = (run.n, run.words);
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
    let mut left = opts.budget.saturating_sub(run.planned());
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
    // b_det from the enumerated coalitions (κ_s = q(s)/C(n,s) each), queued
    // now and folded in after the first flush.
    let chunk = opts.batch();
    let mut a_diag = 0.0;
    let mut a_off = 0.0;
    let mut enum_rows: Vec<u64> = Vec::new();
    let mut enum_slots: Vec<(usize, f64)> = Vec::new();
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
            enum_rows.extend_from_slice(&row);
            enum_slots.push((run.cache.reserve(&row), kappa));
            if run.cache.queued() >= chunk {
                run.flush()?;
            }
            if !next_combination(&mut combo, n) {
                break;
            }
        }
    }
    let mut empty = f64::NAN;
    let mut full = f64::NAN;
    let mut b_det = vec![0.0; n];
    // After the first flush: v(∅), v(N) and b_det are known.
    let mut fold_det = |run: &Run<'_>, empty: &mut f64, full: &mut f64, b_det: &mut [f64]| {
        (*empty, *full) = ends.values(&run.cache);
        for (row, &(slot, kappa)) in enum_rows.chunks_exact(words).zip(&enum_slots) {
            let y = run.cache.value(slot) - *empty;
            for_each_member(row, |i| {
                if let Some(b) = b_det.get_mut(i) {
                    *b += kappa * y;
                }
            });
        }
        enum_rows = Vec::new();
        enum_slots = Vec::new();
    };

    // Sampled sizes: the smaller side of each size pair not enumerated.
    let sides: Vec<usize> = (1..=n / 2)
        .filter(|&s| !enumerated.get(s).copied().unwrap_or(false))
        .collect();
    let side_mass = |s: usize| if 2 * s == n { qs(s) } else { qs(s) + qs(n - s) };
    let w: f64 = sides.iter().map(|&s| side_mass(s)).sum();
    let mut pairs = KernelPairs {
        n,
        words,
        zs: Vec::new(),
        ys: Vec::new(),
        stratum: Vec::new(),
    };
    if sides.is_empty() {
        run.flush()?;
        fold_det(run, &mut empty, &mut full, &mut b_det);
        let sol = solve_kernel(&pairs, &[], a_diag, a_off, &b_det, full - empty)?;
        return Ok(Estimate::exact(sol.phi, run.used(), empty, full));
    }

    let stream = Method::Kernel.stream();
    let pairs_left = opts.budget.saturating_sub(run.planned()) / 2;
    let stratified = pairs_left >= 2 * sides.len();
    let mut strata: Vec<Stratum> = if stratified {
        sides
            .iter()
            .map(|&s| {
                let pop = if 2 * s == n {
                    binom(n, s) / 2.0
                } else {
                    binom(n, s)
                };
                Stratum {
                    size: s,
                    mass: side_mass(s),
                    weight: side_mass(s),
                    pop,
                    m: 0,
                    cap: if pop >= 1e18 {
                        usize::MAX
                    } else {
                        ((pop / 2.0).floor() as usize).max(2)
                    },
                    rng: Rng::for_unit(opts.seed, stream, s as u64),
                }
            })
            .collect()
    } else {
        vec![Stratum {
            size: 0,
            mass: w,
            weight: w,
            pop: f64::INFINITY,
            m: 0,
            cap: usize::MAX,
            rng: Rng::for_unit(opts.seed, stream, 0),
        }]
    };
    // I.i.d. sizes: the cumulative kernel mass of the sampled sides.
    let mut cdf = Vec::with_capacity(sides.len());
    let mut acc = 0.0;
    for &s in &sides {
        acc += side_mass(s);
        cdf.push(acc);
    }
    // Which stratum gets the next pair: the largest weight / (m + 1/2)
    // (Webster's divisor method: allocation in proportion to the weights,
    // built one pair at a time so it only grows), ties to the smaller size.
    // The weights are the kernel masses for a pilot third of the pairs, then
    // the estimated spread of each stratum's influence terms: Neyman's
    // allocation, which minimises Σ s²/m for the pairs left. (With a
    // ci_width rule they are re-estimated at every check.)
    let priority = |st: &Stratum| st.weight / (st.m as f64 + 0.5);
    let next_stratum = |strata: &[Stratum]| -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, st) in strata.iter().enumerate() {
            if st.m >= st.cap {
                continue;
            }
            // Two pairs each first, so every stratum has a variance.
            let p = if st.m < 2 {
                f64::INFINITY
            } else {
                priority(st)
            };
            if best.map_or(true, |(_, bp)| p > bp) {
                best = Some((i, p));
            }
        }
        best.map(|(i, _)| i)
    };

    let min_units = if opts.min_units == 0 {
        Method::Kernel.default_min_units()
    } else {
        opts.min_units
    }
    .max(2);
    let max_units = opts.budget.min(MAX_UNITS);
    let plan_rows = if opts.ci_width.is_some() {
        chunk
    } else {
        chunk.max(PLAN_ROWS)
    };
    let mut next_check = min_units;
    let mut last: Option<Solution> = None;
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut z = vec![0u64; words];
    let mut zbar = vec![0u64; words];
    let mut all = vec![0u64; words];
    for i in 0..n {
        set(&mut all, i);
    }
    let mut first = true;
    let mut iid_unit = 0u64;
    // Fixed budget: a pilot of a third of the pairs (at least two per stratum).
    let mut pilot = if stratified && opts.ci_width.is_none() {
        Some((pairs_left / 3).max(2 * strata.len()))
    } else {
        None
    };
    let stop = loop {
        // Plan pairs while two more evaluations surely fit.
        let mut k = 0usize;
        loop {
            if pairs.len() + k >= max_units || run.planned() + 2 > opts.budget {
                break;
            }
            if pilot.is_some_and(|p| pairs.len() + k >= p) {
                break;
            }
            if k > 0 && (run.cache.queued() + 2 > chunk || 2 * (k + 1) > plan_rows) {
                break;
            }
            let Some(si) = (if stratified {
                next_stratum(&strata)
            } else {
                Some(0)
            }) else {
                break;
            };
            let Some(st) = strata.get_mut(si) else { break };
            let small = if stratified {
                st.size
            } else {
                // The pair's size from the kernel, its own stream per pair.
                let mut rng = Rng::for_unit(opts.seed, stream, (1 << 40) + iid_unit);
                iid_unit += 1;
                let target = rng.uniform() * w;
                let pick = cdf.partition_point(|&c| c <= target).min(sides.len() - 1);
                st.rng = rng;
                sides.get(pick).copied().unwrap_or(1)
            };
            loop {
                z.fill(0);
                floyd(&mut st.rng, &mut z, n, small);
                if 2 * small == n && !has(&z, 0) {
                    // One representative per pair {z, z̄}: the side holding player 0.
                    for (a, b) in z.iter_mut().zip(&all) {
                        *a ^= *b;
                    }
                }
                let before = run.planned();
                let sz = run.cache.reserve(&z);
                if stratified && run.planned() == before {
                    // Drawn before in this stratum: without replacement, draw again.
                    continue;
                }
                zbar.copy_from_slice(&z);
                for (a, b) in zbar.iter_mut().zip(&all) {
                    *a ^= *b;
                }
                let sb = run.cache.reserve(&zbar);
                slots.push((sz, sb));
                pairs.zs.extend_from_slice(&z);
                pairs.stratum.push(si as u32);
                break;
            }
            st.m += 1;
            k += 1;
        }
        if k == 0 {
            break Stop::Budget;
        }
        run.flush()?;
        if first {
            fold_det(run, &mut empty, &mut full, &mut b_det);
            first = false;
        }
        for &(sz, sb) in &slots {
            pairs
                .ys
                .push((run.cache.value(sz) - empty, run.cache.value(sb) - empty));
        }
        slots.clear();
        if pilot.is_some_and(|p| pairs.len() >= p) {
            pilot = None;
            // A singular pilot design keeps the proportional allocation.
            if let Ok(sol) = solve_kernel(&pairs, &strata, a_diag, a_off, &b_det, full - empty) {
                reweight(&mut strata, &sol.spread);
            }
        }
        if let Some(target) = opts.ci_width {
            if pairs.len() >= next_check {
                let sol = solve_kernel(&pairs, &strata, a_diag, a_off, &b_det, full - empty)?;
                let wide = widest(&sol.stderr, sol.df, opts.confidence);
                if stratified {
                    reweight(&mut strata, &sol.spread);
                }
                last = Some(sol);
                if wide <= target {
                    break Stop::CiWidth;
                }
                next_check = pairs.len() + (pairs.len() / 5).max(1);
            }
        }
    };
    if pairs.len() < 2 {
        return Err(ShapleyError::Budget {
            method: Method::Kernel.name(),
            budget: opts.budget,
            n,
            needed: Method::Kernel.min_budget(n),
        });
    }
    if first {
        run.flush()?;
        fold_det(run, &mut empty, &mut full, &mut b_det);
    }
    let sol = match (stop, last) {
        (Stop::CiWidth, Some(sol)) => sol,
        _ => solve_kernel(&pairs, &strata, a_diag, a_off, &b_det, full - empty)?,
    };
    let (values, stderr, ci_low, ci_high) = finish(sol.phi, sol.stderr, sol.df, opts.confidence);
    Ok(Estimate {
        values,
        stderr,
        ci_low,
        ci_high,
        evaluations: run.used(),
        units: pairs.len(),
        df: sol.df,
        empty,
        full,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{exact, with_threads, Coalitions, TableGame};
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

    /// `Square` behind a cache it keeps across runs, counting its calls.
    struct Keeps {
        cache: Cache,
        inner: Square,
        calls: usize,
    }

    struct Counted<'a>(&'a mut Square, &'a mut usize);

    impl Game for Counted<'_> {
        fn players(&self) -> usize {
            self.0.players()
        }
        fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
            *self.1 += 1;
            self.0.evaluate(batch, out)
        }
    }

    impl Game for Keeps {
        fn players(&self) -> usize {
            self.inner.players()
        }
        fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
            let (inner, calls) = (&mut self.inner, &mut self.calls);
            self.cache
                .evaluate(batch, out, |b, o| Counted(inner, calls).evaluate(b, o))
        }
        fn keeps_cache(&self) -> bool {
            true
        }
        fn shared_cache(&mut self) -> Option<(&mut Cache, &mut dyn Game)> {
            None
        }
    }

    #[test]
    fn a_game_that_lends_no_cache_is_an_error_not_a_panic() {
        let mut g = Keeps {
            cache: Cache::new(),
            inner: Square(vec![1.0; 5]),
            calls: 0,
        };
        assert!(matches!(
            sample(&mut g, Method::Kernel, &Options::default()),
            Err(ShapleyError::Invalid { .. })
        ));
    }

    struct Raw<'a> {
        inner: &'a mut Square,
        calls: &'a mut usize,
    }

    impl Game for Raw<'_> {
        fn players(&self) -> usize {
            self.inner.players()
        }
        fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
            *self.calls += 1;
            self.inner.evaluate(batch, out)
        }
    }

    #[test]
    fn runs_through_a_shared_cache_match_and_are_charged_per_run() {
        let w: Vec<f64> = (0..30).map(|i| (i as f64 - 9.0) / 5.0).collect();
        for m in ALL {
            let opts = Options {
                budget: 4000,
                seed: 5,
                batch: 4000,
                ..Options::default()
            };
            let own = sample(&mut Square(w.clone()), m, &opts).unwrap();
            let mut cache = Cache::new();
            let mut inner = Square(w.clone());
            let mut calls = 0;
            let mut runs = Vec::new();
            for _ in 0..2 {
                let mut g = SharedRef {
                    cache: &mut cache,
                    raw: Raw {
                        inner: &mut inner,
                        calls: &mut calls,
                    },
                };
                runs.push(sample(&mut g, m, &opts).unwrap());
            }
            assert_eq!(runs[0], own, "{m:?}");
            // The second run finds everything cached but is charged the same.
            assert_eq!(runs[1], own, "{m:?}");
            if m != Method::Kernel {
                assert_eq!(calls, 1, "{m:?}: one call to the game for the whole budget");
            }
        }
    }

    struct SharedRef<'a> {
        cache: &'a mut Cache,
        raw: Raw<'a>,
    }

    impl Game for SharedRef<'_> {
        fn players(&self) -> usize {
            self.raw.players()
        }
        fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
            let raw = &mut self.raw;
            self.cache.evaluate(batch, out, |b, o| raw.evaluate(b, o))
        }
        fn keeps_cache(&self) -> bool {
            true
        }
        fn shared_cache(&mut self) -> Option<(&mut Cache, &mut dyn Game)> {
            Some((&mut *self.cache, &mut self.raw))
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
