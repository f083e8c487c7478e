"""Per-flow application parsing of the first bytes of each direction.

``DeepState`` lives only while its flow is active and only for flows that carried payload the engine
selected. It reassembles the start of each TCP direction and hands it to the protocol modules in
``decode/`` (TLS, HTTP, DNS, LDAP/SMTP sniffers); UDP datagrams go to DNS or QUIC. Each direction
reports when it has seen enough, so the engine stops selecting its packets (the hot path then only
updates counters).
"""

from __future__ import annotations

import struct

from pcapaudit.decode import app, dns, http, quic
from pcapaudit.decode.tls import CERT_REJECT_ALERTS, TlsStream
from pcapaudit.reassembly import Stream

CLIENT, SERVER = 0, 1
CLIENT_CAP = 64 * 1024
SERVER_CAP = 128 * 1024  # a Certificate message may be 100 KB (OpenSSL's default limit)
DNS_TCP_CAP = 256 * 1024
DNS_PORTS = frozenset({53, 5353, 5355})
LDAP_PORTS = frozenset({389, 3268, 8389})
SMTP_PORTS = frozenset({25, 587, 2525})
TLS_CLIENT_RECORDS = 3  # ClientHello + what the client sends after the server's flight
TLS_SERVER_RECORDS = 64  # a flight split into small records (max_fragment_length 512) is still read
MAX_HTTP_ROUNDS = 4  # CONNECTs answered 407 and sent again on one connection, at most


