//! `engine::shapley` → `_native.shapley_*`, `_native.SparseGame`,
//! `_native.CallableGame`.
//!
//! Heavy work runs with the GIL released ([`run`]). A Python callable game
//! re-attaches to the interpreter once per batch of coalitions, checks for
//! Ctrl-C, and keeps the exception it raised so it reaches the caller intact.
use std::sync::{Mutex, TryLockError};

use maestro_engine::shapley::{
    self, Cache, Coalitions, Estimate, Game, Method, Options, ShapleyError, MAX_EXACT_PLAYERS,
};
use maestro_engine::Error;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{err, run, InputError, InternalError};

fn contiguous<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        InputError::new_err(format!(
            "{what}: array is not contiguous (use numpy.ascontiguousarray)"
        ))
    })
}

/// Exact Shapley values of a value table (length `2^n`, `n ≤ 25`).
#[pyfunction]
#[pyo3(signature = (values, threads = None))]
pub fn shapley_exact<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let v = contiguous(&values, "value table")?;
    let phi = run(py, || {
        Ok(shapley::with_threads(threads, || shapley::exact(v))?)
    })?;
    Ok(phi.into_pyarray(py))
}

/// Pairwise Shapley interaction indices (`n × n`, Shapley values on the diagonal).
#[pyfunction]
#[pyo3(signature = (values, threads = None))]
pub fn shapley_interactions<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let v = contiguous(&values, "value table")?;
    let n = shapley::table_players(v).map_err(err)?;
    let m = run(py, || {
        Ok(shapley::with_threads(threads, || shapley::interactions(v))?)
    })?;
    let arr =
        Array2::from_shape_vec((n, n), m).map_err(|e| InternalError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Measured coalitions (rows of 0/1 bytes) and their values.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct SparseGame {
    inner: shapley::SparseGame,
}

#[pymethods]
impl SparseGame {
    #[new]
    fn new(masks: PyReadonlyArray2<'_, u8>, values: PyReadonlyArray1<'_, f64>) -> PyResult<Self> {
        let n = masks.shape()[1];
        let flat = masks.as_slice().map_err(|_| {
            InputError::new_err(
                "sparse game: masks array is not C-contiguous (use numpy.ascontiguousarray)",
            )
        })?;
        let vals = contiguous(&values, "sparse game values")?;
        let rows = Coalitions::from_bytes(n, flat).map_err(err)?;
        let inner = shapley::SparseGame::new(&rows, vals).map_err(err)?;
        Ok(SparseGame { inner })
    }

    #[getter]
    fn n_players(&self) -> usize {
        self.inner.players()
    }

    /// Distinct measured coalitions.
    #[getter]
    fn measured(&self) -> usize {
        self.inner.measured()
    }

    /// The full value table; an error names a coalition that was not measured.
    fn to_table<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let t = run(py, || Ok(self.inner.to_table()?))?;
        Ok(t.into_pyarray(py))
    }
}

struct SparseRef<'a>(&'a shapley::SparseGame);

impl Game for SparseRef<'_> {
    fn players(&self) -> usize {
        self.0.players()
    }
    fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<(), ShapleyError> {
        self.0.lookup(batch, out)
    }
}

/// A Python function `evaluate(masks) -> values`, called on batches of
/// coalitions (`masks`: a `(k, n)` bool array), behind a cache that outlives
/// single calls.
#[pyclass(frozen, module = "maestro_core._native")]
pub struct CallableGame {
    evaluate: Py<PyAny>,
    n: usize,
    batch_size: usize,
    cache: Mutex<Cache>,
}

/// The Python function behind a [`CallableGame`], without its cache.
struct PyEval<'a> {
    evaluate: &'a Py<PyAny>,
    n: usize,
    batch_size: usize,
    error: Option<PyErr>,
}

/// The adapter the engine sees: the game's cache in front of [`PyEval`]. A
/// sampled run plans through that cache directly ([`Game::shared_cache`]).
struct PyCallable<'a> {
    eval: PyEval<'a>,
    cache: &'a mut Cache,
}

/// `SPREAD[b]` has byte `k` equal to bit `k` of `b`.
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 8 {
            if (b >> k) & 1 == 1 {
                t[b] |= 1u64 << (8 * k);
            }
            k += 1;
        }
        b += 1;
    }
    t
};

