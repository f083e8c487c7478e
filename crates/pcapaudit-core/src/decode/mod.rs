//! Packet decoding: link layers (Ethernet, 802.1Q/QinQ, SLL/SLL2, PKTAP, raw, loopback, 802.11, ...),
//! tunnels (GRE, VXLAN, Geneve, Teredo, GTP-U, IP-in-IP, ...), IPv4/IPv6 with extension headers and
//! fragment reassembly -> the fields of the innermost IP packet.
//!
//! Mirrors `pcapaudit/decode/packet.py` (the reference) and `decode/vector.py` (its fast path).
//!
//! Beyond the Python: 802.1ah PBB I-TAGs (0x88e7) and VN-Tags (0x8926) are decapsulated, and Teredo is
//! also recognised by content on any UDP port (see `tunnel::teredo_offset`). Where the Python has no
//! bound the Rust sets one: IP layers nest at most [`HARD_DEPTH`] deep (`tunnel_too_deep`; the Python
//! only checks MAX_DEPTH where GRE and UDP tunnels enter and dies of RecursionError on long IP-in-IP
//! chains), MPLS pseudowire chains are walked iteratively, and one datagram holds at most
//! `frag::MAX_HELD_BYTES` (256 KiB) of fragments (`fragment_overflow`). Link metadata ([`LinkMeta`]) is read
//! from the outermost link header only (PKTAP, SLL, SLL2).
//!
//! Tests: `tests.rs` runs `testdata/vectors.tsv` (frames and the Python's results, made by
//! `testdata/make_vectors.py`); `corpus_differential` (ignored) compares whole captures dumped by
//! `testdata/corpus_dump.py`.

use std::borrow::Cow;

mod frag;
mod pktap;
mod tunnel;

pub use pktap::{cstr, link_meta, PKTAP_MIN};

/// vlan value for two tags: `QINQ | outer << 12 | inner`
pub const QINQ: i32 = 1 << 24;

/// Nesting of tunnels the `_ip` entry checks (as the Python's MAX_DEPTH).
pub const MAX_DEPTH: u32 = 4;
/// Hard nesting limit on every IP layer (the Python only checks MAX_DEPTH where GRE and UDP tunnels
/// enter, so IP-in-IP / 6in4 chains are only bounded by its recursion limit).
pub const HARD_DEPTH: u32 = 64;

/// IPv6 extension headers skipped (fragment header apart)
const V6_EXT: [u8; 6] = [0, 43, 60, 135, 139, 140];

/// Tunnel names, in the order of [`Decoder::tunnels`]'s counters.
pub const TUNNELS: [&str; 8] = [
    "ipip", "6in4", "gre", "teredo", "vxlan", "geneve", "gtp", "capwap",
];

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

impl Packet<'_> {
    /// The same packet owning its payload.
    pub fn into_owned(self) -> Packet<'static> {
        Packet {
            payload: Cow::Owned(self.payload.into_owned()),
            ..self
        }
    }
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

/// Why decoding stopped short of a packet (the Python's exceptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    NotIp,
    Fragment,
    Err(&'static str, String),
}

type R<T> = Result<T, Stop>;

#[inline]
fn fail<T>(name: &'static str, detail: impl Into<String>) -> R<T> {
    Err(Stop::Err(name, detail.into()))
}

