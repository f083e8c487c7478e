"""``pcapaudit live`` against real traffic: network namespaces, real servers, a firewall that drops APNs
5223 and a TLS-inspection proxy in front of the Kandji device domain. The live process runs inside the
device namespace on its veth, is stopped with Ctrl-C (SIGINT), and must report the blocked and the
intercepted connection, write a valid pcapng that audits to the same findings, and count every packet.

Also: the one-line errors for a missing interface and for missing capture privileges.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_CONFIG = ROOT / "tests" / "scenarios" / "lab.yaml"
K = "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01"


def _lab_missing() -> str | None:
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft", "tcpdump", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    try:
        from pcapaudit.capture.libpcap import load

        load()
    except Exception as e:  # noqa: BLE001 - any reason libpcap is unusable means: skip
        return f"libpcap unusable: {e}"
    return None


needs_lab = pytest.mark.skipif(_lab_missing() is not None, reason=_lab_missing() or "")


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"pcapaudit live exited early ({proc.returncode}): {path.read_text(errors='replace')}")
        time.sleep(0.1)
    raise AssertionError(f"pcapaudit live never said {text!r}")


@pytest.mark.live
@needs_lab
def test_live_capture_reports_blocked_and_intercepted(tmp_path):
    from tests.lab import Lab, forward_filter, nat_redirect

    report = tmp_path / "live.json"
    written = tmp_path / "live.pcapng"
    errlog = tmp_path / "live.err"
    with Lab() as lab:
        lab.start_internet()
        lab.start_services("fw", [{"kind": "mitm", "ip": "0.0.0.0", "port": 15443, "min": "TLSv1.2",
                                   "max": "TLSv1.2", "bypass": []}], name="mitm")  # fmt: skip
        lab.nft("fw", forward_filter(["ip daddr 17.0.0.0/8 tcp dport 5223 drop"]))
        lab.nft("fw", nat_redirect(['iifname "lan0" ip daddr 52.3.100.0/24 tcp dport 443 redirect to :15443']))
        with open(errlog, "w") as err:
            proc = lab.popen("dev", [
                sys.executable, "-m", "pcapaudit", "live", lab.ifaces["dev"], "--config", str(LAB_CONFIG),
                "-f", "json", "-o", str(report), "--write", str(written), "--fail-on", "none",
            ], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        _wait_for(errlog, "capturing on", proc)
        results = lab.run_client("dev", [
            {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "connect_timeout": 3},
            {"op": "tls", "host": f"{K}.devices.us-1.kandji.io", "port": 443, "trust": "public", "app": "http"},
            {"op": "tls", "host": "albert.apple.com", "port": 443, "app": "http"},
        ])  # fmt: skip
        outcomes = [r["outcome"] for r in results if r.get("op", "tls") != "dns" and "outcome" in r]
        assert "syn_dropped" in outcomes and "client_alert_unknown_ca" in outcomes, results
        # findings appear while the capture is still running (plain lines on a non-terminal stderr):
        # the intercepted handshake closes its flow at once; the dropped SYN flow expires after 15 s
        _wait_for(errlog, "client_rejected_certificate", proc, timeout=20)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: flush every flow, write the report
        assert proc.wait(30) == 0, errlog.read_text()
    doc = json.loads(report.read_text())
    codes = {(f["code"], f["rule_id"]) for f in doc["findings"]}
    assert ("syn_no_reply", "apple.apns") in codes, doc["findings"]
    assert any(c == "client_rejected_certificate" and r.startswith("kandji.") for c, r in codes), codes
    assert any(c == "issuer_mismatch" and r.startswith("kandji.") for c, r in codes), codes
    err = errlog.read_text()
    assert "dropped by kernel" in err and "packets written to" in err
    # the written capture is complete and valid: auditing it gives the same findings and packet count
    import pcapaudit

    again = pcapaudit.audit(str(written), trust_issuers=["pcapaudit Lab Trust Services"],
                            tenants={"kandji.uuid": K, "jamf-pro.instance": "acme"})  # fmt: skip
    assert again.stats.packets == doc["summary"]["packets"] > 0
    assert {(f.code, f.rule_id) for f, _ in again.finding_records} >= {("syn_no_reply", "apple.apns")}
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(written), "-q"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "appears to have been cut short" not in out.stderr


@pytest.mark.live
@needs_lab
def test_live_rotation_and_count(tmp_path):
    from tests.lab import Lab

    base = tmp_path / "rot.pcapng"
    with Lab() as lab:
        lab.start_internet()
        proc = lab.popen("dev", [
            sys.executable, "-m", "pcapaudit", "live", lab.ifaces["dev"], "--count", "40", "-q",
            "--write", str(base), "--rotate-mb", "0.002", "-f", "json", "-o", str(tmp_path / "r.json"),
            "--fail-on", "none",
        ])  # fmt: skip
        time.sleep(1.5)
        lab.run_client("dev", [{"op": "tls", "host": "albert.apple.com", "port": 443, "app": "http"}] * 4)
        assert proc.wait(30) == 0
    files = sorted(tmp_path.glob("rot-*.pcapng"))
    assert len(files) >= 2
    import pcapaudit

    total = sum(pcapaudit.audit(str(f)).stats.packets for f in files)
    assert total == 40 == json.loads((tmp_path / "r.json").read_text())["summary"]["packets"]


def test_missing_interface_is_one_line(capsys):
    from pcapaudit.cli import main

    if _lab_missing() and "libpcap" in (_lab_missing() or ""):
        pytest.skip("libpcap missing")
    assert main(["live", "pa-no-such-if0", "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pa-no-such-if0: no such interface" in err


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_missing_privileges_give_the_fix():
    if _lab_missing() and "libpcap" in (_lab_missing() or ""):
        pytest.skip("libpcap missing")
    # a process without CAP_NET_RAW/CAP_NET_ADMIN, exactly like an unprivileged user
    cp = subprocess.run(["setpriv", "--bounding-set", "-net_raw,-net_admin", sys.executable, "-m", "pcapaudit",
                         "live", "lo", "--duration", "1"], capture_output=True, text=True, timeout=60,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    assert cp.returncode == 2, cp.stderr
    assert cp.stderr.strip().count("\n") == 0, cp.stderr
    assert "lo: permission denied" in cp.stderr and "run as root" in cp.stderr and "setcap" in cp.stderr
    assert "Traceback" not in cp.stderr


def test_duration_parsing():
    from pcapaudit.capture.live import parse_duration
    from pcapaudit.errors import UsageError

    assert parse_duration("90") == 90 and parse_duration("90s") == 90 and parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    with pytest.raises(UsageError):
        parse_duration("soon")


@pytest.mark.live
@needs_lab
def test_live_port_scan_prints_one_fold_line_per_code(tmp_path):
    """A real connect scan of 150 closed ports (the kernel answers RST): the live display prints the first
    100 destinations' findings and then one "more ... findings" line per code, not a line per port."""
    from tests.lab import Lab, hosts

    report = tmp_path / "scan.json"
    errlog = tmp_path / "scan.err"
    target = "17.253.21.201"  # albert.apple.com in the lab's internet namespace: no listener on 20001+
    scan = ("import socket\n"
            "for p in range(20001, 20151):\n"
            "    s = socket.socket()\n"
            "    s.settimeout(2)\n"
            "    try:\n"
            f"        s.connect(({target!r}, p))\n"
            "    except OSError:\n"
            "        pass\n"
            "    s.close()\n")  # fmt: skip
    with Lab() as lab:
        lab.start_internet()
        with open(errlog, "w") as err:
            proc = lab.popen("dev", [
                sys.executable, "-m", "pcapaudit", "live", lab.ifaces["dev"], "-f", "json", "-o", str(report),
                "--fail-on", "none",
            ], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        _wait_for(errlog, "capturing on", proc)
        lab.exec("dev", [sys.executable, "-c", scan], timeout=120)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, errlog.read_text()
    doc = json.loads(report.read_text())
    rows = {f["identifier"]: f for f in doc["findings"]}
    more = rows[f"more:blocked:syn_rejected|{hosts.DEVICE}"]
    assert more["count"] == 50 and more["target"] == f"{hosts.DEVICE} -> more destinations"
    lines = errlog.read_text().splitlines()
    rejected = [ln for ln in lines if " syn_rejected " in ln]
    assert len(rejected) == 101, rejected[-3:]
    assert sum("more syn_rejected findings" in ln for ln in lines) == 1
    assert sum(f["count"] for f in doc["findings"] if f["code"] == "syn_rejected") == 150


@pytest.mark.live
@needs_lab
def test_live_any_on_the_router_counts_forwarded_packets_once(tmp_path):
    """`pcapaudit live any` on the lab's router sees every forwarded packet twice: on the LAN side and, TTL
    lowered, on the WAN side. Opened as SLL2, each packet names its interface, and the router's report
    counts the device's connection as a capture on the device itself does."""
    from tests.lab import Lab

    reports, errs, procs = {}, {}, {}
    with Lab() as lab:
        lab.start_internet()
        for role, iface in (("fw", "any"), ("dev", lab.ifaces["dev"])):
            reports[role], errs[role] = tmp_path / f"{role}.json", tmp_path / f"{role}.err"
            with open(errs[role], "w") as err:
                procs[role] = lab.popen(role, [
                    sys.executable, "-m", "pcapaudit", "live", iface, "-f", "json", "-o", str(reports[role]),
                    "--fail-on", "none", "--filter", "tcp port 443",
                ], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        for role, proc in procs.items():
            _wait_for(errs[role], "capturing on", proc)
        lab.run_client("dev", [{"op": "tls", "host": "albert.apple.com", "port": 443, "app": "http"}] * 2)
        lan = "if" + lab.exec("fw", ["cat", "/sys/class/net/lan0/ifindex"]).stdout.strip()
        time.sleep(1)
        for role, proc in procs.items():
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0, errs[role].read_text()
    docs = {role: json.loads(path.read_text()) for role, path in reports.items()}

    def flows(doc):
        # Both ends may close at once: the FINs cross between the device and the router, so each capture point
        # may see them in another order ("ShADadFf" on one, "ShADadfF" on the other). The letters must agree.
        return sorted((f["src_port"], f["pkts_c2s"], f["pkts_s2c"], f["bytes_c2s"], f["bytes_s2c"],
                       "".join(sorted(f["history"])))
                      for f in doc["flows"] if f["dst_port"] == 443)  # fmt: skip

    assert len(flows(docs["dev"])) == 2 and flows(docs["fw"]) == flows(docs["dev"])
    fw = docs["fw"]["summary"]
    assert fw["interface_copies"] == docs["dev"]["summary"]["packets"] == fw["packets"] // 2
    assert {f["interface"] for f in docs["fw"]["flows"]} == {lan}  # where the connections came in


def test_live_verbose_says_what_it_captured(caplog, tmp_path):
    """`live -v` logs the capture's start (interface, snaplen, filter) and, at the end, what was audited and
    how fast, as `audit -v` does; before, it logged nothing."""
    import logging
    import os

    from pcapaudit.cli import main

    if os.geteuid() != 0 or (_lab_missing() and "libpcap" in (_lab_missing() or "")):
        pytest.skip("needs root and libpcap to capture on lo")
    with caplog.at_level(logging.INFO, logger="pcapaudit"):
        code = main(["live", "lo", "--duration", "0.5", "--bpf", "udp port 9", "-v", "-f", "json",
                     "-o", str(tmp_path / "r.json")])  # fmt: skip
    assert code == 0
    assert "capturing on lo (snaplen 65535, filter 'udp port 9')" in caplog.text
    assert "audited 0 packets in" in caplog.text
