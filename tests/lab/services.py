"""Lab service daemon: real servers and middleboxes, run inside one namespace.

    ip netns exec NS python3 -m tests.lab.services CONFIG.json

CONFIG = {"name": "inet", "log": "/path/events.jsonl", "pki": "/path/pki", "services": [SPEC, ...]}

SPEC kinds (all listeners bind a specific ip:port):
  {"kind": "tcp", "ip", "port", "app": APP, "tls": null | TLS}
        TLS = {"hosts": [...], "hierarchy": "public"|"inspection", "min": "TLSv1.2", "max": "TLSv1.3",
               "alpn": [...], "ciphers": "OpenSSL cipher string" | null}
        APP = http | h2 | courier | apns-binary | apns-feedback | ldap | smtp | mllp | dcerpc | none
  {"kind": "udp", "ip", "port", "app": "ntp" | "drop"}
  {"kind": "mitm", "ip", "port", "bypass": [suffixes], "min", "max"}    transparent TLS interception
  {"kind": "sni_filter", "ip", "port", "rst": [names], "silent": [names]} transparent SNI filter
  {"kind": "http_proxy", "ip", "port", "deny": {host: 403|407}, "resolver": ip}  explicit CONNECT proxy

The daemon prints READY once every listener is bound, logs one JSON line per connection/event to the
log file (client ip/port, SNI, certificate presented, result), and exits on SIGTERM/SIGINT.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

from . import dns as labdns
from . import pki as labpki
from . import protocols as P

VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
            "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1": ssl.TLSVersion.TLSv1}
SO_ORIGINAL_DST = 80

_log_lock = threading.Lock()
_log_file = None
_ns_name = "?"


def log(event: dict) -> None:
    event = {"ts": round(time.time(), 6), "ns": _ns_name, **event}
    with _log_lock:
        _log_file.write(json.dumps(event, sort_keys=True) + "\n")
        _log_file.flush()


def original_dst(conn: socket.socket) -> tuple[str, int]:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def suffix_match(name: str | None, patterns) -> bool:
    """'x.com' matches x.com and any name under it; '*.x.com' only names under x.com."""
    if not name:
        return False
    name = name.lower().rstrip(".")
    for p in patterns:
        p = p.lower()
        if p.startswith("*."):
            if name.endswith(p[1:]):
                return True
        elif name == p or name.endswith("." + p):
            return True
    return False


def splice(a: socket.socket, b: socket.socket, tag: str = "") -> None:
    """Copy bytes both ways until both directions are closed."""
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join(30)
    for s in (a, b):
        try:
            s.close()
        except OSError:
            pass


class TLSFactory:
    """SSLContexts per (hierarchy, host) with optional SNI-based switching."""

    def __init__(self, issuer: labpki.Issuer):
        self.issuer = issuer
        self._cache = {}
        self._lock = threading.Lock()

    def _build(self, host: str, hierarchy: str, spec: dict) -> ssl.SSLContext:
        """A new server context for ``host``'s leaf certificate, configured from ``spec``."""
        chain, keyp = self.issuer.leaf(host, hierarchy, spec.get("profile"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = VERSIONS[spec.get("min") or "TLSv1.2"]
        ctx.maximum_version = VERSIONS[spec.get("max") or "TLSv1.3"]
        if spec.get("ciphers"):
            ctx.set_ciphers(spec["ciphers"])
        if spec.get("alpn"):
            ctx.set_alpn_protocols(spec["alpn"])
        ctx.load_cert_chain(chain, keyp)
        ctx._lab_cert = labpki.describe_pem_file(chain)
        ctx._lab_cert["hierarchy"] = hierarchy
        return ctx

    def context(self, host: str, hierarchy: str, spec: dict) -> ssl.SSLContext:
        key = (host, hierarchy, spec.get("min"), spec.get("max"), tuple(spec.get("alpn") or ()),
               spec.get("ciphers"), spec.get("profile"))
        with self._lock:
            ctx = self._cache.get(key)
            if ctx is None:
                ctx = self._cache[key] = self._build(host, hierarchy, spec)
            return ctx

    def server_context(self, spec: dict) -> ssl.SSLContext:
        hosts = spec["hosts"]
        hierarchy = spec.get("hierarchy", "public")
        others = {h.lower(): self.context(h, hierarchy, spec) for h in hosts}

        def on_sni(sslobj, server_name, _ctx):
            sslobj._lab_sni = server_name
            if server_name and server_name.lower() in others:
                sslobj.context = others[server_name.lower()]
            return None
        # a dedicated base context per listener, so the callback never leaks between listeners; it
        # switches certificates by SNI and records the SNI even when there is a single certificate
        base = self._build(hosts[0], hierarchy, spec)
        base.sni_callback = on_sni
        return base


def tls_info(ss: ssl.SSLSocket) -> dict:
    return {"tls_version": ss.version(), "cipher": (ss.cipher() or [None])[0],
            "alpn": ss.selected_alpn_protocol(), "sni": getattr(ss, "_lab_sni", None),
            "cert": getattr(ss.context, "_lab_cert", None)}


# ------------------------------------------------------------------------------------- apps
def app_http(sock, ev):
    head, body = P.http_read_message(sock)
    line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    ev["request"] = line
    host = next((l.split(b":", 1)[1].strip().decode() for l in head.split(b"\r\n")[1:]
                 if l.lower().startswith(b"host:")), None)
    ev["host"] = host
    if not head:
        return
    path = line.split(" ")[1] if " " in line else "/"
    if "captive" in (host or "") or path.startswith("/hotspot-detect"):
        resp = P.http_response(200, "OK", b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
                               "text/html", server="AkamaiGHost")
    elif line.startswith("POST /ocsp") or "ocsp" in (host or ""):
        resp = P.http_response(200, "OK", b"\x30\x03\x0a\x01\x06", "application/ocsp-response")  # unauthorized
    elif line.startswith("POST"):
        resp = P.http_response(200, "OK", b'{"status":"success","nextPollSeconds":300}', "application/json")
    else:
        resp = P.http_response(200, "OK", b'{"status":"ok"}\n', "application/json")
    sock.sendall(resp)
    ev["status"] = 200


def app_h2(sock, ev):
    data = P.recv_exact(sock, len(P.H2_PREFACE))
    ev["preface"] = data == P.H2_PREFACE
    sock.sendall(P.h2_settings({3: 1000, 4: 65535, 5: 16384}) + P.h2_settings(ack=True))
    rest = P.recv_until_eof(sock)
    ev["bytes_after_preface"] = len(rest)


def app_courier(sock, ev):
    data = sock.recv(4096)
    ev["bytes_in"] = len(data)
    sock.sendall(b"\x08\x00\x00\x00\x05\x01\x00\x01\x00\x00")   # opaque courier ack
    ev["bytes_after"] = len(P.recv_until_eof(sock))


def app_apns_binary(sock, ev):
    data = P.recv_until_eof(sock)
    ev["bytes_in"] = len(data)
    ev["command"] = data[0] if data else None


def app_apns_feedback(sock, ev):
    sock.sendall(P.apns_feedback_tuple(P.device_token("stale-device")))
    ev["sent_tuples"] = 1


def app_ldap(sock, ev):
    ops = []
    while True:
        try:
            tag, value, _ = P.ber_read(sock)
        except ConnectionError:
            break
        msgid, op, opval = P.ldap_parse(value)
        if op == 0x60:
            kids = P.ber_children(opval)
            ops.append({"op": "bindRequest", "dn": kids[1][1].decode(), "auth": "simple" if kids[2][0] == 0x80 else "sasl"})
            sock.sendall(P.ldap_message(msgid, P.ldap_result(0x61, 0)))
        elif op == 0x63:
            ops.append({"op": "searchRequest"})
            sock.sendall(P.ldap_search_entry(msgid, "CN=Jane Doe,OU=Staff,DC=corp,DC=example",
                                             {"sAMAccountName": ["jdoe"], "mail": ["jane.doe@corp.example"],
                                              "memberOf": ["CN=Mobile Users,OU=Groups,DC=corp,DC=example"]})
                         + P.ldap_message(msgid, P.ldap_result(0x65, 0)))
        elif op == 0x42:
            ops.append({"op": "unbindRequest"})
            break
        else:
            ops.append({"op": hex(op)})
            break
    ev["ldap"] = ops


def app_smtp(sock, ev):
    f = sock.makefile("rb")
    sock.sendall(b"220 smtp.corp.example ESMTP Postfix (Debian/GNU)\r\n")
    cmds = []
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.strip().decode(errors="replace")
        cmds.append(cmd.split(" ")[0].upper())
        u = cmd.upper()
        if u.startswith("EHLO"):
            sock.sendall(b"250-smtp.corp.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
                         b"250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n")
        elif u.startswith("MAIL") or u.startswith("RCPT"):
            sock.sendall(b"250 2.1.0 Ok\r\n" if u.startswith("MAIL") else b"250 2.1.5 Ok\r\n")
        elif u == "DATA":
            sock.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            while True:
                l2 = f.readline()
                if not l2 or l2 in (b".\r\n", b".\n"):
                    break
            sock.sendall(b"250 2.0.0 Ok: queued as 4F2A31C0A1\r\n")
        elif u == "QUIT":
            sock.sendall(b"221 2.0.0 Bye\r\n")
            break
        elif u == "STARTTLS":
            sock.sendall(b"502 5.5.1 Error: command not implemented\r\n")
        else:
            sock.sendall(b"250 2.0.0 Ok\r\n")
    ev["smtp_commands"] = cmds


def app_mllp(sock, ev):
    msg = P.mllp_read(sock)
    ev["hl7_type"] = msg.split(b"\r", 1)[0].split(b"|")[8].decode(errors="replace")
    sock.sendall(P.mllp_frame(P.hl7_ack(msg)))
    P.recv_until_eof(sock)


def app_dcerpc(sock, ev, port):
    pdu = P.dcerpc_read(sock)
    info = P.dcerpc_parse(pdu)
    ev["rpc_bind_abstract"] = info.get("abstract")
    sock.sendall(P.dcerpc_bind_ack(pdu, str(port)))
    P.recv_until_eof(sock)


def app_none(sock, ev):
    P.recv_until_eof(sock)


APPS = {"http": app_http, "h2": app_h2, "courier": app_courier, "apns-binary": app_apns_binary,
        "apns-feedback": app_apns_feedback, "ldap": app_ldap, "smtp": app_smtp, "mllp": app_mllp,
        "none": app_none}


# --------------------------------------------------------------------------------- listeners
class Daemon:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.issuer = labpki.Issuer(cfg["pki"], cache_dir=os.path.join(cfg["pki"], "leaves-" + cfg["name"]))
        self.tls = TLSFactory(self.issuer)
        self.socks = []

    def listen_tcp(self, ip, port, transparent=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(64)
        self.socks.append(s)
        return s

    def start(self):
        for spec in self.cfg["services"]:
            kind = spec["kind"]
            if kind == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((spec["ip"], spec["port"]))
                self.socks.append(s)
                threading.Thread(target=self.udp_loop, args=(s, spec), daemon=True).start()
                continue
            s = self.listen_tcp(spec.get("ip", "0.0.0.0"), spec["port"])
            handler = {"tcp": self.handle_tcp, "mitm": self.handle_mitm, "sni_filter": self.handle_sni_filter,
                       "http_proxy": self.handle_proxy}[kind]
            if kind == "tcp" and spec.get("tls"):
                spec["_ctx"] = self.tls.server_context(spec["tls"])   # build certificates before READY
            threading.Thread(target=self.accept_loop, args=(s, spec, handler), daemon=True).start()

    def accept_loop(self, s, spec, handler):
        while True:
            try:
                conn, addr = s.accept()
            except OSError:
                return
            threading.Thread(target=self.run_handler, args=(handler, conn, addr, spec), daemon=True).start()

    def run_handler(self, handler, conn, addr, spec):
        ev = {"svc": spec["kind"], "listen": f"{spec.get('ip', '0.0.0.0')}:{spec['port']}",
              "client": addr[0], "client_port": addr[1]}
        try:
            handler(conn, spec, ev)
        except Exception as exc:  # noqa: BLE001 - every failure is an observation worth logging
            ev.setdefault("result", "error")
            ev["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            log(ev)
            try:
                conn.close()
            except OSError:
                pass

    # -- plain/TLS servers
    def handle_tcp(self, conn, spec, ev):
        conn.settimeout(10)
        app = spec.get("app", "none")
        ev["app"] = app
        sock = conn
        if spec.get("tls"):
            ss = spec["_ctx"].wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            ev["cert"] = spec["_ctx"]._lab_cert
            try:
                ss.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                ev["result"] = "handshake_failed"
                ev["error"] = getattr(exc, "reason", None) or str(exc)
                ev["sni"] = getattr(ss, "_lab_sni", None)
                return
            ev.update(tls_info(ss))
            sock = ss
        if app == "dcerpc":
            app_dcerpc(sock, ev, spec["port"])
        else:
            APPS[app](sock, ev)
        ev.setdefault("result", "ok")
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.unwrap()
            except (ssl.SSLError, OSError):
                pass

    def udp_loop(self, s, spec):
        while True:
            try:
                data, addr = s.recvfrom(4096)
            except OSError:
                return
            ev = {"svc": "udp", "listen": f"{spec['ip']}:{spec['port']}", "client": addr[0],
                  "client_port": addr[1], "app": spec["app"], "bytes_in": len(data)}
            if spec["app"] == "ntp" and len(data) >= 48:
                s.sendto(P.ntp_response(data), addr)
                ev["result"] = "ok"
            else:
                ev["result"] = "no_reply"
            log(ev)

    # -- transparent TLS interception (TLS-inspection appliance)
    def handle_mitm(self, conn, spec, ev):
        dst = original_dst(conn)
        ev["orig_dst"], ev["orig_port"] = dst
        conn.settimeout(10)
        peek = b""
        for _ in range(50):
            peek = conn.recv(16384, socket.MSG_PEEK)
            if len(peek) >= 5 and len(peek) >= 5 + struct.unpack("!H", peek[3:5])[0]:
                break
            time.sleep(0.02)
        hello = P.parse_client_hello(peek)
        ev["sni"] = hello["sni"]
        ev["offered_alpn"] = hello["alpn"]
        if suffix_match(hello["sni"], spec.get("bypass", [])):
            ev["action"] = "bypass"
            up = socket.create_connection(dst, timeout=5)
            ev["result"] = "spliced"
            conn.settimeout(None)
            up.settimeout(None)
            splice(conn, up)
            return
        ev["action"] = "intercept"
        # like most inspection appliances: downgrade to HTTP/1.1 when the client offers it
        alpn = ["http/1.1"] if "http/1.1" in hello["alpn"] else (hello["alpn"] or None)
        tspec = {"min": spec.get("min"), "max": spec.get("max"), "alpn": alpn,
                 "profile": spec.get("leaf_profile")}
        ctx = self.tls.context(hello["sni"] or dst[0], "inspection", tspec)
        ev["cert"] = ctx._lab_cert
        ss = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            ss.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            ev["result"] = "client_rejected"
            ev["error"] = getattr(exc, "reason", None) or str(exc)
            return
        ev.update({k: v for k, v in tls_info(ss).items() if k != "cert"})
        # the client accepted our certificate: now talk to the real server
        uctx = ssl.create_default_context(cafile=self.issuer.trust_public)
        if alpn:
            uctx.set_alpn_protocols(alpn)
        raw = socket.create_connection(dst, timeout=5)
        try:
            up = uctx.wrap_socket(raw, server_hostname=hello["sni"])
        except (ssl.SSLError, OSError) as exc:
            ev["result"] = "upstream_failed"
            ev["error"] = str(exc)
            return
        ev["upstream"] = {"tls_version": up.version(), "issuer": labpki.describe_der(up.getpeercert(True))["issuer"]}
        ev["result"] = "intercepted"
        ss.settimeout(None)
        up.settimeout(None)
        splice(ss, up)

    # -- transparent SNI filter
    def handle_sni_filter(self, conn, spec, ev):
        dst = original_dst(conn)
        ev["orig_dst"], ev["orig_port"] = dst
        try:
            rec = P.read_client_hello(conn, timeout=10)
        except (ConnectionError, OSError) as exc:
            ev["result"] = "no_client_hello"
            ev["error"] = str(exc)
            return
        hello = P.parse_client_hello(rec)
        ev["sni"] = hello["sni"]
        if suffix_match(hello["sni"], spec.get("rst", [])):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ev["action"] = "reset"
            ev["result"] = "reset"
            return            # close() with linger 0 sends RST
        if suffix_match(hello["sni"], spec.get("silent", [])):
            ev["action"] = "silent"
            conn.settimeout(60)
            P.recv_until_eof(conn)
            ev["result"] = "silent_until_client_closed"
            return
        ev["action"] = "pass"
        up = socket.create_connection(dst, timeout=5)
        up.sendall(rec)
        ev["result"] = "passed"
        conn.settimeout(None)
        up.settimeout(None)
        splice(conn, up)

    # -- explicit HTTP proxy
    def handle_proxy(self, conn, spec, ev):
        conn.settimeout(10)
        head, _ = P.http_read_message(conn)
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        ev["request"] = line
        parts = line.split(" ")
        if len(parts) < 2 or parts[0] != "CONNECT":
            conn.sendall(P.http_response(405, "Method Not Allowed", b"", server="lab-proxy"))
            ev["result"] = "405"
            return
        host, _, port = parts[1].rpartition(":")
        ev["target"] = parts[1]
        deny = {k.lower(): v for k, v in (spec.get("deny") or {}).items()}
        code = deny.get(host.lower())
        if code == 407:
            conn.sendall(P.http_response(407, "Proxy Authentication Required",
                                         b"<html><body>Proxy authentication required</body></html>", "text/html",
                                         {"Proxy-Authenticate": 'Basic realm="Example Corp Web Proxy"'},
                                         server="lab-proxy"))
            ev["result"] = "407"
            return
        if code == 403:
            conn.sendall(P.http_response(403, "Forbidden",
                                         b"<html><body>Access to this site is blocked by policy</body></html>",
                                         "text/html", server="lab-proxy"))
            ev["result"] = "403"
            return
        ans = labdns.query(spec["resolver"], host, "A")
        ev["resolved"] = ans.get("answers")
        if not ans.get("answers"):
            conn.sendall(P.http_response(502, "Bad Gateway", b"", server="lab-proxy"))
            ev["result"] = "502"
            return
        up = socket.create_connection((ans["answers"][0], int(port)), timeout=5)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        ev["result"] = "200"
        conn.settimeout(None)
        up.settimeout(None)
        splice(conn, up)


def main(argv=None) -> int:
    global _log_file, _ns_name
    argv = argv if argv is not None else sys.argv[1:]
    with open(argv[0]) as f:
        cfg = json.load(f)
    _ns_name = cfg.get("name", "?")
    _log_file = open(cfg["log"], "a")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    d = Daemon(cfg)
    d.start()
    print("READY", flush=True)
    while not stop.wait(0.5):
        pass
    for s in d.socks:
        try:
            s.close()
        except OSError:
            pass
    _log_file.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
