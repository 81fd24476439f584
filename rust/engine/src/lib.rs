//! `maestro-engine`: the pure-Rust core of maestro_core.
//!
//! One module per concept; each has its own `thiserror` enum, gathered in
//! [`Error`] so that bindings (PyO3, C ABI) map every failure exhaustively.
//! Caller data never reaches an `unwrap`.

pub mod cep;
pub mod duel;
pub mod hash;
pub mod hypergraph;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod registry;
#[cfg(feature = "rego")]
pub mod rego_mut;
pub mod shapley;
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
    Duel(#[from] duel::DuelError),
    #[cfg(feature = "rego")]
    #[error(transparent)]
    Rego(#[from] rego_mut::RegoError),
    #[error(transparent)]
    Shapley(#[from] shapley::ShapleyError),
    #[error(transparent)]
    Hypergraph(#[from] hypergraph::HypergraphError),
    #[error(transparent)]
    Cep(#[from] cep::CepError),
}
