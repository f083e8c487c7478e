"""Streaming reader for pcap, pcapng and gzip-compressed captures (files or stdin).

The reader never builds per-packet objects: it cuts the file into large chunks and returns, per chunk,
numpy columns (offset, captured length, wire length, timestamp, link type) over the raw bytes. Record
headers are walked in a tight loop (one ``struct`` call per record); everything else is vectorised.

A capture that is cut short or corrupt mid-way is not an exception: the batches read so far are
returned and ``source.error`` holds a one-line message naming the file and the byte offset.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from pcapaudit.errors import CaptureError

CHUNK = 8 << 20  # bytes per read: large enough for vectorising, small enough to keep memory flat
MAX_RECORD = 16 << 20  # larger captured lengths mean a corrupt file, not a jumbo frame
GZIP_IN = 256 << 10  # compressed bytes per zlib call (its output is bounded by the room left in the read)

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1e-6, 24),  # Kuznetzov "modified" pcap
    b"\xa1\xb2\xcd\x34": (">", 1e-6, 24),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
# smallest total length of the pcapng blocks read here: type, length, fixed fields, trailing length
# (interface description 20, simple packet 16, enhanced and obsolete packet 32, statistics 24, secrets 20)
PCAPNG_MIN_BLOCK = {1: 20, 2: 32, 3: 16, 5: 24, 6: 32, 0x0A: 20}
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class PacketBatch:
    """Packets of one chunk as columns over ``buf`` (no per-packet objects)."""

    buf: bytes
    off: np.ndarray  # int64: start of packet data in buf
    caplen: np.ndarray  # int64
    wirelen: np.ndarray  # int64
    ts: np.ndarray  # float64 seconds since the epoch
    linktype: np.ndarray  # int32
    first_index: int  # global number of row 0 (0-based, over the whole run)
    file_base: int  # byte offset of buf[0] in the (uncompressed) capture
    # Apple pcapng (Darwin process info blocks): each row's index into ``processes`` (-1: none), else None
    proc: np.ndarray | None = None
    processes: list | None = None  # (command, pid, effective command or None)
    # pcapng with several interfaces: each row's index into ``ifnames`` (-1: unknown), else None
    iface: np.ndarray | None = None
    ifnames: list[str] | None = None

    def __len__(self) -> int:
        return len(self.off)


class CaptureFile:
    """One capture source (path, ``-`` for stdin, or an open binary file)."""

    def __init__(self, spec: str | BinaryIO, name: str | None = None):
        self.name = name or (spec if isinstance(spec, str) else getattr(spec, "name", "<stream>"))
        if spec == "-":
            self.name = name or "<stdin>"
        self._spec = spec
        self.spec = spec  # what was given: a path, "-" for stdin, or an open binary file
        self.error: str | None = None
        self.packets = 0
        self.bytes = 0
        self.dropped: int | None = None  # from pcapng interface statistics blocks
        self.format = "unknown"
        self._consumed = 0
        self.clamped = 0  # pcap records whose captured length exceeded the wire length
        self.first_clamped: int | None = None  # the number (from 1) of the first of them
        self.secrets: list[bytes] = []  # TLS key logs from pcapng decryption secrets blocks
        self._fh: BinaryIO | None = None

    # -- opening -------------------------------------------------------------------------------
    def _open(self) -> tuple[BinaryIO, bytes]:
        spec = self._spec
        try:
            if spec == "-":
                raw: BinaryIO = sys.stdin.buffer
            elif isinstance(spec, str):
                raw = open(spec, "rb")  # noqa: SIM115 - closed in close()
            else:
                raw = spec
        except FileNotFoundError:
            raise CaptureError(f"{self.name}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.name}: is a directory, not a capture file") from None
        except PermissionError:
            raise CaptureError(f"{self.name}: permission denied") from None
        except OSError as e:
            raise CaptureError(f"{self.name}: cannot open: {e.strerror or e}") from None
        head = _read_exact(raw, 4, self.name)
        if head[:2] == GZIP_MAGIC:
            self._fh = raw
            gz = _GzipStream(head, raw)  # decompressed here, not by gzip.GzipFile: see _GzipStream
            try:
                head = _read_exact(gz, 4, self.name)  # type: ignore[arg-type]
            except CaptureError:
                if gz.error is not None:  # damaged before the capture's magic: say how
                    raise CaptureError(f"{self.name}: {gz.error}") from None
                raise
            self.format = "gzip+"
            return gz, head  # type: ignore[return-value]
        self._fh = raw
        self.format = ""  # "pcap" or "pcapng" follow once the magic is known
        return raw, head

    @property
    def offset(self) -> int:
        """Bytes of the underlying file read so far (compressed bytes for gzip), for progress bars."""
        fh = self._fh
        if fh is not None and self._spec != "-":
            try:
                return fh.tell()
            except (OSError, ValueError):
                pass
        return self._consumed

    def close(self) -> None:
        """Close the underlying file (not stdin)."""
        if self._fh is not None and self._spec != "-" and isinstance(self._spec, str):
            self._fh.close()
        self._fh = None

    # -- iteration -----------------------------------------------------------------------------
    def batches(self, first_index: int = 0, chunk: int = CHUNK) -> Iterator[PacketBatch]:
        """Yield ``PacketBatch`` chunks; sets ``self.error`` (and stops) on truncation/corruption."""
        stream, head = self._open()
        try:
            if head in PCAP_MAGICS:
                self.format += "pcap"
                yield from self._pcap(stream, head, first_index, chunk)
            elif head == PCAPNG_SHB:
                self.format += "pcapng"
                yield from self._pcapng(stream, head, first_index, chunk)
            else:
                raise CaptureError(
                    f"{self.name}: not a pcap or pcapng capture (bad magic 0x{head.hex()} at byte offset 0)"
                )
        except (OSError, EOFError, zlib.error, struct.error) as e:  # struct: a field past the data
            if isinstance(e, CaptureError):
                raise
            self.error = f"{self.name}: read error after {self.packets} packets: {e}"
        finally:
            self.close()

    def _read(self, stream: BinaryIO, n: int) -> bytes:
        try:
            return stream.read(n)
        except GzipDataError:  # already says where the compressed data ends or is corrupt
            raise
        except (OSError, EOFError, struct.error, zlib.error) as e:
            raise OSError(f"corrupt compressed data ({e})") from None

    def _clamp(self, clamped: bool, index: int) -> None:
        """Count a record (0-based ``index`` over the run) whose captured length exceeded its wire length."""
        if clamped:
            self.clamped += 1
            if self.first_clamped is None:
                self.first_clamped = index + 1

    def _pcap(self, stream: BinaryIO, head: bytes, index: int, chunk: int) -> Iterator[PacketBatch]:
        endian, tick, rec_len = PCAP_MAGICS[head]
        rest = _read_exact(stream, 20, self.name, "pcap file header", before=len(head))
        _vmaj, _vmin, _tz, _sig, _snap, linktype = struct.unpack(endian + "HHiIII", rest)
        linktype &= 0x0FFFFFFF  # upper bits may carry FCS length flags
        base = 24
        pending = b""
        lens_at = struct.Struct(endian + "II").unpack_from
        while True:
            data = self._read(stream, chunk)
            buf = pending + data if pending else data
            n = len(buf)
            offs: list[int] = []
            app = offs.append
            off = 0
            bad = None
            while off + rec_len <= n:
                incl, orig = lens_at(buf, off + 8)
                clamp = incl > orig
                if clamp:  # impossible (more captured than sent): trust the wire length
                    incl = orig
                if incl > MAX_RECORD:
                    bad = (off, incl)
                    self._clamp(clamp, index + len(offs))
                    break
                if off + rec_len + incl > n:
                    break  # counted when the record is whole (the core's count)
                self._clamp(clamp, index + len(offs))
                app(off)
                off += rec_len + incl
            self._consumed = base + off
            if offs:
                yield self._pcap_batch(buf, offs, endian, tick, rec_len, linktype, index, base)
                index += len(offs)
            if bad is not None:
                self.error = (
                    f"{self.name}: corrupt pcap record at byte offset {base + bad[0]} "
                    f"(captured length {bad[1]} is impossible); stopped after {self.packets} packets"
                )
                return
            pending = buf[off:]
            base += off
            if not data:
                if pending:
                    self.error = (
                        f"{self.name}: truncated at byte offset {base}: last record is incomplete "
                        f"({len(pending)} bytes); read {self.packets} packets"
                    )
                return

    def _pcap_batch(self, buf, offs, endian, tick, rec_len, linktype, index, base) -> PacketBatch:
        o = np.asarray(offs, dtype=np.int64)
        b = np.frombuffer(buf, dtype=np.uint8)
        dt = np.dtype(endian + "u4")
        # gather the four header words of every record in one vectorised step
        idx = o[:, None] + np.arange(16, dtype=np.int64)[None, :]
        words = b[idx].copy().view(dt).reshape(len(o), 4).astype(np.int64)
        ts = words[:, 0].astype(np.float64) + words[:, 1].astype(np.float64) * tick
        caplen = np.minimum(words[:, 2], words[:, 3])
        wirelen = words[:, 3]
        self.packets += len(o)
        self.bytes += int(wirelen.sum())
        return PacketBatch(
            buf=buf,
            off=o + rec_len,
            caplen=caplen,
            wirelen=wirelen,
            ts=ts,
            linktype=np.full(len(o), linktype, dtype=np.int32),
            first_index=index,
            file_base=base,
        )

    def _pcapng(self, stream: BinaryIO, head: bytes, index: int, chunk: int) -> Iterator[PacketBatch]:
        pending = head
        base = 0
        endian = "<"
        ifaces: list[tuple[int, float, float]] = []  # (linktype, tick, offset)
        dpibs: list[tuple[int, str]] = []  # Apple's Darwin process info blocks of the section: (pid, name)
        darwin = False  # a DPIB was seen: packet blocks' process options are read from then on
        ifnames: list[str] = []  # the section's interface names (if_name, else "if<N>")
        multi = False  # a section had two or more interfaces: each packet's interface is kept from then on
        eof = False
        while True:
            data = b"" if eof else self._read(stream, chunk)
            if not data:
                eof = True
            buf = pending + data if pending else data
            n = len(buf)
            off = 0
            offs: list[int] = []
            caps: list[int] = []
            wires: list[int] = []
            tss: list[float] = []
            lts: list[int] = []
            procs: list[int] | None = [] if darwin else None
            processes: dict[tuple, int] = {}
            ifrows: list[int] | None = [] if multi else None
            ifindex: dict[str, int] = {}
            err = None
            while off + 12 <= n:
                btype_raw = buf[off : off + 4]
                if btype_raw == PCAPNG_SHB:
                    if off + 12 > n:
                        break
                    bom = buf[off + 8 : off + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        endian = ">"
                    else:
                        err = f"bad pcapng byte-order magic at byte offset {base + off}"
                        break
                    ifaces = []
                    dpibs = []
                    ifnames = []
                blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
                if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
                    err = f"corrupt pcapng block at byte offset {base + off} (length {blen})"
                    break
                if off + blen > n:
                    break
                btype = struct.unpack_from(endian + "I", buf, off)[0]
                if blen < PCAPNG_MIN_BLOCK.get(btype, 12):  # its fixed fields would be read from the next block
                    err = f"corrupt pcapng block at byte offset {base + off} (length {blen} is too short for block type {btype})"
                    break
                if btype == 6:  # enhanced packet block
                    iface, hi, lo, cap, wire = struct.unpack_from(endian + "IIIII", buf, off + 8)
                    if iface >= len(ifaces) or cap > blen - 32:
                        err = f"corrupt pcapng packet block at byte offset {base + off}"
                        break
                    lt, tick, tsoff = ifaces[iface]
                    offs.append(off + 28)
                    caps.append(cap)
                    wires.append(max(wire, cap))
                    tss.append(((hi << 32) | lo) * tick + tsoff)
                    lts.append(lt)
                    if procs is not None:
                        procs.append(_darwin_process(buf, off + 28 + ((cap + 3) & ~3), off + blen - 4, endian,
                                                     dpibs, processes))  # fmt: skip
                    if ifrows is not None:
                        ifrows.append(ifindex.setdefault(ifnames[iface], len(ifindex)))
                elif btype == 0x80000001:  # Apple's Darwin process info block: pid, then a name option
                    pid = struct.unpack_from(endian + "I", buf, off + 8)[0] if blen >= 16 else 0
                    name = ""
                    for code, val in _options(buf, off + 12, off + blen - 4, endian):
                        if code == 2:
                            name = val.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
                    dpibs.append((pid, name))
                    if procs is None:
                        procs = [-1] * len(offs)
                        darwin = True
                elif btype == 3:  # simple packet block
                    if not ifaces:
                        err = f"pcapng simple packet block before any interface at byte offset {base + off}"
                        break
                    wire = struct.unpack_from(endian + "I", buf, off + 8)[0]
                    cap = min(wire, blen - 16)
                    offs.append(off + 12)
                    caps.append(cap)
                    wires.append(wire)
                    tss.append(tss[-1] if tss else 0.0)
                    lts.append(ifaces[0][0])
                    if ifrows is not None:
                        ifrows.append(ifindex.setdefault(ifnames[0], len(ifindex)))
                    if procs is not None:  # no options, so no process
                        procs.append(-1)
                elif btype == 2:  # obsolete packet block
                    iface, _drops, hi, lo, cap, wire = struct.unpack_from(endian + "HHIIII", buf, off + 8)
                    if iface >= len(ifaces) or cap > blen - 32:
                        err = f"corrupt pcapng packet block at byte offset {base + off}"
                        break
                    lt, tick, tsoff = ifaces[iface]
                    offs.append(off + 28)
                    caps.append(cap)
                    wires.append(max(wire, cap))
                    tss.append(((hi << 32) | lo) * tick + tsoff)
                    lts.append(lt)
                    if ifrows is not None:
                        ifrows.append(ifindex.setdefault(ifnames[iface], len(ifindex)))
                    if procs is not None:  # Apple's options are for enhanced packet blocks
                        procs.append(-1)
                elif btype == 1:  # interface description block
                    lt = struct.unpack_from(endian + "H", buf, off + 8)[0]
                    tick, tsoff = 1e-6, 0.0
                    name = ""
                    for code, val in _options(buf, off + 16, off + blen - 4, endian):
                        if code == 9 and val:
                            r = val[0]
                            tick = 2.0 ** -(r & 0x7F) if r & 0x80 else 10.0 ** -r
                        elif code == 14 and len(val) >= 8:
                            tsoff = float(struct.unpack(endian + "q", val[:8])[0])
                        elif code == 2 and val:  # if_name
                            name = val.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")[:64]
                    ifaces.append((lt, tick, tsoff))
                    ifnames.append(name or f"if{len(ifaces) - 1}")
                    if len(ifaces) == 2 and ifrows is None:  # rows read before it: interface unknown (-1)
                        ifrows = [-1] * len(offs)
                        multi = True
                elif btype == 5:  # interface statistics block
                    for code, val in _options(buf, off + 20, off + blen - 4, endian):
                        if code == 5 and len(val) >= 8:  # isb_ifdrop
                            self.dropped = (self.dropped or 0) + struct.unpack(endian + "Q", val[:8])[0]
                elif btype == 0x0A:  # decryption secrets block
                    stype, slen = struct.unpack_from(endian + "II", buf, off + 8)
                    if stype == 0x544C534B:  # "TLSK": NSS key log
                        self.secrets.append(bytes(buf[off + 16 : off + 16 + min(slen, blen - 20)]))
                off += blen
            self._consumed = base + off
            if offs:
                o = np.asarray(offs, dtype=np.int64)
                cap_a = np.asarray(caps, dtype=np.int64)
                wire_a = np.asarray(wires, dtype=np.int64)
                self.packets += len(o)
                self.bytes += int(wire_a.sum())
                yield PacketBatch(
                    buf=buf,
                    off=o,
                    caplen=cap_a,
                    wirelen=wire_a,
                    ts=np.asarray(tss, dtype=np.float64),
                    linktype=np.asarray(lts, dtype=np.int32),
                    first_index=index,
                    file_base=base,
                    proc=np.asarray(procs, dtype=np.int64) if procs is not None else None,
                    processes=list(processes) if procs is not None else None,
                    iface=np.asarray(ifrows, dtype=np.int64) if ifrows is not None else None,
                    ifnames=list(ifindex) if ifrows is not None else None,
                )
                index += len(o)
            if err is not None:
                self.error = f"{self.name}: {err}; stopped after {self.packets} packets"
                return
            pending = buf[off:]
            base += off
            if eof:
                if pending:
                    self.error = (
                        f"{self.name}: truncated at byte offset {base}: last block is incomplete "
                        f"({len(pending)} bytes); read {self.packets} packets"
                    )
                return


def _darwin_process(buf: bytes, start: int, end: int, endian: str, dpibs: list[tuple[int, str]],
                    processes: dict[tuple, int]) -> int:  # fmt: skip
    """The process of an enhanced packet block written by Apple's tcpdump: its options 0x8001 and 0x8003
    give the Darwin process info block (by position in the section) of the process and of the effective
    process. Returns the index of (command, pid, effective command or None) in ``processes`` (filled as
    new ones appear), or -1."""
    proc = eproc = None
    for code, val in _options(buf, start, end, endian):
        if code == 0x8001 and len(val) == 4:
            proc = struct.unpack(endian + "I", val)[0]
        elif code == 0x8003 and len(val) == 4:
            eproc = struct.unpack(endian + "I", val)[0]
    if proc is None or proc >= len(dpibs):
        return -1
    pid, name = dpibs[proc]
    other = None
    if eproc is not None and eproc < len(dpibs) and dpibs[eproc] != dpibs[proc]:
        epid, ename = dpibs[eproc]
        other = ename or f"pid {epid}"
    key = (name or f"pid {pid}", pid, other)
    return processes.setdefault(key, len(processes))


def _options(buf: bytes, start: int, end: int, endian: str) -> Iterator[tuple[int, bytes]]:
    """Walk pcapng options (code, length, value padded to 4) between start and end."""
    off = start
    while off + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, off)
        if code == 0:
            return
        val = buf[off + 4 : off + 4 + length]
        yield code, val
        off += 4 + ((length + 3) & ~3)


def _read_exact(stream: BinaryIO, n: int, name: str, what: str = "file header", before: int = 0) -> bytes:
    """``n`` bytes, or a one-line error; ``before``: bytes of the same header already read (the magic),
    counted in the message so that it gives the header's real size."""
    try:
        data = stream.read(n)
    except (OSError, EOFError, zlib.error) as e:
        raise CaptureError(f"{name}: cannot read {what}: corrupt data ({e})") from None
    if len(data) < n:
        if not data and what == "file header":
            raise CaptureError(f"{name}: empty file, not a capture")
        raise CaptureError(f"{name}: truncated {what} ({before + len(data)} of {before + n} bytes)")
    return data


