//! Per-flow application parsing of the first bytes of each direction: `pcapaudit/deep.py` (`DeepState`).
//!
//! Lives only while its flow is active and only for flows whose payload the engine selected (boxed in
//! the flow). Each direction reports when it has seen enough, so the engine stops bringing its packets.

use crate::proto::app;
use crate::proto::dns::{self, DnsMessage};
use crate::proto::http::{self, HttpRequest};
use crate::proto::quic::{QuicClientState, QuicServerState};
use crate::proto::tls::{self, TlsStream};
use crate::{ParseError, ParseResult};
use std::collections::HashMap;

use super::reassembly::Stream;

pub const CLIENT: usize = 0;
pub const SERVER: usize = 1;
pub const CLIENT_CAP: usize = 64 * 1024;
pub const SERVER_CAP: usize = 128 * 1024;
pub const DNS_TCP_CAP: usize = 256 * 1024;
pub const TLS_CLIENT_RECORDS: usize = 3;
pub const TLS_SERVER_RECORDS: usize = 64;
pub const MAX_HTTP_ROUNDS: u32 = 4;
pub use crate::proto::http::MAX_HEAD as HTTP_MAX_HEAD;
pub use crate::proto::tls::CERT_REJECT_ALERTS;
pub const MAX_DNS_PENDING: usize = 4096;
pub const MAX_WEIRDS: usize = 32;
/// Clear-text bytes of one side read while waiting for an upgrade to TLS to be asked and answered;
/// past them the flow is taken as staying in clear.
pub const UPGRADE_WINDOW: usize = 16 * 1024;
use crate::proto::quic::{V1 as QUIC_V1, V2 as QUIC_V2};

pub fn is_dns_port(p: u16) -> bool {
    matches!(p, 53 | 5353 | 5355)
}
fn is_ldap_port(p: u16) -> bool {
    matches!(p, 389 | 3268 | 8389)
}
fn is_smtp_port(p: u16) -> bool {
    matches!(p, 25 | 587 | 2525)
}

/// A DNS response seen by a flow, for the engine to turn into a `DnsTransaction` (`ctx.dns_transaction`),
/// or one NetBIOS name service message (`nbns`, every message its own row: a broadcast query's answer
/// comes back in another flow).
#[derive(Debug, Clone)]
pub struct DnsEvent {
    pub trans_id: u16,
    /// "QUERY", "NOTIFY", "UPDATE", ... ([`dns::opcode_name`]), "NBNS" / "NBNS_REGISTER" / "NBNS_RELEASE"
    pub opcode: &'static str,
    /// None: a request (NBNS only)
    pub rcode: Option<u8>,
    /// (owner, type, value, ttl): a response's answers; an UPDATE's added A/AAAA records; the
    /// addresses an NBNS answer or registration gives (type 0x20 NB)
    pub answers: Vec<(String, u16, String, u32)>,
    pub qname: Option<String>,
    pub qtype: Option<u16>,
    pub q_ts: Option<f64>,
    pub r_ts: f64,
    pub side: usize,
    /// the message was sent by the side that asks (an NBNS request): the row's client is `side`
    pub from_client: bool,
    pub nbns: bool,
    /// TC: the answer did not fit in UDP (the client asks again over TCP)
    pub truncated: bool,
}

/// UDP port 137, the NetBIOS name service.
pub const NBNS_PORT: u16 = 137;

/// A stored query by (trans id, question bytes): (arrival order, ts, side, the whole query).
pub type PendingQueries = HashMap<(u16, Vec<u8>), (u64, f64, usize, Vec<u8>)>;

/// One TLS alert: (side, level, description, after the server's hello, packet number).
pub type Alert = (usize, u8, u8, bool, u64);

