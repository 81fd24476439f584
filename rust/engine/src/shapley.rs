//! Shapley attribution of a value (a KPI) to players (factors, changes).
//!
//! A *game* on `n` players gives a number `v(S)` for every coalition `S` of
//! players. The Shapley value (Shapley, 1953) of player `i` is
//!
//! ```text
//! φ_i = Σ_{S ⊆ N∖{i}}  |S|! (n−|S|−1)! / n!  ·  ( v(S ∪ {i}) − v(S) )
//! ```
//!
//! and the values add up to `v(N) − v(∅)` (efficiency).
//!
//! * [`exact`] computes every `φ_i` from a full value table in `O(n·2^n)`
//!   (the weighted subset-difference form above, split over rayon in fixed
//!   chunks, no allocation per coalition), for `n ≤ 25`.
//! * [`interactions`] computes the pairwise Shapley interaction index
//!   (Grabisch & Roubens, 1999) in `O(n²·2^n)`.
//! * [`sample`] estimates the values of any [`Game`] with standard errors and
//!   confidence intervals: permutation sampling (Castro et al., 2009), its
//!   antithetic variant (each permutation paired with its reverse), sampling
//!   stratified by coalition size (structured random sampling: every player
//!   takes every position once per unit, van Campen et al., 2018) and
//!   KernelSHAP regression (Lundberg & Lee, 2017) with paired sampling, exact
//!   treatment of the smallest and largest coalition sizes, the other sizes
//!   stratified and drawn without replacement (Neyman allocation after a
//!   pilot), and a delta-method (sandwich) variance (Covert & Lee, 2021). Sampling stops at
//!   a requested confidence-interval width or at the evaluation budget.
//!
//! ## Conventions
//! Coalitions are bitsets: bit `i` set means player `i` is present, so in a
//! value table of length `2^n`, entry `k` is `v(S)` for the players whose bits
//! are set in `k`. In messages, a coalition is written as `n` characters, the
//! `i`-th (from the left) being `1` when player `i` is present.
//!
//! ## Reproducibility
//! Sampling unit `u` draws from its own generator seeded by
//! `(seed, method, u)`; units are built in parallel but reduced in unit order,
//! and the thread count never changes which units are drawn. The same inputs
//! and options give bit-identical results on any number of threads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

mod exact;
mod rng;
mod sample;
mod stats;

pub use exact::{exact, interactions, MAX_EXACT_PLAYERS};
pub use sample::{sample, Method, Options, Stop};
pub use stats::{norm_ppf, t_cdf, t_ppf};

/// Upper bound on the players of a sampled game.
pub const MAX_PLAYERS: usize = 4096;

/// Errors of the Shapley module.
#[derive(Debug, thiserror::Error)]
pub enum ShapleyError {
    #[error("value table: length {len} is not a power of two (a table for n players has 2^n entries, entry k being v(S) for the players whose bits are set in k)")]
    TableLength { len: usize },
    #[error("value table: entry {index} (coalition {coalition}) is {value}; values must be finite numbers")]
    NonFinite {
        index: usize,
        coalition: String,
        value: f64,
    },
    #[error("the exact method needs all 2^{n} coalition values and is limited to n ≤ {max} players; use a sampled method (permutation, stratified or kernel) with a budget or a ci_width instead")]
    TooManyPlayers { n: usize, max: usize },
    #[error("{n} players: this operation supports {min} to {max} players")]
    PlayerCount { n: usize, min: usize, max: usize },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("coalition {coalition} was not measured ({measured} of the 2^{n} coalitions are)")]
    Missing {
        coalition: String,
        measured: usize,
        n: usize,
    },
    #[error("the game returned {value} for coalition {coalition}; values must be finite numbers")]
    GameValue { coalition: String, value: f64 },
    #[error("the game returned {got} values for {expected} coalitions")]
    GameShape { expected: usize, got: usize },
    #[error("the game failed: {0}")]
    Game(String),
    #[error("{method}: a budget of {budget} evaluations is too small for {n} players; it needs at least {needed}")]
    Budget {
        method: &'static str,
        budget: usize,
        n: usize,
        needed: usize,
    },
    #[error("kernel regression: the weighted design is singular after {units} sampled pairs (raise the budget)")]
    Singular { units: usize },
    #[error("thread pool: {0}")]
    Threads(String),
}

