//! `engine::{sign, manifest, note}` → keys, manifests and checkpoints.
use std::path::PathBuf;

use maestro_engine::manifest::{self, Difference, Manifest};
use maestro_engine::note::Checkpoint;
use maestro_engine::sign::{KeyPair, PublicKey};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{err, guard, run};
use crate::hash::alg;

/// Returns `(private PEM, public PEM, signed-note verifier key)`.
#[pyfunction]
pub fn generate_key(name: &str) -> PyResult<(String, String, String)> {
    guard(|| {
        let k = KeyPair::generate(name).map_err(err)?;
        let p = k.public();
        Ok((
            k.to_pem().map_err(err)?,
            p.to_pem().map_err(err)?,
            p.to_vkey().map_err(err)?,
        ))
    })
}

/// Public forms of a private key: `(name, public PEM, verifier key, key id)`.
#[pyfunction]
pub fn public_key_of(private_pem: &str) -> PyResult<(String, String, String, String)> {
    guard(|| {
        let k = KeyPair::from_pem(private_pem, "private key").map_err(err)?;
        let p = k.public();
        Ok((
            k.name.clone(),
            p.to_pem().map_err(err)?,
            p.to_vkey().map_err(err)?,
            p.key_id(),
        ))
    })
}

/// Normalise a public key (PEM or verifier key): `(name or None, PEM, key id)`.
#[pyfunction]
pub fn parse_public_key(text: &str) -> PyResult<(Option<String>, String, String)> {
    guard(|| {
        let p = PublicKey::parse(text, "public key").map_err(err)?;
        Ok((p.name.clone(), p.to_pem().map_err(err)?, p.key_id()))
    })
}

fn manifest_dict<'py>(py: Python<'py>, m: &Manifest) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("algorithm", m.algorithm.name())?;
    d.set_item("root", PyBytes::new(py, &m.root))?;
    d.set_item("size", m.entries.len())?;
    let entries: Vec<(String, u64, Bound<'py, PyBytes>)> = m
        .entries
        .iter()
        .map(|e| (e.path.clone(), e.size, PyBytes::new(py, &e.digest)))
        .collect();
    d.set_item("entries", entries)?;
    Ok(d)
}

/// Hash every file under `directory` and sign the manifest.
/// Returns `(envelope bytes, manifest dict)`.
#[pyfunction]
#[pyo3(signature = (directory, private_pem, algorithm = "blake3"))]
pub fn build_manifest<'py>(
    py: Python<'py>,
    directory: PathBuf,
    private_pem: &str,
    algorithm: &str,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
    let a = alg(algorithm)?;
    let key = KeyPair::from_pem(private_pem, "private key").map_err(err)?;
    let (env, m) = run(py, || {
        let m = manifest::build(&directory, a)?;
        Ok((m.sign(&key), m))
    })?;
    Ok((PyBytes::new(py, &env), manifest_dict(py, &m)?))
}

/// Build a signed manifest from already known `(path, size, digest)` entries
/// (they must be sorted and unique).
#[pyfunction]
#[pyo3(signature = (entries, private_pem, algorithm = "blake3"))]
pub fn sign_entries<'py>(
    py: Python<'py>,
    entries: Vec<(String, u64, Vec<u8>)>,
    private_pem: &str,
    algorithm: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let a = alg(algorithm)?;
    let key = KeyPair::from_pem(private_pem, "private key").map_err(err)?;
    let mut es = Vec::with_capacity(entries.len());
    for (i, (path, size, d)) in entries.into_iter().enumerate() {
        let digest: [u8; 32] = d.as_slice().try_into().map_err(|_| {
            crate::errors::InputError::new_err(format!("entries[{i}]: digest must be 32 bytes"))
        })?;
        es.push(manifest::Entry { path, size, digest });
    }
    let m = Manifest::from_entries(a, es).map_err(err)?;
    Ok(PyBytes::new(py, &m.sign(&key)))
}

/// Parse an envelope; verify its signature when `public_key` is given.
#[pyfunction]
#[pyo3(signature = (envelope, public_key = None))]
pub fn open_manifest<'py>(
    py: Python<'py>,
    envelope: &[u8],
    public_key: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let m = guard(|| match public_key {
        Some(k) => {
            let pk = PublicKey::parse(k, "public key").map_err(err)?;
            Manifest::open(envelope, &pk).map_err(err)
        }
        None => Manifest::open_unverified(envelope).map_err(err),
    })?;
    manifest_dict(py, &m)
}

/// Compare a folder with a verified manifest: list of
/// `(kind, path, description)` sorted by path bytes.
#[pyfunction]
pub fn compare_manifest(
    py: Python<'_>,
    envelope: Vec<u8>,
    public_key: &str,
    directory: PathBuf,
) -> PyResult<Vec<(String, String, String)>> {
    let pk = PublicKey::parse(public_key, "public key").map_err(err)?;
    let m = Manifest::open(&envelope, &pk).map_err(err)?;
    let diffs = run(py, || Ok(manifest::compare(&m, &directory)?))?;
    Ok(diffs
        .iter()
        .map(|d| {
            let kind = match d {
                Difference::Missing(_) => "missing",
                Difference::Unexpected(_) => "unexpected",
                Difference::Size { .. } => "size",
                Difference::Digest { .. } => "digest",
            };
            (kind.to_string(), d.path().to_string(), d.describe())
        })
        .collect())
}

/// Verify a signed checkpoint: `(origin, size, root)`.
#[pyfunction]
pub fn verify_checkpoint<'py>(
    py: Python<'py>,
    text: &str,
    public_key: &str,
) -> PyResult<(String, u64, Bound<'py, PyBytes>)> {
    let cp = guard(|| {
        let pk = PublicKey::parse(public_key, "log key").map_err(err)?;
        Checkpoint::verify(text, &pk).map_err(err)
    })?;
    Ok((cp.origin, cp.size, PyBytes::new(py, &cp.root)))
}

/// Parse a checkpoint's note text without checking signatures.
#[pyfunction]
pub fn parse_checkpoint<'py>(
    py: Python<'py>,
    text: &str,
) -> PyResult<(String, u64, Bound<'py, PyBytes>)> {
    let cp = guard(|| {
        let body = text
            .split_once("\n\n")
            .map(|(b, _)| format!("{b}\n"))
            .unwrap_or_else(|| text.to_string());
        Checkpoint::parse_body(&body).map_err(err)
    })?;
    Ok((cp.origin, cp.size, PyBytes::new(py, &cp.root)))
}

/// Every regular file under `directory` (symlinks followed, loops refused):
/// `(relative path, full path)` sorted by relative-path bytes.
#[pyfunction]
pub fn scan_directory(py: Python<'_>, directory: PathBuf) -> PyResult<Vec<(String, PathBuf)>> {
    run(py, || {
        let files = manifest::scan_dir(&directory)?;
        for (rel, full) in &files {
            manifest::check_rel_path(rel).map_err(|reason| manifest::ManifestError::Walk {
                path: full.clone(),
                reason,
            })?;
        }
        Ok(files)
    })
}
