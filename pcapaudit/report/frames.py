"""Records -> typed pandas DataFrames (the only module that builds frames).

Every column has an explicit dtype: ports ``UInt16``, counters ``UInt64``, times UTC ``datetime64``,
names ``string``, small vocabularies ``category``. An empty capture gives empty frames with the same
columns and dtypes, never ``None``.
"""

from __future__ import annotations

import json

import pandas as pd

from pcapaudit.model import Classification, CoverageRow, DnsTransaction, Finding, FlowRecord, Weird
from pcapaudit.report.columns import (  # re-exported: the column maps and row builders
    COVERAGE_COLUMNS,
    DNS_COLUMNS,
    FINDING_COLUMNS,
    FLOW_COLUMNS,
    SEVERITY_ORDER,
    WEIRD_COLUMNS,
    dns_row,
    flow_row,
)
from pcapaudit.store import to_utc


def _frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for col, dt in columns.items():
        s = df[col]
        if dt.startswith("datetime64"):
            df[col] = to_utc(s)
        elif dt == "category":
            # no values: the categories must still say they are strings, or Parquet stores type null
            dtype = pd.CategoricalDtype(pd.Index([], dtype="string")) if s.isna().all() else "category"
            df[col] = s.astype("string").astype(dtype)
        elif dt == "boolean":
            df[col] = s.astype("boolean")
        elif dt in ("string",):
            df[col] = s.astype("string")
        else:
            df[col] = s.astype(dt)
    if "severity" in columns and len(df) >= 0:
        df["severity"] = pd.Categorical(df["severity"].astype("string"), categories=SEVERITY_ORDER, ordered=True)
    return df


def flows_frame(flows: list[tuple[FlowRecord, Classification]]) -> pd.DataFrame:
    """The flows table from records (small inputs; the auditor streams rows into a ColumnStore)."""
    return _frame([dict(zip(FLOW_COLUMNS, flow_row(f, c))) for f, c in flows], FLOW_COLUMNS)


def findings_frame(findings: list[tuple[Finding, tuple[str, ...]]]) -> pd.DataFrame:
    """The findings table (one row per dedup identifier)."""
    rows = [
        {
            "ts": f.ts, "kind": f.kind.value, "severity": str(f.severity), "code": f.code, "vendor": f.vendor,
            "rule_id": f.rule_id, "service": f.service, "target": f.target, "message": f.message, "count": f.count,
            "uid": f.uid, "uids": " ".join(sorted(uids)) or None, "evidence": json.dumps(dict(f.evidence), sort_keys=True),
            "identifier": f.identifier,
        }
        for f, uids in findings
    ]
    return _frame(rows, FINDING_COLUMNS)


def coverage_frame(rows: list[CoverageRow]) -> pd.DataFrame:
    """The requirement checklist."""
    out = [
        {
            "vendor": r.vendor, "rule_id": r.rule_id, "service": r.service, "required": r.required,
            "targets": r.targets, "status": r.status, "attempted": r.attempted, "reached": r.reached,
            "blocked": r.blocked, "intercepted": r.intercepted, "flows": r.flows, "uids": " ".join(sorted(r.uids)) or None,
            "note": r.note or None, "processes": "; ".join(r.processes) or None,
        }
        for r in rows
    ]
    return _frame(out, COVERAGE_COLUMNS)


def dns_frame(dns: list[DnsTransaction], index=None) -> pd.DataFrame:
    """The DNS transactions table (``index``: a RuleIndex to name the vendor of each query)."""
    rows = []
    for t in dns:
        hits = index.match_name(t.query) if (index is not None and t.query) else ()
        rows.append(dict(zip(DNS_COLUMNS, dns_row(t, hits[0].rule if hits else None))))
    return _frame(rows, DNS_COLUMNS)


def weirds_frame(weirds: list[Weird]) -> pd.DataFrame:
    """The weirds table."""
    rows = [{"ts": w.ts, "name": w.name, "uid": w.uid, "detail": w.detail, "count": w.count} for w in weirds]
    return _frame(rows, WEIRD_COLUMNS)
