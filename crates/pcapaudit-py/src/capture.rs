//! `_core.Capture`: one capture source (a path, or `-` for stdin) read batch by batch by an Engine.

use pcapaudit_core::capture::CaptureReader;
use pyo3::prelude::*;

use crate::{guard, CaptureError};

/// One capture source. Opening fails with `CaptureError` (no such file, a directory, permission
/// denied, not a capture); a capture cut short or corrupt mid-way is read up to the damage and
/// `error` then holds a one-line message naming the file and the offset.
#[pyclass(module = "pcapaudit._core", unsendable)]
pub struct Capture {
    pub(crate) reader: CaptureReader,
}

#[pymethods]
impl Capture {
    #[new]
    fn new(path: &str) -> PyResult<Self> {
        guard("Capture", || match CaptureReader::open(path) {
            Ok(reader) => Ok(Capture { reader }),
            Err(e) => Err(CaptureError::new_err(e.0)),
        })
    }
    #[getter]
    fn name(&self) -> String {
        self.reader.name.clone()
    }
    #[getter]
    fn format(&self) -> String {
        self.reader.format.clone()
    }
    #[getter]
    fn packets(&self) -> u64 {
        self.reader.packets
    }
    #[getter]
    fn bytes(&self) -> u64 {
        self.reader.bytes
    }
    #[getter]
    fn dropped(&self) -> Option<u64> {
        self.reader.dropped
    }
    #[getter]
    fn error(&self) -> Option<String> {
        self.reader.error.clone()
    }
    /// Bytes of the file read so far (compressed bytes for a compressed capture), for progress bars.
    #[getter]
    fn offset(&self) -> u64 {
        self.reader.offset()
    }
    #[getter]
    fn clamped(&self) -> u64 {
        self.reader.clamped
    }
    #[getter]
    fn ifnames(&self) -> Vec<String> {
        self.reader.ifnames.clone()
    }
}
