"""Backtest metrics from the ledger: P&L after fees, risk, and where the money came from.

Conventions (each chosen so the numbers add up exactly and mean one thing):

* **Positions are netted per ticker in YES terms.** Buying YES at P adds C YES contracts and
  pays C·P; selling YES at P removes C and receives C·P. A NO contract is a short YES: buying
  NO at P (the NO price) is selling C YES at 1 − P, and selling NO at P is buying C YES at
  1 − P. Both give exactly the same P&L as holding the NO contracts (``C·(1{no} − P)``), so a
  YES buy followed by a NO buy on the same ticker nets to flat, as Kalshi nets them.
* **P&L is realised at settlement**: ticker P&L = cash flows − fees + net YES × 1{result=yes},
  booked on the market's climate date. A ticker with no settlement whose position is back to
  flat is booked on the climate date in its ticker; one that is still open is left out of every
  P&L figure and listed in ``open_positions`` (no mark-to-market: we keep it simple and exact).
* **Per-fill P&L** (used by the slices) holds each fill to settlement:
  ``±C·(settle value of the side − P) − fee``. Because P&L is linear in the fills, the fills of
  a ticker sum exactly to the ticker's P&L, so every slice table adds up to the net P&L.
  Flat unsettled tickers use the last traded YES price as the settle value (any value gives
  the same ticker total, since the net position is zero).
* **Daily series** run over every climate date from the first to the last booked one, days
  without P&L counting as zero (a day the strategy stood aside is a real day).
  ``sharpe_daily = mean(daily P&L) / std(daily P&L, ddof=1) · √365`` — daily markets trade
  every day of the year; it is ``None`` with fewer than two days or zero deviation. It is
  computed on dollar P&L (no capital base), which leaves the ratio unchanged by scale.
* **Maximum drawdown** is the largest fall of cumulative daily P&L from its running peak,
  the peak starting at 0 (before the first day), in dollars.
* **Hit rate** is the share of booked positions (tickers) whose P&L after fees is > 0;
  a position that breaks even counts as a miss. ``None`` with no positions.
* **Turnover** is Σ C·P over all fills (dollars of premium traded) plus the contracts traded.
* **Slices**: city; hazard regime of ``hazard_next_60m`` (< 0.2 low, 0.2–0.6 mid, > 0.6 high,
  missing "n/a"); local hour of the fill in the city's civil time zone (DST included, from
  :mod:`kwx.registry`); month of the fill in local time (``YYYY-MM``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from statistics import fmean, stdev
from typing import Final

import pandas as pd

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.domain.tickers import TickerError, parse_market_ticker
from kwx.registry import CityRegistry, default_registry

__all__ = [
    "HAZARD_EDGES",
    "BacktestMetrics",
    "compute_metrics",
    "fill_pnl",
    "hazard_regime",
]

ZERO: Final = Decimal("0.00")
ONE: Final = Decimal(1)
HAZARD_EDGES: Final = (0.2, 0.6)
SLICE_COLUMNS: Final = ("slice", "fills", "contracts", "fees", "pnl")


def hazard_regime(hazard: float | None) -> str:
    """Bucket ``hazard_next_60m``: ``low`` < 0.2 ≤ ``mid`` ≤ 0.6 < ``high``; ``n/a`` if missing."""
    if hazard is None or (isinstance(hazard, float) and math.isnan(hazard)):
        return "n/a"
    if hazard < HAZARD_EDGES[0]:
        return "low"
    if hazard <= HAZARD_EDGES[1]:
        return "mid"
    return "high"


def _yes_terms(f: FillRecord) -> tuple[Decimal, Decimal]:
    """Return (signed YES contracts, YES price) of a fill; NO is short YES at 1 − P."""
    if f.side == "yes":
        return (f.count if f.action == "buy" else -f.count), f.price
    return (-f.count if f.action == "buy" else f.count), ONE - f.price


def fill_pnl(f: FillRecord, yes_value: Decimal) -> Decimal:
    """P&L of one fill held to a YES settle value (1 or 0, or a mark), after its fee."""
    qty, yes_price = _yes_terms(f)
    return qty * (yes_value - yes_price) - f.fee


@dataclass(frozen=True, eq=False)
class BacktestMetrics:
    """Everything the report and ``--json`` show. Money is ``Decimal`` dollars.

    ``gross_pnl − fees == net_pnl`` over booked positions; ``maker_fees + taker_fees`` and the
    fill and contract counts cover every fill, open positions included.
    """

    n_fills: int
    n_positions: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    maker_fills: int
    taker_fills: int
    maker_contracts: Decimal
    taker_contracts: Decimal
    maker_fees: Decimal
    taker_fees: Decimal
    contracts_traded: Decimal
    turnover: Decimal
    wins: int
    hit_rate: float | None
    sharpe_daily: float | None
    max_drawdown: Decimal
    first_date: date | None
    last_date: date | None
    daily: pd.DataFrame
    positions: pd.DataFrame
    by_city: pd.DataFrame
    by_hazard: pd.DataFrame
    by_hour: pd.DataFrame
    by_month: pd.DataFrame
    open_positions: tuple[str, ...] = field(default=())

    @property
    def n_days(self) -> int:
        return len(self.daily)

    @property
    def slices(self) -> dict[str, pd.DataFrame]:
        """The P&L slices by name, in display order."""
        return {
            "city": self.by_city,
            "hazard regime": self.by_hazard,
            "local hour": self.by_hour,
            "month": self.by_month,
        }


@dataclass
class _Position:
    ticker: str
    event_ticker: str
    city: str
    yes_qty: Decimal = ZERO
    cash: Decimal = ZERO  # premium received minus paid, before fees
    fees: Decimal = ZERO
    last_yes_price: Decimal = ZERO
    fills: list[FillRecord] = field(default_factory=list)


@dataclass
class _Slice:
    fills: int = 0
    contracts: Decimal = ZERO
    fees: Decimal = ZERO
    pnl: Decimal = ZERO


@dataclass(frozen=True)
class _Booked:
    ticker: str
    event_ticker: str
    city: str
    climate_date: date
    result: str | None
    settled_at: datetime | None
    net_yes: Decimal
    fills: int
    gross_pnl: Decimal
    fees: Decimal
    pnl: Decimal


def _climate_date_of(ticker: str, fallback: datetime) -> date:
    try:
        return parse_market_ticker(ticker).event.climate_date
    except TickerError:
        return fallback.date()


def _slice_frame(rows: dict[str, _Slice], order: Sequence[str] | None) -> pd.DataFrame:
    keys = list(order) if order is not None else sorted(rows)
    data = [[k, r.fills, r.contracts, r.fees, r.pnl] for k in keys if (r := rows.get(k))]
    frame = pd.DataFrame(data, columns=list(SLICE_COLUMNS))
    for column in ("contracts", "fees", "pnl"):
        frame[column] = frame[column].astype(object)
    frame["fills"] = frame["fills"].astype("int64")
    return frame


def compute_metrics(
    fills: Iterable[FillRecord],
    settlements: Iterable[Settlement],
    *,
    registry: CityRegistry | None = None,
) -> BacktestMetrics:
    """Compute every metric of a run from its fills and the settled results.

    Settlements for tickers never traded are ignored; a ticker settled twice with different
    results is an error (naming the ticker). See the module docstring for every definition.
    """
    registry = registry or default_registry()
    fill_list = sorted(fills, key=lambda f: f.ts)
    results: dict[str, Settlement] = {}
    for s in settlements:
        previous = results.get(s.ticker)
        if previous is not None and previous.result != s.result:
            raise ValueError(
                f"settlement {s.ticker!r}: two results ({previous.result!r}, {s.result!r})"
            )
        results[s.ticker] = s

    positions: dict[str, _Position] = {}
    for f in fill_list:
        pos = positions.setdefault(f.ticker, _Position(f.ticker, f.event_ticker, f.city))
        qty, yes_price = _yes_terms(f)
        pos.yes_qty += qty
        pos.cash -= qty * yes_price
        pos.fees += f.fee
        pos.last_yes_price = yes_price
        pos.fills.append(f)

    # Book each position; remember each fill's settle value for the slices.
    booked: list[_Booked] = []
    fill_values: list[tuple[FillRecord, Decimal]] = []
    open_positions: list[str] = []
    for pos in positions.values():
        settlement = results.get(pos.ticker)
        if settlement is not None:
            yes_value = ONE if settlement.result == "yes" else Decimal(0)
            day = settlement.climate_date
            settled_at: datetime | None = settlement.settled_at
            result: str | None = settlement.result
        elif pos.yes_qty == 0:
            yes_value = pos.last_yes_price
            day = _climate_date_of(pos.ticker, pos.fills[-1].ts)
            settled_at, result = None, None
        else:
            open_positions.append(pos.ticker)
            continue
        gross = pos.cash + pos.yes_qty * yes_value
        booked.append(
            _Booked(
                ticker=pos.ticker,
                event_ticker=pos.event_ticker,
                city=pos.city,
                climate_date=day,
                result=result,
                settled_at=settled_at,
                net_yes=pos.yes_qty,
                fills=len(pos.fills),
                gross_pnl=gross,
                fees=pos.fees,
                pnl=gross - pos.fees,
            )
        )
        fill_values.extend((f, yes_value) for f in pos.fills)

    position_columns = [f.name for f in fields(_Booked)]
    positions_frame = pd.DataFrame(
        [[getattr(b, c) for c in position_columns] for b in booked], columns=position_columns
    )
    if not positions_frame.empty:
        positions_frame = positions_frame.sort_values(["climate_date", "ticker"], ignore_index=True)

    # Daily P&L, equity and drawdown over every climate date in the span.
    by_day: dict[date, Decimal] = defaultdict(lambda: ZERO)
    for b in booked:
        by_day[b.climate_date] += b.pnl
    days: list[date] = []
    if by_day:
        first, last = min(by_day), max(by_day)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    daily_pnl = [by_day.get(d, ZERO) for d in days]
    equity: list[Decimal] = []
    drawdown: list[Decimal] = []
    running, peak = ZERO, ZERO
    for pnl in daily_pnl:
        running += pnl
        peak = max(peak, running)
        equity.append(running)
        drawdown.append(peak - running)
    daily = pd.DataFrame(
        {
            "climate_date": days,
            "pnl": pd.Series(daily_pnl, dtype=object),
            "equity": pd.Series(equity, dtype=object),
            "drawdown": pd.Series(drawdown, dtype=object),
        }
    )
    sharpe: float | None = None
    if len(daily_pnl) >= 2:
        values = [float(p) for p in daily_pnl]
        sd = stdev(values)
        if sd > 0:
            sharpe = fmean(values) / sd * math.sqrt(365)

    # Slices from per-fill P&L held to settlement.
    slices: dict[str, dict[str, _Slice]] = {
        name: {} for name in ("city", "hazard", "hour", "month")
    }
    for f, yes_value in fill_values:
        try:
            local = f.ts.astimezone(registry.by_key(f.city).zone)
        except LookupError as exc:
            raise ValueError(
                f"fill {f.order_id!r} on {f.ticker!r}: city {f.city!r}: {exc}"
            ) from exc
        keys = {
            "city": f.city,
            "hazard": hazard_regime(f.hazard_next_60m),
            "hour": f"{local.hour:02d}",
            "month": f"{local.year:04d}-{local.month:02d}",
        }
        pnl = fill_pnl(f, yes_value)
        for name, key in keys.items():
            acc = slices[name].setdefault(key, _Slice())
            acc.fills += 1
            acc.contracts += f.count
            acc.fees += f.fee
            acc.pnl += pnl

    maker = [f for f in fill_list if not f.is_taker]
    taker = [f for f in fill_list if f.is_taker]
    net = sum((b.pnl for b in booked), ZERO)
    booked_fees = sum((f.fee for f, _ in fill_values), ZERO)
    wins = sum(1 for b in booked if b.pnl > 0)
    return BacktestMetrics(
        n_fills=len(fill_list),
        n_positions=len(booked),
        gross_pnl=net + booked_fees,
        fees=booked_fees,
        net_pnl=net,
        maker_fills=len(maker),
        taker_fills=len(taker),
        maker_contracts=sum((f.count for f in maker), ZERO),
        taker_contracts=sum((f.count for f in taker), ZERO),
        maker_fees=sum((f.fee for f in maker), ZERO),
        taker_fees=sum((f.fee for f in taker), ZERO),
        contracts_traded=sum((f.count for f in fill_list), ZERO),
        turnover=sum((f.count * f.price for f in fill_list), ZERO),
        wins=wins,
        hit_rate=wins / len(booked) if booked else None,
        sharpe_daily=sharpe,
        max_drawdown=max(drawdown, default=ZERO),
        first_date=days[0] if days else None,
        last_date=days[-1] if days else None,
        daily=daily,
        positions=positions_frame,
        by_city=_slice_frame(slices["city"], None),
        by_hazard=_slice_frame(slices["hazard"], ["low", "mid", "high", "n/a"]),
        by_hour=_slice_frame(slices["hour"], None),
        by_month=_slice_frame(slices["month"], None),
        open_positions=tuple(sorted(open_positions)),
    )
