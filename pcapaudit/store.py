"""Compact columnar storage for the large output tables (flows, DNS transactions).

A capture of a million flows would need gigabytes as Python objects. Rows arrive one at a time (as
tuples, in column order) and are turned into typed Arrow record batches every ``chunk`` rows, so memory
holds a few thousand Python rows at most plus the compact Arrow columns. ``to_pandas`` applies the
pandas dtype map of ``report/columns.py`` at the edge, the only place this module imports pandas
(pyarrow itself imports it at its first list conversion; parallel workers tell it not to).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

_ARROW = {
    "string": pa.string(),
    "category": pa.string(),  # dictionary-encoded per batch
    "float64": pa.float64(),
    "boolean": pa.bool_(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
}


def _pandas_types() -> dict:
    """Arrow type -> nullable pandas dtype (UInt16 ports, boolean, string)."""
    import pandas as pd

    return {
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.string(): pd.StringDtype(),
    }


PANDAS_SECONDS = (-9.2e9, 9.2e9)  # epoch seconds pandas can hold as timestamps (1678..2261)


def to_utc(seconds: pd.Series) -> pd.Series:
    """Epoch seconds -> UTC datetimes in microseconds, rounded as ``seconds_to_timestamp`` rounds the
    stored tables' (a finding's time equals its flow's); a hostile timestamp outside pandas' range
    becomes NaT, not an error."""
    import pandas as pd

    s = seconds.astype("float64")
    us = (s.where((s > PANDAS_SECONDS[0]) & (s < PANDAS_SECONDS[1])) * 1e6).round()
    return pd.to_datetime(us, unit="us", utc=True, errors="coerce").dt.as_unit("us")


def _arrow_type(dtype: str) -> pa.DataType:
    if dtype.startswith("datetime64"):
        return pa.float64()  # seconds since the epoch; converted at the edge
    return _ARROW[dtype]


class ColumnStore:
    """Append rows; keep them as Arrow record batches of ``chunk`` rows."""

    # 4096 rows: pending rows are Python objects (~1.5 kB a flow row); at 20,000 they were ~25 MB per
    # table and process on the 2M-packet benchmark, and Arrow's per-batch overhead is still negligible
    def __init__(self, columns: dict[str, str], chunk: int = 4096, repetitive: frozenset[str] = frozenset()):
        self.columns = columns
        self.names = list(columns)
        self.types = [_arrow_type(t) for t in columns.values()]
        # categories, and string columns whose values repeat a lot (SNI, rule reasons...), are kept
        # dictionary-encoded: a fraction of the memory of one string per row
        self.categorical = [t == "category" or n in repetitive for n, t in columns.items()]
        self.repetitive = repetitive
        self.chunk = chunk
        self._rows: list[tuple] = []
        self._batches: list[pa.RecordBatch] = []
        self.count = 0
        self._spill_path: str | None = None  # batches go to this Arrow IPC stream file (see spill_to)
        self._sink = None
        self._writer = None
        self._schema: pa.Schema | None = None

    def __len__(self) -> int:
        return self.count

    def append(self, row: tuple) -> None:
        """Add one row (values in column order)."""
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        cols = list(zip(*self._rows))
        arrays = []
        for values, typ, cat in zip(cols, self.types, self.categorical):
            arr = pa.array(values, type=typ)
            arrays.append(arr.dictionary_encode() if cat else arr)
        batch = pa.RecordBatch.from_arrays(arrays, names=self.names)
        self._rows = []
        if self._spill_path is None:
            self._batches.append(batch)
        else:
            self._spill(batch)

    def _spill(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._sink = pa.OSFile(self._spill_path, "wb")
            self._schema = batch.schema
            self._writer = pa.ipc.new_stream(self._sink, self._schema)
        self._writer.write_batch(batch if batch.schema == self._schema else batch.cast(self._schema))

    def spill_to(self, path: str) -> None:
        """From now on write each full batch to an Arrow IPC stream file at ``path`` instead of keeping
        it in memory (parallel audits: the tables wait on disk, not in the processes, until the end)."""
        self.settle()
        self._spill_path = path
        for b in self._batches:
            self._spill(b)
        self._batches = []

    def settle(self) -> None:
        """Stop spilling: close the file and map its batches back (zero-copy; the file may then be
        unlinked, the mapping keeps the rows readable)."""
        self._flush()
        if self._writer is not None:
            path = self._spill_path
            self._close_spill()
            self._batches[:0] = _read_ipc(path).to_batches()  # type: ignore[arg-type]
        self._spill_path = None

    def _close_spill(self) -> None:
        """Close the spill file (complete and readable from then on) and stop spilling."""
        self._writer.close()  # type: ignore[union-attr]
        self._sink.close()  # type: ignore[union-attr]
        self._writer = self._sink = None
        self._spill_path = None

    def write_ipc(self, path: str) -> None:
        """Write every row to an Arrow IPC stream file, a batch at a time (no concatenated copy)."""
        self._flush()
        if self._spill_path == path and self._writer is not None and not self._batches:
            self._close_spill()  # everything is in that file already
            return
        self.settle()
        schema = self._batches[0].schema if self._batches else self.table().schema
        tmp = path + ".part"  # then renamed: a mapped file of the same name stays readable
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for b in self._batches:
                writer.write_batch(b if b.schema == schema else b.cast(schema))
        os.replace(tmp, path)

    def add_ipc(self, path: str) -> None:
        """Append the rows of a file written by ``write_ipc`` (memory-mapped: the rows are not copied
        into this process; the file may be unlinked afterwards)."""
        self.add_table(_read_ipc(path))

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """Append a record batch whose columns are this store's, in order (the core's flows table):
        each column is cast to the store's type and dictionary-encoded where the store encodes it."""
        if batch.num_rows == 0:
            return
        self._flush()
        arrays = []
        for col, typ, cat in zip(batch.columns, self.types, self.categorical):
            arr = col if col.type == typ else col.cast(typ)
            arrays.append(arr.dictionary_encode() if cat else arr)
        out = pa.RecordBatch.from_arrays(arrays, names=self.names)
        self.count += out.num_rows
        if self._spill_path is None:
            self._batches.append(out)
        else:
            self._spill(out)

    def add_table(self, table: pa.Table) -> None:
        """Append the rows of another store's table (from a parallel worker)."""
        self._flush()
        self._batches.extend(table.to_batches())
        self.count += table.num_rows

    def table(self) -> pa.Table:
        """Every row as one Arrow table."""
        self.settle()
        if not self._batches:
            return pa.table({n: pa.array([], type=t) for n, t in zip(self.names, self.types)})
        schema = pa.unify_schemas([b.schema for b in self._batches])
        return pa.Table.from_batches([b.cast(schema) if b.schema != schema else b for b in self._batches], schema)

    def sorted_batches(self, sort_by: list[str] | None = None, chunk: int = 16384):
        """Typed record batches in ``sort_by`` order, ``chunk`` rows at a time: an export never holds a
        second full copy of the table (only the sort permutation, 8 bytes a row)."""
        table = self.table()
        n = table.num_rows
        if not (sort_by and n):
            for start in range(0, n, chunk):
                yield from self._typed(table.slice(start, chunk)).combine_chunks().to_batches()
            return
        import numpy as np

        idx = pc.sort_indices(table.select(sort_by), sort_keys=[(c, "ascending") for c in sort_by]).to_numpy().astype(np.int64)
        # each slice is taken piece by piece from the few stored batches its rows live in: a take from the
        # whole chunked table unified every batch's dictionaries and walked every batch for each slice,
        # which made writing a million-row flows table take ten seconds
        batches = table.to_batches()
        unified = False
        starts = np.cumsum([0] + [b.num_rows for b in batches])
        for start in range(0, n, chunk):
            rows = idx[start : start + chunk]
            which = np.searchsorted(starts, rows, side="right") - 1
            used = np.unique(which)
            if len(used) <= 64:
                # the slice's rows of each batch it touches, taken from that batch alone, then put in order
                order = np.argsort(which, kind="stable")
                bounds = np.searchsorted(which[order], used, side="left").tolist() + [len(rows)]
                pieces = [batches[b].take(pa.array(rows[order[lo:hi]] - starts[b]))
                          for b, lo, hi in zip(used.tolist(), bounds, bounds[1:])]  # fmt: skip
                inverse = np.empty(len(rows), dtype=np.int64)
                inverse[order] = np.arange(len(rows))
                part = pa.Table.from_batches(pieces, table.schema).combine_chunks().take(pa.array(inverse))
            else:  # rows scattered over the whole table (not the case for flows, emitted in time order)
                if not unified:
                    table, unified = table.unify_dictionaries(), True
                part = table.take(pa.array(rows))
            yield from self._typed(part).combine_chunks().to_batches()

    def _typed(self, table: pa.Table) -> pa.Table:
        for i, (col, dt) in enumerate(self.columns.items()):
            if dt.startswith("datetime64"):
                table = table.set_column(i, col, seconds_to_timestamp(table.column(col)))
            elif col in self.repetitive:
                table = table.set_column(i, col, table.column(col).cast(pa.string()))
        return table

    def typed_table(self, sort_by: list[str] | None = None) -> pa.Table:
        """The rows as an Arrow table with final types (UTC timestamps), sorted by ``sort_by``.

        Exports (Parquet, CSV, JSON) and the first rows shown in a terminal are taken from here without a
        full pandas copy; only ``to_pandas`` builds the DataFrame.
        """
        table = self.table()
        if sort_by and table.num_rows:
            table = table.sort_by([(c, "ascending") for c in sort_by])
        return self._typed(table)

    def to_pandas(self, sort_by: list[str] | None = None) -> pd.DataFrame:
        """The table as a DataFrame with the declared pandas dtypes (rows sorted by ``sort_by``)."""
        return table_to_pandas(self.typed_table(sort_by), self.columns)


