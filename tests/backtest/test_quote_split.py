"""The headline's split of P&L by quote source, on the hand-worked ledger of test_metrics."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from kwx.backtest.ledger import fills_frame
from kwx.backtest.metrics import compute_metrics
from kwx.backtest.quote_split import quote_source_split, rebuilt_warning
from kwx.backtest.report import write_report
from tests.backtest.test_metrics import ledger
from tests.backtest.test_report import _parse

D = Decimal


def _sourced(rebuilt: set[str]) -> tuple[list, list]:  # type: ignore[type-arg]
    fills, settlements = ledger()
    tagged = [
        replace(f, quote_source="rebuilt" if f.ticker.rsplit("-", 1)[1] in rebuilt else "real")
        for f in fills
    ]
    return tagged, settlements


def test_split_adds_up_to_the_settled_pnl_and_warns_when_rebuilt_dominates(
    tmp_path: Path,
) -> None:
    fills, settlements = ledger()
    suffixes = {f.ticker.rsplit("-", 1)[1] for f in fills}
    a_b = {f.ticker.rsplit("-", 1)[1] for f in fills[:4]}  # markets A and B: real quotes
    tagged, settlements = _sourced(suffixes - a_b)
    rows = quote_source_split(tagged, settlements)
    by = {r.source: r for r in rows}
    assert [r.source for r in rows] == ["real", "rebuilt"]
    # A 4.03 + B 0.89 on 21 contracts; C −10.35, M 8.93, E 0.30 on 36.
    assert (by["real"].pnl, by["real"].contracts) == (D("4.92"), D("21"))
    assert (by["rebuilt"].pnl, by["rebuilt"].contracts) == (D("-1.12"), D("36"))
    # E was traded back to flat without a result: its round trip counts; F (open) does not.
    metrics = compute_metrics(tagged, settlements)
    assert by["real"].pnl + by["rebuilt"].pnl == metrics.net_pnl
    warning = rebuilt_warning(rows)
    assert warning is not None and "63% of the contracts" in warning
    out = write_report(
        tmp_path / "r.html",
        title="split",
        metrics=metrics,
        fills_frame=fills_frame(tagged),
        settlements=settlements,
        reliability=None,
        notes=[],
        quote_sources=rows,
    )
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    assert {"quote-sources", "quote-warning"} <= page.ids
    assert "real 4 21 $4.92 +23.43 ¢" in text
    assert "REBUILT from trade prints" in text


def test_no_warning_when_real_quotes_carry_most_contracts() -> None:
    fills, settlements = ledger()
    tagged, settlements = _sourced({fills[4].ticker.rsplit("-", 1)[1]})  # only C rebuilt
    rows = quote_source_split(tagged, settlements)
    assert rebuilt_warning(rows) is None
    assert quote_source_split([], settlements) == [] and rebuilt_warning([]) is None
