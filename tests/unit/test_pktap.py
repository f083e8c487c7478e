"""Apple PKTAP captures (macOS ``tcpdump -i pktap``): the frame behind the header, and each flow's process."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scapy.all import IP, TCP, UDP, Ether, IPv6, Raw

import pcapaudit
from pcapaudit.capture.pcapfile import CaptureFile, PacketBatch
from pcapaudit.capture.writer import file_linktype
from pcapaudit.decode import Decoder
from pcapaudit.decode.vector import pktap_processes
from tests.craft import darwin_pcapng, pcapng_file, write_raw
from tests.unit.test_decode import decoded

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
PKTAP = CAPTURES / "enrollment-mac-pktap.pcap"
ETHERNET = CAPTURES / "enrollment-troubleshooting.pcap"
TRUTH = CAPTURES / "enrollment-troubleshooting.truth.yaml"
LAB = dict(trust_issuers=["pcapaudit Lab Trust Services"], devices=["192.168.50.0/24", "10.20.0.0/24"],
           tenants={"kandji.uuid": "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01", "jamf-pro.instance": "acme"})
MAC = "192.168.50.10"


def _make_pktap():
    spec = importlib.util.spec_from_file_location("make_pktap", CAPTURES / "make_pktap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def header(pid=501, comm="mdmclient", epid=None, ecomm=None, dlt=1, length=108, rectype=1) -> bytes:
    def cstr(s):
        return s.encode()[:16].ljust(20, b"\0")

    epid, ecomm = pid if epid is None else epid, comm if ecomm is None else ecomm
    fields = (length, rectype, dlt, b"en0", 2, 2, 14, 0, pid, cstr(comm), 0, 6, 0, epid, cstr(ecomm))
    return struct.pack("<III24sIIIIi20sIHHi20s", *fields) + b"\0" * (length - 108)


def test_committed_capture_is_what_the_script_makes(tmp_path):
    out = tmp_path / "p.pcap"
    mod = _make_pktap()
    n, k = mod.make(str(ETHERNET), str(TRUTH), str(out))
    assert out.read_bytes() == PKTAP.read_bytes()
    assert (n, k) == (189, 187)  # the two unattributed frames are ARP


def test_flows_are_the_macs_flows_of_the_ethernet_capture_with_their_process():
    """The same flows, states, names and verdicts as in the Ethernet capture (the Mac's part of it), plus the
    process the truth names for each exchange."""
    eth = pcapaudit.audit(ETHERNET, **LAB).flows
    tap = pcapaudit.audit(PKTAP, **LAB).flows
    eth = eth[(eth.src_ip == MAC) | (eth.dst_ip == MAC)]
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "transport", "state", "conn_state", "history", "pkts_c2s",
            "pkts_s2c", "payload_c2s", "payload_s2c", "sni", "dns_name", "tls_handshake", "cert_issuer", "rule_id",
            "verdict"]  # fmt: skip
    key = ["src_port", "dst_port"]
    a = eth[cols].sort_values(key).reset_index(drop=True).astype(object)
    b = tap[cols].sort_values(key).reset_index(drop=True).astype(object)
    assert a.where(a.notna(), None).equals(b.where(b.notna(), None))

    procs = _make_pktap().exchanges(yaml.safe_load(TRUTH.read_text()))
    seen = 0
    for r in tap.itertuples():
        want = procs.get((r.transport, r.src_ip, r.src_port, r.dst_ip, r.dst_port))
        assert want is not None, r
        comm, pid, ecomm, _epid = want
        assert (r.process, r.pid) == (comm[:16], pid)
        assert (None if r.eprocess is None or r.eprocess is pd.NA else r.eprocess) == ecomm
        seen += 1
    assert seen == len(tap) == 22
    assert set(eth.columns) == set(tap.columns) and eth["process"].isna().all()


def test_findings_name_the_process():
    res = pcapaudit.audit(PKTAP, **LAB)
    ev = {(r.code, r.target.split(" ")[0]): json.loads(r.evidence).get("process") for r in res.findings.itertuples()}
    kandji = "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01.devices.us-1.kandji.io"
    assert ev[("client_rejected_certificate", kandji)] == "Kandji Daemon[733]"
    assert ev[("syn_no_reply", "1-courier.push.apple.com")] == "apsd[178]"
    assert ev[("not_allowed", "example.org")] == "com.apple.WebKit[1204] for Safari"
    assert ev[("dns_nxdomain", "gdmf.apple.com")] == "mDNSResponder"  # the querying process
    dns = pcapaudit.audit(PKTAP, **LAB).dns
    assert set(dns["process"]) == {"mDNSResponder"} and len(dns) == 11
    assert pcapaudit.audit(ETHERNET, **LAB).dns["process"].isna().all()


def test_terminal_report_shows_the_process_column(tmp_path):
    from pcapaudit.report.render import render_text

    res = pcapaudit.audit(PKTAP, **LAB)
    text = render_text(res, ("findings", "flows"))
    assert "process" in text and "apsd[178]" in text and "com.apple.WebKit[1204] for Safari" in text
    plain = render_text(pcapaudit.audit(ETHERNET, **LAB), ("findings", "flows"))
    assert " process " not in plain  # no column when the capture names no process


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_processes_agree_with_tshark():
    out = subprocess.run(["tshark", "-r", str(PKTAP), "-n", "-Y", "tcp or udp", "-T", "fields", "-e", "pktap.cmdname",
                          "-e", "pktap.pid", "-e", "ip.src", "-e", "tcp.srcport", "-e", "udp.srcport"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    theirs = {}
    for line in out.splitlines():
        comm, pid, src, tport, uport = line.split("\t")
        if src == MAC:
            theirs.setdefault(int(tport or uport), (comm, int(pid)))
    flows = pcapaudit.audit(PKTAP, **LAB).flows
    ours = {int(r.src_port): (r.process, int(r.pid)) for r in flows.itertuples()}
    assert ours == theirs and len(ours) == 22


def test_fast_and_simple_decoders_agree_on_pktap(tmp_path):
    assert decoded(PKTAP, "fast") == decoded(PKTAP, "simple")
    inner = Ether() / IP(src=MAC, dst="17.57.146.20") / TCP(sport=50000, dport=443) / Raw(b"hi")
    six = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / Raw(b"q")
    raw_ip = bytes(IP(src=MAC, dst="17.57.146.20") / TCP(sport=50001, dport=443) / Raw(b"raw"))
    null = struct.pack("<I", 2) + raw_ip
    frames = [header() + bytes(inner), header(length=120) + bytes(six), header(dlt=12) + raw_ip,
              header(dlt=0) + null]  # fmt: skip
    p = write_raw(tmp_path / "t.pcap", frames, 258)
    fast, simple = decoded(p, "fast"), decoded(p, "simple")
    assert fast == simple
    assert [r[-1] for r in fast] == [b"hi", b"q", b"raw", b"raw"]
    assert decoded(write_raw(tmp_path / "u.pcap", frames, 149), "fast") == fast  # macOS's run-time DLT


def test_hostile_pktap_headers_are_weirds_not_crashes(tmp_path):
    good = header() + bytes(Ether() / IP(src=MAC, dst="17.57.146.20") / TCP(sport=50000, dport=443) / Raw(b"ok"))
    frames = [
        good,
        header()[:60],  # shorter than the header
        header(length=40) + b"\0" * 80,  # header length below the minimum
        struct.pack("<I", 5000) + header()[4:] + b"\0" * 80,  # header length past the frame
        header(rectype=0),  # metadata only, no packet
        header(dlt=258) + good,  # PKTAP inside PKTAP
        header(dlt=147) + b"\0" * 40,  # an inner link type nobody decodes
        header(dlt=1) + b"\x00\x01",  # a runt inner frame
        good,
    ]
    p = write_raw(tmp_path / "h.pcap", frames, 258)
    for engine in ("fast", "simple"):
        rows = decoded(p, engine)
        assert rows[0][-1] == b"ok" and rows[-1][-1] == b"ok"
        assert all(r == ("skip",) for r in rows[1:-1]), engine
    dec = Decoder("fast")
    names = [n for b in CaptureFile(str(p)).batches() for _r, n, _d in dec.decode(b).weirds]
    assert names.count("bad_pktap_header") == 3 and "truncated_link_header" in names
    assert "unsupported_linktype" in names
    res = pcapaudit.audit(p)
    assert len(res.flows) == 1 and res.flows.iloc[0]["process"] == "mdmclient"
    # 149 that is not PKTAP (somebody's private DLT_USER2 traffic): an unsupported link type, once per packet
    q = write_raw(tmp_path / "user2.pcap", [b"\x01\x02\x03" * 50], 149)
    assert [n for b in CaptureFile(str(q)).batches() for _r, n, _d in Decoder("fast").decode(b).weirds] == [
        "unsupported_linktype"]


def test_process_fields():

    odd = bytearray(header(pid=9, comm="x"))
    odd[56:76] = odd[88:108] = b"ab\xffcd".ljust(20, b"\0")  # a command that is not UTF-8
    frames = [header(pid=0, comm=""), header(pid=640, comm="mdmclient"), header(pid=640, comm="mdmclient"),
              header(pid=1204, comm="com.apple.WebKit.Networking", epid=1187, ecomm="Safari"),
              header(pid=77, comm="", epid=77, ecomm=""), bytes(odd)]  # fmt: skip
    buf = b"".join(frames)
    offs = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    batch = PacketBatch(buf=buf, off=offs, caplen=np.array([len(f) for f in frames], dtype=np.int64),
                        wirelen=np.array([len(f) for f in frames], dtype=np.int64),
                        ts=np.zeros(len(frames)), linktype=np.full(len(frames), 258, dtype=np.int32),
                        first_index=0, file_base=0)  # fmt: skip
    proc, names = pktap_processes(batch)
    got = [names[i] if i >= 0 else None for i in proc.tolist()]
    assert got == [None, ("mdmclient", 640, None), ("mdmclient", 640, None),
                   ("com.apple.WebKit", 1204, "Safari"), ("pid 77", 77, None), ("ab\\xffcd", 9, None)]  # fmt: skip


def test_live_writer_stores_macos_pktap_as_linktype_258():
    assert file_linktype(149, "darwin") == 258
    assert file_linktype(149, "linux") == 149  # DLT_USER2 elsewhere
    assert file_linktype(1, "darwin") == 1


def _pktap_to_darwin(tmp_path, endian="<", name="d.pcapng"):
    """The sample's frames without their PKTAP headers, in a pcapng file with Darwin process blocks."""
    pkts = []
    for b in CaptureFile(str(PKTAP)).batches():
        for o, c, t in zip(b.off.tolist(), b.caplen.tolist(), b.ts.tolist()):
            rec = b.buf[o : o + c]
            pid, epid = struct.unpack_from("<i", rec, 52)[0], struct.unpack_from("<i", rec, 84)[0]
            comm, ecomm = (rec[56:76].split(b"\0")[0].decode(), rec[88:108].split(b"\0")[0].decode())
            proc = (pid, comm, epid, ecomm) if pid else None
            pkts.append((t, bytes(rec[108:]), proc))
    return darwin_pcapng(tmp_path / name, pkts, endian)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_darwin_pcapng_process_blocks(tmp_path, endian):
    """Apple's tcpdump in pcapng: the same flows and processes as the PKTAP capture."""
    path = _pktap_to_darwin(tmp_path, endian)
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "state", "sni", "rule_id", "verdict", "process", "pid",
            "eprocess"]  # fmt: skip
    a = pcapaudit.audit(PKTAP, **LAB).flows[cols].sort_values("src_port").reset_index(drop=True).astype(object)
    b = pcapaudit.audit(path, **LAB).flows[cols].sort_values("src_port").reset_index(drop=True).astype(object)
    assert a.where(a.notna(), None).equals(b.where(b.notna(), None))
    assert b["process"].notna().sum() == 22 and b["eprocess"].notna().sum() == 1