#[inline]
pub(crate) fn be16(d: &[u8], o: usize) -> Option<u16> {
    let b: [u8; 2] = d.get(o..o.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

#[inline]
pub(crate) fn be32(d: &[u8], o: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(o..o.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[inline]
pub(crate) fn le32(d: &[u8], o: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(o..o.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

#[inline]
fn be128(d: &[u8], o: usize) -> u128 {
    match d.get(o..o + 16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
        Some(b) => u128::from_be_bytes(b),
        None => 0,
    }
}

/// Python's `d[off:]`: empty past the end.
#[inline]
pub(crate) fn tail(d: &[u8], off: usize) -> &[u8] {
    d.get(off..).unwrap_or(&[])
}

/// Python's `d[a:b]`, clamped.
#[inline]
fn sub(d: &[u8], a: usize, b: usize) -> &[u8] {
    let b = b.min(d.len());
    d.get(a..b).unwrap_or(&[])
}

#[inline]
fn byte(d: &[u8], o: usize) -> u8 {
    d.get(o).copied().unwrap_or(0)
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

/// Decoder state (fragment reassembly, tunnel counters).
#[derive(Debug, Default)]
pub struct Decoder {
    frags: frag::Reassembler,
    tunnel_counts: [u64; TUNNELS.len()],
    /// frames that carried no IP packet
    pub not_ip: u64,
    /// fragments held plus datagrams reassembled (as DecodeResult.fragments)
    pub fragments: u64,
    /// frames that were malformed (Decoded::Error)
    pub errors: u64,
}

/// The Ethernet part of a frame: IP bytes and vlan value.
type Link<'a> = (&'a [u8], i32);

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder keeping at most `max_datagrams` incomplete datagrams, each for `frag_timeout` seconds.
    pub fn with_limits(max_datagrams: usize, frag_timeout: f64) -> Decoder {
        Decoder {
            frags: frag::Reassembler::new(max_datagrams, frag_timeout),
            ..Decoder::default()
        }
    }

    /// Decode one frame of link type `linktype` captured at `ts`.
    pub fn decode<'a>(&mut self, data: &'a [u8], linktype: u32, ts: f64) -> Decoded<'a> {
        let r = match link(data, linktype) {
            Ok((ip, vlan)) => self.ip(ip, vlan, ts, 0, None),
            Err(e) => Err(e),
        };
        match r {
            Ok(mut p) => {
                if let Some(t) = p.tunnel {
                    if let Some(i) = TUNNELS.iter().position(|n| *n == t) {
                        self.tunnel_counts[i] += 1;
                    }
                }
                if p.fragments > 1 {
                    self.fragments += 1;
                }
                if matches!(linktype, 113 | 276 | 258 | 149) {
                    p.meta = link_meta(data, linktype);
                }
                Decoded::Packet(p)
            }
            Err(Stop::NotIp) => {
                self.not_ip += 1;
                Decoded::NotIp
            }
            Err(Stop::Fragment) => {
                self.fragments += 1;
                Decoded::Fragment
            }
            Err(Stop::Err(n, d)) => {
                self.errors += 1;
                Decoded::Error(n, d)
            }
        }
    }

    /// Packets decapsulated per tunnel kind so far (kinds seen at least once).
    pub fn tunnels(&self) -> Vec<(&'static str, u64)> {
        TUNNELS
            .iter()
            .zip(self.tunnel_counts)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (*t, n))
            .collect()
    }

    /// Incomplete datagrams dropped (too old, or the table full).
    pub fn expired_fragments(&self) -> u64 {
        self.frags.expired
    }

    /// Incomplete datagrams held.
    pub fn held_datagrams(&self) -> usize {
        self.frags.len()
    }

    // -- IP --------------------------------------------------------------------------------------
    fn ip<'b>(
        &mut self,
        d: &'b [u8],
        vlan: i32,
        ts: f64,
        depth: u32,
        tunnel: Option<&'static str>,
    ) -> R<Packet<'b>> {
        if depth > MAX_DEPTH {
            return fail("tunnel_too_deep", format!("{depth} nested encapsulations"));
        }
        let Some(&b0) = d.first() else {
            return fail("truncated_ip_header", "no IP header");
        };
        match b0 >> 4 {
            4 => self.ipv4(d, vlan, ts, depth, tunnel),
            6 => self.ipv6(d, vlan, ts, depth, tunnel),
            v => fail("bad_ip_version", format!("version {v}")),
        }
    }

    fn ipv4<'b>(
        &mut self,
        d: &'b [u8],
        vlan: i32,
        ts: f64,
        depth: u32,
        tunnel: Option<&'static str>,
    ) -> R<Packet<'b>> {
        if depth > HARD_DEPTH {
            return fail("tunnel_too_deep", format!("{depth} nested encapsulations"));
        }
        if d.len() < 20 {
            return fail(
                "truncated_ip_header",
                format!("{} bytes of IPv4 header", d.len()),
            );
        }
        let ihl = usize::from(byte(d, 0) & 0x0F) * 4;
        let mut total = usize::from(be16(d, 2).unwrap_or(0));
        if ihl < 20 {
            return fail("bad_ip_header_length", format!("IHL {ihl}"));
        }
        if total == 0 {
            total = d.len(); // TCP segmentation offload: length unknown, use what was captured
        }
        if total < ihl {
            return fail(
                "bad_ip_total_length",
                format!("total length {total} < header {ihl}"),
            );
        }
        if d.len() < ihl {
            return fail("truncated_ip_header", "IPv4 options cut off");
        }
        let ident = u32::from(be16(d, 4).unwrap_or(0));
        let fo = be16(d, 6).unwrap_or(0);
        let (more, offset) = (fo & 0x2000 != 0, usize::from(fo & 0x1FFF) * 8);
        let proto = byte(d, 9);
        let src = u128::from(be32(d, 12).unwrap_or(0));
        let dst = u128::from(be32(d, 16).unwrap_or(0));
        let body = sub(d, ihl, total);
        if more || offset != 0 {
            let (whole, n) = self.frags.add(
                (4, src, dst, proto, ident),
                offset,
                more,
                body,
                (total - ihl) as i64,
                ts,
            )?;
            let total = ihl + whole.len();
            let p = self.l4(
                4,
                proto,
                src,
                dst,
                &whole,
                (total - ihl) as i64,
                total as i64,
                vlan,
                ts,
                depth,
                tunnel,
                n,
                ident,
            )?;
            return Ok(p.into_owned());
        }
        self.l4(
            4,
            proto,
            src,
            dst,
            body,
            (total - ihl) as i64,
            total as i64,
            vlan,
            ts,
            depth,
            tunnel,
            1,
            ident,
        )
    }

    fn ipv6<'b>(
        &mut self,
        d: &'b [u8],
        vlan: i32,
        ts: f64,
        depth: u32,
        tunnel: Option<&'static str>,
    ) -> R<Packet<'b>> {
        if depth > HARD_DEPTH {
            return fail("tunnel_too_deep", format!("{depth} nested encapsulations"));
        }
        if d.len() < 40 {
            return fail(
                "truncated_ip_header",
                format!("{} bytes of IPv6 header", d.len()),
            );
        }
        let mut plen = usize::from(be16(d, 4).unwrap_or(0));
        let mut nh = byte(d, 6);
        let src = be128(d, 8);
        let dst = be128(d, 24);
        if plen == 0 {
            plen = d.len() - 40; // jumbogram or TSO: use what was captured
        }
        let flow = be32(d, 0).unwrap_or(0) & 0xFFFFF;
        let mut body = sub(d, 40, 40 + plen);
        let mut wire = plen as i64;
        for _ in 0..8 {
            if V6_EXT.contains(&nh) {
                if body.len() < 8 {
                    return fail("truncated_ip_header", "IPv6 extension header");
                }
                let hlen = (usize::from(byte(body, 1)) + 1) * 8;
                nh = byte(body, 0);
                body = tail(body, hlen);
                wire -= hlen as i64;
            } else if nh == 44 {
                if body.len() < 8 {
                    return fail("truncated_ip_header", "IPv6 fragment header");
                }
                let nxt = byte(body, 0);
                let fo = be16(body, 2).unwrap_or(0);
                let ident = be32(body, 4).unwrap_or(0);
                body = tail(body, 8);
                wire -= 8;
                nh = nxt;
                let (more, offset) = (fo & 1 != 0, usize::from(fo & 0xFFF8));
                if more || offset != 0 {
                    let (whole, n) =
                        self.frags
                            .add((6, src, dst, nxt, ident), offset, more, body, wire, ts)?;
                    let wire = whole.len() as i64;
                    let p = self.l4(
                        6,
                        nh,
                        src,
                        dst,
                        &whole,
                        wire,
                        plen as i64 + 40,
                        vlan,
                        ts,
                        depth,
                        tunnel,
                        n,
                        flow,
                    )?;
                    return Ok(p.into_owned());
                }
                break;
            } else {
                break;
            }
        }
        if wire < 0 {
            return fail(
                "bad_ip_total_length",
                "IPv6 extension headers exceed payload length",
            );
        }
        self.l4(
            6,
            nh,
            src,
            dst,
            body,
            wire,
            plen as i64 + 40,
            vlan,
            ts,
            depth,
            tunnel,
            1,
            flow,
        )
    }

    // -- transport -------------------------------------------------------------------------------
    #[allow(clippy::too_many_arguments)]
    fn l4<'b>(
        &mut self,
        ver: u8,
        proto: u8,
        src: u128,
        dst: u128,
        body: &'b [u8],
        wire: i64,
        iplen: i64,
        vlan: i32,
        ts: f64,
        depth: u32,
        tunnel: Option<&'static str>,
        nfrag: u32,
        ipid: u32,
    ) -> R<Packet<'b>> {
        let word = match proto {
            17 | 1 | 58 if body.len() >= 8 => be32(body, 4).unwrap_or(0),
            6 if body.len() >= 12 => be32(body, 8).unwrap_or(0),
            _ => 0,
        };
        let ident = u64::from(ipid) << 32 | u64::from(word);
        let mut p = Packet {
            ipver: ver,
            proto,
            src,
            dst,
            sport: 0,
            dport: 0,
            flags: 0,
            seq: 0,
            payload: Cow::Borrowed(&[]),
            plen: 0,
            iplen: clamp_u32(iplen),
            vlan,
            icmp_type: -1,
            icmp_code: -1,
            tunnel,
            fragments: nfrag,
            weird: None,
            ident,
            meta: LinkMeta::default(),
        };
        match proto {
            6 => {
                if body.len() < 20 {
                    return fail("truncated_tcp_header", format!("{} bytes", body.len()));
                }
                p.sport = be16(body, 0).unwrap_or(0);
                p.dport = be16(body, 2).unwrap_or(0);
                p.seq = be32(body, 4).unwrap_or(0);
                p.flags = byte(body, 13);
                let doff = usize::from(byte(body, 12) >> 4) * 4;
                if doff < 20 || doff as i64 > wire {
                    // the ports and flags are still there: count the packet, ignore its payload
                    p.weird = Some(("bad_tcp_header_length", format!("data offset {doff}")));
                    return Ok(p);
                }
                if body.len() < doff {
                    return fail("truncated_tcp_header", "TCP options cut off");
                }
                p.payload = Cow::Borrowed(tail(body, doff));
                p.plen = clamp_u32(wire - doff as i64);
                Ok(p)
            }
            17 => {
                if body.len() < 8 || wire < 8 {
                    return fail("truncated_udp_header", format!("{} bytes", body.len()));
                }
                p.sport = be16(body, 0).unwrap_or(0);
                p.dport = be16(body, 2).unwrap_or(0);
                let payload = tail(body, 8);
                if let Some(inner) =
                    self.udp_tunnel(p.sport, p.dport, payload, wire - 8, vlan, ts, depth)?
                {
                    return Ok(inner);
                }
                p.payload = Cow::Borrowed(payload);
                p.plen = clamp_u32(wire - 8);
                Ok(p)
            }
            1 | 58 => {
                if body.len() < 8 {
                    return fail("truncated_icmp_header", format!("{} bytes", body.len()));
                }
                p.icmp_type = i16::from(byte(body, 0));
                p.icmp_code = i16::from(byte(body, 1));
                p.payload = Cow::Borrowed(tail(body, 8));
                p.plen = clamp_u32(wire - 8);
                Ok(p)
            }
            4 => self.ipv4(body, vlan, ts, depth + 1, Some("ipip")),
            41 => self.ipv6(body, vlan, ts, depth + 1, Some("6in4")),
            47 => self.gre(body, vlan, ts, depth),
            _ => {
                p.payload = Cow::Borrowed(body);
                p.plen = clamp_u32(wire);
                Ok(p)
            }
        }
    }
}

