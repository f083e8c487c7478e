//! X.509 certificates of a TLS <= 1.2 server chain -> the fields findings use (x509-parser).
//! Mirrors `cert_info` in `pcapaudit/decode/tls.py`.

use crate::ParseResult;

/// One certificate, as `pcapaudit.model.CertInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514 string, as Python's cryptography `Name.rfc4514_string()` writes it
    pub subject: String,
    pub issuer: String,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub issuer_org: Option<String>,
    /// hex SHA-256 of the DER
    pub sha256: String,
    pub self_signed: bool,
    /// ISO 8601 UTC ("2024-01-31T00:00:00+00:00"), as Python's `datetime.isoformat()`
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub san: Vec<String>,
}

/// Parse one DER certificate.
pub fn cert_info(_der: &[u8]) -> ParseResult<CertInfo> {
    Err(crate::ParseError::Incomplete)
}
