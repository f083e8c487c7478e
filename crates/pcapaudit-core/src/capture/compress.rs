//! Compressed captures as plain byte streams: gzip (one member or several, decompressed here, see
//! [`GzipStream`]), zstd (several frames), xz (several streams) and bzip2 (several streams).
//!
//! Every stream returns all that decompresses before it reports damage: a truncated or corrupt file is
//! audited up to the damage. Memory stays bounded: output goes straight into the caller's buffer, input
//! is read in pieces of [`GZIP_IN`] bytes, and the dictionaries are capped (zstd window 128 MiB, xz
//! dictionary 256 MiB; bzip2 blocks are at most 900 kB).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// Compressed bytes per inflate call (its output is bounded by the room left in the read).
pub(crate) const GZIP_IN: usize = 256 << 10;
/// Largest xz dictionary accepted (KiB): xz -9 uses 64 MiB.
const XZ_MEM_LIMIT_KB: u32 = 256 << 10;

/// Gzip data that ends early or is corrupt; the message says where (and is the whole explanation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GzipDataError(pub String);

impl fmt::Display for GzipDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GzipDataError {}

/// The gzip message of an io error raised by [`GzipStream`], if it is one.
pub(crate) fn gzip_message(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<GzipDataError>())
        .map(|g| g.0.clone())
}

/// The compression a capture's first bytes announce, if any: (name for `format`, full magic).
pub(crate) fn compression_of(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58]) {
        Some("xz")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// Prepends bytes already read (the magic) to a reader.
struct Prefixed {
    head: Vec<u8>,
    pos: usize,
    rest: Box<dyn Read + Send>,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.head.get(self.pos..) {
            if !left.is_empty() {
                let n = left.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), left.get(..n)) {
                    dst.copy_from_slice(src);
                }
                self.pos += n;
                return Ok(n);
            }
        }
        self.rest.read(buf)
    }
}

/// The decompressing stream for `kind` over `raw`, of which `head` was already read.
pub(crate) fn decompressor(
    kind: &str,
    head: Vec<u8>,
    raw: Box<dyn Read + Send>,
) -> Box<dyn Read + Send> {
    match kind {
        "gzip" => Box::new(GzipStream::new(head, raw)),
        _ => {
            let src = BufReader::with_capacity(
                GZIP_IN,
                Prefixed {
                    head,
                    pos: 0,
                    rest: raw,
                },
            );
            match kind {
                "zstd" => Box::new(ZstdStream::new(src)),
                "xz" => Box::new(Labelled {
                    inner: lzma_rust2::XzReader::new_mem_limit(src, true, XZ_MEM_LIMIT_KB),
                    label: "xz",
                }),
                _ => Box::new(Labelled {
                    inner: bzip2::read::MultiBzDecoder::new(src),
                    label: "bzip2",
                }),
            }
        }
    }
}

/// Names the compression in the errors of a decompressor.
struct Labelled<R> {
    inner: R,
    label: &'static str,
}

impl<R: Read> Read for Labelled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.label)))
    }
}

/// Zstandard frames one after the other (skippable frames skipped), decoded with ruzstd.
struct ZstdStream<R: BufRead> {
    src: R,
    dec: ruzstd::decoding::FrameDecoder,
    /// a frame is being decoded
    active: bool,
    failed: bool,
}

impl<R: BufRead> ZstdStream<R> {
    fn new(src: R) -> Self {
        ZstdStream {
            src,
            dec: ruzstd::decoding::FrameDecoder::new(),
            active: false,
            failed: false,
        }
    }

    fn fail(&mut self, e: impl fmt::Display) -> io::Error {
        self.failed = true;
        io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
    }
}

