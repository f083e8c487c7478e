"""Capture reader: formats, compression, byte order, truncation and corruption."""

from __future__ import annotations

import gzip
import io
import random
import struct
import sys
import zlib

import pytest

from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.cli import main
from pcapaudit.errors import CaptureError

ETH_IP_UDP = bytes.fromhex(
    "000000000002000000000001080045000021000100004011f9c5c0a80001c0a80002"
    "0035d43b000dffff" "616263" "6465"
)[:47]


def pcap_bytes(records, endian="<", nano=False, linktype=1, modified=False):
    magic = 0xA1B23C4D if nano else (0xA1B2CD34 if modified else 0xA1B2C3D4)
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts, data in records:
        sec = int(ts)
        frac = int(round((ts - sec) * (1e9 if nano else 1e6)))
        out += struct.pack(endian + "IIII", sec, frac, len(data), len(data))
        if modified:
            out += b"\0" * 8
        out += data
    return out


def read_all(path_or_file):
    cf = CaptureFile(path_or_file)
    batches = list(cf.batches())
    pkts = []
    for b in batches:
        for o, c, t in zip(b.off.tolist(), b.caplen.tolist(), b.ts.tolist()):
            pkts.append((t, b.buf[o : o + c]))
    return cf, pkts


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, endian, nano):
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes([(1.5, b"a" * 20), (2.25, b"b" * 30)], endian, nano))
    cf, pkts = read_all(str(p))
    assert cf.error is None
    assert [len(d) for _, d in pkts] == [20, 30]
    assert pkts[0][0] == pytest.approx(1.5) and pkts[1][0] == pytest.approx(2.25)


def test_modified_pcap_24_byte_records(tmp_path):
    p = tmp_path / "m.pcap"
    p.write_bytes(pcap_bytes([(1.0, b"x" * 10), (2.0, b"y" * 11)], modified=True))
    cf, pkts = read_all(str(p))
    assert [d for _, d in pkts] == [b"x" * 10, b"y" * 11]


def test_gzip_and_small_chunks(tmp_path):
    recs = [(1.0 + i, bytes([i]) * (i + 1)) for i in range(200)]
    p = tmp_path / "x.pcap.gz"
    p.write_bytes(gzip.compress(pcap_bytes(recs)))
    cf = CaptureFile(str(p))
    got = []
    for b in cf.batches(chunk=64):  # records straddle many chunk boundaries
        got += [b.buf[o : o + c] for o, c in zip(b.off.tolist(), b.caplen.tolist())]
    assert got == [d for _, d in recs]
    assert cf.error is None


def _varied_records(n=400):
    """Records with random payloads (they hardly compress), so a cut gzip stream loses the last few."""
    rnd = random.Random(7)
    return [(1.0 + i, ETH_IP_UDP + rnd.randbytes(i % 90)) for i in range(n)]


def _whole_records(pcap: bytes) -> int:
    """Records wholly inside ``pcap`` (a little-endian pcap file, maybe cut short)."""
    off = 24
    n = 0
    while off + 16 <= len(pcap):
        off += 16 + struct.unpack_from("<I", pcap, off + 8)[0]
        if off > len(pcap):
            break
        n += 1
    return n


def _assert_one_line(error, path, message):
    assert error and str(path) in error and message in error and "\n" not in error


@pytest.mark.parametrize("cut", [1, 8, 9, 40, 500])  # into the CRC trailer, just before it, into the data
def test_truncated_gzip_keeps_everything_that_decompresses(tmp_path, cut):
    # gzip.GzipFile lost the whole last read (up to 8 MiB) when the data ended early: every record that
    # decompresses must be read, then a one-line error says the compressed data ended early
    recs = _varied_records()
    data = gzip.compress(pcap_bytes(recs))[:-cut]
    p = tmp_path / "t.pcap.gz"
    p.write_bytes(data)
    cf, pkts = read_all(str(p))
    expect = _whole_records(zlib.decompressobj(31).decompress(data))  # all that zlib can decompress
    assert expect == len(recs) if cut <= 8 else len(recs) - 20 < expect <= len(recs)
    assert [d for _, d in pkts] == [d for _, d in recs[:expect]]
    _assert_one_line(cf.error, p, "compressed data ended early")


