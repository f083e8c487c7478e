"""The refreshing panel of ``pcapaudit live`` (issue 19 item 2): a line never wider than the terminal (emoji
and wide characters included), a redraw that climbs exactly the rows the previous panel took, every
finding of the final flush drawn before the report, the real elapsed time on the last status line.

Checked on bytes, in a terminal emulator (pyte) and in a real terminal (tmux at 80 and 120 columns); the
emulator tests skip when pyte / tmux is missing.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import struct
import subprocess
import sys
import termios
import time
import types
from pathlib import Path

import pytest

from pcapaudit.model import Finding, FindingKind, Severity

ROOT = Path(__file__).resolve().parents[1]
WIDE = [
    "SYN to 1-courier.push.apple.com (17.57.146.20:5223) never answered (3 SYNs)",
    "certificate issued by 🔒 Corporate 🛡️ Inspection CA ❤️ 👨‍👩‍👧 for 🇩🇪 " * 3,
    "証明書の発行者が予期しないものです：企業検査認証局（カンジ）の" * 4,
    "combining e\u0301\u0301\u0301 and tabs\tand\nnewlines and a very long tail " + "x" * 150,
    "Ωμέγα ambiguous … “quotes” ‘and’ ±×÷ ①②③ " * 5,
]


def fd(i: int, msg: str) -> Finding:
    kind = (FindingKind.BLOCKED, FindingKind.UNEXPECTED, FindingKind.INTERCEPTED)[i % 3]
    return Finding(kind=kind, severity=Severity.HIGH, code=f"code_{i}", uid=None, rule_id=None, vendor=None,
                   service=None, target=None, message=f"#{i} {msg}", evidence=(), identifier=f"id{i}",
                   ts=1_700_000_000.0 + i)  # fmt: skip


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def _wcswidth():
    try:
        from wcwidth import wcswidth
    except ImportError:
        return None
    return wcswidth


# -- bytes -----------------------------------------------------------------------------------------------
def test_fit_never_exceeds_the_width():
    from pcapaudit.report.livepanel import fit, text_width

    wcs = _wcswidth()
    for text in WIDE:
        for width in (1, 2, 5, 19, 40, 79, 119):
            cut = fit(text, width)
            assert text.startswith(cut)
            assert text_width(cut) <= width
            if wcs is not None and wcs(cut) >= 0:
                assert wcs(cut) <= width, (cut, width)
    assert fit("abc", 10) == "abc" and fit("日本語", 4) == "日本" and fit("日本語", 5) == "日本"


def test_redraw_climbs_the_rows_drawn():
    """One row per line it drew; after the terminal got narrower, the rows the wrapped lines now take."""
    from pcapaudit.report.livepanel import LiveDisplay

    out = TtyBuffer()
    size = [(120, 40)]
    d = LiveDisplay(True, "eth0", stream=out, size=lambda: size[0])
    for i, m in enumerate(WIDE):
        d.finding(fd(i, m), True)
    d.status(1, 2, 3, (0, 0, 0), 1.0, force=True)
    first = out.getvalue()
    assert not first.startswith("\x1b")
    drawn = first.splitlines()
    assert len(drawn) == 1 + len(WIDE)  # the newline inside a message does not add a row
    out.seek(0), out.truncate()
    d.status(1, 2, 3, (0, 0, 0), 2.0, force=True)
    assert out.getvalue().startswith("\x1b[F\x1b[2K" * len(drawn) + "pcapaudit live eth0")
    assert not out.getvalue().startswith("\x1b[F\x1b[2K" * (len(drawn) + 1))
    # narrower: every line drawn at 119 columns now wraps onto 3 rows of 50 (those that were that long)
    from pcapaudit.report.livepanel import text_width

    widths = [text_width(x) for x in out.getvalue().replace("\x1b[F\x1b[2K", "").splitlines()]
    size[0] = (50, 40)
    out.seek(0), out.truncate()
    d.status(1, 2, 3, (0, 0, 0), 3.0, force=True)
    rows = sum(max(1, -(-w // 50)) for w in widths)
    assert rows > len(drawn)
    assert out.getvalue().startswith("\x1b[F\x1b[2K" * rows + "pcapaudit")
    assert not out.getvalue().startswith("\x1b[F\x1b[2K" * (rows + 1))


def test_panel_never_taller_than_the_screen():
    from pcapaudit.report.livepanel import LiveDisplay

    out = TtyBuffer()
    d = LiveDisplay(True, "eth0", stream=out, size=lambda: (80, 6))
    for i in range(20):
        d.finding(fd(i, "short"), True)
    d.status(1, 2, 3, None, 1.0, force=True)
    assert len(out.getvalue().splitlines()) == 5


def test_the_width_is_stderrs_terminal(monkeypatch):
    """``live -f json > report.json``: stdout is a file, the panel is drawn on stderr's terminal."""
    from pcapaudit.report.livepanel import terminal_size

    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        with open(slave, "w", closefd=False) as tty:
            assert terminal_size(tty) == (120, 40)
    finally:
        os.close(master), os.close(slave)


