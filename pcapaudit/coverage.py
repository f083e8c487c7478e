"""The requirement checklist: for each required/recommended rule, what the capture shows.

attempted: a flow or a DNS query went to the rule's destination; reached: a flow completed its
connection (TCP established, a UDP reply, a TLS handshake that finished); blocked / intercepted: a
finding of that kind (medium or above for interception) names the rule. ``never seen`` is the
enrollment-troubleshooting answer to "did the device even try?".
"""

from __future__ import annotations

from collections import defaultdict

from pcapaudit.classify import satisfied_rules
from pcapaudit.model import Classification, CoverageRow, DnsTransaction, Finding, FindingKind, FlowRecord, Severity
from pcapaudit.rules.matcher import RuleIndex
from pcapaudit.rules.schema import RuleBook

LEVELS = ("required", "recommended")
REACHED_STATES = {"established", "closed", "closing", "reset", "reply", "midstream"}


def reached(f: FlowRecord) -> bool:
    """The connection worked at the transport level (and the TLS handshake, when there was one)."""
    if f.state not in REACHED_STATES:
        return False
    if f.tls_handshake in ("reset_after_client_hello", "silence_after_client_hello", "server_alert",
                           "client_alert", "server_closed_after_client_hello", "client_abort_after_server_flight"):  # fmt: skip
        return False
    if f.connect_host and f.http_status not in (None, 200):
        return False
    return f.pkts_s2c > 0


def detect_vendors(flows: list[tuple[FlowRecord, Classification]], book: RuleBook) -> tuple[str, ...]:
    """Vendors whose hosts appear by name (not just by network or port) in the capture."""
    seen = []
    for _f, c in flows:
        if c.vendor and c.matched_by in ("sni", "connect", "http_host", "dns") and c.vendor not in seen:
            seen.append(c.vendor)
    if any(v in seen for v in ("jamf-pro", "kandji", "bigfix-mdm", "endpoint-central")) and "apple" not in seen:
        seen.append("apple")  # MDM of Apple devices needs Apple's hosts too (Kandji and Jamf docs say so)
    order = book.vendors
    return tuple(v for v in order if v in seen)


def build_coverage(
    book: RuleBook,
    index: RuleIndex,
    vendors: tuple[str, ...],
    flows: list[tuple[FlowRecord, Classification]],
    dns: list[DnsTransaction],
    findings: list[tuple[Finding, tuple[str, ...]]],
) -> list[CoverageRow]:
    """One row per required/recommended rule of the selected vendors."""
    by_rule: dict[str, list[FlowRecord]] = defaultdict(list)
    for f, c in flows:
        ids = {r.id for r in satisfied_rules(f, index)}
        if c.rule_id:
            ids.add(c.rule_id)
        for rid in ids:
            by_rule[rid].append(f)
    dns_by_rule: dict[str, list[DnsTransaction]] = defaultdict(list)
    for tx in dns:
        if tx.query:
            for hit in index.match_name(tx.query):
                dns_by_rule[hit.rule.id].append(tx)
    # a finding counts for every rule its flows (or its DNS name) satisfy
    blocked: dict[str, set[str]] = defaultdict(set)
    intercepted: dict[str, set[str]] = defaultdict(set)
    unavailable: dict[str, int] = defaultdict(int)
    uid_rules: dict[str, set[str]] = defaultdict(set)
    for rid, fl in by_rule.items():
        for f in fl:
            uid_rules[f.uid].add(rid)
    for fd, uids in findings:
        rules = set()
        for u in uids or ((fd.uid,) if fd.uid else ()):
            rules |= uid_rules.get(u, set())
        if fd.code.startswith("dns_") and fd.target:
            rules |= {h.rule.id for h in index.match_name(fd.target)}
        if fd.rule_id:
            rules.add(fd.rule_id)
        for rid in rules:
            if fd.kind is FindingKind.BLOCKED:
                blocked[rid].add(fd.code)
            elif fd.kind is FindingKind.INTERCEPTED:
                if fd.severity >= Severity.MEDIUM:
                    intercepted[rid].add(fd.code)
                elif fd.code == "evidence_unavailable":
                    unavailable[rid] += 1
    rows = []
    for r in book.rules:
        if r.vendor not in vendors or r.required not in LEVELS:
            continue
        fl = by_rule.get(r.id, [])
        dq = dns_by_rule.get(r.id, [])
        att = bool(fl) or bool(dq)
        rch = any(reached(f) for f in fl)
        blk = bool(blocked.get(r.id))
        icp = bool(intercepted.get(r.id))
        if icp:
            status = "intercepted"
        elif blk and rch:
            status = "partly blocked"
        elif blk:
            status = "blocked"
        elif rch:
            status = "reached"
        elif att:
            status = "tried, not reached"
        else:
            status = "never seen"
        notes = []
        if dq and not fl:
            notes.append(f"{len(dq)} DNS quer{'y' if len(dq) == 1 else 'ies'} only")
        if blk:
            notes.append("; ".join(sorted(blocked[r.id])))
        if icp:
            notes.append("; ".join(sorted(intercepted[r.id])))
        if unavailable.get(r.id) and not icp:
            notes.append("TLS 1.3: certificate not visible, interception not checkable")
        uids = tuple(dict.fromkeys([f.uid for f in fl] + [t.uid for t in dq]))
        rows.append(
            CoverageRow(
                vendor=r.vendor, rule_id=r.id, service=r.service, required=r.required,
                targets=f"{r.targets_text} {r.transport}/{r.ports_text}", status=status, attempted=att,
                reached=rch, blocked=blk, intercepted=icp, flows=len(fl), uids=uids[:50], note="; ".join(notes),
            )
        )  # fmt: skip
    return rows
