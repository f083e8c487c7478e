"""``pcapaudit audit --filter EXPR --start TIME --end TIME``: which packets of a capture file are audited.

The filter is tcpdump's language: libpcap compiles it (``libpcap.compile_file_filter``) once per link
type a capture may have, and the compiled core runs the programs on every packet before decoding
(``capture/bpf.rs``), as tcpdump and tshark do when they read a file with a filter. The window keeps
packets with ``start <= ts < end``. Packets left out are not part of the audit: a flow is what its packets
inside the filter and the window make of it; the summary says how many were left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pcapaudit.errors import CaptureError, UsageError


@dataclass(frozen=True)
class FileFilter:
    """A compiled ``--filter`` (``programs``: link type -> (code, jt, jf, k) tuples) and a window."""

    expr: str | None = None
    programs: dict[int, list[tuple[int, int, int, int]]] | None = None
    start: float | None = None
    end: float | None = None
    refused: dict[int, str] = field(default_factory=dict)  # link type -> libpcap's message

    def unfiltered_error(self, linktypes) -> str | None:
        """The one-line error for packets of link types libpcap could not compile the filter for."""
        if not linktypes:
            return None
        parts = []
        for lt, n in sorted(linktypes):
            why = self.refused.get(lt, "libpcap was not asked for it")
            parts.append(f"link type {lt} ({n:,} packet{'s' if n != 1 else ''} not audited): {why}")
        return f"--filter {self.expr!r} cannot be applied to " + "; ".join(parts)


def parse_time(text: str, flag: str) -> float:
    """Seconds since the epoch from ``text``: a number (epoch seconds) or an ISO 8601 time
    (``2024-05-01T10:00:00Z``, ``2024-05-01 10:00:00+02:00``; without an offset: UTC, the time zone
    of pcapaudit's reports)."""
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(v):
            raise UsageError(f"{flag} {text!r}: not a time")
        return v
    iso = s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a time (ISO 8601, e.g. 2024-05-01T10:00:00Z, or seconds "
                         "since the epoch)") from None  # fmt: skip
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def build(expr: str | None, start: str | None, end: str | None) -> FileFilter | None:
    """The filter of ``--filter/--start/--end`` (None when none is given): times checked, the expression
    compiled by libpcap. ``UsageError`` for bad times, ``CaptureError`` (one line naming the expression
    and libpcap's message) for an expression libpcap refuses or no libpcap."""
    lo = parse_time(start, "--start") if start is not None else None
    hi = parse_time(end, "--end") if end is not None else None
    if lo is not None and hi is not None and lo >= hi:
        raise UsageError(f"--start {start} is not before --end {end}: the window would be empty")
    if expr is None and lo is None and hi is None:
        return None
    if expr is None:
        return FileFilter(start=lo, end=hi)
    if not expr.strip():
        raise UsageError("--filter: an empty expression (leave --filter out to audit every packet)")
    from pcapaudit.capture import libpcap

    try:
        libpcap.load()
    except CaptureError as e:
        raise CaptureError(f"--filter needs libpcap to compile {expr!r}: {e}") from None
    try:
        programs, refused = libpcap.compile_file_filter(expr)
    except libpcap.FilterError as e:
        raise libpcap.FilterError(f"--filter {expr!r}: {e.libpcap_message}", e.libpcap_message) from None
    return FileFilter(expr, programs, lo, hi, refused)
