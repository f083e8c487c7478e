"""Issue 17 item 10: DNS NOTIFY and UPDATE messages and the NetBIOS name service (udp/137) give dns rows.

NOTIFY / UPDATE rows carry their opcode (the row's query is the zone; an UPDATE's answers are the A/AAAA
records it adds). They are no lookups: the vendor checklist does not count them, and an UPDATE's records
(a host's claim about its own address) name no flow. NBNS answers and registrations are rows with opcode
NBNS / NBNS_REGISTER / NBNS_RELEASE; they name flows to LAN addresses only, never an internet address."""

from __future__ import annotations

import pandas as pd
from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether
from scapy.layers.netbios import NBNS_ADD_ENTRY, NBNSHeader, NBNSQueryRequest, NBNSQueryResponse

import pcapaudit
from tests.craft import at, write

CLIENT, PRIMARY, SECONDARY = "192.168.1.10", "192.168.1.2", "192.168.1.3"
T0 = 1_700_000_000.0


def _notify():
    q = DNS(id=0x4a2b, opcode=4, aa=1, qd=[DNSQR(qname="gdmf.apple.com", qtype="SOA")])
    r = DNS(id=0x4a2b, opcode=4, qr=1, aa=1, qd=[DNSQR(qname="gdmf.apple.com", qtype="SOA")])
    return [
        at(Ether() / IP(src=PRIMARY, dst=SECONDARY) / UDP(sport=40001, dport=53) / q, T0),
        at(Ether() / IP(src=SECONDARY, dst=PRIMARY) / UDP(sport=53, dport=40001) / r, T0 + 0.01),
    ]


def _update():
    # RFC 2136: zone apple.com, add gdmf.apple.com A 17.6.6.7 (a host claiming a vendor's name)
    zone = [DNSQR(qname="apple.com", qtype="SOA")]
    add = DNSRR(rrname="gdmf.apple.com", type="A", rclass="IN", ttl=300, rdata="17.6.6.7")
    q = DNS(id=0x0101, opcode=5, qd=zone, ns=[add])
    r = DNS(id=0x0101, opcode=5, qr=1, qd=zone)
    return [
        at(Ether() / IP(src=CLIENT, dst=PRIMARY) / UDP(sport=40002, dport=53) / q, T0 + 0.1),
        at(Ether() / IP(src=PRIMARY, dst=CLIENT) / UDP(sport=53, dport=40002) / r, T0 + 0.11),
    ]


def _nbns(answer: str):
    # a broadcast name query for FILESRV<00> and its answer (suffix 0x4141: "AA", the encoded 0x00)
    q = NBNSHeader(NAME_TRN_ID=7, NM_FLAGS="B", QDCOUNT=1) / NBNSQueryRequest(QUESTION_NAME="FILESRV", SUFFIX=0x4141)
    r = NBNSHeader(NAME_TRN_ID=7, RESPONSE=1, NM_FLAGS="AA", QDCOUNT=0, ANCOUNT=1) / NBNSQueryResponse(
        RR_NAME="FILESRV", SUFFIX=0x4141, TTL=300000, ADDR_ENTRY=[NBNS_ADD_ENTRY(NB_ADDRESS=answer)])
    return [
        at(Ether() / IP(src=CLIENT, dst="192.168.1.255") / UDP(sport=137, dport=137) / q, T0 + 0.2),
        at(Ether() / IP(src=answer if answer.startswith("192.168.") else "192.168.1.20", dst=CLIENT)
           / UDP(sport=137, dport=137) / r, T0 + 0.21),
    ]  # fmt: skip


def _syn(dst: str, sport: int, ts: float):
    return at(Ether() / IP(src=CLIENT, dst=dst) / TCP(sport=sport, dport=445, flags="S"), ts)


def _audit(tmp_path, pkts):
    return pcapaudit.audit(str(write(tmp_path / "c.pcap", pkts)))


def test_notify_and_update_are_dns_rows_with_their_opcode(tmp_path):
    r = _audit(tmp_path, _notify() + _update())
    dns = r.dns.set_index("opcode")
    assert set(dns.index) == {"NOTIFY", "UPDATE"}, r.dns
    n = dns.loc["NOTIFY"]
    assert (n["query"], n["qtype"], n["rcode"], n["client_ip"], n["server_ip"]) == (
        "gdmf.apple.com", "SOA", "NOERROR", PRIMARY, SECONDARY)
    assert n["rtt"] > 0
    u = dns.loc["UPDATE"]
    assert (u["query"], u["qtype"], u["rcode"], u["answers"]) == ("apple.com", "SOA", "NOERROR", "A:17.6.6.7")
    assert (u["client_ip"], u["server_ip"]) == (CLIENT, PRIMARY)


