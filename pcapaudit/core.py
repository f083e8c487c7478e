"""The compiled core behind the ``Auditor``: capture reading, decoding, the flow table and protocol parsing
run in Rust (``pcapaudit._core``); Python receives finished flows, DNS transactions and weirds as Arrow
record batches, a batch of packets (about 8 MB) at a time.

``CoreEngine`` is the one place that knows the core's interface. It turns each record batch into the
rows the rest of the pipeline consumes (``FlowRecord`` / ``FlowBase`` for the classification and finding
callbacks, ``DnsTransaction``, ``Weird``) column by column, never by asking the core for one row at a
time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

# the core's allocator (mimalloc) reads its options when first used: freed pages go back to the system
# after 100 ms (its default, 10 ms, costs time; 1 s let a run's peak memory grow by a fifth)
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "100")

from pcapaudit import _core
from pcapaudit.errors import CaptureError, PcapAuditError
from pcapaudit.model import CertInfo, DnsAnswer, DnsTransaction, FlowBase, FlowRecord, TlsAlert, Transport
from pcapaudit.model import Weird

BATCH_BYTES = 8 << 20
# finished rows are handed over after every DRAIN_FEEDS batches of packets: at the same places of the file
# in every process of a parallel audit (what the findings see of the DNS answers is the same), with
# enough rows each time that Python's cost per batch does not add up
DRAIN_FEEDS = 8
DRAIN_ROWS = 16384  # finished rows handed to Python at a time  # packet bytes per call into the core: large enough to amortise, small enough to stream

_TRANSPORTS = {t.value: t for t in Transport}
# columns that only a flow with application details has: a flow with none of them is a FlowBase
_DEEP_COLUMNS = (
    "sni", "tls_version", "tls_cipher", "tls_server_version", "tls_handshake", "quic_version", "http_method",
    "http_host", "http_uri", "http_status", "connect_host", "connect_port", "smtp_starttls",
    "tls_server_shape",
)  # fmt: skip
_DEEP_LISTS = ("alpn", "certs", "alerts", "client_records_after_server", "icmp", "tls_server_flight")
_DEEP_FLAGS = ("tls_ech", "ldap_simple_bind", "ldap_starttls")


class CoreRows:
    """A batch of finished flows or DNS transactions still in the core: the records (nested columns) of
    the rows asked for are built then, as a pyarrow RecordBatch (most rows never need theirs: their table
    row says all)."""

    __slots__ = ("_rows",)

    def __init__(self, rows) -> None:
        self._rows = rows

    @property
    def num_rows(self) -> int:
        return len(self._rows)

    def take(self, indices):
        """The records of rows ``indices`` (a sequence, numpy or pyarrow array of row numbers), in order."""
        import pyarrow as pa

        rows = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        return pa.record_batch(self._rows.take(rows))

    def slice(self, offset: int, length: int = 1):
        return self.take(range(offset, min(offset + length, len(self._rows))))


class CoreError(PcapAuditError):
    """A bug inside the compiled core (a Rust panic), reported as one line."""


def open_capture(path) -> _core.Capture:
    """Open a capture file (``-``: standard input, as ``sys.stdin`` is at the time) in the core;
    ``CaptureError`` with one line when it can't be."""
    try:
        if path == "-":
            import sys

            return _core.Capture.from_file(sys.stdin.buffer, "<stdin>")
        return _core.Capture(path)
    except _core.CaptureError as e:
        raise CaptureError(str(e)) from None
    except _core.CoreError as e:
        raise CoreError(f"{path}: {e}") from None


def _tuples(col: list) -> list:
    return [tuple(v) if v else () for v in col]


