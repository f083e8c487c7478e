"""Finding, grouping and ordering the captures of an audit (issue 18).

A span port writes rotated files all day (``tcpdump -C/-G/-W``, dumpcap ring buffers), several sensors
write their own. ``plan_inputs`` turns what the user named (files, globs, directories) into one ordered
file list per sensor:

* a directory gives the capture files in it (``recursive``: and below it); a file found that way that is
  no capture (a README, a checksum file) is skipped, a file named explicitly that is no capture is an
  error of the plan (``Plan.errors``), and the other files are still audited;
* the sensor of a file is, in this order: the ``sensor`` group (or first group) of ``sensor_pattern``
  searched in its path; else the capture's own metadata (pcapng interface names, else the link type);
  else one sensor for everything;
* a sensor's files are ordered by the time of their first packet, not by name (``trace.pcap10`` comes
  after ``trace.pcap9``; a ring buffer's oldest file may have any number).

Only the first packet of each file is read here; gaps and overlaps between consecutive files need the
last packet too, so the audit measures them as it reads (``distributed.file_spans_notes``).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import struct
from dataclasses import dataclass, field

from pcapaudit.capture.pcapfile import PCAP_MAGICS, PCAPNG_SHB
from pcapaudit.errors import CaptureError, UsageError

log = logging.getLogger("pcapaudit")

GLOB_CHARS = re.compile(r"[*?\[]")
SNIFF_BYTES = 1 << 16  # enough for a pcapng section header and its interface blocks


@dataclass(frozen=True)
class InputFile:
    """One capture file of the plan."""

    path: str
    first_ts: float | None  # time of its first packet (None: no packet)
    format: str  # pcap, pcapng, gzip+pcap...
    meta: str  # the sensor key its metadata gives (interface names or link type)


@dataclass
class Plan:
    """Capture files grouped by sensor, each group in the order of its first packets."""

    sensors: dict[str, list[InputFile]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # files that could not be opened as captures

    @property
    def files(self) -> list[InputFile]:
        """Every file, sensor by sensor."""
        return [f for fs in self.sensors.values() for f in fs]


def is_capture_spec(spec: str) -> bool:
    """True for what ``expand`` understands beyond a plain file: a directory or a glob pattern."""
    return spec != "-" and (os.path.isdir(spec) or (not os.path.exists(spec) and bool(GLOB_CHARS.search(spec))))


def expand(specs: list[str], recursive: bool = False) -> tuple[list[tuple[str, bool]], list[str]]:
    """Paths named by ``specs`` as (path, named explicitly), and errors for specs that name nothing."""
    out: list[tuple[str, bool]] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(p: str, explicit: bool) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append((p, explicit))

    for spec in specs:
        if spec == "-":
            raise UsageError("stdin cannot be part of a multi-file or distributed audit (name the files)")
        if os.path.isdir(spec):
            found = []
            if recursive:
                for root, dirs, files in os.walk(spec):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    found += [os.path.join(root, f) for f in files if not f.startswith(".")]
            else:
                found = [os.path.join(spec, f) for f in os.listdir(spec) if not f.startswith(".")]
            for p in sorted(found):
                if os.path.isfile(p):
                    add(p, False)
        elif os.path.exists(spec):
            add(spec, True)
        elif GLOB_CHARS.search(spec):
            hits = sorted(glob.glob(spec, recursive=True))
            if not hits:
                errors.append(f"{spec}: no file matches")
            for p in hits:
                if os.path.isdir(p):
                    sub, errs = expand([p], recursive)
                    for q, _ in sub:
                        add(q, False)
                    errors += errs
                else:
                    add(p, False)
        else:
            raise CaptureError(f"{spec}: no such file")
    return out, errors


def _head(path: str) -> bytes:
    """The first bytes of a file, decompressed when it is compressed (gzip, zstd, xz, bzip2: as the core
    reads them)."""
    from pcapaudit import _core

    return _core.sniff(path, SNIFF_BYTES)


# what a capture file is called (tcpdump -C numbers them trace.pcap1, ...), compressed or not
CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap|dmp)\d*(\.(gz|zst|zstd|xz|bz2|lz4))?$", re.IGNORECASE)
CAPTURE_MAGICS = (*PCAP_MAGICS, PCAPNG_SHB)


def looks_like_capture(path: str, head: bytes) -> bool:
    """A file a directory scan must not skip quietly: named as a capture, or starting as one."""
    return bool(CAPTURE_NAME.search(os.path.basename(path))) or head[:4] in CAPTURE_MAGICS


def why_unreadable(path: str) -> str:
    """One line naming the file and what is wrong with it, as the core reader says it."""
    from pcapaudit.core import open_capture

    try:
        cap = open_capture(path)
        cap.first_packet(SNIFF_BYTES)
    except CaptureError as e:
        return str(e)
    return cap.error or f"{path}: not a pcap or pcapng capture"


def capture_meta(head: bytes) -> str | None:
    """The sensor key of a capture's metadata: ``pcapng:eth0,eth1`` (interface names, else link types)
    or ``pcap:linktype1``; None when ``head`` is no capture."""
    if head[:4] in PCAP_MAGICS and len(head) >= 24:
        endian = PCAP_MAGICS[head[:4]][0]
        linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0x0FFFFFFF
        return f"pcap:linktype{linktype}"
    if head[:4] != PCAPNG_SHB or len(head) < 12:
        return None
    endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    names: list[str] = []
    off = 0
    while off + 12 <= len(head):
        btype, blen = struct.unpack_from(endian + "II", head, off)
        if blen < 12 or off + blen > len(head):
            break
        if btype == 1 and blen >= 20:  # interface description: link type, then options
            linktype = struct.unpack_from(endian + "H", head, off + 8)[0]
            name = f"linktype{linktype}"
            o, end = off + 16, off + blen - 4
            while o + 4 <= end:
                code, ln = struct.unpack_from(endian + "HH", head, o)
                if code == 0:
                    break
                if code == 2:  # if_name
                    name = head[o + 4 : o + 4 + ln].decode("utf-8", "replace").rstrip("\0") or name
                o += 4 + ln + (-ln % 4)
            names.append(name)
        elif btype in (2, 3, 6):  # the first packet: the interfaces that matter are known
            break
        off += blen
    return "pcapng:" + ",".join(names or ["none"])


def first_packet_time(path: str) -> tuple[float | None, str]:
    """Time of the first packet of a capture and its format (reads small chunks until a packet)."""
    from pcapaudit.core import open_capture

    cap = open_capture(path)
    return cap.first_packet(SNIFF_BYTES), cap.format


def sensor_of(path: str, pattern: re.Pattern | None, meta: str) -> str:
    """A file's sensor: the pattern's ``sensor`` (or first) group in its path, else its metadata."""
    if pattern is not None:
        m = pattern.search(path.replace(os.sep, "/"))
        if m:
            if "sensor" in pattern.groupindex:
                name = m.group("sensor")
            else:
                name = m.group(1) if pattern.groups else m.group(0)
            return name or "default"  # e.g. --sensor-pattern '^': every file is one sensor's
    return meta


def compile_pattern(text: str | None) -> re.Pattern | None:
    """``--sensor-pattern``: a regular expression, with a ``sensor`` group or one group."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise UsageError(f"--sensor-pattern {text!r}: {e}") from None


