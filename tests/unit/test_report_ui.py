"""The user-facing side of reports (issue 19): terminal width, columns, errors, wording, exports."""

from __future__ import annotations

import json
import os

import pytest

import pcapaudit
from pcapaudit.cli import main
from pcapaudit.report.render import render_text

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "captures")
SAMPLE = os.path.join(ROOT, "enrollment-troubleshooting.pcap")
CONFIG = os.path.join(ROOT, "lab.yaml")
LAB = {"trust_issuers": ["pcapaudit Lab Trust Services"],
       "tenants": {"kandji.uuid": "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01", "jamf-pro.instance": "acme"}}  # fmt: skip
DEFAULT = ("findings", "coverage", "flows")


@pytest.fixture(scope="module")
def sample():
    return pcapaudit.audit(SAMPLE, **LAB)


@pytest.fixture(autouse=True)
def _no_columns_env(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)


# -- 1. terminal width and --columns -----------------------------------------------------------------
@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_the_terminal_report_fits_the_width(sample, width):
    text = render_text(sample, DEFAULT, width=width, compact=True)
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, too_wide[:3]
    # still every finding, one line each, worst first
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("FINDINGS"))
    rows = lines[start + 3: start + 13]
    assert [r.split()[0] for r in rows] == ["high"] * 4 + ["medium", "low"] + ["info"] * 4
    assert "never seen (56): apple:" in text


def test_at_120_columns_a_finding_keeps_its_code_target_and_message(sample):
    text = render_text(sample, ("findings",), width=120)
    row = next(x for x in text.splitlines() if "issuer_mismatch" in x)
    assert "(52.3.100.11:443)" in row and "certificate issued by" in row


def test_a_narrow_terminal_never_cuts_a_targets_address(sample):
    """At 80 columns a target "name (address:port)" keeps its address whole or leaves it out: a cut address
    ("examp…184.216.34:443)") reads as another real address."""
    import re

    text = render_text(sample, ("findings",), width=80)
    rows = [x for x in text.splitlines() if x.startswith(("high", "medium", "low", "info"))]
    assert len(rows) == 10
    for row in rows:
        target = re.split(r"\s{2,}", row)[2]
        assert ("(" in target) == (")" in target), row
        assert not re.search(r"\d\)$", target) or re.search(r"\(\d+\.\d+\.\d+\.\d+:\d+\)$", target), row
    assert any("example.org" == re.split(r"\s{2,}", r)[2] for r in rows)


def test_without_a_width_the_report_keeps_its_full_width(sample):
    text = render_text(sample, DEFAULT, compact=True)
    assert max(len(x) for x in text.splitlines()) > 250


def _header(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    return lines[next(i for i, x in enumerate(lines) if x.startswith(title)) + 1].split()


def test_chosen_columns_in_their_order(sample):
    text = render_text(sample, ("flows",), columns=["uid", "sni", "dst_ip"], flow_limit=None)
    assert _header(text, "FLOWS") == ["uid", "sni", "dst_ip"]
    # a chosen column is never dropped to fit, only shortened
    text = render_text(sample, ("flows",), columns=["uid", "sni", "dst_ip", "cert_issuer", "reason"], width=80)
    assert _header(text, "FLOWS") == ["uid", "sni", "dst_ip", "cert_issuer", "reason"]
    assert max(len(x) for x in text.splitlines()) <= 80


def test_cli_fits_columns_and_keeps_full_width_for_pipes(monkeypatch, capsys):
    argv = ["audit", SAMPLE, "--config", CONFIG, "--fail-on", "none", "-q"]
    assert main(argv) == 0
    assert max(len(x) for x in capsys.readouterr().out.splitlines()) > 250  # a pipe: today's full width
    monkeypatch.setenv("COLUMNS", "100")
    assert main(argv) == 0
    assert max(len(x) for x in capsys.readouterr().out.splitlines()) <= 100
    assert main([*argv, "--table", "flows", "--columns", "uid,sni"]) == 0
    out = capsys.readouterr().out
    assert "uid  " in out and "dst_ip" not in out


def test_cli_fits_a_terminal(monkeypatch, capsys):
    import shutil
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): os.terminal_size((90, 40)))
    assert main(["audit", SAMPLE, "--config", CONFIG, "--fail-on", "none", "-q"]) == 0
    assert max(len(x) for x in capsys.readouterr().out.splitlines()) <= 90


