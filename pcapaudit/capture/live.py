"""Live capture: packets read from an interface with libpcap, optionally written to a rotating pcapng file, and
fed to an ``Auditor`` in small batches (every half second or 2,000 packets), idle flows expired while nothing
arrives. A library piece: the ``pcapaudit live`` command (``pcapaudit.cli``) builds the Auditor, the panel
(``pcapaudit.report.livepanel``) and the report around it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcapaudit.capture.pcapfile import PacketBatch
from pcapaudit.engine import EngineConfig
from pcapaudit.errors import CaptureError, UsageError

BATCH_PACKETS = 2000
BATCH_SECONDS = 0.5
LIVE_ENGINE = EngineConfig(idle_tcp=120.0, idle_udp=30.0, close_delay=2.0, unanswered=15.0)


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '5m', '1h30m' -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not m or not any(m.groups()):
        raise UsageError(f"--duration {text!r}: expected e.g. 90, 90s, 5m, 1h")
    h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    total = h * 3600 + mi * 60 + s
    if total <= 0:
        raise UsageError(f"--duration {text!r}: must be positive")
    return total


@dataclass(frozen=True)
class LiveRun:
    """What one capture did: packets read, seconds it ran, the libpcap counters (received by the filter,
    dropped by the kernel, dropped by the interface; None where the platform has none), the error that
    ended it early (the interface went away...), and the pcapng files written."""

    packets: int
    elapsed: float
    stats: tuple[int, int, int] | None
    errors: tuple[str, ...]
    files: tuple[str, ...]


def capture(
    auditor,
    interface: str,
    *,
    snaplen: int = 65535,
    bpf: str | None = None,
    duration: float | None = None,
    count: int | None = None,
    write: str | None = None,
    rotate_mb: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_status: Callable[[int, tuple | None, float], None] | None = None,
    on_open: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> LiveRun:
    """Capture from ``interface`` into ``auditor`` until ``should_stop()``, ``duration`` seconds or ``count``
    packets. ``on_open()`` is called once the interface is open, ``on_status(packets, stats, elapsed)`` after
    every packet or timeout, ``on_stop()`` when the capture stops, before the last batch is fed. The auditor is not finished: the caller does it
    (its flush raises the findings of the flows still open). A failing interface ends the capture with its
    error in ``LiveRun.errors``; what was seen before is kept."""
    from pcapaudit.capture.libpcap import Handle
    from pcapaudit.capture.writer import PcapngWriter

    if count is not None and count <= 0:
        raise UsageError("--count must be positive")
    handle = Handle(interface, snaplen=snaplen, bpf=bpf)
    writer = None
    errors: list[str] = []
    total = 0
    t0 = time.monotonic()
    elapsed = 0.0
    stats = None
    try:
        if write:
            rotate = int(rotate_mb * 1_000_000) if rotate_mb else None
            writer = PcapngWriter(write, handle.linktype, snaplen, rotate, interface)
        if on_open is not None:
            on_open()
        pending: list[tuple[float, int, bytes]] = []
        last_feed = t0
        while not should_stop():
            pkt = handle.next()
            if pkt is not None:
                pending.append(pkt)
                total += 1
                if writer is not None:
                    writer.write(*pkt)
            now = time.monotonic()
            done = (duration is not None and now - t0 >= duration) or (count is not None and total >= count)
            if pending and (len(pending) >= BATCH_PACKETS or now - last_feed >= BATCH_SECONDS or done):
                _feed(auditor, pending, handle.linktype)
                pending = []
                last_feed = now
                if writer is not None:
                    writer.flush()
            elif now - last_feed >= BATCH_SECONDS:
                auditor.expire(time.time())  # let idle flows finish while nothing arrives
                last_feed = now
            if on_status is not None:
                on_status(total, handle.stats(), now - t0)
            if done:
                break
        elapsed = time.monotonic() - t0
        if on_stop is not None:
            on_stop()
        if pending:
            _feed(auditor, pending, handle.linktype)
    except CaptureError as e:  # a failing interface must not lose what was already seen
        errors.append(str(e))
    finally:
        if not elapsed:
            elapsed = time.monotonic() - t0
        if on_stop is not None:
            on_stop()
        stats = handle.stats()
        handle.close()
        if writer is not None:
            writer.close(stats, time.time())
    if stats is not None:
        auditor.dropped, auditor.if_dropped = stats[1], stats[2]
    files = tuple(writer.files) if writer is not None else ()
    return LiveRun(total, elapsed, stats, tuple(errors), files)


def _feed(auditor, pending: list[tuple[float, int, bytes]], linktype: int) -> None:
    """Turn captured packets into one PacketBatch and audit it."""
    n = len(pending)
    lens = np.fromiter((len(p[2]) for p in pending), dtype=np.int64, count=n)
    off = np.zeros(n, dtype=np.int64)
    if n > 1:
        off[1:] = np.cumsum(lens[:-1])
    batch = PacketBatch(
        buf=b"".join(p[2] for p in pending),
        off=off,
        caplen=lens,
        wirelen=np.fromiter((max(p[1], len(p[2])) for p in pending), dtype=np.int64, count=n),
        ts=np.fromiter((p[0] for p in pending), dtype=np.float64, count=n),
        linktype=np.full(n, linktype, dtype=np.int32),
        first_index=auditor.packets,
        file_base=0,
    )
    auditor.feed_batch(batch)
