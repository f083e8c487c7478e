//! Capture reading: pcap (all magics), pcapng (SHB/IDB/EPB/SPB/OPB/ISB/DSB, Darwin process info),
//! gzip (and other compressions), files and stdin -> batches of packets as columns over one buffer.
//!
//! Mirrors `pcapaudit/capture/pcapfile.py`. A capture cut short or corrupt mid-way is not an error:
//! the batches read so far are returned and `CaptureReader::error` holds a one-line message naming the
//! file and the byte offset. Only a file that cannot be opened or has a bad magic is a `CaptureError`.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub mod bpf;
mod compress;
mod parse;

pub use parse::{pcap_header, pcap_magic, PcapHeader, MAX_RECORD};
use parse::{NgSink, NgState, PCAPNG_SHB};

/// Bytes per read when the caller gives no size (as the Python reader's CHUNK).
pub const CHUNK: usize = 8 << 20;

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
        match (self.off.get(i), self.caplen.get(i)) {
            (Some(&o), Some(&c)) => self.buf.get(o..o.saturating_add(c as usize)).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// How the records of the capture are laid out.
enum Kind {
    Pcap(PcapHeader),
    Pcapng(Box<NgState>),
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
    /// the number (from 1) of the first of them
    pub first_clamped: Option<u64>,
    /// TLS key logs from pcapng decryption secrets blocks
    pub secrets: Vec<Vec<u8>>,
    /// interface names (pcapng: `if_name`, else "if<N>"), the targets of `PacketBatch::iface`
    pub ifnames: Vec<String>,
    /// local processes (Darwin pcapng), the targets of `PacketBatch::proc`
    pub processes: Vec<ProcessInfo>,
    /// bytes of the (uncompressed) capture walked so far
    pub consumed: u64,
    inner: Option<Box<dyn Read + Send>>,
    /// bytes read from the underlying file or stream (compressed bytes for a compressed capture)
    raw_read: Arc<AtomicU64>,
    kind: Kind,
    /// bytes read but not yet walked (a record cut by the end of the last read); starts at `consumed`
    pending: Vec<u8>,
    done: bool,
    ifname_index: HashMap<String, i32>,
    process_index: HashMap<ProcessInfo, i32>,
}

/// Up to `n` bytes (fewer only at the end), and the error that stopped the reading, if any.
fn read_upto(r: &mut dyn Read, n: usize) -> (Vec<u8>, Option<io::Error>) {
    let mut v = Vec::with_capacity(n);
    let res = r.take(n as u64).read_to_end(&mut v);
    (v, res.err())
}

/// The message of a read error: gzip's says where the damage is, the others are wrapped as Python did.
fn read_error_text(e: &io::Error) -> String {
    compress::gzip_message(e).unwrap_or_else(|| format!("corrupt compressed data ({e})"))
}

/// An OS error's text without Rust's " (os error N)" suffix (as Python's strerror).
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

/// Counts the bytes read through it (for progress bars).
struct Counting {
    inner: Box<dyn Read + Send>,
    n: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.n.fetch_add(got as u64, Ordering::Relaxed);
        Ok(got)
    }
}

impl CaptureReader {
    /// Bytes of the underlying file read so far (compressed bytes for a compressed capture), for
    /// progress bars.
    pub fn offset(&self) -> u64 {
        self.raw_read.load(Ordering::Relaxed)
    }

    /// The first `n` bytes of a file, decompressed when it is compressed (gzip, zstd, xz, bzip2): what a
    /// directory scan looks at to tell a capture from a README. Compressed data that cannot be read
    /// gives the bytes that could.
    pub fn sniff(path: &str, n: usize) -> io::Result<Vec<u8>> {
        let mut f: Box<dyn Read + Send> = Box::new(std::fs::File::open(path)?);
        let (head, err) = read_upto(&mut *f, n.min(4));
        if let Some(e) = err {
            return Err(e);
        }
        match compress::compression_of(&head) {
            Some(kind) => {
                let mut z = compress::decompressor(kind, head, f);
                Ok(read_upto(&mut *z, n).0)
            }
            None => {
                let (rest, err) = read_upto(&mut *f, n.saturating_sub(head.len()));
                match err {
                    Some(e) if rest.is_empty() => Err(e),
                    _ => Ok([head, rest].concat()),
                }
            }
        }
    }

