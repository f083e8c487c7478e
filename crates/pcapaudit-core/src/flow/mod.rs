//! The flow table: decoded packets -> bidirectional flows with Zeek-style state and history, expiry,
//! ICMP tie-back, interface-copy dedup, first-bytes reassembly, per-flow protocol state and the
//! time-aware DNS naming map. Mirrors `pcapaudit/engine.py`, `deep.py`, `reassembly.py`, `dedup.py`
//! and `enrich.py`.

pub mod record;

pub use record::{DnsAnswer, DnsTransaction, FlowRecord, TlsAlert, Weird};
