"""Hostile input: random packets, hostile protocol payloads and mutated real captures through the whole
audit. The result must always be partial results plus counted weird rows, or (for a file that is not a
capture) a one-line error naming the file: never a traceback. Each test prints how many cases it ran.
"""

from __future__ import annotations

import io
import random
import struct
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.cli import main
from pcapaudit.errors import CaptureError
from tests.conftest import CORPUS
from tests.craft import client_hello, pcapng_block

ROOT = Path(__file__).resolve().parents[1]
LINKTYPES = [1, 101, 113, 276, 0, 108, 9, 228, 229, 147, 258, 149]
CASES: dict[str, int] = {}


def _pcap(records: list[bytes], linktype: int) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for i, r in enumerate(records):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(r), len(r)) + r
    return out


_BOOK = None


def _book():
    global _BOOK
    if _BOOK is None:
        from pcapaudit.rules.loader import load_rulebook

        _BOOK = load_rulebook()
    return _BOOK


def _audit_bytes(data: bytes, tmp: Path, name: str = "f.pcap"):
    p = tmp / name
    p.write_bytes(data)
    a = Auditor(AuditOptions(), book=_book())
    src = CaptureFile(str(p))
    a.run_file(src)
    r = a.finish()
    # the tables must materialise with their dtypes
    r.flows, r.findings, r.coverage, r.dns, r.weirds  # noqa: B018
    # a parser exception is contained as a parser_error weird (the run goes on), but it is still a bug
    assert "parser_error" not in set(r.weirds["name"].astype(str)), r.weirds
    return r


ETH_IP = bytes.fromhex("0000000000020000000000010800")


def _ipv4(proto: int, payload: bytes, src=b"\xc0\xa8\x32\x0a", dst=b"\x11\x39\x92\x14") -> bytes:
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst)
    return hdr + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def _tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6), st.sampled_from(LINKTYPES))
def test_random_frames(tmp_path, frames, linktype):
    CASES["random_frames"] = CASES.get("random_frames", 0) + 1
    _audit_bytes(_pcap(frames, linktype), tmp_path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.just(108), st.integers(0, 400)), st.sampled_from([1, 1, 0, 2]),
       st.sampled_from([1, 1, 0, 12, 108, 113, 149, 258, 999]), st.binary(min_size=96, max_size=96),
       st.one_of(st.just(0), st.integers(0, 220)), st.sampled_from([258, 149]))
def test_hostile_pktap_headers(tmp_path, length, rectype, dlt, rest, cut, linktype):
    """Apple PKTAP headers with any length, record type, inner link type and process bytes, in front of a
    real frame that may be cut anywhere."""
    CASES["pktap"] = CASES.get("pktap", 0) + 1
    frame = ETH_IP + _ipv4(6, _tcp(40003, 443, 1, 0x18, client_hello("pktap.example.com")))
    hdr = struct.pack("<III", length, rectype, dlt) + rest
    frames = [(hdr + frame)[: max(len(hdr) + len(frame) - cut, 0)], hdr + frame]
    r = _audit_bytes(_pcap(frames, linktype), tmp_path)
    if length == 108 and rectype == 1 and dlt == 1:
        assert list(r.flows["sni"]) == ["pktap.example.com"]
        CASES["pktap_sni"] = CASES.get("pktap_sni", 0) + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=40), st.binary(min_size=0, max_size=40), st.integers(0, 3), st.booleans())
def test_hostile_darwin_pcapng_blocks(tmp_path, dpib_body, epb_options, dpib_count, simple_block):
    """Apple's process blocks with any body, packet-block options with any bytes, and a simple packet block
    (which has no options) among them."""
    CASES["darwin_pcapng"] = CASES.get("darwin_pcapng", 0) + 1

    block = pcapng_block
    frame = ETH_IP + _ipv4(6, _tcp(40004, 443, 1, 0x02, b""))
    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + block(1, struct.pack("<HHI", 1, 0, 65535))
    data += block(0x80000001, dpib_body) * dpib_count
    if simple_block:
        data += block(3, struct.pack("<I", len(frame)) + frame)
    opts = struct.pack("<HHI", 0x8001, 4, max(dpib_count - 1, 0)) + epb_options
    data += block(6, struct.pack("<IIIII", 0, 0, 1, len(frame), len(frame)) + frame + b"\0" * (-len(frame) % 4) + opts)
    r = _audit_bytes(data, tmp_path, "d.pcapng")
    assert len(r.flows) == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=400), st.sampled_from([53, 5353, 443, 123, 3544, 4789, 2152, 5247, 9999]))
