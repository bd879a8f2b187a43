"""Check :mod:`kwx.domain.fees` against real account fills (``GET /portfolio/fills``).

The ground truth is ``kalshi_fills_complete.json`` (fixed-point strings plus legacy cents, with
``is_taker``, ``order_id`` and ``fee_cost`` in dollars); ``fills.csv`` beside it holds the same
fills in legacy integer cents with the fee in (float) cents but no ``is_taker`` or ``order_id``,
so it is only cross-checked row for row as a multiset.

Two rules are measured:

* **per fill** — :func:`kwx.domain.fees.fee` applied to each fill on its own (what the backtest
  charges). This is the headline match rate.
* **per order** — Kalshi's accumulator (:func:`kwx.domain.fees.order_fees`): an order's fills
  together pay ``ceil_cent(Σ centi-cent fees)``, each fill the increase of that running total.
  The fills of one order that share a timestamp come back in no particular order, so a fill is
  "explained" when *some* ordering of its same-timestamp siblings (earlier timestamps first)
  reproduces every fee of the order exactly.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from kwx.domain.fees import (
    MAKER_RATE,
    QUADRATIC_WITH_MAKER_FEES,
    TAKER_RATE,
    fee,
    order_fees,
)
from kwx.domain.prices import parse_count, parse_dollars

__all__ = [
    "FeeCheck",
    "FeeMismatch",
    "FillsFileError",
    "GroupStat",
    "RealFill",
    "check_fills",
    "load_fills_json",
    "series_fee_type",
]

JSON_NAME = "kalshi_fills_complete.json"
CSV_NAME = "fills.csv"


class FillsFileError(ValueError):
    """A fills file that cannot be read; the message names the file, row and field."""


def series_fee_type(series: str) -> str:
    """Return the ``fee_type`` of a series the fills may come from.

    Only KXHIGH* daily-high series are known here: they are ``quadratic`` (reference
    kalshi-api.md §9.3; the 229 maker fills in the real data all paid $0, which agrees). Any
    other series is refused rather than guessed.
    """
    if series.startswith("KXHIGH"):
        return "quadratic"
    raise FillsFileError(f"series {series!r}: fee_type unknown (only KXHIGH* series are known)")


@dataclass(frozen=True)
class RealFill:
    """One real fill, parsed to exact values. ``row`` is its 0-based index in the file."""

    row: int
    fill_id: str
    order_id: str
    ticker: str
    series: str
    ts: datetime
    is_taker: bool
    count: Decimal
    yes_price: Decimal
    fee_cost: Decimal


@dataclass(frozen=True)
class FeeMismatch:
    """A fill whose fee the per-fill formula does not reproduce."""

    row: int
    fill_id: str
    order_id: str
    ticker: str
    is_taker: bool
    count: Decimal
    yes_price: Decimal
    fee_actual: Decimal
    fee_per_fill: Decimal
    order_fills: int
    explained_by_order: bool


@dataclass(frozen=True)
class GroupStat:
    """Fills in a group and how many the per-fill formula matched."""

    n: int
    matched: int
    explained: int

    @property
    def match_rate(self) -> float:
        return self.matched / self.n if self.n else float("nan")


@dataclass(frozen=True)
class FeeCheck:
    """What :func:`check_fills` found. Rates are fractions of ``n`` fills."""

    source: str
    n: int
    matched: int
    explained: int
    orders: int
    orders_total_matched: int
    mismatches: tuple[FeeMismatch, ...]
    by_series: Mapping[str, GroupStat]
    by_role: Mapping[str, GroupStat]
    fee_types: Mapping[str, str]
    csv_rows: int | None = None
    csv_agrees: bool | None = None

    @property
    def match_rate(self) -> float:
        """Share of fills whose fee equals the per-fill formula."""
        return self.matched / self.n if self.n else float("nan")

    @property
    def explained_rate(self) -> float:
        """Share of fills reproduced by the per-order accumulator."""
        return self.explained / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary; money as strings so nothing is lost to floats."""

        def stat(s: GroupStat) -> dict[str, Any]:
            return {
                "n": s.n,
                "matched": s.matched,
                "explained": s.explained,
                "match_rate": round(s.match_rate, 6),
            }

        return {
            "source": self.source,
            "n": self.n,
            "matched": self.matched,
            "match_rate": round(self.match_rate, 6),
            "explained_by_order": self.explained,
            "explained_rate": round(self.explained_rate, 6),
            "orders": self.orders,
            "orders_total_matched": self.orders_total_matched,
            "by_role": {k: stat(v) for k, v in self.by_role.items()},
            "by_series": {k: stat(v) for k, v in self.by_series.items()},
            "fee_types": dict(self.fee_types),
            "csv_rows": self.csv_rows,
            "csv_agrees": self.csv_agrees,
            "mismatches": [
                {
                    "row": m.row,
                    "fill_id": m.fill_id,
                    "order_id": m.order_id,
                    "ticker": m.ticker,
                    "is_taker": m.is_taker,
                    "count": str(m.count),
                    "yes_price": str(m.yes_price),
                    "fee_actual": str(m.fee_actual),
                    "fee_per_fill": str(m.fee_per_fill),
                    "order_fills": m.order_fills,
                    "explained_by_order": m.explained_by_order,
                }
                for m in self.mismatches
            ],
        }


