"""Kalshi trading fees, exact to the cent.

Kalshi charges ``rate · C · P · (1 − P)`` dollars for C contracts at price P (dollars), rounded
*up* to the cent: 0.07 for takers; 0.0175 for makers, but only in series whose ``fee_type`` is
``quadratic_with_maker_fees`` (KXHIGH* series are ``quadratic``: makers pay nothing). The
formula is symmetric in P ↔ 1 − P, so the YES and the NO price of a fill give the same fee.

What the real account fills say (``kwx fees check``, 1,766 KXHIGH* fills, Feb 2026): the
rounding is per *order*, not per fill. Each fill's exact fee is rounded up to a centi-cent
($0.0001), those are accumulated over the order's fills, and each fill is charged the increase
of the accumulated total rounded up to the cent. An order filled in one piece therefore pays
exactly :func:`taker_fee`; an order filled in several pieces pays
``ceil(Σ fills)`` in total, which can be a cent or more less than the sum of per-fill
ceilings. :func:`order_fees` reproduces that; :func:`taker_fee` per fill is the conservative
(never lower) figure the backtest uses when it treats each fill as its own order.

Pure functions, no I/O (``kwx.domain`` depends on nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Final

__all__ = [
    "CENTI_CENT",
    "FEE_TYPES",
    "MAKER_RATE",
    "QUADRATIC",
    "QUADRATIC_WITH_MAKER_FEES",
    "TAKER_RATE",
    "exact_fee",
    "fee",
    "maker_fee",
    "order_fee_total",
    "order_fees",
    "round_up_cent",
    "taker_fee",
]

TAKER_RATE: Final = Decimal("0.07")
MAKER_RATE: Final = Decimal("0.0175")
CENT: Final = Decimal("0.01")
CENTI_CENT: Final = Decimal("0.0001")

QUADRATIC: Final = "quadratic"
QUADRATIC_WITH_MAKER_FEES: Final = "quadratic_with_maker_fees"
# The values of a series' ``fee_type`` (reference/kalshi-api.md §6.1, SDK models/fee_type.py).
FEE_TYPES: Final = frozenset(
    {QUADRATIC, QUADRATIC_WITH_MAKER_FEES, "quadratic_with_combo_maker_fees", "flat"}
)


def _decimal(value: Decimal | int, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{field}: expected Decimal or int, got {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return result


def exact_fee(count: Decimal | int, price: Decimal, rate: Decimal = TAKER_RATE) -> Decimal:
    """Return the unrounded fee ``rate · C · P · (1 − P)`` in dollars.

    Refuses a negative count, a price outside [0, 1] dollars or a negative rate, since each
    would silently turn a fee into a rebate.
    """
    c = _decimal(count, "count")
    p = _decimal(price, "price")
    r = _decimal(rate, "rate")
    if c < 0:
        raise ValueError(f"count: must be >= 0, got {count!r}")
    if not Decimal(0) <= p <= Decimal(1):
        raise ValueError(f"price: {price!r} is outside [0, 1] dollars")
    if r < 0:
        raise ValueError(f"rate: must be >= 0, got {rate!r}")
    return r * c * p * (Decimal(1) - p)


def round_up_cent(amount: Decimal) -> Decimal:
    """Round a non-negative dollar amount up to the next whole cent (``0.0001`` → ``0.01``)."""
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def taker_fee(count: Decimal | int, price: Decimal, rate: Decimal = TAKER_RATE) -> Decimal:
    """Return the taker fee in dollars: ``ceil(rate · C · P · (1 − P))`` to the cent."""
    return round_up_cent(exact_fee(count, price, rate))


# Fee types whose schedules are documented but not verified against fills; refusing them is
# safer than pricing a trade with a made-up fee (reference/kalshi-api.md §9.1 says "verify").
_NOT_MODELLED: Final = frozenset({"quadratic_with_combo_maker_fees", "flat"})


def _check_fee_type(fee_type: str) -> None:
    if fee_type not in FEE_TYPES:
        raise ValueError(
            f"fee_type: unknown value {fee_type!r}; expected one of {sorted(FEE_TYPES)}"
        )
    if fee_type in _NOT_MODELLED:
        raise ValueError(
            f"fee_type: {fee_type!r} is not modelled (only 'quadratic' and "
            "'quadratic_with_maker_fees' are; KXHIGH* series are 'quadratic')"
        )


def maker_fee(
    count: Decimal | int, price: Decimal, fee_type: str, rate: Decimal = MAKER_RATE
) -> Decimal:
    """Return the maker fee in dollars: the taker formula at the maker rate, or 0.

    Only ``quadratic_with_maker_fees`` series charge makers; ``quadratic`` series (all KXHIGH*)
    charge nothing for resting liquidity. An unknown ``fee_type`` is an error, not a free
    trade, and so are the combo and flat schedules, which are not modelled here.
    """
    _check_fee_type(fee_type)
    if fee_type != QUADRATIC_WITH_MAKER_FEES:
        exact_fee(count, price, rate)  # still validate the inputs
        return Decimal("0.00")
    return taker_fee(count, price, rate)


def fee(count: Decimal | int, price: Decimal, *, is_taker: bool, fee_type: str) -> Decimal:
    """Return the fee of one fill (treated as its own order) in dollars."""
    _check_fee_type(fee_type)
    if is_taker:
        return taker_fee(count, price)
    return maker_fee(count, price, fee_type)


def order_fees(
    fills: Iterable[tuple[Decimal | int, Decimal]], rate: Decimal = TAKER_RATE
) -> list[Decimal]:
    """Return the fee Kalshi charges each fill of one order, fills in matching order.

    Each fill's exact fee is rounded up to a centi-cent and accumulated; a fill pays
    ``ceil_cent(accumulated after it) − ceil_cent(accumulated before it)``. The total is
    ``ceil_cent(Σ centi-cent fees)``, never more than the sum of per-fill :func:`taker_fee`.
    Pass the maker rate for maker fills in a ``quadratic_with_maker_fees`` series.
    """
    charged: list[Decimal] = []
    accumulated = Decimal(0)
    billed = Decimal("0.00")
    for count, price in fills:
        accumulated += exact_fee(count, price, rate).quantize(CENTI_CENT, rounding=ROUND_CEILING)
        total = round_up_cent(accumulated)
        charged.append(total - billed)
        billed = total
    return charged


def order_fee_total(
    fills: Sequence[tuple[Decimal | int, Decimal]], rate: Decimal = TAKER_RATE
) -> Decimal:
    """Return what one order pays in all: ``ceil_cent(Σ centi-cent-rounded fill fees)``."""
    return sum(order_fees(fills, rate), Decimal("0.00"))
