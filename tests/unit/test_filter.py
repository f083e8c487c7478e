"""audit --filter/--start/--end: a BPF filter (compiled by libpcap, run by the core) and a time window."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pcapaudit.cli import main

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "captures" / "enrollment-troubleshooting.pcap"


def _libpcap():
    from pcapaudit.capture import libpcap
    from pcapaudit.errors import CaptureError

    try:
        libpcap.load()
    except CaptureError:
        pytest.skip("libpcap is not installed")
    return libpcap


def flows(tmp_path, capture, *extra) -> tuple[list[dict], dict]:
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    rc = main(["audit", str(capture), *extra, "--fail-on", "none", "-q", "-f", "json", "-o", str(out),
               "--table", "flows", "--limit", "0"])  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text())
    return doc["flows"], doc["summary"]


def five(f: dict) -> tuple:
    return f["transport"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]


def rows(fl: list[dict]) -> list[dict]:
    """Flow rows without their uid (and the Community ID, the same for the same tuple), sorted."""
    return sorted(({k: v for k, v in f.items() if k != "uid"} for f in fl), key=lambda r: (r["ts"], five(r)))


def test_filter_keeps_exactly_the_flows_of_the_filter(tmp_path):
    _libpcap()
    everything, s_all = flows(tmp_path, CAPTURE)
    want = {five(f) for f in everything if f["transport"] == "tcp" and 443 in (f["src_port"], f["dst_port"])}
    assert want and len(want) < len(everything)
    got, s = flows(tmp_path, CAPTURE, "--filter", "tcp port 443")
    assert {five(f) for f in got} == want
    assert len(got) == len(want)
    assert s["filtered_out"] > 0
    assert s["packets"] + s["filtered_out"] == s_all["packets"]
    assert "filtered_out" not in s_all


def test_filter_gives_what_tcpdump_then_audit_gives(tmp_path):
    _libpcap()
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    cut = tmp_path / "cut.pcap"
    subprocess.run(["tcpdump", "-r", str(CAPTURE), "-w", str(cut), "tcp port 443"], check=True,
                   capture_output=True)  # fmt: skip
    pre, s_pre = flows(tmp_path, cut)
    got, s = flows(tmp_path, CAPTURE, "--filter", "tcp port 443")
    assert {five(f) for f in got} == {five(f) for f in pre}
    assert rows(got) == rows(pre)  # the same packets: the same flows, field for field
    assert s["packets"] == s_pre["packets"]


def _records(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
    """A little-endian microsecond pcap: its header and (ts, record bytes) per packet."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        out.append((sec + usec * 1e-6, data[off:off + 16 + incl]))
        off += 16 + incl
    return data[:24], out


