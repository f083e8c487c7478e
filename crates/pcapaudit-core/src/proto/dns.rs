//! DNS messages (UDP and TCP framing is the caller's). Mirrors `pcapaudit/decode/dns.py`.
//!
//! Hostile input is the normal case: compression pointers may loop or point forward, labels may hold
//! any byte, counts may be absurd. Names are rendered like `dig` does (`\DDD` escapes for bytes that
//! are not printable ASCII, UTF-8 labels kept when every character is printable), a pointer chain is
//! limited to [`MAX_POINTERS`] jumps, a name to 255 bytes, the record counts read to [`MAX_RECORDS`].
//! Every failure is a [`ParseError::Invalid`] carrying the Python's message.
//!
//! Beyond the Python: NOTIFY (opcode 4) and UPDATE (opcode 5) messages expose their zone and the
//! names they carry ([`DnsMessage::zone`], [`DnsMessage::update`]), and [`parse_nbns`] reads NetBIOS
//! name service messages (udp/137).

use crate::{ParseError, ParseResult};

/// Longest chain of compression pointers followed in one name (Python's `MAX_POINTERS`).
pub const MAX_POINTERS: usize = 32;
/// Most questions / answers read from one message (Python's `MAX_RECORDS`).
pub const MAX_RECORDS: u16 = 256;

/// The parts of a DNS message the auditor uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsMessage {
    pub trans_id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub truncated: bool,
    /// (name, qtype)
    pub questions: Vec<(String, u16)>,
    /// (owner name, type, value, ttl)
    pub answers: Vec<(String, u16, String, u32)>,
    /// owner name of the first answer record, whatever its type
    pub first_owner: Option<String>,
    /// the answer section was malformed: what was read before it is kept
    pub error: Option<String>,
    /// UPDATE (opcode 5) only: the prerequisite and update sections (not in the Python).
    pub update: Option<DnsUpdate>,
}

/// The sections of a DNS UPDATE message (RFC 2136 2.2): the zone is the (only) question, the
/// prerequisite section takes the place of the answers, the update section of the authority records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsUpdate {
    /// (name, type, class) of each prerequisite (class ANY=255 / NONE=254 say "in use" / "not in use")
    pub prerequisites: Vec<(String, u16, u16)>,
    /// (name, type, class, value, ttl) of each update: class IN adds `value` (rendered as an answer's
    /// value, empty when its type is not rendered), ANY deletes an RRset or all RRsets, NONE deletes an RR
    pub updates: Vec<(String, u16, u16, String, u32)>,
    /// the prerequisite or update section was malformed: what was read before it is kept
    pub error: Option<String>,
}

impl DnsMessage {
    /// The zone a NOTIFY (opcode 4) or UPDATE (opcode 5) message is about: its first question's name.
    pub fn zone(&self) -> Option<&str> {
        if self.opcode == 4 || self.opcode == 5 {
            self.questions.first().map(|q| q.0.as_str())
        } else {
            None
        }
    }

    /// Every name a NOTIFY / UPDATE carries: the zone, the prerequisite and the updated names (in
    /// order, duplicates dropped). For other opcodes: the question names.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for q in &self.questions {
            if !out.contains(&q.0.as_str()) {
                out.push(q.0.as_str());
            }
        }
        if let Some(u) = &self.update {
            for p in &u.prerequisites {
                if !out.contains(&p.0.as_str()) {
                    out.push(p.0.as_str());
                }
            }
            for p in &u.updates {
                if !out.contains(&p.0.as_str()) {
                    out.push(p.0.as_str());
                }
            }
        }
        out
    }

    /// UPDATE only: the A / AAAA records its update section adds (class IN), as answers are given
    /// (owner, type, value, ttl). Empty for other opcodes.
    pub fn added_addresses(&self) -> Vec<(String, u16, String, u32)> {
        let Some(u) = &self.update else {
            return Vec::new();
        };
        u.updates
            .iter()
            .filter(|(_, t, c, v, _)| (*t == 1 || *t == 28) && *c == 1 && !v.is_empty())
            .map(|(o, t, _, v, ttl)| (o.clone(), *t, v.clone(), *ttl))
            .collect()
    }
}

/// "QUERY", "NOTIFY", "UPDATE", ... (IANA DNS OPCODEs), "OPCODE<n>" for unassigned ones.
pub fn opcode_name(op: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "QUERY", "IQUERY", "STATUS", "OPCODE3", "NOTIFY", "UPDATE", "DSO", "OPCODE7", "OPCODE8",
        "OPCODE9", "OPCODE10", "OPCODE11", "OPCODE12", "OPCODE13", "OPCODE14", "OPCODE15",
    ];
    NAMES.get(usize::from(op)).copied().unwrap_or("OPCODE?")
}

fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

/// Python's `str.isprintable()` (Unicode 14.0, the reference's Python 3.11).
fn py_printable(c: char) -> bool {
    let cp = c as u32;
    NON_PRINTABLE
        .binary_search_by(|&(a, b)| {
            if b < cp {
                std::cmp::Ordering::Less
            } else if a > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

fn push_escaped(out: &mut String, c: u8) {
    match c {
        b'.' => out.push_str("\\."),
        b'\\' => out.push_str("\\\\"),
        0x21..=0x7e => out.push(c.to_ascii_lowercase() as char),
        _ => {
            out.push('\\');
            out.push((b'0' + c / 100) as char);
            out.push((b'0' + (c / 10) % 10) as char);
            out.push((b'0' + c % 10) as char);
        }
    }
}

/// One label as the Python's `_label` renders it.
fn render_label(raw: &[u8], out: &mut String) {
    if !raw.is_ascii() {
        // mDNS/DNS-SD instance names are UTF-8 by design (RFC 6763 4.1.1): keep readable text, but
        // only when every character is printable and cannot be confused with a label separator
        if let Ok(text) = std::str::from_utf8(raw) {
            if text
                .chars()
                .all(|c| py_printable(c) && c != '.' && c != '\\')
            {
                out.push_str(&text.to_lowercase());
                return;
            }
        }
    }
    for &c in raw {
        push_escaped(out, c);
    }
}

/// Walk a possibly compressed name at `off`: calls `label` for each label, returns the offset after
/// the name in place. Errors are the Python's `read_name` errors.
fn walk_name<'a>(
    msg: &'a [u8],
    mut off: usize,
    mut label: impl FnMut(&'a [u8]),
) -> ParseResult<usize> {
    let mut end: Option<usize> = None;
    let mut jumps = 0usize;
    let mut total = 0usize;
    loop {
        let ln = *msg
            .get(off)
            .ok_or_else(|| invalid("name runs past the end of the message"))?;
        if ln == 0 {
            off += 1;
            break;
        }
        if ln & 0xC0 == 0xC0 {
            let lo = *msg
                .get(off + 1)
                .ok_or_else(|| invalid("truncated compression pointer"))?;
            let ptr = (((ln & 0x3F) as usize) << 8) | lo as usize;
            if end.is_none() {
                end = Some(off + 2);
            }
            jumps += 1;
            if jumps > MAX_POINTERS {
                return Err(invalid("compression pointer loop"));
            }
            off = ptr;
            continue;
        }
        if ln & 0xC0 != 0 {
            return Err(invalid(format!(
                "unsupported label type 0x{:02x}",
                ln & 0xC0
            )));
        }
        let ln = ln as usize;
        let raw = msg
            .get(off + 1..off + 1 + ln)
            .ok_or_else(|| invalid("label runs past the end of the message"))?;
        label(raw);
        total += ln + 1;
        if total > 255 {
            return Err(invalid("name longer than 255 bytes"));
        }
        off += 1 + ln;
    }
    Ok(end.unwrap_or(off))
}

/// Read a possibly compressed name at `off`; returns (name, offset after the name in place).
pub fn read_name(msg: &[u8], off: usize) -> ParseResult<(String, usize)> {
    let mut name = String::new();
    let mut first = true;
    let next = walk_name(msg, off, |raw| {
        if !first {
            name.push('.');
        }
        first = false;
        render_label(raw, &mut name);
    })?;
    Ok((name, next))
}

/// End offset of the first question (uncompressed name + type + class), None when there is none.
///
/// Lets a query be stored without parsing it: the response repeats the same question bytes.
pub fn question_end(msg: &[u8]) -> Option<usize> {
    let n = msg.len();
    if n < 17 || (msg[4] == 0 && msg[5] == 0) {
        return None;
    }
    let mut p = 12usize;
    while let Some(&ln) = msg.get(p) {
        if ln == 0 {
            return if p + 5 <= n { Some(p + 5) } else { None };
        }
        if ln & 0xC0 != 0 {
            return None;
        }
        p += ln as usize + 1;
    }
    None
}

fn be16(msg: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(off)?, *msg.get(off + 1)?]))
}

