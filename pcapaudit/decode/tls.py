"""TLS: records, ClientHello (SNI, ALPN, versions, ECH), ServerHello, Certificate (TLS <= 1.2), alerts.

Only the clear-text start of each direction is parsed. ``TlsStream`` is fed the reassembled bytes of
one direction from its first byte and parses as far as the bytes allow; it stops at the first
encrypted record (after ChangeCipherSpec, or after a TLS 1.3 ServerHello) and from then on only counts
record types and lengths, which the interception heuristics use.

Wire formats: RFC 5246 (TLS 1.2) 6.2 records and 7.4 handshake messages, RFC 8446 (TLS 1.3) 4.1-4.4,
RFC 6066 3 (server_name), RFC 7301 (ALPN), draft-ietf-tls-esni (encrypted_client_hello 0xfe0d).
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass, field

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE, HS_SERVER_HELLO_DONE = 1, 2, 11, 14

VERSION_NAMES = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

ALERT_NAMES = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
    110: "unsupported_extension", 112: "unrecognized_name", 113: "bad_certificate_status_response",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}  # fmt: skip

CERT_REJECT_ALERTS = frozenset({42, 43, 44, 45, 46, 48})  # the client did not accept the chain

MAX_STREAM = 128 * 1024
MAX_RECORDS_TRACKED = 24


def version_name(v: int | None) -> str | None:
    """0x0303 -> 'TLSv1.2'; GREASE/unknown values as hex."""
    if v is None:
        return None
    if v in VERSION_NAMES:
        return VERSION_NAMES[v]
    if (v & 0xFF00) == 0x7F00:
        return f"TLSv1.3-draft{v & 0xFF}"
    return f"0x{v:04x}"


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...)."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


class TlsParseError(ValueError):
    """Malformed TLS structure (becomes a weird, never an exception out of the engine)."""


@dataclass(slots=True)
class ClientHello:
    """What the auditor needs from a ClientHello."""

    legacy_version: int
    sni: str | None = None
    sni_raw: bytes | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ciphers: int = 0
    ech: bool = False
    esni: bool = False

    @property
    def max_version(self) -> int:
        """Highest version offered (supported_versions wins over legacy_version)."""
        vs = [v for v in self.versions if not is_grease(v)]
        return max(vs) if vs else self.legacy_version


@dataclass(slots=True)
class ServerHello:
    """Selected version, cipher and ALPN."""

    legacy_version: int
    cipher: int
    selected_version: int | None = None
    alpn: str | None = None

    @property
    def version(self) -> int:
        """Negotiated version (supported_versions extension, else legacy_version)."""
        return self.selected_version or self.legacy_version


class _Reader:
    __slots__ = ("b", "p", "end")

    def __init__(self, b: bytes, p: int = 0, end: int | None = None):
        self.b = b
        self.p = p
        self.end = len(b) if end is None else end

    def need(self, n: int) -> None:
        if self.p + n > self.end:
            raise TlsParseError(f"truncated: need {n} bytes at {self.p}, have {self.end - self.p}")

    def u8(self) -> int:
        self.need(1)
        v = self.b[self.p]
        self.p += 1
        return v

    def u16(self) -> int:
        self.need(2)
        v = (self.b[self.p] << 8) | self.b[self.p + 1]
        self.p += 2
        return v

    def u24(self) -> int:
        self.need(3)
        v = (self.b[self.p] << 16) | (self.b[self.p + 1] << 8) | self.b[self.p + 2]
        self.p += 3
        return v

    def take(self, n: int) -> bytes:
        self.need(n)
        v = self.b[self.p : self.p + n]
        self.p += n
        return v

    def sub(self, n: int) -> _Reader:
        self.need(n)
        r = _Reader(self.b, self.p, self.p + n)
        self.p += n
        return r

    def left(self) -> int:
        return self.end - self.p


def _hostname(raw: bytes) -> str:
    """Decode an SNI/host name defensively: never raises, escapes what is not printable ASCII."""
    try:
        s = raw.decode("ascii")
    except UnicodeDecodeError:
        s = raw.decode("utf-8", "backslashreplace")
    s = s.rstrip(".").lower()
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in s):
        s = "".join(ch if 0x21 <= ord(ch) != 0x7F else f"\\x{ord(ch):02x}" for ch in s)
    return s


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (without the 4-byte handshake header).

    Written with plain indexing (this runs once per TLS flow); every length is checked against the end of
    its enclosing structure and a violation raises TlsParseError.
    """
    n = len(body)
    if n < 38:
        raise TlsParseError(f"truncated: ClientHello of {n} bytes")
    ch = ClientHello(legacy_version=(body[0] << 8) | body[1])
    p = 34 + 1 + body[34]  # version(2) random(32) session_id
    if p + 2 > n:
        raise TlsParseError("truncated: cipher suites")
    ncs = (body[p] << 8) | body[p + 1]
    p += 2 + ncs
    ch.ciphers = ncs // 2
    if p + 1 > n:
        raise TlsParseError("truncated: compression methods")
    p += 1 + body[p]
    if p > n:
        raise TlsParseError("truncated: compression methods")
    if p + 2 > n:
        return ch  # no extensions (SSLv3 / old TLS)
    end = p + 2 + ((body[p] << 8) | body[p + 1])
    if end > n:
        raise TlsParseError(f"truncated: extensions need {end - n} more bytes")
    p += 2
    while p + 4 <= end:
        etype = (body[p] << 8) | body[p + 1]
        elen = (body[p + 2] << 8) | body[p + 3]
        q = p + 4
        p = q + elen
        if p > end:
            raise TlsParseError(f"truncated: extension {etype} runs past the extensions")
        if etype == 0:  # server_name: list of (type, name)
            if elen < 2:
                continue
            lend = min(q + 2 + ((body[q] << 8) | body[q + 1]), p)
            q += 2
            while q + 3 <= lend:
                ntype = body[q]
                nlen = (body[q + 1] << 8) | body[q + 2]
                q += 3
                if q + nlen > lend:
                    raise TlsParseError("truncated: server name")
                if ntype == 0 and ch.sni is None:
                    ch.sni_raw = bytes(body[q : q + nlen])
                    ch.sni = _hostname(ch.sni_raw)
                q += nlen
        elif etype == 16:  # ALPN
            if elen < 2:
                continue
            lend = min(q + 2 + ((body[q] << 8) | body[q + 1]), p)
            q += 2
            out = []
            while q < lend:
                ln = body[q]
                if q + 1 + ln > lend:
                    raise TlsParseError("truncated: ALPN protocol")
                out.append(body[q + 1 : q + 1 + ln].decode("ascii", "backslashreplace"))
                q += 1 + ln
            ch.alpn = tuple(out)
        elif etype == 43:  # supported_versions
            if elen < 1:
                continue
            lend = min(q + 1 + body[q], p)
            q += 1
            ch.versions = tuple((body[i] << 8) | body[i + 1] for i in range(q, lend - 1, 2))
        elif etype == 0xFE0D:
            ch.ech = True
        elif etype == 0xFFCE:
            ch.esni = True
    return ch


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello body."""
    r = _Reader(body)
    legacy = r.u16()
    r.take(32)
    r.take(r.u8())
    sh = ServerHello(legacy_version=legacy, cipher=r.u16())
    r.u8()  # compression
    if r.left() >= 2:
        ext = r.sub(r.u16())
        while ext.left() >= 4:
            etype = ext.u16()
            e = ext.sub(ext.u16())
            if etype == 43 and e.left() >= 2:
                sh.selected_version = e.u16()
            elif etype == 16 and e.left() >= 3:
                lst = e.sub(e.u16())
                if lst.left():
                    sh.alpn = lst.take(lst.u8()).decode("ascii", "backslashreplace")
    return sh


def parse_certificate_list(body: bytes) -> list[bytes]:
    """TLS <= 1.2 Certificate body -> DER certificates, leaf first."""
    r = _Reader(body)
    lst = r.sub(r.u24())
    out = []
    while lst.left() >= 3:
        out.append(lst.take(lst.u24()))
    return out


@dataclass(slots=True)
class TlsStream:
    """Incremental parser of one direction of a TLS connection (fed from stream offset 0)."""

    is_client: bool
    pos: int = 0
    hs: bytearray = field(default_factory=bytearray)
    encrypted: bool = False
    client_hello: ClientHello | None = None
    server_hello: ServerHello | None = None
    certs: list[bytes] = field(default_factory=list)
    alerts: list[tuple[int, int, int]] = field(default_factory=list)  # (level, desc, record index)
    records: list[tuple[int, int]] = field(default_factory=list)  # (content type, length)
    hs_types: list[int] = field(default_factory=list)
    server_hello_done: bool = False
    error: str | None = None
    sslv2: bool = False

    @property
    def done(self) -> bool:
        """Nothing more worth parsing in this direction."""
        return self.error is not None or len(self.records) >= MAX_RECORDS_TRACKED or self.pos >= MAX_STREAM

    def feed(self, data: bytes | bytearray) -> None:
        """Parse every complete record in ``data[self.pos:]`` (``data`` is the whole stream so far)."""
        n = len(data)
        while self.pos + 5 <= n and not self.done:
            ctype = data[self.pos]
            if ctype not in (CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA, 24):
                if self.pos == 0 and data[0] & 0x80 and n >= 3:  # SSLv2-compatible ClientHello
                    self.sslv2 = True
                    ln = ((data[0] & 0x7F) << 8) | data[1]
                    if data[2] == 1 and self.pos + 2 + ln <= n:
                        self._sslv2_hello(bytes(data[2 : 2 + ln]))
                        self.pos = 2 + ln
                        continue
                    return
                self.error = f"not a TLS record (content type {ctype}) at stream offset {self.pos}"
                return
            ln = (data[self.pos + 3] << 8) | data[self.pos + 4]
            if ln > 18432:
                self.error = f"TLS record length {ln} exceeds 2^14+2048"
                return
            if self.pos + 5 + ln > n:
                return  # wait for more bytes
            body = bytes(data[self.pos + 5 : self.pos + 5 + ln])
            self.pos += 5 + ln
            self.records.append((ctype, ln))
            if ctype == CT_CCS:
                self.encrypted = True
            elif ctype == CT_ALERT and ln == 2:  # a clear-text alert is exactly 2 bytes; encrypted ones are longer
                self.alerts.append((body[0], body[1], len(self.records) - 1))
            elif ctype == CT_HANDSHAKE and not self.encrypted:
                self.hs += body
                self._handshake_messages()
            elif ctype == CT_APPDATA:
                self.encrypted = True

    def _handshake_messages(self) -> None:
        while len(self.hs) >= 4:
            mtype = self.hs[0]
            mlen = (self.hs[1] << 16) | (self.hs[2] << 8) | self.hs[3]
            if mlen > MAX_STREAM:
                self.error = f"handshake message of {mlen} bytes"
                return
            if len(self.hs) < 4 + mlen:
                return
            body = bytes(self.hs[4 : 4 + mlen])
            del self.hs[: 4 + mlen]
            self.hs_types.append(mtype)
            try:
                if mtype == HS_CLIENT_HELLO and self.is_client and self.client_hello is None:
                    self.client_hello = parse_client_hello(body)
                elif mtype == HS_SERVER_HELLO and not self.is_client and self.server_hello is None:
                    self.server_hello = parse_server_hello(body)
                    if self.server_hello.version == 0x0304:
                        self.encrypted = True  # the rest of the server flight is encrypted
                        return
                elif mtype == HS_CERTIFICATE and not self.is_client and not self.certs:
                    self.certs = parse_certificate_list(body)
                elif mtype == HS_SERVER_HELLO_DONE and not self.is_client:
                    self.server_hello_done = True
            except TlsParseError as e:
                self.error = f"malformed handshake message type {mtype}: {e}"
                return

    def _sslv2_hello(self, msg: bytes) -> None:
        # SSLv2 CLIENT-HELLO: type(1) version(2) cipher_len(2) session_len(2) challenge_len(2) ...
        if len(msg) >= 9:
            ver = (msg[1] << 8) | msg[2]
            self.client_hello = ClientHello(legacy_version=ver, ciphers=((msg[3] << 8) | msg[4]) // 3)
        self.records.append((0x80, len(msg)))


_cert_cache: dict[str, object] = {}


def cert_info(der: bytes):
    """DER certificate -> ``model.CertInfo`` (cached by SHA-256; unparsable certs keep their hash)."""
    from pcapaudit.model import CertInfo

    digest = hashlib.sha256(der).hexdigest()
    hit = _cert_cache.get(digest)
    if hit is not None:
        return hit
    try:
        from cryptography import x509
        from cryptography.x509.oid import ExtensionOID, NameOID

        with warnings.catch_warnings():  # RFC 5280 violations in hostile certificates are findings, not warnings
            warnings.simplefilter("ignore")
            c = x509.load_der_x509_certificate(der)

        def attr(name, oid):
            try:
                vals = name.get_attributes_for_oid(oid)
            except ValueError:
                return None
            return str(vals[0].value) if vals else None

        subject = _rfc4514(c.subject)
        issuer = _rfc4514(c.issuer)
        san: tuple[str, ...] = ()
        try:
            ext = c.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
            san = tuple(str(v) for v in ext.value.get_values_for_type(x509.DNSName))[:50]
        except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):  # no SAN, or a malformed extension list
            pass
        try:
            nb = c.not_valid_before_utc.isoformat()
            na = c.not_valid_after_utc.isoformat()
        except (ValueError, OverflowError):
            nb = na = None
        info = CertInfo(
            subject=subject,
            issuer=issuer,
            subject_cn=attr(c.subject, NameOID.COMMON_NAME),
            issuer_cn=attr(c.issuer, NameOID.COMMON_NAME),
            issuer_org=attr(c.issuer, NameOID.ORGANIZATION_NAME),
            sha256=digest,
            self_signed=c.subject == c.issuer,
            not_before=nb,
            not_after=na,
            san=san,
        )
    except Exception as e:  # noqa: BLE001 - hostile DER: cryptography raises ValueError, InvalidVersion...
        info = CertInfo(
            subject=f"<unparsable certificate: {type(e).__name__}>", issuer="<unparsable>",
            subject_cn=None, issuer_cn=None, issuer_org=None, sha256=digest, self_signed=False,
            not_before=None, not_after=None,
        )  # fmt: skip
    if len(_cert_cache) > 4096:
        _cert_cache.clear()
    _cert_cache[digest] = info
    return info


def _rfc4514(name) -> str:
    try:
        return name.rfc4514_string()
    except (ValueError, TypeError):
        return "<undecodable name>"


_U16 = struct.Struct(">H")
