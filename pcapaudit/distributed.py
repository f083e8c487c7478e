"""Audit many captures, from several sensors, on a Dask cluster (issue 18).

Design. A task is one partition ``k`` of ``n`` of one sensor: it reads *every* file of that sensor in
time order (``inputs.plan_inputs``) with ``Auditor(partition=(k, n))``, keeps only the flows of its
partition (clients are assigned to partitions as ``parallel.py`` does for one file: every task sees the
same packets in the same batches, so every task makes the same choices) and feeds every DNS answer to its
own naming map. Flows crossing a file boundary, a ClientHello cut in two by a rotation, and a DNS answer
in one file naming a flow in the next are therefore seen exactly as one process reading the files one
after the other sees them. A task returns its state (flow and DNS tables as Arrow tables, findings,
checklist tallies, weirds, counters), shipped by Dask; the reduce, in the calling process, merges the
states (``Auditor.absorb``'s merge, the per-sensor counters of partition 0) and builds the checklist
and the summary (``Auditor.assemble``). Several sensors are separate sets of tasks merged in the reduce.

Cost: every task of a sensor reads and decodes the whole sensor's data; what is divided is the
per-flow Python work (most of an audit's time). Reading is the cheap part (about 2 s per million
packets against about 8 s of per-flow work, README "Performance").

Without a client (``client=None``) the same tasks run in this process, one partition per sensor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import replace

from typing import TYPE_CHECKING

from pcapaudit.errors import PcapAuditError, UsageError

if TYPE_CHECKING:  # imported where used: the CLI's parser imports this module for its options
    from pcapaudit.audit import AuditOptions
    from pcapaudit.inputs import Plan
    from pcapaudit.result import AuditResult

log = logging.getLogger("pcapaudit")

DEFAULT_MAX_GAP = 60.0  # seconds without a packet between two consecutive files of a sensor: a gap
DNS_REPETITIVE = frozenset({"client_ip", "server_ip", "query", "answers"})
KILL_ONCE_ENV = "PCAPAUDIT_TEST_KILL_WORKER_ONCE"  # tests only: a flag file; see _maybe_die


def _maybe_die(stage: str) -> None:
    """Fault-injection hook for the tests: when ``PCAPAUDIT_TEST_KILL_WORKER_ONCE`` is ``STAGE:FLAGFILE``
    (stage ``read``: half-way through the files; ``written``: after writing its dataset rows) and the flag
    file does not exist yet, create it and kill this process (a worker dying in the middle of a task)."""
    want, _, flag = os.environ.get(KILL_ONCE_ENV, "").partition(":")
    if want != stage or not flag:
        return
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def partition_task(opts: AuditOptions, sensor: str, paths: list[str], k: int, n: int,
                   write_to: str | None = None, firsts: list[float | None] | None = None) -> dict:  # fmt: skip
    """One Dask task: partition ``k`` of ``n`` of one sensor's files, read in order. Returns the state
    the reduce merges (picklable; the big tables as Arrow tables). With ``write_to`` (a dataset being
    written, on storage the workers share) the task writes its flow and DNS rows there itself, in a
    directory of its own attempt, and returns only their count and place: the reduce never holds them."""
    from pcapaudit.audit import Auditor
    from pcapaudit.capture.pcapfile import CaptureFile

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = replace(opts.engine_config, processes=n)
    a = Auditor(replace(opts, partition=(k, n) if n > 1 else None, engine_config=cfg))
    # per file: its first packet's time (from the plan) and the latest packet time read so far once it is
    # read: a gap or an overlap with the next file is measured against that (either engine keeps it)
    spans = []
    for i, p in enumerate(paths):
        before = a.packets
        a.run_file(CaptureFile(p))
        first = firsts[i] if firsts is not None else None
        spans.append((p, first, a.last_ts if a.packets > before else None, a.packets - before))
        if i == len(paths) // 2:
            _maybe_die("read")
    a.flush_all()
    a.coverage.index = None  # the reduce has its own
    written = None
    if write_to is not None:
        # a killed attempt's files stay in its own directory, which the reduce never moves into place
        attempt = os.path.join(write_to, PARTS_DIR, f"{k}-{uuid.uuid4().hex}")
        for name, store in (("flows", a.flows), ("dns", a.dns)):
            if len(store):
                _write_parts([_with_columns(store.typed_table(sort_by=["ts", "uid"]), sensor)],
                             os.path.join(attempt, name), ["sensor", "hour"], prefix=f"part-{k}")  # fmt: skip
        written = {"dir": attempt, "flows": len(a.flows), "dns": len(a.dns)}
        _maybe_die("written")
    return {
        "sensor": sensor, "k": k, "n": n, "written": written,
        "flows": a.flows.table() if written is None else None, "dns": a.dns.table() if written is None else None,
        "findings": a.findings, "coverage": a.coverage,
        "regional": a._regional, "weirds": a.weirds,  # noqa: SLF001
        "max_active": a._max_active, "ended_early": a._ended_early,  # noqa: SLF001
        "counters": {
            "sources": list(a.sources), "errors": list(a.errors), "packets": a.packets, "bytes": a.bytes,
            "first_ts": a.first_ts, "last_ts": a.last_ts, "decoded": a.decoded, "not_ip": a.not_ip,
            "fragments": a.fragments, "tunnels": dict(a.tunnels), "if_dropped": a.if_dropped,
            "copies": _copies(a),
        },
        "spans": spans, "seconds": (time.perf_counter() - t0, time.process_time() - c0),
    }  # fmt: skip


def _copies(a) -> int:
    """Packets counted once as copies seen on another interface (either engine)."""
    return a._copies() if hasattr(a, "_copies") else a.copies.count  # noqa: SLF001


def _add_copies(a, n: int) -> None:
    if getattr(a, "core", None) is not None:
        a._copies_count += n  # noqa: SLF001
    else:
        a.copies.count += n


def span_notes(sensor: str, spans: list[tuple[str, float | None, float | None, int]], max_gap: float) -> list[Weird]:
    """Weird rows for the gaps (more than ``max_gap`` seconds without a packet) and overlaps (a file
    starting before the previous one ended) between consecutive files of a sensor."""
    from pcapaudit.model import Weird

    out = []
    prev = None
    for path, first, last, _n in spans:
        if first is None or last is None:
            continue
        if prev is not None:
            ppath, plast = prev
            if plast - first > 1e-6:  # (below a microsecond: the two readers' rounding, not an overlap)
                out.append(Weird(first, "capture_overlap", None,
                                 f"sensor {sensor}: {os.path.basename(path)} starts {plast - first:.3f} s before "
                                 f"{os.path.basename(ppath)} ends (packets out of order across files)"))  # fmt: skip
            elif first - plast > max_gap:
                out.append(Weird(plast, "capture_gap", None,
                                 f"sensor {sensor}: no packet for {first - plast:.3f} s between "
                                 f"{os.path.basename(ppath)} and {os.path.basename(path)}"))  # fmt: skip
        prev = (path, last if prev is None else max(last, prev[1]))
    return out


def reduce_states(opts: AuditOptions, plan: Plan, states: dict[str, list[dict]], max_gap: float = DEFAULT_MAX_GAP) -> AuditResult:
    """Merge the tasks' states (every partition of every sensor) into one result."""
    from pcapaudit.audit import REPETITIVE_FLOW_COLUMNS, Auditor, WeirdCollector
    from pcapaudit.model import Weird
    from pcapaudit.report.columns import DNS_COLUMNS, FLOW_COLUMNS
    from pcapaudit.store import ColumnStore

    n_max = max((len(v) for v in states.values()), default=1)
    red = Auditor(replace(opts, partition=None, engine_config=replace(opts.engine_config, processes=n_max)))
    red._finished = True  # noqa: SLF001 - it reads nothing itself
    per_sensor = {}
    for sensor, parts in states.items():
        flows = ColumnStore(FLOW_COLUMNS, repetitive=REPETITIVE_FLOW_COLUMNS)
        dns = ColumnStore(DNS_COLUMNS, repetitive=DNS_REPETITIVE)
        weirds = WeirdCollector()
        for st in sorted(parts, key=lambda s: s["k"]):
            if st["written"] is not None:  # the rows are in the dataset already: only counted here
                red.flows.count += st["written"]["flows"]
                red.dns.count += st["written"]["dns"]
            else:
                for store in (red.flows, flows):
                    store.add_table(st["flows"])
                for store in (red.dns, dns):
                    store.add_table(st["dns"])
            red.findings.merge(st["findings"])
            red.coverage.merge(st["coverage"])
            red._regional.extend(st["regional"])  # noqa: SLF001
            red._max_active += st["max_active"]  # noqa: SLF001
            red._ended_early += st["ended_early"]  # noqa: SLF001
            weirds.merge(st["weirds"])
        c = parts[0]["counters"]  # every partition of a sensor read the same packets
        red.sources += c["sources"]
        red.errors += c["errors"]
        for key in ("packets", "bytes", "decoded", "not_ip", "fragments"):
            setattr(red, key, getattr(red, key) + c[key])
        if c["first_ts"] is not None:
            red.first_ts = c["first_ts"] if red.first_ts is None else min(red.first_ts, c["first_ts"])
            red.last_ts = c["last_ts"] if red.last_ts is None else max(red.last_ts, c["last_ts"])
        red.tunnels.update(c["tunnels"])
        if c["if_dropped"] is not None:
            red.if_dropped = (red.if_dropped or 0) + c["if_dropped"]
        _add_copies(red, c["copies"])
        for w in span_notes(sensor, parts[0]["spans"], max_gap):
            weirds.add(w)
        red.weirds.merge(weirds)
        per_sensor[sensor] = (flows, dns, weirds.summary_rows())
    unreadable = WeirdCollector()
    for e in plan.errors:  # files that could not be opened at all: an error and a weird row each
        red.errors.append(e)
        unreadable.add(Weird(None, "capture_unreadable", None, e))
    if plan.errors:  # a file of no known sensor: the dataset's weirds say sensor=(none)
        red.weirds.merge(unreadable)
        per_sensor["(none)"] = (ColumnStore(FLOW_COLUMNS), ColumnStore(DNS_COLUMNS), unreadable.summary_rows())
    red.ctx.capture_end = red.last_ts
    result = red.assemble()
    result.sensor_tables = per_sensor  # type: ignore[attr-defined]  # for the partitioned Parquet dataset
    result.written_parts = [st["written"]["dir"] for parts in states.values() for st in parts if st["written"]]  # type: ignore[attr-defined]
    # (sensor, k, n, wall seconds, CPU seconds) of every task: what a partition cost (benchmarks/dask_scale.py)
    result.task_seconds = [(s, st["k"], st["n"], *st["seconds"]) for s, parts in states.items() for st in parts]  # type: ignore[attr-defined]
    return result