pub(crate) type Result<T> = std::result::Result<T, ShapleyError>;

/// A fast hasher for coalition keys (slices of `u64` words): a
/// multiply-rotate mix per word, as in rustc's FxHash. Keys are coalitions,
/// not attacker-chosen strings, so SipHash's flooding resistance buys
/// nothing here while costing most of a cache lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        rng::mix64(self.0)
    }
}

pub(crate) type KeyMap<V> = HashMap<Box<[u64]>, V, BuildHasherDefault<WordHasher>>;

/// Coalition → slot, without a heap key for the common case of ≤ 64 players.
#[derive(Debug, Clone)]
enum Slots {
    Word(HashMap<u64, usize, BuildHasherDefault<WordHasher>>),
    Wide(KeyMap<usize>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::Word(HashMap::default())
    }
}

impl Slots {
    #[inline]
    fn get(&self, row: &[u64]) -> Option<usize> {
        match (self, row) {
            (Slots::Word(m), &[w]) => m.get(&w).copied(),
            (Slots::Word(_), _) => None,
            (Slots::Wide(m), _) => m.get(row).copied(),
        }
    }

    #[inline]
    fn insert(&mut self, row: &[u64], slot: usize) {
        if let (Slots::Word(m), &[w]) = (&mut *self, row) {
            m.insert(w, slot);
            return;
        }
        if let Slots::Word(m) = self {
            // A wider coalition arrives: move to boxed keys (once).
            let wide: KeyMap<usize> = m.drain().map(|(k, v)| (Box::from([k]), v)).collect();
            *self = Slots::Wide(wide);
        }
        if let Slots::Wide(m) = self {
            m.insert(row.into(), slot);
        }
    }

    /// The slot of `row`, inserting `fresh` when it is absent; `true` if it was inserted.
    #[inline]
    fn get_or_insert(&mut self, row: &[u64], fresh: usize) -> (usize, bool) {
        if let (Slots::Word(m), &[w]) = (&mut *self, row) {
            return match m.entry(w) {
                std::collections::hash_map::Entry::Occupied(o) => (*o.get(), false),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(fresh);
                    (fresh, true)
                }
            };
        }
        match self.get(row) {
            Some(s) => (s, false),
            None => {
                self.insert(row, fresh);
                (fresh, true)
            }
        }
    }

    #[inline]
    fn remove(&mut self, row: &[u64]) {
        match (self, row) {
            (Slots::Word(m), &[w]) => {
                m.remove(&w);
            }
            (Slots::Word(_), _) => {}
            (Slots::Wide(m), _) => {
                m.remove(row);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Slots::Word(m) => m.len(),
            Slots::Wide(m) => m.len(),
        }
    }
}

/// Number of `u64` words of a coalition of `n` players (at least one).
pub fn words_for(n: usize) -> usize {
    n.div_ceil(64).max(1)
}

/// A coalition as `n` characters, `1` where the player is present.
pub fn coalition_string(row: &[u64], n: usize) -> String {
    (0..n)
        .map(|i| if has(row, i) { '1' } else { '0' })
        .collect()
}

#[inline]
pub(crate) fn has(row: &[u64], i: usize) -> bool {
    row.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
}

#[inline]
pub(crate) fn set(row: &mut [u64], i: usize) {
    if let Some(w) = row.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

/// A batch of coalitions of `n` players, each stored as `words_for(n)` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalitions {
    n: usize,
    words: usize,
    data: Vec<u64>,
}

impl Coalitions {
    /// An empty batch for `n` players.
    pub fn new(n: usize) -> Self {
        Coalitions {
            n,
            words: words_for(n),
            data: Vec::new(),
        }
    }