def test_darwin_pcapng_odd_references(tmp_path):
    """A packet naming a process block that does not exist, or none, has no process; a new section
    forgets the previous section's blocks."""
    frame = bytes(Ether() / IP(src=MAC, dst="17.57.146.20") / TCP(sport=50000, dport=443, flags="S"))
    good = darwin_pcapng(tmp_path / "a.pcapng", [(1.0, frame, (640, "mdmclient", None, None))])
    data = bytearray(good.read_bytes())
    i = data.index(struct.pack("<HH", 0x8001, 4))
    struct.pack_into("<I", data, i + 4, 7)  # process block 7 of 1
    bad = tmp_path / "b.pcapng"
    bad.write_bytes(bytes(data))
    assert pcapaudit.audit(good).flows["process"].tolist() == ["mdmclient"]
    assert pcapaudit.audit(bad).flows["process"].isna().all()
    # section 2 reuses index 0 without its own block: no process (its block belonged to section 1)
    frame2 = bytes(Ether() / IP(src=MAC, dst="17.57.146.20") / TCP(sport=50001, dport=443, flags="S"))
    second = darwin_pcapng(tmp_path / "c.pcapng", [(2.0, frame2, (640, "mdmclient", None, None))])
    second = bytearray(second.read_bytes())
    shb_len = struct.unpack_from("<I", second, 4)[0]
    idb_len = struct.unpack_from("<I", second, shb_len + 4)[0]
    dpib_len = struct.unpack_from("<I", second, shb_len + idb_len + 4)[0]
    del second[shb_len + idb_len : shb_len + idb_len + dpib_len]  # drop section 2's process block
    two = tmp_path / "two.pcapng"
    two.write_bytes(good.read_bytes() + bytes(second))
    flows = pcapaudit.audit(two).flows.sort_values("src_port")
    assert flows["process"].tolist()[0] == "mdmclient" and flows["process"].isna().tolist() == [False, True]


