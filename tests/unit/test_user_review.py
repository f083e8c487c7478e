"""A new user's review (stop 19): what a proxy refused is not reached, DNS that never answered or answered
nothing for a vendor name, damaged captures in a directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapaudit.cli import main
from tests.craft import tcp_session, write


def _audit(capsys, *args) -> dict:
    main(["audit", *map(str, args), "-f", "json", "--fail-on", "none"])
    return json.loads(capsys.readouterr().out)


def _row(rows, rid):
    return next(r for r in rows if r["rule_id"] == rid)


@pytest.mark.parametrize("status, reached", [(403, False), (407, False), (503, False), (200, True)])
def test_a_proxy_refusing_an_absolute_form_request_is_not_reaching_the_host(tmp_path, capsys, status, reached):
    """A GET http://captive.apple.com/ to a proxy answered 403 is a block of the captive-portal host, as a
    CONNECT answered 403 is: the checklist row is blocked, not reached."""
    req = b"GET http://captive.apple.com/hotspot-detect.html HTTP/1.1\r\nHost: captive.apple.com\r\n\r\n"
    resp = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode()
    cap = write(tmp_path / "proxy.pcap", tcp_session("10.0.0.5", "10.0.0.1", 50000, 8080, [req], [resp]))
    out = _audit(capsys, cap)
    row = _row(out["coverage"], "apple.captive")
    assert row["reached"] is reached
    assert row["status"] == ("reached" if reached else "blocked")
