"""DNS messages (RFC 1035 4.1) over UDP and TCP: questions, rcode and A/AAAA/CNAME answers.

Hostile input is the normal case here: compression pointers may loop or point forward, labels may hold
any byte, counts may be absurd. Names are rendered like ``dig`` does (``\\DDD`` escapes for bytes that
are not printable ASCII), a pointer chain is limited, and every failure raises ``DnsError``.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}  # fmt: skip
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY"}  # fmt: skip
MAX_POINTERS = 32
MAX_RECORDS = 256

_HDR = struct.Struct(">HHHHHH")
_ntop = socket.inet_ntop
_AF4, _AF6 = socket.AF_INET, socket.AF_INET6
_RR = struct.Struct(">HHIH")


class DnsError(ValueError):
    """Malformed DNS message."""


class DnsMessage(NamedTuple):
    """The parts of a DNS message the auditor uses."""

    trans_id: int
    is_response: bool
    opcode: int
    rcode: int
    truncated: bool
    questions: tuple[tuple[str, int], ...]
    answers: tuple[tuple[str, int, str, int], ...]  # (owner name, type, value, ttl)
    first_owner: str | None = None  # owner name of the first answer record, whatever its type
    error: str | None = None  # the answer section was malformed: what was read before it is kept


_PRINTABLE = bytes(range(0x21, 0x7F))
_ESC = {i: f"\\{i:03d}" for i in range(256)}
for _c in _PRINTABLE:
    _ESC[_c] = chr(_c)
_ESC[ord(".")] = "\\."
_ESC[ord("\\")] = "\\\\"


def _label(raw: bytes) -> str:
    if raw.isalnum() or (raw.isascii() and raw.replace(b"-", b"").replace(b"_", b"").isalnum()):
        return raw.decode("ascii").lower()
    if not raw.isascii():
        # mDNS/DNS-SD instance names are UTF-8 by design (RFC 6763 4.1.1): keep readable text, but
        # only when every character is printable and cannot be confused with a label separator
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.isprintable() and "." not in text and "\\" not in text:
            return text.lower()
    return "".join(_ESC[c] for c in raw).lower()


_LABELS: dict[bytes, str] = {}  # raw label -> rendered label (labels repeat a lot: com, apple, akadns...)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """Read a possibly compressed name at ``off``; returns (name, offset after the name in place)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    n = len(msg)
    total = 0
    while True:
        if off >= n:
            raise DnsError("name runs past the end of the message")
        ln = msg[off]
        if ln == 0:
            off += 1
            break
        if ln & 0xC0 == 0xC0:
            if off + 1 >= n:
                raise DnsError("truncated compression pointer")
            ptr = ((ln & 0x3F) << 8) | msg[off + 1]
            if end < 0:
                end = off + 2
            jumps += 1
            if jumps > MAX_POINTERS:
                raise DnsError("compression pointer loop")
            off = ptr
            continue
        if ln & 0xC0:
            raise DnsError(f"unsupported label type 0x{ln & 0xC0:02x}")
        if off + 1 + ln > n:
            raise DnsError("label runs past the end of the message")
        raw = msg[off + 1 : off + 1 + ln]
        text = _LABELS.get(raw)
        if text is None:
            if len(_LABELS) > 100_000:
                _LABELS.clear()
            text = _LABELS[raw] = _label(raw)
        labels.append(text)
        total += ln + 1
        if total > 255:
            raise DnsError("name longer than 255 bytes")
        off += 1 + ln
    return ".".join(labels), (end if end >= 0 else off)


_NAMES: dict[bytes, str] = {}  # raw uncompressed name bytes -> rendered name (names repeat a lot)


