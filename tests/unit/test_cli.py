"""CLI: exit codes, formats, one-line errors, hostile strings in every output format."""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import pandas as pd
import pytest

from pcapaudit.cli import main
from tests.craft import at, client_hello, server_hello, tcp_session, write
from scapy.all import IP, TCP, Ether

C, S = "192.168.50.10", "17.57.146.20"


@pytest.fixture(autouse=True)
def _full_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # reports to a pipe keep their full width


@pytest.fixture()
def blocked_capture(tmp_path):
    pkts = [at(Ether() / IP(src=C, dst=S) / TCP(sport=40000, dport=5223, flags="S"), 1.0 + i) for i in range(3)]
    pkts += [at(p, 10 + i * 0.01) for i, p in enumerate(tcp_session(C, S, 40001, 443, [client_hello("1-courier.push.apple.com")], [server_hello(0x0304)], t0=10))]
    return write(tmp_path / "b.pcap", pkts)


@pytest.fixture()
def hostile_capture(tmp_path):
    evil = "=cmd|' /C calc'!A0<script>alert(1)</script>\x1b[2J.example.com"
    return write(tmp_path / "h.pcap", tcp_session(C, "93.184.216.34", 40002, 443, [client_hello(evil.encode())], []))


def test_exit_codes_and_summary(blocked_capture, capsys):
    assert main(["audit", str(blocked_capture)]) == 1
    out, err = capsys.readouterr()
    assert "syn_no_reply" in out and "1-courier.push.apple.com" in out
    assert err.strip().startswith("pcapaudit: 2 findings (1 blocked, 1 tls_intercepted; worst high)")
    assert main(["audit", str(blocked_capture), "--fail-on", "none", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_the_sample_captures_summary_counts_info_notes_apart(capsys):
    """TLS 1.3's "evidence unavailable" rows are info notes, not intercepted connections: the summary
    line counts them apart, and the terminal table lists the worst findings first."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "captures")
    argv = ["audit", os.path.join(root, "enrollment-troubleshooting.pcap"), "--config", os.path.join(root, "lab.yaml")]
    assert main([*argv, "--table", "findings"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("pcapaudit: 10 findings (2 blocked, 2 tls_intercepted, 2 unexpected; 4 info notes; worst high)")
    rows = [line.split()[0] for line in out.splitlines()[7:] if line.strip()]
    assert rows == ["high"] * 4 + ["medium", "low"] + ["info"] * 4
    # the message does not repeat the target; a long target keeps its domain and address
    assert "4f3c2a10-…f0c8d9e01.devices.us-1.kandji.io (52.3.100.11:443)  client refused the server certificate" in out
    assert "certificate issued by Corporate Inspection CA" in out


@pytest.mark.parametrize("region", [None, "us", "eu"])
def test_the_checklist_leaves_out_the_other_regions_hosts_unless_tried(tmp_path, region):
    """The sample's Kandji tenant talks to its us-1 device domain: the region is inferred as US (or set),
    and the EU hosts are no requirement of it. Told the tenant is EU, the US hosts it tried stay (the
    region_mismatch finding says why) and the untried US ones go."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "captures")
    out = tmp_path / "r.json"
    argv = ["audit", os.path.join(root, "enrollment-troubleshooting.pcap"), "--config", os.path.join(root, "lab.yaml"),
            "-f", "json", "-o", str(out), "--table", "coverage", "--table", "findings", "-q", "--fail-on", "none"]  # fmt: skip
    assert main(argv + (["--tenant", f"kandji.region={region}"] if region else [])) == 0
    doc = json.loads(out.read_text())
    rows = {r["rule_id"]: r for r in doc["coverage"] if r["vendor"] == "kandji"}
    eu = [r for r in rows if r.startswith("kandji.eu.")]
    us = [r for r in rows if r.startswith("kandji.us.")]
    if region == "eu":
        assert len(eu) >= 10 and us == ["kandji.us.device-domain-devices"]
        assert rows[us[0]]["status"] == "intercepted"
        assert "region_mismatch" in {f["code"] for f in doc["findings"]}
    else:
        assert eu == [] and len(us) >= 10
    assert "kandji.datadog" in rows  # rules of no region stay


def test_json_report(blocked_capture, tmp_path):
    out = tmp_path / "r.json"
    assert main(["audit", str(blocked_capture), "-f", "json", "-o", str(out), "--fail-on", "none"]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and {"flows", "findings", "coverage", "dns", "weirds"} <= set(doc)
    flow = doc["flows"][0]
    for key in ("uid", "ts", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "state", "sni", "dns_name",
                "http_host", "connect_host", "vendor", "rule_id", "matched_by", "verdict"):
        assert key in flow
    f = [x for x in doc["findings"] if x["code"] == "syn_no_reply"][0]
    assert f["kind"] == "blocked" and f["rule_id"] == "apple.apns" and isinstance(f["evidence"], dict)
    assert f["uid"] in {x["uid"] for x in doc["flows"]}


def test_csv_and_parquet_tables_keep_types(blocked_capture, tmp_path):
    assert main(["audit", str(blocked_capture), "-f", "csv", "-o", str(tmp_path / "r.csv"), "--fail-on", "none"]) == 0
    for t in ("flows", "findings", "coverage", "dns", "weirds"):
        assert (tmp_path / f"r.{t}.csv").exists()
    assert main(["audit", str(blocked_capture), "-f", "parquet", "-o", str(tmp_path / "r.parquet"), "--fail-on", "none"]) == 0
    df = pd.read_parquet(tmp_path / "r.flows.parquet")
    assert str(df["dst_port"].dtype) == "UInt16" and str(df["ts"].dtype).startswith("datetime64")


def test_single_table_csv_to_stdout(blocked_capture, capsys):
    assert main(["audit", str(blocked_capture), "-f", "csv", "--table", "findings", "--fail-on", "none", "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and rows[0]["kind"]


def test_hostile_strings_are_neutralised(hostile_capture, tmp_path, capsys):
    assert main(["audit", str(hostile_capture), "--fail-on", "none", "-q", "--table", "flows"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out
    main(["audit", str(hostile_capture), "-f", "csv", "--table", "flows", "-o", str(tmp_path / "f.csv"), "-q"])
    sni = next(csv.DictReader((tmp_path / "f.csv").open()))["sni"]
    assert sni.startswith("'=")
    main(["audit", str(hostile_capture), "-f", "html", "-o", str(tmp_path / "r.html"), "-q"])
    html = (tmp_path / "r.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit", "/nonexistent.pcap"], "/nonexistent.pcap: no such file"),
        (["audit", "X", "--fail-on", "severe"], "--fail-on: unknown severity 'severe' (info, low, medium, high, none)"),
        (["audit", "X", "--limit", "-1"], "--limit: expected a whole number, 0 or more"),
        (["live", "lo", "--snaplen", "10"], "--snaplen: expected 64 to 262144 bytes"),
        (["audit", "X", "--vendor", "nokia"], "--vendor nokia: no such ruleset"),
        (["audit", "X", "--tenant", "kandji.uuid"], "expected VENDOR.NAME=VALUE"),
        (["audit", "X", "-f", "parquet"], "--format parquet needs -o PATH"),
        (["rules", "show", "apple.nothing"], "no such rule"),
        (["audit", "X", "--rules", "/nonexistent.yaml"], "/nonexistent.yaml: no such file"),
        (["frobnicate"], "invalid choice"),
        (["audit", "X", "--max-flows", "lots"], "--max-flows: expected a whole number of flows"),
        (["audit", "X", "--max-flows", "10"], "--max-flows: 10 is too few"),
        (["audit", "X", "-f", "json", "-o", "/nonexistent/dir/r.json"],
         "/nonexistent/dir/r.json: cannot write the report there (no such directory /nonexistent/dir)"),
        (["audit", "X", "-f", "csv", "-o", "/nonexistent/r"], "/nonexistent/r.findings.csv: cannot write the report there"),
        (["audit", "X", "-f", "json", "-o", "/"], "/: cannot write the report there (is a directory)"),
        (["live", "lo", "--duration", "1", "-f", "json", "-o", "/nonexistent/r.json"], "cannot write the report there"),
    ],
)
def test_errors_are_one_line_exit_2(blocked_capture, argv, message, capsys):
    argv = [str(blocked_capture) if a == "X" else a for a in argv]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    err = next(x for x in lines if x.startswith("pcapaudit: error: "))  # a usage error adds: see '... --help'
    assert message in err and "Traceback" not in err and len(lines) <= 2 and lines[0] == err


def test_bad_capture_is_one_line(tmp_path, capsys):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a capture")
    assert main(["audit", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad magic" in err and str(p) in err


def test_truncated_capture_still_reports(blocked_capture, tmp_path, capsys):
    data = blocked_capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-20])
    assert main(["audit", str(cut), "-f", "json", "--fail-on", "none"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["flows"] and "truncated at byte offset" in err


def test_rules_subcommands(capsys, tmp_path):
    assert main(["rules", "list", "--vendor", "kandji"]) == 0
    out = capsys.readouterr().out
    assert "kandji.us" in out and "apple.apns" not in out
    assert main(["rules", "show", "apple.apns"]) == 0
    out = capsys.readouterr().out
    assert "17.0.0.0/8" in out and "003" in out
    assert main(["rules", "validate"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nvendor: bad\n")
    assert main(["rules", "validate", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_config_file(blocked_capture, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("vendor: [apple]\nfail_on: none\ntenants: {kandji.uuid: abc}\n")
    assert main(["audit", str(blocked_capture), "--config", str(cfg), "-q"]) == 0
    cfg.write_text("colour: blue\n")
    assert main(["audit", str(blocked_capture), "--config", str(cfg)]) == 2
    assert "unknown config key 'colour'" in capsys.readouterr().err


def test_stdin(blocked_capture, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(blocked_capture.read_bytes())))
    assert main(["audit", "-", "-f", "json", "--fail-on", "none", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["sources"] == ["<stdin>"]


def test_markdown_escapes_table_syntax(hostile_capture, tmp_path):
    main(["audit", str(hostile_capture), "-f", "markdown", "--table", "flows", "-o", str(tmp_path / "r.md"), "-q"])
    md = (tmp_path / "r.md").read_text()
    assert "<script>" not in md and "\x1b" not in md
    row = [line for line in md.splitlines() if "93.184.216.34" in line][0]
    assert row.count(" | ") == row.replace("\\|", "").count(" | ")  # every literal pipe is escaped


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["-f", "json", "-o", "MISSING/r.json"], None, "no such directory"),
        (["-f", "parquet"], None, "--format parquet needs -o PATH"),
        (["-f", "csv"], None, "--format csv with several tables needs -o PREFIX"),
        ([], "xml", "PCAPAUDIT_FORMAT=xml: not a report format"),
    ],
)
def test_a_report_that_cannot_be_written_is_refused_before_reading_the_capture(
    blocked_capture, tmp_path, capsys, monkeypatch, argv, env, message
):
    from pcapaudit.audit import Auditor

    monkeypatch.setattr(Auditor, "run_file", lambda *a, **k: pytest.fail("the capture was read"))
    if env:
        monkeypatch.setenv("PCAPAUDIT_FORMAT", env)
    argv = [a.replace("MISSING", str(tmp_path / "missing")) for a in argv]
    assert main(["audit", str(blocked_capture), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "csv"], "--format csv with several tables needs -o PREFIX"),
        (["--write", "/nonexistent/x.pcapng"], "/nonexistent/x.pcapng: cannot write the packets there"),
    ],
)
def test_live_refuses_what_it_could_not_write_before_opening_the_interface(capsys, argv, message):
    """A live capture that could only end in an error is refused before it starts (the interface does
    not even exist: opening it would be the first error)."""
    assert main(["live", "nosuchif0", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and message in err[0] and err[1] == "see 'pcapaudit live --help'"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", [["-f", "json"], ["-f", "parquet", "--table", "flows"], ["-f", "table"]])
def test_a_report_that_fails_while_written_is_one_line(blocked_capture, capsys, fmt):
    assert main(["audit", str(blocked_capture), "-o", "/dev/full", *fmt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcapaudit: error: /dev/full: cannot write the report: ")
    assert "No space left on device" in err[0] or "errno 28" in err[0]


# found by fuzzing ruleset and config files (stop 10): each was a traceback, a hang or a two-line error
_BOMB = "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))


@pytest.mark.parametrize(
    "config, message",
    [
        ("tenants: [a]\n", "tenants: expected a mapping of VENDOR.NAME: VALUE"),
        ("vendor: 5\n", "vendor: expected a string or a list of strings"),
        ("vendor: [5]\n", "vendor: expected a string or a list of strings"),
        ("rules: null\n", "rules: expected a string or a list of strings"),
        ("rules: [[a]]\n", "rules: expected a string or a list of strings"),
        ("trust_issuers: [5]\n", "trust_issuers: expected a string or a list of strings"),
        ("devices: true\n", "devices: expected a string or a list of strings"),
        ("devices: [5]\n", "devices: expected a string or a list of strings"),
        ("fail_on: [high]\n", "fail_on: expected one of"),
        ("~: a\nzz: b\n", "unknown config key None"),
        ("max_flows: lots\n", "max_flows: expected a whole number of flows"),
        ("max_flows: true\n", "max_flows: expected a whole number of flows"),
        ("max_flows: 10\n", "max_flows: 10 is too few"),
        ("devices: [10.0.0.0/33]\n", "c.yaml: devices: "),  # the file's value, not the flag's
        ("tenants: {kandji.region: \"x\\ny\"}\n", "region=x\\ny: region must be one of eu, us"),
        ("[" * 3000 + "]" * 3000 + "\n", "invalid YAML"),
        ("devices: [10.0.0.0/8]\ntrust_issuers: [unclosed\n", "c.yaml: line 3: invalid YAML: did not find expected ',' or ']'"),
        ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + _BOMB + "devices: *a8\n", "config too large"),
    ],
)
def test_bad_config_files_are_one_line_errors(blocked_capture, tmp_path, capsys, config, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    assert main(["audit", str(blocked_capture), "--config", str(cfg), "--fail-on", "none", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pcapaudit: error: ") and message in err, err


def test_config_strings_stand_for_one_item_lists_and_devices_are_normalised(blocked_capture, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("devices: 192.168.50.1/24\ntrust_issuers: Example Lab CA\n")
    assert main(["audit", str(blocked_capture), "--config", str(cfg), "--device", "10.0.0.1/8", "-f", "json", "-q"]) == 1
    assert "syn_no_reply" in capsys.readouterr().out  # the client 192.168.50.10 is a device: its flows are audited


def test_rules_list_json_is_plain_json(capsys):
    assert main(["rules", "list", "-f", "json"]) == 0
    out = capsys.readouterr().out
    assert "\\/" not in out and "\\u" not in out
    rows = json.loads(out)
    assert any("/" in r["service"] for r in rows) and "apple.apns" in {r["id"] for r in rows}
    assert rows[0].keys() == {"id", "vendor", "required", "ports", "targets", "service", "flags"}


def test_bad_asn_file_and_unreadable_rules_path_are_one_line(tmp_path, capsys):
    d = tmp_path / "rs"
    d.mkdir()
    for text, message in (("asns: [1]", "asn.yaml: asns: must map AS numbers to mappings"),
                          ("asns: {64500: {prefixes: 1.5}}", "asn.yaml: asns.64500.prefixes: must be a list of networks")):
        (d / "asn.yaml").write_text(f"schema_version: 1\n{text}\n")
        assert main(["rules", "list", "--rules", str(d)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["rules", "validate", str(tmp_path / ("y" * 300 + ".yaml"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read: File name too long" in err


def test_max_flows_caps_the_table_and_says_so(tmp_path, capsys):
    """A flood of new flows inside their timeout: --max-flows ends the ones idle the longest early; the
    summary counts them and a weird row says why. 0 lifts the cap."""
    from scapy.all import IP, UDP, Ether

    from tests.craft import at, write

    flood = write(tmp_path / "flood.pcap", [at(Ether() / IP(src="10.0.0.5", dst=f"10.9.{i // 250}.{i % 250 + 1}")
                                              / UDP(sport=3000 + i, dport=7777), i * 0.001) for i in range(2500)])  # fmt: skip
    docs = {}
    for cap in ("1000", "0"):
        out = tmp_path / f"r{cap}.json"
        assert main(["audit", str(flood), "--max-flows", cap, "-f", "json", "-o", str(out), "--fail-on", "none",
                     "-j", "1"]) == 0  # fmt: skip
        docs[cap] = json.loads(out.read_text())
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert ("flows ended early to stay under --max-flows" in line) == (cap != "0"), line
    cfg = tmp_path / "cap.yaml"
    cfg.write_text("max_flows: 1000\n")
    out = tmp_path / "rcfg.json"
    assert main(["audit", str(flood), "--config", str(cfg), "-f", "json", "-o", str(out), "--fail-on", "none", "-q",
                 "-j", "1"]) == 0  # fmt: skip
    from_config = json.loads(out.read_text())
    assert from_config["summary"]["flows_ended_early"] == docs["1000"]["summary"]["flows_ended_early"]
    assert main(["audit", str(flood), "--config", str(cfg), "--max-flows", "0", "-f", "json", "-o", str(out),
                 "--fail-on", "none", "-q", "-j", "1"]) == 0  # fmt: skip
    assert "flows_ended_early" not in json.loads(out.read_text())["summary"]  # the command line wins
    capped, free = docs["1000"], docs["0"]
    assert capped["summary"]["flows_ended_early"] > 1000 and "flows_ended_early" not in free["summary"]
    assert [w["name"] for w in capped["weirds"]].count("flow_table_full") >= 1
    assert not [w for w in free["weirds"] if w["name"] == "flow_table_full"]
    assert sorted(f["uid"] for f in capped["flows"]) == sorted(f["uid"] for f in free["flows"])
    assert len(free["flows"]) == 2500


def test_json_rows_write_timestamps_and_categories_as_before():
    """JSON rows come from Arrow columns converted in bulk (categories decoded, timestamps written by Arrow);
    the text must be what Python's datetime wrote, to the microsecond, before and after 1970."""
    from datetime import datetime, timezone

    import pyarrow as pa

    from pcapaudit.report.render import iter_arrow_records
    from pcapaudit.store import ColumnStore

    secs = [1_700_000_000.123456, 0.5, -0.25, -86_400.000001, 1_700_000_000.0, 4_102_444_800.999999, None]
    store = ColumnStore({"ts": "datetime64[ns, UTC]", "kind": "category", "uid": "string"}, chunk=3)
    for i, s in enumerate(secs):
        store.append((s, ("tls", None, "dns")[i % 3], f"C{i}"))
    rows = list(iter_arrow_records(pa.Table.from_batches(list(store.sorted_batches())).to_batches(), "dns"))
    want = [None if s is None else datetime.fromtimestamp(s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for s in secs]  # fmt: skip
    assert [r["ts"] for r in rows] == want
    assert [r["kind"] for r in rows] == ["tls", None, "dns"] * 2 + ["tls"] and list(rows[0]) == ["kind", "ts", "uid"]


def test_verbose_says_what_was_read_and_how_fast(blocked_capture, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pcapaudit"):
        assert main(["audit", str(blocked_capture), "-v", "-f", "json", "-o", str(tmp_path / "r.json")]) == 1
    text = caplog.text
    assert "with 1 process" in text and f"{blocked_capture}: pcap, 11 packets" in text
    assert "audited 11 packets in" in text and "packets/s" in text and "apple.yaml" in text


SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "captures", "enrollment-troubleshooting.pcap")
LAB_TENANTS = {"kandji.uuid": "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01", "jamf-pro.instance": "acme"}


def test_the_version_is_the_installed_packages():
    from importlib.metadata import version

    import pcapaudit

    assert pcapaudit.__version__ == version("pcapaudit")  # it said 0.1.0 beside a 0.2.0 package


def test_api_takes_a_string_for_a_one_item_list():
    """trust_issuers="X" is the list ["X"], not its characters (which made false issuer_mismatch rows)."""
    import pcapaudit

    one = pcapaudit.audit(SAMPLE, trust_issuers="pcapaudit Lab Trust Services", tenants=LAB_TENANTS)
    listed = pcapaudit.audit(SAMPLE, trust_issuers=["pcapaudit Lab Trust Services"], tenants=LAB_TENANTS)
    assert sorted(f.identifier for f, _ in one.finding_records) == sorted(f.identifier for f, _ in listed.finding_records)
    assert len(one.finding_records) == 10
    r = pcapaudit.audit(SAMPLE, vendors="apple", devices="192.168.50.0/24", rules=str(_builtin()))
    assert r.vendors == ("apple",)


def _builtin():
    from pcapaudit.rules.loader import builtin_dir

    return builtin_dir()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": ["not-a-cidr"]}, "devices: 'not-a-cidr' does not appear to be an IPv4 or IPv6 network"),
        ({"engine": "turbo"}, "engine 'turbo': core, fast or simple"),
        ({"vendors": [1]}, "vendors: expected strings, not int"),
        ({"captures": b"\xd4\xc3\xb2\xa1"}, "captures: expected file paths, not bytes"),
        ({"captures": io.BytesIO(b"x")}, "captures: expected file paths, not an open file"),
        ({"captures": []}, "captures: no capture given"),
        # the API's own words, not the CLI's --vendor/--tenant, and a UsageError for both
        ({"vendors": "nosuch"}, "vendors: nosuch: no such ruleset"),
        ({"tenants": {"kandji.uid": "x"}}, "tenants: kandji.uid: kandji has no placeholder 'uid'"),
    ],
)
def test_api_refuses_bad_arguments_before_reading_with_one_line(kwargs, message):
    import pcapaudit

    captures = kwargs.pop("captures", SAMPLE)
    with pytest.raises(pcapaudit.UsageError) as e:
        pcapaudit.audit(captures, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_finding_times_equal_their_flows_and_empty_categories_stay_strings(tmp_path):
    """Every table's times are microseconds, rounded alike: a finding's time is its flow's start. An empty
    weirds table keeps its category column a string dictionary in Parquet (not type null)."""
    import pyarrow.parquet as pq

    import pcapaudit

    r = pcapaudit.audit(SAMPLE, trust_issuers="pcapaudit Lab Trust Services", tenants=LAB_TENANTS)
    m = r.findings.merge(r.flows[["uid", "ts"]], on="uid", suffixes=("", "_flow"))
    assert len(m) == 10 and (m["ts"] == m["ts_flow"]).all()
    assert {str(t["ts"].dtype) for t in (r.flows, r.findings, r.dns, r.weirds)} == {"datetime64[us, UTC]"}
    assert main(["audit", SAMPLE, "-f", "parquet", "-o", str(tmp_path / "r"), "-q", "--fail-on", "none"]) == 0
    name_type = pq.read_schema(tmp_path / "r.weirds.parquet").field("name").type
    assert str(name_type.value_type) in ("string", "large_string"), name_type


def test_live_list_names_the_interfaces_as_tcpdump_does(capsys):
    """`pcapaudit live --list` is `tcpdump -D`: the same numbered lines (libpcap's own list)."""
    import shutil
    import subprocess

    from pcapaudit.capture import libpcap
    from pcapaudit.errors import CaptureError

    try:
        libpcap.load()
    except CaptureError:
        pytest.skip("libpcap is not installed")
    assert main(["live", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and lines[0].startswith("1.") and any(x.split(".", 1)[1].startswith("lo") for x in lines)
    if shutil.which("tcpdump"):
        want = subprocess.run(["tcpdump", "-D"], capture_output=True, text=True).stdout.splitlines()
        assert [x.split(" ")[0] for x in lines] == [x.split(" ")[0] for x in want]


def test_live_without_an_interface_is_one_usage_line(capsys):
    assert main(["live"]) == 2
    err = capsys.readouterr().err
    assert "an interface is needed" in err and "--list" in err


@pytest.mark.parametrize("extra", [[], ["-q", "-f", "json"]], ids=["table", "json"])
def test_a_reader_that_stops_reading_does_not_change_the_exit_code(extra):
    """``pcapaudit audit ... | head``: the reader closing the pipe early must not turn the findings' exit
    code (1 here: HIGH findings) into 0, or a CI gate with pipefail passes a failing audit."""
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..", "..", "captures")
    cmd = [sys.executable, "-m", "pcapaudit", "audit", os.path.join(root, "enrollment-troubleshooting.pcap"),
           "--config", os.path.join(root, "lab.yaml"), *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the report is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_live_takes_the_numbers_its_list_prints():
    """`pcapaudit live 2` is the second interface of `--list`, as `tcpdump -i 2` is of `tcpdump -D`; a
    number past the list says how many there are; the "available" list names what --list names ("any")."""
    from pcapaudit.capture import libpcap
    from pcapaudit.errors import CaptureError

    try:
        listed = [name for name, _d, _f in libpcap.list_interfaces()]
    except CaptureError:
        pytest.skip("libpcap is not installed")
    assert libpcap.resolve_interface("1") == listed[0]
    assert libpcap.resolve_interface(listed[-1]) == listed[-1]
    with pytest.raises(CaptureError, match=f"no interface number {len(listed) + 1} .*1 to {len(listed)}"):
        libpcap.resolve_interface(str(len(listed) + 1))
    assert "any" in libpcap.available_interfaces() or "any" not in listed
