"""The market data a simulated venue matches against: trade prints, minute bars, L2 depth.

Everything is held as integer arrays so matching is exact and fast: prices in micro-dollars
(``numeric(8,6)`` exactly), counts in hundredths of a contract (``numeric(14,2)`` exactly),
times in nanoseconds since the epoch (UTC). The backtest fills these from the store in bulk;
paper mode appends what the live recorder stores. Fill models read a :class:`MarketTape` and
never anything else, so what they may see is easy to audit: only data stamped at or after the
order's placement (see :mod:`kwx.backtest.fills`).

Kalshi's books hold only bids (a YES ask at P is a NO bid at 1 − P), so depth is keyed by
(side, bid price) and a trade is described by the side whose resting bid it hit: a taker who
bought YES hit a NO bid at the NO price, a taker who bought NO (sold YES) hit a YES bid at the
YES price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "MICRO",
    "ArrayTape",
    "L2Levels",
    "MarketTape",
    "MinuteBars",
    "Prints",
    "from_micro",
    "ns_of",
    "to_micro",
    "ts_of",
]

MICRO: Final = 1_000_000  # price units per dollar
HUNDREDTHS: Final = 100  # count units per contract
NS_PER_MIN: Final = 60_000_000_000

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def to_micro(price: Decimal) -> int:
    """Dollars → integer micro-dollars; refuses a price finer than the store keeps."""
    scaled = price * MICRO
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {price} has more than 6 decimal places")
    return int(scaled)


def from_micro(value: int) -> Decimal:
    return Decimal(int(value)).scaleb(-6).normalize() if value else Decimal(0)


def ns_of(ts: datetime) -> int:
    """A timezone-aware instant as integer nanoseconds since the epoch."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: every time in the engine is UTC-aware")
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def ts_of(ns: int) -> datetime:
    """Integer nanoseconds since the epoch → UTC datetime (microsecond precision)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1_000)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Prints:
    """One market's trade prints in time order (ties keep the store's order)."""

    ts_ns: I64
    yes_price: I64  # micro-dollars
    count: I64  # hundredths
    taker_yes: Bools  # the taker bought YES (so it hit a NO bid at 1 − yes_price)

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        if not (len(self.yes_price) == len(self.count) == len(self.taker_yes) == n):
            raise ValueError("Prints: columns differ in length")
        if n > 1 and bool(np.any(np.diff(self.ts_ns) < 0)):
            raise ValueError("Prints: times must be non-decreasing")

    def __len__(self) -> int:
        return len(self.ts_ns)

    def window(self, start_ns: int, end_ns: int) -> slice:
        """Rows printed in [start, end)."""
        lo = int(np.searchsorted(self.ts_ns, start_ns, side="left"))
        hi = int(np.searchsorted(self.ts_ns, end_ns, side="left"))
        return slice(lo, hi)

    def hit_side_price(self, i: int) -> tuple[str, int]:
        """(book side whose bid was hit, that bid's price in micro-dollars) of row i."""
        if bool(self.taker_yes[i]):
            return "no", MICRO - int(self.yes_price[i])
        return "yes", int(self.yes_price[i])


EMPTY_PRINTS: Final = Prints(
    np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.bool_)
)


@dataclass(frozen=True)
class MinuteBars:
    """One market's 1-minute bars of trade prices (minutes without a trade have no bar)."""

    start_ns: I64
    low: I64  # micro-dollars (YES price)
    high: I64
    close: I64
    volume: I64  # hundredths

    def window(self, start_ns: int, end_ns: int) -> slice:
        """Bars whose minute lies wholly in [start, end): start ≥ start_ns, start + 1m ≤ end."""
        lo = int(np.searchsorted(self.start_ns, start_ns, side="left"))
        hi = int(np.searchsorted(self.start_ns, end_ns - NS_PER_MIN, side="right"))
        return slice(lo, max(lo, hi))


EMPTY_BARS: Final = MinuteBars(*(np.zeros(0, np.int64) for _ in range(5)))


