//! First-bytes protocol sniffing and the LDAP/SMTP checks (StartTLS, simple bind in clear).
//! Mirrors `pcapaudit/decode/app.py`.
//!
//! Beyond the Python: the `*_upgrade` functions find where TLS starts in a connection that began in
//! clear (FTP `AUTH TLS`, SMTP/IMAP `STARTTLS`, POP3 `STLS`, XMPP `<starttls/>`, RDP security
//! negotiation, HTTP/1.1 `Upgrade: TLS/1.x`), so the flow engine can hand the rest to the TLS parser.

use memchr::memmem;

/// The StartTLS extended operation's OID (RFC 4511 4.14.1).
pub const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// Guess the protocol from the first client bytes (None: not enough bytes / unknown).
pub fn sniff_client(data: &[u8], dport: u16) -> Option<&'static str> {
    let b = |i: usize| data.get(i).copied();
    if data.len() >= 3 && data[0] == 0x16 && data[1] == 0x03 {
        return Some("tls");
    }
    if data.len() >= 3 && data[0] & 0x80 != 0 && data[2] == 0x01 {
        return Some("sslv2");
    }
    const HTTP: [&[u8]; 7] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
    ];
    if HTTP.iter().any(|m| data.starts_with(m)) {
        return Some("http");
    }
    if data.starts_with(b"CONNECT ") {
        return Some("http-connect");
    }
    if data.starts_with(b"SSH-") {
        return Some("ssh");
    }
    if data.starts_with(b"AMQP") {
        return Some("amqp");
    }
    if b(0) == Some(0x0b) && data.get(1..5) == Some(b"MSH|") {
        return Some("hl7-mllp");
    }
    if data.len() >= 3 && data[0] == 0x05 && data[1] <= 1 && matches!(data[2], 0x0B | 0x00 | 0x0E) {
        return Some("dcerpc");
    }
    if b(0) == Some(0x30) && matches!(dport, 389 | 3268 | 8389) && ldap_message_op(data).is_some() {
        return Some("ldap");
    }
    let upper = |n: usize| -> Vec<u8> { data.get(..n).unwrap_or(data).to_ascii_uppercase() };
    let u5 = upper(5);
    let u4 = upper(4);
    if u5 == b"EHLO " || u5 == b"HELO " || u4 == b"EHLO" || u4 == b"HELO" {
        return Some("smtp");
    }
    if data.starts_with(b"PRI * HTTP/2.0") {
        return Some("http2");
    }
    None
}

/// Guess the protocol from the first server bytes.
pub fn sniff_server(data: &[u8]) -> Option<&'static str> {
    if data.len() >= 3 && matches!(data[0], 0x15 | 0x16) && data[1] == 0x03 {
        return Some("tls");
    }
    if data.starts_with(b"HTTP/") {
        return Some("http");
    }
    if data.starts_with(b"SSH-") {
        return Some("ssh");
    }
    if data.starts_with(b"220") && data.len() > 4 {
        let head = data.get(..200).unwrap_or(data).to_ascii_uppercase();
        if memmem::find(&head, b"SMTP").is_some() {
            return Some("smtp");
        }
    }
    if data.starts_with(b"220") {
        return Some("ftp-or-smtp");
    }
    if data.len() > 5 && data[3] == 0 && data[4] == 10 {
        // MySQL greeting: protocol 10
        return Some("mysql");
    }
    None
}

/// A BER length at `p`: (length, offset after it); None where the Python raises.
fn ber_len(b: &[u8], p: usize) -> Option<(usize, usize)> {
    let first = *b.get(p)?;
    if first < 0x80 {
        return Some((first as usize, p + 1));
    }
    let n = (first & 0x7F) as usize;
    if n == 0 || n > 4 || p + 1 + n > b.len() {
        return None;
    }
    let v = b
        .get(p + 1..p + 1 + n)?
        .iter()
        .fold(0usize, |acc, &x| (acc << 8) | x as usize);
    Some((v, p + 1 + n))
}

/// The protocol operation of one LDAPMessage and what it says about security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LdapOp {
    pub tag: u8,
    pub simple_bind: bool,
    pub has_password: bool,
    pub starttls: bool,
    /// bytes of the whole message
    pub length: usize,
}

