"""Kalshi daily-high tickers: parsing, series mapping, and brackets inferred from tickers.

Event tickers are ``{PREFIX}-{YY}{MON}{DD}`` where the date is the *climate day* measured;
market tickers add ``-B{midpoint}`` (2 °F between brackets) or ``-T{strike}`` (tails). Older
events carry a legacy ``HIGH<X>`` prefix inside the ``KXHIGH<X>`` series, and at least one
legacy Austin event was written with a double dash (``HIGHAUS--23MAY11-T84``), so both forms
are accepted and kept exactly as written in ``raw``.

Brackets should come from market metadata; ``infer_event_brackets`` exists only for trade prints
whose markets have no metadata, and the tail direction of a ``T`` ticker is not in the ticker,
so it has to be deduced from the other markets of the same event.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from kwx.domain.brackets import Bracket, StrikeType

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EventTicker",
    "MarketTicker",
    "TickerError",
    "format_climate_date",
    "infer_event_brackets",
    "parse_event_ticker",
    "parse_market_ticker",
]


class TickerError(ValueError):
    """A string is not a daily-high event/market ticker, or tickers are inconsistent."""


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_NUMBER = {name: i for i, name in enumerate(_MONTHS, start=1)}

# The prefix is strictly upper-case; the date letters are matched case-insensitively. Matching
# the whole string keeps non-weather series such as KXHIGHINFLATION-24DEC-T3 out.
_EVENT = r"(?P<prefix>(?:KX)?HIGH[A-Z]+)(?P<sep>--?)(?P<date>\d{2}[A-Za-z]{3}\d{2})"
# ASCII only (Python's \d also matches Arabic-Indic and other digits) and matched whole with
# fullmatch, because ``$`` would let a trailing newline through into the store.
_EVENT_RE = re.compile(_EVENT, re.ASCII)
_MARKET_RE = re.compile(rf"(?P<event>{_EVENT})-(?P<kind>[BT])(?P<strike>-?\d+(?:\.\d+)?)", re.ASCII)

_HALF = Decimal("0.5")


def _parse_date(text: str, ticker: str) -> dt.date:
    # Parsed by hand rather than with strptime("%y%b%d"), whose month names follow the locale.
    month = _MONTH_NUMBER.get(text[2:5].upper())
    if month is None:
        raise TickerError(f"bad month {text[2:5]!r} in ticker {ticker!r}")
    try:
        return dt.date(2000 + int(text[:2]), month, int(text[5:7]))
    except ValueError as exc:
        raise TickerError(f"bad date {text!r} in ticker {ticker!r}") from exc


def format_climate_date(day: dt.date) -> str:
    """Write a date the way tickers do (``24AUG20``); only 2000-2099 fit the two-digit year."""
    if not 2000 <= day.year <= 2099:
        raise ValueError(f"ticker dates cover 2000-2099 only, got {day}")
    return f"{day.year % 100:02d}{_MONTHS[day.month - 1]}{day.day:02d}"


@dataclass(frozen=True)
class EventTicker:
    """A parsed event ticker; ``raw`` is kept verbatim because it is the key Kalshi knows."""

    raw: str
    prefix: str
    series: str
    climate_date: dt.date

    @property
    def event_ticker(self) -> str:
        """The ticker exactly as written (no normalisation: it must match Kalshi's records)."""
        return self.raw

    @property
    def canonical(self) -> str:
        """Single-dash, upper-case form, e.g. ``HIGHAUS-23MAY11`` for ``HIGHAUS--23MAY11``.

        Third-party data writes the double-dash Austin event both ways; comparing on this form
        (or on ``(series, climate_date)``) avoids splitting one event in two.
        """
        return f"{self.prefix}-{format_climate_date(self.climate_date)}"


@dataclass(frozen=True)
class MarketTicker:
    """A parsed market ticker: its event plus the ``B``/``T`` letter and the strike number."""

    raw: str
    event: EventTicker
    kind: Literal["B", "T"]
    strike: Decimal

    @property
    def event_ticker(self) -> str:
        """The event part as written in the market ticker (a double dash stays double)."""
        return self.event.raw


def _series_of(prefix: str) -> str:
    return prefix if prefix.startswith("KX") else f"KX{prefix}"


def _event_from_match(match: re.Match[str], raw: str, ticker: str) -> EventTicker:
    prefix = match.group("prefix")
    return EventTicker(
        raw=raw,
        prefix=prefix,
        series=_series_of(prefix),
        climate_date=_parse_date(match.group("date"), ticker),
    )


def parse_event_ticker(s: str) -> EventTicker:
    """Parse ``KXHIGHNY-26AUG12`` / ``HIGHNY-24AUG15``; ``TickerError`` for anything else."""
    match = _EVENT_RE.fullmatch(s) if isinstance(s, str) else None
    if match is None:
        raise TickerError(f"not a daily-high event ticker: {s!r}")
    return _event_from_match(match, s, s)


def parse_market_ticker(s: str) -> MarketTicker:
    """Parse ``KXHIGHCHI-24AUG20-B69.5`` / ``HIGHAUS--23MAY11-T84``; ``TickerError`` otherwise."""
    match = _MARKET_RE.fullmatch(s) if isinstance(s, str) else None
    if match is None:
        raise TickerError(f"not a daily-high market ticker: {s!r}")
    kind: Literal["B", "T"] = "B" if match.group("kind") == "B" else "T"
    return MarketTicker(
        raw=s,
        event=_event_from_match(match, match.group("event"), s),
        kind=kind,
        strike=Decimal(match.group("strike")),
    )


def infer_event_brackets(market_tickers: Sequence[str]) -> dict[str, Bracket]:
    """Deduce each market's bracket from the tickers of one event, keyed by the given ticker.

    ``B{m}`` is between ``m-0.5 .. m+0.5``. A ``T`` ticker may be either tail: with two of them
    the lower strike is the ``less`` tail (cap = strike) and the higher the ``greater`` tail
    (floor = strike); with one, its position relative to the between brackets decides, and if
    that is ambiguous we refuse rather than guess. Works on partial sets (only the markets that
    traded), since a tail's strike always lies outside every between bracket.
    """
    parsed = [parse_market_ticker(t) for t in market_tickers]
    if not parsed:
        return {}
    events = {(m.event.series, m.event.climate_date) for m in parsed}
    if len(events) != 1:
        names = sorted({m.event_ticker for m in parsed})
        raise TickerError(f"tickers belong to more than one event: {names}")

    result: dict[str, Bracket] = {}
    betweens: list[Bracket] = []
    tails: list[MarketTicker] = []
    for m in parsed:
        if m.kind == "B":
            bracket = Bracket.from_strikes(StrikeType.BETWEEN, m.strike - _HALF, m.strike + _HALF)
            result[m.raw] = bracket
            betweens.append(bracket)
        else:
            tails.append(m)

    tail_strikes = sorted({m.strike for m in tails})
    if len(tail_strikes) > 2:
        raise TickerError(f"an event has at most two tail (T) markets: {[m.raw for m in tails]}")
    if len(tail_strikes) == 2:
        low = tail_strikes[0]
        for m in tails:
            result[m.raw] = _tail(StrikeType.LESS if m.strike == low else StrikeType.GREATER, m)
    elif len(tail_strikes) == 1:
        if not betweens:
            raise TickerError(
                f"cannot tell whether {tails[0].raw!r} is a lower or upper tail without the "
                "event's between markets"
            )
        lowest = min(b.floor for b in betweens if b.floor is not None)
        highest = max(b.cap for b in betweens if b.cap is not None)
        (strike,) = tail_strikes
        if strike <= lowest:
            kind = StrikeType.LESS
        elif strike >= highest:
            kind = StrikeType.GREATER
        else:
            raise TickerError(
                f"tail {tails[0].raw!r} lies inside the between brackets ({lowest}..{highest})"
            )
        for m in tails:
            result[m.raw] = _tail(kind, m)
    _check_tails_outside(result, betweens)
    return {m.raw: result[m.raw] for m in parsed}


def _check_tails_outside(result: dict[str, Bracket], betweens: list[Bracket]) -> None:
    """A tail inside the between range means the tickers cannot be one consistent ladder."""
    if not betweens:
        return
    lowest = min(b.floor for b in betweens if b.floor is not None)
    highest = max(b.cap for b in betweens if b.cap is not None)
    for ticker, bracket in result.items():
        if (
            bracket.strike_type is StrikeType.LESS
            and bracket.cap is not None
            and bracket.cap > lowest
        ):
            raise TickerError(f"lower tail {ticker!r} overlaps between brackets from {lowest}")
        if (
            bracket.strike_type is StrikeType.GREATER
            and bracket.floor is not None
            and bracket.floor < highest
        ):
            raise TickerError(f"upper tail {ticker!r} overlaps between brackets up to {highest}")


def _tail(kind: StrikeType, m: MarketTicker) -> Bracket:
    if kind is StrikeType.LESS:
        return Bracket.from_strikes(kind, None, m.strike)
    return Bracket.from_strikes(kind, m.strike, None)
