//! HTTP/1.x request line, Host header, CONNECT / absolute-form targets and response status.
//! Mirrors `pcapaudit/decode/http.py`.
//!
//! Only the first request and the first response of a connection are read; that is where a proxy's
//! CONNECT and its verdict (200, 403, 407) live, and where the Host of a clear-text request is.

use crate::{ParseError, ParseResult};
use memchr::memmem;

/// Request methods recognised at the start of a stream.
pub const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];
/// Longest request / response head searched for its blank line.
pub const MAX_HEAD: usize = 16 * 1024;

/// The request line and Host header of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub host: Option<String>,
    /// bytes up to and including the blank line
    pub head_len: usize,
}

impl HttpRequest {
    /// (host, port) for CONNECT, parsed from the request target (authority form).
    pub fn connect_target(&self) -> Option<(String, Option<u16>)> {
        if self.method != "CONNECT" {
            return None;
        }
        Some(split_authority(&self.uri, None))
    }
}

/// Python's `str.isspace()`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `bytes.decode("latin-1").strip()`.
fn text(b: &[u8]) -> String {
    let s: String = b.iter().map(|&c| c as char).collect();
    s.trim_matches(py_space).to_string()
}

/// Python's `bytes.strip()` (ASCII whitespace).
fn bstrip(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or(&[])
}

/// "host:443" -> ("host", 443); "[::1]:443" -> ("::1", 443); bad ports become `default_port`.
pub fn split_authority(auth: &str, default_port: Option<u16>) -> (String, Option<u16>) {
    let auth = auth.trim_matches(py_space);
    let (host, port_s) = if let Some(rest) = auth.strip_prefix('[') {
        let (host, rest) = rest.split_once(']').unwrap_or((rest, ""));
        (host, rest.strip_prefix(':').unwrap_or(""))
    } else if auth.matches(':').count() == 1 {
        auth.rsplit_once(':').unwrap_or((auth, ""))
    } else {
        (auth, "")
    };
    // ASCII digits only: Python's str.isdigit() also accepts "³", which int() refuses
    let port = if !port_s.is_empty() && port_s.bytes().all(|c| c.is_ascii_digit()) {
        let digits = port_s.trim_start_matches('0');
        if digits.len() <= 5 {
            digits
                .parse::<u32>()
                .ok()
                .or(Some(0))
                .filter(|&p| p < 65536)
                .map(|p| p as u16)
                .or(default_port)
        } else {
            default_port
        }
    } else {
        default_port
    };
    (host.trim_end_matches('.').to_lowercase(), port)
}

/// Default port of a URL scheme (Python's `SCHEME_PORTS`).
pub fn scheme_port(scheme: &str) -> Option<u16> {
    match scheme.to_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

/// "http://user@host:8080/x" -> ("host", 8080), with the scheme's port when the URL has none (None
/// for an unknown scheme); None when `uri` is not an absolute URL (an origin-form path, a CONNECT
/// target).
pub fn url_target(uri: &str) -> Option<(String, Option<u16>)> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme.contains('/') {
        return None;
    }
    let auth = rest.split('/').next().unwrap_or("");
    let auth = auth.split('?').next().unwrap_or("");
    let auth = auth.split('#').next().unwrap_or("");
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a); // drop any user:password@
    Some(split_authority(auth, scheme_port(scheme)))
}

/// True when the stream starts with an HTTP method.
pub fn looks_like_request(data: &[u8]) -> bool {
    let head = data.get(..8).unwrap_or(data);
    METHODS.iter().any(|m| head.starts_with(m))
}

/// `data[:MAX_HEAD].find(needle)`.
fn find_head(data: &[u8], needle: &[u8]) -> Option<usize> {
    memmem::find(data.get(..MAX_HEAD).unwrap_or(data), needle)
}

