//! Content hashing: BLAKE3 (default) and SHA-256.
//!
//! * BLAKE3 uses the `blake3` crate; large inputs are hashed with its rayon
//!   tree-parallel `update_rayon`, and large files through memory maps taken
//!   one fixed window at a time, so peak RSS stays bounded by the window size
//!   whatever the file size (a whole-file map would count every touched page).
//! * SHA-256 uses `sha2` (SHA-NI / assembly when the CPU has them), streamed
//!   through a fixed buffer.
//! * Many files are hashed in parallel across files with rayon.
//!
//! A file is stat-ed before and after hashing; if its size or modification
//! time moved, or it yields a different number of bytes than it announced,
//! the result is refused with [`HashError::Changed`] instead of a digest of
//! a state that never existed.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use rayon::prelude::*;
use sha2::Digest as _;

/// A 32-byte digest (both supported algorithms produce 32 bytes).
pub type Digest = [u8; 32];

/// Files at least this large are hashed through windowed memory maps.
const MMAP_THRESHOLD: u64 = 1 << 20;
/// Size of one memory-map window (a multiple of the page size and of
/// BLAKE3's chunk size, so window boundaries never break parallelism).
const MMAP_WINDOW: u64 = 64 << 20;
/// Inputs at least this large use BLAKE3's rayon tree hashing.
const RAYON_THRESHOLD: usize = 128 << 10;
/// Streaming buffer for SHA-256 and small files.
const READ_BUF: usize = 1 << 20;

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
    let mut file = File::open(path).map_err(io_err(path))?;
    let before = file.metadata().map_err(io_err(path))?;
    if !before.is_file() {
        return Err(HashError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let size = before.len();
    let (digest, read) = match alg {
        Algorithm::Blake3 if size >= MMAP_THRESHOLD => (blake3_windows(&file, size, path)?, size),
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

/// Stream the file through a fixed buffer; returns the digest and bytes read.
fn stream(file: &mut File, alg: Algorithm, path: &Path) -> Result<(Digest, u64), HashError> {
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    let mut b3 = blake3::Hasher::new();
    let mut s2 = sha2::Sha256::new();
    loop {
        let n = match file.read(&mut buf) {
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
}

/// BLAKE3 over consecutive memory-map windows, each hashed with rayon.
fn blake3_windows(file: &File, size: u64, path: &Path) -> Result<Digest, HashError> {
    let mut h = blake3::Hasher::new();
    let mut off = 0u64;
    while off < size {
        let len = (size - off).min(MMAP_WINDOW);
        // SAFETY: the map is read-only and dropped before the next window.
        // A concurrent writer could change the bytes under us; that is the
        // documented race of every mmap hasher, and it is detected after
        // the fact by the metadata comparison in `hash_file` (size/mtime).
        // Truncation under the map would raise SIGBUS, so we re-check the
        // length right before mapping each window.
        let cur = file.metadata().map_err(io_err(path))?.len();
        if cur < off + len {
            return Err(HashError::Changed {
                path: path.to_path_buf(),
                detail: format!("size {size} before, {cur} during hashing"),
            });
        }
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(off)
                .len(len as usize)
                .map(file)
        }
        .map_err(io_err(path))?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        h.update_rayon(&map);
        drop(map);
        off += len;
    }
    Ok(*h.finalize().as_bytes())
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
        for &size in &[0usize, 1, 1023, 1 << 20, (1 << 20) + 7, 3 << 20] {
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
