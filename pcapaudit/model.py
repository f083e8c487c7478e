"""Records passed between the layers of pcapaudit.

Every record is a frozen dataclass. One record type per output table (flows, dns, findings, weirds,
coverage), all joined by the flow ``uid``. Mutable per-flow state never leaves ``engine.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


def process_label(process: str | None, pid: int | None = None, eprocess: str | None = None) -> str | None:
    """``command``, or ``command[pid]`` when the pid is given, plus ``for <app>`` when it acted for one; None
    without a process. Findings and tables show ``command[pid]``; the checklist and the DNS table, which
    gather many flows, the command only."""
    if process is None:
        return None
    label = f"{process}[{pid}]" if pid else process
    return f"{label} for {eprocess}" if eprocess else label


class Transport(str, enum.Enum):
    """Layer-4 protocol of a flow."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


class Severity(enum.IntEnum):
    """Finding severity; ordered so ``--fail-on`` can compare."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"medium"`` -> ``Severity.MEDIUM``; raises ``ValueError`` on anything else."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (info, low, medium, high)") from None


class FindingKind(str, enum.Enum):
    """What a finding says about a flow or a name."""

    BLOCKED = "blocked"
    UNEXPECTED = "unexpected"
    INTERCEPTED = "tls_intercepted"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One X.509 certificate of a TLS <= 1.2 server chain."""

    subject: str
    issuer: str
    subject_cn: str | None
    issuer_cn: str | None
    issuer_org: str | None
    sha256: str
    self_signed: bool
    not_before: str | None
    not_after: str | None
    san: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsAlert:
    """A TLS alert seen in clear (before encryption started). ``sender`` is ``client`` or ``server``."""

    sender: str
    level: int
    description: int
    after_server_flight: bool

    @property
    def fatal(self) -> bool:
        """Level 2 is fatal (RFC 8446 6)."""
        return self.level == 2


class DnsAnswer(NamedTuple):
    """One resource record of an answer section (a tuple: there are many, and they never change)."""

    name: str
    rtype: str
    value: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DnsTransaction:
    """A DNS query and its response (either may be missing). One row of the ``dns`` table."""

    uid: str
    ts: float
    client_ip: str
    server_ip: str
    transport: str
    trans_id: int
    query: str | None
    qtype: str | None
    rcode: str | None
    answers: tuple[DnsAnswer, ...]
    rtt: float | None
    process: str | None = None  # the querying process, when the capture names it (PKTAP)
    # the DNS opcode (QUERY, NOTIFY, UPDATE, ...), or NBNS / NBNS_REGISTER / NBNS_RELEASE for NetBIOS rows
    opcode: str = "QUERY"
    truncated: bool = False  # the response said TC: the answer did not fit in UDP (asked again over TCP)

    @property
    def sinkholed(self) -> bool:
        """All address answers point at 0.0.0.0, 127.0.0.1 or :: (a common DNS-filter block page)."""
        addrs = [a.value for a in self.answers if a.rtype in ("A", "AAAA")]
        return bool(addrs) and all(a in SINKHOLE_ADDRESSES for a in addrs)


SINKHOLE_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})


@dataclass(frozen=True, slots=True)
class Weird:
    """Malformed or unusual input, kept as a row instead of an exception (Zeek's weird.log)."""

    ts: float | None
    name: str
    uid: str | None
    detail: str
    count: int = 1