/// Parse the request head at the start of `data`: `Incomplete` until the blank line has arrived,
/// `Invalid` for a head longer than [`MAX_HEAD`] or a malformed request line (the Python's
/// `ValueError`s, same messages).
pub fn try_parse_request(data: &[u8]) -> ParseResult<HttpRequest> {
    let (end, sep) = match find_head(data, b"\r\n\r\n") {
        Some(e) => (e, 4),
        None => match find_head(data, b"\n\n") {
            Some(e) => (e, 2),
            None if data.len() >= MAX_HEAD => {
                return Err(ParseError::invalid("HTTP request head longer than 16 KiB"))
            }
            None => return Err(ParseError::Incomplete),
        },
    };
    let head = data.get(..end).unwrap_or(data);
    let mut lines = head.split(|&c| c == b'\n');
    let first = lines.next().unwrap_or(&[]);
    let mut parts = first.split(|&c| c == b' ');
    let (m, u) = match (parts.next(), parts.next()) {
        (Some(m), Some(u)) => (m, u),
        _ => return Err(ParseError::invalid("malformed HTTP request line")),
    };
    let method = text(m);
    let uri = text(u);
    let mut host = None;
    for line in lines {
        let (k, v) = match line.iter().position(|&c| c == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        if bstrip(k).eq_ignore_ascii_case(b"host") {
            host = Some(text(v));
            break;
        }
    }
    let host = match host {
        Some(h) => Some(split_authority(&h, None).0),
        // absolute-form request to a proxy
        None if method != "CONNECT" => url_target(&uri).map(|t| t.0),
        None => None,
    };
    Ok(HttpRequest {
        method,
        uri,
        host,
        head_len: end + sep,
    })
}

/// Parse a complete request head (None until the blank line is in `data`, or when not HTTP: see
/// [`try_parse_request`] for the difference).
pub fn parse_request(data: &[u8]) -> Option<HttpRequest> {
    try_parse_request(data).ok()
}

/// The Content-Length of a message head, None when it has none (or a broken one).
pub fn content_length(head: &[u8]) -> Option<usize> {
    for line in head.split(|&c| c == b'\n').skip(1) {
        if let Some(i) = line.iter().position(|&c| c == b':') {
            if bstrip(&line[..i]).eq_ignore_ascii_case(b"content-length") {
                let v = bstrip(&line[i + 1..]);
                if !v.is_empty() && v.len() < 12 && v.iter().all(u8::is_ascii_digit) {
                    return std::str::from_utf8(v).ok()?.parse().ok();
                }
                return None;
            }
        }
    }
    None
}

/// `"HTTP/1.1 407 ..."` -> (407, Some(head length)), or (407, None) when only the status line has
/// arrived (the Python's head length -1). `Incomplete` before the first line feed; `Invalid` when the
/// data is not a response, the status line is malformed, or the head is longer than [`MAX_HEAD`]
/// (the Python's `ValueError`s, same messages).
pub fn try_parse_status(data: &[u8]) -> ParseResult<(u16, Option<usize>)> {
    if !data.starts_with(b"HTTP/") {
        return Err(ParseError::invalid("not an HTTP response"));
    }
    let head_end = match find_head(data, b"\r\n\r\n") {
        Some(e) => Some(e + 4),
        None => match find_head(data, b"\n\n") {
            Some(e) => Some(e + 2),
            None if data.len() >= MAX_HEAD => {
                return Err(ParseError::invalid("HTTP response head longer than 16 KiB"))
            }
            // the status line alone is enough to know the verdict
            None if !data.contains(&b'\n') => return Err(ParseError::Incomplete),
            None => None,
        },
    };
    let line = match memchr::memchr(b'\n', data) {
        Some(i) => &data[..i],
        None => data,
    };
    let code = line.split(|&c| c == b' ').nth(1).and_then(|p| {
        let d = p.get(..3).unwrap_or(p);
        if !d.is_empty() && d.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(d).ok()?.parse::<u16>().ok()
        } else {
            None
        }
    });
    match code {
        Some(c) => Ok((c, head_end)),
        None => Err(ParseError::invalid("malformed HTTP status line")),
    }
}

