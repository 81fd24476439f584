//! Content hashing: BLAKE3 (default) and SHA-256.
//!
//! * BLAKE3 uses the `blake3` crate; large inputs are hashed with its rayon
//!   tree-parallel `update_rayon`. Large files are cut into 1 MiB pieces,
//!   each read by a rayon task into its thread's buffer and hashed there as
//!   one BLAKE3 subtree; the subtrees' chaining values are then merged. Peak
//!   RSS is one buffer per thread whatever the file size. (Not memory maps:
//!   a file truncated under a map raises SIGBUS, which kills the whole
//!   process.)
//! * SHA-256 uses `sha2` (SHA-NI / assembly when the CPU has them), streamed
//!   through a fixed buffer.
//! * Many files are hashed in parallel across files with rayon.
//!
//! A file is stat-ed before and after hashing; if its size or modification
//! time moved, or it yields a different number of bytes than it announced,
//! the result is refused with [`HashError::Changed`] instead of a digest of
//! a state that never existed.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use rayon::prelude::*;
use sha2::Digest as _;

mod sha256x;

/// A 32-byte digest (both supported algorithms produce 32 bytes).
pub type Digest = [u8; 32];

/// BLAKE3 files larger than this are hashed in parallel pieces.
const WINDOW_THRESHOLD: u64 = PIECE as u64;
/// One piece of a large BLAKE3 file: a power of two of BLAKE3 chunks, so
/// every piece is a complete subtree of the file's BLAKE3 tree (the last
/// one is its right edge); small enough to stay in a core's L2 cache
/// between the read and the hashing.
const PIECE: usize = 1 << 20;
/// Inputs at least this large use BLAKE3's rayon tree hashing.
const RAYON_THRESHOLD: usize = 128 << 10;
/// Streaming buffer for SHA-256 and small files (also holds one piece).
const READ_BUF: usize = 1 << 20;
const _: () = assert!(READ_BUF >= PIECE);

/// Errors of the hashing module.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: file changed while it was being hashed ({detail})")]
    Changed { path: PathBuf, detail: String },
    #[error("unknown hash algorithm {0:?} (expected \"blake3\" or \"sha256\")")]
    UnknownAlgorithm(String),
}

/// A supported hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Blake3,
    Sha256,
}

impl Algorithm {
    /// The name used in manifests, digests maps and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Blake3 => "blake3",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// Hash a sequence of byte slices as one message.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        match self {
            Algorithm::Blake3 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                *h.finalize().as_bytes()
            }
            Algorithm::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }

    /// `out[i] = H(prefix ‖ data[i])` for every `i < out.len()`, on this
    /// thread. SHA-256 runs several short messages in lockstep on CPUs with
    /// the SHA extensions (see `hash/sha256x.rs`).
    pub fn hash_prefixed_many<D: AsRef<[u8]>>(self, prefix: u8, data: &[D], out: &mut [Digest]) {
        self.hash_prefixed_into(prefix, data, as_uninit(out));
    }

    /// `out[i] = H(prefix ‖ pairs[2i] ‖ pairs[2i+1])` for every
    /// `i < out.len()`, on this thread (Merkle interior nodes).
    pub fn hash_pairs(self, prefix: u8, pairs: &[Digest], out: &mut [Digest]) {
        self.hash_pairs_into(prefix, pairs, as_uninit(out));
    }

    /// [`Self::hash_prefixed_many`] into uninitialized slots; writes every
    /// slot of `out`.
    pub(crate) fn hash_prefixed_into<D: AsRef<[u8]>>(
        self,
        prefix: u8,
        data: &[D],
        out: &mut [MaybeUninit<Digest>],
    ) {
        assert!(data.len() >= out.len(), "fewer inputs than outputs");
        match self {
            Algorithm::Sha256 => sha256x::prefixed(prefix, data, out),
            Algorithm::Blake3 => {
                for (o, d) in out.iter_mut().zip(data) {
                    o.write(self.hash_parts(&[&[prefix], d.as_ref()]));
                }
            }
        }
    }

    /// [`Self::hash_pairs`] into uninitialized slots; writes every slot of
    /// `out`.
    pub(crate) fn hash_pairs_into(
        self,
        prefix: u8,
        pairs: &[Digest],
        out: &mut [MaybeUninit<Digest>],
    ) {
        assert!(pairs.len() >= 2 * out.len(), "fewer pairs than outputs");
        match self {
            Algorithm::Sha256 => sha256x::pairs(prefix, pairs, out),
            Algorithm::Blake3 => {
                for (o, lr) in out.iter_mut().zip(pairs.chunks_exact(2)) {
                    o.write(self.hash_parts(&[&[prefix], &lr[0], &lr[1]]));
                }
            }
        }
    }

    /// Hash one buffer (BLAKE3 goes multi-threaded on large buffers).
    pub fn hash(self, data: &[u8]) -> Digest {
        match self {
            Algorithm::Blake3 if data.len() >= RAYON_THRESHOLD => {
                let mut h = blake3::Hasher::new();
                h.update_rayon(data);
                *h.finalize().as_bytes()
            }
            _ => self.hash_parts(&[data]),
        }
    }
}

