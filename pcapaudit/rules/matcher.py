"""Fast lookups over a RuleBook: host names (exact, ``*.`` suffix, tenant patterns), networks, ports."""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from pcapaudit.rules.loader import NUMBERED_RE, PLACEHOLDER_RE, parse_network
from pcapaudit.rules.schema import Rule, RuleBook

_pton, _AF4, _AF6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6

CONF_ORDER = {"exact": 0, "wildcard": 1, "pattern": 2}


@dataclass(frozen=True, slots=True)
class HostHit:
    """A rule whose hosts matched a name, and how strongly."""

    rule: Rule
    confidence: str  # exact | wildcard | pattern
    pattern: str


class RuleIndex:
    """Indexes of one RuleBook (optionally restricted to some vendors)."""

    def __init__(self, book: RuleBook, vendors: tuple[str, ...] | None = None):
        self.book = book
        self.rules = tuple(r for r in book.rules if vendors is None or r.vendor in vendors)
        self.exact: dict[str, list[tuple[Rule, str, str]]] = defaultdict(list)
        self.suffix: dict[str, list[tuple[Rule, str]]] = defaultdict(list)  # "*.a.b" -> key "a.b"
        self.loose_suffix: list[tuple[str, Rule, str]] = []  # "*ggpht.com"
        self.label_patterns: list[tuple[tuple[str | None, ...], bool, Rule, str]] = []
        self.nets4: list[tuple[int, int, Rule]] = []
        self.nets6: list[tuple[int, int, Rule]] = []
        self.port_only: dict[tuple[str, int], list[Rule]] = defaultdict(list)
        self.port_only_ranges: list[Rule] = []
        for r in self.rules:
            for h in r.hosts:
                self._add_host(r, h)
            for c in r.cidrs:
                self._add_net(r, c)
            for a in r.asns:
                for c in book.asn_prefixes.get(a, ()):
                    self._add_net(r, c)
            if not r.hosts and not r.cidrs and not r.asns:
                if sum(hi - lo + 1 for lo, hi in r.ports) <= 64:
                    for lo, hi in r.ports:
                        for p in range(lo, hi + 1):
                            for t in (("tcp", "udp") if r.transport == "any" else (r.transport,)):
                                self.port_only[(t, p)].append(r)
                else:
                    self.port_only_ranges.append(r)
        self._span = {4: _union(self.nets4), 6: _union(self.nets6)}
        self._name_cache = lru_cache(maxsize=65536)(self._match_name)
        self._ip_cache = lru_cache(maxsize=65536)(self._match_ip)
        self._wide_cache = lru_cache(maxsize=65536)(self._match_ip_wide)

    # -- building --------------------------------------------------------------------------------
    def _fill(self, r: Rule, pattern: str) -> tuple[str, bool] | None:
        """Fill tenant placeholders. Returns (host, filled_all) or None when a host placeholder is open."""
        ph_kind = {}
        rs = self.book.ruleset(r.vendor)
        if rs is not None:
            ph_kind = {p.name: p.kind for p in rs.placeholders}
        out = pattern
        filled_all = True
        for name in PLACEHOLDER_RE.findall(pattern):
            val = self.book.tenants.get(f"{r.vendor}.{name}")
            if val is not None:
                out = out.replace("{" + name + "}", val)
            elif ph_kind.get(name) == "host":
                return None
            else:
                filled_all = False
        return out, filled_all

    def _add_host(self, r: Rule, pattern: str) -> None:
        if "[" in pattern:  # clients[2...6].google.com: the document's shorthand for a numbered set
            m = NUMBERED_RE.match(pattern)
            if m:
                for n in range(int(m.group(2)), int(m.group(3)) + 1):
                    self._add_host(r, f"{m.group(1)}{n}{m.group(4)}")
                return
        filled = self._fill(r, pattern)
        if filled is None:
            return
        host, complete = filled
        if complete:
            if host.startswith("*."):
                self.suffix[host[2:]].append((r, pattern))
            elif host.startswith("*"):
                self.loose_suffix.append((host[1:], r, pattern))
            else:
                self.exact[host].append((r, "exact", pattern))
            return
        labels = tuple(None if PLACEHOLDER_RE.fullmatch(x) else x for x in host.split("."))
        wild = labels[0] == "*"
        if wild:
            labels = labels[1:]
        self.label_patterns.append((labels, wild, r, pattern))

    def _add_net(self, r: Rule, text: str) -> None:
        for net in parse_network(text):
            lo, hi = int(net.network_address), int(net.broadcast_address)
            (self.nets4 if net.version == 4 else self.nets6).append((lo, hi, r))

    # -- lookups ---------------------------------------------------------------------------------
    def match_name(self, name: str | None) -> tuple[HostHit, ...]:
        """Rules whose hosts match ``name`` (best confidence first)."""
        if not name:
            return ()
        return self._name_cache(name.lower().rstrip("."))

    def _match_name(self, name: str) -> tuple[HostHit, ...]:
        hits: list[HostHit] = [HostHit(r, c, p) for r, c, p in self.exact.get(name, ())]
        labels = name.split(".")
        for i in range(1, len(labels)):
            for r, p in self.suffix.get(".".join(labels[i:]), ()):
                hits.append(HostHit(r, "wildcard", p))
        for suf, r, p in self.loose_suffix:
            if name.endswith(suf) and name != suf:
                hits.append(HostHit(r, "wildcard", p))
        for pat, wild, r, p in self.label_patterns:
            n = len(pat)
            if (len(labels) == n or (wild and len(labels) > n)) and all(
                a is None or a == b for a, b in zip(pat, labels[len(labels) - n :])
            ):
                hits.append(HostHit(r, "pattern", p))
        hits.sort(key=lambda h: CONF_ORDER[h.confidence])
        return tuple(hits)

    def match_ip(self, ip: str) -> tuple[Rule, ...]:
        """Rules whose networks (CIDRs, ASN prefixes) contain ``ip``, most specific network first."""
        return self._ip_cache(ip)

    def _match_ip(self, ip: str) -> tuple[Rule, ...]:
        return tuple(r for _size, r in self._sized(ip))

    def match_ip_wide(self, ip: str) -> tuple[Rule, ...]:
        """Of the rules whose networks contain ``ip``, each vendor's network-wide ones: those whose network
        holding the address is the widest that vendor's rules give (Apple's 17.0.0.0/8, not the
        notarization 17.248.128.0/18 inside it). What an address says of a flow whose name no host rule
        knows: it is the vendor's, not which of its services."""
        return self._wide_cache(ip)

    def _match_ip_wide(self, ip: str) -> tuple[Rule, ...]:
        sized = self._sized(ip)
        widest: dict[str, int] = {}
        for size, r in sized:
            widest[r.vendor] = max(widest.get(r.vendor, 0), size)
        return tuple(r for size, r in sized if size == widest[r.vendor])

    def _sized(self, ip: str) -> list[tuple[int, Rule]]:
        """(size of the smallest network of the rule that holds ``ip``, rule), most specific first."""
        parsed = ip_int(ip)
        if parsed is None:
            return []
        version, v = parsed
        starts, ends = self._span[version]
        i = bisect.bisect_right(starts, v) - 1
        if i < 0 or v > ends[i]:  # outside every network (most addresses): no scan of the list
            return []
        nets = self.nets4 if version == 4 else self.nets6
        found = sorted(((hi - lo, r) for lo, hi, r in nets if lo <= v <= hi), key=lambda x: x[0])
        seen: set[str] = set()
        out = []
        for size, r in found:
            if r.id not in seen:
                seen.add(r.id)
                out.append((size, r))
        return out

    def match_port(self, transport: str, port: int) -> tuple[Rule, ...]:
        """Rules without hosts or networks that list this port."""
        out = list(self.port_only.get((transport, port), ()))
        out += [r for r in self.port_only_ranges if r.port_ok(port, transport)]
        return tuple(out)


def ip_int(ip: str) -> tuple[int, int] | None:
    """(version, integer value) of an address string, None when it is not one. The flow table's own
    strings (inet_ntop's) take the socket parser, ten times faster than ``ipaddress`` (backscatter brings
    an address per packet); anything else, such as a scope id, goes to ``ipaddress``."""
    try:
        return 4, int.from_bytes(_pton(_AF4, ip), "big")
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        return 6, int.from_bytes(_pton(_AF6, ip), "big")
    except (OSError, ValueError):
        pass
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return a.version, int(a)


def ip_in(ip: str, cidrs: tuple[str, ...]) -> bool:
    """True when ``ip`` is inside any of ``cidrs`` (strings as in rulesets)."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for c in cidrs:
        for net in parse_network(c):
            if a.version == net.version and a in net:
                return True
    return False


def _union(nets: list[tuple[int, int, Rule]]) -> tuple[list[int], list[int]]:
    """The networks merged into disjoint sorted ranges: (starts, ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in sorted((lo, hi) for lo, hi, _r in nets):
        if ends and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends
