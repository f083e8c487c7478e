"""Output formats: terminal table (tabulate), JSON, CSV, Parquet, Markdown and HTML.

Every string that came from a capture (SNI, DNS names, Host headers, certificate fields) is hostile:
control characters are made visible in terminal and Markdown output, HTML is escaped, and CSV cells
that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR) are prefixed
with a quote.
"""

from __future__ import annotations

import enum
import html
import io
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import pandas as pd
from tabulate import tabulate

from pcapaudit.model import process_label
from pcapaudit.report.columns import SEVERITY_ORDER
from pcapaudit.result import TABLES, AuditResult

SCHEMA_VERSION = 1
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Format(str, enum.Enum):
    """Report formats."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    MARKDOWN = "markdown"
    HTML = "html"


def clean_text(s: object) -> str:
    """Make control characters (terminal escapes, bidi overrides) visible; never raises."""
    text = str(s)
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def csv_safe(s: object) -> object:
    """Neutralise spreadsheet formulas in a CSV cell."""
    if isinstance(s, str) and s and s[0] in "=+-@\t\r":
        return "'" + s
    return s


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 flow``, ``2 flows``, ``12,345 packets`` (``many``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _utc(v) -> datetime | None:
    """Epoch seconds -> aware datetime; None for missing or impossible (hostile) timestamps."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        return datetime.fromtimestamp(v, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _jsonable(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def iter_records(df: pd.DataFrame, name: str):
    """DataFrame rows as JSON-ready dicts (evidence and certificate chains decoded back into objects)."""
    cols = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        d = {c: _jsonable(v) for c, v in zip(cols, row)}
        if name == "findings" and d.get("evidence"):
            d["evidence"] = json.loads(d["evidence"])
        if name == "flows" and d.get("cert_chain"):
            d["cert_chain"] = json.loads(d["cert_chain"])
        if "uids" in d:
            d["uids"] = d["uids"].split() if d["uids"] else []
        yield d


def _json_ready(batch):
    """A record batch whose columns convert to Python cheaply: categories decoded and timestamps written
    as ISO text by Arrow (``2023-11-14T22:13:20.123456Z``, as ``result.iso_utc`` writes them). ``to_pylist`` of a
    dictionary column builds a scalar object per value, which made a JSON report cost more than the audit."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in batch.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        elif pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def iter_arrow_records(batches, name: str):
    """Rows of Arrow record batches as JSON-ready dicts (no pandas copy), keys sorted."""
    for batch in batches:
        ready = _json_ready(batch.select(sorted(batch.schema.names)))
        for start in range(0, ready.num_rows, 2048):  # a few thousand rows' Python objects alive at a time
            for d in ready.slice(start, 2048).to_pylist():
                if name == "flows" and d.get("cert_chain"):
                    d["cert_chain"] = json.loads(d["cert_chain"])
                yield d


def table_records(df: pd.DataFrame, name: str) -> list[dict]:
    """DataFrame -> list of JSON-ready dicts."""
    return list(iter_records(df, name))


def write_json(result: AuditResult, out: IO[str], tables: tuple[str, ...] = TABLES) -> None:
    """One JSON object (sorted keys): schema_version, tool, summary, rulesets and one array per table.

    Rows are written one per line as they are produced, so a million-flow report never exists as one
    string or one list of dicts in memory.
    """
    from pcapaudit import __version__

    head = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pcapaudit", "version": __version__},
        "summary": result.summary(),
        "rulesets": [{"vendor": rs.vendor, "path": rs.path, "sha256": rs.sha256, "rules": len(rs.rules)}
                     for rs in result.book.rulesets],  # fmt: skip
    }
    keys = sorted(list(head) + list(tables))
    out.write("{\n")
    for i, key in enumerate(keys):
        sep = ",\n" if i < len(keys) - 1 else "\n"
        if key in head:
            out.write(f" {json.dumps(key)}: {json.dumps(head[key], sort_keys=True, ensure_ascii=False, default=str)}{sep}")
            continue
        out.write(f" {json.dumps(key)}: [")
        first = True
        batches = result.batches(key)
        rows = iter_arrow_records(batches, key) if batches is not None else iter_records(result.table(key), key)
        for row in rows:
            out.write(("\n  " if first else ",\n  ") + json.dumps(row, sort_keys=True, ensure_ascii=False, default=str))
            first = False
        out.write(("\n ]" if not first else "]") + sep)
    out.write("}\n")


def write_jsonl(result: AuditResult, out: IO[str], tables: tuple[str, ...] = TABLES) -> None:
    """JSON Lines: one object per line, each tagged with its table (``{"table": "flows", ...}``), the
    first one the summary (with ``schema_version``, ``tool`` and ``rulesets``); rows as in the JSON report."""
    from pcapaudit import __version__

    head = {
        "table": "summary", "schema_version": SCHEMA_VERSION, "tool": {"name": "pcapaudit", "version": __version__},
        **result.summary(),
        "rulesets": [{"vendor": rs.vendor, "path": rs.path, "sha256": rs.sha256, "rules": len(rs.rules)}
                     for rs in result.book.rulesets],
    }  # fmt: skip
    out.write(json.dumps(head, ensure_ascii=False, default=str) + "\n")
    for key in tables:
        batches = result.batches(key)
        rows = iter_arrow_records(batches, key) if batches is not None else iter_records(result.table(key), key)
        for row in rows:
            out.write(json.dumps({"table": key, **dict(sorted(row.items()))}, ensure_ascii=False, default=str) + "\n")


def to_json(result: AuditResult, tables: tuple[str, ...] = TABLES) -> str:
    """The JSON report as a string (small results; the CLI streams with write_json)."""
    buf = io.StringIO()
    write_json(result, buf, tables)
    return buf.getvalue()


def _safe_arrow(table):
    """String columns with spreadsheet-formula prefixes neutralised; dictionaries decoded (CSV)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        if pa.types.is_string(col.type):
            risky = pc.match_substring_regex(col, r"^[=+\-@\t\r]")
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_table_csv(result: AuditResult, name: str, out) -> None:
    """One table as CSV (Arrow's writer, batch by batch, for the big tables)."""
    batches = result.batches(name)
    if batches is None:
        write_csv(result.table(name), out)
        return
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = True
    for batch in batches:
        buf = io.BytesIO()
        pacsv.write_csv(_safe_arrow(pa.Table.from_batches([batch])), buf,
                        pacsv.WriteOptions(include_header=first))  # fmt: skip
        out.write(buf.getvalue().decode("utf-8"))
        first = False
    if first:  # no rows: still write the header
        buf = io.BytesIO()
        pacsv.write_csv(_safe_arrow(pa.Table.from_batches([], schema=result.arrow_schema(name))), buf)
        out.write(buf.getvalue().decode("utf-8"))


def write_table_parquet(result: AuditResult, name: str, path: str | Path) -> None:
    """One table as Parquet (typed: UInt16 ports, UTC timestamps, dictionary-encoded categories)."""
    batches = result.batches(name)
    if batches is None:
        write_parquet(result.table(name), path)
        return
    import pyarrow.parquet as pq

    # the schema carries pandas' dtype metadata (UInt16, category, string...) so read_parquet gives the
    # same DataFrame as the API; rows are written a batch at a time
    schema = result.arrow_schema(name)
    with pq.ParquetWriter(str(path), schema) as writer:
        for batch in batches:
            writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)


