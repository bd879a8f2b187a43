"""The backtest report: one self-contained HTML file, and the metrics as one JSON line.

The HTML is rendered from a Jinja2 template with every chart embedded as a base64 PNG, so the
file can be mailed, archived or opened offline with nothing beside it. Charts are drawn on
``matplotlib.figure.Figure`` objects (no pyplot global state, no display needed).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from kwx.backtest.edge_pnl import EdgeSection
from kwx.backtest.ledger import Settlement
from kwx.backtest.metrics import BacktestMetrics
from kwx.backtest.quote_split import QuoteSourceRow, rebuilt_warning

__all__ = ["DEFINITIONS", "MAX_TRADES", "metrics_dict", "metrics_json", "write_report"]

MAX_TRADES: Final = 500
RELIABILITY_COLUMNS: Final = ("mean_pred", "frac_pos", "count")
TRADE_COLUMNS: Final = (
    "ts",
    "ticker",
    "city",
    "side",
    "action",
    "price",
    "count",
    "fee",
    "is_taker",
    "hazard_next_60m",
    "p_fused_norm",
    "result",
)
DEFINITIONS: Final = (
    "P&L is realised at settlement and booked on the market's climate date; positions are "
    "netted per ticker in YES terms (a NO contract is a short YES at 1 − P).",
    "Daily Sharpe = mean / standard deviation (ddof 1) of daily P&L × √365, over every climate "
    "date in the span (days without trades count as 0).",
    "Maximum drawdown: largest fall of cumulative daily P&L below its running peak (from 0).",
    "Hit rate: share of positions (tickers) with P&L after fees > 0.",
    "Fees: taker ceil(0.07·C·P·(1−P)) to the cent per fill; makers pay 0 in KXHIGH* "
    "(fee_type quadratic). Kalshi rounds per order, so per-fill fees are never lower than real.",
)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("kwx.backtest", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# ---------------------------------------------------------------- JSON


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _slice_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")
    ]


def metrics_dict(metrics: BacktestMetrics) -> dict[str, Any]:
    """The metrics as JSON-ready values: Decimals as strings, dates ISO, NaN as null.

    Money stays a string (``"3.80"``) so a consumer can rebuild the exact ``Decimal``; rates
    and ratios are floats. The per-day series are left out (they are in the HTML report);
    the slices are included.
    """
    return {
        "n_fills": metrics.n_fills,
        "n_positions": metrics.n_positions,
        "n_days": metrics.n_days,
        "first_date": _json_value(metrics.first_date),
        "last_date": _json_value(metrics.last_date),
        "net_pnl": _json_value(metrics.net_pnl),
        "gross_pnl": _json_value(metrics.gross_pnl),
        "fees": _json_value(metrics.fees),
        "sharpe_daily": _json_value(metrics.sharpe_daily),
        "max_drawdown": _json_value(metrics.max_drawdown),
        "hit_rate": _json_value(metrics.hit_rate),
        "wins": metrics.wins,
        "maker_fills": metrics.maker_fills,
        "taker_fills": metrics.taker_fills,
        "maker_contracts": _json_value(metrics.maker_contracts),
        "taker_contracts": _json_value(metrics.taker_contracts),
        "maker_fees": _json_value(metrics.maker_fees),
        "taker_fees": _json_value(metrics.taker_fees),
        "contracts_traded": _json_value(metrics.contracts_traded),
        "turnover": _json_value(metrics.turnover),
        "open_positions": list(metrics.open_positions),
        "by_city": _slice_records(metrics.by_city),
        "by_hazard": _slice_records(metrics.by_hazard),
        "by_hour": _slice_records(metrics.by_hour),
        "by_month": _slice_records(metrics.by_month),
    }


def metrics_json(metrics: BacktestMetrics) -> str:
    """:func:`metrics_dict` as one line of strict JSON (no NaN, no newline)."""
    return json.dumps(metrics_dict(metrics), allow_nan=False, separators=(",", ":"))


# ---------------------------------------------------------------- charts


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _floats(values: pd.Series) -> list[float]:
    return [float(v) for v in values]


def _equity_chart(daily: pd.DataFrame) -> str:
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    days = pd.to_datetime(daily["climate_date"])
    ax.bar(days, _floats(daily["pnl"]), color="#90a4ae", label="daily P&L")
    ax.plot(days, _floats(daily["equity"]), color="#1565c0", lw=1.8, label="cumulative P&L")
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_ylabel("dollars")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def _drawdown_chart(daily: pd.DataFrame) -> str:
    fig = Figure(figsize=(10, 2.6))
    ax = fig.add_subplot()
    days = pd.to_datetime(daily["climate_date"])
    dd = [-v for v in _floats(daily["drawdown"])]
    ax.fill_between(days, dd, 0, color="#c62828", alpha=0.4, step="mid")
    ax.set_ylabel("drawdown ($)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def _slices_chart(slices: dict[str, pd.DataFrame]) -> str:
    fig = Figure(figsize=(11, 6.5))
    for i, (name, frame) in enumerate(slices.items(), start=1):
        ax = fig.add_subplot(2, 2, i)
        pnl = _floats(frame["pnl"])
        ax.bar(
            [str(s) for s in frame["slice"]],
            pnl,
            color=["#2e7d32" if v >= 0 else "#c62828" for v in pnl],
        )
        ax.axhline(0, color="#444", lw=0.6)
        ax.set_title(f"P&L by {name}")
        ax.tick_params(axis="x", labelrotation=45 if len(pnl) > 6 else 0, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _reliability_chart(table: pd.DataFrame) -> str:
    fig = Figure(figsize=(4.8, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#888", lw=0.8, ls="--", label="perfect")
    counts = [float(c) for c in table["count"]]
    biggest = max(counts, default=1.0) or 1.0
    ax.plot(table["mean_pred"], table["frac_pos"], color="#1565c0", lw=1.2)
    ax.scatter(
        table["mean_pred"],
        table["frac_pos"],
        s=[20 + 180 * c / biggest for c in counts],
        color="#1565c0",
        label="p_fused (size ∝ count)",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


# ---------------------------------------------------------------- HTML


def _money(value: Decimal) -> str:
    return f"${value:,.2f}" if value >= 0 else f"−${-value:,.2f}"


def _css(value: Decimal | float | None) -> str:
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"


def _headline(m: BacktestMetrics) -> list[tuple[str, str, str]]:
    def rate(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    return [
        ("Net P&L after fees", _money(m.net_pnl), _css(m.net_pnl)),
        ("Gross P&L", _money(m.gross_pnl), _css(m.gross_pnl)),
        ("Fees", _money(m.fees), ""),
        ("Daily Sharpe (√365)", "n/a" if m.sharpe_daily is None else f"{m.sharpe_daily:.2f}", ""),
        ("Maximum drawdown", _money(m.max_drawdown), ""),
        ("Hit rate (positions)", f"{rate(m.hit_rate)} ({m.wins}/{m.n_positions})", ""),
        ("Fills (maker / taker)", f"{m.n_fills} ({m.maker_fills} / {m.taker_fills})", ""),
        (
            "Contracts (maker / taker)",
            f"{m.contracts_traded:,} ({m.maker_contracts:,} / {m.taker_contracts:,})",
            "",
        ),
        ("Fees maker / taker", f"{_money(m.maker_fees)} / {_money(m.taker_fees)}", ""),
        ("Turnover (premium traded)", _money(m.turnover), ""),
        ("Days", str(m.n_days), ""),
        ("Open positions (not in P&L)", str(len(m.open_positions)), ""),
    ]


@dataclass(frozen=True)
class _SliceRow:
    slice: str
    fills: int
    contracts: str
    fees: str
    pnl: str
    css: str


def _slice_rows(frame: pd.DataFrame) -> list[_SliceRow]:
    return [
        _SliceRow(
            slice=str(r["slice"]),
            fills=int(r["fills"]),
            contracts=f"{r['contracts']:,}",
            fees=_money(r["fees"]),
            pnl=_money(r["pnl"]),
            css=_css(r["pnl"]),
        )
        for _, r in frame.iterrows()
    ]


def _reliability_rows(table: pd.DataFrame | None) -> pd.DataFrame | None:
    if table is None or table.empty:
        return None
    missing = [c for c in RELIABILITY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"reliability table: missing column(s) {missing}; need {RELIABILITY_COLUMNS}"
        )
    return table.loc[:, list(RELIABILITY_COLUMNS)].sort_values("mean_pred", ignore_index=True)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, bool):
        return "taker" if value else "maker"
    return str(value)


def _trades(
    fills_frame: pd.DataFrame, results: dict[str, str], limit: int
) -> tuple[list[list[str]], str]:
    n = len(fills_frame)
    if n == 0:
        return [], "No trades."
    shown = fills_frame.sort_values("ts", kind="stable").head(limit).copy()
    shown["result"] = [results.get(t, "") for t in shown["ticker"]]
    columns = [c for c in TRADE_COLUMNS if c in shown.columns]
    rows = [[_cell(v) for v in row] for row in shown.loc[:, columns].itertuples(index=False)]
    note = (
        f"Showing the first {limit:,} of {n:,} fills (truncated)."
        if n > limit
        else f"All {n:,} fills."
    )
    return rows, note


def _results(settlements: Sequence[Settlement] | pd.DataFrame) -> dict[str, str]:
    if isinstance(settlements, pd.DataFrame):
        if settlements.empty:
            return {}
        return dict(
            zip(settlements["ticker"].astype(str), settlements["result"].astype(str), strict=True)
        )
    return {s.ticker: s.result for s in settlements}


def _quote_source_section(rows: Sequence[QuoteSourceRow]) -> dict[str, Any]:
    """Template fields of the headline's split of P&L by quote source (issue 13)."""
    return {
        "quote_sources": [
            {
                "source": r.source or "unknown",
                "fills": r.fills,
                "contracts": f"{r.contracts:,.0f}",
                "pnl": _money(r.pnl),
                "per": "—" if r.pnl_per_contract is None else f"{100 * r.pnl_per_contract:+.2f} ¢",
                "css": _css(r.pnl),
            }
            for r in rows
        ],
        "quote_warning": rebuilt_warning(rows),
    }


