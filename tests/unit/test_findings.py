"""Findings: the quiet() pre-check never hides a finding; dedup of repeated findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.errors import CaptureError
from pcapaudit.findings import FindingCollector, _detect, quiet
from pcapaudit.model import Finding, FindingKind, Severity
from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*/input.pcap"))


def _flows_of(paths, **opts):
    seen = []
    for p in paths:
        a = Auditor(AuditOptions(**opts), on_flow=lambda f, c: seen.append((f, c)))
        try:
            a.run_file(CaptureFile(str(p)))
        except Exception:  # noqa: BLE001 - unreadable corpus files are tested elsewhere
            continue
        a.finish()
        yield from ((f, c, a.ctx) for f, c in seen)
        seen.clear()


def test_quiet_never_hides_a_finding_in_the_scenarios():
    checked = 0
    for f, c, ctx in _flows_of(SCENARIOS, trust_issuers=("pcapaudit Lab Trust Services",)):
        rule = ctx.rule(c.rule_id)
        if quiet(f, c, rule, ctx):
            assert list(_detect(f, c, rule, ctx)) == [], (f, c)
            checked += 1
    assert checked > 20


def test_quiet_never_hides_a_finding_in_the_corpus(corpus):
    paths = sorted(corpus.glob("*/*.pcap*")) + sorted(corpus.glob("suricata-verify/**/*.pcap"))
    checked = 0
    for f, c, ctx in _flows_of(paths):
        rule = ctx.rule(c.rule_id)
        if quiet(f, c, rule, ctx):
            assert list(_detect(f, c, rule, ctx)) == [], (f, c)
            checked += 1
    assert checked > 200


def _finding(uid, ts, sev=Severity.LOW):
    return Finding(FindingKind.BLOCKED, sev, "syn_no_reply", uid, "apple.apns", "apple", "APNs", "x", "m", (),
                   "blocked:syn_no_reply|apple.apns|x|tcp/5223", ts)  # fmt: skip


def test_collector_folds_repeats():
    c = FindingCollector()
    first = _finding("C2", 2.0)
    assert c.add(first) is first
    assert c.add(_finding("C1", 1.0, Severity.HIGH)) is None
    assert c.add(_finding("C2", 3.0)) is None
    (row, uids), = c.rows()
    assert row.count == 3 and row.uid == "C1" and row.ts == 1.0 and row.severity is Severity.HIGH
    assert uids == ("C2", "C1")


class _Never(dict):
    """A pre-check cache that never keeps anything: every flow takes the full per-flow path."""

    def get(self, key, default=None):
        return default

    def __setitem__(self, key, value):
        pass


def _tables(path, plain: bool, **opts):
    """The five tables, and how many flows took the shortcut (no FlowRecord, no detectors, or the
    detectors run once for a group of repeating loud flows): with ``plain=False`` every flow goes
    through the full path."""
    a = Auditor(AuditOptions(**opts))
    records = []
    if not plain:
        a._quiet_cache = _Never()
    inner = a._detect
    a._detect = lambda rec: (records.append(1), inner(rec))[1]  # also counts fall-backs
    a.run_file(CaptureFile(str(path)))
    r = a.finish()
    findings = [(f, uids) for f, uids in r.finding_records]
    _tables.grouped = a._grouped  # loud flows whose findings were another flow's repeated
    return (r.flows, r.dns, findings, r.coverage, r.weirds), len(r.flows) - len(records)


PLAIN_CASES = [ROOT / "captures" / "enrollment-troubleshooting.pcap"] + SCENARIOS


@pytest.mark.parametrize("opts", [{}, {"devices": ("10.0.0.0/8", "fd00::/8")}], ids=["all-hosts", "devices"])
def test_plain_flows_report_exactly_what_the_full_path_reports(opts):
    """Flows without application details skip the FlowRecord, the detectors and flow_row when their
    destination is known to be quiet; every table must come out identical, uid lists included."""
    used = grouped = 0
    for path in PLAIN_CASES:
        fast, n = _tables(path, True, trust_issuers=("pcapaudit Lab Trust Services",), **opts)
        grouped += _tables.grouped
        full, _ = _tables(path, False, trust_issuers=("pcapaudit Lab Trust Services",), **opts)
        used += n
        for got, want in zip(fast, full):
            if hasattr(got, "equals"):
                assert got.equals(want), path
            else:
                assert got == want, path
    assert used > 30
    assert grouped > 10, grouped


def test_plain_flows_in_the_corpus(corpus):
    paths = sorted(corpus.glob("*/*.pcap*")) + sorted(corpus.glob("suricata-verify/**/*.pcap"))
    used = grouped = 0
    for path in paths:
        try:
            fast, n = _tables(path, True)
        except CaptureError:  # unreadable corpus files are tested elsewhere
            continue
        grouped += _tables.grouped
        full, _ = _tables(path, False)
        used += n
        for got, want in zip(fast, full):
            assert got.equals(want) if hasattr(got, "equals") else got == want, path
    assert used > 100
    assert grouped > 500, grouped


def test_plain_flows_on_a_generated_span_capture(tmp_path):
    """The benchmark generator's traffic (DNS-heavy, like a SPAN port) through both paths."""
    import subprocess
    import sys

    out = tmp_path / "span.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(out), "--packets", "8000",
                    "--seed", "7"], check=True, capture_output=True)  # fmt: skip
    fast, used = _tables(out, True)
    grouped = _tables.grouped
    full, _ = _tables(out, False)
    for got, want in zip(fast, full):
        assert got.equals(want) if hasattr(got, "equals") else got == want
    assert used > 300
    assert grouped > 50, grouped  # repeating loud flows (unanswered SYNs, unlisted ports) took the group path