impl<R: BufRead> Read for ZstdStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.failed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd: corrupt data",
                ));
            }
            if !self.active {
                if self.src.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.dec.reset(&mut self.src) {
                    Ok(()) => self.active = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped = io::copy(
                            &mut (&mut self.src).take(u64::from(length)),
                            &mut io::sink(),
                        )?;
                        if skipped < u64::from(length) {
                            return Err(self.fail("skippable frame cut short"));
                        }
                    }
                    Err(e) => return Err(self.fail(e)),
                }
                continue;
            }
            let n = self.dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.dec.is_finished() {
                if self.dec.can_collect() == 0 {
                    self.active = false;
                }
                continue;
            }
            if let Err(e) = self.dec.decode_blocks(
                &mut self.src,
                ruzstd::decoding::BlockDecodingStrategy::UptoBlocks(1),
            ) {
                return Err(self.fail(e));
            }
        }
    }
}

/// Where a gzip member is.
enum Phase {
    /// between members: zero padding is skipped (as gzip does), then the next member or the end
    Between,
    Header(Header),
    Deflate(Box<InflateState>),
    /// CRC-32 and size of the member: bytes read so far
    Trailer([u8; 8], usize),
}

/// The header of a gzip member, read byte by byte (its optional fields can be long).
struct Header {
    fixed: [u8; 10],
    n: usize,
    stage: Stage,
    crc: flate2::Crc,
}

enum Stage {
    Fixed,
    ExtraLen([u8; 2], usize),
    Extra(u32),
    Name,
    Comment,
    Hcrc([u8; 2], usize),
}

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

impl Header {
    fn new() -> Header {
        Header {
            fixed: [0; 10],
            n: 0,
            stage: Stage::Fixed,
            crc: flate2::Crc::new(),
        }
    }

    fn flags(&self) -> u8 {
        self.fixed[3]
    }

    /// The stage after `done` (the flags say which optional fields follow).
    fn next_stage(&self, done: u8) -> Option<Stage> {
        let f = self.flags();
        let order = [
            (FEXTRA, Stage::ExtraLen([0; 2], 0)),
            (FNAME, Stage::Name),
            (FCOMMENT, Stage::Comment),
            (FHCRC, Stage::Hcrc([0; 2], 0)),
        ];
        let mut past = done == 0;
        for (bit, stage) in order {
            if past && f & bit != 0 {
                return Some(stage);
            }
            if bit == done {
                past = true;
            }
        }
        None
    }

    /// Takes one byte; Ok(true) when the header is complete; Err: zlib's reason.
    fn push(&mut self, b: u8) -> Result<bool, &'static str> {
        let hcrc_stage = matches!(self.stage, Stage::Hcrc(..));
        if !hcrc_stage {
            self.crc.update(&[b]);
        }
        let done_field: u8 = match &mut self.stage {
            Stage::Fixed => {
                if let Some(slot) = self.fixed.get_mut(self.n) {
                    *slot = b;
                }
                self.n += 1;
                if self.n == 2 && self.fixed[..2] != [0x1f, 0x8b] {
                    return Err("incorrect header check");
                }
                if self.n == 4 {
                    if self.fixed[2] != 8 {
                        return Err("unknown compression method");
                    }
                    if self.fixed[3] & 0xe0 != 0 {
                        return Err("unknown header flags set");
                    }
                }
                if self.n < 10 {
                    return Ok(false);
                }
                0
            }
            Stage::ExtraLen(v, k) => {
                if let Some(slot) = v.get_mut(*k) {
                    *slot = b;
                }
                *k += 1;
                if *k < 2 {
                    return Ok(false);
                }
                let len = u16::from_le_bytes(*v);
                if len > 0 {
                    self.stage = Stage::Extra(u32::from(len));
                    return Ok(false);
                }
                FEXTRA
            }
            Stage::Extra(left) => {
                *left = left.saturating_sub(1);
                if *left > 0 {
                    return Ok(false);
                }
                FEXTRA
            }
            Stage::Name => {
                if b != 0 {
                    return Ok(false);
                }
                FNAME
            }
            Stage::Comment => {
                if b != 0 {
                    return Ok(false);
                }
                FCOMMENT
            }
            Stage::Hcrc(v, k) => {
                if let Some(slot) = v.get_mut(*k) {
                    *slot = b;
                }
                *k += 1;
                if *k < 2 {
                    return Ok(false);
                }
                if u16::from_le_bytes(*v) != (self.crc.sum() & 0xffff) as u16 {
                    return Err("header crc mismatch");
                }
                FHCRC
            }
        };
        match self.next_stage(done_field) {
            Some(s) => {
                self.stage = s;
                Ok(false)
            }
            None => Ok(true),
        }
    }
}

