//! Exact Shapley values and pairwise Shapley interaction indices over a full
//! value table.
//!
//! Both use the weighted-difference form over the subsets `S` that exclude the
//! player(s), visiting the table as contiguous slices (no per-coalition
//! allocation, no index arithmetic that could fall outside the table for the
//! Shapley values). The work is cut into fixed chunks of `2^13` subsets that
//! rayon runs in any order; the chunk sums are then added in chunk order, so
//! the result does not depend on the number of threads.

use rayon::prelude::*;

use super::{check_finite, table_players, Result, ShapleyError};

/// Largest `n` for the exact method: `2^25` values, 256 MiB of `f64`.
pub const MAX_EXACT_PLAYERS: usize = 25;

const CHUNK_BITS: u32 = 13;
/// Below this many weighted differences the work stays on the calling thread.
const PAR_MIN_TERMS: usize = 1 << 16;
/// Popcounts of `0 .. 2^(CHUNK_BITS+1)`.
const TAB: usize = 1 << (CHUNK_BITS + 1);

fn popcount_table() -> Box<[u8; TAB]> {
    let mut t = Box::new([0u8; TAB]);
    for (j, p) in t.iter_mut().enumerate() {
        *p = j.count_ones() as u8;
    }
    t
}

/// `C(n, k)` as `f64` (exact for the sizes used here, `n ≤ 64`).
pub(crate) fn binom(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    let mut c = 1.0_f64;
    for j in 0..k {
        c = c * (n - j) as f64 / (j + 1) as f64;
    }
    c.round()
}

/// `w[s] = s!(m−s)!/(m+1)! = 1 / ((m+1)·C(m, s))`, padded to 64 entries so a
/// popcount masked by 63 always indexes inside.
fn weights(m: usize) -> [f64; 64] {
    let mut w = [0.0; 64];
    for (s, x) in w.iter_mut().enumerate().take(m + 1) {
        *x = 1.0 / ((m + 1) as f64 * binom(m, s));
    }
    w
}

fn validate(values: &[f64]) -> Result<usize> {
    let n = table_players(values)?;
    if n > MAX_EXACT_PLAYERS {
        return Err(ShapleyError::TooManyPlayers {
            n,
            max: MAX_EXACT_PLAYERS,
        });
    }
    check_finite(values, n)?;
    Ok(n)
}

fn lost() -> ShapleyError {
    ShapleyError::Invalid {
        what: "value table",
        reason: "internal slicing error (a bug, please report)".into(),
    }
}

/// `Σ w[|S|]·(v(S∪{i}) − v(S))` over the `chunk` subsets `S ∌ i` numbered
/// `k0 .. k0+chunk` (the number of `S` is `S` with bit `i` removed).
fn chunk_sum(
    values: &[f64],
    w: &[f64; 64],
    pc: &[u8; TAB],
    i: usize,
    k0: usize,
    chunk: usize,
) -> Option<f64> {
    let bit = 1usize << i;
    let mut acc = 0.0;
    if bit >= chunk {
        // The chunk is one contiguous run of S and one of S ∪ {i}.
        let low = bit - 1;
        let s0 = ((k0 & !low) << 1) | (k0 & low);
        let base = s0.count_ones() as usize;
        let lo = values.get(s0..s0 + chunk)?;
        let hi = values.get(s0 + bit..s0 + bit + chunk)?;
        for (j, (a, b)) in lo.iter().zip(hi).enumerate() {
            acc += w[(base + pc[j & (TAB - 1)] as usize) & 63] * (b - a);
        }
    } else {
        // The chunk spans whole blocks of 2·bit: [S-half | S∪{i}-half].
        let s0 = 2 * k0;
        let base = s0.count_ones() as usize;
        let run = values.get(s0..s0 + 2 * chunk)?;
        for (bi, block) in run.chunks_exact(2 * bit).enumerate() {
            let (lo, hi) = block.split_at(bit);
            let off = bi * 2 * bit;
            for (j, (a, b)) in lo.iter().zip(hi).enumerate() {
                acc += w[(base + pc[(off + j) & (TAB - 1)] as usize) & 63] * (b - a);
            }
        }
    }
    Some(acc)
}

