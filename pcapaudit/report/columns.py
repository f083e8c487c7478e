"""Column maps and row builders of the output tables, without pandas.

The streaming side of an audit builds rows with these without importing pandas (parallel workers never
load it); ``frames.py`` turns rows into typed DataFrames at the edge.
"""

from __future__ import annotations

import json

from pcapaudit.model import Classification, DnsTransaction, FlowBase, FlowRecord
from pcapaudit.report.community_id import flow_community_id

SEVERITY_ORDER = ["info", "low", "medium", "high"]

FLOW_COLUMNS: dict[str, str] = {
    "uid": "string", "ts": "datetime64[us, UTC]", "ts_last": "datetime64[us, UTC]", "duration": "float64",
    "transport": "category", "src_ip": "string", "src_port": "UInt16", "dst_ip": "string", "dst_port": "UInt16",
    "ip_version": "UInt8", "vlan": "UInt16", "inner_vlan": "UInt16", "state": "category", "conn_state": "category",
    "history": "string", "syn_count": "UInt32", "one_direction": "category", "pkts_c2s": "UInt64", "pkts_s2c": "UInt64", "bytes_c2s": "UInt64",
    "bytes_s2c": "UInt64", "payload_c2s": "UInt64", "payload_s2c": "UInt64", "app_protocol": "category",
    "sni": "string", "alpn": "string", "tls_version": "category", "tls_server_version": "category",
    "tls_cipher": "string", "tls_handshake": "category", "tls_ech": "boolean", "cert_issuer": "string",
    "cert_subject": "string", "cert_sha256": "string", "cert_self_signed": "boolean", "cert_chain": "string",
    "tls_alerts": "string", "tls_server_shape": "string", "tls_server_flight": "UInt32",
    "quic_version": "category", "http_method": "category", "http_host": "string", "http_uri": "string",
    "http_status": "UInt16", "connect_host": "string", "connect_port": "UInt16", "ldap_simple_bind": "boolean",
    "ldap_starttls": "boolean", "smtp_starttls": "boolean", "icmp": "string", "dns_name": "string",
    "dns_names": "string", "process": "string", "pid": "UInt32", "eprocess": "string", "interface": "category",
    "vendor": "category", "rule_id": "string", "service": "string", "matched_by": "category",
    "matched_name": "string", "confidence": "category", "verdict": "category",
    "reason": "string", "community_id": "string",
}  # fmt: skip

FINDING_COLUMNS: dict[str, str] = {
    "ts": "datetime64[us, UTC]", "kind": "category", "severity": "category", "code": "category",
    "vendor": "category", "rule_id": "string", "service": "string", "target": "string", "message": "string",
    "count": "UInt32", "uid": "string", "uids": "string", "evidence": "string", "identifier": "string",
}  # fmt: skip

COVERAGE_COLUMNS: dict[str, str] = {
    "vendor": "category", "rule_id": "string", "service": "string", "required": "category",
    "targets": "string", "status": "category", "attempted": "boolean", "reached": "boolean",
    "blocked": "boolean", "intercepted": "boolean", "flows": "UInt32", "uids": "string", "note": "string",
    "processes": "string",
}  # fmt: skip

DNS_COLUMNS: dict[str, str] = {
    "uid": "string", "ts": "datetime64[us, UTC]", "client_ip": "string", "server_ip": "string",
    "transport": "category", "trans_id": "UInt16", "query": "string", "qtype": "category", "rcode": "category",
    "answers": "string", "rtt": "float64", "sinkholed": "boolean", "vendor": "category", "rule_id": "string",
    "process": "string", "opcode": "category", "truncated": "boolean",
}  # fmt: skip

WEIRD_COLUMNS: dict[str, str] = {
    "ts": "datetime64[us, UTC]", "name": "category", "uid": "string", "detail": "string", "count": "UInt64",
}  # fmt: skip



