"""--jobs N gives the same report as one process (flows partitioned by client endpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions
from pcapaudit.parallel import audit_parallel, auto_jobs

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = [ROOT / "captures" / "enrollment-troubleshooting.pcap", ROOT / "captures" / "enrollment-mac-pktap.pcap",
            ROOT / "tests" / "assets" / "bridged" / "any.pcap", ROOT / "tests" / "assets" / "bridged" / "any-sll.pcap",
            ] + sorted((ROOT / "tests" / "scenarios").glob("*/input.pcap"))


def _view(r):
    flows = r.flows[["uid", "src_ip", "src_port", "dst_ip", "dst_port", "pkts_c2s", "pkts_s2c", "state", "sni",
                     "dns_name", "rule_id", "verdict", "tls_handshake", "process", "pid", "eprocess", "interface"]]  # fmt: skip
    findings = sorted((f.identifier, f.count, f.severity) for f, _ in r.finding_records)
    cov = r.coverage[["rule_id", "status", "flows", "processes", "uids"]].sort_values("rule_id").reset_index(drop=True)
    return flows.reset_index(drop=True), findings, cov, r.stats.packets, r.dns_count


@pytest.mark.parametrize("path", CAPTURES, ids=[p.parent.name if p.name == "input.pcap" else p.stem for p in CAPTURES])
def test_parallel_equals_single(path):
    opts = AuditOptions(trust_issuers=("pcapaudit Lab Trust Services",), tenants={"jamf-pro.instance": "acme"})
    one = _view(audit_parallel(opts, [str(path)], 1))
    for jobs in (2, 3):
        many = _view(audit_parallel(opts, [str(path)], jobs))
        assert one[0].equals(many[0]), jobs  # flows
        assert one[1] == many[1], jobs  # findings (identifier, count, severity)
        assert one[2].equals(many[2]), jobs  # checklist
        assert one[3:] == many[3:], jobs  # packets, DNS transactions


def test_auto_jobs_small_files_stay_single(tmp_path):
    assert auto_jobs([str(CAPTURES[0])]) == 1
    assert auto_jobs(["-"]) == 1


def test_store_ipc_round_trip(tmp_path):
    """A worker's table written batch by batch and mapped back gives the same rows, dictionary columns
    with a different dictionary per batch included, and an empty store too."""
    import pandas as pd

    from pcapaudit.store import ColumnStore

    cols = {"uid": "string", "ts": "datetime64[ns, UTC]", "port": "UInt16", "name": "string", "kind": "category"}
    src = ColumnStore(cols, chunk=3, repetitive=frozenset({"name"}))
    rows = [(f"C{i}", 1.7e9 + i, i, None if i % 4 == 0 else f"host{i % 3}", "tls" if i % 2 else None) for i in range(10)]
    for r in rows:
        src.append(r)
    src.write_ipc(str(tmp_path / "t.flows"))
    dst = ColumnStore(cols, chunk=3, repetitive=frozenset({"name"}))
    dst.append(("C-own", 1.6e9, 1, "own", "dns"))
    dst.add_ipc(str(tmp_path / "t.flows"))
    (tmp_path / "t.flows").unlink()  # the mapping keeps the rows readable
    df = dst.to_pandas(sort_by=["ts", "uid"])
    assert len(dst) == 11
    assert df["uid"].tolist() == ["C-own"] + [r[0] for r in rows]
    assert [None if v is pd.NA else v for v in df["name"]][1:] == [r[3] for r in rows]
    assert [None if pd.isna(v) else v for v in df["kind"].astype("object")][1:] == [r[4] for r in rows]
    assert df["port"].tolist() == [1] + list(range(10))
    empty = ColumnStore(cols)
    empty.write_ipc(str(tmp_path / "e.dns"))
    again = ColumnStore(cols)
    again.add_ipc(str(tmp_path / "e.dns"))
    assert len(again) == 0 and again.to_pandas().columns.tolist() == list(cols)


def test_parallel_leaves_no_spill_files_and_workers_skip_pandas(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = (
        "import sys, tempfile; tempfile.tempdir = None\n"
        "import pcapaudit.parallel as P\n"
        "from pcapaudit.audit import AuditOptions\n"
        "orig = P._worker\n"
        "def w(*a):\n"
        "    out = orig(*a)\n"
        "    assert 'pandas' not in sys.modules, 'a worker imported pandas'\n"
        "    return out\n"
        "P._worker = w\n"
        f"r = P.audit_parallel(AuditOptions(), [{str(CAPTURES[0])!r}], 2)\n"
        "print(len(r.flows))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0
    assert list(tmp_path.iterdir()) == []


def test_parallel_equals_single_on_a_generated_span_capture(tmp_path):
    """Many devices sharing a resolver and CDN addresses, VLANs, ICMP errors: every flow column and
    every finding (count, first uid, time) is the same whatever the job count; names given by another
    device's DNS answer included."""
    import subprocess
    import sys

    out = tmp_path / "span.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(out), "--packets", "30000",
                    "--seed", "11"], check=True, capture_output=True)  # fmt: skip
    opts = AuditOptions()
    results = {j: audit_parallel(opts, [str(out)], j) for j in (1, 2, 3)}
    one = results[1]
    assert one.flows["dns_name"].notna().sum() > 100
    for j in (2, 3):
        many = results[j]
        assert one.flows.equals(many.flows), j
        f1 = sorted((f.identifier, f.count, f.uid, f.ts, f.severity) for f, _ in one.finding_records)
        fj = sorted((f.identifier, f.count, f.uid, f.ts, f.severity) for f, _ in many.finding_records)
        assert f1 == fj, j
        assert one.dns.equals(many.dns), j
        cov = ["rule_id", "status", "flows", "attempted", "reached", "blocked", "intercepted"]
        assert one.coverage[cov].equals(many.coverage[cov]), j