/// Parse the head of an LDAPMessage (RFC 4511 4.1.1); None if it is not one or is incomplete.
pub fn ldap_message_op(b: &[u8]) -> Option<LdapOp> {
    if b.first() != Some(&0x30) {
        return None;
    }
    let (ln, p) = ber_len(b, 1)?;
    let total = p.checked_add(ln)?;
    if b.get(p) != Some(&0x02) {
        // messageID INTEGER
        return None;
    }
    let (idlen, p) = ber_len(b, p + 1)?;
    let p = p.checked_add(idlen)?;
    let tag = *b.get(p)?;
    let (oplen, mut q) = ber_len(b, p + 1)?;
    let (mut simple, mut has_pw, mut starttls) = (false, false, false);
    if tag == 0x60 {
        // bindRequest: version, name, authentication
        if *b.get(q)? != 0x02 {
            return None;
        }
        let (vlen, q2) = ber_len(b, q + 1)?;
        q = q2.checked_add(vlen)?;
        if *b.get(q)? != 0x04 {
            return None;
        }
        let (nlen, q2) = ber_len(b, q + 1)?;
        q = q2.checked_add(nlen)?;
        if b.get(q) == Some(&0x80) {
            // simple [0]
            simple = true;
            let (plen, _) = ber_len(b, q + 1)?;
            has_pw = plen > 0;
        }
    } else if tag == 0x77 {
        // extendedReq
        let end = q.saturating_add(oplen).min(b.len());
        let body = b.get(q.min(end)..end).unwrap_or(&[]);
        starttls = memmem::find(body, STARTTLS_OID).is_some();
    }
    Some(LdapOp {
        tag,
        simple_bind: simple,
        has_password: has_pw,
        starttls,
        length: total,
    })
}

/// Walk LDAPMessages from the start of a client stream: (simple bind seen, with password, StartTLS
/// first, settled: more bytes would tell nothing). After a StartTLS request, what the client sends
/// next tells whether the server accepted it: a TLS record (the upgrade happened), or another
/// LDAPMessage (it refused, and the client went on in clear: keep walking, StartTLS not counted).
/// Stops at the first thing that is not an LDAPMessage.
pub fn ldap_scan(data: &[u8]) -> (bool, bool, bool, bool) {
    let mut p = 0usize;
    let (mut simple, mut pw) = (false, false);
    while p < data.len() {
        let op = match ldap_message_op(&data[p..]) {
            Some(op) if op.length > 0 => op,
            _ => return (simple, pw, false, true),
        };
        p = p.saturating_add(op.length);
        if op.starttls && !simple {
            if p >= data.len() {
                // nothing after it yet: taken as upgraded until the client goes on
                return (simple, pw, true, false);
            }
            if data[p] == 0x16 {
                // the TLS ClientHello
                return (simple, pw, true, true);
            }
            continue; // refused: the session goes on in clear
        }
        if op.simple_bind {
            simple = true;
            pw = pw || op.has_password;
        }
    }
    (simple, pw, false, false)
}

/// SMTP client stream -> Some(true) if the client issued STARTTLS before MAIL FROM or AUTH and the
/// session then went on in TLS (or the stream ends there), Some(false) if it sent mail or logged in
/// without, or went on in clear after STARTTLS (the server refused: "454 TLS not available"); None if
/// unknown.
pub fn smtp_scan(data: &[u8]) -> Option<bool> {
    let up = data.get(..4096).unwrap_or(data).to_ascii_uppercase();
    let mut st = memmem::find(&up, b"\nSTARTTLS");
    if up.starts_with(b"STARTTLS") {
        st = Some(0);
    }
    // the first command only a session in clear sends: MAIL FROM, or a login (AUTH)
    let auth = if up.starts_with(b"AUTH ") {
        Some(0)
    } else {
        memmem::find(&up, b"\nAUTH ")
    };
    let mail = match (memmem::find(&up, b"MAIL FROM"), auth) {
        (Some(m), Some(a)) => Some(m.min(a)),
        (m, a) => m.or(a),
    };
    if let Some(st) = st {
        if mail.is_none_or(|m| st < m) {
            let rest: &[u8] = match memchr::memchr(b'\n', up.get(st + 1..).unwrap_or(&[])) {
                Some(i) => up.get(st + 1 + i + 1..).unwrap_or(&[]),
                None => &[],
            };
            // nothing after it yet, or the TLS ClientHello
            return Some(rest.is_empty() || rest[0] == 0x16);
        }
    }
    if mail.is_some() {
        return Some(false);
    }
    None
}

// -- upgrades to TLS ---------------------------------------------------------------------------------

/// What the exchange so far says about an upgrade to TLS (None from the `*_upgrade` functions: not
/// decided yet, more bytes needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// TLS starts at these offsets of the client and the server stream (the byte after the
    /// command / the answer that accepted it).
    Tls { client: usize, server: usize },
    /// The upgrade was refused or never asked for before the session went on in clear (credentials or
    /// data sent, the server's answer negative).
    Clear,
}

/// Complete lines of a stream: (line without its CR LF, offset after the LF).
fn lines(data: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut p = 0usize;
    std::iter::from_fn(move || {
        let rest = data.get(p..)?;
        let i = memchr::memchr(b'\n', rest)?;
        let line = &rest[..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        p += i + 1;
        Some((line, p))
    })
}

fn starts_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// Command word of a client line ("AUTH TLS" -> "AUTH"), upper-cased.
fn verb(line: &[u8]) -> Vec<u8> {
    line.split(|&c| c == b' ')
        .next()
        .unwrap_or(&[])
        .to_ascii_uppercase()
}

/// Final replies of a server using 3-digit reply codes with `ddd-` continuation lines (FTP RFC 959
/// 4.2, SMTP RFC 5321 4.2): (code, offset after the reply).
fn coded_replies(data: &[u8]) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    for (line, end) in lines(data) {
        let code = match line.get(..3) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                (d[0] - b'0') as u16 * 100 + (d[1] - b'0') as u16 * 10 + (d[2] - b'0') as u16
            }
            _ => continue, // text of a multi-line reply
        };
        if line.get(3) != Some(&b'-') {
            out.push((code, end));
        }
        if out.len() > 1024 {
            break;
        }
    }
    out
}

