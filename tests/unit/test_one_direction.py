"""Issue 17 items 1-2: captures that show one direction of a conversation (a span port, ``tcpdump -Q out``)
and replies on other VLAN tags than the requests are no "blocked" findings.

The captures are crafted here with scapy (tests/craft.py): every test builds its own.
"""

from __future__ import annotations

import pytest
from scapy.all import Dot1Q, Ether

import pcapaudit
from pcapaudit.report.render import header_lines
from tests.craft import IP, TCP, UDP, Raw, at, client_hello, server_hello, tcp_session, write

CLIENT = "192.168.50.10"
APNS = "17.57.146.20"  # Apple's 17.0.0.0/8: flows there meet the APNs rules by address
WEB = "17.253.144.10"
QUIET = "17.57.146.99"  # a server that never answers
BLOCKING = ("syn_no_reply", "silence_after_client_hello", "rst_after_client_hello", "fin_after_client_hello",
            "udp_no_reply", "handshake_aborted_after_server_reply")  # fmt: skip
ENGINES = ("core", "fast")


def _side(pkts, src):
    return [p for p in pkts if p[IP].src == src]


def _tls(t0=1_700_000_000.0, sport=50001):
    return tcp_session(CLIENT, APNS, sport, 5223, c_payloads=[client_hello("1-courier.push.apple.com"), b"\x17\x03\x03\x00\x05hello"],
                       s_payloads=[server_hello(0x0304), b"\x17\x03\x03\x00\x05world"], t0=t0)  # fmt: skip


def _http(t0=1_700_000_001.0, sport=50002):
    return tcp_session(CLIENT, WEB, sport, 80, c_payloads=[b"GET /bag HTTP/1.1\r\nHost: init.itunes.apple.com\r\n\r\n"],
                       s_payloads=[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], t0=t0)  # fmt: skip


def _unanswered_syn(t0=1_700_000_002.0, sport=50003):
    return [at(Ether() / IP(src=CLIENT, dst=QUIET) / TCP(sport=sport, dport=5223, flags="S", seq=7000), t0 + k)
            for k in (0, 1, 3)]  # fmt: skip


def _udp(t0=1_700_000_002.5):
    return [at(Ether() / IP(src=CLIENT, dst=WEB) / UDP(sport=40000, dport=5228) / Raw(b"x" * 40), t0 + k) for k in (0, 1)]


def client_only_capture(path):
    """What ``tcpdump -Q out`` on the client shows: a TLS session and an HTTP exchange (the server's packets
    are missing, the client's ACKs say they existed), a datagram with no reply in sight, and a SYN that
    was really never answered (three SYNs, nothing else)."""
    pkts = _side(_tls(), CLIENT) + _side(_http(), CLIENT) + _unanswered_syn() + _udp()
    pkts.append(at(Ether() / IP(src=CLIENT, dst=WEB) / TCP(sport=50009, dport=80, flags="S", seq=1), 1_700_000_009.0))
    return write(path, sorted(pkts, key=lambda p: p._ts))


def server_only_capture(path):
    """Only the server's side of a TLS session (SYN-ACK, its handshake reply, data, FIN)."""
    return write(path, _side(_tls(), APNS))


def _audit(path, engine):
    r = pcapaudit.audit(str(path), engine=engine)
    return r, r.flows.set_index("dst_ip")


