"""The pipeline: capture -> decode -> flows -> classify -> findings -> coverage.

``Auditor`` is fed capture sources (files, stdin or a live interface) and streams: flows are classified
and checked the moment the flow table emits them, so ``live`` can show findings as they happen and
``audit`` keeps only finished rows in memory. ``finish()`` flushes the flow table and returns an
``AuditResult`` whose tables are pandas DataFrames.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pcapaudit.capture.filefilter import FileFilter
from pcapaudit.capture.pcapfile import CaptureFile, PacketBatch
from pcapaudit.classify import (
    VERDICT_LEGACY,
    address_scope,
    classify,
    is_multicast,
    is_multicast_or_broadcast,
    named_on_listed_port,
)
from pcapaudit.config import load_config, parse_kv, vendor_names
from pcapaudit.core import CoreEngine, dns_rows, flow_rows, open_capture, with_classification
from pcapaudit.coverage import FAILED_HANDSHAKES, REACHED_STATES, CoverageTracker, reached
from pcapaudit.decode import FAST, Decoder
from pcapaudit.decode import icmp as icmpmod
from pcapaudit.dedup import InterfaceCopies
from pcapaudit.engine import EngineConfig, FlowEngine
from pcapaudit.enrich import DnsMap
from pcapaudit.errors import ConfigError, RulesetError, UsageError
from pcapaudit.findings import (
    CANCEL_WINDOW,
    DNS_FAILURES,
    END_GRACE,
    FAILED_RCODES,
    INFRA_PORTS,
    SINKHOLES,
    FindingCollector,
    FindingContext,
    FindingDraft,
    RepeatDraft,
    Template,
    _f,
    as_finding,
    detect_dns,
    detect_flow,
    fold_key,
    no_address,
    quiet,
    region_findings,
    region_note,
    region_ties,
    required_severity,
    validity,
)
from pcapaudit.model import (
    CaptureStats,
    Classification,
    CoverageRow,
    DnsTransaction,
    Finding,
    FindingKind,
    FlowBase,
    FlowRecord,
    Severity,
    Transport,
    Weird,
    process_label,
)
from pcapaudit.report.columns import DNS_COLUMNS, FLOW_COLUMNS, dns_row, flow_row, plain_row
from pcapaudit.rules.loader import load_rulebook
from pcapaudit.rules.matcher import RuleIndex
from pcapaudit.rules.schema import RuleBook
from pcapaudit.store import ColumnStore

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("pcapaudit")

MAX_WEIRD_ROWS_PER_NAME = 200
REPETITIVE_FLOW_COLUMNS = frozenset({
    "src_ip", "dst_ip", "history", "sni", "alpn", "tls_cipher", "cert_issuer", "cert_subject", "cert_sha256",
    "http_host", "connect_host", "dns_name", "dns_names", "rule_id", "service", "matched_name", "reason",
})  # fmt: skip


@dataclass
class AuditOptions:
    """Everything that changes what an audit reports."""

    rules: list[str] | None = None
    vendors: tuple[str, ...] | None = None  # None: every ruleset classifies, coverage for detected vendors
    tenants: dict[str, str] = field(default_factory=dict)
    trust_issuers: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    engine: str = "core"  # the compiled core; "fast"/"simple": the pure-Python engine (tests' oracle)
    engine_config: EngineConfig = field(default_factory=EngineConfig)
    partition: tuple[int, int] | None = None  # (k, n): audit only partition k of n (parallel runs)
    file_filter: FileFilter | None = None  # audit --filter/--start/--end: the packets audited


def iso_utc(ts: float) -> str:
    """2026-11-26T23:07:59.579431Z."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class WeirdCollector:
    """Keeps the first rows of each weird name and counts all of them."""

    def __init__(self) -> None:
        self.rows: list[Weird] = []
        self.counts: Counter[str] = Counter()

    def add(self, w: Weird) -> None:
        """Count a weird; keep the row while its name has few."""
        self.counts[w.name] += 1
        if self.counts[w.name] <= MAX_WEIRD_ROWS_PER_NAME:
            self.rows.append(w)

    def merge(self, other: WeirdCollector) -> None:
        """Add another partition's weirds (each partition reports only its own flows' weirds; the
        packet-level ones every partition saw are counted once)."""
        own = {(w.ts, w.name, w.detail) for w in self.rows}
        for w in other.rows:
            if w.uid is None and (w.ts, w.name, w.detail) in own:
                continue  # a decode-level weird every partition saw
            self.add(w)

    def summary_rows(self) -> list[Weird]:
        """Rows, plus one summary row per name whose rows were capped."""
        out = list(self.rows)
        for name, n in self.counts.items():
            if n > MAX_WEIRD_ROWS_PER_NAME:
                out.append(Weird(None, name, None, f"{n - MAX_WEIRD_ROWS_PER_NAME} more not listed", n - MAX_WEIRD_ROWS_PER_NAME))
        return out



# the columns whose values make a detection group's key with the flags (Auditor._detect_loud); the last
# two are the DNS names and the address, left out where they do not matter
_GROUP_VALUES = ["sni", "connect_host", "connect_port", "http_host", "http_method", "http_uri", "transport",
                 "conn_state", "state", "app_protocol", "tls_handshake", "http_status", "one_direction",
                 "tls_server_version", "quic_version", "cert_chain", "dns_names", "dst_ip"]  # fmt: skip


def _memo(cache: dict, key, limit: int, compute):
    """``compute(key)``, kept in ``cache`` (emptied past ``limit`` entries: hostile traffic cannot grow it)."""
    hit = cache.get(key)
    if hit is None:
        if len(cache) > limit:
            cache.clear()
        hit = cache[key] = compute(key)
    return hit


def _codes(arr) -> np.ndarray:
    """int64 codes of an Arrow array's values, -1 for null: equal values, equal codes (within the array)."""
    import numpy as np
    import pyarrow as pa

    enc = arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()
    return np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _valid(arr) -> np.ndarray:
    import numpy as np

    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _eq(arr, value) -> np.ndarray:
    import pyarrow.compute as pc

    return _flag(pc.equal(arr, value))


def _flag(arr) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _groups(keys) -> tuple:
    """Rows of a 2-D integer array grouped by equal rows: (each group's first row, in row order; each
    row's group number)."""
    import numpy as np

    # one 64-bit mix of each row sorts fast; rows of one mix are checked equal, and any collision falls
    # back to comparing whole rows
    h = np.zeros(len(keys), np.uint64)
    with np.errstate(over="ignore"):
        for column in keys.T:
            h = (h ^ column.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
    _u, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not (keys == keys[first[inverse]]).all():
        _u, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse]