def flow_rows(rb) -> Iterator[tuple[FlowRecord | FlowBase, bool]]:
    """A flows record batch -> (row, plain) per flow; ``plain`` rows are ``FlowBase`` tuples (no
    application details), the others ``FlowRecord``s."""
    n = rb.num_rows
    if n == 0:
        return
    cols = {name: rb.column(i) for i, name in enumerate(rb.schema.names)}
    nested = ("certs", "alerts", "icmp", "client_records_after_server", "tls_server_flight")
    py = {name: cols[name].to_pylist() for name in cols if name not in nested}
    deep = np.zeros(n, dtype=bool)
    for name in _DEEP_COLUMNS:
        deep |= ~np.asarray(cols[name].is_null().to_numpy(zero_copy_only=False))
    for name in _DEEP_LISTS:
        deep |= np.asarray(cols[name].value_lengths().to_numpy(zero_copy_only=False)) > 0
    for name in _DEEP_FLAGS:
        deep |= np.asarray(cols[name].to_numpy(zero_copy_only=False), dtype=bool)
    certs = cols["certs"].to_pylist() if deep.any() else [None] * n
    alerts = cols["alerts"].to_pylist() if deep.any() else [None] * n
    icmp = cols["icmp"].to_pylist() if deep.any() else [None] * n
    recs = cols["client_records_after_server"].to_pylist() if deep.any() else [None] * n
    flights = cols["tls_server_flight"].to_pylist() if deep.any() else [None] * n
    transport = [_TRANSPORTS[t] for t in py["transport"]]
    alpn, dns_names = _tuples(py["alpn"]), _tuples(py["dns_names"])
    for i in range(n):
        dn = dns_names[i]
        if not deep[i]:
            yield FlowBase(
                py["uid"][i], py["ts"][i], py["ts_last"][i], transport[i], py["src_ip"][i], py["src_port"][i],
                py["dst_ip"][i], py["dst_port"][i], py["ip_version"][i], py["pkts_c2s"][i], py["pkts_s2c"][i],
                py["bytes_c2s"][i], py["bytes_s2c"][i], py["payload_c2s"][i], py["payload_s2c"][i],
                py["conn_state"][i], py["state"][i], py["history"][i], py["syn_count"][i], py["vlan"][i],
                py["inner_vlan"][i], py["app_protocol"][i], dn[0] if dn else None, dn, py["process"][i],
                py["pid"][i], py["eprocess"][i], py["interface"][i], py["one_direction"][i],
            ), True  # fmt: skip
            continue
        yield FlowRecord(
            uid=py["uid"][i], ts=py["ts"][i], ts_last=py["ts_last"][i], transport=transport[i],
            src_ip=py["src_ip"][i], src_port=py["src_port"][i], dst_ip=py["dst_ip"][i], dst_port=py["dst_port"][i],
            ip_version=py["ip_version"][i], pkts_c2s=py["pkts_c2s"][i], pkts_s2c=py["pkts_s2c"][i],
            bytes_c2s=py["bytes_c2s"][i], bytes_s2c=py["bytes_s2c"][i], payload_c2s=py["payload_c2s"][i],
            payload_s2c=py["payload_s2c"][i], conn_state=py["conn_state"][i], state=py["state"][i],
            history=py["history"][i], syn_count=py["syn_count"][i], vlan=py["vlan"][i],
            inner_vlan=py["inner_vlan"][i], sni=py["sni"][i], alpn=alpn[i], tls_version=py["tls_version"][i],
            tls_cipher=py["tls_cipher"][i], tls_server_version=py["tls_server_version"][i],
            tls_ech=py["tls_ech"][i], tls_handshake=py["tls_handshake"][i],
            certs=tuple(CertInfo(**{**c, "san": tuple(c["san"] or ())}) for c in certs[i] or ()),
            alerts=tuple(TlsAlert(a["sender"], a["level"], a["description"], a["after_server_flight"])
                         for a in alerts[i] or ()),
            client_records_after_server=tuple((r["content_type"], r["length"]) for r in recs[i] or ()),
            tls_server_shape=py["tls_server_shape"][i],
            tls_server_flight=tuple(r["length"] for r in flights[i] or ()),
            quic_version=py["quic_version"][i], http_method=py["http_method"][i], http_host=py["http_host"][i],
            http_uri=py["http_uri"][i], http_status=py["http_status"][i], connect_host=py["connect_host"][i],
            connect_port=py["connect_port"][i], app_protocol=py["app_protocol"][i],
            ldap_simple_bind=py["ldap_simple_bind"][i], ldap_starttls=py["ldap_starttls"][i],
            smtp_starttls=py["smtp_starttls"][i], icmp=tuple((x["type"], x["code"], x["reporter"]) for x in icmp[i] or ()),
            dns_name=dn[0] if dn else None, dns_names=dn, process=py["process"][i], pid=py["pid"][i],
            eprocess=py["eprocess"][i], interface=py["interface"][i], one_direction=py["one_direction"][i],
        ), False  # fmt: skip


CLASSIFICATION_COLUMNS = ("vendor", "rule_id", "service", "matched_by", "matched_name", "confidence", "verdict",
                          "reason")  # fmt: skip


def with_classification(tb, classes: list, rows):
    """The flows-table batch of the core plus the classification columns, in ``FLOW_COLUMNS`` order: row
    ``i`` has classification ``classes[rows[i]]`` (flows to one destination share one)."""
    import pyarrow as pa

    from pcapaudit.report.columns import FLOW_COLUMNS

    take = pa.array(rows, type=pa.int64())
    extra = {name: pa.array([getattr(c, name) for c in classes], type=pa.string()).take(take)
             for name in CLASSIFICATION_COLUMNS}  # fmt: skip
    cols = {name: tb.column(i) for i, name in enumerate(tb.schema.names)}
    cols.update(extra)
    return pa.RecordBatch.from_arrays([cols[name] for name in FLOW_COLUMNS], names=list(FLOW_COLUMNS))


