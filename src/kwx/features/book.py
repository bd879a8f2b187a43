"""Order-book features per market-minute: pure numpy over one market-day's events, no I/O.

Input is whatever book data exists for the market (the loader, `kwx.features.book_data`,
turns each store source into these arrays):

* `Quotes` — the touch at each change: best YES bid and ask (dollars; NaN = that side empty)
  and their sizes (NaN where the source has none: top-of-book logs and candles carry no
  sizes; L2 replays do);
* `Trades` — prints with the taker's sign (+1 bought YES, −1 sold YES), when any exist;
* `Cancels` — contracts removed at the touch other than by trades (only L2 deltas tell).

Every feature of the minute ending at τ (the grid holds minute *ends*) uses only events stamped
strictly before τ — the convention the tests pin by changing everything from τ on and checking
the earlier rows do not move. Features (NaN where the data cannot tell; the model-facing fill
with indicators is `fill_book_features`):

* ``ofi_1m``, ``ofi_5m`` — best-level order-flow imbalance (Cont, Kukanov & Stoikov 2014) summed
  over the window: per quote change e = 1{b ≥ b₋}q_b − 1{b ≤ b₋}q_b₋ − 1{a ≤ a₋}q_a + 1{a ≥ a₋}q_a₋.
  Without sizes every q is 1 (a *unit-size* OFI: +1 per bid up-tick or ask up-tick, −1 per bid
  or ask down-tick; unchanged levels cancel); a change to or from an empty side adds 0;
* ``queue_imbalance`` — (q_b − q_a)/(q_b + q_a) at the touch at τ; NaN without sizes;
* ``spread`` at τ, ``d_spread_1m`` / ``d_spread_5m`` — its change over the last 1 / 5 minutes;
* ``quote_changes_1m`` / ``_5m`` — how many times the touch changed (activity);
* ``cancel_1m`` / ``cancel_5m`` — contracts cancelled at the touch; NaN without L2 deltas;
* ``trade_imbalance_5m`` — Σ sign·count / Σ count of prints in the last 5 minutes (0 when no
  print) and ``trades_5m`` — their count of contracts; NaN when the market has no trade data;
* ``hawkes_intensity`` — λ(τ) of the aggressive events (per minute) under a Hawkes model fitted
  by maximum likelihood on the market-day's events *before* the latest hourly checkpoint ≤ τ
  (refitting each hour keeps the fit causal; an hour that added under 10 % more events keeps
  the last fit; NaN until `MIN_EVENTS` events), and
  ``hawkes_excitation`` = log(λ(τ)/μ), how far above its background rate the flow runs.
  Aggressive events are the taker orders behind the prints where trades exist (prints less
  than a second apart merged: `aggressive_orders`); otherwise touch *depletions* —
  a bid down-tick or an ask up-tick, the touch consumed or withdrawn — stand in for them
  (`touch_depletions`); `BookFeatures.aggressive_source` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from kwx.features.hawkes import MIN_EVENTS, HawkesParams, fit_hawkes, intensity_at

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NS_PER_MIN: Final = 60_000_000_000
HAWKES_REFIT_MIN: Final = 60
SWEEP_GAP_NS: Final = 1_000_000_000  # prints closer than this are one aggressive order
REFIT_GROWTH: Final = 1.1  # refit at a checkpoint only once the events grew by 10 % since

RAW_FEATURES: Final = (
    "ofi_1m",
    "ofi_5m",
    "queue_imbalance",
    "spread",
    "d_spread_1m",
    "d_spread_5m",
    "quote_changes_1m",
    "quote_changes_5m",
    "cancel_1m",
    "cancel_5m",
    "trade_imbalance_5m",
    "trades_5m",
    "hawkes_intensity",
    "hawkes_excitation",
)
# The model-facing columns (`fill_book_features`): the raw ones, NaN filled, plus indicators.
BOOK_FEATURES: Final = (
    "ofi_1m",
    "ofi_5m",
    "queue_imbalance",
    "no_depth",
    "d_spread_1m",
    "d_spread_5m",
    "log_quote_changes_1m",
    "log_quote_changes_5m",
    "log_cancel_1m",
    "log_cancel_5m",
    "no_l2",
    "trade_imbalance_5m",
    "log_trades_5m",
    "no_trades",
    "log_hawkes_intensity",
    "hawkes_excitation",
    "no_hawkes",
)

__all__ = [
    "BOOK_FEATURES",
    "RAW_FEATURES",
    "BookFeatures",
    "Cancels",
    "Quotes",
    "Trades",
    "aggressive_orders",
    "book_features",
    "fill_book_features",
    "quote_at",
    "replay_l2",
    "touch_depletions",
    "unit_or_sized_ofi",
]


class BookDataError(ValueError):
    """Book events that cannot be used as given (unsorted, mismatched lengths)."""


def _sorted(name: str, t: I64) -> None:
    if t.size > 1 and bool(np.any(np.diff(t) < 0)):
        raise BookDataError(f"{name}: event times must be non-decreasing")


@dataclass(frozen=True)
class Quotes:
    """The touch after each change, in time order (ns since the epoch, UTC)."""

    t_ns: I64
    bid: F64
    ask: F64
    bid_size: F64
    ask_size: F64

    def __post_init__(self) -> None:
        n = self.t_ns.size
        if not (self.bid.size == self.ask.size == self.bid_size.size == self.ask_size.size == n):
            raise BookDataError("Quotes: columns differ in length")
        _sorted("Quotes", self.t_ns)

    @classmethod
    def unsized(cls, t_ns: npt.ArrayLike, bid: npt.ArrayLike, ask: npt.ArrayLike) -> Quotes:
        """Quotes without sizes (top-of-book logs, candles)."""
        t = np.asarray(t_ns, dtype=np.int64)
        nan = np.full(t.size, np.nan)
        return cls(t, np.asarray(bid, np.float64), np.asarray(ask, np.float64), nan, nan.copy())

    def changes_only(self) -> Quotes:
        """Only the rows where the touch (prices or sizes) differs from the row before: a
        source that repeats an unchanged touch (candles: each minute's open and close) would
        otherwise count as activity."""
        if self.t_ns.size < 2:
            return self
        cols = np.column_stack([self.bid, self.ask, self.bid_size, self.ask_size])
        same = (cols[1:] == cols[:-1]) | (np.isnan(cols[1:]) & np.isnan(cols[:-1]))
        keep = np.r_[True, ~same.all(axis=1)]
        return Quotes(
            self.t_ns[keep],
            self.bid[keep],
            self.ask[keep],
            self.bid_size[keep],
            self.ask_size[keep],
        )

    @property
    def has_sizes(self) -> bool:
        return bool(np.isfinite(self.bid_size).any() or np.isfinite(self.ask_size).any())


@dataclass(frozen=True)
class Trades:
    """Prints in time order: YES price (dollars), contracts, taker sign (+1 bought YES)."""

    t_ns: I64
    price: F64
    count: F64
    sign: F64

    def __post_init__(self) -> None:
        if not (self.price.size == self.count.size == self.sign.size == self.t_ns.size):
            raise BookDataError("Trades: columns differ in length")
        _sorted("Trades", self.t_ns)


@dataclass(frozen=True)
class Cancels:
    """Contracts cancelled at the touch (not traded away), in time order."""

    t_ns: I64
    size: F64

    def __post_init__(self) -> None:
        if self.size.size != self.t_ns.size:
            raise BookDataError("Cancels: columns differ in length")
        _sorted("Cancels", self.t_ns)


@dataclass(frozen=True)
class BookFeatures:
    """`RAW_FEATURES` per grid minute (columns of length len(minute_end_ns)), plus the mid at τ
    (what labels are measured from) and what the Hawkes features were fitted on."""

    minute_end_ns: I64
    columns: dict[str, F64]
    mid: F64
    aggressive_source: Literal["trades", "depletions", "none"]
    hawkes_fits: list[tuple[int, HawkesParams]]


def _last_before(t_ns: I64, at_ns: I64) -> I64:
    """Index of the last event strictly before each ``at`` (−1 when none)."""
    idx: I64 = np.searchsorted(t_ns, at_ns, side="left").astype(np.int64) - 1
    return idx


def quote_at(quotes: Quotes, at_ns: npt.ArrayLike) -> tuple[F64, F64]:
    """(bid, ask) in force just before each instant (NaN before the first quote)."""
    at = np.asarray(at_ns, dtype=np.int64)
    i = _last_before(quotes.t_ns, at)
    ok = i >= 0
    bid = np.full(at.size, np.nan)
    ask = np.full(at.size, np.nan)
    bid[ok] = quotes.bid[i[ok]]
    ask[ok] = quotes.ask[i[ok]]
    return bid, ask


def unit_or_sized_ofi(quotes: Quotes) -> F64:
    """The CKS order-flow contribution of each quote change (0 for the first); sizes where
    known, else 1 (see the module docstring). A change to or from an empty side counts 0."""
    n = quotes.t_ns.size
    e = np.zeros(n)
    if n < 2:
        return e
    b, a = quotes.bid, quotes.ask
    qb = np.where(np.isnan(quotes.bid_size), 1.0, quotes.bid_size)
    qa = np.where(np.isnan(quotes.ask_size), 1.0, quotes.ask_size)
    b0, b1, a0, a1 = b[:-1], b[1:], a[:-1], a[1:]
    with np.errstate(invalid="ignore"):
        bid_part: F64 = (b1 >= b0) * qb[1:] - (b1 <= b0) * qb[:-1]
        ask_part: F64 = (a1 >= a0) * qa[:-1] - (a1 <= a0) * qa[1:]
    bid_part = np.where(np.isnan(b0) | np.isnan(b1), 0.0, bid_part)
    ask_part = np.where(np.isnan(a0) | np.isnan(a1), 0.0, ask_part)
    e[1:] = bid_part + ask_part
    return e


def touch_depletions(quotes: Quotes) -> I64:
    """Times at which the touch was consumed or withdrawn: a bid down-tick or an ask up-tick
    (to an empty side included). The stand-in for aggressive flow when no trades exist."""
    if quotes.t_ns.size < 2:
        return np.zeros(0, np.int64)
    b, a = quotes.bid, quotes.ask
    with np.errstate(invalid="ignore"):
        bid_down = (b[1:] < b[:-1]) | (np.isnan(b[1:]) & ~np.isnan(b[:-1]))
        ask_up = (a[1:] > a[:-1]) | (np.isnan(a[1:]) & ~np.isnan(a[:-1]))
    out: I64 = quotes.t_ns[1:][bid_down | ask_up]
    return out


def aggressive_orders(trades: Trades, gap_ns: int = SWEEP_GAP_NS) -> I64:
    """The times of aggressive orders behind the prints: one taker order that meets several
    resting orders prints several times at (nearly) the same instant, so a print within
    ``gap_ns`` of the one before it is the same order (in the Chicago prints of May 2025, 38 %
    of prints share the previous one's timestamp). Counting each print would make the Hawkes
    fit describe the matching engine's bursts (decay ≈ 1000/min) rather than order arrivals."""
    t = trades.t_ns
    if t.size == 0:
        return t
    out: I64 = t[np.r_[True, np.diff(t) > gap_ns]]
    return out


def _window_sum(cum: F64, t_ns: I64, end_ns: I64, minutes: int) -> F64:
    """Σ of the values whose times lie in [end − minutes, end), from their running sum."""
    hi = np.searchsorted(t_ns, end_ns, side="left")
    lo = np.searchsorted(t_ns, end_ns - minutes * NS_PER_MIN, side="left")
    padded = np.concatenate([[0.0], cum])
    out: F64 = padded[hi] - padded[lo]
    return out


def _hawkes_columns(
    events_ns: I64, minute_end_ns: I64, origin_ns: int, refit_min: int
) -> tuple[F64, F64, list[tuple[int, HawkesParams]]]:
    """λ(τ) and log(λ(τ)/μ) with hourly causal refits (see the module docstring)."""
    n = minute_end_ns.size
    mu = np.full(n, np.nan)
    br = np.full(n, np.nan)
    beta = np.full(n, np.nan)
    fits: list[tuple[int, HawkesParams]] = []
    if n == 0:
        return mu, mu.copy(), fits
    t_min = (events_ns - origin_ns) / NS_PER_MIN
    at_min = (minute_end_ns - origin_ns) / NS_PER_MIN
    step = refit_min * NS_PER_MIN
    checkpoint = origin_ns + step
    last = int(minute_end_ns[-1])
    fitted_on = 0
    while checkpoint <= last:
        k = int(np.searchsorted(events_ns, checkpoint, side="left"))  # events < checkpoint
        if k >= MIN_EVENTS and k >= REFIT_GROWTH * fitted_on:
            horizon = (checkpoint - origin_ns) / NS_PER_MIN
            hint = fits[-1][1].beta if fits else None
            params = fit_hawkes(t_min[:k], horizon, beta_hint=hint)
            fits.append((checkpoint, params))
            fitted_on = k
            use = minute_end_ns >= checkpoint
            mu[use], br[use], beta[use] = params.mu, params.branching, params.beta
        checkpoint += step
    lam = intensity_at(t_min, at_min, mu, br, beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        excitation = np.log(lam / mu)
    return lam, excitation, fits


def book_features(
    minute_end_ns: npt.ArrayLike,
    quotes: Quotes,
    trades: Trades | None = None,
    cancels: Cancels | None = None,
    *,
    origin_ns: int | None = None,
    refit_min: int = HAWKES_REFIT_MIN,
) -> BookFeatures:
    """`RAW_FEATURES` for each minute ending at ``minute_end_ns`` (sorted). ``trades`` None =
    the market has no trade data (not: no trades); ``cancels`` None = no L2 deltas. Hawkes
    checkpoints count from ``origin_ns`` (default: the first grid minute's start)."""
    end = np.asarray(minute_end_ns, dtype=np.int64)
    _sorted("grid", end)
    n = end.size
    cols: dict[str, F64] = {}
    e_cum = np.cumsum(unit_or_sized_ofi(quotes))
    ones_cum = np.cumsum(np.ones(quotes.t_ns.size))
    for m in (1, 5):
        cols[f"ofi_{m}m"] = _window_sum(e_cum, quotes.t_ns, end, m)
        cols[f"quote_changes_{m}m"] = _window_sum(ones_cum, quotes.t_ns, end, m)
    bid, ask = quote_at(quotes, end)
    spread = ask - bid
    cols["spread"] = spread
    for m in (1, 5):
        b0, a0 = quote_at(quotes, end - m * NS_PER_MIN)
        cols[f"d_spread_{m}m"] = spread - (a0 - b0)
    i = _last_before(quotes.t_ns, end)
    qb = np.where(i >= 0, quotes.bid_size[np.maximum(i, 0)], np.nan)
    qa = np.where(i >= 0, quotes.ask_size[np.maximum(i, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        qi = (qb - qa) / (qb + qa)
    cols["queue_imbalance"] = np.where(np.isfinite(qi), qi, np.where(qb + qa == 0, 0.0, np.nan))
    if cancels is None:
        cols["cancel_1m"] = np.full(n, np.nan)
        cols["cancel_5m"] = np.full(n, np.nan)
    else:
        c_cum = np.cumsum(cancels.size)
        for m in (1, 5):
            cols[f"cancel_{m}m"] = _window_sum(c_cum, cancels.t_ns, end, m)
    if trades is None:
        cols["trade_imbalance_5m"] = np.full(n, np.nan)
        cols["trades_5m"] = np.full(n, np.nan)
    else:
        vol = _window_sum(np.cumsum(trades.count), trades.t_ns, end, 5)
        signed = _window_sum(np.cumsum(trades.count * trades.sign), trades.t_ns, end, 5)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["trade_imbalance_5m"] = np.where(vol > 0, signed / vol, 0.0)
        cols["trades_5m"] = vol
    source: Literal["trades", "depletions", "none"]
    if trades is not None and trades.t_ns.size:
        events, source = aggressive_orders(trades), "trades"
    elif quotes.t_ns.size > 1:
        events, source = touch_depletions(quotes), "depletions"
    else:
        events, source = np.zeros(0, np.int64), "none"
    origin = int(end[0] - NS_PER_MIN) if origin_ns is None and n else int(origin_ns or 0)
    events = events[events >= origin]
    lam, excitation, fits = _hawkes_columns(events, end, origin, refit_min)
    cols["hawkes_intensity"] = lam
    cols["hawkes_excitation"] = excitation
    mid = (bid + ask) / 2.0
    return BookFeatures(end, {k: cols[k] for k in RAW_FEATURES}, mid, source, fits)


def _log1p_nonneg(x: F64) -> F64:
    out: F64 = np.log1p(np.maximum(x, 0.0))
    return out


def fill_book_features(raw: dict[str, F64]) -> dict[str, F64]:
    """`BOOK_FEATURES`: NaN → a neutral value plus a 0/1 indicator saying the data was absent
    (no sizes → imbalance 0; no L2 → cancels 0; no trade data → imbalance and volume 0; no
    Hawkes fit yet → log-intensity 0 and excitation 0), counts on a log scale."""

    def z(name: str) -> F64:
        return np.nan_to_num(raw[name], nan=0.0, posinf=0.0, neginf=0.0)

    out: dict[str, F64] = {
        "ofi_1m": z("ofi_1m"),
        "ofi_5m": z("ofi_5m"),
        "queue_imbalance": z("queue_imbalance"),
        "no_depth": np.isnan(raw["queue_imbalance"]).astype(np.float64),
        "d_spread_1m": z("d_spread_1m"),
        "d_spread_5m": z("d_spread_5m"),
        "log_quote_changes_1m": _log1p_nonneg(z("quote_changes_1m")),
        "log_quote_changes_5m": _log1p_nonneg(z("quote_changes_5m")),
        "log_cancel_1m": _log1p_nonneg(z("cancel_1m")),
        "log_cancel_5m": _log1p_nonneg(z("cancel_5m")),
        "no_l2": np.isnan(raw["cancel_1m"]).astype(np.float64),
        "trade_imbalance_5m": z("trade_imbalance_5m"),
        "log_trades_5m": _log1p_nonneg(z("trades_5m")),
        "no_trades": np.isnan(raw["trades_5m"]).astype(np.float64),
        "no_hawkes": np.isnan(raw["hawkes_intensity"]).astype(np.float64),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lam = np.log(raw["hawkes_intensity"])
    out["log_hawkes_intensity"] = np.nan_to_num(log_lam, nan=0.0, posinf=0.0, neginf=0.0)
    out["hawkes_excitation"] = z("hawkes_excitation")
    return {k: out[k] for k in BOOK_FEATURES}


def replay_l2(
    t_ns: npt.ArrayLike,
    is_snapshot: npt.ArrayLike,
    side_no: npt.ArrayLike,
    price_cents: npt.ArrayLike,
    size: npt.ArrayLike,
    trades: Trades | None = None,
) -> tuple[Quotes, Cancels]:
    """Replay L2 snapshots and deltas (in time order; the rows of one snapshot share its time)
    into the sized touch after each change and the contracts cancelled at the touch.

    Kalshi books hold bids only: the YES ask is 1 − the best NO bid, its size that bid's. A
    decrease at a side's best price is a cancel unless a print explains it: prints hit the YES
    bid at the YES price (taker sold YES) or the NO bid at 1 − YES price (taker bought YES), and
    contracts printed at a level before the decrease are netted out of it first."""
    t = np.asarray(t_ns, dtype=np.int64)
    snap = np.asarray(is_snapshot, dtype=bool)
    side = np.asarray(side_no, dtype=np.int64)
    price = np.asarray(price_cents, dtype=np.int64)
    qty = np.asarray(size, dtype=np.float64)
    if not (t.size == snap.size == side.size == price.size == qty.size):
        raise BookDataError("L2 rows: columns differ in length")
    _sorted("L2 rows", t)
    if t.size and (price.min() < 0 or price.max() > 100):
        raise BookDataError("L2 rows: price outside 0–100 cents")
    book = np.zeros((2, 101))
    printed = np.zeros((2, 101))
    tr_t = trades.t_ns if trades is not None else np.zeros(0, np.int64)
    tr_side = np.where(trades.sign > 0, 1, 0) if trades is not None else np.zeros(0, np.int64)
    tr_cents = (
        np.where(trades.sign > 0, 100 - np.rint(trades.price * 100), np.rint(trades.price * 100))
        if trades is not None
        else np.zeros(0)
    ).astype(np.int64)
    tr_count = trades.count if trades is not None else np.zeros(0)
    j = 0
    q_t: list[int] = []
    q_rows: list[tuple[float, float, float, float]] = []
    c_t: list[int] = []
    c_size: list[float] = []
    last_touch: tuple[float, float, float, float] | None = None
    prev_snap_t = -1

    def best(s: int) -> int:
        nz = np.flatnonzero(book[s] > 0)
        return int(nz[-1]) if nz.size else -1

    for k in range(t.size):
        while j < tr_t.size and tr_t[j] <= t[k]:
            printed[tr_side[j], tr_cents[j]] += tr_count[j]
            j += 1
        s, p = int(side[k]), int(price[k])
        if snap[k]:
            if t[k] != prev_snap_t:
                book[:] = 0.0
                printed[:] = 0.0
                prev_snap_t = int(t[k])
            book[s, p] = max(qty[k], 0.0)
        else:
            if qty[k] < 0 and p == best(s):
                removed = -qty[k]
                explained = min(removed, printed[s, p])
                printed[s, p] -= explained
                if removed - explained > 0:
                    c_t.append(int(t[k]))
                    c_size.append(float(removed - explained))
            book[s, p] = max(book[s, p] + qty[k], 0.0)
        if k + 1 < t.size and t[k + 1] == t[k]:
            continue  # the touch is read once all rows of an instant are applied
        by, bn = best(0), best(1)
        touch = (
            by / 100 if by >= 0 else np.nan,
            (100 - bn) / 100 if bn >= 0 else np.nan,
            book[0, by] if by >= 0 else 0.0,
            book[1, bn] if bn >= 0 else 0.0,
        )
        if last_touch is None or any(
            not (x == y or (np.isnan(x) and np.isnan(y)))
            for x, y in zip(touch, last_touch, strict=True)
        ):
            q_t.append(int(t[k]))
            q_rows.append(touch)
            last_touch = touch
    arr = np.asarray(q_rows, dtype=np.float64).reshape(-1, 4)
    quotes = Quotes(np.asarray(q_t, np.int64), arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    return quotes, Cancels(np.asarray(c_t, np.int64), np.asarray(c_size, np.float64))
