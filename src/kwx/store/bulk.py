"""Bulk writes: COPY into a staging table, then one idempotent upsert into the target.

COPY is an order of magnitude faster than INSERT; staging makes it idempotent (the upsert's
ON CONFLICT runs on the natural key) and keeps a failing file from half-writing anything,
because the caller runs stage + upsert in one transaction.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

COPY_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class CopyFailure:
    """Where PostgreSQL rejected a COPY: 1-based data row and column, with its message."""

    row: int | None
    field: str | None
    message: str


_CONTEXT_RE = re.compile(r"line (\d+)(?:, column (\w+))?")


def explain_copy_error(exc: psycopg.Error) -> CopyFailure:
    """Turn PostgreSQL's 'COPY x, line N, column c' context into a row and field."""
    context = exc.diag.context or ""
    match = _CONTEXT_RE.search(context)
    message = exc.diag.message_primary or str(exc)
    if match is None:
        return CopyFailure(None, exc.diag.column_name, message)
    return CopyFailure(int(match.group(1)), match.group(2), message)


def frame_to_csv(frame: pd.DataFrame | pa.Table) -> bytes:
    """CSV without header, NULL as the empty unquoted field (COPY's CSV default)."""
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    sink = io.BytesIO()
    pacsv.write_csv(
        table,
        sink,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    return sink.getvalue()


def create_stage(
    cur: psycopg.Cursor[tuple[object, ...]], name: str, columns: Sequence[tuple[str, str]]
) -> None:
    cols = ", ".join(f"{col} {typ}" for col, typ in columns)
    cur.execute(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")


def copy_into(
    cur: psycopg.Cursor[tuple[object, ...]],
    table: str,
    columns: Sequence[str],
    data: pd.DataFrame | pa.Table,
) -> int:
    """COPY a frame (columns in the given order) into a table; returns rows written."""
    n_rows = data.num_rows if isinstance(data, pa.Table) else len(data)
    if n_rows == 0:
        return 0
    payload = frame_to_csv(data)
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
        view = memoryview(payload)
        for start in range(0, len(view), COPY_CHUNK_BYTES):
            copy.write(view[start : start + COPY_CHUNK_BYTES])
    return n_rows
