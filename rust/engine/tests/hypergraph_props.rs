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
