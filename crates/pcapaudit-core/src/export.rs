//! Text forms of the flows table that must equal what the Python report writes: Python's `json.dumps`
//! escaping (for the certificate chain column) and the Community ID v1 flow hash
//! (https://github.com/corelight/community-id-spec) that Zeek, Suricata and Arkime also write.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

use crate::flow::FlowRecord;

/// Python's `json.dumps` of a string (ensure_ascii: non-ASCII as \uXXXX, surrogate pairs above U+FFFF).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

/// `json.dumps([{"subject", "issuer", "sha256", "self_signed", "not_after"} ...])` of a chain.
pub fn chain_json(r: &FlowRecord) -> Option<String> {
    if r.certs.is_empty() {
        return None;
    }
    let mut out = String::from("[");
    for (i, c) in r.certs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"subject\": ");
        json_str(&mut out, &c.subject);
        out.push_str(", \"issuer\": ");
        json_str(&mut out, &c.issuer);
        out.push_str(", \"sha256\": ");
        json_str(&mut out, &c.sha256);
        out.push_str(", \"self_signed\": ");
        out.push_str(if c.self_signed { "true" } else { "false" });
        out.push_str(", \"not_after\": ");
        json_opt(&mut out, c.not_after.as_deref());
        out.push('}');
    }
    out.push(']');
    Some(out)
}

fn parse_ip(s: &str) -> Option<Vec<u8>> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => Some(a.octets().to_vec()),
        std::net::IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Community ID v1 (seed 0) of a TCP or UDP flow; None for other transports.
pub fn community_id(
    transport: &str,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
) -> Option<String> {
    let proto: u8 = match transport {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    let (mut a, mut b) = (parse_ip(src)?, parse_ip(dst)?);
    if a.len() != b.len() {
        return None;
    }
    let (mut sp, mut dp) = (sport, dport);
    if b < a || (a == b && dp < sp) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update([0u8, 0u8]);
    h.update(&a);
    h.update(&b);
    h.update([proto, 0]);
    h.update(sp.to_be_bytes());
    h.update(dp.to_be_bytes());
    Some(format!("1:{}", base64(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_matches_the_spec_vectors() {
        // corelight/community-id-spec baseline_deflt.json
        assert_eq!(
            community_id("tcp", "128.232.110.120", "66.35.250.204", 34855, 80).as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
        assert_eq!(
            community_id("udp", "192.168.1.52", "8.8.8.8", 54585, 53).as_deref(),
            Some("1:d/FP5EW3wiY1vCndhwleRRKHowQ=")
        );
        assert_eq!(
            community_id("tcp", "66.35.250.204", "128.232.110.120", 80, 34855).as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
        assert_eq!(community_id("icmp", "1.2.3.4", "5.6.7.8", 0, 0), None);
    }

    #[test]
    fn json_escapes_as_python() {
        let mut s = String::new();
        json_str(&mut s, "CN=Ünïcode \"q\" \\ 😀\n");
        assert_eq!(
            s,
            "\"CN=\\u00dcn\\u00efcode \\\"q\\\" \\\\ \\ud83d\\ude00\\n\""
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
