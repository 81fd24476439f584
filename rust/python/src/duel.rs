//! `engine::duel` → `_native.Duel` and `_native.simulate_duel`.
use std::sync::Mutex;

use maestro_engine::duel::{self, Algorithm, DuelError, Preferences};
use maestro_engine::Error;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::{err, guard, run, InputError, InternalError};

#[pyclass(frozen, module = "maestro_core._native")]
pub struct Duel {
    inner: Mutex<duel::Duel>,
}

impl Duel {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, duel::Duel>> {
        self.inner
            .lock()
            .map_err(|_| InternalError::new_err("duel lock poisoned"))
    }

    /// Run with the state locked and the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut duel::Duel) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        run(py, || {
            let mut d = self
                .inner
                .lock()
                .map_err(|_| Error::Duel(DuelError::State("duel lock poisoned".into())))?;
            f(&mut d)
        })
    }
}

fn prefs_from(matrix: &PyReadonlyArray2<'_, f64>) -> PyResult<Preferences> {
    let shape = matrix.shape();
    if shape[0] != shape[1] {
        return Err(InputError::new_err(format!(
            "preference matrix: expected a square array, got shape ({}, {})",
            shape[0], shape[1]
        )));
    }
    let flat = matrix.as_slice().map_err(|_| {
        InputError::new_err(
            "preference matrix: array is not C-contiguous (use numpy.ascontiguousarray)",
        )
    })?;
    Preferences::new(shape[0], flat.to_vec()).map_err(err)
}

#[pymethods]
impl Duel {
    #[new]
    #[pyo3(signature = (algorithm, arms, seed = 0, alpha = None, f_k = None))]
    fn new(
        algorithm: &str,
        arms: usize,
        seed: u64,
        alpha: Option<f64>,
        f_k: Option<f64>,
    ) -> PyResult<Self> {
        let a = Algorithm::parse(algorithm).map_err(err)?;
        let d = duel::Duel::new(a, arms, seed, alpha, f_k).map_err(err)?;
        Ok(Duel {
            inner: Mutex::new(d),
        })
    }

    #[staticmethod]
    fn from_json(state: &str) -> PyResult<Self> {
        let d = duel::Duel::from_json(state).map_err(err)?;
        Ok(Duel {
            inner: Mutex::new(d),
        })
    }

    fn to_json(&self) -> PyResult<String> {
        self.lock()?.to_json().map_err(err)
    }

    fn copy(&self) -> PyResult<Self> {
        Ok(Duel {
            inner: Mutex::new(self.lock()?.clone()),
        })
    }

    #[getter]
    fn algorithm(&self) -> PyResult<&'static str> {
        Ok(self.lock()?.algorithm().name())
    }

    #[getter]
    fn arms(&self) -> PyResult<usize> {
        Ok(self.lock()?.arms())
    }

    #[getter]
    fn steps(&self) -> PyResult<u64> {
        Ok(self.lock()?.steps())
    }

    #[getter]
    fn seed(&self) -> PyResult<u64> {
        Ok(self.lock()?.seed())
    }

    #[getter]
    fn alpha(&self) -> PyResult<f64> {
        Ok(self.lock()?.alpha())
    }

    #[getter]
    fn pending(&self) -> PyResult<Option<(usize, usize)>> {
        Ok(self.lock()?.pending())
    }

    fn select(&self, py: Python<'_>) -> PyResult<(usize, usize)> {
        self.with(py, |d| Ok(d.select()?))
    }

    fn record(&self, winner: usize, loser: usize) -> PyResult<()> {
        guard(|| self.lock()?.record(winner, loser).map_err(err))
    }

    fn best(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |d| Ok(d.best()))
    }

    fn confidence(&self, arm: usize) -> PyResult<f64> {
        self.lock()?.confidence(arm).map_err(err)
    }

    fn beats_probability(&self, i: usize, j: usize) -> PyResult<f64> {
        self.lock()?.beats_probability(i, j).map_err(err)
    }

    /// Win counts as a `(K, K)` uint64 array (`[i, j]` = wins of i over j).
    fn wins<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u64>>> {
        let d = self.lock()?;
        let k = d.arms();
        let a = Array2::from_shape_vec((k, k), d.wins().to_vec())
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py))
    }

    /// Simulate `steps` duels against a preference matrix (outcomes from a
    /// ChaCha8 stream seeded with `env_seed`); cumulative regret every
    /// `every` steps.
    #[pyo3(signature = (matrix, steps, env_seed = 0, every = 1))]
    fn simulate<'py>(
        &self,
        py: Python<'py>,
        matrix: PyReadonlyArray2<'py, f64>,
        steps: u64,
        env_seed: u64,
        every: u64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let prefs = prefs_from(&matrix)?;
        let v = self.with(py, move |d| {
            Ok(duel::simulate(d, &prefs, steps, env_seed, every)?)
        })?;
        Ok(v.into_pyarray(py))
    }

    fn __repr__(&self) -> PyResult<String> {
        let d = self.lock()?;
        Ok(format!(
            "Duel(algorithm={:?}, arms={}, steps={}, seed={})",
            d.algorithm().name(),
            d.arms(),
            d.steps(),
            d.seed()
        ))
    }
}

/// Per-arm regrets of a preference matrix (Condorcet if it has a Condorcet
/// winner, else normalised Copeland), and its Condorcet winner.
#[pyfunction]
pub fn preference_regrets<'py>(
    py: Python<'py>,
    matrix: PyReadonlyArray2<'py, f64>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Option<usize>)> {
    let prefs = prefs_from(&matrix)?;
    Ok((
        prefs.arm_regrets().into_pyarray(py),
        prefs.condorcet_winner(),
    ))
}
