//! Tunnels: GRE (and ERSPAN type II), and the UDP ones (Teredo, VXLAN, Geneve, GTP-U, CAPWAP data).

use super::{be16, byte, ethernet, tail, Decoder, Packet, Stop, R};

/// The IPv6 next headers a Teredo payload found by content may carry: TCP, UDP, ICMPv6, no next header.
const TEREDO_NEXT: [u8; 4] = [6, 17, 58, 59];

impl Decoder {
    pub(super) fn gre<'b>(&mut self, d: &'b [u8], vlan: i32, ts: f64, depth: u32) -> R<Packet<'b>> {
        let (Some(flags), Some(mut ptype)) = (be16(d, 0), be16(d, 2)) else {
            return Err(Stop::Err("truncated_gre_header", String::new()));
        };
        let mut off = 4 + 4
            * (usize::from(flags & 0x8000 != 0)
                + usize::from(flags & 0x2000 != 0)
                + usize::from(flags & 0x1000 != 0));
        if ptype == 0x88BE {
            // ERSPAN type II
            off += 8;
            ptype = 0x6558;
        }
        let inner = tail(d, off);
        match ptype {
            0x0800 | 0x86DD => self.ip(inner, vlan, ts, depth + 1, Some("gre")),
            0x6558 => {
                let (ip, v) = ethernet(inner)?;
                self.ip(
                    ip,
                    if vlan >= 0 { vlan } else { v },
                    ts,
                    depth + 1,
                    Some("gre"),
                )
            }
            _ => Err(Stop::NotIp),
        }
    }

    /// Decapsulate well-known UDP tunnels; None when the payload does not look like one. `wire` is the
    /// UDP payload's length on the wire. Errors and non-IP contents give None (the outer datagram is
    /// kept); a fragment held inside the tunnel stops the packet, as in the Python.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn udp_tunnel<'b>(
        &mut self,
        sport: u16,
        dport: u16,
        p: &'b [u8],
        wire: i64,
        vlan: i32,
        ts: f64,
        depth: u32,
    ) -> R<Option<Packet<'b>>> {
        let r = self.udp_ports(sport, dport, p, vlan, ts, depth);
        let r = match r {
            Ok(None) | Err(Stop::NotIp) | Err(Stop::Err(..)) => match teredo_offset(p, wire) {
                // beyond the Python: Teredo by content, on any port
                Some(off) if sport != 3544 && dport != 3544 => self
                    .ipv6(tail(p, off), vlan, ts, depth + 1, Some("teredo"))
                    .map(Some),
                _ => return Ok(None),
            },
            r => r,
        };
        match r {
            Ok(x) => Ok(x),
            Err(Stop::Fragment) => Err(Stop::Fragment),
            Err(_) => Ok(None),
        }
    }

    fn udp_ports<'b>(
        &mut self,
        sport: u16,
        dport: u16,
        p: &'b [u8],
        vlan: i32,
        ts: f64,
        depth: u32,
    ) -> R<Option<Packet<'b>>> {
        let has = |port: u16| sport == port || dport == port;
        let keep = |v: i32| if vlan >= 0 { vlan } else { v };
        if has(3544) {
            // Teredo (RFC 4380): optional auth / origin indication, then IPv6
            let mut off = 0usize;
            if p.get(..2) == Some(&[0, 1]) && p.len() >= 4 {
                off = 4 + usize::from(byte(p, 2)) + usize::from(byte(p, 3)) + 8 + 1;
            }
            if p.get(off..off + 2) == Some(&[0, 0]) {
                off += 8;
            }
            if p.len() >= off + 40 && byte(p, off) >> 4 == 6 {
                return self
                    .ipv6(tail(p, off), vlan, ts, depth + 1, Some("teredo"))
                    .map(Some);
            }
        } else if has(4789) || has(8472) {
            // VXLAN
            if p.len() >= 22 && byte(p, 0) & 0x08 != 0 {
                let (ip, v) = ethernet(tail(p, 8))?;
                return self.ip(ip, keep(v), ts, depth + 1, Some("vxlan")).map(Some);
            }
        } else if has(6081) {
            // Geneve
            if p.len() >= 8 {
                let off = 8 + usize::from(byte(p, 0) & 0x3F) * 4;
                let ptype = be16(p, 2).unwrap_or(0);
                if ptype == 0x6558 {
                    let (ip, v) = ethernet(tail(p, off))?;
                    return self
                        .ip(ip, keep(v), ts, depth + 1, Some("geneve"))
                        .map(Some);
                }
                if ptype == 0x0800 || ptype == 0x86DD {
                    return self
                        .ip(tail(p, off), vlan, ts, depth + 1, Some("geneve"))
                        .map(Some);
                }
            }
        } else if has(2152) {
            // GTP-U G-PDU
            if p.len() >= 8 && byte(p, 0) >> 5 == 1 && byte(p, 1) == 0xFF {
                let mut off = 8usize;
                if byte(p, 0) & 0x07 != 0 {
                    off = 12;
                    let mut nxt = if p.len() >= 12 { byte(p, 11) } else { 0 };
                    while nxt != 0 && p.len() > off {
                        let elen = usize::from(byte(p, off)) * 4;
                        if elen == 0 || p.len() < off + elen {
                            return Err(Stop::Err("bad_gtp_extension", String::new()));
                        }
                        nxt = byte(p, off + elen - 1);
                        off += elen;
                    }
                }
                if p.len() > off && matches!(byte(p, off) >> 4, 4 | 6) {
                    return self
                        .ip(tail(p, off), vlan, ts, depth + 1, Some("gtp"))
                        .map(Some);
                }
            }
        } else if has(5247) {
            // CAPWAP data channel (RFC 5415)
            if p.len() >= 8 && byte(p, 0) == 0 {
                let hlen = usize::from(byte(p, 1) >> 3) * 4;
                let tbit = byte(p, 2) & 0x01 != 0;
                let frame = tail(p, hlen);
                if tbit && (byte(p, 2) >> 1) & 0x1F == 1 {
                    // native frame format, WBID 1 = IEEE 802.11
                    if let Some(ip) = ieee80211_to_ip(frame) {
                        return self.ip(ip, vlan, ts, depth + 1, Some("capwap")).map(Some);
                    }
                } else if !tbit && frame.len() >= 14 {
                    let (ip, v) = ethernet(frame)?;
                    return self
                        .ip(ip, keep(v), ts, depth + 1, Some("capwap"))
                        .map(Some);
                }
            }
        }
        Ok(None)
    }
}

