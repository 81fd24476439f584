//! Small, dependency-free statistics: running moments and the normal and
//! Student-t quantiles used for confidence intervals.

/// Welford's running mean and sum of squared deviations, per player.
/// Units are pushed in a fixed order, so the result is bit-reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    pub(crate) count: usize,
    pub(crate) mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    pub(crate) fn new(n: usize) -> Self {
        Moments {
            count: 0,
            mean: vec![0.0; n],
            m2: vec![0.0; n],
        }
    }

    pub(crate) fn push(&mut self, x: &[f64]) {
        self.count += 1;
        let k = self.count as f64;
        for ((m, s), &v) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(x) {
            let d = v - *m;
            *m += d / k;
            *s += d * (v - *m);
        }
    }

    /// Standard error of each mean (`sqrt(s² / count)`); needs two units.
    pub(crate) fn stderr(&self) -> Vec<f64> {
        let k = self.count as f64;
        self.m2
            .iter()
            .map(|&s| {
                if self.count < 2 {
                    f64::INFINITY
                } else {
                    (s.max(0.0) / (k - 1.0) / k).sqrt()
                }
            })
            .collect()
    }
}

/// `c[0]·x^k + … + c[k]` (Horner).
fn horner(c: &[f64], x: f64) -> f64 {
    c.iter().fold(0.0, |acc, &k| acc * x + k)
}

// Wichura's AS 241 coefficients, highest degree first.
const A: [f64; 8] = [
    2_509.080_928_730_122_7,
    33_430.575_583_588_13,
    67_265.770_927_008_7,
    45_921.953_931_549_87,
    13_731.693_765_509_46,
    1_971.590_950_306_551_4,
    133.141_667_891_784_38,
    3.387_132_872_796_366_5,
];
const B: [f64; 8] = [
    5_226.495_278_852_546,
    28_729.085_735_721_943,
    39_307.895_800_092_71,
    21_213.794_301_586_597,
    5_394.196_021_424_751,
    687.187_007_492_057_9,
    42.313_330_701_600_91,
    1.0,
];
const C: [f64; 8] = [
    7.745_450_142_783_414e-4,
    0.022_723_844_989_269_184,
    0.241_780_725_177_450_6,
    1.270_458_252_452_368_4,
    3.647_848_324_763_204_5,
    5.769_497_221_460_691,
    4.630_337_846_156_545,
    1.423_437_110_749_683_5,
];
const D: [f64; 8] = [
    1.050_750_071_644_416_8e-9,
    5.475_938_084_995_345e-4,
    0.015_198_666_563_616_457,
    0.148_103_976_427_480_08,
    0.689_767_334_985_1,
    1.676_384_830_183_803_8,
    2.053_191_626_637_759,
    1.0,
];
const E: [f64; 8] = [
    2.010_334_399_292_288_1e-7,
    2.711_555_568_743_487_6e-5,
    0.001_242_660_947_388_078_4,
    0.026_532_189_526_576_124,
    0.296_560_571_828_504_9,
    1.784_826_539_917_291_3,
    5.463_784_911_164_114,
    6.657_904_643_501_103,
];
const F: [f64; 8] = [
    2.044_263_103_389_939_8e-15,
    1.421_511_758_316_446e-7,
    1.846_318_317_510_054_8e-5,
    7.868_691_311_456_133e-4,
    0.014_875_361_290_850_615,
    0.136_929_880_922_735_8,
    0.599_832_206_555_887_9,
    1.0,
];

