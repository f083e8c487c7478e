"""Turn classified flows and DNS transactions into findings: blocked, unexpected, TLS-intercepted.

Each detector looks at one flow (or one DNS transaction) and yields ``Finding`` rows. Findings carry a
dedup ``identifier``; ``FindingCollector`` folds repeats (SYN retries on new source ports, the same
blocked host seen twenty times) into one row with a count and the uids of every flow involved.

Severity follows the rule's requirement level for blocked destinations (required: high, recommended:
medium, otherwise low) and the auditor rules of ``../shared/seeds/SUMMARY.md`` §2 elsewhere.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterator
from typing import NamedTuple
from dataclasses import dataclass, field, replace

from pcapaudit.classify import (
    PROXY_REFUSALS,
    VERDICT_LEGACY,
    VERDICT_LOCAL,
    VERDICT_UNKNOWN,
    VERDICT_UNLISTED_PORT,
    flow_target,
    is_multicast_or_broadcast,
    to_dns,
    tunnel_elsewhere,
)
from pcapaudit.decode import icmp as icmpmod
from pcapaudit.decode.tls import ALERT_NAMES, CERT_REJECT_ALERTS
from pcapaudit.enrich import DnsMap
from pcapaudit.model import (
    CertInfo,
    Classification,
    DnsTransaction,
    Finding,
    FindingKind,
    FlowRecord,
    Severity,
    Transport,
)
from pcapaudit.rules.matcher import RuleIndex, ip_in
from pcapaudit.rules.schema import IssuerSet, Rule, RuleBook

BLOCKED, UNEXPECTED, INTERCEPTED = FindingKind.BLOCKED, FindingKind.UNEXPECTED, FindingKind.INTERCEPTED
INFRA_PORTS = frozenset({53, 67, 68, 137, 138, 546, 547, 1900, 5353, 5355})
SINKHOLES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})
END_GRACE = 1.0  # a handshake cut by the end of the capture proves nothing
FAILED_RCODES = frozenset({"NXDOMAIN", "REFUSED", "SERVFAIL"})  # DNS answers that refuse a name
CANCEL_WINDOW = 0.5  # a client closing this soon after its SYN did not wait for an answer (no RTO is shorter)


def required_severity(rule: Rule | None) -> Severity:
    """Blocked-destination severity from the rule's requirement level."""
    if rule is None:
        return Severity.LOW
    return {"required": Severity.HIGH, "recommended": Severity.MEDIUM}.get(rule.required, Severity.LOW)


class ClientLookups:
    """When each client first looked up each vendor name and got an answer (bounded): a flow is judged
    against DNS answers only when its own device asked before it (a device that asked nothing in the
    capture used an answer the capture does not show)."""

    MAX = 200_000  # clients x names before the map starts again

    def __init__(self) -> None:
        self._first: dict[tuple[str, str], float] = {}
        self._pending: list = []  # Arrow tables (c: client, q: name, t: time) not indexed yet
        self._pending_rows = 0

    PENDING_ROWS = 250_000  # lookups held unindexed at most (about 12 MB: bounded on any capture)

    def add_table(self, table) -> None:
        """Answered lookups as an Arrow table (``c``, ``q``, ``t``): indexed when a flow asks (most captures
        never make one ask), or when too many wait."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows > self.PENDING_ROWS:
            self._index()

    def _index(self) -> None:
        tables, self._pending, self._pending_rows = self._pending, [], 0
        add = self.add
        for t in tables:
            for client, name, ts in zip(*(t.column(c).to_pylist() for c in ("c", "q", "t"))):
                add(client, name, ts)

    def add(self, client: str, name: str, ts: float) -> None:
        """An answered lookup of ``name`` by ``client`` at ``ts``."""
        k = (client, name)
        old = self._first.get(k)
        if old is None:
            if len(self._first) >= self.MAX:
                self._first.clear()
            self._first[k] = ts
        elif ts < old:
            self._first[k] = ts

    def before(self, client: str, name: str, ts: float) -> bool:
        """Whether ``client`` had an answer for ``name`` by ``ts`` (+1 ms)."""
        if self._pending:
            self._index()
        t = self._first.get((client, name))
        return t is not None and t <= ts + 0.001


@dataclass
class FindingContext:
    """What detectors need besides the flow itself."""

    book: RuleBook
    index: RuleIndex
    dnsmap: DnsMap
    capture_end: float | None = None
    devices: tuple[str, ...] = ()  # CIDRs of audited (managed) hosts; empty: every initiator
    region: dict[str, str] = field(default_factory=dict)  # vendor -> tenant region
    lookups: ClientLookups = field(default_factory=ClientLookups)
    _issuer_cache: dict = field(default_factory=dict, repr=False)

    def rule(self, rule_id: str | None) -> Rule | None:
        """Rule by id (None passes through)."""
        return self.book.rule(rule_id) if rule_id else None

    def issuer_ok(self, cert: CertInfo, set_name: str) -> bool:
        """True when the leaf's issuer belongs to the named issuer set or is trusted for this run."""
        key = (cert.issuer, set_name)
        hit = self._issuer_cache.get(key)
        if hit is None:
            hit = self._issuer_cache[key] = self._match(cert, self.book.issuers.get(set_name)) or self.trusted(cert)
        return hit

    def trusted(self, cert: CertInfo) -> bool:
        """``--trust-issuer`` values match the issuer CN or O (case-insensitive, globs allowed)."""
        for t in self.book.trusted_issuers:
            t = t.lower()
            for v in (cert.issuer_cn, cert.issuer_org):
                if v and fnmatch.fnmatchcase(v.lower(), t):
                    return True
        return False

    @staticmethod
    def _match(cert: CertInfo, s: IssuerSet | None) -> bool:
        if s is None:
            return False
        org = (cert.issuer_org or "").lower()
        if org and any(org == o.lower() for o in s.organizations):
            return True
        cn = cert.issuer_cn or ""
        return any(fnmatch.fnmatchcase(cn.lower(), g.lower()) for g in s.common_names)

    def inspection_product(self, cert: CertInfo) -> bool:
        """The issuer looks like a known TLS-inspection product's CA."""
        key = (cert.issuer, "\0inspection")
        hit = self._issuer_cache.get(key)
        if hit is None:
            hit = self._issuer_cache[key] = self._inspection(cert)
        return hit

    def _inspection(self, cert: CertInfo) -> bool:
        s = self.book.issuers.get("inspection")
        if s is None:
            return False
        if self._match(cert, s):
            return True
        text = f"{cert.issuer_cn or ''} {cert.issuer_org or ''}".lower()
        return any(o.lower() in text for o in s.organizations if len(o) >= 5)

    def is_device(self, ip: str) -> bool:
        """Whether ``ip`` is an audited host (all hosts when no --device list was given)."""
        return not self.devices or ip_in(ip, self.devices)


