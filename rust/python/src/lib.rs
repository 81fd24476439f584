//! `maestro_core._native`: the thin PyO3 layer over `maestro-engine`.
//! Converts values, releases the GIL around heavy work, and maps every
//! engine error to a `maestro_core.errors` exception (never a panic).
use pyo3::prelude::*;

/// mimalloc for the extension's Rust allocations: large outputs (violation
/// lists, proof arrays, reorder buffers) are reused from its pages instead of
/// being mapped, zeroed by the kernel and unmapped again on every call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cep;
mod duel;
mod errors;
mod evidence;
mod hash;
mod hypergraph;
mod merkle;
mod rego_mut;
mod shapley;
mod span_wire;
mod store;

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    quiet_library_backtraces();
    m.add("__version__", maestro_engine::VERSION)?;
    m.add(
        "KEY_HASH_SEED",
        format!(
            "siphash24:{:016x}{:016x}",
            maestro_engine::cep::run::KEY_HASH_KEYS.0,
            maestro_engine::cep::run::KEY_HASH_KEYS.1
        ),
    )?;
    m.add_function(wrap_pyfunction!(hash::hash_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(hash::hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(hash::hash_files, m)?)?;
    m.add_class::<merkle::MerkleTree>()?;
    m.add_function(wrap_pyfunction!(merkle::leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::node_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::empty_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::verify_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::public_key_of, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::parse_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::build_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::scan_directory, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::sign_entries, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::open_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::compare_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::verify_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::parse_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(evidence::open_note, m)?)?;
    m.add_class::<store::Store>()?;
    m.add_class::<duel::Duel>()?;
    m.add_function(wrap_pyfunction!(duel::preference_regrets, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_load, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_from_modules, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_parse_decisions, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_mutants, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_mutate, m)?)?;
    m.add_function(wrap_pyfunction!(rego_mut::rego_to_v1, m)?)?;
    m.add_class::<rego_mut::RegoEvaluator>()?;
    m.add_function(wrap_pyfunction!(shapley::shapley_exact, m)?)?;
    m.add_function(wrap_pyfunction!(shapley::shapley_interactions, m)?)?;
    m.add_function(wrap_pyfunction!(shapley::shapley_sample, m)?)?;
    m.add_class::<shapley::SparseGame>()?;
    m.add_class::<shapley::CallableGame>()?;
    m.add_class::<hypergraph::Hypergraph>()?;
    m.add_class::<hypergraph::KHop>()?;
    m.add_function(wrap_pyfunction!(hypergraph::select_tests, m)?)?;
    m.add_class::<cep::CompiledGuard>()?;
    m.add_class::<cep::EventSet>()?;
    m.add_class::<cep::GuardMatcher>()?;
    m.add_class::<cep::SpanFeed>()?;
    m.add_function(wrap_pyfunction!(cep::compile_guards, m)?)?;
    m.add_function(wrap_pyfunction!(cep::compile_guard_ast, m)?)?;
    m.add_function(wrap_pyfunction!(cep::parse_guards, m)?)?;
    m.add_function(wrap_pyfunction!(cep::engine_version, m)?)?;
    Ok(())
}

/// Library backtraces off unless the user asks for them by name.
///
/// regorus reports undefined values and failed evaluations as `anyhow` errors,
/// and a mutation run creates many of them. When `RUST_BACKTRACE` is set (as
/// many developer shells and CI images do), each one captures a stack
/// backtrace: about a fifth of a mutation run's time, measured with `perf`.
/// None of these backtraces can reach a user: every engine error crosses into
/// Python as a typed exception carrying its message only. `RUST_LIB_BACKTRACE`
/// governs `Backtrace::capture` alone (panic messages still follow
/// `RUST_BACKTRACE`), and a value the user set is kept.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Runs once, while the interpreter imports this module (under the
        // import lock), before any engine code that reads the variable.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}