/// View initialized digests as slots to overwrite.
fn as_uninit(out: &mut [Digest]) -> &mut [MaybeUninit<Digest>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the callers only
    // ever write initialized digests into the slots, so `out` stays valid.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len()) }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "blake3" => Ok(Algorithm::Blake3),
            "sha256" | "sha-256" => Ok(Algorithm::Sha256),
            _ => Err(HashError::UnknownAlgorithm(s.to_string())),
        }
    }
}

/// Digest of a file together with the size that was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    pub digest: Digest,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HashError + '_ {
    move |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stamp(meta: &std::fs::Metadata) -> (u64, Option<SystemTime>) {
    (meta.len(), meta.modified().ok())
}

/// Hash one file. Follows symlinks; refuses directories and special files.
pub fn hash_file(path: &Path, alg: Algorithm) -> Result<FileDigest, HashError> {
    // Refuse special files before opening: opening a FIFO for reading
    // blocks until a writer appears.
    if !std::fs::metadata(path).map_err(io_err(path))?.is_file() {
        return Err(HashError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut file = File::open(path).map_err(io_err(path))?;
    let before = file.metadata().map_err(io_err(path))?;
    if !before.is_file() {
        return Err(HashError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let size = before.len();
    let (digest, read) = match alg {
        Algorithm::Blake3 if size > WINDOW_THRESHOLD => (blake3_pieces(&file, size, path)?, size),
        _ => stream(&mut file, alg, path)?,
    };
    let after = std::fs::metadata(path).map_err(io_err(path))?;
    if read != size || stamp(&before) != stamp(&after) {
        return Err(HashError::Changed {
            path: path.to_path_buf(),
            detail: format!("size {} before, {} read, {} after", size, read, after.len()),
        });
    }
    Ok(FileDigest { size, digest })
}

thread_local! {
    /// One read buffer per thread, reused across files: allocating and
    /// zeroing a fresh 1 MiB buffer per file cost more than hashing a
    /// 100 KiB file.
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Stream the file through a fixed buffer; returns the digest and bytes read.
fn stream(file: &mut File, alg: Algorithm, path: &Path) -> Result<(Digest, u64), HashError> {
    READ_BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < READ_BUF {
            buf.resize(READ_BUF, 0);
        }
        let mut total = 0u64;
        let mut b3 = blake3::Hasher::new();
        let mut s2 = sha2::Sha256::new();
        loop {
            let n = match file.read(&mut buf[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(path)(e)),
            };
            total += n as u64;
            match alg {
                Algorithm::Blake3 => {
                    b3.update(&buf[..n]);
                }
                Algorithm::Sha256 => s2.update(&buf[..n]),
            }
        }
        let d = match alg {
            Algorithm::Blake3 => *b3.finalize().as_bytes(),
            Algorithm::Sha256 => s2.finalize().into(),
        };
        Ok((d, total))
    })
}

/// BLAKE3 of a file of `size > PIECE` bytes: every [`PIECE`] is read by a
/// rayon task into its thread's buffer (where it stays in cache) and hashed
/// there as a subtree; the chaining values are merged as the BLAKE3 tree
/// prescribes. This beat both one big `update_rayon` over a memory map and
/// reading large windows that rayon then hashes: the data is copied once,
/// into L2, and read back from there. A file that shrinks under us gives a
/// short read, reported as [`HashError::Changed`]; growth is caught by the
/// caller's metadata check.
fn blake3_pieces(file: &File, size: u64, path: &Path) -> Result<Digest, HashError> {
    use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};

    let pieces = size.div_ceil(PIECE as u64) as usize;
    let cvs = (0..pieces)
        .into_par_iter()
        .map(|i| {
            let at = (i * PIECE) as u64;
            let len = (size - at).min(PIECE as u64) as usize;
            READ_BUFFER.with(|cell| {
                // No rayon call happens while the buffer is borrowed, so a
                // thread never re-enters here through work stealing.
                let mut buf = cell.borrow_mut();
                if buf.len() < READ_BUF {
                    buf.resize(READ_BUF, 0);
                }
                read_exact_at(file, &mut buf[..len], at).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        HashError::Changed {
                            path: path.to_path_buf(),
                            detail: format!(
                                "size {size} before, fewer than {} bytes readable",
                                at + len as u64
                            ),
                        }
                    } else {
                        io_err(path)(e)
                    }
                })?;
                let mut h = blake3::Hasher::new();
                h.set_input_offset(at);
                h.update(&buf[..len]);
                Ok(h.finalize_non_root())
            })
        })
        .collect::<Result<Vec<_>, HashError>>()?;

    // Merge like BLAKE3's tree: the left subtree of `n` bytes holds the
    // largest power of two of chunks that leaves the right one non-empty.
    // Both sides of every split above piece level are whole pieces.
    fn merge(cvs: &[blake3::hazmat::ChainingValue], len: u64) -> blake3::hazmat::ChainingValue {
        if cvs.len() == 1 {
            return cvs[0];
        }
        let left = blake3::hazmat::left_subtree_len(len);
        let k = (left / PIECE as u64) as usize;
        merge_subtrees_non_root(
            &merge(&cvs[..k], left),
            &merge(&cvs[k..], len - left),
            Mode::Hash,
        )
    }
    let left = blake3::hazmat::left_subtree_len(size);
    let k = (left / PIECE as u64) as usize;
    let root = merge_subtrees_root(
        &merge(&cvs[..k], left),
        &merge(&cvs[k..], size - left),
        Mode::Hash,
    );
    Ok(*root.as_bytes())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hash many files in parallel across files. Results keep the input order;
