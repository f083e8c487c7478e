#!/usr/bin/env python3
"""Scale-out figures (issue 18): the Dask audit of a rotated capture set with 1 and 2 workers, and the
per-task and per-file overhead on 1,000 small files.

    python3 benchmarks/dask_scale.py [--packets 200000] [--files 10] [--small 1000] [--workdir DIR]

It generates a span-port capture (gen_capture.py), splits it into ``--files`` rotated files, and
prints wall times: one process on the unsplit file (the reference), the same files planned and audited
in this process, and on a LocalCluster of 1 and 2 worker processes (cluster start-up timed apart).
Then ``--small`` files of a few packets each: audited as one sensor (one task reads them all: the
cost per file), and as that many sensors (one task each: the cost per Dask task), against a Dask
no-op of as many tasks. Timings vary with the machine's load; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def split_pcap(src: Path, where: Path, pieces: int, prefix: str = "ring") -> list[Path]:
    """Split a classic pcap into ``pieces`` files of about equal packet counts (no editcap needed)."""
    data = src.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    header, off, recs = data[:24], 24, []
    while off + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, off + 8)[0]
        recs.append((off, off + 16 + caplen))
        off += 16 + caplen
    where.mkdir(parents=True, exist_ok=True)
    out = []
    per = -(-len(recs) // pieces)
    for i in range(0, len(recs), per):
        chunk = recs[i : i + per]
        p = where / f"{prefix}{len(out):05d}.pcap"
        p.write_bytes(header + data[chunk[0][0] : chunk[-1][1]])
        out.append(p)
    return out


def same(a, b, engine: str) -> bool:
    """The split audit's flows are the unsplit one's, uid for uid."""
    return a.flows["uid"].equals(b.flows["uid"])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def noop(i):
    return i


def warm(opts) -> None:
    """Import pcapaudit and load the rulesets in a worker (what its first task would pay once)."""
    from pcapaudit.audit import Auditor

    Auditor(opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--engine", default="fast", help="AuditOptions.engine (core: the compiled core, if built)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from pcapaudit.audit import AuditOptions, Auditor
    from pcapaudit.capture.pcapfile import CaptureFile
    from pcapaudit.distributed import audit_paths

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pcapaudit-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    cap = work / "span.pcap"
    if not cap.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(cap), "--packets",
                        str(args.packets), "--seed", "3", "--format", "pcap", "-q"], check=True)  # fmt: skip
    ring = work / f"ring{args.files}"
    if not ring.exists():
        split_pcap(cap, ring, args.files)
    opts = AuditOptions(engine=args.engine)
    print(f"engine {args.engine}; capture: {args.packets:,} packets, {cap.stat().st_size / 1e6:.0f} MB, split into {args.files} files; "
          f"{os.cpu_count()} CPUs")  # fmt: skip

    def single():
        a = Auditor(opts)
        a.run_file(CaptureFile(str(cap)))
        return a.finish()

    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    ref, t_ref = timed(single)
    print(f"  one process, unsplit file:            {t_ref:6.2f} s  ({ref.flow_count:,} flows)")
    r, t = timed(lambda: audit_paths([str(ring)], opts))
    assert same(r, ref, args.engine)
    print(f"  in this process, {args.files} files:            {t:6.2f} s")
    base = None
    for workers in (1, 2):
        (cluster, client), t_up = timed(lambda w=workers: (lambda c: (c, Client(c)))(
            LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None)))  # fmt: skip
        try:
            client.run(warm, opts)  # every worker has imported pcapaudit and loaded the rulesets
            r, t = timed(lambda c=client: audit_paths([str(ring)], opts, client=c))
            assert same(r, ref, args.engine)
            base = base or t
            cpu = ", ".join(f"{c:.1f}" for *_, c in r.task_seconds)
            print(f"  Dask, {workers} worker(s), {workers} task(s):          {t:6.2f} s  (x{base / t:.2f}; CPU s per "
                  f"task: {cpu}; cluster start {t_up:.1f} s, not counted)")  # fmt: skip
        finally:
            client.close()
            cluster.close()

    small = work / f"small{args.small}"
    if not small.exists():
        few = work / "few.pcap"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(few), "--packets",
                        str(args.small * 5), "--seed", "5", "--format", "pcap", "-q"], check=True)  # fmt: skip
        files = split_pcap(few, small / "all", args.small, prefix="f")
        for i, f in enumerate(files):  # the same files again, one directory (one sensor) each
            d = small / "each" / f"s{i:05d}"
            d.mkdir(parents=True)
            os.link(f, d / f.name)
    print(f"{args.small:,} small files of 5 packets:")
    from pcapaudit.inputs import plan_inputs

    _, t_plan = timed(lambda: plan_inputs([str(small / "all")]))
    print(f"  planning (first packet of each file): {t_plan:6.2f} s  ({t_plan / args.small * 1e3:.1f} ms per file)")
    _, t_one = timed(lambda: audit_paths([str(small / "all")], opts))
    print(f"  in this process, one sensor:          {t_one:6.2f} s  ({t_one / args.small * 1e3:.1f} ms per file, "
          "planning included)")  # fmt: skip
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.run(warm, opts)
        _, t_noop = timed(lambda: client.gather(client.map(noop, range(args.small))))
        _, t_one_d = timed(lambda: audit_paths([str(small / "all")], opts, client=client, partitions=1))
        r_many, t_many = timed(lambda: audit_paths([str(small / "each")], opts, client=client, recursive=True,
                                              sensor_pattern=r"/(s\d+)/", partitions=1))  # fmt: skip
    print(f"  Dask no-op, {args.small} tasks, 2 workers:    {t_noop:6.2f} s  ({t_noop / args.small * 1e3:.1f} ms per task)")
    print(f"  Dask, one sensor (1 task):            {t_one_d:6.2f} s")
    print(f"  Dask, {args.small} sensors ({args.small} tasks), 2 workers: {t_many:6.2f} s  "
          f"({t_many / args.small * 1e3:.1f} ms per task wall, {2 * t_many / args.small * 1e3:.1f} ms of worker time; "
          f"inside the task {sum(w for *_, w, _c in r_many.task_seconds) / args.small * 1e3:.1f} ms)")  # fmt: skip
    print(f"load average at end: {os.getloadavg()[0]:.1f} (work directory: {work})")


if __name__ == "__main__":
    main()
