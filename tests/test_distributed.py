"""Issue 18: many captures, several sensors, Dask. A capture split into rotated files (cut mid-flow,
mid-ClientHello, a DNS answer and the flow it names in different files) gives the report of the unsplit
capture, in this process and on a LocalCluster of two worker processes, with a worker killed in the
middle of a task too."""

from __future__ import annotations

import gzip
import socket
from collections import Counter
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.errors import CaptureError, UsageError
from pcapaudit.distributed import KILL_ONCE_ENV, audit_paths, span_notes, write_dataset
from pcapaudit.inputs import plan_inputs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "captures" / "enrollment-troubleshooting.pcap"
OTHER = ROOT / "tests" / "scenarios" / "dns-blocked" / "input.pcap"
OPTS = AuditOptions(trust_issuers=("pcapaudit Lab Trust Services",), tenants={"jamf-pro.instance": "acme"})
CLI_OPTS = ["--trust-issuer", "pcapaudit Lab Trust Services", "--tenant", "jamf-pro.instance=acme"]

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None, reason="needs editcap (apt-get install tshark)")


# -- the capture set ---------------------------------------------------------------------------------
def _packets(path):
    """(ts, frame bytes) of every packet of a classic pcap."""
    import dpkt

    with open(path, "rb") as fh:
        return [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(fh)]


