#!/usr/bin/env python3
"""Record captures/enrollment-troubleshooting.pcap, the demo capture a new pcapaudit user audits first.

    sudo python3 captures/record_demo.py

One realistic mixed session in the lab (tests/lab): the Mac's DNS lookups come first (one of them,
gdmf.apple.com, is answered NXDOMAIN by a DNS filter), then a Jamf Cloud enrollment with the Apple hosts,
APNs on 5223 blocked by the firewall with a fallback to 443, a Kandji device domain intercepted by a
TLS 1.2 inspection proxy (the pinned Kandji agent rejects it with unknown_ca), one example.org flow, and
the on-prem Jamf Pro server using the legacy binary APNs interface on 2195. The device port and the server
port are captured at the same time and merged by timestamp (like a SPAN session of both ports).

Writes captures/enrollment-troubleshooting.pcap, captures/enrollment-troubleshooting.truth.yaml (ground
truth generated from what the lab observed) and captures/README.md.
"""
from __future__ import annotations

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.lab import Lab, cleanup_stale, forward_filter, hosts as H, nat_redirect  # noqa: E402
from tests.lab.recording import Recording, tool_versions  # noqa: E402

NAME = "enrollment-troubleshooting"
K = H.KANDJI_TENANT
K_DEV = f"{K}.devices.us-1.kandji.io"
BROWSER_ALPN = ["h2", "http/1.1"]
COMMAND = "python3 captures/record_demo.py"

DESCRIPTION = """
A Mac (192.168.50.10) on a corporate network enrolls into Jamf Cloud (acme.jamfcloud.com) while a
Kandji agent pilot runs on it, and the on-prem Jamf Pro server (10.20.0.5) sends pushes. What goes wrong:
the DNS filter answers gdmf.apple.com with NXDOMAIN; the firewall drops APNs on 5223 (the device falls back
to 443); a TLS-inspection proxy re-signs the Kandji device domain with "Corporate Inspection CA" (TLS 1.2),
which the pinned Kandji agent rejects with a fatal unknown_ca alert; the Mac also talks to example.org;
and the Jamf Pro server still uses the retired binary APNs provider interface on port 2195.
"""


