"""The optional tshark cross-check (pyshark) agrees with pcapaudit on the lab captures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["sni-filtered-rst", "dns-blocked", "proxy-connect-denied"])
def test_crosscheck_agrees(name):
    pytest.importorskip("pyshark")
    from pcapaudit.crosscheck import crosscheck

    diff, summary = crosscheck(str(ROOT / "tests" / "scenarios" / name / "input.pcap"))
    assert summary["flows_with_sni_tshark"] >= 1 or summary["dns_names_tshark"] >= 1
    assert diff.empty, diff.to_string()


def test_crosscheck_without_pyshark_is_one_line(monkeypatch, capsys):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pyshark":
            raise ImportError("no pyshark")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    from pcapaudit.cli import main

    assert main(["crosscheck", str(ROOT / "captures" / "enrollment-troubleshooting.pcap")]) == 2
    assert "needs pyshark" in capsys.readouterr().err


CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("rel", ["ndpi/quic.pcap", "ndpi/gquic.pcap", "arkime/quicietfooo.pcap"])
def test_crosscheck_agrees_on_quic_corpus(rel):
    """QUIC v1 CRYPTO frames, Google QUIC tags and out-of-order Initials: same names both ways."""
    pytest.importorskip("pyshark")
    path = CORPUS / rel
    if not path.exists():
        pytest.skip("../shared/corpus not present")
    from pcapaudit.crosscheck import crosscheck

    diff, summary = crosscheck(str(path))
    assert summary["flows_with_sni_tshark"] >= 1
    assert diff.empty, diff.to_string()


def test_crosscheck_missing_file_exits_2(capsys):
    from pcapaudit.cli import main

    assert main(["crosscheck", "/nonexistent/x.pcap"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/x.pcap" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_a_capture_tshark_refuses_is_one_line_with_tsharks_reason(tmp_path, capsys):
    """A capture cut short: tshark says so once (no second run), and the error is its line alone, not
    pyshark's message with escaped newlines and debugging advice."""
    pytest.importorskip("pyshark")
    from pcapaudit.cli import main

    cut = tmp_path / "cut.pcap"
    cut.write_bytes((ROOT / "captures" / "enrollment-troubleshooting.pcap").read_bytes()[:30000])
    assert main(["crosscheck", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "appears to have been cut short" in err[0], err
    assert "\\n" not in err[0] and "set_debug" not in err[0] and "running it again" not in err[0]


def test_tshark_that_exits_abnormally_once_is_run_again(monkeypatch, caplog):
    pyshark = pytest.importorskip("pyshark")
    from pcapaudit import crosscheck as cc
    from pcapaudit.errors import PcapAuditError

    crash = pyshark.capture.capture.TSharkCrashException("TShark (pid 1) seems to have crashed (retcode: 255).")
    calls = []

    def flaky(_mod, path):
        calls.append(path)
        if len(calls) == 1:
            raise crash
        return {("udp", ("10.0.0.1", 1), ("10.0.0.2", 443)): {"a.example"}}, {"a.example"}

    monkeypatch.setattr(cc, "_tshark_names_once", flaky)
    _snis, dns = cc.tshark_names("x.pcap")
    assert len(calls) == 2 and dns == {"a.example"} and "running it again" in caplog.text

    def broken(_mod, path):
        raise crash

    monkeypatch.setattr(cc, "_tshark_names_once", broken)
    with pytest.raises(PcapAuditError, match="x.pcap: tshark failed"):
        cc.tshark_names("x.pcap")


def test_crosscheck_leaves_no_sigchld_handler_behind():
    """pyshark's SafeChildWatcher stays attached to an idle event loop: later child exits filled its
    wakeup pipe ("BlockingIOError ... _sighandler_noop" in a later test). crosscheck puts it back."""
    import signal

    pytest.importorskip("pyshark")
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    from pcapaudit.crosscheck import tshark_names

    tshark_names(str(ROOT / "tests" / "scenarios" / "dns-blocked" / "input.pcap"))
    assert signal.getsignal(signal.SIGCHLD) in (signal.SIG_DFL, None)
    old = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old)
    assert old == -1


def test_a_close_that_raises_is_not_retried_at_garbage_collection():
    """pyshark's close() raises TSharkCrashException when tshark exits 255 as it is killed, and leaves the
    process listed, so Capture.__del__ closed it again at garbage collection: an 'Exception ignored in
    Capture.__del__' warning in some test runs. The raise still reaches tshark_names (which retries)."""
    pyshark = pytest.importorskip("pyshark")
    from pcapaudit import crosscheck as cc

    crash = pyshark.capture.capture.TSharkCrashException("TShark (pid 1) seems to have crashed (retcode: 255).")

    class FakeCapture:
        def __init__(self, *a, **kw):
            self._running_processes = {object()}

        def __iter__(self):
            return iter(())

        def close(self):
            if self._running_processes:
                raise crash

        async def _cleanup_subprocess(self, process):
            pass

    class FakeShark:
        FileCapture = FakeCapture
        capture = pyshark.capture

    made = []
    FakeShark.FileCapture = lambda *a, **kw: made.append(FakeCapture()) or made[-1]
    with pytest.raises(pyshark.capture.capture.TSharkCrashException):
        cc._tshark_names_once(FakeShark, "x.pcap")
    assert made and made[0]._running_processes == set()  # __del__ has nothing left to close


@pytest.mark.corpus
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_is_not_reported_as_crashed_at_the_end_of_a_file(corpus):
    """pyshark killed tshark at the end of the file before the child watcher reported its exit; the kill
    reaped it and the watcher then reported exit status 255: a false crash in 10-14 of 40 runs on this
    capture (two in a row failed a cross-check test now and then). Six runs, none may crash."""
    pyshark = pytest.importorskip("pyshark")
    from pcapaudit.crosscheck import _tshark_names_once

    path = corpus / "ndpi" / "quic.pcap"
    if not path.exists():
        pytest.skip("ndpi/quic.pcap not in the corpus")
    for _ in range(6):
        snis, _dns = _tshark_names_once(pyshark, str(path))
        assert any("google" in n for names in snis.values() for n in names)
