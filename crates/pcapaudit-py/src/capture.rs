//! `_core.Capture`: one capture source (a path, or `-` for stdin) read batch by batch by an Engine.

use std::io::Read;
use std::sync::{Mutex, MutexGuard};

use pcapaudit_core::capture::CaptureReader;
use pyo3::prelude::*;

use crate::{guard, CaptureError};

/// One capture source. Opening fails with `CaptureError` (no such file, a directory, permission
/// denied, not a capture); a capture cut short or corrupt mid-way is read up to the damage and
/// `error` then holds a one-line message naming the file and the offset.
#[pyclass(module = "pcapaudit._core")]
pub struct Capture {
    pub(crate) reader: Mutex<CaptureReader>,
}

/// A Python binary file object as a `Read` (stdin as Python sees it, `io.BytesIO`, ...): each read
/// takes the GIL for one `readinto` call.
struct PyReader {
    obj: Py<PyAny>,
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            let want = buf.len().min(1 << 20);
            let data = self
                .obj
                .bind(py)
                .call_method1("read", (want,))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let bytes: &[u8] = data
                .extract()
                .map_err(|_| std::io::Error::other("read() did not return bytes"))?;
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            Ok(n)
        })
    }
}

impl Capture {
    fn r(&self) -> MutexGuard<'_, CaptureReader> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Capture {
    /// Read from an open binary Python file object (`sys.stdin.buffer`), named `name` in messages.
    #[staticmethod]
    fn from_file(file: Py<PyAny>, name: &str) -> PyResult<Self> {
        guard("Capture.from_file", || {
            match CaptureReader::from_read(Box::new(PyReader { obj: file }), name) {
                Ok(reader) => Ok(Capture {
                    reader: Mutex::new(reader),
                }),
                Err(e) => Err(CaptureError::new_err(e.0)),
            }
        })
    }

    #[new]
    fn new(path: &str) -> PyResult<Self> {
        guard("Capture", || match CaptureReader::open(path) {
            Ok(reader) => Ok(Capture {
                reader: Mutex::new(reader),
            }),
            Err(e) => Err(CaptureError::new_err(e.0)),
        })
    }
    /// Read every remaining batch without decoding it; the packets read (benchmarks: the reading stage).
    fn read_all(&mut self, py: Python<'_>) -> PyResult<u64> {
        let reader = self.reader.get_mut().unwrap_or_else(|e| e.into_inner());
        py.detach(|| {
            guard("Capture.read_all", || {
                while reader.next_batch(8 << 20).is_some() {}
                Ok(reader.packets)
            })
        })
    }

    /// The time of the first packet (None: no packet before the end or the damage, which `error`
    /// names), reading `max_bytes` at a time: a directory scan's ordering of its files.
    #[pyo3(signature = (max_bytes=1 << 16))]
    fn first_packet(&mut self, py: Python<'_>, max_bytes: usize) -> PyResult<Option<f64>> {
        let reader = self.reader.get_mut().unwrap_or_else(|e| e.into_inner());
        py.detach(|| {
            guard(
                "Capture.first_packet",
                || Ok(reader.first_packet(max_bytes)),
            )
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.r().name.clone()
    }
    #[getter]
    fn format(&self) -> String {
        self.r().format.clone()
    }
    #[getter]
    fn packets(&self) -> u64 {
        self.r().packets
    }
    #[getter]
    fn bytes(&self) -> u64 {
        self.r().bytes
    }
    #[getter]
    fn dropped(&self) -> Option<u64> {
        self.r().dropped
    }
    #[getter]
    fn error(&self) -> Option<String> {
        self.r().error.clone()
    }
    /// Bytes of the file read so far (compressed bytes for a compressed capture), for progress bars.
    #[getter]
    fn offset(&self) -> u64 {
        self.r().offset()
    }
    #[getter]
    fn clamped(&self) -> u64 {
        self.r().clamped
    }
    /// The number (from 1) of the first pcap record whose captured length exceeded its wire length.
    #[getter]
    fn first_clamped(&self) -> Option<u64> {
        self.r().first_clamped
    }
    #[getter]
    fn ifnames(&self) -> Vec<String> {
        self.r().ifnames.clone()
    }
}

/// The first `n` bytes of the file at `path`, decompressed when it is compressed (gzip, zstd, xz,
/// bzip2); OSError when it cannot be opened or read.
#[pyfunction]
pub fn sniff<'py>(
    py: Python<'py>,
    path: &str,
    n: usize,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let data = py.detach(|| guard("sniff", || Ok(CaptureReader::sniff(path, n))))?;
    match data {
        Ok(v) => Ok(pyo3::types::PyBytes::new(py, &v)),
        Err(e) => Err(pyo3::exceptions::PyOSError::new_err((
            e.raw_os_error().unwrap_or(0),
            pcapaudit_core::capture::strerror(&e),
        ))),
    }
}