def test_parallel_without_a_temporary_directory_uses_one_process(monkeypatch, caplog):
    import tempfile

    def no_tmp(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_tmp)
    r = audit_parallel(AuditOptions(), [str(CAPTURES[0])], 2)
    assert r.flow_count > 0 and "using one process" in caplog.text


def test_parallel_worker_that_cannot_write_its_table_is_a_one_line_error(monkeypatch):
    from pcapaudit.errors import PcapAuditError
    from pcapaudit.store import ColumnStore

    def full(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ColumnStore, "write_ipc", full)  # inherited by the forked worker
    with pytest.raises(PcapAuditError, match="run with --jobs 1"):
        audit_parallel(AuditOptions(), [str(CAPTURES[0])], 2)


@pytest.mark.parametrize("order", ["time", "two-runs", "shuffled"])
@pytest.mark.parametrize("out_chunk", [1, 5, 64, 10_000])
@pytest.mark.parametrize("store_chunk", [3, 50])
def test_sorted_batches_give_the_sorted_table(order, out_chunk, store_chunk):
    """Exports take each slice of the sort order from the few stored batches it lives in (or, when its rows
    are scattered, from the whole table); either way the rows are typed_table's."""
    import random

    import pyarrow as pa

    from pcapaudit.store import ColumnStore

    cols = {"uid": "string", "ts": "datetime64[ns, UTC]", "port": "UInt16", "name": "string", "kind": "category"}
    store = ColumnStore(cols, chunk=store_chunk, repetitive=frozenset({"name"}))
    n = 300
    ts = [1.7e9 + i * 0.5 + (0.7 if i % 5 == 0 else 0.0) for i in range(n)]  # nearly in time order
    if order == "two-runs":  # a parent's flows, then a worker's (parallel audits)
        ts = ts[::2] + ts[1::2]
    elif order == "shuffled":
        random.Random(4).shuffle(ts)
    for i, t in enumerate(ts):
        store.append((f"C{i:04d}", t if i % 37 else ts[0], i, f"host{i % 11}" if i % 4 else None,
                      ("tls", "dns", None)[i % 3]))  # fmt: skip
    got = pa.Table.from_batches(list(store.sorted_batches(["ts", "uid"], chunk=out_chunk)))
    want = store.typed_table(["ts", "uid"])

    def decoded(t):  # each slice may carry its own dictionaries: compare the values
        return pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                         for n, c in zip(t.column_names, t.columns)})  # fmt: skip

    assert got.num_rows == n and decoded(got).equals(decoded(want))


