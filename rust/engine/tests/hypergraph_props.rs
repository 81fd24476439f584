//! k-hop costs against a brute-force enumeration of hyperedge walks, and
//! explanation paths checked step by step.
use maestro_engine::hypergraph::{Hypergraph, NONE};
use proptest::prelude::*;

/// Every (tail, head, weight) hyperedge.
type Edges = Vec<(Vec<u32>, Vec<u32>, f64)>;

fn build(n: usize, edges: &Edges) -> Hypergraph {
    let (mut tp, mut ti, mut hp, mut hi, mut w) = (vec![0u32], vec![], vec![0u32], vec![], vec![]);
    for (t, h, c) in edges {
        ti.extend(t);
        tp.push(ti.len() as u32);
        hi.extend(h);
        hp.push(hi.len() as u32);
        w.push(*c);
    }
    Hypergraph::new(n, (tp, ti), Some((hp, hi)), w).expect("valid graph")
}

/// Brute force: costs after each round of relaxing every hyperedge, with
/// a fresh copy per round (paths of at most k hyperedges).
fn reference(n: usize, edges: &Edges, src: &[u32], k: usize) -> Vec<f64> {
    let mut d = vec![f64::INFINITY; n];
    for &s in src {
        d[s as usize] = 0.0;
    }
    for _ in 0..k {
        let prev = d.clone();
        for (t, h, c) in edges {
            let best = t
                .iter()
                .map(|&v| prev[v as usize])
                .fold(f64::INFINITY, f64::min);
            for &u in h {
                d[u as usize] = d[u as usize].min(best + c);
            }
        }
    }
    d
}

fn graph() -> impl Strategy<Value = (usize, Edges, Vec<u32>, usize)> {
    (2usize..12).prop_flat_map(|n| {
        let node = 0..n as u32;
        let edge = (
            prop::collection::vec(node.clone(), 1..4),
            prop::collection::vec(node.clone(), 1..4),
            (0u32..20).prop_map(|x| f64::from(x) / 4.0),
        );
        (
            Just(n),
            prop::collection::vec(edge, 0..20),
            prop::collection::vec(node, 1..3),
            0usize..6,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn khop_matches_brute_force((n, edges, src, k) in graph()) {
        let g = build(n, &edges);
        let want = reference(n, &edges, &src, k);
        let f = g.khop_frontier_only(&src, k).expect("ok");
        prop_assert_eq!(&f.dist, &want);
        for u in 0..n as u32 {
            prop_assert_eq!(f.path(u).is_some(), want[u as usize].is_finite());
        }
        let r = g.khop(&src, k).expect("ok");
        prop_assert_eq!(&r.dist, &want);
        let dn = g.khop_dense_only(&src, k).expect("ok");
        prop_assert_eq!(&dn.dist, &want);
        for u in 0..n as u32 {
            prop_assert_eq!(dn.path(u), f.path(u));
        }
        for u in 0..n as u32 {
            match r.path(u) {
                None => prop_assert!(want[u as usize].is_infinite()),
                Some(p) => {
                    prop_assert!(src.contains(&p[0].node));
                    prop_assert_eq!(p[0].edge, NONE);
                    prop_assert!(p.len() - 1 <= k);
                    prop_assert_eq!(p.last().map(|s| s.node), Some(u));
                    let mut cost = 0.0;
                    for w in p.windows(2) {
                        let e = w[1].edge as usize;
                        prop_assert!(g.tail(e).contains(&w[0].node));
                        prop_assert!(g.head(e).contains(&w[1].node));
                        cost += g.weight(e).expect("edge");
                    }
                    prop_assert_eq!(cost, r.dist[u as usize]);
                }
            }
        }
    }
}

/// A graph large enough for the parallel dense rounds (chunks per rayon
/// thread, merged): the three round forms give the same costs and, thanks
/// to the (cost, hyperedge) tie rule, the same paths; ties are frequent
/// (integer weights).
#[test]
fn parallel_dense_rounds_agree_with_frontier() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (n, m) = (20_000usize, 300_000usize);
    let (mut tp, mut ti, mut hp, mut hi, mut w) = (vec![0u32], vec![], vec![0u32], vec![], vec![]);
    for _ in 0..m {
        for _ in 0..rng.gen_range(1..4) {
            ti.push(rng.gen_range(0..n as u32));
        }
        tp.push(ti.len() as u32);
        for _ in 0..rng.gen_range(1..4) {
            hi.push(rng.gen_range(0..n as u32));
        }
        hp.push(hi.len() as u32);
        w.push(f64::from(rng.gen_range(0u32..8)));
    }
    let g = Hypergraph::new(n, (tp, ti), Some((hp, hi)), w).expect("valid");
    let src = [3u32, 999, 17_000];
    for k in [1, 2, 3, 6] {
        let a = g.khop_frontier_only(&src, k).expect("ok");
        let b = g.khop_dense_only(&src, k).expect("ok");
        let c = g.khop(&src, k).expect("ok");
        assert_eq!(a.dist, b.dist);
        assert_eq!(a.dist, c.dist);
        for u in (0..n as u32).step_by(7) {
            assert_eq!(a.path(u), b.path(u));
            assert_eq!(a.path(u), c.path(u));
        }
        let each = g.khop_each(&src, k).expect("ok");
        for (i, &s) in src.iter().enumerate() {
            let one = g.khop(&[s], k).expect("ok");
            assert_eq!(&each[i * n..(i + 1) * n], &one.dist[..]);
        }
    }
}