/// Where the IPv6 packet of a Teredo payload starts, judged by content alone (any UDP port): an
/// optional authentication indication (0x0001, lengths, id, auth value, nonce, confirmation), an
/// optional origin indication (0x0000 + 6 bytes), then an IPv6 header whose payload length fills the
/// rest of the datagram exactly (`wire`: the UDP payload's length on the wire), with a TCP, UDP,
/// ICMPv6 or no-next-header next header, and a source or destination in the Teredo prefix 2001::/32.
pub fn teredo_offset(p: &[u8], wire: i64) -> Option<usize> {
    let mut off = 0usize;
    if p.get(..2) == Some(&[0, 1]) {
        off = 4 + usize::from(*p.get(2)?) + usize::from(*p.get(3)?) + 8 + 1;
    }
    if p.get(off..off + 2) == Some(&[0, 0]) {
        off += 8;
    }
    let h = p.get(off..off + 40)?;
    if byte(h, 0) >> 4 != 6 || !TEREDO_NEXT.contains(&byte(h, 6)) {
        return None;
    }
    let plen = i64::from(be16(h, 4)?);
    if plen + 40 + off as i64 != wire {
        return None;
    }
    let teredo = |a: usize| h.get(a..a + 4) == Some(&[0x20, 0x01, 0, 0]);
    if teredo(8) || teredo(24) {
        Some(off)
    } else {
        None
    }
}

/// The IP packet inside an 802.11 data frame with LLC/SNAP, or None.
pub fn ieee80211_to_ip(f: &[u8]) -> Option<&[u8]> {
    if f.len() < 24 {
        return None;
    }
    let (mut fc, mut fflags) = (byte(f, 0), byte(f, 1));
    if (fc >> 2) & 3 != 2 && (fflags >> 2) & 3 == 2 {
        // Cisco access points send the Frame Control field byte-swapped
        std::mem::swap(&mut fc, &mut fflags);
    }
    if (fc >> 2) & 3 != 2 {
        return None; // not a data frame
    }
    let mut hdr = 24;
    if fflags & 0x03 == 0x03 {
        hdr += 6; // to-DS and from-DS: 4 addresses
    }
    if fc & 0x80 != 0 {
        hdr += 2; // QoS data
    }
    if fflags & 0x80 != 0 {
        hdr += 4; // HT control (order bit)
    }
    let llc = f.get(hdr..hdr + 8)?;
    if llc.get(..3) == Some(&[0xAA, 0xAA, 0x03]) {
        let et = be16(llc, 6)?;
        if et == 0x0800 || et == 0x86DD {
            return Some(tail(f, hdr + 8));
        }
    }
    None
}
