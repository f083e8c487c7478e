"""Tests of the lab itself and of the recorded scenario files.

* test_scenario_files_*: no privileges needed; check every tests/scenarios/<name>/ directory and the demo
  capture: files present, small, truth.yaml well-formed, and every connection/DNS exchange it lists is
  really in the capture (read with the lab's own pcap reader, no tshark).
* test_lab_smoke: builds a real lab (root, iproute2, nftables, tcpdump, dnsmasq needed; skipped otherwise)
  and checks a successful TLS flow, a firewall drop, an NXDOMAIN and the teardown.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest
import yaml

from tests.lab import pcapio

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCENARIOS = sorted(d for d in glob.glob(os.path.join(REPO, "tests", "scenarios", "*"))
                   if os.path.isdir(d) and not os.path.basename(d).startswith(("_", ".")))
OUTCOMES = {"ok", "cleartext_ok", "syn_dropped", "rst_on_syn", "icmp_unreachable", "rst_after_clienthello",
            "silence_after_clienthello", "client_alert_unknown_ca", "server_fatal_alert", "proxy_403",
            "proxy_407", "udp_no_reply"}
DNS_OUTCOMES = {"ok", "dns_nxdomain", "dns_refused", "dns_sinkhole"}


def _check_truth(truth: dict, pcap: str) -> None:
    for key in ("schema", "scenario", "description", "recorded_with", "capture", "dns", "connections"):
        assert key in truth, key
    pk = pcapio.packets(pcap)
    assert len(list(pcapio.read_packets(pcap))) == truth["capture"]["packets"]
    for c in truth["connections"]:
        assert c["outcome"] in OUTCOMES, c
        f = pcapio.flow_facts(pk, c["client"], c["client_port"], c["server_ip"], c["server_port"], c["transport"])
        assert f["packets"] > 0, f"{c['id']} not in {pcap}"
        if c["outcome"] == "syn_dropped":
            assert f["synack"] == 0 and f["syn"] >= 2
        if c["outcome"] == "rst_on_syn":
            assert f["rst_from_server"] and not f["synack"]
        if c["outcome"] == "icmp_unreachable":
            assert f.get("icmp")
    for d in truth["dns"]:
        assert d["outcome"] in DNS_OUTCOMES, d
        f = pcapio.flow_facts(pk, d["client"], d["client_port"], d["server"], d["server_port"], d["transport"])
        assert f["packets"] >= 2, d


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p) for p in SCENARIOS])
def test_scenario_files(path):
    for name in ("input.pcap", "truth.yaml", "README.md"):
        assert os.path.isfile(os.path.join(path, name)), name
    pcap = os.path.join(path, "input.pcap")
    assert os.path.getsize(pcap) < 200 * 1024
    with open(os.path.join(path, "truth.yaml")) as f:
        truth = yaml.safe_load(f)
    assert truth["scenario"] == os.path.basename(path)
    with open(pcap, "rb") as f:
        magic = f.read(4)
    assert magic == (b"\x0a\x0d\x0d\x0a" if truth["capture"]["format"] == "pcapng" else b"\xd4\xc3\xb2\xa1")
    _check_truth(truth, pcap)


def test_demo_capture():
    truth_path = os.path.join(REPO, "captures", "enrollment-troubleshooting.truth.yaml")
    if not os.path.exists(truth_path):
        pytest.skip("demo capture not recorded")
    with open(truth_path) as f:
        truth = yaml.safe_load(f)
    _check_truth(truth, os.path.join(REPO, "captures", truth["capture"]["file"]))


def _lab_possible() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft", "tcpdump", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@pytest.mark.skipif(_lab_possible() is not None, reason=_lab_possible() or "")
def test_lab_smoke(tmp_path):
    from tests.lab import Lab, forward_filter

    pcap = str(tmp_path / "smoke.pcap")
    with Lab(dns_nxdomain=["iprofiles.apple.com"]) as lab:
        prefix = lab.prefix
        lab.start_internet()
        lab.nft("fw", forward_filter(["ip daddr 17.0.0.0/8 tcp dport 5223 drop"]))
        with lab.capture("dev", lab.ifaces["dev"], pcap):
            res = lab.run_client("dev", [
                {"op": "tls", "host": "albert.apple.com", "port": 443, "app": "http"},
                {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "connect_timeout": 1.5},
                {"op": "dns", "qname": "iprofiles.apple.com"},
            ])
        conns = [r for r in res if r["op"] != "dns"]
        assert conns[0]["outcome"] == "ok" and conns[0]["issuer"]["cn"] == "pcapaudit Lab Public Server CA 1"
        assert conns[1]["outcome"] == "syn_dropped"
        assert res[-1]["outcome"] == "dns_nxdomain"
        events = lab.events("inet")
        assert any(e.get("sni") == "albert.apple.com" for e in events)
    facts = pcapio.flow_facts(pcapio.packets(pcap), conns[1]["client"], conns[1]["client_port"],
                              conns[1]["server_ip"], 5223)
    assert facts["syn"] >= 2 and facts["synack"] == 0
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in left
