//! `pcapaudit._core`: the compiled core as a Python module.
//!
//! Python gets whole Arrow columns (record batches through the Arrow PyCapsule interface), never one
//! object per row. Every entry point runs the core under `catch_unwind`: a panic becomes a
//! `CoreError` with one line, never an abort of the interpreter or a Rust backtrace on stderr.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

// the core allocates and frees many small strings and vectors per flow and per DNS message: glibc's
// malloc spent about a quarter of the core's time in its bins (perf); with mimalloc the core runs
// about a third faster (benchmarks/README.md). pcapaudit.core sets its purge delay (MIMALLOC_PURGE_DELAY,
// unless the user did): freed memory goes back to the system within 100 ms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod capture;
pub mod columns;
mod engine;
pub mod table;

create_exception!(
    _core,
    CoreError,
    PyException,
    "An internal error of the compiled core (a bug: please report it)."
);
create_exception!(
    _core,
    CaptureError,
    PyException,
    "A capture that cannot be read at all (one line naming the file)."
);

static HOOK: Once = Once::new();

/// Panics are caught and reported as `CoreError`; the default hook's stderr message is silenced.
fn quiet_panics() {
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Run `f`, turning a panic into `CoreError("internal error in WHAT: message")`.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(CoreError::new_err(format!(
                "internal error in {what}: {msg}"
            )))
        }
    }
}

/// The core's version (the workspace version).
#[pyfunction]
fn core_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// For tests: a panic inside the core must come out as one `CoreError`.
#[pyfunction]
fn _panic_for_tests() -> PyResult<()> {
    guard("_panic_for_tests", || panic!("deliberate panic"))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    quiet_panics();
    m.add_function(wrap_pyfunction!(core_version, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(capture::sniff, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    m.add_class::<capture::Capture>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::FlowRows>()?;
    m.add_class::<engine::DnsRows>()?;
    Ok(())
}
