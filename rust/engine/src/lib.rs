//! `maestro-engine`: the pure-Rust core of maestro_core.
//!
//! One module per concept; each has its own `thiserror` enum, gathered in
//! [`Error`] so that bindings (PyO3, C ABI) map every failure exhaustively.
//! Caller data never reaches an `unwrap`.

pub mod cep;
pub mod hash;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod sign;
pub mod store;

pub use hash::{Algorithm, Digest};

/// Version of the engine, recorded in evidence and bundles.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Hash(#[from] hash::HashError),
    #[error(transparent)]
    Merkle(#[from] merkle::MerkleError),
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    #[error(transparent)]
    Note(#[from] note::NoteError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Cep(#[from] cep::CepError),
}