/// Application-layer state of one flow (client/server sides, not canonical directions).
#[derive(Debug, Clone, Default)]
pub struct DeepState {
    pub proto: u8,
    pub client_port: u16,
    pub server_port: u16,
    pub streams: [Option<Box<Stream>>; 2],
    pub kind: [Option<&'static str>; 2],
    pub done: [bool; 2],
    pub tls: [Option<Box<TlsStream>>; 2],
    pub tls_off: [usize; 2],
    pub http_req: Option<HttpRequest>,
    pub http_status: Option<u16>,
    pub http_rounds: u32,
    pub connect: bool,
    pub quic: Option<Box<QuicClientState>>,
    /// QUIC: the server's Initial (its ServerHello) and the sizes of its Handshake packets (issue 20)
    pub quic_server: Option<Box<QuicServerState>>,
    /// QUIC: client datagrams seen (the client side is watched past its ClientHello for the end of the
    /// server's flight, at most `QUIC_CLIENT_WATCH` datagrams)
    pub quic_client_pkts: u32,
    /// (trans id, question bytes) -> (ts, side, query), in arrival order
    pub dns_pending: PendingQueries,
    pending_seq: u64,
    /// (type, code, reporter, ipver)
    pub icmp: Vec<(u8, u8, String, u8)>,
    pub weirds: Vec<(f64, &'static str, String)>,
    pub ch_pkt: Option<u64>,
    pub sh_pkt: Option<u64>,
    pub alerts: Vec<Alert>,
    /// TLS 1.3: the server's records counted when the client sent its first record after the server's
    /// flight (its Finished or an alert): the flight is the server's records before it
    pub flight_end: Option<usize>,
    pub ldap: Option<(bool, bool, bool, bool)>,
    pub smtp: Option<bool>,
    pub udp_app: Option<&'static str>,
    /// A clear-text protocol that may switch to TLS (STARTTLS and the like), while undecided.
    pub up: Option<UpKind>,
    /// The protocol that switched to TLS: both sides are then read as TLS from `tls_off`.
    pub upgraded: Option<UpKind>,
    /// Decided (upgraded, refused, or given up): the candidate is not looked for again.
    pub up_decided: bool,
}

/// Clear-text protocols whose upgrade to TLS the flow engine follows (`proto::app::*_upgrade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpKind {
    Smtp,
    Ftp,
    Imap,
    Pop3,
    Xmpp,
    Rdp,
    Ldap,
    Http,
}

impl UpKind {
    fn find(self, client: &[u8], server: &[u8]) -> Option<app::Upgrade> {
        match self {
            UpKind::Smtp => app::smtp_upgrade(client, server),
            UpKind::Ftp => app::ftp_upgrade(client, server),
            UpKind::Imap => app::imap_upgrade(client, server),
            UpKind::Pop3 => app::pop3_upgrade(client, server),
            UpKind::Xmpp => app::xmpp_upgrade(client, server),
            UpKind::Rdp => app::rdp_upgrade(client, server),
            UpKind::Ldap => app::ldap_upgrade(client, server),
            UpKind::Http => app::http_upgrade(client, server),
        }
    }

    /// `app_protocol` of a flow that switched to TLS.
    pub fn tls_name(self) -> &'static str {
        match self {
            UpKind::Smtp => "smtp+tls",
            UpKind::Ftp => "ftp+tls",
            UpKind::Imap => "imap+tls",
            UpKind::Pop3 => "pop3+tls",
            UpKind::Xmpp => "xmpp+tls",
            UpKind::Rdp => "rdp+tls",
            UpKind::Ldap => "ldap+tls",
            UpKind::Http => "http+tls",
        }
    }
}

pub use crate::proto::dns::question_end;

impl DeepState {
    pub fn new(proto: u8, client_port: u16, server_port: u16) -> DeepState {
        DeepState {
            proto,
            client_port,
            server_port,
            ..DeepState::default()
        }
    }

    pub fn is_dns(&self) -> bool {
        is_dns_port(self.server_port) || is_dns_port(self.client_port)
    }

    /// A UDP flow to or from port 137 (NetBIOS name service).
    pub fn is_nbns(&self) -> bool {
        self.proto == 17 && (self.server_port == NBNS_PORT || self.client_port == NBNS_PORT)
    }

