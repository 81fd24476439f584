//! One exhaustive mapping from engine errors to `maestro_core.errors`.
use std::any::Any;
use std::io::ErrorKind;

use maestro_engine::cep::CepError;
use maestro_engine::duel::DuelError as EngDuelError;
use maestro_engine::hash::HashError;
use maestro_engine::hypergraph::HypergraphError;
use maestro_engine::manifest::ManifestError as EngManifestError;
use maestro_engine::merkle::MerkleError;
use maestro_engine::note::NoteError;
use maestro_engine::rego_mut::RegoError;
use maestro_engine::shapley::ShapleyError;
use maestro_engine::sign::SignError;
use maestro_engine::store::StoreError;
use maestro_engine::Error;
use pyo3::prelude::*;

pyo3::import_exception!(maestro_core.errors, InputError);
pyo3::import_exception!(maestro_core.errors, FileError);
pyo3::import_exception!(maestro_core.errors, FileChangedError);
pyo3::import_exception!(maestro_core.errors, ManifestError);
pyo3::import_exception!(maestro_core.errors, VerificationError);
pyo3::import_exception!(maestro_core.errors, StorageError);
pyo3::import_exception!(maestro_core.errors, NotFoundError);
pyo3::import_exception!(maestro_core.errors, InternalError);
pyo3::import_exception!(maestro_core.errors, DuelError);
pyo3::import_exception!(maestro_core.errors, ConflictError);
pyo3::import_exception!(maestro_core.errors, PolicyError);
pyo3::import_exception!(maestro_core.errors, PolicySyntaxError);
pyo3::import_exception!(maestro_core.errors, PolicyTimeoutError);
pyo3::import_exception!(maestro_core.errors, DecisionLogError);
pyo3::import_exception!(maestro_core.errors, GameError);
pyo3::import_exception!(maestro_core.errors, GuardError);
pyo3::import_exception!(maestro_core.errors, GuardSyntaxError);
pyo3::import_exception!(maestro_core.errors, TraceFormatError);
pyo3::import_exception!(maestro_core.errors, EventTimeError);

fn hash_err(e: HashError) -> PyErr {
    let msg = e.to_string();
    match e {
        HashError::Io { source, .. } => match source.kind() {
            ErrorKind::NotFound | ErrorKind::PermissionDenied => FileError::new_err(msg),
            _ if source.raw_os_error() == Some(40) => {
                FileError::new_err(format!("{msg} (symlink loop)"))
            }
            _ => FileError::new_err(msg),
        },
        HashError::NotAFile { .. } => FileError::new_err(msg),
        HashError::Changed { .. } => FileChangedError::new_err(msg),
        HashError::UnknownAlgorithm(_) => InputError::new_err(msg),
    }
}

fn merkle_err(e: MerkleError) -> PyErr {
    let msg = e.to_string();
    match e {
        MerkleError::IndexOutOfRange { .. }
        | MerkleError::SizeOutOfRange { .. }
        | MerkleError::BadDigestLength { .. } => InputError::new_err(msg),
        MerkleError::Verification(_) => VerificationError::new_err(msg),
        MerkleError::MissingNode { .. } | MerkleError::Storage(_) => StorageError::new_err(msg),
    }
}

fn sign_err(e: SignError) -> PyErr {
    let msg = e.to_string();
    match e {
        SignError::BadKey { .. } | SignError::BadEnvelope { .. } => InputError::new_err(msg),
        SignError::BadSignature(_) => VerificationError::new_err(msg),
    }
}

pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Hash(e) => hash_err(e),
        Error::Merkle(e) => merkle_err(e),
        Error::Sign(e) => sign_err(e),
        Error::Note(e) => {
            let msg = e.to_string();
            match e {
                NoteError::Malformed { .. } => InputError::new_err(msg),
                NoteError::Signature(_) => VerificationError::new_err(msg),
            }
        }
        Error::Manifest(e) => {
            let msg = e.to_string();
            match e {
                EngManifestError::Hash(h) => hash_err(h),
                EngManifestError::Sign(s) => sign_err(s),
                EngManifestError::Walk { .. } | EngManifestError::SymlinkLoop { .. } => {
                    FileError::new_err(msg)
                }
                EngManifestError::Invalid { .. } => ManifestError::new_err(msg),
                EngManifestError::Mismatch(_) => VerificationError::new_err(msg),
            }
        }
        Error::Store(e) => {
            let msg = e.to_string();
            match e {
                StoreError::Open { .. } | StoreError::Sqlite(_) | StoreError::Corrupt(_) => {
                    StorageError::new_err(msg)
                }
                StoreError::NotFound { .. } => NotFoundError::new_err(msg),
                StoreError::Merkle(m) => merkle_err(m),
                StoreError::Invalid(_) => InputError::new_err(msg),
                StoreError::Conflict(_) => ConflictError::new_err(msg),
            }
        }
        Error::Duel(e) => {
            let msg = e.to_string();
            match e {
                EngDuelError::UnknownArm { .. } | EngDuelError::Invalid(_) => {
                    DuelError::new_err(msg)
                }
                EngDuelError::State(_) => StorageError::new_err(msg),
            }
        }
        Error::Rego(e) => {
            let msg = e.to_string();
            match e {
                RegoError::Io { source, .. } => match source.kind() {
                    ErrorKind::NotFound | ErrorKind::PermissionDenied => FileError::new_err(msg),
                    _ => FileError::new_err(msg),
                },
                RegoError::Syntax { .. } => PolicySyntaxError::new_err(msg),
                RegoError::Compile(_) | RegoError::Data { .. } | RegoError::Eval { .. } => {
                    PolicyError::new_err(msg)
                }
                RegoError::Timeout { .. } => PolicyTimeoutError::new_err(msg),
                RegoError::Decision { .. } => DecisionLogError::new_err(msg),
                RegoError::Invalid(_) => InputError::new_err(msg),
                RegoError::Panic(_) => {
                    InternalError::new_err(format!("internal error (a bug, please report): {msg}"))
                }
            }
        }
        Error::Shapley(e) => {
            let msg = e.to_string();
            match e {
                ShapleyError::TableLength { .. }
                | ShapleyError::NonFinite { .. }
                | ShapleyError::TooManyPlayers { .. }
                | ShapleyError::PlayerCount { .. }
                | ShapleyError::Invalid { .. }
                | ShapleyError::Missing { .. }
                | ShapleyError::Budget { .. }
                | ShapleyError::Singular { .. } => InputError::new_err(msg),
                ShapleyError::GameValue { .. }
                | ShapleyError::GameShape { .. }
                | ShapleyError::Game(_) => GameError::new_err(msg),
                ShapleyError::Threads(_) => InternalError::new_err(msg),
            }
        }
        Error::Hypergraph(e) => {
            let msg = e.to_string();
            match e {
                HypergraphError::BadCsr { .. }
                | HypergraphError::BadWeight { .. }
                | HypergraphError::NodeOutOfRange { .. }
                | HypergraphError::Invalid(_) => InputError::new_err(msg),
            }
        }
        Error::Cep(e) => {
            let msg = e.to_string();
            match e {
                CepError::Syntax { .. } => GuardSyntaxError::new_err(msg),
                CepError::Invalid { .. } => GuardError::new_err(msg),
                CepError::Otlp { .. } | CepError::UnknownAttributeType { .. } => {
                    TraceFormatError::new_err(msg)
                }
                CepError::TimeOutOfRange { .. }
                | CepError::NonMonotonic { .. }
                | CepError::WatermarkRegression { .. } => EventTimeError::new_err(msg),
                CepError::Finished | CepError::Input(_) => InputError::new_err(msg),
                CepError::Io { .. } => FileError::new_err(msg),
            }
        }
    }
}

/// A caught panic is a bug: it surfaces as `InternalError`, never as
/// `pyo3.PanicException`.
pub fn panic_to_py(p: Box<dyn Any + Send>) -> PyErr {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    InternalError::new_err(format!("internal error (a bug, please report): {what}"))
}

/// Convert any engine-module error.
pub fn err<E: Into<Error>>(e: E) -> PyErr {
    to_py(e.into())
}

/// Release the GIL, run `f`, catch panics, convert errors.
pub fn run<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, Error> + Send,
{
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .map_err(panic_to_py)?
        .map_err(to_py)
}

/// Like [`run`] but keeps the GIL (cheap calls, or calls touching Python).
pub fn guard<T, F>(f: F) -> PyResult<T>
where
    F: FnOnce() -> PyResult<T>,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(panic_to_py)?
}

/// What a non-array argument was, for "expected an array" messages:
/// `a <dtype> array of shape <shape>` or `a <type name>`.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match (obj.getattr("dtype"), obj.getattr("shape")) {
        (Ok(d), Ok(s)) => format!("a {d} array of shape {s}"),
        _ => obj
            .get_type()
            .name()
            .map(|n| format!("a {n}"))
            .unwrap_or_else(|_| "another object".into()),
    }
}
