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
//! round (a frontier), pushing each one's entry cost to its head nodes in a
//! per-node candidate array (no per-round sort of updates). A round whose
//! frontier reaches a large share of the hyperedges runs densely instead, in
//! two sweeps without shared writes: entry costs of all hyperedges, then a
//! pull per node over the hyperedges whose head holds it. Ties go to the
//! lowest hyperedge in both forms, so they give the same paths. The scratch
//! arrays are kept in the graph between calls (warm pages, no allocation per
//! call). Dense sweeps run on rayon above [`PAR_EDGES`] hyperedges (on an
//! idle 2-core machine the 1M-hyperedge benchmark takes 14 ms on two threads,
//! 20 ms on one; under heavy load from other processes the split gains
//! nothing, but gives the same result).
//!
//! Incidence and weight arrays are shared ([`Indices`], [`Floats`]): the
//! engine reads a caller's buffer in place (the Python binding lends numpy
//! arrays this way) or owns a `Vec`.
//!
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// Sentinel for "no hyperedge / no node".
pub const NONE: u32 = u32::MAX;
/// Below this many hyperedges, a dense round runs on one thread (see the
/// module docs). `khop_each` runs sources in parallel.
pub const PAR_EDGES: usize = 1 << 18;
/// A round whose frontier reaches more than `1 / DENSE_FRACTION` of the
/// hyperedges (counted with repetition) runs densely.
pub const DENSE_FRACTION: usize = 4;

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

/// A shared, read-only `u32` buffer: a `Vec` the engine owns, or a
/// caller's buffer it reads in place (kept alive by the `Arc`).
pub type Indices = Arc<dyn AsRef<[u32]> + Send + Sync>;
/// A shared, read-only `f64` buffer (see [`Indices`]).
pub type Floats = Arc<dyn AsRef<[f64]> + Send + Sync>;

/// Row `r` of a CSR given as slices (empty when out of range, so a buffer
/// changed behind the engine's back gives wrong rows, never a panic).
#[inline]
fn row<'a>(indptr: &[u32], indices: &'a [u32], r: usize) -> &'a [u32] {
    match (indptr.get(r), indptr.get(r + 1)) {
        (Some(&a), Some(&b)) => indices.get(a as usize..b as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// A compressed sparse row matrix of 0/1 incidences.
#[derive(Clone)]
pub struct Csr {
    indptr: Indices,
    indices: Indices,
}

impl std::fmt::Debug for Csr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csr")
            .field("rows", &self.rows())
            .field("nnz", &self.indices().len())
            .finish()
    }
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
        Self::shared(what, Arc::new(indptr), Arc::new(indices), rows, cols)
    }

    /// [`Csr::new`] over shared buffers (read in place, not copied).
    pub fn shared(
        what: &'static str,
        indptr: Indices,
        indices: Indices,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let bad = |reason: String| HypergraphError::BadCsr { what, reason };
        {
            let (p, ix) = ((*indptr).as_ref(), (*indices).as_ref());
            if p.len() != rows + 1 {
                return Err(bad(format!(
                    "indptr has {} entries, expected {} (rows + 1)",
                    p.len(),
                    rows + 1
                )));
            }
            if p.first().copied() != Some(0) {
                return Err(bad("indptr must start at 0".into()));
            }
            if let Some(i) = p.windows(2).position(|w| w[0] > w[1]) {
                return Err(bad(format!("indptr decreases at row {i}")));
            }
            if p.last().map(|&x| x as usize) != Some(ix.len()) {
                return Err(bad(format!(
                    "indptr ends at {:?} but there are {} indices",
                    p.last(),
                    ix.len()
                )));
            }
            if let Some((i, &c)) = ix.iter().enumerate().find(|(_, &c)| c as usize >= cols) {
                return Err(bad(format!(
                    "index {c} at position {i} is out of range ({cols} columns)"
                )));
            }
        }
        Ok(Csr { indptr, indices })
    }

    pub fn indptr(&self) -> &[u32] {
        (*self.indptr).as_ref()
    }

    pub fn indices(&self) -> &[u32] {
        (*self.indices).as_ref()
    }

    pub fn rows(&self) -> usize {
        self.indptr().len().saturating_sub(1)
    }

    /// Columns of row `r` (empty when out of range).
    pub fn row(&self, r: usize) -> &[u32] {
        row(self.indptr(), self.indices(), r)
    }

    /// The transpose (`cols` rows), by counting sort.
    pub fn transpose(&self, cols: usize) -> Csr {
        let (p, ix) = (self.indptr(), self.indices());
        let mut counts = vec![0u32; cols + 1];
        for &c in ix {
            if let Some(x) = counts.get_mut(c as usize + 1) {
                *x += 1;
            }
        }
        for i in 0..cols {
            counts[i + 1] += counts[i];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; ix.len()];
        for r in 0..self.rows() {
            for &c in row(p, ix, r) {
                if let Some(slot) = next.get_mut(c as usize) {
                    if let Some(x) = indices.get_mut(*slot as usize) {
                        *x = r as u32;
                    }
                    *slot += 1;
                }
            }
        }
        Csr {
            indptr: Arc::new(indptr),
            indices: Arc::new(indices),
        }
    }
}

