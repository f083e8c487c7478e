//! QUIC Initial packets (v1, v2, drafts): header protection removal and AES-GCM decryption with the
//! keys derived from the client's first Destination Connection ID (RFC 9001 5), CRYPTO frame
//! reassembly -> the ClientHello; gQUIC CHLO. Mirrors `pcapaudit/decode/quic.py`.
//!
//! Client Initial packets are protected with keys derived from the client's Destination Connection ID
//! and a public per-version salt (RFC 9001 5.2, RFC 9369 3.3.1 for QUIC v2), so any observer can read
//! them. CRYPTO frames may arrive split over several packets, out of order, or coalesced with other
//! packets in one datagram; [`QuicClientState`] reassembles them by offset (up to [`MAX_CRYPTO`]).
//!
//! Google QUIC is also handled: Q043/Q046 carry the CHLO in clear; Q050 and T050/T051 use Initial
//! packets with their own salts (the salts are the ones Wireshark and nDPI use).

use std::collections::BTreeMap;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Aes128Gcm;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::proto::tls::{
    parse_client_hello, parse_server_hello, ClientHello, ServerHello, MAX_FLIGHT_RECORDS,
};

pub const SALT_V1: [u8; 20] = hex20("38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
pub const SALT_V2: [u8; 20] = hex20("0dede3def700a6db819381be6e269dcbf9bd2ed9");
pub const SALT_D29: [u8; 20] = hex20("afbfec289993d24c9e9786f19c6111e04390a899");
pub const SALT_D23: [u8; 20] = hex20("c3eef712c72ebb5a11a7d2432bb46365bef9f502");
pub const SALT_D22: [u8; 20] = hex20("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a");
pub const SALT_Q050: [u8; 20] = hex20("504574efd066fe2f9d945cfcdbd3a7f0d3b56b45");
pub const SALT_T050: [u8; 20] = hex20("7ff579e5acd072915580304c43a2367c60488310");
pub const SALT_T051: [u8; 20] = hex20("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d");

pub const V1: u32 = 0x0000_0001;
pub const V2: u32 = 0x6B33_43CF;
/// CRYPTO data beyond this offset is refused (an error), as in the Python.
pub const MAX_CRYPTO: u64 = 64 * 1024;

const fn hex20(s: &str) -> [u8; 20] {
    let b = s.as_bytes();
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nib(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    }
}

/// "QUICv1", "QUICv2", "draft-29", "Q050", "mvfst-2", "0x1a2a3a4a", as Python's `version_name`.
pub fn version_name(v: u32) -> String {
    if v == V1 {
        return "QUICv1".into();
    }
    if v == V2 {
        return "QUICv2".into();
    }
    if v >> 8 == 0xFF0000 {
        return format!("draft-{}", v & 0xFF);
    }
    let b = v.to_be_bytes();
    if (b[0] == b'Q' || b[0] == b'T') && b[1..].iter().all(u8::is_ascii_digit) {
        return b.iter().map(|&c| c as char).collect();
    }
    if v >> 12 == 0xFACEB {
        return format!("mvfst-{:x}", v & 0xFFF);
    }
    format!("0x{v:08x}")
}

/// A CRYPTO frame's offset and data.
type Crypto<'a> = (u64, &'a [u8]);

/// The frame of an Initial packet's payload `b` at `p`: the position after it and, for a CRYPTO frame,
/// its offset and data; None at the end, or at a frame that ends the reading (CONNECTION_CLOSE, or one
/// not allowed in an Initial). PADDING, PING and ACK frames are skipped.
fn initial_frame(b: &[u8], mut p: usize) -> Result<Option<(usize, Option<Crypto<'_>>)>, QErr> {
    let Some(&ftype) = b.get(p) else {
        return Ok(None);
    };
    match ftype {
        0x00 | 0x01 => Ok(Some((p + 1, None))), // PADDING, PING
        0x02 | 0x03 => {
            // ACK
            p += 1;
            (_, p) = varint(b, p)?;
            (_, p) = varint(b, p)?;
            let (count, np) = varint(b, p)?;
            p = np;
            (_, p) = varint(b, p)?;
            // each range is at least two bytes: a count beyond that fails on the varints
            for _ in 0..count.min(b.len() as u64) {
                (_, p) = varint(b, p)?;
                (_, p) = varint(b, p)?;
            }
            if ftype == 0x03 {
                for _ in 0..3 {
                    (_, p) = varint(b, p)?;
                }
            }
            Ok(Some((p, None)))
        }
        0x06 => {
            // CRYPTO
            let (off, np) = varint(b, p + 1)?;
            let (ln, np) = varint(b, np)?;
            if off.saturating_add(ln) > MAX_CRYPTO {
                return Err(QErr::Quic("CRYPTO data beyond 64 KiB".into()));
            }
            let end = np.saturating_add(ln as usize).min(b.len());
            Ok(Some((end, Some((off, b.get(np..end).unwrap_or(&[]))))))
        }
        _ => Ok(None),
    }
}

/// A CRYPTO stream's chunks (by offset) as the bytes contiguous from offset 0.
fn contiguous(chunks: &BTreeMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut data = Vec::new();
    let mut pos = 0u64;
    for (&off, chunk) in chunks {
        if off > pos {
            break;
        }
        let end = off + chunk.len() as u64;
        if end > pos {
            let skip = usize::try_from(pos - off).unwrap_or(usize::MAX);
            data.extend_from_slice(chunk.get(skip..).unwrap_or(&[]));
            pos = end;
        }
    }
    data
}

fn salt(v: u32) -> Option<&'static [u8; 20]> {
    match v {
        V1 => Some(&SALT_V1),
        V2 => Some(&SALT_V2),
        0x5130_3530 => Some(&SALT_Q050),
        0x5430_3530 => Some(&SALT_T050),
        0x5430_3531 => Some(&SALT_T051),
        _ if v >> 8 == 0xFF0000 => Some(match v & 0xFF {
            0..=22 => &SALT_D22,
            23..=28 => &SALT_D23,
            29..=32 => &SALT_D29,
            _ => &SALT_V1,
        }),
        0xFACE_B001 => Some(&SALT_D22),
        0xFACE_B002 | 0xFACE_B00E => Some(&SALT_D23),
        _ => None, // including version negotiation forcing (0x?a?a?a?a): no Initial to read
    }
}

fn expand_label(secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let hk = Hkdf::<Sha256>::from_prk(secret).ok()?;
    let len = u16::try_from(out.len()).ok()?;
    let mut info = Vec::with_capacity(10 + label.len());
    info.extend_from_slice(&len.to_be_bytes());
    info.push(u8::try_from(6 + label.len()).ok()?);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    hk.expand(&info, out).ok()
}

/// Client Initial keys of a version and Destination Connection ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// Client Initial (key, iv, hp) for a version and Destination Connection ID; None for a version
/// without a known salt.
pub fn initial_keys(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
    initial_keys_for(version, dcid, false)
}