/// Decompresses the gzip data (one member or several concatenated) read from `raw`, of which `head` was
/// already read. `read` fills the buffer, returning less only at the end: everything that decompresses
/// is returned first, and a truncation or corruption is an error (a [`GzipDataError`]) on the read
/// after, so a damaged capture is audited up to the damage.
///
/// Each inflate call gets at most [`GZIP_IN`] compressed bytes and writes no more than the room left in
/// the read, so a gzip bomb cannot blow up memory. When a piece of input is rejected, it is fed again,
/// from a copy of the state taken before it, in smaller and smaller pieces down to the bad byte, whose
/// offset the error names (as the Python reader did with zlib).
pub(crate) struct GzipStream {
    raw: Box<dyn Read + Send>,
    inb: Vec<u8>,
    pos: usize,
    /// compressed byte offset of inb[0]
    in_base: u64,
    eof: bool,
    phase: Phase,
    crc: flate2::Crc,
    step: usize,
    slow_end: u64,
    /// uncompressed bytes returned so far
    out: u64,
    error: Option<GzipDataError>,
}

impl GzipStream {
    pub(crate) fn new(head: Vec<u8>, raw: Box<dyn Read + Send>) -> GzipStream {
        GzipStream {
            raw,
            inb: head,
            pos: 0,
            in_base: 0,
            eof: false,
            phase: Phase::Header(Header::new()),
            crc: flate2::Crc::new(),
            step: GZIP_IN,
            slow_end: 0,
            out: 0,
            error: None,
        }
    }