def _probe(uid, ts, target, code="syn_no_reply", sev=Severity.LOW):
    return Finding(FindingKind.BLOCKED, sev, code, uid, None, None, None, target,
                   f"SYN to {target} never answered", (), f"blocked:{code}|-|{target}|tcp", ts)  # fmt: skip


def test_a_client_with_many_new_destinations_folds_the_rest_into_one_row(monkeypatch):
    monkeypatch.setattr(FindingCollector, "MAX_NEW_PER_CLIENT", 5)
    c = FindingCollector()
    assert c.add(_probe("S0", 0.5, "10.9.9.9:22"), "10.0.0.7") is not None  # another client's row
    for i in range(12):
        c.add(_probe(f"S{i + 1}", 1.0 + i, f"10.9.9.{i}:22", sev=Severity.HIGH if i == 8 else Severity.LOW),
              "10.0.0.5")  # fmt: skip
    c.add(_probe("S98", 50.0, "10.9.9.2:22"), "10.0.0.5")  # a destination it brought: counts in its row
    c.add(_probe("R1", 60.0, "10.9.9.1:80", code="syn_rejected"), "10.0.0.5")  # another code: its own budget
    rows = {f.identifier: (f, uids) for f, uids in c.rows()}
    assert len(rows) == 1 + 5 + 1 + 1
    more, uids = rows["more:blocked:syn_no_reply|10.0.0.5"]
    # 10.9.9.5 .. 10.9.9.11; 10.9.9.9 too: another client's row does not take this client's findings, so
    # the fold depends on nothing but this client's own findings (the same with any --jobs)
    assert more.count == 7
    assert uids == ("S6", "S7", "S8", "S9", "S10", "S11", "S12")
    assert more.ts == 6.0 and more.severity is Severity.HIGH and more.uid == "S6"
    assert more.target == "10.0.0.5 -> more destinations"
    assert more.message.startswith("10.0.0.5: 7 more syn_no_reply findings for destinations past the first 5")
    assert dict(more.evidence)["first_target"] == "10.9.9.5:22"
    assert rows["blocked:syn_no_reply|-|10.9.9.9:22|tcp"][0].count == 1
    assert rows["blocked:syn_no_reply|-|10.9.9.2:22|tcp"][0].count == 2
    assert c.raw == 15


