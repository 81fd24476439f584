//! RFC 9162 §2.1 Merkle hash trees (the RFC 6962 tree), generic over the hash.
//!
//! * leaf hash `H(0x00 ‖ d)`, interior node `H(0x01 ‖ l ‖ r)`, the empty tree
//!   hashes to `H("")`;
//! * a tree of `n > 1` leaves splits at `k`, the largest power of two `< n`;
//!   nothing is ever duplicated, so `[a,b,c]` and `[a,b,c,c]` have different
//!   roots, and leaves can never be confused with nodes.
//!
//! Every node of such a tree is either a *perfect* subtree (`2^l` leaves
//! starting at a multiple of `2^l`) or is built from perfect subtrees along
//! its right edge. Storage therefore only ever keeps perfect subtrees,
//! addressed by `(level, index)` (the approach of Go's `sumdb/tlog` and of
//! Trillian's compact ranges). [`NodeSource`] abstracts that storage so the
//! same proof code serves the in-memory [`Tree`] and the SQLite log.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::hash::{Algorithm, Digest};

/// Errors of the Merkle module.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    #[error("index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {requested} is larger than the tree ({size})")]
    SizeOutOfRange { requested: u64, size: u64 },
    #[error("{what}: a digest must be 32 bytes, got {got}")]
    BadDigestLength { what: String, got: usize },
    #[error("{0}")]
    Verification(String),
    #[error("missing stored node at level {level}, index {index}")]
    MissingNode { level: u32, index: u64 },
    #[error("node storage: {0}")]
    Storage(String),
}

type Result<T> = std::result::Result<T, MerkleError>;

/// `H(0x00 ‖ data)`.
pub fn leaf_hash(alg: Algorithm, data: &[u8]) -> Digest {
    alg.hash_parts(&[&[0x00], data])
}

/// `H(0x01 ‖ left ‖ right)`.
pub fn node_hash(alg: Algorithm, left: &Digest, right: &Digest) -> Digest {
    alg.hash_parts(&[&[0x01], left, right])
}