def flow_row(f: FlowRecord, c: Classification) -> tuple:
    """One flows-table row, values in FLOW_COLUMNS order."""
    leaf = f.certs[0] if f.certs else None
    chain = json.dumps([{"subject": x.subject, "issuer": x.issuer, "sha256": x.sha256, "self_signed": x.self_signed,
                         "not_after": x.not_after} for x in f.certs]) if f.certs else None  # fmt: skip
    is_ldap = f.app_protocol == "ldap"
    return (
        f.uid, f.ts, f.ts_last, round(f.ts_last - f.ts, 6), f.transport.value, f.src_ip, f.src_port, f.dst_ip,
        f.dst_port, f.ip_version, f.vlan, f.inner_vlan, f.state, f.conn_state, f.history, f.syn_count,
        f.one_direction, f.pkts_c2s,
        f.pkts_s2c, f.bytes_c2s, f.bytes_s2c, f.payload_c2s, f.payload_s2c, f.app_protocol, f.sni,
        ",".join(f.alpn) if f.alpn else None, f.tls_version, f.tls_server_version, f.tls_cipher, f.tls_handshake,
        f.tls_ech if (f.sni or f.tls_handshake) else None, leaf.issuer if leaf else None,
        leaf.subject if leaf else None, leaf.sha256 if leaf else None, leaf.self_signed if leaf else None, chain,
        ";".join(f"{a.sender}:{'fatal' if a.fatal else 'warning'}:{a.description}" for a in f.alerts) or None,
        f.tls_server_shape, sum(f.tls_server_flight) if f.tls_server_flight else None,
        f.quic_version, f.http_method, f.http_host, f.http_uri, f.http_status, f.connect_host, f.connect_port,
        f.ldap_simple_bind if is_ldap else None, f.ldap_starttls if is_ldap else None, f.smtp_starttls,
        ";".join(f"{t}/{code} from {rep}" for t, code, rep in f.icmp) or None, f.dns_name,
        ";".join(f.dns_names) or None, f.process, f.pid, f.eprocess, f.interface, c.vendor, c.rule_id, c.service,
        c.matched_by, c.matched_name, c.confidence, c.verdict, c.reason,
        flow_community_id(f.transport.value, f.src_ip, f.dst_ip, f.src_port, f.dst_port),
    )  # fmt: skip


_PLAIN_MIDDLE = (None,) * 26  # sni .. icmp: what flow_row gives a record without TLS/QUIC/HTTP/LDAP/SMTP/ICMP


def plain_row(b: FlowBase, c: Classification) -> tuple:
    """``flow_row`` of a ``FlowBase`` (tests/unit/test_engine.py checks that they agree)."""
    return (
        b.uid, b.ts, b.ts_last, round(b.ts_last - b.ts, 6), b.transport.value, b.src_ip, b.src_port, b.dst_ip,
        b.dst_port, b.ip_version, b.vlan, b.inner_vlan, b.state, b.conn_state, b.history, b.syn_count,
        b.one_direction, b.pkts_c2s,
        b.pkts_s2c, b.bytes_c2s, b.bytes_s2c, b.payload_c2s, b.payload_s2c, b.app_protocol,
        *_PLAIN_MIDDLE,
        b.dns_name, ";".join(b.dns_names) or None, b.process, b.pid, b.eprocess, b.interface, c.vendor, c.rule_id,
        c.service, c.matched_by, c.matched_name, c.confidence, c.verdict, c.reason,
        flow_community_id(b.transport.value, b.src_ip, b.dst_ip, b.src_port, b.dst_port),
    )  # fmt: skip


def dns_row(t: DnsTransaction, rule) -> tuple:
    """One DNS-table row (``rule``: the rule the query name matched, or None)."""
    return (
        t.uid, t.ts, t.client_ip, t.server_ip, t.transport, t.trans_id, t.query, t.qtype, t.rcode,
        ";".join(f"{a.rtype}:{a.value}" for a in t.answers) or None, t.rtt,
        t.sinkholed if t.answers else None, rule.vendor if rule else None, rule.id if rule else None, t.process,
        t.opcode, t.truncated,
    )