def write_csv(df: pd.DataFrame, out: IO[str]) -> None:
    """CSV with formula-prefix neutralisation."""
    safe = df.copy()
    for col in safe.columns:
        if str(safe[col].dtype) in ("string", "category", "object"):
            safe[col] = safe[col].astype("object").map(lambda v: csv_safe(v) if isinstance(v, str) else v)
    safe.to_csv(out, index=False)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Parquet keeps the dtypes (pyarrow)."""
    df.to_parquet(path, index=False)


# -- terminal / markdown ---------------------------------------------------------------------------
FINDING_VIEW = ["severity", "kind", "code", "count", "target", "message"]
COVERAGE_VIEW = ["vendor", "status", "service", "targets", "flows", "note"]
FLOW_VIEW = ["ts", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "state", "sni", "dns_name",
             "vendor", "rule_id", "matched_by", "verdict"]  # fmt: skip
DNS_VIEW = ["ts", "client_ip", "query", "qtype", "rcode", "answers", "vendor"]
WEIRD_VIEW = ["ts", "name", "count", "uid", "detail"]
VIEWS = {"findings": FINDING_VIEW, "coverage": COVERAGE_VIEW, "flows": FLOW_VIEW, "dns": DNS_VIEW, "weirds": WEIRD_VIEW}


def _cell(v, width: int | None, cut: str = "end", dates: bool = False) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f" if dates else "%H:%M:%S.%f")[:-3]
    s = clean_text(v).replace("\n", "\\x0a").replace("\t", "\\x09")  # a cell is one line of its table
    return _shorten(s, width, cut)


def _middle(s: str, width: int) -> str:
    """``s`` in at most ``width`` characters, its middle left out."""
    if len(s) <= width:
        return s
    head = min(9, max(3, (width - 1) // 4))
    return s[:head] + "…" + s[len(s) - (width - head - 1):]


def _shorten(s: str, width: int | None, cut: str = "end") -> str:
    """``s`` in at most ``width`` characters: cut at the end (``…``), or in the middle for names, whose
    domain and address are at the end."""
    if not width or len(s) <= width:
        return s
    if cut == "middle" and width >= 8:
        # a finding's target, "name (address:port)": the address is kept whole or left out, never cut
        # (a cut address reads as another real one); the name loses its middle, not its domain
        name, sep, rest = s.partition(" (")
        if sep and rest.endswith(")") and name:
            addr = sep + rest
            if width - len(addr) >= 16:
                return _middle(name, width - len(addr)) + addr
            return _middle(name, width)
        return _middle(s, width)
    return s[: width - 1] + "…"


# How a column gives way when the terminal is narrow: (comfortable width, least width, where to cut).
# Columns are first narrowed to their comfortable width, then the table's DROP columns go one by one,
# then columns narrow to their least width. Columns not listed here and not FIXED get DEFAULT_SHRINK.
SHRINK: dict[str, tuple[int, int, str]] = {
    "message": (40, 16, "end"), "target": (32, 16, "middle"), "service": (24, 12, "end"),
    "targets": (24, 12, "end"), "note": (20, 8, "end"), "sni": (28, 12, "middle"),
    "dns_name": (28, 12, "middle"), "query": (28, 12, "middle"), "answers": (24, 10, "end"),
    "rule_id": (20, 10, "end"), "detail": (32, 12, "end"), "process": (20, 10, "end"),
    "processes": (20, 10, "end"), "code": (27, 12, "end"), "src_ip": (39, 15, "middle"),
    "dst_ip": (39, 15, "middle"), "client_ip": (39, 15, "middle"), "id": (48, 24, "end"), "ports": (14, 8, "end"),
}  # fmt: skip
DEFAULT_SHRINK = (24, 10, "end")
FIXED = {"severity", "count", "ts", "ts_last", "src_port", "dst_port", "transport", "flows", "status", "vendor",
         "qtype", "rcode", "verdict", "state", "kind", "matched_by", "name", "required", "uid"}  # fmt: skip
# the columns each default view leaves out first (in this order) when the terminal is too narrow
DROP = {
    "findings": ["kind", "count"],
    "coverage": ["note", "flows"],
    "flows": ["matched_by", "rule_id", "transport", "src_port", "state", "dns_name", "vendor"],
    "dns": ["qtype", "vendor", "answers"],
    "weirds": ["uid"],
}


def _fit(cols: list[str], rows: list[list[str]], width: int, drop: list[str]) -> tuple[list[str], list[list[str]]]:
    """Columns and cells of a table that fits ``width`` characters (``tabulate``'s simple format puts two
    spaces between columns), when it can: see SHRINK and DROP."""
    # tabulate makes a column at least its header and 2 wide
    natural = {c: max([len(c) + 2] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)}

    def floor(c: str, which: int) -> int:
        if c in FIXED:
            return natural[c]
        return max(len(c) + 2, min(natural[c], SHRINK.get(c, DEFAULT_SHRINK)[which]))

    def squeeze(cs: list[str], which: int) -> tuple[dict[str, int], bool]:
        w = {c: natural[c] for c in cs}
        over = sum(w.values()) + 2 * (len(cs) - 1) - width
        while over > 0:
            room = [c for c in cs if w[c] > floor(c, which)]
            if not room:
                return w, False
            c = max(reversed(room), key=lambda x: w[x])  # the widest first; on a tie, the last
            w[c] -= 1
            over -= 1
        return w, True

    kept = list(cols)
    droppable = [c for c in drop if c in kept]
    w, ok = squeeze(kept, 0)
    while not ok and droppable:
        kept.remove(droppable.pop(0))
        w, ok = squeeze(kept, 0)
    if not ok:
        w, ok = squeeze(kept, 1)
    idx = [cols.index(c) for c in kept]
    cut = {c: SHRINK.get(c, DEFAULT_SHRINK)[2] for c in kept}
    return kept, [[_shorten(r[i], w[c], cut[c]) for i, c in zip(idx, kept)] for r in rows]


def render_table(df: pd.DataFrame, cols: list[str], fmt: str = "simple", width: int | None = 60, limit: int | None = None,
                 widths: dict[str, int] | None = None, fit: int | None = None, drop: list[str] = (),
                 dates: bool = False) -> str:
    """A DataFrame view as text (tabulate); Markdown cells get their pipes and backticks escaped.
    ``width`` caps every cell, ``widths`` some columns (when ``width`` is set); ``fit`` narrows the
    table to that many characters, leaving out the ``drop`` columns first if it must; ``dates`` writes
    the date of times, not only the time of day."""
    view = df[cols]
    if limit is not None:
        view = view.head(limit)
    caps = [(widths or {}).get(c, width) if width else None for c in cols]
    rows = [[_cell(v, w, dates=dates) for v, w in zip(r, caps)] for r in view.itertuples(index=False, name=None)]
    if fit:
        cols, rows = _fit(list(cols), rows, fit, list(drop))
    if fmt == "github":
        rows = [[c.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("<", "&lt;") for c in r]
                for r in rows]  # fmt: skip
    return tabulate(rows, headers=cols, tablefmt=fmt, disable_numparse=True)


def _when(ts: float | None) -> str:
    d = _utc(ts)
    return d.strftime("%Y-%m-%d %H:%M:%S") if d else "-"


def spans_days(result: AuditResult) -> bool:
    """Whether the capture's first and last packets fall on different UTC dates: then times of day alone
    would read out of order, and tables show dates."""
    first, last = _utc(result.stats.first_ts), _utc(result.stats.last_ts)
    return bool(first and last and first.date() != last.date())


def header_lines(result: AuditResult) -> list[str]:
    """Summary lines for the top of a report."""
    s = result.summary()
    srcs = ", ".join(clean_text(x) for x in s["sources"]) or "-"
    when = (f"{_when(result.stats.first_ts)} to {_when(result.stats.last_ts)} UTC" if result.stats.first_ts is not None
            else "no packets")  # fmt: skip
    lines = [
        f"pcapaudit: {srcs}",
        f"  {plural(s['packets'], 'packet')}, {plural(s['flows'], 'flow')}, "
        f"{plural(s['dns_transactions'], 'DNS transaction')}, {s['weird']:,} weird; {when}",
    ]
    if result.vendors:
        vendors = ", ".join(result.vendors) + (" (detected from traffic)" if result.vendors_auto else "")
    else:
        vendors = "no vendor seen in the traffic" if result.vendors_auto else "none"
    lines.append(f"  rulesets: {vendors}")
    if s.get("if_dropped") or s.get("dropped"):
        lines.append(f"  dropped by capture: kernel {s.get('dropped') or 0:,}, interface {s.get('if_dropped') or 0:,}")
    if s.get("interface_copies"):
        lines.append(f"  {s['interface_copies']:,} packets seen again on another interface (a bridge, a router) "
                     "counted once")  # fmt: skip
    if s.get("one_direction_flows"):
        lines.append(f"  {plural(s['one_direction_flows'], 'TCP flow')} on {plural(s['one_direction_links'], 'link')} "
                     "seen in one direction only (a span port or tcpdump -Q showing one side): no blocked or "
                     "intercepted finding is drawn from the missing side (weirds: one_direction_link)")  # fmt: skip
    for e in result.errors:
        lines.append(f"  ERROR {clean_text(e)}")
    return lines


def coverage_summary(result: AuditResult) -> str:
    """'12 reached, 2 blocked, ... of 43 required/recommended'."""
    cov = result.coverage
    if cov.empty:
        return "no requirement rules selected"
    vc = cov["status"].astype("string").value_counts()
    order = ["reached", "partly blocked", "blocked", "intercepted", "tried, not reached", "never seen"]
    parts = [f"{int(vc[k])} {k}" for k in order if k in vc.index]
    return f"{', '.join(parts)} (of {len(cov)} required/recommended rules)"


def _wrap(line: str, width: int | None, indent: str = "    ") -> str:
    """A line of prose wrapped at ``width`` (None: as it is), continuation lines indented."""
    if not width or len(line) <= width:
        return line
    import textwrap

    lead = line[: len(line) - len(line.lstrip())]
    return "\n".join(textwrap.wrap(line, width, initial_indent="", subsequent_indent=lead + indent,
                                    break_on_hyphens=False, break_long_words=True))  # fmt: skip


def render_text(result: AuditResult, tables: tuple[str, ...], fmt: str = "simple", flow_limit: int | None = 50,
                compact: bool = False, width: int | None = None, columns: list[str] | None = None) -> str:
    """Terminal (``simple``) or Markdown (``github``) report.

    ``compact`` lists the checklist's never-seen rules by name under the table instead of one row each.
    ``width`` fits the terminal report to that many characters (narrowing and leaving out columns; None:
    each cell up to 70 characters, the width of the report for pipes and files). ``columns`` shows these
    columns, in this order, of each table that has any of them (the others keep their default view).
    """
    md = fmt == "github"
    fit = None if md else width
    dates = spans_days(result)
    out = io.StringIO()
    head = header_lines(result)
    if md:
        out.write("# pcapaudit report\n\n" + "\n".join(f"- {clean_text(x.strip())}" for x in head[1:]) + "\n")
        out.write(f"- sources: {', '.join(clean_text(x) for x in result.stats.sources)}\n")
    else:
        out.write("\n".join(_wrap(x, fit) for x in head) + "\n")
    for t in tables:
        df = result.head(t, flow_limit if t == "flows" else None)
        title = {"findings": "FINDINGS", "coverage": "REQUIREMENTS", "flows": "FLOWS", "dns": "DNS", "weirds": "WEIRD"}[t]
        limit = None
        extra = ""
        never_line = ""
        total = len(df)
        if t == "coverage":
            extra = f": {coverage_summary(result)}"
            if len(df):
                seen = df[df["status"].astype("string") != "never seen"]
                never = df[df["status"].astype("string") == "never seen"]
                if compact and len(never):
                    df = seen
                    parts = []
                    for vendor, grp in never.groupby("vendor", observed=True, sort=False):
                        ids = [str(x).split(".", 1)[1] for x in grp["rule_id"]]
                        parts.append(f"{vendor}: {', '.join(ids)}")
                    never_line = f"never seen ({len(never)}): " + "; ".join(parts) + "\n"
                else:
                    df = pd.concat([seen, never])
        if t in ("flows", "dns"):
            total = result.rows(t)
            if t == "flows" and flow_limit is not None and total > flow_limit:
                limit = flow_limit
                extra = f" (first {flow_limit} of {total}; use --table flows --limit 0 for all)"
        n = len(df)
        out.write(f"\n{'## ' if md else ''}{_wrap(title + f' ({total})' + extra, fit)}\n")
        if md:
            out.write("\n")
        if n == 0:
            out.write("none\n" if not never_line else _wrap(clean_text(never_line.rstrip()), fit, "  ") + "\n")
            continue
        df, cols = _process_view(df, t)
        chosen = [c for c in columns or () if c in df.columns]
        if chosen:
            cols = chosen
        if t == "findings":
            df = worst_first(df, None if md else FINDING_WIDTHS["target"])
        out.write(render_table(df, cols, "github" if md else fmt, width=None if md else 70, limit=limit,
                               widths=FINDING_WIDTHS if t == "findings" else None, fit=fit,
                               drop=[] if chosen else DROP.get(t, []), dates=dates) + "\n")  # fmt: skip
        if never_line:
            out.write(("\n" if md else "") + _wrap(clean_text(never_line.rstrip()), fit, "  ") + "\n")
    return out.getvalue()


FINDING_WIDTHS = {"target": 60, "message": 120}  # the message is the finding's evidence: room for it


def worst_first(df: pd.DataFrame, target_width: int | None = None) -> pd.DataFrame:
    """Findings for reading: the most severe first (in time order within a severity), each message
    without the target it starts with, which the ``target`` column already shows. A target longer than
    ``target_width`` loses the middle of its name, not the domain and address at its end."""
    rank = df["severity"].astype("string").map({s: -i for i, s in enumerate(SEVERITY_ORDER)}).fillna(1)
    df = df.iloc[rank.reset_index(drop=True).sort_values(kind="stable").index]
    msg = [m[len(t) + 2:] if isinstance(m, str) and isinstance(t, str) and t and m.startswith(t + ": ") else m
           for m, t in zip(df["message"], df["target"])]  # fmt: skip
    df = df.assign(message=msg)
    if target_width:
        df = df.assign(target=[_shorten(t, target_width, "middle") if isinstance(t, str) else t
                               for t in df["target"]])  # fmt: skip
    return df


def _process_view(df: pd.DataFrame, t: str) -> tuple[pd.DataFrame, list[str]]:
    """The terminal view of a table, with a ``process`` column after the client's port when the capture
    names processes (Apple PKTAP); findings take it from their evidence."""
    cols = VIEWS[t]
    if t == "flows":
        extra = []
        if "interface" in df.columns and df["interface"].notna().any():
            extra.append("interface")
        if "process" in df.columns and df["process"].notna().any():
            df = df.assign(process=[process_label(*(None if v is pd.NA else v for v in row))
                                    for row in zip(df["process"], df["pid"], df["eprocess"])])  # fmt: skip
            extra.append("process")
        return df, cols[:3] + extra + cols[3:]
    if t == "dns" and "process" in df.columns and df["process"].notna().any():
        return df, cols[:2] + ["process"] + cols[2:]
    if t == "coverage" and "processes" in df.columns and df["processes"].notna().any():
        return df, cols[:-1] + ["processes"] + cols[-1:]
    if t == "findings" and "evidence" in df.columns:
        procs = [json.loads(e).get("process") if isinstance(e, str) and '"process"' in e else None for e in df["evidence"]]
        if any(procs):
            return df.assign(process=procs), cols[:4] + ["process"] + cols[4:]
    return df, cols


def _html_cell(col: str, text: str) -> str:
    """One escaped ``<td>``, with the classes that let long tokens wrap (see the CSS)."""
    cls = ["evidence"] if col == "evidence" else []
    if any(len(tok) > 24 for tok in text.split()):
        cls.append("long")
    return f"<td class='{' '.join(cls)}'>{html.escape(text)}</td>" if cls else f"<td>{html.escape(text)}</td>"


def render_html(result: AuditResult, tables: tuple[str, ...]) -> str:
    """A single self-contained HTML file (inline CSS, no scripts, every value escaped)."""
    esc = html.escape
    s = result.summary()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>pcapaudit report</title>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        # the table keeps to the page: a cell with a long token (a hash, a certificate name, a hostile SNI)
        # may break it anywhere (class long); other cells wrap between words, as usual
        "table{border-collapse:collapse;margin:1em 0;font-size:12px;width:100%}"
        "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}"
        "td.long{overflow-wrap:anywhere}td.evidence{font:11px ui-monospace,monospace;width:32%}"
        "th{background:#f3f3f3}.high{background:#fdd}.medium{background:#ffe9c7}.low{background:#ffffd8}"
        ".blocked,.intercepted{background:#fdd}.reached{background:#e3f6e3}h1{font-size:20px}"
        "@page{size:A4 landscape;margin:1cm}"
        "@media print{body{margin:0;font-size:10px}table{font-size:8px}thead{display:table-header-group}"
        "tr{break-inside:avoid}h2{break-after:avoid}"
        "tr{-webkit-print-color-adjust:exact;print-color-adjust:exact}}</style></head><body>",
        "<h1>pcapaudit report</h1><ul>",
    ]
    for line in header_lines(result):
        parts.append(f"<li>{esc(line.strip())}</li>")
    parts.append(f"<li>{esc(coverage_summary(result))}</li></ul>")
    del s
    dates = spans_days(result)
    for t in tables:
        df = result.table(t)
        parts.append(f"<h2>{esc(t)} ({len(df)})</h2>")
        if df.empty:
            parts.append("<p>none</p>")
            continue
        df, cols = _process_view(df, t)
        if t == "findings":  # worst first, each message without the target the table shows beside it
            df = worst_first(df)
            cols = cols + ["vendor", "rule_id", "uids", "evidence"]
        parts.append("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead><tbody>")
        for row in df[cols].itertuples(index=False, name=None):
            cls = ""
            if t == "findings":
                cls = f" class='{esc(str(row[0]))}'"
            elif t == "coverage":
                cls = f" class='{esc(str(row[1]).split()[0])}'"
            cells = "".join(_html_cell(c, _cell(v, None, dates=dates)) for c, v in zip(cols, row))
            parts.append(f"<tr{cls}>{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "".join(parts)
