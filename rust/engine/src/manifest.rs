//! Release manifests: an in-toto Statement v1 over every file of a folder,
//! with an RFC 9162 Merkle root, wrapped in a DSSE envelope signed with
//! Ed25519.
//!
//! Leaf `i` is `H(0x00 ‖ JCS({"digest": hex, "path": p, "size": n}))` for the
//! `i`-th file in byte order of its relative `/`-separated path. JSON is
//! canonical (RFC 8785 JCS: sorted keys, no white space); a statement whose
//! bytes are not canonical, or whose subjects are unsorted or repeated, is
//! refused.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::hash::{hash_files, Algorithm, Digest, FileDigest, HashError};
use crate::merkle::{leaf_hash, Tree};
use crate::sign::{Envelope, KeyPair, PublicKey, SignError};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://maestro-core.dev/evidence/manifest/v1";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Errors of the manifest module.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("{path}: {reason}")]
    Walk { path: PathBuf, reason: String },
    #[error("{path}: symlink loop")]
    SymlinkLoop { path: PathBuf },
    #[error("manifest {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Mismatch(String),
}

type Result<T> = std::result::Result<T, ManifestError>;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

impl Entry {
    /// JCS form hashed into the leaf.
    pub fn canonical(&self) -> Vec<u8> {
        // Keys sorted by serde_json's BTreeMap-backed Map: JCS for
        // strings and integers.
        let v = json!({"digest": hex::encode(self.digest), "path": self.path, "size": self.size});
        serde_json::to_vec(&v).unwrap_or_default()
    }

    pub fn leaf(&self, alg: Algorithm) -> Digest {
        leaf_hash(alg, &self.canonical())
    }
}

/// A relative path is valid when it is non-empty UTF-8 with `/` separators
/// and no empty, `.` or `..` components.
pub fn check_rel_path(p: &str) -> std::result::Result<(), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p.starts_with('/') {
        return Err(format!("{p:?} is absolute"));
    }
    if p.contains('\\') || p.contains('\0') {
        return Err(format!("{p:?} contains a backslash or NUL"));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("{p:?} has an empty, '.' or '..' component"));
    }
    Ok(())
}

/// Every regular file below `dir` (following symlinks, refusing loops), as
/// `(relative path, full path)` sorted by relative-path bytes.
pub fn scan_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let meta = std::fs::metadata(dir).map_err(|e| ManifestError::Walk {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(ManifestError::Walk {
            path: dir.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(dir).follow_links(true) {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                if e.loop_ancestor().is_some() {
                    return Err(ManifestError::SymlinkLoop { path });
                }
                let reason = e
                    .io_error()
                    .map(|io| {
                        if io.raw_os_error() == Some(40) {
                            "symlink loop".to_string()
                        } else {
                            io.to_string()
                        }
                    })
                    .unwrap_or_else(|| e.to_string());
                if reason == "symlink loop" {
                    return Err(ManifestError::SymlinkLoop { path });
                }
                return Err(ManifestError::Walk { path, reason });
            }
        };
        if item.file_type().is_dir() {
            continue;
        }
        let full = item.path().to_path_buf();
        if !item.file_type().is_file() {
            return Err(ManifestError::Walk {
                path: full,
                reason: "not a regular file".into(),
            });
        }
        let rel = full.strip_prefix(dir).map_err(|_| ManifestError::Walk {
            path: full.clone(),
            reason: "outside the scanned folder".into(),
        })?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => {
                    parts.push(s.to_str().ok_or_else(|| ManifestError::Walk {
                        path: full.clone(),
                        reason: "path is not valid UTF-8".into(),
                    })?)
                }
                _ => {
                    return Err(ManifestError::Walk {
                        path: full.clone(),
                        reason: "unexpected path component".into(),
                    })
                }
            }
        }
        out.push((parts.join("/"), full));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Hash the listed files of a scan (parallel across files).
pub fn entries_for(files: &[(String, PathBuf)], alg: Algorithm) -> Result<Vec<Entry>> {
    let paths: Vec<&Path> = files.iter().map(|(_, p)| p.as_path()).collect();
    let digests: Vec<FileDigest> = hash_files(&paths, alg)?;
    Ok(files
        .iter()
        .zip(digests)
        .map(|((rel, _), d)| Entry {
            path: rel.clone(),
            size: d.size,
            digest: d.digest,
        })
        .collect())
}

/// The manifest content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub algorithm: Algorithm,
    pub entries: Vec<Entry>,
    pub root: Digest,
}

impl Manifest {
    pub fn from_entries(algorithm: Algorithm, entries: Vec<Entry>) -> Result<Self> {
        check_order(&entries)?;
        let root = tree_of(algorithm, &entries).root();
        Ok(Manifest {
            algorithm,
            entries,
            root,
        })
    }

