"""The fee formula against the 1,766 real account fills, and the explanation of the misses."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kwx.backtest.fees_check import FillsFileError, check_fills, load_fills_json
from kwx.cli import app
from kwx.domain.fees import taker_fee
from tests.conftest import DATA, needs_data

FILLS = DATA / "kalshi" / "fills"
pytestmark = needs_data()


def test_real_fills_match_the_formula_and_the_order_accumulator() -> None:
    check = check_fills(FILLS)
    fills = load_fills_json(FILLS / "kalshi_fills_complete.json")
    assert check.n == len(fills) > 1000
    assert check.csv_rows == check.n and check.csv_agrees  # fills.csv is the same fills in cents
    assert set(check.fee_types.values()) == {"quadratic"}

    # Per fill: most fills pay exactly ceil(0.07·C·P·(1−P)); makers pay nothing.
    assert check.match_rate > 0.85
    assert check.by_role["maker"].matched == check.by_role["maker"].n > 0
    # Every miss is a fill of a multi-fill order, and the per-order accumulator (centi-cent
    # fill fees summed, ceiling to the cent per order) reproduces every fee of every order.
    assert check.mismatches
    assert all(m.order_fills > 1 and m.explained_by_order for m in check.mismatches)
    assert check.explained == check.n
    assert check.orders_total_matched == check.orders
    sizes: dict[str, int] = defaultdict(int)
    for f in fills:
        sizes[f.order_id] += 1
    single = [f for f in fills if sizes[f.order_id] == 1]
    assert single and {m.row for m in check.mismatches}.isdisjoint(f.row for f in single)


def test_per_fill_fees_never_undercharge_an_order() -> None:
    """The backtest charges each fill on its own: it must never cost less than Kalshi did."""
    fills = load_fills_json(FILLS / "kalshi_fills_complete.json")
    paid: dict[str, Decimal] = defaultdict(Decimal)
    modelled: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        if f.is_taker:
            paid[f.order_id] += f.fee_cost
            modelled[f.order_id] += taker_fee(f.count, f.yes_price)
    assert paid
    assert all(modelled[o] >= paid[o] for o in paid)
    assert any(modelled[o] > paid[o] for o in paid)


def _copy(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    target = tmp_path / "fills"
    target.mkdir()
    shutil.copy(FILLS / "kalshi_fills_complete.json", target)
    return target, json.loads((target / "kalshi_fills_complete.json").read_text())


def test_a_wrong_fee_is_caught_and_named(tmp_path: Path) -> None:
    target, rows = _copy(tmp_path)
    row = next(i for i, r in enumerate(rows) if r["is_taker"] and r["fee_cost"] != "0.0000")
    rows[row]["fee_cost"] = str(Decimal(str(rows[row]["fee_cost"])) + Decimal("0.01"))
    (target / "kalshi_fills_complete.json").write_text(json.dumps(rows))
    check = check_fills(target)
    assert check.explained < check.n
    assert check.orders_total_matched == check.orders - 1
    bad = [m for m in check.mismatches if m.row == row]
    assert len(bad) == 1 and not bad[0].explained_by_order
    assert check.csv_agrees is None  # no fills.csv copied


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fee_cost", "1.2x", "fee_cost"),
        ("fee_cost", 3, "fee_cost"),
        ("yes_price_fixed", "1.5000", "yes_price"),
        ("is_taker", "yes", "is_taker"),
        ("count_fp", None, "count"),
    ],
)
def test_bad_rows_name_file_row_and_field(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    target, rows = _copy(tmp_path)
    rows[7][field] = value
    if field == "count_fp":
        del rows[7]["count"]
    (target / "kalshi_fills_complete.json").write_text(json.dumps(rows))
    with pytest.raises(FillsFileError, match=rf"kalshi_fills_complete\.json row 7: .*{message}"):
        check_fills(target)


def test_csv_alone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FillsFileError, match="is_taker"):
        check_fills(FILLS / "fills.csv")


def test_cli_prints_one_json_line_and_fails_clearly(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["fees", "check", "--path", str(FILLS), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["n"] == figures["explained_by_order"] > 1000
    assert 0.85 < figures["match_rate"] < 1
    assert figures["by_role"]["maker"]["match_rate"] == 1.0

    missing = runner.invoke(app, ["fees", "check", "--path", str(tmp_path)])
    assert missing.exit_code == 1
    assert "no such file" in missing.output