def test_process_grouping_survives_hash_collisions(monkeypatch):
    """Processes are grouped by a hash of their header words; were two to share it, the words decide."""
    import pcapaudit.decode.vector as vector

    def batch_of(frames):
        offs = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
        lens = np.array([len(f) for f in frames], dtype=np.int64)
        return PacketBatch(buf=b"x" + b"".join(frames), off=offs + 1, caplen=lens, wirelen=lens,
                           ts=np.zeros(len(frames)), linktype=np.full(len(frames), 258, dtype=np.int32),
                           first_index=0, file_base=0)  # fmt: skip

    frames = [header(pid=640, comm="mdmclient"), header(pid=178, comm="apsd"), header(pid=640, comm="mdmclient"),
              header(pid=640, comm="mdmclient2"), header(pid=0, comm="")]  # fmt: skip
    want = [("mdmclient", 640, None), ("apsd", 178, None), ("mdmclient", 640, None), ("mdmclient2", 640, None), None]
    for collide in (False, True):
        if collide:  # every row hashes alike
            monkeypatch.setattr(vector, "mix64", lambda x: np.zeros_like(x))
        proc, names = pktap_processes(batch_of(frames))  # unaligned offsets (+1) on purpose
        assert [names[i] if i >= 0 else None for i in proc.tolist()] == want, collide


