"""An import killed with SIGKILL at any point, then re-run, ends with exactly the counts of a
clean import (issue 15: after a kill past the trades phase, candles and inferred markets were
never built and re-runs said "unchanged").

The import runs in a real subprocess that kills itself with SIGKILL at a chosen point: after
N files, after the markets inferred from tickers were committed, or inside the candle build's
transaction. Nothing is mocked: the kill is real, and so is the store it leaves behind."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kwx.config import Settings
from kwx.store.engine import connect

from .import_helpers import (
    DATA_TABLES,
    MARKETS_HEADER,
    TRADES_HEADER,
    Conn,
    csv_text,
    ladder_rows,
    run,
    trade_line,
)

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kwx.config import get_settings
    from kwx.ingest import file_import
    from kwx.ingest.normalize import ImportContext
    from kwx.registry import default_registry
    from kwx.store.engine import connect

    point, root = sys.argv[1], Path(sys.argv[2])
    done = 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def on_file(outcome: object) -> None:
        global done
        done += 1
        if point == f"after_{done}_files":
            die()

    if point == "after_inference":
        infer = file_import.infer_missing_markets
        def killing_infer(*a, **k):
            infer(*a, **k)
            die()
        file_import.infer_missing_markets = killing_infer
    if point == "inside_candle_build":
        build = file_import.build_candles_from_trades
        def killing_build(*a, **k):
            build(*a, **k)
            die()  # the build ran but its transaction never commits
        file_import.build_candles_from_trades = killing_build

    with connect(get_settings()) as conn:
        file_import.import_directory(
            conn, root, ImportContext(default_registry()), on_file=on_file
        )
    """
)

POINTS = (
    "after_1_files",
    "after_3_files",
    "after_6_files",
    "after_inference",
    "inside_candle_build",
)


def _data(root: Path) -> Path:
    """Two metadata files and four trade files, some trades on tickers without metadata."""
    root.mkdir()
    days = [dt.date(2024, 12, 1) + dt.timedelta(days=k) for k in range(4)]
    meta = [r for d in days[:2] for r in ladder_rows(d, 36, 40)]
    (root / "markets_a.csv").write_text(csv_text(MARKETS_HEADER, meta[:6]))
    (root / "markets_b.csv").write_text(csv_text(MARKETS_HEADER, meta[6:]))
    n = 0
    for k, day in enumerate(days):
        lines = []
        event = f"KXHIGHCHI-{day:%y}{day.strftime('%b').upper()}{day:%d}"
        for minute in range(30):
            for ticker in (f"{event}-T36", f"{event}-B38.5", f"{event}-T43"):
                n += 1
                when = f"{day}T15:{minute:02d}:{n % 50:02d}Z"
                lines.append(trade_line(n, ticker, when, 20 + (n % 60)))
        (root / f"trades_{k}.csv").write_text(TRADES_HEADER + "".join(lines))
    return root


def _counts(conn: Conn) -> dict[str, int]:
    out = {}
    for table in DATA_TABLES:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        out[table] = int(str(row[0]))
    conn.commit()
    return out


def _kill_at(settings: Settings, root: Path, point: str, tmp_path: Path) -> int:
    script = tmp_path / "killable_import.py"
    script.write_text(SCRIPT)
    assert settings.kwx_database_url is not None
    env = {
        **os.environ,
        "KWX_DATABASE_URL": settings.kwx_database_url.get_secret_value(),
        "KWX_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, str(script), point, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode


@pytest.fixture
def clean_counts(settings: Settings, tmp_path: Path) -> dict[str, int]:
    root = _data(tmp_path / "clean_data")
    with connect(settings) as conn:
        summary = run(conn, root)
        assert not summary.failed
        counts = _counts(conn)
        conn.execute(
            "TRUNCATE kalshi.series, kalshi.events, kalshi.markets, md.trades, "
            "md.candles_1m, meta.import_log, meta.backfill_state CASCADE"
        )
        conn.commit()
    assert counts["md.candles_1m"] > 0 and counts["kalshi.markets"] == 18
    return counts


@pytest.mark.parametrize("point", POINTS)
def test_killed_import_rerun_ends_like_a_clean_one(
    settings: Settings, tmp_path: Path, point: str, clean_counts: dict[str, int]
) -> None:
    root = _data(tmp_path / "data")
    code = _kill_at(settings, root, point, tmp_path)
    assert code == -signal.SIGKILL, f"the import was not killed at {point} (exit {code})"
    with connect(settings) as conn:
        interrupted = _counts(conn)
        assert interrupted != clean_counts, f"killed at {point}, yet nothing was missing"
        summary = run(conn, root)
        assert not summary.failed
        assert _counts(conn) == clean_counts, point
        # And a further run changes nothing and builds nothing.
        again = run(conn, root)
        assert again.candles_built == 0
        assert _counts(conn) == clean_counts
