//! ICMP/ICMPv6 errors: which types quote a datagram, which block, and the quoted 5-tuple.
//! Mirrors `pcapaudit/decode/icmp.py`.

use crate::{ParseError, ParseResult};

/// The 5-tuple of the packet an ICMP error quotes (as the original sender sent it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub ipver: u8,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
}

/// Name of an error type the auditor ties back to flows (ICMP4_ERRORS / ICMP6_ERRORS).
fn error_name(ipver: u8, icmp_type: u8) -> Option<&'static str> {
    if ipver == 4 {
        match icmp_type {
            3 => Some("unreachable"),
            11 => Some("time_exceeded"),
            12 => Some("parameter_problem"),
            5 => Some("redirect"),
            _ => None,
        }
    } else {
        match icmp_type {
            1 => Some("unreachable"),
            2 => Some("packet_too_big"),
            3 => Some("time_exceeded"),
            4 => Some("parameter_problem"),
            _ => None,
        }
    }
}

/// Destination-unreachable code names (UNREACH4 / UNREACH6).
fn unreach_name(ipver: u8, code: u8) -> Option<&'static str> {
    if ipver == 4 {
        match code {
            0 => Some("net"),
            1 => Some("host"),
            2 => Some("protocol"),
            3 => Some("port"),
            4 => Some("fragmentation needed"),
            9 => Some("net prohibited"),
            10 => Some("host prohibited"),
            13 => Some("administratively prohibited"),
            _ => None,
        }
    } else {
        match code {
            0 => Some("no route"),
            1 => Some("administratively prohibited"),
            3 => Some("address"),
            4 => Some("port"),
            5 => Some("policy"),
            6 => Some("reject route"),
            _ => None,
        }
    }
}

/// True for ICMP types that quote a datagram.
pub fn is_error(ipver: u8, icmp_type: u8) -> bool {
    error_name(ipver, icmp_type).is_some()
}

/// Destination unreachable (v4 3, v6 1). Like the Python, any version other than 4 is taken as 6.
pub fn is_unreachable(ipver: u8, icmp_type: u8) -> bool {
    icmp_type == if ipver == 4 { 3 } else { 1 }
}

/// An unreachable that means the destination is blocked: every code but IPv4's "fragmentation
/// needed" (code 4, path MTU discovery: a size, not a block).
pub fn blocks(ipver: u8, icmp_type: u8, code: u8) -> bool {
    is_unreachable(ipver, icmp_type) && !(ipver == 4 && code == 4)
}

/// "port unreachable", "administratively prohibited", ... as Python's `describe`.
pub fn describe(ipver: u8, icmp_type: u8, code: u8) -> String {
    if is_unreachable(ipver, icmp_type) {
        return match unreach_name(ipver, code) {
            Some(name) if name.contains("prohibited") => name.to_string(),
            Some(name) => format!("{name} unreachable"),
            None => format!("code {code} unreachable"),
        };
    }
    match error_name(ipver, icmp_type) {
        Some(name) => format!("{name} (code {code})"),
        None => format!("type {icmp_type} (code {code})"),
    }
}