def test_truncated_gzip_audit_reports_then_exits_2(tmp_path, capsys):
    recs = _varied_records()
    data = gzip.compress(pcap_bytes(recs))[:-200]
    p = tmp_path / "t.pcap.gz"
    p.write_bytes(data)
    expect = _whole_records(zlib.decompressobj(31).decompress(data))
    assert main(["audit", str(p), "--fail-on", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"from {expect} packets" in err[-2]
    assert err[-1].startswith("pcapaudit: error: ")
    _assert_one_line(err[-1], p, "compressed data ended early")


def test_multi_member_gzip_reads_whole(tmp_path):
    recs = _varied_records()
    raw = pcap_bytes(recs)
    cuts = [0, 5, 3000, 3001, len(raw) // 2, len(raw)]  # members end mid-header and mid-record
    members = [gzip.compress(raw[a:b]) for a, b in zip(cuts, cuts[1:])]
    data = b"".join(members[:2]) + gzip.compress(b"") + b"".join(members[2:]) + b"\0" * 20  # padded, as gzip allows
    p = tmp_path / "m.pcap.gz"
    p.write_bytes(data)
    for chunk in (64, 1 << 20):
        cf = CaptureFile(str(p))
        got = []
        for b in cf.batches(chunk=chunk):
            got += [b.buf[o : o + c] for o, c in zip(b.off.tolist(), b.caplen.tolist())]
        assert got == [d for _, d in recs] and cf.error is None
    # cut short inside the last member: the earlier members and what decompresses of the last are read
    p.write_bytes(b"".join(members)[:-100])
    cf, pkts = read_all(str(p))
    assert len(recs) - 20 < len(pkts) < len(recs)
    _assert_one_line(cf.error, p, "compressed data ended early")


def test_corrupt_gzip_keeps_the_packets_before_the_damage(tmp_path):
    recs = _varied_records()
    raw = pcap_bytes(recs)
    half = 24 + sum(16 + len(d) for _, d in recs[:200])
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = z.compress(raw[:half]) + z.flush(zlib.Z_FULL_FLUSH)  # byte-aligned: the next byte starts a block
    tail = z.compress(raw[half:]) + z.flush()
    p = tmp_path / "c.pcap.gz"
    p.write_bytes(head + b"\xff" + tail[1:])  # block type 3 does not exist: zlib stops right there
    cf, pkts = read_all(str(p))
    assert [d for _, d in pkts] == [d for _, d in recs[:200]]
    _assert_one_line(cf.error, p, f"corrupt compressed data at compressed byte offset {len(head)}")


def test_gzip_on_stdin(monkeypatch):
    recs = _varied_records()
    data = gzip.compress(pcap_bytes(recs))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    cf, pkts = read_all("-")
    assert [d for _, d in pkts] == [d for _, d in recs] and cf.error is None and cf.format == "gzip+pcap"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data[:-300])))
    cf, pkts = read_all("-")
    assert len(recs) - 20 < len(pkts) < len(recs)
    _assert_one_line(cf.error, "<stdin>", "compressed data ended early")


def test_truncated_last_record_keeps_earlier_packets(tmp_path):
    data = pcap_bytes([(1.0, b"a" * 40), (2.0, b"b" * 40)])
    p = tmp_path / "t.pcap"
    p.write_bytes(data[:-10])
    cf, pkts = read_all(str(p))
    assert len(pkts) == 1
    assert "truncated at byte offset 80" in cf.error and str(p) in cf.error


def test_corrupt_length_names_offset(tmp_path):
    data = bytearray(pcap_bytes([(1.0, b"a" * 40), (2.0, b"b" * 40)]))
    struct.pack_into("<II", data, 24 + 16 + 40 + 8, 0x7FFFFFFF, 0x7FFFFFFF)
    p = tmp_path / "c.pcap"
    p.write_bytes(bytes(data))
    cf, pkts = read_all(str(p))
    assert len(pkts) == 1
    assert "byte offset 80" in cf.error


