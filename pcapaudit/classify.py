"""Name each flow and match it to a rule: SNI > CONNECT target / HTTP Host > DNS name > CIDR > port.

Among all rules reachable through the available evidence, the first one (in evidence order, then by
match confidence) that also lists the flow's port and transport wins. When names matched but no rule
lists the port, the flow is ``unlisted_port``: a known host on a port the documents do not give.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from pcapaudit.decode.http import url_target
from pcapaudit.model import Classification, FlowRecord
from pcapaudit.rules.matcher import RuleIndex, ip_in
from pcapaudit.rules.schema import Rule

VERDICT_ALLOWED = "allowed"
VERDICT_PORT_ONLY = "port_only"
VERDICT_UNLISTED_PORT = "unlisted_port"
VERDICT_LEGACY = "legacy"
VERDICT_UNKNOWN = "unknown"
VERDICT_LOCAL = "local"  # to a loopback address: the traffic never left the host
GENERIC_PORTS = frozenset({80, 443})
# responders inside the customer's network: a port-only rule of theirs says nothing about a public address
ON_PREM_RESPONDERS = frozenset({"customer-infra", "mdm-server", "connector", "device"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a flow really goes: proxied flows go to the CONNECT/absolute-URI target, not the proxy."""

    port: int
    transport: str
    via_proxy: bool
    address: str | None  # the server's address the rules' networks can judge: the flow's own, a proxied
    #                       target's when it is an IP literal (CONNECT 17.57.146.20:5223), else None


@functools.lru_cache(maxsize=4096)
def ip_literal(host: str) -> str | None:
    """'17.57.146.20' or '[2620:149::1]' as an address string (as the flows table writes it), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


PROXY_REFUSALS = frozenset({403, 407, 502, 503, 504})  # statuses of a proxy refusing a request


def flow_target(f: FlowRecord) -> Target:
    """The destination port (and address) that the vendor rules talk about."""
    transport = f.transport.value
    if f.connect_host:
        return Target(f.connect_port or 443, transport, True, ip_literal(f.connect_host))
    target = url_target(f.http_uri) if f.http_method and f.http_uri else None
    if target is not None and target[1] is not None:  # absolute-form requests are only sent to proxies
        return Target(target[1], transport, True, ip_literal(target[0]))
    return Target(f.dst_port, transport, False, f.dst_ip)


@functools.lru_cache(maxsize=65536)
def address_scope(ip: str) -> tuple[bool, bool, bool, bool]:
    """(globally routable, loopback, local only: multicast, broadcast or link-local, multicast) for an
    address string; all False for anything else. Everything classification and the detectors ask of an
    address beyond the rules' networks."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False, False, False, False
    # ".255" is a subnet broadcast only in local networks: in a public /16 it is an ordinary host; traffic
    # to a link-local address (169.254/16, fe80::/10) never leaves the link either
    local_only = a.is_multicast or a.is_link_local or (a.version == 4 and not a.is_global and str(a).endswith(".255"))
    return a.is_global, a.is_loopback, local_only, a.is_multicast


