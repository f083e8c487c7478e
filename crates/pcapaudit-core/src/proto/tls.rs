//! TLS records and handshake: ClientHello, ServerHello, Certificate, alerts, records split any way.
//! Mirrors `pcapaudit/decode/tls.py`.

use crate::ParseResult;

pub const CT_CCS: u8 = 20;
pub const CT_ALERT: u8 = 21;
pub const CT_HANDSHAKE: u8 = 22;
pub const CT_APPDATA: u8 = 23;

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
}

impl ServerHello {
    /// Negotiated version (supported_versions extension, else legacy_version).
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...).
pub fn is_grease(v: u16) -> bool {
    (v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF)
}

/// "TLSv1.2", "TLSv1.3", "SSLv3", ... (None for 0).
pub fn version_name(_v: u16) -> Option<String> {
    None
}

/// Parse a ClientHello handshake body (after the 4-byte handshake header).
pub fn parse_client_hello(_body: &[u8]) -> ParseResult<ClientHello> {
    Err(crate::ParseError::Incomplete)
}

/// Parse a ServerHello handshake body.
pub fn parse_server_hello(_body: &[u8]) -> ParseResult<ServerHello> {
    Err(crate::ParseError::Incomplete)
}

/// The DER certificates of a Certificate handshake body (TLS <= 1.2).
pub fn parse_certificate_list(_body: &[u8]) -> ParseResult<Vec<Vec<u8>>> {
    Err(crate::ParseError::Incomplete)
}

/// Incremental parser of one direction of a TLS connection, fed the whole stream so far each time.
#[derive(Debug, Clone, Default)]
pub struct TlsStream {
    pub is_client: bool,
    pub pos: usize,
    pub hs: Vec<u8>,
    pub encrypted: bool,
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    pub certs: Vec<Vec<u8>>,
    /// (level, description, record index)
    pub alerts: Vec<(u8, u8, usize)>,
    /// (content type, length)
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

    /// Nothing more worth parsing in this direction.
    pub fn done(&self) -> bool {
        self.error.is_some()
    }

    /// Parse every complete record in `data[self.pos..]` (`data` is the whole stream so far).
    pub fn feed(&mut self, _data: &[u8]) {}
}