/// Pair client commands with the server's replies (greeting first, one reply per command: no
/// pipelining), find the TLS command and its answer.
fn command_reply_upgrade(
    client: &[u8],
    replies: &[(u16, usize)],
    is_tls_cmd: impl Fn(&[u8]) -> bool,
    accepted: impl Fn(u16) -> bool,
    clear_cmd: impl Fn(&[u8]) -> bool,
) -> Option<Upgrade> {
    let mut refused = false;
    for (i, (line, end)) in lines(client).enumerate() {
        if is_tls_cmd(line) {
            let (code, srv_end) = *replies.get(i + 1)?;
            if accepted(code) {
                return Some(Upgrade::Tls {
                    client: end,
                    server: srv_end,
                });
            }
            refused = true;
        } else if refused || clear_cmd(line) {
            return Some(Upgrade::Clear);
        }
        if i > 1024 {
            break;
        }
    }
    None
}

/// FTP `AUTH TLS` / `AUTH SSL` (RFC 4217 4, also the drafts' `TLS-C`, `TLS-P`) answered 234. Clear
/// once the client sends USER/PASS (or anything else after a refused AUTH).
pub fn ftp_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let replies = coded_replies(server);
    command_reply_upgrade(
        client,
        &replies,
        |l| {
            verb(l) == b"AUTH"
                && matches!(
                    l.get(5..)
                        .map(|a| a.trim_ascii().to_ascii_uppercase())
                        .as_deref(),
                    Some(b"TLS" | b"SSL" | b"TLS-C" | b"TLS-P")
                )
        },
        |c| c == 234,
        |l| matches!(verb(l).as_slice(), b"USER" | b"PASS" | b"ACCT"),
    )
}

/// SMTP `STARTTLS` (RFC 3207) answered 220. Clear once the client sends AUTH or MAIL.
pub fn smtp_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let replies = coded_replies(server);
    command_reply_upgrade(
        client,
        &replies,
        |l| l.trim_ascii().eq_ignore_ascii_case(b"STARTTLS"),
        |c| c == 220,
        |l| matches!(verb(l).as_slice(), b"AUTH" | b"MAIL"),
    )
}

/// POP3 `STLS` (RFC 2595 4) answered `+OK`. Multi-line answers (CAPA, LIST, UIDL without argument,
/// RETR, TOP) end with a line holding ".". Clear once the client sends USER/PASS/APOP/AUTH.
pub fn pop3_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let cmds: Vec<(&[u8], usize)> = lines(client).take(1024).collect();
    // replies: the greeting, then one per command
    let mut replies: Vec<(bool, usize)> = Vec::new();
    let mut srv = lines(server);
    while let Some((line, end)) = srv.next() {
        let ok = starts_ci(line, b"+OK");
        if !ok && !starts_ci(line, b"-ERR") {
            continue;
        }
        let idx = replies.len(); // 0: greeting, i+1: answer to command i
        let multi = ok
            && idx > 0
            && cmds.get(idx - 1).is_some_and(|(c, _)| {
                let v = verb(c);
                let args = c.split(|&x| x == b' ').filter(|a| !a.is_empty()).count();
                matches!(v.as_slice(), b"CAPA" | b"RETR" | b"TOP")
                    || (matches!(v.as_slice(), b"LIST" | b"UIDL") && args == 1)
            });
        let mut end = end;
        if multi {
            let mut closed = false;
            for (l, e) in srv.by_ref() {
                end = e;
                if l == b"." {
                    closed = true;
                    break;
                }
            }
            if !closed {
                break;
            }
        }
        replies.push((ok, end));
        if replies.len() > cmds.len() {
            break;
        }
    }
    let mut refused = false;
    for (i, (line, end)) in cmds.iter().enumerate() {
        let v = verb(line);
        if v == b"STLS" {
            let (ok, srv_end) = *replies.get(i + 1)?;
            if ok {
                return Some(Upgrade::Tls {
                    client: *end,
                    server: srv_end,
                });
            }
            refused = true;
        } else if refused || matches!(v.as_slice(), b"USER" | b"PASS" | b"APOP" | b"AUTH") {
            return Some(Upgrade::Clear);
        }
    }
    None
}