def _has(strings, pattern: str):
    """Whether each string matches ``pattern`` (False for null)."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.match_substring_regex(strings, pattern), False)


class _NameView:
    """What ``classify.named_on_listed_port`` reads of a flow, from one row of the flows table."""

    __slots__ = ("app_protocol", "connect_host", "connect_port", "dns_names", "dst_ip", "dst_port", "http_host",
                 "http_method", "http_uri", "sni", "transport")  # fmt: skip

    def __init__(self, r: dict, absolute: str | None) -> None:
        self.sni, self.connect_host, self.connect_port = r["sni"], r["connect_host"], r["connect_port"]
        self.http_host, self.app_protocol = r["http_host"], r["app_protocol"]
        self.http_method, self.http_uri = ("GET", absolute) if absolute else (None, None)
        self.dns_names = tuple(n for n in (r["dns_names"] or "").split(";") if n)
        self.dst_port, self.transport, self.dst_ip = r["dst_port"], Transport(r["transport"]), None


class _Distinct:
    """Distinct objects (by identity) in the order first added, and their numbers."""

    def __init__(self) -> None:
        self.items: list = []
        self._index: dict[int, int] = {}

    def add(self, obj) -> int:
        j = self._index.get(id(obj))
        if j is None:
            j = self._index[id(obj)] = len(self.items)
            self.items.append(obj)
        return j


class Auditor:
    """Streaming auditor. Feed sources with ``run_file``/``feed_batch``, then call ``finish``."""

    scope_keys = True  # unnamed flows in no rule's network classify by the address's scope (_cls_key)
    name_keys = True  # flows a rule lists by name on their port classify without their address (_core_flows)

    def __init__(
        self,
        options: AuditOptions | None = None,
        book: RuleBook | None = None,
        on_finding: Callable[[Finding, bool], None] | None = None,
        on_flow: Callable[[FlowRecord, Classification], None] | None = None,
    ):
        self.options = options or AuditOptions()
        opts = self.options
        self.book = book or load_rulebook(opts.rules, opts.tenants, opts.trust_issuers)
        if opts.vendors:
            unknown = [v for v in opts.vendors if v not in self.book.vendors]
            if unknown:
                raise UsageError(f"--vendor {','.join(unknown)}: no such ruleset ({', '.join(self.book.vendors)})")
        self.index = RuleIndex(self.book, opts.vendors or None)
        self._prefer = tuple(opts.vendors or dict.fromkeys(k.split(".", 1)[0] for k in sorted(self.book.tenants)))
        self.dnsmap = DnsMap()
        regions = {k.split(".", 1)[0]: v for k, v in self.book.tenants.items() if k.endswith(".region")}
        self.ctx = FindingContext(self.book, self.index, self.dnsmap, devices=opts.devices, region=regions)
        self.flows = ColumnStore(FLOW_COLUMNS, repetitive=REPETITIVE_FLOW_COLUMNS)  # built as flows finish
        self.dns = ColumnStore(DNS_COLUMNS, repetitive=frozenset({"client_ip", "server_ip", "query", "answers"}))
        self.coverage = CoverageTracker(self.index)
        self._regional: list[tuple[FlowRecord, Classification, frozenset[str]]] = []  # for region re-checks
        # udp_no_reply findings wait for the end: a client the capture shows in one direction only (its TCP
        # flows say so) explains a missing UDP reply too
        self._held_udp: list[tuple] = []
        self.weirds = WeirdCollector()
        self.findings = FindingCollector(opts.engine_config.processes)
        self._on_finding = on_finding
        self._on_flow = on_flow
        self.core: CoreEngine | None = None
        self._copies_count = 0
        if opts.file_filter is not None and opts.engine != "core":
            raise UsageError("--filter/--start/--end need the compiled core (--engine core)")
        if opts.engine == "core":
            self.core = CoreEngine(self._core_flows, self._core_dns, self.weirds.add, opts.engine_config,
                                   opts.partition, opts.file_filter)  # fmt: skip
            self.ctx.dnsmap = self.core.dnsmap  # type: ignore[assignment]  # the core's naming map
        else:
            self.decoder = Decoder(opts.engine)
            self.copies = InterfaceCopies()  # packets seen again on another interface (tcpdump -i any, pktap)
            self.engine = FlowEngine(self._flow, self._dns, self.weirds.add, opts.engine_config, self.dnsmap,
                                     opts.partition, on_plain=self._plain)  # fmt: skip
        self.sources: list[str] = []
        self.errors: list[str] = []
        self.packets = 0
        self.bytes = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.decoded = 0
        self.not_ip = 0
        self.fragments = 0
        self.tunnels: Counter[str] = Counter()
        self.dropped: int | None = None
        self.if_dropped: int | None = None
        self.filtered = 0  # packets --filter left out
        self.outside_window = 0  # packets --start/--end left out
        self.seen_span: tuple[float | None, float | None] = (None, None)  # with a filter: every packet's span
        self.unfiltered: list[tuple[int, int]] = []  # (link type, packets) --filter has no program for
        self._unfiltered_reported: set[int] = set()
        self._finished = False
        self._max_active = 0
        self._ended_early = 0  # flows the flow table's cap ended early (EngineConfig.max_flows)
        self.clamped = 0  # pcap records whose captured length exceeded the wire length (all files)
        self._cls_cache: dict[tuple, Classification] = {}
        self._plain_cache: dict[tuple, tuple[bool, bool]] = {}
        self._dns_cache: dict[str | None, tuple[frozenset[str], object]] = {}  # query -> (rule ids, first rule)
        self._device_cache: dict[str, bool] = {}
        self._match_ip_cache: dict[str, tuple] = {}  # address -> (in a rule's network, scope)
        self._mcast_cache: dict[str, bool] = {}
        self._listed_cache: dict[tuple, bool] = {}  # names, port, transport -> classified by name alone
        self._mcast_server_cache: dict[str, bool] = {}
        self._quiet_cache: dict[tuple, tuple[bool, bool]] = {}  # pre-check key -> (quiet, reached)
        self._leaf_dates: dict[str, tuple] = {}  # a leaf certificate's digest -> (not_before, not_after)
        self._templates: dict[tuple, list] = {}  # a detection group's key in values -> its findings' templates
        self._template_hits = 0  # detection groups whose templates an earlier batch made
        self._grouped = 0  # loud flows whose findings repeated another flow's (``_detect_loud``)

    def _name_hit(self, name: str | None) -> tuple:
        """(the rules a lookup of ``name`` counts for, its best rule or None)."""
        rules = self.coverage.name_rules(name)
        return rules, self.index.match_name(name)[0].rule if rules else None

    def _address(self, ip: str) -> tuple:
        """(in a rule's network, address_scope) of a destination address."""
        return bool(self.index.match_ip(ip)), address_scope(ip)

    # -- streaming callbacks ---------------------------------------------------------------------
    def _cls_key(self, sni, connect_host, connect_port, http_host, abs_uri, dns_names, dst_ip, dst_port,
                 transport, app_protocol) -> tuple:  # fmt: skip
        """The classification cache key: everything classify(), rules_for_flow() and quiet() read.

        A flow with no name at all (no SNI, CONNECT, Host or DNS name) to an address in no rule's network
        (a scan, backscatter, most unnamed traffic) classifies by the address's scope and the port alone,
        so the key holds those instead of the address: a scan of 200 hosts x 1,000 ports is classified
        1,000 times, not 200,000 (tests/unit/test_findings.py checks the two keys agree).
        """
        if sni is None and connect_host is None and http_host is None and abs_uri is None and not dns_names:
            m = _memo(self._match_ip_cache, dst_ip, 100_000, self._address)
            if not m[0]:
                return (None, m[1], dst_port, transport)
        return (sni, connect_host, connect_port, http_host, abs_uri, dns_names, dst_ip, dst_port, transport,
                app_protocol == "quic")  # fmt: skip

    def _flow(self, rec: FlowRecord, base: FlowBase | None = None) -> None:
        """A finished flow (``base``: the same flow as a FlowBase, when it came as one): its table row is
        built here (the pure-Python engine, and live capture, where every flow is shown as it ends)."""

        def shown(cls: Classification) -> None:
            self.flows.append(flow_row(rec, cls) if base is None else plain_row(base, cls))
            if self._on_flow:
                self._on_flow(rec, cls)

        self._detect(rec, shown)

    def _core_flows(self, rb, tb) -> None:
        """A batch of finished flows from the core: ``rb`` the records (nested columns), ``tb`` the same
        rows as flows-table columns.

        Nothing here is done once per flow in Python but cheap tuple building: classification runs once
        per distinct destination key (the ``_cls_key`` cache), the no-finding pre-check (``quiet``) and
        ``reached`` once per distinct combination of everything they read, and the flows table is the
        core's columns plus the classification columns taken by key. Only the flows that may have a
        finding (and, with ``on_flow``, every flow) become ``FlowRecord``s and go through the detectors.
        """
        n = rb.num_rows
        if n == 0:
            return
        if self._on_flow is not None:  # live capture: every flow is shown as it ends
            for row, plain in flow_rows(rb.take(range(n))):
                if plain:
                    self._flow(FlowRecord(**row._asdict()), row)
                else:
                    self._flow(row)
            return
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        col = tb.column
        ctx = self.ctx
        # per distinct destination address: in a rule's network, its scope, multicast or broadcast
        denc = col("dst_ip").dictionary_encode()
        dsts = denc.dictionary.to_pylist()
        di = _codes(denc)
        in_net, scope, mcast = np.zeros(len(dsts) + 1, bool), np.zeros(len(dsts) + 1, np.int64), np.zeros(len(dsts) + 1, bool)
        loop = np.zeros(len(dsts) + 1, bool)
        scopes: dict[tuple, int] = {}
        for j, dst in enumerate(dsts):
            m = _memo(self._match_ip_cache, dst, 100_000, self._address)
            mc = _memo(self._mcast_cache, dst, 100_000, is_multicast_or_broadcast)
            in_net[j], scope[j], mcast[j], loop[j] = m[0], scopes.setdefault(m[1], len(scopes)), mc, m[1][1]
        senc = col("src_ip").dictionary_encode()
        si = _codes(senc)
        dev = np.ones(len(senc.dictionary) + 1, bool)
        if ctx.devices:
            for j, src in enumerate(senc.dictionary.to_pylist()):
                dev[j] = _memo(self._device_cache, src, 50_000, ctx.is_device)
        # the pre-check key of _cls_key and quiet(), as codes: rows with equal codes have equal keys
        method, uri = col("http_method"), col("http_uri")
        absolute = pc.fill_null(pc.and_(pc.is_valid(method), pc.match_substring(uri, "://")), False)
        abs_uri = pc.if_else(absolute, uri, pa.scalar(None, pa.string()))
        dn = col("dns_names")
        named = np.zeros(n, bool)
        for a in (col("sni"), col("connect_host"), col("http_host"), abs_uri):
            named |= _valid(a)
        named |= _valid(dn) & (np.asarray(pc.fill_null(pc.binary_length(dn), 0).to_numpy(zero_copy_only=False)) > 0)
        scoped = ~named & ~in_net[di] & self.scope_keys  # unnamed, in no rule's network: keyed by scope
        app = col("app_protocol")
        sport = np.asarray(col("src_port").to_numpy(zero_copy_only=False))
        dport = np.asarray(col("dst_port").to_numpy(zero_copy_only=False))
        infra = np.array(sorted(INFRA_PORTS))
        ps0 = np.asarray(col("pkts_s2c").to_numpy(zero_copy_only=False)) == 0
        # columns of this batch's codes (local), and of values (the same in every batch)
        local = np.column_stack([
            _codes(col("sni")), _codes(col("connect_host")), _codes(col("connect_port")), _codes(col("http_host")),
            _codes(abs_uri), _codes(dn), _codes(col("transport")), _codes(col("conn_state")), _codes(col("state")),
            _codes(app), _codes(col("tls_handshake")), _codes(col("http_status")),
        ])  # fmt: skip
        values = np.column_stack([
            dport, np.where(scoped, 0, _eq(app, "quic")), ps0, np.isin(sport, infra), np.isin(dport, infra),
            dev[si], _valid(col("tls_server_version")), _valid(col("cert_sha256")), _valid(col("tls_alerts")),
            _valid(col("icmp")), np.where(scoped, mcast[di], -1), _valid(col("quic_version")),
        ])  # fmt: skip
        # a flow a rule lists by name on its port classifies, pre-checks and counts the same whatever its
        # server's address (but loopback): such flows share a key across a name's many addresses
        addr_free = ~scoped & ~loop[di] & self._named_on_listed_port(tb, local, dport) & self.name_keys
        pk = np.column_stack([local, np.where(scoped, -2 - scope[di], np.where(addr_free, -1, di)), values])
        groups, inverse = _groups(pk)
        # one representative row per group: its key tuples, classified and pre-checked on a real record
        reps = tb.take(pa.array(groups)).select(["sni", "connect_host", "connect_port", "http_host", "http_method",
                                                 "http_uri", "dns_names", "dst_ip", "dst_port", "transport",
                                                 "app_protocol", "src_port", "conn_state", "state", "pkts_s2c",
                                                 "tls_handshake", "http_status", "tls_server_version", "cert_sha256",
                                                 "tls_alerts", "icmp", "quic_version"]).to_pydict()  # fmt: skip
        cls_key = self._cls_key
        gkeys, gpkeys = [], []
        for g, i in enumerate(groups):  # the cache keys hold values, not this batch's codes
            r = {k: v[g] for k, v in reps.items()}
            hm, hu = r["http_method"], r["http_uri"]
            key = cls_key(r["sni"], r["connect_host"], r["connect_port"], r["http_host"],
                          hu if hm and hu and "://" in hu else None, r["dns_names"],
                          None if addr_free[i] else r["dst_ip"], r["dst_port"], r["transport"],
                          r["app_protocol"])  # fmt: skip
            gkeys.append(key)
            gpkeys.append((key, r["conn_state"], r["state"], r["pkts_s2c"] == 0, r["src_port"] in INFRA_PORTS,
                           r["dst_port"] in INFRA_PORTS, r["app_protocol"], bool(dev[si[i]]),
                           r["tls_handshake"], r["http_status"], r["tls_server_version"] is None,
                           r["cert_sha256"] is None, r["tls_alerts"] is None, r["icmp"] is None,
                           bool(mcast[di[i]]) if scoped[i] else None, r["quic_version"] is None))  # fmt: skip
        need = [i for g, i in enumerate(groups) if gpkeys[g] not in self._quiet_cache or gkeys[g] not in self._cls_cache]
        if need:
            gi = {i: g for g, i in enumerate(groups)}
            for i, (row, plain) in zip(need, flow_rows(rb.take(need))):
                rec = FlowRecord(**row._asdict()) if plain else row
                g = gi[i]
                hit = self._cls_cache.get(gkeys[g])
                if hit is None:
                    cls = classify(rec, self.index, self._prefer)
                    hit = (cls, self.coverage.rules_for_flow(rec, cls))
                    if len(self._cls_cache) > 20_000:
                        self._cls_cache.clear()
                    self._cls_cache[gkeys[g]] = hit
                cls, _rules = hit
                rule = ctx.rule(cls.rule_id)
                if len(self._quiet_cache) > 50_000:
                    self._quiet_cache.clear()
                self._quiet_cache[gpkeys[g]] = (
                    quiet(rec, cls, rule, ctx) and not (rule is not None and rule.region), reached(rec))
        # each group's classification, quiet or not; the quiet rows' checklist tallies, a group at a time
        ghits = [self._cls_cache.get(k) for k in gkeys]
        gfast = [self._quiet_cache.get(k) for k in gpkeys]
        gquiet = np.array([h is not None and f is not None and f[0] for h, f in zip(ghits, gfast)] + [False])
        quiet_rows = gquiet[inverse]
        classes = _Distinct()
        row_cls = np.array([classes.add(h[0]) if h is not None else -1 for h in ghits], dtype=np.int64)[inverse]
        counted = np.flatnonzero(quiet_rows)
        loud = np.flatnonzero(~quiet_rows)
        if loud.size:
            grouped = self._detect_loud(rb, tb, loud, inverse, ghits, gfast, row_cls, classes, local[loud],
                                        values[loud], di[loud], mcast[di[loud]])  # fmt: skip
            counted = np.concatenate([counted, grouped])
        self._account_groups(tb, counted, inverse, ghits, gfast)  # the rest counted in _detect
        self.flows.add_batch(with_classification(tb, classes.items, row_cls))

    def _named_on_listed_port(self, tb, local, dport) -> np.ndarray:
        """Per row of ``tb``: ``classify.named_on_listed_port``, once per distinct combination of the names,
        port and transport it reads (``local``: the batch's codes of the pre-check columns)."""
        import numpy as np
        import pyarrow as pa

        nk = np.column_stack([local[:, [0, 1, 2, 3, 4, 5, 6, 9]], dport])
        first, inverse = _groups(nk)
        cols = ("sni", "connect_host", "connect_port", "http_host", "http_method", "http_uri", "dns_names",
                "dst_port", "transport", "app_protocol")  # fmt: skip
        reps = tb.take(pa.array(first)).select(list(cols)).to_pydict()
        out = []
        for g in range(len(first)):
            r = {k: reps[k][g] for k in cols}
            hm, hu = r["http_method"], r["http_uri"]
            absolute = hu if hm and hu and "://" in hu else None
            key = (r["sni"], r["connect_host"], r["connect_port"], r["http_host"], absolute, r["dns_names"],
                   r["dst_port"], r["transport"], r["app_protocol"] == "quic")  # fmt: skip
            out.append(_memo(self._listed_cache, key, 50_000, lambda _k, r=r, absolute=absolute: named_on_listed_port(
                _NameView(r, absolute), self.index)))  # fmt: skip
        return np.array(out + [False], dtype=bool)[inverse]

    def _account_groups(self, tb, rows, groups, ghits, gfast) -> None:
        """The checklist tallies of ``rows`` (numpy), each of group ``groups[row]`` whose classification and
        (quiet, reached) are ``ghits``/``gfast``: the same as one ``CoverageTracker.account`` per row."""
        if rows.size == 0:
            return
        import numpy as np
        import pyarrow as pa

        cov = self.coverage
        sel = pa.array(rows)
        g = groups[rows]
        order = np.argsort(g, kind="stable")
        g = g[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], len(g)]
        taken = rows[order]
        ts = tb.column("ts").take(pa.array(taken)).to_pylist()
        uids = tb.column("uid").take(pa.array(taken)).to_pylist()
        proc, eproc = tb.column("process").take(sel), tb.column("eprocess").take(sel)
        labels = None
        if proc.null_count < len(proc) or eproc.null_count < len(eproc):
            p, e = proc.take(pa.array(order)).to_pylist(), eproc.take(pa.array(order)).to_pylist()
            labels = [process_label(a, None, b) for a, b in zip(p, e)]
        for lo, hi in zip(starts.tolist(), ends.tolist()):
            cls, rules = ghits[g[lo]]
            if not rules and not (cls.vendor and cls.vendor not in cov.vendors_seen):
                continue
            procs = {x for x in labels[lo:hi] if x is not None} if labels is not None else ()
            cov.account_many(list(zip(ts[lo:hi], uids[lo:hi])), gfast[g[lo]][1], cls, rules, procs)

    def _detect_loud(self, rb, tb, loud, groups, ghits, gfast, row_cls, classes, local, values, dst_codes,
                     multicast):  # fmt: skip
        """The detectors over the flows of a batch that may have a finding (``loud``: row numbers, in
        order; ``groups``/``ghits``/``gfast``: each row's pre-check group, its classification and (quiet,
        reached); ``local``/``values``: the loud rows' pre-check columns but the address, as this batch's
        codes and as values; ``dst_codes``/``multicast``: their address's code and whether it is multicast
        or broadcast). The rows' classifications are set in ``row_cls``; returns the rows that took the
        group path, whose checklist tallies are the caller's to add (the others' were added here).

        Loud flows repeat too: every unanswered SYN to one host, every flow to one unlisted port. Flows
        that agree on everything the detectors read but what only a message or evidence quotes (the
        detection key below) get the same findings, so the detectors run on the first flow of each key
        and the others' findings are ``RepeatDraft``s of its drafts: the same calls into the collector, in
        the same order, and the same checklist tallies as running the detectors on each flow. Flows with
        details that vary per flow (alerts, ICMP errors, a proxy's CONNECT or status, an upgrade), a UDP
        flow without a reply (held to the end), legacy APNs (its identifier names the client), region
        rules (kept for the region re-check), and flows whose group's caches were cleared take the
        per-flow path. tests/unit/test_findings.py checks both paths give the same tables.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        sel = pa.array(loud)
        sub = tb.take(sel)
        c = sub.select(["ts", "ts_last", "cert_sha256"]).to_pydict()
        end = self.ctx.capture_end
        g = groups[loud]
        grouping = self._on_finding is None  # live capture shows every finding: each is built anyway
        simple = np.array([grouping and h is not None and f is not None and h[0].verdict != VERDICT_LEGACY
                           and not ((r := self.ctx.rule(h[0].rule_id)) is not None and r.region)
                           for h, f in zip(ghits, gfast)] + [False])[g]  # fmt: skip
        for name in ("tls_alerts", "icmp", "connect_host", "http_status", "smtp_starttls"):
            simple &= ~_valid(sub.column(name))
        for name in ("ldap_starttls", "ldap_simple_bind"):
            simple &= ~np.asarray(pc.fill_null(sub.column(name), False).to_numpy(zero_copy_only=False), bool)
        pkts_c2s = np.asarray(sub.column("pkts_c2s").to_numpy(zero_copy_only=False))
        simple &= ~(_eq(sub.column("transport"), "udp") & (np.asarray(sub.column("pkts_s2c").to_numpy(zero_copy_only=False)) == 0))
        # a chain's certificates are its digests': only their validity against the flow's start varies
        leaf_dates = self._leaf_dates
        valid = np.zeros(len(loud), np.int64)
        for j in np.flatnonzero(simple & _valid(sub.column("cert_chain"))).tolist():
            dates = leaf_dates.get(c["cert_sha256"][j])
            if dates is None:
                simple[j] = False
            else:
                expired, not_yet = validity(dates[0], dates[1], c["ts"][j])
                valid[j] = 1 + expired + 2 * not_yet
        ts, ts_last = np.asarray(c["ts"], float), np.asarray(c["ts_last"], float)
        hist = sub.column("history")
        # the server's address matters to a named flow's findings only through the rule's networks and
        # the DNS answers for its SNI: flows to a name's many addresses share a group unless those differ
        value: dict[tuple, int] = {}
        by_name = np.zeros(len(ghits) + 1, bool)
        vid = np.full(len(ghits) + 1, -1, np.int64)
        for k, (h, f) in enumerate(zip(ghits, gfast)):
            if h is None or f is None:
                continue
            vid[k] = value.setdefault((h[0], h[1], f[1]), len(value))
            r = self.ctx.rule(h[0].rule_id)
            # a flow named by its rule's match: its findings name that, not the address or its DNS names
            by_name[k] = (h[0].matched_by in ("sni", "http_host", "dns") and bool(h[0].matched_name)
                          and not (r is not None and r.server_cidrs))  # fmt: skip
        sni, dst = sub.column("sni"), sub.column("dst_ip").to_pylist()
        keep = ~by_name[g]
        local = local.copy()
        local[~keep, 5] = -1  # the DNS names column: only flow_name() reads it, after the matched name
        # server_not_in_dns_answer reads whether the client asked for the name before the flow and what DNS
        # answered for it: whether they point elsewhere is a flag of the key, and keeps the address in it
        before, answers = self.ctx.lookups.before, {}
        elsewhere = np.zeros(len(loud), bool)
        for j, (name, addr, client, t) in enumerate(zip(sni.to_pylist(), dst, sub.column("src_ip").to_pylist(),
                                                        c["ts"])):  # fmt: skip
            if name is None:
                continue
            answered = answers.get(name)
            if answered is None:
                answered = answers[name] = self.ctx.dnsmap.addresses(name)
            elsewhere[j] = (bool(answered) and addr not in answered and not (answered & SINKHOLES)
                            and before(client, name, t))  # fmt: skip
        keep |= elsewhere
        flags = np.column_stack([
            values, multicast, elsewhere, _flag(pc.match_substring(hist, "h")),
            _flag(pc.or_(pc.match_substring(hist, "F"), pc.match_substring(hist, "R"))),
            (ts_last >= end - END_GRACE) if end is not None else np.zeros(len(loud), bool),
            np.asarray(sub.column("syn_count").to_numpy(zero_copy_only=False)) <= 1, ts_last - ts < 0.5,
            ts_last - ts < CANCEL_WINDOW,
            pkts_c2s <= 1, pkts_c2s == 0, np.asarray(sub.column("payload_s2c").to_numpy(zero_copy_only=False)) > 0,
            valid,
        ])  # fmt: skip
        dk = np.column_stack([
            vid[g], local, np.where(keep, dst_codes, -1), flags, _codes(sub.column("one_direction")),
            _codes(sub.column("tls_server_version")), _codes(sub.column("quic_version")),
            _codes(sub.column("cert_chain")),
        ])  # fmt: skip
        dk[~simple, 0] = -1 - np.arange(int((~simple).sum()))  # the per-flow path: a group of its own
        first, dinv = _groups(dk)
        # a group seen in an earlier batch has its findings' templates already: the same key in values
        tmpl_cache = self._templates
        templates: dict[int, list] = {}
        fs = [(d, j) for d, j in enumerate(first.tolist()) if simple[j]]
        if fs:
            vals = sub.take(pa.array([j for _d, j in fs])).select(_GROUP_VALUES).to_pydict()
            for n_, (d, j) in enumerate(fs):
                h = ghits[g[j]]
                row = tuple(vals[name][n_] for name in _GROUP_VALUES)
                if by_name[g[j]]:
                    row = row[:-2] + (None, row[-1] if keep[j] else None)  # no DNS names; the address if kept
                elif not keep[j]:
                    row = row[:-1] + (None,)
                vk = (h[0], h[1], gfast[g[j]][1], row, tuple(flags[j].tolist()))
                hit = tmpl_cache.get(vk)
                if hit is not None:
                    templates[d] = hit
                    self._template_hits += 1
                else:
                    templates[d] = vk  # filled from this group's first flow below
        need = np.unique(np.r_[[j for d, j in enumerate(first.tolist()) if not isinstance(templates.get(d), list)],
                               np.flatnonzero(~simple)]).astype(np.int64)  # fmt: skip
        recs: dict[int, FlowRecord] = {}
        for j, (row, plain) in zip(need.tolist(), flow_rows(rb.take(loud[need]))):
            recs[j] = rec = FlowRecord(**row._asdict()) if plain else row
            if rec.certs:
                leaf = rec.certs[0]
                _memo(leaf_dates, leaf.sha256, 50_000, lambda _sha, leaf=leaf: (leaf.not_before, leaf.not_after))
        src, sp, dp, uids = (sub.column(x).to_pylist() for x in ("src_ip", "src_port", "dst_port", "uid"))
        ctx = self.ctx
        repeat, tallies, ts_list = self.findings.repeat, Counter(), c["ts"]
        for j, (i, d, ok) in enumerate(zip(loud.tolist(), dinv.tolist(), simple.tolist())):
            if not ok:
                row_cls[i] = classes.add(self._detect(recs[j]))
                continue
            cls, rules = ghits[g[j]]
            mine = templates.get(d)
            if type(mine) is tuple:  # the key's first flow: its own drafts, kept for the others
                made = list(detect_flow(recs[j], cls, ctx))
                if len(tmpl_cache) > 20_000:
                    tmpl_cache.clear()
                tmpl_cache[mine] = templates[d] = [Template.of(fd) for fd in made]
                if made:
                    fkey = fold_key(src[j], sp[j], dst[j], dp[j])
                    for fd in made:
                        self._finding(fd, rules, src[j], fkey)
            elif mine:
                # most repeats are only counted (collector.repeat; their checklist tallies after the loop),
                # the others go the whole way
                uid, t, client = uids[j], ts_list[j], src[j]
                fkey = fold_key(client, sp[j], dst[j], dp[j])
                for tm in mine:
                    if repeat(tm, uid, t, client, fkey):
                        tallies[tm, rules] += 1
                    else:
                        self._finding(RepeatDraft(tm, uid, t, self._repeat_maker(rb, i, cls)), rules, client, fkey)
        for (tm, rules), k in tallies.items():
            self.coverage.flow_finding(tm.kind, tm.severity, tm.code, rules, k)
        self._grouped += int(simple.sum())
        return loud[simple]

    def _repeat_maker(self, rb, i: int, cls: Classification):
        """How a ``RepeatDraft`` of row ``i`` of ``rb`` becomes that flow's own draft."""

        def make(rd: RepeatDraft) -> FindingDraft:
            row, plain = next(flow_rows(rb.slice(i, 1)))
            rec = FlowRecord(**row._asdict()) if plain else row
            for fd in detect_flow(rec, cls, self.ctx):
                if fd.identifier == rd.identifier and fd.code == rd.code:
                    return fd
            raise AssertionError(f"flow {rd.uid}: no {rd.code} finding {rd.identifier} of its own")

        return make

    def _detect(self, rec: FlowRecord, shown: Callable[[Classification], None] | None = None) -> Classification:
        """The full per-flow path but the table row: classification, checklist, detectors (``shown``: told
        the classification before any finding is raised)."""
        # flows to the same destination classify the same way: cache on everything classify() reads
        key = self._cls_key(rec.sni, rec.connect_host, rec.connect_port, rec.http_host,
                            rec.http_uri if rec.http_method and rec.http_uri and "://" in rec.http_uri else None,
                            rec.dns_names, rec.dst_ip, rec.dst_port, rec.transport, rec.app_protocol)  # fmt: skip
        hit = self._cls_cache.get(key)
        if hit is None:
            # rules several vendors share (legacy APNs 2195...) go to the selected vendors first, then to
            # vendors the user configured a tenant of, else to the first ruleset: a fixed order keeps
            # reports identical whatever the flows' order or --jobs
            cls = classify(rec, self.index, self._prefer)
            hit = (cls, self.coverage.rules_for_flow(rec, cls))
            if len(self._cls_cache) > 20_000:
                self._cls_cache.clear()
            self._cls_cache[key] = hit
        cls, rules = hit
        if shown is not None:
            shown(cls)
        self.coverage.flow(rec, cls, rules)
        rule = self.ctx.rule(cls.rule_id)
        if rule is not None and rule.region:
            self._regional.append((rec, cls, rules))
        fkey = None
        for fd in detect_flow(rec, cls, self.ctx):
            if fkey is None:
                fkey = fold_key(rec.src_ip, rec.src_port, rec.dst_ip, rec.dst_port)
            if fd.code == "udp_no_reply":
                self._held_udp.append((fd, rules, rec.src_ip, fkey))
                continue
            self._finding(fd, rules, rec.src_ip, fkey)
        return cls

    def _plain(self, b: FlowBase) -> None:
        """A flow without application details (most DNS and NTP flows): when its destination is already
        classified and such a flow can have no finding, only its row and checklist tallies are made.

        Whether it can have a finding (``quiet``) and whether it ``reached`` its server are decided by
        the same functions as for any flow, on a real record, once per combination of everything they
        read from a plain flow; tests/unit/test_findings.py checks this against the full path.
        """
        key = self._cls_key(None, None, None, None, None, b.dns_names, b.dst_ip, b.dst_port, b.transport,
                            b.app_protocol)  # fmt: skip
        hit = self._cls_cache.get(key)
        if hit is None or self._on_flow is not None:
            self._flow(FlowRecord(**b._asdict()), b)
            return
        cls, rules = hit
        ctx = self.ctx
        if ctx.devices:
            dev = _memo(self._device_cache, b.src_ip, 50_000, ctx.is_device)
        else:
            dev = True
        pkey = (key, b.conn_state, b.state, b.pkts_s2c == 0, b.src_port in INFRA_PORTS, b.app_protocol, dev)
        fast = self._plain_cache.get(pkey)
        rec = None
        if fast is None:
            rec = FlowRecord(**b._asdict())
            rule = ctx.rule(cls.rule_id)
            fast = (quiet(rec, cls, rule, ctx) and not (rule is not None and rule.region), reached(rec))
            if len(self._plain_cache) > 50_000:
                self._plain_cache.clear()
            self._plain_cache[pkey] = fast
        if not fast[0]:
            self._flow(rec or FlowRecord(**b._asdict()), b)
            return
        self.flows.append(plain_row(b, cls))
        self.coverage.account(b.uid, b.ts, fast[1], cls, rules, process_label(b.process, None, b.eprocess))

    def _core_dns(self, rb, tb) -> None:
        """A batch of DNS transactions from the core (``rb`` nested, ``tb`` the dns table's columns): the
        rule columns are looked up once per distinct query name and taken back by row; the checklist gets
        the lookups of each name of the batch at once; only failed or sinkholed lookups of a vendor's
        names become ``DnsTransaction``s for the DNS detectors."""
        n = tb.num_rows
        if n == 0:
            return
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        cache = self._dns_cache
        enc = tb.column("query").dictionary_encode()
        names = enc.dictionary.to_pylist()
        hits = [_memo(cache, q, 50_000, self._name_hit) for q in names]  # once per distinct name of the batch
        qi = np.asarray(enc.indices.fill_null(len(names)).to_numpy(zero_copy_only=False), dtype=np.int64)
        take = pa.array(qi)
        vendors = pa.array([r.vendor if r is not None else None for _x, r in hits] + [None], type=pa.string())
        rids = pa.array([r.id if r is not None else None for _x, r in hits] + [None], type=pa.string())
        cols = {name: tb.column(i) for i, name in enumerate(tb.schema.names)}
        cols["vendor"], cols["rule_id"] = vendors.take(take), rids.take(take)
        self.dns.add_batch(pa.RecordBatch.from_arrays([cols[name] for name in DNS_COLUMNS], names=list(DNS_COLUMNS)))
        # the lookups that count: of a vendor's name, opcode QUERY (a NOTIFY / UPDATE / NetBIOS message is
        # no lookup of the name), to a resolver (mDNS/LLMNR asks the link, not a resolver)
        named = np.array([bool(x) for x, _r in hits] + [False])[qi]
        if not named.any():
            return
        query_op = pc.fill_null(pc.equal(tb.column("opcode"), "QUERY"), False).to_numpy(zero_copy_only=False)
        senc = tb.column("server_ip").dictionary_encode()
        mc = [_memo(self._mcast_server_cache, server, 10_000, is_multicast) for server in senc.dictionary.to_pylist()]
        si = np.asarray(senc.indices.fill_null(len(mc)).to_numpy(zero_copy_only=False), dtype=np.int64)
        counted = named & query_op & ~np.array(mc + [False])[si]
        rows = np.flatnonzero(counted)
        if rows.size == 0:
            return
        sel = pa.array(rows)
        ts = tb.column("ts").take(sel).to_pylist()
        uids = tb.column("uid").take(sel).to_pylist()
        groups: dict[int, list[tuple[float, str]]] = {}
        for q, t, u in zip(qi[rows].tolist(), ts, uids):
            groups.setdefault(q, []).append((t, u))
        for q, items in groups.items():  # the checklist's lookups, once per name of the batch
            rules, rule = hits[q]
            self.coverage.dns_queries(rules, rule.vendor if rule is not None else None, items)
        answered = np.flatnonzero(counted & _flag(pc.equal(tb.column("rcode"), "NOERROR")) & _valid(tb.column("answers")))
        if answered.size:  # which client had an answer for which name when, for the flows it opens next
            self.ctx.lookups.add_table(pa.table({"c": tb.column("client_ip"), "q": tb.column("query"),
                                                 "t": tb.column("ts")}).take(pa.array(answered)))  # fmt: skip
        rcode = tb.column("rcode")
        no_a = pc.and_(pc.equal(rcode, "NOERROR"), pc.equal(tb.column("qtype"), "A"))
        no_a = pc.and_(no_a, pc.invert(_has(tb.column("answers"), "(^|;)A:")))
        no_a = pc.and_(no_a, pc.invert(pc.fill_null(tb.column("truncated"), False)))  # TC: asked again over TCP
        failed = counted & (_flag(pc.is_in(rcode, pa.array(sorted(FAILED_RCODES))))
                            | _flag(tb.column("sinkholed")) | _flag(pc.is_null(rcode)) | _flag(no_a))  # fmt: skip
        if failed.any():  # the DNS detectors: failed, unanswered, empty and sinkholed lookups of vendor names
            for tx in dns_rows(rb.take(np.flatnonzero(failed))):
                rules = self._dns_cache.get(tx.query, (None,))[0] or self.coverage.name_rules(tx.query)
                for fd in detect_dns(tx, self.ctx):
                    self._finding(fd, rules, tx.client_ip)

    def _dns(self, tx: DnsTransaction) -> None:
        rules, rule = _memo(self._dns_cache, tx.query, 50_000, self._name_hit)
        self.dns.append(dns_row(tx, rule))
        if not rules or is_multicast(tx.server_ip) or tx.opcode != "QUERY":  # mDNS/LLMNR asks the link, not a
            return  # resolver; a NOTIFY / UPDATE / NetBIOS message is no lookup of the name
        self.coverage.dns_query(tx, rules, rule.vendor if rule is not None else None)
        if tx.rcode == "NOERROR" and tx.answers:
            self.ctx.lookups.add(tx.client_ip, tx.query, tx.ts)
        if tx.rcode is None or tx.rcode in FAILED_RCODES or tx.sinkholed or no_address(tx):
            for fd in detect_dns(tx, self.ctx):
                self._finding(fd, rules, tx.client_ip)

    def _finding(self, fd: Finding | FindingDraft, rules: frozenset[str] = frozenset(), client: str | None = None,
                 key: str | None = None) -> None:  # fmt: skip
        row = self.findings.add(fd, client, key)
        self.coverage.finding(fd, rules)
        if self._on_finding:
            self._on_finding(row or as_finding(fd), row is not None)

    # -- input -----------------------------------------------------------------------------------
    def feed_batch(self, batch: PacketBatch) -> None:
        """Decode and account one batch of packets."""
        n = len(batch)
        if n == 0:
            return
        if self.core is not None:
            self.core.feed_batch(batch)
            self._core_stats()
            return
        res = self.decoder.decode(batch)
        for row, name, detail in res.weirds:
            self.weirds.add(Weird(float(batch.ts[row]), name, None, f"packet {batch.first_index + row + 1}: {detail}"))
        self.decoded += int((res.cols.status == FAST).sum())  # copies included: they were decoded
        self.copies.drop(batch.ts, res)  # nothing to do unless packets name an interface or direction
        self.engine.process(batch, res)
        self._drain_orphan_icmp()
        self.packets += n
        self.bytes += int(batch.wirelen.sum())
        lo, hi = float(batch.ts.min()), float(batch.ts.max())
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)
        self.not_ip += res.not_ip
        self.fragments += res.fragments
        self.tunnels.update(res.tunnels)

    def _empty_window(self) -> None:
        """--start/--end/--filter that left no packet of a capture that has some: nothing was audited,
        which is an error (a mistyped date must not pass a CI gate), naming the captures' own span."""
        opts = self.options
        if opts.file_filter is None or self.packets or not (self.filtered or self.outside_window):
            return
        lo, hi = self.seen_span
        span = (f" (the capture runs from {iso_utc(lo)} to {iso_utc(hi)})" if lo is not None and hi is not None
                else "")  # fmt: skip
        what = ", ".join(x for x in ("--filter" if self.filtered else "",
                                     "--start/--end" if self.outside_window else "") if x)  # fmt: skip
        self.errors.append(f"{what} left no packet to audit: {self.filtered + self.outside_window:,} read, "
                           f"0 audited{span}")  # fmt: skip

    def capture_unreadable(self, message: str) -> None:
        """A capture named with others that could not be opened: an error and a ``capture_unreadable``
        weird row, as a directory's audit gives (the others are audited)."""
        self.errors.append(message)
        self._weird(None, "capture_unreadable", message)

    def _weird(self, ts: float | None, name: str, detail: str) -> None:
        """A weird found outside the flow engine, counted with the engine's."""
        if self.core is not None:
            self.core.add_weird(ts, name, detail)
        else:
            self.weirds.add(Weird(ts, name, None, detail))

    def _clamped(self, source: CaptureFile) -> None:
        """pcap records whose captured length exceeded their wire length (read with the wire length):
        tcpdump and tshark call such a file corrupt, so the report says so, once per file."""
        n = getattr(source, "clamped", 0)
        if n:
            self.clamped += n
            first = getattr(source, "first_clamped", None)
            self._weird(None, "capture_length_exceeds_wire_length",
                        f"{source.name}: {n:,} pcap record{'s' if n != 1 else ''} whose captured length exceeds the "
                        f"wire length (first: packet {first}); read with the wire length "
                        "(tcpdump and tshark call such a file corrupt)")  # fmt: skip

    def run_file(self, source: CaptureFile, progress: Callable[[int], None] | None = None) -> None:
        """Read one capture file to its end (a truncated or corrupt tail is recorded in ``errors``)."""
        self.sources.append(source.name)
        if self.core is not None:
            cap = open_capture(source.spec)
            with quiet_gc():
                self.core.run(cap, source, progress)
            self._core_stats()
        else:
            with quiet_gc():
                for batch in source.batches(first_index=self.packets):
                    self.feed_batch(batch)
                    if progress:
                        progress(source.packets)
        if source.dropped is not None:
            self.if_dropped = (self.if_dropped or 0) + source.dropped
        self._clamped(source)
        if source.error:
            self.errors.append(source.error)
            self._weird(self.last_ts, "capture_truncated_or_corrupt", source.error)
        new = [(lt, n) for lt, n in self.unfiltered if lt not in self._unfiltered_reported]
        if new and self.options.file_filter is not None:
            self._unfiltered_reported.update(lt for lt, _ in new)
            self.errors.append(f"{source.name}: {self.options.file_filter.unfiltered_error(new)}")

    # -- results ---------------------------------------------------------------------------------
    def finish(self) -> AuditResult:
        """Flush every flow, build the checklist and return the result (call once)."""
        self.flush_all()
        with quiet_gc():
            return self.assemble()

    def flush_all(self) -> None:
        """End of input: emit every remaining flow (the per-partition part of finishing)."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        self.ctx.capture_end = self.last_ts
        if self.core is not None:
            with quiet_gc():
                self.core.flush()
            self._core_stats(final=True)
            return
        with quiet_gc():
            self.engine.flush()
        if self.decoder.simple.expired_fragments or self.decoder.simple._frags:
            n = self.decoder.simple.expired_fragments + len(self.decoder.simple._frags)
            self.weirds.add(Weird(self.last_ts, "incomplete_ip_datagram", None,
                                  f"{n} fragmented datagram(s) never completed"))  # fmt: skip
        self._drain_orphan_icmp()
        self._max_active = self.engine.max_active
        self._ended_early = self.engine.ended_early

    def export_state(self, spill: str) -> dict:
        """What a parallel worker sends back to the parent (picklable). The big tables go to Arrow IPC
        files named ``spill``.flows/.dns, which the parent maps instead of receiving a pickled copy."""
        self.coverage.index = None  # the parent has its own
        self.flows.write_ipc(spill + ".flows")
        self.dns.write_ipc(spill + ".dns")
        return {
            "flows": spill + ".flows", "dns": spill + ".dns", "findings": self.findings,
            "coverage": self.coverage, "regional": self._regional, "weirds": self.weirds,
            "max_active": self._max_active, "ended_early": self._ended_early, "held_udp": self._held_udp,
        }  # fmt: skip

    def absorb(self, state: dict) -> None:
        """Merge a worker's state (another partition of the same capture) into this auditor."""
        self.flows.add_ipc(state["flows"])
        self.dns.add_ipc(state["dns"])
        self.findings.merge(state["findings"])
        self.coverage.merge(state["coverage"])
        self._regional.extend(state["regional"])
        self._held_udp.extend(state.get("held_udp", ()))
        self.weirds.merge(state["weirds"])
        self._max_active += state["max_active"]
        self._ended_early += state["ended_early"]

    def _tcp_fallbacks(self) -> Callable[[FindingDraft, str], bool]:
        """Whether a held udp_no_reply finding is a QUIC attempt its client followed (within a minute) by a
        connection over TCP to the same name that reached it (as the checklist's ``reached``): the fallback
        of browsers and Apple's stack."""
        quic = {fd.flow.sni for fd, *_r in self._held_udp
                if fd.flow is not None and fd.flow.app_protocol == "quic" and fd.flow.sni}  # fmt: skip
        if not quic or not len(self.flows):
            return lambda fd, client: False
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.flows.table().select(["src_ip", "sni", "ts", "transport", "tls_handshake", "state", "pkts_s2c"])
        t = t.filter(pc.is_in(t.column("sni").cast(pa.string()), pa.array(sorted(quic))))
        text = {c: t.column(c).cast(pa.string()) for c in ("transport", "tls_handshake", "state")}
        reached_tcp = pc.and_(pc.and_(pc.equal(text["transport"], "tcp"), pc.greater(t.column("pkts_s2c"), 0)),
                              pc.is_in(text["state"], pa.array(sorted(REACHED_STATES))))  # as coverage.reached()
        t = t.filter(pc.and_(reached_tcp, pc.invert(pc.fill_null(
            pc.is_in(text["tls_handshake"], pa.array(sorted(FAILED_HANDSHAKES))), False))))  # fmt: skip
        done: dict[tuple[str, str], list[float]] = {}
        for client, sni, ts in zip(*(t.column(c).cast(pa.float64() if c == "ts" else pa.string()).to_pylist()
                                     for c in ("src_ip", "sni", "ts"))):  # fmt: skip
            done.setdefault((client, sni), []).append(ts)

        def fell_back(fd: FindingDraft, client: str) -> bool:
            f = fd.flow
            if f is None or f.app_protocol != "quic" or not f.sni:
                return False
            return any(f.ts - 1.0 <= t <= f.ts_last + 60.0 for t in done.get((client, f.sni), ()))

        return fell_back

    def _dns_recovered(self) -> None:
        """DNS failures of a name that a later lookup of the same client answered with an address (a
        resolver's hiccup, a retry that worked), for every client it failed for, are LOW notes: what stays a
        block is a name some client's last lookup of which failed."""
        names = self.findings.targets(DNS_FAILURES)
        if not names or not len(self.dns):
            return
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.dns.table().select(["query", "client_ip", "ts", "qtype", "rcode", "answers", "sinkholed", "opcode",
                                     "truncated"])  # fmt: skip
        t = t.filter(pc.and_(pc.is_in(t.column("query"), pa.array(sorted(names))),
                             pc.fill_null(pc.equal(t.column("opcode"), "QUERY"), False)))  # fmt: skip
        t = pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c  # the store's categories
                      for n, c in zip(t.column_names, t.columns)}).combine_chunks()  # fmt: skip
        if t.num_rows == 0:
            return
        answers, rcode = t.column("answers"), t.column("rcode")
        ok = pc.and_(pc.and_(pc.equal(rcode, "NOERROR"), _has(answers, "(^|;)(A|AAAA):")),
                     pc.invert(pc.fill_null(t.column("sinkholed"), False)))  # fmt: skip
        ok = pc.fill_null(ok, False)
        bad = pc.or_(pc.fill_null(pc.is_in(rcode, pa.array(sorted(FAILED_RCODES))), False),
                     pc.or_(pc.is_null(rcode), pc.and_(pc.fill_null(pc.equal(t.column("qtype"), "A"), False),
                                                        pc.invert(_has(answers, "(^|;)A:")))))  # fmt: skip
        bad = pc.and_(pc.and_(pc.invert(ok), bad), pc.invert(pc.fill_null(t.column("truncated"), False)))
        # per (client, name): its last good answer and its last failure (numpy, not Acero's group_by: a
        # small capture must not load the query engine for this)
        ci, qi = _codes(t.column("client_ip").chunk(0)), _codes(t.column("query").chunk(0))
        key = ci * (int(qi.max(initial=0)) + 2) + qi
        uniq, inv = np.unique(key, return_inverse=True)
        ts = np.asarray(t.column("ts").to_numpy(), dtype=float)
        last_ok, last_bad = np.full(len(uniq), -np.inf), np.full(len(uniq), -np.inf)
        np.maximum.at(last_ok, inv, np.where(_flag(ok), ts, -np.inf))
        np.maximum.at(last_bad, inv, np.where(_flag(bad), ts, -np.inf))
        first_row = np.zeros(len(uniq), np.int64)
        first_row[inv[::-1]] = np.arange(len(inv))[::-1]
        queries = t.column("query").take(pa.array(first_row)).to_pylist()
        # a name recovered when every client it failed for got an address after its last failure
        failed = {q for q, b in zip(queries, last_bad.tolist()) if b > -np.inf}
        still = {q for q, o, b in zip(queries, last_ok.tolist(), last_bad.tolist()) if b > -np.inf and o <= b}
        recovered = failed - still
        if recovered:
            self.findings.soften(DNS_FAILURES, recovered, "answered later with an address: a transient failure")

    def _tls13_passive(self) -> None:
        """Passive TLS 1.3 interception evidence over the whole flows table (``pcapaudit.tls13``): its
        per-flow verdicts replace the "evidence unavailable" notes of the flows they cover."""
        from pcapaudit import tls13

        new = tls13.findings(self.flows.table(), self.findings.rows())
        if not new:
            return
        self.findings.retract("evidence_unavailable", {f.uid for f, _u in new if f.code == tls13.CODE})
        by_ident: dict[str, list[tuple[Finding, tuple[str, ...]]]] = {}
        for f, uids in new:
            by_ident.setdefault(f.identifier, []).append((f, uids))
        for fs in by_ident.values():
            uids = tuple(dict.fromkeys(u for _f, us in fs for u in us))
            first = min((f for f, _u in fs), key=lambda f: f.ts or 0)
            row = replace(first, count=sum(f.count for f, _u in fs), severity=max(f.severity for f, _u in fs))
            self.findings.add_row(row, uids)
            self.coverage.finding(row, frozenset({row.rule_id}) if row.rule_id else frozenset())

    def _copies(self) -> int:
        return self._copies_count if self.core is not None else self.copies.count

    def assemble(self) -> AuditResult:
        """Region checks, the checklist and the result, once every partition is in."""
        self._empty_window()
        # region: configured, or inferred from pinned device-domain flows; then re-check region rules
        inferred = region_findings([(f, c) for f, c, _r in self._regional], self.ctx)
        if inferred != self.ctx.region:
            new_regions = {k: v for k, v in inferred.items() if k not in self.ctx.region}
            self.ctx.region = inferred
            for rec, cls, rules in self._regional:
                if self.ctx.rule(cls.rule_id).vendor in new_regions:
                    for fd in detect_flow(rec, cls, self.ctx):
                        if fd.code == "region_mismatch":
                            self._finding(fd, rules, rec.src_ip,
                                          fold_key(rec.src_ip, rec.src_port, rec.dst_ip, rec.dst_port))
        for vendor, regions in sorted(region_ties([(f, c) for f, c, _r in self._regional], self.ctx).items()):
            row, uids = region_note(vendor, regions)
            self.findings.add_row(row, uids)
        one_way = self._one_direction_view()
        fell_back = self._tcp_fallbacks()
        for fd, rules, client, fkey in sorted(self._held_udp, key=lambda h: (h[0].ts, h[3])):
            if client in one_way["clients"]:
                continue
            if fell_back(fd, client):  # QUIC refused, the same service reached over TCP: a note
                fd = fd._replace(severity=Severity.LOW, message=f"{fd.message}; the client fell back to TLS over "
                                 "TCP, which worked (UDP 443 blocked: HTTP/3 unavailable, the service reached)")
                rules = frozenset()  # the rules' rows stay reached: no block for them
            self._finding(fd, rules, client, fkey)
        self._held_udp.clear()
        self._tls13_passive()
        self._dns_recovered()
        vendors = self.options.vendors or self.coverage.detected_vendors(self.book)
        finding_rows = self.findings.rows()
        coverage = self.coverage.rows(self.book, tuple(vendors), self.ctx.region)
        stats = CaptureStats(
            sources=tuple(self.sources), packets=self.packets, bytes=self.bytes, first_ts=self.first_ts,
            last_ts=self.last_ts, decoded=self.decoded, not_ip=self.not_ip, weird=sum(self.weirds.counts.values()),
            dropped=self.dropped, if_dropped=self.if_dropped,
            extra=tuple(sorted({"fragmented_datagrams": self.fragments, "flows": len(self.flows),
                                "dns_transactions": len(self.dns), "max_active_flows": self._max_active,
                                **({"flows_ended_early": self._ended_early} if self._ended_early else {}),
                                **({"interface_copies": self._copies()} if self._copies() else {}),
                                **({"one_direction_flows": one_way["flows"],
                                    "one_direction_links": one_way["links"]} if one_way["flows"] else {}),
                                **({"filtered_out": self.filtered} if self.filtered else {}),
                                **({"capture_length_exceeds_wire_length": self.clamped} if self.clamped else {}),
                                **({"outside_window": self.outside_window} if self.outside_window else {}),
                                **{f"tunnel_{k}": v for k, v in self.tunnels.items()}}.items())),
        )  # fmt: skip
        from pcapaudit.result import AuditResult

        return AuditResult(
            flows=self.flows, dns=self.dns, findings=finding_rows, coverage=coverage,
            weirds=self.weirds.summary_rows(), stats=stats, vendors=tuple(vendors),
            vendors_auto=not self.options.vendors, errors=tuple(self.errors), book=self.book,
        )  # fmt: skip

    def _one_direction_view(self) -> dict:
        """Which links (client, server) and clients the capture shows in one direction only: TCP flows whose
        other side must have existed (``one_direction``), as ``one_direction_link`` weird rows. A client is
        seen in one direction only when it has such flows and no flow with packets both ways; its UDP
        flows without a reply are then no finding (the reply may be there, out of the capture's sight)."""
        out = {"flows": 0, "links": 0, "clients": set()}
        if not len(self.flows):
            return out
        t = self.flows.table().select(["src_ip", "dst_ip", "one_direction", "pkts_c2s", "pkts_s2c", "ts"])
        od = t.column("one_direction")
        if od.null_count == len(od):
            return out
        import pyarrow.compute as pc

        both = pc.and_(pc.greater(t.column("pkts_c2s"), 0), pc.greater(t.column("pkts_s2c"), 0))
        two_way = set(pc.unique(pc.filter(t.column("src_ip"), both)).to_pylist())
        sub = t.filter(pc.is_valid(od)).to_pydict()
        links: dict[tuple, list] = {}
        for src, dst, side, ts in zip(sub["src_ip"], sub["dst_ip"], sub["one_direction"], sub["ts"]):
            row = links.setdefault((src, dst, side), [0, ts])
            row[0] += 1
            row[1] = min(row[1], ts)
        for (src, dst, side), (n, ts) in sorted(links.items(), key=lambda kv: (kv[1][1], kv[0])):
            shown = "client's" if side == "client_only" else "server's"
            self.weirds.add(Weird(ts, "one_direction_link", None,
                                  f"{src} -> {dst}: {n} TCP flow{'s show' if n != 1 else ' shows'} only the {shown} side "
                                  "(the capture holds one direction: no blocked finding is drawn from the other)", n))  # fmt: skip
            if side == "client_only" and src not in two_way:
                out["clients"].add(src)
        out["flows"] = sum(v[0] for v in links.values())
        out["links"] = len({(s, d) for s, d, _ in links})
        return out

    @property
    def active_flows(self) -> int:
        """Flows the flow table holds now."""
        return self.core.active_flows if self.core is not None else self.engine.active_flows

    def expire(self, now: float) -> None:
        """Let flows idle past their timeout at ``now`` finish (live capture, while nothing arrives)."""
        if self.core is not None:
            self.core.expire(now)
            self._core_stats()
        else:
            self.engine.expire(now)
            self._drain_orphan_icmp()

    def _core_stats(self, final: bool = False) -> None:
        """The core's counters become the auditor's (they are cumulative over the run)."""
        st = self.core.stats()
        self.packets, self.bytes = st["packets"], st["bytes"]
        self.first_ts, self.last_ts = st["first_ts"], st["last_ts"]
        self.decoded, self.not_ip = st["decoded"], st["not_ip"]
        self.fragments = st["fragments"]
        self.tunnels = Counter(dict(st["tunnels"]))
        self._copies_count = st["copies"]
        self._max_active, self._ended_early = st["max_active"], st["ended_early"]
        self.filtered, self.outside_window = st["filtered"], st["outside_window"]
        self.seen_span = (st.get("seen_first_ts"), st.get("seen_last_ts"))
        self.unfiltered = list(st["unfiltered_linktypes"])
        for ts, ipver, proto, src, dst, sport, dport, itype, icode, reporter in self.core.take_orphan_icmp():
            self._orphan_icmp(ts, icmpmod.Quoted(ipver, proto, src, dst, sport, dport), itype, icode, reporter)
        if final:  # the core caps weird rows per name as the collector does, and counts them all
            self.weirds.counts = Counter(dict(st["weird_counts"]))

    def _drain_orphan_icmp(self) -> None:
        """Findings for ICMP errors whose quoted flow is not in the capture, batch by batch (ICMP
        backscatter can bring hundreds of thousands: they are not kept until the end)."""
        orphans = self.engine.orphan_icmp
        if orphans:
            for ts, q, itype, icode, reporter in orphans:
                self._orphan_icmp(ts, q, itype, icode, reporter)
            orphans.clear()

    def _orphan_icmp(self, ts, q, itype, icode, reporter) -> None:
        if not icmpmod.blocks(q.ipver, itype, icode):
            return
        # written as the flow table writes addresses (inet_ntop), so the client matches its flows' rows
        af = socket.AF_INET if q.ipver == 4 else socket.AF_INET6
        dst, src = socket.inet_ntop(af, q.dst), socket.inet_ntop(af, q.src)
        rules = self.index.match_ip(dst)
        rule = rules[0] if rules else None
        what = icmpmod.describe(q.ipver, itype, icode)
        proto = {6: "tcp", 17: "udp"}.get(q.proto, str(q.proto))
        self._finding(_f(FindingKind.BLOCKED, required_severity(rule), "icmp_unreachable", None, None, rule,
                         f"{dst}:{q.dport}", f"ICMP {what} from {reporter} for {src} -> {dst}:{q.dport}/{proto} "
                         "(the quoted packet itself is not in the capture)",
                         {"icmp_type": itype, "icmp_code": icode, "reporter": reporter},
                         f"blocked:icmp_unreachable|{rule.id if rule else '-'}|{dst}|{proto}/{q.dport}", ts=ts),
                      client=src, key=fold_key(src, q.sport, dst, q.dport))  # fmt: skip


