//! Weighted directed hypergraphs for test impact analysis.
//!
//! A hyperedge `e` has a cost `w[e] >= 0`, a *tail* (nodes through which a
//! change enters it) and a *head* (nodes it reaches). An undirected
//! hyperedge has tail = head. Both incidences are stored in CSR form
//! (hyperedge → nodes for the tail, node → hyperedges for the head), the
//! layout of `scipy.sparse.csr_matrix` with rows = hyperedges.
//!
//! [`Hypergraph::khop`] computes, from a set of changed nodes, the minimum
//! cost of reaching every node through at most `k` hyperedges. It is a
//! hop-bounded Bellman–Ford in the min-plus semiring, run in Jacobi rounds:
//!
//! ```text
//! h_r(e) = w[e] + min_{v in tail(e)} d_{r-1}(v)
//! d_r(u) = min(d_{r-1}(u), min_{e : u in head(e)} h_r(e))
//! ```
//!
//! so `d_k` is exactly the min over paths of at most `k` hyperedges. Each
//! round stores, per improved node, the hyperedge and the tail node it came
//! through; walking those back gives a real path whose
//! weights, summed from the source, equal the reported cost bit for bit.
//! Rounds only re-evaluate hyperedges whose tail improved in the previous
//! round (a frontier), in parallel (rayon) above [`PAR_EDGES`] hyperedges.
//!
//! [`select`] is the budgeted selection: a facility-location objective
//! (each changed node is covered by its best selected test, value
//! `1 / (1 + cost)`), monotone submodular, maximised per second of test time
//! with lazy greedy (Minoux's accelerated greedy).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// Sentinel for "no hyperedge / no node".
pub const NONE: u32 = u32::MAX;
/// Below this many hyperedges in a round's frontier, it runs on one thread.
pub const PAR_EDGES: usize = 1 << 12;
/// A round whose frontier holds more than `1 / DENSE_FRACTION` of the
/// hyperedges runs densely.
pub const DENSE_FRACTION: usize = 8;