    /// `rows` empty coalitions.
    pub fn zeroed(n: usize, rows: usize) -> Self {
        let words = words_for(n);
        Coalitions {
            n,
            words,
            data: vec![0; rows * words],
        }
    }

    /// Build from a row-major `rows × n` matrix of 0/1 bytes.
    pub fn from_bytes(n: usize, bytes: &[u8]) -> Result<Self> {
        if n == 0 {
            return Err(ShapleyError::PlayerCount {
                n,
                min: 1,
                max: MAX_PLAYERS,
            });
        }
        if bytes.len() % n != 0 {
            return Err(ShapleyError::Invalid {
                what: "coalitions",
                reason: format!("{} bytes is not a whole number of rows of {n}", bytes.len()),
            });
        }
        let rows = bytes.len() / n;
        let mut c = Coalitions::zeroed(n, rows);
        let w = c.words;
        for (r, (row, chunk)) in c
            .data
            .chunks_exact_mut(w)
            .zip(bytes.chunks_exact(n))
            .enumerate()
        {
            for (i, &b) in chunk.iter().enumerate() {
                match b {
                    0 => {}
                    1 => set(row, i),
                    _ => {
                        return Err(ShapleyError::Invalid {
                            what: "coalitions",
                            reason: format!("row {r}, player {i}: {b} is not 0 or 1"),
                        })
                    }
                }
            }
        }
        Ok(c)
    }

    /// The coalitions numbered `start .. start + count` of a value table
    /// (entry `k` ↔ the players whose bits are set in `k`), `n ≤ 25`.
    pub fn table_range(n: usize, start: usize, count: usize) -> Result<Self> {
        if n > exact::MAX_EXACT_PLAYERS || start + count > 1usize << n {
            return Err(ShapleyError::Invalid {
                what: "table range",
                reason: format!(
                    "{start}..{} is outside a table of {n} players",
                    start + count
                ),
            });
        }
        Ok(Coalitions {
            n,
            words: 1,
            data: (start..start + count).map(|k| k as u64).collect(),
        })
    }

    pub fn players(&self) -> usize {
        self.n
    }

    pub fn words(&self) -> usize {
        self.words
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.words
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `r` (empty slice when out of range).
    pub fn row(&self, r: usize) -> &[u64] {
        self.data
            .get(r * self.words..(r + 1) * self.words)
            .unwrap_or(&[])
    }

    pub fn push(&mut self, row: &[u64]) {
        debug_assert_eq!(row.len(), self.words);
        self.data.extend_from_slice(row);
    }

    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// All words, row after row.
    pub fn raw(&self) -> &[u64] {
        &self.data
    }

    #[cfg(test)]
    pub(crate) fn raw_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Row-major `len × n` matrix of 0/1 (`true` = present).
    pub fn to_bools(&self) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.len() * self.n);
        for r in 0..self.len() {
            let row = self.row(r);
            out.extend((0..self.n).map(|i| has(row, i)));
        }
        out
    }

    /// `true` if player `i` is in row `r`.
    pub fn contains(&self, r: usize, i: usize) -> bool {
        has(self.row(r), i)
    }
}

/// A cooperative game: the value of any coalition of its players.
pub trait Game {
    /// Number of players `n`.
    fn players(&self) -> usize;
    /// Write `v(S)` of every coalition `S` of the batch into `out`
    /// (`out.len() == batch.len()`). Values must be finite.
    fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()>;
    /// `true` if the game keeps its own [`Cache`] across runs (then
    /// [`Game::shared_cache`] returns it).
    fn keeps_cache(&self) -> bool {
        false
    }
    /// The game's own cache and the evaluator behind it, so that a run plans
    /// through that one cache instead of a second one in front of it.
    fn shared_cache(&mut self) -> Option<(&mut Cache, &mut dyn Game)> {
        None
    }
}

/// Check that `values` is a value table and return its number of players.
pub fn table_players(values: &[f64]) -> Result<usize> {
    let len = values.len();
    if len == 0 || !len.is_power_of_two() {
        return Err(ShapleyError::TableLength { len });
    }
    Ok(len.trailing_zeros() as usize)
}