def test_store_spills_batches_to_disk_and_maps_them_back(tmp_path):
    """A spilling store keeps no full batch in memory; settle() maps the file back; write_ipc to the
    spill file itself just closes it; rows added before spilling or absorbed later are kept."""
    import pandas as pd

    from pcapaudit.store import ColumnStore

    cols = {"uid": "string", "ts": "datetime64[ns, UTC]", "port": "UInt16", "name": "string"}
    rows = [(f"C{i:02d}", 1.7e9 + i, i, f"h{i % 4}" if i % 5 else None) for i in range(23)]
    s = ColumnStore(cols, chunk=4, repetitive=frozenset({"name"}))
    for r in rows[:5]:
        s.append(r)  # one batch in memory, one row pending
    s.spill_to(str(tmp_path / "own.flows"))
    for r in rows[5:]:
        s.append(r)
    assert s._batches == [] and (tmp_path / "own.flows").stat().st_size > 0
    other = ColumnStore(cols, chunk=4, repetitive=frozenset({"name"}))
    other.append(("X", 1.6e9, 7, "x"))
    other.write_ipc(str(tmp_path / "w.flows"))
    s.add_ipc(str(tmp_path / "w.flows"))
    s.settle()
    (tmp_path / "own.flows").unlink()  # mapped: still readable
    df = s.to_pandas(sort_by=["ts", "uid"])
    assert df["uid"].tolist() == ["X"] + [r[0] for r in rows]
    assert [None if v is pd.NA else v for v in df["name"]][1:] == [r[3] for r in rows]
    assert len(s) == 24

    w = ColumnStore(cols, chunk=4)
    w.spill_to(str(tmp_path / "part1.flows"))
    for r in rows:
        w.append(r)
    w.write_ipc(str(tmp_path / "part1.flows"))  # the spill file is the export: closed, not rewritten
    back = ColumnStore(cols)
    back.add_ipc(str(tmp_path / "part1.flows"))
    assert len(back) == len(rows) and back.to_pandas()["port"].tolist() == list(range(23))


def test_audit_stores_hold_a_few_thousand_python_rows_at_most():
    """Rows wait as Python objects (~1.5 kB a flow row) only until the next batch: an Auditor's stores
    flush every few thousand rows, and the batches hold every row in order."""
    from pcapaudit.audit import Auditor
    from pcapaudit.store import ColumnStore

    a = Auditor(AuditOptions())
    assert a.flows.chunk <= 4096 and a.dns.chunk <= 4096
    s = ColumnStore({"uid": "string", "port": "UInt16"})  # the default chunk, as the Auditor's stores use
    peak = 0
    for i in range(3 * s.chunk + 5):
        s.append((f"C{i}", i % 65536))
        peak = max(peak, len(s._rows))
    assert peak < s.chunk and len(s._batches) == 3 and all(b.num_rows == s.chunk for b in s._batches)
    assert s.to_pandas()["uid"].tolist() == [f"C{i}" for i in range(3 * s.chunk + 5)]


def test_a_port_scan_is_summarised_the_same_with_any_job_count(tmp_path):
    """A SYN scan makes a finding per destination: past 100 new destinations per code, the scanner's
    findings fold into one 'more destinations' row per code, whatever the job count; every flow stays."""
    from pcapaudit.findings import FindingCollector
    from tests import craft

    frames = craft.syn_scan("10.0.0.5", ["10.99.0.1", "10.99.0.2", "10.99.0.3"], range(30001, 30151))
    frames += craft.syn_scan("10.0.0.6", ["10.99.0.4"], range(30020, 30030))  # a second, small one
    # from source port 1000 (nmap -g): partitioned by target, so each target has the budget of 100
    frames += craft.syn_scan("10.0.0.7", ["10.99.0.5", "10.99.0.6"], range(30001, 30151), sport=1000)
    times = [1_700_000_000.0 + i * 0.01 for i in range(len(frames))]
    frames.append(craft.tcp_frame("10.0.0.9", "10.99.0.9", 50000, 443, 0x10))  # the capture ends 60 s later,
    times.append(times[-1] + 60)  # so no SYN is too close to its end to count
    path = craft.write_raw(tmp_path / "scan.pcap", frames, 1, times=times)
    results = {j: audit_parallel(AuditOptions(), [str(path)], j) for j in (1, 2, 3)}
    one = results[1]
    assert len(one.flows) == 461 + 300
    rows = {f.identifier: f for f, _ in one.finding_records}
    src = dict(zip(one.flows["uid"], one.flows["src_ip"]))
    cap = FindingCollector.MAX_NEW_PER_CLIENT
    for code, total in (("syn_no_reply", 300), ("syn_rejected", 150), ("not_allowed", 450)):
        kind = "unexpected" if code == "not_allowed" else "blocked"
        more = rows[f"more:{kind}:{code}|10.0.0.5"]
        assert more.count == total - cap, code
        assert more.message.startswith(f"10.0.0.5: {total - cap} more {code} findings")
        own = [f for f in rows.values() if f.code == code and src[f.uid] == "10.0.0.5" and f is not more]
        assert len(own) == cap and all(f.count == 1 for f in own), code
    assert not any(k.endswith("|10.0.0.6") for k in rows)  # 10 destinations: each its own row
    # per target 100 unanswered and 50 rejected (within the budget), 150 not allowed (50 fold)
    assert "more:blocked:syn_no_reply|10.0.0.7" not in rows
    assert rows["more:unexpected:not_allowed|10.0.0.7"].count == 2 * (150 - cap)
    assert len(rows) < 3 * cap + 3 + 3 * 10 + 3 * 2 * cap + 3
    for j in (2, 3):
        assert one.flows.equals(results[j].flows), j
        f1 = sorted((f.identifier, f.count, f.uid, f.ts, f.severity, f.message) for f, _ in one.finding_records)
        fj = sorted((f.identifier, f.count, f.uid, f.ts, f.severity, f.message) for f, _ in results[j].finding_records)
        assert f1 == fj, j


