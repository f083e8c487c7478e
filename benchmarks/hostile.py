"""Hostile-traffic benchmark: captures that make a finding per packet, and what pcapaudit makes of them.

    python3 benchmarks/hostile.py                 # generate (once) and audit the five captures
    python3 benchmarks/hostile.py --pcapaudit-cmd ".venv/bin/python -m pcapaudit"

The captures are written with ``struct`` (deterministic, no scapy) to ``benchmarks/.cache/``:

* ``hostile-synscan.pcap``: one scanner, 200 hosts x 1,000 ports, a SYN each, 30 % answered by RST;
* ``hostile-backscatter.pcap``: 300,000 ICMP port unreachables from as many addresses, each quoting a UDP
  datagram "from" 10.0.0.5 (random high source port) to port 53, 123 or 443 of the reporter;
* ``hostile-backscatter-random.pcap``: the same with random ports on both sides of the quoted datagram;
* ``hostile-backscatter-flood.pcap``: 1,000,000 of those in 10 seconds, so no reporter's flow times out
  before the capture ends: what bounds memory is the flow table's cap (``--max-flows``);
* ``hostile-interface-copies.pcap``: ``tcpdump -i any`` (SLL2) on a router under a flood: 300,000 UDP
  datagrams to random ports, each seen on the way in and, 2 us later with its TTL lowered, on the way out.
  Every second packet is a copy (pcapaudit/dedup.py).

For each, the runner prints the finding rows, the wall time and the peak RSS of ``pcapaudit audit FILE
--format parquet -o DIR/x`` (the full audit; all five tables written).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))
from gen_capture import Side  # noqa: E402 - the benchmark generator's frame builder (checksummed headers)

SMAC, DMAC = bytes.fromhex("66778899aabb"), bytes.fromhex("001122334455")


def _side(src, dst, sport: int, dport: int, proto: int) -> Side:
    """One direction of a flow, IPv4 over untagged Ethernet."""
    return Side(SMAC, DMAC, 0, bytes(src), bytes(dst), sport, dport, 64, proto, 0)


class _Writer:
    def __init__(self, path: Path, linktype: int = 1):
        self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))

    def add(self, ts: float, frame: bytes) -> None:
        sec, usec = divmod(round(ts * 1e6), 1_000_000)  # (not round(frac * 1e6) % 1e6: x.9999996 went back 1 s)
        self.fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        self.fh.write(frame)

    def close(self) -> None:
        self.fh.close()


def gen_synscan(path: Path) -> None:
    rng = random.Random(1)
    w = _Writer(path)
    t = 1_700_000_000.0
    scanner = [10, 0, 0, 5]
    for h in range(200):
        dst = [10, 99, h // 250, h % 250 + 1]
        for port in range(1, 1001):
            t += 0.0001
            sport = 40000 + port % 20000
            w.add(t, _side(scanner, dst, sport, port, 6).tcp(1, 0, 0x02, 1024))
            if rng.random() < 0.3:
                w.add(t + 0.00005, _side(dst, scanner, port, sport, 6).tcp(0, 2, 0x14, 1024))
    w.close()


def gen_backscatter(path: Path, random_ports: bool, count: int = 300_000, step: float = 0.0002) -> None:
    rng = random.Random(2)
    w = _Writer(path)
    t = 1_700_000_000.0
    victim = [10, 0, 0, 5]
    for _ in range(count):
        t += step
        far = [rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]
        dport = rng.randrange(1, 65535) if random_ports else rng.choice([53, 123, 443])
        quoted = _side(victim, far, rng.randrange(1024, 65535), dport, 17).udp(b"")[14:]  # IP + UDP header
        w.add(t, _side(far, victim, 0, 0, 1).icmp(3, 3, quoted))
    w.close()


def gen_copies(path: Path, count: int = 300_000, step: float = 0.0002) -> None:
    rng = random.Random(3)
    w = _Writer(path, 276)  # LINKTYPE_LINUX_SLL2, as tcpdump -i any writes
    t = 1_700_000_000.0
    client = [10, 0, 0, 5]
    for i in range(count):
        t += step
        far = [rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]
        sport, dport = rng.randrange(1024, 65535), rng.randrange(1, 65535)
        for ifindex, ttl, dt in ((3, 64, 0.0), (4, 63, 0.000002)):
            ip = Side(SMAC, DMAC, 0, bytes(client), bytes(far), sport, dport, ttl, 17, i & 0xFFFF).udp(b"x" * 20)[14:]
            sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, 0 if ifindex == 3 else 4, 6, SMAC + b"\0\0")
            w.add(t + dt, sll2 + ip)
    w.close()


CAPTURES = {
    "hostile-synscan.pcap": gen_synscan,
    "hostile-backscatter.pcap": lambda p: gen_backscatter(p, False),
    "hostile-backscatter-random.pcap": lambda p: gen_backscatter(p, True),
    # a flood: every reporter's flow is still inside its timeout when the capture ends (100,000 a second)
    "hostile-backscatter-flood.pcap": lambda p: gen_backscatter(p, True, 1_000_000, 0.00001),
    "hostile-interface-copies.pcap": gen_copies,
}


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stderr of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE.parent)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcapaudit-cmd", default=f"{shlex.quote(sys.executable)} -m pcapaudit")
    args = ap.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    base = shlex.split(args.pcapaudit_cmd)
    print(f"{'capture':34} {'packets':>9} {'finding rows':>13} {'wall':>8} {'peak RSS':>10}")
    for name, gen in CAPTURES.items():
        path = CACHE / name
        if not path.exists():
            gen(path)
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, err = run(
                base + ["audit", str(path), "--format", "parquet", "-o", f"{tmp}/x", "--no-progress"]
            )
            import pyarrow.parquet as pq  # the project's own dependency

            try:
                rows = pq.read_metadata(f"{tmp}/x.findings.parquet").num_rows
            except OSError:
                print(
                    f"{name}: no findings table written; pcapaudit said: {err.strip()[-300:]}",
                    file=sys.stderr,
                )
                return 2
        packets = sum(1 for _ in _records(path))
        print(f"{name:34} {packets:>9,} {rows:>13,} {wall:>7.2f}s {rss / 1e6:>8,.0f} MB")
    return 0


def _records(path: Path):
    with open(path, "rb") as fh:
        fh.seek(24)
        while head := fh.read(16):
            incl = struct.unpack("<IIII", head)[2]
            fh.seek(incl, 1)
            yield incl


if __name__ == "__main__":
    sys.exit(main())