class FlowBase(NamedTuple):
    """A flow with nothing but counters and names (no TLS, HTTP, QUIC, ICMP or alerts): most DNS and NTP
    flows. A tuple because there are many; ``FlowRecord(**base._asdict())`` is the same flow as a record."""

    uid: str
    ts: float
    ts_last: float
    transport: Transport
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ip_version: int
    pkts_c2s: int
    pkts_s2c: int
    bytes_c2s: int
    bytes_s2c: int
    payload_c2s: int
    payload_s2c: int
    conn_state: str | None
    state: str
    history: str
    syn_count: int
    vlan: int | None
    inner_vlan: int | None
    app_protocol: str | None
    dns_name: str | None
    dns_names: tuple[str, ...]
    process: str | None = None
    pid: int | None = None
    eprocess: str | None = None
    interface: str | None = None
    one_direction: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One bidirectional flow, oriented client (``src``) -> server (``dst``)."""

    uid: str
    ts: float
    ts_last: float
    transport: Transport
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ip_version: int
    pkts_c2s: int
    pkts_s2c: int
    bytes_c2s: int
    bytes_s2c: int
    payload_c2s: int
    payload_s2c: int
    conn_state: str | None
    state: str
    history: str
    syn_count: int = 0
    vlan: int | None = None
    inner_vlan: int | None = None
    # names
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_server_version: str | None = None
    tls_ech: bool = False
    tls_handshake: str | None = None
    certs: tuple[CertInfo, ...] = ()
    alerts: tuple[TlsAlert, ...] = ()
    client_records_after_server: tuple[tuple[int, int], ...] = ()
    # the server's TLS stack as its ServerHello shows it (version_cipher_extensions_group), and the lengths
    # of a TLS 1.3 server's encrypted flight records (the compiled core only: the oracle engine leaves them)
    tls_server_shape: str | None = None
    tls_server_flight: tuple[int, ...] = ()
    quic_version: str | None = None
    http_method: str | None = None
    http_host: str | None = None
    http_uri: str | None = None
    http_status: int | None = None
    connect_host: str | None = None
    connect_port: int | None = None
    app_protocol: str | None = None
    ldap_simple_bind: bool = False
    ldap_starttls: bool = False
    smtp_starttls: bool | None = None
    icmp: tuple[tuple[int, int, str], ...] = ()
    dns_name: str | None = None
    dns_names: tuple[str, ...] = ()
    # the local process, from Apple PKTAP captures (macOS `tcpdump -i pktap` / `-k`): its command name,
    # pid, and the effective process when the socket acts for another one (nsurlsessiond for an app)
    process: str | None = None
    pid: int | None = None
    eprocess: str | None = None
    # the capture interface of its first packet, when the capture names one per packet (PKTAP: en0,
    # utun3...; pcapng files with several interfaces)
    interface: str | None = None
    # TCP: "client_only" / "server_only" when the capture shows one side of the conversation and the
    # other side's packets must have existed (the shown side's ACKs say so): a span port or
    # ``tcpdump -Q out`` showing one direction. Nothing about a missing reply can be concluded then
    one_direction: str | None = None

    @property
    def process_label(self) -> str | None:
        """``command[pid]``, plus ``for <effective command>`` when set, or None without a process."""
        return process_label(self.process, self.pid, self.eprocess)

    @property
    def cert_issuer(self) -> str | None:
        """Issuer of the leaf certificate, when the chain was visible."""
        return self.certs[0].issuer if self.certs else None


@dataclass(frozen=True, slots=True)
class Classification:
    """Which rule a flow (or DNS name) matched, and on what evidence."""

    vendor: str | None
    rule_id: str | None
    service: str | None
    matched_by: str
    matched_name: str | None
    confidence: str
    verdict: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A typed statement about a flow or DNS transaction, with evidence and a dedup identifier."""

    kind: FindingKind
    severity: Severity
    code: str
    uid: str | None
    rule_id: str | None
    vendor: str | None
    service: str | None
    target: str | None
    message: str
    evidence: tuple[tuple[str, str], ...]
    identifier: str
    ts: float | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """One required/recommended rule of a selected ruleset and what the capture shows for it."""

    vendor: str
    rule_id: str
    service: str
    required: str
    targets: str
    status: str
    attempted: bool
    reached: bool
    blocked: bool
    intercepted: bool
    flows: int
    uids: tuple[str, ...]
    note: str
    processes: tuple[str, ...] = ()  # the local processes of its flows (captures that name them)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """Counters for one run over one or more capture sources."""

    sources: tuple[str, ...]
    packets: int
    bytes: int
    first_ts: float | None
    last_ts: float | None
    decoded: int
    not_ip: int
    weird: int
    dropped: int | None = None
    if_dropped: int | None = None
    extra: tuple[tuple[str, int], ...] = field(default=())