@dataclass
class L2Levels:
    """Full-depth history of one market: snapshots (every level) and deltas, in time order.

    ``depth(side, price, t)`` is the size resting at the level just before ``t`` (events
    stamped < t); ``changes(side, price, start, end)`` are the size changes at that level in
    [start, end), a later snapshot counting as the change it implies.
    """

    snapshot_ns: list[int] = field(default_factory=list)
    snapshots: list[dict[tuple[str, int], int]] = field(default_factory=list)
    delta_ns: list[int] = field(default_factory=list)
    delta_level: list[tuple[str, int]] = field(default_factory=list)
    delta_size: list[int] = field(default_factory=list)

    def depth(self, side: str, price: int, t_ns: int) -> int | None:
        i = int(np.searchsorted(np.asarray(self.snapshot_ns, np.int64), t_ns, side="left")) - 1
        if i < 0:
            return None
        size = self.snapshots[i].get((side, price), 0)
        since = self.snapshot_ns[i]
        level = (side, price)
        for ts, lvl, d in zip(self.delta_ns, self.delta_level, self.delta_size, strict=True):
            if ts >= t_ns:
                break
            if ts > since and lvl == level:
                size += d
        return max(size, 0)

    def changes(self, side: str, price: int, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
        level = (side, price)
        out: list[tuple[int, int]] = [
            (ts, d)
            for ts, lvl, d in zip(self.delta_ns, self.delta_level, self.delta_size, strict=True)
            if start_ns <= ts < end_ns and lvl == level
        ]
        for i, ts in enumerate(self.snapshot_ns):
            if start_ns <= ts < end_ns:
                before = self.depth(side, price, ts)
                now = self.snapshots[i].get(level, 0)
                if before is not None and now != before:
                    out.append((ts, now - before))
        out.sort(key=lambda item: item[0])
        return out


class MarketTape(Protocol):
    """What fill models may read: prints, bars and (where recorded) L2 depth per market."""

    def prints(self, ticker: str) -> Prints: ...

    def bars(self, ticker: str) -> MinuteBars: ...

    def book(self, ticker: str) -> L2Levels | None:
        """The market's L2 history, or None when no depth was recorded for it."""


class ArrayTape:
    """A :class:`MarketTape` held in memory (built by the backtest feed or by tests)."""

    def __init__(
        self,
        prints: Mapping[str, Prints] | None = None,
        bars: Mapping[str, MinuteBars] | None = None,
        books: Mapping[str, L2Levels] | None = None,
    ) -> None:
        self._prints = dict(prints or {})
        self._bars = dict(bars or {})
        self._books = dict(books or {})

    def prints(self, ticker: str) -> Prints:
        return self._prints.get(ticker, EMPTY_PRINTS)

    def bars(self, ticker: str) -> MinuteBars:
        return self._bars.get(ticker, EMPTY_BARS)

    def book(self, ticker: str) -> L2Levels | None:
        return self._books.get(ticker)

    @property
    def tickers_with_depth(self) -> frozenset[str]:
        return frozenset(self._books)

    @classmethod
    def from_rows(
        cls,
        trades: Iterable[tuple[str, datetime, Decimal, Decimal, str | None]],
        *,
        books: Mapping[str, L2Levels] | None = None,
    ) -> ArrayTape:
        """Build prints and minute bars from (ticker, created_time, count, yes_price,
        taker_side) rows — the shape of md.trades; handy for tests and small runs."""
        by_ticker: dict[str, list[tuple[int, int, int, bool]]] = {}
        for ticker, ts, count, yes_price, taker in trades:
            if taker not in ("yes", "no"):
                raise ValueError(f"trade on {ticker} at {ts}: taker_side {taker!r} is not yes/no")
            by_ticker.setdefault(ticker, []).append(
                (ns_of(ts), to_micro(yes_price), int(count * HUNDREDTHS), taker == "yes")
            )
        prints: dict[str, Prints] = {}
        bars: dict[str, MinuteBars] = {}
        for ticker, rows in by_ticker.items():
            rows.sort(key=lambda r: r[0])
            arr = np.array([r[:3] for r in rows], dtype=np.int64).reshape(-1, 3)
            p = Prints(arr[:, 0], arr[:, 1], arr[:, 2], np.array([r[3] for r in rows], bool))
            prints[ticker] = p
            bars[ticker] = bars_from_prints(p)
        return cls(prints, bars, books)


def bars_from_prints(p: Prints) -> MinuteBars:
    """1-minute bars (low, high, close, volume) of a market's prints."""
    if len(p) == 0:
        return EMPTY_BARS
    minute = p.ts_ns - p.ts_ns % NS_PER_MIN
    starts, first = np.unique(minute, return_index=True)
    ends = np.r_[first[1:], len(minute)]
    low = np.minimum.reduceat(p.yes_price, first)
    high = np.maximum.reduceat(p.yes_price, first)
    close = p.yes_price[ends - 1]
    volume = np.add.reduceat(p.count, first)
    return MinuteBars(starts.astype(np.int64), low, high, close, volume)
