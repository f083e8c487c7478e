//! DNS messages (UDP and TCP framing is the caller's). Mirrors `pcapaudit/decode/dns.py`.

use crate::ParseResult;

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
}

/// Parse a DNS message.
pub fn parse(_msg: &[u8]) -> ParseResult<DnsMessage> {
    Err(crate::ParseError::Incomplete)
}

/// "A", "AAAA", "TYPE65534", ...
pub fn qtype_name(t: u16) -> String {
    format!("TYPE{t}")
}

/// "NOERROR", "NXDOMAIN", ...
pub fn rcode_name(r: u8) -> String {
    format!("RCODE{r}")
}