def _cut_points(pkts, named: set) -> tuple[int, int, tuple]:
    """Packet numbers (0-based) to cut after: the first segment of a ClientHello split over two TCP
    segments (of a flow in ``named``: one the audit names by its SNI), and a DNS answer whose address a
    later TCP SYN goes to (the answer names that flow); and the cut ClientHello's flow."""
    import dpkt

    mid_hello = dns_cut = None
    answered: dict[bytes, int] = {}
    for i, (_ts, buf) in enumerate(pkts):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data  # dpkt strips 802.1Q tags
        if not isinstance(ip, dpkt.ip.IP):
            continue
        l4 = ip.data
        if isinstance(l4, dpkt.udp.UDP) and l4.sport == 53:
            try:
                dns = dpkt.dns.DNS(l4.data)
            except Exception:  # noqa: BLE001
                continue
            for an in dns.an:
                if an.type == dpkt.dns.DNS_A:
                    answered.setdefault(an.ip, i)
        elif isinstance(l4, dpkt.tcp.TCP):
            p = bytes(l4.data)
            if (len(p) > 9 and p[0] == 0x16 and p[1] == 3 and p[5] == 1
                    and struct.unpack("!H", p[3:5])[0] + 5 > len(p) and i > 300):  # fmt: skip
                flow = (socket.inet_ntoa(ip.src), l4.sport, socket.inet_ntoa(ip.dst), l4.dport)
                if mid_hello is None and flow in named:
                    mid_hello, hello_flow = i, flow
            if dns_cut is None and l4.flags & dpkt.tcp.TH_SYN and not l4.flags & dpkt.tcp.TH_ACK:
                j = answered.get(ip.dst)
                if j is not None and i - j > 3 and i > 1500:
                    dns_cut = j
    assert mid_hello is not None and dns_cut is not None
    return mid_hello, dns_cut, hello_flow


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated span-port capture (split and out-of-order ClientHellos, DNS naming flows)."""
    d = tmp_path_factory.mktemp("gen")
    out = d / "span.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(out), "--packets", "6000",
                    "--seed", "7", "--format", "pcap", "-q"], check=True)  # fmt: skip
    return out


def split(src: Path, where: Path, pieces: int, extra_cuts=(), gz=(), names=None) -> list[Path]:
    """Split ``src`` with editcap into ``pieces`` files of about equal size plus cuts after the packet
    numbers in ``extra_cuts`` (in the source's format); files whose index is in ``gz`` are gzip-compressed; ``names(i)`` names
    file i (default: its index). Returns the files in packet order."""
    total = int(subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(src)], capture_output=True, text=True,
                               check=True).stdout.split()[-1])  # fmt: skip
    cuts = sorted({round(total * k / pieces) for k in range(1, pieces)} | {c + 1 for c in extra_cuts})
    bounds = [0, *cuts, total]
    magic = src.read_bytes()[:4]  # keep the format: a conversion would round the timestamps otherwise
    fmt = "pcapng" if magic == b"\x0a\x0d\x0d\x0a" else "nsecpcap" if magic == b"\x4d\x3c\xb2\xa1" else "pcap"
    where.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        name = names(i) if names else f"{i:02d}.pcap"
        out = where / name
        subprocess.run(["editcap", "-F", fmt, "-r", str(src), str(out), f"{lo + 1}-{hi}"], check=True)
        if i in gz:
            with open(out, "rb") as fh, gzip.open(str(out) + ".gz", "wb") as g:
                shutil.copyfileobj(fh, g)
            out.unlink()
            out = Path(str(out) + ".gz")
        files.append(out)
    return files


@pytest.fixture(scope="module")
def rotated(generated, single, tmp_path_factory):
    """The generated capture as 13 rotated files: names that do not sort in time order, two gzipped, a
    README among them; cut mid-ClientHello and between a DNS answer and the flow it names."""
    f = single.flows[single.flows["sni"].notna()]
    named = set(zip(f["src_ip"], f["src_port"].astype(int), f["dst_ip"], f["dst_port"].astype(int)))
    mid_hello, dns_cut, hello_flow = _cut_points(_packets(generated), named)
    d = tmp_path_factory.mktemp("rotated") / "sensor1"
    order = [7, 3, 11, 0, 9, 12, 5, 1, 10, 2, 8, 4, 6]  # file i is called ring_<order[i]>
    files = split(generated, d, 11, (mid_hello, dns_cut), gz=(2, 7), names=lambda i: f"ring_{order[i]}.pcap")
    assert len(files) == 13
    (d / "README.txt").write_text("not a capture\n")
    return d, files, hello_flow, dns_cut


@pytest.fixture(scope="module")
def single(generated):
    return _single([generated])


def _single(paths):
    a = Auditor(OPTS)
    for p in paths:
        a.run_file(CaptureFile(str(p)))
    return a.finish()


def assert_same_report(one, many):
    """Every table column by column (flows, DNS, findings, checklist, weirds) and the summary's counters."""
    for name in ("flows", "dns", "findings", "coverage", "weirds"):
        a, b = one.table(name).reset_index(drop=True), many.table(name).reset_index(drop=True)
        assert list(a.columns) == list(b.columns), name
        assert len(a) == len(b), name
        for col in a.columns:
            if col == "uids" and name in ("findings", "coverage"):
                # capped lists: with several partitions another order, as with --jobs (parallel.py)
                def ids(s):
                    return [sorted(str(v).split()) for v in s.astype(object)]

                assert ids(a[col]) == ids(b[col]), f"{name}.{col}"
                continue
            assert a[col].equals(b[col]), f"{name}.{col}"
    s1, s2 = one.summary(), many.summary()
    for key in set(s1) | set(s2):
        if key not in ("sources", "max_active_flows"):  # the files; a per-batch peak that depends on batching
            assert s1.get(key) == s2.get(key), key


# -- inputs ------------------------------------------------------------------------------------------
def test_plan_orders_by_first_packet_not_by_name(rotated):
    d, files, _, _ = rotated
    plan = plan_inputs([str(d)])
    assert list(plan.sensors) == ["pcap:linktype1"]  # one sensor, from the capture's metadata
    assert [Path(f.path).name for f in plan.sensors["pcap:linktype1"]] == [f.name for f in files]
    assert sorted(f.name for f in files) != [f.name for f in files]  # a name order would be wrong
    assert plan.errors == []  # the README found in the directory is skipped, not an error


def test_plan_globs_recursion_sensor_pattern_and_metadata(tmp_path):
    a = split(SAMPLE, tmp_path / "site" / "north", 2)
    b = split(OTHER, tmp_path / "site" / "south", 2)
    with pytest.raises(CaptureError, match="no capture file found"):  # none directly in site/
        plan_inputs([str(tmp_path / "site")])
    plan = plan_inputs([str(tmp_path / "site")], recursive=True, sensor_pattern=r"(?P<sensor>[^/]+)/[^/]+$")
    assert {s: [Path(f.path) for f in fs] for s, fs in plan.sensors.items()} == {"north": a, "south": b}
    # no pattern: the capture's metadata (a pcapng interface name, else the link type) tells them apart
    plan = plan_inputs([str(tmp_path / "site" / "*" / "*.pcap")])
    assert {s: [Path(f.path) for f in fs] for s, fs in plan.sensors.items()} == {"pcap:linktype1": a, "pcapng:eth0": b}
    subprocess.run(["editcap", "-F", "pcapng", str(a[0]), str(tmp_path / "site" / "ng.pcapng")], check=True)
    plan = plan_inputs([str(tmp_path / "site")], recursive=True)
    assert sorted(plan.sensors) == ["pcap:linktype1", "pcapng:eth0", "pcapng:linktype1"]
    with pytest.raises(CaptureError, match="no file matches"):
        plan_inputs([str(tmp_path / "nowhere" / "*.pcap")])
    # an explicitly named file that is no capture is an error of the plan; the others are planned
    (tmp_path / "junk.pcap").write_bytes(b"hello world, no capture here")
    plan = plan_inputs([str(a[0]), str(tmp_path / "junk.pcap")])
    assert len(plan.files) == 1 and len(plan.errors) == 1 and "junk.pcap" in plan.errors[0]


def test_span_notes_gap_and_overlap():
    spans = [("a", 0.0, 10.0, 5), ("b", 10.5, 20.0, 5), ("empty", None, None, 0), ("c", 100.0, 110.0, 5),
             ("d", 105.0, 120.0, 5)]  # fmt: skip
    notes = span_notes("s1", spans, max_gap=60.0)
    assert [(w.name, w.ts) for w in notes] == [("capture_gap", 20.0), ("capture_overlap", 105.0)]
    assert "80.000 s between b and c" in notes[0].detail and "5.000 s before c ends" in notes[1].detail
    assert span_notes("s1", spans[:2], max_gap=0.1)[0].name == "capture_gap"


def assert_dataset_equals(out: Path, one) -> None:
    """The flows and DNS rows of a Parquet dataset, read back with pandas, equal ``one``'s column by column."""
    import pandas as pd

    for name in ("flows", "dns"):
        df = pd.read_parquet(out / name)
        assert set(df["sensor"].astype(str)) == {"pcap:linktype1"}
        assert df["hour"].astype(str).str.match(r"^\d{4}-\d\d-\d\dT\d\d$").all()
        back = df.drop(columns=["sensor", "hour"]).sort_values(["ts", "uid"]).reset_index(drop=True)
        want = one.table(name).sort_values(["ts", "uid"]).reset_index(drop=True)
        assert list(back.columns) == list(want.columns)
        for col in want.columns:
            assert back[col].astype(object).where(back[col].notna(), None).tolist() == \
                want[col].astype(object).where(want[col].notna(), None).tolist(), f"{name}.{col}"  # fmt: skip


# -- in this process ---------------------------------------------------------------------------------
def test_rotated_files_in_process_equal_the_unsplit_capture(rotated, single):
    d, _, _, _ = rotated
    many = audit_paths([str(d)], OPTS)
    assert_same_report(single, many)
    assert many.flows["dns_name"].notna().sum() > 100 and many.flows["sni"].notna().sum() > 100
    src, sport, dst, dport = rotated[2]  # the flow whose ClientHello a file boundary cuts in two
    f = many.flows
    cut = f[(f["src_ip"] == src) & (f["src_port"] == sport) & (f["dst_ip"] == dst) & (f["dst_port"] == dport)]
    assert len(cut) == 1 and isinstance(cut["sni"].iloc[0], str)


def test_the_cuts_matter(rotated, single):
    """The test set can fail: the same files audited in name order (as separate audits would be) give
    another report."""
    d, files, _, _ = rotated
    by_name = _single(sorted(files, key=lambda p: p.name))
    assert not by_name.flows["uid"].equals(single.flows["uid"])
    split_apart = [_single([f]) for f in files]
    assert sum(len(r.flows) for r in split_apart) > len(single.flows)  # flows cut at every boundary


def test_overlapping_files_are_reported(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    subprocess.run(["editcap", "-F", "pcap", "-r", str(SAMPLE), str(src / "a.pcap"), "1-120"], check=True)
    subprocess.run(["editcap", "-F", "pcap", "-r", str(SAMPLE), str(src / "b.pcap"), "100-212"], check=True)
    r = audit_paths([str(src)], OPTS)
    w = r.weirds[r.weirds["name"] == "capture_overlap"]
    assert len(w) == 1 and "b.pcap starts" in w["detail"].iloc[0]
    r = audit_paths([str(src / "a.pcap")], OPTS, max_gap=0.0)
    assert "capture_overlap" not in set(r.weirds["name"])


def test_parquet_dataset_reads_back(rotated, single, tmp_path):
    import pandas as pd

    d, _, _, _ = rotated
    result = audit_paths([str(d)], OPTS)
    out = tmp_path / "ds"
    write_dataset(result, str(out) + "/")
    assert_dataset_equals(out, single)
    assert len(pd.read_parquet(out / "findings.parquet")) == len(single.findings)
    assert pd.read_parquet(out / "coverage.parquet")["status"].tolist() == single.coverage["status"].astype(str).tolist()
    assert json.loads((out / "summary.json").read_text())["flows"] == len(single.flows)
    dd = pytest.importorskip("dask.dataframe")
    assert len(dd.read_parquet(str(out / "flows")).compute()) == len(single.flows)
    assert len(dd.read_parquet(str(out / "weirds")).compute()) == len(pd.read_parquet(out / "weirds"))
    try:
        import duckdb
    except ImportError:
        return
    n = duckdb.sql(f"select count(*) from read_parquet('{out}/flows/**/*.parquet', hive_partitioning=true)").fetchone()[0]
    assert n == len(single.flows)


def test_parquet_dataset_is_never_written_half(rotated, tmp_path, monkeypatch):
    from pcapaudit.report import render

    d, _, _, _ = rotated
    result = audit_paths([str(d)], OPTS)
    out = tmp_path / "ds"
    write_dataset(result, str(out))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "write_table_parquet", broken)
    with pytest.raises(OSError):
        write_dataset(result, str(out))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the old dataset is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary directory left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(UsageError, match="not a pcapaudit dataset"):
        write_dataset(result, str(tmp_path / "mine"))


def test_cli_directory_to_dataset_with_a_corrupt_file(rotated, tmp_path, capsys):
    """CLI: a directory, -f parquet -o DIR/; a capture corrupt part-way is an error (exit 2) naming it,
    the others are audited and the dataset is still written."""
    import pandas as pd

    from pcapaudit.cli import main

    d, files, _, _ = rotated
    sensor = tmp_path / "cap"
    shutil.copytree(d, sensor)
    plain = [f for f in sensor.iterdir() if f.name.endswith(".pcap")]
    bad = plain[0]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] + b"\xff" * 64)  # a record header with an impossible length
    junk = tmp_path / "notes.pcap"
    junk.write_bytes(b"not a capture at all")
    out = tmp_path / "out"
    code = main(["audit", str(sensor), str(junk), "-f", "parquet", "-o", str(out) + "/", "--no-progress", *CLI_OPTS])
    err = capsys.readouterr().err
    assert code == 2
    assert bad.name in err and junk.name in err and err.count("pcapaudit: error:") == 2
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["errors"]) == 2 and summary["flows"] > 1000
    weirds = pd.read_parquet(out / "weirds")
    assert (weirds["name"] == "capture_truncated_or_corrupt").sum() == 1
    assert weirds.loc[weirds["name"] == "capture_unreadable", "sensor"].astype(str).tolist() == ["(none)"]


