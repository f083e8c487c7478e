//! Capture reading: pcap (all magics), pcapng (SHB/IDB/EPB/SPB/OPB/ISB/DSB, Darwin process info),
//! gzip (and other compressions), files and stdin -> batches of packets as columns over one buffer.
//!
//! Mirrors `pcapaudit/capture/pcapfile.py`. A capture cut short or corrupt mid-way is not an error:
//! the batches read so far are returned and `CaptureReader::error` holds a one-line message naming the
//! file and the byte offset. Only a file that cannot be opened or has a bad magic is a `CaptureError`.

use std::fmt;
use std::io::Read;

/// A capture that cannot be read at all (one line, naming the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError(pub String);

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

/// The local process a packet belongs to (Apple PKTAP headers, Darwin pcapng process info blocks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessInfo {
    pub command: String,
    pub pid: Option<u32>,
    pub ecommand: Option<String>,
}

/// Packets of one chunk as columns over `buf` (no per-packet allocation).
#[derive(Debug, Default, Clone)]
pub struct PacketBatch {
    pub buf: Vec<u8>,
    /// start of each packet's data in `buf`
    pub off: Vec<usize>,
    pub caplen: Vec<u32>,
    pub wirelen: Vec<u32>,
    /// seconds since the epoch
    pub ts: Vec<f64>,
    pub linktype: Vec<u32>,
    /// pcapng: index into `CaptureReader::ifnames` (-1 unknown); empty for pcap
    pub iface: Vec<i32>,
    /// Darwin pcapng: index into `CaptureReader::processes` (-1 none); empty when the file has none
    pub proc: Vec<i32>,
    /// global number of row 0 over the whole run
    pub first_index: u64,
}

impl PacketBatch {
    pub fn len(&self) -> usize {
        self.off.len()
    }
    pub fn is_empty(&self) -> bool {
        self.off.is_empty()
    }
    /// The captured bytes of packet `i`.
    pub fn data(&self, i: usize) -> &[u8] {
        let o = self.off[i];
        &self.buf[o..o + self.caplen[i] as usize]
    }
}

/// One capture source.
pub struct CaptureReader {
    pub name: String,
    /// "pcap", "pcapng", "gzip+pcap", ...
    pub format: String,
    pub packets: u64,
    pub bytes: u64,
    /// from pcapng interface statistics blocks
    pub dropped: Option<u64>,
    /// truncation/corruption met after some packets: a one-line message naming the file and offset
    pub error: Option<String>,
    /// pcap records whose captured length exceeded the wire length
    pub clamped: u64,
    /// TLS key logs from pcapng decryption secrets blocks
    pub secrets: Vec<Vec<u8>>,
    pub ifnames: Vec<String>,
    pub processes: Vec<ProcessInfo>,
    #[allow(dead_code)]
    inner: Option<Box<dyn Read + Send>>,
}

impl CaptureReader {
    /// Open a path (`-` for stdin). Errors: no such file, a directory, permission denied, bad magic.
    pub fn open(path: &str) -> Result<CaptureReader, CaptureError> {
        Err(CaptureError(format!(
            "{path}: capture reading not built yet"
        )))
    }

    /// Read from an open stream named `name`.
    pub fn from_read(_r: Box<dyn Read + Send>, name: &str) -> Result<CaptureReader, CaptureError> {
        Err(CaptureError(format!(
            "{name}: capture reading not built yet"
        )))
    }

    /// The next batch of about `max_bytes` of packet data, or None at the end (or after an error,
    /// which is then in `self.error`).
    pub fn next_batch(&mut self, _max_bytes: usize) -> Option<PacketBatch> {
        None
    }
}
