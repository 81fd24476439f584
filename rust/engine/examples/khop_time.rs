//! Times `Hypergraph::khop` (k = 3, 10 sources) on the benchmark's shape:
//! `cargo run --release -p maestro-engine --example khop_time [nodes] [edges] [rounds]`.
use maestro_engine::hypergraph::Hypergraph;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let n = a.first().copied().unwrap_or(100_000);
    let m = a.get(1).copied().unwrap_or(1_000_000);
    let rounds = a.get(2).copied().unwrap_or(30);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut indptr = vec![0u32];
    let mut indices = Vec::new();
    for _ in 0..m {
        let s = rng.gen_range(2..5);
        for _ in 0..s {
            indices.push(rng.gen_range(0..n as u32));
        }
        indptr.push(indices.len() as u32);
    }
    let w: Vec<f64> = (0..m).map(|_| rng.gen_range(0.1..5.0)).collect();
    let g = Hypergraph::new(n, (indptr, indices), None, w).expect("valid");
    let src: Vec<u32> = (0..10).map(|_| rng.gen_range(0..n as u32)).collect();
    for k in 1..=3 {
        let mut tk = Vec::new();
        for _ in 0..rounds {
            let t0 = Instant::now();
            let _ = g.khop(&src, k).expect("ok");
            tk.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        tk.sort_by(f64::total_cmp);
        println!(
            "k={k}: min {:.2} ms, median {:.2} ms",
            tk[0],
            tk[tk.len() / 2]
        );
    }
    let mut t = Vec::new();
    let mut reach = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let r = g.khop(&src, 3).expect("ok");
        t.push(t0.elapsed().as_secs_f64() * 1e3);
        reach = r.dist.iter().filter(|d| d.is_finite()).count();
    }
    t.sort_by(f64::total_cmp);
    println!(
        "khop k=3: reached {reach} of {n}; min {:.2} ms, median {:.2} ms, max {:.2} ms ({rounds} rounds)",
        t[0],
        t[t.len() / 2],
        t[t.len() - 1]
    );
}
