//! Minimal TCP reassembly of the first bytes of one direction: `pcapaudit/reassembly.py` (`Stream`).
//!
//! Only the start of a stream matters (ClientHello, server flight, HTTP head, LDAP bind), so the buffer
//! is capped, and so are the out-of-order segments held behind a hole.

use std::collections::BTreeMap;

const MOD: i64 = 1 << 32;
const HALF: i64 = 1 << 31;
const REBASE_WINDOW: i64 = 64 * 1024;

/// Contiguous bytes of one direction from its first byte, up to `cap` bytes.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub base: Option<u32>,
    pub data: Vec<u8>,
    ooo: BTreeMap<i64, Vec<u8>>,
    pub cap: usize,
    ooo_bytes: usize,
    pub syn_seen: bool,
    alt_bases: Vec<u32>,
}

impl Stream {
    pub fn new(cap: usize) -> Stream {
        Stream {
            cap,
            ..Stream::default()
        }
    }

    /// The cap is reached: nothing more will be stored (`Stream.full`).
    pub fn full(&self) -> bool {
        self.data.len() >= self.cap
    }

    /// Segments wait behind a hole.
    pub fn missing_before_ooo(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// A SYN with sequence number `seq`: data starts at seq + 1 (`Stream.syn`).
    pub fn syn(&mut self, seq: u32) {
        let new_base = seq.wrapping_add(1);
        if !self.syn_seen {
            self.syn_seen = true;
            if self.base.is_none() || (self.data.is_empty() && self.ooo.is_empty()) {
                self.base = Some(new_base);
            } else {
                self.rebase(new_base);
            }
        } else if Some(new_base) != self.base
            && !self.alt_bases.contains(&new_base)
            && self.alt_bases.len() < 4
        {
            self.alt_bases.push(new_base);
        }
    }

    fn rel_to(base: u32, seq: u32) -> i64 {
        let r = i64::from(seq.wrapping_sub(base));
        if r >= HALF {
            r - MOD
        } else {
            r
        }
    }

    fn rel(&self, seq: u32) -> i64 {
        Self::rel_to(self.base.unwrap_or(seq), seq)
    }

    /// Store a segment; true when contiguous data grew (`Stream.add`).
    pub fn add(&mut self, seq: u32, payload: &[u8]) -> bool {
        if payload.is_empty() || self.full() {
            return false;
        }
        if self.base.is_none() {
            self.base = Some(seq);
        }
        let cap = self.cap as i64;
        let mut rel = self.rel(seq);
        if !self.alt_bases.is_empty() && self.data.is_empty() && !(0..cap).contains(&rel) {
            let mut hit = None;
            for (i, &alt) in self.alt_bases.iter().enumerate() {
                if (0..cap).contains(&i64::from(seq.wrapping_sub(alt))) {
                    hit = Some((i, alt));
                    break;
                }
            }
            if let Some((i, alt)) = hit {
                let old_base = self.base.unwrap_or(seq);
                self.alt_bases.remove(i);
                self.alt_bases.push(old_base);
                let pending: Vec<(u32, Vec<u8>)> = std::mem::take(&mut self.ooo)
                    .into_iter()
                    .map(|(k, v)| (old_base.wrapping_add(k as u32), v))
                    .collect();
                self.base = Some(alt);
                self.ooo_bytes = 0;
                for (abs, seg) in pending {
                    let r = self.rel(abs);
                    if (0..cap).contains(&r) {
                        self.ooo_bytes += seg.len();
                        if let Some(old) = self.ooo.insert(r, seg) {
                            self.ooo_bytes -= old.len();
                        }
                    }
                }
                rel = self.rel(seq);
            }
        }
        let mut payload = payload;
        if rel < 0 {
            if !self.syn_seen && -rel <= REBASE_WINDOW && rel + payload.len() as i64 >= 0 {
                self.rebase(seq);
                rel = 0;
            } else {
                if rel + payload.len() as i64 <= 0 {
                    return false; // old retransmission
                }
                payload = &payload[(-rel) as usize..];
                rel = 0;
            }
        }
        let have = self.data.len() as i64;
        if rel > have {
            if rel < cap && self.ooo_bytes < self.cap {
                let old_len = self.ooo.get(&rel).map(Vec::len);
                if old_len.is_none_or(|l| l < payload.len()) {
                    self.ooo.insert(rel, payload.to_vec());
                    self.ooo_bytes += payload.len() - old_len.unwrap_or(0);
                }
            }
            return false;
        }
        let mut grew = false;
        let end = rel + payload.len() as i64;
        if end > have {
            let take = &payload[(have - rel) as usize..];
            let room = self.cap.saturating_sub(self.data.len());
            self.data.extend_from_slice(&take[..take.len().min(room)]);
            grew = true;
        }
        loop {
            let have = self.data.len() as i64;
            let ready: Vec<i64> = self.ooo.range(..=have).map(|(k, _)| *k).collect();
            if ready.is_empty() {
                break;
            }
            for k in ready {
                if let Some(seg) = self.ooo.remove(&k) {
                    self.ooo_bytes -= seg.len();
                    let dl = self.data.len() as i64;
                    if k + seg.len() as i64 > dl && !self.full() {
                        let room = self.cap - self.data.len();
                        let tail = &seg[(dl - k) as usize..];
                        self.data.extend_from_slice(&tail[..tail.len().min(room)]);
                        grew = true;
                    }
                }
            }
            if self.full() {
                self.ooo.clear();
                self.ooo_bytes = 0;
                break;
            }
        }
        self.data.truncate(self.cap);
        grew
    }

    fn rebase(&mut self, new_base: u32) {
        let Some(base) = self.base else {
            self.base = Some(new_base);
            return;
        };
        let shift = Self::rel_to(new_base, base);
        if shift <= 0 {
            return; // the new base is after data we already have
        }
        let mut old = BTreeMap::new();
        if !self.data.is_empty() {
            old.insert(0i64, std::mem::take(&mut self.data));
        }
        for (k, v) in std::mem::take(&mut self.ooo) {
            old.entry(k).or_insert(v);
        }
        self.ooo = old.into_iter().map(|(k, v)| (k + shift, v)).collect();
        self.ooo_bytes = self.ooo.values().map(Vec::len).sum();
        self.base = Some(new_base);
    }
}
