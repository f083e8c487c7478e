//! The flow table: decoded packets -> bidirectional flows with Zeek-style state and history, expiry,
//! ICMP tie-back, interface-copy dedup, first-bytes reassembly, per-flow protocol state and the
//! time-aware DNS naming map. Mirrors `pcapaudit/engine.py`, `deep.py`, `reassembly.py`, `dedup.py`
//! and `enrich.py`, and the part of `audit.py` between the reader and the flow callbacks.
//!
//! Python processes a batch in vectorised steps; here packets go one at a time through
//! [`Engine::feed_packet`], and what Python does once per batch (naming the batch's new flows, expiry,
//! dedup's carry-over, the parallel partitioner's learning) is done by [`Engine::end_batch`]. Flows
//! created in a batch keep a provisional orientation until the batch ends, as Python decides it from
//! all of the batch's packets of a new flow.

pub mod dedup;
pub mod deep;
pub mod dnsmap;
pub mod fuzzing;
pub mod hash;
pub mod reassembly;
pub mod record;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::sync::Arc;

use crate::capture::bpf::{PacketFilter, Verdict};
use crate::capture::{CaptureReader, PacketBatch, ProcessInfo};
use crate::decode::{Decoded, Decoder, Packet, QINQ};
use crate::proto::dns::{self, DnsMessage};
use crate::proto::icmp::{self, Quoted};
use crate::proto::{quic, tls, x509};
use crate::{ParseError, ParseResult};

pub use dedup::InterfaceCopies;
pub use deep::{DeepState, DnsEvent, CLIENT, SERVER};
pub use dnsmap::{answer_names, DnsMap};
pub use record::{DnsAnswer, DnsTransaction, FlowRecord, IcmpNote, TlsAlert, Weird};

pub const EV_S: usize = 0;
pub const EV_H: usize = 1;
pub const EV_A: usize = 2;
pub const EV_D: usize = 3;
pub const EV_F: usize = 4;
pub const EV_R: usize = 5;
pub const NEV: usize = 6;
/// no packet yet in that direction (`Flow::vlan_dir`)
pub const NO_VLAN: i32 = -2;

/// "no such event" in the first-packet tables (Python's `NONE_FIRST`)
pub const NONE_FIRST: u64 = i64::MAX as u64;
pub const HISTORY_LETTERS: &[u8; 6] = b"SHADFR";
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
pub const ICMP_VLAN_SCAN_MAX: usize = 4096;
pub const MAX_WEIRD_ROWS_PER_NAME: u64 = 200;
const MAX_ICMP_NOTES: usize = 16;

/// Ports that identify the server side when the first packet seen is not a SYN (`SERVICE_PORTS`).
pub const SERVICE_PORTS: &[u16] = &[
    20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 123, 135, 137, 138, 139, 143, 161, 389, 443,
    445, 465, 500, 514, 548, 587, 636, 853, 993, 995, 1194, 1433, 1521, 1812, 1900, 2152, 2195,
    2196, 2197, 2575, 3128, 3268, 3306, 3389, 3478, 3544, 4500, 4789, 5060, 5222, 5223, 5228, 5229,
    5230, 5235, 5236, 5353, 5355, 5432, 5671, 5672, 8020, 8021, 8027, 8028, 8031, 8032, 8080, 8081,
    8383, 8384, 8389, 8443, 8444, 8636, 11211, 20001,
];

fn is_service_port(p: u16) -> bool {
    SERVICE_PORTS.binary_search(&p).is_ok()
}

/// Timeouts and caps of the flow table (`EngineConfig`), plus the run's partition and dedup switch.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub idle_tcp: f64,
    pub idle_udp: f64,
    /// a DNS socket still waiting for an answer
    pub idle_dns: f64,
    /// a DNS socket whose every query got an answer
    pub idle_dns_answered: f64,
    pub close_delay: f64,
    /// deep-parse at most this many payload packets per flow direction per batch
    pub rank_cap: u32,
    /// a flow the responder never answered is over after this long
    pub unanswered: Option<f64>,
    /// flows held at once (shared by `processes`); past it the flows idle the longest end early
    pub max_flows: Option<usize>,
    pub processes: usize,
    /// (k, n): this engine owns the flows whose client endpoint the partitioner gives to k of n
    pub partition: Option<(usize, usize)>,
    /// drop interface copies (`InterfaceCopies`)
    pub dedup: bool,
    /// a closed TCP flow that gets a SYN or data after `close_delay` is a new flow at once, not only when
    /// expiry (between batches) ended it first (Zeek's behaviour; the Python engine splits only between
    /// batches: its golden rows are compared with this off)
    pub reopen_closed: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            idle_tcp: 300.0,
            idle_udp: 60.0,
            idle_dns: 10.0,
            idle_dns_answered: 2.0,
            close_delay: 5.0,
            rank_cap: 256,
            unanswered: Some(30.0),
            max_flows: Some(200_000),
            processes: 1,
            partition: None,
            dedup: true,
            reopen_closed: true,
        }
    }
}

impl EngineConfig {
    /// This process's share of `max_flows` (rounded up), None for no cap (`flow_cap`).
    pub fn flow_cap(&self) -> Option<usize> {
        self.max_flows.map(|m| m.div_ceil(self.processes.max(1)))
    }
}

/// Counters of a run (`Auditor`'s and `FlowEngine`'s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub packets: u64,
    pub bytes: u64,
    pub decoded: u64,
    pub not_ip: u64,
    /// as Python's `DecodeResult.fragments`: fragments held by the decoder plus datagrams reassembled
    pub fragments: u64,
    /// datagrams reassembled from fragments
    pub fragmented_datagrams: u64,
    pub tunnels: Vec<(&'static str, u64)>,
    pub weird: u64,
    pub weird_counts: Vec<(String, u64)>,
    pub copies: u64,
    pub active: usize,
    pub max_active: usize,
    pub ended_early: u64,
    pub hash_collisions: u64,
    pub orphan_icmp: u64,
    pub flows_emitted: u64,
    pub dns_evicted: u64,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    /// packets the BPF filter (`audit --filter`) rejected: not audited, not in `packets`
    pub filtered: u64,
    /// packets outside the time window (`audit --start/--end`): not audited, not in `packets`
    pub outside_window: u64,
    /// with a filter (`audit --filter/--start/--end`): the time of the first and last packet read,
    /// audited or not (what a window that selected nothing can be compared with)
    pub seen_first_ts: Option<f64>,
    pub seen_last_ts: Option<f64>,
    /// packets of link types the filter has no program for (libpcap could not compile it for them):
    /// (link type, packets), not audited
    pub unfiltered_linktypes: Vec<(u32, u64)>,
}

/// An ICMP error whose quoted flow is not in the table (`FlowEngine.orphan_icmp` rows).
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanIcmp {
    pub ts: f64,
    pub quoted: Quoted,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub reporter: String,
}

/// An ICMP error waiting for the end of its batch: (ts, ipver, type, code, the quoted packet or why it
/// cannot be read, reporter address, vlan).
type IcmpErr = (f64, u8, u8, u8, Result<Quoted, ParseError>, u128, i32);

/// Canonical flow key: the lesser (address, port) endpoint first, VLAN tags included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub a: u128,
    pub b: u128,
    pub vlan: i32,
    pub aport: u16,
    pub bport: u16,
    pub ipver: u8,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet and its canonical direction (0: a -> b, 1: b -> a) (`canonical`).
    pub fn of(
        ipver: u8,
        proto: u8,
        vlan: i32,
        src: u128,
        sport: u16,
        dst: u128,
        dport: u16,
    ) -> (FlowKey, usize) {
        let gt = (src, sport) > (dst, dport);
        let (a, aport, b, bport) = if gt {
            (dst, dport, src, sport)
        } else {
            (src, sport, dst, dport)
        };
        (
            FlowKey {
                a,
                b,
                vlan,
                aport,
                bport,
                ipver,
                proto,
            },
            usize::from(gt),
        )
    }

    fn hash64(&self) -> u64 {
        hash::flow_hash(
            self.ipver, self.proto, self.vlan, self.a, self.aport, self.b, self.bport,
        )
    }
}

/// One live flow: counters per canonical direction, events, deep state only while payload is wanted.
#[derive(Debug, Clone, Default)]
struct Flow {
    key: Option<FlowKey>,
    hash: u64,
    orig_a: bool,
    first_ts: f64,
    last_ts: f64,
    first_pkt: u64,
    pkts: [u64; 2],
    ipb: [u64; 2],
    pay: [u64; 2],
    evf: [[u64; NEV]; 2],
    evl: [[i64; NEV]; 2],
    evn: [[u64; NEV]; 2],
    want: [u8; 2],
    isn: [i64; 2],
    isn2: [i64; 2],
    /// the first packet's VLAN tags, and the first tags seen per direction (`NO_VLAN`: no packet yet)
    vlan: i32,
    vlan_dir: [i32; 2],
    /// per direction: the first acknowledgement number of its ACK packets (-1: none yet), how far its
    /// later ones went past it, and its ACK packets without SYN (RSTs left out): what a side that the
    /// capture does not show must have sent (`one_direction`)
    ack0: [i64; 2],
    ack_adv: [u32; 2],
    ackn: [u64; 2],
    names: Vec<String>,
    deep: Option<Box<DeepState>>,
    proc: Option<Box<ProcessInfo>>,
    iface: Option<Box<str>>,
    /// batch in which the flow was created (orientation provisional until it ends) / ranks were counted
    born: u64,
    rank_batch: u64,
    rank: [u32; 2],
}

impl Flow {
    /// The flow's uid (`make_uids`), made when needed.
    fn uid(&self) -> String {
        hash::make_uid(self.hash, self.first_ts, self.first_pkt)
    }

