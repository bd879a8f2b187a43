"""Fill realism: the fills the ``queue`` model grants maker orders vs what the book allows.

The orders follow a simple maker rule: at every minute boundary τ where the market has a
two-sided quote, join the best bid for one contract on each side — a YES bid at the YES bid
b(τ) and a NO bid at 1 − a(τ) (a = the YES ask) — and cancel it after ``rest_min`` minutes.
`QueueFill` (the backtest's ``queue`` model, its defaults) decides from the stored trade prints
whether and when each order fills.

What the recorded book allows: a maker YES bid at p can fill only if, while it rests, the YES
ask comes down to ≤ p (a seller crosses to it) or the YES bid drops below p (the level at p
was emptied — by trades or cancels; the touch alone cannot say which); for the NO bid, in YES
prices, the YES bid rising to ≥ a(τ) or the YES ask rising above it. A granted order whose
resting window shows neither is *contradicted* by the book. A fill the book allows need not
have happened (a level can empty by cancels), so the contradicted fraction is a lower bound
on how kind the model is, and ``allowed_not_granted`` counts the opposite error.

Two data sets have real books:

* ``chicago-candles`` — KXHIGHCHI, Apr 30 – May 8 2025: real prints (``md.trades``) *and*
  1-minute candles with yes bid/ask OHLC. The book test runs per minute on the candles' lows
  and highs (a minute's low ask ≤ p allows a fill in that minute), over the whole minutes the
  order rested, so it is as kind to the model as minute data can be;
* ``ny-top-of-book`` — KXHIGHNY, Dec 2025 – Jan 2026: every touch change, exact in time, but
  no trades at all. The queue model fills only from prints, so it grants nothing there; the
  check then reports how many orders the book would have allowed (the model's misses).

Fractions carry a 95 % Wilson interval (orders are not independent — they overlap in time and
share markets — so the interval is optimistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.backtest.fills import QueueFill
from kwx.engine.ports import Order, Side
from kwx.engine.sim_venue import SimOrder
from kwx.engine.tape import ArrayTape, to_micro, ts_of
from kwx.features.book import NS_PER_MIN, Quotes, quote_at
from kwx.features.book_data import BookSource, load_market_book, markets_with_book

Conn = psycopg.Connection[tuple[object, ...]]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

REST_MIN: Final = 5
ONE_CONTRACT: Final = 100  # hundredths
DATASETS: Final = ("chicago-candles", "ny-top-of-book")

__all__ = ["DATASETS", "FillCheck", "book_allows_events", "run_fill_check", "wilson"]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of k successes in n trials ((nan, nan) when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class FillCheck:
    """Counts over all orders of a data set (both sides)."""

    dataset: str
    markets: int = 0
    orders: int = 0
    granted: int = 0
    granted_contradicted: int = 0
    allowed: int = 0
    allowed_not_granted: int = 0
    contracts_granted: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        frac = self.granted_contradicted / self.granted if self.granted else None
        lo, hi = wilson(self.granted_contradicted, self.granted)
        miss = self.allowed_not_granted / self.allowed if self.allowed else None
        mlo, mhi = wilson(self.allowed_not_granted, self.allowed)

        def r(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else round(x, 4)

        return {
            "dataset": self.dataset,
            "rule": f"join each side's best bid for 1 contract every minute, rest {REST_MIN} min",
            "fill_model": "queue",
            "markets": self.markets,
            "orders": self.orders,
            "granted_orders": self.granted,
            "granted_contradicted": self.granted_contradicted,
            "fraction_contradicted": r(frac),
            "fraction_contradicted_95": [r(lo), r(hi)],
            "book_allowed_orders": self.allowed,
            "allowed_not_granted": self.allowed_not_granted,
            "fraction_allowed_missed": r(miss),
            "fraction_allowed_missed_95": [r(mlo), r(mhi)],
        }


def _order(ticker: str, side: Side, price: int, placed_ns: int) -> SimOrder:
    at = ts_of(placed_ns)
    order = Order(
        order_id=f"check-{ticker}-{side}-{placed_ns}",
        client_order_id="",
        ticker=ticker,
        event_ticker=ticker.rsplit("-", 1)[0],
        city="",
        side=side,
        action="buy",
        kind="limit",
        price=Decimal(price).scaleb(-6),
        count=Decimal(1),
        filled=Decimal(0),
        status="resting",
        created_at=at,
        updated_at=at,
    )
    return SimOrder(order, side, price, ONE_CONTRACT, placed_ns, placed_ns)


def book_allows_events(
    quotes: Quotes, placed_ns: int, end_ns: int, side: Side, level: float
) -> bool:
    """From exact touch events: whether a maker bid resting in [placed, end) could fill
    (``level`` is the order's price in YES terms: the YES bid it joined, or for a NO bid the
    YES ask it joined)."""
    lo = int(np.searchsorted(quotes.t_ns, placed_ns, side="left"))
    hi = int(np.searchsorted(quotes.t_ns, end_ns, side="left"))
    bid, ask = quotes.bid[lo:hi], quotes.ask[lo:hi]
    eps = 1e-9
    if side == "yes":
        return bool(np.any(ask <= level + eps) or np.any(~(bid >= level - eps)))
    return bool(np.any(bid >= level - eps) or np.any(~(ask <= level + eps)))


def _candle_ranges(conn: Conn, ticker: str) -> tuple[I64, F64]:
    """Minute starts (ns) and [bid_low, bid_high, ask_low, ask_high] of the API candles (an
    empty side as 0 bid / 1 ask, which the tests below read as emptied / crossed correctly)."""
    rows = conn.execute(
        "SELECT (extract(epoch FROM ts) * 1000000)::int8 * 1000, "
        "coalesce(yes_bid_low, 0)::float8, coalesce(yes_bid_high, 0)::float8, "
        "coalesce(yes_ask_low, 1)::float8, coalesce(yes_ask_high, 1)::float8 "
        "FROM md.candles_1m WHERE ticker = %s AND source = 'api' ORDER BY ts",
        (ticker,),
    ).fetchall()
    t = np.array([r[0] for r in rows], dtype=np.int64)
    return t, np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 4)


def book_allows_candles(
    starts: I64, ranges: F64, placed_ns: int, end_ns: int, side: Side, level: float
) -> bool:
    """The same test on 1-minute bid/ask ranges over the minutes in [placed, end)."""
    lo = int(np.searchsorted(starts, placed_ns, side="left"))
    hi = int(np.searchsorted(starts, end_ns, side="left"))
    r = ranges[lo:hi]
    eps = 1e-9
    if side == "yes":
        return bool(np.any(r[:, 2] <= level + eps) or np.any(r[:, 0] < level - eps))
    return bool(np.any(r[:, 1] >= level - eps) or np.any(r[:, 3] > level + eps))


def _trade_tape(conn: Conn, tickers: list[str]) -> ArrayTape:
    rows = conn.execute(
        "SELECT ticker, created_time, count_fp, yes_price, taker_side FROM md.trades "
        "WHERE ticker = ANY(%s) AND taker_side IS NOT NULL ORDER BY ticker, created_time",
        (tickers,),
    ).fetchall()
    return ArrayTape.from_rows(
        (str(r[0]), r[1], r[2], r[3], str(r[4]))  # type: ignore[misc]
        for r in rows
    )


def _markets(conn: Conn, dataset: str) -> list[str]:
    if dataset == "ny-top-of-book":
        return markets_with_book(conn, "top_of_book", "KXHIGHNY")
    if dataset == "chicago-candles":
        rows = conn.execute(
            "SELECT DISTINCT c.ticker FROM md.candles_1m c WHERE c.source = 'api' "
            "AND c.ticker LIKE 'KXHIGHCHI-%%' AND EXISTS "
            "(SELECT 1 FROM md.trades t WHERE t.ticker = c.ticker) ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")


def run_fill_check(conn: Conn, dataset: str, *, rest_min: int = REST_MIN) -> FillCheck:
    """Place the rule's orders on every market of the data set and count (module docstring)."""
    tickers = _markets(conn, dataset)
    conn.commit()
    if not tickers:
        raise ValueError(f"{dataset}: no markets with the data this check needs in the store")
    tape = _trade_tape(conn, tickers)
    model = QueueFill()
    out = FillCheck(dataset, markets=len(tickers))
    for ticker in tickers:
        source: BookSource = "candles" if dataset == "chicago-candles" else "top_of_book"
        book = load_market_book(conn, ticker, source)
        ranges = _candle_ranges(conn, ticker) if source == "candles" else None
        conn.commit()
        grid = book.minute_ends()[:-1]  # placements at minute boundaries (minute ends)
        bid, ask = quote_at(book.quotes, grid)
        for tau, b, a in zip(grid, bid, ask, strict=True):
            if not (np.isfinite(b) and np.isfinite(a)):
                continue
            end = int(tau) + rest_min * NS_PER_MIN
            for side, level in (("yes", float(b)), ("no", float(a))):
                side_: Side = "yes" if side == "yes" else "no"
                bid_price = level if side_ == "yes" else 1.0 - level
                micro = to_micro(Decimal(str(round(bid_price, 6))))
                order = _order(ticker, side_, micro, int(tau))
                model.on_place(order, tape, Decimal(micro).scaleb(-6))
                fills = model.match(order, tape, int(tau), end)
                if ranges is None:
                    allowed = book_allows_events(book.quotes, int(tau), end, side_, level)
                else:
                    allowed = book_allows_candles(ranges[0], ranges[1], int(tau), end, side_, level)
                out.orders += 1
                out.allowed += allowed
                if fills:
                    out.granted += 1
                    out.contracts_granted += sum(q for _, q in fills) / ONE_CONTRACT
                    out.granted_contradicted += not allowed
                elif allowed:
                    out.allowed_not_granted += 1
    return out