def test_counting_a_repeat_is_adding_it(monkeypatch):
    """``FindingCollector.repeat`` (the grouped detectors' shortcut) changes the collector exactly as
    ``add`` of the same ``RepeatDraft`` would, or not at all: random repeats over few clients, targets and
    codes, with budgets and the row limit small enough to fold (dropping its budget or earliest-time
    checks makes this fail)."""
    import random
    from types import SimpleNamespace

    from pcapaudit.findings import RepeatDraft, Template

    monkeypatch.setattr(FindingCollector, "MAX_NEW_PER_CLIENT", 3)
    monkeypatch.setattr(FindingCollector, "MAX_ROWS", 12)
    monkeypatch.setattr(FindingCollector, "MAX_UIDS", 7)
    rnd = random.Random(7)
    made = []

    def draft(t, uid, ts):
        def own(rd):  # the flow's own draft: what build() of a RepeatDraft that starts a row makes
            made.append(rd.uid)
            return SimpleNamespace(build=lambda: _probe(rd.uid, rd.ts, t.identifier, code=t.code, sev=t.severity))

        return RepeatDraft(t, uid, ts, own)

    for _ in range(40):
        plain, fast = FindingCollector(), FindingCollector()
        shortcut = 0
        for n in range(300):
            code = rnd.choice(["syn_no_reply", "syn_rejected"])
            target = f"10.9.9.{rnd.randrange(8)}:22"
            fd = _probe("x", 0.0, target, code=code, sev=rnd.choice([Severity.LOW, Severity.HIGH]))
            t = Template(fd.kind, fd.severity, fd.code, fd.identifier, fd.rule_id)
            client = f"10.0.0.{rnd.randrange(4)}"
            uid, ts = f"U{n}", rnd.uniform(0, 100)
            plain.add(draft(t, uid, ts), client, client)
            if fast.repeat(t, uid, ts, client, client):
                shortcut += 1
            else:
                fast.add(draft(t, uid, ts), client, client)
        assert shortcut > 50 and made
        assert fast.rows() == plain.rows()
        assert (fast._seen, fast._more, fast.raw) == (plain._seen, plain._more, plain.raw)


def test_the_budget_key_is_the_partition_endpoint(monkeypatch):
    """A scan from a low source port (nmap -g) is partitioned by its targets; the budget follows."""
    from pcapaudit.findings import fold_key

    assert fold_key("10.0.0.5", 50000, "10.9.9.9", 22) == "10.0.0.5"
    assert fold_key("10.0.0.5", 53, "10.9.9.9", 8080) == "10.9.9.9"
    assert fold_key("10.0.0.5", 123, "10.0.0.10", 123) == "10.0.0.5"
    assert fold_key("10.0.0.50", 123, "10.0.0.6", 123) == "10.0.0.6"  # addresses, not strings, compared
    assert fold_key("fe80::2", 500, "fe80::10", 500) == "fe80::2"
    monkeypatch.setattr(FindingCollector, "MAX_NEW_PER_CLIENT", 2)
    c = FindingCollector()
    for i in range(4):  # two targets, each brings 4 destinations: 2 rows each, the rest fold by client
        for h in ("10.9.9.1", "10.9.9.2"):
            c.add(_probe(f"U{h}{i}", float(i), f"{h}:{8000 + i}"), "10.0.0.5", fold_key("10.0.0.5", 53, h, 8000 + i))
    rows = {f.identifier: f for f, _ in c.rows()}
    assert len(rows) == 4 + 1 and rows["more:blocked:syn_no_reply|10.0.0.5"].count == 4


def test_more_rows_merge_across_partitions(monkeypatch):
    monkeypatch.setattr(FindingCollector, "MAX_NEW_PER_CLIENT", 2)
    a, b = FindingCollector(), FindingCollector()
    for i in range(5):
        a.add(_probe(f"A{i}", 10.0 + i, f"10.1.0.{i}:22"), "10.0.0.5")
        b.add(_probe(f"B{i}", 1.0 + i, f"10.2.0.{i}:22"), "10.0.0.5")
    a.merge(b)
    rows = {f.identifier: f for f, _ in a.rows()}
    more = rows["more:blocked:syn_no_reply|10.0.0.5"]
    assert more.count == 6 and more.ts == 3.0 and "6 more" in more.message
    assert len(rows) == 5


def test_the_table_stops_growing_at_max_rows(monkeypatch):
    monkeypatch.setattr(FindingCollector, "MAX_ROWS", 10)
    c = FindingCollector()
    for i in range(30):
        c.add(_probe(f"U{i}", float(i), f"10.3.0.{i}:22"), f"10.0.1.{i}")  # one new destination per client
    rows = c.rows()
    assert len(rows) == 11
    more = [f for f, _ in rows if f.identifier.startswith("more:")]
    assert len(more) == 1 and more[0].count == 20
    assert more[0].message.startswith("20 more syn_no_reply findings past the first 10 rows")