/// Errors of the hypergraph module.
#[derive(Debug, thiserror::Error)]
pub enum HypergraphError {
    #[error("hypergraph {what}: {reason}")]
    BadCsr { what: &'static str, reason: String },
    #[error("hypergraph: weight of hyperedge {edge} is {weight} (costs must be finite and >= 0)")]
    BadWeight { edge: usize, weight: f64 },
    #[error("hypergraph: node {node} out of range (graph has {nodes} nodes)")]
    NodeOutOfRange { node: u64, nodes: usize },
    #[error("hypergraph: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, HypergraphError>;

/// A compressed sparse row matrix of 0/1 incidences.
#[derive(Debug, Clone, Default)]
pub struct Csr {
    pub indptr: Vec<u32>,
    pub indices: Vec<u32>,
}

impl Csr {
    /// Check a CSR with `rows` rows and columns `< cols`.
    pub fn new(
        what: &'static str,
        indptr: Vec<u32>,
        indices: Vec<u32>,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let bad = |reason: String| HypergraphError::BadCsr { what, reason };
        if indptr.len() != rows + 1 {
            return Err(bad(format!(
                "indptr has {} entries, expected {} (rows + 1)",
                indptr.len(),
                rows + 1
            )));
        }
        if indptr.first().copied() != Some(0) {
            return Err(bad("indptr must start at 0".into()));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[0] > w[1]) {
            return Err(bad(format!("indptr decreases at row {i}")));
        }
        if indptr.last().map(|&x| x as usize) != Some(indices.len()) {
            return Err(bad(format!(
                "indptr ends at {:?} but there are {} indices",
                indptr.last(),
                indices.len()
            )));
        }
        if let Some((i, &c)) = indices
            .iter()
            .enumerate()
            .find(|(_, &c)| c as usize >= cols)
        {
            return Err(bad(format!(
                "index {c} at position {i} is out of range ({cols} columns)"
            )));
        }
        Ok(Csr { indptr, indices })
    }

    pub fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Columns of row `r` (empty when out of range).
    pub fn row(&self, r: usize) -> &[u32] {
        match (self.indptr.get(r), self.indptr.get(r + 1)) {
            (Some(&a), Some(&b)) => self.indices.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The transpose (`cols` rows), by counting sort.
    pub fn transpose(&self, cols: usize) -> Csr {
        let mut counts = vec![0u32; cols + 1];
        for &c in &self.indices {
            if let Some(x) = counts.get_mut(c as usize + 1) {
                *x += 1;
            }
        }
        for i in 0..cols {
            counts[i + 1] += counts[i];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.indices.len()];
        for r in 0..self.rows() {
            for &c in self.row(r) {
                let slot = &mut next[c as usize];
                indices[*slot as usize] = r as u32;
                *slot += 1;
            }
        }
        Csr { indptr, indices }
    }
}

/// A weighted directed hypergraph (see the module docs).
#[derive(Debug, Clone)]
pub struct Hypergraph {
    n_nodes: usize,
    weights: Vec<f64>,
    /// hyperedge → tail nodes.
    tail: Csr,
    /// node → hyperedges whose tail holds it.
    tail_t: Csr,
    /// node → hyperedges whose head holds it.
    head_t: Csr,
    /// hyperedge → head nodes (kept for paths and views).
    head: Csr,
}

impl Hypergraph {
    /// Build from CSR incidences with rows = hyperedges, columns = nodes.
    /// `head = None` makes every hyperedge undirected (head = tail).
    pub fn new(
        n_nodes: usize,
        tail: (Vec<u32>, Vec<u32>),
        head: Option<(Vec<u32>, Vec<u32>)>,
        weights: Vec<f64>,
    ) -> Result<Self> {
        if n_nodes >= NONE as usize {
            return Err(HypergraphError::Invalid(format!(
                "{n_nodes} nodes (at most {} supported)",
                NONE - 1
            )));
        }
        let m = weights.len();
        if let Some((i, &w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(HypergraphError::BadWeight { edge: i, weight: w });
        }
        let tail = Csr::new("tail incidence", tail.0, tail.1, m, n_nodes)?;
        let head = match head {
            Some((p, i)) => Csr::new("head incidence", p, i, m, n_nodes)?,
            None => tail.clone(),
        };
        let tail_t = tail.transpose(n_nodes);
        let head_t = head.transpose(n_nodes);
        Ok(Hypergraph {
            n_nodes,
            weights,
            tail,
            tail_t,
            head_t,
            head,
        })
    }

    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }
    pub fn n_edges(&self) -> usize {
        self.weights.len()
    }
    pub fn weight(&self, e: usize) -> Option<f64> {
        self.weights.get(e).copied()
    }
    pub fn tail(&self, e: usize) -> &[u32] {
        self.tail.row(e)
    }
    pub fn head(&self, e: usize) -> &[u32] {
        self.head.row(e)
    }

    fn check_sources(&self, sources: &[u32]) -> Result<()> {
        match sources.iter().find(|&&s| s as usize >= self.n_nodes) {
            Some(&s) => Err(HypergraphError::NodeOutOfRange {
                node: u64::from(s),
                nodes: self.n_nodes,
            }),
            None => Ok(()),
        }
    }

    /// Min cost over paths of at most `k` hyperedges from any of `sources`.
    ///
    /// Frontier form of the Jacobi rounds: a hyperedge's entry cost can only
    /// change when one of its tail nodes improved in the previous round, so
    /// each round re-evaluates only the hyperedges incident to the nodes the
    /// previous round improved (all of them in the worst case).
    pub fn khop(&self, sources: &[u32], k: usize) -> Result<KHop> {
        self.khop_impl(sources, k, true)
    }

    /// [`Hypergraph::khop`] without dense rounds (to test both forms).
    #[doc(hidden)]
    pub fn khop_frontier_only(&self, sources: &[u32], k: usize) -> Result<KHop> {
        self.khop_impl(sources, k, false)
    }

    fn khop_impl(&self, sources: &[u32], k: usize, allow_dense: bool) -> Result<KHop> {
        self.check_sources(sources)?;
        let mut dist = vec![f64::INFINITY; self.n_nodes];
        let mut active: Vec<u32> = sources.to_vec();
        active.sort_unstable();
        active.dedup();
        for &s in &active {
            dist[s as usize] = 0.0;
        }
        let mut stamp: Vec<u32> = Vec::new(); // allocated by the first sparse round
        let mut rounds: Vec<Vec<Upd>> = Vec::new();
        for r in 0..k {
            if active.is_empty() {
                break; // a fixpoint: later rounds change nothing
            }
            let d = &dist;
            let reach: usize = active
                .iter()
                .map(|&v| self.tail_t.row(v as usize).len())
                .sum();
            if allow_dense && reach * DENSE_FRACTION >= self.n_edges() {
                // A wide frontier: one dense round (all hyperedges, then a
                // pull over each node's incoming hyperedges) beats scattering.
                let upd = self.dense_round(d);
                active = upd.iter().map(|x| x.node).collect();
                for x in &upd {
                    dist[x.node as usize] = x.cost;
                }
                rounds.push(upd);
                continue;
            }
            if stamp.is_empty() {
                stamp = vec![u32::MAX; self.n_edges()];
            }
            let tag = r as u32;
            let mut edges = Vec::with_capacity(reach);
            for &v in &active {
                for &e in self.tail_t.row(v as usize) {
                    if let Some(st) = stamp.get_mut(e as usize) {
                        if *st != tag {
                            *st = tag;
                            edges.push(e);
                        }
                    }
                }
            }
            let eval = |&e: &u32| {
                let mut best = (f64::INFINITY, NONE);
                for &v in self.tail.row(e as usize) {
                    let c = d[v as usize];
                    if c < best.0 {
                        best = (c, v);
                    }
                }
                let h = best.0 + self.weights[e as usize];
                self.head
                    .row(e as usize)
                    .iter()
                    .filter(move |&&u| h < d[u as usize])
                    .map(move |&u| Upd {
                        node: u,
                        edge: e,
                        pred: best.1,
                        cost: h,
                    })
            };
            let by = |a: &Upd, b: &Upd| {
                a.node
                    .cmp(&b.node)
                    .then(a.cost.total_cmp(&b.cost))
                    .then(a.edge.cmp(&b.edge))
            };
            #[cfg(feature = "rayon")]
            let mut upd: Vec<Upd> = if edges.len() >= PAR_EDGES {
                let mut u: Vec<Upd> = edges.par_iter().flat_map_iter(eval).collect();
                u.par_sort_unstable_by(by);
                u
            } else {
                let mut u: Vec<Upd> = edges.iter().flat_map(eval).collect();
                u.sort_unstable_by(by);
                u
            };
            #[cfg(not(feature = "rayon"))]
            let mut upd: Vec<Upd> = {
                let mut u: Vec<Upd> = edges.iter().flat_map(eval).collect();
                u.sort_unstable_by(by);
                u
            };
            upd.dedup_by_key(|x| x.node); // keeps the cheapest per node
            active = upd.iter().map(|x| x.node).collect();
            for x in &upd {
                dist[x.node as usize] = x.cost;
            }
            rounds.push(upd);
        }
        Ok(KHop { dist, rounds })
    }

    /// One Jacobi round over every hyperedge; improved nodes sorted by node.
    fn dense_round(&self, d: &[f64]) -> Vec<Upd> {
        let entry = |e: usize| -> (f64, u32) {
            let mut best = (f64::INFINITY, NONE);
            for &v in self.tail.row(e) {
                let c = d[v as usize];
                if c < best.0 {
                    best = (c, v);
                }
            }
            (best.0 + self.weights[e], best.1)
        };
        let h: Vec<(f64, u32)> = par_map(self.n_edges(), entry);
        let pull = |u: usize| -> Option<Upd> {
            let mut best = (d[u], NONE);
            for &e in self.head_t.row(u) {
                let c = h[e as usize].0;
                if c < best.0 {
                    best = (c, e);
                }
            }
            (best.1 != NONE).then(|| Upd {
                node: u as u32,
                edge: best.1,
                pred: h[best.1 as usize].1,
                cost: best.0,
            })
        };
        #[cfg(feature = "rayon")]
        {
            (0..self.n_nodes).into_par_iter().filter_map(pull).collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            (0..self.n_nodes).filter_map(pull).collect()
        }
    }

    /// Per-source costs: row `i` is [`Hypergraph::khop`] from `sources[i]`
    /// alone (the matrix the selection needs), sources in parallel.
    pub fn khop_each(&self, sources: &[u32], k: usize) -> Result<Vec<Vec<f64>>> {
        self.check_sources(sources)?;
        let one = |&s: &u32| self.khop(&[s], k).map(|r| r.dist);
        #[cfg(feature = "rayon")]
        {
            sources.par_iter().map(one).collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            sources.iter().map(one).collect()
        }
    }
}

fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(feature = "rayon")]
    {
        (0..n).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..n).map(f).collect()
    }
}

/// One improvement in one round: `node` reached through `edge`, entered
/// from `pred`, at `cost`.
#[derive(Debug, Clone, Copy)]
struct Upd {
    node: u32,
    edge: u32,
    pred: u32,
    cost: f64,
}

/// The result of a k-hop run.
#[derive(Debug, Clone)]
pub struct KHop {
    /// Cost per node (`inf` when unreachable within k).
    pub dist: Vec<f64>,
    /// Per round, the improved nodes sorted by node.
    rounds: Vec<Vec<Upd>>,
}

/// One step of an explanation path: reach `node` through `edge` (the first
/// step of a path has `edge == NONE`: the changed node itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub edge: u32,
    pub node: u32,
}

