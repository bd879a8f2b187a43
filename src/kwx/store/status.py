"""Row counts per kwx table, for `kwx db status`."""

from __future__ import annotations

import psycopg

KWX_SCHEMAS = ("kalshi", "md", "wx", "pmf", "model", "exec", "backtest", "meta")


def table_row_counts(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Exact counts (count(*)), so that a re-import can be checked row for row."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
        (list(KWX_SCHEMAS),),
    ).fetchall()
    counts: dict[str, int] = {}
    for schema, name in tables:
        row = conn.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
        counts[f"{schema}.{name}"] = int(str(row[0])) if row else 0
    conn.commit()
    return counts