def test_checklist_names_the_processes_that_tried_each_rule():
    cov = pcapaudit.audit(PKTAP, **LAB).coverage.set_index("rule_id")
    assert cov.loc["apple.apns", "processes"] == "apsd"
    assert cov.loc["apple.mdmenrollment", "processes"] == "cloudconfigurati"
    assert cov.loc["kandji.us.device-domain-devices", "processes"] == "Kandji Daemon"
    assert pd.isna(cov.loc["apple.gdmf", "processes"])  # a DNS answer only: no flow, no process
    assert pcapaudit.audit(ETHERNET, **LAB).coverage["processes"].isna().all()


def test_checklist_process_cap_does_not_depend_on_order():
    from pcapaudit.coverage import MAX_PROCESSES, CoverageTracker
    from pcapaudit.model import Classification

    cls = Classification("apple", "apple.apns", "APNs", "sni", "x", "high", "allowed", "")
    names = [f"proc{i:02d}" for i in range(MAX_PROCESSES + 10)]
    kept = []
    for order in (names, names[::-1], names[5:] + names[:5]):
        a, b = CoverageTracker(None), CoverageTracker(None)  # type: ignore[arg-type]
        for i, n in enumerate(order):  # two "partitions", merged as a parallel audit does
            (a if i % 2 else b).account(f"C{i}", float(i), True, cls, frozenset({"apple.apns"}), n)
        a.merge(b)
        kept.append(sorted(a.processes["apple.apns"]))
    assert kept[0] == kept[1] == kept[2] == names[:MAX_PROCESSES]