/// IMAP `tag STARTTLS` (RFC 3501 6.2.1) answered `tag OK`. Clear once the client sends LOGIN or
/// AUTHENTICATE (or anything else after a refused STARTTLS).
pub fn imap_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let mut refused = false;
    for (line, end) in lines(client).take(1024) {
        let mut words = line.split(|&c| c == b' ');
        let tag = words.next().unwrap_or(&[]);
        let cmd = words.next().unwrap_or(&[]).to_ascii_uppercase();
        if cmd.as_slice() == b"STARTTLS" && !tag.is_empty() {
            let mut answer = None;
            for (l, e) in lines(server) {
                if l.len() > tag.len() && l.starts_with(tag) && l[tag.len()] == b' ' {
                    let status = l[tag.len() + 1..]
                        .split(|&c| c == b' ')
                        .next()
                        .unwrap_or(&[]);
                    answer = Some((status.eq_ignore_ascii_case(b"OK"), e));
                    break;
                }
            }
            let (ok, srv_end) = answer?;
            if ok {
                return Some(Upgrade::Tls {
                    client: end,
                    server: srv_end,
                });
            }
            refused = true;
        } else if refused || matches!(cmd.as_slice(), b"LOGIN" | b"AUTHENTICATE") {
            return Some(Upgrade::Clear);
        }
    }
    None
}

/// End of the XML element starting at `start` (after its `/>`, or after `</name>`).
fn element_end(data: &[u8], start: usize, name: &[u8]) -> Option<usize> {
    let rest = data.get(start..)?;
    let gt = memchr::memchr(b'>', rest)?;
    if gt > 0 && rest[gt - 1] == b'/' {
        return Some(start + gt + 1);
    }
    let mut close = b"</".to_vec();
    close.extend_from_slice(name);
    let c = memmem::find(rest, &close)?;
    let gt2 = memchr::memchr(b'>', &rest[c..])?;
    Some(start + c + gt2 + 1)
}

/// Find `<prefix:name` or `<name` (any namespace prefix) from `from`.
fn find_element(data: &[u8], name: &[u8], from: usize) -> Option<usize> {
    let hay = data.get(from..)?;
    let mut p = 0usize;
    while let Some(i) = memchr::memchr(b'<', hay.get(p..)?) {
        let at = p + i;
        let tail = &hay[at + 1..];
        let local = match tail
            .iter()
            .position(|&c| matches!(c, b' ' | b'/' | b'>' | b'\t' | b'\r' | b'\n'))
        {
            Some(e) => &tail[..e],
            None => return None, // the element name has not fully arrived
        };
        let local = local.rsplit(|&c| c == b':').next().unwrap_or(local);
        if local == name {
            return Some(from + at);
        }
        p = at + 1;
    }
    None
}

/// XMPP `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` answered `<proceed/>` (RFC 6120 5.4).
/// `<failure/>` in the xmpp-tls namespace is a refusal; SASL `<auth>` sent in clear is Clear.
pub fn xmpp_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let Some(st) = find_element(client, b"starttls", 0) else {
        return find_element(client, b"auth", 0).map(|_| Upgrade::Clear);
    };
    let client_end = element_end(client, st, b"starttls")?;
    // the server's stream features also hold a <starttls> element: look for the answer only
    if let Some(pr) = find_element(server, b"proceed", 0) {
        let server_end = element_end(server, pr, b"proceed")?;
        return Some(Upgrade::Tls {
            client: client_end,
            server: server_end,
        });
    }
    let mut from = 0usize;
    while let Some(f) = find_element(server, b"failure", from) {
        let end = element_end(server, f, b"failure")?;
        if memmem::find(&server[f..end], b"xmpp-tls").is_some() {
            return Some(Upgrade::Clear);
        }
        from = end;
    }
    None
}

/// One TPKT packet (RFC 1006) at `p`: (X.224 TPDU, offset after the packet).
fn tpkt(data: &[u8], p: usize) -> Option<(&[u8], usize)> {
    let h = data.get(p..p + 4)?;
    if h[0] != 3 {
        return None;
    }
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if len < 4 {
        return None;
    }
    let body = data.get(p + 4..p + len)?;
    Some((body, p + len))
}

/// RDP Connection Request / Confirm with TLS selected (MS-RDPBCGR 2.2.1.1 / 2.2.1.2): TLS starts after
/// the TPKT packets carrying the X.224 CR and CC when the server's RDP_NEG_RSP selects any protocol but
/// standard RDP security (SSL 1, HYBRID 2, RDSTLS 4, HYBRID_EX 8 all run over TLS). Clear when the
/// server selects standard RDP security (no RDP_NEG_RSP, or PROTOCOL_RDP) or answers RDP_NEG_FAILURE.
pub fn rdp_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let (cr, client_end) = tpkt(client, 0)?;
    // X.224: length indicator, code 0xE0 Connection Request
    if cr.get(1).map(|c| c & 0xF0) != Some(0xE0) {
        return Some(Upgrade::Clear);
    }
    let (cc, server_end) = tpkt(server, 0)?;
    if cc.get(1).map(|c| c & 0xF0) != Some(0xD0) {
        return Some(Upgrade::Clear);
    }
    let li = *cc.first()? as usize;
    // the variable part after the 7-byte fixed X.224 CC header holds the RDP_NEG_RSP
    let neg = cc.get(7..(li + 1).min(cc.len())).unwrap_or(&[]);
    let neg = if neg.len() >= 8 {
        neg
    } else {
        cc.get(7..).unwrap_or(&[])
    };
    match neg.first() {
        Some(2) if neg.len() >= 8 => {
            let selected = u32::from_le_bytes([neg[4], neg[5], neg[6], neg[7]]);
            if selected != 0 {
                Some(Upgrade::Tls {
                    client: client_end,
                    server: server_end,
                })
            } else {
                Some(Upgrade::Clear)
            }
        }
        _ => Some(Upgrade::Clear), // RDP_NEG_FAILURE (3) or no negotiation: standard RDP security
    }
}