def test_caplen_larger_than_wire_length_is_clamped(tmp_path):
    data = bytearray(pcap_bytes([(1.0, b"a" * 40)]))
    struct.pack_into("<II", data, 24 + 8, 40, 30)  # claims 40 captured of 30 sent
    p = tmp_path / "w.pcap"
    p.write_bytes(bytes(data[: 24 + 16 + 30]))
    cf, pkts = read_all(str(p))
    assert [len(d) for _, d in pkts] == [30] and cf.clamped == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x01\x02", "truncated file header"),
        (b"GIF89a" + b"\0" * 40, "bad magic 0x47494638 at byte offset 0"),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", "corrupt"),
        (bytes.fromhex("d4c3b2a1") + b"\0" * 8, "truncated pcap file header (12 of 24 bytes)"),
    ],
)
def test_unreadable_files_raise_one_line_errors(tmp_path, content, message):
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError) as e:
        cf = CaptureFile(str(p))
        list(cf.batches())
        if cf.error:
            raise CaptureError(cf.error)
    assert str(p) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        list(CaptureFile(str(tmp_path / "nope.pcap")).batches())
    with pytest.raises(CaptureError, match="is a directory"):
        list(CaptureFile(str(tmp_path)).batches())


def _pcapng(blocks, endian="<"):
    return b"".join(blocks)


def _block(btype, body, endian="<"):
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack(endian + "II", btype, total) + body + b"\0" * pad + struct.pack(endian + "I", total)


def _shb(endian="<"):
    return _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def _idb(linktype, tsresol=None, endian="<"):
    opts = b""
    if tsresol is not None:
        opts = struct.pack(endian + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(endian + "HH", 0, 0)
    return _block(1, struct.pack(endian + "HHI", linktype, 0, 65535) + opts, endian)


def _epb(iface, ts_units, data, endian="<"):
    return _block(6, struct.pack(endian + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data)) + data, endian)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_interfaces_resolution_and_stats(tmp_path, endian):
    stats_opts = struct.pack(endian + "HH", 5, 8) + struct.pack(endian + "Q", 7) + struct.pack(endian + "HH", 0, 0)
    blob = (
        _shb(endian)
        + _idb(1, None, endian)
        + _idb(101, 9, endian)  # nanosecond interface, raw IP
        + _epb(0, 1_500_000, b"e" * 14, endian)
        + _epb(1, 2_250_000_000, b"\x45" + b"r" * 19, endian)
        + _block(5, struct.pack(endian + "III", 0, 0, 0) + stats_opts, endian)
    )
    p = tmp_path / "x.pcapng"
    p.write_bytes(blob)
    cf = CaptureFile(str(p))
    (b,) = list(cf.batches())
    assert b.linktype.tolist() == [1, 101]
    assert b.ts.tolist() == pytest.approx([1.5, 2.25])
    assert cf.dropped == 7 and cf.error is None


def test_pcapng_truncated_block(tmp_path):
    blob = _shb() + _idb(1) + _epb(0, 1_000_000, b"e" * 14) + _epb(0, 2_000_000, b"f" * 14)
    p = tmp_path / "t.pcapng"
    p.write_bytes(blob[:-6])
    cf = CaptureFile(str(p))
    n = sum(len(b) for b in cf.batches())
    assert n == 1 and "truncated" in cf.error


@pytest.mark.parametrize("btype", [6, 2, 3, 1, 5, 0x0A])
@pytest.mark.parametrize("at_end", [True, False])
def test_pcapng_block_too_short_for_its_fields(tmp_path, btype, at_end):
    # found by mutation fuzzing: a 12-byte packet/secrets block had its fixed fields read from beyond it
    # (a struct.error at the end of the file, the next block's bytes in the middle)
    good = _epb(0, 1_000_000, b"e" * 14)
    blob = _shb() + _idb(1) + good + _block(btype, b"")
    if not at_end:
        blob += _epb(0, 2_000_000, b"f" * 14)
    p = tmp_path / "short.pcapng"
    p.write_bytes(blob)
    cf = CaptureFile(str(p))
    n = sum(len(b) for b in cf.batches())
    assert n == 1 and f"too short for block type {btype}" in cf.error and str(p) in cf.error
