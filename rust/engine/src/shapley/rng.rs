//! Counter-seeded random streams: one independent generator per sample.
//!
//! Every sampling unit `u` of a run with seed `s` draws from its own
//! xoshiro256++ generator (Blackman & Vigna, 2019) whose state is expanded by
//! SplitMix64 from a hash of `(s, stream, u)`. A unit's coalitions therefore
//! depend on nothing but `(seed, method, unit index)`: not on the batch it
//! falls in, not on the thread that builds it, not on the thread count. That is
//! what makes runs bit-reproducible under rayon.

/// SplitMix64 (Steele, Lea & Flood, 2014), used to seed and to mix.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
}

/// The SplitMix64 finaliser: a bijective avalanche of 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ 1.0.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator of unit `index` of stream `stream` under `seed`.
    pub(crate) fn for_unit(seed: u64, stream: u64, index: u64) -> Self {
        let key = mix64(seed ^ 0x6A09_E667_F3BC_C908)
            ^ mix64(stream.wrapping_add(0xBB67_AE85_84CA_A73B)).rotate_left(17)
            ^ mix64(index.wrapping_mul(0x3C6E_F372_FE94_F82B).wrapping_add(1)).rotate_left(41);
        let mut sm = SplitMix64::new(key);
        let mut s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        if s == [0; 4] {
            // The all-zero state is the one fixed point of xoshiro.
            s[0] = 1;
        }
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let r = self.s[0]
            .wrapping_add(self.s[3])
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, bound)` without modulo bias (Lemire, 2019).
    /// `bound` must be positive.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let mut m = (self.next_u64() as u128) * (bound as u128);
        let mut low = m as u64;
        if low < bound {
            let threshold = bound.wrapping_neg() % bound;
            while low < threshold {
                m = (self.next_u64() as u128) * (bound as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Fisher–Yates shuffle of `0..perm.len()` into `perm`.
    pub(crate) fn permutation(&mut self, perm: &mut [u32]) {
        for (i, p) in perm.iter_mut().enumerate() {
            *p = i as u32;
        }
        for i in (1..perm.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            perm.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_unit(7, 1, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::for_unit(7, 1, 3);
        let mut y = Rng::for_unit(7, 1, 4);
        let mut z = Rng::for_unit(8, 1, 3);
        let mut w = Rng::for_unit(7, 2, 3);
        let (a, b, c, d) = (x.next_u64(), y.next_u64(), z.next_u64(), w.next_u64());
        assert!(a != b && a != c && a != d && b != c);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::for_unit(1, 0, 0);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            let v = r.below(7) as usize;
            counts[v] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "{counts:?}");
        }
        let u = r.uniform();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = Rng::for_unit(3, 0, 9);
        let mut p = vec![0u32; 50];
        r.permutation(&mut p);
        let mut q = p.clone();
        q.sort_unstable();
        assert_eq!(q, (0..50).collect::<Vec<u32>>());
        assert_ne!(
            p, q,
            "a 50-element shuffle is essentially never the identity"
        );
    }
}