def _field(raw: Mapping[str, Any], names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in raw and raw[name] is not None:
            return raw[name]
    raise FillsFileError(f"{where}: missing field {' or '.join(names)!s}")


def _parse_fill(raw: Any, row: int, source: str) -> RealFill:
    where = f"{source} row {row}"
    if not isinstance(raw, dict):
        raise FillsFileError(f"{where}: expected an object, got {type(raw).__name__}")
    try:
        ticker = str(_field(raw, ("ticker", "market_ticker"), where))
        count = parse_count(_field(raw, ("count_fp", "count"), where), field=f"{where}: count")
        yes_price = parse_dollars(
            _field(raw, ("yes_price_dollars", "yes_price_fixed", "yes_price"), where),
            field=f"{where}: yes_price",
        )
        fee_raw = _field(raw, ("fee_cost",), where)
        if not isinstance(fee_raw, str):
            raise FillsFileError(f"{where}: fee_cost: expected a dollar string, got {fee_raw!r}")
        try:
            fee_cost = Decimal(fee_raw)
        except InvalidOperation as exc:
            raise FillsFileError(f"{where}: fee_cost: not a number: {fee_raw!r}") from exc
        if not fee_cost.is_finite() or fee_cost < 0:
            raise FillsFileError(
                f"{where}: fee_cost: must be a non-negative amount, got {fee_raw!r}"
            )
        is_taker = _field(raw, ("is_taker",), where)
        if not isinstance(is_taker, bool):
            raise FillsFileError(f"{where}: is_taker: expected true/false, got {is_taker!r}")
        created = raw.get("created_time")
        if isinstance(created, str):
            ts = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(UTC)
        else:
            ts = datetime.fromtimestamp(int(_field(raw, ("ts",), where)), tz=UTC)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, FillsFileError):
            raise
        message = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        raise FillsFileError(message) from exc
    return RealFill(
        row=row,
        fill_id=str(raw.get("fill_id") or raw.get("trade_id") or ""),
        order_id=str(_field(raw, ("order_id",), where)),
        ticker=ticker,
        series=ticker.split("-", 1)[0],
        ts=ts,
        is_taker=is_taker,
        count=count,
        yes_price=yes_price,
        fee_cost=fee_cost,
    )


def load_fills_json(path: Path) -> list[RealFill]:
    """Read ``kalshi_fills_complete.json`` (a list, or ``{"fills": [...]}``) into fills."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FillsFileError(f"{path}: cannot read JSON: {exc}") from exc
    if isinstance(payload, dict) and isinstance(payload.get("fills"), list):
        payload = payload["fills"]
    if not isinstance(payload, list):
        raise FillsFileError(f"{path}: expected a list of fills or {{'fills': [...]}}")
    return [_parse_fill(raw, i, path.name) for i, raw in enumerate(payload)]


def _csv_key_rows(path: Path) -> Counter[tuple[str, int, int, Decimal, Decimal]]:
    """The CSV's fills as (ticker, ts, count, yes price, fee) keys; fee float cents → dollars."""
    keys: Counter[tuple[str, int, int, Decimal, Decimal]] = Counter()
    with path.open(newline="") as handle:
        for i, raw in enumerate(csv.DictReader(handle)):
            where = f"{path.name} row {i}"
            try:
                fee_cents = Decimal(str(round(float(raw["fee_cost"]), 6)))
                if fee_cents != fee_cents.to_integral_value():
                    raise ValueError(f"fee_cost {raw['fee_cost']!r} is not whole cents")
                keys[
                    (
                        raw["ticker"],
                        int(raw["ts"]),
                        int(raw["count"]),
                        parse_dollars(int(raw["yes_price"]), field="yes_price"),
                        (fee_cents / 100).quantize(Decimal("0.01")),
                    )
                ] += 1
            except (KeyError, ValueError, TypeError) as exc:
                raise FillsFileError(f"{where}: {exc!s}") from exc
    return keys


