"""The HTML report and the one-line metrics JSON."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from kwx.backtest.ledger import fills_frame
from kwx.backtest.metrics import compute_metrics
from kwx.backtest.report import metrics_json, write_report
from tests.backtest.test_metrics import ledger

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr", "area", "base"}


class _Checker(HTMLParser):
    """Checks that every non-void element is closed in order; collects images and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: dict[str, str] = {}
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "img":
            self.images[str(values.get("alt"))] = str(values.get("src"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Checker:
    checker = _Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    assert checker.doctype
    assert not checker.errors, checker.errors
    assert not checker.stack, checker.stack
    return checker


def _png_ok(src: str) -> bool:
    prefix = "data:image/png;base64,"
    return (
        src.startswith(prefix) and base64.b64decode(src[len(prefix) :])[:8] == b"\x89PNG\r\n\x1a\n"
    )


def test_report_has_headline_figures_images_and_trades(tmp_path: Path) -> None:
    fills, settlements = ledger()
    metrics = compute_metrics(fills, settlements)
    reliability = pd.DataFrame(
        {"mean_pred": [0.1, 0.5, 0.9], "frac_pos": [0.12, 0.45, 0.93], "count": [40, 12, 30]}
    )
    out = write_report(
        tmp_path / "sub" / "report.html",
        title="Chicago <test> run",
        metrics=metrics,
        fills_frame=fills_frame(fills),
        settlements=settlements,
        reliability=reliability,
        notes=["offline observations are an ERA5 hourly proxy"],
        max_trades=5,
    )
    assert out == tmp_path / "sub" / "report.html" and out.is_file()
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    html = out.read_text(encoding="utf-8")
    assert "Chicago &lt;test&gt; run" in html  # escaped, not injected
    # Headline figures from the hand-worked ledger.
    assert "Net P&L after fees $3.80" in text
    assert "Maximum drawdown $10.35" in text
    assert "Hit rate (positions) 80.0% (4/5)" in text
    assert "Fills (maker / taker) 9 (3 / 6)" in text
    assert f"Daily Sharpe (√365) {metrics.sharpe_daily:.2f}" in text
    # Slices: Chicago lost 5.13.
    assert "chicago 7 47.00 $0.63 −$5.13" in text
    # Four embedded PNG charts.
    assert set(page.images) == {
        "equity curve",
        "drawdown",
        "P&L by slice",
        "reliability of p_fused",
    }
    assert all(_png_ok(src) for src in page.images.values())
    assert {"headline", "reliability", "trades", "notes"} <= page.ids
    assert "Showing the first 5 of 9 fills (truncated)." in text
    assert html.count("<tr>") >= 5 + 1  # trade rows
    assert "offline observations are an ERA5 hourly proxy" in text
    assert "KXHIGHCHI-24FEB02-B40.5" in text  # the open position is listed


def test_report_with_zero_fills_says_so(tmp_path: Path) -> None:
    metrics = compute_metrics([], [])
    out = write_report(
        tmp_path / "empty.html",
        title="Nothing traded",
        metrics=metrics,
        fills_frame=fills_frame([]),
        settlements=[],
        reliability=None,
        notes=[],
    )
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    assert "no-fills" in page.ids
    assert "No fills: the strategy did not trade in this period" in text
    assert "Net P&L after fees $0.00" in text
    assert "No trades." in text
    assert page.images == {}


def test_reliability_table_needs_its_columns(tmp_path: Path) -> None:
    fills, settlements = ledger()
    with pytest.raises(ValueError, match="frac_pos"):
        write_report(
            tmp_path / "r.html",
            title="t",
            metrics=compute_metrics(fills, settlements),
            fills_frame=fills_frame(fills),
            settlements=settlements,
            reliability=pd.DataFrame({"mean_pred": [0.5], "count": [3]}),
            notes=[],
        )


def test_metrics_json_is_one_exact_line() -> None:
    metrics = compute_metrics(*ledger())
    line = metrics_json(metrics)
    assert "\n" not in line
    figures = json.loads(line)
    assert Decimal(figures["net_pnl"]) == Decimal("3.80")
    assert Decimal(figures["max_drawdown"]) == Decimal("10.35")
    assert figures["hit_rate"] == 0.8
    assert figures["maker_fills"] == 3 and figures["taker_fills"] == 6
    assert figures["first_date"] == "2024-01-10"
    assert sum(Decimal(r["pnl"]) for r in figures["by_hour"]) == Decimal("3.80")
    assert figures["open_positions"] == ["KXHIGHCHI-24FEB02-B40.5"]

    empty = json.loads(metrics_json(compute_metrics([], [])))
    assert empty["sharpe_daily"] is None and empty["hit_rate"] is None
    assert re.fullmatch(r"0(\.0+)?", empty["net_pnl"])
