//! ICMP/ICMPv6 errors: which types quote a datagram, which block, and the quoted 5-tuple.
//! Mirrors `pcapaudit/decode/icmp.py`.

use crate::ParseResult;

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

/// True for ICMP types that quote a datagram.
pub fn is_error(_ipver: u8, _icmp_type: u8) -> bool {
    false
}

/// Destination unreachable (v4 3, v6 1).
pub fn is_unreachable(ipver: u8, icmp_type: u8) -> bool {
    (ipver == 4 && icmp_type == 3) || (ipver == 6 && icmp_type == 1)
}

/// An unreachable that means the destination is blocked (not path MTU discovery).
pub fn blocks(_ipver: u8, _icmp_type: u8, _code: u8) -> bool {
    false
}

/// "port unreachable", "administratively prohibited", ... as Python's `describe`.
pub fn describe(_ipver: u8, icmp_type: u8, code: u8) -> String {
    format!("type {icmp_type} code {code}")
}

/// Parse the quoted IP header + 8 bytes.
pub fn parse_quoted(_q: &[u8]) -> ParseResult<Quoted> {
    Err(crate::ParseError::Incomplete)
}