    /// The time of the first packet, reading batches of `max_bytes` until one has a packet; None when
    /// the capture has none (or stops before one: `error` says why).
    pub fn first_packet(&mut self, max_bytes: usize) -> Option<f64> {
        while let Some(b) = self.next_batch(max_bytes) {
            if let Some(&ts) = b.ts.first() {
                return Some(ts);
            }
        }
        None
    }

    /// Open a path (`-` for stdin). Errors: no such file, a directory, permission denied, bad magic.
    pub fn open(path: &str) -> Result<CaptureReader, CaptureError> {
        if path == "-" {
            return CaptureReader::from_read(Box::new(io::stdin()), "<stdin>");
        }
        let fail = |m: &str| Err(CaptureError(format!("{path}: {m}")));
        if std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
            return fail("is a directory, not a capture file");
        }
        match std::fs::File::open(path) {
            Ok(f) => CaptureReader::from_read(Box::new(f), path),
            Err(e) => match e.kind() {
                io::ErrorKind::NotFound => fail("no such file"),
                io::ErrorKind::PermissionDenied => fail("permission denied"),
                io::ErrorKind::IsADirectory => fail("is a directory, not a capture file"),
                _ => fail(&format!("cannot open: {}", strerror(&e))),
            },
        }
    }

    /// Read from an open stream named `name`.
    pub fn from_read(r: Box<dyn Read + Send>, name: &str) -> Result<CaptureReader, CaptureError> {
        let raw_read = Arc::new(AtomicU64::new(0));
        let mut r: Box<dyn Read + Send> = Box::new(Counting {
            inner: r,
            n: raw_read.clone(),
        });
        let fail = |m: String| Err(CaptureError(format!("{name}: {m}")));
        let (head, err) = read_upto(&mut *r, 4);
        if let Some(e) = err.filter(|_| head.is_empty()) {
            return fail(format!(
                "cannot read file header: corrupt data ({})",
                strerror(&e)
            ));
        }
        if head.is_empty() {
            return fail("empty file, not a capture".into());
        }
        if head.len() < 4 {
            return fail(format!("truncated file header ({} of 4 bytes)", head.len()));
        }
        let mut format = String::new();
        let (mut stream, head) = match compress::compression_of(&head) {
            Some(kind) => {
                let mut z = compress::decompressor(kind, head, r);
                let (inner_head, err) = read_upto(&mut *z, 4);
                if let Some(e) = err {
                    // damaged before the capture's magic: say how
                    return fail(read_error_text(&e));
                }
                if inner_head.is_empty() {
                    return fail("empty file, not a capture".into());
                }
                if inner_head.len() < 4 {
                    return fail(format!(
                        "truncated file header ({} of 4 bytes)",
                        inner_head.len()
                    ));
                }
                format.push_str(kind);
                format.push('+');
                (z, inner_head)
            }
            None => (r, head),
        };
        let (kind, pending, consumed) = if let Some((big, tick, rec_len)) = pcap_magic(&head) {
            let (rest, err) = read_upto(&mut *stream, 20);
            if let Some(e) = err.filter(|_| rest.is_empty()) {
                return fail(format!(
                    "cannot read pcap file header: corrupt data ({})",
                    read_error_text(&e)
                ));
            }
            if rest.len() < 20 {
                return fail(format!(
                    "truncated pcap file header ({} of 24 bytes)",
                    4 + rest.len()
                ));
            }
            let mut whole = head.clone();
            whole.extend_from_slice(&rest);
            let h = pcap_header(&whole).unwrap_or(PcapHeader {
                big_endian: big,
                tick,
                rec_len,
                linktype: 0,
            });
            format.push_str("pcap");
            (Kind::Pcap(h), Vec::new(), 24)
        } else if head == PCAPNG_SHB {
            format.push_str("pcapng");
            (Kind::Pcapng(Box::default()), head, 0)
        } else {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            let hint = match head.as_slice() {
                [0x04, 0x22, 0x4d, 0x18] => {
                    format!("; lz4-compressed: decompress it first: lz4 -d {name}")
                }
                [b'P', b'K', 3, 4] => format!("; a zip archive: extract it first: unzip {name}"),
                _ => String::new(),
            };
            return fail(format!(
                "not a pcap or pcapng capture (bad magic 0x{hex} at byte offset 0{hint})"
            ));
        };
        Ok(CaptureReader {
            name: name.to_string(),
            format,
            packets: 0,
            bytes: 0,
            dropped: None,
            error: None,
            clamped: 0,
            first_clamped: None,
            secrets: Vec::new(),
            ifnames: Vec::new(),
            processes: Vec::new(),
            consumed,
            inner: Some(stream),
            kind,
            pending,
            done: false,
            ifname_index: HashMap::new(),
            raw_read,
            process_index: HashMap::new(),
        })
    }

    /// The next batch of about `max_bytes` of packet data, or None at the end (or after an error,
    /// which is then in `self.error`).
    pub fn next_batch(&mut self, max_bytes: usize) -> Option<PacketBatch> {
        if self.done {
            return None;
        }
        let chunk = if max_bytes == 0 { CHUNK } else { max_bytes };
        let mut buf = std::mem::take(&mut self.pending);
        loop {
            // one read of `chunk` bytes (fewer only at the end of the stream)
            let mut eof = true;
            let mut read_err = None;
            if let Some(src) = self.inner.as_mut() {
                buf.reserve(chunk);
                match (&mut **src).take(chunk as u64).read_to_end(&mut buf) {
                    Ok(got) => eof = got < chunk,
                    Err(e) => read_err = Some(e),
                }
            }
            let mut batch = PacketBatch {
                first_index: self.packets,
                ..PacketBatch::default()
            };
            let est = buf.len() / 256 + 16;
            batch.off.reserve(est);
            batch.caplen.reserve(est);
            batch.wirelen.reserve(est);
            batch.ts.reserve(est);
            batch.linktype.reserve(est);
            let base = self.consumed;
            let (walked, bad) = match &mut self.kind {
                Kind::Pcap(h) => {
                    let w = parse::walk_pcap(&buf, h, &mut batch);
                    self.clamped += w.clamped;
                    if self.first_clamped.is_none() {
                        self.first_clamped =
                            w.first_clamped.map(|i| batch.first_index + i as u64 + 1);
                    }
                    (
                        w.consumed,
                        w.bad.map(|(at, incl)| (base + at as u64, incl)).map(Err),
                    )
                }
                Kind::Pcapng(st) => {
                    let mut sink = NgSink {
                        ifnames: &mut self.ifnames,
                        ifname_index: &mut self.ifname_index,
                        processes: &mut self.processes,
                        process_index: &mut self.process_index,
                        dropped: &mut self.dropped,
                        secrets: &mut self.secrets,
                    };
                    let w = parse::walk_pcapng(&buf, base, st, &mut sink, &mut batch);
                    (w.consumed, w.err.map(Ok))
                }
            };
            let n = batch.off.len();
            self.packets += n as u64;
            self.bytes += batch.wirelen.iter().map(|&w| u64::from(w)).sum::<u64>();
            self.consumed += walked as u64;
            let name = &self.name;
            let packets = self.packets;
            let rest = buf.len() - walked.min(buf.len());
            let stop = match bad {
                Some(Err((at, incl))) => Some(format!(
                    "{name}: corrupt pcap record at byte offset {at} (captured length {incl} is impossible); \
                     stopped after {packets} packets"
                )),
                Some(Ok(m)) => Some(format!("{name}: {m}; stopped after {packets} packets")),
                None => match read_err {
                    Some(e) => Some(format!("{name}: read error after {packets} packets: {}", read_error_text(&e))),
                    None if eof && rest > 0 => Some(format!(
                        "{name}: truncated at byte offset {}: last {} is incomplete ({rest} bytes); read {packets} packets",
                        self.consumed,
                        if matches!(self.kind, Kind::Pcap(_)) { "record" } else { "block" },
                    )),
                    None if eof => Some(String::new()),
                    None => None,
                },
            };
            if let Some(msg) = stop {
                if !msg.is_empty() {
                    self.error = Some(msg);
                }
                self.done = true;
                self.inner = None; // closes the file
                if n == 0 {
                    return None;
                }
                buf.truncate(walked);
                batch.buf = buf;
                return Some(batch);
            }
            if n > 0 {
                self.pending = buf.get(walked..).map(<[u8]>::to_vec).unwrap_or_default();
                buf.truncate(walked);
                batch.buf = buf;
                return Some(batch);
            }
            // nothing whole yet (a record longer than the read, or blocks without packets): read on
            buf.drain(..walked.min(buf.len()));
        }
    }
}

#[cfg(test)]
mod tests;