def test_checklist_uids_are_the_earliest_flows_whatever_the_order():
    """A rule keeps the uids of its MAX_UIDS earliest flows, in time order, whatever order the flows end
    in and however a parallel audit splits them."""
    import random

    from pcapaudit.coverage import MAX_UIDS, CoverageTracker
    from pcapaudit.model import Classification

    cls = Classification("apple", "apple.apns", "APNs", "sni", "x", "high", "allowed", "")
    flows = [(f"C{i:03d}", 100.0 + i) for i in range(MAX_UIDS * 3)]
    shuffled = random.Random(7).sample(flows, len(flows))
    for order in (flows, flows[::-1], shuffled):
        for parts in (1, 2, 3):
            trackers = [CoverageTracker(None) for _ in range(parts)]  # type: ignore[arg-type]
            for i, (uid, ts) in enumerate(order):
                trackers[i % parts].account(uid, ts, True, cls, frozenset({"apple.apns"}))
            for t in trackers[1:]:
                trackers[0].merge(t)
            (row,) = trackers[0].rows(_book_with(cls.rule_id), ("apple",))
            assert row.uids == tuple(u for u, _ in flows[:MAX_UIDS]), (parts, order[:3])
            assert row.flows == len(order)
    # a uid comes once, at its earliest time (a DNS flow's transactions, then the flow itself)
    t = CoverageTracker(None)  # type: ignore[arg-type]
    for uid, ts in flows:
        t._uid(cls.rule_id, (ts + 5.5, uid))
        t._uid(cls.rule_id, (ts, uid))
    assert t.rows(_book_with(cls.rule_id), ("apple",))[0].uids == tuple(u for u, _ in flows[:MAX_UIDS])


def _book_with(rule_id):
    from pcapaudit.rules.loader import load_rulebook

    book = load_rulebook()
    return type("Book", (), {"rules": [book.rule(rule_id)]})()


def _syn(sport, dst="17.57.146.20"):
    return bytes(Ether() / IP(src=MAC, dst=dst) / TCP(sport=sport, dport=443, flags="S"))


