#!/usr/bin/env python3
"""Cross-check every scenario's truth.yaml against what tshark sees in its capture.

    python3 tests/scenarios/verify_with_tshark.py [DIR ...]     (default: every scenario + captures/)

Independent of the lab's own pcap reader: outcomes, SNI, ServerHello versions, cleartext certificates'
issuers, TLS alerts, ICMP errors, DNS answers, CONNECT replies and application protocols are all derived
from tshark output and compared with truth.yaml. Exit status 1 on any disagreement. Needs tshark.
"""
from __future__ import annotations

import collections
import glob
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def tshark(pcap, dfilter, fields, extra=()):
    argv = ["tshark", "-r", pcap, "-n", *extra, "-Y", dfilter, "-T", "fields", "-E", "separator=\t",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        argv += ["-e", f]
    cp = subprocess.run(argv, capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(cp.stderr)
    return [l.split("\t") for l in cp.stdout.splitlines() if l.strip()]


def issuer_cn(cert_hex: str) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    der = bytes.fromhex(cert_hex.replace(":", ""))
    cert = x509.load_der_x509_certificate(der)
    v = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return v[0].value if v else None


def observe(pcap: str) -> dict:
    """Per (client ip, client port) facts, plus DNS answers, from tshark alone."""
    flows = collections.defaultdict(lambda: {"syn": 0, "synack": 0, "rst_srv": False, "c_bytes": 0, "s_bytes": 0,
                                             "sni": None, "sh_version": None, "cert_issuer": None, "alerts": [],
                                             "icmp": [], "connect": None, "proxy_code": None, "c_appdata": 0,
                                             "protocols": set(), "server": None, "http_host": None})
    conv = {}
    for src, sp, dst, dp, syn, ack, rst, ln, protos in tshark(
            pcap, "tcp and not icmp", ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.flags.syn",
                                       "tcp.flags.ack", "tcp.flags.reset", "tcp.len", "frame.protocols"]):
        sp, dp = int(sp), int(dp)
        if syn == "1" and ack == "0":
            conv[(src, sp)] = (dst, dp)
        key = (src, sp) if (src, sp) in conv else (dst, dp)
        if key not in conv:
            continue
        f = flows[key]
        f["server"] = conv[key]
        from_client = (src, sp) == key
        if syn == "1" and ack == "0":
            f["syn"] += 1
        if syn == "1" and ack == "1":
            f["synack"] += 1
        if rst == "1" and not from_client:
            f["rst_srv"] = True
        f["c_bytes" if from_client else "s_bytes"] += int(ln or 0)
        f["protocols"].update(p for p in protos.split(":") if p not in ("eth", "ethertype", "ip", "tcp", "data"))
    for src, sp, dst, dp, protos in tshark(pcap, "udp and not icmp and not dns",
                                           ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "frame.protocols"]):
        sp, dp = int(sp), int(dp)
        if (dst, dp) in flows and flows[(dst, dp)]["server"] == (src, sp):
            flows[(dst, dp)]["s_bytes"] += 1
            continue
        f = flows[(src, sp)]
        f["server"] = (dst, dp)
        f["udp"] = True
        f["c_bytes"] += 1
        f["protocols"].update(p for p in protos.split(":") if p not in ("eth", "ethertype", "ip", "udp", "data"))
    for src, sp, sni in tshark(pcap, "tls.handshake.type==1", ["ip.src", "tcp.srcport", "tls.handshake.extensions_server_name"]):
        flows[(src, int(sp))]["sni"] = sni or None
    for dst, dp, sv, v in tshark(pcap, "tls.handshake.type==2", ["ip.dst", "tcp.dstport",
                                                               "tls.handshake.extensions.supported_version",
                                                               "tls.handshake.version"]):
        ver = (sv or v).split(",")[0]
        flows[(dst, int(dp))]["sh_version"] = {"0x0304": "TLSv1.3", "0x0303": "TLSv1.2"}.get(ver, ver)
    for dst, dp, certs in tshark(pcap, "tls.handshake.type==11", ["ip.dst", "tcp.dstport", "tls.handshake.certificate"]):
        if certs:
            flows[(dst, int(dp))]["cert_issuer"] = issuer_cn(certs.split(",")[0])
    for src, sp, dst, dp, lvl, desc in tshark(pcap, "tls.alert_message.desc", ["ip.src", "tcp.srcport", "ip.dst",
                                                                              "tcp.dstport", "tls.alert_message.level",
                                                                              "tls.alert_message.desc"]):
        key = (src, int(sp)) if (src, int(sp)) in flows else (dst, int(dp))
        who = "client" if key == (src, int(sp)) else "server"
        for d in desc.split(","):
            flows[key]["alerts"].append((who, int(d)))
    for src, sp, types, opaque in tshark(pcap, "tls.record", ["ip.src", "tcp.srcport", "tls.record.content_type",
                                                            "tls.record.opaque_type"]):
        if (src, int(sp)) in flows:      # client -> server records: application data (TLS 1.3: opaque type 23)
            flows[(src, int(sp))]["c_appdata"] += types.split(",").count("23") + opaque.split(",").count("23")
    for outer_src, typ, code, inner_src, inner_sp_tcp, inner_sp_udp in tshark(
            pcap, "icmp.type==3", ["ip.src", "icmp.type", "icmp.code", "ip.src", "tcp.srcport", "udp.srcport"]):
        inner_ip = inner_src.split(",")[-1]
        port = int((inner_sp_tcp or inner_sp_udp).split(",")[-1])
        flows[(inner_ip, port)]["icmp"].append((int(typ.split(",")[0]), int(code.split(",")[0]), outer_src.split(",")[0]))
    for src, sp, uri in tshark(pcap, "http.request.method==CONNECT", ["ip.src", "tcp.srcport", "http.request.uri"]):
        flows[(src, int(sp))]["connect"] = uri
    for dst, dp, code in tshark(pcap, "http.response.code", ["ip.dst", "tcp.dstport", "http.response.code"]):
        if flows[(dst, int(dp))]["connect"] and flows[(dst, int(dp))]["proxy_code"] is None:
            flows[(dst, int(dp))]["proxy_code"] = int(code)
    for src, sp, host in tshark(pcap, "http.request", ["ip.src", "tcp.srcport", "http.host"]):
        flows[(src, int(sp))]["http_host"] = host or None
    dns = {}
    for qid, name, qtype, rcode, a, aaaa in tshark(pcap, "dns.flags.response==1", ["dns.id", "dns.qry.name",
                                                                                  "dns.qry.type", "dns.flags.rcode",
                                                                                  "dns.a", "dns.aaaa"]):
        dns[(int(qid, 16) if qid.startswith("0x") else int(qid), name)] = {
            "rcode": int(rcode), "answers": [x for x in (a.split(",") + aaaa.split(",")) if x]}
    return {"flows": flows, "dns": dns}