def test_icmp_backscatter_folds_per_quoted_client_with_any_job_count(tmp_path):
    """ICMP errors quoting packets the capture does not hold (backscatter of spoofed traffic) each name a
    destination: past 100 per quoted source they fold into one row, interpreted batch by batch."""
    from tests import craft

    frames = [craft.icmp_port_unreachable(f"198.51.{i // 200}.{i % 200 + 1}", "10.0.0.5", f"198.51.{i // 200}.{i % 200 + 1}",
                                          40000 + i, 30000 + i) for i in range(150)]  # fmt: skip
    frames += [craft.icmp_port_unreachable("203.0.113.1", "10.0.0.6", "203.0.113.1", 41000, 30000 + i) for i in range(5)]
    path = craft.write_raw(tmp_path / "backscatter.pcap", frames, 1)
    results = {j: audit_parallel(AuditOptions(), [str(path)], j) for j in (1, 2, 3)}
    rows = {f.identifier: f for f, _ in results[1].finding_records}
    more = rows["more:blocked:icmp_unreachable|10.0.0.5"]
    assert more.count == 50 and more.message.startswith("10.0.0.5: 50 more icmp_unreachable findings")
    assert sum(1 for f in rows.values() if f.code == "icmp_unreachable") == 100 + 1 + 5
    for j in (2, 3):
        fj = {f.identifier: (f.count, f.ts, f.message) for f, _ in results[j].finding_records}
        assert fj == {k: (f.count, f.ts, f.message) for k, f in rows.items()}, j



def test_max_flows_bounds_the_flows_of_all_processes_together(tmp_path):
    """--max-flows is the audit's bound, not each process's: with two processes each holds half of it.
    Two clients flood 1,500 new flows each; 2,000 held per process would cut nothing."""
    from dataclasses import replace

    from scapy.all import IP, UDP, Ether

    from tests import craft

    frames = [bytes(Ether() / IP(src=f"10.0.0.{5 + i % 2}", dst=f"10.9.{i // 250}.{i % 250 + 1}")
                    / UDP(sport=3000 + i, dport=7777)) for i in range(3000)]  # fmt: skip
    path = craft.write_raw(tmp_path / "flood.pcap", frames, 1, times=[1_700_000_000.0 + i * 0.001 for i in range(3000)])
    opts = AuditOptions()
    opts = replace(opts, engine_config=replace(opts.engine_config, max_flows=2000))
    results = {j: audit_parallel(opts, [str(path)], j) for j in (1, 2)}
    for j, r in results.items():
        early = dict(r.stats.extra).get("flows_ended_early", 0)
        # one process: 3,000 held, cut to 90 % of 2,000; two: 1,500 each, cut to 90 % of 1,000 each
        assert early == (3000 - 1800 if j == 1 else 2 * (1500 - 900)), (j, early)
        cuts = [w.detail for w in r.weird_records if w.name == "flow_table_full"]
        assert len(cuts) == j and all(("shared by 2 processes" in d) == (j == 2) for d in cuts), cuts
        assert sorted(r.flows["uid"]) == sorted(results[1].flows["uid"])  # every flow still reported

@pytest.mark.corpus
@pytest.mark.parametrize("name", ["ndpi/synscan.pcap", "ndpi/android.pcap", "ndpi/quic.pcap"])
def test_parallel_equals_single_on_real_captures(corpus, name):
    """nDPI's synscan.pcap is nmap from source port 36050: ports above it are partitioned by target, so
    the per-client fold of its 1,994 findings must follow the partition key to stay the same with -j."""
    path = corpus / name
    if not path.exists():
        pytest.skip(f"{name} not in the corpus")
    one = audit_parallel(AuditOptions(), [str(path)], 1)
    rows1 = sorted((f.identifier, f.count, f.uid, f.ts, f.severity, f.message) for f, _ in one.finding_records)
    if name.endswith("synscan.pcap"):
        assert any(r[0].startswith("more:blocked:syn_no_reply|") for r in rows1)
    for j in (2, 3):
        many = audit_parallel(AuditOptions(), [str(path)], j)
        assert one.flows.equals(many.flows), j
        assert rows1 == sorted((f.identifier, f.count, f.uid, f.ts, f.severity, f.message)
                               for f, _ in many.finding_records), j  # fmt: skip