// -- link layer ----------------------------------------------------------------------------------

fn trunc<T>(what: &str) -> R<T> {
    fail("truncated_link_header", what)
}

fn link(d: &[u8], lt: u32) -> R<Link<'_>> {
    match lt {
        1 => ethernet(d),
        113 => {
            // Linux cooked v1
            match be16(d, 14) {
                Some(et) if d.len() >= 16 => ethertype(d, et, 16, -1),
                _ => trunc("SLL"),
            }
        }
        276 => match be16(d, 0) {
            // Linux cooked v2
            Some(et) if d.len() >= 20 => ethertype(d, et, 20, -1),
            _ => trunc("SLL2"),
        },
        258 | 149 => pktap_link(d, lt),
        0 | 108 => {
            // BSD null / OpenBSD loop: go by the IP version nibble (the family's byte order and
            // AF_INET6 value depend on the capturing OS)
            match d.get(4) {
                None => trunc("loopback"),
                Some(b) if matches!(b >> 4, 4 | 6) => Ok((tail(d, 4), -1)),
                Some(_) => Err(Stop::NotIp),
            }
        }
        101 | 12 | 14 | 228 | 229 => Ok((d, -1)),
        9 | 50 | 204 => {
            // PPP, PPP in HDLC framing, PPP with direction
            let mut off = usize::from(lt == 204);
            if d.get(off..off + 2) == Some(&[0xff, 0x03]) {
                off += 2;
            }
            let Some(&first) = d.get(off) else {
                return trunc("PPP");
            };
            let proto = if first & 1 != 0 {
                off += 1;
                u16::from(first)
            } else {
                let Some(p) = be16(d, off) else {
                    return trunc("PPP");
                };
                off += 2;
                p
            };
            if proto == 0x21 || proto == 0x57 {
                Ok((tail(d, off), -1))
            } else {
                Err(Stop::NotIp)
            }
        }
        _ => fail("unsupported_linktype", format!("link type {lt}")),
    }
}

