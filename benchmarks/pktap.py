#!/usr/bin/env python3
"""What naming processes costs: the same generated capture as Ethernet and as Apple PKTAP, audited by both.

    python3 benchmarks/pktap.py [--packets 200000] [--repeat 3] [--pcapaudit-cmd "..."]

Takes (or makes, with gen_capture.py) benchmarks/.cache/capture-<packets>-seed1.pcap and writes
benchmarks/.cache/pktap-<packets>-seed1.pcap: every frame unchanged behind a 108-byte PKTAP header (as
macOS writes it) whose process depends on the packet's device address and the lower 5 bits of its port, so
there are thousands of processes, changing from flow to flow. Then it times ``pcapaudit audit FILE -f
parquet --table flows`` on both files (median of --repeat runs, peak RSS) and checks that the PKTAP run
has the same flows with a process on each TCP/UDP flow. Prints one line per file and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
REPO = os.path.dirname(HERE)


def wrap(src: str, dst: str) -> tuple[int, int]:
    """Write ``dst``: the frames of the classic pcap ``src`` behind PKTAP headers. Returns (frames, processes)."""
    procs: set[bytes] = set()
    n = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        head = fi.read(24)
        if head[:4] != b"\xd4\xc3\xb2\xa1":
            raise SystemExit(f"{src}: not a little-endian classic pcap")
        fo.write(head[:20] + struct.pack("<I", 258))
        while True:
            rec = fi.read(16)
            if len(rec) < 16:
                break
            sec, usec, cap, wire = struct.unpack("<IIII", rec)
            frame = fi.read(cap)
            key = _device_key(frame)
            pid = 100 + key % 5000 if key is not None else 0
            comm = f"proc{pid}".encode() if key is not None else b""
            procs.add(comm)
            hdr = struct.pack("<III24sIIIIi20sIHHi20s", 108, 1, 1, b"en0", 2, 2, 14, 0, pid, comm.ljust(20, b"\0"),
                              0, 6, 0, pid, comm.ljust(20, b"\0"))  # fmt: skip
            fo.write(struct.pack("<IIII", sec, usec, cap + 108, wire + 108) + hdr + frame)
            n += 1
    return n, len(procs - {b""})


def _device_key(frame: bytes) -> int | None:
    """The 10.x device side of an IPv4 TCP/UDP frame (address and port bucket), or None."""
    off = 14
    et = frame[12:14]
    while et == b"\x81\x00" and len(frame) >= off + 4:
        et = frame[off + 2 : off + 4]
        off += 4
    if et != b"\x08\x00" or len(frame) < off + 24 or frame[off + 9] not in (6, 17):
        return None
    ihl = (frame[off] & 0x0F) * 4
    src, dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
    sport, dport = struct.unpack_from(">HH", frame, off + ihl)
    addr, port = (src, sport) if src[0] == 10 else (dst, dport)
    return int.from_bytes(addr, "big") * 32 + (port & 31)


def run(cmd: list[str], path: str, out: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB, of the largest process: wait4's ru_maxrss) of one audit."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd + ["audit", path, "-f", "parquet", "--table", "flows", "-o", out, "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _pid, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):
        raise SystemExit(f"pcapaudit failed on {path} (exit {p.returncode})")
    return wall, usage.ru_maxrss // 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pcapaudit-cmd", default=f"{sys.executable} -m pcapaudit")
    args = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    eth = os.path.join(CACHE, f"capture-{args.packets}-seed1.pcap")
    if not os.path.exists(eth):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_capture.py"), eth, "--packets", str(args.packets),
                        "--seed", "1", "--truth", eth.replace(".pcap", ".truth.json")], check=True)  # fmt: skip
    tap = os.path.join(CACHE, f"pktap-{args.packets}-seed1.pcap")
    t = time.perf_counter()
    frames, procs = wrap(eth, tap)
    print(f"{os.path.basename(tap)}: {frames:,} frames, {procs:,} processes, written in {time.perf_counter() - t:.1f} s")
    cmd = args.pcapaudit_cmd.split()
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = REPO + (os.pathsep + env_path if env_path else "")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("ethernet", eth), ("pktap", tap)):
            walls, rss = [], 0
            for i in range(args.repeat):
                w, r = run(cmd, path, os.path.join(tmp, f"{name}.parquet"))
                walls.append(w)
                rss = max(rss, r)
            results[name] = statistics.median(walls)
            print(f"{name:9s} {statistics.median(walls):7.2f} s median of {args.repeat} "
                  f"({min(walls):.2f}-{max(walls):.2f}), peak RSS {rss} MB")  # fmt: skip
        import pyarrow.parquet as pq

        a = pq.read_table(os.path.join(tmp, "ethernet.parquet"), columns=["src_ip", "src_port", "dst_ip", "dst_port",
                                                                         "transport", "pkts_c2s", "pkts_s2c", "sni"])
        b = pq.read_table(os.path.join(tmp, "pktap.parquet"))
        same = a.sort_by([("src_ip", "ascending"), ("src_port", "ascending"), ("dst_ip", "ascending"),
                          ("dst_port", "ascending")]).equals(
            b.select(a.column_names).sort_by([("src_ip", "ascending"), ("src_port", "ascending"),
                                              ("dst_ip", "ascending"), ("dst_port", "ascending")]))  # fmt: skip
        tcpudp = [t in ("tcp", "udp") for t in b.column("transport").to_pylist()]
        named = sum(1 for p, tu, src, dst in zip(b.column("process").to_pylist(), tcpudp,
                                                  b.column("src_ip").to_pylist(), b.column("dst_ip").to_pylist())
                    if tu and p is not None)  # fmt: skip
        v4 = sum(1 for tu, src in zip(tcpudp, b.column("src_ip").to_pylist()) if tu and ":" not in src)
    print(f"same flows: {same}; flows with a process: {named:,} (IPv4 TCP/UDP flows: {v4:,})")
    print(f"pktap / ethernet wall: {results['pktap'] / results['ethernet']:.3f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