def dns_rows(rb) -> Iterator[DnsTransaction]:
    """A DNS record batch -> DnsTransaction rows."""
    d = rb.to_pydict()
    for i in range(rb.num_rows):
        yield DnsTransaction(
            d["uid"][i], d["ts"][i], d["client_ip"][i], d["server_ip"][i], d["transport"][i], d["trans_id"][i],
            d["query"][i], d["qtype"][i], d["rcode"][i],
            tuple(DnsAnswer(a["name"], a["rtype"], a["value"], a["ttl"]) for a in d["answers"][i] or ()),
            d["rtt"][i], d["process"][i], d["opcode"][i], bool(d["truncated"][i]),
        )  # fmt: skip


def weird_rows(rb) -> Iterator[Weird]:
    """A weirds record batch -> Weird rows."""
    d = rb.to_pydict()
    for i in range(rb.num_rows):
        yield Weird(d["ts"][i], d["name"][i], d["uid"][i], d["detail"][i], d["count"][i])


_BUILD_CHECKED = False


def check_build() -> None:
    """The compiled core hands this package the columns it reads: one built from another version of the
    sources (a checkout updated without rebuilding) would fail mid-audit with a KeyError. Checked once,
    on empty batches, before the first packet: a one-line ``CoreError`` naming the fix instead."""
    global _BUILD_CHECKED
    if _BUILD_CHECKED:
        return
    import dataclasses

    import pyarrow as pa

    from pcapaudit.report.columns import DNS_COLUMNS, FLOW_COLUMNS

    eng = _core.Engine({})
    if not (hasattr(eng, "take_flow_table") and hasattr(eng, "take_dns_table")):
        raise CoreError(f"the compiled core ({_core.__file__}) does not match this pcapaudit's Python code "
                        "(no Engine.take_flow_table / take_dns_table): it was built from other sources; rebuild it "
                        "(pip install -e .)")  # fmt: skip
    frb, ftb = (pa.record_batch(b) for b in eng.take_flows(0))
    drb, dtb = (pa.record_batch(b) for b in eng.take_dns(0))
    want = {
        "flow records": ({f.name for f in dataclasses.fields(FlowRecord)}, set(frb.schema.names)),
        "flows table": (set(FLOW_COLUMNS) - set(CLASSIFICATION_COLUMNS), set(ftb.schema.names)),
        "dns records": ({f.name for f in dataclasses.fields(DnsTransaction)}, set(drb.schema.names)),
        "dns table": (set(DNS_COLUMNS) - {"vendor", "rule_id"}, set(dtb.schema.names)),
    }
    for what, (expected, built) in want.items():
        if expected != built:
            diff = sorted(expected - built) or sorted(built - expected)
            raise CoreError(f"the compiled core ({_core.__file__}) does not match this pcapaudit's Python code "
                            f"({what} differ: {', '.join(diff)}): it was built from other sources; rebuild it "
                            "(pip install -e . in a checkout, or reinstall the package)")  # fmt: skip
    _BUILD_CHECKED = True