fn pktap_link(d: &[u8], lt: u32) -> R<Link<'_>> {
    let hlen = le32(d, 0).unwrap_or(0) as usize;
    if lt == 149 && !(PKTAP_MIN <= hlen && hlen <= d.len()) {
        // DLT_USER2 is also anybody's private link type
        return fail(
            "unsupported_linktype",
            "link type 149 (USER2) without an Apple PKTAP header",
        );
    }
    if d.len() < PKTAP_MIN {
        return trunc("PKTAP");
    }
    let rectype = le32(d, 4).unwrap_or(0);
    let dlt = le32(d, 8).unwrap_or(0);
    if hlen < PKTAP_MIN || hlen > d.len() {
        return fail(
            "bad_pktap_header",
            format!("header length {hlen} (frame {} bytes)", d.len()),
        );
    }
    if rectype != 1 {
        return Err(Stop::NotIp); // PKT_REC_NONE: metadata without a packet
    }
    if dlt == 258 || dlt == 149 {
        return fail("bad_pktap_header", "PKTAP inside PKTAP");
    }
    link(tail(d, hlen), dlt)
}

fn ethernet(d: &[u8]) -> R<Link<'_>> {
    match be16(d, 12) {
        Some(et) if d.len() >= 14 => ethertype(d, et, 14, -1),
        _ => trunc("Ethernet"),
    }
}