/// Node-sized scratch of one k-hop run, plus the per-hyperedge entry costs
/// of dense rounds. Between rounds `cand` equals the costs so far, `edge`
/// is all [`NONE`] and `touched` is empty. Separate arrays, not one record
/// per node: the entry-cost sweep's random reads then stay within one
/// `f64` per node (800 KB for 100k nodes: in L2).
struct Scratch {
    /// This round's best cost per node (starts the round at its cost).
    cand: Vec<f64>,
    /// The hyperedge it improved through this round ([`NONE`]: not improved).
    edge: Vec<u32>,
    /// The tail node that hyperedge was entered from.
    pred: Vec<u32>,
    /// Nodes with `edge != NONE`, in first-touch order.
    touched: Vec<u32>,
    /// Dense rounds: entry cost of each hyperedge (`inf`: tail unreached)...
    h: Vec<f64>,
    /// ... and its cheapest tail node.
    from: Vec<u32>,
}

/// The cheapest tail node of hyperedge `e` under costs `d` (Jacobi: the
/// previous round's), and `w[e]` plus its cost (`inf` if none is reached).
/// Branch-free minimum: the loads of the next hyperedge are not held up by
/// mispredicted comparisons.
#[inline(always)]
fn entry(v: &View<'_>, d: &[f64], e: usize) -> (f64, u32) {
    let mut best = f64::INFINITY;
    let mut from = NONE;
    for &x in row(v.tp, v.ti, e) {
        let c = d.get(x as usize).copied().unwrap_or(f64::INFINITY);
        let lt = c < best;
        best = if lt { c } else { best };
        from = if lt { x } else { from };
    }
    (best + v.w.get(e).copied().unwrap_or(f64::INFINITY), from)
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            cand: vec![f64::INFINITY; n],
            edge: vec![NONE; n],
            pred: vec![NONE; n],
            touched: Vec::new(),
            h: Vec::new(),
            from: Vec::new(),
        }
    }

    /// Start a run at costs `dist`.
    fn sync(&mut self, dist: &[f64]) {
        self.cand.copy_from_slice(dist);
        self.touched.clear();
    }

    /// Offer cost `h` to head node `u` through hyperedge `e` from `from`.
    /// Improves on the node's cost so far, or ties with this round's
    /// improvement through a higher hyperedge: the result does not depend
    /// on the order hyperedges are visited in.
    #[inline(always)]
    fn offer(&mut self, u: u32, h: f64, e: u32, from: u32) {
        let ui = u as usize;
        let (Some(&cu), Some(&eu)) = (self.cand.get(ui), self.edge.get(ui)) else {
            return;
        };
        if h < cu || (h == cu && eu != NONE && e < eu) {
            if eu == NONE {
                self.touched.push(u);
            }
            self.cand[ui] = h;
            self.edge[ui] = e;
            self.pred[ui] = from;
        }
    }

    /// Relax hyperedge `e` against the previous round's costs `d`.
    #[inline(always)]
    fn relax(&mut self, v: &View<'_>, d: &[f64], e: usize) {
        let (h, from) = entry(v, d, e);
        if h == f64::INFINITY {
            return;
        }
        for &u in row(v.hp, v.hi, e) {
            self.offer(u, h, e as u32, from);
        }
    }

    /// The round's improvements sorted by node; applies them to `dist` and
    /// restores the between-rounds invariant.
    fn finish(&mut self, dist: &mut [f64], dense: bool) -> Vec<Upd> {
        let n = self.edge.len();
        if dense || self.touched.len() * 16 >= n {
            self.touched.clear();
            let edge = &self.edge;
            self.touched
                .extend((0..n as u32).filter(|&u| edge[u as usize] != NONE));
        } else {
            self.touched.sort_unstable();
        }
        let mut out = Vec::with_capacity(self.touched.len());
        for &u in &self.touched {
            let ui = u as usize;
            let (Some(e), Some(x)) = (self.edge.get_mut(ui), dist.get_mut(ui)) else {
                continue;
            };
            out.push(Upd {
                node: u,
                edge: *e,
                pred: self.pred[ui],
            });
            *x = self.cand[ui];
            *e = NONE;
        }
        self.touched.clear();
        out
    }
}

