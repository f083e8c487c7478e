"""Lab client: runs a plan of DNS lookups and connections inside a namespace and reports what happened.

    ip netns exec NS python3 -m tests.lab.client PLAN.json      (prints one JSON result per line)

PLAN = {"resolver": ip, "pki": dir, "steps": [STEP, ...]}
STEP ops:
  {"op": "dns", "qname", "qtype": "A", "transport": "udp"|"tcp"}
  {"op": "tls", "host", "port", "ip"?, "sni"?, "trust": "public"|"inspection", "min"?, "max"?,
        "alpn"?, "ciphers"?, "app": APP, "src"?, "proxy"?: {"ip", "port"}, "connect_timeout"?, "timeout"?}
  {"op": "tcp", "host"|"ip", "port", "app": APP, ...}         cleartext TCP
  {"op": "udp", "host"|"ip", "port", "app": "ntp"|"raw", "payload_hex"?, "timeout"?}
  {"op": "sleep", "seconds"}
APP = http | http-post | h2 | courier | apns-binary | apns-feedback | ldap | smtp | mllp |
      dcerpc-epm | dcerpc-icpr | none
Without "ip" the client first resolves "host" (A, UDP) through the resolver and reports that lookup too;
if the lookup gives no usable address the connection is not attempted.

Outcomes reported (see tests/lab/README.md): ok, cleartext_ok, syn_dropped, refused (RST or ICMP port
unreachable; the recorder tells them apart from the capture), icmp_unreachable, rst_after_clienthello,
silence_after_clienthello, eof_after_clienthello, client_alert_unknown_ca, server_fatal_alert,
proxy_403, proxy_407, proxy_<code>, udp_no_reply, dns_* (see dns.py).
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import ssl
import sys
import time

from . import dns as labdns
from . import pki as labpki
from . import protocols as P

VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
            "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _connect(step: dict, ip: str, res: dict) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(step.get("connect_timeout", 3.0))
    s.bind((step.get("src") or "", 0))
    res["client"] = step.get("src") or labdns.source_address_for(ip)
    res["client_port"] = s.getsockname()[1]
    t0 = time.time()
    try:
        s.connect((ip, step["connect_port"]))
    except socket.timeout:
        res["outcome"] = "syn_dropped"
    except ConnectionRefusedError:
        res["outcome"] = "refused"
    except OSError as exc:
        res["error"] = f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
        res["outcome"] = "icmp_unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                               errno.EACCES, errno.EPERM) else "connect_error"
    if "outcome" in res:
        res["elapsed"] = round(time.time() - t0, 3)
        s.close()
        return None
    return s


def _proxy_connect(s: socket.socket, target: str, res: dict) -> bool:
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: com.apple.trustd/2.2\r\n"
              f"Proxy-Connection: keep-alive\r\n\r\n".encode())
    head, _ = P.http_read_message(s)
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    res["proxy_status"] = status
    code = int(status.split(" ")[1]) if len(status.split(" ")) > 1 else 0
    if code != 200:
        res["outcome"] = f"proxy_{code}"
        return False
    return True


def run_app(sock, step: dict, res: dict) -> None:
    app = step.get("app", "none")
    host = step.get("host") or step.get("ip")
    if app in ("http", "http-post"):
        path = step.get("path", "/")
        if app == "http":
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {step.get('ua', 'CaptiveNetworkSupport-443 wispr')}\r\n"
                   f"Accept: */*\r\nConnection: close\r\n\r\n").encode()
        else:
            body = step.get("body", '{"agent":"lab"}').encode()
            req = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {step.get('ua', 'lab-agent')}\r\n"
                   f"Content-Type: {step.get('ctype', 'application/json')}\r\nContent-Length: {len(body)}\r\n"
                   f"Connection: close\r\n\r\n").encode() + body
        sock.sendall(req)
        head, _ = P.http_read_message(sock)
        res["http_status"] = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else None
        res["host"] = host
        res["http_request"] = req.split(b"\r\n", 1)[0].decode()
    elif app == "h2":
        sock.sendall(P.H2_PREFACE + P.h2_settings({2: 0, 4: 4194304, 3: 100}))
        frames = sock.recv(4096)
        res["h2_server_frames_bytes"] = len(frames)
        sock.sendall(P.h2_settings(ack=True) + P.h2_goaway())
    elif app == "courier":
        sock.sendall(b"\x07\x00\x00\x00\x28" + P.device_token("courier") + b"\x00\x00\x00\x01\x00\x00\x00\x00")
        res["bytes_back"] = len(sock.recv(4096))
    elif app == "apns-binary":
        sock.sendall(P.apns_binary_notification(P.device_token("device-1"),
                                                {"mdm": "5a8b0e2c-6a4f-4a15-9d36-1f6d0e7c2b11"}))
        time.sleep(0.3)
    elif app == "apns-feedback":
        res["bytes_back"] = len(P.recv_until_eof(sock))
    elif app == "ldap":
        sock.sendall(P.ldap_bind_request(1, P.LDAP_BIND_DN, P.LDAP_BIND_PASSWORD))
        _, value, _ = P.ber_read(sock)
        _, op, opval = P.ldap_parse(value)
        res["ldap_bind_result"] = int.from_bytes(P.ber_children(opval)[0][1], "big")
        if step.get("search", True):
            sock.sendall(P.ldap_search_request(2, P.LDAP_BASE, "sAMAccountName", "jdoe",
                                               ["mail", "memberOf", "sAMAccountName"]))
            n = 0
            while True:
                _, value, _ = P.ber_read(sock)
                _, op, _ = P.ldap_parse(value)
                n += 1
                if op == 0x65:
                    break
            res["ldap_search_messages"] = n
        sock.sendall(P.ldap_unbind(3))
    elif app == "smtp":
        f = sock.makefile("rb")
        banner = f.readline().decode().strip()
        res["smtp_banner"] = banner

        def cmd(c, multi=False):
            sock.sendall(c.encode() + b"\r\n")
            lines = [f.readline().decode().rstrip()]
            while multi and lines[-1][3:4] == "-":
                lines.append(f.readline().decode().rstrip())
            return lines
        ehlo = cmd("EHLO jamfpro.corp.example", multi=True)
        res["smtp_starttls_offered"] = any("STARTTLS" in l for l in ehlo)
        cmd("MAIL FROM:<jamf@corp.example>")
        cmd("RCPT TO:<it-alerts@corp.example>")
        cmd("DATA")
        sock.sendall(b"From: Jamf Pro <jamf@corp.example>\r\nTo: it-alerts@corp.example\r\n"
                     b"Subject: Enrollment invitation\r\n\r\nA device enrolled: C02XL0ABJGH5\r\n.\r\n")
        f.readline()
        res["smtp_quit"] = cmd("QUIT")[0]
    elif app == "mllp":
        sock.sendall(P.mllp_frame(P.hl7_adt_a01()))
        ack = P.mllp_read(sock)
        res["hl7_ack"] = ack.split(b"\r")[1].decode(errors="replace") if b"\r" in ack else ack.decode()
    elif app in ("dcerpc-epm", "dcerpc-icpr"):
        u, major = (P.EPM_UUID, 3) if app == "dcerpc-epm" else (P.ICPR_UUID, 0)
        sock.sendall(P.dcerpc_bind(u, major, 0))
        ack = P.dcerpc_parse(P.dcerpc_read(sock))
        res["rpc_ptype"] = ack["ptype"]
        res["rpc_secondary_address"] = ack.get("secondary_address")
    elif app == "none":
        pass
    else:
        raise ValueError(f"unknown app {app}")


def step_conn(step: dict, plan: dict, tls: bool) -> dict:
    res = {"op": "tls" if tls else "tcp", "label": step.get("label"), "host": step.get("host"),
           "transport": "tcp", "app": step.get("app", "none")}
    target_ip = step.get("ip")
    proxy = step.get("proxy")
    res["server_ip"] = proxy["ip"] if proxy else target_ip
    res["server_port"] = proxy["port"] if proxy else step["port"]
    if tls:
        res["trust"] = step.get("trust", "public")
        res["pinned"] = res["trust"] == "public"
    if proxy:
        res["connect_target"] = f"{step['host']}:{step['port']}"
        res["target_port"] = step["port"]
    step = dict(step, connect_port=res["server_port"])
    s = _connect(step, res["server_ip"], res)
    if s is None:
        return res
    try:
        if proxy and not _proxy_connect(s, res["connect_target"], res):
            return res
        sock = s
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(plan["pki"], f"trust-{res['trust']}.pem"))
            if step.get("min"):
                ctx.minimum_version = VERSIONS[step["min"]]
            if step.get("max"):
                ctx.maximum_version = VERSIONS[step["max"]]
            res["client_max_tls"] = step.get("max", "TLSv1.3")
            if step.get("ciphers"):
                ctx.set_ciphers(step["ciphers"])
            if step.get("alpn"):
                ctx.set_alpn_protocols(step["alpn"])
            sni = step.get("sni", step.get("host"))
            res["sni"] = sni
            ss = ctx.wrap_socket(s, server_hostname=sni, do_handshake_on_connect=False)
            ss.settimeout(step.get("timeout", 3.0))
            try:
                ss.do_handshake()
            except ssl.SSLCertVerificationError as exc:
                res["outcome"] = "client_alert_unknown_ca"
                res["verify_code"] = exc.verify_code
                res["error"] = exc.verify_message
                return res
            except ssl.SSLError as exc:
                reason = exc.reason or str(exc)
                res["error"] = reason
                if "ALERT" in reason:
                    res["outcome"] = "server_fatal_alert"
                    res["alert"] = reason.split("ALERT_", 1)[1].lower() if "ALERT_" in reason else reason
                elif isinstance(exc, ssl.SSLEOFError) or "EOF" in reason:
                    res["outcome"] = "eof_after_clienthello"
                else:
                    res["outcome"] = "tls_error"
                return res
            except ConnectionResetError:
                res["outcome"] = "rst_after_clienthello"
                return res
            except socket.timeout:
                res["outcome"] = "silence_after_clienthello"
                return res
            res["tls_version"] = ss.version()
            res["cipher"] = ss.cipher()[0]
            res["alpn"] = ss.selected_alpn_protocol()
            der = ss.getpeercert(True)
            info = labpki.describe_der(der)
            res["issuer"] = info["issuer"]
            res["subject"] = info["subject"]
            sock = ss
        sock.settimeout(step.get("timeout", 3.0))
        run_app(sock, step, res)
        res["outcome"] = "ok" if tls else "cleartext_ok"
        if tls:
            try:
                sock.unwrap()
            except (ssl.SSLError, OSError):
                pass
    except (OSError, ValueError) as exc:
        res.setdefault("outcome", "app_error")
        res["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            s.close()
        except OSError:
            pass
    return res


def step_udp(step: dict, plan: dict) -> dict:
    res = {"op": "udp", "label": step.get("label"), "host": step.get("host"), "transport": "udp",
           "app": step.get("app", "raw"), "server_ip": step["ip"], "server_port": step["port"]}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(step.get("timeout", 2.0))
    s.bind((step.get("src") or "", 0))
    s.connect((step["ip"], step["port"]))
    res["client"], res["client_port"] = s.getsockname()[:2]
    payload = P.ntp_request() if res["app"] == "ntp" else bytes.fromhex(step.get("payload_hex", "00")) 
    tries = step.get("tries", 1)
    try:
        for _ in range(tries):
            s.send(payload)
            try:
                data = s.recv(4096)
                res["reply_bytes"] = len(data)
                if res["app"] == "ntp":
                    res["ntp_stratum"] = data[1]
                res["outcome"] = "cleartext_ok"
                break
            except socket.timeout:
                res["outcome"] = "udp_no_reply"
            except ConnectionRefusedError:
                res["outcome"] = "icmp_unreachable"
                break
    finally:
        s.close()
    res["datagrams_sent"] = tries
    return res


def run_plan(plan: dict, emit) -> None:
    cache = {}          # like the OS resolver cache: one lookup per name per plan
    for i, step in enumerate(plan["steps"]):
        op = step["op"]
        if op == "sleep":
            time.sleep(step["seconds"])
            continue
        if op == "dns":
            r = labdns.query(step.get("server", plan["resolver"]), step["qname"], step.get("qtype", "A"),
                             step.get("transport", "udp"), src=step.get("src"))
            if r.get("outcome") == "ok" and r.get("answers") and step.get("qtype", "A") == "A":
                cache[step["qname"]] = r["answers"][0]
            r["label"] = step.get("label")
            emit(r)
            continue
        step = dict(step)
        if not step.get("ip") and not step.get("proxy"):
            if step["host"] in cache and step.get("resolve") != "always":
                step["ip"] = cache[step["host"]]
            else:
                d = labdns.query(plan["resolver"], step["host"], "A", src=step.get("src"))
                d["label"] = step.get("label")
                emit(d)
                usable = [a for a in d.get("answers", []) if not ipaddress.ip_address(a).is_unspecified]
                if d.get("outcome") != "ok" or not usable:
                    continue
                step["ip"] = cache[step["host"]] = usable[0]
        if op == "udp":
            emit(step_udp(step, plan))
        else:
            emit(step_conn(step, plan, tls=(op == "tls")))
        if step.get("pause", 0.15):
            time.sleep(step.get("pause", 0.15))


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    with open(argv[0]) as f:
        plan = json.load(f)

    def emit(r):
        r["t"] = round(time.time(), 6)
        print(json.dumps(r, sort_keys=True), flush=True)
    run_plan(plan, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
