"""QUIC Initial packets: remove header and payload protection and pull out the TLS ClientHello.

Client Initial packets are protected with keys derived from the client's Destination Connection ID
and a public per-version salt (RFC 9001 5.2, RFC 9369 3.3.1 for QUIC v2), so any observer can read
them. CRYPTO frames may arrive split over several packets, out of order, or coalesced with other
packets in one datagram; ``QuicClientState`` reassembles them by offset.

Google QUIC is also handled: Q043/Q046 carry the CHLO in clear; Q050 and T050/T051 use Initial
packets with their own salts (the salts are the ones Wireshark and nDPI use).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from pcapaudit.decode.tls import ClientHello, TlsParseError, _hostname, parse_client_hello

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
SALT_D22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
SALT_Q050 = bytes.fromhex("504574efd066fe2f9d945cfcdbd3a7f0d3b56b45")
SALT_T050 = bytes.fromhex("7ff579e5acd072915580304c43a2367c60488310")
SALT_T051 = bytes.fromhex("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d")

V1, V2 = 0x00000001, 0x6B3343CF
MAX_CRYPTO = 64 * 1024


def version_name(v: int) -> str:
    """Readable QUIC version."""
    if v == V1:
        return "QUICv1"
    if v == V2:
        return "QUICv2"
    if v >> 8 == 0xFF0000:
        return f"draft-{v & 0xFF}"
    b = v.to_bytes(4, "big")
    if b[:1] in (b"Q", b"T") and b[1:].isdigit():
        return b.decode()
    if v >> 12 == 0xFACEB:
        return f"mvfst-{v & 0xFFF:x}"
    return f"0x{v:08x}"


def _salt(v: int) -> bytes | None:
    if v == V1:
        return SALT_V1
    if v == V2:
        return SALT_V2
    if v == 0x51303530:
        return SALT_Q050
    if v == 0x54303530:
        return SALT_T050
    if v == 0x54303531:
        return SALT_T051
    if v >> 8 == 0xFF0000:
        d = v & 0xFF
        if d <= 22:
            return SALT_D22
        if d <= 28:
            return SALT_D23
        if d <= 32:
            return SALT_D29
        return SALT_V1
    if v in (0xFACEB001,):
        return SALT_D22
    if v in (0xFACEB002, 0xFACEB00E):
        return SALT_D23
    if (v & 0x0F0F0F0F) == 0x0A0A0A0A:  # version negotiation forcing: no Initial to read
        return None
    return None


def _hkdf_expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out = b""
    t = b""
    i = 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


_key_cache: dict[tuple[int, bytes], tuple[bytes, bytes, bytes]] = {}


def initial_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Client Initial (key, iv, hp) for a version and Destination Connection ID."""
    hit = _key_cache.get((version, dcid))
    if hit:
        return hit
    salt = _salt(version)
    if salt is None:
        return None
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()
    client = _hkdf_expand_label(initial, b"client in", 32)
    prefix = b"quicv2 " if version == V2 else b"quic "
    keys = (
        _hkdf_expand_label(client, prefix + b"key", 16),
        _hkdf_expand_label(client, prefix + b"iv", 12),
        _hkdf_expand_label(client, prefix + b"hp", 16),
    )
    if len(_key_cache) > 4096:
        _key_cache.clear()
    _key_cache[(version, dcid)] = keys
    return keys


def _varint(b: bytes, p: int) -> tuple[int, int]:
    if p >= len(b):
        raise ValueError("varint past end")
    first = b[p]
    n = 1 << (first >> 6)
    if p + n > len(b):
        raise ValueError("varint past end")
    v = first & 0x3F
    for i in range(1, n):
        v = (v << 8) | b[p + i]
    return v, p + n


class QuicError(ValueError):
    """Malformed or undecryptable QUIC packet."""