/// The slices one run reads (resolved once per call, not per access).
struct View<'a> {
    tp: &'a [u32],
    ti: &'a [u32],
    hp: &'a [u32],
    hi: &'a [u32],
    ttp: &'a [u32],
    tti: &'a [u32],
    htp: &'a [u32],
    hti: &'a [u32],
    w: &'a [f64],
}

/// A weighted directed hypergraph (see the module docs).
pub struct Hypergraph {
    n_nodes: usize,
    weights: Floats,
    /// hyperedge → tail nodes.
    tail: Csr,
    /// node → hyperedges whose tail holds it.
    tail_t: Csr,
    /// node → hyperedges whose head holds it (`tail_t`'s buffers when
    /// undirected): dense rounds pull through it.
    head_t: Csr,
    /// hyperedge → head nodes (the same buffers as `tail` when undirected).
    head: Csr,
    /// Warm scratch arrays, reused by the next run.
    pool: Mutex<Vec<Scratch>>,
}

impl Clone for Hypergraph {
    fn clone(&self) -> Self {
        Hypergraph {
            n_nodes: self.n_nodes,
            weights: self.weights.clone(),
            tail: self.tail.clone(),
            tail_t: self.tail_t.clone(),
            head_t: self.head_t.clone(),
            head: self.head.clone(),
            pool: Mutex::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for Hypergraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypergraph")
            .field("n_nodes", &self.n_nodes)
            .field("n_edges", &self.n_edges())
            .field("tail", &self.tail)
            .field("head", &self.head)
            .finish()
    }
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
        let sh =
            |(p, i): (Vec<u32>, Vec<u32>)| -> (Indices, Indices) { (Arc::new(p), Arc::new(i)) };
        Self::from_shared(n_nodes, sh(tail), head.map(sh), Arc::new(weights))
    }