def test_flush_findings_and_elapsed_reach_the_last_panel(monkeypatch):
    """Findings raised while flows are flushed after the capture stops are all drawn, before the report,
    and the last status line shows the real elapsed time."""
    import importlib

    import pcapaudit.capture.libpcap
    import pcapaudit.cli

    out = TtyBuffer()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("LINES", "40")

    class Handle:
        linktype = 1

        def __init__(self, *a, **k):
            pass

        def next(self):
            time.sleep(0.01)
            return None

        def stats(self):
            return (0, 0, 0)

        def close(self):
            pass

    class Auditor:
        def __init__(self, opts, on_finding):
            self.on_finding, self.sources, self.errors = on_finding, [], []
            self.packets, self.active_flows, self.flows = 0, 0, []

        def expire(self, now):
            pass

        def finish(self):
            for i in range(30):  # more than the panel keeps
                self.on_finding(fd(i, f"flushed finding {i}"), True)
            return types.SimpleNamespace(errors=[], finding_records=[])

    monkeypatch.setattr(pcapaudit.capture.libpcap, "Handle", Handle)
    monkeypatch.setattr(importlib.import_module("pcapaudit.audit"), "Auditor", Auditor)
    monkeypatch.setattr(pcapaudit.cli, "check_report_paths", lambda args: None)
    monkeypatch.setattr(pcapaudit.cli, "write_report", lambda result, args: out.write("<REPORT>\n"))
    monkeypatch.setattr(pcapaudit.cli, "_summary_line", lambda result: "summary")
    args = types.SimpleNamespace(duration="1.2", count=None, rotate_mb=None, write=None, quiet=False,
                                 interface="eth0", snaplen=65535, bpf=None)  # fmt: skip
    pcapaudit.cli._run_live(args, types.SimpleNamespace(), None)
    text = out.getvalue()
    before, _, _ = text.partition("<REPORT>")
    assert "<REPORT>" in text
    for i in range(30):
        assert f"flushed finding {i}\n" in before, i
    last_status = before.rsplit("pcapaudit live eth0:", 1)[1].splitlines()[0]
    assert " 1s  |" in last_status and "stopped" in last_status, last_status


# -- a terminal emulator ---------------------------------------------------------------------------------
def _drive(display, columns_rows=None):
    """Many redraws with findings arriving in between, then the flush."""
    for i in range(40):
        display.finding(fd(i, WIDE[i % len(WIDE)]), True)
        display.status(i * 1000, 5, i, (0, 0, 0), float(i), force=True)
    display.stopped()
    for i in range(40, 45):
        display.finding(fd(i, "late " + WIDE[i % len(WIDE)]), True)
    display.close(45_000, 0, 45, (0, 0, 0), 77.0)