def main() -> int:
    if os.geteuid() != 0:
        print("record_demo.py needs root (network namespaces, nftables, tcpdump)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    cleanup_stale()
    try:
        return record()
    except KeyboardInterrupt:
        print("interrupted; the lab was torn down and no file was changed", file=sys.stderr)
        return 130


def _interrupt(*_):
    raise KeyboardInterrupt("SIGTERM")


def record() -> int:
    with Lab(dns_nxdomain=["gdmf.apple.com"]) as lab:
        lab.start_internet()
        lab.start_services("fw", [{"kind": "mitm", "ip": "0.0.0.0", "port": 15443, "min": "TLSv1.2",
                                   "max": "TLSv1.2", "bypass": []}], name="mitm")
        rec = Recording(lab, NAME, HERE, DESCRIPTION, COMMAND, capture_role="dev", capture_iface="eth0",
                        pcap_name=f"{NAME}.pcap", extra_capture_points=[("srv", "eth0")],
                        truth_name=f"{NAME}.truth.yaml", readme_name=None)
        rec.firewall(forward_filter(["ip daddr 17.0.0.0/8 tcp dport 5223 drop"]),
                     ["forward: ip daddr 17.0.0.0/8 tcp dport 5223 drop"])
        rec.firewall(nat_redirect(['iifname "lan0" ip daddr 52.3.100.0/24 tcp dport 443 redirect to :15443']),
                     ['nat prerouting: iifname "lan0" ip daddr 52.3.100.0/24 tcp dport 443 redirect to :15443 '
                      '(TLS inspection of the Kandji US range)'])
        rec.middleboxes.append({"kind": "tls_inspection_proxy", "where": "fw", "max_tls": "TLSv1.2",
                                "issuer": "Corporate Inspection CA (O=Example Corp Security)",
                                "summary": "transparent TLS 1.2 interception of 52.3.100.0/24:443, leaves signed by "
                                           "'Corporate Inspection CA'"})
        rec.note("dnsmasq answers gdmf.apple.com with NXDOMAIN (address=/gdmf.apple.com/)")
        rec.tenants = {"kandji.uuid": K, "kandji.region": "us"}
        names = ["captive.apple.com", "time.apple.com", "albert.apple.com", "gdmf.apple.com", "iprofiles.apple.com",
                 "deviceenrollment.apple.com", "mdmenrollment.apple.com", "acme.jamfcloud.com",
                 "1-courier.push.apple.com", K_DEV, "example.org"]
        with rec.capture():
            rec.run("dev", [{"op": "dns", "qname": n, "qtype": "A", "label": "mDNSResponder"} for n in names] + [
                {"op": "tcp", "host": "captive.apple.com", "port": 80, "app": "http", "path": "/hotspot-detect.html",
                 "label": "captive network assistant"},
                {"op": "udp", "host": "time.apple.com", "port": 123, "app": "ntp", "label": "timed"},
                {"op": "tls", "host": "albert.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http-post",
                 "path": "/deviceservices/drmHandshake", "ua": "mobileactivationd", "label": "mobileactivationd"},
                {"op": "tls", "host": "iprofiles.apple.com", "port": 443, "max": "TLSv1.2", "app": "http-post",
                 "path": "/macProfile", "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
                {"op": "tls", "host": "deviceenrollment.apple.com", "port": 443, "app": "http",
                 "path": "/devicemanagement/mdm/checkin", "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
                {"op": "tls", "host": "mdmenrollment.apple.com", "port": 443, "app": "http-post", "path": "/session",
                 "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
                {"op": "tls", "host": "acme.jamfcloud.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http-post",
                 "path": "/mdm/CheckIn", "ctype": "application/x-apple-aspen-mdm-checkin", "ua": "MDM/1.0",
                 "body": '<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key>'
                         '<string>TokenUpdate</string></dict></plist>',
                 "label": "mdmclient (Jamf Cloud check-in)"},
                {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "app": "courier", "connect_timeout": 4.0,
                 "label": "apsd (APNs)"},
                {"op": "tls", "host": "1-courier.push.apple.com", "port": 443, "alpn": ["apns-security-v3"],
                 "app": "courier", "label": "apsd (APNs, 443 fallback)"},
                {"op": "tls", "host": K_DEV, "port": 443, "trust": "public", "alpn": BROWSER_ALPN, "app": "http",
                 "path": "/mdm/checkin", "label": "Kandji agent (pinned)"},
                {"op": "tls", "host": "example.org", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
                 "label": "Safari"},
            ])
            rec.run("srv", [
                {"op": "tls", "host": "gateway.push.apple.com", "port": 2195, "app": "apns-binary", "src": H.JAMF_PRO,
                 "label": "Jamf Pro (legacy APNs provider)"},
            ])
        truth = rec.finish()
    import make_pktap  # the Mac's own view of the session (PKTAP), derived from the new recording

    make_pktap.main_counts()
    write_readme(truth)
    outs = ", ".join(c["outcome"] for c in truth["connections"])
    print(f"{NAME}: {len(truth['dns'])} dns, {len(truth['connections'])} connections [{outs}]")
    return 0


def write_readme(truth: dict) -> None:
    pcap = os.path.join(HERE, f"{NAME}.pcap")
    size = os.path.getsize(pcap)
    PKTAP = "enrollment-mac-pktap"  # noqa: N806 - a file name, as NAME
    pktap_frames = _pcap_records(os.path.join(HERE, f"{PKTAP}.pcap"))
    rows = []
    for d in truth["dns"]:
        rows.append(f"| {d['id']} | DNS {d['qtype']} {d['qname']} -> {d['rcode']} {', '.join(d['answers'])} | "
                    f"{d['client']} | {d['outcome']} |")
    for c in truth["connections"]:
        name = c.get("sni") or c.get("host") or "-"
        extra = f", issuer {c['issuer']['cn']}" if c.get("issuer") else ""
        rows.append(f"| {c['id']} | {c.get('actor')}: {c['server_ip']}:{c['server_port']}/{c['transport']} {name} "
                    f"{c.get('tls_version', '')}{extra} | {c['client']} | {c['outcome']} |")
    vers = ", ".join(f"{k} {v}" for k, v in tool_versions().items() if v)
    text = f"""# captures/

Sample captures for trying pcapaudit. Every file here was recorded in the project's own network lab
(`tests/lab/`: Linux network namespaces, real servers and middleboxes, dnsmasq, a lab PKI generated at run
time). No traffic ever left the lab and no capture comes from a real network: addresses that look like
Apple (17.0.0.0/8), Google (142.250.0.0/15), AWS (3.x, 18.x, 52.x) or example.org (93.184.216.34) exist only
inside the lab's namespaces, and every certificate chains to the lab's own CAs ("pcapaudit Lab Public Root
CA", or "Corporate Inspection CA" for the TLS-inspection proxy).

## Files

| file | what it is |
|---|---|
| `{NAME}.pcap` | the demo capture (pcap, Ethernet, {truth['capture']['packets']} packets, {size} bytes) |
| `{NAME}.truth.yaml` | ground truth of that capture, generated by the recorder from what the lab observed (client reports, server/middlebox logs, the capture itself); format described in `tests/lab/README.md` |
| `record_demo.py` | the script that records both files, runs `make_pktap.py` and rewrites this README |
| `{PKTAP}.pcap` | the Mac's part of the same session as the Mac itself would capture it with `tcpdump -i pktap,en0` (Apple PKTAP link type): every packet carries its process ({pktap_frames} frames); see below |
| `make_pktap.py` | the script that derives `{PKTAP}.pcap` from the demo capture and its truth file (no root, no network) |
| `lab.yaml` | pcapaudit settings for lab captures: trust the lab's public-like CA (it stands in for the real public CAs) and fill the lab tenants (`pcapaudit audit ... --config captures/lab.yaml`) |
| `README.md` | this file (provenance) |

## `{NAME}.pcap`

Recorded {truth['recorded_at']} with:

```
sudo {COMMAND}
```

{" ".join(DESCRIPTION.split())}

Vantage point: {truth['capture']['vantage_point']} — interfaces {truth['capture']['interface']}. Re-running the
command re-records the session with the same structure (fresh keys, new client ports and timestamps) and
regenerates the truth file.

Firewall and middleboxes in the session:

{chr(10).join(f"* `{r}`" for r in truth['firewall'])}
{chr(10).join(f"* {m['kind']}: {m['summary']}" for m in truth['middleboxes'])}

What is in it (from `{NAME}.truth.yaml`):

| id | exchange | client | outcome |
|---|---|---|---|
{chr(10).join(rows)}

Tools: {vers}.

## `{PKTAP}.pcap`

Made with `python3 captures/make_pktap.py` (`record_demo.py` runs it after each recording). It holds every
frame of `{NAME}.pcap` to or from the Mac (192.168.50.10), byte for byte, each behind a 108-byte PKTAP
header as macOS writes it (little-endian; interface en0, direction, protocol family and the process fields).
Frames of other hosts are left out: the Mac's own capture would not see them. The process of each exchange
is the actor the recorder logged for it in the truth file, under the program name macOS uses, truncated to
16 characters like the kernel's command name (`cloudconfigurati`, `mobileactivation`); the browser exchange
is WebKit's networking process acting for Safari (effective process). ARP frames carry no process. The pids
are fixed numbers chosen by the script, not read from a Mac. Audit it with
`pcapaudit audit captures/{PKTAP}.pcap --config captures/lab.yaml`: the flows and findings are those of the
Mac in the Ethernet capture, plus a `process` column (checked by `tests/unit/test_pktap.py`, also against
tshark's PKTAP dissector).

Scenario captures used by the tests live in `tests/scenarios/<name>/` (one directory per scenario, each with
its own README.md and truth.yaml; recorded by `tests/scenarios/record.py`).
"""
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write(text)


def _pcap_records(path: str) -> int:
    """Records in a classic little-endian pcap file."""
    import struct

    n, off = 0, 24
    with open(path, "rb") as f:
        data = f.read()
    while off + 16 <= len(data):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        n += 1
    return n


if __name__ == "__main__":
    sys.exit(main())
