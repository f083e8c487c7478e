//! The record walkers: pure functions over one chunk of the (uncompressed) capture that append the
//! packets they find to a batch and say how far they got. A record cut by the end of the chunk is left
//! for the next chunk; a corrupt one stops the walk with a message naming its offset.

use std::collections::HashMap;

use super::{PacketBatch, ProcessInfo};
use crate::{ParseError, ParseResult};

/// Larger captured lengths mean a corrupt file, not a jumbo frame.
pub const MAX_RECORD: u32 = 16 << 20;
pub(crate) const PCAPNG_SHB: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

#[inline(always)]
fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    })
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize, big: bool) -> Option<u16> {
    let w: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(w)
    } else {
        u16::from_le_bytes(w)
    })
}

fn u64_of(v: &[u8], big: bool) -> Option<u64> {
    let w: [u8; 8] = v.get(..8)?.try_into().ok()?;
    Some(if big {
        u64::from_be_bytes(w)
    } else {
        u64::from_le_bytes(w)
    })
}

/// A classic pcap file: how its records are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcapHeader {
    pub big_endian: bool,
    /// seconds per unit of the sub-second field (1e-6 or 1e-9)
    pub tick: f64,
    /// record header length: 16, or 24 for Kuznetzov's "modified" pcap
    pub rec_len: usize,
    /// link type, FCS length flags masked off
    pub linktype: u32,
}

/// (big endian, tick, record header length) of a pcap magic.
pub fn pcap_magic(m: &[u8]) -> Option<(bool, f64, usize)> {
    Some(match m.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, 1e-6, 16),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, 1e-6, 16),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, 1e-9, 16),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, 1e-9, 16),
        [0x34, 0xcd, 0xb2, 0xa1] => (false, 1e-6, 24),
        [0xa1, 0xb2, 0xcd, 0x34] => (true, 1e-6, 24),
        _ => return None,
    })
}

/// The 24-byte pcap file header.
pub fn pcap_header(b: &[u8]) -> ParseResult<PcapHeader> {
    let (big, tick, rec_len) = match b.get(..4) {
        None => return Err(ParseError::Incomplete),
        Some(m) => pcap_magic(m).ok_or_else(|| ParseError::invalid("not a pcap magic"))?,
    };
    let linktype = u32_at(b, 20, big).ok_or(ParseError::Incomplete)?;
    Ok(PcapHeader {
        big_endian: big,
        tick,
        rec_len,
        linktype: linktype & 0x0FFF_FFFF,
    })
}

/// Where a pcap walk stopped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PcapWalk {
    /// bytes of whole records walked
    pub consumed: usize,
    /// a record whose captured length is impossible: (its offset in the chunk, the length)
    pub bad: Option<(usize, u32)>,
    pub clamped: u64,
    /// the index in `out` (from 0) of the first record whose captured length exceeded its wire length
    pub first_clamped: Option<usize>,
}

impl PcapWalk {
    /// Counts a record (the `index`-th of the batch) whose captured length exceeded its wire length.
    fn clamp(&mut self, clamped: bool, index: usize) {
        if clamped {
            self.clamped += 1;
            self.first_clamped.get_or_insert(index);
        }
    }
}

/// Appends the whole records of `buf` (a chunk starting on a record) to `out`.
pub(crate) fn walk_pcap(buf: &[u8], h: &PcapHeader, out: &mut PacketBatch) -> PcapWalk {
    if h.big_endian {
        walk_pcap_endian::<true>(buf, h, out)
    } else {
        walk_pcap_endian::<false>(buf, h, out)
    }
}

fn walk_pcap_endian<const BIG: bool>(
    buf: &[u8],
    h: &PcapHeader,
    out: &mut PacketBatch,
) -> PcapWalk {
    let rd = |w: [u8; 4]| {
        if BIG {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let rec_len = h.rec_len;
    let mut walk = PcapWalk::default();
    let mut off = 0usize;
    // a record header (16 bytes, 24 in a modified pcap) is read only when it is whole
    while let Some(hdr) = buf.get(off..off + rec_len).and_then(|h| h.get(..16)) {
        let Ok(hdr) = <&[u8; 16]>::try_from(hdr) else {
            break;
        };
        let sec = rd([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let frac = rd([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let mut incl = rd([hdr[8], hdr[9], hdr[10], hdr[11]]);
        let orig = rd([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let clamp = incl > orig;
        if clamp {
            // impossible (more captured than sent): trust the wire length
            incl = orig;
        }
        if incl > MAX_RECORD {
            walk.clamp(clamp, out.off.len());
            walk.bad = Some((off, incl));
            break;
        }
        let data = off + rec_len;
        let end = data + incl as usize;
        if end > buf.len() {
            break;
        }
        walk.clamp(clamp, out.off.len());
        out.off.push(data);
        out.caplen.push(incl);
        out.wirelen.push(orig);
        out.ts.push(f64::from(sec) + f64::from(frac) * h.tick);
        out.linktype.push(h.linktype);
        off = end;
    }
    walk.consumed = off;
    walk
}

/// One interface of the current pcapng section.
#[derive(Debug, Clone)]
pub(crate) struct Iface {
    linktype: u32,
    tick: f64,
    tsoff: f64,
    /// index of its name in the reader's `ifnames`
    name: i32,
}

/// What a pcapng walk carries from one chunk to the next.
#[derive(Debug, Default)]
pub(crate) struct NgState {
    pub big: bool,
    ifaces: Vec<Iface>,
    /// Apple's Darwin process info blocks of the section: (pid, name)
    dpibs: Vec<(u32, String)>,
    /// a DPIB was seen: packet blocks' process options are read from then on
    pub darwin: bool,
    /// a section had two or more interfaces: each packet's interface is kept from then on
    pub multi: bool,
    /// timestamp of the last packet (a simple packet block has none of its own)
    last_ts: f64,
    /// (process block, effective process block) of the section -> index in the reader's `processes`
    proc_cache: HashMap<(u32, Option<u32>), i32>,
}

/// What a pcapng walk adds to the reader besides packets.
pub(crate) struct NgSink<'a> {
    pub ifnames: &'a mut Vec<String>,
    pub ifname_index: &'a mut HashMap<String, i32>,
    pub processes: &'a mut Vec<ProcessInfo>,
    pub process_index: &'a mut HashMap<ProcessInfo, i32>,
    pub dropped: &'a mut Option<u64>,
    pub secrets: &'a mut Vec<Vec<u8>>,
}

/// Smallest total length of the pcapng blocks read here: type, length, fixed fields, trailing length.
fn min_block(btype: u32) -> u32 {
    match btype {
        1 => 20,
        2 => 32,
        3 => 16,
        5 => 24,
        6 => 32,
        0x0A => 20,
        _ => 12,
    }
}

/// pcapng options (code, value) between `start` and `end`; values are cut at `end`.
fn options(
    buf: &[u8],
    start: usize,
    end: usize,
    big: bool,
) -> impl Iterator<Item = (u16, &[u8])> + '_ {
    let end = end.min(buf.len());
    let mut off = start;
    std::iter::from_fn(move || {
        if off.checked_add(4)? > end {
            return None;
        }
        let code = u16_at(buf, off, big)?;
        let len = usize::from(u16_at(buf, off + 2, big)?);
        if code == 0 {
            return None;
        }
        let vstart = off + 4;
        let val = buf.get(vstart..(vstart + len).min(end)).unwrap_or(&[]);
        off = vstart + ((len + 3) & !3);
        Some((code, val))
    })
}

/// Text of a name option: up to the first NUL, UTF-8 with undecodable bytes as `\xNN` (Python's
/// "backslashreplace").
pub(crate) fn option_text(v: &[u8]) -> String {
    let v = v.split(|&b| b == 0).next().unwrap_or(&[]);
    let mut s = String::with_capacity(v.len());
    let mut rest = v;
    loop {
        match std::str::from_utf8(rest) {
            Ok(t) => {
                s.push_str(t);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                let (ok, bad) = rest.split_at(good);
                s.push_str(std::str::from_utf8(ok).unwrap_or(""));
                let n = e.error_len().unwrap_or(bad.len()).max(1).min(bad.len());
                for b in bad.iter().take(n) {
                    s.push_str(&format!("\\x{b:02x}"));
                }
                rest = bad.get(n..).unwrap_or(&[]);
                if rest.is_empty() {
                    break;
                }
            }
        }
    }
    s
}

/// Where a pcapng walk stopped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NgWalk {
    pub consumed: usize,
    /// a corrupt block: the message (with its offset, `base` added)
    pub err: Option<String>,
}

/// Appends the packets of the whole blocks of `buf` (a chunk starting on a block, at byte `base` of the
/// capture) to `out`.
pub(crate) fn walk_pcapng(
    buf: &[u8],
    base: u64,
    st: &mut NgState,
    sink: &mut NgSink<'_>,
    out: &mut PacketBatch,
) -> NgWalk {
    let mut off = 0usize;
    let n = buf.len();
    let mut err = None;
    let mut proc_on = st.darwin;
    let mut if_on = st.multi;
    let at = |off: usize| base + off as u64;
    while off + 12 <= n {
        if buf.get(off..off + 4) == Some(&PCAPNG_SHB[..]) {
            match buf.get(off + 8..off + 12) {
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => st.big = false,
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => st.big = true,
                _ => {
                    err = Some(format!(
                        "bad pcapng byte-order magic at byte offset {}",
                        at(off)
                    ));
                    break;
                }
            }
            st.ifaces.clear();
            st.dpibs.clear();
            st.proc_cache.clear();
        }
        let big = st.big;
        let Some(blen) = u32_at(buf, off + 4, big) else {
            break;
        };
        if blen < 12 || blen % 4 != 0 || blen > MAX_RECORD + 64 {
            err = Some(format!(
                "corrupt pcapng block at byte offset {} (length {blen})",
                at(off)
            ));
            break;
        }
        let bl = blen as usize;
        if off + bl > n {
            break;
        }
        let Some(btype) = u32_at(buf, off, big) else {
            break;
        };
        if blen < min_block(btype) {
            // its fixed fields would be read from the next block
            err = Some(format!(
                "corrupt pcapng block at byte offset {} (length {blen} is too short for block type {btype})",
                at(off)
            ));
            break;
        }
        let f = |k: usize| u32_at(buf, off + k, big).unwrap_or(0);
        match btype {
            6 | 2 => {
                // enhanced packet block; obsolete packet block (interface and drops as two u16)
                let iface = if btype == 6 {
                    f(8) as usize
                } else {
                    usize::from(u16_at(buf, off + 8, big).unwrap_or(0))
                };
                let (hi, lo, cap, wire) = (f(12), f(16), f(20), f(24));
                let Some(ifc) = st.ifaces.get(iface).filter(|_| cap <= blen - 32) else {
                    err = Some(format!(
                        "corrupt pcapng packet block at byte offset {}",
                        at(off)
                    ));
                    break;
                };
                let units = (u64::from(hi) << 32) | u64::from(lo);
                let ts = units as f64 * ifc.tick + ifc.tsoff;
                out.off.push(off + 28);
                out.caplen.push(cap);
                out.wirelen.push(wire.max(cap));
                out.ts.push(ts);
                out.linktype.push(ifc.linktype);
                st.last_ts = ts;
                if if_on {
                    out.iface.push(ifc.name);
                }
                if proc_on {
                    let p = if btype == 6 {
                        let start = off + 28 + ((cap as usize + 3) & !3);
                        darwin_process(
                            buf,
                            start,
                            off + bl - 4,
                            big,
                            &st.dpibs,
                            &mut st.proc_cache,
                            sink,
                        )
                    } else {
                        -1 // Apple's options are for enhanced packet blocks
                    };
                    out.proc.push(p);
                }
            }
            0x8000_0001 => {
                // Apple's Darwin process info block: pid, then a name option
                let pid = if blen >= 16 { f(8) } else { 0 };
                let mut name = String::new();
                for (code, val) in options(buf, off + 12, off + bl - 4, big) {
                    if code == 2 {
                        name = option_text(val);
                    }
                }
                st.dpibs.push((pid, name));
                if !proc_on {
                    out.proc.clear();
                    out.proc.resize(out.off.len(), -1);
                    proc_on = true;
                    st.darwin = true;
                }
            }
            3 => {
                // simple packet block
                let Some(ifc) = st.ifaces.first() else {
                    err = Some(format!(
                        "pcapng simple packet block before any interface at byte offset {}",
                        at(off)
                    ));
                    break;
                };
                let wire = f(8);
                out.off.push(off + 12);
                out.caplen.push(wire.min(blen - 16));
                out.wirelen.push(wire);
                out.ts.push(st.last_ts);
                out.linktype.push(ifc.linktype);
                if if_on {
                    out.iface.push(ifc.name);
                }
                if proc_on {
                    out.proc.push(-1); // no options, so no process
                }
            }
            1 => {
                // interface description block
                let linktype = u32::from(u16_at(buf, off + 8, big).unwrap_or(0));
                let (mut tick, mut tsoff) = (1e-6f64, 0.0f64);
                let mut name = String::new();
                for (code, val) in options(buf, off + 16, off + bl - 4, big) {
                    match (code, val.first()) {
                        (9, Some(&r)) => {
                            tick = if r & 0x80 != 0 {
                                2f64.powf(-f64::from(r & 0x7f))
                            } else {
                                10f64.powf(-f64::from(r))
                            };
                        }
                        (14, _) if val.len() >= 8 => {
                            if let Some(v) = u64_of(val, big) {
                                tsoff = v as i64 as f64;
                            }
                        }
                        (2, Some(_)) => name = option_text(val).chars().take(64).collect(),
                        _ => {}
                    }
                }
                if name.is_empty() {
                    name = format!("if{}", st.ifaces.len());
                }
                let gi = match sink.ifname_index.get(&name) {
                    Some(&i) => i,
                    None => {
                        let i = sink.ifnames.len() as i32;
                        sink.ifname_index.insert(name.clone(), i);
                        sink.ifnames.push(name);
                        i
                    }
                };
                st.ifaces.push(Iface {
                    linktype,
                    tick,
                    tsoff,
                    name: gi,
                });
                if st.ifaces.len() == 2 && !if_on {
                    // rows read before it: interface unknown
                    out.iface.clear();
                    out.iface.resize(out.off.len(), -1);
                    if_on = true;
                    st.multi = true;
                }
            }
            5 => {
                // interface statistics block
                for (code, val) in options(buf, off + 20, off + bl - 4, big) {
                    if code == 5 {
                        if let Some(d) = u64_of(val, big) {
                            *sink.dropped = Some(sink.dropped.unwrap_or(0).saturating_add(d));
                        }
                    }
                }
            }
            0x0A => {
                // decryption secrets block
                let (stype, slen) = (f(8), f(12));
                if stype == 0x544C_534B {
                    // "TLSK": NSS key log
                    let len = slen.min(blen - 20) as usize;
                    if let Some(s) = buf.get(off + 16..off + 16 + len) {
                        sink.secrets.push(s.to_vec());
                    }
                }
            }
            _ => {}
        }
        off += bl;
    }
    NgWalk { consumed: off, err }
}

/// The process of an enhanced packet block written by Apple's tcpdump: its options 0x8001 and 0x8003
/// give the Darwin process info block (by position in the section) of the process and of the effective
/// process. Returns the index of the process in the reader's `processes` (added when new), or -1.
fn darwin_process(
    buf: &[u8],
    start: usize,
    end: usize,
    big: bool,
    dpibs: &[(u32, String)],
    cache: &mut HashMap<(u32, Option<u32>), i32>,
    sink: &mut NgSink<'_>,
) -> i32 {
    let (mut proc, mut eproc) = (None, None);
    for (code, val) in options(buf, start, end, big) {
        if val.len() == 4 {
            let v = u32_at(val, 0, big);
            match code {
                0x8001 => proc = v,
                0x8003 => eproc = v,
                _ => {}
            }
        }
    }
    let Some(p) = proc else { return -1 };
    let Some((pid, name)) = dpibs.get(p as usize) else {
        return -1;
    };
    if let Some(&i) = cache.get(&(p, eproc)) {
        return i;
    }
    let other = eproc
        .and_then(|e| dpibs.get(e as usize))
        .filter(|(epid, ename)| epid != pid || ename != name)
        .map(|(epid, ename)| {
            if ename.is_empty() {
                format!("pid {epid}")
            } else {
                ename.clone()
            }
        });
    let key = ProcessInfo {
        command: if name.is_empty() {
            format!("pid {pid}")
        } else {
            name.clone()
        },
        pid: Some(*pid),
        ecommand: other,
    };
    let i = match sink.process_index.get(&key) {
        Some(&i) => i,
        None => {
            let i = sink.processes.len() as i32;
            sink.process_index.insert(key.clone(), i);
            sink.processes.push(key);
            i
        }
    };
    cache.insert((p, eproc), i);
    i
}