class GzipDataError(OSError):
    """Gzip data that ends early or is corrupt; the message says where."""


_NONZERO = re.compile(rb"[^\0]")


def _gunzip():
    return zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member: header, deflate data, CRC trailer


class _GzipStream:
    """Decompresses the gzip data (one member or several concatenated) read from ``raw``, of which ``head``
    was already read. ``read(n)`` returns n bytes, fewer only at the end: everything that decompresses is
    returned first, and a truncation or corruption raises ``GzipDataError`` on the read after (also kept in
    ``error``), so a damaged capture is audited up to the damage.

    Each zlib call gets at most ``GZIP_IN`` compressed bytes and may return no more than the room left in
    the read (``max_length``, the rest waits in ``unconsumed_tail``), so a gzip bomb cannot blow up memory.
    When zlib rejects a piece of input, its output is lost with the error: the piece is fed again, from a
    copy of the decompressor taken before it, in smaller and smaller pieces down to the bad byte."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self._raw = raw
        self._in = head  # compressed bytes read from raw, fed to zlib from self._pos on
        self._pos = 0
        self._in_base = 0  # compressed byte offset of self._in[0]
        self._eof = False  # raw has no more bytes
        self._d = _gunzip()  # None between members
        self._step = GZIP_IN  # compressed bytes per zlib call: smaller while closing in on a bad byte
        self._slow_end = 0  # compressed byte offset where the smaller steps end
        self._out = 0  # uncompressed bytes returned so far
        self.error: GzipDataError | None = None

    def read(self, n: int) -> bytes:  # noqa: D102
        if self.error is not None:
            raise self.error
        out: list[bytes] = []
        have = 0
        while have < n:
            if self._pos == len(self._in) and not self._eof:
                self._in_base += len(self._in)
                self._in = self._raw.read(GZIP_IN)
                self._pos = 0
                self._eof = not self._in
                continue
            d = self._d
            if d is None:  # after a member: skip zero padding (as gzip does), then the next member or the end
                m = _NONZERO.search(self._in, self._pos)
                self._pos = m.start() if m else len(self._in)
                if m:
                    self._d = _gunzip()
                elif self._eof:
                    break
                continue
            at = self._in_base + self._pos
            if at >= self._slow_end:
                self._step = GZIP_IN
            piece = memoryview(self._in)[self._pos : self._pos + self._step]
            saved = d.copy()
            try:
                got = d.decompress(piece, n - have)
            except zlib.error as e:
                if len(piece) > 1:  # salvage the output of the bytes before the bad one
                    self._d = saved
                    self._step = max(1, len(piece) // 16)
                    self._slow_end = at + len(piece)
                    continue
                self.error = GzipDataError(
                    f"corrupt compressed data at compressed byte offset {at} "
                    f"(after {self._out + have} uncompressed bytes): {e}"
                )
                break
            # bytes zlib took: at a member's end the rest is in unused_data (unconsumed_tail may be stale)
            self._pos += len(piece) - len(d.unused_data if d.eof else d.unconsumed_tail)
            if got:
                out.append(got)
                have += len(got)
            if d.eof:
                self._d = None
            elif not got and self._eof and self._pos == len(self._in):  # all input fed, member unfinished
                self.error = GzipDataError(
                    f"compressed data ended early (gzip stream cut off at compressed byte offset "
                    f"{self._in_base + self._pos}, after {self._out + have} uncompressed bytes)"
                )
                break
        if not out and self.error is not None:
            raise self.error
        self._out += have
        return out[0] if len(out) == 1 else b"".join(out)