# -- Dask ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:  # fmt: skip
        yield client


@pytest.mark.slow
def test_dask_two_workers_equal_the_unsplit_capture(cluster, rotated, single):
    d, _, _, _ = rotated
    for partitions in (None, 3):  # default: 2 tasks (the cluster's threads) for the one sensor
        many = audit_paths([str(d)], OPTS, client=cluster, partitions=partitions)
        assert_same_report(single, many)


@pytest.mark.slow
def test_dask_worker_killed_mid_task_is_retried(cluster, rotated, single, tmp_path):
    """A worker killed half-way through its files: Dask runs the task again, the report is unchanged.
    A worker killed after writing its dataset rows: the retry's rows are in the dataset, once."""
    d, _, _, _ = rotated

    def on_workers(value):
        cluster.run(lambda: os.environ.update({KILL_ONCE_ENV: value}) if value else os.environ.pop(KILL_ONCE_ENV, None))

    flag, flag2 = tmp_path / "killed-reading", tmp_path / "killed-written"
    on_workers(f"read:{flag}")  # on the workers (the lambda goes by value)
    try:
        many = audit_paths([str(d)], OPTS, client=cluster, partitions=2)
        assert flag.exists()  # a task did kill its worker
        assert_same_report(single, many)
        on_workers(f"written:{flag2}")
        many = audit_paths([str(d)], OPTS, client=cluster, partitions=2, dataset=str(tmp_path / "ds"))
        assert flag2.exists()
    finally:
        on_workers(None)
    assert_dataset_equals(tmp_path / "ds", single)  # the tasks' rows, not the killed attempt's twice
    assert len(many.flows) == 0 and many.flow_count == len(single.flows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", flag.name, flag2.name]  # nothing left beside
    s1, s2 = single.summary(), many.summary()
    assert {k: v for k, v in s1.items() if k not in ("sources", "max_active_flows")} == \
        {k: v for k, v in s2.items() if k not in ("sources", "max_active_flows")}  # fmt: skip
    for name in ("findings", "coverage", "weirds"):
        assert len(single.table(name)) == len(many.table(name)), name


@pytest.mark.slow
def test_dask_two_sensors(cluster, tmp_path):
    """Two sensors' files, grouped by --sensor-pattern: each sensor's flows are its own unsplit audit's."""
    import pandas as pd

    split(SAMPLE, tmp_path / "east", 4)
    split(OTHER, tmp_path / "west", 3)
    many = audit_paths([str(tmp_path)], OPTS, client=cluster, recursive=True, sensor_pattern=r"/(east|west)/")
    east, west = _single([SAMPLE]), _single([OTHER])
    want = pd.concat([east.flows, west.flows]).sort_values(["ts", "uid"]).reset_index(drop=True)
    got = many.flows.reset_index(drop=True)
    for col in want.columns:
        assert want[col].astype(object).tolist() == got[col].astype(object).tolist(), col
    assert len(many.dns) == len(east.dns) + len(west.dns)
    counts = Counter()  # a finding both sensors make is one row whose count is the sum
    for r in (east, west):
        counts.update({f.identifier: f.count for f, _ in r.finding_records})
    assert {f.identifier: f.count for f, _ in many.finding_records} == counts
    assert any(f.identifier in {g.identifier for g, _ in west.finding_records} for f, _ in east.finding_records)
    assert many.stats.packets == east.stats.packets + west.stats.packets
    assert set(many.sensor_tables) == {"east", "west"}


@pytest.mark.slow
def test_cli_scheduler_from_the_environment(cluster, rotated, single, tmp_path, monkeypatch):
    from pcapaudit.cli import main

    d, _, _, _ = rotated
    monkeypatch.setenv("PCAPAUDIT_SCHEDULER", cluster.scheduler.address)
    out = tmp_path / "r.json"
    assert main(["audit", str(d), "-f", "json", "-o", str(out), "-q", "--fail-on", "none", *CLI_OPTS]) == 0
    rep = json.loads(out.read_text())
    assert [f["uid"] for f in rep["flows"]] == single.flows["uid"].tolist()
    assert rep["summary"]["findings"] == len(single.finding_records)


@pytest.mark.slow
def test_cli_workers_starts_a_local_cluster(rotated, single, tmp_path, capsys):
    """--workers 2: a LocalCluster for the run, and the partitioned dataset from it."""
    import pandas as pd

    from pcapaudit.cli import main

    d, _, _, _ = rotated
    out = tmp_path / "ds"
    code = main(["audit", str(d), "--workers", "2", "-f", "parquet", "-o", f"{out}/", "--fail-on", "none", *CLI_OPTS])
    assert code == 0, capsys.readouterr().err
    assert_dataset_equals(out, single)
    assert len(pd.read_parquet(out / "findings.parquet")) == len(single.findings)
    assert not [p for p in tmp_path.iterdir() if p.name != "ds"]  # no temporary directory left beside it


def test_python_engine_split(rotated, tmp_path):
    """The pure-Python engine (the tests' oracle) reading the same files one after another gives the
    unsplit capture's report too."""
    from dataclasses import replace

    d, files, _, _ = rotated
    opts = replace(OPTS, engine="fast")
    whole = tmp_path / "whole.pcap"  # the unsplit capture, rebuilt from the files
    plain = []
    for f in files:
        if f.suffix == ".gz":
            out = tmp_path / f.stem
            with gzip.open(f, "rb") as g, open(out, "wb") as fh:
                shutil.copyfileobj(g, fh)
            f = out
        plain.append(str(f))
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(whole), *plain], check=True)
    a = Auditor(opts)
    a.run_file(CaptureFile(str(whole)))
    one = a.finish()
    many = audit_paths([str(d)], opts)
    assert_same_report(one, many)