def derive_outcome(f: dict) -> str:
    if f.get("udp"):
        if f["icmp"]:
            return "icmp_unreachable"
        return "cleartext_ok" if f["s_bytes"] else "udp_no_reply"
    if f["synack"] == 0:
        if f["icmp"]:
            return "icmp_unreachable"
        return "rst_on_syn" if f["rst_srv"] else "syn_dropped"
    if f["proxy_code"] in (403, 407):
        return f"proxy_{f['proxy_code']}"
    if f["sni"] is not None or "tls" in f["protocols"]:
        client_alerts = [d for w, d in f["alerts"] if w == "client"]
        server_alerts = [d for w, d in f["alerts"] if w == "server"]
        if 48 in client_alerts:
            return "client_alert_unknown_ca"
        if server_alerts:
            return "server_fatal_alert"
        if f["sh_version"] is None:
            return "rst_after_clienthello" if f["rst_srv"] else "silence_after_clienthello"
        if f["sh_version"] == "TLSv1.3" and f["c_appdata"] <= 1:
            return "client_alert_unknown_ca"     # client aborted after the server flight (alert is encrypted)
        return "ok"
    return "cleartext_ok" if f["s_bytes"] and f["c_bytes"] else "unknown"


ALERT_CODES = {"unknown_ca": 48, "handshake_failure": 40, "protocol_version": 70}