class FindingDraft(NamedTuple):
    """A finding as a detector states it, before its ``Finding`` is built.

    Most findings repeat a row the collector already has (every probe of a scan, every flow to one
    unknown service): those only bump the row's count, so the evidence tuple and the ``Finding`` are
    built (``build()``) only for a finding that starts a row or becomes a row's earliest occurrence.
    """

    kind: FindingKind
    severity: Severity
    code: str
    uid: str | None
    flow: FlowRecord | None
    cls: Classification | None
    rule: Rule | None
    target: str | None
    message: str
    evidence: dict
    identifier: str
    ts: float | None
    count: int = 1

    @property
    def rule_id(self) -> str | None:
        return self.rule.id if self.rule else (self.cls.rule_id if self.cls else None)

    def build(self) -> Finding:
        """The finding itself (its process and interface, when the flow has them, join the evidence)."""
        flow, rule, cls, evidence = self.flow, self.rule, self.cls, self.evidence
        if flow is not None and flow.process is not None:
            evidence = {**evidence, "process": flow.process_label}
        if flow is not None and flow.interface is not None:
            evidence = {**evidence, "interface": flow.interface}
        return Finding(
            kind=self.kind,
            severity=self.severity,
            code=self.code,
            uid=self.uid,
            rule_id=self.rule_id,
            vendor=rule.vendor if rule else (cls.vendor if cls else None),
            service=rule.service if rule else (cls.service if cls else None),
            target=self.target,
            message=self.message,
            evidence=tuple((k, str(v)) for k, v in evidence.items() if v is not None and v != ""),
            identifier=self.identifier,
            ts=self.ts,
            count=self.count,
        )


class Template(NamedTuple):
    """What every flow of a detection group says of one finding: the part of a draft a ``RepeatDraft``
    takes (kept across batches without the flow behind it)."""

    kind: FindingKind
    severity: Severity
    code: str
    identifier: str
    rule_id: str | None

    @classmethod
    def of(cls, fd: FindingDraft) -> Template:
        return cls(fd.kind, fd.severity, fd.code, fd.identifier, fd.rule_id)


class RepeatDraft:
    """A finding of one flow that another flow of its detection group already stated (same destination,
    classification and every field the detectors read but the ones only a message or evidence quotes):
    its kind, severity, code and identifier are the group's, its uid and start its own. The collector
    needs nothing else unless the occurrence starts a row or becomes a row's earliest; then ``build()``
    runs the detectors on this flow itself (``make``), so the row says what this flow showed."""

    __slots__ = ("_make", "code", "identifier", "kind", "rule_id", "severity", "ts", "uid")
    count = 1

    def __init__(self, template: Template | FindingDraft, uid: str, ts: float, make) -> None:
        self.kind, self.severity, self.code = template.kind, template.severity, template.code
        self.identifier, self.rule_id = template.identifier, template.rule_id
        self.uid, self.ts, self._make = uid, ts, make

    def draft(self) -> FindingDraft:
        """This flow's own draft of the finding."""
        return self._make(self)

    def build(self) -> Finding:
        return self.draft().build()


def as_finding(fd: Finding | FindingDraft | RepeatDraft) -> Finding:
    """A draft built, a finding as it is."""
    t = type(fd)
    return fd.build() if t is FindingDraft or t is RepeatDraft else fd  # type: ignore[union-attr,return-value]


def _f(kind, sev, code, flow: FlowRecord | None, cls: Classification | None, rule: Rule | None, target, message,
       evidence: dict, ident: str, ts=None) -> FindingDraft:  # fmt: skip
    return FindingDraft(kind, sev, code, flow.uid if flow else None, flow, cls, rule, target, message, evidence, ident,
                        ts if ts is not None else (flow.ts if flow else None))  # fmt: skip


def flow_name(f: FlowRecord, cls: Classification | None) -> str:
    """The best name for a flow's destination (SNI, CONNECT target, Host, DNS, or the address)."""
    return (cls.matched_name if cls and cls.matched_name else None) or (
        f.connect_host if tunnel_elsewhere(f) else None) or f.sni or f.connect_host or f.http_host or (
        f.dns_name if not to_dns(f) else None  # a resolver is not named by what it answered
    ) or f.dst_ip


BAD_TCP_STATES = frozenset({"S0", "SH", "RSTOS0", "REJ"})
BAD_HANDSHAKES = frozenset({
    "reset_after_client_hello", "server_closed_after_client_hello", "silence_after_client_hello", "server_alert",
    "client_alert", "client_abort_after_server_flight",
})  # fmt: skip
CLEAR_APPS = frozenset({"http", "ldap", "smtp", "amqp", "hl7-mllp", "ftp-or-smtp"})
NAME_MATCHES = frozenset({"sni", "connect", "http_host", "dns", "cidr"})


def quiet(f: FlowRecord, cls: Classification, rule: Rule | None, ctx: FindingContext) -> bool:
    """True when no detector below can fire for this flow, which is most flows.

    A conservative pre-check (it may say False for a flow that ends up with no finding, never True for
    one that would have one; tests/unit/test_findings.py checks this on every scenario and corpus flow).
    """
    if cls.verdict == VERDICT_LOCAL:
        return True
    if f.icmp or f.alerts or f.certs or f.connect_host or f.tls_handshake in BAD_HANDSHAKES:
        return False
    if f.http_status in PROXY_REFUSALS:
        return False
    t = f.transport
    if t is Transport.TCP:
        if f.conn_state in BAD_TCP_STATES:
            return False
    elif t is Transport.UDP:
        if f.pkts_s2c == 0:
            return False
    v = cls.verdict
    if v == VERDICT_UNLISTED_PORT or v == VERDICT_LEGACY:
        return False
    if v == VERDICT_UNKNOWN and t is not Transport.ICMP and t is not Transport.OTHER and ctx.is_device(f.src_ip):
        if f.dst_port not in INFRA_PORTS and f.src_port not in INFRA_PORTS and not is_multicast_or_broadcast(f.dst_ip):
            return False
    if rule is not None:
        if rule.cleartext or (rule.tls == "required" and f.app_protocol in CLEAR_APPS):
            return False
        if (rule.app_protocol or "").endswith("+starttls"):  # whether the upgrade happened is per flow
            return False
        if rule.region and ctx.region.get(rule.vendor):
            return False
        if cls.matched_by in NAME_MATCHES:
            if rule.server_cidrs or (f.sni and cls.matched_by == "sni"):
                return False
            if (not rule.tls_inspection_allowed or rule.pinned or rule.expected_issuers) and (
                f.tls_server_version or f.quic_version
            ):
                return False
    return True


def detect_flow(f: FlowRecord, cls: Classification, ctx: FindingContext) -> Iterator[FindingDraft]:
    """All findings about one flow, as drafts (``build()`` gives the ``Finding``; the collector builds
    the ones that make or re-date a row)."""
    rule = ctx.rule(cls.rule_id)
    if quiet(f, cls, rule, ctx):
        return
    yield from _detect(f, cls, rule, ctx)