impl KHop {
    /// Rounds that improved at least one node.
    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// The cheapest path to `node`, source first; `None` when unreachable.
    pub fn path(&self, node: u32) -> Option<Vec<Step>> {
        let d = *self.dist.get(node as usize)?;
        if !d.is_finite() {
            return None;
        }
        let mut steps = Vec::new();
        let mut u = node;
        for round in self.rounds.iter().rev() {
            if let Ok(i) = round.binary_search_by_key(&u, |x| x.node) {
                let x = round.get(i)?;
                steps.push(Step {
                    edge: x.edge,
                    node: u,
                });
                u = x.pred;
            }
        }
        steps.push(Step {
            edge: NONE,
            node: u,
        });
        steps.reverse();
        Some(steps)
    }
}

/// Why a reachable test was not selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Selected,
    /// Its cost exceeds the threshold.
    Cost,
    /// The time budget ran out before it.
    Budget,
    /// Selected tests already cover what it covers.
    Redundant,
    /// No path within k.
    Unreachable,
}

/// Selection inputs.
#[derive(Debug, Clone)]
pub struct SelectParams {
    /// Time budget in seconds (`inf` for none).
    pub budget: f64,
    /// Max path cost of a selected test (`inf` for none).
    pub threshold: f64,
    /// Select every test with a path (within the threshold), ignoring budget.
    pub safe: bool,
}