/// The ethertype chain from `et` at `off`: VLAN tags, MPLS (and Ethernet pseudowires), PPPoE,
/// LLC/SNAP, 802.1ah I-TAGs, VN-Tags, up to an IP packet.
fn ethertype(d: &[u8], mut et: u16, mut off: usize, mut vlan: i32) -> R<Link<'_>> {
    // a pseudowire's inner frame keeps the outer frame's vlan when there was one (the Python decodes
    // it with a fresh _ethernet and keeps its vlan only when the outer had none)
    let mut frozen = false;
    'frame: loop {
        for _ in 0..8 {
            match et {
                0x8100 | 0x88A8 | 0x9100 => {
                    let (Some(tci), Some(next)) = (be16(d, off), be16(d, off + 2)) else {
                        return trunc("802.1Q tag");
                    };
                    let vid = i32::from(tci & 0x0FFF);
                    if !frozen {
                        if vlan < 0 {
                            vlan = vid;
                        } else if vlan < QINQ {
                            vlan = QINQ | (vlan << 12) | vid;
                        }
                    }
                    et = next;
                    off += 4;
                }
                0x8847 | 0x8848 => {
                    // MPLS: pop labels until bottom of stack
                    loop {
                        if d.len() < off + 4 {
                            return trunc("MPLS");
                        }
                        let bottom = byte(d, off + 2) & 1;
                        off += 4;
                        if bottom != 0 {
                            break;
                        }
                    }
                    let Some(&first) = d.get(off) else {
                        return trunc("MPLS");
                    };
                    match first >> 4 {
                        4 => et = 0x0800,
                        6 => et = 0x86DD,
                        _ => {
                            // pseudowire with control word, carrying Ethernet
                            if d.get(off..off + 2) == Some(&[0, 0]) {
                                off += 4;
                            }
                            if vlan >= 0 {
                                frozen = true;
                            }
                            match be16(d, off.saturating_add(12)) {
                                Some(e) => et = e,
                                None => return trunc("Ethernet"),
                            }
                            off += 14;
                            continue 'frame;
                        }
                    }
                }
                0x8864 => {
                    // PPPoE session
                    if d.len() < off + 8 {
                        return trunc("PPPoE");
                    }
                    let proto = be16(d, off + 6).unwrap_or(0);
                    off += 8;
                    et = match proto {
                        0x21 => 0x0800,
                        0x57 => 0x86DD,
                        _ => return Err(Stop::NotIp),
                    };
                }
                0x88E7 => {
                    // 802.1ah PBB: I-TAG (4 bytes), then the customer's Ethernet header
                    match be16(d, off + 16) {
                        Some(e) => et = e,
                        None => return trunc("802.1ah I-TAG"),
                    }
                    off += 18;
                }
                0x8926 => {
                    // VN-Tag: 4 bytes, then the ethertype
                    match be16(d, off + 4) {
                        Some(e) => et = e,
                        None => return trunc("VN-Tag"),
                    }
                    off += 6;
                }
                e if e < 0x600 => {
                    // 802.3 length field: LLC/SNAP
                    if d.get(off..off + 3) == Some(&[0xAA, 0xAA, 0x03]) && d.len() >= off + 8 {
                        et = be16(d, off + 6).unwrap_or(0);
                        off += 8;
                    } else {
                        return Err(Stop::NotIp);
                    }
                }
                _ => break 'frame,
            }
        }
        break;
    }
    if et == 0x0800 || et == 0x86DD {
        Ok((tail(d, off), vlan))
    } else {
        Err(Stop::NotIp)
    }
}

#[cfg(test)]
mod tests;