def _hp(host: str, port) -> str:
    """host:port, an IPv6 address in brackets ([2620:149::1]:443)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _detect(f: FlowRecord, cls: Classification, rule: Rule | None, ctx: FindingContext) -> Iterator[FindingDraft]:
    if cls.verdict == VERDICT_LOCAL:  # loopback: nothing about the network to report
        return
    name = flow_name(f, cls)
    tgt = flow_target(f)
    where = _hp(name, tgt.port) if name == f.dst_ip or tgt.via_proxy else f"{name} ({_hp(f.dst_ip, f.dst_port)})"
    ident_base = f"{cls.rule_id or '-'}|{name}|{tgt.transport}/{tgt.port}"
    yield from _blocked(f, cls, rule, ctx, name, where, ident_base)
    yield from _unexpected(f, cls, rule, ctx, name, where, ident_base, tgt)
    yield from _intercepted(f, cls, rule, ctx, name, where, ident_base)


# -- blocked ---------------------------------------------------------------------------------------
def _blocked(f, cls, rule, ctx, name, where, ident) -> Iterator[FindingDraft]:
    sev = required_severity(rule)
    ev = {"state": f.conn_state or f.state, "history": f.history, "syn_count": f.syn_count or None}
    ended_early = ctx.capture_end is not None and f.ts_last >= ctx.capture_end - END_GRACE
    # a capture showing one side of a conversation whose other side must have existed (the shown side's
    # ACKs say so: a span port, tcpdump -Q out) says nothing about a missing answer
    one_way = f.one_direction is not None
    if f.transport.value == "tcp":
        if f.conn_state in ("S0", "SH", "RSTOS0") and not f.icmp and not one_way:
            if not (ended_early and f.syn_count <= 1 and f.ts_last - f.ts < 0.5):
                yield _f(BLOCKED, sev, "syn_no_reply", f, cls, rule, where,
                         f"SYN to {where} never answered ({f.syn_count} SYN{'s' if f.syn_count != 1 else ''})",
                         ev, f"blocked:syn_no_reply|{ident}")  # fmt: skip
        elif f.conn_state == "REJ":
            yield _f(BLOCKED, sev, "syn_rejected", f, cls, rule, where,
                     f"SYN to {where} answered by RST (connection refused or firewall reject)", ev,
                     f"blocked:syn_rejected|{ident}")  # fmt: skip
    # an unreachable the flow recovered from (a retried SYN that got through, the server's payload
    # followed) blocked nothing
    for itype, icode, reporter in f.icmp if not f.payload_s2c else ():
        v = f.ip_version
        if icmpmod.blocks(v, itype, icode):
            what = icmpmod.describe(v, itype, icode)
            yield _f(BLOCKED, sev, "icmp_unreachable", f, cls, rule, where,
                     f"ICMP {what} from {reporter} for {where}",
                     {**ev, "icmp_type": itype, "icmp_code": icode, "reporter": reporter},
                     f"blocked:icmp_unreachable|{ident}")  # fmt: skip
            break
    hs = f.tls_handshake if not one_way else None
    tev = {**ev, "sni": f.sni, "tls_version": f.tls_version}
    if hs == "reset_after_client_hello" and f.conn_state != "REJ":  # a refused (Fast Open) SYN: syn_rejected says it
        yield _f(BLOCKED, sev, "rst_after_client_hello", f, cls, rule, where,
                 f"connection to {where} reset right after the ClientHello (SNI filtering)", tev,
                 f"blocked:rst_after_client_hello|{ident}")  # fmt: skip
    elif hs == "server_closed_after_client_hello":
        yield _f(BLOCKED, sev, "fin_after_client_hello", f, cls, rule, where,
                 f"server side closed {where} right after the ClientHello without answering (SNI filtering)",
                 tev, f"blocked:fin_after_client_hello|{ident}")  # fmt: skip
    elif hs == "silence_after_client_hello" and (not ended_early or "F" in f.history or "R" in f.history) and not (
        ("F" in f.history or "R" in f.history) and f.ts_last - f.ts < CANCEL_WINDOW
    ):  # fmt: skip
        # the client giving up (its FIN/RST) is conclusive even at the very end of the capture, but not
        # within half a second of its SYN: it did not wait for any answer (a cancelled request)
        yield _f(BLOCKED, sev, "silence_after_client_hello", f, cls, rule, where,
                 f"no answer to the ClientHello for {where} (dropped after SNI inspection?)",
                 {**tev, "client_packets": f.pkts_c2s}, f"blocked:silence_after_client_hello|{ident}")  # fmt: skip
    for a in f.alerts:
        if a.sender == "server" and a.fatal:
            desc = ALERT_NAMES.get(a.description, str(a.description))
            yield _f(BLOCKED, sev, "tls_server_alert", f, cls, rule, where,
                     f"server sent fatal TLS alert {desc} ({a.description}) for {where}",
                     {**tev, "alert": desc}, f"blocked:tls_server_alert|{ident}|{a.description}")  # fmt: skip
            break
    # a proxy refusing the request: a CONNECT, or a plain HTTP request in absolute form (GET http://...,
    # only ever sent to a proxy: CRL and OCSP checks, captive-portal probes)
    if f.http_status in PROXY_REFUSALS and (f.connect_host or flow_target(f).via_proxy):
        what = {403: "403 Forbidden", 407: "407 Proxy Authentication Required"}.get(f.http_status, f"{f.http_status}")
        code = "proxy_auth_required" if f.http_status == 407 else "proxy_denied"
        asked = (f"CONNECT {_hp(f.connect_host, f.connect_port)}" if f.connect_host
                 else f"{f.http_method} {(f.http_uri or '')[:120]}")  # fmt: skip
        yield _f(BLOCKED, sev, code, f, cls, rule, where,
                 f"proxy {_hp(f.dst_ip, f.dst_port)} answered {asked} with {what}",
                 {"proxy": _hp(f.dst_ip, f.dst_port), "status": f.http_status,
                  "connect" if f.connect_host else "request": asked.split(" ", 1)[1]},
                 f"blocked:{code}|{ident}")  # fmt: skip
    if (
        f.transport.value == "udp" and f.pkts_s2c == 0 and not f.icmp and f.dst_port not in INFRA_PORTS
        and f.src_port not in INFRA_PORTS and not is_multicast_or_broadcast(f.dst_ip)
        and not (ended_early and f.pkts_c2s <= 1)
    ):  # fmt: skip
        yield _f(BLOCKED, sev if rule else Severity.LOW, "udp_no_reply", f, cls, rule, where,
                 f"UDP to {where} got no reply ({f.pkts_c2s} datagram{'s' if f.pkts_c2s != 1 else ''})",
                 {"packets": f.pkts_c2s, "app": f.app_protocol}, f"blocked:udp_no_reply|{ident}")  # fmt: skip


# -- unexpected ------------------------------------------------------------------------------------
def _unexpected(f, cls, rule, ctx, name, where, ident, tgt) -> Iterator[FindingDraft]:
    if not ctx.is_device(f.src_ip):
        return
    if cls.verdict == VERDICT_UNKNOWN:
        if tgt.port in INFRA_PORTS or f.src_port in INFRA_PORTS or f.transport.value in ("icmp", "other"):
            return
        if is_multicast_or_broadcast(f.dst_ip):
            return
        yield _f(UNEXPECTED, Severity.LOW, "not_allowed", f, cls, None, where,
                 f"{where}: no loaded ruleset allows this destination",
                 {"transport": tgt.transport, "port": tgt.port, "app": f.app_protocol},
                 f"unexpected:not_allowed|{name}|{tgt.transport}/{tgt.port}")  # fmt: skip
    elif cls.verdict == VERDICT_UNLISTED_PORT:
        yield _f(UNEXPECTED, Severity.MEDIUM, "unlisted_port", f, cls, rule, where,
                 f"{where}: known {rule.vendor if rule else ''} host on {tgt.transport}/{tgt.port}, which the rules do not list",
                 {"matched": cls.reason, "listed_ports": rule.ports_text if rule else None},
                 f"unexpected:unlisted_port|{ident}")  # fmt: skip
    elif cls.verdict == VERDICT_LEGACY:
        yield _f(UNEXPECTED, Severity.MEDIUM, "legacy_apns_binary", f, cls, rule, where,
                 f"{where}: legacy binary APNs provider protocol on {tgt.port} (retired by Apple in 2021; use HTTP/2 on 443 or 2197)",
                 {"state": f.conn_state, "sni": f.sni}, f"unexpected:legacy|{f.src_ip}|{tgt.port}")  # fmt: skip
    if rule is None:
        return
    # cleartext where TLS is expected
    app = f.app_protocol
    if rule.cleartext and app != "tls" and f.pkts_s2c + f.pkts_c2s > 0 and f.state not in ("no_reply", "rejected"):
        upgraded = f.ldap_starttls or f.smtp_starttls is True or (app or "").endswith("+tls")  # STARTTLS & co. (core)
        if not upgraded:
            alt = ctx.rule(rule.secure_alternative)
            sev = Severity.HIGH if f.ldap_simple_bind else Severity.MEDIUM
            detail = " with a simple bind (password in clear)" if f.ldap_simple_bind else ""
            yield _f(UNEXPECTED, sev, "cleartext", f, cls, rule, where,
                     f"{where}: cleartext {rule.app_protocol or app or 'protocol'}{detail}"
                     + (f"; use {alt.app_protocol or alt.service} on {alt.ports_text}" if alt else ""),
                     {"app": app, "secure_alternative": alt.id if alt else None, "simple_bind": f.ldap_simple_bind or None,
                      "starttls": f.smtp_starttls if f.smtp_starttls is not None else None},
                     f"unexpected:cleartext|{ident}")  # fmt: skip
    elif (rule.app_protocol or "").endswith("+starttls") and f.smtp_starttls is False:
        # the rule's protocol is SMTP upgraded by STARTTLS: mail sent, or a login, without it went in clear
        yield _f(UNEXPECTED, Severity.MEDIUM, "cleartext", f, cls, rule, where,
                 f"{where}: SMTP without STARTTLS (mail or a login in clear) where the rule expects "
                 f"{rule.app_protocol}", {"app": app, "starttls": False}, f"unexpected:cleartext|{ident}")  # fmt: skip
    elif rule.tls == "required" and app in ("http", "ldap", "smtp", "amqp", "hl7-mllp", "ftp-or-smtp"):
        yield _f(UNEXPECTED, Severity.MEDIUM, "cleartext", f, cls, rule, where,
                 f"{where}: {app} in clear where the rule expects TLS", {"app": app},
                 f"unexpected:cleartext|{ident}")  # fmt: skip
    # an Apple "no proxy" host reached through an explicit proxy (SUMMARY A4)
    if f.connect_host and rule.proxy == "no" and f.http_status in (None, 200):
        yield _f(UNEXPECTED, Severity.MEDIUM, "proxy_not_supported", f, cls, rule, where,
                 f"{f.connect_host} is documented without proxy support but went through proxy {f.dst_ip}:{f.dst_port}",
                 {"proxy": f"{f.dst_ip}:{f.dst_port}", "status": f.http_status}, f"unexpected:no_proxy|{ident}")  # fmt: skip
    # region mismatch (Kandji K2)
    tenant_region = ctx.region.get(rule.vendor)
    if rule.region and tenant_region and rule.region != tenant_region:
        yield _f(UNEXPECTED, Severity.MEDIUM, "region_mismatch", f, cls, rule, where,
                 f"{where}: {rule.region.upper()} host contacted by {'an' if tenant_region.upper()[:1] in 'AEFHILMNORSX' else 'a'} {tenant_region.upper()} tenant",
                 {"rule_region": rule.region, "tenant_region": tenant_region}, f"unexpected:region|{ident}")  # fmt: skip


# -- intercepted -----------------------------------------------------------------------------------
def _family_listed(ip: str, cidrs) -> bool:
    """True when ``cidrs`` holds a network of ``ip``'s address family."""
    v6 = ":" in ip
    return any((":" in c) == v6 for c in cidrs)