    fn err(e: &GzipDataError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.clone())
    }

    fn corrupt(&mut self, at: u64, have: usize, why: &str) {
        self.error = Some(GzipDataError(format!(
            "corrupt compressed data at compressed byte offset {at} (after {} uncompressed bytes): \
             Error -3 while decompressing data: {why}",
            self.out + have as u64
        )));
    }

    fn refill(&mut self) -> io::Result<()> {
        self.in_base += self.inb.len() as u64;
        self.inb.clear();
        self.pos = 0;
        let got = (&mut self.raw)
            .take(GZIP_IN as u64)
            .read_to_end(&mut self.inb)?;
        self.eof = got == 0;
        Ok(())
    }

    /// Decompresses into `out`; Ok(bytes) (fewer only at the end or before an error kept in `error`).
    fn fill(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len();
        let mut have = 0usize;
        while have < n {
            let at = self.in_base + self.pos as u64;
            let input_left = self.inb.len().saturating_sub(self.pos);
            if input_left == 0 && !self.eof {
                self.refill()?;
                continue;
            }
            match &mut self.phase {
                Phase::Between => {
                    let rest = self.inb.get(self.pos..).unwrap_or(&[]);
                    match rest.iter().position(|&b| b != 0) {
                        Some(i) => {
                            self.pos += i;
                            self.phase = Phase::Header(Header::new());
                        }
                        None => {
                            self.pos = self.inb.len();
                            if self.eof {
                                break;
                            }
                        }
                    }
                }
                Phase::Header(h) => {
                    if input_left == 0 {
                        self.ended_early(have);
                        break;
                    }
                    let mut bad = None;
                    let mut complete = false;
                    while let Some(&b) = self.inb.get(self.pos) {
                        let at = self.in_base + self.pos as u64;
                        self.pos += 1;
                        match h.push(b) {
                            Ok(false) => {}
                            Ok(true) => {
                                complete = true;
                                break;
                            }
                            Err(why) => {
                                bad = Some((at, why));
                                break;
                            }
                        }
                    }
                    if let Some((at, why)) = bad {
                        self.corrupt(at, have, why);
                        break;
                    }
                    if complete {
                        self.phase = Phase::Deflate(InflateState::new_boxed(DataFormat::Raw));
                        self.crc = flate2::Crc::new();
                    }
                }
                Phase::Deflate(state) => {
                    if at >= self.slow_end {
                        self.step = GZIP_IN;
                    }
                    let end = self.pos.saturating_add(self.step).min(self.inb.len());
                    let piece = self.inb.get(self.pos..end).unwrap_or(&[]);
                    let room = out.get_mut(have..).unwrap_or(&mut []);
                    let saved = (**state).clone();
                    let r = inflate(state, piece, room, MZFlush::None);
                    let (status, consumed, written) = match r.status {
                        Ok(s) => (Some(s), r.bytes_consumed, r.bytes_written),
                        Err(MZError::Buf) => (None, r.bytes_consumed, r.bytes_written),
                        Err(_) => {
                            if piece.len() > 1 {
                                // salvage the output of the bytes before the bad one
                                **state = saved;
                                self.step = (piece.len() / 16).max(1);
                                self.slow_end = at + piece.len() as u64;
                                continue;
                            }
                            self.corrupt(at, have, "invalid deflate data");
                            break;
                        }
                    };
                    if let Some(w) = out.get(have..have + written) {
                        self.crc.update(w);
                    }
                    self.pos += consumed;
                    have += written;
                    if status == Some(MZStatus::StreamEnd) {
                        self.phase = Phase::Trailer([0; 8], 0);
                    } else if written == 0 && consumed == 0 {
                        if self.eof && self.pos >= self.inb.len() {
                            // all input fed, member unfinished
                            self.ended_early(have);
                        } else {
                            // no progress with input and room: never seen, but never loop on it
                            self.corrupt(at, have, "invalid deflate data");
                        }
                        break;
                    }
                }
                Phase::Trailer(t, k) => {
                    if input_left == 0 {
                        self.ended_early(have);
                        break;
                    }
                    let mut bad = None;
                    let mut complete = false;
                    while let Some(&b) = self.inb.get(self.pos) {
                        let at = self.in_base + self.pos as u64;
                        self.pos += 1;
                        if let Some(slot) = t.get_mut(*k) {
                            *slot = b;
                        }
                        *k += 1;
                        if *k == 4 && u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != self.crc.sum()
                        {
                            bad = Some((at, "incorrect data check"));
                            break;
                        }
                        if *k == 8 {
                            if u32::from_le_bytes([t[4], t[5], t[6], t[7]]) != self.crc.amount() {
                                bad = Some((at, "incorrect length check"));
                            } else {
                                complete = true;
                            }
                            break;
                        }
                    }
                    if let Some((at, why)) = bad {
                        self.corrupt(at, have, why);
                        break;
                    }
                    if complete {
                        self.phase = Phase::Between;
                    }
                }
            }
        }
        self.out += have as u64;
        Ok(have)
    }

    fn ended_early(&mut self, have: usize) {
        self.error = Some(GzipDataError(format!(
            "compressed data ended early (gzip stream cut off at compressed byte offset {}, after {} \
             uncompressed bytes)",
            self.in_base + self.pos as u64,
            self.out + have as u64
        )));
    }
}

impl Read for GzipStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.error {
            return Err(Self::err(e));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let got = self.fill(buf)?;
        if got == 0 {
            if let Some(e) = &self.error {
                return Err(Self::err(e));
            }
        }
        Ok(got)
    }
}
