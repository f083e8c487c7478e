//! TLS records and handshake: ClientHello, ServerHello, Certificate, alerts, records split any way.
//! Mirrors `pcapaudit/decode/tls.py`.
//!
//! Hand-written rather than built on tls-parser: the Python reference is deliberately lenient in ways
//! tls-parser is not (a server_name / ALPN / supported_versions list longer than its extension is
//! clamped to the extension, trailing bytes after the extension list are ignored, a ClientHello with a
//! cipher-suite length running past the body is accepted as long as the compression byte is there,
//! GREASE and unknown extensions/versions are kept, SSLv2-compatible hellos, handshake messages split
//! across records), and its error strings are part of the output (the `error` of a stream becomes a
//! weird row's detail). Every read below is bounds-checked with `.get()`; nothing panics.

use crate::{ParseError, ParseResult};

pub const CT_CCS: u8 = 20;
pub const CT_ALERT: u8 = 21;
pub const CT_HANDSHAKE: u8 = 22;
pub const CT_APPDATA: u8 = 23;
/// Heartbeat (RFC 6520): a valid record type, only counted.
pub const CT_HEARTBEAT: u8 = 24;

pub const HS_CLIENT_HELLO: u8 = 1;
pub const HS_SERVER_HELLO: u8 = 2;
pub const HS_CERTIFICATE: u8 = 11;
pub const HS_SERVER_HELLO_DONE: u8 = 14;

/// The client did not accept the chain (bad_certificate, unsupported_certificate, certificate_revoked,
/// certificate_expired, certificate_unknown, unknown_ca).
pub const CERT_REJECT_ALERTS: [u8; 6] = [42, 43, 44, 45, 46, 48];

pub const MAX_STREAM: usize = 128 * 1024;
pub const MAX_RECORDS_TRACKED: usize = 24;
/// 2^14 + 2048: the largest record length accepted (RFC 5246 6.2.3).
pub const MAX_RECORD_LEN: usize = 18432;

/// `VERSION_NAMES` of the Python.
pub const VERSION_NAMES: [(u16, &str); 6] = [
    (0x0002, "SSLv2"),
    (0x0300, "SSLv3"),
    (0x0301, "TLSv1.0"),
    (0x0302, "TLSv1.1"),
    (0x0303, "TLSv1.2"),
    (0x0304, "TLSv1.3"),
];

/// `ALERT_NAMES` of the Python.
pub const ALERT_NAMES: [(u8, &str); 27] = [
    (0, "close_notify"),
    (10, "unexpected_message"),
    (20, "bad_record_mac"),
    (22, "record_overflow"),
    (40, "handshake_failure"),
    (42, "bad_certificate"),
    (43, "unsupported_certificate"),
    (44, "certificate_revoked"),
    (45, "certificate_expired"),
    (46, "certificate_unknown"),
    (47, "illegal_parameter"),
    (48, "unknown_ca"),
    (49, "access_denied"),
    (50, "decode_error"),
    (51, "decrypt_error"),
    (70, "protocol_version"),
    (71, "insufficient_security"),
    (80, "internal_error"),
    (86, "inappropriate_fallback"),
    (90, "user_canceled"),
    (109, "missing_extension"),
    (110, "unsupported_extension"),
    (112, "unrecognized_name"),
    (113, "bad_certificate_status_response"),
    (115, "unknown_psk_identity"),
    (116, "certificate_required"),
    (120, "no_application_protocol"),
];

/// `ALERT_NAMES.get(desc)`.
pub fn alert_name(desc: u8) -> Option<&'static str> {
    ALERT_NAMES
        .iter()
        .find(|(d, _)| *d == desc)
        .map(|(_, n)| *n)
}

/// `desc in CERT_REJECT_ALERTS`.
pub fn is_cert_reject_alert(desc: u8) -> bool {
    CERT_REJECT_ALERTS.contains(&desc)
}

/// What the auditor needs from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub sni: Option<String>,
    pub sni_raw: Option<Vec<u8>>,
    pub alpn: Vec<String>,
    pub versions: Vec<u16>,
    pub ciphers: u32,
    pub ech: bool,
    pub esni: bool,
}

impl ClientHello {
    /// Highest version offered (supported_versions wins over legacy_version; GREASE ignored).
    pub fn max_version(&self) -> u16 {
        self.versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version)
    }
}

/// Selected version, cipher and ALPN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub cipher: u16,
    pub selected_version: Option<u16>,
    pub alpn: Option<String>,
    /// extension types in the order the server sent them (at most `MAX_SH_EXTENSIONS`)
    pub extensions: Vec<u16>,
    /// key_share (51): the group of the server's share (the selected group of a HelloRetryRequest)
    pub key_share: Option<u16>,
    /// the random is RFC 8446's HelloRetryRequest value
    pub hrr: bool,
}

/// Extension types kept from a ServerHello (a real one has fewer than ten).
pub const MAX_SH_EXTENSIONS: usize = 32;

/// RFC 8446 4.1.3: the random of a HelloRetryRequest (SHA-256 of "HelloRetryRequest").
pub const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

impl ServerHello {
    /// Negotiated version (supported_versions extension, else legacy_version). As the Python
    /// (`selected_version or legacy_version`), a selected version of 0 falls back to legacy_version.
    pub fn version(&self) -> u16 {
        match self.selected_version {
            Some(v) if v != 0 => v,
            _ => self.legacy_version,
        }
    }
}

/// RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...).
pub fn is_grease(v: u16) -> bool {
    (v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF)
}

/// 0x0303 -> "TLSv1.2"; 0x7fXX -> "TLSv1.3-draftXX" (decimal); anything else "0x%04x".
/// Always `Some` (the Python returns None only for None; 0 is "0x0000" there as here).
pub fn version_name(v: u16) -> Option<String> {
    if let Some((_, n)) = VERSION_NAMES.iter().find(|(k, _)| *k == v) {
        return Some((*n).to_string());
    }
    if (v & 0xFF00) == 0x7F00 {
        return Some(format!("TLSv1.3-draft{}", v & 0xFF));
    }
    Some(format!("0x{v:04x}"))
}