def server_answered(f: FlowRecord) -> bool:
    """The server side answered: a payload from it, or (TCP) its SYN-ACK (``h`` in the history). A RST
    refusing the SYN is no answer."""
    return f.payload_s2c > 0 or (f.transport is Transport.TCP and "h" in f.history)


def _tenant_guard(f: FlowRecord, cls: Classification, rule: Rule, ctx: FindingContext) -> Rule | None:
    """A rule that forbids inspection of a name only a wildcard rule that allows it matched by host: the
    tenant's own host with its placeholder unfilled (``{instance}.jamfcloud.com`` under the Jamf-hosted
    services' ``*.jamfcloud.com``). Classification prefers the wildcard (a better match than a pattern),
    but an inspected instance must not pass as a hosted service's note. A host listed by name (exact)
    keeps its own rule."""
    if cls.confidence != "wildcard" or not cls.matched_name:
        return None
    tgt = flow_target(f)
    for hit in ctx.index.match_name(cls.matched_name):
        r = hit.rule
        if (hit.confidence == "pattern" and r.vendor == rule.vendor and (not r.tls_inspection_allowed or r.pinned)
                and r.port_ok(tgt.port, tgt.transport)):  # fmt: skip
            return r
    return None


def _intercepted(f, cls, rule, ctx, name, where, ident) -> Iterator[FindingDraft]:
    vendor_flow = rule is not None and cls.matched_by in ("sni", "connect", "http_host", "dns", "cidr")
    # a rule that allows inspection is not protected by naming its usual issuers: an inspection CA there is
    # worth a note (LOW), not an alarm
    protected = vendor_flow and (not rule.tls_inspection_allowed or rule.pinned)
    if vendor_flow and not protected:
        guard = _tenant_guard(f, cls, rule, ctx)
        if guard is not None:  # the vendor's own host by name: its rule's issuers, not the wildcard's
            rule, protected = guard, True
    tls_seen = f.sni is not None or f.tls_handshake is not None
    ev = {"sni": f.sni, "tls_version": f.tls_server_version or f.tls_version, "handshake": f.tls_handshake}
    leaf = f.certs[0] if f.certs else None
    genuine = False  # the leaf is the expected issuers', valid at the flow's start, nothing of a proxy in the chain
    # a DNS filter's block page: the name resolved to the filter's server, which presents a certificate
    # for another name. Said in the message, so the engineer looks at the DNS filter, not for a proxy
    block_page = ""
    if leaf is not None and f.sni and not flow_target(f).via_proxy and (leaf.san or leaf.subject_cn) and (
        not _cert_names(leaf, f.sni) and f.dst_ip in ctx.dnsmap.addresses(f.sni)
    ):
        block_page = (f"; the DNS answer for {f.sni} led here ({f.dst_ip}): a DNS filter's block page? "
                      "check the DNS filter, not only for a proxy")  # fmt: skip
        ev["dns_answer"] = f.dst_ip
    if leaf is not None:
        ev.update(issuer=leaf.issuer, subject=leaf.subject, cert_sha256=leaf.sha256)
        inspection = ctx.inspection_product(leaf)
        # a chain whose leaf names the expected issuer but whose intermediate was issued by an inspection
        # CA (names are copied, signatures are not checked here): the chain says what the leaf hides
        above = next((c for c in f.certs[1:8] if ctx.inspection_product(c)), None) if not inspection else None
        if protected:
            set_name = rule.expected_issuers or "public"
            if inspection or above is not None or leaf.self_signed or not ctx.issuer_ok(leaf, set_name):
                why = ("a known TLS-inspection CA" if inspection
                       else f"whose certificate in the chain was issued by TLS-inspection CA "
                            f"{above.issuer_cn or above.issuer}" if above is not None
                       else "self-signed" if leaf.self_signed
                       else f"not one of the expected '{set_name}' issuers")  # fmt: skip
                yield _f(INTERCEPTED, Severity.HIGH, "issuer_mismatch", f, cls, rule, where,
                         f"{where}: certificate issued by {leaf.issuer_cn or leaf.issuer} ({why}){block_page}", ev,
                         f"intercepted:issuer|{ident}|{leaf.issuer}")  # fmt: skip
        elif inspection and tls_seen:
            yield _f(INTERCEPTED, Severity.LOW, "inspection_ca_seen", f, cls, rule, where,
                     f"{where}: certificate issued by TLS-inspection CA {leaf.issuer_cn or leaf.issuer}", ev,
                     f"intercepted:inspection_ca|{leaf.issuer}")  # fmt: skip
        elif leaf.self_signed and not ctx.trusted(leaf):
            yield _f(INTERCEPTED, Severity.LOW, "self_signed_certificate", f, cls, rule, where,
                     f"{where}: self-signed certificate {leaf.subject_cn or leaf.subject}", ev,
                     f"intercepted:self_signed|{leaf.sha256}")  # fmt: skip
        elif not protected and len(f.certs) > 1 and f.certs[-1].self_signed and not (
            ctx.issuer_ok(f.certs[-1], "public") or ctx.issuer_ok(leaf, "public")
        ):
            root = f.certs[-1]
            yield _f(INTERCEPTED, Severity.LOW, "private_root", f, cls, rule, where,
                     f"{where}: the server sent its own root {root.subject_cn or root.subject}, not a public CA", ev,
                     f"intercepted:private_root|{root.sha256}")  # fmt: skip
        name = f.sni or f.connect_host
        if name and leaf.subject_cn is not None or leaf.san:
            if name and not _cert_names(leaf, name):
                yield _f(INTERCEPTED, Severity.HIGH if protected else Severity.LOW, "certificate_name_mismatch", f, cls,
                         rule, where, f"{where}: the certificate ({', '.join(leaf.san[:3]) or leaf.subject_cn}) does not name {name}"
                         f"{block_page}",
                         ev, f"intercepted:name|{name}|{leaf.sha256}")  # fmt: skip
        expired, not_yet = validity(leaf.not_before, leaf.not_after, f.ts)
        genuine = (not inspection and above is None and not leaf.self_signed and not expired and not not_yet
                   and ctx.issuer_ok(leaf, rule.expected_issuers or "public") if rule is not None else False)  # fmt: skip
        if expired:
            yield _f(INTERCEPTED, Severity.MEDIUM if protected else Severity.LOW, "certificate_expired", f, cls, rule,
                     where, f"{where}: certificate expired on {leaf.not_after[:10]}", ev,
                     f"intercepted:expired|{leaf.sha256}")  # fmt: skip
        elif not_yet:  # minted with a skewed clock, as forgeries are
            yield _f(INTERCEPTED, Severity.MEDIUM if protected else Severity.LOW, "certificate_not_yet_valid", f, cls,
                     rule, where, f"{where}: certificate not valid before {leaf.not_before[:10]}, but the capture "
                     f"says {_iso(f.ts)[:10]} (a certificate minted in haste, or a capture with a wrong clock)", ev,
                     f"intercepted:not_yet_valid|{leaf.sha256}")  # fmt: skip
    # unknown_ca, bad_certificate...: "always fatal" (RFC 5246 7.2), whatever level a client gives them
    rej = [a for a in f.alerts if a.sender == "client" and a.description in CERT_REJECT_ALERTS and a.after_server_flight]
    if rej and tls_seen and genuine and rej[0].description == 45:
        # certificate_expired for a chain valid at the capture's time: the device's clock, not a proxy (a
        # forged chain that copies the issuer's name is refused as unknown_ca or bad_certificate instead)
        yield _f(BLOCKED, Severity.MEDIUM, "certificate_rejected_as_expired", f, cls, rule, where,
                 f"{where}: the client refused the certificate as expired, but it is valid at the capture's time "
                 f"(until {(leaf.not_after or '')[:10]}) and issued by {leaf.issuer_cn or leaf.issuer} as expected: "
                 "the device's clock is probably wrong", {**ev, "alert": "certificate_expired"},
                 f"blocked:certificate_rejected_as_expired|{ident}")  # fmt: skip
    elif rej and tls_seen:
        desc = ALERT_NAMES.get(rej[0].description, str(rej[0].description))
        yield _f(INTERCEPTED, Severity.HIGH if protected else Severity.MEDIUM, "client_rejected_certificate", f, cls,
                 rule, where, f"{where}: client refused the server certificate ({'fatal' if rej[0].fatal else 'warning'} "
                 f"alert {desc})",
                 {**ev, "alert": desc}, f"intercepted:client_alert|{ident}")  # fmt: skip
    if protected and f.tls_handshake == "client_abort_after_server_flight" and not f.one_direction and (rule.pinned or f.tls_server_version == "TLSv1.3"):
        yield _f(INTERCEPTED, Severity.HIGH if rule.pinned else Severity.MEDIUM, "handshake_aborted_after_server_reply",
                 f, cls, rule, where,
                 f"{where}: the client closed the connection right after the server's handshake reply "
                 f"({'pinned host' if rule.pinned else 'certificate probably rejected'})",
                 {**ev, "client_records": " ".join(f"{t}:{n}" for t, n in f.client_records_after_server)},
                 f"intercepted:abort|{ident}")  # fmt: skip
    # the server's address says something only when it is known: the flow's own, or a proxied flow's
    # CONNECT to an IP literal (through a proxy to a name, the flow's address is the proxy's); and only
    # against the vendor's networks of its address family (the documents give Apple's 17.0.0.0/8 and no
    # IPv6 block: an IPv6 APNs server is neither in nor out of range)
    # Only a server that answered (its SYN-ACK, or its payload) was "served from" an address: a SYN refused
    # by RST or never answered says where the client went, not who serves the name (the blocked finding
    # says the rest)
    server = flow_target(f).address
    if (vendor_flow and server and rule.server_cidrs and cls.matched_by in ("sni", "dns", "http_host")
            and server_answered(f) and _family_listed(server, rule.server_cidrs)
            and not ip_in(server, rule.server_cidrs)):  # fmt: skip
        yield _f(INTERCEPTED, Severity.HIGH, "server_outside_vendor_range", f, cls, rule, where,
                 f"{where}: {name} is served from {server}, outside {', '.join(rule.server_cidrs)}",
                 {**ev, "server_ip": server, "expected": ", ".join(rule.server_cidrs)},
                 f"intercepted:range|{ident}|{server}")  # fmt: skip
    if vendor_flow and server == f.dst_ip and f.sni and cls.matched_by == "sni":
        answered = ctx.dnsmap.addresses(f.sni)
        if (answered and f.dst_ip not in answered and not any(s in SINKHOLES for s in answered)
                and ctx.lookups.before(f.src_ip, f.sni, f.ts)):  # fmt: skip
            # a note, not an alarm: a transparent proxy keeps the address DNS gave; another one says the
            # device did not use the answers (an older cached one, DNS over HTTPS, a fixed address)
            yield _f(INTERCEPTED, Severity.LOW, "server_not_in_dns_answer", f, cls, rule, where,
                     f"{where}: DNS answered {', '.join(sorted(answered)[:4])} for {f.sni} ({f.src_ip} asked too), but "
                     f"the connection went to {f.dst_ip} (a cached address, DNS over HTTPS or a fixed one?)",
                     {**ev, "dns_answers": ", ".join(sorted(answered)[:8])}, f"intercepted:dns|{ident}|{f.dst_ip}")  # fmt: skip
    if protected and leaf is None and f.tls_server_version == "TLSv1.3" and f.tls_handshake in ("complete", "incomplete"):
        yield _f(INTERCEPTED, Severity.INFO, "evidence_unavailable", f, cls, rule, where,
                 f"{where}: TLS 1.3 hides the certificate; interception can neither be confirmed nor excluded from "
                 f"the chain (handshake {f.tls_handshake}, no other interception signal)", {**ev, "cert": "unavailable: tls1.3"},
                 f"intercepted:unavailable|{ident}")  # fmt: skip
    elif protected and leaf is None and f.quic_version and f.sni and f.transport is Transport.UDP:
        # QUIC carries TLS 1.3 inside its own encryption: past the client's Initial nothing is readable
        yield _f(INTERCEPTED, Severity.INFO, "evidence_unavailable", f, cls, rule, where,
                 f"{where}: QUIC ({f.quic_version}) carries TLS 1.3 encrypted: the certificate is not visible, so "
                 "interception can neither be confirmed nor excluded (no other interception signal)",
                 {**ev, "quic_version": f.quic_version, "cert": "unavailable: quic"},
                 f"intercepted:unavailable|{ident}")  # fmt: skip
    elif protected and leaf is None and f.tls_server_version and f.tls_handshake == "complete":
        # TLS <= 1.2 completed without a Certificate message: a resumed session (or one the capture lost)
        yield _f(INTERCEPTED, Severity.INFO, "evidence_unavailable", f, cls, rule, where,
                 f"{where}: no certificate in the {f.tls_server_version} handshake (a resumed session, or not "
                 "captured); interception can neither be confirmed nor excluded", {**ev, "cert": "unavailable: resumed"},
                 f"intercepted:unavailable|{ident}")  # fmt: skip