def _codes(r, uid):
    f = r.findings
    return set(f.loc[f["uids"].fillna("").str.contains(uid) | (f["uid"] == uid), "code"])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_only_capture_is_no_block(tmp_path, engine):
    r, flows = _audit(client_only_capture(tmp_path / "client-only.pcap"), engine)
    for dst in (APNS, WEB):
        row = flows.loc[dst] if dst == APNS else flows[flows["dst_port"] == 80].iloc[0]
        assert row["one_direction"] == "client_only", dst
        assert not _codes(r, row["uid"]) & set(BLOCKING), (dst, _codes(r, row["uid"]))
    # the SYN nobody answered is still blocked: the class must not hide real blocks
    quiet = flows.loc[QUIET]
    assert pd_na(quiet["one_direction"]) and "syn_no_reply" in _codes(r, quiet["uid"])
    # the client is seen in one direction only: its UDP without a reply is no finding either
    assert "udp_no_reply" not in set(r.findings["code"])
    extra = dict(r.stats.extra)
    assert extra["one_direction_flows"] == 2 and extra["one_direction_links"] == 2
    links = r.weirds[r.weirds["name"] == "one_direction_link"]
    assert len(links) == 2 and links["detail"].str.contains(f"{CLIENT} -> {APNS}: 1 TCP flow shows only the client's").any()
    assert any("seen in one direction only" in x for x in header_lines(r))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_only_capture_is_no_block(tmp_path, engine):
    r, flows = _audit(server_only_capture(tmp_path / "server-only.pcap"), engine)
    assert len(flows) == 1
    row = flows.iloc[0]
    assert (row["src_ip"], row["one_direction"]) == (CLIENT, "server_only")
    assert not set(r.findings["code"]) & set(BLOCKING)


@pytest.mark.parametrize("engine", ENGINES)
def test_both_directions_and_a_lone_syn_say_nothing_of_one_direction(tmp_path, engine):
    path = write(tmp_path / "both.pcap", _tls() + _unanswered_syn())
    r, flows = _audit(path, engine)
    assert flows["one_direction"].isna().all()
    assert "one_direction_flows" not in dict(r.stats.extra)
    assert "syn_no_reply" in _codes(r, flows.loc[QUIET, "uid"])


def pd_na(v) -> bool:
    import pandas as pd

    return pd.isna(v)


# -- item 2: replies on other VLAN tags ---------------------------------------------------------------
def _tagged(pkts, request_tags, reply_tags):
    def tag(p, tags):
        out = Ether()
        for t in tags:
            out = out / Dot1Q(vlan=t)
        return at(out / p[IP], p._ts)

    return [tag(p, request_tags if p[IP].src == CLIENT else reply_tags) for p in pkts]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("req", "rep", "shown", "said"), [
    ((10,), (20,), (10, None), "first packet on VLAN 10, the other direction on VLAN 20"),
    ((100, 10), (100, 20), (100, 10), "first packet on VLAN 100/10, the other direction on VLAN 100/20"),
    ((10,), (), (10, None), "first packet on VLAN 10, the other direction on no VLAN tag"),
])  # fmt: skip
def test_replies_on_other_vlan_tags_are_one_flow(tmp_path, engine, req, rep, shown, said):
    """A router on a trunk re-tags the replies: still one conversation, one flow, no block."""
    path = write(tmp_path / "retagged.pcap", _tagged(_tls(), req, rep))
    r = pcapaudit.audit(str(path), engine=engine)
    assert len(r.flows) == 1
    f = r.flows.iloc[0]
    # the server's handshake reply is in the flow (the crafted client sends no Finished after it)
    assert (f["conn_state"], f["tls_server_version"], f["sni"]) == ("SF", "TLSv1.3", "1-courier.push.apple.com")
    assert (f["vlan"], None if pd_na(f["inner_vlan"]) else f["inner_vlan"]) == shown
    # the findings of the same session untagged (the crafted client's abrupt data after the server's reply
    # makes a handshake note there too), and no "SYN never answered"
    plain = pcapaudit.audit(str(write(tmp_path / "plain.pcap", _tls())), engine=engine)
    assert set(r.findings["code"]) == set(plain.findings["code"])
    assert "syn_no_reply" not in set(r.findings["code"])
    w = r.weirds[r.weirds["name"] == "vlan_differs_by_direction"]
    assert list(w["detail"]) == [said] and list(w["uid"]) == [f["uid"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_same_tags_both_ways_raise_no_vlan_weird(tmp_path, engine):
    r = pcapaudit.audit(str(write(tmp_path / "tagged.pcap", _tagged(_tls(), (10,), (10,)))), engine=engine)
    assert len(r.flows) == 1 and r.flows.iloc[0]["vlan"] == 10
    assert "vlan_differs_by_direction" not in set(r.weirds["name"].astype(str))