/// Exact Shapley values of the game whose value table is `values`
/// (`2^n` finite entries, `n ≤ 25`), in `O(n·2^n)`.
pub fn exact(values: &[f64]) -> Result<Vec<f64>> {
    let n = validate(values)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let half = 1usize << (n - 1);
    let chunk = half.min(1 << CHUNK_BITS);
    let per = half / chunk;
    let w = weights(n - 1);
    let pc = popcount_table();
    let task = |t: usize| chunk_sum(values, &w, &pc, t / per, (t % per) * chunk, chunk);
    // Small tables stay on the calling thread; the chunk sums are the same.
    let parts: Vec<Option<f64>> = if n * half >= PAR_MIN_TERMS {
        (0..n * per).into_par_iter().map(task).collect()
    } else {
        (0..n * per).map(task).collect()
    };
    let mut phi = vec![0.0; n];
    for (t, p) in parts.into_iter().enumerate() {
        if let Some(x) = phi.get_mut(t / per) {
            *x += p.ok_or_else(lost)?;
        }
    }
    Ok(phi)
}

/// Pairwise Shapley interaction indices (Grabisch & Roubens, 1999):
///
/// ```text
/// I_ij = Σ_{S ⊆ N∖{i,j}} |S|!(n−|S|−2)!/(n−1)! · (v(S∪ij) − v(S∪i) − v(S∪j) + v(S))
/// ```
///
/// returned as a row-major symmetric `n × n` matrix whose diagonal holds the
/// Shapley values (the order-1 index). `O(n²·2^n)`.
pub fn interactions(values: &[f64]) -> Result<Vec<f64>> {
    let n = validate(values)?;
    let phi = exact(values)?;
    let mut out = vec![0.0; n * n];
    for (i, p) in phi.iter().enumerate() {
        if let Some(x) = out.get_mut(i * n + i) {
            *x = *p;
        }
    }
    if n < 2 {
        return Ok(out);
    }
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let quarter = 1usize << (n - 2);
    let chunk = quarter.min(1 << CHUNK_BITS);
    let per = quarter / chunk;
    let w = weights(n - 2);
    let pc = popcount_table();
    let task = |t: usize| {
        let (i, j) = pairs.get(t / per).copied().unwrap_or((0, 1));
        let k0 = (t % per) * chunk;
        let (bi, bj) = (1usize << i, 1usize << j);
        let base = k0.count_ones() as usize;
        let mut acc = 0.0;
        for off in 0..chunk {
            let k = k0 + off;
            // Insert a zero bit at i, then at j (> i).
            let s = ((k >> i) << (i + 1)) | (k & (bi - 1));
            let s = ((s >> j) << (j + 1)) | (s & (bj - 1));
            let v = |x: usize| values.get(x).copied().unwrap_or(f64::NAN);
            let d = v(s | bi | bj) - v(s | bi) - v(s | bj) + v(s);
            acc += w[(base + pc[off & (TAB - 1)] as usize) & 63] * d;
        }
        acc
    };
    let parts: Vec<f64> = if pairs.len() * quarter >= PAR_MIN_TERMS {
        (0..pairs.len() * per).into_par_iter().map(task).collect()
    } else {
        (0..pairs.len() * per).map(task).collect()
    };
    for (t, p) in parts.into_iter().enumerate() {
        if let Some(&(i, j)) = pairs.get(t / per) {
            if let Some(x) = out.get_mut(i * n + j) {
                *x += p;
            }
        }
    }
    for i in 0..n {
        for j in (i + 1)..n {
            let x = out.get(i * n + j).copied().unwrap_or(f64::NAN);
            if !x.is_finite() {
                return Err(lost());
            }
            if let Some(y) = out.get_mut(j * n + i) {
                *y = x;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factorial(k: usize) -> f64 {
        (1..=k).map(|x| x as f64).product()
    }

    /// The textbook definition, for cross-checking.
    fn brute(values: &[f64]) -> Vec<f64> {
        let n = values.len().trailing_zeros() as usize;
        (0..n)
            .map(|i| {
                let mut phi = 0.0;
                for s in 0..values.len() {
                    if s >> i & 1 == 0 {
                        let k = (s as u64).count_ones() as usize;
                        let w = factorial(k) * factorial(n - k - 1) / factorial(n);
                        phi += w * (values[s | 1 << i] - values[s]);
                    }
                }
                phi
            })
            .collect()
    }

    fn brute_pair(values: &[f64], i: usize, j: usize) -> f64 {
        let n = values.len().trailing_zeros() as usize;
        let mut x = 0.0;
        for s in 0..values.len() {
            if s >> i & 1 == 0 && s >> j & 1 == 0 {
                let k = (s as u64).count_ones() as usize;
                let w = factorial(k) * factorial(n - k - 2) / factorial(n - 1);
                x += w
                    * (values[s | 1 << i | 1 << j] - values[s | 1 << i] - values[s | 1 << j]
                        + values[s]);
            }
        }
        x
    }

    fn game(n: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::shapley::rng::Rng::for_unit(seed, 99, 0);
        (0..1usize << n).map(|_| r.uniform() * 2.0 - 1.0).collect()
    }

    #[test]
    fn matches_definition_and_is_efficient() {
        for n in [1, 2, 3, 5, 8, 11, 15] {
            let v = game(n, n as u64);
            let phi = exact(&v).unwrap();
            let want = brute(&v);
            for (a, b) in phi.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "n={n}: {a} vs {b}");
            }
            let total: f64 = phi.iter().sum();
            assert!((total - (v[v.len() - 1] - v[0])).abs() < 1e-12);
        }
    }

    #[test]
    fn chunked_path_matches_definition() {
        // n = 16 > CHUNK_BITS + 1 exercises both slicing branches with several chunks.
        let v = game(16, 5);
        let phi = exact(&v).unwrap();
        let want = brute(&v);
        for (a, b) in phi.iter().zip(&want) {
            assert!((a - b).abs() < 1e-11);
        }
    }

    #[test]
    fn identical_on_any_thread_count() {
        let v = game(17, 2);
        let one = crate::shapley::with_threads(Some(1), || exact(&v)).unwrap();
        let two = crate::shapley::with_threads(Some(2), || exact(&v)).unwrap();
        let three = crate::shapley::with_threads(Some(3), || exact(&v)).unwrap();
        assert_eq!(one, two);
        assert_eq!(one, three);
    }

    #[test]
    fn interactions_match_definition() {
        for n in [2, 3, 6, 9, 16] {
            let v = game(n, 40 + n as u64);
            let m = interactions(&v).unwrap();
            let phi = exact(&v).unwrap();
            for i in 0..n {
                assert_eq!(m[i * n + i], phi[i]);
                for j in 0..n {
                    if i != j && (n < 16 || (i + j) % 7 == 0) {
                        let want = brute_pair(&v, i.min(j), i.max(j));
                        assert!((m[i * n + j] - want).abs() < 1e-11, "n={n} ({i},{j})");
                    }
                }
            }
        }
        // A pure pairwise synergy: v(S) = 1 iff {0, 2} ⊆ S.
        let v: Vec<f64> = (0..8)
            .map(|s| if s & 0b101 == 0b101 { 1.0 } else { 0.0 })
            .collect();
        let m = interactions(&v).unwrap();
        assert!((m[2] - 1.0).abs() < 1e-15 && m[1].abs() < 1e-15 && m[5].abs() < 1e-15);
    }

    #[test]
    fn bad_tables_are_typed_errors() {
        assert!(matches!(
            exact(&[1.0; 6]),
            Err(ShapleyError::TableLength { len: 6 })
        ));
        assert!(matches!(
            exact(&[0.0, f64::INFINITY]),
            Err(ShapleyError::NonFinite { index: 1, .. })
        ));
        assert_eq!(exact(&[3.0]).unwrap(), Vec::<f64>::new());
        // 2^26 zeroed entries (calloc'd, never touched): refused before reading.
        let big = vec![0.0; 1 << 26];
        match exact(&big) {
            Err(e @ ShapleyError::TooManyPlayers { n: 26, max: 25 }) => {
                assert!(e.to_string().contains("sampled method"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(binom(24, 12), 2_704_156.0);
    }
}