/// Initial (key, iv, hp) of the client (`server` false: "client in") or of the server ("server in",
/// RFC 9001 5.2): both derive from the Destination Connection ID of the client's first Initial, so
/// an observer can read the server's Initial packets (its ServerHello) too.
pub fn initial_keys_for(version: u32, dcid: &[u8], server: bool) -> Option<InitialKeys> {
    let salt = salt(version)?;
    let (initial, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let mut client = [0u8; 32];
    let side: &[u8] = if server { b"server in" } else { b"client in" };
    expand_label(&initial, side, &mut client)?;
    let prefix: &[u8] = if version == V2 { b"quicv2 " } else { b"quic " };
    let label = |s: &[u8]| [prefix, s].concat();
    let mut k = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, &label(b"key"), &mut k.key)?;
    expand_label(&client, &label(b"iv"), &mut k.iv)?;
    expand_label(&client, &label(b"hp"), &mut k.hp)?;
    Some(k)
}

/// Why a datagram stopped being read; rendered as the Python's `f"{type(e).__name__}: {e}"`.
enum QErr {
    Quic(String),
    Value(&'static str),
    Tls(crate::ParseError),
}

impl QErr {
    fn render(&self) -> String {
        match self {
            QErr::Quic(m) => format!("QuicError: {m}"),
            QErr::Value(m) => format!("ValueError: {m}"),
            QErr::Tls(e) => format!("TlsParseError: {e}"),
        }
    }
}

fn varint(b: &[u8], p: usize) -> Result<(u64, usize), QErr> {
    let first = *b.get(p).ok_or(QErr::Value("varint past end"))?;
    let n = 1usize << (first >> 6);
    let bytes = b.get(p..p + n).ok_or(QErr::Value("varint past end"))?;
    let v = bytes[1..]
        .iter()
        .fold((first & 0x3F) as u64, |acc, &x| (acc << 8) | x as u64);
    Ok((v, p + n))
}

/// Python's `tls._hostname`: ASCII (or UTF-8 with `\xNN` for invalid bytes), trailing dots dropped,
/// lower-cased, control characters escaped.
fn hostname(raw: &[u8]) -> String {
    let mut s = String::new();
    let mut rest = raw;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(t) => {
                s.push_str(t);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                s.push_str(std::str::from_utf8(&rest[..good]).unwrap_or(""));
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for &c in &rest[good..good + bad] {
                    s.push_str(&format!("\\x{c:02x}"));
                }
                rest = &rest[good + bad..];
            }
        }
    }
    let s = s.trim_end_matches('.').to_lowercase();
    if s.chars().any(|c| (c as u32) < 0x21 || c as u32 == 0x7F) {
        s.chars()
            .map(|c| {
                if (c as u32) < 0x21 || c as u32 == 0x7F {
                    format!("\\x{:02x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s
    }
}

/// Per-flow state of the client side: CRYPTO stream reassembly and the parsed ClientHello.
#[derive(Debug, Clone, Default)]
pub struct QuicClientState {
    pub version: Option<u32>,
    pub first_dcid: Option<Vec<u8>>,
    /// CRYPTO frame data by offset (a later frame at the same offset replaces the earlier one)
    pub crypto: BTreeMap<u64, Vec<u8>>,
    pub client_hello: Option<ClientHello>,
    pub chlo_sni: Option<String>,
    pub packets: u32,
    pub error: Option<String>,
    pub gquic: bool,
}

impl QuicClientState {
    pub fn new() -> QuicClientState {
        QuicClientState::default()
    }

    /// ClientHello found, or no point in looking further.
    pub fn done(&self) -> bool {
        self.client_hello.is_some()
            || self.chlo_sni.is_some()
            || self.packets >= 16
            || (self.error.is_some() && self.packets >= 4)
    }

    /// Process one client->server UDP payload.
    pub fn feed(&mut self, datagram: &[u8]) {
        self.packets = self.packets.saturating_add(1);
        if let Err(e) = self.datagram(datagram) {
            self.error = Some(e.render());
        }
    }

    /// The SNI of the ClientHello (IETF QUIC) or of the gQUIC CHLO.
    pub fn sni(&self) -> Option<&str> {
        match &self.client_hello {
            Some(c) => c.sni.as_deref(),
            None => self.chlo_sni.as_deref(),
        }
    }

    /// The CRYPTO stream reassembled from offset 0 as far as it is contiguous (what the ClientHello is
    /// read from).
    pub fn crypto_stream(&self) -> Vec<u8> {
        contiguous(&self.crypto)
    }

    fn set_version(&mut self, version: u32) {
        // Python's `self.version = self.version or version`
        if self.version.is_none_or(|v| v == 0) {
            self.version = Some(version);
        }
    }

    fn datagram(&mut self, d: &[u8]) -> Result<(), QErr> {
        let mut p = 0usize;
        while p < d.len() {
            let first = d[p];
            if first & 0x80 == 0 {
                // short header, or gQUIC <= Q043 public header (flags byte with bit 7 clear)
                if p == 0 {
                    self.gquic_plain(d);
                }
                return Ok(());
            }
            if p + 6 > d.len() {
                return Ok(());
            }
            let version = u32::from_be_bytes([d[p + 1], d[p + 2], d[p + 3], d[p + 4]]);
            if version == 0 {
                return Ok(()); // version negotiation
            }
            let vb = version.to_be_bytes();
            if vb[0] == b'Q' && version < 0x5130_3530 {
                // Q046 and older in IETF-like framing: clear text
                self.set_version(version);
                self.gquic_plain(d);
                return Ok(());
            }
            let dl = d[p + 5] as usize;
            let dcid = d.get(p + 6..(p + 6 + dl).min(d.len())).unwrap_or(&[]);
            let mut q = p + 6 + dl;
            let Some(&sl) = d.get(q) else {
                return Ok(());
            };
            q += 1 + sl as usize;
            let ptype = (first >> 4) & 0x03;
            let is_initial = ptype == if version == V2 { 1 } else { 0 };
            let mut qq = q as u64;
            if is_initial {
                let (tok_len, after) = varint(d, q)?;
                qq = after as u64 + tok_len;
            }
            if ptype == if version == V2 { 0 } else { 3 } {
                return Ok(()); // Retry: no length field, nothing to read
            }
            let q = usize::try_from(qq).map_err(|_| QErr::Value("varint past end"))?;
            let (length, q) = varint(d, q)?;
            let end = q as u64 + length;
            if end > d.len() as u64 {
                return Err(QErr::Quic(format!(
                    "packet length {length} exceeds datagram"
                )));
            }
            let end = end as usize;
            if is_initial {
                self.set_version(version);
                if self.first_dcid.is_none() {
                    self.first_dcid = Some(dcid.to_vec());
                }
                let mut payload = decrypt(d, p, q, end, version, dcid);
                if payload.is_none() && self.first_dcid.as_deref() != Some(dcid) {
                    if let Some(first) = self.first_dcid.clone() {
                        payload = decrypt(d, p, q, end, version, &first);
                    }
                }
                let payload =
                    payload.ok_or_else(|| QErr::Quic("Initial packet did not decrypt".into()))?;
                if vb[0] == b'Q' {
                    // Q05x: gQUIC frames inside the Initial, the CHLO is a STREAM frame
                    self.gquic_plain(&payload);
                } else {
                    self.frames(&payload)?;
                }
            }
            p = end;
        }
        Ok(())
    }

    fn frames(&mut self, b: &[u8]) -> Result<(), QErr> {
        let mut p = 0usize;
        while let Some((np, crypto)) = initial_frame(b, p)? {
            p = np;
            if let Some((off, data)) = crypto {
                self.crypto.insert(off, data.to_vec());
                self.try_client_hello()?;
            }
        }
        Ok(())
    }

    fn try_client_hello(&mut self) -> Result<(), QErr> {
        if self.client_hello.is_some() {
            return Ok(());
        }
        let data = self.crypto_stream();
        if data.starts_with(b"CHLO") {
            self.chlo(&data);
            return Ok(());
        }
        if data.len() < 4 || data[0] != 1 {
            return Ok(());
        }
        let mlen = u32::from_be_bytes([0, data[1], data[2], data[3]]) as usize;
        if let Some(body) = data.get(4..4 + mlen) {
            // exactly where the Python calls parse_client_hello
            self.client_hello = Some(parse_client_hello(body).map_err(QErr::Tls)?);
        }
        Ok(())
    }

    fn gquic_plain(&mut self, d: &[u8]) {
        if let Some(i) = memchr::memmem::find(d, b"CHLO") {
            self.gquic = true;
            if self.version.is_none() && d[0] & 0x01 != 0 && d.len() >= 13 {
                // public flags: version present
                self.version = Some(u32::from_be_bytes([d[9], d[10], d[11], d[12]]));
            }
            self.chlo(&d[i..]);
        }
    }

    /// gQUIC handshake message: tag, u16 count, u16 pad, (tag, u32 end offset)*, values.
    fn chlo(&mut self, m: &[u8]) {
        if m.len() < 8 {
            return;
        }
        let n = u16::from_le_bytes([m[4], m[5]]) as usize;
        let base = 8 + 8 * n;
        if n > 128 || m.len() < base {
            return;
        }
        let mut prev = 0usize;
        for i in 0..n {
            let tag = &m[8 + 8 * i..12 + 8 * i];
            let end =
                u32::from_le_bytes([m[12 + 8 * i], m[13 + 8 * i], m[14 + 8 * i], m[15 + 8 * i]])
                    as usize;
            if end < prev || base + end > m.len() {
                return;
            }
            if tag == b"SNI\x00" {
                self.chlo_sni = Some(hostname(&m[base + prev..base + end]));
                self.gquic = true;
                return;
            }
            prev = end;
        }
    }
}

/// Remove header protection and decrypt one Initial packet (`start`: its first byte, `pn_off`: the
/// packet number's offset, `end`: the packet's end); None when it does not decrypt.
fn decrypt(
    d: &[u8],
    start: usize,
    pn_off: usize,
    end: usize,
    version: u32,
    dcid: &[u8],
) -> Option<Vec<u8>> {
    let keys = initial_keys(version, dcid)?;
    decrypt_with(d, start, pn_off, end, &keys)
}

/// `decrypt` with the keys given.
fn decrypt_with(
    d: &[u8],
    start: usize,
    pn_off: usize,
    end: usize,
    keys: &InitialKeys,
) -> Option<Vec<u8>> {
    if pn_off + 20 > end {
        return None;
    }
    let sample = d.get(pn_off + 4..pn_off + 20)?;
    let mut mask = GenericArray::clone_from_slice(sample);
    Aes128::new(GenericArray::from_slice(&keys.hp)).encrypt_block(&mut mask);
    let first = d[start] ^ (mask[0] & 0x0F);
    let pn_len = (first & 0x03) as usize + 1;
    let mut header = d.get(start..pn_off + pn_len)?.to_vec();
    header[0] = first;
    let mut pn = 0u64;
    for i in 0..pn_len {
        let byte = d[pn_off + i] ^ mask[1 + i];
        pn = (pn << 8) | byte as u64;
        header[pn_off - start + i] = byte;
    }
    let mut nonce = keys.iv;
    for (i, x) in pn.to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= x;
    }
    let cipher = Aes128Gcm::new(GenericArray::from_slice(&keys.key));
    cipher
        .decrypt(
            GenericArray::from_slice(&nonce),
            Payload {
                msg: d.get(pn_off + pn_len..end)?,
                aad: &header,
            },
        )
        .ok()
}

/// Kind of a long-header packet (the type bits mean different things in QUIC v2, RFC 9369 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongKind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

fn long_kind(version: u32, ptype: u8) -> LongKind {
    match (version == V2, ptype & 0x03) {
        (false, 0) | (true, 1) => LongKind::Initial,
        (false, 1) | (true, 2) => LongKind::ZeroRtt,
        (false, 2) | (true, 3) => LongKind::Handshake,
        _ => LongKind::Retry,
    }
}

/// One long-header packet of a datagram, as far as it is readable without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongPacket {
    pub kind: LongKind,
    pub version: u32,
    /// offset of the first byte in the datagram
    pub start: usize,
    /// offset of the (protected) packet number
    pub pn_off: usize,
    /// end of the packet (a Retry runs to the end of the datagram)
    pub end: usize,
    /// the Length field: packet number + payload + AEAD tag (0 for a Retry)
    pub length: u64,
    pub dcid: Vec<u8>,
    pub scid: Vec<u8>,
}

/// Long-header packets coalesced in one datagram, at most this many.
pub const MAX_COALESCED: usize = 16;

/// The long-header packets of a datagram (RFC 9000 12.2: each carries its Length, so coalesced packets
/// are walked one after the other), and whether a short-header packet (fixed bit set) follows them.
/// Stops quietly at anything unreadable: a version negotiation, a gQUIC version, a length past the
/// datagram, trailing padding (a zero byte is no packet).
pub fn long_packets(d: &[u8]) -> (Vec<LongPacket>, bool) {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < d.len() && out.len() < MAX_COALESCED {
        let first = d[p];
        if first & 0x80 == 0 {
            // a short header (1-RTT) packet has its fixed bit set; zero bytes are padding
            return (out, first & 0x40 != 0 && d.len() - p > 17);
        }
        let Some(vb) = d.get(p + 1..p + 5) else {
            break;
        };
        let version = u32::from_be_bytes([vb[0], vb[1], vb[2], vb[3]]);
        if version == 0 || vb[0] == b'Q' || vb[0] == b'T' {
            break; // version negotiation, gQUIC
        }
        let Some(&dl) = d.get(p + 5) else {
            break;
        };
        let Some(dcid) = d.get(p + 6..p + 6 + dl as usize) else {
            break;
        };
        let q = p + 6 + dl as usize;
        let Some(&sl) = d.get(q) else {
            break;
        };
        let Some(scid) = d.get(q + 1..q + 1 + sl as usize) else {
            break;
        };
        let mut q = q + 1 + sl as usize;
        let kind = long_kind(version, (first >> 4) & 0x03);
        if kind == LongKind::Retry {
            out.push(LongPacket {
                kind,
                version,
                start: p,
                pn_off: q,
                end: d.len(),
                length: 0,
                dcid: dcid.to_vec(),
                scid: scid.to_vec(),
            });
            break;
        }
        if kind == LongKind::Initial {
            let Ok((tok, after)) = varint(d, q) else {
                break;
            };
            match usize::try_from(tok).ok().and_then(|t| after.checked_add(t)) {
                Some(n) => q = n,
                None => break,
            }
        }
        let Ok((length, pn_off)) = varint(d, q) else {
            break;
        };
        let end = pn_off as u64 + length;
        if end > d.len() as u64 {
            break;
        }
        out.push(LongPacket {
            kind,
            version,
            start: p,
            pn_off,
            end: end as usize,
            length,
            dcid: dcid.to_vec(),
            scid: scid.to_vec(),
        });
        p = end as usize;
    }
    (out, false)
}

/// Bytes of AEAD tag in every protected QUIC packet (AES-GCM, ChaCha20-Poly1305).
pub const AEAD_TAG: u64 = 16;
/// The smallest Handshake packet that can carry a client's Finished: packet number (1), CRYPTO frame
/// header (3), Finished (4 + 32), tag (16). A smaller one is an acknowledgement only.
pub const MIN_FINISHED_PACKET: u64 = 56;
/// Server datagrams read at most.
pub const MAX_SERVER_DATAGRAMS: u32 = 32;

/// Per-flow state of the server side of a QUIC connection: its Initial packets decrypted with the
/// "server in" keys of the client's first Destination Connection ID (RFC 9001 5.2) and their CRYPTO
/// stream reassembled for the ServerHello, and the sizes of its Handshake packets, whose payload
/// (EncryptedExtensions, Certificate, CertificateVerify, Finished) cannot be decrypted passively.
#[derive(Debug, Clone, Default)]
pub struct QuicServerState {
    /// CRYPTO data of the server's Initials by offset (dropped once the ServerHello is read)
    pub crypto: BTreeMap<u64, Vec<u8>>,
    /// the ServerHello (or a HelloRetryRequest until the real one is read)
    pub server_hello: Option<ServerHello>,
    /// per server Handshake packet before the client answered: its Length less the AEAD tag, i.e. the
    /// packet number (1 to 4 bytes) and the frames (CRYPTO frames carrying the encrypted flight,
    /// acknowledgements); at most `MAX_FLIGHT_RECORDS`
    pub handshake: Vec<u16>,
    /// the client answered the flight (a Handshake packet large enough for its Finished, or a 1-RTT
    /// packet): later server packets are not part of it
    pub flight_closed: bool,
    /// the Source Connection ID of a Retry: the client's next Initials (and the server's) use keys
    /// derived from it
    pub retry_scid: Option<Vec<u8>>,
    pub packets: u32,
    pub error: Option<String>,
}

impl QuicServerState {
    pub fn new() -> QuicServerState {
        QuicServerState::default()
    }

    /// Nothing more to read from the server.
    pub fn done(&self) -> bool {
        self.flight_closed
            || self.packets >= MAX_SERVER_DATAGRAMS
            || self.handshake.len() >= MAX_FLIGHT_RECORDS
            || (self.error.is_some() && self.server_hello.is_none() && self.packets >= 4)
    }

    /// The server's Handshake packet sizes (`handshake`) when a TLS 1.3 ServerHello (not a
    /// HelloRetryRequest) was read, else empty: what `tls_server_flight` holds for QUIC.
    pub fn flight(&self) -> Vec<u16> {
        match &self.server_hello {
            Some(sh) if !sh.hrr && sh.version() == 0x0304 => self.handshake.clone(),
            _ => Vec::new(),
        }
    }

    /// Process one server->client UDP payload; `dcid`: the Destination Connection ID of the client's
    /// first Initial.
    pub fn feed(&mut self, datagram: &[u8], dcid: &[u8]) {
        self.packets = self.packets.saturating_add(1);
        if self.flight_closed {
            return;
        }
        let (pkts, _) = long_packets(datagram);
        for pk in pkts {
            match pk.kind {
                LongKind::Retry => {
                    if self.retry_scid.is_none() && !pk.scid.is_empty() {
                        self.retry_scid = Some(pk.scid);
                    }
                }
                LongKind::Handshake => {
                    if self.handshake.len() < MAX_FLIGHT_RECORDS {
                        let n = pk.length.saturating_sub(AEAD_TAG).min(u16::MAX as u64);
                        self.handshake.push(n as u16);
                    }
                }
                LongKind::Initial => {
                    let wanted = self.server_hello.as_ref().is_none_or(|sh| sh.hrr);
                    if wanted {
                        if let Err(e) = self.initial(datagram, &pk, dcid) {
                            self.error = Some(e.render());
                        }
                    }
                }
                LongKind::ZeroRtt => {}
            }
        }
    }

    /// A client->server UDP payload: closes the flight when the client answered it.
    pub fn client_datagram(&mut self, datagram: &[u8]) {
        if self.flight_closed || self.server_hello.is_none() {
            return;
        }
        let (pkts, short) = long_packets(datagram);
        if short
            || pkts
                .iter()
                .any(|p| p.kind == LongKind::Handshake && p.length >= MIN_FINISHED_PACKET)
        {
            self.flight_closed = true;
        }
    }

    fn initial(&mut self, d: &[u8], pk: &LongPacket, dcid: &[u8]) -> Result<(), QErr> {
        let mut payload = None;
        for id in [self.retry_scid.as_deref(), Some(dcid)]
            .into_iter()
            .flatten()
        {
            if let Some(k) = initial_keys_for(pk.version, id, true) {
                payload = decrypt_with(d, pk.start, pk.pn_off, pk.end, &k);
            }
            if payload.is_some() {
                break;
            }
        }
        let payload =
            payload.ok_or_else(|| QErr::Quic("server Initial packet did not decrypt".into()))?;
        let mut p = 0usize;
        while let Some((np, crypto)) = initial_frame(&payload, p)? {
            p = np;
            if let Some((off, data)) = crypto {
                self.crypto.insert(off, data.to_vec());
                self.try_server_hello()?;
            }
        }
        Ok(())
    }

    /// The contiguous CRYPTO stream from offset 0.
    fn crypto_stream(&self) -> Vec<u8> {
        contiguous(&self.crypto)
    }

    /// Read the handshake messages of the stream: the last ServerHello wins (a HelloRetryRequest is
    /// followed by the real one, further on in the same stream).
    fn try_server_hello(&mut self) -> Result<(), QErr> {
        let data = self.crypto_stream();
        let mut p = 0usize;
        while let Some(h) = data.get(p..p + 4) {
            let mlen = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
            let Some(body) = data.get(p + 4..p + 4 + mlen) else {
                break;
            };
            if h[0] != 2 {
                return Err(QErr::Quic(format!(
                    "handshake message {} in the server's Initial",
                    h[0]
                )));
            }
            let sh = parse_server_hello(body).map_err(QErr::Tls)?;
            let hrr = sh.hrr;
            self.server_hello = Some(sh);
            if !hrr {
                self.crypto.clear();
                break;
            }
            p += 4 + mlen;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aes_gcm::aead::Aead;

    pub(crate) fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// The ClientHello handshake message of tests/craft.py's `client_hello("push.example.net")`.
    pub(crate) const CH: &str = "0100005803031111111111111111111111111111111111111111111111111111111111111111000004130113020100002b000000150013000010707573682e6578616d706c652e6e6574001000050003026832002b00050403040303";

    /// First client datagram of arkime's quicietf.pcap (QUICv1, ssl.gstatic.com).
    const REAL: &str = "c700000001083233ff7a63cd9d380037004f4b86abfb112e86fe490976c43797825b8cb06b5654d1473c0279b561e4a5ac15c8fbdecfbd939c4824d32a948deb8108e26335938044e958044d172918803bc05f5b2cbe9484a904eec9c1c3c0e37f835460f4d0422387b145391c62c7e72ef4a5ffc0e121c27308d58a327cbdf40e1638746f06a06391e3cfeff02bff5779eceed4890fec27820d352cbc889952571d24d25cd77fb76798efb6b2be3759ae151bf9f42cb16e1304e437b2100ffb8cb21e850e54b0745a788eb46f48416094a4dfb642085709fe987e412d1eed620ec5eae1f772b0dab002df36c99792d64f7f01aced4de076ee1bb258373663189026d2bca4322771b36d4e8869f48e0e7fab53334c3285b0cae96d29e6941c9aff6cb73124d6ef3f45d01823d9b4da7e2169a7dfbc1d22c928854c308f629805aa651586c99bcf4fd48fa0fd85421230c060dbb0f8c4404131c1eed65f0ffc5e9ee56dc6aba18d76f5fdc6a386d6082082a82e1a6ea74c57b9fb190a27a2e6700e7af69657edab249db71eb3bc027fad2ef68040bf11e20f0892a35342068d6ab5a723af148e2ae78a05618f09137f787ae9a4aa50cbefbc04704bab671cb0581e1663554c165f44f66236b3c3caec82b4ddaa732aa2983d1cc4a364d5856386868320f60d5709db273859842fb11e4e6367723695e0986285d54747cc5803ca74586ddaaf72b066b2a89babdf67aeb6869d025cc439ca2beb179622fae6bac9b53413cadeb408b5a4f6699b703a7d72de6de066c285c19a5e8bea3c777bec7382fb2b86487bb00adb42ab59d782611ad03d69016718d19c42274aed74110ac74a142904907b63d034bcb7e5425ec0c8915dea09a84c003e463a4bd7cf17d841cd6e7e1f8e50e8119b6474ec73c8144b5ed385a348c536e344b8711778fdf87278f24c228985c2a5569efc1048a8c93274db976b310bdd06f2c588776581073ad2d34a08824c2a315d348736249754c0ed1254a9bb6e297197594cc3f33e7789d84689399864968163559ec11264697e98cb98d6e446f2ccc65af9a1172e80e4e53092e0f31b12086d9ef21c75b907a6341dfed534f18af19b9e14aa20f36b78f5295b8dcdee51a3f77ea0d85894d2a3d76c857037aee7f409465d228e85fc0336886701cf471d486649cadd0fab7d4e8ff7e712bc28fe570e14bd6d07bfbefcf37a88aa1f4dd15242603f7096afa250e332952d70f445b947865a395cdfa14f4d628e36081d0654389b2cff73fccab24b19df5e268ca916b5d11b8f8e61c4770e11a9f7891080654eeb1195aff45f29c7b16e9fd110b25d83cef56bbd5daef2828e380cd981d25d4ff32f50e386d9d584ed21edd5223dcdee1f06f3982b0eaba52836e28c44c34d07a78cc65a0d643ecc6b848f1b2f799243de430fbc56847781b101ad620c65cd00f0c64eb84e6dc83fe65f84b2ccbfca939f9e2ff830959202c2b8969453cb61e758f2e951c1df6e64f11a80996ea6292a3da57189420358c202ba302ed385b89e722f7ad84e999108316823579d86120004a99277abb908d62bb5cdc97f22856dae4b79d45726ee5c9c5c2ab779d23b17b6116d042106d41251887a7121da4350def794c1b56c15f256a34b851f0ce4f308d53b1ae113d7e4da6037d4118457fde3a5622c772a9aa0be9d3fa081d742d1e17a53165afbdbb89dbf947f38b8885be6aff73f27012d132d6364eb89c8905a06b4e1b6ebfe3c5916ffbb73b64bc7a9a976a763833b78b516bc1f50541af72984ac73bfe9b32be3eaa7bc7780821d935ade518e41522aba6fee9c6828499a2d92c6d78a4f86116cd5893c3e732085ffa75e6fcadd04a5cef1";
    /// Its CRYPTO stream as the Python reassembles it.
    const REAL_CRYPTO: &str = "01000280030311b62ad7bc5c5b7647974ea93a3a780d5a837768f0ca5e0b8b1f3b5f8a17c7690000061301130213030100025100000014001200000f73736c2e677374617469632e636f6d000a00080006001d00170018001000050003026833000d00140012040308040401050308050501080606010201003300260024001d00205bea7bdb4ebe44015c91eb401f48b5535162f45c9b56a84b74381bd65a2e8b4a002d00020101002b000302030400390084010480007530030245c0040480f00000050480600000060480600000070480600000080240640902406720048001000071270480015c900f0071292b4368726f6d652f39322e302e343531352e31353920496e74656c204d6163204f5320582031305f31355f37800047520400000001f125e1214afdbefb0b9eb267471577a8affd4e0f001b0003020002446900050003026833002901390114010e014c3fcb1856868e4de1f08b184937c6c0f5039d3cc4636ce4ccfc03b0c33aa49ecffcc20c300c7a09ba6129c8192c56d4990a5544f27fddc4f91339d4331a3e413f06a2f205e0b6be23aee67ebbd56300da5a0e945a96f3ebc7ddd11959d71e0ca9a2ae8025143ab992ec3cb474a4f9b8072afdbcf1d813c4ee64536fec70eff41332778f504eb3433e705150adbe09c05783aed3b2b4419fc1f80269ba150dca59db8c67a03cb97a6ea33b9f7d888e6fd79e14ab4fcfca6f384cf02206ffef1221b1255006018723bffe420b096819304715435d5faa67cb31c6965588a1a61f03eb26ea0cbf0af32dd0c1bdf2f1bcf7a4d70fafe473bf5f4c9acdbd1f2805880fe25f5de098ccf807042142573525525a0021200641eec35b3024b39e1e7611ea17c92626f1de6a810f341eeac203598d09ea53";

    #[test]
    fn initial_keys_rfc9001_appendix_a() {
        let k = initial_keys(1, &h("8394c8f03e515708")).unwrap();
        assert_eq!(hex::encode(k.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex::encode(k.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex::encode(k.hp), "9f50449e04a0e810283a1e9933adedd2");
        // A.2: header protection mask of the client Initial's sample
        let mut s = GenericArray::clone_from_slice(&h("d1b1c98dd7689fb8ec11d242b123dc9b"));
        Aes128::new(GenericArray::from_slice(&k.hp)).encrypt_block(&mut s);
        assert_eq!(hex::encode(&s[..5]), "437b9aec36");
    }

    #[test]
    fn initial_keys_rfc9369() {
        let k = initial_keys(V2, &h("8394c8f03e515708")).unwrap();
        assert_eq!(hex::encode(k.key), "8b1a0bc121284290a29e0971b5cd045d");
        assert_eq!(hex::encode(k.iv), "91f73e2351d8fa91660e909f");
        assert_eq!(hex::encode(k.hp), "45b95e15235d6f45a6b19cbcb0294ba9");
        let mut s = GenericArray::clone_from_slice(&h("d1b1c98dd7689fb8ec11d242b123dc9b"));
        Aes128::new(GenericArray::from_slice(&k.hp)).encrypt_block(&mut s);
        assert_eq!(hex::encode(&s[..5]), "0ba916bd32"); // the Python reference
                                                        // draft-29 (its own salt), against the Python reference
        let k = initial_keys(0xff00001d, &(0u8..8).collect::<Vec<_>>()).unwrap();
        assert_eq!(hex::encode(k.key), "c5b59db583aa570e8fdd936b134d89af");
        assert_eq!(hex::encode(k.iv), "92404d6419dcf38e8b87121d");
        assert_eq!(hex::encode(k.hp), "094162b792170e83b66cc5cb22e607d0");
        assert!(initial_keys(0x1a2a3a4a, b"x").is_none());
    }

    /// RFC 9001 A.3: the server's Initial (ServerHello) of the Appendix A exchange.
    pub(crate) const A3: &str = "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee";
    /// RFC 9369 A.3: the same for QUIC v2.
    const A3_V2: &str = "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca84bed8521e2e140";

    /// A Handshake packet (contents random: only its Length is read) of `length` bytes after the header.
    pub(crate) fn handshake_packet(version: u32, length: usize) -> Vec<u8> {
        let first = if version == V2 { 0xF1 } else { 0xE1 };
        let mut d = vec![first];
        d.extend_from_slice(&version.to_be_bytes());
        d.extend_from_slice(&[0, 8, 0xf0, 0x67, 0xa5, 0x50, 0x2a, 0x42, 0x62, 0xb5]);
        d.extend_from_slice(&[0x40 | (length >> 8) as u8, length as u8]);
        d.extend(vec![0x5a; length]);
        d
    }

    #[test]
    fn server_initial_keys_rfc9001_a1() {
        let k = initial_keys_for(1, &h("8394c8f03e515708"), true).unwrap();
        assert_eq!(hex::encode(k.key), "cf3a5331653c364c88f0f379b6067e37");
        assert_eq!(hex::encode(k.iv), "0ac1493ca1905853b0bba03e");
        assert_eq!(hex::encode(k.hp), "c206b8d9b9f0f37644430b490eeaa314");
    }

    #[test]
    fn server_initial_rfc9001_a3_and_flight() {
        let dcid = h("8394c8f03e515708");
        for (version, pkt) in [(1, A3), (V2, A3_V2)] {
            let a3 = h(pkt);
            let (pkts, short) = long_packets(&a3);
            assert!(!short);
            assert_eq!(pkts.len(), 1);
            assert_eq!(pkts[0].kind, LongKind::Initial);
            assert_eq!(pkts[0].scid, h("f067a5502a4262b5"));
            // the ServerHello alone: nothing from the client's keys
            let mut st = QuicServerState::new();
            st.feed(&a3, &h("0001020304050607"));
            assert!(st.server_hello.is_none(), "{version:x}");
            assert_eq!(
                st.error.as_deref(),
                Some("QuicError: server Initial packet did not decrypt")
            );
            // with the client's Destination Connection ID, coalesced with two Handshake packets
            let mut d = a3.clone();
            d.extend(handshake_packet(version, 1000));
            let mut st = QuicServerState::new();
            st.feed(&d, &dcid);
            assert!(st.error.is_none(), "{:?}", st.error);
            let sh = st.server_hello.as_ref().unwrap();
            assert_eq!(
                crate::proto::tls::server_shape(sh, true),
                "q13_1301_0033-002b_001d"
            );
            assert_eq!(st.flight(), vec![1000 - 16]);
            // a second datagram: Handshake packet then padding (no packet)
            let mut d = handshake_packet(version, 300);
            d.extend([0u8; 40]);
            st.feed(&d, &dcid);
            assert_eq!(st.flight(), vec![984, 284]);
            // the client's acknowledgement alone does not end the flight, its Finished does
            st.client_datagram(&handshake_packet(version, 30));
            assert!(!st.flight_closed && !st.done());
            st.client_datagram(&handshake_packet(version, 60));
            assert!(st.flight_closed && st.done());
            st.feed(&handshake_packet(version, 500), &dcid);
            assert_eq!(st.flight(), vec![984, 284]);
            // a client 1-RTT packet ends it too
            let mut st = QuicServerState::new();
            st.feed(&a3, &dcid);
            st.feed(&handshake_packet(version, 700), &dcid);
            st.client_datagram(&[0u8; 1200]); // padding is no packet
            assert!(!st.flight_closed);
            let mut one_rtt = vec![0x41];
            one_rtt.extend([7u8; 40]);
            st.client_datagram(&one_rtt);
            assert!(st.flight_closed);
            assert_eq!(st.flight(), vec![684]);
        }
    }

    /// A protected server Initial around `frames` (RFC 9001 5.2 "server in" keys).
    fn protect_server(version: u32, dcid: &[u8], frames: &[u8], pn: u32) -> Vec<u8> {
        let k = initial_keys_for(version, dcid, true).unwrap();
        let mut payload = frames.to_vec();
        if payload.len() < 20 {
            payload.resize(20, 0);
        }
        let first = if version == V2 { 0xD3 } else { 0xC3 };
        let length = payload.len() + 16 + 4;
        let mut hdr = vec![first];
        hdr.extend_from_slice(&version.to_be_bytes());
        hdr.extend_from_slice(&[0, 4, 9, 9, 9, 9, 0]);
        hdr.extend_from_slice(&[0x40 | (length >> 8) as u8, length as u8]);
        hdr.extend_from_slice(&pn.to_be_bytes());
        seal(&k, hdr, &payload, pn)
    }

    /// The ServerHello handshake message of RFC 9001 A.3 (from its unprotected payload).
    const A3_SH: &str = "020000560303eefce7f7b37ba1d1632e96677825ddf73988cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c940d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00020304";

    #[test]
    fn server_hello_split_over_initials_retry_and_hrr() {
        let sh = h(A3_SH);
        let dcid: Vec<u8> = (0..8).collect();
        // split, second half first, with an ACK before the CRYPTO frame
        let mut st = QuicServerState::new();
        let ack = [0x02, 0x00, 0x00, 0x00, 0x00];
        st.feed(
            &protect_server(
                1,
                &dcid,
                &[&ack[..], &crypto_frame(50, &sh[50..])].concat(),
                1,
            ),
            &dcid,
        );
        assert!(st.server_hello.is_none() && st.error.is_none());
        st.feed(
            &protect_server(1, &dcid, &crypto_frame(0, &sh[..50]), 0),
            &dcid,
        );
        assert_eq!(st.server_hello.as_ref().map(|s| s.cipher), Some(0x1301));
        assert!(st.crypto.is_empty());
        // after a Retry the keys come from the Retry's Source Connection ID
        let mut retry = vec![0xF0];
        retry.extend_from_slice(&1u32.to_be_bytes());
        retry.extend_from_slice(&[0, 5, 1, 2, 3, 4, 5]);
        retry.extend([0x77; 24]);
        let mut st = QuicServerState::new();
        st.feed(&retry, &dcid);
        assert_eq!(st.retry_scid.as_deref(), Some(&[1u8, 2, 3, 4, 5][..]));
        st.feed(
            &protect_server(1, &[1, 2, 3, 4, 5], &crypto_frame(0, &sh), 0),
            &dcid,
        );
        assert!(st.server_hello.is_some(), "{:?}", st.error);
        // a HelloRetryRequest, then the ServerHello further on in the stream
        let mut hrr = sh.clone();
        hrr[6..38].copy_from_slice(&crate::proto::tls::HRR_RANDOM);
        let mut st = QuicServerState::new();
        st.feed(&protect_server(1, &dcid, &crypto_frame(0, &hrr), 0), &dcid);
        assert!(st.server_hello.as_ref().unwrap().hrr);
        st.feed(&handshake_packet(1, 100), &dcid);
        assert!(st.flight().is_empty());
        st.feed(
            &protect_server(1, &dcid, &crypto_frame(hrr.len() as u32, &sh), 1),
            &dcid,
        );
        assert!(!st.server_hello.as_ref().unwrap().hrr);
        assert_eq!(st.flight(), vec![84]);
        // garbage: an error, no panic; done after a few
        let mut st = QuicServerState::new();
        st.feed(
            &protect_server(1, &dcid, &crypto_frame(0, b"\x08\x00\x00\x01x"), 0),
            &dcid,
        );
        assert_eq!(
            st.error.as_deref(),
            Some("QuicError: handshake message 8 in the server's Initial")
        );
        for _ in 0..3 {
            st.feed(b"\xc0\x00\x00\x00\x01\x08", &dcid);
        }
        assert!(st.done());
    }

    #[test]
    fn version_names() {
        for (v, n) in [
            (1, "QUICv1"),
            (V2, "QUICv2"),
            (0xff00001d, "draft-29"),
            (0xff000017, "draft-23"),
            (0x51303530, "Q050"),
            (0x51303436, "Q046"),
            (0x54303531, "T051"),
            (0xfaceb002, "mvfst-2"),
            (0x1a2a3a4a, "0x1a2a3a4a"),
            (0xff000016, "draft-22"),
            (0x5130343a, "0x5130343a"),
        ] {
            assert_eq!(version_name(v), n);
        }
    }

    /// `payload` encrypted under `k` after the header `hdr` (whose last 4 bytes are the packet number
    /// `pn`), header protection applied (RFC 9001 5.3, 5.4).
    fn seal(k: &InitialKeys, hdr: Vec<u8>, payload: &[u8], pn: u32) -> Vec<u8> {
        let mut nonce = k.iv;
        for (i, x) in (pn as u64).to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= x;
        }
        let ct = Aes128Gcm::new(GenericArray::from_slice(&k.key))
            .encrypt(
                GenericArray::from_slice(&nonce),
                Payload {
                    msg: payload,
                    aad: &hdr,
                },
            )
            .unwrap();
        let pn_off = hdr.len() - 4;
        let mut mask = GenericArray::clone_from_slice(&ct[..16]);
        Aes128::new(GenericArray::from_slice(&k.hp)).encrypt_block(&mut mask);
        let mut out = [hdr, ct].concat();
        out[0] ^= mask[0] & 0x0F;
        for i in 0..4 {
            out[pn_off + i] ^= mask[1 + i];
        }
        out
    }

    /// A protected client Initial around `frames` (test_protocols.py's `_protect`).
    pub(crate) fn protect(version: u32, dcid: &[u8], frames: &[u8], pn: u32) -> Vec<u8> {
        let k = initial_keys(version, dcid).unwrap();
        let mut payload = frames.to_vec();
        if payload.len() < 1162 {
            payload.resize(1162, 0);
        }
        let first = if version == V2 { 0xD3 } else { 0xC3 };
        let length = payload.len() + 16 + 4;
        let mut hdr = vec![first];
        hdr.extend_from_slice(&version.to_be_bytes());
        hdr.push(dcid.len() as u8);
        hdr.extend_from_slice(dcid);
        hdr.extend_from_slice(&[0, 0, 0x40 | (length >> 8) as u8, length as u8]);
        hdr.extend_from_slice(&pn.to_be_bytes());
        seal(&k, hdr, &payload, pn)
    }

    pub(crate) fn crypto_frame(off: u32, data: &[u8]) -> Vec<u8> {
        let vi = |n: u32| {
            [
                0x80 | (n >> 24) as u8,
                (n >> 16) as u8,
                (n >> 8) as u8,
                n as u8,
            ]
        };
        [&[0x06][..], &vi(off), &vi(data.len() as u32), data].concat()
    }

    #[test]
    fn client_hello_split_out_of_order() {
        let ch = h(CH);
        let dcid: Vec<u8> = (0..8).collect();
        for version in [1, V2, 0xff00001d] {
            let mut st = QuicClientState::new();
            st.feed(&protect(version, &dcid, &crypto_frame(40, &ch[40..]), 1));
            assert!(st.client_hello.is_none());
            assert!(st.crypto_stream().is_empty());
            st.feed(&protect(version, &dcid, &crypto_frame(0, &ch[..40]), 0));
            // the reassembled handshake message is what parse_client_hello is given
            assert_eq!(st.crypto_stream(), ch, "{version:x}");
            assert_eq!(st.version, Some(version));
            assert_eq!(st.first_dcid.as_deref(), Some(&dcid[..]));
            assert_eq!(st.packets, 2);
            // with tls.rs a stub the parse fails; with it ported, the SNI is push.example.net
            match &st.client_hello {
                Some(c) => assert_eq!(c.sni.as_deref(), Some("push.example.net")),
                None => assert!(st.error.as_deref().unwrap().starts_with("TlsParseError: ")),
            }
        }
    }

    #[test]
    fn coalesced_and_errors() {
        let ch = h(CH);
        let dcid: Vec<u8> = (0..8).collect();
        // two Initials coalesced in one datagram
        let mut d = protect(1, &dcid, &crypto_frame(0, &ch[..30]), 0);
        d.extend(protect(1, &dcid, &crypto_frame(30, &ch[30..]), 1));
        let mut st = QuicClientState::new();
        st.feed(&d);
        assert_eq!(st.crypto_stream(), ch);
        // wrong key: does not decrypt
        let mut bad = protect(1, &dcid, &crypto_frame(0, &ch), 0);
        let n = bad.len();
        bad[n - 1] ^= 1;
        let mut st = QuicClientState::new();
        st.feed(&bad);
        assert_eq!(
            st.error.as_deref(),
            Some("QuicError: Initial packet did not decrypt")
        );
        assert!(!st.done());
        for _ in 0..3 {
            st.feed(&bad);
        }
        assert!(st.done());
        // length past the datagram
        let mut st = QuicClientState::new();
        st.feed(&bad[..200]);
        assert_eq!(
            st.error.as_deref(),
            Some("QuicError: packet length 1182 exceeds datagram")
        );
        // CRYPTO beyond 64 KiB
        let mut st = QuicClientState::new();
        st.feed(&protect(1, &dcid, &crypto_frame(65530, b"0123456789"), 0));
        assert_eq!(
            st.error.as_deref(),
            Some("QuicError: CRYPTO data beyond 64 KiB")
        );
        // a varint cut short
        let mut st = QuicClientState::new();
        st.feed(b"\xc3\x00\x00\x00\x01\x00\x00");
        assert_eq!(st.error.as_deref(), Some("ValueError: varint past end"));
        // version negotiation, short header: nothing
        let mut st = QuicClientState::new();
        st.feed(b"\xc3\x00\x00\x00\x00\x08");
        st.feed(b"\x40abcdef");
        assert_eq!(
            (st.error.is_none(), st.packets, st.version),
            (true, 2, None)
        );
        assert_eq!(st.packets, 2);
    }

    #[test]
    fn done_after_16_packets() {
        let mut st = QuicClientState::new();
        for _ in 0..15 {
            st.feed(b"\x40");
        }
        assert!(!st.done());
        st.feed(b"\x40");
        assert!(st.done());
    }

    fn chlo(sni: &[u8]) -> Vec<u8> {
        // tag CHLO, 2 entries: PAD (4 bytes), SNI
        let mut m = b"CHLO\x02\x00\x00\x00".to_vec();
        m.extend_from_slice(b"PAD\x00");
        m.extend_from_slice(&4u32.to_le_bytes());
        m.extend_from_slice(b"SNI\x00");
        m.extend_from_slice(&(4 + sni.len() as u32).to_le_bytes());
        m.extend_from_slice(b"\x00\x00\x00\x00");
        m.extend_from_slice(sni);
        m
    }

    #[test]
    fn gquic_chlo_in_clear() {
        // Q043 public header: flags (version present), 8-byte CID, version, packet number, frames
        let mut d = vec![0x0d];
        d.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        d.extend_from_slice(b"Q043");
        d.extend_from_slice(&[1, 0xa0, 0, 0, 0]);
        d.extend(chlo(b"WWW.Example.COM."));
        let mut st = QuicClientState::new();
        st.feed(&d);
        assert!(st.gquic && st.done());
        assert_eq!(st.sni(), Some("www.example.com"));
        assert_eq!(st.version, Some(0x51303433));
        assert_eq!(version_name(st.version.unwrap()), "Q043");
        // Q046: IETF-like long header, still clear
        let mut d = vec![0xc3];
        d.extend_from_slice(b"Q046");
        d.extend_from_slice(&[0x50, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1]);
        d.extend(chlo(b"a\x01b\xff"));
        let mut st = QuicClientState::new();
        st.feed(&d);
        assert_eq!(st.sni(), Some("a\\x01b\\xff"));
        assert_eq!(st.version, Some(0x51303436));
    }

    #[test]
    fn real_quicietf_initial() {
        let mut st = QuicClientState::new();
        st.feed(&h(REAL));
        assert_eq!(st.version, Some(1));
        let stream = st.crypto_stream();
        let want = h(REAL_CRYPTO);
        let n = 4 + u32::from_be_bytes([0, want[1], want[2], want[3]]) as usize;
        assert_eq!(&stream[..n], &want[..n]);
        assert!(memchr::memmem::find(&stream, b"ssl.gstatic.com").is_some());
    }

    /// Differential check against the Python over every QUIC client flow of the corpus (vectors
    /// written by a hand-run script, `PCAPAUDIT_VECTORS=/path`); skipped when absent.
    #[test]
    fn corpus_differential() {
        let Ok(path) = std::env::var("PCAPAUDIT_VECTORS") else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (mut same, mut total) = (0, 0);
        for line in text.lines().filter(|l| l.starts_with("quic\t")) {
            let f: Vec<&str> = line.split('\t').collect();
            let want: Vec<&str> = f[2].split('|').collect();
            let mut st = QuicClientState::new();
            for d in f[1].split(',') {
                st.feed(&h(d));
            }
            let py_stream = h(want[0]);
            let stream = st.crypto_stream();
            let py_ch = want[4] == "1";
            let stream_ok = if py_ch {
                let n =
                    4 + u32::from_be_bytes([0, py_stream[1], py_stream[2], py_stream[3]]) as usize;
                stream.get(..n) == py_stream.get(..n)
            } else {
                stream == py_stream
            };
            let opt = |o: Option<String>| o.unwrap_or_else(|| "None".into());
            let err_ok = if py_ch {
                st.error.is_none() || st.error.as_deref().unwrap().starts_with("TlsParseError")
            } else {
                opt(st.error.clone()) == want[6]
            };
            let ok = stream_ok
                && err_ok
                && opt(st.version.map(|v| v.to_string())) == want[1]
                && (st.gquic as u8).to_string() == want[2]
                && opt(st.chlo_sni.clone()) == want[3]
                && opt(st.first_dcid.as_ref().map(hex::encode)) == want[7];
            total += 1;
            if ok {
                same += 1;
            } else {
                eprintln!(
                    "DIFF {} py={:?} rs=({:?},{},{:?},{:?})",
                    f[3],
                    &want[1..],
                    st.version,
                    st.gquic,
                    st.chlo_sni,
                    st.error
                );
            }
        }
        eprintln!("quic differential: {same}/{total} flows identical");
        assert_eq!(same, total);
    }

    /// Client flows to port 443 of a corpus capture, each fed until done(); None without the corpus.
    fn corpus_flows(rel: &str) -> Option<Vec<QuicClientState>> {
        let pkts = crate::proto::dns::tests::corpus_udp(rel)?;
        let mut flows: Vec<(Vec<u8>, QuicClientState)> = Vec::new();
        for (_, dport, payload, key) in pkts {
            if dport != 443 || payload.is_empty() {
                continue;
            }
            let i = match flows.iter().position(|f| f.0 == key) {
                Some(i) => i,
                None => {
                    flows.push((key, QuicClientState::new()));
                    flows.len() - 1
                }
            };
            if !flows[i].1.done() {
                flows[i].1.feed(&payload);
            }
        }
        Some(flows.into_iter().map(|f| f.1).collect())
    }

    fn has(st: &QuicClientState, name: &[u8]) -> bool {
        memchr::memmem::find(&st.crypto_stream(), name).is_some()
    }

    /// Real captures of the shared corpus (skipped when it is absent); expected values from the Python.
    #[test]
    fn corpus_captures() {
        if let Some(flows) = corpus_flows("arkime/quicietfooo.pcap") {
            eprintln!("quicietfooo: {} flows", flows.len());
            let st = &flows[0];
            assert_eq!(st.version, Some(1));
            assert!(has(st, b"ssl.gstatic.com"));
            assert_eq!(
                st.first_dcid.as_deref().map(hex::encode).as_deref(),
                Some("296beed955e8abe9")
            );
        }
        if let Some(flows) = corpus_flows("ndpi/quic_frags_different_dcid.pcapng") {
            let st = &flows[0];
            assert_eq!(
                st.first_dcid.as_deref().map(hex::encode).as_deref(),
                Some("ac49898ddc4590e8")
            );
            assert!(has(st, b"cdnjs.cloudflare.com"));
        }
        if let Some(flows) = corpus_flows("ndpi/gquic.pcap") {
            let st = &flows[0];
            assert_eq!(st.sni(), Some("www.gstatic.com"));
            assert_eq!(st.version.map(version_name).as_deref(), Some("Q050"));
            assert!(st.gquic && st.done());
        } else {
            eprintln!("corpus absent: skipped");
        }
    }
}