def test_the_processes_of_a_parallel_audit_share_max_rows(monkeypatch):
    """Two processes hold half of MAX_ROWS each, so the merged table stops at MAX_ROWS rows (and a row
    per process's fold), not at twice that."""
    monkeypatch.setattr(FindingCollector, "MAX_ROWS", 10)
    parts = [FindingCollector(processes=2) for _ in range(2)]
    for k, c in enumerate(parts):
        for i in range(30):
            c.add(_probe(f"U{k}-{i}", float(i), f"10.{3 + k}.0.{i}:22"), f"10.{k}.1.{i}")
        assert len(c) == 6  # 5 rows and the fold
    parts[0].merge(parts[1])
    rows = parts[0].rows()
    assert len(rows) == 11
    more = [f for f, _ in rows if f.identifier.startswith("more:")]
    assert len(more) == 1 and more[0].count == 50
    assert more[0].message.startswith("50 more syn_no_reply findings past the first 10 rows")


def _scan_of_every_kind_of_address(path):
    """SYNs and unanswered/answered datagrams to addresses of every scope the classifier tells apart, on
    ports that rules list by host, by network or by port only (and ports nobody lists)."""
    from tests.craft import IP, UDP, Ether, Raw, syn_scan, tcp_frame, write_raw

    hosts = ["93.184.216.34", "8.8.4.4", "17.57.146.20", "17.250.1.9", "10.1.2.3", "192.168.50.255",
             "224.0.0.251", "255.255.255.255", "127.0.0.1", "100.64.0.9", "172.16.9.9"]  # fmt: skip
    ports = [22, 53, 80, 123, 135, 389, 443, 2195, 2575, 3306, 5223, 5228, 8020, 8080, 8443, 49200]
    frames = syn_scan("192.168.50.10", hosts, ports, rst_every=2)
    frames += [tcp_frame("192.168.50.11", h, 40000 + j, p, 0x02) for h in hosts for j, p in enumerate(ports[::3])]
    for i, h in enumerate(hosts):
        for p in ports:
            q = Ether() / IP(src="192.168.50.12", dst=h) / UDP(sport=30000 + i, dport=p) / Raw(b"x" * 20)
            frames.append(bytes(q))
            if p % 2:
                frames.append(bytes(Ether() / IP(src=h, dst="192.168.50.12") / UDP(sport=p, dport=30000 + i) / Raw(b"y")))
    return write_raw(path, frames, 1)


@pytest.mark.parametrize("opts", [{}, {"devices": ("192.168.50.10/32", "192.168.50.12/32")}, {"vendors": ("jamf-pro",)}],
                         ids=["all-hosts", "devices", "jamf"])  # fmt: skip
def test_unnamed_flows_classify_by_address_scope_like_by_address(tmp_path, monkeypatch, opts):
    """Flows without any name to addresses in no rule's network share a classification cache key by the
    address's scope instead of the address (Auditor._cls_key); every table must be what keying by the
    address gives."""
    from pcapaudit.audit import Auditor as A

    paths = [_scan_of_every_kind_of_address(tmp_path / "scan.pcap"), *PLAIN_CASES]
    by_scope = [_tables(p, True, **opts)[0] for p in paths]
    used = []
    real = A._cls_key

    def by_address(self, *args):
        key = real(self, *args)
        used.append(key[0] is None and len(key) == 4)
        return args[:9] + (args[9] == "quic",)

    monkeypatch.setattr(A, "_cls_key", by_address)
    monkeypatch.setattr(A, "scope_keys", False)  # the batch's pre-check groups by address too
    monkeypatch.setattr(A, "name_keys", False)  # and so do the named flows'
    by_addr = [_tables(p, True, **opts)[0] for p in paths]
    assert sum(used) > 200  # once per pre-check group of a batch
    for path, got_tables, want_tables in zip(paths, by_scope, by_addr):
        for got, want in zip(got_tables, want_tables):
            assert got.equals(want) if hasattr(got, "equals") else got == want, path