/// The first non-finite entry of a table, as an error.
pub(crate) fn check_finite(values: &[f64], n: usize) -> Result<()> {
    use rayon::prelude::*;
    if let Some(index) = values.par_iter().position_first(|v| !v.is_finite()) {
        let value = values.get(index).copied().unwrap_or(f64::NAN);
        return Err(ShapleyError::NonFinite {
            index,
            coalition: coalition_string(&[index as u64], n),
            value,
        });
    }
    Ok(())
}

/// A game given by its full value table (`2^n` finite entries, `n ≤ 64`).
#[derive(Debug, Clone, Copy)]
pub struct TableGame<'a> {
    n: usize,
    values: &'a [f64],
}

impl<'a> TableGame<'a> {
    /// Validates the length (a power of two) and that every value is finite.
    pub fn new(values: &'a [f64]) -> Result<Self> {
        let n = table_players(values)?;
        check_finite(values, n)?;
        Ok(TableGame { n, values })
    }

    pub fn values(&self) -> &'a [f64] {
        self.values
    }
}

impl Game for TableGame<'_> {
    fn players(&self) -> usize {
        self.n
    }

    fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
        for (r, o) in out.iter_mut().enumerate() {
            let row = batch.row(r);
            let idx = row.first().copied().unwrap_or(0) as usize;
            *o = *self.values.get(idx).ok_or_else(|| ShapleyError::Invalid {
                what: "table game",
                reason: format!(
                    "coalition {} is outside a table of {} players",
                    coalition_string(row, batch.players()),
                    self.n
                ),
            })?;
        }
        Ok(())
    }
}

/// A game given by the coalitions that were measured; any other coalition is
/// an error ([`ShapleyError::Missing`]).
#[derive(Debug, Clone)]
pub struct SparseGame {
    n: usize,
    map: KeyMap<f64>,
}

impl SparseGame {
    /// From measured coalitions and their values. A coalition measured twice
    /// must have the same value both times; values must be finite.
    pub fn new(coalitions: &Coalitions, values: &[f64]) -> Result<Self> {
        let n = coalitions.players();
        if n == 0 || n > MAX_PLAYERS {
            return Err(ShapleyError::PlayerCount {
                n,
                min: 1,
                max: MAX_PLAYERS,
            });
        }
        if coalitions.len() != values.len() {
            return Err(ShapleyError::Invalid {
                what: "sparse game",
                reason: format!(
                    "{} coalitions but {} values",
                    coalitions.len(),
                    values.len()
                ),
            });
        }
        let mut map: KeyMap<f64> =
            KeyMap::with_capacity_and_hasher(values.len(), Default::default());
        for (r, &v) in values.iter().enumerate() {
            let row = coalitions.row(r);
            if !v.is_finite() {
                return Err(ShapleyError::Invalid {
                    what: "sparse game",
                    reason: format!(
                        "row {r} (coalition {}): value {v} is not a finite number",
                        coalition_string(row, n)
                    ),
                });
            }
            match map.get(row) {
                Some(&old) if old.to_bits() != v.to_bits() => {
                    return Err(ShapleyError::Invalid {
                        what: "sparse game",
                        reason: format!(
                            "coalition {} is measured twice with different values ({old} and {v})",
                            coalition_string(row, n)
                        ),
                    })
                }
                Some(_) => {}
                None => {
                    map.insert(row.into(), v);
                }
            }
        }
        Ok(SparseGame { n, map })
    }

    /// Number of distinct measured coalitions.
    pub fn measured(&self) -> usize {
        self.map.len()
    }

    /// The full value table, when every one of the `2^n` coalitions was measured.
    pub fn to_table(&self) -> Result<Vec<f64>> {
        if self.n > MAX_EXACT_PLAYERS {
            return Err(ShapleyError::TooManyPlayers {
                n: self.n,
                max: MAX_EXACT_PLAYERS,
            });
        }
        let size = 1usize << self.n;
        let mut out = vec![0.0; size];
        for (k, o) in out.iter_mut().enumerate() {
            let key = [k as u64];
            match self.map.get(&key[..]) {
                Some(&v) => *o = v,
                None => {
                    return Err(ShapleyError::Missing {
                        coalition: coalition_string(&key, self.n),
                        measured: self.map.len(),
                        n: self.n,
                    })
                }
            }
        }
        Ok(out)
    }
}