def validity(not_before: str | None, not_after: str | None, ts: float) -> tuple[bool, bool]:
    """(expired, not yet valid) of a certificate at a flow's start ``ts`` (ISO dates, compared as text)."""
    now = _iso(ts) if ts else None
    if not now:
        return False, False
    if not_after and not_after < now:
        return True, False
    return False, bool(not_before and not_before > now)


def _iso(ts: float) -> str | None:
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):
        return None  # a hostile timestamp: no expiry verdict


def _cert_names(cert: CertInfo, host: str) -> bool:
    """True when the certificate's SAN DNS names (or CN when there are none) cover ``host`` (RFC 6125)."""
    names = cert.san or ((cert.subject_cn,) if cert.subject_cn else ())
    host = host.lower().rstrip(".")
    for n in names:
        n = n.lower().rstrip(".")
        if n == host:
            return True
        if n.startswith("*.") and host.count(".") == n.count(".") and host.endswith(n[1:]):
            return True
    return False


# -- DNS -------------------------------------------------------------------------------------------
def detect_dns(tx: DnsTransaction, ctx: FindingContext) -> Iterator[FindingDraft]:
    """Blocked-by-DNS findings for names a ruleset lists (drafts, as detect_flow gives)."""
    if not tx.query:
        return
    hits = ctx.index.match_name(tx.query)
    if not hits:
        return
    rule = hits[0].rule
    sev = required_severity(rule)
    ev = {"query": tx.query, "qtype": tx.qtype, "rcode": tx.rcode, "resolver": tx.server_ip,
          "answers": ", ".join(a.value for a in tx.answers[:6]), "process": tx.process}  # fmt: skip
    cls = None
    if tx.rcode in FAILED_RCODES:
        code = f"dns_{tx.rcode.lower()}"
        yield _with_uid(
            _f(BLOCKED, sev, code, None, cls, rule, tx.query, f"DNS {tx.rcode} for {tx.query} from {tx.server_ip}",
               ev, f"blocked:{code}|{rule.id}|{tx.query}", ts=tx.ts), tx.uid)  # fmt: skip
    elif tx.sinkholed:
        yield _with_uid(
            _f(BLOCKED, sev, "dns_sinkhole", None, cls, rule, tx.query,
               f"DNS answered {tx.query} with a sinkhole address ({ev['answers']})", ev,
               f"blocked:dns_sinkhole|{rule.id}|{tx.query}", ts=tx.ts), tx.uid)  # fmt: skip
    elif tx.rcode is None:
        # never answered (a filter that drops the query); a query the capture's end may have cut says nothing
        if ctx.capture_end is not None and tx.ts >= ctx.capture_end - END_GRACE:
            return
        yield _with_uid(
            _f(BLOCKED, sev, "dns_no_response", None, cls, rule, tx.query,
               f"DNS query for {tx.query} ({tx.qtype or '?'}) to {tx.server_ip} was never answered", ev,
               f"blocked:dns_no_response|{rule.id}|{tx.query}", ts=tx.ts), tx.uid)  # fmt: skip
    elif no_address(tx):
        yield _with_uid(
            _f(BLOCKED, sev, "dns_no_address", None, cls, rule, tx.query,
               f"DNS answered {tx.query} from {tx.server_ip} with no address (NOERROR without an A record: "
               "a filter's NODATA answer)", ev, f"blocked:dns_no_address|{rule.id}|{tx.query}", ts=tx.ts),
            tx.uid)  # fmt: skip