def test_interface_of_each_flow_in_multi_interface_pcapng(tmp_path):
    raw = bytes(IP(src=MAC, dst="17.57.146.20") / TCP(sport=50003, dport=443, flags="S"))
    p = pcapng_file(tmp_path / "m.pcapng", [
        ("idb", 1, "eth0"), ("idb", 101, "tun0"), ("idb", 1, None),
        ("epb", 0, 1.0, _syn(50000)), ("epb", 1, 1.1, raw), ("epb", 2, 1.2, _syn(50002)), ("epb", 0, 1.3, _syn(50000)),
    ])  # fmt: skip
    flows = pcapaudit.audit(p).flows.set_index("src_port")
    assert flows.loc[50000, "interface"] == "eth0" and flows.loc[50003, "interface"] == "tun0"
    assert flows.loc[50002, "interface"] == "if2"  # no if_name: its position
    if shutil.which("tshark"):
        cmd = ["tshark", "-r", str(p), "-T", "fields", "-e", "tcp.srcport", "-e", "frame.interface_name"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        theirs = dict(line.split("\t") for line in out.splitlines())
        assert theirs["50000"] == "eth0" and theirs["50003"] == "tun0"
    # one interface: nothing to tell flows apart by, so no column values
    one = pcapng_file(tmp_path / "one.pcapng", [("idb", 1, "eth0"), ("epb", 0, 1.0, _syn(50000))])
    assert pcapaudit.audit(one).flows["interface"].isna().all()
    # a second interface after some packets: those packets' interface is unknown; simple packet blocks
    # come from the first interface
    late = pcapng_file(tmp_path / "late.pcapng", [
        ("idb", 1, "en0"), ("epb", 0, 1.0, _syn(50000)), ("idb", 1, "en1"), ("epb", 1, 1.1, _syn(50001)),
        ("spb", _syn(50004)),
    ])  # fmt: skip
    got = pcapaudit.audit(late).flows.set_index("src_port")["interface"]
    assert pd.isna(got[50000]) and got[50001] == "en1" and got[50004] == "en0"


def test_interface_from_pktap_headers(tmp_path):
    """PKTAP names the real interface of every packet (`tcpdump -i pktap` captures all of them)."""
    def hdr(ifname, dlt):
        h = bytearray(header(dlt=dlt))
        h[12:36] = ifname.encode().ljust(24, b"\0")
        return bytes(h)

    raw = bytes(IP(src="10.8.0.2", dst="17.57.146.20") / TCP(sport=50010, dport=5223, flags="S"))
    frames = [hdr("en0", 1) + _syn(50000), hdr("utun3", 0) + struct.pack("<I", 2) + raw, hdr("", 1) + _syn(50011)]
    flows = pcapaudit.audit(write_raw(tmp_path / "i.pcap", frames, 258)).flows.set_index("src_port")
    assert flows.loc[50000, "interface"] == "en0" and flows.loc[50010, "interface"] == "utun3"
    assert pd.isna(flows.loc[50011, "interface"])
    assert set(pcapaudit.audit(PKTAP, **LAB).flows["interface"]) == {"en0"}
    assert pcapaudit.audit(ETHERNET, **LAB).flows["interface"].isna().all()


def test_darwin_process_blocks_with_simple_and_obsolete_packet_blocks(tmp_path):
    """Packet blocks without Apple's options after a process block (the capture fuzzer's find: the
    per-packet process list was one short per simple or obsolete packet block)."""
    dpib = struct.pack("<I", 640) + struct.pack("<HH", 2, 9) + b"mdmclient\0\0\0" + b"\0" * 4
    frame = _syn(50001)
    opb = struct.pack("<HHIIII", 0, 0, 0, 2_000_000, len(frame), len(frame)) + frame
    epb = struct.pack("<IIIII", 0, 0, 3_000_000, len(frame), len(frame)) + frame + b"\0" * (-len(frame) % 4)
    epb += struct.pack("<HHI", 0x8001, 4, 0) + b"\0" * 4
    p = pcapng_file(tmp_path / "mix.pcapng", [
        ("idb", 1, "en0"), ("raw", 0x80000001, dpib), ("spb", _syn(50000)), ("raw", 2, opb), ("raw", 6, epb),
        ("spb", _syn(50002)),
    ])  # fmt: skip
    flows = pcapaudit.audit(p).flows.set_index("src_port")
    assert pd.isna(flows.loc[50000, "process"]) and flows.loc[50001, "process"] == "mdmclient"
    assert pd.isna(flows.loc[50002, "process"])


def test_loopback_flows_make_no_findings(tmp_path):
    """`tcpdump -i pktap` (or `-i any`) also captures lo0: local daemons on 127.0.0.1 / ::1 are listed,
    with the verdict "local", and raise nothing (before: cleartext on 8021, not_allowed on 9999)."""
    def hdr(dlt=0):
        h = bytearray(header(dlt=dlt, comm="agent"))
        h[12:36] = b"lo0".ljust(24, b"\0")
        return bytes(h)

    lo = struct.pack("<I", 2)
    frames = [hdr() + lo + bytes(IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=50000, dport=8021, flags="S")),
              hdr() + lo + bytes(IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=8021, dport=50000, flags="SA")),
              hdr() + lo + bytes(IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=50002, dport=9999, flags="S")),
              hdr() + struct.pack("<I", 30) + bytes(IPv6(src="::1", dst="::1") / UDP(sport=5000, dport=5353)
                                                    / Raw(b"\0" * 12)),
              header() + _syn(50003, dst="93.184.216.34")]  # fmt: skip
    r = pcapaudit.audit(write_raw(tmp_path / "lo.pcap", frames, 258))
    flows = r.flows.set_index("src_port")
    assert [flows.loc[p, "verdict"] for p in (50000, 50002, 5000)] == ["local"] * 3
    assert flows.loc[50000, "interface"] == "lo0" and flows.loc[50000, "process"] == "agent"
    assert set(r.findings["target"]) == {"93.184.216.34:443"}  # the one flow that left the host


