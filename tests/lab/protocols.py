"""Wire formats the lab speaks, built by hand with the standard library.

Every message here is a real, well-formed protocol message (Wireshark dissects all of them):
NTP v4, LDAPv3 (BER), HL7 v2.5 over MLLP, DCE/RPC v5 connection-oriented bind/bind_ack, SMTP,
APNs legacy binary frames (command 2) and feedback tuples, HTTP/2 preface + SETTINGS/GOAWAY,
HTTP/1.1, and a TLS ClientHello parser (SNI, ALPN, supported_versions) for the middleboxes.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import time
import uuid

# --------------------------------------------------------------------------------------------- NTP
NTP_EPOCH_DELTA = 2208988800


def ntp_ts(t: float | None = None) -> bytes:
    t = time.time() if t is None else t
    secs = int(t) + NTP_EPOCH_DELTA
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", secs, frac)


def ntp_request() -> bytes:
    # LI=0, VN=4, mode=3 (client); transmit timestamp set
    return bytes([0x23]) + b"\x00" * 39 + ntp_ts()


def ntp_response(request: bytes) -> bytes:
    now = time.time()
    hdr = struct.pack("!BBbb", 0x24, 1, request[2] if len(request) > 2 else 6, -20)   # LI 0, VN 4, mode 4, stratum 1
    hdr += struct.pack("!II", 0, 0x0000_0A00)                    # root delay, root dispersion
    hdr += b"GPS\x00"                                            # reference id (stratum 1)
    origin = request[40:48] if len(request) >= 48 else b"\x00" * 8
    return hdr + ntp_ts(now - 16) + origin + ntp_ts(now) + ntp_ts(now + 0.000012)


# -------------------------------------------------------------------------------------------- BER
def ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + ber_len(len(value)) + value


def ber_int(n: int, tag: int = 0x02) -> bytes:
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return tlv(tag, raw)


def ber_str(s: str | bytes, tag: int = 0x04) -> bytes:
    return tlv(tag, s.encode() if isinstance(s, str) else s)


def ber_read(sock_or_buf, *, from_socket: bool = True):
    """Read one BER element; returns (tag, value_bytes, raw_bytes)."""
    if from_socket:
        hdr = recv_exact(sock_or_buf, 2)
        tag, l0 = hdr[0], hdr[1]
        if l0 & 0x80:
            ext = recv_exact(sock_or_buf, l0 & 0x7F)
            length = int.from_bytes(ext, "big")
            hdr += ext
        else:
            length = l0
        value = recv_exact(sock_or_buf, length)
        return tag, value, hdr + value
    buf = sock_or_buf
    tag, l0 = buf[0], buf[1]
    off = 2
    if l0 & 0x80:
        n = l0 & 0x7F
        length = int.from_bytes(buf[2:2 + n], "big")
        off += n
    else:
        length = l0
    return tag, buf[off:off + length], buf[:off + length]


def ber_children(value: bytes) -> list:
    out = []
    while value:
        tag, v, raw = ber_read(value, from_socket=False)
        out.append((tag, v))
        value = value[len(raw):]
    return out


# ------------------------------------------------------------------------------------------- LDAP
def ldap_message(msgid: int, op: bytes) -> bytes:
    return tlv(0x30, ber_int(msgid) + op)


def ldap_bind_request(msgid: int, dn: str, password: str) -> bytes:
    return ldap_message(msgid, tlv(0x60, ber_int(3) + ber_str(dn) + ber_str(password, 0x80)))


def ldap_result(app_tag: int, code: int = 0, matched: str = "", diag: str = "") -> bytes:
    return tlv(app_tag, ber_int(code, 0x0A) + ber_str(matched) + ber_str(diag))


def ldap_search_request(msgid: int, base: str, attr: str, value: str, attrs: list[str]) -> bytes:
    filt = tlv(0xA3, ber_str(attr) + ber_str(value))                    # equalityMatch
    body = (ber_str(base) + ber_int(2, 0x0A) + ber_int(0, 0x0A) + ber_int(0) + ber_int(30)
            + tlv(0x01, b"\x00") + filt + tlv(0x30, b"".join(ber_str(a) for a in attrs)))
    return ldap_message(msgid, tlv(0x63, body))


def ldap_search_entry(msgid: int, dn: str, attrs: dict) -> bytes:
    pal = b"".join(tlv(0x30, ber_str(k) + tlv(0x31, b"".join(ber_str(v) for v in vals)))
                   for k, vals in attrs.items())
    return ldap_message(msgid, tlv(0x64, ber_str(dn) + tlv(0x30, pal)))


def ldap_unbind(msgid: int) -> bytes:
    return ldap_message(msgid, b"\x42\x00")


def ldap_parse(raw_value: bytes) -> tuple[int, int, bytes]:
    """(message_id, protocol_op_tag, op_value) of an LDAPMessage SEQUENCE value."""
    kids = ber_children(raw_value)
    msgid = int.from_bytes(kids[0][1], "big")
    return msgid, kids[1][0], kids[1][1]


LDAP_BIND_DN = "CN=svc-jamfpro,OU=Service Accounts,DC=corp,DC=example"
LDAP_BIND_PASSWORD = "Summer2024!jamf"
LDAP_BASE = "DC=corp,DC=example"

# ----------------------------------------------------------------------------------------- HL7/MLLP
MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"


def hl7_adt_a01(control_id: str = "MSG00001") -> bytes:
    ts = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    segs = [
        f"MSH|^~\\&|EPICADT|GENERAL_HOSPITAL|JAMF|JIM|{ts}||ADT^A01^ADT_A01|{control_id}|P|2.5",
        f"EVN|A01|{ts}",
        "PID|1||100234567^^^GENERAL_HOSPITAL^MR||DOE^JANE^Q||19800214|F|||100 MAIN ST^^SPRINGFIELD^IL^62701",
        "PV1|1|I|ICU^0412^01^GENERAL_HOSPITAL||||004777^ATTEND^AARON^A|||MED||||ADM|A0|",
    ]
    return ("\r".join(segs) + "\r").encode()


def hl7_ack(message: bytes) -> bytes:
    fields = message.split(b"\r", 1)[0].decode(errors="replace").split("|")
    control = fields[9] if len(fields) > 9 else "UNKNOWN"
    ts = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    segs = [f"MSH|^~\\&|JIM|JAMF|EPICADT|GENERAL_HOSPITAL|{ts}||ACK^A01^ACK|ACK{control[-5:]}|P|2.5",
            f"MSA|AA|{control}"]
    return ("\r".join(segs) + "\r").encode()


def mllp_frame(msg: bytes) -> bytes:
    return MLLP_START + msg + MLLP_END


def mllp_read(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(MLLP_END):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("EOF inside MLLP frame")
        buf += chunk
    return buf[1:-2]


# ---------------------------------------------------------------------------------------- DCE/RPC
EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"          # endpoint mapper, v3.0
ICPR_UUID = "91ae6020-9e3c-11cf-8d7c-00aa00c091be"         # ICertPassage (MS-ICPR, AD CS), v0.0
NDR_UUID = "8a885d04-1ceb-11c9-9fe8-08002b104860"          # NDR transfer syntax, v2.0
NDR64_UUID = "71710533-beba-4937-8319-b5dbef9ccc36"        # NDR64, v1.0


def _syntax(u: str, major: int, minor: int) -> bytes:
    return uuid.UUID(u).bytes_le + struct.pack("<HH", major, minor)


def _rpc_header(ptype: int, body: bytes, call_id: int) -> bytes:
    frag_len = 16 + len(body)
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, 0x03, b"\x10\x00\x00\x00", frag_len, 0, call_id) + body


def dcerpc_bind(abstract_uuid: str, major: int, minor: int, call_id: int = 2) -> bytes:
    ctxs = [(0, _syntax(NDR_UUID, 2, 0)), (1, _syntax(NDR64_UUID, 1, 0))]
    body = struct.pack("<HHI", 5840, 5840, 0) + struct.pack("<BBH", len(ctxs), 0, 0)
    for ctx_id, ts in ctxs:
        body += struct.pack("<HBB", ctx_id, 1, 0) + _syntax(abstract_uuid, major, minor) + ts
    return _rpc_header(11, body, call_id)


def dcerpc_parse(pdu: bytes) -> dict:
    ver, minor, ptype, flags, drep, frag_len, auth_len, call_id = struct.unpack("<BBBB4sHHI", pdu[:16])
    out = {"ptype": ptype, "call_id": call_id, "frag_len": frag_len}
    if ptype == 11 and len(pdu) >= 16 + 8 + 4 + 4 + 20:
        off = 16 + 8 + 4
        out["n_ctx"] = pdu[16 + 8]
        out["abstract"] = str(uuid.UUID(bytes_le=pdu[off + 4:off + 20]))
    if ptype == 12:
        off = 16 + 8
        alen = struct.unpack("<H", pdu[off:off + 2])[0]
        out["secondary_address"] = pdu[off + 2:off + 2 + alen - 1].decode()
    return out


def dcerpc_bind_ack(bind_pdu: bytes, secondary_address: str, assoc_group: int = 0x53F0) -> bytes:
    info = dcerpc_parse(bind_pdu)
    sec = secondary_address.encode() + b"\x00"
    body = struct.pack("<HHI", 5840, 5840, assoc_group) + struct.pack("<H", len(sec)) + sec
    pad = (-(16 + len(body))) % 4
    body += b"\x00" * pad
    n = info.get("n_ctx", 1)
    body += struct.pack("<BBH", n, 0, 0)
    # accept NDR (context 0), reject the rest with "proposed transfer syntaxes not supported"
    body += struct.pack("<HH", 0, 0) + _syntax(NDR_UUID, 2, 0)
    for _ in range(n - 1):
        body += struct.pack("<HH", 2, 2) + b"\x00" * 20
    return _rpc_header(12, body, info["call_id"])


def dcerpc_read(sock: socket.socket) -> bytes:
    hdr = recv_exact(sock, 16)
    frag_len = struct.unpack("<H", hdr[8:10])[0]
    return hdr + recv_exact(sock, frag_len - 16)


# -------------------------------------------------------------------------------------- APNs legacy
def apns_binary_notification(token: bytes, payload: dict, ident: int = 1) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    items = (struct.pack("!BH", 1, len(token)) + token + struct.pack("!BH", 2, len(body)) + body
             + struct.pack("!BHI", 3, 4, ident) + struct.pack("!BHI", 4, 4, int(time.time()) + 3600)
             + struct.pack("!BHB", 5, 1, 10))
    return struct.pack("!BI", 2, len(items)) + items


def apns_feedback_tuple(token: bytes) -> bytes:
    return struct.pack("!IH", int(time.time()) - 86400, len(token)) + token


# ----------------------------------------------------------------------------------------- HTTP/2
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack("!I", len(payload))[1:] + struct.pack("!BBI", ftype, flags, stream) + payload


def h2_settings(pairs: dict | None = None, ack: bool = False) -> bytes:
    if ack:
        return h2_frame(4, 1, 0)
    payload = b"".join(struct.pack("!HI", k, v) for k, v in (pairs or {}).items())
    return h2_frame(4, 0, 0, payload)


def h2_goaway(last_stream: int = 0, code: int = 0) -> bytes:
    return h2_frame(7, 0, 0, struct.pack("!II", last_stream, code))


# ------------------------------------------------------------------------------------------- HTTP
def http_read_message(sock: socket.socket, limit: int = 65536) -> tuple[bytes, bytes]:
    """Read an HTTP/1.x head and a Content-Length body. Returns (head, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return buf, b""
        buf += chunk
        if len(buf) > limit:
            break
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip() or 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head, body


def http_response(status: int, reason: str, body: bytes = b"", ctype: str = "text/plain",
                  extra: dict | None = None, server: str = "lab-httpd") -> bytes:
    hdrs = {"Server": server, "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "Content-Type": ctype, "Content-Length": str(len(body)), "Connection": "close"}
    hdrs.update(extra or {})
    return (f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
            + "\r\n").encode() + body


# -------------------------------------------------------------------------------------------- TLS
TLS_VERSIONS = {0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


def read_client_hello(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read (consume) one complete TLS handshake record carrying a ClientHello."""
    sock.settimeout(timeout)
    hdr = recv_exact(sock, 5)
    if hdr[0] != 0x16:
        return hdr
    length = struct.unpack("!H", hdr[3:5])[0]
    return hdr + recv_exact(sock, length)


def parse_client_hello(rec: bytes) -> dict:
    """SNI, ALPN and offered versions of a ClientHello record (best effort)."""
    out = {"sni": None, "alpn": [], "versions": []}
    try:
        if rec[0] != 0x16 or rec[5] != 0x01:
            return out
        p = 5 + 4
        out["versions"].append(TLS_VERSIONS.get(struct.unpack("!H", rec[p:p + 2])[0], "?"))
        p += 2 + 32
        p += 1 + rec[p]
        p += 2 + struct.unpack("!H", rec[p:p + 2])[0]
        p += 1 + rec[p]
        ext_end = p + 2 + struct.unpack("!H", rec[p:p + 2])[0]
        p += 2
        while p + 4 <= ext_end:
            etype, elen = struct.unpack("!HH", rec[p:p + 4])
            data = rec[p + 4:p + 4 + elen]
            if etype == 0 and len(data) > 5:
                nlen = struct.unpack("!H", data[3:5])[0]
                out["sni"] = data[5:5 + nlen].decode("ascii", "replace")
            elif etype == 16 and len(data) > 2:
                q = 2
                while q < len(data):
                    ln = data[q]
                    out["alpn"].append(data[q + 1:q + 1 + ln].decode("ascii", "replace"))
                    q += 1 + ln
            elif etype == 43 and data:
                out["versions"] = [TLS_VERSIONS.get(struct.unpack("!H", data[i:i + 2])[0], "grease")
                                   for i in range(1, 1 + data[0], 2)]
            p += 4 + elen
    except (IndexError, struct.error):
        pass
    return out


# ------------------------------------------------------------------------------------------ misc
def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_until_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    buf = b""
    while len(buf) < limit:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, OSError):
            break
        if not chunk:
            break
        buf += chunk
    return buf


def device_token(seed: str = "lab") -> bytes:
    import hashlib
    return hashlib.sha256(seed.encode()).digest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