def test_hostile_udp_payloads(tmp_path, payload, port):
    """DNS (compression loops, absurd counts, non-UTF-8), QUIC, tunnels, NTP with garbage."""
    CASES["udp_payloads"] = CASES.get("udp_payloads", 0) + 1
    frames = [ETH_IP + _ipv4(17, _udp(40000, port, payload)), ETH_IP + _ipv4(17, _udp(port, 40000, payload[::-1]),
              src=b"\x11\x39\x92\x14", dst=b"\xc0\xa8\x32\x0a")]  # fmt: skip
    _audit_bytes(_pcap(frames, 1), tmp_path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600), st.integers(1, 40), st.booleans())
def test_hostile_tls_streams(tmp_path, body, pieces, reverse):
    """TLS-looking streams with absurd record and handshake lengths, cut into segments, in any order."""
    CASES["tls_streams"] = CASES.get("tls_streams", 0) + 1
    stream = b"\x16\x03\x01" + struct.pack(">H", len(body) + 4) + b"\x01" + struct.pack(">I", len(body))[1:] + body
    cuts = sorted({0, len(stream), *random.Random(len(body)).sample(range(len(stream) + 1), min(pieces, len(stream)))})
    segs = [(cuts[i], stream[cuts[i] : cuts[i + 1]]) for i in range(len(cuts) - 1)]
    if reverse:
        segs.reverse()
    frames = [ETH_IP + _ipv4(6, _tcp(40001, 443, 999, 0x02, b""))]
    frames += [ETH_IP + _ipv4(6, _tcp(40001, 443, 1000 + off, 0x18, seg)) for off, seg in segs]
    frames.append(ETH_IP + _ipv4(6, _tcp(443, 40001, 5000, 0x18, body), src=b"\x11\x39\x92\x14", dst=b"\xc0\xa8\x32\x0a"))
    _audit_bytes(_pcap(frames, 1), tmp_path)


def test_huge_client_hello_over_many_segments(tmp_path):
    """A 60 KB ClientHello (padding extension) in 200 tiny out-of-order segments still yields its SNI."""
    ch = client_hello("huge.example.com", extra_ext=struct.pack(">HH", 21, 60000) + b"\x00" * 60000)
    hs = ch[5:]  # one handshake message, carried in records of at most 2^14 bytes as TLS requires
    rec = b"".join(b"\x16\x03\x01" + struct.pack(">H", len(hs[i : i + 16384])) + hs[i : i + 16384]
                   for i in range(0, len(hs), 16384))  # fmt: skip
    assert len(rec) > 60000
    size = len(rec) // 200 + 1
    segs = [(i, rec[i : i + size]) for i in range(0, len(rec), size)]
    random.Random(7).shuffle(segs)
    frames = [ETH_IP + _ipv4(6, _tcp(40002, 443, 999, 0x02, b""))]
    frames += [ETH_IP + _ipv4(6, _tcp(40002, 443, 1000 + off, 0x18, seg)) for off, seg in segs]
    r = _audit_bytes(_pcap(frames, 1), tmp_path)
    assert list(r.flows["sni"]) == ["huge.example.com"]


def _records(data: bytes) -> list[tuple[int, int]]:
    """(data offset, captured length) of the records of a classic pcap file; [] for anything else."""
    magic = data[:4]
    if magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return []
    endian = "<" if magic[0] in (0xD4, 0x4D) else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, off + 8)[0]
        if off + 16 + incl > len(data):
            break
        out.append((off + 16, incl))
        off += 16 + incl
    return out


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    if len(b) < 64:
        return bytes(b) + bytes(rnd.randrange(256) for _ in range(8))
    kind = rnd.randrange(8)
    recs = _records(data) if kind >= 6 else []
    if recs:  # packet bytes past the Ethernet+IPv4 headers only: the records stay valid, the parsers see the damage
        for start, n in rnd.sample(recs, min(3, len(recs))):
            for _ in range(rnd.randint(1, 6)) if n > 34 else ():
                i = rnd.randrange(start + 34, start + n)
                b[i] = rnd.choice([0x00, 0xFF, 0x7F, 0x80, 0xC0, 0x3F, rnd.randrange(256)])
        return bytes(b)
    kind %= 6
    if kind == 0:  # flip bytes anywhere after the file header
        for _ in range(rnd.randint(1, 20)):
            i = rnd.randrange(24, len(b))
            b[i] = rnd.randrange(256)
    elif kind == 1:  # truncate
        del b[rnd.randrange(24, len(b)) :]
    elif kind == 2:  # duplicate a chunk
        i = rnd.randrange(24, len(b))
        j = min(len(b), i + rnd.randint(1, 500))
        b[i:i] = b[i:j]
    elif kind == 3:  # delete a chunk
        i = rnd.randrange(24, len(b))
        del b[i : i + rnd.randint(1, 300)]
    elif kind == 4:  # absurd 16/32-bit lengths
        for _ in range(rnd.randint(1, 5)):
            i = rnd.randrange(24, len(b) - 4)
            b[i : i + 2] = rnd.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\xc0\x0c"])
    else:  # damage the file header itself
        i = rnd.randrange(0, 24)
        b[i] = rnd.randrange(256)
    return bytes(b)