def _order_explained(fills: Sequence[RealFill], rate: Decimal) -> bool:
    """Whether some ordering of same-timestamp fills makes the accumulator charge each fee."""
    ordered = sorted(fills, key=lambda f: f.ts)
    n = len(ordered)
    # A fill may be placed only after every fill with an earlier timestamp.
    earlier = [sum(1 << j for j in range(n) if ordered[j].ts < ordered[i].ts) for i in range(n)]
    dead: set[int] = set()

    def search(mask: int, accumulated: list[tuple[Decimal, Decimal]]) -> bool:
        if mask == (1 << n) - 1:
            return True
        if mask in dead:
            return False
        for j in range(n):
            if mask >> j & 1 or earlier[j] & ~mask:
                continue
            trial = [*accumulated, (ordered[j].count, ordered[j].yes_price)]
            if order_fees(trial, rate)[-1] == ordered[j].fee_cost and search(mask | 1 << j, trial):
                return True
        dead.add(mask)
        return False

    return search(0, [])


def check_fills(path: Path, fee_types: Mapping[str, str] | None = None) -> FeeCheck:
    """Compare every fill's ``fee_cost`` with the fee formula; see the module docstring.

    ``path`` is a directory holding ``kalshi_fills_complete.json`` (and optionally
    ``fills.csv``) or the JSON file itself. ``fee_types`` maps series to ``fee_type``; series
    not in it go through :func:`series_fee_type`.
    """
    json_path = path / JSON_NAME if path.is_dir() else path
    if json_path.suffix.lower() == ".csv":
        raise FillsFileError(
            f"{json_path}: fills.csv has no is_taker or order_id; pass {JSON_NAME} or its folder"
        )
    if not json_path.is_file():
        raise FillsFileError(f"{json_path}: no such file")
    fills = load_fills_json(json_path)

    types: dict[str, str] = {}
    for f in fills:
        if f.series not in types:
            given = (fee_types or {}).get(f.series)
            types[f.series] = given if given is not None else series_fee_type(f.series)

    per_fill = {
        f.row: fee(f.count, f.yes_price, is_taker=f.is_taker, fee_type=types[f.series])
        for f in fills
    }

    by_order: dict[tuple[str, bool], list[RealFill]] = defaultdict(list)
    for f in fills:
        by_order[(f.order_id, f.is_taker)].append(f)
    explained_rows: set[int] = set()
    orders_total_matched = 0
    for (_, is_taker), group in by_order.items():
        fee_type = types[group[0].series]
        if is_taker:
            rate = TAKER_RATE
        elif fee_type == QUADRATIC_WITH_MAKER_FEES:
            rate = MAKER_RATE
        else:
            rate = Decimal(0)
        total = order_fees([(g.count, g.yes_price) for g in group], rate)
        if sum(total, Decimal(0)) == sum((g.fee_cost for g in group), Decimal(0)):
            orders_total_matched += 1
        if _order_explained(group, rate):
            explained_rows.update(g.row for g in group)

    sizes = Counter(f.order_id for f in fills)
    mismatches = tuple(
        FeeMismatch(
            row=f.row,
            fill_id=f.fill_id,
            order_id=f.order_id,
            ticker=f.ticker,
            is_taker=f.is_taker,
            count=f.count,
            yes_price=f.yes_price,
            fee_actual=f.fee_cost,
            fee_per_fill=per_fill[f.row],
            order_fills=sizes[f.order_id],
            explained_by_order=f.row in explained_rows,
        )
        for f in fills
        if per_fill[f.row] != f.fee_cost
    )

    def group_stats(key_of: Any) -> dict[str, GroupStat]:
        n: Counter[str] = Counter()
        matched: Counter[str] = Counter()
        explained: Counter[str] = Counter()
        for f in fills:
            key = key_of(f)
            n[key] += 1
            matched[key] += per_fill[f.row] == f.fee_cost
            explained[key] += f.row in explained_rows
        return {k: GroupStat(n[k], matched[k], explained[k]) for k in sorted(n)}

    csv_rows: int | None = None
    csv_agrees: bool | None = None
    csv_path = json_path.parent / CSV_NAME
    if csv_path.is_file():
        csv_keys = _csv_key_rows(csv_path)
        csv_rows = sum(csv_keys.values())
        json_keys = Counter(
            (
                f.ticker,
                int(f.ts.timestamp()),
                int(f.count),
                f.yes_price,
                f.fee_cost.quantize(Decimal("0.01")),
            )
            for f in fills
        )
        csv_agrees = csv_keys == json_keys

    return FeeCheck(
        source=str(json_path),
        n=len(fills),
        matched=sum(per_fill[f.row] == f.fee_cost for f in fills),
        explained=len(explained_rows),
        orders=len(by_order),
        orders_total_matched=orders_total_matched,
        mismatches=mismatches,
        by_series=group_stats(lambda f: f.series),
        by_role=group_stats(lambda f: "taker" if f.is_taker else "maker"),
        fee_types=types,
        csv_rows=csv_rows,
        csv_agrees=csv_agrees,
    )