# a lookup that failed: what a later good answer for the same name makes a transient failure
DNS_FAILURES = frozenset({"dns_nxdomain", "dns_refused", "dns_servfail", "dns_no_response", "dns_no_address"})


def no_address(tx: DnsTransaction) -> bool:
    """A NOERROR answer to an A query with no A record in it (NODATA, CNAMEs or not): a vendor's host
    always has an IPv4 address, so this is a DNS filter's way of blocking it (AAAA is left out: many hosts
    have no IPv6 address). A truncated answer (TC) is none: the client asks again over TCP."""
    return (tx.rcode == "NOERROR" and tx.qtype == "A" and not tx.truncated
            and not any(a.rtype == "A" for a in tx.answers))  # fmt: skip


def _with_uid(fd: FindingDraft, uid: str) -> FindingDraft:
    return fd._replace(uid=uid)


def _region_flows(flows: list[tuple[FlowRecord, Classification]], ctx: FindingContext) -> dict[str, dict[str, list]]:
    """The pinned device-domain flows of each vendor whose region is not configured, by region."""
    by: dict[str, dict[str, list]] = {}
    for f, c in flows:
        r = ctx.rule(c.rule_id)
        if r is None or not r.region or not r.pinned or r.vendor in ctx.region:
            continue
        by.setdefault(r.vendor, {}).setdefault(r.region, []).append(f)
    return by


