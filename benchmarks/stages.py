#!/usr/bin/env python3
"""Where the time of one audit goes, stage by stage, in one process (the per-stage profile of
benchmarks/README.md):

    python benchmarks/stages.py [CAPTURE]        # default: the cached 2M-packet benchmark capture

1. read: the core reads the capture (decompression included), nothing decoded;
2. core: read + decode + flows + deep parsing + DNS naming (the core alone, rows left in the core);
3. hand-off: the same, plus the finished rows taken as Arrow record batches after every batch (the flows
   table's columns; a flow's nested record is built only when the audit asks for it);
4. audit: the whole audit in Python (classification, findings, checklist) without writing;
5. output: writing the report as Parquet (flows, findings, coverage, dns, weirds).
Each stage includes the previous ones; the differences are the stages' own cost. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _read(path: str) -> None:
    from pcapaudit import _core

    _core.Capture(path).read_all()


def _core_only(path: str, take: bool) -> None:
    from pcapaudit import (
        _core,
        core,  # noqa: F401 - sets the core allocator's options as an audit does
    )

    cap, eng = _core.Capture(path), _core.Engine({})
    while eng.feed(cap):
        if take:
            eng.take_flow_table(), eng.take_dns_table(), eng.take_weirds()
    eng.flush()
    if take:
        eng.take_flow_table(), eng.take_dns_table(), eng.take_weirds()


def _audit(path: str) -> object:
    import pcapaudit

    return pcapaudit.audit(path)


def _output(path: str) -> None:
    from pcapaudit.cli import main

    with tempfile.TemporaryDirectory() as d:
        main(["audit", path, "-j1", "-f", "parquet", "-o", str(Path(d) / "r.parquet"), "-q", "--no-progress",
              "--fail-on", "none"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("capture", nargs="?", default=str(HERE / ".cache" / "capture-2000000-seed1.pcap"))
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    if not Path(a.capture).exists():
        sys.exit(f"{a.capture}: no such file (python benchmarks/run.py generates it)")
    from pcapaudit import _core

    packets = _core.Capture(a.capture).read_all()
    stages = [("read", lambda: _read(a.capture)), ("core", lambda: _core_only(a.capture, False)),
              ("hand-off", lambda: _core_only(a.capture, True)), ("audit", lambda: _audit(a.capture)),
              ("output", lambda: _output(a.capture))]  # fmt: skip
    prev = 0.0
    print(f"{a.capture}: {packets:,} packets; medians of {a.repeat} runs; each stage includes the ones above")
    for name, fn in stages:
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"  {name:<9} {med:7.2f} s  (+{med - prev:5.2f} s)  {packets / med:>12,.0f} packets/s")
        prev = med
    return 0


if __name__ == "__main__":
    sys.exit(main())
