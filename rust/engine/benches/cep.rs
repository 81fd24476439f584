//! Criterion benches of the guard matcher's columnar path: one guard on one
//! key (the stream the Python bench gives reelay), one guard on 10k keys,
//! and the violations drained. 2M events per iteration.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use maestro_engine::cep::compile::compile_source;
use maestro_engine::cep::run::{Matcher, MatcherOptions};

const N: usize = 2_000_000;

fn codes(n: usize, seed: u64, m: u64) -> Vec<i64> {
    // xorshift: deterministic, no extra dependency
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as i64
        })
        .collect()
}

fn run(src: &str, t: &[i64], k: &[i64], c: &[i64]) -> usize {
    let vocab: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let g = compile_source("bench", src).expect("guard compiles");
    let mut m = Matcher::new(g, MatcherOptions::default()).expect("matcher");
    m.feed_columns(t, k, c, &vocab, &[]).expect("feed");
    m.finish().expect("finish");
    m.drain().len()
}

fn bench(cr: &mut Criterion) {
    let c = codes(N, 3, 4);
    let t: Vec<i64> = (0..N as i64).collect();
    let mut g = cr.benchmark_group("cep");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let one_key = vec![0i64; N];
    g.bench_function("one_guard_one_key", |b| {
        b.iter(|| {
            run(
                "guard g { within 50ns match a -> !c -> b }",
                black_box(&t),
                &one_key,
                &c,
            )
        })
    });
    let keys = codes(N, 7, 10_000);
    let t_us: Vec<i64> = t.iter().map(|x| x * 1_000).collect();
    g.bench_function("one_guard_10k_keys", |b| {
        b.iter(|| {
            run(
                "guard g { within 50us match a -> !c -> b }",
                black_box(&t_us),
                &keys,
                &c,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
