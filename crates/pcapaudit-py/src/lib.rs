//! `pcapaudit._core`: the compiled core as a Python module.
//!
//! Python gets whole Arrow columns (record batches through the Arrow PyCapsule interface), never one
//! object per row. Every entry point runs the core under `catch_unwind`: a panic becomes a Python
//! exception with one line, never an abort of the interpreter.

use pyo3::prelude::*;

/// The core's version (the workspace version).
#[pyfunction]
fn core_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(core_version, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
