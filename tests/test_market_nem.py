"""NEM market rules: price cap table, bid validation (one test per rule) and the proto codec."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import EnergyBid, PriceBand, Region
from market_adapters.clearing import clear_energy_bid
from market_adapters.nem import (
    BAND_COUNT,
    MARKET_PRICE_FLOOR_AUD_PER_MWH,
    BidValidationError,
    BidViolation,
    PriceCapUnknownError,
    Rule,
    energy_bid_violations,
    price_cap_aud_per_mwh,
    validate_energy_bid,
)
from market_adapters.nem_codec import (
    UNKNOWN_REGION,
    award_from_proto,
    award_to_proto,
    energy_bid_from_proto,
    energy_bid_to_proto,
    violations_from_proto,
    violations_to_proto,
)

INTERVAL_END = datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ)
MAX_DISCHARGE_MW = 10.0
MAX_CHARGE_MW = 10.0


def bands(prices: list[float], volume: float = 1.0) -> tuple[PriceBand, ...]:
    return tuple(PriceBand(price_aud_per_mwh=p, volume_mw=volume) for p in prices)


# Every charge band below every discharge band (AEMO's bid convexity for a bidirectional unit).
DISCHARGE_PRICES = [50.0, 100.0, 150.0, 200.0, 238.78, 300.0, 500.0, 1000.0, 5000.0, 15500.0]
CHARGE_PRICES = [-1000.0, -500.0, -100.0, -50.0, 0.0, 10.0, 20.0, 30.0, 40.0, 49.99]


def valid_bid(**overrides: object) -> EnergyBid:
    fields: dict[str, object] = {
        "bid_id": "bid-1",
        "portfolio": "sa1-vpp",
        "region": Region.SA1,
        "interval_end": INTERVAL_END,
        "discharge_bands": bands(DISCHARGE_PRICES, 1.0),
        "charge_bands": bands(CHARGE_PRICES, 0.5),
    }
    fields.update(overrides)
    return EnergyBid.model_validate(fields)


def unchecked_bid(**overrides: object) -> EnergyBid:
    """A bid that skipped pydantic, as one decoded carelessly from the wire might."""
    bid = valid_bid()
    return EnergyBid.model_construct(**{**dict(bid), **overrides})


def rules_of(bid: EnergyBid) -> list[BidViolation]:
    return energy_bid_violations(bid, MAX_DISCHARGE_MW, MAX_CHARGE_MW)


# --- price cap ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval_end", "cap"),
    [
        (datetime(2021, 7, 1, 0, 5, tzinfo=NEM_TZ), 15_000.0),
        (datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ), 15_500.0),
        (datetime(2023, 12, 31, 12, 0, tzinfo=NEM_TZ), 16_600.0),
        (datetime(2025, 6, 30, 23, 55, tzinfo=NEM_TZ), 17_500.0),
        (datetime(2026, 7, 1, 0, 0, tzinfo=NEM_TZ), 20_300.0),
    ],
)
def test_price_cap_by_financial_year(interval_end: datetime, cap: float) -> None:
    assert price_cap_aud_per_mwh(interval_end) == cap


def test_price_cap_changes_with_the_first_interval_starting_on_1_july_nem_time() -> None:
    # The interval ending 00:00 on 1 July started on 30 June: it is the old year's last.
    assert price_cap_aud_per_mwh(datetime(2023, 7, 1, 0, 0, tzinfo=NEM_TZ)) == 15_500.0
    assert price_cap_aud_per_mwh(datetime(2023, 7, 1, 0, 5, tzinfo=NEM_TZ)) == 16_600.0
    # 2023-06-30T14:05Z is 00:05 on 1 July in NEM time.
    assert price_cap_aud_per_mwh(datetime.fromisoformat("2023-06-30T14:05:00+00:00")) == 16_600.0


def test_price_cap_outside_the_table_raises() -> None:
    with pytest.raises(PriceCapUnknownError, match="2020-21"):
        price_cap_aud_per_mwh(datetime(2021, 1, 1, 12, 0, tzinfo=NEM_TZ))


def test_price_cap_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        price_cap_aud_per_mwh(datetime(2022, 10, 1, 12, 0))


# --- validation: a valid bid, then one test per rule ----------------------------------------------


def test_valid_bid_passes() -> None:
    bid = valid_bid()
    assert len(bid.discharge_bands) == BAND_COUNT
    assert rules_of(bid) == []
    validate_energy_bid(bid, MAX_DISCHARGE_MW, MAX_CHARGE_MW)  # does not raise


def test_band_count_must_be_exactly_ten_per_side() -> None:
    bid = valid_bid(
        discharge_bands=bands(DISCHARGE_PRICES[:9]),
        charge_bands=bands([*CHARGE_PRICES[:-1], 45.0, 49.99], 0.4),
    )
    violations = rules_of(bid)
    assert [(v.field, v.band, v.rule) for v in violations] == [
        ("discharge_bands", None, Rule.BAND_COUNT),
        ("charge_bands", None, Rule.BAND_COUNT),
    ]


def test_prices_must_be_non_decreasing() -> None:
    prices = list(DISCHARGE_PRICES)
    prices[3] = 50.0  # below band 2's 150
    [violation] = rules_of(valid_bid(discharge_bands=bands(prices)))
    assert (violation.field, violation.band, violation.rule) == (
        "discharge_bands.price_aud_per_mwh",
        3,
        Rule.PRICES_NON_DECREASING,
    )


def test_equal_adjacent_prices_are_refused() -> None:
    """NEM band prices strictly increase (docs/markets.md, "NEM rules the validator enforces")."""
    prices = [0.0] * BAND_COUNT
    violations = rules_of(valid_bid(charge_bands=bands(prices, 0.5)))
    assert [(v.band, v.rule) for v in violations] == [
        (i, Rule.PRICES_STRICTLY_INCREASING) for i in range(1, BAND_COUNT)
    ]


def test_price_below_floor() -> None:
    prices = list(CHARGE_PRICES)
    prices[0] = MARKET_PRICE_FLOOR_AUD_PER_MWH - 0.01
    [violation] = rules_of(valid_bid(charge_bands=bands(prices, 0.5)))
    assert (violation.field, violation.band, violation.rule) == (
        "charge_bands.price_aud_per_mwh",
        0,
        Rule.PRICE_BELOW_FLOOR,
    )


def test_price_above_cap_uses_the_cap_of_the_interval() -> None:
    prices = list(DISCHARGE_PRICES)
    prices[9] = 15_500.01  # FY2022-23 cap is 15,500
    [violation] = rules_of(valid_bid(discharge_bands=bands(prices)))
    assert (violation.band, violation.rule) == (9, Rule.PRICE_ABOVE_CAP)
    assert "15500" in violation.message
    # The same price is fine a year later, under the FY2023-24 cap of 16,600.
    later = INTERVAL_END + timedelta(days=365)
    assert rules_of(valid_bid(discharge_bands=bands(prices), interval_end=later)) == []


def test_price_cap_unknown_for_an_untabled_year() -> None:
    [violation] = rules_of(valid_bid(interval_end=datetime(2030, 1, 1, 12, 0, tzinfo=NEM_TZ)))
    assert (violation.field, violation.rule) == ("interval_end", Rule.PRICE_CAP_UNKNOWN)


def test_negative_volume() -> None:
    discharge = list(valid_bid().discharge_bands)
    discharge[4] = PriceBand.model_construct(price_aud_per_mwh=238.78, volume_mw=-1.0)
    [violation] = rules_of(unchecked_bid(discharge_bands=tuple(discharge)))
    assert (violation.field, violation.band, violation.rule) == (
        "discharge_bands.volume_mw",
        4,
        Rule.NEGATIVE_VOLUME,
    )


def test_not_finite_price_is_caught_although_pydantic_accepts_nan() -> None:
    prices = list(DISCHARGE_PRICES)
    prices[5] = math.nan
    [violation] = rules_of(valid_bid(discharge_bands=bands(prices)))
    assert (violation.band, violation.rule) == (5, Rule.NOT_FINITE)


def test_volume_above_max_discharge() -> None:
    bid = valid_bid(discharge_bands=bands(DISCHARGE_PRICES, 1.01))  # 10.1 MW > 10 MW
    [violation] = rules_of(bid)
    assert (violation.field, violation.band, violation.rule) == (
        "discharge_bands.volume_mw",
        None,
        Rule.VOLUME_ABOVE_MAX_DISCHARGE,
    )


def test_volume_equal_to_max_is_allowed_despite_float_rounding() -> None:
    bid = valid_bid(discharge_bands=bands(DISCHARGE_PRICES, 1.0), charge_bands=bands(CHARGE_PRICES, 0.3))
    assert energy_bid_violations(bid, 10.0, 3.0) == []


def test_volume_above_max_charge() -> None:
    [violation] = energy_bid_violations(valid_bid(), MAX_DISCHARGE_MW, 4.0)  # 5 MW of charge bands
    assert (violation.field, violation.rule) == ("charge_bands.volume_mw", Rule.VOLUME_ABOVE_MAX_CHARGE)


def test_interval_not_on_5_minute_grid() -> None:
    [violation] = rules_of(valid_bid(interval_end=INTERVAL_END + timedelta(minutes=2)))
    assert (violation.field, violation.band, violation.rule) == (
        "interval_end",
        None,
        Rule.INTERVAL_NOT_ON_5_MINUTE_GRID,
    )


def test_timestamp_without_timezone() -> None:
    [violation] = rules_of(unchecked_bid(interval_end=datetime(2022, 10, 1, 18, 0)))
    assert (violation.field, violation.rule) == ("interval_end", Rule.TIMESTAMP_WITHOUT_TIMEZONE)


def test_empty_bid_id_is_required() -> None:
    [violation] = rules_of(valid_bid(bid_id=""))
    assert (violation.field, violation.rule) == ("bid_id", Rule.REQUIRED)


def test_validate_raises_with_every_violation() -> None:
    prices = list(DISCHARGE_PRICES)
    prices[0], prices[9] = -2000.0, 20_000.0
    # Band 0 carries nothing, so the bid stays convex whatever its price.
    discharge = (PriceBand(price_aud_per_mwh=-2000.0, volume_mw=0.0), *bands(prices)[1:])
    bid = valid_bid(discharge_bands=discharge, interval_end=INTERVAL_END + timedelta(minutes=1))
    with pytest.raises(BidValidationError) as info:
        validate_energy_bid(bid, MAX_DISCHARGE_MW, MAX_CHARGE_MW)
    rules = {v.rule for v in info.value.violations}
    assert rules == {Rule.INTERVAL_NOT_ON_5_MINUTE_GRID, Rule.PRICE_BELOW_FLOOR, Rule.PRICE_ABOVE_CAP}
    assert "discharge_bands.price_aud_per_mwh (band 0): price_below_floor" in str(info.value)
    assert info.value.bid_id == "bid-1"


# --- codec ----------------------------------------------------------------------------------------


def test_energy_bid_round_trips_through_proto() -> None:
    bid = valid_bid()
    assert energy_bid_from_proto(energy_bid_to_proto(bid)) == bid


def test_award_round_trips_through_proto() -> None:
    award = clear_energy_bid(valid_bid(), 238.78)
    assert award_from_proto(award_to_proto(award)) == award


def test_violations_round_trip_keeping_absent_band() -> None:
    violations = [BidViolation("a", None, "r1", "m1"), BidViolation("b", 0, "r2", "m2")]
    assert violations_from_proto(violations_to_proto(violations)) == tuple(violations)


Mutation = Callable[[object], None]


@pytest.mark.parametrize(
    ("mutate", "field", "band", "rule"),
    [
        (
            lambda m: setattr(m, "interval_end", "2022-10-01T18:00:00"),
            "interval_end",
            None,
            Rule.TIMESTAMP_WITHOUT_TIMEZONE,
        ),
        (lambda m: setattr(m, "interval_end", "tomorrow"), "interval_end", None, "invalid_timestamp"),
        (lambda m: setattr(m, "region", "XX1"), "region", None, UNKNOWN_REGION),
        (
            lambda m: setattr(m.charge_bands[2], "volume_mw", -0.5),
            "charge_bands.volume_mw",
            2,
            Rule.NEGATIVE_VOLUME,
        ),
        (
            lambda m: setattr(m.discharge_bands[7], "volume_mw", math.nan),
            "discharge_bands.volume_mw",
            7,
            Rule.NOT_FINITE,
        ),
    ],
)
def test_decoding_a_bid_the_domain_type_cannot_hold_names_the_field(
    mutate: Mutation, field: str, band: int | None, rule: str
) -> None:
    msg = energy_bid_to_proto(valid_bid())
    mutate(msg)
    with pytest.raises(BidValidationError) as info:
        energy_bid_from_proto(msg)
    [violation] = info.value.violations
    assert (violation.field, violation.band, violation.rule) == (field, band, rule)