/// (status code, head length) of a complete response head; None while the head is incomplete or when
/// the data is not a response (see [`try_parse_status`], which also gives the status of a head whose
/// blank line has not arrived yet, as the Python does).
pub fn parse_status(data: &[u8]) -> Option<(u16, usize)> {
    match try_parse_status(data) {
        Ok((c, Some(len))) => Some((c, len)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(d: &[u8]) -> (String, String, Option<String>, usize) {
        let r = parse_request(d).unwrap();
        (r.method, r.uri, r.host, r.head_len)
    }

    fn t(m: &str, u: &str, h: Option<&str>, n: usize) -> (String, String, Option<String>, usize) {
        (m.into(), u.into(), h.map(str::to_string), n)
    }

    // test_protocols.py::test_http_connect_and_status
    #[test]
    fn connect_and_status() {
        let r = parse_request(b"CONNECT mdmenrollment.apple.com:443 HTTP/1.1\r\nHost: mdmenrollment.apple.com:443\r\n\r\n\x16\x03").unwrap();
        assert_eq!(r.method, "CONNECT");
        assert_eq!(
            r.connect_target(),
            Some(("mdmenrollment.apple.com".into(), Some(443)))
        );
        assert_eq!(
            parse_status(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            Some((407, 46))
        );
        let g = parse_request(b"GET http://ocsp.apple.com/ocsp HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(g.host.as_deref(), Some("ocsp.apple.com"));
        assert_eq!(g.connect_target(), None);
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: captive.apple.com\r\n").is_none());
        assert_eq!(
            try_parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            split_authority("[2001:db8::1]:8443", None),
            ("2001:db8::1".into(), Some(8443))
        );
    }

    // test_protocols.py::test_split_authority_refuses_non_ascii_digits
    #[test]
    fn split_authority_refuses_non_ascii_digits() {
        for (a, host) in [
            ("host.example:44\u{b3}", "host.example"),
            ("host.example:\u{663}", "host.example"),
            ("[::1]:\u{b2}", "::1"),
        ] {
            assert_eq!(split_authority(a, None), (host.to_string(), None));
        }
    }

    /// Expected values from the Python reference.
    #[test]
    fn python_vectors() {
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: Captive.Apple.COM.\r\n\r\n"),
            t("GET", "/", Some("captive.apple.com"), 44)
        );
        assert_eq!(
            req(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n"),
            t("CONNECT", "[2001:db8::1]:443", None, 38)
        );
        assert_eq!(
            req(b"GET http://u:p@h.example:8080/x?y HTTP/1.0\n\n"),
            t(
                "GET",
                "http://u:p@h.example:8080/x?y",
                Some("h.example"),
                44
            )
        );
        assert_eq!(
            try_parse_request(b"GETX\r\n\r\n"),
            Err(ParseError::invalid("malformed HTTP request line"))
        );
        assert_eq!(req(b"get  /\r\n\r\n"), t("get", "", None, 10));
        assert_eq!(
            req(b"GET /x HTTP/1.1\r\nhost\r\n\r\n"),
            t("GET", "/x", Some(""), 25)
        );
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nX: y\r\n HoSt :  \x1c\xa0exa.com:99999 \r\n\r\n"),
            t("POST", "/", Some("exa.com"), 52)
        );
        assert_eq!(
            req(b"GET ftp://h/ HTTP/1.1\r\n\r\n"),
            t("GET", "ftp://h/", Some("h"), 25)
        );
        assert_eq!(
            req(b"GET foo://h HTTP/1.1\r\n\r\n"),
            t("GET", "foo://h", Some("h"), 24)
        );
        assert_eq!(try_parse_status(b"HTTP/1.1 200 OK\r\n"), Ok((200, None)));
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(
            try_parse_status(b"HTTP/1.1 200"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            try_parse_status(b"HTTP/1.0 2x0 OK\r\n\r\n"),
            Err(ParseError::invalid("malformed HTTP status line"))
        );
        assert_eq!(
            parse_status(b"HTTP/1.1 101 Switching\n\nabc"),
            Some((101, 24))
        );
        assert_eq!(
            try_parse_status(b"HTTPS"),
            Err(ParseError::invalid("not an HTTP response"))
        );
        for (a, want) in [
            ("h:0443", ("h", Some(443))),
            ("h:65536", ("h", Some(7))),
            ("[::1]", ("::1", Some(7))),
            ("[::1]x", ("::1", Some(7))),
            ("a:b:c", ("a:b:c", Some(7))),
            ("Host.:", ("host", Some(7))),
            (" H:1 ", ("h", Some(1))),
            (":80", ("", Some(80))),
            ("h:", ("h", Some(7))),
        ] {
            assert_eq!(
                split_authority(a, Some(7)),
                (want.0.to_string(), want.1),
                "{a}"
            );
        }
        assert_eq!(
            content_length(b"POST /\r\nContent-Length:  12\r\n"),
            Some(12)
        );
        assert_eq!(content_length(b"x\ncontent-length: 1x"), None);
        assert_eq!(content_length(b"x\nContent-Length: 123456789012"), None);
        assert_eq!(url_target("/path"), None);
        assert_eq!(url_target("a/b://c"), None);
        assert_eq!(
            url_target("HTTPS://[::1]/"),
            Some(("::1".into(), Some(443)))
        );
        assert!(looks_like_request(b"OPTIONS * HTTP/1.1"));
        assert!(!looks_like_request(b"GET"));
    }

    #[test]
    fn head_limit() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(
            try_parse_request(&big),
            Err(ParseError::invalid("HTTP request head longer than 16 KiB"))
        );
        big.truncate(MAX_HEAD - 1);
        assert_eq!(try_parse_request(&big), Err(ParseError::Incomplete));
        // the blank line must end within the first 16 KiB
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            try_parse_request(&big),
            Err(ParseError::invalid("HTTP request head longer than 16 KiB"))
        );
    }

    fn esc(x: &str) -> String {
        x.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    }

    fn tup(t: Option<(String, Option<u16>)>) -> String {
        match t {
            None => "None".into(),
            Some((h, p)) => format!("{h}\x1f{}", p.map_or("None".into(), |p| p.to_string())),
        }
    }

    /// Differential check against the Python on mutated requests / responses (vectors written by a
    /// hand-run script, `PCAPAUDIT_VECTORS=/path`); skipped when absent.
    #[test]
    fn python_differential() {
        let Ok(path) = std::env::var("PCAPAUDIT_VECTORS") else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (mut same, mut total) = (0, 0);
        for line in text.lines().filter(|l| l.starts_with("http\t")) {
            let f: Vec<&str> = line.split('\t').collect();
            let d = hex::decode(f[1]).unwrap();
            let s: String = d.iter().map(|&c| c as char).collect();
            let req = match try_parse_request(&d) {
                Ok(r) => format!(
                    "{}\x1f{}\x1f{}\x1f{}\x1f{}",
                    r.method,
                    r.uri,
                    r.host.clone().unwrap_or_else(|| "None".into()),
                    r.head_len,
                    tup(r.connect_target())
                ),
                Err(ParseError::Incomplete) => "None".into(),
                Err(e) => format!("ERR|{e}"),
            };
            let st = match try_parse_status(&d) {
                Ok((c, l)) => format!("{c}\x1f{}", l.map_or(-1, |l| l as i64)),
                Err(ParseError::Incomplete) => "None".into(),
                Err(e) => format!("ERR|{e}"),
            };
            let got = [
                esc(&req),
                esc(&st),
                esc(&tup(Some(split_authority(&s, Some(7))))),
                esc(&tup(url_target(&s))),
                content_length(&d).map_or("None".into(), |n| n.to_string()),
                (looks_like_request(&d) as u8).to_string(),
            ];
            total += 1;
            if got.iter().map(String::as_str).eq(f[2..].iter().copied()) {
                same += 1;
            } else {
                eprintln!("DIFF {}\n  py: {:?}\n  rs: {:?}", f[1], &f[2..], got);
            }
        }
        eprintln!("http differential: {same}/{total} identical");
        assert_eq!(same, total);
    }
}