    /// [`Hypergraph::new`] over shared buffers, read in place (validated
    /// once here; only the node → hyperedge transpose is built).
    pub fn from_shared(
        n_nodes: usize,
        tail: (Indices, Indices),
        head: Option<(Indices, Indices)>,
        weights: Floats,
    ) -> Result<Self> {
        if n_nodes >= NONE as usize {
            return Err(HypergraphError::Invalid(format!(
                "{n_nodes} nodes (at most {} supported)",
                NONE - 1
            )));
        }
        let m = {
            let w = (*weights).as_ref();
            if let Some((i, &x)) = w
                .iter()
                .enumerate()
                .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
            {
                return Err(HypergraphError::BadWeight { edge: i, weight: x });
            }
            w.len()
        };
        if m >= NONE as usize {
            return Err(HypergraphError::Invalid(format!(
                "{m} hyperedges (at most {} supported)",
                NONE - 1
            )));
        }
        let tail = Csr::shared("tail incidence", tail.0, tail.1, m, n_nodes)?;
        let head = match head {
            Some((p, i)) => Csr::shared("head incidence", p, i, m, n_nodes)?,
            None => tail.clone(),
        };
        let tail_t = tail.transpose(n_nodes);
        let head_t = if std::ptr::eq(head.indices(), tail.indices()) {
            tail_t.clone()
        } else {
            head.transpose(n_nodes)
        };
        Ok(Hypergraph {
            n_nodes,
            weights,
            tail,
            tail_t,
            head_t,
            head,
            pool: Mutex::new(Vec::new()),
        })
    }

    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }
    pub fn n_edges(&self) -> usize {
        self.weights().len()
    }
    pub fn weights(&self) -> &[f64] {
        (*self.weights).as_ref()
    }
    pub fn weight(&self, e: usize) -> Option<f64> {
        self.weights().get(e).copied()
    }
    pub fn tail(&self, e: usize) -> &[u32] {
        self.tail.row(e)
    }
    pub fn head(&self, e: usize) -> &[u32] {
        self.head.row(e)
    }
    /// The tail incidence (hyperedge → nodes).
    pub fn tail_csr(&self) -> &Csr {
        &self.tail
    }
    /// The head incidence (the tail's buffers when undirected).
    pub fn head_csr(&self) -> &Csr {
        &self.head
    }

    fn view(&self) -> View<'_> {
        View {
            tp: self.tail.indptr(),
            ti: self.tail.indices(),
            hp: self.head.indptr(),
            hi: self.head.indices(),
            ttp: self.tail_t.indptr(),
            tti: self.tail_t.indices(),
            htp: self.head_t.indptr(),
            hti: self.head_t.indices(),
            w: self.weights(),
        }
    }

    /// A scratch from the pool (warm), or a new one.
    fn scratch(&self) -> Scratch {
        let n = self.n_nodes;
        self.pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .filter(|s| s.cand.len() == n)
            .unwrap_or_else(|| Scratch::new(n))
    }

    fn give_back(&self, s: Scratch) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 64 {
                p.push(s);
            }
        }
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
    /// previous round improved, or all of them in order when those are many.
    pub fn khop(&self, sources: &[u32], k: usize) -> Result<KHop> {
        self.khop_impl(sources, k, true)
    }

    /// [`Hypergraph::khop`] without dense rounds (to test both forms).
    #[doc(hidden)]
    pub fn khop_frontier_only(&self, sources: &[u32], k: usize) -> Result<KHop> {
        self.khop_impl(sources, k, false)
    }

    /// [`Hypergraph::khop`] with every round dense (to test both forms).
    #[doc(hidden)]
    pub fn khop_dense_only(&self, sources: &[u32], k: usize) -> Result<KHop> {
        self.check_sources(sources)?;
        let mut dist = vec![f64::INFINITY; self.n_nodes];
        // A low split threshold, so that tests reach the parallel merge.
        let rounds = self.run_rounds(sources, k, Mode::Dense(1 << 10), &mut dist);
        Ok(KHop {
            dist,
            paths: Paths { rounds },
        })
    }

    fn khop_impl(&self, sources: &[u32], k: usize, allow_dense: bool) -> Result<KHop> {
        self.check_sources(sources)?;
        let mut dist = vec![f64::INFINITY; self.n_nodes];
        let mode = if allow_dense {
            Mode::Auto
        } else {
            Mode::Frontier
        };
        let rounds = self.run_rounds(sources, k, mode, &mut dist);
        Ok(KHop {
            dist,
            paths: Paths { rounds },
        })
    }

    /// The rounds into `dist` (all `inf` on entry); returns the per-round
    /// improvements.
    fn run_rounds(&self, sources: &[u32], k: usize, mode: Mode, dist: &mut [f64]) -> Vec<Vec<Upd>> {
        let v = self.view();
        let m = v.w.len();
        let mut active: Vec<u32> = sources.to_vec();
        active.sort_unstable();
        active.dedup();
        for &s in &active {
            if let Some(x) = dist.get_mut(s as usize) {
                *x = 0.0;
            }
        }
        let mut sc = self.scratch();
        sc.sync(dist);
        let mut rounds: Vec<Vec<Upd>> = Vec::new();
        for _ in 0..k {
            if active.is_empty() {
                break; // a fixpoint: later rounds change nothing
            }
            let dense = match mode {
                Mode::Dense(_) => true,
                Mode::Frontier => false,
                Mode::Auto => {
                    let reach: usize = active
                        .iter()
                        .map(|&x| row(v.ttp, v.tti, x as usize).len())
                        .sum();
                    reach * DENSE_FRACTION >= m
                }
            };
            if dense {
                let par = match mode {
                    Mode::Dense(p) => p,
                    _ => PAR_EDGES,
                };
                self.dense_round(&v, dist, &mut sc, par);
            } else {
                for &x in &active {
                    for &e in row(v.ttp, v.tti, x as usize) {
                        sc.relax(&v, dist, e as usize);
                    }
                }
            }
            let upd = sc.finish(dist, dense);
            active.clear();
            active.extend(upd.iter().map(|x| x.node));
            rounds.push(upd);
        }
        self.give_back(sc);
        rounds
    }

    /// Every hyperedge, in two sweeps without shared writes: entry costs
    /// per hyperedge (from the previous round's costs), then each node pulls
    /// the cheapest entry cost among the hyperedges whose head holds it
    /// (ascending hyperedge order with a strict `<`: ties go to the lowest
    /// hyperedge, as in the frontier form). Above `par_edges` hyperedges both
    /// sweeps run on rayon in many small chunks, so a thread that the
    /// shared machine deschedules leaves its remaining chunks to the others.
    fn dense_round(&self, v: &View<'_>, d: &[f64], sc: &mut Scratch, par_edges: usize) {
        let m = v.w.len();
        let n = sc.cand.len();
        sc.h.resize(m, f64::INFINITY);
        sc.from.resize(m, NONE);
        let fill = |lo: usize, h: &mut [f64], from: &mut [u32]| {
            for (i, (h, f)) in h.iter_mut().zip(from.iter_mut()).enumerate() {
                (*h, *f) = entry(v, d, lo + i);
            }
        };
        let pull = |lo: usize,
                    cand: &mut [f64],
                    edge: &mut [u32],
                    pred: &mut [u32],
                    h: &[f64],
                    from: &[u32]| {
            for (i, ((c, e), p)) in cand
                .iter_mut()
                .zip(edge.iter_mut())
                .zip(pred.iter_mut())
                .enumerate()
            {
                let mut best = *c;
                let mut be = NONE;
                for &x in row(v.htp, v.hti, lo + i) {
                    let hx = h.get(x as usize).copied().unwrap_or(f64::INFINITY);
                    let lt = hx < best;
                    best = if lt { hx } else { best };
                    be = if lt { x } else { be };
                }
                if be != NONE {
                    *c = best;
                    *e = be;
                    *p = from.get(be as usize).copied().unwrap_or(NONE);
                }
            }
        };
        #[cfg(feature = "rayon")]
        if m >= par_edges && rayon::current_num_threads() >= 2 {
            let ce = m.div_ceil(64).max(1);
            sc.h.par_chunks_mut(ce)
                .zip(sc.from.par_chunks_mut(ce))
                .enumerate()
                .for_each(|(i, (h, f))| fill(i * ce, h, f));
            let cn = n.div_ceil(64).max(1);
            let (h, from) = (&sc.h[..], &sc.from[..]);
            sc.cand
                .par_chunks_mut(cn)
                .zip(sc.edge.par_chunks_mut(cn))
                .zip(sc.pred.par_chunks_mut(cn))
                .enumerate()
                .for_each(|(i, ((c, e), p))| pull(i * cn, c, e, p, h, from));
            return;
        }
        let _ = par_edges;
        fill(0, &mut sc.h, &mut sc.from);
        pull(0, &mut sc.cand, &mut sc.edge, &mut sc.pred, &sc.h, &sc.from);
    }

    /// Per-source costs, row-major `(sources.len(), n_nodes)`: row `i` is
    /// [`Hypergraph::khop`] from `sources[i]` alone (the matrix the
    /// selection needs), sources in parallel, written in place.
    pub fn khop_each(&self, sources: &[u32], k: usize) -> Result<Vec<f64>> {
        self.check_sources(sources)?;
        let n = self.n_nodes;
        let mut out = vec![f64::INFINITY; sources.len() * n];
        if n == 0 {
            return Ok(out);
        }
        let one = |(s, row): (&u32, &mut [f64])| {
            self.run_rounds(&[*s], k, Mode::Auto, row);
        };
        #[cfg(feature = "rayon")]
        sources.par_iter().zip(out.par_chunks_mut(n)).for_each(one);
        #[cfg(not(feature = "rayon"))]
        sources.iter().zip(out.chunks_mut(n)).for_each(one);
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Auto,
    Frontier,
    /// Every round dense, split above this many hyperedges.
    Dense(usize),
}