/// (messageID, protocol op tag, op body start, message end) of the LDAPMessage at `p`.
fn ldap_head(b: &[u8], p: usize) -> Option<(u32, u8, usize, usize)> {
    let m = b.get(p..)?;
    if m.first() != Some(&0x30) {
        return None;
    }
    let (ln, q) = ber_len(m, 1)?;
    let end = q.checked_add(ln)?;
    if m.get(q) != Some(&0x02) {
        return None;
    }
    let (idlen, q) = ber_len(m, q + 1)?;
    if idlen == 0 || idlen > 4 {
        return None;
    }
    let id = m
        .get(q..q + idlen)?
        .iter()
        .fold(0u32, |a, &x| (a << 8) | u32::from(x));
    let q = q + idlen;
    let tag = *m.get(q)?;
    let (_, body) = ber_len(m, q + 1)?;
    Some((id, tag, p + body, p.checked_add(end)?))
}

/// LDAP StartTLS (RFC 4511 4.14): the client's extendedReq with the StartTLS OID answered by an
/// extendedResp with the same messageID and resultCode success (0). TLS starts after the request and
/// after the response; another resultCode (protocolError 2, unavailable 52...) is Clear, and so is a
/// bind or other operation sent before any StartTLS.
pub fn ldap_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    let mut p = 0usize;
    let mut want = None;
    for _ in 0..256 {
        let (id, tag, _, end) = ldap_head(client, p)?;
        if end > client.len() {
            return None;
        }
        let op = ldap_message_op(&client[p..])?;
        p = end;
        if op.starttls {
            want = Some((id, end));
            break;
        }
        if tag == 0x60 {
            return Some(Upgrade::Clear); // a bind before any StartTLS
        }
    }
    let (id, client_end) = want?;
    let mut q = 0usize;
    for _ in 0..4096 {
        let (rid, tag, body, end) = ldap_head(server, q)?;
        if end > server.len() {
            return None;
        }
        if rid == id && tag == 0x78 {
            // ExtendedResponse ::= [APPLICATION 24] SEQUENCE { COMPONENTS OF LDAPResult (resultCode ENUMERATED first) ...
            if server.get(body) != Some(&0x0a) || server.get(body + 1) != Some(&0x01) {
                return Some(Upgrade::Clear);
            }
            return Some(if server.get(body + 2) == Some(&0) {
                Upgrade::Tls {
                    client: client_end,
                    server: end,
                }
            } else {
                Upgrade::Clear
            });
        }
        q = end;
    }
    None
}

/// HTTP/1.1 `Upgrade: TLS/1.x` (RFC 2817 3.2) answered `101 Switching Protocols`: TLS starts after the
/// request (head and Content-Length body) and after the 101 head. Interim 1xx answers are skipped;
/// any other final answer, or a request without the header, is Clear.
pub fn http_upgrade(client: &[u8], server: &[u8]) -> Option<Upgrade> {
    use crate::proto::http;
    let client_end = match http_tls_request(client) {
        Ok(end) => end,
        Err(crate::ParseError::Incomplete) => return None,
        Err(_) => return Some(Upgrade::Clear),
    };
    let mut p = 0usize;
    for _ in 0..16 {
        let rest = server.get(p..)?;
        match http::try_parse_status(rest) {
            Ok((code, Some(len))) => {
                if code == 101 {
                    return Some(Upgrade::Tls {
                        client: client_end,
                        server: p + len,
                    });
                }
                if (100..200).contains(&code) {
                    p += len;
                    continue;
                }
                return Some(Upgrade::Clear);
            }
            Ok((_, None)) | Err(crate::ParseError::Incomplete) => return None,
            Err(_) if rest.is_empty() => return None,
            Err(_) => return Some(Upgrade::Clear),
        }
    }
    Some(Upgrade::Clear)
}

