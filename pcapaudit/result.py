"""``AuditResult``: the records of one audit and their DataFrame views."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pcapaudit.model import CaptureStats, CoverageRow, Finding, Severity, Weird
from pcapaudit.report import columns
from pcapaudit.rules.schema import RuleBook
from pcapaudit.store import ColumnStore

if TYPE_CHECKING:
    import pandas as pd

TABLES = ("findings", "coverage", "flows", "dns", "weirds")


def iso_utc(v: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC text, ``2026-11-26T23:07:59.579123Z``, as every table's times are
    written in JSON; None for a missing or impossible (hostile) time."""
    import math
    from datetime import datetime, timezone

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        d = datetime.fromtimestamp(v, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return d.isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditResult:
    """Result of an audit. Tables (``flows``, ``findings``, ``coverage``, ``dns``, ``weirds``) are
    typed pandas DataFrames joined by the flow ``uid``; the frozen records stay available as ``records``.
    """

    def __init__(
        self,
        flows: ColumnStore,
        dns: ColumnStore,
        findings: list[tuple[Finding, tuple[str, ...]]],
        coverage: list[CoverageRow],
        weirds: list[Weird],
        stats: CaptureStats,
        vendors: tuple[str, ...],
        vendors_auto: bool,
        errors: tuple[str, ...],
        book: RuleBook,
    ):
        self._flow_store = flows
        self._dns_store = dns
        self.finding_records = findings
        self.coverage_records = coverage
        self.weird_records = weirds
        self.stats = stats
        self.vendors = vendors
        self.vendors_auto = vendors_auto
        self.errors = errors
        self.book = book

    @property
    def flow_count(self) -> int:
        """Number of flows."""
        return len(self._flow_store)

    @property
    def dns_count(self) -> int:
        """Number of DNS transactions."""
        return len(self._dns_store)

    @cached_property
    def flows_arrow(self):
        """The flows table as a pyarrow Table (what exports use: no pandas copy)."""
        return self._flow_store.typed_table(sort_by=["ts", "uid"])

    @cached_property
    def dns_arrow(self):
        """The DNS table as a pyarrow Table."""
        return self._dns_store.typed_table(sort_by=["ts", "uid"])

    @cached_property
    def flows(self) -> pd.DataFrame:
        """One row per flow, with its classification."""
        from pcapaudit.store import table_to_pandas

        return table_to_pandas(self.flows_arrow, columns.FLOW_COLUMNS)

    def _big_store(self, name: str) -> ColumnStore:
        """The column store of ``flows`` or ``dns`` (it knows its own column map)."""
        return self._flow_store if name == "flows" else self._dns_store

    def head(self, name: str, n: int | None) -> pd.DataFrame:
        """The first ``n`` rows of a table (all when None) without converting the rest to pandas."""
        if n is not None and name in ("flows", "dns") and name not in self.__dict__:
            import pyarrow as pa

            from pcapaudit.store import table_to_pandas

            store = self._big_store(name)
            first = next(store.sorted_batches(["ts", "uid"], chunk=max(n, 1)), None)
            table = pa.Table.from_batches([first]) if first is not None else store.typed_table()
            return table_to_pandas(table.slice(0, n), store.columns)
        df = self.table(name)
        return df if n is None else df.head(n)

    def batches(self, name: str):
        """A big table (flows, dns) as typed Arrow record batches in time order, or None for the small ones."""
        if name == "flows":
            return self._flow_store.sorted_batches(["ts", "uid"])
        if name == "dns":
            return self._dns_store.sorted_batches(["ts", "uid"])
        return None

    def arrow_schema(self, name: str):
        """Schema of the batches of a big table (with pandas dtype metadata)."""
        import pyarrow as pa

        from pcapaudit.store import table_to_pandas

        store = self._big_store(name)
        empty = store._typed(store.table().slice(0, 0))  # noqa: SLF001
        meta = pa.Schema.from_pandas(table_to_pandas(empty, store.columns), preserve_index=False).metadata
        return empty.schema.with_metadata(meta)

    def rows(self, name: str) -> int:
        """Number of rows of a table."""
        return {"flows": self.flow_count, "dns": self.dns_count}.get(name) or len(self.table(name))

    @cached_property
    def findings(self) -> pd.DataFrame:
        """One row per distinct finding (repeats folded into ``count`` and ``uids``)."""
        from pcapaudit.report import frames

        return frames.findings_frame(self.finding_records)

    @cached_property
    def coverage(self) -> pd.DataFrame:
        """The requirement checklist of the selected (or detected) vendors."""
        from pcapaudit.report import frames

        return frames.coverage_frame(self.coverage_records)

    @cached_property
    def dns(self) -> pd.DataFrame:
        """DNS transactions (query + response)."""
        from pcapaudit.store import table_to_pandas

        return table_to_pandas(self.dns_arrow, columns.DNS_COLUMNS)

    @cached_property
    def weirds(self) -> pd.DataFrame:
        """Malformed or unusual input, counted per kind."""
        from pcapaudit.report import frames

        return frames.weirds_frame(self.weird_records)

    def table(self, name: str) -> pd.DataFrame:
        """A table by name."""
        if name not in TABLES:
            raise KeyError(name)
        return getattr(self, name)

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Every table by name."""
        return {t: self.table(t) for t in TABLES}

    def worst_severity(self) -> Severity | None:
        """Highest severity among findings (None when there are none)."""
        sev = [f.severity for f, _ in self.finding_records]
        return max(sev) if sev else None

    def summary(self) -> dict:
        """Counters for the header and JSON ``stats``. ``findings_by_kind`` counts the findings above info
        severity; info notes are counted under ``findings_by_severity`` only."""
        s = self.stats
        by_kind: dict[str, int] = {}
        by_sev: dict[str, int] = {}
        for f, _ in self.finding_records:
            if f.severity > Severity.INFO:  # an info note (evidence_unavailable) is no blocked or intercepted flow
                by_kind[f.kind.value] = by_kind.get(f.kind.value, 0) + 1
            by_sev[f.severity.name.lower()] = by_sev.get(f.severity.name.lower(), 0) + 1
        return {
            "sources": list(s.sources),
            "packets": s.packets,
            "bytes": s.bytes,
            "first_ts": iso_utc(s.first_ts),  # ISO 8601 UTC, as in the JSON report (None: no packets)
            "last_ts": iso_utc(s.last_ts),
            "flows": self.flow_count,
            "dns_transactions": self.dns_count,
            "findings": len(self.finding_records),
            "findings_by_kind": by_kind,
            "findings_by_severity": by_sev,
            "weird": s.weird,
            "not_ip": s.not_ip,
            "vendors": list(self.vendors),
            "vendors_auto": self.vendors_auto,
            "dropped": s.dropped,
            "if_dropped": s.if_dropped,
            "errors": list(self.errors),
            **dict(s.extra),
        }

    def __repr__(self) -> str:
        return (
            f"<AuditResult {self.stats.packets} packets, {self.flow_count} flows, "
            f"{len(self.finding_records)} findings>"
        )