    fn reset(&mut self) {
        *self = Flow {
            evf: [[NONE_FIRST; NEV]; 2],
            evl: [[-1; NEV]; 2],
            isn: [-1; 2],
            isn2: [-1; 2],
            vlan: -1,
            vlan_dir: [NO_VLAN; 2],
            ack0: [-1; 2],
            ..Flow::default()
        };
    }
}

/// Context of one packet besides its decoded fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketCtx<'a> {
    /// the local process (pcapng process info, PKTAP)
    pub process: Option<&'a ProcessInfo>,
    /// interface name (PKTAP, SLL2, pcapng with its interface list)
    pub iface: Option<&'a str>,
}

/// Parallel audits: assigns client endpoints to partitions, balancing their packets (`Partitioner`).
#[derive(Debug, Clone)]
pub struct Partitioner {
    pub n: usize,
    pub max_clients: usize,
    owner: HashMap<u64, usize, ahash::RandomState>,
    load: Vec<u64>,
}

impl Partitioner {
    pub fn new(n: usize) -> Partitioner {
        Partitioner::with_budget(n, 262_144)
    }

    pub fn with_budget(n: usize, max_clients: usize) -> Partitioner {
        let n = n.max(1);
        Partitioner {
            n,
            max_clients,
            owner: HashMap::default(),
            load: vec![0; n],
        }
    }

    /// Partition of each packet of a batch, given its `client_key`s (learning new clients) (`assign`).
    pub fn assign(&mut self, keys: &[u64]) -> Vec<usize> {
        // unique keys in ascending order, with their counts and first appearance
        let mut uk: Vec<(u64, usize, u64)> = Vec::new(); // (key, first index, count)
        let mut idx: HashMap<u64, usize, ahash::RandomState> = HashMap::default();
        for (i, &k) in keys.iter().enumerate() {
            match idx.get(&k) {
                Some(&j) => uk[j].2 += 1,
                None => {
                    idx.insert(k, uk.len());
                    uk.push((k, i, 1));
                }
            }
        }
        let mut part = vec![usize::MAX; uk.len()];
        for (j, (k, _, c)) in uk.iter().enumerate() {
            if let Some(&p) = self.owner.get(k) {
                part[j] = p;
                self.load[p] += c;
            }
        }
        // new clients in order of first appearance (uk is already in that order)
        for (j, (k, _, c)) in uk.iter().enumerate() {
            if part[j] != usize::MAX {
                continue;
            }
            let p = if self.owner.len() < self.max_clients {
                let mut best = 0;
                for (i, &l) in self.load.iter().enumerate() {
                    if l < self.load[best] {
                        best = i;
                    }
                }
                self.owner.insert(*k, best);
                best
            } else {
                (*k % self.n as u64) as usize
            };
            part[j] = p;
            self.load[p] += c;
        }
        keys.iter().map(|k| part[idx[k]]).collect()
    }

    /// Partition of one flow without learning its client (`lookup`).
    pub fn lookup(&self, src: u128, sport: u16, dst: u128, dport: u16) -> usize {
        let k = hash::client_key(src, sport, dst, dport);
        self.owner
            .get(&k)
            .copied()
            .unwrap_or((k % self.n as u64) as usize)
    }
}

/// Keeps the first rows of each weird name and counts all of them (`WeirdCollector`).
#[derive(Debug, Clone, Default)]
struct Weirds {
    rows: Vec<Weird>,
    counts: HashMap<String, u64>,
    order: Vec<String>,
    total: u64,
}

impl Weirds {
    fn add(&mut self, w: Weird) {
        self.total += 1;
        let n = match self.counts.get_mut(&w.name) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.insert(w.name.clone(), 1);
                self.order.push(w.name.clone());
                1
            }
        };
        if n <= MAX_WEIRD_ROWS_PER_NAME {
            self.rows.push(w);
        }
    }
}

/// The flow table (`FlowEngine`) with the per-batch pipeline around it (`Auditor.feed_batch`).
pub struct Engine {
    cfg: EngineConfig,
    map: HashMap<FlowKey, u32, ahash::RandomState>,
    flows: Vec<Flow>,
    /// per slot, about when the flow expires (infinity: free slot); expiry scans this, then checks exactly
    deadline: Vec<f64>,
    /// scratch: slots found dead by the current expiry
    dead_mark: Vec<bool>,
    free: Vec<u32>,
    dnsmap: DnsMap,
    decoder: Decoder,
    copies: InterfaceCopies,
    partitioner: Option<Partitioner>,
    batch: u64,
    new_flows: Vec<u32>,
    /// this batch's ICMP errors, interpreted once every flow of the batch has its slot (as Python's
    /// `_deep_rows` sees them), then the ones about our flows another partition accounted
    own_icmp: Vec<IcmpErr>,
    foreign_icmp: Vec<IcmpErr>,
    dns_events: Vec<DnsEvent>,
    now: f64,
    batch_max_ts: f64,
    out_flows: Vec<FlowRecord>,
    out_dns: Vec<DnsTransaction>,
    weirds: Weirds,
    orphans: Vec<OrphanIcmp>,
    stats: EngineStats,
    /// `audit --filter/--start/--end`: packets it refuses are skipped before decoding
    filter: Option<PacketFilter>,
    /// `flush_step`: the slots still to emit, the next one last
    flush_queue: Option<Vec<u32>>,
    /// certificates already read, by their DER: a server sends the same chain on every connection
    certs: CertCache,
}

/// Parsed certificates by DER, shared by every record that carries them; cleared when full.
#[derive(Default)]
struct CertCache(HashMap<Box<[u8]>, Arc<x509::CertInfo>, ahash::RandomState>);

const CERT_CACHE_MAX: usize = 4096;

impl CertCache {
    fn get(&mut self, der: &[u8]) -> Arc<x509::CertInfo> {
        if let Some(c) = self.0.get(der) {
            return Arc::clone(c);
        }
        if self.0.len() >= CERT_CACHE_MAX {
            self.0.clear();
        }
        let c = Arc::new(cert_info_or_hash(der));
        self.0.insert(der.into(), Arc::clone(&c));
        c
    }
}

