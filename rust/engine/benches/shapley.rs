//! Criterion benches of the Shapley hot paths: exact values and pairwise
//! interactions over a value table, and the sampled estimators on a
//! table game (so the game itself costs a lookup).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use maestro_engine::shapley::{exact, interactions, sample, Method, Options, TableGame};

fn table(n: usize) -> Vec<f64> {
    // A deterministic pseudo-random table (xorshift), no extra dependency.
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..1usize << n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for n in [16, 20] {
        let v = table(n);
        c.bench_function(&format!("shapley_exact_n{n}"), |b| {
            b.iter(|| exact(black_box(&v)))
        });
    }
    let v = table(14);
    c.bench_function("shapley_interactions_n14", |b| {
        b.iter(|| interactions(black_box(&v)))
    });
    let v = table(20);
    for m in [Method::Antithetic, Method::Kernel] {
        let opts = Options {
            budget: 20_000,
            ..Options::default()
        };
        c.bench_function(&format!("shapley_{}_n20_budget20k", m.name()), |b| {
            b.iter(|| {
                let mut g = TableGame::new(&v).expect("valid table");
                sample(&mut g, m, black_box(&opts))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
