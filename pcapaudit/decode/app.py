"""Small application sniffers: what protocol a stream starts with, LDAP binds/StartTLS, SMTP STARTTLS.

These feed the "cleartext where TLS is expected" checks (LDAP 389, SMTP 25, AMQP 5671, HTTP on
Endpoint Central 8020) and the ``app_protocol`` column. They look at the first bytes of a direction.
"""

from __future__ import annotations

from typing import NamedTuple

STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


def sniff_client(data: bytes, dport: int) -> str | None:
    """Guess the protocol from the first client bytes (None: not enough bytes / unknown)."""
    if len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03:
        return "tls"
    if len(data) >= 3 and data[0] & 0x80 and data[2] == 0x01:
        return "sslv2"
    if data.startswith((b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")):
        return "http"
    if data.startswith(b"CONNECT "):
        return "http-connect"
    if data.startswith(b"SSH-"):
        return "ssh"
    if data.startswith(b"AMQP"):
        return "amqp"
    if data[:1] == b"\x0b" and data[1:5] == b"MSH|":
        return "hl7-mllp"
    if len(data) >= 3 and data[0] == 0x05 and data[1] in (0, 1) and data[2] in (0x0B, 0x00, 0x0E):
        return "dcerpc"
    if data[:1] == b"\x30" and dport in (389, 3268, 8389) and ldap_message_op(data) is not None:
        return "ldap"
    if data[:5].upper() in (b"EHLO ", b"HELO ") or data[:4].upper() in (b"EHLO", b"HELO"):
        return "smtp"
    if data.startswith(b"PRI * HTTP/2.0"):
        return "http2"
    return None


def sniff_server(data: bytes) -> str | None:
    """Guess the protocol from the first server bytes."""
    if len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 0x03:
        return "tls"
    if data.startswith(b"HTTP/"):
        return "http"
    if data.startswith(b"SSH-"):
        return "ssh"
    if data.startswith(b"220") and len(data) > 4 and b"SMTP" in data[:200].upper():
        return "smtp"
    if data.startswith(b"220"):
        return "ftp-or-smtp"
    if len(data) > 5 and data[3] == 0 and data[4] == 10:  # MySQL greeting: protocol 10
        return "mysql"
    return None


def _ber_len(b: bytes, p: int) -> tuple[int, int]:
    if p >= len(b):
        raise ValueError("BER length past end")
    first = b[p]
    if first < 0x80:
        return first, p + 1
    n = first & 0x7F
    if n == 0 or n > 4 or p + 1 + n > len(b):
        raise ValueError("bad BER length")
    return int.from_bytes(b[p + 1 : p + 1 + n], "big"), p + 1 + n


class LdapOp(NamedTuple):
    """The protocol operation of one LDAPMessage and what it says about security."""

    tag: int
    simple_bind: bool
    has_password: bool
    starttls: bool
    length: int  # bytes of the whole message


def ldap_message_op(b: bytes) -> LdapOp | None:
    """Parse the head of an LDAPMessage (RFC 4511 4.1.1); None if it is not one or is incomplete."""
    try:
        if not b or b[0] != 0x30:
            return None
        ln, p = _ber_len(b, 1)
        total = p + ln
        if p >= len(b) or b[p] != 0x02:  # messageID INTEGER
            return None
        idlen, p = _ber_len(b, p + 1)
        p += idlen
        if p >= len(b):
            return None
        tag = b[p]
        oplen, q = _ber_len(b, p + 1)
        simple = has_pw = starttls = False
        if tag == 0x60:  # bindRequest: version, name, authentication
            if b[q] != 0x02:
                return None
            vlen, q = _ber_len(b, q + 1)
            q += vlen
            if b[q] != 0x04:
                return None
            nlen, q = _ber_len(b, q + 1)
            q += nlen
            if q < len(b) and b[q] == 0x80:  # simple [0]
                simple = True
                plen, _ = _ber_len(b, q + 1)
                has_pw = plen > 0
        elif tag == 0x77:  # extendedReq
            starttls = STARTTLS_OID in b[q : q + oplen]
        return LdapOp(tag, simple, has_pw, starttls, total)
    except (ValueError, IndexError):
        return None


def ldap_scan(data: bytes) -> tuple[bool, bool, bool, bool]:
    """Walk LDAPMessages from the start of a client stream: (simple bind seen, with password, StartTLS
    first, settled: more bytes would tell nothing). After a StartTLS request, what the client sends next
    tells whether the server accepted it: a TLS record (the upgrade happened), or another LDAPMessage (it
    refused, and the client went on in clear: keep walking, StartTLS not counted). Stops at the first
    thing that is not an LDAPMessage.
    """
    p = 0
    simple = pw = starttls = False
    while p < len(data):
        op = ldap_message_op(data[p:])
        if op is None or op.length <= 0:
            return simple, pw, starttls, True
        p += op.length
        if op.starttls and not simple:
            if p >= len(data):  # nothing after it yet: taken as upgraded until the client goes on
                return simple, pw, True, False
            if data[p] == 0x16:  # the TLS ClientHello
                return simple, pw, True, True
            continue  # refused: the session goes on in clear
        if op.simple_bind:
            simple = True
            pw = pw or op.has_password
    return simple, pw, starttls, False


def smtp_scan(data: bytes) -> bool | None:
    """True if the client issued STARTTLS before MAIL FROM or AUTH and the session then went on in TLS (or
    the stream ends there), False if it sent mail or logged in without, or went on in clear after STARTTLS
    (the server refused: "454 TLS not available"); None if unknown."""
    up = data[:4096].upper()
    st = up.find(b"\nSTARTTLS")
    if up.startswith(b"STARTTLS"):
        st = 0
    clear = [i for i in (up.find(b"MAIL FROM"), up.find(b"\nAUTH "), 0 if up.startswith(b"AUTH ") else -1) if i >= 0]
    mail = min(clear) if clear else -1
    if st >= 0 and (mail < 0 or st < mail):
        nl = up.find(b"\n", st + 1)
        rest = up[nl + 1 :] if nl >= 0 else b""
        if not rest or rest[:1] == b"\x16":  # nothing after it yet, or the TLS ClientHello
            return True
        return False  # commands in clear after STARTTLS: the upgrade did not happen
    if mail >= 0:
        return False
    return None