/// The coalitions `rows` of `batch` as a new `(len, n)` bool array: 0/1
/// bytes written eight players at a time into one buffer that numpy takes
/// over (no copy), viewed as bool.
fn bool_masks<'py>(
    py: Python<'py>,
    batch: &Coalitions,
    rows: std::ops::Range<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let n = batch.players();
    let mut buf: Vec<u8> = Vec::with_capacity(rows.len() * n);
    let full_bytes = n / 8;
    for r in rows.clone() {
        let row = batch.row(r);
        for k in 0..full_bytes {
            let word = row.get(k / 8).copied().unwrap_or(0);
            let byte = (word >> (8 * (k % 8))) & 0xff;
            buf.extend_from_slice(&SPREAD[byte as usize].to_le_bytes());
        }
        for i in full_bytes * 8..n {
            let word = row.get(i / 64).copied().unwrap_or(0);
            buf.push(((word >> (i % 64)) & 1) as u8);
        }
    }
    let arr = Array2::from_shape_vec((rows.len(), n), buf)
        .map_err(|e| InternalError::new_err(e.to_string()))?
        .into_pyarray(py);
    arr.call_method1("view", (numpy::dtype::<bool>(py),))
}

impl Game for PyEval<'_> {
    fn players(&self) -> usize {
        self.n
    }

    fn evaluate(&mut self, misses: &Coalitions, o: &mut [f64]) -> Result<(), ShapleyError> {
        let (evaluate, step, slot) = (self.evaluate, self.batch_size.max(1), &mut self.error);
        if misses.len() != o.len() {
            return Err(ShapleyError::GameShape {
                expected: misses.len(),
                got: o.len(),
            });
        }
        Python::attach(|py| {
            let mut call = || -> PyResult<()> {
                // At most `batch_size` coalitions per call to the function.
                for (c, oc) in o.chunks_mut(step).enumerate() {
                    py.check_signals()?;
                    let start = c * step;
                    let masks = bool_masks(py, misses, start..start + oc.len())?;
                    let res = evaluate.bind(py).call1((masks,))?;
                    let arr = res.cast::<PyArray1<f64>>().map_err(|_| {
                        InputError::new_err(
                            "game: the evaluate wrapper must return a 1-D float64 array",
                        )
                    })?;
                    let ro = arr.try_readonly()?;
                    let vals = contiguous(&ro, "game values")?;
                    if vals.len() != oc.len() {
                        return Err(err(ShapleyError::GameShape {
                            expected: oc.len(),
                            got: vals.len(),
                        }));
                    }
                    oc.copy_from_slice(vals);
                }
                Ok(())
            };
            call().map_err(|e| {
                let msg = e.to_string();
                *slot = Some(e);
                ShapleyError::Game(msg)
            })
        })
    }
}

impl Game for PyCallable<'_> {
    fn players(&self) -> usize {
        self.eval.n
    }

    fn evaluate(&mut self, batch: &Coalitions, out: &mut [f64]) -> Result<(), ShapleyError> {
        let eval = &mut self.eval;
        self.cache
            .evaluate(batch, out, |misses, o| eval.evaluate(misses, o))
    }

    fn keeps_cache(&self) -> bool {
        true
    }

    fn shared_cache(&mut self) -> Option<(&mut Cache, &mut dyn Game)> {
        Some((&mut *self.cache, &mut self.eval))
    }
}

impl CallableGame {
    /// Run `f` on the adapter with the cache locked; a Python exception
    /// raised by the callable is returned as it was raised.
    fn with_game<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut PyCallable<'_>) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let mut cache = match self.cache.try_lock() {
            Ok(c) => c,
            Err(TryLockError::WouldBlock) => return Err(InputError::new_err(
                "this CallableGame is already being evaluated (a re-entrant or concurrent call); \
                     use a separate game object per thread",
            )),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let mut game = PyCallable {
            eval: PyEval {
                evaluate: &self.evaluate,
                n: self.n,
                batch_size: self.batch_size,
                error: None,
            },
            cache: &mut cache,
        };
        let res = run(py, || f(&mut game));
        match (res, game.eval.error.take()) {
            (Err(_), Some(original)) => Err(original),
            (res, _) => res,
        }
    }
}