@pytest.mark.parametrize("columns", [80, 120])
def test_panel_in_pyte(columns):
    pyte = pytest.importorskip("pyte")
    screen = pyte.Screen(columns, 60)
    stream = pyte.Stream(screen)
    screen.set_mode(pyte.modes.LNM)  # "\n" is CR LF, as a tty's onlcr makes it

    class Out(TtyBuffer):
        def write(self, s):
            stream.feed(s)
            return len(s)

    from pcapaudit.report.livepanel import LiveDisplay

    d = LiveDisplay(True, "eth0", stream=Out(), size=lambda: (columns, 60))
    for i in range(40):
        d.finding(fd(i, WIDE[i % len(WIDE)]), True)
        d.status(i * 1000, 5, i, (0, 0, 0), float(i), force=True)
        rows = [r.rstrip() for r in screen.display]
        assert sum("pcapaudit live eth0:" in r for r in rows) == 1
        assert len([r for r in rows if r]) == 1 + min(i + 1, 12)
        assert all(screen.buffer[y][columns - 1].data == " " for y in range(60))  # last column never used
    d.stopped()
    for i in range(40, 45):
        d.finding(fd(i, "late"), True)
    d.close(45_000, 0, 45, (0, 0, 0), 77.0)
    rows = [r.rstrip() for r in screen.display]
    assert sum("pcapaudit live eth0:" in r for r in rows) == 1
    assert any(" 77s  |" in r for r in rows)
    assert all(any(f"#{i} late" in r for r in rows) for i in range(40, 45))


TMUX_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from tests.test_live_panel import _drive, fd, WIDE
from pcapaudit.report.livepanel import LiveDisplay
d = LiveDisplay(True, "eth0")
if {resize!r}:
    for i in range(5):
        d.finding(fd(i, WIDE[i % len(WIDE)]), True)
    d.status(1, 1, 1, None, 1.0, force=True)
    open({ready!r}, "w").write("1")
    time.sleep(1.5)  # the test makes the window narrower meanwhile
_drive(d)
open({marker!r}, "w").write("done")
time.sleep(60)
"""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
@pytest.mark.parametrize("columns, resize", [(80, None), (120, None), (120, 80)])
def test_panel_in_tmux(tmp_path, columns, resize):
    sock = f"pcapaudit-test-{os.getpid()}-{columns}-{resize}"
    marker, ready, script = tmp_path / "done", tmp_path / "ready", tmp_path / "drive.py"
    script.write_text(TMUX_SCRIPT.format(root=str(ROOT), marker=str(marker), ready=str(ready), resize=resize))
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TMUX", None)
    subprocess.run([*tmux, "new-session", "-d", "-x", str(columns), "-y", "50",
                    f"{sys.executable} {script} 2>&1"], check=True, env=env)  # fmt: skip
    try:
        if resize:
            end = time.monotonic() + 20
            while not ready.exists() and time.monotonic() < end:
                time.sleep(0.05)
            subprocess.run([*tmux, "resize-window", "-x", str(resize)], check=True)
            columns = resize
        end = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert marker.exists(), "the panel script never finished"
        size = subprocess.run([*tmux, "display", "-p", "#{pane_width}"], capture_output=True, text=True,
                              check=True)  # fmt: skip
        assert int(size.stdout) == columns
        # the scrollback too, unless the window got narrower: tmux then rewraps the panel and pushes its top
        # rows into the scrollback, out of the cursor's reach (the screen must still show one panel)
        history = [] if resize else ["-S", "-200"]
        pane = subprocess.run([*tmux, "capture-pane", "-p", *history], capture_output=True, text=True,
                              check=True).stdout.splitlines()  # fmt: skip
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    lines = [x.rstrip() for x in pane if x.strip()]
    assert sum("pcapaudit live eth0:" in x for x in lines) == 1, "\n".join(lines)
    status = next(x for x in lines if "pcapaudit live eth0:" in x)
    assert " 77s  |" in status
    # one row per panel line: the status line, the 12 latest findings, the 5 of the flush
    assert len(lines) == 1 + 12 + 5, "\n".join(lines)
    assert all(any(f"#{i} late" in x for x in lines) for i in range(40, 45))
    wcs = _wcswidth()
    from pcapaudit.report.livepanel import text_width

    for x in lines:
        assert (wcs(x) if wcs is not None and wcs(x) >= 0 else text_width(x)) < columns, x