def _edge_rows(edge: EdgeSection | None) -> dict[str, Any] | None:
    """The "P&L by edge cell" section's rows, formatted (None: no section)."""
    if edge is None:
        return None

    def num(v: Any) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.4f}"

    rows = [
        {
            "cell": r["cell"],
            "open": "open" if r["open"] else "shut",
            "gain": f"{num(r['gain'])} [{num(r['gain_lo'])}, {num(r['gain_hi'])}]",
            "n_events": "—"
            if r["n_events"] is None or r["n_events"] != r["n_events"]
            else str(int(r["n_events"])),
            "fills": int(r["fills"]),
            "contracts": r["contracts"],
            "fees": _money(r["fees"]),
            "pnl": _money(r["pnl"]),
            "css": _css(r["pnl"]),
        }
        for r in edge.by_cell.to_dict("records")
    ]
    return {
        "gate": "on" if edge.gate_on else "off",
        "open_cells": ", ".join(edge.open_cells) or "none",
        "block": edge.block,
        "rows": rows,
    }


def write_report(
    path: Path,
    *,
    title: str,
    metrics: BacktestMetrics,
    fills_frame: pd.DataFrame,
    settlements: Sequence[Settlement] | pd.DataFrame,
    reliability: pd.DataFrame | None,
    notes: list[str],
    max_trades: int = MAX_TRADES,
    quote_sources: Sequence[QuoteSourceRow] = (),
    edge: EdgeSection | None = None,
) -> Path:
    """Write the HTML report to ``path`` (parents created) and return the path.

    ``fills_frame`` is :func:`kwx.backtest.ledger.fills_frame` output; ``reliability`` has
    columns ``mean_pred, frac_pos, count`` (one row per probability bin) or is ``None``;
    ``notes`` are shown first, followed by the definitions of the figures. ``quote_sources``
    (:func:`kwx.backtest.quote_split.quote_source_split`) splits the headline P&L by where the
    quotes came from, with a warning when rebuilt quotes dominate.
    """
    has_fills = metrics.n_fills > 0
    has_days = not metrics.daily.empty
    reliability_table = _reliability_rows(reliability)
    charts = {
        "equity": _equity_chart(metrics.daily) if has_days else "",
        "drawdown": _drawdown_chart(metrics.daily) if has_days else "",
        "slices": _slices_chart(metrics.slices) if not metrics.by_city.empty else "",
        "reliability": _reliability_chart(reliability_table)
        if reliability_table is not None
        else "",
    }
    trades, trades_note = _trades(fills_frame, _results(settlements), max_trades)
    span = (
        f"climate dates {metrics.first_date} → {metrics.last_date}"
        if metrics.first_date is not None
        else "no settled positions"
    )
    reliability_rows = (
        [
            {
                "mean_pred": f"{float(r['mean_pred']):.3f}",
                "frac_pos": f"{float(r['frac_pos']):.3f}",
                "count": int(r["count"]),
            }
            for r in reliability_table.to_dict(orient="records")
        ]
        if reliability_table is not None
        else []
    )
    html = _TEMPLATES.get_template("report.html.j2").render(
        title=title,
        span=span,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        has_fills=has_fills,
        headline=_headline(metrics),
        charts=charts,
        slices=[(name, _slice_rows(frame)) for name, frame in metrics.slices.items()],
        reliability=reliability_rows,
        trades=trades,
        trade_columns=[c for c in TRADE_COLUMNS if c in fills_frame.columns or c == "result"],
        trades_note=trades_note,
        open_positions=list(metrics.open_positions),
        notes=[*notes, *DEFINITIONS],
        **_quote_source_section(quote_sources),
        edge=_edge_rows(edge),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