@pytest.mark.parametrize("argv, message", [
    (["--columns", "uid,nonsense"], "--columns: no shown table has nonsense"),
    (["--columns", "uid", "-f", "json"], "--columns applies to table and markdown output"),
])  # fmt: skip
def test_bad_columns_are_refused(argv, message, capsys):
    assert main(["audit", SAMPLE, *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_live_panel_fits_the_terminal(monkeypatch, capsys):
    """A panel line that wraps would make the redraw climb too few lines."""
    import shutil

    from pcapaudit.report.livepanel import LiveDisplay

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): os.terminal_size((72, 30)))
    d = LiveDisplay(True, "eth0")
    d.tty = True
    d.recent = ["x" * 150]
    d.status(123456, 10, 20, (0, 0), 5.0, force=True)
    lines = capsys.readouterr().err.replace("\x1b[F\x1b[2K", "").splitlines()
    assert len(lines) == 2 and max(len(x) for x in lines) <= 71


# -- 8. errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message, hint", [
    (["audit", SAMPLE, "--bogus"], "unrecognized arguments: --bogus", "pcapaudit audit"),
    (["audit", SAMPLE, "-f", "yaml"], "argument -f/--format: invalid choice: 'yaml'", "pcapaudit audit"),
    (["audit"], "the following arguments are required: CAPTURE", "pcapaudit audit"),
    (["audit", SAMPLE, "--fail-on", "bogus"], "--fail-on: unknown severity 'bogus'", "pcapaudit audit"),
    (["audit", SAMPLE, "-q", "-v"], "-q/--quiet and -v/--verbose", "pcapaudit audit"),
    (["live", "lo", "--duration", "1", "--quiet", "--verbose"], "-q/--quiet and -v/--verbose", "pcapaudit live"),
    (["rules", "list", "--bogus"], "unrecognized arguments: --bogus", "pcapaudit rules list"),
    (["rules"], "rules needs an action", "pcapaudit rules"),
    ([], "a command is needed", "pcapaudit"),
    (["frobnicate"], "invalid choice: 'frobnicate'", "pcapaudit"),
])  # fmt: skip
def test_usage_errors_are_one_line_and_a_hint(argv, message, hint, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("pcapaudit: error: ") and message in err[0]
    assert err[1] == f"see '{hint} --help'"


@pytest.mark.parametrize("config, message", [
    ("devices: [10.0.0.0/33]\n", "c.yaml: devices: '10.0.0.0/33' does not appear"),
    ("fail_on: bogus\n", "c.yaml: fail_on: unknown severity 'bogus'"),
    ("vendor: nosuch\n", "c.yaml: vendor: nosuch: no such ruleset"),
    ("tenants: {kandji.region: x}\n", "c.yaml: tenants: kandji.region=x: region must be one of eu, us"),
])  # fmt: skip
def test_a_bad_config_value_is_reported_under_the_files_name(tmp_path, config, message, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    assert main(["audit", SAMPLE, "--config", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pcapaudit: error: {tmp_path}/") and message in err, err
    assert "--" not in err


def test_a_flag_still_names_the_flag_when_a_config_is_given(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("vendor: apple\n")
    assert main(["audit", SAMPLE, "--config", str(cfg), "--vendor", "nosuch", "-q"]) == 2
    assert "error: --vendor nosuch: no such ruleset" in capsys.readouterr().err


# -- 9. wording ----------------------------------------------------------------------------------------
def _one_packet(tmp_path):
    from scapy.all import IP, UDP, Ether

    from tests.craft import write

    return write(tmp_path / "one.pcap", [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=9)])


def test_counts_are_plural_only_when_they_are_many(tmp_path, capsys):
    one = _one_packet(tmp_path)
    assert main(["audit", str(one), "--fail-on", "none", "--table", "flows"]) == 0
    out, err = capsys.readouterr()
    assert "  1 packet, 1 flow, 0 DNS transactions, 0 weird;" in out
    assert "FLOWS (1)" in out
    assert err.strip().startswith("pcapaudit: 1 finding") or err.strip().startswith("pcapaudit: 0 findings")
    assert " in 1 flow from 1 packet; 0 weird" in err


def test_the_summary_line_separates_thousands_throughout():
    from types import SimpleNamespace

    from pcapaudit.cli import _summary_line

    stats = SimpleNamespace(packets=1234567, weird=1500, extra=(("interface_copies", 2000),))
    fake = SimpleNamespace(finding_records=[], worst_severity=lambda: None, flow_count=45678, stats=stats)
    line = _summary_line(fake)
    assert line == ("pcapaudit: 0 findings in 45,678 flows from 1,234,567 packets; 1,500 weird; "
                    "2,000 packets seen again on another interface counted once")  # fmt: skip


def test_an_empty_capture_says_so_instead_of_dashes(tmp_path):
    from tests.craft import write
    from pcapaudit.report.render import header_lines

    empty = pcapaudit.audit(str(write(tmp_path / "empty.pcap", [])))
    text = "\n".join(header_lines(empty))
    assert "- to -" not in text and "0 packets, 0 flows" in text and "no packets" in text
    assert "(detected from traffic)" not in text and "none detected" not in text
    assert "rulesets: no vendor seen in the traffic" in text
    given = pcapaudit.audit(str(write(tmp_path / "empty.pcap", [])), vendors=["apple"])
    assert "rulesets: apple\n" in "\n".join(header_lines(given)) + "\n"


def test_verbose_names_the_format_with_two_processes(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pcapaudit"):
        assert main(["audit", SAMPLE, "-j", "2", "-v", "--fail-on", "none", "-f", "json", "-o", os.devnull]) == 0
    assert "with 2 processes" in caplog.text
    assert f"{SAMPLE}: pcap, 212 packets" in caplog.text


def test_crosscheck_names_its_columns_for_what_they_hold(monkeypatch):
    import pcapaudit.crosscheck as cc

    res = pcapaudit.audit(SAMPLE, **LAB)
    key = cc._key("tcp", "192.168.50.10", 40000, "17.253.21.201", 443)
    monkeypatch.setattr(cc, "tshark_names", lambda path: ({key: {"other.example"}}, {"only-tshark.example"}))
    diff, summary = cc.crosscheck(SAMPLE, res)
    assert list(diff.columns) == ["name", "transport", "endpoint_a", "endpoint_b", "pcapaudit", "tshark"]
    sni = diff[diff["name"] == "sni"]
    dns = diff[diff["name"] == "dns query"]
    assert "other.example" in set(sni["tshark"]) and "only-tshark.example" in set(dns["tshark"])
    assert dns["transport"].isna().all()


# -- 10. the same report for any --jobs ---------------------------------------------------------------
def test_uids_inside_a_row_are_sorted_so_any_jobs_gives_the_same_row(sample):
    from dataclasses import replace

    from pcapaudit.report import frames

    found = [(f, tuple(reversed(uids))) for f, uids in sample.finding_records]
    rows = [replace(r, uids=tuple(reversed(r.uids))) for r in sample.coverage_records]
    assert any(len(u) > 1 for _, u in found) or any(len(r.uids) > 1 for r in rows)
    a, b = frames.findings_frame(sample.finding_records), frames.findings_frame(found)
    assert a["uids"].equals(b["uids"])
    assert all(x.split() == sorted(x.split()) for x in a["uids"].dropna())
    a, b = frames.coverage_frame(sample.coverage_records), frames.coverage_frame(rows)
    assert a["uids"].equals(b["uids"])
    assert all(x.split() == sorted(x.split()) for x in a["uids"].dropna())


# -- 11. summary() times -----------------------------------------------------------------------------
def test_the_api_summary_gives_iso_times_as_the_json_summary_does(sample):
    import json

    from pcapaudit.report.render import to_json

    s = sample.summary()
    assert s["first_ts"] == "2026-11-26T23:07:59.579" + s["first_ts"][23:] and s["first_ts"].endswith("Z")
    assert isinstance(s["last_ts"], str) and s["last_ts"] > s["first_ts"]
    doc = json.loads(to_json(sample, ("findings",)))
    assert doc["summary"]["first_ts"] == s["first_ts"] and doc["summary"]["last_ts"] == s["last_ts"]
    assert doc["summary"] == json.loads(json.dumps(s))


def test_an_empty_capture_has_no_times(tmp_path):
    from tests.craft import write

    s = pcapaudit.audit(str(write(tmp_path / "empty.pcap", []))).summary()
    assert s["first_ts"] is None and s["last_ts"] is None


# -- 4. dates in flow times ----------------------------------------------------------------------------
def test_flow_times_show_the_date_when_the_capture_spans_days(tmp_path, sample):
    from scapy.all import IP, UDP, Ether

    from tests.craft import at, write

    t0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    pkts = [at(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000 + i, dport=9), t0 + i * 86400 * 1.5)
            for i in range(2)]  # fmt: skip
    res = pcapaudit.audit(str(write(tmp_path / "days.pcap", pkts)))
    text = render_text(res, ("flows",))
    assert "2023-11-14 22:13:20.000" in text and "2023-11-16 10:13:20.000" in text
    html = pcapaudit.report.render.render_html(res, ("flows",))
    assert "2023-11-16 10:13:20.000" in html
    one_day = render_text(sample, ("flows",))
    assert "23:07:59.579" in one_day and "2026-11-26 23:07:59" not in one_day.split("FLOWS")[1]


# -- 5. the HTML report --------------------------------------------------------------------------------
def _html_rows(page: str, table: str) -> list[str]:
    import re

    part = page.split(f"<h2>{table} (")[1].split("</table>")[0]
    return re.findall(r"<tr(?: class='([^']*)')?><td>", part)


def test_html_findings_are_worst_first_without_the_target_in_each_message(sample):
    from pcapaudit.report.render import render_html

    page = render_html(sample, ("findings", "coverage"))
    assert _html_rows(page, "findings") == ["high"] * 4 + ["medium", "low"] + ["info"] * 4
    assert "<td>albert.apple.com (17.253.21.201:443)</td><td>TLS 1.3 hides the certificate" in page
    assert "(17.253.21.201:443): TLS 1.3" not in page
    # long tokens wrap, the table keeps to the page, and printing has its own rules
    assert "overflow-wrap:anywhere" in page and "@media print" in page and "@page" in page


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows (RGB or RGBA bytes) of an 8-bit PNG (what chromium writes), unfiltered."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = head[:4]
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, [bytes(r) for r in rows] if bpp == 3 else [bytes(x for i in range(0, stride, 4) for x in r[i:i + 3]) for r in rows]


@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="needs chromium")
def test_html_report_fits_1400_pixels_in_chromium(sample, tmp_path):
    """Rendered headless at 1400 px, the page keeps its right margin white: no table runs past it."""
    import subprocess

    from pcapaudit.report.render import render_html

    page = tmp_path / "r.html"
    page.write_text(render_html(sample, ("findings", "coverage", "flows")), encoding="utf-8")
    png = tmp_path / "r.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000", f"--screenshot={png}",
                    page.as_uri()], capture_output=True, timeout=120, check=False)  # fmt: skip
    if not png.exists():
        pytest.skip("chromium could not render here")
    w, h, rows = _png_pixels(png.read_bytes())
    assert w == 1400
    margin = [r[(w - 16) * 3:] for r in rows]  # the last 16 px of every row
    assert all(set(r) <= {255} for r in margin), "a table runs into the right margin"


# -- 6. interchange: Community ID and JSON Lines -------------------------------------------------------
# the spec's published vectors (corelight/community-id-spec, baseline/baseline_deflt.json, seed 0; ICMP
# rows carry type and counter-type/code in the port fields, already mapped)
COMMUNITY_ID_VECTORS = [
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136, "1:zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 135, "1:zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4, "1:hLZd0XGWojozrvxqE0dWB1iM6R0="),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (46, "10.1.12.1", "10.1.12.2", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
    (46, "10.1.12.2", "10.1.12.1", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
]  # fmt: skip


@pytest.mark.parametrize("proto, saddr, daddr, sport, dport, expected", COMMUNITY_ID_VECTORS)
def test_community_id_matches_the_specs_vectors(proto, saddr, daddr, sport, dport, expected):
    from pcapaudit.report.community_id import community_id

    assert community_id(proto, saddr, daddr, sport, dport) == expected


def test_the_flows_table_has_a_community_id(sample):
    from pcapaudit.report.community_id import flow_community_id

    fl = sample.flows
    assert "community_id" in fl.columns
    tcp = fl[fl["transport"].astype("string").isin(["tcp", "udp"])]
    assert len(tcp) and tcp["community_id"].notna().all()
    for r in tcp.itertuples():
        assert r.community_id == flow_community_id(str(r.transport), r.src_ip, r.dst_ip, r.src_port, r.dst_port)
    assert render_text(sample, ("flows",), columns=["uid", "community_id"]).count("1:") == len(tcp)


def test_json_lines_one_object_per_line_tagged_with_its_table(tmp_path, capsys):
    import json

    out = tmp_path / "r.jsonl"
    assert main(["audit", SAMPLE, "--config", CONFIG, "-f", "jsonl", "-o", str(out), "--fail-on", "none", "-q"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    assert rows[0]["table"] == "summary" and rows[0]["schema_version"] == 1 and rows[0]["flows"] == 24
    counts = {}
    for r in rows:
        counts[r["table"]] = counts.get(r["table"], 0) + 1
    assert counts == {"summary": 1, "findings": 10, "coverage": 70, "flows": 24, "dns": 12}
    flow = next(r for r in rows if r["table"] == "flows")
    assert flow["uid"] and flow["ts"].endswith("Z") and (flow["community_id"] or "1:").startswith("1:")
    assert list(flow)[0] == "table"
    # the same rows as the JSON report
    capsys.readouterr()
    assert main(["audit", SAMPLE, "--config", CONFIG, "-f", "json", "--fail-on", "none", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [{k: v for k, v in r.items() if k != "table"} for r in rows if r["table"] == "findings"] == doc["findings"]
    assert main(["audit", SAMPLE, "-f", "jsonl", "--table", "findings", "--fail-on", "none", "-q"]) == 0
    assert {json.loads(x)["table"] for x in capsys.readouterr().out.splitlines()} == {"summary", "findings"}


# -- 7. compressed captures other than gzip --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["xz", "bz2", "zstd"])
def test_other_compressions_are_read(tmp_path, kind, capsys):
    import bz2
    import lzma
    import shutil
    import subprocess

    raw = open(SAMPLE, "rb").read()
    path = tmp_path / f"c.pcap.{kind}"
    if kind == "zstd":
        if shutil.which("zstd") is None:
            pytest.skip("no zstd command to compress with")
        path.write_bytes(subprocess.run(["zstd", "-c", SAMPLE], capture_output=True, check=True).stdout)
    else:
        path.write_bytes({"xz": lzma.compress, "bz2": bz2.compress}[kind](raw))
    assert main(["audit", str(path), "-f", "json", "--fail-on", "none", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert main(["audit", SAMPLE, "-f", "json", "--fail-on", "none", "-q"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert out["findings"] == plain["findings"] and len(out["flows"]) == len(plain["flows"]) == 24


def test_unread_compressions_are_named(tmp_path, capsys):
    path = tmp_path / "c.pcap.lz4"
    path.write_bytes(bytes.fromhex("04224d18") + b"\0" * 64)
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}" in err and f"lz4-compressed: decompress it first: lz4 -d {path}" in err


def test_rules_list_fits_the_terminal_too(monkeypatch, capsys):
    assert main(["rules", "list"]) == 0
    assert max(len(x) for x in capsys.readouterr().out.splitlines()) > 120
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert max(len(x) for x in out.splitlines()) <= 100 and "apple.apns" in out