def partitions_for(client, sensors: int, partitions: int | None) -> int:
    """Partitions per sensor: as given, else enough to give every worker thread a task."""
    if partitions:
        return partitions
    threads = sum(client.nthreads().values()) if client is not None else 1
    return max(1, math.ceil(max(threads, 1) / max(sensors, 1)))


def audit_plan(opts: AuditOptions, plan: Plan, client=None, partitions: int | None = None,
               max_gap: float = DEFAULT_MAX_GAP, write_to: str | None = None) -> AuditResult:  # fmt: skip
    """Audit a plan: Dask tasks on ``client``, or in this process when ``client`` is None."""
    t0 = time.perf_counter()
    if client is None:
        n = partitions or 1
        states = {s: [partition_task(opts, s, [f.path for f in fs], k, n, write_to, [f.first_ts for f in fs])
                      for k in range(n)]
                  for s, fs in plan.sensors.items()}  # fmt: skip
        return reduce_states(opts, plan, states, max_gap)
    n = partitions_for(client, len(plan.sensors), partitions)
    run = uuid.uuid4().hex[:8]
    futures = {
        s: [client.submit(partition_task, opts, s, [f.path for f in fs], k, n, write_to, [f.first_ts for f in fs], key=f"pcapaudit-{run}-{s}-{k}of{n}",
                          pure=False, retries=2) for k in range(n)]  # fmt: skip
        for s, fs in plan.sensors.items()
    }
    log.info("%d sensor(s) x %d partition(s) as Dask tasks on %s", len(plan.sensors), n, client.scheduler.address)
    try:
        states = client.gather(futures)
    except PcapAuditError:
        raise
    except Exception as e:  # noqa: BLE001 - KilledWorker (a task killed its workers 3 times), lost scheduler...
        raise PcapAuditError(f"Dask: {type(e).__name__}: {e}") from None
    t1 = time.perf_counter()
    result = reduce_states(opts, plan, states, max_gap)
    log.info("tasks done in %.2f s, reduce %.2f s", t1 - t0, time.perf_counter() - t1)
    return result


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None):
    """A Dask client on ``scheduler``, or on a LocalCluster of ``workers`` processes (closed after)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--scheduler/--workers need Dask: pip install 'pcapaudit[dask]'") from None
    if not log.isEnabledFor(logging.INFO):  # Dask's own INFO lines (scheduler, nannies...) only with -v
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise PcapAuditError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def audit_paths(specs, opts: AuditOptions | None = None, *, client=None, scheduler: str | None = None,
                workers: int | None = None, recursive: bool = False, sensor_pattern=None,
                partitions: int | None = None, max_gap: float = DEFAULT_MAX_GAP,
                dataset: str | None = None) -> AuditResult:  # fmt: skip
    """Files, globs and directories -> one result (on ``client``, a scheduler, a LocalCluster of
    ``workers`` processes, or in this process).

    ``dataset``: also write the result as a partitioned Parquet dataset in that directory (see
    ``write_dataset``); the tasks write the flow and DNS rows themselves, so the returned result counts
    them (``flow_count``, ``summary()``) but its ``flows`` and ``dns`` tables are empty."""
    from pcapaudit.audit import AuditOptions
    from pcapaudit.inputs import plan_inputs

    opts = opts or AuditOptions()
    path = check_dataset_dir(dataset) if dataset else None
    plan = plan_inputs(list(specs), recursive, sensor_pattern)
    tmp = _dataset_tmp(path) if path else None
    try:
        if client is not None or not (scheduler or workers):
            result = audit_plan(opts, plan, client, partitions, max_gap, tmp)
        else:
            with dask_client(scheduler, workers) as c:
                result = audit_plan(opts, plan, c, partitions, max_gap, tmp)
        if path:
            _finish_dataset(result, tmp, path)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


# -- Parquet dataset ---------------------------------------------------------------------------------
DATASET_MARK = "_pcapaudit_dataset"


def is_dataset_output(fmt: str, out: str | None) -> bool:
    """``-f parquet -o DIR/``: a directory (ending in / or existing) gets a partitioned dataset."""
    return fmt == "parquet" and bool(out) and out != "-" and (out.endswith(("/", os.sep)) or os.path.isdir(out))


def check_dataset_dir(out: str) -> str:
    """Refuse, before any packet is read, a dataset directory that could not be (re)written."""
    path = os.path.abspath(out.rstrip("/" + os.sep) or out)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: cannot write the dataset there (no such directory {parent})")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{out}: cannot write the dataset there (permission denied in {parent})")
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, DATASET_MARK)):
        raise UsageError(f"{out}: exists and is not a pcapaudit dataset (not replaced)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{out}: exists and is not a directory")
    return path


def _with_columns(table, sensor: str):
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    table = table.append_column("sensor", pa.array([sensor] * n, pa.string()))
    if "ts" in table.column_names:
        hour = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H") if n else pa.array([], pa.string())
        table = table.append_column("hour", pc.fill_null(hour, "unknown"))
    return table


def write_dataset(result: AuditResult, out: str) -> str:
    """Write the result as a Parquet dataset in directory ``out``: ``flows/`` and ``dns/`` partitioned by
    sensor and hour (Hive style, ``sensor=.../hour=2026-11-26T23/``), ``weirds/`` by sensor,
    ``findings.parquet``, ``coverage.parquet`` and ``summary.json``. Written in a temporary directory
    beside ``out`` and renamed into place when complete: a reader never sees half a dataset."""
    path = check_dataset_dir(out)
    tmp = _dataset_tmp(path)
    try:
        _finish_dataset(result, tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


PARTS_DIR = ".parts"  # in the temporary dataset: one directory per task attempt that wrote rows


def _dataset_tmp(path: str) -> str:
    parent, base = os.path.split(path)
    return tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)


def _finish_dataset(result: AuditResult, tmp: str, path: str) -> None:
    """Complete the dataset in ``tmp`` (the rows the tasks wrote are moved into place, the rest written
    from ``result``) and rename it to ``path``."""
    import pyarrow as pa

    from pcapaudit.report import frames, render
    from pcapaudit.report.columns import DNS_COLUMNS, FLOW_COLUMNS
    from pcapaudit.store import ColumnStore

    sensors = getattr(result, "sensor_tables", None) or {"default": (result._flow_store, result._dns_store,  # noqa: SLF001
                                                                    result.weird_records)}  # fmt: skip
    for name, i, cols in (("flows", 0, FLOW_COLUMNS), ("dns", 1, DNS_COLUMNS)):
        where = os.path.join(tmp, name)
        for attempt in getattr(result, "written_parts", ()):  # the tasks' rows: moved, not copied
            src = os.path.join(attempt, name)
            for root, _dirs, files in os.walk(src):
                for f in files:
                    dst = os.path.join(where, os.path.relpath(root, src))
                    os.makedirs(dst, exist_ok=True)
                    os.rename(os.path.join(root, f), os.path.join(dst, f))
        tables = [_with_columns(parts[i].typed_table(sort_by=["ts", "uid"]), sensor)
                  for sensor, parts in sensors.items() if len(parts[i])]  # fmt: skip
        if tables or not os.path.isdir(where):
            _write_parts(tables or [_with_columns(ColumnStore(cols).typed_table(), "")], where, ["sensor", "hour"])
    shutil.rmtree(os.path.join(tmp, PARTS_DIR), ignore_errors=True)
    weird_tables = []
    for sensor, parts in sensors.items():
        df = frames.weirds_frame(parts[2])
        weird_tables.append(_with_columns(pa.Table.from_pandas(df, preserve_index=False), sensor))
    _write_parts(weird_tables, os.path.join(tmp, "weirds"), ["sensor"])
    render.write_table_parquet(result, "findings", os.path.join(tmp, "findings.parquet"))
    render.write_table_parquet(result, "coverage", os.path.join(tmp, "coverage.parquet"))
    with open(os.path.join(tmp, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(result.summary(), fh, indent=1, sort_keys=True, default=str)
    with open(os.path.join(tmp, DATASET_MARK), "w", encoding="utf-8") as fh:
        fh.write("written by pcapaudit; this directory is replaced as a whole by the next run\n")
    parent, base = os.path.split(path)
    old = None
    if os.path.isdir(path):
        old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
        os.rename(path, os.path.join(old, base))
    os.rename(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _write_parts(tables, where: str, partition_by: list[str], prefix: str = "part") -> None:
    """Write Arrow tables as a Hive-partitioned Parquet dataset at ``where`` (files ``prefix-<table>-<n>``)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    tables = [t for t in tables if t.num_rows] or tables[:1]
    if not tables or not tables[0].num_rows:  # no row at all: one empty file keeps the schema readable
        os.makedirs(where, exist_ok=True)
        if tables:
            pq.write_table(tables[0].drop_columns(partition_by), os.path.join(where, f"{prefix}-empty.parquet"))
        return
    for i, t in enumerate(tables):
        ds.write_dataset(t.unify_dictionaries(), where, format="parquet", partitioning=partition_by,
                         partitioning_flavor="hive", basename_template=f"{prefix}-{i}-{{i}}.parquet",
                         existing_data_behavior="overwrite_or_ignore")  # fmt: skip