def test_time_window_audits_the_packets_inside_it(tmp_path):
    head, recs = _records(CAPTURE)
    ts = sorted(t for t, _ in recs)
    start, end = ts[len(ts) // 4], ts[3 * len(ts) // 4]
    inside = tmp_path / "inside.pcap"
    inside.write_bytes(head + b"".join(r for t, r in recs if start <= t < end))
    pre, s_pre = flows(tmp_path, inside)
    # epoch seconds, and the same instants as ISO 8601 times
    got, s = flows(tmp_path, CAPTURE, "--start", repr(start), "--end", repr(end))
    assert rows(got) == rows(pre)
    assert s["packets"] == s_pre["packets"] == sum(start <= t < end for t in ts)
    assert s["outside_window"] == len(ts) - s["packets"]
    from datetime import datetime, timezone

    iso = [datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z") for t in (start, end)]
    got_iso, _ = flows(tmp_path, CAPTURE, "--start", iso[0], "--end", iso[1])
    assert rows(got_iso) == rows(pre)
    # a naive ISO time is UTC
    naive, _ = flows(tmp_path, CAPTURE, "--start", iso[0][:-1], "--end", iso[1][:-1])
    assert rows(naive) == rows(pre)
    # the window and the filter together
    both, s_both = flows(tmp_path, CAPTURE, "--start", iso[0], "--end", iso[1], "--filter", "tcp port 443")
    if shutil.which("tcpdump") and _libpcap():
        cut = tmp_path / "cut.pcap"
        subprocess.run(["tcpdump", "-r", str(inside), "-w", str(cut), "tcp port 443"], check=True, capture_output=True)
        assert rows(both) == rows(flows(tmp_path, cut)[0])
    assert s_both["packets"] + s_both["filtered_out"] + s_both["outside_window"] == len(ts)


def test_summary_line_says_what_was_left_out(capsys):
    _libpcap()
    assert main(["audit", str(CAPTURE), "--filter", "tcp port 443", "--fail-on", "none", "--table", "findings"]) == 0
    err = capsys.readouterr().err
    assert " more not matching --filter)" in err, err
    head, recs = _records(CAPTURE)
    mid = sorted(t for t, _ in recs)[len(recs) // 2]
    assert main(["audit", str(CAPTURE), "--filter", "tcp port 443", "--start", repr(mid), "--fail-on", "none",
                 "--table", "findings"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "more left out: " in err and "not matching --filter, " in err and "outside --start/--end)" in err, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--filter", "tcp prt 443"], "pcapaudit: error: --filter 'tcp prt 443': can't parse filter expression: syntax error"),
        (["--filter", "port 99999"], "pcapaudit: error: --filter 'port 99999': "),  # libpcap's words vary
        (["--start", "2024-05-02", "--end", "2024-05-01"], "pcapaudit: error: --start 2024-05-02 is not before --end 2024-05-01"),
        (["--start", "yesterday"], "pcapaudit: error: --start 'yesterday': not a time"),
        (["--end", "nan"], "pcapaudit: error: --end 'nan': not a time"),
        (["--filter", " "], "pcapaudit: error: --filter: an empty expression"),
    ],
)
def test_errors_are_one_line_before_any_packet_is_read(extra, message, capsys, monkeypatch):
    if extra[0] == "--filter" and extra[1].strip():
        _libpcap()
    from pcapaudit.audit import Auditor

    def no_reading(*a, **k):
        raise AssertionError("a capture was read")

    monkeypatch.setattr(Auditor, "run_file", no_reading)
    assert main(["audit", str(CAPTURE), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") <= 2  # the error, and for usage errors the --help hint


def test_no_libpcap_is_one_line_saying_to_install_it(capsys, monkeypatch):
    from pcapaudit.capture import libpcap

    monkeypatch.setattr(libpcap, "_lib", None)
    monkeypatch.setattr(libpcap.ctypes.util, "find_library", lambda name: None)

    def no_cdll(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(libpcap.ctypes, "CDLL", no_cdll)
    assert main(["audit", str(CAPTURE), "--filter", "tcp port 443"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("pcapaudit: error: --filter needs libpcap to compile 'tcp port 443': libpcap not found: install it")


def test_link_type_libpcap_cannot_filter_is_a_one_line_error(tmp_path, capsys):
    # link type 14 is not a DLT libpcap compiles for on Linux: packets of it are not audited, and the
    # audit says so (exit 2)
    _libpcap()
    head, recs = _records(CAPTURE)
    other = tmp_path / "lt147.pcap"
    other.write_bytes(head[:20] + struct.pack("<I", 147) + b"".join(r for _, r in recs[:3]))
    assert main(["audit", str(other), "--filter", "tcp port 443", "--fail-on", "none", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--filter 'tcp port 443' cannot be applied to link type 147 (3 packets not audited): " in err, err


def test_pktap_is_filtered_by_the_link_type_inside(tmp_path):
    # libpcap has no filter code for PKTAP outside macOS; the core runs the inner link type's program
    _libpcap()
    mac = ROOT / "captures" / "enrollment-mac-pktap.pcap"
    everything, _ = flows(tmp_path, mac)
    want = {five(f) for f in everything if f["transport"] == "tcp" and 443 in (f["src_port"], f["dst_port"])}
    got, s = flows(tmp_path, mac, "--filter", "tcp port 443")
    assert want and {five(f) for f in got} == want
    assert s["filtered_out"] > 0