/// Standard normal quantile: Wichura's AS 241 (PPND16), |relative error| < 1e-16.
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() || p <= 0.0 {
        return if p == 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::NAN
        };
    }
    if p >= 1.0 {
        return if p == 1.0 { f64::INFINITY } else { f64::NAN };
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * horner(&A, r) / horner(&B, r);
    }
    let r = if q < 0.0 { p } else { 1.0 - p };
    let r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        horner(&C, r - 1.6) / horner(&D, r - 1.6)
    } else {
        horner(&E, r - 5.0) / horner(&F, r - 5.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms; ~1e-15 relative).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const L: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        let s = (std::f64::consts::PI * x).sin().abs();
        return (std::f64::consts::PI / s).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = L[0];
    let t = x + 7.5;
    for (i, c) in L.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Regularised incomplete beta function `I_x(a, b)`.
fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// Student-t distribution function with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * beta_inc(df / 2.0, 0.5, x);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

fn t_pdf(t: f64, df: f64) -> f64 {
    (ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - (df + 1.0) / 2.0 * (t * t / df).ln_1p())
    .exp()
}

/// Student-t quantile: closed forms for 1 and 2 degrees of freedom, otherwise
/// safeguarded Newton iteration on [`t_cdf`] from a Cornish–Fisher start.
/// `df = ∞` (or beyond 1e7) gives the normal quantile.
pub fn t_ppf(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || df.is_nan() || df <= 0.0 {
        return norm_ppf(p);
    }
    if df > 1e7 {
        return norm_ppf(p);
    }
    if p == 0.5 {
        return 0.0;
    }
    let (pp, sign) = if p > 0.5 { (p, 1.0) } else { (1.0 - p, -1.0) };
    if df == 1.0 {
        return sign * (std::f64::consts::PI * (pp - 0.5)).tan();
    }
    if df == 2.0 {
        return sign * (2.0 * pp - 1.0) / (2.0 * pp * (1.0 - pp)).sqrt();
    }
    let z = norm_ppf(pp);
    let z3 = z * z * z;
    let z5 = z3 * z * z;
    let mut t = z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df);
    // Bracket [lo, hi] around the root; cdf is increasing.
    let (mut lo, mut hi) = (0.0_f64, t.max(1.0));
    let mut guard = 0;
    while t_cdf(hi, df) < pp && guard < 2000 {
        lo = hi;
        hi *= 2.0;
        guard += 1;
    }
    if !(t > lo && t < hi) {
        t = 0.5 * (lo + hi);
    }
    for _ in 0..200 {
        let f = t_cdf(t, df) - pp;
        if f > 0.0 {
            hi = t;
        } else {
            lo = t;
        }
        let step = f / t_pdf(t, df);
        let mut next = t - step;
        if !(next > lo && next < hi && next.is_finite()) {
            next = 0.5 * (lo + hi);
        }
        if (next - t).abs() <= 1e-14 * t.abs().max(1.0) {
            t = next;
            break;
        }
        t = next;
    }
    sign * t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    // Reference values from scipy.stats 1.17 (norm.ppf, t.ppf, t.cdf).
    #[test]
    fn normal_quantiles_match_reference() {
        let cases = [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.995, 2.5758293035489004),
            (0.9, 1.2815515655446004),
            (1e-10, -6.361340902404056),
            (0.02425, -1.972961051311885),
            (0.3, -0.5244005127080409),
            (0.999999, 4.753424308817087),
        ];
        for (p, want) in cases {
            let got = norm_ppf(p);
            assert!(
                close(got, want, 1e-14),
                "norm_ppf({p}) = {got}, want {want}"
            );
        }
        assert!(norm_ppf(0.0).is_infinite() && norm_ppf(1.5).is_nan());
    }

    #[test]
    fn t_quantiles_match_reference() {
        let cases = [
            (1.0, 0.975, 12.706204736174694),
            (1.0, 0.8, 1.3763819204711738),
            (2.0, 0.975, 4.302652729749462),
            (3.0, 0.975, 3.1824463052837078),
            (3.0, 0.995, 5.840909309733355),
            (4.0, 0.8, 0.9409645772351816),
            (7.0, 0.975, 2.364624251592784),
            (10.0, 0.995, 3.16927267261695),
            (29.0, 0.975, 2.045229642132703),
            (100.0, 0.975, 1.9839715185235518),
            (1000.0, 0.995, 2.580754698065951),
        ];
        for (df, p, want) in cases {
            let got = t_ppf(p, df);
            assert!(
                close(got, want, 1e-10),
                "t_ppf({p}, {df}) = {got}, want {want}"
            );
            let low = t_ppf(1.0 - p, df);
            assert!(close(low, -want, 1e-10));
        }
        assert!(close(t_cdf(1.3, 5.0), 0.8748496829146615, 1e-12));
        assert!(close(t_cdf(-2.2, 11.0), 0.02504305549090214, 1e-12));
    }

    #[test]
    fn moments_match_two_pass() {
        let xs = [[1.0, 5.0], [2.0, 5.0], [4.0, 5.0], [7.0, 5.0]];
        let mut m = Moments::new(2);
        for x in &xs {
            m.push(x);
        }
        assert_eq!(m.mean, vec![3.5, 5.0]);
        let var = (6.25 + 2.25 + 0.25 + 12.25) / 3.0;
        let se = m.stderr();
        assert!(close(se[0], (var / 4.0_f64).sqrt(), 1e-15));
        assert_eq!(se[1], 0.0);
        assert!(Moments::new(1).stderr()[0].is_infinite());
    }
}
