//! Packets a capture holds once per interface they crossed, counted once: `pcapaudit/dedup.py`
//! (`InterfaceCopies`, `packet_keys`).
//!
//! A packet is a copy when a packet with the same header fields (not the TTL nor the VLAN tag) was kept
//! on *another* interface (or, for Linux SLL captures, in the other direction: received vs sent), or on
//! another VLAN of the same interface (a trunk's span sees a routed packet once per VLAN it crossed), less
//! than `WINDOW` before it. Untagged packets of captures that name no interface nor direction are left
//! alone.

use std::collections::HashMap;

use super::hash::{mix64, MIX_PERTURB};
use crate::decode::Packet;

pub const WINDOW: f64 = 0.05;
pub const MAX_CARRY: usize = 1 << 18;
pub const MAX_VLAN_GROUPS: usize = 4096;

/// `packet_keys` of one packet: a hash of the fields that make two packets copies of one.
pub fn packet_key(p: &Packet<'_>) -> u64 {
    let mut h = mix64((p.src as u64).wrapping_add(MIX_PERTURB));
    for col in [(p.src >> 64) as u64, p.dst as u64, (p.dst >> 64) as u64] {
        h = mix64(h ^ col);
    }
    h = mix64(
        h ^ ((u64::from(p.sport) << 48)
            | (u64::from(p.dport) << 32)
            | (u64::from(p.proto) << 16)
            | (u64::from(p.flags) << 8)
            | u64::from(p.ipver)),
    );
    h = mix64(h ^ u64::from(p.seq));
    h = mix64(h ^ p.ident);
    let t = (i64::from(p.icmp_type) + 1) as u64 & 0xFFFF;
    let c = (i64::from(p.icmp_code) + 1) as u64 & 0xFFFF;
    mix64(h ^ ((t << 40) | (c << 32) | u64::from(p.iplen)))
}

/// Marks copies, batch by batch; remembers the packets kept in the last `window` seconds.
#[derive(Debug, Clone)]
pub struct InterfaceCopies {
    pub window: f64,
    pub count: u64,
    ids: HashMap<String, u32>,
    /// VLAN -> (interface, group), for `vlan_group_id`
    vlan_ids: HashMap<i32, Vec<(Box<str>, u32)>, ahash::RandomState>,
    /// `vlan_ids` of the unnamed interface ("")
    vlan_plain: HashMap<i32, u32, ahash::RandomState>,
    vlan_groups: usize,
    /// the capture showed a VLAN tag: its untagged packets that name no interface are a group too
    pub tags_seen: bool,
    /// key -> (time, interface) of the last packet kept with that key
    kept: HashMap<u64, (f64, u32), ahash::RandomState>,
    max_t: f64,
}

impl Default for InterfaceCopies {
    fn default() -> Self {
        InterfaceCopies::new(WINDOW)
    }
}

impl InterfaceCopies {
    pub fn new(window: f64) -> InterfaceCopies {
        InterfaceCopies {
            window,
            count: 0,
            ids: HashMap::new(),
            vlan_ids: HashMap::default(),
            vlan_plain: HashMap::default(),
            vlan_groups: 0,
            tags_seen: false,
            kept: HashMap::default(),
            max_t: f64::NEG_INFINITY,
        }
    }

    /// A number for an interface (or direction) name, stable across batches.
    pub fn group_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.insert(name.to_string(), i);
        i
    }

    /// The group of a tagged packet: its interface (or direction, or "" when the capture names none)
    /// and its VLAN tag (QinQ as one value), named as Python names it. Past `MAX_VLAN_GROUPS` (a hostile
    /// capture with random tags) new tags share one group per interface.
    pub fn vlan_group_id(&mut self, base: &str, vlan: i32) -> u32 {
        // most captures name no interface: their groups are found by the tag alone
        if base.is_empty() {
            if let Some(&id) = self.vlan_plain.get(&vlan) {
                return id;
            }
            let id = self.vlan_group_named(base, vlan);
            if self.vlan_plain.len() < MAX_VLAN_GROUPS {
                self.vlan_plain.insert(vlan, id);
            }
            return id;
        }
        self.vlan_group_named(base, vlan)
    }

    fn vlan_group_named(&mut self, base: &str, vlan: i32) -> u32 {
        if let Some(&(_, id)) = self
            .vlan_ids
            .get(&vlan)
            .and_then(|v| v.iter().find(|(b, _)| &**b == base))
        {
            return id;
        }
        if self.vlan_groups >= MAX_VLAN_GROUPS {
            return self.group_id(&format!("{base}\0vlan*"));
        }
        self.vlan_groups += 1;
        let id = self.group_id(&format!("{base}\0vlan{vlan}"));
        self.vlan_ids
            .entry(vlan)
            .or_default()
            .push((base.into(), id));
        id
    }

    /// Fewer than two interfaces known so far: nothing is a copy (decided per batch, after the batch's
    /// names are registered, as Python does).
    pub fn single(&self) -> bool {
        self.ids.len() < 2
    }

    /// Whether the packet (`key`, time `t`, interface `iface`) copies one kept on another interface less
    /// than `window` before; a packet that is not a copy becomes the one kept for its key.
    pub fn check(&mut self, key: u64, t: f64, iface: u32, single: bool) -> bool {
        if t > self.max_t {
            self.max_t = t;
        }
        if !single {
            if let Some(&(kt, ki)) = self.kept.get(&key) {
                if ki != iface && t - kt < self.window {
                    self.count += 1;
                    return true;
                }
            }
        }
        self.kept.insert(key, (t, iface));
        false
    }

    /// End of a batch: forget the packets kept before the last `window` seconds (at most MAX_CARRY).
    pub fn end_batch(&mut self) {
        let limit = self.max_t - self.window;
        self.kept.retain(|_, v| v.0 >= limit);
        if self.kept.len() > MAX_CARRY {
            let mut ts: Vec<f64> = self.kept.values().map(|v| v.0).collect();
            let k = ts.len() - MAX_CARRY;
            ts.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
            let cut = ts[k];
            self.kept.retain(|_, v| v.0 >= cut);
        }
    }
}