/// One improvement in one round: `node` reached through `edge`, entered
/// from `pred`.
#[derive(Debug, Clone, Copy)]
struct Upd {
    node: u32,
    edge: u32,
    pred: u32,
}

/// The per-round improvements of a k-hop run (parent pointers), enough to
/// walk back any cheapest path.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    rounds: Vec<Vec<Upd>>,
}

/// The result of a k-hop run.
#[derive(Debug, Clone)]
pub struct KHop {
    /// Cost per node (`inf` when unreachable within k).
    pub dist: Vec<f64>,
    /// Parent pointers, per round.
    pub paths: Paths,
}

/// One step of an explanation path: reach `node` through `edge` (the first
/// step of a path has `edge == NONE`: the changed node itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub edge: u32,
    pub node: u32,
}

impl KHop {
    /// Rounds that ran (each improved at least one node).
    pub fn rounds(&self) -> usize {
        self.paths.rounds()
    }

    /// The cheapest path to `node`, source first; `None` when unreachable.
    pub fn path(&self, node: u32) -> Option<Vec<Step>> {
        self.paths.path(&self.dist, node)
    }
}

impl Paths {
    /// Rounds that ran (the last may have improved nothing: the fixpoint).
    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// The cheapest path to `node` given the run's costs `dist`.
    pub fn path(&self, dist: &[f64], node: u32) -> Option<Vec<Step>> {
        let d = *dist.get(node as usize)?;
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
pub fn select<R: AsRef<[f64]>>(
    cover: &[R],
    durations: &[f64],
    p: &SelectParams,
) -> Result<(Vec<Cut>, Vec<usize>)> {
    let nt = durations.len();
    if let Some((i, r)) = cover
        .iter()
        .enumerate()
        .find(|(_, r)| r.as_ref().len() != nt)
    {
        return Err(HypergraphError::Invalid(format!(
            "cover row {i} has {} tests, durations has {nt}",
            r.as_ref().len()
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
    let best = |t: usize| {
        cover
            .iter()
            .map(|r| r.as_ref()[t])
            .fold(f64::INFINITY, f64::min)
    };
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
            .map(|(r, &c)| (value(r.as_ref()[t]) - c).max(0.0))
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
            *cv = cv.max(value(cover[s].as_ref()[c.idx]));
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
        assert_eq!(h.khop_dense_only(&[0], 3).expect("ok").dist, r3.dist);
        assert_eq!(h.khop_frontier_only(&[0], 3).expect("ok").dist, r3.dist);
        let p = r3.path(4).expect("path");
        let nodes: Vec<u32> = p.iter().map(|s| s.node).collect();
        assert_eq!(nodes, vec![0, 1, 3, 4]);
        let sum = p[1..]
            .iter()
            .fold(0.0, |a, s| a + h.weights()[s.edge as usize]);
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