/// `H("")`, the root of the empty tree.
pub fn empty_root(alg: Algorithm) -> Digest {
    alg.hash_parts(&[])
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Storage of perfect subtree hashes.
pub trait NodeSource {
    fn algorithm(&self) -> Algorithm;
    /// Number of leaves.
    fn size(&self) -> u64;
    /// Hash of the perfect subtree covering leaves `[index·2^level, (index+1)·2^level)`.
    fn perfect(&self, level: u32, index: u64) -> Result<Digest>;
}

/// `MTH(D[start:end])` for `start < end <= size`, from perfect subtrees.
pub fn subtree_hash<S: NodeSource + ?Sized>(src: &S, start: u64, end: u64) -> Result<Digest> {
    debug_assert!(start < end);
    let len = end - start;
    if len.is_power_of_two() && start % len == 0 {
        return src.perfect(len.trailing_zeros(), start >> len.trailing_zeros());
    }
    let k = if len.is_power_of_two() {
        len / 2
    } else {
        split_point(len)
    };
    let l = subtree_hash(src, start, start + k)?;
    let r = subtree_hash(src, start + k, end)?;
    Ok(node_hash(src.algorithm(), &l, &r))
}

/// Root of the first `size` leaves (`size` may be smaller than the tree).
pub fn root_at<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Digest> {
    if size > src.size() {
        return Err(MerkleError::SizeOutOfRange {
            requested: size,
            size: src.size(),
        });
    }
    if size == 0 {
        return Ok(empty_root(src.algorithm()));
    }
    subtree_hash(src, 0, size)
}

/// RFC 9162 §2.1.3.1 `PATH(index, D[0:size])`, leaf-side first.
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Digest>> {
    if size > src.size() {
        return Err(MerkleError::SizeOutOfRange {
            requested: size,
            size: src.size(),
        });
    }
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    inclusion_path(index, size, |lo, hi| subtree_hash(src, lo, hi))
}

/// The siblings on the path of `index` in the tree of `size`, leaf-side
/// first, each subtree hash given by `sub(start, end)`.
fn inclusion_path(
    index: u64,
    size: u64,
    mut sub: impl FnMut(u64, u64) -> Result<Digest>,
) -> Result<Vec<Digest>> {
    // Walk from the root down, collecting siblings; the RFC lists them
    // leaf-side first, so reverse at the end.
    let mut path = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            path.push(sub(lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(sub(lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Hashes of the subtrees `[start, size)` along the right edge of the tree
/// of `size` that are not perfect, as `(start, hash)`. Every other subtree an
/// inclusion proof needs is perfect, i.e. stored, so with these at hand a
/// proof costs no hashing at all.
fn right_edge<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Vec<(u64, Digest)>> {
    // `size = 2^a + 2^b + …` (a > b > …): the edge subtrees start at the
    // partial sums and are folded from the right, as MTH splits them.
    let mut pieces = Vec::with_capacity(64);
    let mut start = 0u64;
    for bit in (0..64u32).rev() {
        if size >> bit & 1 == 1 {
            pieces.push((start, bit));
            start += 1 << bit;
        }
    }
    let mut edge = Vec::with_capacity(pieces.len());
    let mut acc: Option<Digest> = None;
    for &(start, bit) in pieces.iter().rev() {
        let p = src.perfect(bit, start >> bit)?;
        acc = Some(match acc {
            None => p,
            Some(right) => {
                let h = node_hash(src.algorithm(), &p, &right);
                edge.push((start, h));
                h
            }
        });
    }
    Ok(edge)
}

/// Inclusion proofs for many leaves of the tree of `size`, flattened: the
/// proof of `indices[i]` is `hashes[offsets[i]..offsets[i + 1]]`. Proofs are
/// computed in parallel, and the right edge of the tree is hashed once for
/// all of them instead of once per proof.
pub fn inclusion_proofs_flat<S: NodeSource + Sync + ?Sized>(
    src: &S,
    indices: &[u64],
    size: u64,
) -> Result<(Vec<Digest>, Vec<usize>)> {
    if size > src.size() {
        return Err(MerkleError::SizeOutOfRange {
            requested: size,
            size: src.size(),
        });
    }
    let mut offsets = Vec::with_capacity(indices.len() + 1);
    offsets.push(0usize);
    for &index in indices {
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        offsets.push(offsets[offsets.len() - 1] + inclusion_proof_len(index, size));
    }
    let edge = right_edge(src, size)?;
    let sub = |lo: u64, hi: u64| -> Result<Digest> {
        if hi == size {
            if let Some((_, h)) = edge.iter().find(|(s, _)| *s == lo) {
                return Ok(*h);
            }
        }
        subtree_hash(src, lo, hi)
    };
    let mut hashes = vec![[0u8; 32]; offsets[offsets.len() - 1]];
    let mut slots: Vec<&mut [Digest]> = Vec::with_capacity(indices.len());
    let mut rest = hashes.as_mut_slice();
    for w in offsets.windows(2) {
        let (slot, tail) = rest.split_at_mut(w[1] - w[0]);
        slots.push(slot);
        rest = tail;
    }
    let one = |(slot, &index): (&mut [Digest], &u64)| -> Result<()> {
        let path = inclusion_path(index, size, sub)?;
        if path.len() != slot.len() {
            return Err(MerkleError::Verification(format!(
                "internal: proof of leaf {index} has {} hashes, expected {}",
                path.len(),
                slot.len()
            )));
        }
        slot.copy_from_slice(&path);
        Ok(())
    };
    if indices.len() >= 64 {
        slots.into_par_iter().zip(indices).try_for_each(one)?;
    } else {
        slots.into_iter().zip(indices).try_for_each(one)?;
    }
    Ok((hashes, offsets))
}

/// RFC 9162 §2.1.4.1 `PROOF(old, D[0:new])` for `0 < old <= new`.
pub fn consistency_proof<S: NodeSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Digest>> {
    if new > src.size() {
        return Err(MerkleError::SizeOutOfRange {
            requested: new,
            size: src.size(),
        });
    }
    if old == 0 || old > new {
        return Err(MerkleError::Verification(format!(
            "a consistency proof needs 0 < old size <= new size, got old {old}, new {new}"
        )));
    }
    // SUBPROOF(m, D[lo:hi], b), iteratively from the root down.
    let mut proof = Vec::with_capacity(64);
    let (mut lo, mut hi, mut m, mut complete) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                proof.push(subtree_hash(src, lo, hi)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(subtree_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(subtree_hash(src, lo, lo + k)?);
            lo += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

fn check_len(what: &str, d: &[u8]) -> Result<Digest> {
    d.try_into().map_err(|_| MerkleError::BadDigestLength {
        what: what.to_string(),
        got: d.len(),
    })
}

/// Number of hashes an inclusion proof for `index` in a tree of `size` has.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if size <= 1 {
        return 0;
    }
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    // `inner` reaches 64 for trees above 2^63 leaves; a plain shift by 64
    // would wrap (release) or panic (debug).
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// RFC 9162 §2.1.3.2: verify that `leaf` is at `index` in the tree of `size`
/// with `root`. Returns the reason on failure.
pub fn verify_inclusion(
    alg: Algorithm,
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<()> {
    let leaf = check_len("leaf hash", leaf)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(MerkleError::Verification(format!(
            "inclusion proof has {} hashes; leaf {index} of a tree of size {size} needs {want}",
            proof.len()
        )));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for (i, p) in proof.iter().enumerate() {
        let p = check_len(&format!("proof[{i}]"), p.as_ref())?;
        if s == 0 {
            return Err(MerkleError::Verification(format!(
                "inclusion proof step {i}: proof is longer than the path"
            )));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(alg, &p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(alg, &r, &p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::Verification(
            "inclusion proof is shorter than the path".into(),
        ));
    }
    if r.as_slice() != root {
        return Err(MerkleError::Verification(format!(
            "inclusion proof of leaf {index} leads to root {}, expected {}",
            hex::encode(r),
            hex::encode(root)
        )));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verify that the tree (`size2`, `root2`) extends
/// (`size1`, `root1`). Sizes equal: the proof must be empty and the roots
/// equal. A consistency check from the empty tree proves nothing and is
/// refused, as transparency-dev/merkle does.
pub fn verify_consistency(
    alg: Algorithm,
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<()> {
    if size2 < size1 {
        return Err(MerkleError::Verification(format!(
            "old size {size1} is larger than new size {size2}"
        )));
    }
    if size1 == 0 {
        return Err(MerkleError::Verification(
            "consistency with an empty tree proves nothing".into(),
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::Verification(format!(
                "sizes are equal ({size1}) but the proof has {} hashes",
                proof.len()
            )));
        }
        if root1 != root2 {
            return Err(MerkleError::Verification(format!(
                "sizes are equal ({size1}) but the roots differ"
            )));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(MerkleError::Verification(format!(
            "empty consistency proof from size {size1} to {size2}"
        )));
    }
    let mut path: Vec<Digest> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(check_len("old root", root1)?);
    }
    for (i, p) in proof.iter().enumerate() {
        path.push(check_len(&format!("proof[{i}]"), p.as_ref())?);
    }
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for (i, c) in path.iter().enumerate().skip(1) {
        if s == 0 {
            return Err(MerkleError::Verification(format!(
                "consistency proof step {i}: proof is longer than needed"
            )));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(alg, c, &fr);
            sr = node_hash(alg, c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(alg, &sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::Verification(
            "consistency proof is shorter than needed".into(),
        ));
    }
    if fr.as_slice() != root1 {
        return Err(MerkleError::Verification(format!(
            "consistency proof does not lead to the old root (got {}, expected {})",
            hex::encode(fr),
            hex::encode(root1)
        )));
    }
    if sr.as_slice() != root2 {
        return Err(MerkleError::Verification(format!(
            "consistency proof does not lead to the new root (got {}, expected {})",
            hex::encode(sr),
            hex::encode(root2)
        )));
    }
    Ok(())
}

/// Leaves per parallel task when building a tree: the task hashes its
/// `2^CHUNK_LOG` leaves and every level of its perfect subtree while they are
/// in cache (4096 leaf hashes are 128 KiB), instead of sweeping the whole
/// tree once per level.
const CHUNK_LOG: u32 = 12;

/// Below this many leaves a tree is built on the calling thread.
const PAR_MIN: usize = 1 << 13;

/// The leaf level handed to [`build_levels`].
enum Leaves<F> {
    /// Leaf hashes already computed.
    Hashes(Vec<Digest>),
    /// `n` leaves; `fill(start, slots)` writes the hashes of leaves
    /// `start..start + slots.len()` into every one of `slots`.
    Fill(usize, F),
}

type NoFill = fn(usize, &mut [MaybeUninit<Digest>]);

/// A task's part of the leaf level: given hashes, or slots to fill.
enum Base<'a> {
    Given(&'a [Digest]),
    Slots(&'a mut [MaybeUninit<Digest>]),
}

/// One chunk of leaves and its slices of the levels above, up to `low`.
struct Task<'a> {
    base: Base<'a>,
    above: Vec<&'a mut [MaybeUninit<Digest>]>,
}

impl<'a> Task<'a> {
    fn new(base: Base<'a>) -> Self {
        Task {
            base,
            above: Vec::with_capacity(CHUNK_LOG as usize),
        }
    }
}

/// `slots` once every one of them has been written.
///
/// # Safety
/// Every element of `slots` must be initialized.
unsafe fn assume_init(slots: &mut [MaybeUninit<Digest>]) -> &[Digest] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; initialization is the
    // caller's promise.
    unsafe { std::slice::from_raw_parts(slots.as_ptr().cast(), slots.len()) }
}

/// An empty level with room for `n` digests. On Linux, a large one is
/// marked for transparent huge pages before it is first touched: a 1M-leaf
/// tree is 64 MB, and faulting it in 4 KiB at a time (then unmapping it)
/// took about a fifth of the build's CPU time.
fn level_with_capacity(n: usize) -> Vec<Digest> {
    let mut v: Vec<Digest> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<Digest>();
        if bytes >= 2 * HUGE {
            let start = v.as_mut_ptr() as usize;
            let lo = start.next_multiple_of(HUGE);
            let hi = (start + bytes) / HUGE * HUGE;
            if hi > lo {
                // SAFETY: [lo, hi) lies inside the allocation `v` owns, and
                // MADV_HUGEPAGE is advice about backing pages: it changes
                // neither the contents nor the validity of the memory. Its
                // result is ignored (the kernel may not support it).
                unsafe {
                    libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    v
}

/// Build every stored level of a tree: level `l` holds the `n >> l` perfect
/// subtrees of `2^l` leaves, the top level one entry.
///
/// Levels are allocated without being zeroed (a zeroing pass over ~64 MB for
/// 1M leaves ran on the calling thread, before any parallel work) and are
/// first touched by the task that fills them.
fn build_levels<F>(alg: Algorithm, leaves: Leaves<F>) -> Vec<Vec<Digest>>
where
    F: Fn(usize, &mut [MaybeUninit<Digest>]) + Sync,
{
    let (n, mut level0, fill) = match leaves {
        Leaves::Hashes(v) => (v.len(), v, None),
        Leaves::Fill(n, f) => (n, level_with_capacity(n), Some(f)),
    };
    if n == 0 {
        return vec![Vec::new()];
    }
    let height = (usize::BITS - 1 - n.leading_zeros()) as usize;
    let mut upper: Vec<Vec<Digest>> = (1..=height).map(|l| level_with_capacity(n >> l)).collect();

    // Levels 0..=low are built chunk by chunk, each chunk by one task.
    let low = height.min(CHUNK_LOG as usize);
    let chunk = 1usize << CHUNK_LOG;
    let mut tasks: Vec<Task<'_>> = if fill.is_some() {
        level0.spare_capacity_mut()[..n]
            .chunks_mut(chunk)
            .map(Base::Slots)
            .map(Task::new)
            .collect()
    } else {
        level0
            .chunks(chunk)
            .map(Base::Given)
            .map(Task::new)
            .collect()
    };
    for (i, level) in upper.iter_mut().take(low).enumerate() {
        let l = i + 1;
        // A chunk whose leaves fill no subtree of this level gets no slice.
        let slots = &mut level.spare_capacity_mut()[..n >> l];
        for (task, s) in tasks.iter_mut().zip(slots.chunks_mut(chunk >> l)) {
            task.above.push(s);
        }
    }
    let run = |(c, task): (usize, Task<'_>)| {
        let mut below: &[Digest] = match task.base {
            Base::Given(hashes) => hashes,
            Base::Slots(slots) => {
                if let Some(f) = &fill {
                    f(c * chunk, slots);
                }
                // SAFETY: `fill` writes every slot it is given.
                unsafe { assume_init(slots) }
            }
        };
        for slots in task.above {
            alg.hash_pairs_into(0x01, below, slots);
            // SAFETY: `hash_pairs_into` writes every slot.
            below = unsafe { assume_init(slots) };
        }
    };
    if n >= PAR_MIN {
        tasks.into_par_iter().enumerate().for_each(run);
    } else {
        tasks.into_iter().enumerate().for_each(run);
    }
    // SAFETY: the chunks of each level 0..=low partition its first `n >> l`
    // slots, and every task wrote all of its chunks (a panic in a task would
    // have propagated before this point, leaving the lengths at 0).
    unsafe {
        if fill.is_some() {
            level0.set_len(n);
        }
        for (i, level) in upper.iter_mut().take(low).enumerate() {
            level.set_len(n >> (i + 1));
        }
    }

    // The few upper levels (n >> 13 entries at most), on this thread.
    for l in low + 1..=height {
        let (below, here) = upper.split_at_mut(l - 1);
        let here = &mut here[0];
        alg.hash_pairs_into(
            0x01,
            &below[l - 2],
            &mut here.spare_capacity_mut()[..n >> l],
        );
        // SAFETY: `hash_pairs_into` wrote all `n >> l` slots.
        unsafe { here.set_len(n >> l) };
    }
    let mut levels = Vec::with_capacity(height + 1);
    levels.push(level0);
    levels.extend(upper);
    levels
}

/// An in-memory RFC 9162 tree holding every perfect subtree hash
/// (`levels[l][i]`), about `2n` digests for `n` leaves.
#[derive(Debug, Clone)]
pub struct Tree {
    alg: Algorithm,
    levels: Vec<Vec<Digest>>,
}

impl Tree {
    pub fn new(alg: Algorithm) -> Self {
        Tree {
            alg,
            levels: vec![Vec::new()],
        }
    }

    /// Build from leaf hashes (already `H(0x00 ‖ d)`), in parallel.
    pub fn from_leaf_hashes(alg: Algorithm, leaves: Vec<Digest>) -> Self {
        let levels = build_levels(alg, Leaves::<NoFill>::Hashes(leaves));
        Tree { alg, levels }
    }

    /// Build from leaf data, hashing each as a leaf, in parallel.
    pub fn from_leaves<D: AsRef<[u8]> + Sync>(alg: Algorithm, data: &[D]) -> Self {
        let fill = |start: usize, slots: &mut [MaybeUninit<Digest>]| {
            alg.hash_prefixed_into(0x00, &data[start..start + slots.len()], slots)
        };
        let levels = build_levels(alg, Leaves::Fill(data.len(), fill));
        Tree { alg, levels }
    }

    /// Append one leaf hash, completing perfect subtrees as they fill.
    pub fn push_leaf_hash(&mut self, h: Digest) {
        self.levels[0].push(h);
        let mut level = 0;
        while self.levels[level].len() % 2 == 0 {
            let n = self.levels[level].len();
            let parent = node_hash(
                self.alg,
                &self.levels[level][n - 2],
                &self.levels[level][n - 1],
            );
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(self.alg, data));
    }

    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    pub fn leaf_hashes(&self) -> &[Digest] {
        &self.levels[0]
    }

    pub fn root(&self) -> Digest {
        // Cannot fail: every perfect node below `len` is stored.
        root_at(self, self.len()).unwrap_or_else(|_| empty_root(self.alg))
    }

    pub fn root_at(&self, size: u64) -> Result<Digest> {
        root_at(self, size)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>> {
        inclusion_proof(self, index, size)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Digest>> {
        consistency_proof(self, old, new)
    }

    /// See [`inclusion_proofs_flat`].
    pub fn inclusion_proofs_flat(
        &self,
        indices: &[u64],
        size: u64,
    ) -> Result<(Vec<Digest>, Vec<usize>)> {
        inclusion_proofs_flat(self, indices, size)
    }

    /// Inclusion proofs for many leaves (see [`inclusion_proofs_flat`]).
    pub fn inclusion_proofs(&self, indices: &[u64], size: u64) -> Result<Vec<Vec<Digest>>> {
        let (hashes, offsets) = inclusion_proofs_flat(self, indices, size)?;
        Ok(offsets
            .windows(2)
            .map(|w| hashes[w[0]..w[1]].to_vec())
            .collect())
    }
}

impl NodeSource for Tree {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
    fn size(&self) -> u64 {
        self.len()
    }
    fn perfect(&self, level: u32, index: u64) -> Result<Digest> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or(MerkleError::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight transcription of the RFC's recursive MTH, as an oracle.
    fn mth(alg: Algorithm, d: &[Vec<u8>]) -> Digest {
        match d.len() {
            0 => empty_root(alg),
            1 => leaf_hash(alg, &d[0]),
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(alg, &mth(alg, &d[..k]), &mth(alg, &d[k..]))
            }
        }
    }

    fn data(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn roots_match_recursive_definition() {
        for alg in [Algorithm::Sha256, Algorithm::Blake3] {
            for n in 0..70 {
                let d = data(n);
                let t = Tree::from_leaves(alg, &d);
                assert_eq!(t.root(), mth(alg, &d), "n={n}");
                let mut inc = Tree::new(alg);
                for x in &d {
                    inc.push(x);
                }
                assert_eq!(inc.root(), t.root());
                for m in 0..=n {
                    assert_eq!(t.root_at(m as u64).unwrap(), mth(alg, &d[..m]));
                }
            }
        }
    }

    #[test]
    fn no_duplication_collision() {
        let alg = Algorithm::Sha256;
        let abc = Tree::from_leaves(alg, &[b"a", b"b", b"c"]);
        let abcc = Tree::from_leaves(alg, &[b"a", b"b", b"c", b"c"]);
        assert_ne!(abc.root(), abcc.root());
    }

    #[test]
    fn proofs_roundtrip() {
        let alg = Algorithm::Sha256;
        let d = data(40);
        let t = Tree::from_leaves(alg, &d);
        for size in 1..=40u64 {
            let root = t.root_at(size).unwrap();
            for i in 0..size {
                let p = t.inclusion_proof(i, size).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(i, size));
                verify_inclusion(alg, i, size, &t.leaf_hashes()[i as usize], &p, &root).unwrap();
            }
            for old in 1..=size {
                let p = t.consistency_proof(old, size).unwrap();
                let r1 = t.root_at(old).unwrap();
                verify_consistency(alg, old, size, &r1, &root, &p).unwrap();
            }
        }
    }

    #[test]
    fn parallel_build_matches_incremental() {
        // Sizes around the chunk (4096 leaves) and parallel (8192) bounds,
        // with leaves long enough to leave the one-block SHA-256 kernel.
        for alg in [Algorithm::Sha256, Algorithm::Blake3] {
            for n in [4095usize, 4096, 4097, 8191, 8192, 8193, 20_000] {
                let d: Vec<Vec<u8>> = (0..n).map(|i| vec![(i % 251) as u8; i % 70]).collect();
                let t = Tree::from_leaves(alg, &d);
                let h = Tree::from_leaf_hashes(alg, t.leaf_hashes().to_vec());
                let mut inc = Tree::new(alg);
                for x in &d {
                    inc.push(x);
                }
                assert_eq!(t.levels, inc.levels, "n={n}");
                assert_eq!(h.levels, inc.levels, "n={n}");
                assert_eq!(t.root(), mth(alg, &d), "n={n}");
            }
        }
    }

    #[test]
    fn batch_proofs_match_single() {
        let alg = Algorithm::Sha256;
        let t = Tree::from_leaves(alg, &data(300));
        for size in [1u64, 2, 3, 7, 64, 100, 255, 300] {
            let idx: Vec<u64> = (0..size).chain([0, size - 1]).collect();
            let batch = t.inclusion_proofs(&idx, size).unwrap();
            for (&i, p) in idx.iter().zip(&batch) {
                assert_eq!(*p, t.inclusion_proof(i, size).unwrap(), "size={size} i={i}");
            }
        }
        assert!(matches!(
            t.inclusion_proofs(&[0, 300], 300),
            Err(MerkleError::IndexOutOfRange { .. })
        ));
        assert!(t.inclusion_proofs(&[0], 301).is_err());
        assert!(t.inclusion_proofs(&[], 300).unwrap().is_empty());
    }

    #[test]
    fn rejects_out_of_range() {
        let t = Tree::from_leaves(Algorithm::Sha256, &data(5));
        assert!(matches!(
            t.inclusion_proof(5, 5),
            Err(MerkleError::IndexOutOfRange { .. })
        ));
        assert!(t.consistency_proof(0, 5).is_err());
        assert!(t.consistency_proof(3, 6).is_err());
    }
}
