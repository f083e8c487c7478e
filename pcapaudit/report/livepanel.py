"""The ``pcapaudit live`` panel: findings as they happen on stderr, a refreshing view on a terminal (cut to
its width, wide characters counted) and one plain line per finding otherwise. Presentation only: the capture
loop is ``pcapaudit.capture.live``, the command that joins the two is ``pcapaudit.cli``."""

from __future__ import annotations

import io
import os
import sys
import time
import unicodedata
from datetime import datetime, timezone

from pcapaudit.model import Finding


def terminal_size(stream=None) -> tuple[int, int]:
    """(columns, rows) of the terminal the panel is drawn on: stderr's own, not stdout's (``live -f json >
    report.json`` still draws on a terminal), else $COLUMNS/$LINES, else 80x24."""
    import shutil

    try:
        size = os.get_terminal_size((stream or sys.stderr).fileno())
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    size = shutil.get_terminal_size((80, 24))
    return max(1, size.columns), max(1, size.lines)


def panel_width(columns: int | None = None) -> int:
    """Columns a panel line may take: one less than the terminal's width (a full-width line leaves the
    cursor in the last column, where some terminals wrap), at most 200."""
    if columns is None:
        columns = terminal_size()[0]
    return max(1, min(columns - 1, 200))


def char_width(ch: str) -> int:
    """Columns a terminal may give one character, never fewer than it does: wide (CJK, emoji) and
    ambiguous characters count 2, combining marks 0, a variation selector 1 (U+FE0F can widen the
    character before it), characters this Python's Unicode does not know yet 2."""
    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return 1
    if o == 0xFE0F:
        return 1
    cat = unicodedata.category(ch)
    if cat in ("Mn", "Me") or o == 0x200D:
        return 0
    if cat == "Cn" or unicodedata.east_asian_width(ch) in ("W", "F", "A"):
        return 2
    return 1


def text_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (an upper bound, see ``char_width``)."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal columns (wide characters and emoji counted as two)."""
    if text.isascii() and len(text) <= width:
        return text
    used = 0
    for i, ch in enumerate(text):
        w = char_width(ch)
        if used + w > width:
            return text[:i]
        used += w
    return text


def _one_line(text: str) -> str:
    """Control characters made visible (clean_text) and the ones it keeps too: tabs and newlines."""
    from pcapaudit.report.render import clean_text

    return clean_text(text).replace("\t", "\\t").replace("\n", "\\n")


class LiveDisplay:
    """Findings as they happen on stderr: a refreshing panel on a terminal, plain lines otherwise.

    The panel is the status line and the latest findings, redrawn in place: the cursor climbs the rows
    the previous panel took (each line cut to the terminal's width, so one row per line unless the
    terminal got narrower since and wrapped them) and rewrites them. After the capture stops
    (``stopped()``), findings are collected instead, and ``close()`` draws the last panel with every
    one of them, and the real elapsed time, before the report is written.
    """

    KEEP = 12  # findings the panel shows

    def __init__(self, enabled: bool, iface: str, stream=None, size=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.size = size or (lambda: terminal_size(self.stream))
        self.iface = _one_line(iface)
        self.recent: list[str] = []
        self.late: list[str] = []  # raised after the capture stopped (flows flushed): all are printed
        self.counts = {"blocked": 0, "unexpected": 0, "tls_intercepted": 0}
        self._stopped = False
        self._drawn: list[int] = []  # the columns each line of the panel on screen takes
        self._last = 0.0

    def finding(self, fd: Finding, new: bool) -> None:
        """Auditor callback: a finding was produced (``new``: first of its identifier)."""
        if not new or not self.enabled:
            return
        self.counts[fd.kind.value] = self.counts.get(fd.kind.value, 0) + 1
        try:
            when = datetime.fromtimestamp(fd.ts or time.time(), tz=timezone.utc).strftime("%H:%M:%S")
        except (ValueError, OverflowError, OSError):
            when = "--:--:--"
        who = dict(fd.evidence).get("process")  # captures that name processes (pcapaudit live pktap on a Mac)
        line = _one_line(f"{when} {str(fd.severity).upper():<6} {fd.kind.value:<15} {fd.code:<28} {fd.message}"
                         + (f" [{who}]" if who else ""))  # fmt: skip
        if not self.tty:
            print(line, file=self.stream, flush=True)
        elif self._stopped:
            self.late.append(line)
        else:
            self.recent.append(line)
            del self.recent[: -self.KEEP]

    def stopped(self) -> None:
        """The capture stopped: findings from now on (the flush of every flow) are all kept for ``close``."""
        self._stopped = True

    def _head(self, packets: int, active: int, flows: int, stats, elapsed: float, final: bool) -> str:
        drops = f"{stats[1]:,} dropped" if stats else "drops n/a"
        tail = "stopped" if final else "(Ctrl-C to stop and report)"
        return (f"pcapaudit live {self.iface}: {packets:,} packets, {flows:,} flows done, {active:,} active, {drops}, "
                f"{elapsed:,.0f}s  | blocked {self.counts['blocked']}  unexpected {self.counts['unexpected']}  "
                f"intercepted {self.counts['tls_intercepted']}   {tail}")  # fmt: skip

    def status(self, packets: int, active: int, flows: int, stats, elapsed: float, force: bool = False) -> None:
        """Redraw the panel (terminal only, at most 4 times a second)."""
        if not (self.enabled and self.tty):
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        columns, rows = self.size()
        keep = max(0, min(self.KEEP, rows - 2))  # a panel taller than the screen could not be climbed back
        recent = self.recent[-keep:] if keep else []
        self._draw([self._head(packets, active, flows, stats, elapsed, False), *recent], columns)

    def close(self, packets: int, active: int, flows: int, stats, elapsed: float) -> None:
        """The last panel, after the flush: the final counts and elapsed time, the latest findings and
        every finding the flush raised (never redrawn after this, so it may be taller than the screen)."""
        if not (self.enabled and self.tty):
            return
        columns, rows = self.size()
        keep = max(0, min(self.KEEP, rows - 2))
        recent = self.recent[-keep:] if keep else []
        self._draw([self._head(packets, active, flows, stats, elapsed, True), *recent, *self.late], columns)
        self._drawn = []
        self.late = []

    def _draw(self, lines: list[str], columns: int) -> None:
        width = panel_width(columns)
        lines = [fit(x, width) for x in lines]
        # the rows the previous panel takes now: one per line, more for a line the terminal has since
        # wrapped (it got narrower)
        up = sum(max(1, -(-w // max(1, columns))) for w in self._drawn)
        self.stream.write(("\x1b[F\x1b[2K" * up) + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = [text_width(x) for x in lines]
