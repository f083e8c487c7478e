//! One module per protocol. Every parser is a pure function (or a small incremental state fed from
//! offset 0) over byte slices; errors are [`crate::ParseError`]. None of them panics on any input
//! (each has a fuzz target in `fuzz/`).

pub mod app;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod quic;
pub mod tls;
pub mod x509;