@contextlib.contextmanager
def quiet_gc():
    """Collect cyclic garbage rarely while streaming: the per-flow objects hold no cycles, and with a
    hundred thousand of them alive the default thresholds make the collector cost a third of the run."""
    old = gc.get_threshold()
    gc.set_threshold(200_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def audit(
    captures: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    rules: list[str | os.PathLike] | None = None,
    vendors: Iterable[str] | None = None,
    tenants: dict[str, str] | None = None,
    trust_issuers: Iterable[str] = (),
    devices: Iterable[str] = (),
    engine: str = "core",
    client=None,
    recursive: bool = False,
    sensor_pattern: str | None = None,
    partitions: int | None = None,
    config: str | os.PathLike | None = None,
):
    """Audit one or more capture files and return an ``AuditResult`` (``.flows``, ``.findings``, ``.coverage``).

    ``config``: a config file, as ``pcapaudit audit --config`` reads it (its ``fail_on`` is the CLI's exit
    threshold and means nothing here); the other arguments add to its lists and override its tenants, key
    by key, as the CLI's flags do. ``tenants``: a dict, or ``VENDOR.NAME=VALUE`` strings.

    Raises ``CaptureError`` when a capture cannot be opened at all and ``RulesetError`` for bad rulesets;
    a capture that is truncated mid-way still returns a result, with the problem in ``result.errors``.

    ``client``: a ``distributed.Client``; the audit runs as Dask tasks (``pcapaudit.distributed``).
    Directories, globs, ``recursive`` and ``sensor_pattern`` group the files by sensor and order each
    sensor's files by their first packet (``pcapaudit.inputs``), with or without a client.
    """
    captures = _paths(captures, "captures")
    if not captures:
        raise UsageError("captures: no capture given")
    if engine not in ("core", "fast", "simple"):
        raise UsageError(f"engine {engine!r}: core, fast or simple")
    cfg = load_config(config) if config is not None else {}
    opts = AuditOptions(
        rules=list(_paths(rules, "rules")) or cfg.get("rules") or None,
        vendors=_strings(vendors, "vendors") or vendor_names(cfg.get("vendor")) or None,
        tenants={**cfg.get("tenants", {}), **_tenants(tenants)},
        trust_issuers=tuple(cfg.get("trust_issuers") or ()) + _strings(trust_issuers, "trust_issuers"),
        devices=config_devices(cfg, config) + networks(_strings(devices, "devices"), "devices"), engine=engine,
    )  # fmt: skip
    if cfg.get("max_flows") is not None:
        opts = replace(opts, engine_config=replace(opts.engine_config, max_flows=cfg["max_flows"] or None))
    from pcapaudit.inputs import is_capture_spec

    if client is not None or recursive or sensor_pattern or partitions or any(map(is_capture_spec, captures)):
        from pcapaudit.distributed import audit_paths

        with _api_names():
            return audit_paths(captures, opts, client=client, recursive=recursive, sensor_pattern=sensor_pattern,
                               partitions=partitions)  # fmt: skip
    with _api_names():
        a = Auditor(opts)
    for c in captures:
        a.run_file(CaptureFile(c))
    return a.finish()


def _tenants(tenants) -> dict[str, str]:
    """``tenants=``: a dict, or ``VENDOR.NAME=VALUE`` strings (as ``--tenant`` takes them)."""
    if tenants is None:
        return {}
    if isinstance(tenants, dict):
        for k in tenants:
            if not isinstance(k, str) or "." not in k:
                raise UsageError(f"tenants: {k!r}: a key is VENDOR.NAME (kandji.uuid, jamf-pro.instance)")
        return {k: str(v) for k, v in tenants.items()}
    if isinstance(tenants, str) or not all(isinstance(t, str) for t in tenants):
        raise UsageError("tenants: a dict {'VENDOR.NAME': value} or a list of 'VENDOR.NAME=VALUE' strings")
    return parse_kv(tenants, "tenants:")


@contextlib.contextmanager
def _api_names():
    """Errors about the vendors and tenants given, in the API's words: ``vendors=``/``tenants=`` and a
    ``UsageError`` (the checks speak the CLI's ``--vendor``/``--tenant``)."""
    try:
        yield
    except (UsageError, RulesetError) as e:
        msg = str(e)
        for flag, arg in (("--vendor ", "vendors: "), ("--tenant ", "tenants: ")):
            if msg.startswith(flag):
                raise UsageError(arg + msg[len(flag):]) from None
        raise


def _strings(value, what: str) -> tuple[str, ...]:
    """A string stands for a one-item list (``vendors="apple"``), not for its characters."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise UsageError(f"{what}: expected a string or a list of strings, not {type(value).__name__}")
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{what}: expected strings, not {type(bad[0]).__name__} ({bad[0]!r:.40})")
    return out


def _paths(value, what: str) -> tuple[str, ...]:
    """Paths (``str`` or ``os.PathLike``), one or a list; an open file or bytes is refused by name."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    elif hasattr(value, "read") or isinstance(value, (bytes, bytearray)):
        raise UsageError(f"{what}: expected file paths, not {'an open file' if hasattr(value, 'read') else 'bytes'} "
                         "(write the capture to a file and pass its name, or '-' for stdin)")  # fmt: skip
    return _strings(tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value or ()), what)


def networks(items: Iterable[str], what: str) -> tuple[str, ...]:
    """Addresses or CIDRs as networks ("10.0.0.1/8" -> "10.0.0.0/8"); a bad one is a one-line error."""
    out = []
    for d in items:
        try:
            out.append(str(ipaddress.ip_network(d.strip(), strict=False)))
        except ValueError as e:
            raise UsageError(f"{what}: {e}") from None
    return tuple(out)


def config_devices(cfg: dict, path) -> tuple[str, ...]:
    """A config file's ``devices`` as networks; a bad one is a ``ConfigError`` naming the file."""
    try:
        return networks(tuple(cfg.get("devices") or ()), f"{path}: devices")
    except UsageError as e:
        raise ConfigError(str(e)) from None


def severity_at_least(findings: list[tuple[Finding, tuple[str, ...]]], threshold: Severity | None) -> bool:
    """True when any finding reaches ``threshold`` (None: never)."""
    if threshold is None:
        return False
    return any(f.severity >= threshold for f, _ in findings)


__all__ = ["AuditOptions", "Auditor", "CoverageRow", "audit", "severity_at_least"]
