//! IP fragment reassembly (IPv4 and IPv6), as `SimpleDecoder._defrag` in `decode/packet.py`.
//!
//! Datagrams are kept in creation order; when a fragment arrives, the oldest ones are dropped (and
//! counted as expired) while they are older than the timeout or the table is full. A datagram is
//! complete when its last fragment has been seen and the parts, sorted by (offset, bytes), leave no hole.

use std::collections::{HashMap, VecDeque};

use super::Stop;

/// (IP version, source, destination, protocol / next header, identification)
pub(crate) type Key = (u8, u128, u128, u8, u32);

/// Bytes of fragments held for one datagram before it is dropped as `fragment_overflow` (the Python
/// keeps every part; a datagram needs at most ~128 KiB of non-duplicate parts).
pub(crate) const MAX_HELD_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct Datagram {
    ts: f64,
    seq: u64,
    parts: Vec<(usize, Vec<u8>)>,
    end: Option<usize>,
    held: usize,
}

#[derive(Debug)]
pub(crate) struct Reassembler {
    map: HashMap<Key, Datagram, ahash::RandomState>,
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
    max: usize,
    timeout: f64,
    pub(crate) expired: u64,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new(1024, 60.0)
    }
}

impl Reassembler {
    pub(crate) fn new(max: usize, timeout: f64) -> Self {
        Reassembler {
            map: HashMap::default(),
            order: VecDeque::new(),
            next_seq: 0,
            max: max.max(1),
            timeout,
            expired: 0,
        }
    }

    /// Datagrams held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The oldest live datagram's key and seq (stale order entries are dropped on the way).
    fn oldest(&mut self) -> Option<(Key, u64)> {
        while let Some(&(k, s)) = self.order.front() {
            if self.map.get(&k).is_some_and(|d| d.seq == s) {
                return Some((k, s));
            }
            self.order.pop_front();
        }
        None
    }

    fn remove(&mut self, key: &Key) {
        self.map.remove(key);
        if self.order.len() > 4 * self.max + 64 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|d| d.seq == *s));
        }
    }

    /// Store one fragment; the reassembled datagram (and its number of parts) when complete.
    pub(crate) fn add(
        &mut self,
        key: Key,
        offset: usize,
        more: bool,
        body: &[u8],
        wire: i64,
        ts: f64,
    ) -> Result<(Vec<u8>, u32), Stop> {
        if (body.len() as i64) < wire {
            return Err(Stop::Err(
                "truncated_fragment",
                "fragment cut by the capture length".into(),
            ));
        }
        while let Some((k, _)) = self.oldest() {
            let fresh = self.map.get(&k).is_some_and(|d| ts - d.ts <= self.timeout);
            if fresh && self.map.len() < self.max {
                break;
            }
            self.map.remove(&k);
            self.order.pop_front();
            self.expired += 1;
        }
        let seq = self.next_seq;
        let dg = self.map.entry(key).or_insert_with(|| {
            self.order.push_back((key, seq));
            self.next_seq += 1;
            Datagram {
                ts,
                seq,
                parts: Vec::new(),
                end: None,
                held: 0,
            }
        });
        dg.held = dg.held.saturating_add(body.len());
        if dg.held > MAX_HELD_BYTES {
            let held = dg.held;
            self.remove(&key);
            return Err(Stop::Err(
                "fragment_overflow",
                format!("{held} bytes of fragments held for one datagram"),
            ));
        }
        dg.parts.push((offset, body.to_vec()));
        if !more {
            dg.end = Some(offset + body.len());
        }
        let Some(end) = dg.end else {
            return Err(Stop::Fragment);
        };
        dg.parts.sort_unstable();
        let mut pos = 0usize;
        let mut out: Vec<u8> = Vec::new();
        for (off, data) in &dg.parts {
            if *off > pos {
                return Err(Stop::Fragment); // a hole remains
            }
            if off + data.len() > pos {
                out.extend_from_slice(data.get(pos - off..).unwrap_or(&[]));
                pos = off + data.len();
            }
        }
        if pos < end {
            return Err(Stop::Fragment);
        }
        let n = dg.parts.len() as u32;
        self.remove(&key);
        if out.len() > 65535 {
            return Err(Stop::Err(
                "fragment_overflow",
                format!("reassembled datagram of {} bytes", out.len()),
            ));
        }
        out.truncate(end);
        Ok((out, n))
    }
}