    /// Canonical in-toto Statement v1 bytes.
    pub fn statement(&self) -> Vec<u8> {
        let alg = self.algorithm.name();
        let subjects: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                json!({"name": e.path, "digest": {alg: hex::encode(e.digest)},
                       "annotations": {"size": e.size}})
            })
            .collect();
        let v = json!({
            "_type": STATEMENT_TYPE,
            "subject": subjects,
            "predicateType": PREDICATE_TYPE,
            "predicate": {"algorithm": alg, "treeSize": self.entries.len(),
                          "root": hex::encode(self.root),
                          "leaf": "H(0x00 || JCS({digest,path,size}))"},
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Parse canonical statement bytes; checks canonical form, order and root.
    pub fn from_statement(bytes: &[u8]) -> Result<Self> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid("statement", format!("malformed JSON: {e}")))?;
        let get = |k: &str| v.get(k).ok_or_else(|| invalid(k, "missing"));
        if get("_type")?.as_str() != Some(STATEMENT_TYPE) {
            return Err(invalid("_type", format!("expected {STATEMENT_TYPE}")));
        }
        if get("predicateType")?.as_str() != Some(PREDICATE_TYPE) {
            return Err(invalid(
                "predicateType",
                format!("expected {PREDICATE_TYPE}"),
            ));
        }
        let pred = get("predicate")?;
        let alg: Algorithm = pred
            .get("algorithm")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("predicate.algorithm", "missing"))?
            .parse()
            .map_err(|e: HashError| invalid("predicate.algorithm", e.to_string()))?;
        let subj = get("subject")?
            .as_array()
            .ok_or_else(|| invalid("subject", "not an array"))?;
        let mut entries = Vec::with_capacity(subj.len());
        for (i, s) in subj.iter().enumerate() {
            let f = |k: &str| format!("subject[{i}].{k}");
            let path = s
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(f("name"), "missing"))?;
            check_rel_path(path).map_err(|r| invalid(f("name"), r))?;
            let dmap = s
                .get("digest")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid(f("digest"), "missing"))?;
            let hexd = dmap
                .get(alg.name())
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(f("digest"), format!("no {} digest", alg.name())))?;
            if hexd.len() != 64
                || hexd
                    .bytes()
                    .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(invalid(f("digest"), "not 64 lower-case hex digits"));
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hexd, &mut digest)
                .map_err(|e| invalid(f("digest"), e.to_string()))?;
            let size = s
                .get("annotations")
                .and_then(|a| a.get("size"))
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    invalid(f("annotations.size"), "missing or not an unsigned integer")
                })?;
            entries.push(Entry {
                path: path.to_string(),
                size,
                digest,
            });
        }
        let n = pred
            .get("treeSize")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("predicate.treeSize", "missing"))?;
        if n != entries.len() as u64 {
            return Err(invalid(
                "predicate.treeSize",
                format!("{n} but there are {} subjects", entries.len()),
            ));
        }
        let root_hex = pred
            .get("root")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("predicate.root", "missing"))?;
        let m = Manifest::from_entries(alg, entries)?;
        if hex::encode(m.root) != root_hex {
            return Err(invalid(
                "predicate.root",
                format!("{root_hex} but the subjects give {}", hex::encode(m.root)),
            ));
        }
        if m.statement() != bytes {
            return Err(invalid("statement", "not in canonical form (JCS)"));
        }
        Ok(m)
    }

    pub fn tree(&self) -> Tree {
        tree_of(self.algorithm, &self.entries)
    }

    /// Sign into a DSSE envelope (canonical JSON bytes).
    pub fn sign(&self, key: &KeyPair) -> Vec<u8> {
        let env = Envelope::sign(PAYLOAD_TYPE, &self.statement(), key);
        serde_json::to_vec(&serde_json::to_value(&env).unwrap_or(Value::Null)).unwrap_or_default()
    }

    /// Verify an envelope's signature by `key` and parse its statement.
    pub fn open(envelope: &[u8], key: &PublicKey) -> Result<Self> {
        let env = Envelope::parse(envelope, "manifest")?;
        if env.payload_type != PAYLOAD_TYPE {
            return Err(invalid("payloadType", format!("expected {PAYLOAD_TYPE}")));
        }
        let payload = env.verify(key)?;
        Self::from_statement(&payload)
    }

    /// Parse without checking the signature (for inspection only).
    pub fn open_unverified(envelope: &[u8]) -> Result<Self> {
        let env = Envelope::parse(envelope, "manifest")?;
        Self::from_statement(&env.payload_bytes()?)
    }
}

fn tree_of(alg: Algorithm, entries: &[Entry]) -> Tree {
    let canon: Vec<Vec<u8>> = entries.iter().map(Entry::canonical).collect();
    Tree::from_leaves(alg, &canon)
}