#[pymethods]
impl CallableGame {
    #[new]
    #[pyo3(signature = (evaluate, n, batch_size = 1024))]
    fn new(evaluate: Py<PyAny>, n: usize, batch_size: usize) -> PyResult<Self> {
        if n == 0 || n > shapley::MAX_PLAYERS {
            return Err(err(ShapleyError::PlayerCount {
                n,
                min: 1,
                max: shapley::MAX_PLAYERS,
            }));
        }
        if batch_size == 0 {
            return Err(InputError::new_err("batch_size must be at least 1"));
        }
        Ok(CallableGame {
            evaluate,
            n,
            batch_size,
            cache: Mutex::new(Cache::new()),
        })
    }

    #[getter]
    fn n_players(&self) -> usize {
        self.n
    }

    #[getter]
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Calls of `v` so far (distinct coalitions evaluated, over all runs).
    #[getter]
    fn evaluations(&self) -> PyResult<usize> {
        Ok(self
            .cache
            .try_lock()
            .map_err(|_| InputError::new_err("this CallableGame is being evaluated"))?
            .evaluations())
    }

    fn clear_cache(&self) -> PyResult<()> {
        *self
            .cache
            .try_lock()
            .map_err(|_| InputError::new_err("this CallableGame is being evaluated"))? =
            Cache::new();
        Ok(())
    }

    /// Evaluate every coalition (in batches of `batch_size`) into a value table.
    fn to_table<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let n = self.n;
        if n > MAX_EXACT_PLAYERS {
            return Err(err(ShapleyError::TooManyPlayers {
                n,
                max: MAX_EXACT_PLAYERS,
            }));
        }
        let step = self.batch_size;
        let table = self.with_game(py, |g| {
            let size = 1usize << n;
            let mut table = vec![0.0; size];
            for (c, out) in table.chunks_mut(step).enumerate() {
                let batch = Coalitions::table_range(n, c * step, out.len())?;
                g.evaluate(&batch, out)?;
            }
            Ok(table)
        })?;
        Ok(table.into_pyarray(py))
    }
}

#[derive(FromPyObject)]
pub enum GameArg<'py> {
    Sparse(PyRef<'py, SparseGame>),
    Callable(PyRef<'py, CallableGame>),
    Table(PyReadonlyArray1<'py, f64>),
}

fn estimate_dict<'py>(
    py: Python<'py>,
    e: Estimate,
    method: Method,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("values", e.values.into_pyarray(py))?;
    d.set_item("stderr", e.stderr.into_pyarray(py))?;
    d.set_item("ci_low", e.ci_low.into_pyarray(py))?;
    d.set_item("ci_high", e.ci_high.into_pyarray(py))?;
    d.set_item("evaluations", e.evaluations)?;
    d.set_item("units", e.units)?;
    d.set_item("df", e.df)?;
    d.set_item("empty", e.empty)?;
    d.set_item("full", e.full)?;
    d.set_item("stop", e.stop.name())?;
    d.set_item("method", method.name())?;
    Ok(d)
}

/// Sampled Shapley estimate of a table, sparse or callable game.
#[pyfunction]
#[pyo3(signature = (game, method, budget, ci_width = None, confidence = 0.95, seed = 0, batch = 0, min_units = 0, threads = None))]
#[allow(clippy::too_many_arguments)]
pub fn shapley_sample<'py>(
    py: Python<'py>,
    game: GameArg<'py>,
    method: &str,
    budget: usize,
    ci_width: Option<f64>,
    confidence: f64,
    seed: u64,
    batch: usize,
    min_units: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let m = Method::parse(method).ok_or_else(|| {
        InputError::new_err(format!(
            "method {method:?}: expected permutation, antithetic, stratified or kernel"
        ))
    })?;
    let mut opts = Options {
        budget,
        ci_width,
        confidence,
        seed,
        batch,
        min_units,
    };
    let e = match game {
        GameArg::Table(values) => {
            let v = contiguous(&values, "value table")?;
            run(py, || {
                Ok(shapley::with_threads(threads, || {
                    let mut g = shapley::TableGame::new(v)?;
                    shapley::sample(&mut g, m, &opts)
                })?)
            })?
        }
        GameArg::Sparse(s) => {
            let inner = &s.inner;
            run(py, || {
                Ok(shapley::with_threads(threads, || {
                    shapley::sample(&mut SparseRef(inner), m, &opts)
                })?)
            })?
        }
        GameArg::Callable(c) => {
            if opts.batch == 0 {
                opts.batch = c.batch_size;
            }
            c.with_game(py, |g| {
                Ok(shapley::with_threads(threads, || {
                    shapley::sample(g, m, &opts)
                })?)
            })?
        }
    };
    estimate_dict(py, e, m)
}