#[derive(PartialEq)]
struct Cand {
    ratio: f64,
    idx: usize,
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.ratio
            .total_cmp(&o.ratio)
            .then_with(|| o.idx.cmp(&self.idx))
    }
}

/// Budgeted selection. `cover[s][t]` is the cost from changed node `s` to
/// test `t` (`inf` = no path), `durations[t]` its recorded seconds.
/// Returns the decision per test and the selection order.
pub fn select(
    cover: &[Vec<f64>],
    durations: &[f64],
    p: &SelectParams,
) -> Result<(Vec<Cut>, Vec<usize>)> {
    let nt = durations.len();
    if let Some((i, r)) = cover.iter().enumerate().find(|(_, r)| r.len() != nt) {
        return Err(HypergraphError::Invalid(format!(
            "cover row {i} has {} tests, durations has {nt}",
            r.len()
        )));
    }
    if let Some((i, d)) = durations
        .iter()
        .enumerate()
        .find(|(_, d)| !(d.is_finite() && **d >= 0.0))
    {
        return Err(HypergraphError::Invalid(format!(
            "duration of test {i} is {d} (must be finite and >= 0)"
        )));
    }
    if p.budget.is_nan() || p.budget < 0.0 || p.threshold.is_nan() {
        return Err(HypergraphError::Invalid(
            "budget must be >= 0 and threshold a number".into(),
        ));
    }
    let best = |t: usize| cover.iter().map(|r| r[t]).fold(f64::INFINITY, f64::min);
    let mut cut = vec![Cut::Unreachable; nt];
    let mut order = Vec::new();
    let mut eligible = Vec::new();
    for (t, c) in cut.iter_mut().enumerate() {
        let b = best(t);
        if !b.is_finite() {
            continue;
        }
        if b > p.threshold {
            *c = Cut::Cost;
            continue;
        }
        eligible.push(t);
    }
    if p.safe {
        for &t in &eligible {
            cut[t] = Cut::Selected;
            order.push(t);
        }
        return Ok((cut, order));
    }
    // Facility location: covered[s] = best value so far for changed node s.
    let value = |c: f64| if c.is_finite() { 1.0 / (1.0 + c) } else { 0.0 };
    let mut covered = vec![0.0f64; cover.len()];
    let gain = |t: usize, covered: &[f64]| -> f64 {
        cover
            .iter()
            .zip(covered)
            .map(|(r, &c)| (value(r[t]) - c).max(0.0))
            .sum()
    };
    // Zero-duration tests would have infinite ratio; a floor keeps order sane.
    let secs = |t: usize| durations[t].max(1e-3);
    let mut heap: BinaryHeap<Cand> = eligible
        .iter()
        .map(|&t| Cand {
            ratio: gain(t, &covered) / secs(t),
            idx: t,
        })
        .collect();
    let mut spent = 0.0;
    while let Some(c) = heap.pop() {
        let g = gain(c.idx, &covered);
        let r = g / secs(c.idx);
        if let Some(top) = heap.peek() {
            if r < top.ratio {
                heap.push(Cand {
                    ratio: r,
                    idx: c.idx,
                });
                continue; // stale bound: re-evaluate lazily
            }
        }
        if g <= 0.0 {
            cut[c.idx] = Cut::Redundant;
            continue;
        }
        if spent + durations[c.idx] > p.budget {
            cut[c.idx] = Cut::Budget;
            continue;
        }
        spent += durations[c.idx];
        cut[c.idx] = Cut::Selected;
        order.push(c.idx);
        for (s, cv) in covered.iter_mut().enumerate() {
            *cv = cv.max(value(cover[s][c.idx]));
        }
    }
    Ok((cut, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Hypergraph {
        // nodes 0..5; e0 = {0,1} w1, e1 = {1,2,3} w2, e2 = {0,3} w5, e3: 3 -> 4 w1
        Hypergraph::new(
            5,
            (vec![0, 2, 5, 7, 8], vec![0, 1, 1, 2, 3, 0, 3, 3]),
            Some((vec![0, 2, 5, 7, 8], vec![0, 1, 1, 2, 3, 0, 3, 4])),
            vec![1.0, 2.0, 5.0, 1.0],
        )
        .expect("valid")
    }

    #[test]
    fn hop_bound_changes_cost() {
        let h = g();
        let r1 = h.khop(&[0], 1).expect("ok");
        assert_eq!(r1.dist[3], 5.0);
        assert!(r1.dist[4].is_infinite());
        let r2 = h.khop(&[0], 2).expect("ok");
        assert_eq!(r2.dist[3], 3.0);
        assert_eq!(r2.dist[4], 6.0);
        let r3 = h.khop(&[0], 3).expect("ok");
        assert_eq!(r3.dist[4], 4.0);
        let p = r3.path(4).expect("path");
        let nodes: Vec<u32> = p.iter().map(|s| s.node).collect();
        assert_eq!(nodes, vec![0, 1, 3, 4]);
        let sum = p[1..]
            .iter()
            .fold(0.0, |a, s| a + h.weights[s.edge as usize]);
        assert_eq!(sum, r3.dist[4]);
    }

    #[test]
    fn directed_edge_is_one_way() {
        let h = g();
        let r = h.khop(&[4], 5).expect("ok");
        assert!(r.dist[3].is_infinite());
        assert!(r.path(3).is_none());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Hypergraph::new(2, (vec![0, 1], vec![5]), None, vec![1.0]).is_err());
        assert!(Hypergraph::new(2, (vec![0, 1], vec![1]), None, vec![-1.0]).is_err());
        assert!(Hypergraph::new(2, (vec![0, 1], vec![1]), None, vec![f64::NAN]).is_err());
        assert!(Hypergraph::new(2, (vec![1, 1], vec![1]), None, vec![1.0]).is_err());
        assert!(Hypergraph::new(2, (vec![0, 2, 1], vec![1, 0]), None, vec![1.0, 1.0]).is_err());
        assert!(g().khop(&[9], 2).is_err());
    }

    #[test]
    fn selection_budget_and_safe() {
        // two changed nodes, three tests
        let cover = vec![
            vec![0.0, 0.5, f64::INFINITY, f64::INFINITY],
            vec![f64::INFINITY, 0.5, 0.0, f64::INFINITY],
        ];
        let d = vec![1.0, 1.0, 1.0, 1.0];
        let p = SelectParams {
            budget: 1.0,
            threshold: f64::INFINITY,
            safe: false,
        };
        let (cut, order) = select(&cover, &d, &p).expect("ok");
        assert_eq!(order, vec![1]); // covers both changed nodes
        assert_eq!(cut[0], Cut::Budget);
        assert_eq!(cut[3], Cut::Unreachable);
        let (cut, _) = select(
            &cover,
            &d,
            &SelectParams {
                safe: true,
                ..p.clone()
            },
        )
        .expect("ok");
        assert_eq!(&cut[..3], &[Cut::Selected; 3]);
        let (cut, _) = select(
            &cover,
            &d,
            &SelectParams {
                threshold: 0.25,
                budget: f64::INFINITY,
                safe: true,
            },
        )
        .expect("ok");
        assert_eq!(cut[1], Cut::Cost);
        assert!(select(&cover, &[1.0], &p).is_err());
    }
}