fn check_order(entries: &[Entry]) -> Result<()> {
    for (i, w) in entries.windows(2).enumerate() {
        match w[0].path.as_bytes().cmp(w[1].path.as_bytes()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(invalid(
                    format!("subject[{}].name", i + 1),
                    format!("{:?} is listed twice", w[1].path),
                ))
            }
            std::cmp::Ordering::Greater => {
                return Err(invalid(
                    format!("subject[{}].name", i + 1),
                    format!(
                        "{:?} is out of order (paths must be sorted by bytes)",
                        w[1].path
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Build a manifest of a folder.
pub fn build(dir: &Path, alg: Algorithm) -> Result<Manifest> {
    let files = scan_dir(dir)?;
    for (rel, full) in &files {
        check_rel_path(rel).map_err(|reason| ManifestError::Walk {
            path: full.clone(),
            reason,
        })?;
    }
    Manifest::from_entries(alg, entries_for(&files, alg)?)
}

/// One difference between a manifest and a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Missing(String),
    Unexpected(String),
    Size {
        path: String,
        expected: u64,
        found: u64,
    },
    Digest {
        path: String,
    },
}

impl Difference {
    pub fn path(&self) -> &str {
        match self {
            Difference::Missing(p) | Difference::Unexpected(p) => p,
            Difference::Size { path, .. } | Difference::Digest { path } => path,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Difference::Missing(p) => format!("{p}: listed in the manifest but missing"),
            Difference::Unexpected(p) => format!("{p}: present but not in the manifest"),
            Difference::Size {
                path,
                expected,
                found,
            } => format!("{path}: size {found}, manifest says {expected}"),
            Difference::Digest { path } => {
                format!("{path}: content differs from the manifest digest")
            }
        }
    }
}

/// Compare a folder with a manifest; differences sorted by path bytes.
pub fn compare(m: &Manifest, dir: &Path) -> Result<Vec<Difference>> {
    let files = scan_dir(dir)?;
    let listed: BTreeMap<&[u8], &Entry> =
        m.entries.iter().map(|e| (e.path.as_bytes(), e)).collect();
    let present: BTreeMap<&[u8], &(String, PathBuf)> =
        files.iter().map(|f| (f.0.as_bytes(), f)).collect();
    let mut diffs = Vec::new();
    let mut to_hash = Vec::new();
    for e in &m.entries {
        match present.get(e.path.as_bytes()) {
            None => diffs.push(Difference::Missing(e.path.clone())),
            Some(f) => to_hash.push(((*f).clone(), e)),
        }
    }
    for (rel, _) in &files {
        if !listed.contains_key(rel.as_bytes()) {
            diffs.push(Difference::Unexpected(rel.clone()));
        }
    }
    let just_files: Vec<(String, PathBuf)> = to_hash.iter().map(|(f, _)| f.clone()).collect();
    let got = entries_for(&just_files, m.algorithm)?;
    for (g, (_, e)) in got.iter().zip(&to_hash) {
        if g.size != e.size {
            diffs.push(Difference::Size {
                path: e.path.clone(),
                expected: e.size,
                found: g.size,
            });
        } else if g.digest != e.digest {
            diffs.push(Difference::Digest {
                path: e.path.clone(),
            });
        }
    }
    diffs.sort_by(|a, b| a.path().as_bytes().cmp(b.path().as_bytes()));
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_sign_open_compare() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("b.txt"), b"bee").unwrap();
        std::fs::write(d.path().join("sub/a.bin"), b"a").unwrap();
        std::fs::write(d.path().join("a.txt"), b"").unwrap();
        let m = build(d.path(), Algorithm::Blake3).unwrap();
        let names: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["a.txt", "b.txt", "sub/a.bin"]);
        let k = KeyPair::generate("t").unwrap();
        let env = m.sign(&k);
        assert_eq!(Manifest::open(&env, &k.public()).unwrap(), m);
        assert!(compare(&m, d.path()).unwrap().is_empty());
        std::fs::write(d.path().join("b.txt"), b"bee!").unwrap();
        std::fs::write(d.path().join("c.txt"), b"new").unwrap();
        let diffs = compare(&m, d.path()).unwrap();
        assert_eq!(diffs[0].path(), "b.txt");
        assert_eq!(diffs[1], Difference::Unexpected("c.txt".into()));
    }

    #[test]
    fn rejects_unsorted_and_duplicates() {
        let e = |p: &str| Entry {
            path: p.into(),
            size: 0,
            digest: [0; 32],
        };
        assert!(Manifest::from_entries(Algorithm::Sha256, vec![e("b"), e("a")]).is_err());
        assert!(Manifest::from_entries(Algorithm::Sha256, vec![e("a"), e("a")]).is_err());
    }
}