class DeepState:
    """Application-layer state of one flow (client/server sides, not canonical directions)."""

    __slots__ = (
        "proto", "server_port", "client_port", "streams", "kind", "done", "tls", "tls_off",
        "http_req", "http_status", "connect", "quic", "dns_pending", "icmp", "weirds", "ch_pkt",
        "sh_pkt", "alerts", "ldap", "smtp", "uid", "udp_app", "sniffed", "slot", "ips", "http_rounds",
    )  # fmt: skip

    def __init__(self, proto: int, client_port: int, server_port: int, slot: int = -1):
        self.slot = slot  # the engine's slot for this flow
        self.ips: tuple[str, str] | None = None  # (client, server) addresses, filled by the engine once
        self.proto = proto
        self.client_port = client_port
        self.server_port = server_port
        self.streams: list[Stream | None] = [None, None]
        self.kind: list[str | None] = [None, None]  # protocol each side speaks
        self.done = [False, False]
        self.tls: list[TlsStream | None] = [None, None]
        self.tls_off = [0, 0]
        self.http_req: http.HttpRequest | None = None
        self.http_status: int | None = None
        self.http_rounds = 0  # proxy authentication challenges (407) a CONNECT answered on this connection
        self.connect = False
        self.quic: quic.QuicClientState | None = None
        self.dns_pending: dict[tuple[int, bytes], tuple[float, int, bytes]] | None = None
        self.icmp: list[tuple[int, int, str, int]] | None = None  # (type, code, reporter, ipver)
        self.weirds: list[tuple[float, str, str]] | None = None
        self.ch_pkt: int | None = None
        self.sh_pkt: int | None = None
        self.alerts: list[tuple[int, int, int, bool, int]] = []  # (side, level, desc, after SH, pkt)
        self.ldap: tuple[bool, bool, bool, bool] | None = None
        self.smtp: bool | None = None
        self.uid: str | None = None
        self.udp_app: str | None = None
        self.sniffed = [False, False]

    # -- TCP -------------------------------------------------------------------------------------
    def tcp(self, side: int, seq: int, syn: bool, payload: bytes, pkt: int, ts: float, ctx,
            isns: tuple[int, int] = (-1, -1)) -> bool:  # fmt: skip
        """Feed one TCP segment of ``side``; returns True when this side needs no more packets.

        ``isns``: the sequence numbers of the first and of a later, different SYN of this side, as the
        engine saw them (the SYNs themselves never come here unless they carry data).
        """
        if self.done[side]:
            return True
        st = self.streams[side]
        if st is None:
            cap = DNS_TCP_CAP if self._is_dns() else (CLIENT_CAP if side == CLIENT else SERVER_CAP)
            st = self.streams[side] = Stream(cap)
            for isn in isns:
                if isn >= 0:
                    st.syn(isn)
        if syn:
            st.syn(seq)
            if not payload:
                return False
            seq = (seq + 1) & 0xFFFFFFFF
        if st.add(seq, payload):
            self._parse(side, st, pkt, ts, ctx)
        if st.full and not self.done[side]:
            self._finish_side(side)
        if self.done[side]:
            self.streams[side] = None  # parsed: the bytes are no longer needed
            if self.tls[side] is not None:
                self.tls[side].hs = bytearray()
        return self.done[side]

    def _is_dns(self) -> bool:
        return self.server_port in DNS_PORTS or self.client_port in DNS_PORTS

    def _parse(self, side: int, st: Stream, pkt: int, ts: float, ctx) -> None:
        data = st.data
        kind = self.kind[side]
        if kind is None:
            if self._is_dns():
                kind = "dns"
            elif side == CLIENT:
                kind = app.sniff_client(bytes(data[:16]), self.server_port)
            else:
                kind = app.sniff_server(bytes(data[:256]))
                if kind is None and self.kind[CLIENT] in ("http", "http-connect"):
                    kind = "http"
            if kind is None and self.server_port in LDAP_PORTS and side == CLIENT and data[:1] == b"\x30":
                kind = "ldap"
            if kind is None and side == SERVER and self.server_port in SMTP_PORTS and data[:3] == b"220":
                kind = "smtp"
            if kind is None and side == CLIENT and self.server_port in SMTP_PORTS:
                kind = "smtp"
            if kind is None:
                if len(data) < 16:
                    return  # wait for a few more bytes before giving up
                kind = "unknown"
            self.kind[side] = kind
        if kind == "tls":
            self._tls(side, data, pkt)
        elif kind in ("http", "http-connect"):
            self._http(side, data, pkt)
        elif kind == "dns":
            self._dns_tcp(side, data, ts, ctx)
        elif kind == "ldap":
            if side == CLIENT:
                self.ldap = app.ldap_scan(bytes(data))
                if self.ldap[3] or len(data) >= 8192:
                    self.done[side] = True
            else:
                self.done[side] = len(data) >= 4096
        elif kind == "smtp":
            if side == CLIENT:
                self.smtp = app.smtp_scan(bytes(data))
                # True (STARTTLS) may still turn False: commands in clear after it mean it was refused
                self.done[side] = self.smtp is False or len(data) >= 4096
            else:
                self.done[side] = len(data) >= 1024
        else:
            self.done[side] = True

    def _tls(self, side: int, data: bytearray, pkt: int) -> None:
        t = self.tls[side]
        if t is None:
            t = self.tls[side] = TlsStream(is_client=side == CLIENT)
            t.pos = self.tls_off[side]
        nalerts = len(t.alerts)
        t.feed(data)
        if side == CLIENT and self.ch_pkt is None and t.client_hello is not None:
            self.ch_pkt = pkt
        if side == SERVER and self.sh_pkt is None and t.server_hello is not None:
            self.sh_pkt = pkt
        if len(t.alerts) > nalerts:
            sh_seen = self.tls[SERVER] is not None and self.tls[SERVER].server_hello is not None
            for level, desc, _rec in t.alerts[nalerts:]:
                after = sh_seen if side == CLIENT else True
                self.alerts.append((side, level, desc, after, pkt))
        if t.error is not None:
            self.weird(0.0, "tls_malformed", t.error)
            self.done[side] = True
            return
        if side == CLIENT:
            # ClientHello + what the client sends after the server's flight (CCS/Finished, CKE, or an
            # alert) is all the heuristics need
            limit = TLS_CLIENT_RECORDS
            srv = self.tls[SERVER]
            if (srv is not None and srv.server_hello is not None and srv.server_hello.version == 0x0304
                    and any(typ == 22 for typ, _ln in t.records[1:])):  # fmt: skip
                limit += 2  # a second ClientHello, after a HelloRetryRequest: read on to its Finished
            if t.client_hello is not None and len(t.records) >= limit:
                self.done[side] = True
        else:
            sh = t.server_hello
            # TLS 1.3: nothing readable follows the ServerHello. TLS 1.2: the server's answer to the
            # client's key exchange is read too, up to its ChangeCipherSpec, for a fatal alert there (a
            # client certificate refused: MDM identities, a proxy that strips them)
            if (
                len(t.records) >= TLS_SERVER_RECORDS
                or any(level == 2 for level, _d, _r in t.alerts)
                or (sh is not None and (sh.version == 0x0304 or t.encrypted))
            ):
                self.done[side] = True
        if t.done or (side == CLIENT and any(level == 2 for level, _d, _r in t.alerts)):
            self.done[side] = True

    def _http(self, side: int, data: bytearray, pkt: int) -> None:
        """HTTP heads. A proxy's CONNECT may be answered 407 (or 401) and sent again on the same connection
        with credentials (Basic, NTLM, Negotiate): the last request and status count, and the tunnel's TLS
        starts after the 200."""
        if side == CLIENT:
            if self.http_req is None and not self._http_request(data, 0):
                return
            if self.connect:
                off = self.tls_off[CLIENT]
                while len(data) > off and data[off : off + 8] == b"CONNECT " and self.http_rounds < MAX_HTTP_ROUNDS:
                    if not self._http_request(data, off):  # the retry's head has not all arrived
                        return
                    off = self.tls_off[CLIENT]
                if len(data) > off:
                    if data[off] == 0x16:
                        self._tls(side, data, pkt)
                    else:
                        self.done[side] = True
        else:
            while self.http_status is None or (
                self.connect and self.http_status in (401, 407) and self.http_rounds < MAX_HTTP_ROUNDS
            ):  # fmt: skip
                start = self.tls_off[SERVER]  # where the next response starts (after a challenge's body)
                if len(data) <= start:
                    return
                try:
                    res = http.parse_status(bytes(data[start : start + http.MAX_HEAD]))
                except ValueError as e:
                    if self.http_status is None:
                        self.weird(0.0, "http_malformed", str(e))
                    self.done[side] = True
                    return
                if res is None:
                    return
                status, head_len = res
                challenge = self.connect and status in (401, 407)
                if challenge and head_len < 0:
                    return  # the head is not complete: its Content-Length says where the next response starts
                if self.http_status is not None:
                    self.http_rounds += 1
                self.http_status = status
                if challenge:
                    body = http.content_length(bytes(data[start : start + head_len])) or 0
                    self.tls_off[SERVER] = start + head_len + body
                    continue
                if not (self.connect and status == 200 and head_len > 0):
                    self.done[side] = True
                    return
                self.tls_off[SERVER] = start + head_len
            if self.connect and self.http_status == 200:
                off = self.tls_off[SERVER]
                if len(data) > off:
                    if data[off] in (0x15, 0x16):
                        self._tls(side, data, pkt)
                    else:
                        self.done[side] = True
            elif self.connect:
                self.done[side] = True

    def _http_request(self, data: bytearray, off: int) -> bool:
        """Parse the request head at ``off``; False until it is complete (or when it is not a request)."""
        try:
            req = http.parse_request(bytes(data[off : off + http.MAX_HEAD]))
        except ValueError as e:
            self.weird(0.0, "http_malformed", str(e))
            self.done[CLIENT] = True
            return False
        if req is None:
            return False
        self.http_req = req
        if req.method == "CONNECT":
            self.connect = True
            self.tls_off[CLIENT] = off + req.head_len
        else:
            self.done[CLIENT] = True
            return False
        return True

    def _dns_tcp(self, side: int, data: bytearray, ts: float, ctx) -> None:
        off = self.tls_off[side]  # reused as "bytes consumed"
        while off + 2 <= len(data):
            ln = (data[off] << 8) | data[off + 1]
            if off + 2 + ln > len(data):
                break
            self.dns_message(side, bytes(data[off + 2 : off + 2 + ln]), ts, ctx)
            off += 2 + ln
        self.tls_off[side] = off

    def _finish_side(self, side: int) -> None:
        self.done[side] = True

    # -- UDP -------------------------------------------------------------------------------------
    def udp(self, side: int, payload: bytes, ts: float, ctx, parsed=None) -> bool:
        """Feed one UDP datagram; returns True when this side needs no more packets. ``parsed``: the
        engine's parse of a DNS response (a DnsMessage or the DnsError), to avoid parsing it twice."""
        if self._is_dns():
            self.dns_message(side, payload, ts, ctx, parsed)
            return False
        if side == CLIENT:
            if self.quic is None:
                if not quic_like(payload):
                    self.udp_app = self.udp_app or _udp_sniff(payload, self.server_port)
                    self.done[side] = True
                    return True
                self.quic = quic.QuicClientState()
                self.udp_app = "quic"
            self.quic.feed(payload)
            if self.quic.done:
                self.done[side] = True
            return self.done[side]
        self.done[side] = True
        return True

    def dns_message(self, side: int, payload: bytes, ts: float, ctx, parsed=None) -> None:
        """Pair DNS queries with responses. A query is only stored (its response repeats its question);
        it is parsed later only if no response ever comes."""
        if len(payload) >= 12 and not payload[2] & 0x80 and not payload[2] & 0x78:  # a standard query
            qend = dns.question_end(payload)
            if qend is not None:
                if self.dns_pending is None:
                    self.dns_pending = {}
                key = ((payload[0] << 8) | payload[1], payload[12:qend])
                if key not in self.dns_pending and len(self.dns_pending) < 4096:
                    self.dns_pending[key] = (ts, side, payload)
                return
        try:
            if isinstance(parsed, Exception):  # the engine's parse failed: a DnsError is a weird, others a parser_error
                raise parsed
            msg = parsed if parsed is not None else dns.parse(payload)
        except dns.DnsError as e:
            self.weird(ts, "dns_malformed", str(e))
            return
        if msg.error:
            self.weird(ts, "dns_malformed", msg.error)
        if msg.opcode != 0 or not msg.questions and not msg.is_response:
            return
        if not msg.is_response:  # a query we could not key cheaply (no or odd question): nothing to pair
            return
        if msg.questions:
            qname, qtype = msg.questions[0]
        elif msg.first_owner:  # mDNS announcements carry answers without questions
            qname, qtype = msg.first_owner, None
        else:
            qname, qtype = None, None
        sent = None
        if self.dns_pending:
            qend = dns.question_end(payload)
            if qend is not None:
                sent = self.dns_pending.pop((msg.trans_id, payload[12:qend]), None)
        ctx.dns_transaction(self, msg, qname, qtype, sent[0] if sent else None, ts, side)

    def unanswered_queries(self):
        """(ts, side, DnsMessage) of queries that never got a response (parsed now)."""
        for ts, side, payload in (self.dns_pending or {}).values():
            try:
                yield ts, side, dns.parse(payload)
            except dns.DnsError:
                continue

    def weird(self, ts: float, name: str, detail: str) -> None:
        """Record a weird for this flow (reported with its uid when the flow ends)."""
        if self.weirds is None:
            self.weirds = []
        if len(self.weirds) < 32:
            self.weirds.append((ts, name, detail))

    # -- results ---------------------------------------------------------------------------------
    @property
    def client_hello(self):
        """TLS ClientHello (TCP) or the QUIC one."""
        t = self.tls[CLIENT]
        if t is not None and t.client_hello is not None:
            return t.client_hello
        if self.quic is not None:
            return self.quic.client_hello
        return None

    @property
    def sni(self) -> str | None:
        """Server name from TLS, QUIC or gQUIC."""
        ch = self.client_hello
        if ch is not None and ch.sni:
            return ch.sni
        if self.quic is not None:
            return self.quic.sni
        return None

    @property
    def plain(self) -> bool:
        """Nothing to report but the protocol name: no TLS/HTTP/LDAP/SMTP/DNS-over-TCP stream, no QUIC,
        alerts or ICMP errors (DNS over UDP, NTP and other datagrams)."""
        return self.kind[0] is None and self.kind[1] is None and self.quic is None and not self.alerts and not self.icmp

    def client_rejected_cert(self) -> tuple[int, int] | None:
        """(level, description) of a client certificate alert after the server's flight (unknown_ca,
        bad_certificate...: "always fatal" in RFC 5246, whatever level the client sends)."""
        for side, level, desc, after, _pkt in self.alerts:
            if side == CLIENT and desc in CERT_REJECT_ALERTS and after:
                return level, desc
        return None

    def app_protocol(self) -> str | None:
        """The protocol name shown in the flows table."""
        if self.udp_app:
            return self.udp_app
        if self.connect:
            return "http-connect"
        k = self.kind[CLIENT] or self.kind[SERVER]
        return None if k == "unknown" else k


def quic_like(p: bytes) -> bool:
    """A QUIC long-header packet with a known version, or a gQUIC (<= Q043) public header."""
    if len(p) < 7:
        return False
    if p[0] & 0x80:
        v = struct.unpack_from(">I", p, 1)[0]
        return (
            v in (quic.V1, quic.V2)
            or v >> 8 == 0xFF0000
            or v >> 12 == 0xFACEB
            or p[1:3] in (b"Q0", b"T0")
        )
    # gQUIC public header: flags with version bit and 8-byte CID, then "Q0xx"
    return bool(p[0] & 0x01) and len(p) >= 13 and p[9:11] == b"Q0"


def _udp_sniff(p: bytes, port: int) -> str | None:
    if port == 123 and len(p) >= 48:
        return "ntp"
    if port in (500, 4500):
        return "ike"
    if port == 3478 or (len(p) >= 20 and p[4:8] == b"\x21\x12\xa4\x42"):
        return "stun"
    return None
