//! pcapaudit's compiled core: everything done per packet and per flow.
//!
//! The modules follow the pipeline, as the Python package did:
//!
//! * [`capture`]: pcap, pcapng and compressed captures -> batches of packets (bytes + metadata);
//! * [`decode`]: link layers, tunnels, IPv4/IPv6, fragments -> the innermost IP packet's fields;
//! * [`flow`]: the flow table (Zeek-style state and history, expiry, ICMP tie-back, interface-copy
//!   dedup, first-bytes reassembly, per-flow protocol state, DNS naming) -> finished flow rows;
//! * [`proto`]: one module per protocol (TLS, X.509, QUIC, DNS, HTTP, LDAP/SMTP, ICMP), each a set of
//!   pure functions over byte slices returning [`error::ParseError`].
//!
//! No `unsafe` anywhere in this crate.
#![forbid(unsafe_code)]

pub mod capture;
pub mod decode;
pub mod error;
pub mod export;
pub mod flow;
pub mod proto;

pub use error::{ParseError, ParseResult};
