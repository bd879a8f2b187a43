"""Exact prices and counts from current dollar strings and legacy cents."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.domain.prices import CENT, parse_count, parse_dollars

D = Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.5600", D("0.56")),
        ("0.56", D("0.56")),
        ("0.123456", D("0.123456")),
        (" 0.01 ", D("0.01")),
        ("1", D(1)),
        ("0", D(0)),
        ("1.0000", D(1)),
        (D("0.4200"), D("0.42")),
        (47, D("0.47")),
        (1, D("0.01")),
        (0, D(0)),
        (100, D(1)),
        (47.0, D("0.47")),
        (99.0, D("0.99")),
    ],
)
def test_parse_dollars(value: object, expected: Decimal) -> None:
    got = parse_dollars(value)
    assert got == expected
    assert isinstance(got, Decimal)


def test_parse_dollars_keeps_string_precision() -> None:
    assert str(parse_dollars("0.5600")) == "0.5600"
    assert str(parse_dollars(47)) == "0.47"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.01", "outside"),
        ("-0.01", "outside"),
        (101, "outside"),
        (-1, "outside"),
        (0.47, "non-integral float"),
        (math.nan, "non-integral float"),
        (math.inf, "non-integral float"),
        (150.0, "outside"),
        ("abc", "not a number"),
        ("", "not a number"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        (D("NaN"), "finite"),
        (True, "expected a price"),
        (None, "expected a dollar string"),
        ([1], "expected a dollar string"),
    ],
)
def test_parse_dollars_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dollars(value)


def test_parse_dollars_error_names_field_and_value() -> None:
    with pytest.raises(ValueError, match=r"yes_bid_dollars: price '1\.5' is outside"):
        parse_dollars("1.5", field="yes_bid_dollars")


@given(st.integers(0, 100))
def test_cents_dollars_agree(c: int) -> None:
    expected = Decimal(c) / 100
    assert parse_dollars(c) == expected
    assert parse_dollars(float(c)) == expected
    assert parse_dollars(f"{c / 100:.4f}") == expected
    assert parse_dollars(c) % CENT == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.00", D("10.00")),
        ("10", D(10)),
        ("1.55", D("1.55")),
        ("0", D(0)),
        ("2.500", D("2.5")),
        (10, D(10)),
        (10.0, D(10)),
        (D("3.10"), D("3.1")),
    ],
)
def test_parse_count(value: object, expected: Decimal) -> None:
    assert parse_count(value) == expected


def test_parse_count_keeps_string_form() -> None:
    assert str(parse_count("10.00")) == "10.00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.555", "multiple of 0.01"),
        ("-1", "negative"),
        (-1, "negative"),
        (1.5, "non-integral float"),
        ("x", "not a number"),
        ("NaN", "finite"),
        ("1e40", "implausibly large"),
        (False, "expected a count"),
        (None, "expected a count string"),
    ],
)
def test_parse_count_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_count(value, field="count_fp")


@given(st.integers(0, 10**9))
def test_count_hundredths_round_trip(hundredths: int) -> None:
    text = f"{hundredths // 100}.{hundredths % 100:02d}"
    assert parse_count(text) == Decimal(hundredths) / 100
    assert parse_count(text) * 100 == hundredths