def is_public(ip: str) -> bool:
    """A globally routable address (not RFC 1918, ULA, link-local, loopback, CGNAT, documentation...)."""
    return address_scope(ip)[0]


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1 (a capture of every interface, `tcpdump -i pktap` or `-i any`, has such flows)."""
    return address_scope(ip)[1]


def is_multicast(ip: str) -> bool:
    """A multicast group (mDNS 224.0.0.251, LLMNR 224.0.0.252, ff02::fb...)."""
    return address_scope(ip)[3]


def is_multicast_or_broadcast(ip: str) -> bool:
    """A multicast or link-local address, the limited broadcast, or a non-public IPv4 address ending in
    .255 (a subnet broadcast): traffic no vendor ruleset could list."""
    return address_scope(ip)[2]


NOT_HTTP3 = frozenset({"apns", "apns-binary"})  # APNs (devices and providers) speaks no HTTP/3


def quic_as_https(rule: Rule, port: int) -> bool:
    """A QUIC flow on udp/443 counts as the rule's HTTPS service when the rule lists tcp/443 and does not
    forbid TLS. Vendor documents predate HTTP/3 and list "443 (TCP)"; browsers and Google's and Apple's
    apps use QUIC to the same hosts. Other ports are not widened (APNs 5223 is not HTTP/3), nor rules of
    other protocols on 443 (APNs's own protocol is not HTTP/3 either)."""
    return (port == 443 and not rule.legacy and rule.tls != "none" and rule.port_ok(443, "tcp")
            and rule.app_protocol not in NOT_HTTP3)  # fmt: skip


def to_dns(f: FlowRecord) -> bool:
    """A flow to DNS itself (port 53, not through a proxy): the names answered for its server's address
    are what it resolved, not what it is (a resolver that answers its own address for a vendor name)."""
    return f.dst_port == 53 and not f.connect_host


def tunnel_elsewhere(f: FlowRecord) -> bool:
    """A proxy tunnel to a host name other than the one its ClientHello names: the proxy connected to the
    CONNECT target, so that is where the flow goes (an SNI naming another host says nothing of it)."""
    ch = f.connect_host
    if not ch or ip_literal(ch) is not None:  # CONNECT to an address: the SNI names the host
        return False
    return ch.lower().rstrip(".") != (f.sni or "").lower().rstrip(".")


def evidence_names(f: FlowRecord) -> list[tuple[str, str]]:
    """(matched_by, name) candidates in priority order: the flow's own names (SNI, CONNECT target, HTTP
    Host; not an SNI inside a tunnel to another host) when it has any, else the DNS answers that named its server's address. The DNS names of an
    address a CDN shares (captive.apple.com and mesu.apple.com) say nothing about a flow that names its
    server itself, and nothing about a flow to DNS itself."""
    out: list[tuple[str, str]] = []
    if f.sni and not tunnel_elsewhere(f):
        out.append(("sni", f.sni))
    if f.connect_host:
        out.append(("connect", f.connect_host))
    if f.http_host:
        out.append(("http_host", f.http_host))
    if not out and not to_dns(f):
        for n in f.dns_names:
            out.append(("dns", n))
    return out


# the binary provider API's hosts (gateway: notifications on 2195, feedback: 2196), retired in 2021
LEGACY_APNS_HOSTS = frozenset({
    "gateway.push.apple.com", "gateway.sandbox.push.apple.com", "feedback.push.apple.com",
    "feedback.sandbox.push.apple.com",
})  # fmt: skip
LEGACY_APNS_PORTS = frozenset({2195, 2196})


def _legacy_apns(names: list[tuple[str, str]], index: RuleIndex, tgt: Target, hits,
                 prefer: tuple[str, ...]) -> Classification | None:  # fmt: skip
    """A flow named as the binary APNs gateway on 2195/2196, whatever its address (through a proxy, or
    an address outside 17.0.0.0/8): the legacy rule that lists the port, or, when no loaded ruleset lists
    it, the vendor of the name without a rule (the APNs rule's ports are not met)."""
    if tgt.port not in LEGACY_APNS_PORTS or tgt.transport != "tcp":
        return None
    by, name = next(((b, n) for b, n in names if n.lower().rstrip(".") in LEGACY_APNS_HOSTS), (None, None))
    if name is None:
        return None
    legacy = [r for r in index.rules if r.legacy and r.app_protocol == "apns-binary" and r.port_ok(tgt.port, "tcp")]
    if legacy:
        r = _prefer(legacy, prefer)
        return Classification(r.vendor, r.id, r.service, by, name, "exact", VERDICT_LEGACY,
                              f"{by} {name} is the binary APNs provider gateway on tcp/{tgt.port} "
                              f"(listed by {r.id}){_also(legacy, r)}")  # fmt: skip
    vendor = hits[0].rule.vendor if hits else None
    return Classification(vendor, None, "binary APNs provider API (legacy)", by, name, "exact", VERDICT_LEGACY,
                          f"{by} {name} is the binary APNs provider gateway on tcp/{tgt.port}")  # fmt: skip


def _verdict(rule: Rule) -> str:
    return VERDICT_LEGACY if rule.legacy else VERDICT_ALLOWED


def _prefer(rules: list[Rule], prefer: tuple[str, ...]) -> Rule:
    """The first rule of the most preferred vendor (rules are in file order otherwise)."""
    if prefer and len(rules) > 1:
        rank = {v: i for i, v in enumerate(prefer)}
        return min(rules, key=lambda r: rank.get(r.vendor, len(rank)))
    return rules[0]


def by_address(ip_rules, tgt: Target) -> list[Rule]:
    """Of the rules whose networks hold the server's address, those an address alone (no name) says the
    flow meets: the ones that list its port. On the web ports, where every service of a vendor's network
    listens, a rule that names hosts (APNs: *.push.apple.com and 17.0.0.0/8) is not met by any address of
    the network: a rule of the network alone is (Apple's 17.0.0.0/8 allow rule). On a port of its own
    (APNs 5223) the address says enough."""
    rules = [r for r in ip_rules if r.port_ok(tgt.port, tgt.transport)]
    if tgt.port in GENERIC_PORTS and any(r.hosts for r in rules):
        bare = [r for r in rules if not r.hosts]
        if bare:
            return bare
    return rules


def _networks(rule: Rule) -> str:
    """The networks an address matched a rule by (not its host patterns: an address is not "in" them)."""
    return "; ".join(list(rule.cidrs) + [f"AS{a}" for a in rule.asns]) or rule.targets_text


def _also(rules: list[Rule], chosen: Rule) -> str:
    """' (also listed by X, Y)' when rules of other vendors matched as well as the chosen one."""
    others = list(dict.fromkeys(r.vendor for r in rules if r.vendor != chosen.vendor))
    return f" (also listed by {', '.join(others)})" if others else ""


def _listed_names(f: FlowRecord, index: RuleIndex, names: list[tuple[str, str]], tgt: Target) -> tuple[list, list, bool]:
    """Every (by, name, hit) of the flow's evidence names; those on a port their rule lists (or HTTP/3
    on udp/443 for a tcp/443 HTTPS host: the same service over QUIC); whether that took HTTP/3."""
    name_hits = [(by, name, hit) for by, name in names for hit in index.match_name(name)]
    ok = [(by, name, hit) for by, name, hit in name_hits if hit.rule.port_ok(tgt.port, tgt.transport)]
    h3 = False
    if not ok and f.app_protocol == "quic" and tgt.transport == "udp":
        ok = [(by, name, hit) for by, name, hit in name_hits if quic_as_https(hit.rule, tgt.port)]
        h3 = bool(ok)
    return name_hits, ok, h3


def named_on_listed_port(f: FlowRecord, index: RuleIndex) -> bool:
    """``classify()`` answers from the flow's names alone (a name its rule lists on the flow's port):
    the server's address changes nothing then, but for loopback, and ``satisfied_rules`` does not read
    it either (the auditor groups such flows without their address)."""
    tgt = flow_target(f)
    return bool(_listed_names(f, index, evidence_names(f), tgt)[1])


def classify(f: FlowRecord, index: RuleIndex, prefer: tuple[str, ...] = ()) -> Classification:
    """Classify one flow against the index.

    ``prefer``: vendors to favour when rules of several vendors match equally well (the legacy APNs
    port 2195 is listed by Jamf Pro, BigFix and Endpoint Central): the auditor passes the vendors it has
    already seen by name in the capture, or the ones the user selected.
    """
    tgt = flow_target(f)
    if not tgt.via_proxy and is_loopback(f.dst_ip):
        # local daemons talking to each other say nothing about the network: no rule, no finding (a
        # local proxy's CONNECT is classified by its target, like any proxied flow)
        return Classification(None, None, None, "none", None, "none", VERDICT_LOCAL,
                              "loopback: the traffic never left the host")  # fmt: skip
    names = evidence_names(f)
    name_hits, ok, h3 = _listed_names(f, index, names, tgt)
    # 1. a name match on a listed port (best evidence, then best confidence, then preferred vendor)
    if ok:
        by, name, first = ok[0]
        same = [h.rule for b, n, h in ok if b == by and n == name and h.confidence == first.confidence]
        rule = _prefer(same, prefer)
        hit = next(h for b, n, h in ok if h.rule is rule)
        why = f"{by} {name} matches {hit.pattern}{_also(same, rule)}"
        if h3:
            why += f" (HTTP/3 over QUIC on udp/{tgt.port}; the rule lists tcp/{tgt.port})"
        return Classification(rule.vendor, rule.id, rule.service, by, name, hit.confidence, _verdict(rule), why)
    # 2. the server address is in a documented network on a listed port (proxied flows: unknown address)
    # a named flow whose names no host rule lists on its port is the vendor's by its address, not one of
    # the vendor's services: only each vendor's network-wide rules (Apple's 17/8) judge it, never a
    # service's block (gateway.icloud.com in 17.248.128.0/18 is not notarization)
    addr = tgt.address
    ip_rules = (index.match_ip_wide(addr) if names else index.match_ip(addr)) if addr else ()
    if not name_hits:
        listed = by_address(ip_rules, tgt)
        if listed:
            r = _prefer(listed, prefer)
            return Classification(r.vendor, r.id, r.service, "cidr", None, "cidr", _verdict(r),
                                  f"{addr} is in {_networks(r)}{_also(listed, r)}")  # fmt: skip
    # 3. a known name on a port no rule of that host lists
    if name_hits:
        by, name, hit = name_hits[0]
        # a network rule may still explain it: a legacy one (APNs binary 2195 to 17/8), or, when the names
        # only come from DNS answers for the address (which a CDN shares among many names), one of the
        # same vendor (FCM on 5228 to a Google address named clients1.google.com, a 443-only host)
        vendors = {h.rule.vendor for b, _n, h in name_hits} if all(b == "dns" for b, _n, _h in name_hits) else set()
        listed = [r for r in ip_rules if r.port_ok(tgt.port, tgt.transport) and (r.legacy or r.vendor in vendors)]
        if listed:
            r = _prefer(listed, prefer)
            return Classification(r.vendor, r.id, r.service, "cidr", name, "cidr", _verdict(r),
                                  f"{addr} is in {_networks(r)}{_also(listed, r)}; {by} {name}")  # fmt: skip
        legacy = _legacy_apns(names, index, tgt, [h for _b, _n, h in name_hits], prefer)
        if legacy is not None:
            return legacy
        return Classification(
            hit.rule.vendor, hit.rule.id, hit.rule.service, by, name, hit.confidence, VERDICT_UNLISTED_PORT,
            f"{by} {name} matches {hit.pattern} but {tgt.transport}/{tgt.port} is not listed "
            f"({hit.rule.transport} {hit.rule.ports_text})",
        )  # fmt: skip
    # an address in a vendor-owned block (Apple's 17/8) on an unlisted port is worth a look; an address
    # that is only in a large AS (Google's AS15169 also hosts cloud customers) says nothing by itself
    owned = [r for r in ip_rules if r.cidrs and ip_in(addr, r.cidrs)]
    if owned:
        r = owned[0]
        return Classification(r.vendor, r.id, r.service, "cidr", None, "cidr", VERDICT_UNLISTED_PORT,
                              f"{addr} is in {_networks(r)} but {tgt.transport}/{tgt.port} is not listed "
                              f"({r.transport} {r.ports_text})")  # fmt: skip
    # 4. only the port says anything (on-prem servers: LDAP 389, EC 8020, HL7 2575...), never on the
    #    generic web ports: example.org:443 is not "the MDM server's 443"
    port_rules = () if tgt.port in GENERIC_PORTS else index.match_port(tgt.transport, tgt.port)
    if port_rules and addr and is_public(addr):
        # MySQL 3306, SCEP 8080 or DCOM's 49152-65535 to an Internet address is not the customer's server
        port_rules = tuple(r for r in port_rules if r.responder not in ON_PREM_RESPONDERS)
    if port_rules:
        r = _prefer(list(port_rules), prefer)
        return Classification(r.vendor, r.id, r.service, "port", None, "port", VERDICT_PORT_ONLY,
                              f"{tgt.transport}/{tgt.port} is listed by {r.id} (no host or network given)"
                              f"{_also(list(port_rules), r)}")  # fmt: skip
    return Classification(None, None, None, "none", None, "none", VERDICT_UNKNOWN,
                          "no ruleset lists this destination")  # fmt: skip


def name_hits(index: RuleIndex, name: str) -> tuple:
    """The host matches of ``name`` a flow named so counts for: an unfilled tenant pattern loses to an
    exact match, not to a wildcard: acme.jamfcloud.com is the tenant's Jamf Cloud ({instance}.jamfcloud.com)
    even though *.jamfcloud.com also matches it."""
    hits = index.match_name(name)
    if any(h.confidence == "exact" for h in hits):
        hits = tuple(h for h in hits if h.confidence != "pattern")
    return hits


def satisfied_rules(f: FlowRecord, index: RuleIndex) -> list[Rule]:
    """Every rule this flow satisfies (name or network match on a listed port), not just the best one.

    Several rules can describe one destination (Jamf Cloud's URL serves devices, admins and the web
    app); a flow to it counts for each of them in the requirement checklist.
    """
    tgt = flow_target(f)
    out: dict[str, Rule] = {}
    named = False
    h3 = f.app_protocol == "quic" and tgt.transport == "udp"
    names = evidence_names(f)
    for _by, name in names:
        hits = name_hits(index, name)
        for hit in hits:
            named = True
            if hit.rule.port_ok(tgt.port, tgt.transport) or (h3 and quic_as_https(hit.rule, tgt.port)):
                out.setdefault(hit.rule.id, hit.rule)
    if not named and tgt.address:
        # a flow with a name of its own that no host rule knows meets only a vendor's network-wide rule
        ip_rules = index.match_ip_wide(tgt.address) if names else index.match_ip(tgt.address)
        for r in by_address(ip_rules, tgt):
            out.setdefault(r.id, r)
    return list(out.values())
