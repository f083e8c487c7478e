//! DNS-derived names for server addresses, bounded in memory and ordered in time:
//! `pcapaudit/enrich.py` (`DnsMap`, `answer_names`).

use std::collections::{HashMap, HashSet, VecDeque};

/// The maps' hasher: keys are addresses and names from the capture, so a keyed hash (not SipHash: it
/// was most of the map's time).
type Fast = ahash::RandomState;

pub const MAX_ADDRESSES: usize = 500_000;
pub const MAX_NAMES_PER_ADDRESS: usize = 32;
pub const MAX_ENTRIES: usize = 1_000_000;
pub const CLOCK_SLACK: f64 = 0.001;
const MAX_ADDRESSES_PER_NAME: usize = 64;

/// An insertion-ordered map with move-to-end, as Python's `OrderedDict` is used here (LRU eviction).
/// Order is kept by stamps in a queue; stale queue entries are skipped and compacted now and then.
#[derive(Debug, Default, Clone)]
struct Lru<V> {
    map: HashMap<String, (u64, V), Fast>,
    order: VecDeque<(u64, String)>,
    stamp: u64,
}

impl<V> Lru<V> {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn touch(&mut self, key: &str) {
        self.stamp += 1;
        if let Some(e) = self.map.get_mut(key) {
            e.0 = self.stamp;
        }
        self.order.push_back((self.stamp, key.to_string()));
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(s, k)| map.get(k).is_some_and(|e| e.0 == *s));
        }
    }

    fn pop_oldest(&mut self) -> Option<(String, V)> {
        while let Some((s, k)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.0 == s) {
                return self.map.remove(&k).map(|(_, v)| (k, v));
            }
        }
        None
    }
}

/// address -> [(first answer time, queried name)], most recently confirmed last; least recently
/// updated addresses evicted. Also name -> addresses (bounded).
#[derive(Debug, Clone)]
pub struct DnsMap {
    addrs: Lru<Vec<(f64, String)>>,
    names: Lru<HashSet<String, Fast>>,
    max: usize,
    max_entries: usize,
    entries: usize,
    name_entries: usize,
    pub evicted: u64,
}

impl Default for DnsMap {
    fn default() -> Self {
        DnsMap::new(MAX_ADDRESSES, MAX_ENTRIES)
    }
}

impl DnsMap {
    pub fn new(max_addresses: usize, max_entries: usize) -> DnsMap {
        DnsMap {
            addrs: Lru::default(),
            names: Lru::default(),
            max: max_addresses,
            max_entries,
            entries: 0,
            name_entries: 0,
            evicted: 0,
        }
    }

    /// Addresses known.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.len() == 0
    }

    /// Record that `name` resolved to `address` at time `ts` (`DnsMap.add`).
    pub fn add(&mut self, ts: f64, address: &str, name: &str) {
        let mut ts = ts;
        if !self.addrs.map.contains_key(address) {
            self.addrs.map.insert(address.to_string(), (0, Vec::new()));
        }
        self.addrs.touch(address);
        if let Some((_, lst)) = self.addrs.map.get_mut(address) {
            if let Some(i) = lst.iter().position(|(_, n)| n == name) {
                let (t, _) = lst.remove(i);
                ts = t.min(ts);
                self.entries -= 1;
            }
            lst.push((ts, name.to_string()));
            self.entries += 1;
            if lst.len() > MAX_NAMES_PER_ADDRESS {
                lst.remove(0);
                self.entries -= 1;
            }
        }
        while self.addrs.len() > self.max || self.entries > self.max_entries {
            match self.addrs.pop_oldest() {
                Some((_, old)) => {
                    self.entries -= old.len();
                    self.evicted += 1;
                }
                None => break,
            }
        }
        if !self.names.map.contains_key(name) {
            self.names
                .map
                .insert(name.to_string(), (0, HashSet::default()));
        }
        self.names.touch(name);
        if let Some((_, set)) = self.names.map.get_mut(name) {
            if set.len() < MAX_ADDRESSES_PER_NAME && !set.contains(address) {
                set.insert(address.to_string());
                self.name_entries += 1;
            }
        }
        while self.names.len() > self.max || self.name_entries > self.max_entries {
            match self.names.pop_oldest() {
                Some((_, old)) => self.name_entries -= old.len(),
                None => break,
            }
        }
    }

    /// Every address DNS answered for `name` so far (bounded; sorted).
    pub fn addresses(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .map
            .get(name)
            .map(|(_, s)| s.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Names that mapped to `address` at or before `ts` (+1 ms), most recent first (`DnsMap.lookup`).
    pub fn lookup(&self, address: &str, ts: f64) -> Vec<String> {
        let Some((_, lst)) = self.addrs.map.get(address) else {
            return Vec::new();
        };
        let limit = ts + CLOCK_SLACK;
        lst.iter()
            .rev()
            .filter(|(t, _)| *t <= limit)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Every (address, names) pair, for the findings' name -> addresses checks.
    pub fn iter_names(&self) -> impl Iterator<Item = (&str, &HashSet<String, Fast>)> {
        self.names.map.iter().map(|(k, (_, v))| (k.as_str(), v))
    }
}

/// (address, name) pairs of one response: each A/AAAA answer mapped back through CNAMEs to the name that
/// was asked (`answer_names`). `answers`: (owner, type, value, ttl).
pub fn answer_names(answers: &[(String, u16, String, u32)]) -> Vec<(String, String)> {
    if answers.is_empty() {
        return Vec::new();
    }
    let mut alias_of: HashMap<&str, &str> = HashMap::new();
    for (owner, rtype, value, _) in answers {
        if *rtype == 5 && !value.is_empty() {
            alias_of.entry(value.as_str()).or_insert(owner.as_str());
        }
    }
    let mut out = Vec::new();
    for (owner, rtype, value, _) in answers {
        if !(*rtype == 1 || *rtype == 28) || value.is_empty() {
            continue;
        }
        let mut name = owner.as_str();
        let mut seen = 0;
        while let Some(n) = alias_of.get(name) {
            if seen >= 16 {
                break;
            }
            name = n;
            seen += 1;
        }
        out.push((value.clone(), name.to_string()));
    }
    out
}