fn be32(msg: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(msg.get(off..off + 4)?.try_into().ok()?))
}

/// IPv4 address as text.
pub fn ntop4(b: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// IPv6 address as glibc's `inet_ntop` (Python's `socket.inet_ntop`) writes it: the first longest run
/// of two or more zero words is `::`, `::a.b.c.d` and `::ffff:a.b.c.d` keep the IPv4 part dotted.
pub fn ntop6(b: &[u8; 16]) -> String {
    let mut w = [0u16; 8];
    for (i, x) in w.iter_mut().enumerate() {
        *x = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    }
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let (mut cur_base, mut cur_len) = (usize::MAX, 0usize);
    for (i, &x) in w.iter().enumerate() {
        if x == 0 {
            if cur_base == usize::MAX {
                cur_base = i;
                cur_len = 1;
            } else {
                cur_len += 1;
            }
        } else if cur_base != usize::MAX {
            if best_base == usize::MAX || cur_len > best_len {
                best_base = cur_base;
                best_len = cur_len;
            }
            cur_base = usize::MAX;
        }
    }
    if cur_base != usize::MAX && (best_base == usize::MAX || cur_len > best_len) {
        best_base = cur_base;
        best_len = cur_len;
    }
    if best_base != usize::MAX && best_len < 2 {
        best_base = usize::MAX;
    }
    let mut out = String::with_capacity(40);
    let in_best = |i: usize| best_base != usize::MAX && i >= best_base && i < best_base + best_len;
    for i in 0..8 {
        if in_best(i) {
            if i == best_base {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            out.push_str(&ntop4(&[b[12], b[13], b[14], b[15]]));
            return out;
        }
        out.push_str(&format!("{:x}", w[i]));
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// One resource record's fixed part.
struct Rr {
    owner: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: usize,
    rdlen: usize,
}

/// Read a resource record at `off` (owner already read up to `off` by the caller): type, class, ttl,
/// rdlength; the Python's checks and messages.
fn read_rr_fixed(msg: &[u8], owner: String, off: usize) -> ParseResult<(Rr, usize)> {
    let n = msg.len();
    if off + 10 > n {
        return Err(invalid("truncated resource record"));
    }
    let rtype = be16(msg, off).unwrap_or(0);
    let class = be16(msg, off + 2).unwrap_or(0);
    let ttl = be32(msg, off + 4).unwrap_or(0);
    let rdlen = be16(msg, off + 8).unwrap_or(0) as usize;
    let rdata = off + 10;
    if rdata + rdlen > n {
        return Err(invalid(
            "resource record data runs past the end of the message",
        ));
    }
    Ok((
        Rr {
            owner,
            rtype,
            class,
            ttl,
            rdata,
            rdlen,
        },
        rdata + rdlen,
    ))
}

/// The value of a record as the Python renders answers: A and AAAA as addresses (only with the right
/// length), CNAME/PTR/NS as the target name, SVCB/HTTPS as ""; None for the types it does not keep.
fn render_rdata(msg: &[u8], rr: &Rr) -> ParseResult<Option<String>> {
    Ok(match rr.rtype {
        1 => match msg.get(rr.rdata..rr.rdata + 4) {
            Some(b) if rr.rdlen == 4 => Some(ntop4(&[b[0], b[1], b[2], b[3]])),
            _ => None,
        },
        28 => match msg.get(rr.rdata..rr.rdata + 16) {
            Some(b) if rr.rdlen == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(ntop6(&a))
            }
            _ => None,
        },
        5 | 12 | 2 => Some(read_name(msg, rr.rdata)?.0),
        64 | 65 => Some(String::new()),
        _ => None,
    })
}

fn join_err(prev: &Option<String>, e: &ParseError) -> String {
    match prev {
        Some(p) => format!("{p}; {e}"),
        None => e.to_string(),
    }
}

/// Parse one DNS message (UDP payload, or one TCP message without its length prefix).
pub fn parse(msg: &[u8]) -> ParseResult<DnsMessage> {
    let n = msg.len();
    if n < 12 {
        return Err(invalid(format!(
            "message of {n} bytes is shorter than a DNS header"
        )));
    }
    let h = |i: usize| be16(msg, i).unwrap_or(0);
    let (tid, flags, mut qd, mut an, ns) = (h(0), h(2), h(4), h(6), h(8));
    let opcode = ((flags >> 11) & 0xF) as u8;
    let mut off = 12usize;
    let mut questions: Vec<(String, u16)> = Vec::new();
    let mut answers = Vec::new();
    let mut first_owner: Option<String> = None;
    let mut error: Option<String> = None;
    let mut update: Option<DnsUpdate> = if opcode == 5 {
        Some(DnsUpdate::default())
    } else {
        None
    };
    if qd > MAX_RECORDS || an > MAX_RECORDS {
        // read what fits; the message is flagged either way
        error = Some(format!(
            "absurd record counts (questions {qd}, answers {an})"
        ));
        qd = qd.min(MAX_RECORDS);
        an = an.min(MAX_RECORDS);
    }
    let body = (|| -> ParseResult<()> {
        for _ in 0..qd {
            let (name, next) = read_name(msg, off)?;
            off = next;
            if off + 4 > n {
                return Err(invalid("truncated question"));
            }
            questions.push((name, h(off)));
            off += 4;
        }
        let qname = questions.first().map(|q| q.0.clone());
        for _ in 0..an {
            let owner = match (msg.get(off), msg.get(off + 1), &qname) {
                (Some(0xC0), Some(12), Some(q)) => {
                    // the usual pointer back to the question
                    off += 2;
                    q.clone()
                }
                _ => {
                    let (o, next) = read_name(msg, off)?;
                    off = next;
                    o
                }
            };
            if first_owner.is_none() {
                first_owner = Some(owner.clone());
            }
            let (rr, next) = read_rr_fixed(msg, owner, off)?;
            if let Some(u) = update.as_mut() {
                u.prerequisites.push((rr.owner.clone(), rr.rtype, rr.class));
            }
            if let Some(v) = render_rdata(msg, &rr)? {
                answers.push((rr.owner, rr.rtype, v, rr.ttl));
            }
            off = next;
        }
        Ok(())
    })();
    let mut answers_ok = true;
    if let Err(e) = body {
        answers_ok = false;
        if questions.is_empty() {
            return Err(invalid(join_err(&error, &e)));
        }
        // keep the questions (and answers) read before the damage
        error = Some(join_err(&error, &e));
    }
    if let Some(u) = update.as_mut() {
        if !answers_ok {
            u.error = Some("prerequisite section malformed".into());
        } else {
            for _ in 0..ns.min(MAX_RECORDS) {
                let r = read_name(msg, off)
                    .and_then(|(owner, next)| read_rr_fixed(msg, owner, next))
                    .and_then(|(rr, next)| {
                        let v = if rr.class == 1 {
                            render_rdata(msg, &rr)?.unwrap_or_default()
                        } else {
                            String::new()
                        };
                        Ok((rr, v, next))
                    });
                match r {
                    Ok((rr, v, next)) => {
                        u.updates.push((rr.owner, rr.rtype, rr.class, v, rr.ttl));
                        off = next;
                    }
                    Err(e) => {
                        u.error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    Ok(DnsMessage {
        trans_id: tid,
        is_response: flags & 0x8000 != 0,
        opcode,
        rcode: (flags & 0xF) as u8,
        truncated: flags & 0x0200 != 0,
        questions,
        answers,
        first_owner,
        error,
        update,
    })
}

/// "A", "AAAA", "TYPE65534", ... (RFC 3597 for unknown types), as Python's `qtype_name`.
pub fn qtype_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// "NOERROR", "NXDOMAIN", ..., as Python's `rcode_name`.
pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

// -- NetBIOS name service (RFC 1002 4.2) ---------------------------------------------------------

/// A NetBIOS name, first-level decoded (RFC 1001 14.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NbName {
    /// the 15 name bytes without their padding (trailing spaces, or NULs as in the `*` wildcard);
    /// printable ASCII kept (`\` doubled), other bytes as `\DDD`
    pub name: String,
    /// the 16th byte: 0x00 workstation, 0x20 file server, 0x1b domain master browser, ...
    pub suffix: u8,
    /// the scope ID labels after the encoded name, dotted ("" when none)
    pub scope: String,
}

/// The parts of a NetBIOS name service message the auditor uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NbnsMessage {
    pub trans_id: u16,
    pub is_response: bool,
    /// 0 query, 5 registration, 6 release, 7 WACK, 8/9 refresh
    pub opcode: u8,
    pub rcode: u8,
    pub broadcast: bool,
    /// the question's name, or (responses carry no question) the first record's name
    pub name: Option<NbName>,
    /// 0x20 NB (name query), 0x21 NBSTAT (node status)
    pub qtype: Option<u16>,
    /// (IPv4 address, NB_FLAGS) of the NB records: the answers of a positive response (rcode 0), or
    /// the additional record of a registration / refresh / release request
    pub addresses: Vec<(String, u16)>,
    /// the TTL of the first NB record kept in `addresses`
    pub ttl: u32,
    /// (name, suffix, flags) of a node status response's name table
    pub node_names: Vec<(String, u8, u16)>,
    /// the message was malformed after its name: what was read before is kept
    pub error: Option<String>,
}

fn render_nb_bytes(raw: &[u8]) -> String {
    let mut end = raw.len();
    while end > 0 && (raw[end - 1] == b' ' || raw[end - 1] == 0) {
        end -= 1;
    }
    let mut out = String::new();
    for &c in raw.get(..end).unwrap_or(raw) {
        match c {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\{c:03}")),
        }
    }
    out
}

/// Decode an encoded NetBIOS name: the first label is 32 bytes of 'A'..'P' (two per name byte).
fn read_nb_name(msg: &[u8], off: usize) -> ParseResult<(NbName, usize)> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let next = walk_name(msg, off, |raw| labels.push(raw))?;
    let first = labels
        .first()
        .ok_or_else(|| invalid("empty NetBIOS name"))?;
    if first.len() != 32 {
        return Err(invalid(format!(
            "NetBIOS name label of {} bytes (32 expected)",
            first.len()
        )));
    }
    let mut raw = [0u8; 16];
    for (i, pair) in first.chunks_exact(2).enumerate() {
        let hi = pair[0].to_ascii_uppercase().wrapping_sub(b'A');
        let lo = pair[1].to_ascii_uppercase().wrapping_sub(b'A');
        if hi > 15 || lo > 15 {
            return Err(invalid("NetBIOS name not first-level encoded"));
        }
        if let Some(slot) = raw.get_mut(i) {
            *slot = (hi << 4) | lo;
        }
    }
    let mut scope = String::new();
    for (i, l) in labels.iter().skip(1).enumerate() {
        if i > 0 {
            scope.push('.');
        }
        render_label(l, &mut scope);
    }
    Ok((
        NbName {
            name: render_nb_bytes(&raw[..15]),
            suffix: raw[15],
            scope,
        },
        next,
    ))
}

/// Parse a NetBIOS name service message (udp/137): the queried / registered / answered name and the
/// addresses of a positive response (or of a registration). Invalid when the header is short or the
/// first name is not a NetBIOS name; later damage is reported in `error`.
pub fn parse_nbns(msg: &[u8]) -> ParseResult<NbnsMessage> {
    let n = msg.len();
    if n < 12 {
        return Err(invalid(format!(
            "message of {n} bytes is shorter than a NetBIOS name service header"
        )));
    }
    let h = |i: usize| be16(msg, i).unwrap_or(0);
    let (tid, flags) = (h(0), h(2));
    let counts = [h(4), h(6), h(8), h(10)];
    if counts.iter().any(|&c| c > 64) {
        return Err(invalid(format!(
            "absurd record counts ({}, {}, {}, {})",
            counts[0], counts[1], counts[2], counts[3]
        )));
    }
    let mut m = NbnsMessage {
        trans_id: tid,
        is_response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xF) as u8,
        rcode: (flags & 0xF) as u8,
        broadcast: flags & 0x0010 != 0,
        ..NbnsMessage::default()
    };
    let mut off = 12usize;
    for i in 0..counts[0] {
        let (name, next) = read_nb_name(msg, off)?;
        let qtype = be16(msg, next).ok_or_else(|| invalid("truncated question"))?;
        if next + 4 > n {
            return Err(invalid("truncated question"));
        }
        if i == 0 {
            m.name = Some(name);
            m.qtype = Some(qtype);
        }
        off = next + 4;
    }
    let records = counts[1] as usize + counts[2] as usize + counts[3] as usize;
    for i in 0..records {
        let section = if i < counts[1] as usize {
            1
        } else if i < counts[1] as usize + counts[2] as usize {
            2
        } else {
            3
        };
        let (name, next) = match read_nb_name(msg, off) {
            Ok(x) => x,
            Err(e) if m.name.is_some() => {
                m.error = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e),
        };
        let rr = match read_rr_fixed(msg, String::new(), next) {
            Ok((rr, after)) => {
                off = after;
                rr
            }
            Err(e) => {
                if m.name.is_none() {
                    m.name = Some(name);
                }
                m.error = Some(e.to_string());
                break;
            }
        };
        if m.name.is_none() {
            m.name = Some(name);
            m.qtype = Some(rr.rtype);
        }
        let rdata = msg.get(rr.rdata..rr.rdata + rr.rdlen).unwrap_or(&[]);
        let keep_nb = if m.is_response {
            section == 1 && m.rcode == 0
        } else {
            section == 3
        };
        if rr.rtype == 0x20 && keep_nb {
            if m.addresses.is_empty() {
                m.ttl = rr.ttl;
            }
            for e in rdata.chunks_exact(6) {
                let fl = u16::from_be_bytes([e[0], e[1]]);
                m.addresses.push((ntop4(&[e[2], e[3], e[4], e[5]]), fl));
            }
        } else if rr.rtype == 0x21 && m.is_response && section == 1 {
            let count = rdata.first().copied().unwrap_or(0) as usize;
            for e in rdata.get(1..).unwrap_or(&[]).chunks_exact(18).take(count) {
                let fl = u16::from_be_bytes([e[16], e[17]]);
                m.node_names.push((render_nb_bytes(&e[..15]), e[15], fl));
            }
        }
    }
    Ok(m)
}

/// Code points for which Python 3.11's `str.isprintable()` is false (Unicode 14.0: Cc, Cf, Cs, Co,
/// Cn, Zl, Zp, Zs except the space), generated from the reference interpreter.
#[rustfmt::skip]
static NON_PRINTABLE: &[(u32, u32)] = &[
    (0x0, 0x1f), (0x7f, 0xa0), (0xad, 0xad), (0x378, 0x379), (0x380, 0x383), (0x38b, 0x38b),
    (0x38d, 0x38d), (0x3a2, 0x3a2), (0x530, 0x530), (0x557, 0x558), (0x58b, 0x58c),
    (0x590, 0x590), (0x5c8, 0x5cf), (0x5eb, 0x5ee), (0x5f5, 0x605), (0x61c, 0x61c),
    (0x6dd, 0x6dd), (0x70e, 0x70f), (0x74b, 0x74c), (0x7b2, 0x7bf), (0x7fb, 0x7fc),
    (0x82e, 0x82f), (0x83f, 0x83f), (0x85c, 0x85d), (0x85f, 0x85f), (0x86b, 0x86f),
    (0x88f, 0x897), (0x8e2, 0x8e2), (0x984, 0x984), (0x98d, 0x98e), (0x991, 0x992),
    (0x9a9, 0x9a9), (0x9b1, 0x9b1), (0x9b3, 0x9b5), (0x9ba, 0x9bb), (0x9c5, 0x9c6),
    (0x9c9, 0x9ca), (0x9cf, 0x9d6), (0x9d8, 0x9db), (0x9de, 0x9de), (0x9e4, 0x9e5),
    (0x9ff, 0xa00), (0xa04, 0xa04), (0xa0b, 0xa0e), (0xa11, 0xa12), (0xa29, 0xa29),
    (0xa31, 0xa31), (0xa34, 0xa34), (0xa37, 0xa37), (0xa3a, 0xa3b), (0xa3d, 0xa3d),
    (0xa43, 0xa46), (0xa49, 0xa4a), (0xa4e, 0xa50), (0xa52, 0xa58), (0xa5d, 0xa5d),
    (0xa5f, 0xa65), (0xa77, 0xa80), (0xa84, 0xa84), (0xa8e, 0xa8e), (0xa92, 0xa92),
    (0xaa9, 0xaa9), (0xab1, 0xab1), (0xab4, 0xab4), (0xaba, 0xabb), (0xac6, 0xac6),
    (0xaca, 0xaca), (0xace, 0xacf), (0xad1, 0xadf), (0xae4, 0xae5), (0xaf2, 0xaf8),
    (0xb00, 0xb00), (0xb04, 0xb04), (0xb0d, 0xb0e), (0xb11, 0xb12), (0xb29, 0xb29),
    (0xb31, 0xb31), (0xb34, 0xb34), (0xb3a, 0xb3b), (0xb45, 0xb46), (0xb49, 0xb4a),
    (0xb4e, 0xb54), (0xb58, 0xb5b), (0xb5e, 0xb5e), (0xb64, 0xb65), (0xb78, 0xb81),
    (0xb84, 0xb84), (0xb8b, 0xb8d), (0xb91, 0xb91), (0xb96, 0xb98), (0xb9b, 0xb9b),
    (0xb9d, 0xb9d), (0xba0, 0xba2), (0xba5, 0xba7), (0xbab, 0xbad), (0xbba, 0xbbd),
    (0xbc3, 0xbc5), (0xbc9, 0xbc9), (0xbce, 0xbcf), (0xbd1, 0xbd6), (0xbd8, 0xbe5),
    (0xbfb, 0xbff), (0xc0d, 0xc0d), (0xc11, 0xc11), (0xc29, 0xc29), (0xc3a, 0xc3b),
    (0xc45, 0xc45), (0xc49, 0xc49), (0xc4e, 0xc54), (0xc57, 0xc57), (0xc5b, 0xc5c),
    (0xc5e, 0xc5f), (0xc64, 0xc65), (0xc70, 0xc76), (0xc8d, 0xc8d), (0xc91, 0xc91),
    (0xca9, 0xca9), (0xcb4, 0xcb4), (0xcba, 0xcbb), (0xcc5, 0xcc5), (0xcc9, 0xcc9),
    (0xcce, 0xcd4), (0xcd7, 0xcdc), (0xcdf, 0xcdf), (0xce4, 0xce5), (0xcf0, 0xcf0),
    (0xcf3, 0xcff), (0xd0d, 0xd0d), (0xd11, 0xd11), (0xd45, 0xd45), (0xd49, 0xd49),
    (0xd50, 0xd53), (0xd64, 0xd65), (0xd80, 0xd80), (0xd84, 0xd84), (0xd97, 0xd99),
    (0xdb2, 0xdb2), (0xdbc, 0xdbc), (0xdbe, 0xdbf), (0xdc7, 0xdc9), (0xdcb, 0xdce),
    (0xdd5, 0xdd5), (0xdd7, 0xdd7), (0xde0, 0xde5), (0xdf0, 0xdf1), (0xdf5, 0xe00),
    (0xe3b, 0xe3e), (0xe5c, 0xe80), (0xe83, 0xe83), (0xe85, 0xe85), (0xe8b, 0xe8b),
    (0xea4, 0xea4), (0xea6, 0xea6), (0xebe, 0xebf), (0xec5, 0xec5), (0xec7, 0xec7),
    (0xece, 0xecf), (0xeda, 0xedb), (0xee0, 0xeff), (0xf48, 0xf48), (0xf6d, 0xf70),
    (0xf98, 0xf98), (0xfbd, 0xfbd), (0xfcd, 0xfcd), (0xfdb, 0xfff), (0x10c6, 0x10c6),
    (0x10c8, 0x10cc), (0x10ce, 0x10cf), (0x1249, 0x1249), (0x124e, 0x124f), (0x1257, 0x1257),
    (0x1259, 0x1259), (0x125e, 0x125f), (0x1289, 0x1289), (0x128e, 0x128f), (0x12b1, 0x12b1),
    (0x12b6, 0x12b7), (0x12bf, 0x12bf), (0x12c1, 0x12c1), (0x12c6, 0x12c7), (0x12d7, 0x12d7),
    (0x1311, 0x1311), (0x1316, 0x1317), (0x135b, 0x135c), (0x137d, 0x137f), (0x139a, 0x139f),
    (0x13f6, 0x13f7), (0x13fe, 0x13ff), (0x1680, 0x1680), (0x169d, 0x169f), (0x16f9, 0x16ff),
    (0x1716, 0x171e), (0x1737, 0x173f), (0x1754, 0x175f), (0x176d, 0x176d), (0x1771, 0x1771),
    (0x1774, 0x177f), (0x17de, 0x17df), (0x17ea, 0x17ef), (0x17fa, 0x17ff), (0x180e, 0x180e),
    (0x181a, 0x181f), (0x1879, 0x187f), (0x18ab, 0x18af), (0x18f6, 0x18ff), (0x191f, 0x191f),
    (0x192c, 0x192f), (0x193c, 0x193f), (0x1941, 0x1943), (0x196e, 0x196f), (0x1975, 0x197f),
    (0x19ac, 0x19af), (0x19ca, 0x19cf), (0x19db, 0x19dd), (0x1a1c, 0x1a1d), (0x1a5f, 0x1a5f),
    (0x1a7d, 0x1a7e), (0x1a8a, 0x1a8f), (0x1a9a, 0x1a9f), (0x1aae, 0x1aaf), (0x1acf, 0x1aff),
    (0x1b4d, 0x1b4f), (0x1b7f, 0x1b7f), (0x1bf4, 0x1bfb), (0x1c38, 0x1c3a), (0x1c4a, 0x1c4c),
    (0x1c89, 0x1c8f), (0x1cbb, 0x1cbc), (0x1cc8, 0x1ccf), (0x1cfb, 0x1cff), (0x1f16, 0x1f17),
    (0x1f1e, 0x1f1f), (0x1f46, 0x1f47), (0x1f4e, 0x1f4f), (0x1f58, 0x1f58), (0x1f5a, 0x1f5a),
    (0x1f5c, 0x1f5c), (0x1f5e, 0x1f5e), (0x1f7e, 0x1f7f), (0x1fb5, 0x1fb5), (0x1fc5, 0x1fc5),
    (0x1fd4, 0x1fd5), (0x1fdc, 0x1fdc), (0x1ff0, 0x1ff1), (0x1ff5, 0x1ff5), (0x1fff, 0x200f),
    (0x2028, 0x202f), (0x205f, 0x206f), (0x2072, 0x2073), (0x208f, 0x208f), (0x209d, 0x209f),
    (0x20c1, 0x20cf), (0x20f1, 0x20ff), (0x218c, 0x218f), (0x2427, 0x243f), (0x244b, 0x245f),
    (0x2b74, 0x2b75), (0x2b96, 0x2b96), (0x2cf4, 0x2cf8), (0x2d26, 0x2d26), (0x2d28, 0x2d2c),
    (0x2d2e, 0x2d2f), (0x2d68, 0x2d6e), (0x2d71, 0x2d7e), (0x2d97, 0x2d9f), (0x2da7, 0x2da7),
    (0x2daf, 0x2daf), (0x2db7, 0x2db7), (0x2dbf, 0x2dbf), (0x2dc7, 0x2dc7), (0x2dcf, 0x2dcf),
    (0x2dd7, 0x2dd7), (0x2ddf, 0x2ddf), (0x2e5e, 0x2e7f), (0x2e9a, 0x2e9a), (0x2ef4, 0x2eff),
    (0x2fd6, 0x2fef), (0x2ffc, 0x3000), (0x3040, 0x3040), (0x3097, 0x3098), (0x3100, 0x3104),
    (0x3130, 0x3130), (0x318f, 0x318f), (0x31e4, 0x31ef), (0x321f, 0x321f), (0xa48d, 0xa48f),
    (0xa4c7, 0xa4cf), (0xa62c, 0xa63f), (0xa6f8, 0xa6ff), (0xa7cb, 0xa7cf), (0xa7d2, 0xa7d2),
    (0xa7d4, 0xa7d4), (0xa7da, 0xa7f1), (0xa82d, 0xa82f), (0xa83a, 0xa83f), (0xa878, 0xa87f),
    (0xa8c6, 0xa8cd), (0xa8da, 0xa8df), (0xa954, 0xa95e), (0xa97d, 0xa97f), (0xa9ce, 0xa9ce),
    (0xa9da, 0xa9dd), (0xa9ff, 0xa9ff), (0xaa37, 0xaa3f), (0xaa4e, 0xaa4f), (0xaa5a, 0xaa5b),
    (0xaac3, 0xaada), (0xaaf7, 0xab00), (0xab07, 0xab08), (0xab0f, 0xab10), (0xab17, 0xab1f),
    (0xab27, 0xab27), (0xab2f, 0xab2f), (0xab6c, 0xab6f), (0xabee, 0xabef), (0xabfa, 0xabff),
    (0xd7a4, 0xd7af), (0xd7c7, 0xd7ca), (0xd7fc, 0xf8ff), (0xfa6e, 0xfa6f), (0xfada, 0xfaff),
    (0xfb07, 0xfb12), (0xfb18, 0xfb1c), (0xfb37, 0xfb37), (0xfb3d, 0xfb3d), (0xfb3f, 0xfb3f),
    (0xfb42, 0xfb42), (0xfb45, 0xfb45), (0xfbc3, 0xfbd2), (0xfd90, 0xfd91), (0xfdc8, 0xfdce),
    (0xfdd0, 0xfdef), (0xfe1a, 0xfe1f), (0xfe53, 0xfe53), (0xfe67, 0xfe67), (0xfe6c, 0xfe6f),
    (0xfe75, 0xfe75), (0xfefd, 0xff00), (0xffbf, 0xffc1), (0xffc8, 0xffc9), (0xffd0, 0xffd1),
    (0xffd8, 0xffd9), (0xffdd, 0xffdf), (0xffe7, 0xffe7), (0xffef, 0xfffb), (0xfffe, 0xffff),
    (0x1000c, 0x1000c), (0x10027, 0x10027), (0x1003b, 0x1003b), (0x1003e, 0x1003e),
    (0x1004e, 0x1004f), (0x1005e, 0x1007f), (0x100fb, 0x100ff), (0x10103, 0x10106),
    (0x10134, 0x10136), (0x1018f, 0x1018f), (0x1019d, 0x1019f), (0x101a1, 0x101cf),
    (0x101fe, 0x1027f), (0x1029d, 0x1029f), (0x102d1, 0x102df), (0x102fc, 0x102ff),
    (0x10324, 0x1032c), (0x1034b, 0x1034f), (0x1037b, 0x1037f), (0x1039e, 0x1039e),
    (0x103c4, 0x103c7), (0x103d6, 0x103ff), (0x1049e, 0x1049f), (0x104aa, 0x104af),
    (0x104d4, 0x104d7), (0x104fc, 0x104ff), (0x10528, 0x1052f), (0x10564, 0x1056e),
    (0x1057b, 0x1057b), (0x1058b, 0x1058b), (0x10593, 0x10593), (0x10596, 0x10596),
    (0x105a2, 0x105a2), (0x105b2, 0x105b2), (0x105ba, 0x105ba), (0x105bd, 0x105ff),
    (0x10737, 0x1073f), (0x10756, 0x1075f), (0x10768, 0x1077f), (0x10786, 0x10786),
    (0x107b1, 0x107b1), (0x107bb, 0x107ff), (0x10806, 0x10807), (0x10809, 0x10809),
    (0x10836, 0x10836), (0x10839, 0x1083b), (0x1083d, 0x1083e), (0x10856, 0x10856),
    (0x1089f, 0x108a6), (0x108b0, 0x108df), (0x108f3, 0x108f3), (0x108f6, 0x108fa),
    (0x1091c, 0x1091e), (0x1093a, 0x1093e), (0x10940, 0x1097f), (0x109b8, 0x109bb),
    (0x109d0, 0x109d1), (0x10a04, 0x10a04), (0x10a07, 0x10a0b), (0x10a14, 0x10a14),
    (0x10a18, 0x10a18), (0x10a36, 0x10a37), (0x10a3b, 0x10a3e), (0x10a49, 0x10a4f),
    (0x10a59, 0x10a5f), (0x10aa0, 0x10abf), (0x10ae7, 0x10aea), (0x10af7, 0x10aff),
    (0x10b36, 0x10b38), (0x10b56, 0x10b57), (0x10b73, 0x10b77), (0x10b92, 0x10b98),
    (0x10b9d, 0x10ba8), (0x10bb0, 0x10bff), (0x10c49, 0x10c7f), (0x10cb3, 0x10cbf),
    (0x10cf3, 0x10cf9), (0x10d28, 0x10d2f), (0x10d3a, 0x10e5f), (0x10e7f, 0x10e7f),
    (0x10eaa, 0x10eaa), (0x10eae, 0x10eaf), (0x10eb2, 0x10eff), (0x10f28, 0x10f2f),
    (0x10f5a, 0x10f6f), (0x10f8a, 0x10faf), (0x10fcc, 0x10fdf), (0x10ff7, 0x10fff),
    (0x1104e, 0x11051), (0x11076, 0x1107e), (0x110bd, 0x110bd), (0x110c3, 0x110cf),
    (0x110e9, 0x110ef), (0x110fa, 0x110ff), (0x11135, 0x11135), (0x11148, 0x1114f),
    (0x11177, 0x1117f), (0x111e0, 0x111e0), (0x111f5, 0x111ff), (0x11212, 0x11212),
    (0x1123f, 0x1127f), (0x11287, 0x11287), (0x11289, 0x11289), (0x1128e, 0x1128e),
    (0x1129e, 0x1129e), (0x112aa, 0x112af), (0x112eb, 0x112ef), (0x112fa, 0x112ff),
    (0x11304, 0x11304), (0x1130d, 0x1130e), (0x11311, 0x11312), (0x11329, 0x11329),
    (0x11331, 0x11331), (0x11334, 0x11334), (0x1133a, 0x1133a), (0x11345, 0x11346),
    (0x11349, 0x1134a), (0x1134e, 0x1134f), (0x11351, 0x11356), (0x11358, 0x1135c),
    (0x11364, 0x11365), (0x1136d, 0x1136f), (0x11375, 0x113ff), (0x1145c, 0x1145c),
    (0x11462, 0x1147f), (0x114c8, 0x114cf), (0x114da, 0x1157f), (0x115b6, 0x115b7),
    (0x115de, 0x115ff), (0x11645, 0x1164f), (0x1165a, 0x1165f), (0x1166d, 0x1167f),
    (0x116ba, 0x116bf), (0x116ca, 0x116ff), (0x1171b, 0x1171c), (0x1172c, 0x1172f),
    (0x11747, 0x117ff), (0x1183c, 0x1189f), (0x118f3, 0x118fe), (0x11907, 0x11908),
    (0x1190a, 0x1190b), (0x11914, 0x11914), (0x11917, 0x11917), (0x11936, 0x11936),
    (0x11939, 0x1193a), (0x11947, 0x1194f), (0x1195a, 0x1199f), (0x119a8, 0x119a9),
    (0x119d8, 0x119d9), (0x119e5, 0x119ff), (0x11a48, 0x11a4f), (0x11aa3, 0x11aaf),
    (0x11af9, 0x11bff), (0x11c09, 0x11c09), (0x11c37, 0x11c37), (0x11c46, 0x11c4f),
    (0x11c6d, 0x11c6f), (0x11c90, 0x11c91), (0x11ca8, 0x11ca8), (0x11cb7, 0x11cff),
    (0x11d07, 0x11d07), (0x11d0a, 0x11d0a), (0x11d37, 0x11d39), (0x11d3b, 0x11d3b),
    (0x11d3e, 0x11d3e), (0x11d48, 0x11d4f), (0x11d5a, 0x11d5f), (0x11d66, 0x11d66),
    (0x11d69, 0x11d69), (0x11d8f, 0x11d8f), (0x11d92, 0x11d92), (0x11d99, 0x11d9f),
    (0x11daa, 0x11edf), (0x11ef9, 0x11faf), (0x11fb1, 0x11fbf), (0x11ff2, 0x11ffe),
    (0x1239a, 0x123ff), (0x1246f, 0x1246f), (0x12475, 0x1247f), (0x12544, 0x12f8f),
    (0x12ff3, 0x12fff), (0x1342f, 0x143ff), (0x14647, 0x167ff), (0x16a39, 0x16a3f),
    (0x16a5f, 0x16a5f), (0x16a6a, 0x16a6d), (0x16abf, 0x16abf), (0x16aca, 0x16acf),
    (0x16aee, 0x16aef), (0x16af6, 0x16aff), (0x16b46, 0x16b4f), (0x16b5a, 0x16b5a),
    (0x16b62, 0x16b62), (0x16b78, 0x16b7c), (0x16b90, 0x16e3f), (0x16e9b, 0x16eff),
    (0x16f4b, 0x16f4e), (0x16f88, 0x16f8e), (0x16fa0, 0x16fdf), (0x16fe5, 0x16fef),
    (0x16ff2, 0x16fff), (0x187f8, 0x187ff), (0x18cd6, 0x18cff), (0x18d09, 0x1afef),
    (0x1aff4, 0x1aff4), (0x1affc, 0x1affc), (0x1afff, 0x1afff), (0x1b123, 0x1b14f),
    (0x1b153, 0x1b163), (0x1b168, 0x1b16f), (0x1b2fc, 0x1bbff), (0x1bc6b, 0x1bc6f),
    (0x1bc7d, 0x1bc7f), (0x1bc89, 0x1bc8f), (0x1bc9a, 0x1bc9b), (0x1bca0, 0x1ceff),
    (0x1cf2e, 0x1cf2f), (0x1cf47, 0x1cf4f), (0x1cfc4, 0x1cfff), (0x1d0f6, 0x1d0ff),
    (0x1d127, 0x1d128), (0x1d173, 0x1d17a), (0x1d1eb, 0x1d1ff), (0x1d246, 0x1d2df),
    (0x1d2f4, 0x1d2ff), (0x1d357, 0x1d35f), (0x1d379, 0x1d3ff), (0x1d455, 0x1d455),
    (0x1d49d, 0x1d49d), (0x1d4a0, 0x1d4a1), (0x1d4a3, 0x1d4a4), (0x1d4a7, 0x1d4a8),
    (0x1d4ad, 0x1d4ad), (0x1d4ba, 0x1d4ba), (0x1d4bc, 0x1d4bc), (0x1d4c4, 0x1d4c4),
    (0x1d506, 0x1d506), (0x1d50b, 0x1d50c), (0x1d515, 0x1d515), (0x1d51d, 0x1d51d),
    (0x1d53a, 0x1d53a), (0x1d53f, 0x1d53f), (0x1d545, 0x1d545), (0x1d547, 0x1d549),
    (0x1d551, 0x1d551), (0x1d6a6, 0x1d6a7), (0x1d7cc, 0x1d7cd), (0x1da8c, 0x1da9a),
    (0x1daa0, 0x1daa0), (0x1dab0, 0x1deff), (0x1df1f, 0x1dfff), (0x1e007, 0x1e007),
    (0x1e019, 0x1e01a), (0x1e022, 0x1e022), (0x1e025, 0x1e025), (0x1e02b, 0x1e0ff),
    (0x1e12d, 0x1e12f), (0x1e13e, 0x1e13f), (0x1e14a, 0x1e14d), (0x1e150, 0x1e28f),
    (0x1e2af, 0x1e2bf), (0x1e2fa, 0x1e2fe), (0x1e300, 0x1e7df), (0x1e7e7, 0x1e7e7),
    (0x1e7ec, 0x1e7ec), (0x1e7ef, 0x1e7ef), (0x1e7ff, 0x1e7ff), (0x1e8c5, 0x1e8c6),
    (0x1e8d7, 0x1e8ff), (0x1e94c, 0x1e94f), (0x1e95a, 0x1e95d), (0x1e960, 0x1ec70),
    (0x1ecb5, 0x1ed00), (0x1ed3e, 0x1edff), (0x1ee04, 0x1ee04), (0x1ee20, 0x1ee20),
    (0x1ee23, 0x1ee23), (0x1ee25, 0x1ee26), (0x1ee28, 0x1ee28), (0x1ee33, 0x1ee33),
    (0x1ee38, 0x1ee38), (0x1ee3a, 0x1ee3a), (0x1ee3c, 0x1ee41), (0x1ee43, 0x1ee46),
    (0x1ee48, 0x1ee48), (0x1ee4a, 0x1ee4a), (0x1ee4c, 0x1ee4c), (0x1ee50, 0x1ee50),
    (0x1ee53, 0x1ee53), (0x1ee55, 0x1ee56), (0x1ee58, 0x1ee58), (0x1ee5a, 0x1ee5a),
    (0x1ee5c, 0x1ee5c), (0x1ee5e, 0x1ee5e), (0x1ee60, 0x1ee60), (0x1ee63, 0x1ee63),
    (0x1ee65, 0x1ee66), (0x1ee6b, 0x1ee6b), (0x1ee73, 0x1ee73), (0x1ee78, 0x1ee78),
    (0x1ee7d, 0x1ee7d), (0x1ee7f, 0x1ee7f), (0x1ee8a, 0x1ee8a), (0x1ee9c, 0x1eea0),
    (0x1eea4, 0x1eea4), (0x1eeaa, 0x1eeaa), (0x1eebc, 0x1eeef), (0x1eef2, 0x1efff),
    (0x1f02c, 0x1f02f), (0x1f094, 0x1f09f), (0x1f0af, 0x1f0b0), (0x1f0c0, 0x1f0c0),
    (0x1f0d0, 0x1f0d0), (0x1f0f6, 0x1f0ff), (0x1f1ae, 0x1f1e5), (0x1f203, 0x1f20f),
    (0x1f23c, 0x1f23f), (0x1f249, 0x1f24f), (0x1f252, 0x1f25f), (0x1f266, 0x1f2ff),
    (0x1f6d8, 0x1f6dc), (0x1f6ed, 0x1f6ef), (0x1f6fd, 0x1f6ff), (0x1f774, 0x1f77f),
    (0x1f7d9, 0x1f7df), (0x1f7ec, 0x1f7ef), (0x1f7f1, 0x1f7ff), (0x1f80c, 0x1f80f),
    (0x1f848, 0x1f84f), (0x1f85a, 0x1f85f), (0x1f888, 0x1f88f), (0x1f8ae, 0x1f8af),
    (0x1f8b2, 0x1f8ff), (0x1fa54, 0x1fa5f), (0x1fa6e, 0x1fa6f), (0x1fa75, 0x1fa77),
    (0x1fa7d, 0x1fa7f), (0x1fa87, 0x1fa8f), (0x1faad, 0x1faaf), (0x1fabb, 0x1fabf),
    (0x1fac6, 0x1facf), (0x1fada, 0x1fadf), (0x1fae8, 0x1faef), (0x1faf7, 0x1faff),
    (0x1fb93, 0x1fb93), (0x1fbcb, 0x1fbef), (0x1fbfa, 0x1ffff), (0x2a6e0, 0x2a6ff),
    (0x2b739, 0x2b73f), (0x2b81e, 0x2b81f), (0x2cea2, 0x2ceaf), (0x2ebe1, 0x2f7ff),
    (0x2fa1e, 0x2ffff), (0x3134b, 0xe00ff), (0xe01f0, 0x10ffff),
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) type UdpPayload = (u16, u16, Vec<u8>, Vec<u8>);

    /// UDP payloads of a capture of the shared corpus: (sport, dport, payload, flow key); None when the
    /// corpus is absent (tests then skip). Ethernet (with VLAN tags), IPv4 and IPv6 only.
    pub(crate) fn corpus_udp(rel: &str) -> Option<Vec<UdpPayload>> {
        use pcap_parser::{Block, PcapBlockOwned, PcapError};
        let file = std::fs::File::open(format!("/work/shared/corpus/{rel}")).ok()?;
        let mut reader = pcap_parser::create_reader(1 << 20, file).ok()?;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::Legacy(b) => frames.push(b.data.to_vec()),
                        PcapBlockOwned::NG(Block::EnhancedPacket(e)) => {
                            frames.push(e.data.to_vec())
                        }
                        _ => {}
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().ok()?,
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        for f in frames {
            let mut p = 12;
            let mut et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
            while et == 0x8100 || et == 0x88a8 {
                p += 4;
                et = u16::from_be_bytes([*f.get(p)?, *f.get(p + 1)?]);
            }
            p += 2;
            let (proto, l4, addrs) = match et {
                0x0800 => {
                    let ihl = (*f.get(p)? & 0x0F) as usize * 4;
                    (*f.get(p + 9)?, p + ihl, f.get(p + 12..p + 20)?.to_vec())
                }
                0x86dd => (*f.get(p + 6)?, p + 40, f.get(p + 8..p + 40)?.to_vec()),
                _ => continue,
            };
            if proto != 17 {
                continue;
            }
            let Some(u) = f.get(l4..l4 + 8) else { continue };
            let (sport, dport) = (
                u16::from_be_bytes([u[0], u[1]]),
                u16::from_be_bytes([u[2], u[3]]),
            );
            let len = u16::from_be_bytes([u[4], u[5]]) as usize;
            let end = (l4 + len.max(8)).min(f.len());
            let mut key = addrs;
            key.extend_from_slice(&u[..4]);
            out.push((
                sport,
                dport,
                f.get(l4 + 8..end).unwrap_or(&[]).to_vec(),
                key,
            ));
        }
        Some(out)
    }

    /// arkime's dns-udp.pcap, against the Python reference.
    #[test]
    fn corpus_arkime_dns_udp() {
        let Some(pkts) = corpus_udp("arkime/dns-udp.pcap") else {
            eprintln!("corpus absent: skipped");
            return;
        };
        let msgs: Vec<DnsMessage> = pkts.iter().map(|p| parse(&p.2).unwrap()).collect();
        assert_eq!(msgs.len(), 5);
        assert_eq!(msgs[0].questions, vec![(s("www.github.com"), 1)]);
        assert_eq!(
            msgs[1].answers,
            vec![
                (s("www.github.com"), 5, s("github.com"), 1980),
                (s("github.com"), 1, s("192.30.252.128"), 4)
            ]
        );
        assert_eq!(
            msgs[3].answers,
            vec![
                (s("www.github.com"), 5, s("github.com"), 3600),
                (s("github.com"), 1, s("192.30.252.130"), 30)
            ]
        );
        assert_eq!(
            msgs[4].questions,
            vec![(s("10.100.10.10.in-addr.arpa"), 255)]
        );
        assert!(msgs.iter().all(|m| m.error.is_none()));
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn name(labels: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for l in labels {
            v.push(l.len() as u8);
            v.extend_from_slice(l);
        }
        v.push(0);
        v
    }

    fn hdr(tid: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut v = tid.to_be_bytes().to_vec();
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v
    }

    fn rr(rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut v = rtype.to_be_bytes().to_vec();
        v.extend_from_slice(&class.to_be_bytes());
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(rdata);
        v
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn inv(m: &str) -> ParseError {
        ParseError::Invalid(m.into())
    }

    // test_protocols.py::test_dns_cname_chain_and_answers
    #[test]
    fn cname_chain_and_answers() {
        let mut m = hdr(0x1234, 0x8180, [1, 2, 0, 0]);
        m.extend(name(&[b"gdmf", b"apple", b"com"]));
        m.extend_from_slice(b"\x00\x01\x00\x01");
        m.extend_from_slice(b"\xc0\x0c");
        m.extend(rr(5, 1, 60, b"\xc0\x0c"));
        m.extend_from_slice(b"\xc0\x0c");
        m.extend(rr(1, 1, 60, &[17, 1, 2, 3]));
        let d = parse(&m).unwrap();
        assert_eq!(d.questions, vec![(s("gdmf.apple.com"), 1)]);
        assert!(d.is_response);
        assert!(d
            .answers
            .contains(&(s("gdmf.apple.com"), 1, s("17.1.2.3"), 60)));
        assert_eq!(
            d.answers[0],
            (s("gdmf.apple.com"), 5, s("gdmf.apple.com"), 60)
        );
        assert_eq!(d.first_owner.as_deref(), Some("gdmf.apple.com"));
    }

    #[test]
    fn pointer_loop_and_forward_pointer() {
        let mut l = hdr(1, 0x0100, [1, 0, 0, 0]);
        l.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(parse(&l), Err(inv("compression pointer loop")));
        let mut f = hdr(1, 0x0100, [1, 0, 0, 0]);
        f.extend_from_slice(b"\xc0\xff");
        assert_eq!(parse(&f), Err(inv("name runs past the end of the message")));
        let mut t = hdr(1, 0x0100, [1, 0, 0, 0]);
        t.push(0xc0);
        assert_eq!(parse(&t), Err(inv("truncated compression pointer")));
    }

    #[test]
    fn non_utf8_and_dots_in_labels() {
        let mut m = hdr(2, 0x0100, [1, 0, 0, 0]);
        m.extend(name(&[b"\xff\xfe", b"a.b", b"com"]));
        m.extend_from_slice(b"\x00\x01\x00\x01");
        assert_eq!(parse(&m).unwrap().questions[0].0, "\\255\\254.a\\.b.com");
    }

    #[test]
    fn absurd_counts_and_short() {
        let m = hdr(1, 0, [65535, 65535, 0, 0]);
        assert_eq!(
            parse(&m),
            Err(inv("absurd record counts (questions 65535, answers 65535); name runs past the end of the message"))
        );
        let mut m = hdr(1, 0, [1, 18176, 0, 0]);
        m.extend(name(&[b"x", b"dk"]));
        m.extend_from_slice(b"\x00\x21\x00\x01");
        let d = parse(&m).unwrap();
        assert_eq!(d.questions, vec![(s("x.dk"), 33)]);
        assert_eq!(
            d.error.as_deref(),
            Some("absurd record counts (questions 1, answers 18176); name runs past the end of the message")
        );
        assert_eq!(
            parse(&[0; 5]),
            Err(inv("message of 5 bytes is shorter than a DNS header"))
        );
    }

    /// Expected values from the Python reference (`dns.parse` on the same bytes).
    #[test]
    fn python_vectors() {
        let q = |hexs: &str| parse(&h(hexs)).map(|d| d.questions[0].0.clone());
        assert_eq!(
            q("00070100000100000000000005436166c3a9056c6f63616c0000010001").unwrap(),
            "café.local"
        );
        assert_eq!(
            q("0007010000010000000000000561e2808b62056c6f63616c0000010001").unwrap(),
            "a\\226\\128\\139b.local"
        );
        assert_eq!(
            q("000701000001000000000000035777570945785f412d6d706c6503434f4d0000010001").unwrap(),
            "www.ex_a-mple.com"
        );
        assert_eq!(
            q("0007010000010000000000000a6d79207072696e746572025c780000010001").unwrap(),
            "my\\032printer.\\\\x"
        );
        let d = parse(&h("0007818000010003000000000161016200001c0001c00c001c00010000001e001020010db8000000000000000000000001c00c004100010000001e0003000100c00c001000010000001e000403616263")).unwrap();
        assert_eq!(
            d.answers,
            vec![
                (s("a.b"), 28, s("2001:db8::1"), 30),
                (s("a.b"), 65, s(""), 30)
            ]
        );
        let mut long = hdr(7, 0x0100, [1, 0, 0, 0]);
        long.extend(name(&[&[b'a'; 63][..]; 5]));
        long.extend_from_slice(b"\x00\x01\x00\x01");
        assert_eq!(parse(&long), Err(inv("name longer than 255 bytes")));
        assert_eq!(
            parse(&h("00070100000100000000000041616263")),
            Err(inv("unsupported label type 0x40"))
        );
        let t = h(
            "000781800001000200000000017801790000010001c00c0001000100000005000401020304c00c0001",
        );
        let d = parse(&t).unwrap();
        assert_eq!(d.answers, vec![(s("x.y"), 1, s("1.2.3.4"), 5)]);
        assert_eq!(d.error.as_deref(), Some("truncated resource record"));
        assert_eq!(question_end(&t), Some(21));
        let d = parse(&h("0007818000010001000000000134013307696e2d61646472046172706100000c0001c00c000c0001000000050002c040")).unwrap();
        assert!(d.answers.is_empty());
        assert_eq!(d.first_owner.as_deref(), Some("4.3.in-addr.arpa"));
        assert_eq!(
            d.error.as_deref(),
            Some("name runs past the end of the message")
        );
        assert_eq!(
            question_end(&h(
                "000701000001000000000000035777570945785f412d6d706c6503434f4d0000010001"
            )),
            Some(35)
        );
        assert_eq!(question_end(&hdr(1, 0, [0, 0, 0, 0])), None);
    }

    #[test]
    fn ipv6_like_glibc() {
        for (x, want) in [
            ("00000000000000000000000000000000", "::"),
            ("00000000000000000000000000000001", "::1"),
            ("00000000000000000000ffff01020304", "::ffff:1.2.3.4"),
            ("00000000000000000000000001020304", "::1.2.3.4"),
            ("20010db8000000000001000000000001", "2001:db8::1:0:0:1"),
            ("20010db8000000010000000000000000", "2001:db8:0:1::"),
            ("00000000000000000001000000000000", "::1:0:0:0"),
            ("fe800000000000000000000000000001", "fe80::1"),
            ("0001000000000000000000000000ffff", "1::ffff"),
            ("00000000000000000000fffe01020304", "::fffe:102:304"),
            ("20010db800000000000000000a000001", "2001:db8::a00:1"),
        ] {
            let b: [u8; 16] = h(x).try_into().unwrap();
            assert_eq!(ntop6(&b), want, "{x}");
        }
    }

    #[test]
    fn names_and_codes() {
        assert_eq!(qtype_name(1), "A");
        assert_eq!(qtype_name(65), "HTTPS");
        assert_eq!(qtype_name(255), "ANY");
        assert_eq!(qtype_name(65534), "TYPE65534");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(10), "NOTZONE");
        assert_eq!(rcode_name(11), "RCODE11");
    }

    /// RFC 1996 3.7: NOTIFY for a zone, with the new SOA in the answer section.
    #[test]
    fn notify() {
        let mut m = hdr(0x4a2b, 0x2400, [1, 1, 0, 0]); // opcode 4, AA
        m.extend(name(&[b"example", b"com"]));
        m.extend_from_slice(b"\x00\x06\x00\x01");
        m.extend_from_slice(b"\xc0\x0c");
        let mut soa = name(&[b"ns1", b"example", b"com"]);
        soa.extend(name(&[b"hostmaster", b"example", b"com"]));
        soa.extend_from_slice(&[
            0, 0, 0, 42, 0, 0, 14, 16, 0, 0, 3, 132, 0, 9, 58, 128, 0, 0, 1, 44,
        ]);
        m.extend(rr(6, 1, 3600, &soa));
        let d = parse(&m).unwrap();
        assert_eq!(d.opcode, 4);
        assert_eq!(d.zone(), Some("example.com"));
        assert_eq!(d.questions, vec![(s("example.com"), 6)]);
        assert!(d.answers.is_empty() && d.error.is_none());
        assert_eq!(d.first_owner.as_deref(), Some("example.com"));
        assert_eq!(d.update, None);
    }

    /// RFC 2136: an UPDATE deleting one A record of host.example.com and adding another, with the
    /// prerequisite "name is in use".
    #[test]
    fn update() {
        let mut m = hdr(0x0101, 0x2800, [1, 1, 2, 0]); // opcode 5
        m.extend(name(&[b"example", b"com"]));
        m.extend_from_slice(b"\x00\x06\x00\x01"); // zone: SOA IN
        m.extend(name(&[b"host", b"example", b"com"]));
        m.extend(rr(255, 255, 0, b"")); // prerequisite: name in use
        m.extend_from_slice(b"\xc0\x1d"); // pointer to host.example.com
        m.extend(rr(1, 254, 0, &[192, 0, 2, 1])); // delete this RR
        m.extend_from_slice(b"\xc0\x1d");
        m.extend(rr(1, 1, 300, &[192, 0, 2, 2])); // add
        let d = parse(&m).unwrap();
        assert_eq!(d.opcode, 5);
        assert_eq!(d.zone(), Some("example.com"));
        assert!(d.error.is_none());
        let u = d.update.as_ref().unwrap();
        assert_eq!(u.prerequisites, vec![(s("host.example.com"), 255, 255)]);
        assert_eq!(
            u.updates,
            vec![
                (s("host.example.com"), 1, 254, s(""), 0),
                (s("host.example.com"), 1, 1, s("192.0.2.2"), 300)
            ]
        );
        assert_eq!(u.error, None);
        assert_eq!(d.names(), vec!["example.com", "host.example.com"]);
        assert_eq!(
            d.added_addresses(),
            vec![(s("host.example.com"), 1, s("192.0.2.2"), 300)]
        );
        // a damaged update section keeps what came before
        let cut = &m[..m.len() - 3];
        let u = parse(cut).unwrap().update.unwrap();
        assert_eq!(u.updates.len(), 1);
        assert_eq!(
            u.error.as_deref(),
            Some("resource record data runs past the end of the message")
        );
    }

    fn nb_encode(name: &[u8], suffix: u8) -> Vec<u8> {
        let mut raw = name.to_vec();
        raw.resize(15, b' ');
        raw.push(suffix);
        let mut enc = Vec::new();
        for c in raw {
            enc.push(b'A' + (c >> 4));
            enc.push(b'A' + (c & 0xF));
        }
        enc
    }

    /// RFC 1002 4.2.12 / 4.2.13: a broadcast name query and its positive response.
    #[test]
    fn nbns_query_and_positive_response() {
        assert_eq!(
            nb_encode(b"FRED", b' '),
            b"EGFCEFEECACACACACACACACACACACACA"
        );
        let mut q = hdr(0x8001, 0x0110, [1, 0, 0, 0]); // query, RD, broadcast
        q.extend(name(&[&nb_encode(b"FILESRV01", 0x20)]));
        q.extend_from_slice(b"\x00\x20\x00\x01");
        let m = parse_nbns(&q).unwrap();
        assert!(!m.is_response && m.broadcast && m.opcode == 0);
        let nb = m.name.unwrap();
        assert_eq!(
            (nb.name.as_str(), nb.suffix, nb.scope.as_str()),
            ("FILESRV01", 0x20, "")
        );
        assert_eq!(m.qtype, Some(0x20));
        // the response carries no question: the name is the answer's
        let mut r = hdr(0x8001, 0x8500, [0, 1, 0, 0]); // response, AA, RD
        r.extend(name(&[&nb_encode(b"FILESRV01", 0x20)]));
        r.extend(rr(
            0x20,
            1,
            300000,
            &[0x00, 0x00, 10, 0, 0, 5, 0x60, 0x00, 10, 0, 1, 5],
        ));
        let m = parse_nbns(&r).unwrap();
        assert!(m.is_response && m.rcode == 0);
        assert_eq!(m.name.unwrap().name, "FILESRV01");
        assert_eq!(
            m.addresses,
            vec![(s("10.0.0.5"), 0x0000), (s("10.0.1.5"), 0x6000)]
        );
        // negative response (NAM_ERR): no addresses
        let mut n = hdr(0x8001, 0x8503, [0, 1, 0, 0]);
        n.extend(name(&[&nb_encode(b"FILESRV01", 0x20)]));
        n.extend(rr(0x20, 1, 0, &[0, 0, 10, 0, 0, 5]));
        assert!(parse_nbns(&n).unwrap().addresses.is_empty());
    }

    #[test]
    fn nbns_registration_status_and_scope() {
        // name registration request (opcode 5): the address is in the additional record
        let mut reg = hdr(0x1234, 0x2910, [1, 0, 0, 1]);
        reg.extend(name(&[&nb_encode(b"WORKGROUP", 0x00), b"corp", b"example"]));
        reg.extend_from_slice(b"\x00\x20\x00\x01");
        reg.extend_from_slice(b"\xc0\x0c");
        reg.extend(rr(0x20, 1, 300000, &[0x80, 0x00, 192, 168, 1, 20]));
        let m = parse_nbns(&reg).unwrap();
        assert_eq!(m.opcode, 5);
        let nb = m.name.unwrap();
        assert_eq!(
            (nb.name.as_str(), nb.suffix, nb.scope.as_str()),
            ("WORKGROUP", 0, "corp.example")
        );
        assert_eq!(m.addresses, vec![(s("192.168.1.20"), 0x8000)]);
        // node status response: the wildcard name and the node's name table
        let mut st = hdr(0x42, 0x8400, [0, 1, 0, 0]);
        let mut star = b"*".to_vec();
        star.resize(15, 0);
        let mut raw = star.clone();
        raw.push(0);
        let enc: Vec<u8> = raw
            .iter()
            .flat_map(|c| [b'A' + (c >> 4), b'A' + (c & 0xF)])
            .collect();
        st.extend(name(&[&enc]));
        let mut rd = vec![2u8];
        for (n, sfx) in [(b"PC-01".as_slice(), 0u8), (b"PC-01\x01".as_slice(), 0x20)] {
            let mut e = n.to_vec();
            e.resize(15, b' ');
            e.push(sfx);
            e.extend_from_slice(&[0x04, 0x00]);
            rd.extend(e);
        }
        rd.extend_from_slice(&[0; 6]); // unit id
        st.extend(rr(0x21, 1, 0, &rd));
        let m = parse_nbns(&st).unwrap();
        assert_eq!(m.name.unwrap().name, "*");
        assert_eq!(m.qtype, Some(0x21));
        assert_eq!(
            m.node_names,
            vec![(s("PC-01"), 0, 0x0400), (s("PC-01\\001"), 0x20, 0x0400)]
        );
    }

    #[test]
    fn nbns_rejects_non_netbios() {
        let mut q = hdr(1, 0x0100, [1, 0, 0, 0]);
        q.extend(name(&[b"www", b"example"]));
        q.extend_from_slice(b"\x00\x01\x00\x01");
        assert!(parse_nbns(&q).is_err());
        assert!(parse_nbns(&[0; 11]).is_err());
        let mut bad = hdr(1, 0x0100, [1, 0, 0, 0]);
        bad.extend(name(&[&[b'Z'; 32]]));
        bad.extend_from_slice(b"\x00\x20\x00\x01");
        assert_eq!(
            parse_nbns(&bad),
            Err(inv("NetBIOS name not first-level encoded"))
        );
    }

    fn canon(m: &DnsMessage) -> String {
        let q: Vec<String> = m
            .questions
            .iter()
            .map(|(n, t)| format!("{n}\x1f{t}"))
            .collect();
        let a: Vec<String> = m
            .answers
            .iter()
            .map(|(o, t, v, ttl)| format!("{o}\x1f{t}\x1f{v}\x1f{ttl}"))
            .collect();
        [
            "OK".to_string(),
            m.trans_id.to_string(),
            (m.is_response as u8).to_string(),
            m.opcode.to_string(),
            m.rcode.to_string(),
            (m.truncated as u8).to_string(),
            q.join("\x1e"),
            a.join("\x1e"),
            m.first_owner.clone().unwrap_or_else(|| "None".into()),
            m.error.clone().unwrap_or_else(|| "None".into()),
        ]
        .join("|")
    }

    /// Differential check against the Python reference over every DNS message of the corpus: the
    /// vectors file is written by a hand-run script (`PCAPAUDIT_VECTORS=/path cargo test`); skipped
    /// when absent.
    #[test]
    fn corpus_differential() {
        let Ok(path) = std::env::var("PCAPAUDIT_VECTORS") else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (mut same, mut total) = (0, 0);
        for line in text.lines().filter(|l| l.starts_with("dns\t")) {
            let mut f = line.splitn(3, '\t').skip(1);
            let (hx, want) = (f.next().unwrap(), f.next().unwrap());
            let got = match parse(&h(hx)) {
                Ok(m) => canon(&m),
                Err(e) => format!("ERR|{e}"),
            };
            total += 1;
            if got == want {
                same += 1;
            } else {
                eprintln!("DIFF {hx}\n  py: {want:?}\n  rs: {got:?}");
            }
        }
        eprintln!("dns differential: {same}/{total} identical");
        assert_eq!(same, total);
    }
}
