"""A corpus of malformed files (tests/ingest/malformed_corpus.py) imported over a store of
good data: the import never crashes, every bad file is refused by name, and the good data
is unchanged to the last byte (checksummed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .import_helpers import (
    MARKETS_HEADER,
    TRADES_HEADER,
    Conn,
    checksums,
    csv_text,
    ladder_rows,
    run,
    trade_line,
)
from .malformed_corpus import CORPUS, write_corpus

TICKER = "KXHIGHCHI-24DEC01-B40.5"


def _good(conn: Conn, root: Path) -> dict[str, tuple[int, str]]:
    good = root / "good"
    good.mkdir()
    day = dt.date(2024, 12, 1)
    rows = ladder_rows(day, 36, 41) + ladder_rows(day, 30, 33, prefix="KXHIGHNY")
    (good / "markets.csv").write_text(csv_text(MARKETS_HEADER, rows))
    (good / "trades.csv").write_text(
        TRADES_HEADER
        + trade_line(1, TICKER, "2024-12-01T15:00:00Z", 40)
        + trade_line(2, TICKER, "2024-12-01T15:00:30Z", 42)
    )
    (good / "chicago.csv").write_text("date_local,tmax_final\n2024-12-01,41\n")
    summary = run(conn, good)
    assert not summary.failed, [o.message for o in summary.failed]
    return checksums(conn)


def test_malformed_corpus_is_refused_file_by_file(conn: Conn, tmp_path: Path) -> None:
    assert len(CORPUS) >= 60
    before = _good(conn, tmp_path)
    paths = write_corpus(tmp_path / "corpus")
    summary = run(conn, tmp_path / "corpus")  # must not raise, whatever the files hold
    by_name = {o.path.name: o for o in summary.outcomes}
    assert set(by_name) == {p.name for p in paths}
    accepted = {n: o.status for n, o in by_name.items() if o.status not in ("failed", "skipped")}
    assert accepted == {}, accepted
    for path in paths:
        got = by_name[path.name]
        if got.status == "failed":
            assert str(path) in got.message, got
    kept = conn.execute("SELECT location FROM meta.bad_input").fetchall()
    conn.commit()
    failed = {o.path for o in summary.outcomes if o.status == "failed"}
    for path in failed:
        assert any(str(r[0]).startswith(str(path)) for r in kept), path
    # Most of the corpus is recognised and refused rather than passed over as unknown.
    assert len(failed) >= len(paths) - 12, sorted(
        n for n, o in by_name.items() if o.status == "skipped"
    )
    assert checksums(conn) == before
    # A re-run refuses them again and still changes nothing.
    again = run(conn, tmp_path / "corpus")
    assert {o.status for o in again.outcomes} <= {"failed", "skipped"}
    assert checksums(conn) == before