/// An address as text (dotted quad written by hand: `Display` through the formatter was a few per cent
/// of the core, once per flow end and per DNS transaction).
fn ip_str(ver: u8, a: u128) -> String {
    if ver != 4 {
        return Ipv6Addr::from(a).to_string();
    }
    let mut s = String::with_capacity(15);
    for (i, o) in (a as u32).to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

fn ev_mask(proto: u8, flags: u8, plen: u32) -> [bool; NEV] {
    let tcp = proto == 6;
    let syn = tcp && flags & SYN != 0;
    let ack = flags & ACK != 0;
    [
        syn && !ack,
        syn && ack,
        tcp && ack && flags & (SYN | FIN | RST) == 0 && plen == 0,
        plen > 0,
        tcp && flags & FIN != 0,
        tcp && flags & RST != 0,
    ]
}

/// ICMP types that quote a datagram (the engine's own list: v4 3, 11, 12, 5; v6 1-4).
pub fn icmp_error_type(ipver: u8, t: i16) -> bool {
    if ipver == 4 {
        matches!(t, 3 | 11 | 12 | 5)
    } else {
        matches!(t, 1..=4)
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineConfig::default())
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let partitioner = match cfg.partition {
            Some((_, n)) if n > 1 => Some(Partitioner::new(n)),
            _ => None,
        };
        Engine {
            cfg,
            map: HashMap::default(),
            flows: Vec::new(),
            deadline: Vec::new(),
            dead_mark: Vec::new(),
            free: Vec::new(),
            dnsmap: DnsMap::default(),
            decoder: Decoder::new(),
            copies: InterfaceCopies::default(),
            partitioner,
            batch: 1,
            new_flows: Vec::new(),
            own_icmp: Vec::new(),
            foreign_icmp: Vec::new(),
            dns_events: Vec::new(),
            now: 0.0,
            batch_max_ts: f64::NEG_INFINITY,
            out_flows: Vec::new(),
            out_dns: Vec::new(),
            weirds: Weirds::default(),
            orphans: Vec::new(),
            stats: EngineStats::default(),
            filter: None,
            flush_queue: None,
            certs: CertCache::default(),
        }
    }

    /// Audit only the packets `filter` keeps (set before the first batch): the others are skipped
    /// before decoding, as if the capture did not have them, and counted in `EngineStats::filtered`,
    /// `outside_window` and `unfiltered_linktypes`.
    pub fn set_filter(&mut self, filter: Option<PacketFilter>) {
        self.filter = filter;
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Flows currently held in the table.
    pub fn active_flows(&self) -> usize {
        self.map.len()
    }

    pub fn dns_map(&self) -> &DnsMap {
        &self.dnsmap
    }

    pub fn dns_map_mut(&mut self) -> &mut DnsMap {
        &mut self.dnsmap
    }

    fn weird(&mut self, w: Weird) {
        self.weirds.add(w);
    }

    // -- the batch pipeline (Auditor.feed_batch + FlowEngine.process) ---------------------------------

    /// Decode and account one batch: decode, dedup, name by DNS, flows, deep parsing, expiry.
    pub fn process_batch(
        &mut self,
        batch: &PacketBatch,
        ifnames: &[String],
        processes: &[ProcessInfo],
    ) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        // packets are numbered over the whole run, as Python's `batches(first_index=auditor.packets)`
        // (filtered packets included: the numbers are those of the file)
        let base = self.stats.packets + self.skipped();
        // decode every frame first: Python feeds the batch's DNS answers to the DnsMap before any flow
        let mut decoder = std::mem::take(&mut self.decoder);
        let mut pkts: Vec<(usize, Packet<'_>)> = Vec::with_capacity(n);
        // the rows the filter keeps (all of them without a filter)
        let kept: Option<Vec<bool>> = self.filter.as_ref().map(|f| {
            (0..n)
                .map(|i| {
                    let t = batch.ts[i];
                    let st = &mut self.stats;
                    st.seen_first_ts = Some(st.seen_first_ts.map_or(t, |x| x.min(t)));
                    st.seen_last_ts = Some(st.seen_last_ts.map_or(t, |x| x.max(t)));
                    let v = f.check(
                        batch.data(i),
                        batch.wirelen[i],
                        batch.ts[i],
                        batch.linktype[i],
                    );
                    match v {
                        Verdict::Keep => {}
                        Verdict::Rejected => self.stats.filtered += 1,
                        Verdict::OutsideWindow => self.stats.outside_window += 1,
                        Verdict::NoProgram => {
                            let lt = batch.linktype[i];
                            let u = &mut self.stats.unfiltered_linktypes;
                            match u.iter_mut().find(|(l, _)| *l == lt) {
                                Some((_, c)) => *c += 1,
                                None => u.push((lt, 1)),
                            }
                        }
                    }
                    v == Verdict::Keep
                })
                .collect()
        });
        let keep = |i: usize| {
            kept.as_ref()
                .is_none_or(|k| k.get(i).copied().unwrap_or(false))
        };
        for i in 0..n {
            if !keep(i) {
                continue;
            }
            let (ts, lt) = (batch.ts[i], batch.linktype[i]);
            match decoder.decode(batch.data(i), lt, ts) {
                Decoded::Packet(p) => {
                    if let Some((name, detail)) = &p.weird {
                        let d = format!("packet {}: {detail}", base + i as u64 + 1);
                        self.weird(Weird {
                            ts: Some(ts),
                            name: (*name).to_string(),
                            uid: None,
                            detail: d,
                            count: 1,
                        });
                    }
                    if p.fragments > 1 {
                        self.stats.fragmented_datagrams += 1;
                        self.stats.fragments += 1;
                    }
                    pkts.push((i, p));
                }
                Decoded::NotIp => self.stats.not_ip += 1,
                Decoded::Fragment => self.stats.fragments += 1,
                Decoded::Error(name, detail) => {
                    let d = format!("packet {}: {detail}", base + i as u64 + 1);
                    self.weird(Weird {
                        ts: Some(ts),
                        name: name.to_string(),
                        uid: None,
                        detail: d,
                        count: 1,
                    });
                }
            }
        }
        self.stats.tunnels = decoder.tunnels();
        self.decoder = decoder;
        self.stats.decoded += pkts.len() as u64;

        // interface copies
        if self.cfg.dedup {
            let mut groups: Vec<Option<u32>> = Vec::with_capacity(pkts.len());
            // once a capture shows VLAN tags, its untagged packets are a group too (a trunk's native VLAN)
            if !self.copies.tags_seen && pkts.iter().any(|(_, p)| p.vlan != -1) {
                self.copies.tags_seen = true;
            }
            for (i, p) in &pkts {
                let base = match packet_ctx(batch, ifnames, processes, *i, p).1 {
                    Some(name) => Some(name),
                    None => p
                        .meta
                        .pkttype
                        .map(|t| if t == 4 { "\0sent" } else { "\0received" }),
                };
                // a tagged packet's group is its interface (or direction) and its VLAN: a routed packet
                // seen again on another VLAN of one trunk is a copy too (flows are keyed without tags)
                let g = match base {
                    _ if p.vlan != -1 => {
                        Some(self.copies.vlan_group_id(base.unwrap_or(""), p.vlan))
                    }
                    Some(b) => Some(self.copies.group_id(b)),
                    None if self.copies.tags_seen => Some(self.copies.vlan_group_id("", -1)),
                    None => None,
                };
                groups.push(g);
            }
            if groups.iter().any(Option::is_some) {
                let single = self.copies.single();
                let mut keep = Vec::with_capacity(pkts.len());
                for ((i, p), g) in pkts.iter().zip(&groups) {
                    keep.push(match g {
                        Some(g) => {
                            !self
                                .copies
                                .check(dedup::packet_key(p), batch.ts[*i], *g, single)
                        }
                        None => true,
                    });
                }
                self.copies.end_batch();
                let mut it = keep.into_iter();
                pkts.retain(|_| it.next().unwrap_or(true));
            }
        }

        let all_max = (0..n)
            .filter(|&i| keep(i))
            .map(|i| batch.ts[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let ctxs: Vec<PacketCtx<'_>> = pkts
            .iter()
            .map(|(i, p)| {
                let (process, iface) = packet_ctx(batch, ifnames, processes, *i, p);
                PacketCtx { process, iface }
            })
            .collect();
        let items: Vec<(f64, u64, &Packet<'_>)> = pkts
            .iter()
            .map(|(i, p)| (batch.ts[*i], base + *i as u64, p))
            .collect();
        self.run_packets(&items, &ctxs, all_max);
        // Auditor.feed_batch's totals
        // (of the packets the filter kept)
        let audited = (0..n).filter(|&i| keep(i)).count();
        if audited == 0 {
            return;
        }
        self.stats.packets += audited as u64;
        self.stats.bytes += (0..n)
            .filter(|&i| keep(i))
            .map(|i| u64::from(batch.wirelen[i]))
            .sum::<u64>();
        let ts = || (0..n).filter(|&i| keep(i)).map(|i| batch.ts[i]);
        let lo = ts().fold(f64::INFINITY, f64::min);
        let hi = ts().fold(f64::NEG_INFINITY, f64::max);
        self.stats.first_ts = Some(self.stats.first_ts.map_or(lo, |f| f.min(lo)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(hi, |f| f.max(hi)));
    }

    /// Packets the filter skipped so far.
    fn skipped(&self) -> u64 {
        let s = &self.stats;
        s.filtered + s.outside_window + s.unfiltered_linktypes.iter().map(|x| x.1).sum::<u64>()
    }
}

impl Engine {
    /// One batch of already decoded packets (time, packet number, packet; `ctxs` parallel or empty):
    /// what `process_batch` does after decoding and dedup.
    pub fn process_packets(&mut self, pkts: &[(f64, u64, Packet<'_>)], ctxs: &[PacketCtx<'_>]) {
        if pkts.is_empty() {
            return;
        }
        let items: Vec<(f64, u64, &Packet<'_>)> =
            pkts.iter().map(|(t, n, p)| (*t, *n, p)).collect();
        let all_max = pkts.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max);
        for (t, _, p) in pkts {
            self.stats.decoded += 1;
            self.stats.packets += 1;
            self.stats.bytes += u64::from(p.iplen);
            self.stats.first_ts = Some(self.stats.first_ts.map_or(*t, |f| f.min(*t)));
            self.stats.last_ts = Some(self.stats.last_ts.map_or(*t, |f| f.max(*t)));
        }
        self.run_packets(&items, ctxs, all_max);
    }

    /// `FlowEngine.process`: DNS naming over the whole batch, the partition's own rows, accounting and
    /// deep parsing in capture order, then the batch's end.
    fn run_packets(
        &mut self,
        pkts: &[(f64, u64, &Packet<'_>)],
        ctxs: &[PacketCtx<'_>],
        all_max: f64,
    ) {
        // DNS answers of the whole batch name flows (every partition sees all of them)
        let mut parsed: HashMap<usize, ParseResult<DnsMessage>, ahash::RandomState> =
            HashMap::default();
        for (j, (t, _, p)) in pkts.iter().enumerate() {
            if let Some(r) = self.name_by_dns(p, *t) {
                parsed.insert(j, r);
            }
        }
        // partitions of a parallel audit: 0 another's flow, 1 ours, 2 ours but an ICMP error about another's
        let own: Option<Vec<u8>> = if self.partitioner.is_some() {
            Some(self.own_rows(pkts))
        } else {
            None
        };
        let mut any = false;
        let none = PacketCtx::default();
        for (j, (t, n, p)) in pkts.iter().enumerate() {
            let status = own.as_ref().map_or(1, |o| o[j]);
            if status == 0 {
                continue;
            }
            any = true;
            let ctx = ctxs.get(j).unwrap_or(&none);
            let pr = if parsed.is_empty() {
                None
            } else {
                parsed.get(&j)
            };
            self.feed_packet_inner(p, *t, *n, ctx, pr, status == 1);
        }
        if !any {
            self.icmp_errors();
            if all_max > self.now {
                self.now = all_max;
            }
        } else {
            self.end_batch();
        }
    }

    // -- per packet --------------------------------------------------------------------------------

    /// One packet as a batch of its own (tests, fuzzing): DNS naming, accounting, deep parsing, then what
    /// Python does at the end of a batch (naming new flows, expiry). `pktno` counts from 0.
    pub fn process_packet(&mut self, pkt: &Packet<'_>, ts: f64, pktno: u64, ctx: &PacketCtx<'_>) {
        let parsed = self.name_by_dns(pkt, ts);
        self.stats.decoded += 1;
        self.stats.packets += 1;
        self.stats.bytes += u64::from(pkt.iplen);
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts, |f| f.min(ts)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts, |f| f.max(ts)));
        let mut status = 1;
        if self.partitioner.is_some() {
            status = self.own_rows(&[(ts, pktno, pkt)])[0];
        }
        if status == 0 {
            self.icmp_errors();
            if ts > self.now {
                self.now = ts;
            }
            return;
        }
        self.feed_packet_inner(pkt, ts, pktno, ctx, parsed.as_ref(), status == 1);
        self.end_batch();
    }

    /// Account one packet without ending the batch (call [`Engine::end_batch`] after the batch's last).
    /// DNS answers must have been given to [`Engine::name_by_dns`] first, as `process_batch` does.
    pub fn feed_packet(
        &mut self,
        pkt: &Packet<'_>,
        ts: f64,
        pktno: u64,
        ctx: &PacketCtx<'_>,
        parsed: Option<&ParseResult<DnsMessage>>,
    ) {
        self.feed_packet_inner(pkt, ts, pktno, ctx, parsed, true);
    }

    fn alloc(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        let mut f = Flow::default();
        f.reset();
        self.flows.push(f);
        self.deadline.push(f64::INFINITY);
        self.dead_mark.push(false);
        (self.flows.len() - 1) as u32
    }

    fn feed_packet_inner(
        &mut self,
        p: &Packet<'_>,
        ts: f64,
        pktno: u64,
        ctx: &PacketCtx<'_>,
        parsed: Option<&ParseResult<DnsMessage>>,
        interpret_icmp: bool,
    ) {
        if ts > self.batch_max_ts {
            self.batch_max_ts = ts;
        }
        // one conversation is one flow whatever VLAN tags its packets carry (replies re-tagged by a router
        // on a trunk): the key leaves the tags out, as Zeek's does by default
        let (key, d) = FlowKey::of(p.ipver, p.proto, -1, p.src, p.sport, p.dst, p.dport);
        let ev = ev_mask(p.proto, p.flags, p.plen);
        let slot = match self.map.get(&key) {
            Some(&s) if reopens(&self.cfg, &self.flows[s as usize], p, d, ts) => {
                self.emit(s);
                self.new_flow(key, d, ts, pktno, ev)
            }
            Some(&s) => s,
            None => {
                let s = self.new_flow(key, d, ts, pktno, ev);
                self.flows[s as usize].vlan = p.vlan;
                s
            }
        };
        let batch = self.batch;
        let f = &mut self.flows[slot as usize];
        // provisional orientation of a flow born in this batch: the first SYN's sender is the client,
        // else the first SYN-ACK's receiver (as Python decides from all of the batch's packets)
        if f.born == batch && (ev[EV_S] || ev[EV_H]) {
            let had_s = f.evn[0][EV_S] + f.evn[1][EV_S] > 0;
            let had_h = f.evn[0][EV_H] + f.evn[1][EV_H] > 0;
            if ev[EV_S] && !had_s {
                f.orig_a = d == 0;
            } else if ev[EV_H] && !had_s && !had_h {
                f.orig_a = d == 1;
            }
        }
        f.pkts[d] += 1;
        f.ipb[d] += u64::from(p.iplen);
        f.pay[d] += u64::from(p.plen);
        for (e, &on) in ev.iter().enumerate() {
            if on {
                f.evf[d][e] = f.evf[d][e].min(pktno);
                f.evl[d][e] = f.evl[d][e].max(pktno as i64);
                f.evn[d][e] += 1;
            }
        }
        if ts > f.last_ts {
            f.last_ts = ts;
        }
        if f.vlan_dir[d] == NO_VLAN {
            f.vlan_dir[d] = p.vlan;
        }
        let syn = p.proto == 6 && p.flags & SYN != 0;
        if p.proto == 6 && p.flags & ACK != 0 && p.flags & RST == 0 {
            // the transport header's third word, which `ident` keeps, is the acknowledgement number
            let a = p.ident as u32;
            if f.ack0[d] < 0 {
                f.ack0[d] = i64::from(a);
            } else {
                let adv = a.wrapping_sub(f.ack0[d] as u32);
                if adv < 1 << 31 && adv > f.ack_adv[d] {
                    f.ack_adv[d] = adv;
                }
            }
            if !syn {
                f.ackn[d] += 1;
            }
        }
        if syn {
            if f.isn[d] < 0 {
                f.isn[d] = i64::from(p.seq);
            } else if i64::from(p.seq) != f.isn[d] {
                f.isn2[d] = i64::from(p.seq);
            }
        }
        if f.proc.is_none() {
            if let Some(pr) = ctx.process {
                f.proc = Some(Box::new(pr.clone()));
            } else if let Some((c, pid, e)) = &p.meta.process {
                f.proc = Some(Box::new(ProcessInfo {
                    command: c.clone(),
                    pid: *pid,
                    ecommand: e.clone(),
                }));
            }
        }
        if f.iface.is_none() {
            if let Some(i) = ctx.iface {
                f.iface = Some(i.into());
            }
        }
        // deep parsing of the packets that still matter
        let want = f.want[d];
        if want > 0 && !p.payload.is_empty() {
            if f.rank_batch != batch {
                f.rank_batch = batch;
                f.rank = [0, 0];
            }
            f.rank[d] += 1;
            if f.rank[d] <= self.cfg.rank_cap || want == 2 {
                self.deep_packet(slot, d, p, ts, pktno, syn, parsed);
            }
        }
        self.deadline[slot as usize] = flow_deadline(&self.cfg, &self.flows[slot as usize]);
        if (p.proto == 1 || p.proto == 58)
            && p.icmp_type >= 0
            && icmp_error_type(p.ipver, p.icmp_type)
            && interpret_icmp
        {
            self.own_icmp.push((
                ts,
                p.ipver,
                p.icmp_type as u8,
                p.icmp_code.max(0) as u8,
                icmp::parse_quoted(&p.payload),
                p.src,
                p.vlan,
            ));
        }
    }

    fn new_flow(&mut self, key: FlowKey, d: usize, ts: f64, pktno: u64, ev: [bool; NEV]) -> u32 {
        let slot = self.alloc();
        let hash = key.hash64();
        let batch = self.batch;
        let f = &mut self.flows[slot as usize];
        f.reset();
        f.key = Some(key);
        f.hash = hash;
        // orientation from the first packet; a SYN or SYN-ACK later in the batch may still change it
        let (snd_port, rcv_port) = if d == 0 {
            (key.aport, key.bport)
        } else {
            (key.bport, key.aport)
        };
        let snd_svc = is_service_port(snd_port);
        let rcv_svc = is_service_port(rcv_port);
        let mut flip = (snd_svc && !rcv_svc) || (snd_port < 1024 && rcv_port >= 1024 && !rcv_svc);
        if key.proto == 1 || key.proto == 58 {
            flip = false;
        }
        f.orig_a = if ev[EV_S] {
            d == 0
        } else if ev[EV_H] {
            d == 1
        } else {
            (d == 0) ^ flip
        };
        f.first_ts = ts;
        f.last_ts = ts;
        f.first_pkt = pktno;
        f.born = batch;
        let dnsflow = deep::is_dns_port(key.aport) || deep::is_dns_port(key.bport);
        let w = if key.proto == 6 || key.proto == 17 {
            if dnsflow {
                2
            } else {
                1
            }
        } else {
            0
        };
        f.want = [w, w];
        self.map.insert(key, slot);
        self.new_flows.push(slot);
        self.stats.max_active = self.stats.max_active.max(self.map.len());
        slot
    }

    fn sides(&self, slot: u32) -> (u16, u16, u128, u128, u8) {
        let f = &self.flows[slot as usize];
        let k = f.key.unwrap_or(FlowKey {
            a: 0,
            b: 0,
            vlan: -1,
            aport: 0,
            bport: 0,
            ipver: 4,
            proto: 0,
        });
        if f.orig_a {
            (k.aport, k.bport, k.a, k.b, k.ipver)
        } else {
            (k.bport, k.aport, k.b, k.a, k.ipver)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deep_packet(
        &mut self,
        slot: u32,
        d: usize,
        p: &Packet<'_>,
        ts: f64,
        pktno: u64,
        syn: bool,
        parsed: Option<&ParseResult<DnsMessage>>,
    ) {
        let (cport, sport, ..) = self.sides(slot);
        let f = &mut self.flows[slot as usize];
        let side = if (d == 0) == f.orig_a { CLIENT } else { SERVER };
        let isns = (f.isn[d], f.isn2[d]);
        let mut st = f
            .deep
            .take()
            .unwrap_or_else(|| Box::new(DeepState::new(p.proto, cport, sport)));
        let mut events = std::mem::take(&mut self.dns_events);
        let done = if p.proto == 6 {
            st.tcp(side, p.seq, syn, &p.payload, pktno, ts, isns, &mut events)
        } else if !p.payload.is_empty() {
            st.udp(side, &p.payload, ts, parsed, &mut events)
        } else {
            false
        };
        let f = &mut self.flows[slot as usize];
        if done {
            f.want[d] = 0;
        }
        let proto = st.proto;
        f.deep = Some(st);
        for e in events.drain(..) {
            self.dns_transaction(slot, proto, e);
        }
        self.dns_events = events;
    }

    // -- DNS ---------------------------------------------------------------------------------------

    /// Feed the answers of a DNS response over UDP from or to port 53 to the DnsMap (`_name_by_dns`).
    /// Returns the parse of the response (or its error) for the flow's own DNS state.
    pub fn name_by_dns(&mut self, p: &Packet<'_>, ts: f64) -> Option<ParseResult<DnsMessage>> {
        let b = &p.payload;
        if p.proto == 17 && p.sport == deep::NBNS_PORT {
            self.name_by_nbns(b, ts);
            return None;
        }
        if p.proto != 17 || b.len() < 12 || !(p.sport == 53 || p.dport == 53) {
            return None;
        }
        // only responses of standard queries with rcode 0 and answers name flows
        if b[2] & 0xF8 != 0x80 || b[3] & 0x0F != 0 || (b[6] | b[7]) == 0 {
            return None;
        }
        let res = dns::parse(b);
        if let Ok(msg) = &res {
            for (addr, name) in answer_names(&msg.answers) {
                self.dnsmap.add(ts, &addr, &name);
            }
        }
        Some(res)
    }

    /// NetBIOS names for LAN addresses: a positive name query answer or a registration / refresh of a
    /// unique workstation or server name (suffix 0x00 / 0x20) names its address, and only a private or
    /// link-local IPv4 one. Anyone on the link can send NBNS: it never names an internet address, and a
    /// name with a dot in it (no NetBIOS computer name has one) is not taken, so an NBNS message cannot
    /// give a flow a vendor's host name.
    fn name_by_nbns(&mut self, b: &[u8], ts: f64) {
        let Ok(m) = dns::parse_nbns(b) else {
            return;
        };
        let claims = match (m.is_response, m.opcode) {
            (true, 0) => m.rcode == 0,
            (false, 5 | 8 | 9) => true,
            _ => false,
        };
        let Some(n) = m.name.as_ref() else {
            return;
        };
        if !claims || !n.scope.is_empty() || !matches!(n.suffix, 0x00 | 0x20) {
            return;
        }
        let name = deep::nbns_name(n);
        if name.is_empty() || name.contains(['.', '\\', '*']) {
            return;
        }
        for (addr, flags) in &m.addresses {
            let lan = addr
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.is_private() || a.is_link_local());
            if flags & 0x8000 == 0 && lan {
                self.dnsmap.add(ts, addr, &name);
            }
        }
    }

    /// A DNS response seen by a flow's DeepState -> a transaction row (`dns_transaction`).
    fn dns_transaction(&mut self, slot: u32, proto: u8, e: DnsEvent) {
        let (_, _, c, s, ver) = self.sides(slot);
        let f = &self.flows[slot as usize];
        let (mut client, mut server) = (ip_str(ver, c), ip_str(ver, s));
        // a "response" from the client side (or an NBNS request from the server side): roles swapped
        if (e.side == CLIENT) != e.from_client {
            std::mem::swap(&mut client, &mut server);
        }
        let rtype = |t: u16| {
            if e.nbns {
                nbns_type_name(t)
            } else {
                dns::qtype_name(t)
            }
        };
        let answers = e
            .answers
            .iter()
            .map(|(o, t, v, ttl)| DnsAnswer {
                name: o.clone(),
                rtype: rtype(*t),
                value: v.clone(),
                ttl: *ttl,
            })
            .collect();
        self.out_dns.push(DnsTransaction {
            uid: f.uid(),
            ts: e.q_ts.unwrap_or(e.r_ts),
            client_ip: client,
            server_ip: server,
            transport: if proto == 6 { "tcp" } else { "udp" },
            trans_id: e.trans_id,
            query: e.qname,
            qtype: e.qtype.map(rtype),
            rcode: e.rcode.map(dns::rcode_name),
            answers,
            rtt: e.q_ts.map(|q| e.r_ts - q),
            process: f.proc.as_deref().and_then(command_label),
            opcode: e.opcode,
            truncated: e.truncated,
        });
        // only a resolver's answers to standard queries name flows (not an UPDATE's own claims)
        if e.rcode == Some(0) && proto == 6 && e.opcode == "QUERY" {
            for (addr, name) in answer_names(&e.answers) {
                self.dnsmap.add(e.r_ts, &addr, &name);
            }
        }
    }

    // -- partitions ----------------------------------------------------------------------------------

    /// Which packets this partition accounts (`_own_rows`): 0 another's, 1 ours, 2 ours but an ICMP error
    /// about a flow another partition owns. Errors about our flows in another's ICMP flow are queued.
    fn own_rows(&mut self, pkts: &[(f64, u64, &Packet<'_>)]) -> Vec<u8> {
        let Some((k, _)) = self.cfg.partition else {
            return vec![1; pkts.len()];
        };
        let Some(part) = self.partitioner.as_mut() else {
            return vec![1; pkts.len()];
        };
        let keys: Vec<u64> = pkts
            .iter()
            .map(|(_, _, p)| hash::client_key(p.src, p.sport, p.dst, p.dport))
            .collect();
        let parts = part.assign(&keys);
        let mut out: Vec<u8> = parts.iter().map(|&q| u8::from(q == k)).collect();
        for (j, (ts, _, p)) in pkts.iter().enumerate() {
            let err = (p.proto == 1 && p.ipver == 4 && icmp_error_type(4, p.icmp_type))
                || (p.proto == 58 && p.ipver != 4 && icmp_error_type(6, p.icmp_type));
            if !err {
                continue;
            }
            let Ok(q) = icmp::parse_quoted(&p.payload) else {
                continue;
            };
            let qk = part.lookup(q.src, q.sport, q.dst, q.dport);
            if qk == k && parts[j] != k {
                self.foreign_icmp.push((
                    *ts,
                    p.ipver,
                    p.icmp_type as u8,
                    p.icmp_code.max(0) as u8,
                    Ok(q),
                    p.src,
                    p.vlan,
                ));
            } else if qk != k && parts[j] == k {
                out[j] = 2;
            }
        }
        out
    }

    /// The batch's ICMP errors, then those queued by other partitions (`_deep_rows`' errors, then
    /// `_foreign_icmp_errors`).
    fn icmp_errors(&mut self) {
        let mut own = std::mem::take(&mut self.own_icmp);
        for (ts, ver, t, c, q, rep, vlan) in own.drain(..) {
            self.icmp_error(ts, ver, t, c, q, rep, vlan);
        }
        self.own_icmp = own;
        for (ts, ver, t, c, q, rep, vlan) in std::mem::take(&mut self.foreign_icmp) {
            self.icmp_error(ts, ver, t, c, q, rep, vlan);
        }
    }

    // -- ICMP ----------------------------------------------------------------------------------------

    /// Tie an ICMP error to the flow it quotes, or keep it as an orphan (`_icmp_error`).
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        ts: f64,
        ipver: u8,
        itype: u8,
        icode: u8,
        q: Result<Quoted, ParseError>,
        reporter: u128,
        vlan: i32,
    ) {
        let q = match q {
            Ok(q) => q,
            Err(e) => {
                self.weird(Weird {
                    ts: Some(ts),
                    name: "icmp_bad_quote".into(),
                    uid: None,
                    detail: e.to_string(),
                    count: 1,
                });
                return;
            }
        };
        let reporter = ip_str(ipver, reporter);
        let Some(target) = self.find_slot(&q, vlan) else {
            self.stats.orphan_icmp += 1;
            self.orphans.push(OrphanIcmp {
                ts,
                quoted: q,
                icmp_type: itype,
                icmp_code: icode,
                reporter,
            });
            return;
        };
        let (cport, sport, client, _server, _) = self.sides(target);
        let f = &mut self.flows[target as usize];
        let proto = f.key.map_or(0, |k| k.proto);
        // an error before the flow's first payload must not stop its payload from being parsed later
        let st = f
            .deep
            .get_or_insert_with(|| Box::new(DeepState::new(proto, cport, sport)));
        // only errors about client->server packets say the destination is unreachable
        if q.src == client && st.icmp.len() < MAX_ICMP_NOTES {
            st.icmp.push((itype, icode, reporter, ipver));
        }
        if ts > f.last_ts {
            f.last_ts = ts;
        }
        self.deadline[target as usize] = flow_deadline(&self.cfg, &self.flows[target as usize]);
    }

    /// The flow an ICMP error quotes (`_find_slot`): flow keys leave VLAN tags out, so the error finds
    /// its flow whatever tags it or the flow's packets carry.
    fn find_slot(&self, q: &Quoted, _vlan: i32) -> Option<u32> {
        let (key, _) = FlowKey::of(q.ipver, q.proto, -1, q.src, q.sport, q.dst, q.dport);
        self.map.get(&key).copied()
    }

    // -- batch end, expiry and records -------------------------------------------------------------

    /// What Python does after a batch's packets: ICMP errors queued by other partitions, naming the
    /// batch's new flows by the DNS answers seen up to their first packet, expiry.
    pub fn end_batch(&mut self) {
        self.icmp_errors();
        for slot in std::mem::take(&mut self.new_flows) {
            let (_, _, _, server, ver) = self.sides(slot);
            if self.dnsmap.is_empty() {
                continue;
            }
            let first = self.flows[slot as usize].first_ts;
            let names = self.dnsmap.lookup(&ip_str(ver, server), first);
            self.flows[slot as usize].names = names;
        }
        if self.batch_max_ts > self.now {
            self.now = self.batch_max_ts;
        }
        self.batch_max_ts = f64::NEG_INFINITY;
        self.batch += 1;
        self.expire(self.now, false);
    }

    /// Emit and free flows idle (or closed for a while), or all of them (`expire`).
    pub fn expire(&mut self, now: f64, everything: bool) {
        if self.map.is_empty() {
            return;
        }
        let mut dead: Vec<u32> = Vec::new();
        if everything {
            dead.extend(self.map.values().copied());
        } else {
            // a flow can only be dead once its deadline is about reached (1 ms of slack for rounding): the
            // exact test is Python's
            let limit = now + 1e-3;
            for (slot, &dl) in self.deadline.iter().enumerate() {
                if dl <= limit && flow_is_dead(&self.cfg, &self.flows[slot], now) {
                    dead.push(slot as u32);
                }
            }
            if let Some(cap) = self.cfg.flow_cap() {
                if self.map.len() - dead.len() > cap {
                    for &s in &dead {
                        self.dead_mark[s as usize] = true;
                    }
                    let mut alive: Vec<(f64, u64, u32)> =
                        Vec::with_capacity(self.map.len() - dead.len());
                    for (slot, f) in self.flows.iter().enumerate() {
                        if f.key.is_some() && !self.dead_mark[slot] {
                            alive.push((f.last_ts, f.hash, slot as u32));
                        }
                    }
                    for &s in &dead {
                        self.dead_mark[s as usize] = false;
                    }
                    self.cut(now, &mut alive, &mut dead, cap);
                }
            }
        }
        if dead.is_empty() {
            return;
        }
        dead.sort_by_key(|&s| self.flows[s as usize].first_pkt);
        for slot in dead {
            self.emit(slot);
        }
    }

    /// More than `cap` live flows: end the ones idle the longest until a tenth of the cap is free (`_cut`).
    fn cut(&mut self, now: f64, alive: &mut [(f64, u64, u32)], dead: &mut Vec<u32>, cap: usize) {
        let n = alive.len() - (cap - cap / 10);
        // ties: Python's table order, which is the flow hash's
        if n == 0 {
            return;
        }
        alive.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let oldest_last = alive[..n]
            .iter()
            .map(|a| a.0)
            .fold(f64::NEG_INFINITY, f64::max);
        dead.extend(alive[..n].iter().map(|a| a.2));
        self.stats.ended_early += n as u64;
        let why = if self.cfg.processes > 1 {
            format!(
                "--max-flows {} shared by {} processes",
                thousands(self.cfg.max_flows.unwrap_or(0) as u64),
                self.cfg.processes
            )
        } else {
            "--max-flows".to_string()
        };
        let detail = format!(
            "{} flows idle for {:.1} s or more ended early to keep the flow table under {} flows ({why}); a flow \
             that goes on appears again as a new flow",
            thousands(n as u64),
            now - oldest_last,
            thousands(cap as u64)
        );
        self.weird(Weird {
            ts: Some(now),
            name: "flow_table_full".into(),
            uid: None,
            detail,
            count: 1,
        });
    }

    /// End of input: emit every remaining flow (`flush`).
    pub fn flush(&mut self) {
        while self.flush_step(usize::MAX) {}
    }

    /// End of input, a part at a time: emit up to `max` of the remaining flows (the first call takes
    /// the pending ICMP errors in and orders every live flow by its first packet, as `flush` does) and
    /// return true while flows remain. The caller takes each part's rows before the next step, so the
    /// end of a capture with many flows alive does not hold all their records at once. When the last
    /// flow is out, the flow table's memory is given back (the engine stays usable).
    pub fn flush_step(&mut self, max: usize) -> bool {
        if self.flush_queue.is_none() {
            self.icmp_errors();
            let mut dead: Vec<u32> = self.map.values().copied().collect();
            dead.sort_by_key(|&s| std::cmp::Reverse(self.flows[s as usize].first_pkt));
            self.flush_queue = Some(dead);
        }
        let queue = self.flush_queue.as_mut().expect("set above");
        let take = max.min(queue.len());
        let part: Vec<u32> = queue.drain(queue.len() - take..).rev().collect();
        for slot in part {
            self.emit(slot);
        }
        if self.flush_queue.as_ref().is_some_and(|q| !q.is_empty()) {
            return true;
        }
        self.flush_queue = None;
        // Auditor.flush_all: fragments whose datagram never completed
        let n = self.decoder.expired_fragments() + self.decoder.held_datagrams() as u64;
        if n > 0 {
            let ts = self.stats.last_ts;
            self.weird(Weird {
                ts,
                name: "incomplete_ip_datagram".into(),
                uid: None,
                detail: format!("{n} fragmented datagram(s) never completed"),
                count: 1,
            });
        }
        if self.map.is_empty() {
            self.flows = Vec::new();
            self.deadline = Vec::new();
            self.dead_mark = Vec::new();
            self.free = Vec::new();
            self.map = HashMap::default();
            self.new_flows = Vec::new();
        }
        false
    }

    /// Turn a finished flow into its record, weirds and unanswered DNS queries, and free its slot (`_emit`).
    fn emit(&mut self, slot: u32) {
        let mut f = std::mem::take(&mut self.flows[slot as usize]);
        self.flows[slot as usize].reset();
        self.deadline[slot as usize] = f64::INFINITY;
        let Some(key) = f.key else { return };
        self.map.remove(&key);
        self.free.push(slot);
        self.stats.flows_emitted += 1;
        let (cd, sd) = if f.orig_a { (0, 1) } else { (1, 0) };
        let (sport, dport, c, s) = if f.orig_a {
            (key.aport, key.bport, key.a, key.b)
        } else {
            (key.bport, key.aport, key.b, key.a)
        };
        let (src, dst) = (ip_str(key.ipver, c), ip_str(key.ipver, s));
        let ps = f.pkts[sd];
        let tcp = key.proto == 6;
        let (conn, state) = if tcp {
            let (c, s) = tcp_state(
                &f.evn[cd], &f.evn[sd], &f.evf[cd], &f.evf[sd], f.pkts[cd], ps,
            );
            (Some(c.to_string()), s.to_string())
        } else {
            (None, if ps > 0 { "reply" } else { "no_reply" }.to_string())
        };
        let hist = if tcp {
            history(&f.evf[cd], &f.evf[sd])
        } else {
            String::new()
        };
        let (vlan, inner_vlan) = vlan_pair(f.vlan);
        let one_direction = one_direction(&f, cd, sd, tcp);
        let dns_names = if f.names.is_empty() {
            self.dnsmap.lookup(&dst, f.first_ts)
        } else {
            std::mem::take(&mut f.names)
        };
        let transport = match key.proto {
            6 => "tcp",
            17 => "udp",
            1 | 58 => "icmp",
            _ => "other",
        };
        let proc = f.proc.take();
        let uid = f.uid();
        let mut rec = FlowRecord {
            uid: uid.clone(),
            ts: f.first_ts,
            ts_last: f.last_ts,
            transport,
            src_ip: src.clone(),
            src_port: sport,
            dst_ip: dst.clone(),
            dst_port: dport,
            ip_version: key.ipver,
            pkts_c2s: f.pkts[cd],
            pkts_s2c: ps,
            bytes_c2s: f.ipb[cd],
            bytes_s2c: f.ipb[sd],
            payload_c2s: f.pay[cd],
            payload_s2c: f.pay[sd],
            conn_state: conn,
            state,
            history: hist,
            syn_count: f.evn[cd][EV_S] as u32,
            one_direction,
            vlan,
            inner_vlan,
            dns_name: dns_names.first().cloned(),
            dns_names,
            process: proc.as_ref().map(|p| p.command.clone()),
            pid: proc.as_ref().and_then(|p| p.pid),
            eprocess: proc.as_ref().and_then(|p| p.ecommand.clone()),
            interface: f.iface.as_ref().map(|s| s.to_string()),
            ..FlowRecord::default()
        };
        // the other direction came with other tags (a router on a trunk, asymmetric VLANs): the flow shows
        // its first packet's, this row says the other
        if let Some(&other) = f.vlan_dir.iter().find(|&&v| v != NO_VLAN && v != f.vlan) {
            self.weird(Weird {
                ts: Some(f.first_ts),
                name: "vlan_differs_by_direction".to_string(),
                uid: Some(uid.clone()),
                detail: format!(
                    "first packet on {}, the other direction on {}",
                    vlan_text(f.vlan),
                    vlan_text(other)
                ),
                count: 1,
            });
        }
        if let Some(st) = f.deep.as_deref() {
            deep_fields(&mut rec, st, &f, cd, sd, key.proto, &mut self.certs);
            for (wts, name, detail) in &st.weirds {
                let t = if *wts == 0.0 { f.first_ts } else { *wts };
                self.weird(Weird {
                    ts: Some(t),
                    name: (*name).to_string(),
                    uid: Some(uid.clone()),
                    detail: detail.clone(),
                    count: 1,
                });
            }
            if !st.dns_pending.is_empty() {
                for (qts, side, q) in st.unanswered_queries() {
                    let (client, server) = if side == CLIENT {
                        (src.clone(), dst.clone())
                    } else {
                        (dst.clone(), src.clone())
                    };
                    let (qname, qtype) = match q.questions.first() {
                        Some((n, t)) => {
                            (if n.is_empty() { None } else { Some(n.clone()) }, Some(*t))
                        }
                        None => (None, None),
                    };
                    let answers = q
                        .added_addresses()
                        .into_iter()
                        .map(|(o, t, v, ttl)| DnsAnswer {
                            name: o,
                            rtype: dns::qtype_name(t),
                            value: v,
                            ttl,
                        })
                        .collect();
                    self.out_dns.push(DnsTransaction {
                        uid: uid.clone(),
                        ts: qts,
                        client_ip: client,
                        server_ip: server,
                        transport,
                        trans_id: q.trans_id,
                        query: qname,
                        qtype: qtype.map(dns::qtype_name),
                        rcode: None,
                        answers,
                        rtt: None,
                        process: proc.as_deref().and_then(command_label),
                        opcode: dns::opcode_name(q.opcode),
                        truncated: false,
                    });
                }
            }
        }
        self.out_flows.push(rec);
    }

    // -- output ------------------------------------------------------------------------------------

    /// Finished flow rows since the last take, in Python's emission order.
    pub fn take_flows(&mut self) -> Vec<FlowRecord> {
        std::mem::take(&mut self.out_flows)
    }

    pub fn take_dns(&mut self) -> Vec<DnsTransaction> {
        std::mem::take(&mut self.out_dns)
    }

    /// Weird rows kept since the last take (at most 200 per name over the run).
    pub fn take_weirds(&mut self) -> Vec<Weird> {
        std::mem::take(&mut self.weirds.rows)
    }

    /// One row per weird name whose rows were capped: "N more not listed" (`summary_rows`' extra rows).
    pub fn weird_summary(&self) -> Vec<Weird> {
        self.weirds
            .order
            .iter()
            .filter_map(|name| {
                let n = self.weirds.counts.get(name).copied().unwrap_or(0);
                (n > MAX_WEIRD_ROWS_PER_NAME).then(|| {
                    let more = n - MAX_WEIRD_ROWS_PER_NAME;
                    Weird {
                        ts: None,
                        name: name.clone(),
                        uid: None,
                        detail: format!("{more} more not listed"),
                        count: more,
                    }
                })
            })
            .collect()
    }

    /// Record a weird from outside the table (a truncated capture, ...).
    pub fn add_weird(&mut self, w: Weird) {
        self.weird(w);
    }

    /// ICMP errors whose quoted flow is not in the table, since the last take.
    pub fn take_orphan_icmp(&mut self) -> Vec<OrphanIcmp> {
        std::mem::take(&mut self.orphans)
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.active = self.map.len();
        s.weird = self.weirds.total;
        s.weird_counts = self
            .weirds
            .order
            .iter()
            .map(|n| (n.clone(), self.weirds.counts[n]))
            .collect();
        s.copies = self.copies.count;
        s.dns_evicted = self.dnsmap.evicted;
        s
    }

    /// The latest packet time seen (the table's clock).
    pub fn now(&self) -> f64 {
        self.now
    }
}

/// Idle for its timeout, closed for `close_delay`, or never answered for `unanswered` (`expire`'s test).
/// (outer or only VLAN id, inner id) of a packet's `vlan` value.
fn vlan_pair(v: i32) -> (Option<u32>, Option<u32>) {
    if v >= QINQ {
        (Some(((v >> 12) & 0xFFF) as u32), Some((v & 0xFFF) as u32))
    } else if v >= 0 {
        (Some(v as u32), None)
    } else {
        (None, None)
    }
}

/// "VLAN 10", "VLAN 100/20" (QinQ outer/inner), "no VLAN tag".
fn vlan_text(v: i32) -> String {
    match vlan_pair(v) {
        (Some(o), Some(i)) => format!("VLAN {o}/{i}"),
        (Some(o), None) => format!("VLAN {o}"),
        _ => "no VLAN tag".to_string(),
    }
}

/// Which side of a TCP flow is the only one the capture shows, when the other side's packets must have
/// existed (`one_direction`): a side that went on with ACKs after its SYN (or SYN-ACK), or whose
/// acknowledgement numbers grew, received packets the capture does not hold (a span port or
/// `tcpdump -Q out` showing one direction). A SYN with nothing after it says nothing of the kind.
fn one_direction(f: &Flow, cd: usize, sd: usize, tcp: bool) -> Option<&'static str> {
    if !tcp {
        return None;
    }
    let went_on =
        |x: usize, opener: usize| (f.evn[x][opener] > 0 && f.ackn[x] > 0) || f.ack_adv[x] > 0;
    if f.pkts[sd] == 0 && f.pkts[cd] > 0 && went_on(cd, EV_S) {
        Some("client_only")
    } else if f.pkts[cd] == 0 && f.pkts[sd] > 0 && went_on(sd, EV_H) {
        Some("server_only")
    } else {
        None
    }
}

fn flow_is_dead(cfg: &EngineConfig, f: &Flow, now: f64) -> bool {
    let tcp = f.key.is_some_and(|k| k.proto == 6);
    let last = f.last_ts;
    let closed = f.evn[0][EV_R] + f.evn[1][EV_R] > 0 || (f.evn[0][EV_F] > 0 && f.evn[1][EV_F] > 0);
    let dnsf = f.want[0] == 2;
    let idle = if tcp {
        cfg.idle_tcp
    } else if dnsf {
        if f.pkts[0] == f.pkts[1] {
            cfg.idle_dns_answered
        } else {
            cfg.idle_dns
        }
    } else {
        cfg.idle_udp
    };
    let mut dead = last < now - idle || (tcp && closed && last < now - cfg.close_delay);
    if let Some(u) = cfg.unanswered {
        let resp = usize::from(f.orig_a);
        dead |= f.pkts[resp] == 0 && last < now - u;
    }
    dead
}

/// A TCP flow closed (a RST, or FIN from both sides) and quiet for `close_delay` that gets a SYN or data
/// again is over: the packet starts a new flow, as Zeek removes a closed connection `tcp_close_delay` /
/// `tcp_reset_delay` (5 s) after it closed and a later packet makes a new connection (new uid). Without
/// this the flow went on when both packets fell in the same batch (expiry runs between batches).
/// Bare ACKs and RSTs after the delay stay with the old flow (stray retransmissions are not connections).
/// Sooner than that, a SYN (not a SYN-ACK) with another ISN than the flow's from the same side is a new
/// connection on the same ports, as Zeek's `IsReuse` has it: the port reused after a close.
fn reopens(cfg: &EngineConfig, f: &Flow, p: &Packet<'_>, d: usize, ts: f64) -> bool {
    if !cfg.reopen_closed || p.proto != 6 || !(p.flags & SYN != 0 || p.plen > 0) {
        return false;
    }
    let closed = f.evn[0][EV_R] + f.evn[1][EV_R] > 0 || (f.evn[0][EV_F] > 0 && f.evn[1][EV_F] > 0);
    if !closed {
        return false;
    }
    let reuse = p.flags & (SYN | ACK) == SYN && f.isn[d] >= 0 && i64::from(p.seq) != f.isn[d];
    reuse || f.last_ts < ts - cfg.close_delay
}

/// About when `flow_is_dead` turns true for a flow that gets no more packets.
fn flow_deadline(cfg: &EngineConfig, f: &Flow) -> f64 {
    let tcp = f.key.is_some_and(|k| k.proto == 6);
    let last = f.last_ts;
    let dnsf = f.want[0] == 2;
    let idle = if tcp {
        cfg.idle_tcp
    } else if dnsf {
        if f.pkts[0] == f.pkts[1] {
            cfg.idle_dns_answered
        } else {
            cfg.idle_dns
        }
    } else {
        cfg.idle_udp
    };
    let mut d = last + idle;
    let closed = f.evn[0][EV_R] + f.evn[1][EV_R] > 0 || (f.evn[0][EV_F] > 0 && f.evn[1][EV_F] > 0);
    if tcp && closed {
        d = d.min(last + cfg.close_delay);
    }
    if let Some(u) = cfg.unanswered {
        if f.pkts[usize::from(f.orig_a)] == 0 {
            d = d.min(last + u);
        }
    }
    if d.is_nan() {
        f64::NEG_INFINITY // a NaN time: let the exact test decide at every expiry
    } else {
        d
    }
}

/// The process and interface of packet `i` of a batch (pcapng blocks, else the link header's).
fn packet_ctx<'b>(
    batch: &'b PacketBatch,
    ifnames: &'b [String],
    processes: &'b [ProcessInfo],
    i: usize,
    p: &'b Packet<'_>,
) -> (Option<&'b ProcessInfo>, Option<&'b str>) {
    let proc = batch
        .proc
        .get(i)
        .and_then(|&k| usize::try_from(k).ok())
        .and_then(|k| processes.get(k));
    let iface = p.meta.iface.as_deref().or_else(|| {
        batch
            .iface
            .get(i)
            .and_then(|&k| usize::try_from(k).ok())
            .and_then(|k| ifnames.get(k))
            .map(String::as_str)
    });
    (proc, iface)
}

/// `1234567` -> `"1,234,567"` (Python's `{:,}`).
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A process as the DNS table names it: the command, plus "for <app>" (`_command_label`).
/// NetBIOS name service record types (RFC 1002 4.2.1.3): NB, NBSTAT, else as DNS types are shown.
fn nbns_type_name(t: u16) -> String {
    match t {
        0x20 => "NB".to_string(),
        0x21 => "NBSTAT".to_string(),
        _ => dns::qtype_name(t),
    }
}

fn command_label(p: &ProcessInfo) -> Option<String> {
    Some(match &p.ecommand {
        Some(e) if !e.is_empty() => format!("{} for {e}", p.command),
        _ => p.command.clone(),
    })
}

fn cert_info_or_hash(der: &[u8]) -> x509::CertInfo {
    x509::cert_info(der).unwrap_or_else(|_| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(der);
        let mut hex = String::with_capacity(64);
        for b in digest {
            let _ = write!(hex, "{b:02x}");
        }
        x509::CertInfo {
            subject: "<unparsable certificate: ValueError>".into(),
            issuer: "<unparsable>".into(),
            sha256: hex,
            ..x509::CertInfo::default()
        }
    })
}

/// The application fields of a flow's record (`_deep_fields`).
fn deep_fields(
    rec: &mut FlowRecord,
    st: &DeepState,
    f: &Flow,
    cd: usize,
    sd: usize,
    proto: u8,
    certs: &mut CertCache,
) {
    rec.app_protocol = st.app_protocol().map(str::to_string);
    if st.plain() {
        return;
    }
    let ch = st.client_hello();
    let tc = st.tls[CLIENT].as_deref();
    let tsv = st.tls[SERVER].as_deref();
    let sh = tsv.and_then(|t| t.server_hello.as_ref());
    if let Some(ch) = ch {
        rec.sni = ch.sni.clone();
        rec.alpn = ch.alpn.clone();
        rec.tls_version = tls::version_name(ch.max_version());
        rec.tls_ech = ch.ech || ch.esni;
    } else if let Some(s) = st.quic.as_ref().and_then(|q| q.sni()) {
        rec.sni = Some(s.to_string());
    }
    if let Some(v) = st.quic.as_ref().and_then(|q| q.version) {
        rec.quic_version = Some(quic::version_name(v));
    }
    if let Some(sh) = sh {
        rec.tls_server_version = tls::version_name(sh.version());
        rec.tls_cipher = Some(format!("0x{:04x}", sh.cipher));
        rec.tls_server_shape = Some(tls::server_shape(sh, false));
        rec.tls_server_flight = st.server_flight();
    } else if let Some((qsh, flight)) = st.quic_server_hello() {
        // QUIC: only the server's stack (its TLS version and cipher stay the oracle's, unset)
        rec.tls_server_shape = Some(tls::server_shape(qsh, true));
        rec.tls_server_flight = flight;
    }
    if let Some(t) = tsv {
        rec.certs = t.certs.iter().take(8).map(|d| certs.get(d)).collect();
    }
    rec.alerts = st
        .alerts
        .iter()
        .take(8)
        .map(|a| TlsAlert {
            sender: a.0 as u8,
            level: a.1,
            description: a.2,
            after_server_flight: a.3,
        })
        .collect();
    if let (Some(tc), Some(_)) = (tc, ch) {
        rec.client_records_after_server = tc.records.iter().skip(1).take(7).copied().collect();
    }
    if proto == 6 && (ch.is_some() || sh.is_some() || tc.is_some_and(|t| t.sslv2)) {
        rec.tls_handshake = Some(
            handshake_outcome(
                st, &f.evf[cd], &f.evf[sd], &f.evn[cd], &f.evn[sd], &f.evl[cd], &f.evl[sd],
            )
            .to_string(),
        );
    }
    if let Some(r) = &st.http_req {
        rec.http_method = Some(r.method.clone());
        rec.http_uri = Some(r.uri.chars().take(512).collect());
        if r.method == "CONNECT" {
            if let Some((h, p)) = r.connect_target() {
                rec.connect_host = Some(h);
                rec.connect_port = p;
            }
        } else {
            rec.http_host = r.host.clone();
        }
    }
    rec.http_status = st.http_status;
    if let Some(l) = st.ldap {
        rec.ldap_simple_bind = l.0 && l.1;
        rec.ldap_starttls = l.2;
    }
    rec.smtp_starttls = st.smtp;
    rec.icmp = st
        .icmp
        .iter()
        .map(|(t, c, r, _)| (*t, *c, r.clone()))
        .collect();
}

/// Zeek-style conn_state and a plain-word state from (client, server) event counts, first-event packet
/// numbers and packet counts (`tcp_state`). Follows Zeek's `conn_state` (base/protocols/conn/main.zeek) on
/// the endpoint states its TCP analyzer keeps:
/// - a RST sent once both sides had sent FIN leaves the connection closed (Zeek's `UpdateClosedState`
///   does not move a closed endpoint to RESET when its peer is closed too): SF, not RSTO/RSTR;
/// - a capture that starts at the SYN-ACK where the client then sent packets: both endpoints are
///   established (S1, SF, S2, S3, RSTO, RSTR as for a full handshake); SHR/RSTRH only when the client
///   sent nothing;
/// - no SYN from either side (midstream) and both FINs: SF (both endpoints closed); other midstream
///   flows stay OTH (see the README for the cases where Zeek says SH/SHR/RSTRH).
pub fn tcp_state(
    nc: &[u64; NEV],
    ns: &[u64; NEV],
    fc: &[u64; NEV],
    fs: &[u64; NEV],
    pc: u64,
    ps: u64,
) -> (&'static str, &'static str) {
    let o_syn = nc[EV_S] > 0;
    let r_syn = ns[EV_S] > 0;
    let r_synack = ns[EV_H] > 0 || r_syn;
    let (o_fin, r_fin) = (nc[EV_F] > 0, ns[EV_F] > 0);
    let closed_at = if o_fin && r_fin {
        fc[EV_F].max(fs[EV_F])
    } else {
        u64::MAX
    };
    let o_rst = nc[EV_R] > 0 && fc[EV_R] < closed_at;
    let r_rst = ns[EV_R] > 0 && fs[EV_R] < closed_at;
    if o_syn && !r_synack {
        if r_rst {
            return ("REJ", "rejected");
        }
        if o_rst {
            return ("RSTOS0", "no_reply");
        }
        if o_fin {
            return ("SH", "no_reply");
        }
        if ps == 0 {
            return ("S0", "no_reply");
        }
        return ("OTH", "midstream");
    }
    let synack_start = !o_syn && ns[EV_H] > 0;
    if synack_start && pc == 0 {
        if r_rst {
            return ("RSTRH", "midstream");
        }
        if r_fin {
            return ("SHR", "midstream");
        }
        return ("OTH", "midstream");
    }
    if (o_syn && r_synack) || synack_start {
        if o_rst {
            return ("RSTO", "reset");
        }
        if r_rst {
            return ("RSTR", "reset");
        }
        if o_fin && r_fin {
            return ("SF", "closed");
        }
        if o_fin {
            return ("S2", "closing");
        }
        if r_fin {
            return ("S3", "closing");
        }
        return ("S1", "established");
    }
    if !r_syn && o_fin && r_fin && !o_rst && !r_rst {
        return ("SF", "closed");
    }
    ("OTH", "midstream")
}

/// Zeek-like history: first occurrence of each event, upper case for the client; same-packet events in
/// alphabetical order (`history` / `histories`).
pub fn history(fc: &[u64; NEV], fs: &[u64; NEV]) -> String {
    let mut ev: [(u64, u8); 2 * NEV] = [(0, 0); 2 * NEV];
    let mut n = 0;
    for (e, &v) in fc.iter().enumerate() {
        if v != NONE_FIRST {
            ev[n] = (v, HISTORY_LETTERS[e]);
            n += 1;
        }
    }
    for (e, &v) in fs.iter().enumerate() {
        if v != NONE_FIRST {
            ev[n] = (v, HISTORY_LETTERS[e].to_ascii_lowercase());
            n += 1;
        }
    }
    let ev = &mut ev[..n];
    ev.sort_unstable();
    ev.iter().map(|&(_, c)| c as char).collect()
}

/// How the TLS handshake ended, judged from the clear-text records and TCP events (`handshake_outcome`).
pub fn handshake_outcome(
    st: &DeepState,
    fc: &[u64; NEV],
    fs: &[u64; NEV],
    nc: &[u64; NEV],
    ns: &[u64; NEV],
    _lc: &[i64; NEV],
    ls: &[i64; NEV],
) -> &'static str {
    if st.alerts.iter().any(|a| a.1 == 2 && a.0 == SERVER) {
        return "server_alert";
    }
    if st.client_rejected_cert().is_some() {
        return "client_alert";
    }
    if st.alerts.iter().any(|a| a.1 == 2 && a.0 == CLIENT) {
        return "client_alert";
    }
    let Some(tc) = st.tls[CLIENT]
        .as_deref()
        .filter(|t| t.client_hello.is_some())
    else {
        return "no_client_hello";
    };
    let tsrv = st.tls[SERVER].as_deref();
    let Some(sh) = tsrv.and_then(|t| t.server_hello.as_ref()) else {
        let after_ch = st.ch_pkt.map_or(fc[EV_D] as i64, |p| p as i64);
        let srv_data_after = fs[EV_D] != NONE_FIRST && ls[EV_D] >= after_ch;
        if !srv_data_after {
            let client_end = fc[EV_F].min(fc[EV_R]);
            if ns[EV_R] > 0 && ls[EV_R] >= after_ch && fs[EV_R] < client_end {
                return "reset_after_client_hello";
            }
            if ns[EV_F] > 0 && ls[EV_F] >= after_ch && fs[EV_F] < client_end {
                return "server_closed_after_client_hello";
            }
            return "silence_after_client_hello";
        }
        return "incomplete";
    };
    let after = tc.records.get(1..).unwrap_or(&[]);
    let closed = nc[EV_F] > 0 || nc[EV_R] > 0;
    if sh.version() == 0x0304 {
        let app: Vec<u16> = after.iter().filter(|r| r.0 == 23).map(|r| r.1).collect();
        let finished = app.iter().any(|&l| l >= 32);
        let more = app.len() >= 2;
        if !finished && !more && closed {
            return "client_abort_after_server_flight";
        }
        if app.is_empty() && closed {
            return "client_abort_after_server_flight";
        }
        return if finished || more {
            "complete"
        } else {
            "incomplete"
        };
    }
    if after.iter().any(|r| r.0 == 20 || r.0 == 22) {
        return "complete";
    }
    if closed && after.iter().all(|r| r.0 == 21) {
        return "client_abort_after_server_flight";
    }
    "incomplete"
}

/// What a whole capture source gave (`Auditor.run_file` + `flush_all`).
#[derive(Debug, Clone, Default)]
pub struct AuditOutput {
    pub flows: Vec<FlowRecord>,
    pub dns: Vec<DnsTransaction>,
    pub weirds: Vec<Weird>,
    pub orphan_icmp: Vec<OrphanIcmp>,
    pub stats: EngineStats,
    pub error: Option<String>,
}

/// Read a capture to its end through an engine, flush, and collect everything (`run_file`).
pub fn audit_reader(reader: &mut CaptureReader, cfg: EngineConfig) -> AuditOutput {
    let mut eng = Engine::new(cfg);
    let mut out = AuditOutput::default();
    run_reader(&mut eng, reader, &mut out);
    eng.flush();
    out.flows.extend(eng.take_flows());
    out.dns.extend(eng.take_dns());
    out.orphan_icmp.extend(eng.take_orphan_icmp());
    out.weirds.extend(eng.take_weirds());
    out.weirds.extend(eng.weird_summary());
    out.stats = eng.stats();
    out
}

/// Feed one reader's batches to an engine (without flushing), taking its output as it goes.
pub fn run_reader(eng: &mut Engine, reader: &mut CaptureReader, out: &mut AuditOutput) {
    while let Some(batch) = reader.next_batch(8 << 20) {
        eng.process_batch(&batch, &reader.ifnames, &reader.processes);
        out.flows.extend(eng.take_flows());
        out.dns.extend(eng.take_dns());
        out.orphan_icmp.extend(eng.take_orphan_icmp());
    }
    if let Some(e) = &reader.error {
        let ts = eng.stats().last_ts;
        eng.add_weird(Weird {
            ts,
            name: "capture_truncated_or_corrupt".into(),
            uid: None,
            detail: e.clone(),
            count: 1,
        });
        out.error = Some(e.clone());
    }
}