def _seeds() -> list[Path]:
    seeds = sorted((ROOT / "tests" / "scenarios").glob("*/input.pcap")) + [ROOT / "captures" / "enrollment-troubleshooting.pcap"]
    if (CORPUS / "ndpi").is_dir():
        seeds += [p for p in sorted((CORPUS / "ndpi").glob("*.pcap*")) + sorted((CORPUS / "arkime").glob("*.pcap"))
                  if p.stat().st_size < 400_000]  # fmt: skip
    return seeds


@pytest.mark.parametrize("rounds", [6])
def test_mutated_real_captures_through_the_cli(tmp_path, rounds):
    rnd = random.Random(20261126)
    cases = 0
    for seed in _seeds():
        data = seed.read_bytes()
        for k in range(rounds):
            bad = tmp_path / f"m{k}-{seed.name}"
            bad.write_bytes(_mutate(data, rnd))
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main(["audit", str(bad), "-f", "json", "-o", str(tmp_path / "r.json"), "--fail-on", "none"])
            text = err.getvalue()
            assert "Traceback" not in text, text
            if (tmp_path / "r.json").exists():
                assert '"parser_error"' not in (tmp_path / "r.json").read_text(), bad
            assert code in (0, 2), (code, text)
            if code == 2:
                errors = [line for line in text.splitlines() if line.startswith("pcapaudit: error:")]
                assert errors and all(str(bad) in e for e in errors), text
                if (tmp_path / "r.json").exists():  # a cut-short capture still gets its report
                    assert (tmp_path / "r.json").stat().st_size > 0
            (tmp_path / "r.json").unlink(missing_ok=True)
            cases += 1
    CASES["mutated_captures"] = cases
    assert cases >= 100


def test_every_truncation_point_of_a_small_capture(tmp_path):
    data = (ROOT / "tests" / "scenarios" / "hl7-2575" / "input.pcap").read_bytes()
    cases = 0
    for cut in range(0, min(len(data), 1200)):
        p = tmp_path / "cut.pcap"
        p.write_bytes(data[:cut])
        try:
            src = CaptureFile(str(p))
            a = Auditor(AuditOptions(), book=_book())
            a.run_file(src)
            a.finish()
            if cut > 24:
                assert src.error is None or "byte offset" in src.error
        except CaptureError as e:
            assert cut <= 24 and str(p) in str(e)
        cases += 1
    CASES["truncations"] = cases


def test_report_case_counts():
    """Not a check: prints how many hostile cases the tests above ran (for the closing note)."""
    print("\nhostile-input cases run:", CASES, "total", sum(CASES.values()))


# -- inputs a structure-aware mutation fuzzer found (about 55,000 cases over the corpus, stop 10) -----------
def test_icmp_header_outside_its_datagram_is_a_weird_in_both_engines(tmp_path):
    # IPv4 total length 20 (no room for the ICMP header) with Ethernet padding behind it: the fast path
    # read the header from the padding and gave the flow -8 payload bytes, which the uint64 column refused
    frame = ETH_IP + _ipv4(1, b"")[:2] + struct.pack(">H", 20) + _ipv4(1, b"")[4:] + b"\xa5\x00\xff\xff\x00\xff\x00\x00"
    p = tmp_path / "icmp.pcap"
    p.write_bytes(_pcap([frame], 1))
    for engine in ("fast", "simple"):
        a = Auditor(AuditOptions(engine=engine), book=_book())
        a.run_file(CaptureFile(str(p)))
        r = a.finish()
        assert len(r.flows) == 0 and list(r.weirds["name"].astype(str)) == ["truncated_icmp_header"], engine


def _http_flow(tmp_path, request: bytes, port: int = 3128):
    frames = [ETH_IP + _ipv4(6, _tcp(40003, port, 999, 0x02, b"")),
              ETH_IP + _ipv4(6, _tcp(40003, port, 1000, 0x18, request))]  # fmt: skip
    return _audit_bytes(_pcap(frames, 1), tmp_path)


def test_proxy_requests_with_non_ascii_digit_ports(tmp_path):
    # "44³".isdigit() is True, int("44³") raises: a CONNECT target and an absolute-form URL ended the audit
    r = _http_flow(tmp_path, b"CONNECT gdmf.apple.com:44\xb3 HTTP/1.1\r\nHost: gdmf.apple.com\r\n\r\n")
    f = r.flows.iloc[0]
    assert f["connect_host"] == "gdmf.apple.com" and f["connect_port"] is pd.NA
    r = _http_flow(tmp_path, b"GET http://gdmf.apple.com:8\xb3/x HTTP/1.1\r\nHost: gdmf.apple.com\r\n\r\n")
    assert r.flows.iloc[0]["http_method"] == "GET"