#[inline]
fn inv(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

#[inline]
fn be16(b: &[u8], i: usize) -> Option<usize> {
    let hi = *b.get(i)?;
    let lo = *b.get(i.checked_add(1)?)?;
    Some(((hi as usize) << 8) | lo as usize)
}

/// Decode an SNI/host name defensively (the Python's `_hostname`): ASCII as is, otherwise UTF-8 with
/// each invalid byte written `\xNN`; trailing dots stripped, lower-cased (Unicode), then every
/// character below 0x21 and DEL written `\xNN`.
pub fn hostname(raw: &[u8]) -> String {
    // fast path: printable ASCII without upper case and without a trailing dot
    if raw.last() != Some(&b'.')
        && raw
            .iter()
            .all(|&c| (0x21..0x7F).contains(&c) && !c.is_ascii_uppercase())
    {
        // all bytes are ASCII: the conversion cannot fail
        return String::from_utf8(raw.to_vec()).unwrap_or_default();
    }
    let mut s = String::with_capacity(raw.len() + 8);
    if raw.is_ascii() {
        s.extend(raw.iter().map(|&c| c as char));
    } else {
        for chunk in raw.utf8_chunks() {
            s.push_str(chunk.valid());
            for b in chunk.invalid() {
                s.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    let trimmed = s.trim_end_matches('.');
    let lower = trimmed.to_lowercase();
    if lower.chars().any(|c| (c as u32) < 0x21 || c as u32 == 0x7F) {
        let mut out = String::with_capacity(lower.len() + 16);
        for c in lower.chars() {
            let o = c as u32;
            if o < 0x21 || o == 0x7F {
                out.push_str(&format!("\\x{o:02x}"));
            } else {
                out.push(c);
            }
        }
        return out;
    }
    lower
}

/// `bytes.decode("ascii", "backslashreplace")`.
fn ascii_backslashreplace(b: &[u8]) -> String {
    if b.is_ascii() {
        return b.iter().map(|&c| c as char).collect();
    }
    let mut s = String::with_capacity(b.len() + 8);
    for &c in b {
        if c.is_ascii() {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// Parse a ClientHello handshake body (after the 4-byte handshake header).
///
/// Follows the Python line by line: every length is checked against the end of its enclosing
/// structure; the error texts are the Python's (all `Invalid`: the body is a complete message).
pub fn parse_client_hello(body: &[u8]) -> ParseResult<ClientHello> {
    let n = body.len();
    if n < 38 {
        return Err(inv(format!("truncated: ClientHello of {n} bytes")));
    }
    let mut ch = ClientHello {
        legacy_version: ((body[0] as u16) << 8) | body[1] as u16,
        ..ClientHello::default()
    };
    let mut p = 34 + 1 + body[34] as usize; // version(2) random(32) session_id
    let ncs = be16(body, p).ok_or_else(|| inv("truncated: cipher suites"))?;
    p += 2 + ncs;
    ch.ciphers = (ncs / 2) as u32;
    let ncomp = *body
        .get(p)
        .ok_or_else(|| inv("truncated: compression methods"))?;
    p += 1 + ncomp as usize;
    if p > n {
        return Err(inv("truncated: compression methods"));
    }
    let Some(elen_total) = be16(body, p) else {
        return Ok(ch); // no extensions (SSLv3 / old TLS)
    };
    let end = p + 2 + elen_total;
    if end > n {
        return Err(inv(format!(
            "truncated: extensions need {} more bytes",
            end - n
        )));
    }
    p += 2;
    // from here on every index is < end <= n
    while p + 4 <= end {
        let etype = ((body[p] as u16) << 8) | body[p + 1] as u16;
        let elen = ((body[p + 2] as usize) << 8) | body[p + 3] as usize;
        let mut q = p + 4;
        p = q + elen;
        if p > end {
            return Err(inv(format!(
                "truncated: extension {etype} runs past the extensions"
            )));
        }
        match etype {
            0 => {
                // server_name: list of (type, name)
                if elen < 2 {
                    continue;
                }
                let lend = (q + 2 + (((body[q] as usize) << 8) | body[q + 1] as usize)).min(p);
                q += 2;
                while q + 3 <= lend {
                    let ntype = body[q];
                    let nlen = ((body[q + 1] as usize) << 8) | body[q + 2] as usize;
                    q += 3;
                    if q + nlen > lend {
                        return Err(inv("truncated: server name"));
                    }
                    if ntype == 0 && ch.sni.is_none() {
                        let raw = &body[q..q + nlen];
                        ch.sni = Some(hostname(raw));
                        ch.sni_raw = Some(raw.to_vec());
                    }
                    q += nlen;
                }
            }
            16 => {
                // ALPN
                if elen < 2 {
                    continue;
                }
                let lend = (q + 2 + (((body[q] as usize) << 8) | body[q + 1] as usize)).min(p);
                q += 2;
                let mut out = Vec::new();
                while q < lend {
                    let ln = body[q] as usize;
                    if q + 1 + ln > lend {
                        return Err(inv("truncated: ALPN protocol"));
                    }
                    out.push(ascii_backslashreplace(&body[q + 1..q + 1 + ln]));
                    q += 1 + ln;
                }
                ch.alpn = out;
            }
            43 => {
                // supported_versions
                if elen < 1 {
                    continue;
                }
                let lend = (q + 1 + body[q] as usize).min(p);
                q += 1;
                let mut vs = Vec::with_capacity(lend.saturating_sub(q) / 2);
                let mut i = q;
                while i + 1 < lend {
                    vs.push(((body[i] as u16) << 8) | body[i + 1] as u16);
                    i += 2;
                }
                ch.versions = vs;
            }
            0xFE0D => ch.ech = true,
            0xFFCE => ch.esni = true,
            _ => {}
        }
    }
    Ok(ch)
}

/// The Python's `_Reader`: a cursor over `b[p..end]` whose errors carry absolute offsets.
struct Reader<'a> {
    b: &'a [u8],
    p: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader {
            b,
            p: 0,
            end: b.len(),
        }
    }

    fn need(&self, n: usize) -> ParseResult<()> {
        if self.p + n > self.end {
            return Err(inv(format!(
                "truncated: need {n} bytes at {}, have {}",
                self.p,
                self.end - self.p
            )));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> ParseResult<&'a [u8]> {
        self.need(n)?;
        let v = self
            .b
            .get(self.p..self.p + n)
            .ok_or_else(|| inv("truncated"))?;
        self.p += n;
        Ok(v)
    }

    fn uint(&mut self, n: usize) -> ParseResult<usize> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0usize, |a, &c| (a << 8) | c as usize))
    }

    fn u8(&mut self) -> ParseResult<usize> {
        self.uint(1)
    }

    fn u16(&mut self) -> ParseResult<usize> {
        self.uint(2)
    }

    fn u24(&mut self) -> ParseResult<usize> {
        self.uint(3)
    }

    fn sub(&mut self, n: usize) -> ParseResult<Reader<'a>> {
        self.need(n)?;
        let r = Reader {
            b: self.b,
            p: self.p,
            end: self.p + n,
        };
        self.p += n;
        Ok(r)
    }

    fn left(&self) -> usize {
        self.end - self.p
    }
}

/// Parse a ServerHello handshake body. A HelloRetryRequest (a ServerHello with the special random)
/// is parsed as a ServerHello, as the Python does.
pub fn parse_server_hello(body: &[u8]) -> ParseResult<ServerHello> {
    let mut r = Reader::new(body);
    let legacy = r.u16()? as u16;
    let hrr = r.take(32)? == HRR_RANDOM;
    // TLS 1.3 drafts before 22 (0x7f00-0x7f15, deployed by Cloudflare and Chrome in 2017) put their
    // version here and have no session id nor compression method: version, random, cipher, extensions
    let draft = (0x7f00..0x7f16).contains(&legacy);
    if !draft {
        let sid = r.u8()?;
        r.take(sid)?;
    }
    let mut sh = ServerHello {
        legacy_version: legacy,
        cipher: r.u16()? as u16,
        hrr,
        ..ServerHello::default()
    };
    if !draft {
        r.u8()?; // compression
    }
    if r.left() >= 2 {
        let elen = r.u16()?;
        let mut ext = r.sub(elen)?;
        while ext.left() >= 4 {
            let etype = ext.u16()?;
            let len = ext.u16()?;
            let mut e = ext.sub(len)?;
            if sh.extensions.len() < MAX_SH_EXTENSIONS {
                sh.extensions.push(etype as u16);
            }
            if (etype == 51 || (draft && etype == 40)) && e.left() >= 2 && sh.key_share.is_none() {
                sh.key_share = Some(e.u16()? as u16);
            } else if etype == 43 && e.left() >= 2 {
                sh.selected_version = Some(e.u16()? as u16);
            } else if etype == 16 && e.left() >= 3 {
                let llen = e.u16()?;
                let mut lst = e.sub(llen)?;
                if lst.left() > 0 {
                    let ln = lst.u8()?;
                    sh.alpn = Some(ascii_backslashreplace(lst.take(ln)?));
                }
            }
        }
    }
    Ok(sh)
}

/// A readable shape of the server's TLS stack from its ServerHello (`tls_server_shape`):
/// `{t|q}{version}_{cipher}_{extension types in order}_{key_share group}`, e.g.
/// `t13_1301_002b-0033_001d`. Version as JA4 writes it (`13`, `12`, `11`, `10`, `s3`, else `00`),
/// numbers in 4-digit hex, GREASE extension types left out, `-` for an empty list or no key share.
/// Not JA4S (whose licence differs): the extension list is written out, not hashed, and the key
/// share group is added, because two stacks with the same defaults differ mostly there.
pub fn server_shape(sh: &ServerHello, quic: bool) -> String {
    let v = match sh.version() {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        _ => "00",
    };
    let exts: Vec<String> = sh
        .extensions
        .iter()
        .filter(|e| !is_grease(**e))
        .map(|e| format!("{e:04x}"))
        .collect();
    let exts = if exts.is_empty() {
        "-".to_string()
    } else {
        exts.join("-")
    };
    let group = sh
        .key_share
        .map_or_else(|| "-".to_string(), |g| format!("{g:04x}"));
    let hrr = if sh.hrr { "_hrr" } else { "" };
    format!(
        "{}{v}_{:04x}_{exts}_{group}{hrr}",
        if quic { 'q' } else { 't' },
        sh.cipher
    )
}

/// Encrypted records kept of a TLS 1.3 server flight.
pub const MAX_FLIGHT_RECORDS: usize = 16;

/// The lengths of a TLS 1.3 server's encrypted flight (EncryptedExtensions, Certificate,
/// CertificateVerify, Finished, however the server packed them): its application-data records after
/// the ServerHello record, a change_cipher_spec skipped, among the first `upto` records of the stream,
/// stopping at any other record type, at most `MAX_FLIGHT_RECORDS`. Empty without a TLS 1.3
/// ServerHello (or for a HelloRetryRequest, whose real ServerHello comes later).
pub fn server_flight(records: &[(u8, u16)], sh_record: Option<usize>, upto: usize) -> Vec<u16> {
    let Some(i) = sh_record else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &(ct, ln) in records.iter().take(upto).skip(i + 1) {
        match ct {
            CT_CCS => continue,
            CT_APPDATA if out.len() < MAX_FLIGHT_RECORDS => out.push(ln),
            _ => break,
        }
    }
    out
}

/// The DER certificates of a Certificate handshake body (TLS <= 1.2), leaf first.
pub fn parse_certificate_list(body: &[u8]) -> ParseResult<Vec<Vec<u8>>> {
    let mut r = Reader::new(body);
    let n = r.u24()?;
    let mut lst = r.sub(n)?;
    let mut out = Vec::new();
    while lst.left() >= 3 {
        let ln = lst.u24()?;
        out.push(lst.take(ln)?.to_vec());
    }
    Ok(out)
}

/// Incremental parser of one direction of a TLS connection, fed the whole stream so far each time.
#[derive(Debug, Clone, Default)]
pub struct TlsStream {
    pub is_client: bool,
    pub pos: usize,
    /// handshake bytes received but not yet forming a whole message
    pub hs: Vec<u8>,
    pub encrypted: bool,
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    /// index in `records` of the record that completed the ServerHello
    pub sh_record: Option<usize>,
    pub certs: Vec<Vec<u8>>,
    /// (level, description, record index)
    pub alerts: Vec<(u8, u8, usize)>,
    /// (content type, length); an SSLv2-compatible hello is recorded as (0x80, its length)
    pub records: Vec<(u8, u16)>,
    pub hs_types: Vec<u8>,
    pub server_hello_done: bool,
    pub error: Option<String>,
    pub sslv2: bool,
}

impl TlsStream {
    pub fn new(is_client: bool) -> TlsStream {
        TlsStream {
            is_client,
            ..TlsStream::default()
        }
    }

    /// Nothing more worth parsing in this direction: an error, MAX_RECORDS_TRACKED records seen, or
    /// MAX_STREAM bytes consumed.
    pub fn done(&self) -> bool {
        self.error.is_some() || self.records.len() >= MAX_RECORDS_TRACKED || self.pos >= MAX_STREAM
    }

    /// Parse every complete record in `data[self.pos..]` (`data` is the whole stream so far).
    pub fn feed(&mut self, data: &[u8]) {
        let n = data.len();
        while self.pos + 5 <= n && !self.done() {
            let pos = self.pos;
            let ctype = data[pos];
            if !matches!(
                ctype,
                CT_CCS | CT_ALERT | CT_HANDSHAKE | CT_APPDATA | CT_HEARTBEAT
            ) {
                if pos == 0 && data[0] & 0x80 != 0 {
                    // SSLv2-compatible ClientHello (n >= 5 here)
                    self.sslv2 = true;
                    let ln = (((data[0] & 0x7F) as usize) << 8) | data[1] as usize;
                    if data[2] == 1 && 2 + ln <= n {
                        self.sslv2_hello(&data[2..2 + ln]);
                        self.pos = 2 + ln;
                        continue;
                    }
                    return;
                }
                self.error = Some(format!(
                    "not a TLS record (content type {ctype}) at stream offset {pos}"
                ));
                return;
            }
            let ln = ((data[pos + 3] as usize) << 8) | data[pos + 4] as usize;
            if ln > MAX_RECORD_LEN {
                self.error = Some(format!("TLS record length {ln} exceeds 2^14+2048"));
                return;
            }
            let Some(body) = data.get(pos + 5..pos + 5 + ln) else {
                return; // wait for more bytes
            };
            self.pos += 5 + ln;
            self.records.push((ctype, ln as u16));
            match ctype {
                CT_CCS | CT_APPDATA => self.encrypted = true,
                // a clear-text alert is exactly 2 bytes; encrypted ones are longer
                CT_ALERT if ln == 2 => {
                    self.alerts.push((body[0], body[1], self.records.len() - 1));
                }
                CT_HANDSHAKE if !self.encrypted => self.handshake_record(body),
                _ => {}
            }
        }
    }

    /// Append one handshake record's body and parse the whole messages now available. When nothing
    /// is pending, the messages are parsed straight from the record (no copy: the common case of a
    /// ClientHello in one record).
    fn handshake_record(&mut self, body: &[u8]) {
        if self.hs.is_empty() {
            let used = self.handshake_messages(body);
            if let Some(rest) = body.get(used..) {
                self.hs.extend_from_slice(rest);
            }
        } else {
            let mut buf = std::mem::take(&mut self.hs);
            buf.extend_from_slice(body);
            let used = self.handshake_messages(&buf);
            buf.drain(..used.min(buf.len()));
            self.hs = buf;
        }
    }

    /// Parse the whole handshake messages at the start of `buf`; returns the bytes consumed (what the
    /// Python deletes from `self.hs`).
    fn handshake_messages(&mut self, buf: &[u8]) -> usize {
        let mut off = 0usize;
        while let Some(hdr) = buf.get(off..off + 4) {
            let mtype = hdr[0];
            let mlen = ((hdr[1] as usize) << 16) | ((hdr[2] as usize) << 8) | hdr[3] as usize;
            if mlen > MAX_STREAM {
                self.error = Some(format!("handshake message of {mlen} bytes"));
                return off;
            }
            let Some(body) = buf.get(off + 4..off + 4 + mlen) else {
                return off;
            };
            off += 4 + mlen;
            self.hs_types.push(mtype);
            let res = match mtype {
                HS_CLIENT_HELLO if self.is_client && self.client_hello.is_none() => {
                    parse_client_hello(body).map(|ch| {
                        self.client_hello = Some(ch);
                        false
                    })
                }
                HS_SERVER_HELLO if !self.is_client && self.server_hello.is_none() => {
                    parse_server_hello(body).map(|sh| {
                        let tls13 = sh.version() == 0x0304;
                        self.server_hello = Some(sh);
                        self.sh_record = self.records.len().checked_sub(1);
                        tls13
                    })
                }
                HS_CERTIFICATE if !self.is_client && self.certs.is_empty() => {
                    parse_certificate_list(body).map(|certs| {
                        self.certs = certs;
                        false
                    })
                }
                HS_SERVER_HELLO_DONE if !self.is_client => {
                    self.server_hello_done = true;
                    Ok(false)
                }
                _ => Ok(false),
            };
            match res {
                Ok(true) => {
                    self.encrypted = true; // the rest of the server flight is encrypted
                    return off;
                }
                Ok(false) => {}
                Err(e) => {
                    self.error = Some(format!("malformed handshake message type {mtype}: {e}"));
                    return off;
                }
            }
        }
        off
    }

    /// SSLv2 CLIENT-HELLO: type(1) version(2) cipher_len(2) session_len(2) challenge_len(2) ...
    fn sslv2_hello(&mut self, msg: &[u8]) {
        if msg.len() >= 9 {
            let ver = ((msg[1] as u16) << 8) | msg[2] as u16;
            let cl = ((msg[3] as u32) << 8) | msg[4] as u32;
            self.client_hello = Some(ClientHello {
                legacy_version: ver,
                ciphers: cl / 3,
                ..ClientHello::default()
            });
        }
        self.records.push((0x80, msg.len() as u16));
    }
}

/// Line formats shared by the unit tests and the differential checks against the Python reference
/// (`/tmp`-style extraction script described in the module's report: each line is `KIND input<TAB>
/// expected`, the expected side written by the Python with the same formats).
#[cfg(test)]
pub(crate) mod difffmt {
    use super::*;

    pub fn hx(b: &[u8]) -> String {
        b.iter().map(|c| format!("{c:02x}")).collect()
    }

    pub fn s(v: Option<&str>) -> String {
        v.map(|x| hx(x.as_bytes())).unwrap_or_else(|| "-".into())
    }

    pub fn unhex(h: &str) -> Vec<u8> {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    pub fn ch_fmt(ch: Option<&ClientHello>) -> String {
        let Some(ch) = ch else { return "-".into() };
        [
            ch.legacy_version.to_string(),
            s(ch.sni.as_deref()),
            ch.sni_raw.as_deref().map(hx).unwrap_or_else(|| "-".into()),
            ch.alpn
                .iter()
                .map(|a| hx(a.as_bytes()))
                .collect::<Vec<_>>()
                .join(","),
            ch.versions
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
            ch.ciphers.to_string(),
            (ch.ech as u8).to_string(),
            (ch.esni as u8).to_string(),
            ch.max_version().to_string(),
        ]
        .join("|")
    }

    pub fn sh_fmt(sh: Option<&ServerHello>) -> String {
        let Some(sh) = sh else { return "-".into() };
        [
            sh.legacy_version.to_string(),
            sh.cipher.to_string(),
            sh.selected_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            s(sh.alpn.as_deref()),
            sh.version().to_string(),
        ]
        .join("|")
    }

    pub fn err_fmt(e: &crate::ParseError) -> String {
        format!("ERR:{}", hx(e.to_string().as_bytes()))
    }

    pub fn stream_fmt(t: &TlsStream) -> String {
        use sha2::{Digest, Sha256};
        [
            t.pos.to_string(),
            (t.encrypted as u8).to_string(),
            t.records
                .iter()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect::<Vec<_>>()
                .join(","),
            t.alerts
                .iter()
                .map(|(a, b, c)| format!("{a}:{b}:{c}"))
                .collect::<Vec<_>>()
                .join(","),
            t.hs_types
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
            (t.server_hello_done as u8).to_string(),
            s(t.error.as_deref()),
            (t.sslv2 as u8).to_string(),
            ch_fmt(t.client_hello.as_ref()),
            sh_fmt(t.server_hello.as_ref()),
            t.certs
                .iter()
                .map(|c| hx(&Sha256::digest(c)))
                .collect::<Vec<_>>()
                .join(","),
            if t.hs.is_empty() {
                "".into()
            } else {
                hx(&t.hs)
            },
            (t.done() as u8).to_string(),
        ]
        .join("|")
    }

    /// Feed `data` (starting at `start`) in one go, then again byte by byte from scratch; both must agree.
    pub fn run_stream(is_client: bool, start: usize, data: &[u8]) -> String {
        let mut a = TlsStream::new(is_client);
        a.pos = start;
        a.feed(data);
        let mut b = TlsStream::new(is_client);
        b.pos = start;
        // every 7th prefix plus the end: records and handshake messages split at odd points
        for i in (1..=data.len())
            .step_by(7)
            .chain(std::iter::once(data.len()))
        {
            b.feed(&data[..i]);
        }
        let (fa, fb) = (stream_fmt(&a), stream_fmt(&b));
        assert_eq!(fa, fb, "split feeding changed the result");
        fa
    }

    /// The reference file named by `PCAPAUDIT_TLS_DIFF`, as (kind, input fields, expected).
    pub fn diff_lines() -> Option<Vec<(String, Vec<String>, String)>> {
        let path = std::env::var("PCAPAUDIT_TLS_DIFF").ok()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(
            text.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once('\t')?;
                    let mut it = k.split(' ').map(str::to_string);
                    let kind = it.next()?;
                    Some((kind, it.collect(), v.to_string()))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::difffmt::*;
    use super::*;

    // -- builders, as tests/craft.py ------------------------------------------------------------------
    fn client_hello(sni: Option<&[u8]>, alpn: &[&str], versions: &[u16], extra: &[u8]) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let mut sn = vec![0u8];
            sn.extend((name.len() as u16).to_be_bytes());
            sn.extend(name);
            exts.extend(0u16.to_be_bytes());
            exts.extend(((sn.len() + 2) as u16).to_be_bytes());
            exts.extend((sn.len() as u16).to_be_bytes());
            exts.extend(sn);
        }
        if !alpn.is_empty() {
            let mut lst = Vec::new();
            for a in alpn {
                lst.push(a.len() as u8);
                lst.extend(a.as_bytes());
            }
            exts.extend(16u16.to_be_bytes());
            exts.extend(((lst.len() + 2) as u16).to_be_bytes());
            exts.extend((lst.len() as u16).to_be_bytes());
            exts.extend(lst);
        }
        if !versions.is_empty() {
            let vs: Vec<u8> = versions.iter().flat_map(|v| v.to_be_bytes()).collect();
            exts.extend(43u16.to_be_bytes());
            exts.extend(((vs.len() + 1) as u16).to_be_bytes());
            exts.push(vs.len() as u8);
            exts.extend(vs);
        }
        exts.extend(extra);
        let mut body = vec![3u8, 3];
        body.extend([0x11u8; 32]);
        body.extend([0, 0, 4, 0x13, 1, 0x13, 2, 1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        record(22, &handshake(1, &body))
    }

    fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![t];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs
    }

    fn record(ct: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3];
        r.extend((payload.len() as u16).to_be_bytes());
        r.extend(payload);
        r
    }

    fn server_hello(version: u16, cipher: u16) -> Vec<u8> {
        let mut exts = Vec::new();
        if version == 0x0304 {
            exts.extend([0, 43, 0, 2, 3, 4]);
        }
        let mut body = vec![3u8, 3];
        body.extend([0x22u8; 32]);
        body.push(0);
        body.extend(cipher.to_be_bytes());
        body.push(0);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        record(22, &handshake(2, &body))
    }

    fn alert(level: u8, desc: u8) -> Vec<u8> {
        record(21, &[level, desc])
    }

    fn feed(data: &[u8], is_client: bool) -> TlsStream {
        let mut s = TlsStream::new(is_client);
        s.feed(data);
        s
    }

    /// A TLS 1.3 ServerHello with a key share (x25519 unless `group`) and extensions in `order`.
    fn server_hello13(order: &[u16], group: u16, random: [u8; 32]) -> Vec<u8> {
        let mut exts = Vec::new();
        for &e in order {
            let body: Vec<u8> = match e {
                43 => vec![3, 4],
                51 => {
                    let mut b = group.to_be_bytes().to_vec();
                    b.extend(32u16.to_be_bytes());
                    b.extend([7u8; 32]);
                    b
                }
                _ => vec![],
            };
            exts.extend(e.to_be_bytes());
            exts.extend((body.len() as u16).to_be_bytes());
            exts.extend(body);
        }
        let mut body = vec![3u8, 3];
        body.extend(random);
        body.push(0);
        body.extend(0x1301u16.to_be_bytes());
        body.push(0);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        record(22, &handshake(2, &body))
    }

    #[test]
    fn a_tls13_draft18_server_hello_has_no_session_id_nor_compression() {
        // Cloudflare's draft-18 ServerHello from the Arkime corpus (tls13.pcap): before, read as a TLS 1.2
        // layout it gave "truncated: need 52143 bytes"
        let hex = "7f123ef1609fd3f4fa8668aac5822d500fb0639b22671d0fb7258597355795511bf61301002800280024001d0020ae0e282a3b7a463e71064ecbaf671586e979b0edbebf7a4735c31678c70f660c";
        let body: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let sh = parse_server_hello(&body).unwrap();
        assert_eq!((sh.version(), sh.cipher), (0x7f12, 0x1301));
        assert_eq!(
            (sh.extensions.clone(), sh.key_share),
            (vec![40], Some(0x001d))
        ); // key_share was 40
           // draft 22 and later use the TLS 1.2 layout with supported_versions
        let mut late = body.clone();
        late[1] = 0x16;
        assert!(parse_server_hello(&late).is_err());
    }

    #[test]
    fn server_hello_shape_keeps_extension_order_and_key_share_group() {
        let a = feed(&server_hello13(&[43, 51], 0x001d, [0x22; 32]), false);
        let sh = a.server_hello.as_ref().unwrap();
        assert_eq!(sh.extensions, vec![43, 51]);
        assert_eq!(sh.key_share, Some(0x001d));
        assert!(!sh.hrr);
        assert_eq!(server_shape(sh, false), "t13_1301_002b-0033_001d");
        // another stack: the other order, P-256, over QUIC
        let b = feed(&server_hello13(&[51, 43], 0x0017, [0x22; 32]), false);
        let sh = b.server_hello.as_ref().unwrap();
        assert_eq!(server_shape(sh, true), "q13_1301_0033-002b_0017");
        // GREASE is left out of the shape, kept in the list
        let g = feed(
            &server_hello13(&[0x1a1a, 43, 51], 0x001d, [0x22; 32]),
            false,
        );
        let sh = g.server_hello.as_ref().unwrap();
        assert_eq!(sh.extensions, vec![0x1a1a, 43, 51]);
        assert_eq!(server_shape(sh, false), "t13_1301_002b-0033_001d");
        // a HelloRetryRequest says so
        let h = feed(&server_hello13(&[43, 51], 0x0017, HRR_RANDOM), false);
        let sh = h.server_hello.as_ref().unwrap();
        assert!(sh.hrr);
        assert!(server_shape(sh, false).ends_with("_hrr"));
        // TLS 1.2 without extensions
        let t = feed(&server_hello(0x0303, 0xc02f), false);
        assert_eq!(
            server_shape(t.server_hello.as_ref().unwrap(), false),
            "t12_c02f_-_-"
        );
    }

    #[test]
    fn server_hello_with_truncated_key_share_is_an_error_not_a_panic() {
        let mut body = vec![3u8, 3];
        body.extend([0x22u8; 32]);
        body.extend([0, 0x13, 1, 0]);
        body.extend(6u16.to_be_bytes());
        body.extend([0, 51, 0, 1, 0x00, 0, 0]); // key_share of 1 byte (no group): kept as no group
        let r = parse_server_hello(&body[..body.len() - 1]);
        assert!(r.is_ok() || matches!(r, Err(ParseError::Invalid(_))));
        for cut in 0..body.len() {
            let _ = parse_server_hello(&body[..cut]);
        }
    }

    #[test]
    fn server_flight_is_the_encrypted_records_after_the_server_hello() {
        let mut data = server_hello13(&[43, 51], 0x001d, [0x22; 32]);
        data.extend(record(20, &[1]));
        for n in [40usize, 2900, 300, 69] {
            data.extend(record(23, &vec![0u8; n]));
        }
        data.extend(record(23, &vec![0u8; 250])); // a session ticket, after the client's Finished
        let t = feed(&data, false);
        assert_eq!(t.sh_record, Some(0));
        assert_eq!(t.records.len(), 7);
        // the client answered after the 6th record: the ticket is not part of the flight
        assert_eq!(
            server_flight(&t.records, t.sh_record, 6),
            vec![40, 2900, 300, 69]
        );
        assert_eq!(server_flight(&t.records, t.sh_record, usize::MAX).len(), 5);
        // no ServerHello: no flight; a clear alert ends it
        assert!(server_flight(&t.records, None, usize::MAX).is_empty());
        let recs = [(22, 90), (23, 40), (21, 2), (23, 500)];
        assert_eq!(server_flight(&recs, Some(0), usize::MAX), vec![40]);
        // bounded
        let many: Vec<(u8, u16)> = std::iter::once((22, 90))
            .chain((0..40).map(|_| (23, 100)))
            .collect();
        assert_eq!(
            server_flight(&many, Some(0), usize::MAX).len(),
            MAX_FLIGHT_RECORDS
        );
    }

    // -- ported from tests/unit/test_protocols.py ------------------------------------------------------
    #[test]
    fn client_hello_fields() {
        let rec = client_hello(
            Some(b"Gdmf.Apple.COM."),
            &["h2", "http/1.1"],
            &[0x0A0A, 0x0304, 0x0303],
            b"",
        );
        let s = feed(&rec, true);
        let ch = s.client_hello.unwrap();
        assert_eq!(ch.sni.as_deref(), Some("gdmf.apple.com"));
        assert_eq!(ch.sni_raw.as_deref(), Some(&b"Gdmf.Apple.COM."[..]));
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(ch.max_version(), 0x0304);
        assert_eq!(version_name(ch.max_version()).as_deref(), Some("TLSv1.3"));
        assert_eq!(ch.ciphers, 2);
    }

    #[test]
    fn client_hello_split_over_records_and_bytes() {
        let rec = client_hello(Some(b"a.example"), &["h2"], &[0x0304, 0x0303], b"");
        let hs = &rec[5..];
        let mut stream = record(22, &hs[..10]);
        stream[1..3].copy_from_slice(&[3, 1]);
        stream.extend(record(22, &hs[10..]));
        let mut s = TlsStream::new(true);
        for i in 1..=stream.len() {
            s.feed(&stream[..i]);
        }
        assert_eq!(s.client_hello.unwrap().sni.as_deref(), Some("a.example"));
        assert_eq!(s.records, vec![(22, 10), (22, (hs.len() - 10) as u16)]);
    }

    #[test]
    fn sni_with_control_and_non_ascii_bytes_is_escaped() {
        let s = feed(
            &client_hello(Some(b"evil\x1b[31m.com\xff"), &["h2"], &[], b""),
            true,
        );
        let sni = s.client_hello.unwrap().sni.unwrap();
        assert!(!sni.contains('\x1b') && sni.contains("\\x1b"));
        assert_eq!(sni, "evil\\x1b[31m.com\\xff");
    }

    #[test]
    fn hostname_matches_python() {
        // expected values printed by pcapaudit.decode.tls._hostname
        let cases: [(&[u8], &str); 8] = [
            (b"Caf\xc3\xa9.\x00X..", "café.\\x00x"),
            (b"\xff\xfeAB\xe2\x82Z", "\\xff\\xfeab\\xe2\\x82z"),
            ("ΑΣ.ΣΑΣ".as_bytes(), "ασ.σας"),
            (b"A B\x7f.", "a\\x20b\\x7f"),
            (b"..", ""),
            (b"xn--BCHER-kva.Example.", "xn--bcher-kva.example"),
            ("İx".as_bytes(), "i\u{307}x"),
            (b"\x80", "\\x80"),
        ];
        for (raw, want) in cases {
            assert_eq!(hostname(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn server_flight_tls12_and_client_alert() {
        let mut flight = server_hello(0x0303, 0xC02F);
        let cert_body = {
            let der = b"not really DER";
            let mut lst = (der.len() as u32).to_be_bytes()[1..].to_vec();
            lst.extend(der);
            let mut body = (lst.len() as u32).to_be_bytes()[1..].to_vec();
            body.extend(lst);
            body
        };
        flight.extend(record(22, &handshake(11, &cert_body)));
        flight.extend([0x16, 3, 3, 0, 4, 0x0e, 0, 0, 0]);
        let srv = feed(&flight, false);
        assert_eq!(srv.server_hello.as_ref().unwrap().version(), 0x0303);
        assert_eq!(srv.server_hello.as_ref().unwrap().cipher, 0xC02F);
        assert!(srv.server_hello_done);
        assert_eq!(srv.certs, vec![b"not really DER".to_vec()]);
        assert_eq!(srv.hs_types, vec![2, 11, 14]);
        let mut c = client_hello(Some(b"x.example"), &["h2"], &[0x0304, 0x0303], b"");
        c.extend(alert(2, 48));
        let cli = feed(&c, true);
        assert_eq!(cli.alerts, vec![(2, 48, 1)]);
        assert!(is_cert_reject_alert(48) && !is_cert_reject_alert(40));
        assert_eq!(alert_name(48), Some("unknown_ca"));
        assert_eq!(alert_name(1), None);
    }

    #[test]
    fn tls13_server_hello_stops_clear_parsing() {
        let mut d = server_hello(0x0304, 0x1301);
        d.extend([0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 0x20]);
        d.extend([0u8; 32]);
        let srv = feed(&d, false);
        assert_eq!(srv.server_hello.as_ref().unwrap().version(), 0x0304);
        assert!(srv.encrypted && srv.certs.is_empty());
        assert_eq!(
            srv.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![22, 20, 23]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // (input, is_client) -> error text printed by the Python
        let cases: [(&[u8], bool, Option<&str>); 8] = [
            (
                b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",
                true,
                Some("malformed handshake message type 1: truncated: ClientHello of 4 bytes"),
            ),
            (
                b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",
                false,
                None,
            ),
            (
                b"\x16\x03\x01\xff\xff\0\0\0\0\0\0\0\0\0\0",
                true,
                Some("TLS record length 65535 exceeds 2^14+2048"),
            ),
            (
                b"\x05\x03\x01\x00\x00",
                true,
                Some("not a TLS record (content type 5) at stream offset 0"),
            ),
            (
                b"\x05\x03\x01\x00\x00",
                false,
                Some("not a TLS record (content type 5) at stream offset 0"),
            ),
            (
                b"\x16\x03\x01\x00\x04\x01\x03\x00\x00",
                true,
                Some("handshake message of 196608 bytes"),
            ),
            (b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03", true, None),
            (
                b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03",
                false,
                Some("malformed handshake message type 2: truncated: need 32 bytes at 2, have 0"),
            ),
        ];
        for (d, c, want) in cases {
            let s = feed(d, c);
            assert_eq!(s.error.as_deref(), want, "{d:?} {c}");
            assert!(s.client_hello.is_none());
        }
        // the oversized handshake header stays pending, as the Python's bytearray
        assert_eq!(
            feed(b"\x16\x03\x01\x00\x04\x01\x03\x00\x00", true).hs,
            vec![1, 3, 0, 0]
        );
    }

    #[test]
    fn parser_error_texts_match_python() {
        let rec = client_hello(Some(b"a.example"), &["h2"], &[0x0304, 0x0303], b"");
        let base = &rec[9..];
        assert_eq!(base.len(), 81);
        let mut comp = base[..35].to_vec();
        comp.extend([0, 0x10, 0, 0]);
        let mut over = base[..34].to_vec();
        over.push(0xff);
        over.extend(&base[35..]);
        let cases: [(Vec<u8>, &str); 4] = [
            (base[..37].to_vec(), "truncated: ClientHello of 37 bytes"),
            (comp, "truncated: compression methods"),
            (
                base[..80].to_vec(),
                "truncated: extensions need 1 more bytes",
            ),
            (over, "truncated: cipher suites"),
        ];
        for (b, want) in cases {
            assert_eq!(parse_client_hello(&b), Err(ParseError::invalid(want)));
        }
        let sh = server_hello(0x0304, 0x1301);
        let shb = &sh[9..];
        assert_eq!(
            parse_server_hello(b"").unwrap_err().to_string(),
            "truncated: need 2 bytes at 0, have 0"
        );
        assert_eq!(
            parse_server_hello(&shb[..shb.len() - 3])
                .unwrap_err()
                .to_string(),
            "truncated: need 6 bytes at 40, have 3"
        );
        assert_eq!(
            parse_server_hello(shb).unwrap().selected_version,
            Some(0x0304)
        );
    }

    #[test]
    fn sslv2_compatible_client_hello() {
        let mut v2 = vec![1u8, 3, 1, 0, 0x15, 0, 0, 0, 0x10];
        v2.extend(0u8..21);
        v2.extend([0xaa; 16]);
        let mut d = vec![0x80 | (v2.len() >> 8) as u8, v2.len() as u8];
        d.extend(&v2);
        d.extend(client_hello(Some(b"a.b"), &["h2"], &[0x0304, 0x0303], b""));
        let s = feed(&d, true);
        assert!(s.sslv2);
        assert_eq!(s.records, vec![(0x80, 46), (22, 79)]);
        let ch = s.client_hello.unwrap();
        assert_eq!((ch.legacy_version, ch.ciphers, ch.sni), (0x0301, 7, None));
        assert_eq!(s.hs_types, vec![1]);
        // an SSLv2 header still waiting for its bytes is not an error
        let s = feed(&d[..20], true);
        assert!(s.sslv2 && s.error.is_none() && s.records.is_empty());
    }

    #[test]
    fn ech_esni_alpn_and_odd_lists() {
        // ECH (0xfe0d) and ESNI (0xffce); ALPN with a non-ASCII byte; odd supported_versions length
        let extra = [
            0xfe, 0x0d, 0, 0, 0xff, 0xce, 0, 1, 0, 0, 16, 0, 5, 0, 3, 2, b'h', 0xe9, 0, 43, 0, 4,
            3, 3, 4, 0,
        ];
        let s = feed(&client_hello(None, &[], &[], &extra), true);
        let ch = s.client_hello.unwrap();
        assert!(ch.ech && ch.esni);
        assert_eq!(ch.alpn, vec!["h\\xe9"]);
        assert_eq!(ch.versions, vec![0x0304]);
        assert_eq!(ch.sni, None);
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(0).as_deref(), Some("0x0000"));
        assert_eq!(version_name(0x7f17).as_deref(), Some("TLSv1.3-draft23"));
        assert_eq!(version_name(0x0a0a).as_deref(), Some("0x0a0a"));
        assert_eq!(version_name(2).as_deref(), Some("SSLv2"));
        assert_eq!(version_name(0x0300).as_deref(), Some("SSLv3"));
        assert!(is_grease(0x1a1a) && !is_grease(0x1a2a));
        let sh = ServerHello {
            legacy_version: 0x0303,
            selected_version: Some(0),
            ..Default::default()
        };
        assert_eq!(sh.version(), 0x0303); // `selected_version or legacy_version`
    }

    #[test]
    fn done_after_max_records() {
        let mut d = Vec::new();
        for _ in 0..30 {
            d.extend(record(23, b"x"));
        }
        let s = feed(&d, true);
        assert_eq!(s.records.len(), MAX_RECORDS_TRACKED);
        assert!(s.done() && s.error.is_none());
    }

    #[test]
    fn never_panics_on_pseudo_random_input() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..3000 {
            let len = (round % 700) as usize;
            let mut d = vec![0x16u8, 3, 1];
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d.push(x as u8);
            }
            for c in [true, false] {
                let mut s = TlsStream::new(c);
                s.feed(&d);
                s.feed(&d[3..]);
                let _ = parse_client_hello(&d[3..]);
                let _ = parse_server_hello(&d[3..]);
                let _ = parse_certificate_list(&d[3..]);
            }
        }
    }

    // -- real handshakes from tests/scenarios/*/input.pcap; the reference line is the Python's --------
    /// (start offset, is_client, stream bytes as hex, the Python's result line)
    const REAL_STREAMS: &[(usize, bool, &str, &str)] = &[
        (
            0,
            false,
            concat!(
                "16030300500200004c03037a42ad8d555a3a6bc788f0a706149c99d70a3b947af7415a2e2ab2e68b0fba5c00c02c0000",
                "24ff01000100000b000403000102002300000010000b000908687474702f312e310017000016030306bc0b0006b80006",
                "b500030730820303308201eba00302010202141ae67255d414c6a2254059a4cc440b8138f51a29300d06092a864886f7",
                "0d01010b0500306a310b3009060355040613025553311e301c060355040a0c154578616d706c6520436f727020536563",
                "757269747931193017060355040b0c104e6574776f726b2053656375726974793120301e06035504030c17436f72706f",
                "7261746520496e7370656374696f6e204341301e170d3236313132363232303631335a170d3237303232343233303631",
                "335a3041313f303d06035504030c3634663363326131302d376535352d346431652d396134622d326236663063386439",
                "6530312e7765622d6170692e6b616e646a692e696f3059301306072a8648ce3d020106082a8648ce3d03010703420004",
                "a89ba62434af68a03e76eb0fb61fb295ec23a00ee4816ce4c474edc76af14ce8829ddaf29f31047e094157c398b17d8d",
                "cc119fbbca8dd8c36c07931d837eb15ca3819430819130410603551d11043a3038823634663363326131302d37653535",
                "2d346431652d396134622d3262366630633864396530312e7765622d6170692e6b616e646a692e696f300c0603551d13",
                "0101ff04023000301d0603551d250416301406082b0601050507030106082b06010505070302301f0603551d23041830",
                "16801424984753d118ba6876c0b548776c241c34cfa31e300d06092a864886f70d01010b0500038201010025c8dba53d",
                "b5eeb1b086ff92c4cc344be440c31e8435b3c056b352c2441bf5a3cd8285818e91a8434872e7e1f0b378b342fa0de6da",
                "0e534770d43b9e598d67003a3744a9df7652ba8511b27a625508c6cb7129b3c608c751429694d6a961cf79cbc87748b8",
                "15d85ccbf3e6ff6b8820ae01a7fe27dc8df3e196785dadc2a16019ba2debcdddd949e2e8b79ad8af1d4c89f54af09b17",
                "1f9e1a53e628cebd0afa919b9a704cb9e8e738feda6b6f0b65844184b778f6c38156c9370ed939fa4a5518d7d3164d6f",
                "0d54ce12c7a951ee76b70417677eb3e35f423aa1f1d2ed936321aa7aa7a921ef7d410e6cbef1994d08e098054cb2f365",
                "601340952610afec8a03a30003a8308203a43082028ca00302010202141f9b247d77cf1a1866a3ea416dc01e7d209d88",
                "63300d06092a864886f70d01010b0500306a310b3009060355040613025553311e301c060355040a0c154578616d706c",
                "6520436f727020536563757269747931193017060355040b0c104e6574776f726b2053656375726974793120301e0603",
                "5504030c17436f72706f7261746520496e7370656374696f6e204341301e170d3236313132353233303535395a170d33",
                "36313132333233303535395a306a310b3009060355040613025553311e301c060355040a0c154578616d706c6520436f",
                "727020536563757269747931193017060355040b0c104e6574776f726b2053656375726974793120301e06035504030c",
                "17436f72706f7261746520496e7370656374696f6e20434130820122300d06092a864886f70d01010105000382010f00",
                "3082010a0282010100a8893f090269e68320ad1824a663e6d92a88581b53622990d583f12089a357ec708e97ebb79b1e",
                "cac77d9d036cb4e51fbe07d3037d051ff1eb7a3057387e806914e0eec1fc66e86c6958e3be52de0c6f2b468cfbe9a774",
                "ff36eee88c6531829dafac15c1fa33dc16fe5a87a78a439d00d02ee255ac2ff0bf58ba030f48c637ab2f8f5f0dd00fc1",
                "f871087181a93a86c214652693befce08e04d660c5cdde010afbb9747bae2e768b3ee8c12cb139a82161a4c0ca333ebb",
                "d5d682a6e8dbd2d75c7935961136ebf81ebd6c59cdf203827a29ba024f3252a2c5ee97fcc25b3c8bc08d8e67b586399f",
                "047ef3201aede7001168153ae0b2778a8e18ee08d6649caa170203010001a3423040300f0603551d130101ff04053003",
                "0101ff300e0603551d0f0101ff040403020186301d0603551d0e0416041424984753d118ba6876c0b548776c241c34cf",
                "a31e300d06092a864886f70d01010b05000382010100153ea541e4bac089076d53fc5acea37caccc7a144167c1029f8b",
                "5e990391a71421bad116847e14b959686428cf1f10e95438a3ef75bc9e9386d108bd22e81caa97efa0c4bf291db8e351",
                "9b82e7084e3ffc472030555e85340783e580579fced48443feadc941de782c2e929bd6cecdbef3e12e250d41480d7111",
                "0c70a0850fff3e68adab274a5caa1a8572ef07c12a551f3569bc62b6313d9cebdf290d728ed3007ff71d6394506d6ff2",
                "c76387266175d4848d1408c31028ea1c4b136053557300d9c0a9aa0ff491395ff629060aa20e7930e375035a2e12834c",
                "b734b79356a1daabaec85e379f9652e0e4b44d98393a302fe0144e1bd1656695143957a25eb516030300740c00007003",
                "001d20fccd37b081d5a87224628617db53d8fdf1f078bee1b9b0faab7cb84458602066040300483046022100a1493d04",
                "c20b8fe73a1023196b24517924b9c94d519db49b5cc4a781fedb3a21022100810bd24edabe137a2292570a9aac45db33",
                "ce18bc9d56d60b267c99dc24977c3f16030300040e000000",
            ),
            concat!(
                "1944|0|22:80,22:1724,22:116,22:4||2,11,12,14|1|-|0|-|771|49196|-|687474702f312e31|771|4ff941e381",
                "af35f2b911492042b5d3cbc2480d9f14f05a93be4d4c7993010469,2c2e86596005581cab47cb7aff8953cdc53924d08",
                "fe1470685feed52d37e6649||0",
            ),
        ),
        (
            0,
            false,
            concat!(
                "160303007a0200007603030571b423df9e3d2a2a9070ba0a9267e53a622bacbf5a7e834ef0fa703c8608d6201a9f969d",
                "2f03b119e5b018739d811f38e62e0b93c1a7a516c3fd30af5abfc610130200002e002b0002030400330024001d002069",
                "9f9a9e0748b641dc79b5e83112582f75676162457d26ea193a4ad7f604954a14030300010117030300325c08ec6f1b6e",
                "1c92b8200773ea768f23e5027e41f37f09ebb62acd7ed7cd0b74bdaae42c82ab8f57171e94a7ab8368e748f217030306",
                "cc6291ca8e945748cb998d0dd49288038bf8582cef2158a0c5673a59226bcb5fb3d578c6851eba5ca45d170dd3cb132e",
                "51892069c19f61902255ae450322fd2246988c9f29b383dd4899bd330430ae95e5cbdb43f383787ebd5de703f0bd1c73",
                "0cf4552770056fd2c5e0a6d9b82412f473205af0680686a638c06c7ed234c186fd8aa231b29a3429f92abd4fd4c982b9",
                "7ec0e0108d6f06a7a1fee2376bc81ed8061121b106ae1859cea61149ef21eb6c6a30cca5979d156777300d9424f50966",
                "15cba2db5a69ea5d8dfb778f8343709949d37fb89171d523960e0eac85fb6e91ebecdec0668cac339ea742b14edfc87a",
                "8feaae67c4568f8e07cf6e69040987746b919e02173fe131038aa7059ea1f112b8483c43d0b2fbf7d6feb61b5f470166",
                "3127458ef7db6dd3058aae32d344c2c4a5009549512d866811a1c32fdca4080a9d7c656af31a8cab96d16abf0876b6b0",
                "8fe50822e7e67a927d53667456835a895a2fccb15f2fd3f9a1607fe7bced2518e8a755d7cf97060bbc63aa9d3df0552c",
                "437a435d5ed9390577d6d25187945d0f4234d6e98461c56215e5e2b22a4b066e15af714a90cc4a2bf6654ccb2a6912ee",
                "0fc0afa50b974b9baceadb287407b018f4f8b4927f3199541c2f2db26f316e17c174afb7f72814927560e0e2b8035072",
                "17d83991fde4416dcc0291fbc5a06c43f36e65758fe898342aed2fc4e84fb038bdef969d6e0c44d06828622bdc49c6e4",
                "9ea64fd7d6b5644dee9133ad0ac68ac83fc4a6b19d17449e2173c89f72ed7a282174982caa37b0bcc1042eb238491ec6",
                "b609b74b2e8a4ce4104487f462afd3bad26a3f618bfa680e0be007050f49e1f7f8e9095643964caf407666ba0b06db82",
                "83237e0f1839bac1b48dbdc11dbf6effe5e6009c53dd3cf140960265177a524696d827f6008b936cee8667bcc6b0923e",
                "c5d555ccd8d4d49ccdb07f39c5648efab7d391f411661253ffd77023b28e117777e794ecc21e175d0cc19b7c9c730077",
                "37ad6908df989eb16551b3421028ac7b3fdcde19e76065df7b614999c8d833a58426fe7e9c9b42931f1b26bf4780a0ed",
                "890c2cc76ea6f97e75bfb5d7f3b068555e3aa56f4e829ab1e811eef718f84fb809cf47a45d04d85fc281203e1a0f3fab",
                "7159345381b3062a5bfaa0ea0fe3bfeaa64deb7dbb15e1d26645fcb2eae6c96495e1b1faf8ddae2342217af5408d43c5",
                "2f1d45468286daa2498c8ebd4532f28442fe7baf1f13a76aa0728d506456043bfbb78222b415284fc10751b4728d01b0",
                "7ee9145d21c2b70710abf3933152516d3d8e522a42507094a619676d22542fb9cdaf7d6786d98be73c7617a2d42aea81",
                "974549e74ca9a849aea9a780103e0d6c8afa176a8f747a94a960b348555ff7efc9dd8775c5b413efe090dd7c4edd2cc1",
                "b7a138e600e3a64697ee4ff3622f26686ab0ed030336dfcc4936bbf1eddc9d06e9691f0a776ca6130ec1dde0d5b36421",
                "3330cae6c29b34d8475a4b36f47c20926aa4f1a557457fc521c012323a9a9535ffdf69f32780aaccd55c3373fa116d0c",
                "ca33c242e7b39f34276f7b51cb3ead9a0741c6356cc469155559f32395e5cba34ff2d860c901de3daba4e38102a06b64",
                "8746cf63b983885d2323c62b632c5c68a026dbf7e0b907ebc954e5d07e2c45a4c41f83a42d315d4a8a009d35b54c3e78",
                "c85599d5ca8ba5ce6581fe74cfa51ee74f01d7bf2763cb3dfa95f7c1dc69da30f1b56b29fa930242f4fae136be4e1190",
                "5e862c72bfcf1183",
            ),
            "188|1|22:122,20:1,23:50||2|0|-|0|-|771|4866|772|-|772|||0",
        ),
        (
            0,
            true,
            concat!(
                "1603010200010001fc03036216400ce22bac63c42eeee97ab84a7fa93d93429f82d612db22c7155f606fb1207a9168d5",
                "d4452d822f00ae67b4af6873555a5c097437dc250f51b1be3591b2e50024130213031301c02cc030c02bc02fcca9cca8",
                "c024c028c023c027009f009e006b006700ff0100018f0000003b003900003634663363326131302d376535352d346431",
                "652d396134622d3262366630633864396530312e7765622d6170692e6b616e646a692e696f000b000403000102000a00",
                "160014001d0017001e0019001801000101010201030104002300000010000e000c02683208687474702f312e31001600",
                "0000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205",
                "020602002b00050403040303002d00020101003300260024001d002013255c3b2f7ffdce470da7b273465409fcac73f6",
                "6b5e2800ed4957c2d76c1f73001500a50000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "0000000000000000000000000000000000000000000000000000000000000000000000000015030300020230",
            ),
            concat!(
                "524|0|22:512,21:2|2:48:1|1|0|-|0|771|34663363326131302d376535352d346431652d396134622d32623666306",
                "33864396530312e7765622d6170692e6b616e646a692e696f|34663363326131302d376535352d346431652d39613462",
                "2d3262366630633864396530312e7765622d6170692e6b616e646a692e696f|6832,687474702f312e31|772,771|18|",
                "0|0|772|-|||0",
            ),
        ),
        (
            129,
            true,
            concat!(
                "434f4e4e454354206d6573752e6170706c652e636f6d3a34343320485454502f312e310d0a486f73743a206d6573752e",
                "6170706c652e636f6d3a3434330d0a557365722d4167656e743a20636f6d2e6170706c652e7472757374642f322e320d",
                "0a50726f78792d436f6e6e656374696f6e3a206b6565702d616c6976650d0a0d0a1603010200010001fc0303e598ec2b",
                "2ce3e4cfff92eb7331d0f6f7a0ee48530389e4eb0afc170dcb627f7b20f622889945d032fa726f367bb8fd46815368b6",
                "d987d5449462d21ac07dd12fb00024130213031301c02cc030c02bc02fcca9cca8c024c028c023c027009f009e006b00",
                "6700ff0100018f00000013001100000e6d6573752e6170706c652e636f6d000b000403000102000a00160014001d0017",
                "001e0019001801000101010201030104002300000010000e000c02683208687474702f312e310016000000170000000d",
                "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0005",
                "0403040303002d00020101003300260024001d0020240e00b61fa168e3e9c82385a67d92260b1f2dbe2c1241c8d22d50",
                "f3f63dd824001500cd000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000001403030001011703030045811457e3a43fb9fbfb66c2a455af6b",
                "55ae9f13c1b65bb9db5678dc2bd15401f8aea20e3007521f98650904795ddb95f3e3c37c9e2884c0eb1dd8b58596388c",
                "8b1b6d032ded",
            ),
            concat!(
                "726|1|22:512,20:1,23:69||1|0|-|0|771|6d6573752e6170706c652e636f6d|6d6573752e6170706c652e636f6d|6",
                "832,687474702f312e31|772,771|18|0|0|772|-|||0",
            ),
        ),
        (
            0,
            true,
            concat!(
                "160301007e0100007a03028b72d5dc504193f6b8c333085752f77e16e06094f872080b57e04e1dee098b94000012c00a",
                "c0140039c009c01300330035002f00ff0100003f0000001700150000126964656e746974792e6170706c652e636f6d00",
                "0b000403000102000a000c000a001d0017001e00190018002300000016000000170000",
            ),
            concat!(
                "131|0|22:126||1|0|-|0|770|6964656e746974792e6170706c652e636f6d|6964656e746974792e6170706c652e636",
                "f6d|||9|0|0|770|-|||0",
            ),
        ),
    ];

    #[test]
    fn real_streams_match_python() {
        for (start, is_client, hexdata, want) in REAL_STREAMS {
            let data = unhex(hexdata);
            assert_eq!(run_stream(*is_client, *start, &data), *want);
        }
    }

    /// Differential check against the Python reference (set PCAPAUDIT_TLS_DIFF to the extraction
    /// output; skipped otherwise).
    #[test]
    fn differential_tls_against_python() {
        let Some(lines) = diff_lines() else { return };
        let (mut n, mut bad) = (std::collections::BTreeMap::new(), 0usize);
        for (kind, f, want) in &lines {
            let got = match kind.as_str() {
                "CH" => match parse_client_hello(&unhex(&f[0])) {
                    Ok(ch) => ch_fmt(Some(&ch)),
                    Err(e) => err_fmt(&e),
                },
                "SH" => match parse_server_hello(&unhex(&f[0])) {
                    Ok(sh) => sh_fmt(Some(&sh)),
                    Err(e) => err_fmt(&e),
                },
                "STREAM" => run_stream(f[0] == "1", f[1].parse().unwrap(), &unhex(&f[2])),
                _ => continue,
            };
            let e = n.entry(kind.clone()).or_insert((0usize, 0usize));
            e.0 += 1;
            if &got == want {
                e.1 += 1;
            } else {
                bad += 1;
                eprintln!(
                    "MISMATCH {kind} {}\n  want {want}\n  got  {got}",
                    &f.last().unwrap()[..80.min(f.last().unwrap().len())]
                );
            }
        }
        eprintln!("differential tls: {n:?} (kind: (total, equal))");
        assert_eq!(bad, 0);
    }
}
