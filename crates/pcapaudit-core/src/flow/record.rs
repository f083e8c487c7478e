//! What the flow table emits: one row type per output table, as `pcapaudit/model.py` has them. The
//! binding turns vectors of these into Arrow columns; nothing here is per-row in Python.

use std::sync::Arc;

use crate::proto::x509::CertInfo;

/// A TLS alert seen in clear. `sender`: 0 client, 1 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAlert {
    pub sender: u8,
    pub level: u8,
    pub description: u8,
    pub after_server_flight: bool,
}

/// An ICMP error tied to its flow: (type, code, reporter address as text).
pub type IcmpNote = (u8, u8, String);

/// One bidirectional flow, oriented client (`src`) -> server (`dst`): `pcapaudit.model.FlowRecord`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRecord {
    pub uid: String,
    pub ts: f64,
    pub ts_last: f64,
    /// "tcp", "udp", "icmp", "other"
    pub transport: &'static str,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub ip_version: u8,
    pub pkts_c2s: u64,
    pub pkts_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub payload_c2s: u64,
    pub payload_s2c: u64,
    pub conn_state: Option<String>,
    pub state: String,
    pub history: String,
    pub syn_count: u32,
    /// TCP: "client_only" / "server_only" when the capture shows one side and the other side's packets
    /// must have existed (its ACKs say so); None otherwise
    pub one_direction: Option<&'static str>,
    /// the first packet's tags (a reply on other tags is a `vlan_differs_by_direction` weird)
    pub vlan: Option<u32>,
    pub inner_vlan: Option<u32>,
    // names
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub tls_server_version: Option<String>,
    pub tls_ech: bool,
    pub tls_handshake: Option<String>,
    pub certs: Vec<Arc<CertInfo>>,
    pub alerts: Vec<TlsAlert>,
    /// (content type, length) of the client's records after the server's flight
    pub client_records_after_server: Vec<(u8, u16)>,
    /// The server's TLS stack as its ServerHello shows it (`tls::server_shape`)
    pub tls_server_shape: Option<String>,
    /// TLS 1.3: the lengths of the server's encrypted flight records (`tls::server_flight`)
    pub tls_server_flight: Vec<u16>,
    pub quic_version: Option<String>,
    pub http_method: Option<String>,
    pub http_host: Option<String>,
    pub http_uri: Option<String>,
    pub http_status: Option<u16>,
    pub connect_host: Option<String>,
    pub connect_port: Option<u16>,
    pub app_protocol: Option<String>,
    pub ldap_simple_bind: bool,
    pub ldap_starttls: bool,
    pub smtp_starttls: Option<bool>,
    pub icmp: Vec<IcmpNote>,
    pub dns_name: Option<String>,
    pub dns_names: Vec<String>,
    pub process: Option<String>,
    pub pid: Option<u32>,
    pub eprocess: Option<String>,
    pub interface: Option<String>,
}

/// One resource record of an answer section: (name, type, value, ttl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub name: String,
    pub rtype: String,
    pub value: String,
    pub ttl: u32,
}

/// A DNS query and its response (either may be missing): `pcapaudit.model.DnsTransaction`.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsTransaction {
    pub uid: String,
    pub ts: f64,
    pub client_ip: String,
    pub server_ip: String,
    pub transport: &'static str,
    pub trans_id: u16,
    pub query: Option<String>,
    pub qtype: Option<String>,
    pub rcode: Option<String>,
    pub answers: Vec<DnsAnswer>,
    pub rtt: Option<f64>,
    pub process: Option<String>,
    /// "QUERY", "NOTIFY", "UPDATE", ... (the DNS opcode), "NBNS" / "NBNS_REGISTER" / "NBNS_RELEASE" (NetBIOS
    /// name service)
    pub opcode: &'static str,
    /// the response said TC (truncated: the answer is to be asked for again over TCP)
    pub truncated: bool,
}

/// Malformed or unusual input, kept as a row: `pcapaudit.model.Weird`.
#[derive(Debug, Clone, PartialEq)]
pub struct Weird {
    pub ts: Option<f64>,
    pub name: String,
    pub uid: Option<String>,
    pub detail: String,
    pub count: u64,
}