def test_unanswered_dns_query_keeps_its_process(tmp_path):
    from scapy.layers.dns import DNS, DNSQR

    dns = DNS(id=7, qd=DNSQR(qname="gdmf.apple.com"))
    q = Ether() / IP(src=MAC, dst="198.51.100.53") / UDP(sport=53001, dport=53) / dns
    r = pcapaudit.audit(write_raw(tmp_path / "q.pcap", [header(pid=191, comm="mDNSResponder") + bytes(q)], 258))
    row = r.dns.iloc[0]
    assert (row["query"], row["process"], len(r.dns)) == ("gdmf.apple.com", "mDNSResponder", 1)
    assert pd.isna(row["rcode"])


def test_live_lines_name_the_process(capsys):
    """`pcapaudit live pktap` on a Mac: each finding line ends with the process it is about."""
    from pcapaudit.report.livepanel import LiveDisplay

    res = pcapaudit.audit(PKTAP, **LAB)
    display = LiveDisplay(True, "pktap")
    display.tty = False
    for fd, _uids in res.finding_records:
        display.finding(fd, True)
    err = capsys.readouterr().err.splitlines()
    syn = [line for line in err if "syn_no_reply" in line]
    assert len(syn) == 1 and syn[0].endswith("[apsd[178]]")
    assert all(line.endswith("]") for line in err)  # every finding of this capture is about a process


def test_group_rows_one_group_and_many():
    """PKTAP fields are grouped by their words; a batch where every row has the same words (one
    interface, one process) takes a shortcut that must group as the general path does."""
    from pcapaudit.decode.vector import _group_rows

    same = np.tile(np.array([7, 8, 9], dtype=np.uint32), (5, 1))
    first, inv = _group_rows(same)
    assert first.tolist() == [0] and inv.tolist() == [0] * 5
    mixed = same.copy()
    mixed[3, 1] = 1
    first, inv = _group_rows(mixed)
    assert len(first) == 2 and inv[3] != inv[0] and len(set(inv[[0, 1, 2, 4]].tolist())) == 1
    assert (mixed[first][inv] == mixed).all()