def _read_ipc(path: str) -> pa.Table:
    """An Arrow IPC stream file as a table over a memory map (zero-copy; stays readable once unlinked)."""
    with pa.memory_map(path) as source:
        return pa.ipc.open_stream(source).read_all()


def seconds_to_timestamp(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Epoch seconds (float) -> timestamp[us, UTC]; hostile values outside pandas' range become null."""
    ok = pc.and_(pc.greater(col, PANDAS_SECONDS[0]), pc.less(col, PANDAS_SECONDS[1]))
    us = pc.cast(pc.round(pc.multiply(pc.if_else(ok, col, None), 1e6)), pa.int64())
    return pc.cast(us, pa.timestamp("us", tz="UTC"))


def table_to_pandas(table: pa.Table, columns: dict[str, str]) -> pd.DataFrame:
    """An Arrow table of a store -> DataFrame with the declared pandas dtypes."""
    import pandas as pd

    df = table.to_pandas(types_mapper=_pandas_types().get)
    for col, dt in columns.items():
        s = df[col]
        if dt == "category" and not isinstance(s.dtype, pd.CategoricalDtype):
            df[col] = s.astype("string").astype("category")
        elif dt == "string" and not isinstance(s.dtype, pd.StringDtype):
            df[col] = s.astype("string")
    return df