impl SparseGame {
    /// Number of players.
    pub fn players(&self) -> usize {
        self.n
    }

    /// Values of the coalitions of `batch`; an unmeasured one is an error.
    pub fn lookup(&self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
        for (r, o) in out.iter_mut().enumerate() {
            let row = batch.row(r);
            *o = *self.map.get(row).ok_or_else(|| ShapleyError::Missing {
                coalition: coalition_string(row, self.n),
                measured: self.map.len(),
                n: self.n,
            })?;
        }
        Ok(())
    }
}

impl Game for SparseGame {
    fn players(&self) -> usize {
        self.n
    }

    fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<()> {
        self.lookup(batch, out)
    }
}

/// Remembers coalition values so each distinct coalition is evaluated once.
///
/// Two ways in:
/// * [`Cache::evaluate`] forwards only the coalitions of a batch it has not
///   seen (each once, in first-seen order) to the game, in one call;
/// * [`Cache::reserve`] gives a coalition its slot at once and queues it if it
///   is new; [`Cache::flush`] then evaluates everything queued in one call.
///   Samplers use this to plan a whole run (or a large part of it) and make
///   one call to the game, deduplicating as they go.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    slot: Slots,
    values: Vec<f64>,
    evaluations: usize,
    /// Queued (reserved, not yet evaluated) coalitions, row after row, and
    /// their slots.
    queued: Vec<u64>,
    pending: Vec<usize>,
    /// Per slot: the last run ([`Cache::begin_run`]) that used it, and the
    /// distinct coalitions the current run used (its budget charge, queued
    /// ones included).
    marks: Vec<u32>,
    epoch: u32,
    charged: usize,
    // Scratch, kept to avoid reallocating per batch.
    row_slot: Vec<usize>,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache pre-sized for about `coalitions` coalitions of `n` players.
    pub fn with_capacity(n: usize, coalitions: usize) -> Self {
        let slot = if words_for(n) == 1 {
            Slots::Word(HashMap::with_capacity_and_hasher(
                coalitions,
                Default::default(),
            ))
        } else {
            Slots::Wide(KeyMap::with_capacity_and_hasher(
                coalitions,
                Default::default(),
            ))
        };
        Cache {
            slot,
            values: Vec::with_capacity(coalitions),
            marks: Vec::with_capacity(coalitions),
            queued: Vec::with_capacity(coalitions.min(1 << 16) * words_for(n)),
            ..Self::default()
        }
    }

    /// Make room for `additional` more coalitions (avoids rehashing while a
    /// run of known budget fills the cache).
    pub fn reserve_capacity(&mut self, additional: usize) {
        match &mut self.slot {
            Slots::Word(m) => m.reserve(additional),
            Slots::Wide(m) => m.reserve(additional),
        }
        self.values.reserve(additional);
        self.marks.reserve(additional);
    }

    /// Start charging a new run: from now on [`Cache::charged`] counts the
    /// distinct coalitions reserved, whether or not an earlier run evaluated
    /// them.
    pub fn begin_run(&mut self) {
        if self.epoch == u32::MAX {
            self.marks.fill(0);
            self.epoch = 0;
        }
        self.epoch += 1;
        self.charged = 0;
    }

    /// Distinct coalitions reserved since [`Cache::begin_run`].
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Distinct coalitions evaluated through this cache.
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }

    /// Coalitions queued by [`Cache::reserve`] and not evaluated yet.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// The slot of `row`. A coalition not seen before is queued for the next
    /// [`Cache::flush`]; its value is not available until then.
    #[inline]
    pub fn reserve(&mut self, row: &[u64]) -> usize {
        let fresh = self.values.len();
        let (s, inserted) = self.slot.get_or_insert(row, fresh);
        if inserted {
            self.values.push(f64::NAN);
            self.marks.push(self.epoch);
            self.charged += 1;
            self.queued.extend_from_slice(row);
            self.pending.push(s);
        } else if let Some(m) = self.marks.get_mut(s) {
            if *m != self.epoch {
                *m = self.epoch;
                self.charged += 1;
            }
        }
        s
    }

    /// Value of a slot returned by [`Cache::reserve`] (NaN while queued).
    #[inline]
    pub fn value(&self, slot: usize) -> f64 {
        self.values.get(slot).copied().unwrap_or(f64::NAN)
    }

    /// Evaluate the queued coalitions (of `n` players) with one call to
    /// `eval`, whose values are checked to be finite. On an error nothing
    /// queued is kept, so the cache stays usable.
    pub fn flush<F>(&mut self, n: usize, mut eval: F) -> Result<()>
    where
        F: FnMut(&Coalitions, &mut [f64]) -> Result<()>,
    {
        if self.pending.is_empty() {
            return Ok(());
        }
        let misses = Coalitions {
            n,
            words: words_for(n),
            data: std::mem::take(&mut self.queued),
        };
        let mut got = vec![0.0; misses.len()];
        let res = if misses.len() != self.pending.len() {
            Err(ShapleyError::Invalid {
                what: "cache",
                reason: format!(
                    "{} queued coalitions of {n} players for {} slots",
                    misses.len(),
                    self.pending.len()
                ),
            })
        } else {
            eval(&misses, &mut got)
        };
        let res = res.and_then(|()| match got.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(r) => Err(ShapleyError::GameValue {
                coalition: coalition_string(misses.row(r), n),
                value: got.get(r).copied().unwrap_or(f64::NAN),
            }),
        });
        if let Err(e) = res {
            self.forget_pending(&misses);
            self.reuse(misses);
            return Err(e);
        }
        for (&s, &v) in self.pending.iter().zip(&got) {
            if let Some(x) = self.values.get_mut(s) {
                *x = v;
            }
        }
        self.evaluations += self.pending.len();
        self.pending.clear();
        self.reuse(misses);
        Ok(())
    }

    fn reuse(&mut self, misses: Coalitions) {
        let mut buf = misses.data;
        buf.clear();
        self.queued = buf;
    }

    /// Values of `batch` into `out`, calling `eval` once on the coalitions not
    /// seen before. `eval`'s values are checked to be finite.
    pub fn evaluate<F>(&mut self, batch: &Coalitions, out: &mut [f64], eval: F) -> Result<()>
    where
        F: FnMut(&Coalitions, &mut [f64]) -> Result<()>,
    {
        if out.len() != batch.len() {
            return Err(ShapleyError::GameShape {
                expected: batch.len(),
                got: out.len(),
            });
        }
        let mut row_slot = std::mem::take(&mut self.row_slot);
        row_slot.clear();
        row_slot.extend(
            batch
                .raw()
                .chunks_exact(batch.words())
                .map(|row| self.reserve(row)),
        );
        let res = self.flush(batch.players(), eval);
        if res.is_ok() {
            for (o, &s) in out.iter_mut().zip(&row_slot) {
                *o = self.value(s);
            }
        }
        self.row_slot = row_slot;
        res
    }

    /// Undo the placeholders of a failed batch, so the cache stays usable.
    fn forget_pending(&mut self, misses: &Coalitions) {
        for r in 0..misses.len() {
            self.slot.remove(misses.row(r));
        }
        let keep = self.values.len() - self.pending.len();
        self.values.truncate(keep);
        self.marks.truncate(keep);
        self.charged -= self.pending.len().min(self.charged);
        self.pending.clear();
    }

    /// Look a coalition up without evaluating it.
    pub fn get(&self, row: &[u64]) -> Option<f64> {
        self.slot
            .get(row)
            .and_then(|s| self.values.get(s).copied())
            .filter(|v| !v.is_nan())
    }

    /// Number of cached coalitions.
    pub fn len(&self) -> usize {
        self.slot.len() - self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Estimates with their uncertainty, as returned by [`sample`] (and, with zero
/// error, by the exact path).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// `φ_i` estimates.
    pub values: Vec<f64>,
    /// Standard errors (0 for exact values).
    pub stderr: Vec<f64>,
    /// Confidence interval bounds at `confidence`.
    pub ci_low: Vec<f64>,
    pub ci_high: Vec<f64>,
    /// Distinct coalitions evaluated.
    pub evaluations: usize,
    /// Independent sampling units averaged (permutations, pairs, ...).
    pub units: usize,
    /// Degrees of freedom of the t-quantile used for the intervals.
    pub df: f64,
    /// `v(∅)` and `v(N)`.
    pub empty: f64,
    pub full: f64,
    /// Why sampling stopped.
    pub stop: Stop,
}

/// Pools built for an explicit thread count, kept for reuse: building one
/// spawns its threads, which costs milliseconds per call otherwise.
fn pool(k: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = pools.get(&k) {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .map_err(|e| ShapleyError::Threads(e.to_string()))?,
    );
    pools.insert(k, Arc::clone(&p));
    Ok(p)
}

/// Largest explicit thread count accepted by [`with_threads`].
pub const MAX_THREADS: usize = 1024;

/// Run `f` on a rayon pool of `threads` threads (`None`: the global pool).
pub fn with_threads<T, F>(threads: Option<usize>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    match threads {
        None => f(),
        Some(k) if k == 0 || k > MAX_THREADS => Err(ShapleyError::Invalid {
            what: "threads",
            reason: format!("{k} is not between 1 and {MAX_THREADS}"),
        }),
        Some(k) => pool(k)?.install(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalition_strings_and_bytes_round_trip() {
        let c = Coalitions::from_bytes(3, &[1, 0, 1, 0, 0, 0]).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(coalition_string(c.row(0), 3), "101");
        assert_eq!(c.row(0), &[0b101]);
        assert_eq!(c.to_bools(), vec![true, false, true, false, false, false]);
        assert!(Coalitions::from_bytes(3, &[2, 0, 0]).is_err());
        assert!(Coalitions::from_bytes(3, &[1, 0]).is_err());
        let mut wide = Coalitions::zeroed(130, 1);
        set(wide.raw_mut(), 129);
        assert!(wide.contains(0, 129) && !wide.contains(0, 128));
    }

    #[test]
    fn table_validation() {
        assert!(matches!(
            TableGame::new(&[0.0, 1.0, 2.0]),
            Err(ShapleyError::TableLength { len: 3 })
        ));
        assert!(matches!(
            TableGame::new(&[]),
            Err(ShapleyError::TableLength { len: 0 })
        ));
        match TableGame::new(&[0.0, 1.0, f64::NAN, 3.0]) {
            Err(ShapleyError::NonFinite {
                index, coalition, ..
            }) => {
                assert_eq!(index, 2);
                assert_eq!(coalition, "01");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sparse_game_lookups_and_duplicates() {
        let c = Coalitions::from_bytes(2, &[0, 0, 1, 0, 0, 1, 1, 1, 1, 1]).unwrap();
        let g = SparseGame::new(&c, &[0.0, 1.0, 2.0, 5.0, 5.0]).unwrap();
        assert_eq!(g.measured(), 4);
        assert_eq!(g.to_table().unwrap(), vec![0.0, 1.0, 2.0, 5.0]);
        assert!(SparseGame::new(&c, &[0.0, 1.0, 2.0, 5.0, 6.0]).is_err());
        let part = Coalitions::from_bytes(2, &[0, 0, 1, 1]).unwrap();
        let mut g = SparseGame::new(&part, &[0.0, 3.0]).unwrap();
        match g.to_table() {
            Err(ShapleyError::Missing { coalition, .. }) => assert_eq!(coalition, "10"),
            other => panic!("{other:?}"),
        }
        let q = Coalitions::from_bytes(2, &[0, 1]).unwrap();
        assert!(g.evaluate(&q, &mut [0.0]).is_err());
    }

    #[test]
    fn cache_plans_runs_and_charges_each_run() {
        let mut cache = Cache::with_capacity(3, 8);
        cache.begin_run();
        let a = cache.reserve(&[0b001]);
        let b = cache.reserve(&[0b110]);
        assert_eq!(cache.reserve(&[0b001]), a);
        assert_eq!(
            (cache.queued(), cache.charged(), cache.evaluations()),
            (2, 2, 0)
        );
        let mut calls = 0;
        cache
            .flush(3, |batch, out| {
                calls += 1;
                for (r, o) in out.iter_mut().enumerate() {
                    *o = batch.row(r)[0] as f64;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(calls, 1);
        assert_eq!((cache.value(a), cache.value(b)), (1.0, 6.0));
        assert_eq!((cache.queued(), cache.evaluations()), (0, 2));
        // A new run is charged for what it uses, evaluated before or not.
        cache.begin_run();
        assert_eq!(cache.charged(), 0);
        cache.reserve(&[0b110]);
        cache.reserve(&[0b110]);
        assert_eq!((cache.charged(), cache.queued()), (1, 0));
        // A failed flush forgets what it queued, and its charge.
        cache.reserve(&[0b111]);
        assert!(cache
            .flush(3, |_, _| Err(ShapleyError::Game("boom".into())))
            .is_err());
        assert_eq!((cache.charged(), cache.queued(), cache.len()), (1, 0, 2));
        assert_eq!(cache.get(&[0b111]), None);
    }

    #[test]
    fn cache_forwards_each_coalition_once() {
        let c = Coalitions::from_bytes(2, &[1, 0, 1, 0, 0, 1]).unwrap();
        let mut cache = Cache::new();
        let mut calls = Vec::new();
        let mut out = vec![0.0; 3];
        cache
            .evaluate(&c, &mut out, |b, o| {
                calls.push(b.len());
                for (r, x) in o.iter_mut().enumerate() {
                    *x = b.row(r)[0] as f64;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(out, vec![1.0, 1.0, 2.0]);
        assert_eq!(calls, vec![2]);
        cache
            .evaluate(&c, &mut out, |_, _| panic!("all cached"))
            .unwrap();
        assert_eq!(cache.evaluations(), 2);
        // A failing or non-finite batch leaves the cache consistent.
        let d = Coalitions::from_bytes(2, &[1, 1]).unwrap();
        let mut one = vec![0.0];
        assert!(cache
            .evaluate(&d, &mut one, |_, o| {
                o[0] = f64::INFINITY;
                Ok(())
            })
            .is_err());
        assert!(cache
            .evaluate(&d, &mut one, |_, _| Err(ShapleyError::Game("boom".into())))
            .is_err());
        cache
            .evaluate(&d, &mut one, |_, o| {
                o[0] = 7.0;
                Ok(())
            })
            .unwrap();
        assert_eq!(one, vec![7.0]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&[3]), Some(7.0));
    }

    #[test]
    fn cache_keys_switch_from_words_to_slices() {
        let mut cache = Cache::new();
        let narrow = Coalitions::from_bytes(3, &[1, 0, 1]).unwrap();
        let mut out = [0.0];
        cache
            .evaluate(&narrow, &mut out, |_, o| {
                o[0] = 5.0;
                Ok(())
            })
            .unwrap();
        let mut wide = Coalitions::zeroed(70, 1);
        set(wide.raw_mut(), 69);
        cache
            .evaluate(&wide, &mut out, |_, o| {
                o[0] = 6.0;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            (cache.get(&[0b101]), cache.get(wide.row(0))),
            (Some(5.0), Some(6.0))
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&[0b111]), None);
    }

    #[test]
    fn thread_pool_argument() {
        assert!(with_threads(Some(0), || Ok(1)).is_err());
        assert_eq!(
            with_threads(Some(2), || Ok(rayon::current_num_threads())).unwrap(),
            2
        );
    }
}
