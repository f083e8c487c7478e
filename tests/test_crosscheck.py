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