    /// Feed one TCP segment of `side`; true when this side needs no more packets (`DeepState.tcp`).
    /// `isns`: the first and a later, different SYN sequence number of this side (-1: none).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        side: usize,
        seq: u32,
        syn: bool,
        payload: &[u8],
        pkt: u64,
        ts: f64,
        isns: (i64, i64),
        out: &mut Vec<DnsEvent>,
    ) -> bool {
        if self.done[side] {
            return true;
        }
        if self.streams[side].is_none() {
            let cap = if self.is_dns() {
                DNS_TCP_CAP
            } else if side == CLIENT {
                CLIENT_CAP
            } else {
                SERVER_CAP
            };
            let mut st = Stream::new(cap);
            for isn in [isns.0, isns.1] {
                if isn >= 0 {
                    st.syn(isn as u32);
                }
            }
            self.streams[side] = Some(Box::new(st));
        }
        let mut seq = seq;
        if syn {
            if let Some(st) = self.streams[side].as_mut() {
                st.syn(seq);
            }
            if payload.is_empty() {
                return false;
            }
            seq = seq.wrapping_add(1);
        }
        let Some(mut st) = self.streams[side].take() else {
            return self.done[side];
        };
        if st.add(seq, payload) {
            self.parse(side, &st.data, pkt, ts, out);
        }
        if st.full() && !self.done[side] {
            self.done[side] = true;
        }
        if self.done[side] {
            if let Some(t) = self.tls[side].as_mut() {
                t.hs = Vec::new();
            }
        } else {
            self.streams[side] = Some(st);
        }
        self.done[side]
    }

    fn parse(&mut self, side: usize, data: &[u8], pkt: u64, ts: f64, out: &mut Vec<DnsEvent>) {
        let kind = match self.kind[side] {
            Some(k) => k,
            None => {
                let mut kind = if self.is_dns() {
                    Some("dns")
                } else if side == CLIENT {
                    app::sniff_client(&data[..data.len().min(16)], self.server_port)
                } else {
                    let k = app::sniff_server(&data[..data.len().min(256)]);
                    if k.is_none()
                        && matches!(self.kind[CLIENT], Some("http") | Some("http-connect"))
                    {
                        Some("http")
                    } else {
                        k
                    }
                };
                if kind.is_none()
                    && is_ldap_port(self.server_port)
                    && side == CLIENT
                    && data.first() == Some(&0x30)
                {
                    kind = Some("ldap");
                }
                if kind.is_none()
                    && side == SERVER
                    && is_smtp_port(self.server_port)
                    && data.starts_with(b"220")
                {
                    kind = Some("smtp");
                }
                if kind.is_none() && side == CLIENT && is_smtp_port(self.server_port) {
                    kind = Some("smtp");
                }
                let kind = match kind {
                    Some(k) => k,
                    None => {
                        if data.len() < 16 {
                            return; // wait for a few more bytes before giving up
                        }
                        "unknown"
                    }
                };
                self.kind[side] = Some(kind);
                kind
            }
        };
        if self.upgraded.is_some() {
            if data.len() > self.tls_off[side] {
                self.tls_side(side, data, pkt);
            }
            return;
        }
        self.clear_side(side, kind, data, pkt, ts, out);
        if !self.up_decided {
            self.upgrade(side, data, pkt);
        }
    }

    /// The clear-text protocol (or TLS from the first byte) of one side.
    fn clear_side(
        &mut self,
        side: usize,
        kind: &'static str,
        data: &[u8],
        pkt: u64,
        ts: f64,
        out: &mut Vec<DnsEvent>,
    ) {
        match kind {
            "tls" => self.tls_side(side, data, pkt),
            "http" | "http-connect" => self.http(side, data, pkt),
            "dns" => self.dns_tcp(side, data, ts, out),
            "ldap" => {
                if side == CLIENT {
                    let l = app::ldap_scan(data);
                    self.ldap = Some(l);
                    if l.3 || data.len() >= 8192 {
                        self.done[side] = true;
                    }
                } else {
                    self.done[side] = data.len() >= 4096;
                }
            }
            "smtp" => {
                if side == CLIENT {
                    self.smtp = app::smtp_scan(data);
                    self.done[side] = self.smtp == Some(false) || data.len() >= 4096;
                } else {
                    self.done[side] = data.len() >= 1024;
                }
            }
            _ => self.done[side] = true,
        }
    }

    /// Which upgrade to TLS this clear-text flow could make, from its ports and first bytes.
    fn up_candidate(&self, side: usize, data: &[u8]) -> Option<UpKind> {
        let kinds = [self.kind[CLIENT], self.kind[SERVER]];
        let clear = |k: Option<&str>| {
            matches!(
                k,
                None | Some("unknown" | "smtp" | "ftp-or-smtp" | "ldap" | "http")
            )
        };
        if !clear(kinds[0]) || !clear(kinds[1]) || self.connect {
            return None;
        }
        let sp = self.server_port;
        if kinds.contains(&Some("smtp")) || is_smtp_port(sp) {
            return Some(UpKind::Smtp);
        }
        if kinds.contains(&Some("ldap")) || is_ldap_port(sp) {
            return Some(UpKind::Ldap);
        }
        if kinds.contains(&Some("http")) {
            // a request asking for `Upgrade: TLS/1.x` (or not complete yet)
            let client: &[u8] = if side == CLIENT {
                data
            } else {
                self.streams[CLIENT].as_ref().map_or(&[], |s| &s.data)
            };
            let clear = matches!(app::http_tls_request(client), Err(ParseError::Invalid(_)));
            return (!clear && !client.is_empty()).then_some(UpKind::Http);
        }
        let head = &data[..data.len().min(64)];
        match (side, sp) {
            (_, 21) => Some(UpKind::Ftp),
            (_, 143) => Some(UpKind::Imap),
            (_, 110) => Some(UpKind::Pop3),
            (_, 5222 | 5269) => Some(UpKind::Xmpp),
            (_, 3389) => Some(UpKind::Rdp),
            (SERVER, _) if kinds[1] == Some("ftp-or-smtp") => Some(UpKind::Ftp),
            (SERVER, _) if head.starts_with(b"* OK") => Some(UpKind::Imap),
            (SERVER, _) if head.starts_with(b"+OK") => Some(UpKind::Pop3),
            (CLIENT, _) if head.starts_with(b"<?xml") || head.starts_with(b"<stream:stream") => {
                Some(UpKind::Xmpp)
            }
            (CLIENT, _)
                if head.len() >= 6 && head[0] == 3 && head[1] == 0 && head[5] & 0xF0 == 0xE0 =>
            {
                Some(UpKind::Rdp)
            }
            _ => None,
        }
    }

    /// Follow a clear-text exchange until it switches to TLS (both sides are then read as TLS from the
    /// byte after the command and after the answer that accepted it), is refused, or runs too long.
    /// While undecided, neither side is done: the engine keeps bringing their bytes.
    fn upgrade(&mut self, side: usize, data: &[u8], pkt: u64) {
        if self.up.is_none() {
            self.up = self.up_candidate(side, data);
            if self.up.is_none() {
                if self.kind[CLIENT].is_some() && self.kind[SERVER].is_some() {
                    self.up_decided = true;
                }
                return;
            }
        }
        let Some(up) = self.up else { return };
        let other = 1 - side;
        let other_data: &[u8] = self.streams[other].as_ref().map_or(&[], |s| &s.data);
        let (c, s) = if side == CLIENT {
            (data, other_data)
        } else {
            (other_data, data)
        };
        match up.find(c, s) {
            Some(app::Upgrade::Tls { client, server }) => {
                self.up_decided = true;
                self.upgraded = Some(up);
                self.tls_off = [client, server];
                self.kind = [Some("tls"), Some("tls")];
                self.keep_reading(side);
                if data.len() > self.tls_off[side] {
                    self.tls_side(side, data, pkt);
                }
                if let Some(st) = self.streams[other].take() {
                    if st.data.len() > self.tls_off[other] {
                        self.tls_side(other, &st.data, pkt);
                    }
                    if !self.done[other] {
                        self.streams[other] = Some(st);
                    }
                }
            }
            Some(app::Upgrade::Clear) => self.up_decided = true,
            None => {
                if data.len() >= UPGRADE_WINDOW || other_data.len() >= UPGRADE_WINDOW {
                    self.up_decided = true;
                } else {
                    self.keep_reading(side);
                }
            }
        }
    }

    /// Undo `done` for this side and for the other if its bytes are still kept (a side whose stream
    /// was dropped cannot be read again).
    fn keep_reading(&mut self, side: usize) {
        self.done[side] = false;
        if self.streams[1 - side].is_some() {
            self.done[1 - side] = false;
        }
    }

    fn tls_side(&mut self, side: usize, data: &[u8], pkt: u64) {
        if self.tls[side].is_none() {
            let mut t = TlsStream::new(side == CLIENT);
            t.pos = self.tls_off[side];
            self.tls[side] = Some(Box::new(t));
        }
        let sh_seen = self.tls[SERVER]
            .as_ref()
            .is_some_and(|t| t.server_hello.is_some());
        let Some(t) = self.tls[side].as_mut() else {
            return;
        };
        let nalerts = t.alerts.len();
        // a TLS 1.3 server's stream is read past its ServerHello only for the flight's record lengths:
        // its alerts there are not taken (as before the flight was read)
        let flight_mode = side == SERVER
            && t.server_hello
                .as_ref()
                .is_some_and(|sh| sh.version() == 0x0304);
        t.feed(data);
        if side == CLIENT && self.ch_pkt.is_none() && t.client_hello.is_some() {
            self.ch_pkt = Some(pkt);
        }
        if side == SERVER && self.sh_pkt.is_none() && t.server_hello.is_some() {
            self.sh_pkt = Some(pkt);
        }
        if t.alerts.len() > nalerts && !flight_mode {
            for &(level, desc, _rec) in &t.alerts[nalerts..] {
                let after = if side == CLIENT { sh_seen } else { true };
                self.alerts.push((side, level, desc, after, pkt));
            }
        }
        if let Some(err) = t.error.clone() {
            self.weird(0.0, "tls_malformed", err);
            self.done[side] = true;
            return;
        }
        let Some(t) = self.tls[side].as_deref() else {
            return;
        };
        let fatal = t.alerts.iter().any(|a| a.0 == 2);
        let mut end_flight = false;
        if side == CLIENT {
            let mut limit = TLS_CLIENT_RECORDS;
            let srv13 = self.tls[SERVER]
                .as_ref()
                .and_then(|s| s.server_hello.as_ref())
                .is_some_and(|sh| sh.version() == 0x0304);
            if srv13 && t.records.iter().skip(1).any(|r| r.0 == 22) {
                limit += 2; // a second ClientHello after a HelloRetryRequest: read on to its Finished
            }
            if t.client_hello.is_some() && t.records.len() >= limit {
                self.done[side] = true;
            }
            if srv13
                && self.flight_end.is_none()
                && t.records.iter().skip(1).any(|r| r.0 == 21 || r.0 == 23)
            {
                end_flight = true;
            }
        } else {
            let sh13 = t
                .server_hello
                .as_ref()
                .is_some_and(|sh| sh.version() == 0x0304 || t.encrypted);
            // TLS 1.3 (not a HelloRetryRequest): read on for the lengths of the encrypted flight, until
            // the client answers it (`end_flight`) or MAX_FLIGHT_RECORDS of it are in
            let flight_open = self.flight_end.is_none()
                && t.server_hello
                    .as_ref()
                    .is_some_and(|sh| sh.version() == 0x0304 && !sh.hrr)
                && t.sh_record.is_some_and(|i| {
                    t.records.len() < i + 1 + tls::MAX_FLIGHT_RECORDS + 2
                        && tls::server_flight(&t.records, Some(i), usize::MAX).len()
                            < tls::MAX_FLIGHT_RECORDS
                });
            if t.records.len() >= TLS_SERVER_RECORDS || fatal || (sh13 && !flight_open) {
                self.done[side] = true;
            }
        }
        if t.done() || (side == CLIENT && fatal) {
            self.done[side] = true;
        }
        if end_flight {
            self.end_flight();
        }
    }

    /// The client answered a TLS 1.3 server's flight: the flight is what the server sent until now,
    /// and the server's stream needs reading no further.
    fn end_flight(&mut self) {
        let Some(t) = self.tls[SERVER].as_mut() else {
            return;
        };
        self.flight_end = Some(t.records.len());
        if !self.done[SERVER] {
            self.done[SERVER] = true;
            t.hs = Vec::new();
            self.streams[SERVER] = None;
        }
    }

    /// The lengths of the TLS 1.3 server's encrypted flight (`tls::server_flight`).
    pub fn server_flight(&self) -> Vec<u16> {
        let Some(t) = self.tls[SERVER].as_deref() else {
            return Vec::new();
        };
        if !t
            .server_hello
            .as_ref()
            .is_some_and(|sh| sh.version() == 0x0304 && !sh.hrr)
        {
            return Vec::new();
        }
        tls::server_flight(
            &t.records,
            t.sh_record,
            self.flight_end.unwrap_or(usize::MAX),
        )
    }

    fn http(&mut self, side: usize, data: &[u8], pkt: u64) {
        if side == CLIENT {
            if self.http_req.is_none() && !self.http_request(data, 0) {
                return;
            }
            if self.connect {
                let mut off = self.tls_off[CLIENT];
                while data.len() > off
                    && data[off..].starts_with(b"CONNECT ")
                    && self.http_rounds < MAX_HTTP_ROUNDS
                {
                    if !self.http_request(data, off) {
                        return;
                    }
                    off = self.tls_off[CLIENT];
                }
                if data.len() > off {
                    if data[off] == 0x16 {
                        self.tls_side(side, data, pkt);
                    } else {
                        self.done[side] = true;
                    }
                }
            }
        } else {
            while self.http_status.is_none()
                || (self.connect
                    && matches!(self.http_status, Some(401) | Some(407))
                    && self.http_rounds < MAX_HTTP_ROUNDS)
            {
                let start = self.tls_off[SERVER];
                if data.len() <= start {
                    return;
                }
                let head = &data[start..data.len().min(start + HTTP_MAX_HEAD)];
                let (status, head_len) = match http::try_parse_status(head) {
                    Ok(r) => r,
                    Err(ParseError::Incomplete) => return,
                    Err(e) => {
                        if self.http_status.is_none() {
                            self.weird(0.0, "http_malformed", e.to_string());
                        }
                        self.done[side] = true;
                        return;
                    }
                };
                let challenge = self.connect && matches!(status, 401 | 407);
                let Some(head_len) = head_len.or(if challenge { None } else { Some(0) }) else {
                    return; // the head is not complete: its Content-Length says where the next response starts
                };
                if self.http_status.is_some() {
                    self.http_rounds += 1;
                }
                self.http_status = Some(status);
                if challenge {
                    let body =
                        http::content_length(&data[start..(start + head_len).min(data.len())])
                            .unwrap_or(0);
                    self.tls_off[SERVER] = start.saturating_add(head_len).saturating_add(body);
                    continue;
                }
                // head_len 0: only the status line has arrived (Python's -1)
                if !(self.connect && status == 200 && head_len > 0) {
                    self.done[side] = true;
                    return;
                }
                self.tls_off[SERVER] = start + head_len;
            }
            if self.connect && self.http_status == Some(200) {
                let off = self.tls_off[SERVER];
                if data.len() > off {
                    if matches!(data[off], 0x15 | 0x16) {
                        self.tls_side(side, data, pkt);
                    } else {
                        self.done[side] = true;
                    }
                }
            } else if self.connect {
                self.done[side] = true;
            }
        }
    }

    fn http_request(&mut self, data: &[u8], off: usize) -> bool {
        let end = data.len().min(off.saturating_add(HTTP_MAX_HEAD));
        let req = match http::try_parse_request(data.get(off..end).unwrap_or(&[])) {
            Ok(r) => r,
            Err(ParseError::Incomplete) => return false,
            Err(e) => {
                self.weird(0.0, "http_malformed", e.to_string());
                self.done[CLIENT] = true;
                return false;
            }
        };
        let head_len = req.head_len;
        let connect = req.method == "CONNECT";
        self.http_req = Some(req);
        if connect {
            self.connect = true;
            self.tls_off[CLIENT] = off + head_len;
            true
        } else {
            self.done[CLIENT] = true;
            false
        }
    }

    fn dns_tcp(&mut self, side: usize, data: &[u8], ts: f64, out: &mut Vec<DnsEvent>) {
        let mut off = self.tls_off[side];
        while off + 2 <= data.len() {
            let ln = (usize::from(data[off]) << 8) | usize::from(data[off + 1]);
            if off + 2 + ln > data.len() {
                break;
            }
            self.dns_message(side, &data[off + 2..off + 2 + ln], ts, None, out);
            off += 2 + ln;
        }
        self.tls_off[side] = off;
    }

    /// Feed one UDP datagram; true when this side needs no more packets (`DeepState.udp`).
    /// `parsed`: the engine's parse of a DNS response (to avoid parsing it twice).
    pub fn udp(
        &mut self,
        side: usize,
        payload: &[u8],
        ts: f64,
        parsed: Option<&ParseResult<DnsMessage>>,
        out: &mut Vec<DnsEvent>,
    ) -> bool {
        if self.is_dns() {
            self.dns_message(side, payload, ts, parsed, out);
            return false;
        }
        if self.is_nbns() {
            self.nbns_message(side, payload, ts, out);
            return false;
        }
        if side == CLIENT {
            if self.quic.is_none() {
                if !quic_like(payload) {
                    if self.udp_app.is_none() {
                        self.udp_app = udp_sniff(payload, self.server_port);
                    }
                    self.done[side] = true;
                    return true;
                }
                self.quic = Some(Box::new(QuicClientState::new()));
                self.udp_app = Some("quic");
            }
            self.quic_client_pkts = self.quic_client_pkts.saturating_add(1);
            if let Some(q) = self.quic.as_mut() {
                if !q.done() {
                    q.feed(payload);
                }
                if let Some(s) = self.quic_server.as_mut() {
                    s.client_datagram(payload);
                }
                // past its ClientHello, the client is watched for its answer to the server's flight
                let watching = !q.gquic
                    && q.first_dcid.is_some()
                    && self.quic_client_pkts < QUIC_CLIENT_WATCH
                    && self.quic_server.as_ref().is_none_or(|s| !s.done());
                if q.done() && !watching {
                    self.done[side] = true;
                }
            }
            return self.done[side];
        }
        // the server of a QUIC connection: its Initial (ServerHello) and Handshake packet sizes
        if let Some(q) = self.quic.as_ref() {
            if let (false, Some(dcid)) = (q.gquic, q.first_dcid.as_deref()) {
                let s = self
                    .quic_server
                    .get_or_insert_with(|| Box::new(QuicServerState::new()));
                if !s.done() {
                    s.feed(payload, dcid);
                }
                self.done[side] = s.done();
                return self.done[side];
            }
        }
        self.done[side] = true;
        true
    }

    /// QUIC: the server's ServerHello shape and the sizes of its Handshake packets (`tls_server_shape`,
    /// `tls_server_flight`), when its Initial was read.
    pub fn quic_server_hello(&self) -> Option<(&crate::proto::tls::ServerHello, Vec<u16>)> {
        let s = self.quic_server.as_deref()?;
        Some((s.server_hello.as_ref()?, s.flight()))
    }

    /// Pair DNS queries with responses (`DeepState.dns_message`).
    pub fn dns_message(
        &mut self,
        side: usize,
        payload: &[u8],
        ts: f64,
        parsed: Option<&ParseResult<DnsMessage>>,
        out: &mut Vec<DnsEvent>,
    ) {
        // standard queries, NOTIFY (4) and UPDATE (5) requests wait for their responses
        if payload.len() >= 12
            && payload[2] & 0x80 == 0
            && matches!((payload[2] >> 3) & 0xF, 0 | 4 | 5)
        {
            if let Some(qend) = question_end(payload) {
                let id = (u16::from(payload[0]) << 8) | u16::from(payload[1]);
                let key = (id, payload[12..qend].to_vec());
                if self.dns_pending.len() < MAX_DNS_PENDING && !self.dns_pending.contains_key(&key)
                {
                    self.pending_seq += 1;
                    self.dns_pending
                        .insert(key, (self.pending_seq, ts, side, payload.to_vec()));
                }
                return;
            }
        }
        let own;
        let res = match parsed {
            Some(r) => r,
            None => {
                own = dns::parse(payload);
                &own
            }
        };
        let msg = match res {
            Ok(m) => m,
            Err(e) => {
                self.weird(ts, "dns_malformed", dns_error_text(e));
                return;
            }
        };
        if let Some(err) = &msg.error {
            self.weird(ts, "dns_malformed", err.clone());
        }
        if !matches!(msg.opcode, 0 | 4 | 5) || !msg.is_response {
            return;
        }
        let (qname, qtype) = if let Some((n, t)) = msg.questions.first() {
            (Some(n.clone()), Some(*t))
        } else if let Some(o) = &msg.first_owner {
            (Some(o.clone()), None)
        } else {
            (None, None)
        };
        let mut sent = None;
        if !self.dns_pending.is_empty() {
            if let Some(qend) = question_end(payload) {
                sent = self
                    .dns_pending
                    .remove(&(msg.trans_id, payload[12..qend].to_vec()));
            }
        }
        // an UPDATE's records are in its request (a response repeats the zone only)
        let answers = if msg.opcode == 5 {
            sent.as_ref()
                .and_then(|s| dns::parse(&s.3).ok())
                .map(|q| q.added_addresses())
                .unwrap_or_default()
        } else {
            msg.answers.clone()
        };
        out.push(DnsEvent {
            trans_id: msg.trans_id,
            opcode: dns::opcode_name(msg.opcode),
            rcode: Some(msg.rcode),
            answers,
            qname,
            qtype,
            q_ts: sent.map(|s| s.1),
            r_ts: ts,
            side,
            from_client: false,
            nbns: false,
            truncated: msg.truncated,
        });
    }

    /// One NetBIOS name service message -> a row: name queries and their answers, registrations and
    /// refreshes, releases (with the address they claim or give up). WACKs and the answers to
    /// registrations and releases give no row; a malformed message is a weird.
    pub fn nbns_message(&mut self, side: usize, payload: &[u8], ts: f64, out: &mut Vec<DnsEvent>) {
        let m = match dns::parse_nbns(payload) {
            Ok(m) => m,
            Err(e) => {
                self.weird(ts, "nbns_malformed", dns_error_text(&e));
                return;
            }
        };
        if let Some(err) = &m.error {
            self.weird(ts, "nbns_malformed", err.clone());
        }
        let opcode = match (m.is_response, m.opcode) {
            (_, 0) => "NBNS",
            (false, 5 | 8 | 9) => "NBNS_REGISTER",
            (false, 6) => "NBNS_RELEASE",
            _ => return,
        };
        let qname = m.name.as_ref().map(nbns_name);
        let answers = m
            .addresses
            .iter()
            .map(|(a, _)| (qname.clone().unwrap_or_default(), 0x20, a.clone(), m.ttl))
            .collect();
        out.push(DnsEvent {
            trans_id: m.trans_id,
            opcode,
            rcode: m.is_response.then_some(m.rcode),
            answers,
            qname,
            qtype: m.qtype,
            q_ts: None,
            r_ts: ts,
            side,
            from_client: !m.is_response,
            nbns: true,
            truncated: false,
        });
    }

    /// (ts, side, query) of queries that never got a response, parsed now (`unanswered_queries`).
    pub fn unanswered_queries(&self) -> Vec<(f64, usize, DnsMessage)> {
        let mut v: Vec<&(u64, f64, usize, Vec<u8>)> = self.dns_pending.values().collect();
        v.sort_by_key(|e| e.0);
        v.into_iter()
            .filter_map(|(_, ts, side, p)| dns::parse(p).ok().map(|m| (*ts, *side, m)))
            .collect()
    }

    /// Record a weird for this flow (reported with its uid when the flow ends).
    pub fn weird(&mut self, ts: f64, name: &'static str, detail: String) {
        if self.weirds.len() < MAX_WEIRDS {
            self.weirds.push((ts, name, detail));
        }
    }

    /// TLS ClientHello (TCP) or the QUIC one.
    pub fn client_hello(&self) -> Option<&crate::proto::tls::ClientHello> {
        if let Some(ch) = self.tls[CLIENT]
            .as_ref()
            .and_then(|t| t.client_hello.as_ref())
        {
            return Some(ch);
        }
        self.quic.as_ref().and_then(|q| q.client_hello.as_ref())
    }

    /// Nothing to report but the protocol name (`DeepState.plain`).
    pub fn plain(&self) -> bool {
        self.kind[0].is_none()
            && self.kind[1].is_none()
            && self.quic.is_none()
            && self.alerts.is_empty()
            && self.icmp.is_empty()
    }

    /// (level, description) of a client certificate alert after the server's flight.
    pub fn client_rejected_cert(&self) -> Option<(u8, u8)> {
        self.alerts
            .iter()
            .find(|a| a.0 == CLIENT && CERT_REJECT_ALERTS.contains(&a.2) && a.3)
            .map(|a| (a.1, a.2))
    }

    /// The protocol name shown in the flows table (`app_protocol`).
    pub fn app_protocol(&self) -> Option<&'static str> {
        if self.udp_app.is_some() {
            return self.udp_app;
        }
        if self.connect {
            return Some("http-connect");
        }
        if let Some(up) = self.upgraded {
            return Some(up.tls_name());
        }
        match self.kind[CLIENT].or(self.kind[SERVER]) {
            Some("unknown") | None => None,
            k => k,
        }
    }
}