def region_findings(flows: list[tuple[FlowRecord, Classification]], ctx: FindingContext) -> dict[str, str]:
    """Infer each vendor's tenant region from pinned device-domain flows when not configured."""
    out = dict(ctx.region)
    for vendor, regions in _region_flows(flows, ctx).items():
        ranked = sorted(((reg, len(fs)) for reg, fs in regions.items()), key=lambda kv: -kv[1])
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:  # a tie says nothing
            out[vendor] = ranked[0][0]
    return out


def region_ties(flows: list[tuple[FlowRecord, Classification]], ctx: FindingContext) -> dict[str, dict[str, list]]:
    """Vendors whose region is not configured and whose pinned device-domain flows go to several regions
    equally often (no region can be inferred, so no mismatch is checked): vendor -> region -> flows."""
    out = {}
    for vendor, regions in _region_flows(flows, ctx).items():
        sizes = sorted((len(v) for v in regions.values()), reverse=True)
        if len(sizes) > 1 and sizes[0] == sizes[1]:
            out[vendor] = regions
    return out


def region_note(vendor: str, regions: dict[str, list]) -> tuple[Finding, tuple[str, ...]]:
    """The info note of a ``region_ties`` vendor: which regions its device-domain flows reached, and the
    setting that decides which of them are mismatched."""
    flows = sorted((f for fs in regions.values() for f in fs), key=lambda f: (f.ts, f.uid))
    counts = ", ".join(f"{reg} {len(fs)}" for reg, fs in sorted(regions.items()))
    names = " or ".join(sorted(regions))
    finding = Finding(
        kind=FindingKind.UNEXPECTED, severity=Severity.INFO, code="region_ambiguous", uid=flows[0].uid,
        rule_id=None, vendor=vendor, service="tenant region", target=f"{vendor} tenant",
        message=(f"{vendor}: the tenant's device-domain flows reached several regions equally ({counts} flows) "
                 f"and no region is set, so region mismatches were not checked; set the tenant's region "
                 f"(--tenant {vendor}.region={names}) to see which hosts are the wrong region's"),
        evidence=(("regions", counts),), identifier=f"unexpected:region_ambiguous|{vendor}", ts=flows[0].ts,
        count=len(flows),
    )  # fmt: skip
    return finding, tuple(f.uid for f in flows)


def fold_key(src: str, sport: int, dst: str, dport: int) -> str:
    """The endpoint a parallel audit partitions a flow by (``engine.client_key``): the one with the higher
    port, on a tie the lower address. A key's flows all go to one process."""
    if sport != dport:
        return src if sport > dport else dst
    try:
        return src if ipaddress.ip_address(src) <= ipaddress.ip_address(dst) else dst
    except (ValueError, TypeError):
        return min(src, dst)