def question_end(msg: bytes) -> int | None:
    """End offset of the first question (uncompressed name + type + class), None when there is none.

    Lets a query be stored without parsing it: the response repeats the same question bytes.
    """
    n = len(msg)
    if n < 17 or not (msg[4] or msg[5]):
        return None
    p = 12
    while p < n:
        ln = msg[p]
        if ln == 0:
            return p + 5 if p + 5 <= n else None
        if ln & 0xC0:
            return None
        p += ln + 1
    return None


def _plain_name(msg: bytes, off: int) -> tuple[str, int] | None:
    """Fast path for an uncompressed name: its rendering from the cache, or None to use read_name."""
    n = len(msg)
    p = off
    while p < n:
        ln = msg[p]
        if ln == 0:
            raw = msg[off : p + 1]
            name = _NAMES.get(raw)
            if name is None:
                name, _ = read_name(msg, off)
                if len(_NAMES) > 50_000:
                    _NAMES.clear()
                _NAMES[raw] = name
            return name, p + 1
        if ln & 0xC0:
            return None
        p += ln + 1
    return None


def parse(msg: bytes) -> DnsMessage:
    """Parse one DNS message (UDP payload, or one TCP message without its length prefix)."""
    if len(msg) < 12:
        raise DnsError(f"message of {len(msg)} bytes is shorter than a DNS header")
    tid, flags, qd, an, _ns, _ar = _HDR.unpack_from(msg)
    off = 12
    n = len(msg)
    questions: list[tuple[str, int]] = []
    answers = []
    first_owner = None
    error = None
    if qd > MAX_RECORDS or an > MAX_RECORDS:  # read what fits; the message is flagged either way
        error = f"absurd record counts (questions {qd}, answers {an})"
        qd, an = min(qd, MAX_RECORDS), min(an, MAX_RECORDS)
    try:
        for _ in range(qd):
            fast = _plain_name(msg, off)
            name, off = fast if fast is not None else read_name(msg, off)
            if off + 4 > n:
                raise DnsError("truncated question")
            questions.append((name, (msg[off] << 8) | msg[off + 1]))
            off += 4
        qname = questions[0][0] if questions else None
        for _ in range(an):
            if off + 2 <= n and msg[off] == 0xC0 and msg[off + 1] == 12 and qname is not None:
                owner, off = qname, off + 2  # the usual pointer back to the question
            else:
                owner, off = read_name(msg, off)
            if first_owner is None:
                first_owner = owner
            if off + 10 > n:
                raise DnsError("truncated resource record")
            rtype, _cls, ttl, rdlen = _RR.unpack_from(msg, off)
            off += 10
            if off + rdlen > n:
                raise DnsError("resource record data runs past the end of the message")
            if rtype == 1:
                if rdlen == 4:
                    answers.append((owner, 1, _ntop(_AF4, msg[off : off + 4]), ttl))
            elif rtype == 28:
                if rdlen == 16:
                    answers.append((owner, 28, _ntop(_AF6, msg[off : off + 16]), ttl))
            elif rtype in (5, 12, 2):
                answers.append((owner, rtype, read_name(msg, off)[0], ttl))
            elif rtype in (65, 64):
                answers.append((owner, rtype, "", ttl))
            off += rdlen
    except DnsError as e:
        if not questions:
            raise DnsError(f"{error}; {e}" if error else str(e)) from None
        error = f"{error}; {e}" if error else str(e)  # keep the questions (and answers) read before the damage
    return DnsMessage(
        trans_id=tid,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=flags & 0xF,
        truncated=bool(flags & 0x0200),
        questions=tuple(questions),
        answers=tuple(answers),
        first_owner=first_owner,
        error=error,
    )


def qtype_name(t: int | None) -> str | None:
    """1 -> 'A'; unknown types as TYPEnnn (RFC 3597)."""
    if t is None:
        return None
    return QTYPES.get(t, f"TYPE{t}")


def rcode_name(r: int | None) -> str | None:
    """3 -> 'NXDOMAIN'."""
    if r is None:
        return None
    return RCODES.get(r, f"RCODE{r}")
