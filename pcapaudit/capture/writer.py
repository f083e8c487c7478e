"""pcapng writer with size-based rotation, for ``pcapaudit live --write``.

Every block is written whole and flushed, so a file is valid up to its last packet even if the process
is killed; on a clean stop an Interface Statistics Block records the drop counters.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import BinaryIO


def _block(btype: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack("<II", btype, total) + body + b"\0" * pad + struct.pack("<I", total)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def file_linktype(dlt: int, platform: str = sys.platform) -> int:
    """The LINKTYPE_ value a file must carry for a live handle's DLT_ value. They are equal except where a
    system reuses a number: macOS gives PKTAP (``pcapaudit live pktap,en0``) as DLT_USER2, 149, which files
    store as LINKTYPE_PKTAP, 258 (as libpcap's own writer does)."""
    if platform == "darwin" and dlt == 149:
        return 258
    return dlt


class PcapngWriter:
    """Write packets of one link type; start a new numbered file when ``rotate_bytes`` is exceeded."""

    def __init__(self, path: str, linktype: int, snaplen: int = 65535, rotate_bytes: int | None = None,
                 iface: str | None = None):  # fmt: skip
        self.base = Path(path)
        self.linktype = file_linktype(linktype)
        self.snaplen = snaplen
        self.rotate = rotate_bytes
        self.iface = iface
        self.index = 0
        self.files: list[str] = []
        self.packets = 0
        self._fh: BinaryIO | None = None
        self._size = 0
        self._open()

    def _name(self) -> Path:
        if not self.rotate:
            return self.base
        stem, suffix = self.base.stem, self.base.suffix or ".pcapng"
        return self.base.with_name(f"{stem}-{self.index:04d}{suffix}")

    def _open(self) -> None:
        path = self._name()
        try:
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()/rotation
        except OSError as e:
            from pcapaudit.errors import CaptureError

            raise CaptureError(f"{path}: cannot write capture: {e.strerror or e}") from None
        self.files.append(str(path))
        shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(4, b"pcapaudit live") + struct.pack("<HH", 0, 0))
        opts = _opt(9, b"\x06")  # microsecond timestamps
        if self.iface:
            opts += _opt(2, self.iface.encode()[:200])
        idb = _block(1, struct.pack("<HHI", self.linktype, 0, self.snaplen) + opts + struct.pack("<HH", 0, 0))
        self._write(shb + idb)

    def _write(self, data: bytes) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self._size += len(data)

    def write(self, ts: float, wirelen: int, data: bytes) -> None:
        """Append one packet."""
        if self.rotate and self._size >= self.rotate:
            self._close_file()
            self.index += 1
            self._size = 0
            self._open()
        units = int(round(ts * 1_000_000))
        body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(data), wirelen) + data
        self._write(_block(6, body))
        self.packets += 1

    def flush(self) -> None:
        """Push buffered blocks to the file."""
        if self._fh is not None:
            self._fh.flush()

    def _close_file(self, stats: tuple[int, int, int] | None = None, ts: float | None = None) -> None:
        if self._fh is None:
            return
        if stats is not None:
            recv, drop, ifdrop = stats
            units = int(round((ts or 0) * 1_000_000))
            opts = _opt(4, struct.pack("<Q", recv)) + _opt(5, struct.pack("<Q", ifdrop)) + struct.pack("<HH", 0, 0)
            self._write(_block(5, struct.pack("<III", 0, units >> 32, units & 0xFFFFFFFF) + opts))
            del drop
        self._fh.close()
        self._fh = None

    def close(self, stats: tuple[int, int, int] | None = None, ts: float | None = None) -> None:
        """Finish the current file (with interface statistics when given)."""
        self._close_file(stats, ts)