def _one_name_at_many_addresses(path: Path) -> Path:
    """TLS to vendor names at many addresses: Apple's and others', loopback (a local forwarder), a port the
    rule does not list, through a proxy's CONNECT, and QUIC on udp/443."""
    from scapy.all import IP, UDP, Ether

    from tests.craft import at, client_hello, tcp_session, write

    pkts, t, port = [], 1_700_000_000.0, 40000
    targets = [("gdmf.apple.com", d, 443) for d in ("17.253.1.1", "17.253.1.2", "203.0.113.5", "127.0.0.1")]
    targets += [("1-courier.push.apple.com", d, 443) for d in ("17.57.146.20", "17.57.146.21", "198.51.100.9")]
    targets += [("1-courier.push.apple.com", "17.57.146.22", 5223), ("gdmf.apple.com", "17.253.1.3", 8443)]
    for i, (sni, dst, dport) in enumerate(targets * 2):
        port += 1
        close = "fin" if i % 3 else "rst_server"
        pkts += tcp_session("192.168.50.10", dst, port, dport, [client_hello(sni)], [b""], close=close, t0=t)
        t += 0.5
    connect = b"CONNECT gdmf.apple.com:443 HTTP/1.1\r\nHost: gdmf.apple.com:443\r\n\r\n"
    pkts += tcp_session("192.168.50.10", "10.0.0.3", port + 1, 3128, [connect], [b"HTTP/1.1 200 OK\r\n\r\n"], t0=t)
    for k, dst in enumerate(("17.253.1.9", "203.0.113.7")):  # QUIC-looking datagrams without a reply
        pkts.append(at(Ether() / IP(src="192.168.50.10", dst=dst) / UDP(sport=50000 + k, dport=443) / (b"\xc0" + bytes(40)),
                       t + 1 + k))  # fmt: skip
    return write(path, sorted(pkts, key=lambda p: p.time))


def test_named_flows_classify_without_their_address_like_with_it(tmp_path, monkeypatch):
    """Flows a rule lists by name on their port share their pre-check key across the name's addresses
    (Auditor.name_keys); every table must be what keying by the address gives, loopback staying local."""
    from pcapaudit.audit import Auditor as A

    path = _one_name_at_many_addresses(tmp_path / "names.pcap")
    grouped = _tables(path, True)[0]
    monkeypatch.setattr(A, "name_keys", False)
    by_addr = _tables(path, True)[0]
    for got, want in zip(grouped, by_addr):
        assert got.equals(want) if hasattr(got, "equals") else got == want
    flows = grouped[0]
    verdicts = dict(zip(flows["dst_ip"], flows["verdict"]))
    assert verdicts["127.0.0.1"] == "local" and verdicts["17.253.1.1"] != "local"
    assert len(set(flows["dst_ip"])) >= 10


def test_groups_are_equal_rows_in_first_occurrence_order():
    """audit._groups: rows of equal codes share a group, numbered in order of first occurrence."""
    import numpy as np

    from pcapaudit.audit import _groups

    rng = np.random.default_rng(5)
    keys = rng.integers(-3, 3, size=(5000, 6))
    first, groups = _groups(keys)
    assert list(first) == sorted(first)
    assert (keys == keys[first[groups]]).all()  # every row equals its group's first row
    distinct = {tuple(r) for r in keys.tolist()}
    assert len(first) == len(distinct)
    seen = []
    for g in groups.tolist():
        if g not in seen:
            seen.append(g)
    assert seen == list(range(len(first)))


def test_detection_groups_across_small_batches(tmp_path, monkeypatch):
    """Flows handed over a few at a time: detection groups of later batches reuse the templates of
    earlier ones (Auditor._templates), and every table is still what the per-flow path gives."""
    import subprocess
    import sys

    from pcapaudit import core

    out = tmp_path / "span.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(out), "--packets", "8000",
                    "--seed", "11"], check=True, capture_output=True)  # fmt: skip
    monkeypatch.setattr(core, "DRAIN_ROWS", 40)
    hits = []
    real = Auditor.finish

    def finish(self):
        result = real(self)
        hits.append(self._template_hits)
        return result

    monkeypatch.setattr(Auditor, "finish", finish)
    for path in [out, *PLAIN_CASES[:3]]:
        fast, _n = _tables(path, True, trust_issuers=("pcapaudit Lab Trust Services",))
        full, _ = _tables(path, False, trust_issuers=("pcapaudit Lab Trust Services",))
        for got, want in zip(fast, full):
            assert got.equals(want) if hasattr(got, "equals") else got == want, path
    assert hits[0] > 20, hits  # the generated capture's later batches found their groups' templates