def test_an_unanswered_update_still_shows_what_it_adds(tmp_path):
    r = _audit(tmp_path, _update()[:1])
    (u,) = r.dns.itertuples()
    assert (u.opcode, u.query, u.answers) == ("UPDATE", "apple.com", "A:17.6.6.7")
    assert pd.isna(u.rcode)


def test_standard_queries_say_query(tmp_path):
    q = DNS(id=9, rd=1, qd=[DNSQR(qname="example.com")])
    a = DNS(id=9, qr=1, rd=1, ra=1, qd=[DNSQR(qname="example.com")], an=[DNSRR(rrname="example.com", rdata="93.184.216.34")])
    r = _audit(tmp_path, [at(Ether() / IP(src=CLIENT, dst=PRIMARY) / UDP(sport=40009, dport=53) / q, T0),
                          at(Ether() / IP(src=PRIMARY, dst=CLIENT) / UDP(sport=53, dport=40009) / a, T0 + 0.01)])  # fmt: skip
    assert list(r.dns["opcode"]) == ["QUERY"]


def test_notify_and_update_are_no_lookups_and_name_no_flow(tmp_path):
    """An UPDATE is a host's claim about its own address, a NOTIFY a primary's note to a secondary: neither
    is an attempt to reach the vendor's host, and the UPDATE's address is not named by it."""
    r = _audit(tmp_path, _notify() + _update() + [_syn("17.6.6.7", 50100, T0 + 1)])
    cov = r.coverage.set_index("rule_id")
    if "apple.gdmf" in cov.index:
        row = cov.loc["apple.gdmf"]
        assert "DNS quer" not in str(row["note"]), row
    flow = r.flows[r.flows["dst_ip"] == "17.6.6.7"].iloc[0]
    assert pd.isna(flow["dns_name"])
    assert r.dns["vendor"].isna().all() or set(r.dns["opcode"]) == {"NOTIFY", "UPDATE"}
    # nor do they make the capture about the vendor (a lookup that failed would)
    assert "apple" not in _audit(tmp_path, _notify() + _update()).vendors


def test_a_vendor_lookup_still_counts(tmp_path):
    """The same name asked in a standard query is a lookup (the check above is about the opcode only)."""
    q = DNS(id=9, rd=1, qd=[DNSQR(qname="gdmf.apple.com")])
    r = _audit(tmp_path, [at(Ether() / IP(src=CLIENT, dst=PRIMARY) / UDP(sport=40009, dport=53) / q, T0)])
    assert r.coverage.set_index("rule_id").loc["apple.gdmf", "status"] == "tried, not reached"


def test_nbns_query_and_answer_are_rows_and_name_the_lan_host(tmp_path):
    r = _audit(tmp_path, _nbns("192.168.1.20") + [_syn("192.168.1.20", 50200, T0 + 1)])
    nb = r.dns[r.dns["opcode"] == "NBNS"].sort_values("ts")
    assert list(nb["query"]) == ["filesrv", "filesrv"]
    assert list(nb["qtype"]) == ["NB", "NB"]
    assert list(nb["transport"]) == ["udp", "udp"]
    ask, answer = nb.iloc[0], nb.iloc[1]
    assert pd.isna(ask["rcode"]) and pd.isna(ask["answers"])
    assert (ask["client_ip"], ask["server_ip"]) == (CLIENT, "192.168.1.255")
    assert (answer["rcode"], answer["answers"]) == ("NOERROR", "NB:192.168.1.20")
    assert (answer["client_ip"], answer["server_ip"]) == (CLIENT, "192.168.1.20")
    flow = r.flows[r.flows["dst_port"] == 445].iloc[0]
    assert flow["dns_name"] == "filesrv"


def test_an_nbns_answer_never_names_an_internet_address(tmp_path):
    """Anyone on the link can answer NBNS: an answer claiming a public address is a row, but names nothing."""
    r = _audit(tmp_path, _nbns("17.6.6.7") + [_syn("17.6.6.7", 50300, T0 + 1)])
    answer = r.dns[(r.dns["opcode"] == "NBNS") & r.dns["rcode"].notna()].iloc[0]
    assert answer["answers"] == "NB:17.6.6.7"
    flow = r.flows[r.flows["dst_port"] == 445].iloc[0]
    assert pd.isna(flow["dns_name"])


def test_nbns_names_only_the_answered_address(tmp_path):
    r = _audit(tmp_path, _nbns("192.168.1.20") + [_syn("192.168.1.21", 50400, T0 + 1)])
    flow = r.flows[r.flows["dst_port"] == 445].iloc[0]
    assert pd.isna(flow["dns_name"])
