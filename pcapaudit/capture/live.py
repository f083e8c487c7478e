"""``pcapaudit live IFACE``: capture from an interface and audit as packets arrive.

Packets are read with libpcap, optionally written to a rotating pcapng file, and fed to the same
``Auditor`` as ``audit`` in small batches (every half second or 2,000 packets). Findings are shown as they
happen (a refreshing view on a terminal, one line each otherwise). Ctrl-C, SIGTERM, ``--duration`` or
``--count`` end the capture; every flow is then flushed and the same report as ``audit`` is written.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from datetime import datetime, timezone

import numpy as np

from pcapaudit.capture.pcapfile import PacketBatch
from pcapaudit.engine import EngineConfig
from pcapaudit.errors import CaptureError, UsageError, one_line
from pcapaudit.model import Finding

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


def panel_width() -> int:
    """Characters a panel line may take: one less than the terminal's width (a line that wrapped would
    make the redraw move up too few lines), at most 200."""
    import shutil

    return max(20, min(shutil.get_terminal_size((201, 24)).columns - 1, 200))


class LiveDisplay:
    """Findings as they happen on stderr: a refreshing panel on a terminal, plain lines otherwise."""

    def __init__(self, enabled: bool, iface: str):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.iface = iface
        self.recent: list[str] = []
        self.counts = {"blocked": 0, "unexpected": 0, "tls_intercepted": 0}
        self._lines = 0
        self._last = 0.0

    def finding(self, fd: Finding, new: bool) -> None:
        """Auditor callback: a finding was produced (``new``: first of its identifier)."""
        if not new or not self.enabled:
            return
        from pcapaudit.report.render import clean_text

        self.counts[fd.kind.value] = self.counts.get(fd.kind.value, 0) + 1
        try:
            when = datetime.fromtimestamp(fd.ts or time.time(), tz=timezone.utc).strftime("%H:%M:%S")
        except (ValueError, OverflowError, OSError):
            when = "--:--:--"
        who = dict(fd.evidence).get("process")  # captures that name processes (pcapaudit live pktap on a Mac)
        line = clean_text(f"{when} {str(fd.severity).upper():<6} {fd.kind.value:<15} {fd.code:<28} {fd.message}"
                          + (f" [{who}]" if who else ""))  # fmt: skip
        if self.tty:
            self.recent.append(line)
            del self.recent[:-12]
        else:
            print(line, file=sys.stderr, flush=True)

    def status(self, packets: int, active: int, flows: int, stats, elapsed: float, force: bool = False) -> None:
        """Redraw the panel (terminal only, at most 4 times a second)."""
        if not (self.enabled and self.tty):
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        drops = f"{stats[1]:,} dropped" if stats else "drops n/a"
        head = (f"pcapaudit live {self.iface}: {packets:,} packets, {flows:,} flows done, {active:,} active, {drops}, "
                f"{elapsed:,.0f}s  | blocked {self.counts['blocked']}  unexpected {self.counts['unexpected']}  "
                f"intercepted {self.counts['tls_intercepted']}   (Ctrl-C to stop and report)")  # fmt: skip
        width = panel_width()
        lines = [head[:width]] + [x[:width] for x in self.recent]
        out = ("\x1b[F\x1b[2K" * self._lines) + "\n".join(lines) + "\n"
        sys.stderr.write(out)
        sys.stderr.flush()
        self._lines = len(lines)


def run_live(args, opts, threshold) -> int:
    """Capture, audit, report. Returns the exit code."""
    from pcapaudit.audit import Auditor, severity_at_least
    from pcapaudit.capture.libpcap import Handle
    from pcapaudit.capture.writer import PcapngWriter
    from pcapaudit.cli import (
        EXIT_ERROR,
        EXIT_FINDINGS,
        EXIT_OK,
        _summary_line,
        check_report_paths,
        check_writable,
        write_report,
    )

    duration = parse_duration(args.duration)
    if args.count is not None and args.count <= 0:
        raise UsageError("--count must be positive")
    if args.rotate_mb is not None and (args.rotate_mb <= 0 or not args.write):
        raise UsageError("--rotate-mb needs --write FILE and a positive size")
    check_report_paths(args)
    if args.write:
        check_writable(args.write, "the packets")
    opts.engine_config = LIVE_ENGINE
    display = LiveDisplay(not args.quiet, args.interface)
    auditor = Auditor(opts, on_finding=display.finding)
    handle = Handle(args.interface, snaplen=args.snaplen, bpf=args.bpf)
    writer = None
    stop = {"flag": False}

    def _stop(signum, frame):  # noqa: ARG001
        stop["flag"] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    auditor.sources.append(f"live:{args.interface}")
    errors: list[str] = []
    try:
        if args.write:
            rotate = int(args.rotate_mb * 1_000_000) if args.rotate_mb else None
            writer = PcapngWriter(args.write, handle.linktype, args.snaplen, rotate, args.interface)
        if not args.quiet and not sys.stderr.isatty():
            print(f"pcapaudit: capturing on {args.interface} (Ctrl-C to stop and report)", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        pending: list[tuple[float, int, bytes]] = []
        last_feed = t0
        total = 0
        while not stop["flag"]:
            pkt = handle.next()
            if pkt is not None:
                pending.append(pkt)
                total += 1
                if writer is not None:
                    writer.write(*pkt)
            now = time.monotonic()
            done = (duration is not None and now - t0 >= duration) or (args.count is not None and total >= args.count)
            if pending and (len(pending) >= BATCH_PACKETS or now - last_feed >= BATCH_SECONDS or done):
                _feed(auditor, pending, handle.linktype)
                pending = []
                last_feed = now
                if writer is not None:
                    writer.flush()
            elif now - last_feed >= BATCH_SECONDS:
                auditor.engine.expire(time.time())  # let idle flows finish while nothing arrives
                last_feed = now
            display.status(total, auditor.engine.active_flows, len(auditor.flows), handle.stats(), now - t0)
            if done:
                break
        if pending:
            _feed(auditor, pending, handle.linktype)
    except CaptureError as e:  # a failing interface must not lose what was already seen
        errors.append(str(e))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stats = handle.stats()
        handle.close()
        if writer is not None:
            writer.close(stats, time.time())
    if stats is not None:
        auditor.dropped, auditor.if_dropped = stats[1], stats[2]
    auditor.errors.extend(errors)
    display.status(auditor.packets, auditor.engine.active_flows, len(auditor.flows), stats, 0, force=True)
    result = auditor.finish()
    write_report(result, args)
    if not args.quiet:
        line = _summary_line(result)
        if stats is not None:
            line += f"; capture: {stats[0]:,} received by filter, {stats[1]:,} dropped by kernel, {stats[2]:,} by interface"
        if writer is not None:
            line += f"; packets written to {', '.join(writer.files)}"
        print(line, file=sys.stderr)
    for e in result.errors:
        print(f"pcapaudit: error: {one_line(e)}", file=sys.stderr)
    if result.errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if severity_at_least(result.finding_records, threshold) else EXIT_OK


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