/// A NetBIOS name as the dns table shows it: lower case (NetBIOS names are case-insensitive, as DNS
/// names are shown), the scope ID appended after a dot when there is one.
pub fn nbns_name(n: &dns::NbName) -> String {
    let mut s = n.name.to_ascii_lowercase();
    if !n.scope.is_empty() {
        s.push('.');
        s.push_str(&n.scope);
    }
    s
}

/// The text of a DNS parse error, as Python's `str(DnsError)`.
pub fn dns_error_text(e: &ParseError) -> String {
    e.to_string()
}

/// Client datagrams of a QUIC flow read at most (ClientHello, then the answer to the server's flight).
pub const QUIC_CLIENT_WATCH: u32 = 32;

/// A QUIC long-header packet with a known version, or a gQUIC (<= Q043) public header (`quic_like`).
pub fn quic_like(p: &[u8]) -> bool {
    if p.len() < 7 {
        return false;
    }
    if p[0] & 0x80 != 0 {
        let v = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        return v == QUIC_V1
            || v == QUIC_V2
            || v >> 8 == 0x00FF_0000
            || v >> 12 == 0xFACEB
            || &p[1..3] == b"Q0"
            || &p[1..3] == b"T0";
    }
    p[0] & 0x01 != 0 && p.len() >= 13 && &p[9..11] == b"Q0"
}

/// `_udp_sniff`
pub fn udp_sniff(p: &[u8], port: u16) -> Option<&'static str> {
    if port == 123 && p.len() >= 48 {
        return Some("ntp");
    }
    if port == 500 || port == 4500 {
        return Some("ike");
    }
    if port == 3478 || (p.len() >= 20 && p[4..8] == [0x21, 0x12, 0xa4, 0x42]) {
        return Some("stun");
    }
    None
}