class CoreEngine:
    """The compiled flow engine, delivering finished rows to the Auditor's callbacks after every batch."""

    def __init__(
        self,
        on_flows: Callable,
        on_dns: Callable,
        on_weird: Callable[[Weird], None],
        config,
        partition: tuple[int, int] | None = None,
        file_filter=None,
    ):
        """``on_flows(records, table)``: each batch of finished flows, as ``CoreRows`` (the records of the
        rows asked for, which ``flow_rows`` turns into ``FlowRecord``s) and the flows table's columns;
        ``on_dns(transactions, table)`` likewise for DNS transactions (``dns_rows``). ``file_filter``: a
        ``FileFilter`` (``audit --filter/--start/--end``): the packets it leaves out are skipped."""
        check_build()
        self.on_flows, self.on_dns, self.on_weird = on_flows, on_dns, on_weird
        cfg = {
            "idle_tcp": config.idle_tcp, "idle_udp": config.idle_udp, "idle_dns": config.idle_dns,
            "idle_dns_answered": config.idle_dns_answered, "close_delay": config.close_delay,
            "unanswered": config.unanswered, "max_flows": config.max_flows, "processes": config.processes,
            "partition": tuple(partition) if partition and partition[1] > 1 else None,
        }  # fmt: skip
        self._core = _core.Engine(cfg)
        if file_filter is not None:
            self._core.set_filter(file_filter.programs, file_filter.start, file_filter.end)

    def _call(self, what: str, f, *args, **kwargs):
        try:
            return f(*args, **kwargs)
        except _core.CoreError as e:
            raise CoreError(f"{what}: {e}") from None

    def run(self, capture: _core.Capture, source=None, progress: Callable[[int], None] | None = None) -> None:
        """Read ``capture`` to its end, delivering finished rows batch by batch; ``source`` (a
        ``CaptureFile`` naming the same file) is kept up to date for progress bars and logs."""
        fed = 0
        while self._call(capture.name, self._core.feed, capture, BATCH_BYTES):
            fed += 1
            if fed % DRAIN_FEEDS == 0:  # Python's cost per batch spread over enough rows
                self.drain()
            if source is not None:
                _sync(source, capture)
            if progress:
                progress(capture.packets)
        self.drain()
        if source is not None:
            _sync(source, capture)

    @property
    def dnsmap(self) -> CoreDnsMap:
        """The core's naming map, as findings read it."""
        return CoreDnsMap(self._core)

    def add_weird(self, ts: float | None, name: str, detail: str) -> None:
        """A weird found outside the core (a truncated capture), counted with the core's."""
        self._core.add_weird(ts, name, detail)
        self.drain()

    def take_orphan_icmp(self) -> list:
        """ICMP errors whose quoted flow is not in the capture, since the last call."""
        return self._core.take_orphan_icmp()

    def feed_batch(self, batch) -> None:
        """One batch of packets read elsewhere (live capture): a ``PacketBatch``."""
        named = {}
        if batch.iface is not None and batch.ifnames:
            named.update(iface=np.ascontiguousarray(batch.iface, np.int32), ifnames=list(batch.ifnames))
        if batch.proc is not None and batch.processes:
            named.update(proc=np.ascontiguousarray(batch.proc, np.int32),
                         processes=[(c, p, e) for c, p, e in batch.processes])  # fmt: skip
        self._call("live capture", self._core.feed_columns, batch.buf, np.ascontiguousarray(batch.off, np.int64),
                   np.ascontiguousarray(batch.caplen, np.int64), np.ascontiguousarray(batch.wirelen, np.int64),
                   np.ascontiguousarray(batch.ts, np.float64), np.ascontiguousarray(batch.linktype, np.int64),
                   **named)  # fmt: skip
        self.drain()

    def flush(self) -> None:
        """End of input: every remaining flow is emitted, a chunk at a time (a capture's end can leave
        tens of thousands of flows alive: their records are not all held at once)."""
        while self._call("flush", self._core.flush_step, DRAIN_ROWS):
            self.drain()
        self.drain()

    def drain(self) -> None:
        """Deliver what the core finished since the last call: weirds first (a flow's weird precedes it),
        then DNS transactions (the lookups a flow of the same batches may have followed), then flows."""
        import pyarrow as pa

        for w in weird_rows(pa.record_batch(self._core.take_weirds())):
            self.on_weird(w)
        while True:
            rows, tb = self._core.take_dns_table(DRAIN_ROWS)
            if len(rows) == 0:
                break
            self.on_dns(CoreRows(rows), pa.record_batch(tb))
        while True:  # in chunks: a flush ends every flow at once
            rows, tb = self._core.take_flow_table(DRAIN_ROWS)
            if len(rows) == 0:
                break
            self.on_flows(CoreRows(rows), pa.record_batch(tb))

    def expire(self, now: float) -> None:
        """Finish flows idle past their timeout at ``now`` (live capture, while nothing arrives)."""
        self._call("expire", self._core.expire, now)
        self.drain()

    @property
    def active_flows(self) -> int:
        """Flows currently held in the table."""
        return self._core.active_flows

    def stats(self) -> dict:
        """The core's counters (packets, decoded, not_ip, fragments, tunnels, max_active, ...)."""
        return dict(self._core.stats())


def _sync(source, capture: _core.Capture) -> None:
    """What the core read, on the ``CaptureFile`` the CLI and the auditor look at."""
    source.packets, source.bytes, source.format = capture.packets, capture.bytes, capture.format
    source.error, source.dropped, source.clamped = capture.error, capture.dropped, capture.clamped
    source.first_clamped = capture.first_clamped
    source._consumed = capture.offset


class CoreDnsMap:
    """The core's DNS naming map behind the ``DnsMap`` method findings use."""

    def __init__(self, core) -> None:
        self._core = core

    def addresses(self, name: str) -> frozenset[str]:
        """Every address DNS answers gave for ``name``."""
        return frozenset(self._core.dns_addresses(name)) if name else frozenset()
