#!/usr/bin/env python3
"""Check a generated capture with Wireshark's tools against its truth file.

    python benchmarks/verify_capture.py CAPTURE [--truth CAPTURE.truth.json] [--checksums]

Checks, each printed as PASS / FAIL:
  1. capinfos: packet count equals the truth's, strict time order;
  2. tshark finds no malformed packet and no expert error
     (tshark -r F -Y '_ws.malformed || _ws.expert.severity==error');
  3. with --checksums: tshark validating IPv4/TCP/UDP/ICMP checksums finds no bad one;
  4. every truth SNI (TLS, split, out of order, straddling, QUIC) is found by tshark on the
     matching flow with out-of-order reassembly on and the generator's extra TLS ports decoded;
     the default tshark settings are also reported (they miss out-of-order ClientHellos);
  5. every truth QUIC SNI is found by `tshark -Y quic -e tls.handshake.extensions_server_name`;
  6. DNS queries / NXDOMAIN answers counted by tshark equal the truth's.
Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_capture  # noqa: E402
import run  # noqa: E402

SNI_FIELDS = ["-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "udp.srcport",
              "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "udp.dstport", "-e", "tcp.flags",
              "-e", "tls.handshake.extensions_server_name"]


def tshark(args, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(["tshark"] + args, capture_output=True, text=True, **kw)
    return r, time.perf_counter() - t0


def sni_found(capture, ooo, display_filter="tls.handshake.type == 1"):
    extra = []
    if ooo:
        extra = ["-o", "tcp.reassemble_out_of_order:TRUE"]
        for port in gen_capture.TLS_EXTRA_PORTS:
            extra += ["-d", f"tcp.port=={port},tls"]
    r, dt = tshark(["-r", str(capture), "-n"] + extra + ["-Y", display_filter] + SNI_FIELDS)
    lines = []
    for line in r.stdout.splitlines():
        p = line.split("\t")
        # run.tshark_found expects the runner's column layout: epoch first, flags, sni, ...
        lines.append("\t".join(["0"] + p[:8] + [p[8], p[9] if len(p) > 9 else ""]))
    tmp = Path(str(capture) + ".verify-sni.tsv")
    try:
        tmp.write_text("\n".join(lines) + "\n")
        return run.tshark_found(tmp), dt
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture")
    ap.add_argument("--truth", help="default: <capture stem>.truth.json")
    ap.add_argument("--checksums", action="store_true", help="also validate every checksum (one more tshark pass)")
    a = ap.parse_args(argv)
    cap = Path(a.capture)
    truth_p = Path(a.truth) if a.truth else cap.with_suffix(".truth.json")
    truth = json.loads(truth_p.read_text())
    failures = 0

    def check(ok, msg):
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {msg}", flush=True)

    # 1. capinfos
    r = subprocess.run(["capinfos", "-M", str(cap)], capture_output=True, text=True)
    info = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ":" in ln}
    n = int(info.get("Number of packets", "-1"))
    want = truth["summary"]["packets"]
    check(n == want, f"capinfos: {n} packets (truth {want}), {info.get('File type')}, "
          f"{info.get('File encapsulation')}, duration {info.get('Capture duration')}, "
          f"average rate {info.get('Average packet rate')}")
    check(info.get("Strict time order") == "True", f"capinfos: strict time order = {info.get('Strict time order')}")

    # 2. malformed / expert errors
    r, dt = tshark(["-r", str(cap), "-n", "-Y", "_ws.malformed || _ws.expert.severity==error"])
    bad = [ln for ln in r.stdout.splitlines() if ln.strip()]
    check(not bad and r.returncode == 0,
          f"tshark: {len(bad)} malformed / expert-error packets ({dt:.1f} s)" + ("".join("\n      " + b for b in bad[:10])))

    # 3. checksums
    if a.checksums:
        prefs = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
        flt = ("ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\" || "
               "icmp.checksum.status == \"Bad\" || icmpv6.checksum.status == \"Bad\"")
        r, dt = tshark(["-r", str(cap), "-n"] + prefs + ["-Y", flt])
        bad = [ln for ln in r.stdout.splitlines() if ln.strip()]
        check(not bad, f"tshark: {len(bad)} packets with a bad IPv4/TCP/UDP/ICMP checksum ({dt:.1f} s)"
              + "".join("\n      " + b for b in bad[:5]))

    # 4. SNI with out-of-order reassembly and the extra TLS ports
    found, dt = sni_found(cap, True)
    c = run.compare_sni(truth, found)
    kinds = ", ".join(f"{k} {v['found']}/{v['of']}" for k, v in c["by_kind"].items())
    check(c["lost"] == 0, f"tshark (-o tcp.reassemble_out_of_order:TRUE, -d for ports "
          f"{','.join(map(str, gen_capture.TLS_EXTRA_PORTS))}): {c['found']}/{c['truth_sni']} truth SNIs found "
          f"({kinds}; {dt:.1f} s)" + "".join("\n      " + run.describe_missing(x) for x in (c["wrong"] + c["missing"])[:10]))
    found, dt = sni_found(cap, False)
    c2 = run.compare_sni(truth, found)
    print(f"info  tshark with default preferences: {c2['found']}/{c2['truth_sni']} truth SNIs found "
          f"(out_of_order {c2['by_kind']['out_of_order']['found']}/{c2['by_kind']['out_of_order']['of']}; "
          f"{dt:.1f} s)")

    # 5. QUIC
    found, dt = sni_found(cap, False, "quic && tls.handshake.extensions_server_name")
    q_truth = [x for x in run.truth_sni_flows(truth) if x["kind"] == "quic"]
    sub = dict(truth, flows=q_truth)
    c3 = run.compare_sni(sub, found)
    check(c3["lost"] == 0 and c3["truth_sni"] == truth["summary"]["quic_flows"],
          f"tshark -Y quic: {c3['found']}/{c3['truth_sni']} QUIC Initial SNIs decrypted and found ({dt:.1f} s)")

    # 6. DNS
    r, dt = tshark(["-r", str(cap), "-n", "-Y", "dns", "-T", "fields", "-e", "dns.flags.response",
                    "-e", "dns.flags.rcode"])
    rows = [ln.split("\t") for ln in r.stdout.splitlines() if ln]
    queries = sum(1 for x in rows if x[0] in ("0", "False"))
    nx = sum(1 for x in rows if x[0] in ("1", "True") and x[1] == "3")
    s = truth["summary"]
    check(queries == s["dns_queries"] and nx == s["dns_nxdomain"],
          f"tshark: {queries} DNS queries (truth {s['dns_queries']}), {nx} NXDOMAIN answers "
          f"(truth {s['dns_nxdomain']}) ({dt:.1f} s)")

    print(f"{'all checks passed' if not failures else f'{failures} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
