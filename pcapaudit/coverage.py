"""The requirement checklist: for each required/recommended rule, what the capture shows.

attempted: a flow or a DNS query went to the rule's destination; reached: a flow completed its
connection (TCP established, a UDP reply, a TLS handshake that finished); blocked / intercepted: a
finding of that kind (medium or above for interception) concerns a flow or name of the rule. ``never
seen`` is the enrollment-troubleshooting answer to "did the device even try?".

The tracker is fed while the audit streams, so the checklist needs no second pass over the flows.
"""

from __future__ import annotations

import heapq

from collections import defaultdict

from pcapaudit.classify import PROXY_REFUSALS, VERDICT_UNLISTED_PORT, flow_target, name_hits, satisfied_rules
from pcapaudit.model import (
    Classification,
    CoverageRow,
    DnsTransaction,
    Finding,
    FindingKind,
    FlowRecord,
    Severity,
    process_label,
)
from pcapaudit.rules.matcher import RuleIndex
from pcapaudit.rules.schema import Rule, RuleBook

LEVELS = ("required", "recommended")
REACHED_STATES = {"established", "closed", "closing", "reset", "reply", "midstream"}
FAILED_HANDSHAKES = {
    "reset_after_client_hello", "silence_after_client_hello", "server_alert", "client_alert",
    "server_closed_after_client_hello", "client_abort_after_server_flight",
}  # fmt: skip
NAME_EVIDENCE = ("sni", "connect", "http_host", "dns")
MAX_UIDS = 50
MAX_PROCESSES = 20  # process names kept per rule (captures that name processes: Apple PKTAP)


def reached(f: FlowRecord) -> bool:
    """The connection worked at the transport level (and the TLS handshake, when there was one)."""
    if f.state not in REACHED_STATES or f.tls_handshake in FAILED_HANDSHAKES:
        return False
    if f.connect_host and f.http_status not in (None, 200):
        return False
    if f.http_status in PROXY_REFUSALS and f.http_method and f.http_uri and flow_target(f).via_proxy:
        return False  # a proxy refused the absolute-form request (the findings' proxy_denied)
    return f.pkts_s2c > 0