@dataclass(slots=True)
class QuicClientState:
    """Per-flow state of the client side: CRYPTO stream reassembly and the parsed ClientHello."""

    version: int | None = None
    first_dcid: bytes | None = None
    crypto: dict[int, bytes] = field(default_factory=dict)
    client_hello: ClientHello | None = None
    chlo_sni: str | None = None
    packets: int = 0
    error: str | None = None
    gquic: bool = False

    @property
    def done(self) -> bool:
        """ClientHello found, or no point in looking further."""
        return self.client_hello is not None or self.chlo_sni is not None or self.packets >= 16 or (
            self.error is not None and self.packets >= 4
        )

    def feed(self, datagram: bytes) -> None:
        """Process one client->server UDP payload."""
        self.packets += 1
        try:
            self._datagram(datagram)
        except (QuicError, ValueError, IndexError, struct.error, TlsParseError) as e:
            self.error = f"{type(e).__name__}: {e}"

    def _datagram(self, d: bytes) -> None:
        p = 0
        while p < len(d):
            first = d[p]
            if not first & 0x80:
                # short header, or gQUIC <= Q043 public header (flags byte with bit 7 clear)
                if p == 0:
                    self._gquic_plain(d)
                return
            if p + 6 > len(d):
                return
            version = struct.unpack_from(">I", d, p + 1)[0]
            if version == 0:
                return  # version negotiation
            vb = version.to_bytes(4, "big")
            if vb[:1] == b"Q" and version < 0x51303530:  # Q046 and older in IETF-like framing: clear text
                self.version = self.version or version
                self._gquic_plain(d)
                return
            dl = d[p + 5]
            dcid = d[p + 6 : p + 6 + dl]
            q = p + 6 + dl
            if q >= len(d):
                return
            sl = d[q]
            q += 1 + sl
            ptype = (first >> 4) & 0x03
            is_initial = ptype == (1 if version == V2 else 0)
            if is_initial:
                tok_len, q = _varint(d, q)
                q += tok_len
            if ptype == (0 if version == V2 else 3):  # Retry: no length field, nothing to read
                return
            length, q = _varint(d, q)
            end = q + length
            if end > len(d):
                raise QuicError(f"packet length {length} exceeds datagram")
            if is_initial:
                self.version = self.version or version
                if self.first_dcid is None:
                    self.first_dcid = bytes(dcid)
                payload = self._decrypt(d, p, q, end, version, bytes(dcid))
                if payload is None and self.first_dcid != dcid:
                    payload = self._decrypt(d, p, q, end, version, self.first_dcid)
                if payload is None:
                    raise QuicError("Initial packet did not decrypt")
                if vb[:1] == b"Q":  # Q05x: gQUIC frames inside the Initial, the CHLO is a STREAM frame
                    self._gquic_plain(payload)
                else:
                    self._frames(payload)
            p = end

    def _decrypt(self, d: bytes, start: int, pn_off: int, end: int, version: int, dcid: bytes) -> bytes | None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        keys = initial_keys(version, dcid)
        if keys is None:
            return None
        key, iv, hp = keys
        if pn_off + 20 > end:
            return None
        sample = d[pn_off + 4 : pn_off + 20]
        enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
        mask = enc.update(sample) + enc.finalize()
        first = d[start] ^ (mask[0] & 0x0F)
        pn_len = (first & 0x03) + 1
        pn = 0
        for i in range(pn_len):
            pn = (pn << 8) | (d[pn_off + i] ^ mask[1 + i])
        header = bytearray(d[start : pn_off + pn_len])
        header[0] = first
        for i in range(pn_len):
            header[pn_off - start + i] = d[pn_off + i] ^ mask[1 + i]
        nonce = bytes(iv[:4]) + (int.from_bytes(iv[4:], "big") ^ pn).to_bytes(8, "big")
        try:
            return AESGCM(key).decrypt(nonce, bytes(d[pn_off + pn_len : end]), bytes(header))
        except (InvalidTag, ValueError):
            return None

    def _frames(self, b: bytes) -> None:
        p = 0
        while p < len(b):
            ftype = b[p]
            if ftype == 0x00:  # PADDING
                p += 1
            elif ftype == 0x01:  # PING
                p += 1
            elif ftype in (0x02, 0x03):  # ACK
                p += 1
                _, p = _varint(b, p)
                _, p = _varint(b, p)
                count, p = _varint(b, p)
                _, p = _varint(b, p)
                for _ in range(count):
                    _, p = _varint(b, p)
                    _, p = _varint(b, p)
                if ftype == 0x03:
                    for _ in range(3):
                        _, p = _varint(b, p)
            elif ftype == 0x06:  # CRYPTO
                off, p = _varint(b, p + 1)
                ln, p = _varint(b, p)
                if off + ln > MAX_CRYPTO:
                    raise QuicError("CRYPTO data beyond 64 KiB")
                self.crypto[off] = bytes(b[p : p + ln])
                p += ln
                self._try_client_hello()
            elif ftype in (0x1C, 0x1D):  # CONNECTION_CLOSE
                return
            else:
                return  # frames not allowed in Initial packets: stop
        return

    def _try_client_hello(self) -> None:
        if self.client_hello is not None:
            return
        data = bytearray()
        pos = 0
        for off in sorted(self.crypto):
            chunk = self.crypto[off]
            if off > pos:
                break
            if off + len(chunk) > pos:
                data += chunk[pos - off :]
                pos = off + len(chunk)
        if data[:4] == b"CHLO":
            self._chlo(bytes(data))
            return
        if len(data) < 4 or data[0] != 1:
            return
        mlen = int.from_bytes(data[1:4], "big")
        if len(data) >= 4 + mlen:
            self.client_hello = parse_client_hello(bytes(data[4 : 4 + mlen]))

    def _gquic_plain(self, d: bytes) -> None:
        i = d.find(b"CHLO")
        if i >= 0:
            self.gquic = True
            if self.version is None and d[0] & 0x01 and len(d) >= 13:  # public flags: version present
                self.version = struct.unpack_from(">I", d, 9)[0]
            self._chlo(d[i:])

    def _chlo(self, m: bytes) -> None:
        """gQUIC handshake message: tag, u16 count, u16 pad, (tag, u32 end offset)*, values."""
        if len(m) < 8:
            return
        n = struct.unpack_from("<H", m, 4)[0]
        base = 8 + 8 * n
        if n > 128 or len(m) < base:
            return
        prev = 0
        for i in range(n):
            tag = m[8 + 8 * i : 12 + 8 * i]
            end = struct.unpack_from("<I", m, 12 + 8 * i)[0]
            if end < prev or base + end > len(m):
                return
            if tag == b"SNI\x00":
                self.chlo_sni = _hostname(m[base + prev : base + end])
                self.gquic = True
                return
            prev = end

    @property
    def sni(self) -> str | None:
        """SNI from the TLS ClientHello or the gQUIC CHLO."""
        if self.client_hello is not None:
            return self.client_hello.sni
        return self.chlo_sni