class FindingCollector:
    """Folds findings with the same identifier into one row (count, uids, first time, worst severity).

    Repeats are the common case (every unanswered SYN to one host, every flow to one unknown service), so
    a repeat costs a few dict operations: the folded ``Finding`` is only built by ``rows()``.

    Rows stay few on hostile traffic too. Findings of a flow carry its client (the flow's source) and a
    budget key: the endpoint a parallel audit partitions the flow by (``fold_key``), which is the client
    unless its port is the lower one. Each key may bring ``MAX_NEW_PER_CLIENT`` distinct destinations
    (identifiers) per code into the table; its findings for further new destinations of that code fold
    into one "<client> -> more destinations" row (a port or address scan, a worm, a device behind a blanket
    block). The choice depends only on the sequence of that key's own findings, which one process sees
    whole and in the same order with any ``--jobs``, so the rows are the same with any job count. Past
    ``MAX_ROWS`` rows in all (a last resort: that fold may differ with ``--jobs``; the processes of a
    parallel audit hold an equal share each), new destinations fold into one row per code. The flows
    table still lists every flow.
    """

    MAX_UIDS = 1000  # uids kept per finding row (the count keeps counting)
    MAX_NEW_PER_CLIENT = 100  # rows one client may start for one code before the rest fold
    MAX_ROWS = 50_000  # rows in all before new destinations of a code fold into one row

    def __init__(self, processes: int = 1) -> None:
        # a parallel audit's processes share MAX_ROWS, as they share --max-flows
        self.max_rows = -(-self.MAX_ROWS // max(processes, 1))
        self._first: dict[str, Finding] = {}  # identifier -> earliest occurrence
        self._count: dict[str, int] = {}
        self._sev: dict[str, Severity] = {}
        self._uids: dict[str, dict[str, None]] = {}  # insertion-ordered sets
        self._seen: dict[tuple[str, str], str | set[str]] = {}  # (budget key, code) -> its identifiers
        self._more: dict[str, str | None] = {}  # identifier of an "and N more" row -> its client (None: all)
        self.raw = 0

    def __len__(self) -> int:
        return len(self._first)

    def add(self, fd: Finding | FindingDraft, client: str | None = None, key: str | None = None) -> Finding | None:
        """Add a finding of a flow from ``client`` (budget ``key``, default the client); returns the row's
        finding when it starts a row, None when it is a repeat (or folds into an existing "more" row). A
        draft is only built when it starts a row or is the row's earliest occurrence."""
        self.raw += 1
        ident = fd.identifier
        if client is not None and not self._budget(key or client, fd.code, ident):
            return self._fold_more(fd, client)
        if ident not in self._first and len(self._first) >= self.max_rows:
            return self._fold_more(fd, None)
        return self._fold(ident, fd, fd.count, fd.severity, (fd.uid,) if fd.uid else ())

    def _budget(self, key: str, code: str, ident: str) -> bool:
        """Whether budget ``key`` may bring ``ident`` for ``code`` (it has, or it has room: then noted);
        False, nothing noted, when its ``MAX_NEW_PER_CLIENT`` destinations are taken."""
        k = (key, code)
        seen = self._seen.get(k)
        if seen is None:  # most keys bring one destination: a str until a second one comes
            self._seen[k] = ident
        elif type(seen) is str:
            if seen != ident:
                self._seen[k] = {seen, ident}
        elif ident not in seen:
            if len(seen) >= self.MAX_NEW_PER_CLIENT:
                return False
            seen.add(ident)
        return True

    def repeat(self, t: Template, uid: str, ts: float, client: str, key: str) -> bool:
        """``add`` of a ``RepeatDraft`` of ``t`` (``uid``, ``ts``) from ``client`` (budget ``key``) when
        it is only counted: its row exists, it is not the row's earliest, and its key's budget for the
        code does not fold it. Returns False, having changed nothing, otherwise (``add`` then takes it)."""
        ident = t.identifier
        old = self._first.get(ident)
        if old is None or ts < (old.ts or 0):
            return False
        if not self._budget(key, t.code, ident):
            return False
        self.raw += 1
        self._count[ident] += 1
        if t.severity > self._sev[ident]:
            self._sev[ident] = t.severity
        have = self._uids[ident]
        if len(have) < self.MAX_UIDS:
            have[uid] = None
        return True

    def _fold_more(self, fd: Finding | FindingDraft, client: str | None) -> Finding | None:
        """Fold ``fd`` into the "and N more" row of its code (and client)."""
        key = f"more:{fd.kind.value}:{fd.code}|{client or '*'}"
        if key not in self._more:
            self._more[key] = client
        old = self._first.get(key)
        if old is None or (fd.ts or 0) < (old.ts or 0):  # the row's representative: say what it folds
            fd = as_finding(fd)
            fd = replace(fd, identifier=key, target=f"{client} -> more destinations" if client else "more destinations",
                         rule_id=None, vendor=None, service=None, message=self._more_message(fd, client),
                         evidence=(("client", client or ""), ("first_target", fd.target or ""),
                                   ("first_message", fd.message)))  # fmt: skip
        return self._fold(key, fd, fd.count, fd.severity, (fd.uid,) if fd.uid else ())

    def _more_message(self, fd: Finding, client: str | None, n: int | None = None) -> str:
        what = f"{n:,} more {fd.code} findings" if n is not None else f"more {fd.code} findings"
        if client:
            return (f"{client}: {what} for destinations past the first {self.MAX_NEW_PER_CLIENT} this client "
                    "had (a scan, or everything blocked?); the flows table lists them all")  # fmt: skip
        return f"{what} past the first {self.MAX_ROWS:,} rows of this table; the flows table lists them all"

    def merge(self, other: FindingCollector) -> None:
        """Fold another collector (another partition of the capture) into this one."""
        self._more.update(other._more)
        for key, fd in other._first.items():
            self._fold(key, fd, other._count[key], other._sev[key], other._uids[key])
        self.raw += other.raw

    def _fold(self, key: str, fd: Finding | FindingDraft, count: int, sev: Severity, uids) -> Finding | None:
        """Fold ``count`` occurrences whose earliest is ``fd`` into row ``key``; returns the row's finding
        when the row is new, else None."""
        old = self._first.get(key)
        if old is None:
            fd = self._first[key] = as_finding(fd)
            self._count[key] = count
            self._sev[key] = sev
            self._uids[key] = dict.fromkeys(uids)
            return fd
        if (fd.ts or 0) < (old.ts or 0):
            self._first[key] = as_finding(fd)
        self._count[key] += count
        if sev > self._sev[key]:
            self._sev[key] = sev
        have = self._uids[key]
        for u in uids:
            if len(have) >= self.MAX_UIDS:
                break
            have[u] = None
        return None

    def add_row(self, fd: Finding, uids: tuple[str, ...]) -> Finding | None:
        """Fold a finding about several flows (``uids``) in, outside any client's budget (the findings of
        the cross-flow analyses, made once the whole flows table is known)."""
        self.raw += 1
        return self._fold(fd.identifier, fd, fd.count, fd.severity, uids)

    def targets(self, codes: frozenset[str]) -> set[str]:
        """The targets of the rows of these codes."""
        return {f.target for f in self._first.values() if f.code in codes and f.target}

    def soften(self, codes: frozenset[str], targets: set[str], note: str) -> None:
        """Rows of ``codes`` about ``targets`` become LOW notes with ``note`` added to their message (a later
        analysis showed what they report did not last)."""
        for key, f in list(self._first.items()):
            if f.code in codes and f.target in targets:
                self._first[key] = replace(f, severity=Severity.LOW, message=f"{f.message}; {note}")
                self._sev[key] = Severity.LOW

    def retract(self, code: str, uids: set[str]) -> int:
        """Take the flows ``uids`` out of the rows of ``code`` (a later analysis replaced what those rows
        said about them); a row left with no flow goes. Returns the occurrences taken out."""
        taken = 0
        for key in [k for k, f in self._first.items() if f.code == code]:
            have = self._uids[key]
            gone = [u for u in have if u in uids]
            if not gone:
                continue
            for u in gone:
                del have[u]
            taken += len(gone)
            self._count[key] -= len(gone)
            if self._count[key] <= 0 or not have:
                for d in (self._first, self._count, self._sev, self._uids):
                    del d[key]
                self._more.pop(key, None)
            elif self._first[key].uid in uids:
                self._first[key] = replace(self._first[key], uid=next(iter(have)))
        return taken

    def rows(self) -> list[tuple[Finding, tuple[str, ...]]]:
        """Findings in time order with every uid involved."""
        out = [
            (replace(f, count=self._count[k], severity=self._sev[k],
                     **({"message": self._more_message(f, self._more[k], self._count[k])} if k in self._more else {})),
             tuple(self._uids[k]))
            for k, f in self._first.items()
        ]  # fmt: skip
        out.sort(key=lambda x: (x[0].ts if x[0].ts is not None else float("inf"), -int(x[0].severity), x[0].code))
        return out
