"""`kwx import --from-files DIR`: load every recognised file under DIR into the store.

One transaction per file: a bad file is rolled back whole, reported with its row and field,
kept in meta.bad_input, and the import goes on with the next file. Files already imported
with the same content (by SHA-256) are skipped unless forced, so a re-run is cheap and
resumes where an interrupted one stopped; every write is an upsert, so forcing is safe too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kwx.domain.tickers import parse_market_ticker
from kwx.ingest.candles import build_candles_from_trades
from kwx.ingest.normalize import NORMALIZERS, ImportContext, inferred_markets, market_batches
from kwx.sources.files import BadInputError, FileKind, NotImportableError, detect, is_data_file
from kwx.store import writers
from kwx.store.bad_input import record_bad_input as store_bad_input
from kwx.store.bulk import explain_copy_error
from kwx.store.writers import Batch, DuplicateKeyError

# Metadata before the data that refers to it; trades before the candle build.
KIND_ORDER = (
    FileKind.MARKETS,
    FileKind.LADDER,
    FileKind.TRADES,
    FileKind.CANDLES_FLAT,
    FileKind.CANDLES_API,
    FileKind.TOP_OF_BOOK,
    FileKind.SETTLEMENT_CITY,
    FileKind.SETTLEMENT_ACIS,
    FileKind.VC_HOURLY,
    FileKind.VC_DAILY,
    FileKind.ERA5,
)


@dataclass
class FileOutcome:
    path: Path
    kind: FileKind | None
    status: str  # imported | unchanged | skipped | failed
    rows_read: int = 0
    rows_stored: int = 0
    message: str = ""


@dataclass
class ImportSummary:
    outcomes: list[FileOutcome] = field(default_factory=list)
    markets_inferred: int = 0
    inference_errors: list[BadInputError] = field(default_factory=list)
    candles_built: int = 0
    candle_seconds: float = 0.0

    def by_status(self, status: str) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[FileOutcome]:
        return self.by_status("failed")


ProgressHook = Callable[[FileOutcome], None]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def discover(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and is_data_file(path):
            yield path


def plan(root: Path) -> tuple[list[tuple[Path, FileKind]], list[FileOutcome]]:
    """Which files import as what, in dependency order; the rest are reported as skipped."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    known: list[tuple[Path, FileKind]] = []
    skipped: list[FileOutcome] = []
    for path in discover(root):
        try:
            kind = detect(path)
        except BadInputError as exc:
            skipped.append(FileOutcome(path, None, "failed", message=str(exc)))
            continue
        if kind is None:
            skipped.append(
                FileOutcome(path, None, "skipped", message="not a data shape kwx imports")
            )
        else:
            known.append((path, kind))
    known.sort(key=lambda item: (KIND_ORDER.index(item[1]), str(item[0])))
    return known, skipped


def record_bad_input(conn: psycopg.Connection[tuple[object, ...]], exc: BadInputError) -> None:
    """Keep a bad file's complaint (and the offending raw value) for later inspection."""
    location = exc.source + (f":{exc.row}" if exc.row is not None else "")
    with conn.transaction():
        store_bad_input(
            conn, source="file", location=location, field=exc.field, message=exc.reason, raw=exc.raw
        )


# The writers whose rows are the file's own data (series, event and location rows derived
# from them are bookkeeping and are not counted as read or stored).
DATA_WRITERS = (
    writers.MARKETS,
    writers.TRADES,
    writers.CANDLES,
    writers.TOP_OF_BOOK,
    writers.SETTLEMENTS,
    writers.OBS,
    writers.FORECAST,
    writers.FORECAST_DAILY,
)


def _write_batches(
    conn: psycopg.Connection[tuple[object, ...]],
    path: Path,
    kind: FileKind,
    sha: str,
    batches: list[Batch],
) -> tuple[int, int]:
    rows_read = sum(len(b.frame) for b in batches if b.writer in DATA_WRITERS)
    stored = 0
    with conn.transaction(), conn.cursor() as cur:
        for batch in batches:
            try:
                written = batch.writer.write(cur, batch.frame, batch.params)
            except DuplicateKeyError as exc:
                raise BadInputError(
                    str(path),
                    f"the same ({', '.join(exc.key)}) appears twice",
                    row=exc.position + 1,
                    field=exc.key[-1],
                ) from exc
            except (
                psycopg.errors.DataError,
                psycopg.errors.IntegrityError,
                psycopg.errors.CardinalityViolation,
            ) as exc:
                failure = explain_copy_error(exc)
                raise BadInputError(
                    str(path),
                    f"rejected by PostgreSQL: {failure.message}",
                    row=failure.row,
                    field=failure.field,
                ) from exc
            if batch.writer in DATA_WRITERS:
                stored += written
        cur.execute(
            "INSERT INTO meta.import_log (path, sha256, kind, rows_read, rows_stored) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (path, sha256) DO UPDATE "
            "SET rows_read = excluded.rows_read, rows_stored = excluded.rows_stored, "
            "imported_at = now()",
            (str(path), sha, kind.value, rows_read, stored),
        )
    return rows_read, stored