/// The end of an HTTP/1.1 request (head and Content-Length body) that asks for `Upgrade: TLS/1.x`;
/// Invalid when it does not ask, Incomplete when its head has not fully arrived.
pub fn http_tls_request(client: &[u8]) -> crate::ParseResult<usize> {
    use crate::proto::http;
    let req = http::try_parse_request(client)?;
    let head = client.get(..req.head_len).unwrap_or(client);
    let wants_tls = head.split(|&c| c == b'\n').skip(1).any(|line| {
        let Some(i) = line.iter().position(|&c| c == b':') else {
            return false;
        };
        line[..i].trim_ascii().eq_ignore_ascii_case(b"upgrade")
            && line[i + 1..]
                .split(|&c| c == b',')
                .any(|p| starts_ci(p.trim_ascii(), b"TLS/"))
    });
    if !wants_tls {
        return Err(crate::ParseError::Invalid("no Upgrade: TLS".into()));
    }
    req.head_len
        .checked_add(http::content_length(head).unwrap_or(0))
        .ok_or_else(|| crate::ParseError::Invalid("length".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> Vec<u8> {
        let (dn, pw) = (b"cn=admin,dc=example".as_slice(), b"secret".as_slice());
        let mut op = vec![0x02, 0x01, 0x03, 0x04, dn.len() as u8];
        op.extend_from_slice(dn);
        op.extend_from_slice(&[0x80, pw.len() as u8]);
        op.extend_from_slice(pw);
        let mut msg = vec![0x02, 0x01, 0x01, 0x60, op.len() as u8];
        msg.extend(op);
        let mut b = vec![0x30, msg.len() as u8];
        b.extend(msg);
        b
    }

    // test_protocols.py::test_ldap_simple_bind_and_starttls
    #[test]
    fn ldap_simple_bind_and_starttls() {
        let bind = bind();
        assert_eq!(sniff_client(&bind, 389), Some("ldap"));
        assert_eq!(sniff_client(&bind, 80), None);
        assert_eq!(ldap_scan(&bind), (true, true, false, false));
        let mut st = hex::decode("301d02010177188016").unwrap();
        st.extend_from_slice(STARTTLS_OID);
        assert_eq!(ldap_scan(&st), (false, false, true, false));
        let tls = [st.clone(), b"\x16\x03\x01\x00\x05hello".to_vec()].concat();
        assert_eq!(ldap_scan(&tls), (false, false, true, true));
        let refused = [st.clone(), bind.clone()].concat();
        assert_eq!(ldap_scan(&refused), (true, true, false, false));
        let anonymous = b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00";
        let a = ldap_scan(anonymous);
        assert_eq!((a.0, a.1), (true, false));
        assert_eq!(ldap_scan(b"\x30\x84\xff"), (false, false, false, true));
        assert_eq!(ldap_message_op(b"\x30\x05\x02\x01\x01\x60"), None);
    }

    #[test]
    fn ldap_starttls_upgrade() {
        let mut req = hex::decode("301d02010177188016").unwrap();
        req.extend_from_slice(STARTTLS_OID);
        let ok = hex::decode("300c02010178070a010004000400").unwrap();
        let refused = hex::decode("300c02010178070a013404000400").unwrap();
        let ch = b"\x16\x03\x01\x00\x05hello";
        let sh = b"\x16\x03\x03\x00\x05hello";
        let c = [req.clone(), ch.to_vec()].concat();
        let s = [ok.clone(), sh.to_vec()].concat();
        assert_eq!(
            ldap_upgrade(&c, &s),
            Some(Upgrade::Tls {
                client: req.len(),
                server: ok.len()
            })
        );
        assert_eq!(ldap_upgrade(&req, &refused), Some(Upgrade::Clear));
        assert_eq!(ldap_upgrade(&req, b""), None);
        assert_eq!(ldap_upgrade(&req[..5], b""), None);
        assert_eq!(ldap_upgrade(&bind(), b""), Some(Upgrade::Clear));
        // a notice of disconnection (messageID 0) is not the answer
        let notice = hex::decode("300c02010078070a013404000400").unwrap();
        assert_eq!(ldap_upgrade(&req, &notice), None);
    }

    // test_protocols.py::test_smtp_starttls
    #[test]
    fn smtp_starttls() {
        assert_eq!(smtp_scan(b"EHLO x\r\nSTARTTLS\r\n"), Some(true));
        assert_eq!(
            smtp_scan(b"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x02\x00"),
            Some(true)
        );
        assert_eq!(smtp_scan(b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), Some(false));
        assert_eq!(smtp_scan(b"EHLO x\r\n"), None);
        assert_eq!(
            smtp_scan(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n"),
            Some(false)
        );
        assert_eq!(smtp_scan(b"starttls"), Some(true));
        // a login without STARTTLS is in clear too; AUTH after STARTTLS (and TLS) is not looked at
        assert_eq!(smtp_scan(b"EHLO x\r\nAUTH PLAIN AGEAYg==\r\n"), Some(false));
        assert_eq!(smtp_scan(b"AUTH LOGIN\r\n"), Some(false));
        assert_eq!(smtp_scan(b"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01"), Some(true));
        assert_eq!(smtp_scan(b"EHLO x\r\nXAUTHORITY\r\n"), None);
    }

    #[test]
    fn sniffers() {
        for (d, p, want) in [
            (&b"\x16\x03\x01\x00"[..], 443, Some("tls")),
            (b"\x80\x2e\x01\x00", 443, Some("sslv2")),
            (b"PATCH /x", 80, Some("http")),
            (b"CONNECT h:443", 8080, Some("http-connect")),
            (b"SSH-2.0-x", 22, Some("ssh")),
            (b"AMQP\x00\x00\x09\x01", 5671, Some("amqp")),
            (b"\x0bMSH|^~", 2575, Some("hl7-mllp")),
            (b"\x05\x00\x0b\x03", 135, Some("dcerpc")),
            (b"ehlo", 25, Some("smtp")),
            (b"HELO x", 25, Some("smtp")),
            (b"PRI * HTTP/2.0\r\n", 80, Some("http2")),
            (b"", 80, None),
            (b"\x80", 80, None),
        ] {
            assert_eq!(sniff_client(d, p), want, "{d:?}");
        }
        for (d, want) in [
            (&b"\x15\x03\x03"[..], Some("tls")),
            (b"HTTP/1.1 200", Some("http")),
            (b"SSH-2.0", Some("ssh")),
            (b"220 mx ESMTP Postfix", Some("smtp")),
            (b"220 ftp ready", Some("ftp-or-smtp")),
            (b"220", Some("ftp-or-smtp")),
            (b"J\x00\x00\x00\x0a8.0", Some("mysql")),
            (b"", None),
        ] {
            assert_eq!(sniff_server(d), want, "{d:?}");
        }
    }

    fn tls_at(client: &[u8], server: &[u8]) -> Option<Upgrade> {
        Some(Upgrade::Tls {
            client: client.len(),
            server: server.len(),
        })
    }

    /// RFC 4217 4: AUTH TLS answered 234 (multi-line FEAT reply before it).
    #[test]
    fn ftp() {
        let srv = b"220-Welcome\r\n220 ProFTPD Server ready.\r\n211-Features:\r\n AUTH TLS\r\n PBSZ\r\n211 End\r\n234 AUTH TLS successful\r\n";
        let cli = b"FEAT\r\nAUTH TLS\r\n";
        assert_eq!(ftp_upgrade(cli, &srv[..srv.len() - 10]), None);
        assert_eq!(ftp_upgrade(cli, srv), tls_at(cli, srv));
        let with_hello = [cli.as_slice(), b"\x16\x03\x01"].concat();
        assert_eq!(ftp_upgrade(&with_hello, srv), tls_at(cli, srv));
        // AUTH TLS refused, AUTH SSL accepted
        let srv2 = b"220 ready\r\n504 Unknown\r\n234 AUTH SSL ok\r\n";
        let cli2 = b"AUTH TLS\r\nauth ssl\r\n";
        assert_eq!(ftp_upgrade(cli2, srv2), tls_at(cli2, srv2));
        // refused, then USER in clear
        assert_eq!(
            ftp_upgrade(
                b"AUTH TLS\r\nUSER anonymous\r\n",
                b"220 ready\r\n500 no\r\n331 pw\r\n"
            ),
            Some(Upgrade::Clear)
        );
        assert_eq!(
            ftp_upgrade(b"USER bob\r\n", b"220 ready\r\n"),
            Some(Upgrade::Clear)
        );
        assert_eq!(ftp_upgrade(b"SYST\r\n", b"220 ready\r\n215 UNIX\r\n"), None);
    }

    /// RFC 3207 4: EHLO, STARTTLS, 220.
    #[test]
    fn smtp() {
        let srv = b"220 mail.example.com ESMTP\r\n250-mail.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n";
        let cli = b"EHLO client.example.org\r\nSTARTTLS\r\n";
        assert_eq!(smtp_upgrade(cli, srv), tls_at(cli, srv));
        let srv = b"220 mail ESMTP\r\n250 mail\r\n454 4.7.0 TLS not available\r\n250 ok\r\n";
        assert_eq!(
            smtp_upgrade(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n", srv),
            Some(Upgrade::Clear)
        );
        assert_eq!(smtp_upgrade(b"EHLO c\r\n", b"220 mail ESMTP\r\n"), None);
    }

    /// RFC 2595 4: CAPA (multi-line), STLS, +OK.
    #[test]
    fn pop3() {
        let srv = b"+OK POP3 server ready\r\n+OK Capability list follows\r\nTOP\r\nSTLS\r\nUSER\r\n.\r\n+OK Begin TLS negotiation\r\n";
        let cli = b"CAPA\r\nSTLS\r\n";
        assert_eq!(pop3_upgrade(cli, srv), tls_at(cli, srv));
        assert_eq!(pop3_upgrade(cli, &srv[..srv.len() - 5]), None);
        let srv = b"+OK ready\r\n-ERR not now\r\n+OK\r\n";
        assert_eq!(
            pop3_upgrade(b"STLS\r\nUSER bob\r\n", srv),
            Some(Upgrade::Clear)
        );
    }

    /// RFC 3501 6.2.1 example.
    #[test]
    fn imap() {
        let srv = b"* OK IMAP4rev1 Service Ready\r\n* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na001 OK CAPABILITY completed\r\na002 OK Begin TLS negotiation now\r\n";
        let cli = b"a001 CAPABILITY\r\na002 STARTTLS\r\n";
        assert_eq!(imap_upgrade(cli, srv), tls_at(cli, srv));
        assert_eq!(imap_upgrade(cli, &srv[..srv.len() - 36]), None);
        let srv = b"* OK ready\r\na1 BAD no\r\na2 OK LOGIN done\r\n";
        assert_eq!(
            imap_upgrade(b"a1 STARTTLS\r\na2 LOGIN bob pw\r\n", srv),
            Some(Upgrade::Clear)
        );
    }

    /// RFC 6120 5.4: stream header, features, <starttls/>, <proceed/>.
    #[test]
    fn xmpp() {
        let cli = b"<?xml version='1.0'?><stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        let srv = b"<?xml version='1.0'?><stream:stream from='im.example.com' id='t7AMCin9zjMNwQKDnplntZPIDEI=' to='juliet@im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        assert_eq!(xmpp_upgrade(cli, srv), tls_at(cli, srv));
        let features_only = &srv[..srv.len() - 51];
        assert_eq!(xmpp_upgrade(cli, features_only), None);
        let fail = [
            features_only,
            b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>",
        ]
        .concat();
        assert_eq!(xmpp_upgrade(cli, &fail), Some(Upgrade::Clear));
        let auth = b"<stream:stream to='x'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABy</auth>";
        assert_eq!(xmpp_upgrade(auth, b""), Some(Upgrade::Clear));
    }

    /// MS-RDPBCGR 4.1.1 / 4.1.2: Connection Request with a cookie and RDP_NEG_REQ (TLS | CredSSP),
    /// Connection Confirm selecting CredSSP (HYBRID, 2).
    #[test]
    fn rdp() {
        let cli = hex::decode("0300002c27e00000000000436f6f6b69653a206d737473686173683d656c746f6e730d0a010008000b000000").unwrap();
        let srv = hex::decode("030000130ed00000123400021f080002000000").unwrap();
        assert_eq!(cli.len(), 0x2c);
        let client_hello = [cli.clone(), b"\x16\x03\x01\x00\x10".to_vec()].concat();
        assert_eq!(rdp_upgrade(&client_hello, &srv), tls_at(&cli, &srv));
        assert_eq!(rdp_upgrade(&cli, &srv[..10]), None);
        // standard RDP security selected
        let std_rdp = hex::decode("030000130ed00000123400020f080000000000").unwrap();
        assert_eq!(rdp_upgrade(&cli, &std_rdp), Some(Upgrade::Clear));
        // RDP_NEG_FAILURE (SSL required by server)
        let fail = hex::decode("030000130ed000001234000300080001000000").unwrap();
        assert_eq!(rdp_upgrade(&cli, &fail), Some(Upgrade::Clear));
        // an old server: CC without negotiation
        assert_eq!(
            rdp_upgrade(&cli, &hex::decode("0300000b06d00000123400").unwrap()),
            Some(Upgrade::Clear)
        );
    }

    /// RFC 2817 3.2 / 3.3.
    #[test]
    fn http() {
        let cli = b"OPTIONS * HTTP/1.1\r\nHost: example.bank.com\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n";
        let srv = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(http_upgrade(cli, srv), tls_at(cli, srv));
        let with_continue = [b"HTTP/1.1 100 Continue\r\n\r\n".as_slice(), srv].concat();
        assert_eq!(
            http_upgrade(cli, &with_continue),
            tls_at(cli, &with_continue)
        );
        assert_eq!(http_upgrade(cli, &srv[..20]), None);
        assert_eq!(
            http_upgrade(cli, b"HTTP/1.1 200 OK\r\n\r\n"),
            Some(Upgrade::Clear)
        );
        assert_eq!(
            http_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", srv),
            Some(Upgrade::Clear)
        );
        assert_eq!(http_upgrade(b"GET / HTTP/1.1\r\n", srv), None);
        let ws = b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(http_upgrade(ws, srv), Some(Upgrade::Clear));
    }

    /// Differential check against the Python on mutated streams (vectors written by a hand-run
    /// script, `PCAPAUDIT_VECTORS=/path`); skipped when absent.
    #[test]
    fn python_differential() {
        let Ok(path) = std::env::var("PCAPAUDIT_VECTORS") else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (mut same, mut total) = (0, 0);
        let o = |x: Option<&str>| x.unwrap_or("None").to_string();
        for line in text.lines().filter(|l| l.starts_with("app\t")) {
            let f: Vec<&str> = line.split('\t').collect();
            let d = hex::decode(f[1]).unwrap();
            let l = ldap_scan(&d);
            let got = format!(
                "{}|{}|{}|{}{}{}{}|{}",
                o(sniff_client(&d, 389)),
                o(sniff_client(&d, 25)),
                o(sniff_server(&d)),
                l.0 as u8,
                l.1 as u8,
                l.2 as u8,
                l.3 as u8,
                match smtp_scan(&d) {
                    None => "None",
                    Some(true) => "True",
                    Some(false) => "False",
                }
            );
            total += 1;
            if got == f[2] {
                same += 1;
            } else {
                eprintln!("DIFF {}\n  py: {:?}\n  rs: {:?}", f[1], f[2], got);
            }
        }
        eprintln!("app differential: {same}/{total} identical");
        assert_eq!(same, total);
    }
}
