//! Multi-lane SHA-256 on the x86 SHA extensions (SHA-NI), for Merkle trees.
//!
//! One SHA-256 compression is a serial chain of `sha256rnds2` instructions,
//! so hashing one short message at a time leaves the unit waiting on
//! latency. A Merkle level is thousands of independent short messages;
//! running [`LANES`] of them in lockstep keeps the pipeline full (about twice
//! the throughput of one stream on the machines we measured). Only the fixed
//! shapes of RFC 9162 hashing go through here: a one-block `prefix ‖ data`
//! (data up to 54 bytes, e.g. leaves) and the two-block `prefix ‖ l ‖ r`
//! (interior nodes). Anything else, and CPUs without the extensions, fall
//! back to the `sha2` crate. The unit tests compare every shape against
//! `sha2`.

use std::mem::MaybeUninit;

use sha2::Digest as _;

use super::Digest;

/// Messages hashed in lockstep.
pub(crate) const LANES: usize = 8;

/// Longest `data` for which `prefix ‖ data` plus padding fits one block.
pub(crate) const ONE_BLOCK_MAX: usize = 64 - 1 - 9;

/// `SHA-256(prefix ‖ parts…)` with the `sha2` crate (the fallback).
fn scalar(prefix: u8, parts: &[&[u8]]) -> Digest {
    let mut h = sha2::Sha256::new();
    h.update([prefix]);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `out[i] = SHA-256(prefix ‖ pairs[2i] ‖ pairs[2i+1])` for every
/// `i < out.len()`; every slot of `out` is written.
pub(crate) fn pairs(prefix: u8, pairs: &[Digest], out: &mut [MaybeUninit<Digest>]) {
    debug_assert!(pairs.len() >= 2 * out.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if ni::available() {
        for (o, p) in out
            .chunks_exact_mut(LANES)
            .zip(pairs.chunks_exact(2 * LANES))
        {
            let mut blocks = [[[0u8; 64]; 2]; LANES];
            for (b, lr) in blocks.iter_mut().zip(p.chunks_exact(2)) {
                b[0][0] = prefix;
                b[0][1..33].copy_from_slice(&lr[0]);
                b[0][33..64].copy_from_slice(&lr[1][..31]);
                b[1][0] = lr[1][31];
                b[1][1] = 0x80;
                b[1][56..64].copy_from_slice(&(65u64 * 8).to_be_bytes());
            }
            // SAFETY: `available()` confirmed the CPU features the
            // function is compiled for.
            let d = unsafe { ni::compress::<LANES, 2>(&blocks) };
            for (o, d) in o.iter_mut().zip(d) {
                o.write(d);
            }
            done += LANES;
        }
    }
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        o.write(scalar(prefix, &[&pairs[2 * i], &pairs[2 * i + 1]]));
    }
}

/// `out[i] = SHA-256(prefix ‖ data[i])` for every `i < out.len()`; every
/// slot of `out` is written.
pub(crate) fn prefixed<D: AsRef<[u8]>>(prefix: u8, data: &[D], out: &mut [MaybeUninit<Digest>]) {
    debug_assert!(data.len() >= out.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if ni::available() {
        for (o, group) in out.chunks_exact_mut(LANES).zip(data.chunks_exact(LANES)) {
            if group.iter().all(|d| d.as_ref().len() <= ONE_BLOCK_MAX) {
                let mut blocks = [[[0u8; 64]; 1]; LANES];
                for (b, d) in blocks.iter_mut().zip(group) {
                    let d = d.as_ref();
                    let b = &mut b[0];
                    b[0] = prefix;
                    b[1..1 + d.len()].copy_from_slice(d);
                    b[1 + d.len()] = 0x80;
                    b[56..64].copy_from_slice(&((1 + d.len() as u64) * 8).to_be_bytes());
                }
                // SAFETY: as in `pairs`.
                let d = unsafe { ni::compress::<LANES, 1>(&blocks) };
                for (o, d) in o.iter_mut().zip(d) {
                    o.write(d);
                }
            } else {
                for (o, d) in o.iter_mut().zip(group) {
                    o.write(scalar(prefix, &[d.as_ref()]));
                }
            }
            done += LANES;
        }
    }
    for (o, d) in out.iter_mut().zip(data).skip(done) {
        o.write(scalar(prefix, &[d.as_ref()]));
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep
mod ni {
    use std::arch::x86_64::*;

    use super::Digest;

    /// FIPS 180-4 §5.3.3 initial hash value.
    const IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// FIPS 180-4 §4.2.2 round constants.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Whether the SHA extensions (and the SSE levels the kernel uses) are
    /// present; `std` caches the CPUID answer.
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// SHA-256 of `L` messages, each given as `B` already padded blocks,
    /// compressed in lockstep. The round structure is Intel's SHA-NI
    /// reference (as in the `sha2` crate), replicated per lane.
    ///
    /// # Safety
    /// The CPU must support `sha`, `sse2`, `ssse3` and `sse4.1`
    /// (see [`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress<const L: usize, const B: usize>(
        blocks: &[[[u8; 64]; B]; L],
    ) -> [Digest; L] {
        // SAFETY: the caller guarantees the target features; every load and
        // store is an unaligned 16-byte access inside an array we own or
        // borrow (`IV`, `K`, `blocks`, `out`) at an offset below its length.
        unsafe {
            // Big-endian message words.
            let load_mask = _mm_set_epi64x(
                0x0C0D_0E0F_0809_0A0Bu64 as i64,
                0x0405_0607_0001_0203u64 as i64,
            );
            let iv = IV.as_ptr() as *const __m128i;
            let (dcba, efgh) = (_mm_loadu_si128(iv), _mm_loadu_si128(iv.add(1)));
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(efgh, 0x1B);
            let mut abef = [_mm_alignr_epi8(cdab, efgh, 8); L];
            let mut cdgh = [_mm_blend_epi16(efgh, cdab, 0xF0); L];

            for b in 0..B {
                let abef_save = abef;
                let cdgh_save = cdgh;
                let mut w = [[_mm_setzero_si128(); 4]; L];
                for j in 0..L {
                    let p = blocks[j][b].as_ptr() as *const __m128i;
                    for (q, wq) in w[j].iter_mut().enumerate() {
                        *wq = _mm_shuffle_epi8(_mm_loadu_si128(p.add(q)), load_mask);
                    }
                }
                // Four rounds per step; steps 4.. first extend the schedule.
                macro_rules! step {
                    ($i:expr, $schedule:expr) => {{
                        let k = _mm_loadu_si128(K.as_ptr().add(4 * $i) as *const __m128i);
                        for j in 0..L {
                            let wi = if $schedule {
                                let v0 = w[j][$i % 4];
                                let v1 = w[j][($i + 1) % 4];
                                let v2 = w[j][($i + 2) % 4];
                                let v3 = w[j][($i + 3) % 4];
                                let t = _mm_add_epi32(
                                    _mm_sha256msg1_epu32(v0, v1),
                                    _mm_alignr_epi8(v3, v2, 4),
                                );
                                let n = _mm_sha256msg2_epu32(t, v3);
                                w[j][$i % 4] = n;
                                n
                            } else {
                                w[j][$i % 4]
                            };
                            let t1 = _mm_add_epi32(wi, k);
                            cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], t1);
                            let t2 = _mm_shuffle_epi32(t1, 0x0E);
                            abef[j] = _mm_sha256rnds2_epu32(abef[j], cdgh[j], t2);
                        }
                    }};
                }
                step!(0, false);
                step!(1, false);
                step!(2, false);
                step!(3, false);
                step!(4, true);
                step!(5, true);
                step!(6, true);
                step!(7, true);
                step!(8, true);
                step!(9, true);
                step!(10, true);
                step!(11, true);
                step!(12, true);
                step!(13, true);
                step!(14, true);
                step!(15, true);
                for j in 0..L {
                    abef[j] = _mm_add_epi32(abef[j], abef_save[j]);
                    cdgh[j] = _mm_add_epi32(cdgh[j], cdgh_save[j]);
                }
            }

            // Back to `a..h` order, then each word big-endian.
            let store_mask = _mm_set_epi64x(
                0x0C0D_0E0F_0809_0A0Bu64 as i64,
                0x0405_0607_0001_0203u64 as i64,
            );
            let mut out = [[0u8; 32]; L];
            for j in 0..L {
                let feba = _mm_shuffle_epi32(abef[j], 0x1B);
                let dchg = _mm_shuffle_epi32(cdgh[j], 0xB1);
                let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
                let hgef = _mm_alignr_epi8(dchg, feba, 8);
                let p = out[j].as_mut_ptr() as *mut __m128i;
                _mm_storeu_si128(p, _mm_shuffle_epi8(dcba, store_mask));
                _mm_storeu_si128(p.add(1), _mm_shuffle_epi8(hgef, store_mask));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(prefix: u8, parts: &[&[u8]]) -> Digest {
        let mut h = sha2::Sha256::new();
        h.update([prefix]);
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn pairs_match_sha2() {
        let digests: Vec<Digest> = (0..2 * (3 * LANES + 5))
            .map(|i| {
                let mut d = [0u8; 32];
                for (k, b) in d.iter_mut().enumerate() {
                    *b = (i * 37 + k * 11) as u8;
                }
                d
            })
            .collect();
        for n in 0..=digests.len() / 2 {
            let mut out = vec![MaybeUninit::uninit(); n];
            pairs(0x01, &digests, &mut out);
            for (i, o) in out.iter().enumerate() {
                // SAFETY: `pairs` writes every slot.
                assert_eq!(
                    unsafe { o.assume_init() },
                    reference(0x01, &[&digests[2 * i], &digests[2 * i + 1]]),
                    "n={n} i={i}"
                );
            }
        }
    }

    #[test]
    fn prefixed_match_sha2_for_every_length() {
        // Every length from 0 to 3 blocks, mixed inside lane groups, so both
        // the one-block kernel and the fallback are exercised.
        let data: Vec<Vec<u8>> = (0..200)
            .map(|i| (0..(i * 7) % 193).map(|k| (k * 13 + i) as u8).collect())
            .collect();
        let short: Vec<Vec<u8>> = (0..=ONE_BLOCK_MAX)
            .cycle()
            .take(4 * LANES * (ONE_BLOCK_MAX + 1))
            .map(|n| (0..n).map(|k| (k * 3 + n) as u8).collect())
            .collect();
        for set in [&data, &short] {
            for prefix in [0x00, 0x01, 0xff] {
                let mut out = vec![MaybeUninit::uninit(); set.len()];
                prefixed(prefix, set, &mut out);
                for (o, d) in out.iter().zip(set.iter()) {
                    // SAFETY: `prefixed` writes every slot.
                    let o = unsafe { o.assume_init() };
                    assert_eq!(o, reference(prefix, &[d]), "len {}", d.len());
                }
            }
        }
    }
}