def test_a_parser_exception_costs_one_flow_its_details_not_the_run(tmp_path, monkeypatch):
    """Containment for parser bugs still unknown: the flow keeps its counters, the exception is a weird
    row with the flow's uid, and the other flows are untouched."""
    from pcapaudit.decode import tls

    real = tls.parse_client_hello

    def fragile(body, *a, **k):
        if b"boom.example" in bytes(body):
            raise RuntimeError("simulated parser bug")
        return real(body, *a, **k)

    monkeypatch.setattr(tls, "parse_client_hello", fragile)
    frames = []
    for port, sni in ((40010, "boom.example"), (40011, "fine.example")):
        frames += [ETH_IP + _ipv4(6, _tcp(port, 443, 999, 0x02, b"")),
                   ETH_IP + _ipv4(6, _tcp(port, 443, 1000, 0x18, client_hello(sni)))]  # fmt: skip
    p = tmp_path / "two.pcap"
    p.write_bytes(_pcap(frames, 1))
    a = Auditor(AuditOptions(engine="fast"), book=_book())  # the Python oracle's containment
    a.run_file(CaptureFile(str(p)))
    r = a.finish()
    flows = r.flows.set_index("src_port")
    assert flows.loc[40011, "sni"] == "fine.example"
    assert flows.loc[40010, "sni"] is pd.NA and flows.loc[40010, "pkts_c2s"] == 2
    w = r.weirds[r.weirds["name"].astype(str) == "parser_error"]
    assert len(w) == 1 and w.iloc[0]["uid"] == flows.loc[40010, "uid"]
    assert "RuntimeError: simulated parser bug" in w.iloc[0]["detail"]

    # the same at the end of a flow, when its details are put together
    monkeypatch.setattr(tls, "parse_client_hello", real)
    monkeypatch.setattr(tls, "version_name", lambda v: 1 / 0)
    a = Auditor(AuditOptions(engine="fast"), book=_book())  # the Python oracle's containment
    a.run_file(CaptureFile(str(p)))
    r = a.finish()
    assert len(r.flows) == 2 and r.flows["sni"].isna().all()
    # the capture holds the clients' side only (their data ACKs an answer it does not show): that is said too
    assert set(r.weirds["name"].astype(str)) == {"parser_error", "one_direction_link"}
    w = r.weirds[r.weirds["name"].astype(str) == "parser_error"]
    assert len(w) == 2 and set(w["uid"]) == set(r.flows["uid"]) and w["detail"].str.startswith("ZeroDivisionError").all()


def test_a_dns_parser_exception_is_contained_too(tmp_path, monkeypatch):
    from pcapaudit.decode import dns

    real = dns.parse

    def fragile(msg):
        if b"boom" in msg and msg[2] & 0x80:
            raise IndexError("simulated parser bug")
        return real(msg)

    monkeypatch.setattr(dns, "parse", fragile)

    def msg(tid, name, response):
        q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
        if not response:
            return struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + q
        return struct.pack(">HHHHHH", tid, 0x8180, 1, 1, 0, 0) + q + bytes.fromhex("c00c000100010000003c0004") + bytes([17, 1, 2, 3])

    frames = []
    for port, name in ((40020, "boom.example"), (40021, "fine.example")):
        frames.append(ETH_IP + _ipv4(17, _udp(port, 53, msg(port, name, False))))
        frames.append(ETH_IP + _ipv4(17, _udp(53, port, msg(port, name, True)), src=b"\x11\x39\x92\x14", dst=b"\xc0\xa8\x32\x0a"))
    p = tmp_path / "dns.pcap"
    p.write_bytes(_pcap(frames, 1))
    a = Auditor(AuditOptions(engine="fast"), book=_book())  # the Python oracle's containment
    a.run_file(CaptureFile(str(p)))
    r = a.finish()
    # the query whose response broke the parser stays an unanswered query; the other flow is untouched
    rcode = dict(zip(r.dns["query"], r.dns["rcode"].astype(object)))
    assert set(rcode) == {"boom.example", "fine.example"} and pd.isna(rcode["boom.example"])
    assert rcode["fine.example"] == "NOERROR"
    assert len(r.flows) == 2
    w = r.weirds[r.weirds["name"].astype(str) == "parser_error"]
    boom = r.flows.set_index("src_port").loc[40020, "uid"]
    assert len(w) == 1 and w.iloc[0]["uid"] == boom and "IndexError: simulated parser bug" in w.iloc[0]["detail"]
