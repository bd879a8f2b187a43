"""Hand-made market states for engine, strategy and risk tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from kwx.engine.ports import (
    AccountView,
    BracketView,
    Demand,
    EventSnapshot,
    Intent,
    MarketStep,
    Order,
    Position,
    RiskState,
)

UTC = dt.UTC
EVENT = "KXHIGHCHI-24DEC01"
DAY = dt.date(2024, 12, 1)
T0 = dt.datetime(2024, 12, 1, 18, 0, tzinfo=UTC)  # noon CST
CLOSE = dt.datetime(2024, 12, 2, 4, 59, tzinfo=UTC)


def D(text: str) -> Decimal:  # noqa: N802 - reads like a literal
    return Decimal(text)


def minute(k: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=k)


def bracket(
    ticker: str,
    bid: str | None,
    ask: str | None,
    *,
    p: float | None = 0.5,
    index: int = 0,
    volume_20m: float = 100.0,
    signal: float | None = 0.5,
    hazard: float | None = 0.1,
) -> BracketView:
    return BracketView(
        ticker=ticker,
        index=index,
        yes_bid=None if bid is None else D(bid),
        yes_ask=None if ask is None else D(ask),
        quote_source="real",
        p=p,
        p_mkt=p,
        p_wx=p,
        p_fused_norm=p,
        hazard_next_5m=hazard,
        hazard_next_60m=hazard,
        signal=signal,
        volume_20m=volume_20m,
        minutes_to_close=None,
        features={"mid": None},
    )


def snapshot(
    ts: dt.datetime,
    brackets: Sequence[BracketView],
    *,
    close: dt.datetime = CLOSE,
    city: str = "chicago",
    event: str = EVENT,
    fee_type: str = "quadratic",
    screened: bool = True,
) -> EventSnapshot:
    return EventSnapshot.of(
        ts=ts,
        event_ticker=event,
        city=city,
        climate_date=DAY,
        series_ticker="KXHIGHCHI",
        fee_type=fee_type,
        close_time=close,
        brackets=brackets,
        screened=screened,
    )


@dataclass
class ListFeed:
    """A feed that yields prepared steps, every one of them (as a live feed would)."""

    steps_: list[MarketStep]

    def steps(self, demand: Demand) -> Iterator[MarketStep]:
        del demand
        yield from self.steps_


@dataclass
class ScriptedStrategy:
    """Returns the intents scripted for each minute; remembers what it saw."""

    script: Mapping[dt.datetime, list[Intent]]
    name: str = "scripted"
    seen: list[AccountView] = field(default_factory=list)

    def on_event(self, snapshot: EventSnapshot, account: AccountView) -> list[Intent]:
        self.seen.append(account)
        return list(self.script.get(snapshot.ts, []))

    def params(self) -> dict[str, object]:
        return {"strategy": self.name}


def state(**overrides: object) -> RiskState:
    base: dict[str, object] = {
        "killed": False,
        "kill_reason": "",
        "no_new_orders": False,
        "time_stop": False,
        "exposure": D("0"),
        "exposure_cap": D("500"),
        "day_pnl_city": D("0"),
        "day_pnl_global": D("0"),
    }
    base.update(overrides)
    return RiskState(**base)  # type: ignore[arg-type]


def account(
    positions: Mapping[str, Position] | None = None,
    resting: Sequence[Order] = (),
    risk: RiskState | None = None,
) -> AccountView:
    return AccountView(dict(positions or {}), list(resting), risk or state())


def position(ticker: str, yes_count: str, cost: str, *, realized: str = "0") -> Position:
    return Position(ticker, EVENT, "chicago", D(yes_count), D(cost), D(realized), D("0"))
