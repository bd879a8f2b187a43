"""`kwx import --from-files DIR`: load every recognised file under DIR into the store.

One transaction per file: a bad file is rolled back whole, reported with its row and field,
kept in meta.bad_input, and the import goes on with the next file. Files already imported
with the same content (by SHA-256) are skipped unless forced, so a re-run is cheap and
resumes where an interrupted one stopped; every write is an upsert, so forcing is safe too.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kwx.domain.tickers import TickerError, parse_market_ticker
from kwx.ingest.candles import build_candles_from_trades
from kwx.ingest.guidance import GUIDANCE_NORMALIZERS
from kwx.ingest.normalize import NORMALIZERS, ImportContext, inferred_markets, market_batches
from kwx.sources.files import BadInputError, FileKind, NotImportableError, detect, is_data_file
from kwx.store import writers
from kwx.store.bad_input import record_bad_input as store_bad_input
from kwx.store.bulk import explain_copy_error
from kwx.store.writers import Batch, ConflictingRowError, DuplicateKeyError

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
    FileKind.GUIDANCE_STATION,
    FileKind.GUIDANCE_PEAK,
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


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under root, following symlinked folders (Python 3.11's Path.rglob does not),
    each real folder once so that a link back up the tree cannot loop forever."""
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            info = Path(folder).stat()
        except OSError:
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / name for name in files if not name.startswith("."))
    yield from sorted(found)


def discover(root: Path) -> Iterator[Path]:
    for path in walk_files(root):
        if path.is_file() and is_data_file(path):
            yield path


def plan(root: Path) -> tuple[list[tuple[Path, FileKind]], list[FileOutcome]]:
    """Which files import as what, in dependency order; the rest are reported as skipped."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    known: list[tuple[Path, FileKind]] = []
    skipped: list[FileOutcome] = []
    for path in walk_files(root):
        if not path.is_file():
            continue  # a dangling symlink or a socket: nothing to read
        if not is_data_file(path):
            skipped.append(
                FileOutcome(path, None, "skipped", message="not a data file kwx imports")
            )
            continue
        try:
            kind = detect(path)
        except BadInputError as exc:
            skipped.append(FileOutcome(path, None, "failed", message=str(exc)))
            continue
        except Exception as exc:  # any file shape must not abort the plan
            skipped.append(FileOutcome(path, None, "failed", message=_unexpected(path, exc)))
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
    writers.GUIDANCE,
)


# Files whose rows the derived data (inferred markets, trade-built candles) depends on.
DERIVED_FROM = frozenset(
    {
        FileKind.TRADES,
        FileKind.MARKETS,
        FileKind.LADDER,
        FileKind.CANDLES_API,
        FileKind.CANDLES_FLAT,
    }
)
_DERIVE_JOB, _DERIVE_UNIT = "import", "derive"


def mark_derive(cur: psycopg.Cursor[tuple[object, ...]], *, pending: bool) -> None:
    """Record in the store whether the derived data is behind the stored data.

    Set in the same transaction as a file that feeds it and cleared in the same transaction
    as the candle build, so whatever kills an import in between (kill -9, a crash) leaves the
    flag set and the next run rebuilds from what is stored, not from what it added itself.
    """
    cur.execute(
        "INSERT INTO meta.backfill_state (job, unit, status) VALUES (%s, %s, %s) "
        "ON CONFLICT (job, unit) DO UPDATE SET status = excluded.status, updated_at = now()",
        (_DERIVE_JOB, _DERIVE_UNIT, "partial" if pending else "done"),
    )


def derive_pending(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute(
        "SELECT status FROM meta.backfill_state WHERE job = %s AND unit = %s",
        (_DERIVE_JOB, _DERIVE_UNIT),
    ).fetchone()
    conn.commit()
    return row is not None and row[0] == "partial"


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
            except ConflictingRowError as exc:
                raise BadInputError(
                    str(path),
                    f"{exc.key} is stored already with other values ({exc.detail})",
                    field="trade_id" if batch.writer is writers.TRADES else None,
                    raw=exc.key,
                ) from exc
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
        if kind in DERIVED_FROM:
            mark_derive(cur, pending=True)
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
        batches = (NORMALIZERS.get(kind) or GUIDANCE_NORMALIZERS[kind])(path, ctx)
        rows_read, stored = _write_batches(conn, path, kind, sha, batches)
    except NotImportableError as exc:
        return FileOutcome(path, kind, "skipped", message=str(exc))
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise  # the store is gone: no later file can be imported either
    except Exception as exc:  # any file shape must fail alone, named
        # BadInputError says where; anything else a normaliser raised on odd input (a
        # RecursionError, an AttributeError on a wrong JSON type, …) is still this file's fault.
        bad = (
            exc
            if isinstance(exc, BadInputError)
            else BadInputError(str(path), _unexpected(path, exc).removeprefix(f"{path}: "))
        )
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        record_bad_input(conn, bad)
        return FileOutcome(path, kind, "failed", message=str(bad))
    return FileOutcome(path, kind, "imported", rows_read, stored, message=_notes(batches))


def _notes(batches: list[Batch]) -> str:
    """What the file's notes say (rows whose blanks were inferred, rows left out), briefly."""
    notes = [b.frame for b in batches if b.writer is writers.BAD_INPUT]
    if not notes:
        return ""
    messages = [str(m) for frame in notes for m in frame["message"]]
    left_out = [m for m in messages if "inferred from the ticker" not in m]
    inferred = len(messages) - len(left_out)
    parts = []
    if inferred:
        parts.append(f"{inferred} row(s) had blank strikes, inferred from their tickers")
    if left_out:
        parts.append(f"{len(left_out)} row(s) left out: {left_out[0]}")
    return "; ".join(parts) + " (see meta.bad_input)"


def _unexpected(path: Path, exc: BaseException) -> str:
    """A one-line complaint for an error no validator anticipated."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{path}: cannot read this file ({type(exc).__name__}{': ' + text if text else ''})"


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
        try:
            event = parse_market_ticker(str(ticker)).event
        except TickerError:
            continue  # stored before tickers were validated; nothing can be inferred for it
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

    With derive (the default), the data derived from trades and markets (markets inferred
    from tickers, the trade-built candles) is rebuilt from the whole store whenever a file
    feeding it was imported since the last complete build, by this run or an interrupted one.
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
    if derive and (force or derive_pending(conn)):
        summary.markets_inferred, summary.inference_errors = infer_missing_markets(conn, ctx)
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            summary.candles_built = build_candles_from_trades(conn)
            mark_derive(cur, pending=False)
        summary.candle_seconds = time.perf_counter() - started
    return summary