class CoverageTracker:
    """Accumulates, per rule id, what the capture shows; builds the checklist at the end."""

    def __init__(self, index: RuleIndex):
        self.index = index
        self.flows: dict[str, int] = defaultdict(int)
        self.uids: dict[str, list[tuple[float, str]]] = defaultdict(list)  # the earliest (ts, uid)s
        self._latest: dict[str, tuple[float, str]] = {}  # the latest kept, once a rule's list is full
        self.reached: set[str] = set()
        self.dns: dict[str, int] = defaultdict(int)
        self.blocked: dict[str, set[str]] = defaultdict(set)
        self.intercepted: dict[str, set[str]] = defaultdict(set)
        self.unavailable: dict[str, int] = defaultdict(int)
        self.processes: dict[str, set[str]] = defaultdict(set)
        self.vendors_seen: list[str] = []
        self._sibling_cache: dict[str, tuple[Rule, ...]] = {}
        # rules met by other vendors' rules (a tracker that only merges tallies may have no index)
        self._borrowers = tuple(r for r in index.rules if r.met_by) if index is not None else ()

    def _uid(self, rid: str, item: tuple[float, str]) -> None:
        """Keep the MAX_UIDS earliest flows of a rule: the same ones whatever the order flows end in or the
        partitioning of a parallel audit. Flows mostly end in time order, so once the list is full most
        cost one comparison."""
        latest = self._latest.get(rid)
        if latest is not None and item >= latest:
            return
        lst = self.uids[rid]
        uid = item[1]
        for i, (_t, u) in enumerate(lst):
            if u == uid:  # a flow's DNS transactions and the flow itself: one uid, at its earliest time
                if item < lst[i]:
                    lst[i] = item
                    if latest is not None:
                        self._latest[rid] = max(lst)
                return
        if latest is None:
            lst.append(item)
            if len(lst) == MAX_UIDS:
                self._latest[rid] = max(lst)
            return
        lst.remove(latest)
        lst.append(item)
        self._latest[rid] = max(lst)

    def rules_for_flow(self, f: FlowRecord, cls: Classification) -> frozenset[str]:
        """Every rule this flow satisfies (several rules may describe one destination). A flow to a known
        host on a port its rule does not list satisfies nothing: NTP over TCP is not the NTP requirement
        met, nor APNs on 2195 the APNs one."""
        met = satisfied_rules(f, self.index)
        ids = {r.id for r in met}
        if cls.rule_id and cls.verdict != VERDICT_UNLISTED_PORT:
            ids.add(cls.rule_id)
        tgt = flow_target(f)
        if met:
            for r in met:
                for s in self._siblings(r):
                    if s.port_ok(tgt.port, tgt.transport):
                        ids.add(s.id)
        if ids and self._borrowers:
            ids |= self._met_by(ids, tgt.port, tgt.transport)
        return frozenset(ids)

    def _met_by(self, ids: set[str] | frozenset[str], port: int | None = None, transport: str = "tcp") -> set[str]:
        """The rules of other vendors that these rules meet (``met_by``: Jamf's "devices to APNs" is met by
        the flows that meet Apple's APNs rule), on a port they list (any port for a DNS lookup, ``port``
        None)."""
        out = set()
        vendors = {rid.partition(".")[0] for rid in ids}
        for b in self._borrowers:
            if b.id in ids or not any(m in ids or m in vendors for m in b.met_by):
                continue
            if port is None or b.port_ok(port, transport):
                out.add(b.id)
        return out

    def _siblings(self, rule: Rule) -> tuple[Rule, ...]:
        """The network-only rules (no hosts) of ``rule``'s vendor that implement a seed row ``rule`` also
        implements: one requirement written twice, once by host (Google's mtalk.google.com) and once by
        network (FCM 5228-5230 to AS15169). A flow that meets the host rule meets the requirement, even
        through a proxy where its address says nothing."""
        hit = self._sibling_cache.get(rule.id)
        if hit is None:
            rows = set(rule.rows)
            hit = self._sibling_cache[rule.id] = tuple(
                r for r in self.index.rules
                if r.vendor == rule.vendor and r.id != rule.id and not r.hosts and (r.cidrs or r.asns)
                and rows & set(r.rows)
            ) if rule.hosts else ()  # fmt: skip
        return hit

    def flow(self, f: FlowRecord, cls: Classification, rules: frozenset[str]) -> None:
        """Account a finished flow."""
        self.account(f.uid, f.ts, reached(f), cls, rules, process_label(f.process, None, f.eprocess))

    def account(self, uid: str, ts: float, ok: bool, cls: Classification, rules: frozenset[str],
                process: str | None = None) -> None:  # fmt: skip
        """Account a finished flow given its uid and start, whether it was ``reached`` and its process,
        if known."""
        if cls.vendor and cls.matched_by in NAME_EVIDENCE and cls.vendor not in self.vendors_seen:
            self.vendors_seen.append(cls.vendor)
        for rid in rules:
            self.flows[rid] += 1
            self._uid(rid, (ts, uid))
            if ok:
                self.reached.add(rid)
            if process is not None:
                self._process(rid, process)

    def account_many(self, items: list[tuple[float, str]], ok: bool, cls: Classification, rules: frozenset[str],
                     processes=()) -> None:  # fmt: skip
        """``account`` for many flows of one classification and rules at once, given their (ts, uid), whether
        they ``reached`` their server and their distinct process labels: the same tallies as one call each
        (the earliest flows kept per rule do not depend on the order flows come in)."""
        if cls.vendor and cls.matched_by in NAME_EVIDENCE and cls.vendor not in self.vendors_seen:
            self.vendors_seen.append(cls.vendor)
        if not rules:
            return
        best = sorted(items) if len(items) <= MAX_UIDS else heapq.nsmallest(MAX_UIDS, items)
        for rid in rules:
            self.flows[rid] += len(items)
            for item in best:
                latest = self._latest.get(rid)
                if latest is not None and item >= latest:  # the rest are later still
                    break
                self._uid(rid, item)
            if ok:
                self.reached.add(rid)
            for name in processes:
                self._process(rid, name)

    def _process(self, rid: str, name: str) -> None:
        """Keep the alphabetically first MAX_PROCESSES names: the same ones whatever the flows' order or
        the partitioning of a parallel audit."""
        procs = self.processes[rid]
        if name in procs:
            return
        if len(procs) < MAX_PROCESSES:
            procs.add(name)
        else:
            last = max(procs)
            if name < last:
                procs.discard(last)
                procs.add(name)

    def dns_rules(self, tx: DnsTransaction) -> frozenset[str]:
        """The rules a flow to the query name would count for, on any port (``name_rules``)."""
        return self.name_rules(tx.query)

    def name_rules(self, name: str | None) -> frozenset[str]:
        """The rules a flow named ``name`` would count for, whatever its port: the same host matches
        ``satisfied_rules`` keeps (an unfilled tenant pattern does not count when a rule names the host
        exactly: a lookup of the tenant's device domain is not one of ``{subdomain}.web-api.kandji.io``),
        and the other vendors' rules these meet (``met_by``)."""
        if not name:
            return frozenset()
        ids = {h.rule.id for h in name_hits(self.index, name)}
        return frozenset(ids | self._met_by(ids)) if ids and self._borrowers else frozenset(ids)

    def dns_query(self, tx: DnsTransaction, rules: frozenset[str], vendor: str | None = None) -> None:
        """Account a DNS transaction. The vendor of the name's best rule counts as seen by name, so a
        capture where every lookup of it failed still gets that vendor's checklist."""
        if vendor is not None and vendor not in self.vendors_seen:
            self.vendors_seen.append(vendor)
        for rid in rules:
            self.dns[rid] += 1
            self._uid(rid, (tx.ts, tx.uid))

    def dns_queries(self, rules: frozenset[str], vendor: str | None, items: list[tuple[float, str]]) -> None:
        """``dns_query`` for many lookups of names with the same rules at once, given their (ts, uid): the
        same counts and uids as one call each (only a uid among the MAX_UIDS earliest distinct ones of
        the lookups can be among a rule's earliest)."""
        if vendor is not None and vendor not in self.vendors_seen:
            self.vendors_seen.append(vendor)
        earliest: dict[str, float] = {}
        for ts, uid in items:
            t = earliest.get(uid)
            if t is None or ts < t:
                earliest[uid] = ts
        best = heapq.nsmallest(MAX_UIDS, ((t, u) for u, t in earliest.items()))
        for rid in rules:
            self.dns[rid] += len(items)
            for item in best:
                self._uid(rid, item)

    def finding(self, fd: Finding, rules: frozenset[str]) -> None:
        """Account a finding for every rule the flow or name it is about counted for: a flow's finding
        does not reach a rule the flow did not count for (an APNs host on an unlisted port says nothing
        about the APNs row). A finding with no flow or name of the capture behind it (an ICMP error for a
        flow the capture does not hold) goes to its own rule."""
        if fd.rule_id and fd.uid is None:
            rules = rules | {fd.rule_id}
        self.flow_finding(fd.kind, fd.severity, fd.code, rules)

    def flow_finding(self, kind: FindingKind, severity: Severity, code: str, rules: frozenset[str],
                     times: int = 1) -> None:  # fmt: skip
        """``finding`` of ``times`` flows' findings (they have a uid) of this kind, severity and code."""
        for rid in rules:
            if kind is FindingKind.BLOCKED:
                self.blocked[rid].add(code)
            elif kind is FindingKind.INTERCEPTED:
                if severity >= Severity.MEDIUM:
                    self.intercepted[rid].add(code)
                elif code == "evidence_unavailable":
                    self.unavailable[rid] += times

    def merge(self, other: CoverageTracker) -> None:
        """Add another partition's tallies."""
        for rid, n in other.flows.items():
            self.flows[rid] += n
        for rid, lst in other.uids.items():
            for item in lst:
                self._uid(rid, item)
        self.reached |= other.reached
        for rid, n in other.dns.items():
            self.dns[rid] += n
        for rid, codes in other.blocked.items():
            self.blocked[rid] |= codes
        for rid, codes in other.intercepted.items():
            self.intercepted[rid] |= codes
        for rid, n in other.unavailable.items():
            self.unavailable[rid] += n
        for rid, names in other.processes.items():
            for name in sorted(names):
                self._process(rid, name)
        self.vendors_seen.extend(v for v in other.vendors_seen if v not in self.vendors_seen)

    def detected_vendors(self, book: RuleBook) -> tuple[str, ...]:
        """Vendors whose hosts appear by name (not just by network or port) in the capture."""
        seen = list(self.vendors_seen)
        if any(v in seen for v in ("jamf-pro", "kandji", "bigfix-mdm", "endpoint-central")) and "apple" not in seen:
            seen.append("apple")  # MDM of Apple devices needs Apple's hosts too (Kandji and Jamf docs say so)
        return tuple(v for v in book.vendors if v in seen)

    def rows(self, book: RuleBook, vendors: tuple[str, ...],
             regions: dict[str, str] | None = None) -> list[CoverageRow]:  # fmt: skip
        """One row per required/recommended rule of the selected vendors. ``regions`` (vendor -> its
        tenant's region, configured or inferred): a rule of another region is no requirement of this
        tenant, and has a row only when the capture tried it (a region mismatch finding says why)."""
        out = []
        regions = regions or {}
        for r in book.rules:
            if r.vendor not in vendors or r.required not in LEVELS:
                continue
            nflows, ndns = self.flows.get(r.id, 0), self.dns.get(r.id, 0)
            att = bool(nflows or ndns)
            if r.region and regions.get(r.vendor, r.region) != r.region and not att:
                continue
            rch = r.id in self.reached
            blk = bool(self.blocked.get(r.id))
            icp = bool(self.intercepted.get(r.id)) and nflows > 0  # interception is seen on flows only
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
            if ndns and not nflows:
                notes.append(f"{ndns} DNS quer{'y' if ndns == 1 else 'ies'} only")
            if blk:
                notes.append("; ".join(sorted(self.blocked[r.id])))
            if icp:
                notes.append("; ".join(sorted(self.intercepted[r.id])))
            if self.unavailable.get(r.id) and not icp:
                notes.append("certificate not visible (TLS 1.3 or a resumed session), interception not checkable")
            out.append(
                CoverageRow(
                    vendor=r.vendor, rule_id=r.id, service=r.service, required=r.required,
                    targets=f"{r.targets_text} {r.transport}/{r.ports_text}", status=status, attempted=att,
                    reached=rch, blocked=blk, intercepted=icp, flows=nflows,
                    uids=tuple(u for _ts, u in sorted(self.uids.get(r.id, ()))),
                    note="; ".join(notes), processes=tuple(sorted(self.processes.get(r.id, ()))),
                )
            )  # fmt: skip
        return out