def import_file(
    conn: psycopg.Connection[tuple[object, ...]],
    path: Path,
    kind: FileKind,
    ctx: ImportContext,
    *,
    force: bool = False,
) -> FileOutcome:
    sha = _sha256(path)
    if not force:
        seen = conn.execute(
            "SELECT 1 FROM meta.import_log WHERE path = %s AND sha256 = %s", (str(path), sha)
        ).fetchone()
        conn.commit()
        if seen is not None:
            return FileOutcome(path, kind, "unchanged", message="already imported")
    try:
        batches = NORMALIZERS[kind](path, ctx)
        rows_read, stored = _write_batches(conn, path, kind, sha, batches)
    except NotImportableError as exc:
        return FileOutcome(path, kind, "skipped", message=str(exc))
    except (ValueError, TypeError) as exc:
        # BadInputError is a ValueError; anything else a normaliser raised on odd input is
        # still this file's fault, reported as such rather than aborting the whole import.
        bad = (
            exc
            if isinstance(exc, BadInputError)
            else BadInputError(str(path), f"{type(exc).__name__}: {exc}")
        )
        record_bad_input(conn, bad)
        return FileOutcome(path, kind, "failed", message=str(bad))
    return FileOutcome(path, kind, "imported", rows_read, stored)


def infer_missing_markets(
    conn: psycopg.Connection[tuple[object, ...]], ctx: ImportContext
) -> tuple[int, list[BadInputError]]:
    """Markets for traded tickers no metadata file described, with brackets from tickers.

    Inference looks at every traded ticker of an affected event, since a lone tail ticker
    is only classifiable next to its siblings; rows already known from Kalshi or a ladder
    outrank these (see kalshi.markets.metadata_source) and are not overwritten.
    """
    rows = conn.execute(
        """
        SELECT ticker, false FROM kalshi.markets
        UNION ALL
        SELECT t.ticker, true FROM (SELECT DISTINCT ticker FROM md.trades) t
        WHERE NOT EXISTS (SELECT 1 FROM kalshi.markets m WHERE m.ticker = t.ticker)
        """
    ).fetchall()
    conn.commit()
    by_event: dict[str, list[str]] = {}
    affected: set[str] = set()
    for ticker, missing in rows:
        event = parse_market_ticker(str(ticker)).event
        key = f"{event.series}-{event.climate_date}"
        by_event.setdefault(key, []).append(str(ticker))
        if missing:
            affected.add(key)
    tickers = [t for key in sorted(affected) for t in by_event[key]]
    if not tickers:
        return 0, []
    frame, errors = inferred_markets(tickers, ctx, source="ticker", strict=False)
    for error in errors:
        record_bad_input(conn, error)
    with conn.transaction(), conn.cursor() as cur:
        for batch in market_batches(frame.assign(event_title=None), ctx):
            batch.writer.write(cur, batch.frame, batch.params)
    return sum(1 for _, missing in rows if missing), errors


ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[tuple[object, ...]]]]


def _import_parallel(
    files: list[tuple[Path, FileKind]],
    ctx: ImportContext,
    *,
    force: bool,
    connection_factory: ConnectionFactory,
    workers: int,
    on_file: ProgressHook | None,
) -> list[FileOutcome]:
    """Import independent files on several connections at once (one transaction per file).

    PostgreSQL does most of a COPY's work in its own backend process, so two connections
    keep both cores busy where one would leave one idle.
    """
    local = threading.local()
    opened: list[AbstractContextManager[psycopg.Connection[tuple[object, ...]]]] = []
    lock = threading.Lock()

    def run(item: tuple[Path, FileKind]) -> FileOutcome:
        conn = getattr(local, "conn", None)
        if conn is None:
            manager = connection_factory()
            conn = manager.__enter__()
            local.conn = conn
            with lock:
                opened.append(manager)
        outcome = import_file(conn, item[0], item[1], ctx, force=force)
        if on_file is not None:
            on_file(outcome)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, files))
    finally:
        for manager in opened:
            manager.__exit__(None, None, None)


def import_directory(
    conn: psycopg.Connection[tuple[object, ...]],
    root: Path,
    ctx: ImportContext,
    *,
    force: bool = False,
    on_file: ProgressHook | None = None,
    on_plan: Callable[[int], None] | None = None,
    connection_factory: ConnectionFactory | None = None,
    workers: int = 2,
    derive: bool = True,
) -> ImportSummary:
    """Import every recognised file under root; trades in parallel when a factory is given.

    With derive (the default), new trades are followed by the data derived from them:
    markets inferred from tickers and the trade-built candles.
    """
    known, skipped = plan(root)
    summary = ImportSummary(outcomes=list(skipped))
    for outcome in skipped:
        if outcome.status == "failed":
            record_bad_input(conn, BadInputError(str(outcome.path), outcome.message))
    if on_plan is not None:
        on_plan(len(known))
    trades = [item for item in known if item[1] is FileKind.TRADES]
    for path, kind in known:
        if kind is FileKind.TRADES:
            if trades and connection_factory is not None and workers > 1:
                summary.outcomes.extend(
                    _import_parallel(
                        trades,
                        ctx,
                        force=force,
                        connection_factory=connection_factory,
                        workers=workers,
                        on_file=on_file,
                    )
                )
                trades = []
                continue
            if connection_factory is not None and workers > 1:
                continue  # already imported in parallel above
        outcome = import_file(conn, path, kind, ctx, force=force)
        summary.outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome)
    new_trades = any(o.kind is FileKind.TRADES and o.status == "imported" for o in summary.outcomes)
    if derive and (new_trades or force):
        summary.markets_inferred, summary.inference_errors = infer_missing_markets(conn, ctx)
        started = time.perf_counter()
        with conn.transaction():
            summary.candles_built = build_candles_from_trades(conn)
        summary.candle_seconds = time.perf_counter() - started
    return summary
