//! Arbitrary bytes -> decoded packets -> an engine, flushed: the body of `fuzz/fuzz_targets/engine.rs`
//! (kept here so the unit tests run it too).

use std::borrow::Cow;

use super::{Engine, EngineConfig, PacketCtx};
use crate::decode::{LinkMeta, Packet, QINQ};

/// Feed packets built from `data` into an engine with a small table, then flush. Never panics.
///
/// Each packet takes a 16-byte header (fields chosen from small sets, so flows repeat, with TCP flags,
/// sequence numbers, ICMP errors, VLAN tags and DNS ports) and up to 63 bytes of payload.
pub fn fuzz_engine(data: &[u8]) {
    let cfg = EngineConfig {
        max_flows: Some(64),
        idle_udp: 5.0,
        idle_tcp: 20.0,
        unanswered: Some(3.0),
        ..EngineConfig::default()
    };
    let mut eng = Engine::new(cfg);
    let mut ts = 1_000.0;
    let mut n = 0u64;
    let mut rest = data;
    let ports = [53u16, 443, 80, 5353, 123, 40000, 40001, 3128, 389, 25];
    while rest.len() >= 16 {
        let (h, tail) = rest.split_at(16);
        let plen = usize::from(h[15] & 63).min(tail.len());
        let (payload, tail) = tail.split_at(plen);
        rest = tail;
        let proto = [6u8, 17, 1, 58, 47][usize::from(h[0] % 5)];
        let ipver = if proto == 58 || h[0] & 0x80 != 0 {
            6
        } else {
            4
        };
        let src = u128::from(h[1] % 4) + 0x0A00_0000;
        let dst = u128::from(h[2] % 4) + 0x0A00_0000;
        let vlan = match h[3] % 8 {
            0 => 10,
            1 => QINQ | (20 << 12) | 30,
            _ => -1,
        };
        let (icmp_type, icmp_code) = if proto == 1 || proto == 58 {
            (i16::from(h[4] % 14), i16::from(h[5] % 16))
        } else {
            (-1, -1)
        };
        ts += f64::from(h[6]) * 0.05 - 1.0; // time may go backwards a little
        let pkt = Packet {
            ipver,
            proto,
            src,
            dst,
            sport: ports[usize::from(h[7] % 10)],
            dport: ports[usize::from(h[8] % 10)],
            flags: h[9],
            seq: u32::from_be_bytes([h[10], h[11], h[12], h[13]]),
            payload: Cow::Borrowed(payload),
            plen: payload.len() as u32 + u32::from(h[14] & 3),
            iplen: payload.len() as u32 + 40,
            vlan,
            icmp_type,
            icmp_code,
            tunnel: None,
            fragments: 1,
            weird: None,
            ident: u64::from(h[14]),
            meta: LinkMeta::default(),
        };
        eng.process_packet(&pkt, ts, n, &PacketCtx::default());
        n += 1;
        if h[15] & 64 != 0 {
            let _ = eng.take_flows();
        }
    }
    eng.flush();
    let _ = (
        eng.take_flows(),
        eng.take_dns(),
        eng.take_weirds(),
        eng.take_orphan_icmp(),
        eng.stats(),
    );
}
