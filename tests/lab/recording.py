"""Scenario recording: capture + client runs -> input.pcap, truth.yaml and README.md.

truth.yaml is generated from what the lab observed, never typed by hand:
  * the clients' own reports (resolver answers, connect/handshake results, negotiated TLS version,
    ALPN, the certificate the client received),
  * the servers' and middleboxes' event logs (the certificate they presented, what they did),
  * the capture itself (SYN counts, RST vs ICMP, cleartext TLS alerts, ServerHello version) read with
    tests/lab/pcapio.py.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import subprocess
import time

import yaml

from . import hosts as H
from . import pcapio
from . import pki as labpki

APP_PROTOCOL = {"http": "http", "http-post": "http", "h2": "http2", "courier": "apns-courier",
                "apns-binary": "apns-binary", "apns-feedback": "apns-feedback", "ldap": "ldap", "smtp": "smtp",
                "mllp": "hl7-mllp", "dcerpc-epm": "dcerpc", "dcerpc-icpr": "dcerpc", "ntp": "ntp", "raw": "raw",
                "none": None}

ROLE_DESCRIPTIONS = {
    "dev": "the managed device (Mac/iPhone at 192.168.50.10; Android at 192.168.50.11)",
    "srv": "the on-prem server LAN host side (Jamf Pro 10.20.0.5, HL7 engine 10.20.0.30, AD CS connector 10.20.0.50)",
    "corp": "the on-prem servers (DC 10.20.0.20, SMTP 10.20.0.25, JIM 10.20.0.40, CA 10.20.0.60, EC 10.20.0.80)",
    "fw": "the router/firewall",
}


def tool_versions() -> dict:
    def first(argv):
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (cp.stdout or cp.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    import ssl
    import sys
    import re

    def ver(line):
        m = re.search(r"\d+\.\d+(\.\d+)?", line or "")
        return m.group(0) if m else None
    return {"python": sys.version.split()[0], "openssl": ver(ssl.OPENSSL_VERSION),
            "tcpdump": ver(first(["tcpdump", "--version"])), "dnsmasq": ver(first(["dnsmasq", "--version"])),
            "nftables": ver(first(["nft", "--version"])), "linux": os.uname().release}


class Recording:
    def __init__(self, lab, name: str, outdir: str, description: str, command: str,
                 capture_role: str = "dev", capture_iface: str = "eth0", fmt: str = "pcap",
                 pcap_name: str = "input.pcap", extra_capture_points: list | None = None,
                 truth_name: str = "truth.yaml", readme_name: str | None = "README.md"):
        self.lab = lab
        self.name = name
        self.outdir = outdir
        self.description = description.strip()
        self.command = command
        self.capture_role = capture_role
        self.capture_iface = capture_iface
        self.fmt = fmt
        self.pcap_name = pcap_name
        self.results: list[dict] = []
        self.notes: list[str] = []
        self.middleboxes: list[dict] = []
        self.firewall_rules: list[str] = []
        self.tenants: dict = {}
        self.truth_name = truth_name
        self.readme_name = readme_name
        self.capture_points = [(capture_role, capture_iface)] + list(extra_capture_points or [])
        self.raw_pcaps = [os.path.join(lab.workdir, f"{name}.{r}-{i}.raw.pcap") for r, i in self.capture_points]
        self.started_at = None

    # -------------------------------------------------------------- actions
    @contextlib.contextmanager
    def capture(self):
        self.started_at = _dt.datetime.now(_dt.timezone.utc)
        with contextlib.ExitStack() as stack:
            for (role, iface), path in zip(self.capture_points, self.raw_pcaps):
                stack.enter_context(self.lab.capture(role, iface, path))
            yield

    def run(self, role: str, steps: list, actor: str | None = None) -> list[dict]:
        res = self.lab.run_client(role, steps)
        for r in res:
            r["role"] = role
            if actor and not r.get("label"):
                r["label"] = actor
        self.results += res
        return res

    def firewall(self, rules_text: str, summary: list[str]) -> None:
        """Apply an nftables script in fw and remember a human summary for README/truth."""
        self.lab.nft("fw", rules_text)
        self.firewall_rules += summary

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -------------------------------------------------------------- truth
    def _event_for(self, client: str, cport: int):
        for e in self.lab.events():
            if e.get("client") == client and e.get("client_port") == cport:
                return e
        return None

    def build_truth(self, pcap_path: str) -> dict:
        pkts = pcapio.packets(pcap_path)
        dns, conns = [], []
        for r in sorted(self.results, key=lambda r: r["t"]):
            if r["op"] == "dns":
                facts = pcapio.flow_facts(pkts, r["client"], r["client_port"], r["server"], r["server_port"],
                                          r["transport"])
                if not facts["packets"]:
                    continue
                dns.append({
                    "id": None, "client": r["client"], "client_port": r["client_port"], "server": r["server"],
                    "server_port": r["server_port"], "transport": r["transport"], "dns_id": r["id"],
                    "qname": r["qname"], "qtype": r["qtype"], "rcode": r.get("rcode"),
                    "answers": r.get("answers", []), "outcome": r["outcome"],
                    **({"actor": r["label"]} if r.get("label") else {}),
                })
                continue
            c = self._connection(r, pkts)
            if not c["wire"]["packets"]:
                raise RuntimeError(f"{self.name}: connection {c['client']}:{c['client_port']} -> "
                                   f"{c['server_ip']}:{c['server_port']} is missing from the capture")
            conns.append(c)
        for i, c in enumerate(conns, 1):
            c["id"] = f"c{i:02d}"
        for i, d in enumerate(dns, 1):
            d["id"] = f"d{i:02d}"
        caps = list(pcapio.read_packets(pcap_path))
        return {
            "schema": "pcapaudit-lab-truth/1",
            "scenario": self.name,
            "description": " ".join(self.description.split()),
            "recorded_with": self.command,
            "recorded_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "capture": {"file": self.pcap_name, "format": self.fmt, "linktype": "EN10MB (Ethernet)",
                        "interface": " + ".join(f"{i} in namespace {r}" for r, i in self.capture_points),
                        "vantage_point": "; ".join(ROLE_DESCRIPTIONS.get(r, r) for r, _ in self.capture_points)
                        + ("" if len(self.capture_points) == 1 else
                           " (captured on each interface at once and merged by timestamp, like a SPAN of both ports)"),
                        "packets": len(caps)},
            "lab": {"device": H.DEVICE, "android_device": H.ANDROID, "gateway": H.LAN_GW, "resolver": H.RESOLVER,
                    "explicit_proxy": f"{H.PROXY}:{H.PROXY_PORT}",
                    "lab_public_issuer": labpki.PUBLIC_INT["CN"], "lab_public_root": labpki.PUBLIC_ROOT["CN"],
                    "inspection_issuer": labpki.INSPECTION_CA["CN"]},
            **({"tenants": self.tenants} if self.tenants else {}),
            "firewall": self.firewall_rules,
            "middleboxes": self.middleboxes,
            "notes": self.notes,
            "dns": dns,
            "connections": conns,
        }

    def _connection(self, r: dict, pkts: list) -> dict:
        c = {"id": "", "actor": r.get("label"), "client": r["client"], "client_port": r["client_port"],
             "server_ip": r["server_ip"], "server_port": r["server_port"], "transport": r["transport"]}
        tls = r["op"] == "tls"
        app = APP_PROTOCOL.get(r.get("app"), r.get("app"))
        c["app_protocol"] = ("tls" if tls and not app else (f"tls/{app}" if tls else app))
        if r.get("connect_target"):
            c["app_protocol"] = "http-connect" + ("" if r["outcome"].startswith("proxy_") else "+" + c["app_protocol"])
        if r.get("host"):
            c["host"] = r["host"]
        if r.get("connect_target"):
            c["connect_target"] = r["connect_target"]
            c["via_proxy"] = True
        if tls:
            c["sni"] = r.get("sni")
            c["client_trusts"] = {"public": "lab public root only (pinned)",
                                  "inspection": "lab public root + Corporate Inspection CA (unpinned)"}.get(r.get("trust"))
        facts = pcapio.flow_facts(pkts, r["client"], r["client_port"], r["server_ip"], r["server_port"],
                                  r["transport"])
        outcome = r["outcome"]
        if outcome == "refused":
            unreach = [i for i in facts.get("icmp", []) if i["code"] == 3]
            outcome = "icmp_unreachable" if unreach else ("rst_on_syn" if facts.get("rst_from_server") else "refused")
        if outcome == "icmp_unreachable" and facts.get("icmp"):
            c["icmp"] = facts["icmp"][0]
        c["outcome"] = outcome
        ev = self._event_for(r["client"], r["client_port"])
        wire = None
        if tls and r["transport"] == "tcp":
            wire = pcapio.tls_wire(pkts, r["client"], r["client_port"], r["server_ip"], r["server_port"])
        if tls:
            version = r.get("tls_version") or (wire or {}).get("server_hello_version") or (ev or {}).get("tls_version")
            c["tls_version"] = version
            c["client_max_tls"] = r.get("client_max_tls")
            c["alpn"] = r.get("alpn")
            issuer = r.get("issuer")
            subject = r.get("subject")
            if issuer is None and ev and ev.get("cert") and outcome in ("client_alert_unknown_ca", "ok"):
                issuer, subject = ev["cert"]["issuer"], ev["cert"]["subject"]
            c["issuer"] = issuer
            c["subject"] = subject
            if wire is not None:
                c["certificate_visible_in_capture"] = wire["certificate_in_clear"]
                if wire["alerts"]:
                    c["alerts_in_clear"] = wire["alerts"]
            if outcome == "client_alert_unknown_ca":
                in_clear = any(a["from"] == "client" and a["code"] == 48 for a in (wire or {}).get("alerts", []))
                c["alert"] = {"from": "client", "description": "unknown_ca", "encrypted": not in_clear,
                              "client_error": r.get("error")}
            elif outcome == "server_fatal_alert":
                c["alert"] = {"from": "server", "description": r.get("alert"), "encrypted": False,
                              "client_error": r.get("error")}
        if r.get("http_request"):
            c["http"] = {"request": r["http_request"], "status": r.get("http_status")}
        if r.get("proxy_status"):
            c["proxy_response"] = r["proxy_status"]
        for k in ("ldap_bind_result", "smtp_banner", "smtp_starttls_offered", "hl7_ack", "rpc_secondary_address",
                  "ntp_stratum", "verify_code"):
            if r.get(k) is not None:
                c.setdefault("details", {})[k] = r[k]
        if ev and ev.get("svc") in ("mitm", "sni_filter", "http_proxy"):
            c["middlebox"] = {"kind": {"mitm": "tls_inspection_proxy", "sni_filter": "sni_filter",
                                       "http_proxy": "explicit_http_proxy"}[ev["svc"]],
                              "action": ev.get("action") or ev.get("result"),
                              "result": ev.get("result")}
            if ev["svc"] == "mitm" and ev.get("upstream"):
                c["middlebox"]["upstream_issuer"] = ev["upstream"]["issuer"]
        w = {k: v for k, v in facts.items() if k != "icmp"}
        c["wire"] = w
        if r.get("elapsed") is not None:
            c["client_gave_up_after_s"] = r["elapsed"]
        if r.get("error") and outcome not in ("client_alert_unknown_ca", "server_fatal_alert"):
            c["client_error"] = r["error"]
        return {k: v for k, v in c.items() if v is not None}

    # -------------------------------------------------------------- output
    def finish(self, readme_extra: str = "") -> dict:
        os.makedirs(self.outdir, exist_ok=True)
        out = os.path.join(self.outdir, self.pcap_name)
        raw = self.raw_pcaps[0]
        if len(self.raw_pcaps) > 1:
            raw = os.path.join(self.lab.workdir, f"{self.name}.merged.pcap")
            pcapio.merge_pcaps(self.raw_pcaps, raw)
        if self.fmt == "pcapng":
            pcapio.pcap_to_pcapng(raw, out, self.capture_iface,
                                  f"{self.capture_iface} in lab namespace {self.capture_role}",
                                  f"pcapaudit lab scenario {self.name}; recorded by {self.command}")
        else:
            shutil.copyfile(raw, out)
        os.chmod(out, 0o644)
        truth = self.build_truth(out)
        with open(os.path.join(self.outdir, self.truth_name), "w") as f:
            f.write(f"# Ground truth for {self.name}: generated by {self.command} from what the lab observed\n"
                    "# (client reports, server/middlebox logs, and the capture itself). Do not edit by hand.\n")
            yaml.safe_dump(truth, f, sort_keys=False, width=110, allow_unicode=True)
        if self.readme_name:
            with open(os.path.join(self.outdir, self.readme_name), "w") as f:
                f.write(self.readme(truth, out, readme_extra))
        return truth

    def readme(self, truth: dict, pcap_path: str, extra: str) -> str:
        size = os.path.getsize(pcap_path)
        lines = [f"# Scenario `{self.name}`", "", self.description, ""]
        if extra:
            lines += [extra.strip(), ""]
        lines += ["## What the capture contains", "",
                  f"`{self.pcap_name}`: {truth['capture']['packets']} packets, {size} bytes, format "
                  f"**{self.fmt}**{' (pcapng written by tests/lab/pcapio.py from the tcpdump capture; the file keeps the name input.pcap — detect the format by its magic number)' if self.fmt == 'pcapng' else ''}, "
                  f"Ethernet, captured on `{truth['capture']['interface']}` — {truth['capture']['vantage_point']}.", ""]
        if truth["dns"]:
            lines += ["DNS (resolver 198.51.100.53, dnsmasq):", "", "| qname | type | transport | rcode | answers | outcome |",
                      "|---|---|---|---|---|---|"]
            for d in truth["dns"]:
                lines.append(f"| {d['qname']} | {d['qtype']} | {d['transport']} | {d['rcode']} | "
                             f"{', '.join(d['answers']) or '-'} | {d['outcome']} |")
            lines.append("")
        lines += ["Connections:", "", "| id | actor | client | server | name (SNI/host) | TLS | issuer | outcome |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in truth["connections"]:
            name = c.get("sni") or c.get("connect_target") or c.get("host") or "-"
            iss = (c.get("issuer") or {}).get("cn", "-")
            lines.append(f"| {c['id']} | {c.get('actor') or '-'} | {c['client']}:{c['client_port']} | "
                         f"{c['server_ip']}:{c['server_port']}/{c['transport']} | {name} | {c.get('tls_version') or '-'} | "
                         f"{iss} | **{c['outcome']}** |")
        lines.append("")
        if self.firewall_rules:
            lines += ["Firewall (nftables in the `fw` namespace):", ""] + [f"* `{r}`" for r in self.firewall_rules] + [""]
        if self.middleboxes:
            lines += ["Middleboxes:", ""] + [f"* {m['kind']}: {m.get('summary', '')}" for m in self.middleboxes] + [""]
        if self.notes:
            lines += ["Notes:", ""] + [f"* {n}" for n in self.notes] + [""]
        lines += ["## How it was recorded", "",
                  f"Recorded {truth['recorded_at']} in the pcapaudit lab (tests/lab/: Linux network namespaces "
                  "dev / fw / inet / srv / corp / proxy joined by veth pairs, real servers and middleboxes in "
                  "Python `ssl`/sockets, dnsmasq as resolver, a lab PKI generated at run time) with:", "",
                  "```", f"sudo {self.command}", "```", "",
                  "The command rebuilds the lab from scratch (fresh keys, random client ports), so a re-recording "
                  "has the same structure but different ports, timestamps and key material; `truth.yaml` is "
                  "regenerated from the new run at the same time.", "",
                  f"Tools: {', '.join(f'{k} {v}' for k, v in tool_versions().items() if v)}.", "",
                  "`truth.yaml` lists every DNS exchange and connection seen in the capture with the outcome "
                  "observed by the lab; see tests/lab/README.md for the field meanings.", ""]
        return "\n".join(lines)