/// the first error (in input order) is returned.
pub fn hash_files<P: AsRef<Path> + Sync>(
    paths: &[P],
    alg: Algorithm,
) -> Result<Vec<FileDigest>, HashError> {
    paths
        .par_iter()
        .map(|p| hash_file(p.as_ref(), alg))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn known_answers() {
        // FIPS 180-2 "abc" and the BLAKE3 empty-input vector.
        assert_eq!(
            hex::encode(Algorithm::Sha256.hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(Algorithm::Blake3.hash(b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn file_paths_agree_with_memory() {
        let dir = tempfile::tempdir().unwrap();
        for &size in &[
            0usize,
            1,
            1023,
            1 << 20,
            (1 << 20) + 7,
            2 << 20,
            3 << 20,
            (5 << 20) + 1025,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            File::create(&p).unwrap().write_all(&data).unwrap();
            for alg in [Algorithm::Blake3, Algorithm::Sha256] {
                let fd = hash_file(&p, alg).unwrap();
                assert_eq!(fd.size, size as u64);
                assert_eq!(fd.digest, alg.hash(&data), "{alg} {size}");
            }
        }
    }

    #[test]
    fn missing_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            hash_file(&dir.path().join("nope"), Algorithm::Blake3),
            Err(HashError::Io { .. })
        ));
        assert!(matches!(
            hash_file(dir.path(), Algorithm::Sha256),
            Err(HashError::NotAFile { .. })
        ));
    }
}
