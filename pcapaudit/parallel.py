"""Audit one capture with several processes: flows are partitioned by their client endpoint.

Every process reads the whole file (reading and the vectorised decode are cheap) but keeps only the
packets of its partition; the Python-level work per flow, per DNS message and per handshake — most of
the time of an audit — is divided among the processes. A client goes to the least-loaded partition when
first seen (``engine.Partitioner``: every process makes the same choice from the same packets), every
process feeds every DNS answer to its own DnsMap (so flows are named as in one process), and ICMP
errors are interpreted by the partition that owns the flow they quote. The parent runs partition 0
itself and merges the others' findings, checklist tallies and weirds (pickled, small) and their flow
and DNS tables, which a worker writes to Arrow IPC files that the parent memory-maps: no pickled copy
of the big tables exists in either process. Workers never import pandas (see ``_NoPandas``).

The report is the same as with one process (tests/test_parallel.py compares every flow column and
every finding); only the uid lists of findings and checklist rows, which are capped, may list other
uids or list them in another order, and past ``FindingCollector.MAX_ROWS`` finding rows (shared by the
processes, as ``--max-flows`` is) which new destinations fold into the last-resort row. (Its per-client
fold is the same with any job count: see ``findings.fold_key``.)
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace

from pcapaudit.audit import AuditOptions, Auditor, quiet_gc
from pcapaudit.capture.pcapfile import GZIP_MAGIC, CaptureFile
from pcapaudit.errors import PcapAuditError
from pcapaudit.result import AuditResult

log = logging.getLogger("pcapaudit")

MIN_PARALLEL_BYTES = 64 << 20


def auto_jobs(paths: list[str]) -> int:
    """2+ processes for large uncompressed files on a multi-core machine, else 1."""
    cpus = os.cpu_count() or 1
    if cpus < 2 or any(p == "-" or not os.path.isfile(p) for p in paths):
        return 1
    try:
        total = sum(os.path.getsize(p) for p in paths)
        for p in paths:
            with open(p, "rb") as fh:
                if fh.read(2) == GZIP_MAGIC:
                    return 1
    except OSError:
        return 1
    return min(cpus, 4) if total >= MIN_PARALLEL_BYTES else 1


class _NoPandas:
    """Import hook of a worker process: pyarrow imports pandas (about 50 MB) the first time it converts a
    Python list, only to check whether the list is a pandas object. A worker never builds a DataFrame,
    so it tells pyarrow there is no pandas (pyarrow then converts the same way)."""

    def find_spec(self, name, path=None, target=None):
        """importlib.abc.MetaPathFinder: refuse pandas, leave everything else to the other finders."""
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not used in pcapaudit worker processes", name=name)


def _worker(opts: AuditOptions, paths: list[str], k: int, n: int, spill: str) -> dict:
    if "pandas" not in sys.modules:  # already imported before the fork: shared with the parent, keep it
        sys.meta_path.insert(0, _NoPandas())
    a = Auditor(replace(opts, partition=(k, n)))
    a.flows.spill_to(spill + ".flows")  # written as they fill, handed back as is by export_state
    a.dns.spill_to(spill + ".dns")
    for p in paths:
        a.run_file(CaptureFile(p))
    a.flush_all()
    return a.export_state(spill)


def audit_parallel(opts: AuditOptions, paths: list[str], jobs: int,
                   progress: Callable[[CaptureFile], Callable[[int], None] | None] | None = None,
                   unreadable: tuple[str, ...] = ()) -> AuditResult:  # fmt: skip
    """Audit ``paths`` with ``jobs`` processes (the calling process is one of them); ``unreadable``: the
    errors of named captures that could not be opened (each an error and a weird row)."""
    spill_dir = None
    if jobs > 1:
        try:
            spill_dir = tempfile.mkdtemp(prefix="pcapaudit-")
        except OSError as e:  # no writable temporary directory: one process needs none
            log.warning("--jobs %d: no temporary directory for the workers' tables (%s); using one process", jobs, e)
            jobs = 1
    if jobs <= 1:
        a = Auditor(opts)
        for e in unreadable:
            a.capture_unreadable(e)
        for p in paths:
            src = CaptureFile(p)
            a.run_file(src, progress(src) if progress else None)
        return a.finish()
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    # --max-flows bounds the flows held by the whole audit: each process holds its share
    opts = replace(opts, engine_config=replace(opts.engine_config, processes=jobs))
    parent = Auditor(replace(opts, partition=(0, jobs)))
    for e in unreadable:
        parent.capture_unreadable(e)
    # every process writes its flow and DNS tables to Arrow files in a private directory as they fill;
    # the parent maps them at the end and unlinks them (the mapping keeps them readable), and the
    # directory goes in any case
    assert spill_dir is not None
    parent.flows.spill_to(os.path.join(spill_dir, "part0.flows"))
    parent.dns.spill_to(os.path.join(spill_dir, "part0.dns"))
    try:
        with ctx.Pool(jobs - 1) as pool:
            pending = [pool.apply_async(_worker, (opts, paths, k, jobs, os.path.join(spill_dir, f"part{k}")))
                       for k in range(1, jobs)]  # fmt: skip
            for p in paths:
                src = CaptureFile(p)
                parent.run_file(src, progress(src) if progress else None)
            parent.flush_all()
            for job in pending:
                try:
                    state = job.get()
                    parent.absorb(state)
                except OSError as e:  # e.g. the temporary directory filled up
                    raise PcapAuditError(f"--jobs {jobs}: a worker's table could not be written or read in "
                                         f"{spill_dir} ({e}); run with --jobs 1") from None  # fmt: skip
                for key in ("flows", "dns"):
                    with contextlib.suppress(OSError):
                        os.unlink(state[key])
            parent.flows.settle()
            parent.dns.settle()
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    with quiet_gc():
        return parent.assemble()
