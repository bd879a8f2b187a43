"""The one place rejected input is kept: meta.bad_input, with secrets redacted.

Importers, backfills and the continuous ingest all keep what they refuse (the complaint
and the raw text) for inspection. The raw text may be a server's error body, and servers
echo requests: our key id, a signature, a ``key=`` parameter. Every row goes through
:func:`kwx.domain.secrets.redact` here, so no caller can store a secret by forgetting to.
"""

from __future__ import annotations

import psycopg

from kwx.domain.secrets import redact

__all__ = ["record_bad_input"]


def record_bad_input(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    source: str,
    location: str,
    field: str | None,
    message: str,
    raw: str | None,
) -> None:
    """Insert one meta.bad_input row (inside the caller's transaction, if any)."""
    conn.execute(
        "INSERT INTO meta.bad_input (source, location, field, message, raw) "
        "VALUES (%s, %s, %s, %s, %s)",
        (
            source,
            redact(location),
            field,
            redact(message),
            None if raw is None else redact(raw),
        ),
    )
