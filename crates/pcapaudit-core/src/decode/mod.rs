//! Packet decoding: link layers (Ethernet, 802.1Q/QinQ, SLL/SLL2, PKTAP, raw, loopback, 802.11, ...),
//! tunnels (GRE, VXLAN, Geneve, Teredo, GTP-U, IP-in-IP, ...), IPv4/IPv6 with extension headers and
//! fragment reassembly -> the fields of the innermost IP packet.
//!
//! Mirrors `pcapaudit/decode/packet.py` (the reference) and `decode/vector.py` (its fast path).

use std::borrow::Cow;

/// vlan value for two tags: `QINQ | outer << 12 | inner`
pub const QINQ: i32 = 1 << 24;

/// Per-packet link metadata some captures carry (PKTAP, SLL, SLL2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkMeta {
    /// interface name from the link header (PKTAP, SLL2 interface index as text)
    pub iface: Option<String>,
    /// PKTAP process: (command, pid, effective command)
    pub process: Option<(String, Option<u32>, Option<String>)>,
    /// Linux SLL/SLL2 packet type (0 to us, 4 outgoing, ...)
    pub pkttype: Option<u16>,
}

/// Header fields of one (innermost) IP packet. Addresses: IPv4 as the 32-bit value, IPv6 as 128 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub ipver: u8,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    /// captured L4 payload (ICMP: the quoted datagram); owned after reassembly or decapsulation copies
    pub payload: Cow<'a, [u8]>,
    /// payload length on the wire
    pub plen: u32,
    /// IP-layer bytes on the wire
    pub iplen: u32,
    /// -1, the 802.1Q id, or `QINQ | outer << 12 | inner`
    pub vlan: i32,
    /// -1 unless ICMP/ICMPv6
    pub icmp_type: i16,
    pub icmp_code: i16,
    pub tunnel: Option<&'static str>,
    /// >1 when reassembled from fragments
    pub fragments: u32,
    /// accounted to its flow, but something was wrong with it: (weird name, detail)
    pub weird: Option<(&'static str, String)>,
    /// IPv4 ID (IPv6: flow label) << 32 | the transport header's second word (interface-copy dedup)
    pub ident: u64,
    pub meta: LinkMeta,
}

/// What one frame decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Packet(Packet<'a>),
    /// not IP (ARP, LLDP, ...): counted, not a flow
    NotIp,
    /// an IP fragment held until its datagram is complete
    Fragment,
    /// malformed: (weird name, detail)
    Error(&'static str, String),
}

/// Decoder state (fragment reassembly, tunnel counters).
#[derive(Debug, Default)]
pub struct Decoder {}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {}
    }

    /// Decode one frame of link type `linktype` captured at `ts`.
    pub fn decode<'a>(&mut self, _data: &'a [u8], _linktype: u32, _ts: f64) -> Decoded<'a> {
        Decoded::NotIp
    }

    /// Packets decapsulated per tunnel kind so far.
    pub fn tunnels(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