fn be16(q: &[u8], o: usize) -> u16 {
    match q.get(o..o + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

fn addr(q: &[u8], a: usize, b: usize) -> u128 {
    q.get(a..b).map_or(0, |s| {
        s.iter().fold(0u128, |acc, &x| acc << 8 | u128::from(x))
    })
}

/// Parse the quoted IP header + 8 bytes. Errors (`Invalid`, with the Python's messages) when too
/// short or not IP.
pub fn parse_quoted(q: &[u8]) -> ParseResult<Quoted> {
    let Some(&first) = q.first() else {
        return Err(ParseError::invalid("empty quoted datagram"));
    };
    let ver = first >> 4;
    let (proto, src, dst, l4) = match ver {
        4 => {
            let ihl = usize::from(first & 0x0F) * 4;
            if ihl < 20 || q.len() < ihl + 4 {
                return Err(ParseError::invalid("quoted IPv4 header truncated"));
            }
            (
                q.get(9).copied().unwrap_or(0),
                addr(q, 12, 16),
                addr(q, 16, 20),
                q.get(ihl..).unwrap_or(&[]),
            )
        }
        6 => {
            if q.len() < 44 {
                return Err(ParseError::invalid("quoted IPv6 header truncated"));
            }
            (
                q.get(6).copied().unwrap_or(0),
                addr(q, 8, 24),
                addr(q, 24, 40),
                q.get(40..).unwrap_or(&[]),
            )
        }
        v => {
            return Err(ParseError::invalid(format!(
                "quoted datagram has IP version {v}"
            )))
        }
    };
    let (mut sport, mut dport) = (0, 0);
    if matches!(proto, 6 | 17 | 132) && l4.len() >= 4 {
        sport = be16(l4, 0);
        dport = be16(l4, 2);
    }
    Ok(Quoted {
        ipver: ver,
        proto,
        src,
        dst,
        sport,
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn error_types() {
        for t in [3, 11, 12, 5] {
            assert!(is_error(4, t));
        }
        for t in [1, 2, 3, 4] {
            assert!(is_error(6, t));
        }
        assert!(!is_error(4, 0) && !is_error(4, 8) && !is_error(6, 128) && !is_error(6, 135));
        assert!(
            is_unreachable(4, 3)
                && is_unreachable(6, 1)
                && !is_unreachable(4, 1)
                && !is_unreachable(6, 3)
        );
        assert!(
            blocks(4, 3, 3)
                && blocks(4, 3, 13)
                && !blocks(4, 3, 4)
                && blocks(6, 1, 4)
                && !blocks(6, 2, 0)
        );
        assert!(!blocks(4, 11, 0));
    }

    // expected strings produced by pcapaudit.decode.icmp.describe
    #[test]
    fn describe_matches_python() {
        let cases: &[(u8, u8, u8, &str)] = &[
            (4, 3, 3, "port unreachable"),
            (4, 3, 13, "administratively prohibited"),
            (4, 3, 10, "host prohibited"),
            (4, 3, 4, "fragmentation needed unreachable"),
            (4, 3, 7, "code 7 unreachable"),
            (6, 1, 1, "administratively prohibited"),
            (6, 1, 4, "port unreachable"),
            (6, 1, 0, "no route unreachable"),
            (6, 1, 2, "code 2 unreachable"),
            (4, 11, 0, "time_exceeded (code 0)"),
            (4, 5, 1, "redirect (code 1)"),
            (6, 2, 0, "packet_too_big (code 0)"),
            (4, 8, 0, "type 8 (code 0)"),
            (6, 128, 0, "type 128 (code 0)"),
        ];
        for &(v, t, c, want) in cases {
            assert_eq!(describe(v, t, c), want, "{v} {t} {c}");
        }
    }

    #[test]
    fn quoted_udp_v4() {
        // bytes(IP(src="192.168.50.10", dst="17.57.146.20") / UDP(sport=4000, dport=5228))[:28]
        let q = h("4500001c000100004011e4d0c0a8320a113992140fa0146c000845d2");
        let p = parse_quoted(&q).unwrap();
        assert_eq!(
            p,
            Quoted {
                ipver: 4,
                proto: 17,
                src: 0xc0a8320a,
                dst: 0x11399214,
                sport: 4000,
                dport: 5228
            }
        );
        // IHL + 4 is enough for the ports
        assert_eq!(parse_quoted(&q[..24]).unwrap().dport, 5228);
        assert_eq!(
            parse_quoted(&q[..23]),
            Err(ParseError::invalid("quoted IPv4 header truncated"))
        );
    }

    #[test]
    fn quoted_v6_and_errors() {
        let mut q = h("6000000000081140");
        q.extend(h("20010db8000000000000000000000001"));
        q.extend(h("20010db8000000000000000000000002"));
        q.extend(h("0035d431"));
        let p = parse_quoted(&q).unwrap();
        assert_eq!((p.ipver, p.proto, p.sport, p.dport), (6, 17, 53, 54321));
        assert_eq!(p.src, 0x20010db8_000000000000000000000001);
        assert_eq!(
            parse_quoted(&q[..43]),
            Err(ParseError::invalid("quoted IPv6 header truncated"))
        );
        assert_eq!(
            parse_quoted(&[]),
            Err(ParseError::invalid("empty quoted datagram"))
        );
        assert_eq!(
            parse_quoted(&[0x55; 30]),
            Err(ParseError::invalid("quoted datagram has IP version 5"))
        );
        assert_eq!(
            parse_quoted(&[0x44; 30]),
            Err(ParseError::invalid("quoted IPv4 header truncated"))
        );
        // ICMP quoted: no ports
        let mut icmp = q.clone();
        icmp[6] = 58;
        assert_eq!(parse_quoted(&icmp).unwrap().sport, 0);
    }
}