def plan_inputs(specs: list[str], recursive: bool = False, sensor_pattern: str | re.Pattern | None = None,
                by_metadata: bool = True) -> Plan:  # fmt: skip
    """Files, globs and directories -> files grouped by sensor, each group ordered by first packet."""
    pattern = compile_pattern(sensor_pattern) if isinstance(sensor_pattern, str) or sensor_pattern is None else sensor_pattern
    paths, errors = expand(list(specs), recursive)
    plan = Plan(errors=errors)
    files: list[tuple[str, InputFile]] = []
    for path, explicit in paths:
        try:
            head = _head(path)
            meta = capture_meta(head)
        except OSError as e:
            plan.errors.append(f"{path}: cannot open: {e.strerror or e}")
            continue
        if meta is None:
            if explicit:
                plan.errors.append(f"{path}: not a pcap or pcapng capture")
            elif looks_like_capture(path, head):  # a damaged capture is data lost: say so
                plan.errors.append(why_unreadable(path))
            else:
                log.info("%s: not a capture, skipped", path)
            continue
        try:
            ts, fmt = first_packet_time(path)
        except CaptureError as e:
            plan.errors.append(str(e))
            continue
        f = InputFile(path, ts, fmt, meta)
        files.append((sensor_of(path, pattern, meta if by_metadata else "default"), f))
    if not files:  # nothing to audit: say why, before any report
        raise CaptureError("; ".join(plan.errors) or f"{', '.join(specs)}: no capture file found")
    for sensor in sorted({s for s, _ in files}):
        group = [f for s, f in files if s == sensor]
        # by first packet; files without packets last (they change nothing), then by name
        group.sort(key=lambda f: (f.first_ts is None, f.first_ts or 0.0, f.path))
        plan.sensors[sensor] = group
    return plan