def check(dirpath: str, pcap: str | None = None, truth_path: str | None = None) -> tuple[list, dict]:
    truth_path = truth_path or os.path.join(dirpath, "truth.yaml")
    with open(truth_path) as fh:
        truth = yaml.safe_load(fh)
    pcap = pcap or os.path.join(os.path.dirname(truth_path), truth["capture"]["file"])
    obs = observe(pcap)
    errs = []
    stats = collections.Counter()
    for c in truth["connections"]:
        key = (c["client"], c["client_port"])
        f = obs["flows"].get(key)
        if f is None:
            errs.append(f"{c['id']}: not found by tshark")
            continue
        o = derive_outcome(f)
        stats["connections"] += 1
        if o != c["outcome"]:
            errs.append(f"{c['id']}: tshark says {o}, truth says {c['outcome']}")
        else:
            stats["outcome_match"] += 1
        if c.get("sni") and c["outcome"] not in ("syn_dropped", "rst_on_syn", "icmp_unreachable", "proxy_403",
                                                 "proxy_407"):
            stats["sni_checked"] += 1
            if f["sni"] != c["sni"]:
                errs.append(f"{c['id']}: SNI tshark={f['sni']} truth={c['sni']}")
        if f["sh_version"] and c.get("tls_version") and f["sh_version"] != c["tls_version"]:
            errs.append(f"{c['id']}: ServerHello {f['sh_version']} vs truth {c['tls_version']}")
        if f["cert_issuer"]:
            stats["issuer_checked"] += 1
            if f["cert_issuer"] != (c.get("issuer") or {}).get("cn"):
                errs.append(f"{c['id']}: certificate issuer tshark={f['cert_issuer']} truth={c.get('issuer')}")
            if not c.get("certificate_visible_in_capture"):
                errs.append(f"{c['id']}: tshark sees a certificate, truth says not visible")
        elif c.get("certificate_visible_in_capture"):
            errs.append(f"{c['id']}: truth says certificate visible, tshark sees none")
        if c.get("alert") and not c["alert"].get("encrypted"):
            want = ALERT_CODES.get(c["alert"]["description"])
            seen = [d for w, d in f["alerts"] if w == c["alert"]["from"]]
            stats["alerts_checked"] += 1
            if want not in seen:
                errs.append(f"{c['id']}: alert {c['alert']['description']} not seen by tshark ({f['alerts']})")
        if c["outcome"] == "icmp_unreachable":
            stats["icmp_checked"] += 1
            if not f["icmp"] or f["icmp"][0][1] != c["icmp"]["code"]:
                errs.append(f"{c['id']}: ICMP {f['icmp']} vs truth {c.get('icmp')}")
        if c.get("connect_target"):
            stats["connect_checked"] += 1
            if f["connect"] != c["connect_target"]:
                errs.append(f"{c['id']}: CONNECT {f['connect']} vs {c['connect_target']}")
        if c.get("wire", {}).get("syn") is not None and c["wire"]["syn"] != f["syn"]:
            errs.append(f"{c['id']}: SYN count tshark={f['syn']} truth={c['wire']['syn']}")
        for p in f["protocols"]:
            stats[f"proto:{p}"] += 1
    for d in truth["dns"]:
        stats["dns"] += 1
        seen = obs["dns"].get((d["dns_id"], d["qname"]))
        if seen is None:
            errs.append(f"{d['id']}: DNS response {d['qname']} not found by tshark")
            continue
        rc = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(seen["rcode"], str(seen["rcode"]))
        if rc != d["rcode"] or sorted(seen["answers"]) != sorted(d["answers"]):
            errs.append(f"{d['id']}: tshark {rc} {seen['answers']} vs truth {d['rcode']} {d['answers']}")
        else:
            stats["dns_match"] += 1
    if len(obs["dns"]) != len(truth["dns"]):
        errs.append(f"tshark sees {len(obs['dns'])} DNS responses, truth lists {len(truth['dns'])}")
    extra = [k for k, f in obs["flows"].items() if f["server"] and f["server"][1] != 53 and not any(
        (c["client"], c["client_port"]) == k for c in truth["connections"])]
    if extra:
        errs.append(f"flows in the capture missing from truth: {extra}")
    return errs, stats


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    targets = argv or sorted(d for d in glob.glob(os.path.join(HERE, "*")) if os.path.isfile(os.path.join(d, "truth.yaml")))
    if not argv:
        targets += sorted(glob.glob(os.path.join(REPO, "captures", "*.truth.yaml")))
    bad = 0
    for t in targets:
        if t.endswith(".truth.yaml"):
            errs, stats = check(os.path.dirname(t), truth_path=t)
            name = os.path.basename(t)
        else:
            errs, stats = check(t)
            name = os.path.basename(t.rstrip("/"))
        protos = ",".join(sorted(k.split(":", 1)[1] for k in stats if k.startswith("proto:")))
        print(f"{'OK ' if not errs else 'BAD'} {name}: {stats['outcome_match']}/{stats['connections']} outcomes, "
              f"{stats['sni_checked']} SNI, {stats['issuer_checked']} cert issuers, {stats['alerts_checked']} alerts, "
              f"{stats['icmp_checked']} ICMP, {stats['connect_checked']} CONNECT, "
              f"{stats['dns_match']}/{stats['dns']} DNS; protocols: {protos}")
        for e in errs:
            print("    " + e)
        bad += bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
