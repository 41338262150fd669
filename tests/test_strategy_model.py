"""Strategy files: the shipped examples validate, every broken rule names field, value and rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from autobidder.domain import Region
from autobidder.strategy.model import (
    Strategy,
    StrategyError,
    diff_strategies,
    parse_strategy,
    read_strategy_file,
)
from optimization.strategy_settings import value_curve_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "strategies" / "sa1-vpp.toml"

MINIMAL = """
portfolio = "sa1-vpp"
[market]
name = "NEM"
region = "SA1"
[fleet]
node = "nem.sa1.vpp"
[forecaster]
model = "seasonal_naive@1"
[safety]
max_mw_per_bid = 10.0
max_price_change_aud_per_mwh = 500.0
submit_enabled = true
"""


def issues(text: str) -> dict[str, tuple[object, str]]:
    with pytest.raises(StrategyError) as caught:
        parse_strategy(text, "test.toml")
    return {i.field: (i.value, i.rule) for i in caught.value.issues}


@pytest.mark.parametrize("path", sorted((ROOT / "strategies").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_strategy_is_valid(path: Path) -> None:
    doc = read_strategy_file(path)
    assert doc.strategy.portfolio == "sa1-vpp" and doc.source_text.startswith("#")


def test_example_reads_as_written() -> None:
    s = read_strategy_file(EXAMPLE).strategy
    assert s.region is Region.SA1 and s.market.products == ("energy",)
    assert (s.forecaster.name, s.forecaster.version) == ("analog_ensemble", "2")
    assert s.forecaster.horizon_hours == 24
    assert s.forecaster.history_days == 43 and s.bidding.method == "value_curve"
    assert s.bidding.cycle_shadow_price_aud_per_mwh == 20.0
    assert (s.bidding.spike_run_intervals, s.bidding.spike_threshold_aud_per_mwh) == (16.0, 300.0)
    assert s.bidding.price_atoms == 10  # one atom per analog day
    assert s.operation.daily_cycle_limit == 2.0 and s.operation.backup_reserve_fraction == 0.1
    assert s.safety.submit_enabled is True


def test_lp_lambda_example_reads_as_written() -> None:
    s = read_strategy_file(EXAMPLE.with_name("sa1-vpp-lp-lambda.toml")).strategy
    assert (s.forecaster.name, s.forecaster.version) == ("spike_mlp", "sa1-2022")
    assert s.forecaster.horizon_hours == 24
    assert s.bidding.method == "lp_lambda" and s.forecaster.history_days is None
    assert s.risk.quantile == 0.5 and s.risk.measure == "quantile"
    assert s.operation.daily_cycle_limit == 2.0 and s.operation.backup_reserve_fraction == 0.1
    assert s.bidding.headroom_fraction == 1.0 and s.safety.submit_enabled is True


def test_the_shipped_files_share_costs_limits_and_fleet() -> None:
    """bench/trading.py scores both methods from the LP-λ file: the comparison is fair only while
    the default file trades the same battery under the same costs and limits."""
    default = read_strategy_file(EXAMPLE).strategy
    lp_lambda = read_strategy_file(EXAMPLE.with_name("sa1-vpp-lp-lambda.toml")).strategy
    for section in ("market", "fleet", "operation", "safety"):
        assert getattr(default, section) == getattr(lp_lambda, section), section


def test_history_days_sets_the_cycles_lookback() -> None:
    s = parse_strategy(
        MINIMAL.replace('model = "seasonal_naive@1"', 'model = "analog_ensemble@1"\nhistory_days = 43')
    )
    assert s.forecaster.history_days == 43
    assert s.forecaster.lookback_intervals(2016, 5) == 43 * 288
    assert parse_strategy(MINIMAL).forecaster.lookback_intervals(2016, 5) == 2016  # unset: the cycle's
    short = parse_strategy(
        MINIMAL.replace('model = "seasonal_naive@1"', 'model = "seasonal_naive@1"\nhistory_days = 3')
    )
    assert short.forecaster.lookback_intervals(2016, 5) == 2016  # never fewer than the cycle's
    for bad in ("0", "366", '"43"'):
        found = issues(
            MINIMAL.replace('model = "seasonal_naive@1"', f'model = "seasonal_naive@1"\nhistory_days = {bad}')
        )
        assert list(found) == ["forecaster.history_days"]


def test_minimal_file_gets_documented_defaults() -> None:
    s = parse_strategy(MINIMAL)
    assert s.risk.quantile == 0.5 and s.risk.cvar_level is None
    assert s.operation.degradation_cost_aud_per_mwh == 0.0 and s.operation.daily_cycle_limit is None
    assert s.bidding.band_policy == "ladder" and s.bidding.ladder_headroom_fraction == 1.0
    assert s.forecaster.horizon_hours == 24


def test_every_broken_rule_is_reported_with_field_value_and_rule() -> None:
    bad = (
        MINIMAL.replace('portfolio = "sa1-vpp"', 'portfolio = "SA1 VPP"')
        .replace('region = "SA1"', 'region = "SA9"\nproducts = ["energy", "raise_regg"]')
        .replace('node = "nem.sa1.vpp"', 'node = "nem..sa1"')
        .replace('model = "seasonal_naive@1"', 'model = "seasonal_naive"\nhorizon_hours = 0')
        .replace("max_mw_per_bid = 10.0", "max_mw_per_bid = -1\nmax_mw = 5")
        .replace("max_price_change_aud_per_mwh = 500.0", 'max_price_change_aud_per_mwh = "500"')
    )
    found = issues(bad)
    assert found["portfolio"][0] == "SA1 VPP" and "lowercase" in found["portfolio"][1]
    assert found["market.region"][0] == "SA9" and "SA1" in found["market.region"][1]
    assert (
        found["market.products[1]"]
        == (
            "raise_regg",
            found["market.products[1]"][1],
        )
        and "did you mean 'raise_reg'" in found["market.products[1]"][1]
    )
    assert "dotted path" in found["fleet.node"][1]
    assert "name@version" in found["forecaster.model"][1]
    assert found["forecaster.horizon_hours"][0] == 0
    assert found["safety.max_mw_per_bid"] == (-1, "must be greater than 0")
    assert "did you mean 'max_mw_per_bid'" in found["safety.max_mw"][1]
    assert found["safety.max_price_change_aud_per_mwh"] == ("500", "must be a valid number")
    assert len(found) == 9


def test_error_message_lists_one_line_per_issue() -> None:
    with pytest.raises(StrategyError) as caught:
        parse_strategy(MINIMAL.replace("max_mw_per_bid = 10.0", "max_mw_per_bid = 0"), "x.toml")
    assert str(caught.value).splitlines()[1].strip() == "safety.max_mw_per_bid = 0: must be greater than 0"


@pytest.mark.parametrize(
    ("section", "lines", "field", "fragment"),
    [
        ("[risk]", "quantile = 0.4\ncvar_level = 0.9", "risk.cvar_level", "not both"),
        ("[risk]", "quantile = 1.0", "risk.quantile", "less than 1"),
        (
            "[operation]",
            "backup_reserve_fraction = 0.97",
            "operation.backup_reserve_fraction",
            "less than 0.95",
        ),
        ("[operation]", "daily_cycle_limit = 0", "operation.daily_cycle_limit", "greater than 0"),
        ("[operation]", "daily_cycle_limit = nan", "operation.daily_cycle_limit", "finite"),
        (
            "[operation]",
            "degradation_cost_aud_per_mwh = inf",
            "operation.degradation_cost_aud_per_mwh",
            "finite",
        ),
        (
            "[bidding]",
            'band_policy = "scheduled_only"\nladder_headroom_fraction = 0.5',
            "bidding.ladder_headroom_fraction",
            "only applies when band_policy",
        ),
        ("[bidding]", 'band_policy = "greedy"', "bidding.band_policy", "'ladder' or 'scheduled_only'"),
        ("[bidding]", 'method = "milp"', "bidding.method", "'lp_lambda' or 'value_curve'"),
        (
            "[bidding]",
            "cycle_shadow_price_aud_per_mwh = 30.0",
            "bidding.cycle_shadow_price_aud_per_mwh",
            'only applies when method = "value_curve"',
        ),
        (
            "[bidding]",
            'method = "value_curve"\nband_policy = "scheduled_only"',
            "bidding.band_policy",
            'only applies when method = "lp_lambda"',
        ),
        (
            "[bidding]",
            'method = "value_curve"\nladder_headroom_fraction = 0.5',
            "bidding.ladder_headroom_fraction",
            'only applies when method = "lp_lambda"',
        ),
        (
            "[bidding]",
            'method = "value_curve"\nprice_dispersion = 1.5',
            "bidding.price_dispersion",
            "less than or equal to 1",
        ),
        (
            "[bidding]",
            'method = "value_curve"\nsoc_points = 1',
            "bidding.soc_points",
            "greater than or equal to 2",
        ),
        (
            "[bidding]",
            'method = "value_curve"\nspike_run_intervals = 0.5',
            "bidding.spike_run_intervals",
            "greater than or equal to 1",
        ),
        (
            "[bidding]",
            'method = "value_curve"\nspike_run_intervals = nan',
            "bidding.spike_run_intervals",
            "must be a finite number",
        ),
        (
            "[bidding]",
            "spike_threshold_aud_per_mwh = 300.0",
            "bidding.spike_threshold_aud_per_mwh",
            'only applies when method = "value_curve"',
        ),
        (
            "[bidding]",
            'method = "value_curve"\ncycle_shadow_price_aud_per_mwh = -1.0',
            "bidding.cycle_shadow_price_aud_per_mwh",
            "greater than or equal to 0",
        ),
    ],
)
def test_section_rules(section: str, lines: str, field: str, fragment: str) -> None:
    found = issues(MINIMAL + f"\n{section}\n{lines}\n")
    assert field in found and fragment in found[field][1], found


def test_products_must_include_energy_once() -> None:
    assert (
        "must include 'energy'"
        in issues(MINIMAL.replace('region = "SA1"', 'region = "SA1"\nproducts = ["raise_6s"]'))[
            "market.products"
        ][1]
    )
    assert issues(MINIMAL.replace('region = "SA1"', 'region = "SA1"\nproducts = ["energy", "energy"]'))[
        "market.products[1]"
    ] == ("energy", "listed twice")


def test_missing_sections_and_bad_toml() -> None:
    found = issues('portfolio = "x"')
    assert {"market", "fleet", "forecaster", "safety"} <= found.keys()
    assert found["market"][1] == "is required"
    assert "not valid TOML" in issues("portfolio = ")["(file)"][1]


def test_cvar_strategy() -> None:
    s = parse_strategy(MINIMAL + "\n[risk]\ncvar_level = 0.9\n")
    assert s.risk.measure == "cvar" and s.risk.quantile is None and s.risk.cvar_level == 0.9


def test_content_hash_ignores_layout_and_comments_but_not_values() -> None:
    a = parse_strategy(MINIMAL)
    reformatted = "# a comment\n" + MINIMAL.replace("max_mw_per_bid = 10.0", "max_mw_per_bid = 10   # MW")
    assert parse_strategy(reformatted).content_hash == a.content_hash
    explicit_defaults = MINIMAL + "\n[risk]\nquantile = 0.5\n[bidding]\nladder_headroom_fraction = 1.0\n"
    assert parse_strategy(explicit_defaults).content_hash == a.content_hash
    changed = parse_strategy(MINIMAL.replace("max_mw_per_bid = 10.0", "max_mw_per_bid = 9.0"))
    assert changed.content_hash != a.content_hash and len(a.content_hash) == 64


def test_diff_names_each_changed_field() -> None:
    a = parse_strategy(MINIMAL)
    b = parse_strategy(
        MINIMAL.replace("max_mw_per_bid = 10.0", "max_mw_per_bid = 8.0") + "\n[risk]\nquantile = 0.4\n"
    )
    changes = {c.field: (c.old, c.new) for c in diff_strategies(a, b)}
    assert changes == {"safety.max_mw_per_bid": (10.0, 8.0), "risk.quantile": (0.5, 0.4)}
    assert diff_strategies(a, a) == []
    assert next(c.describe() for c in diff_strategies(a, b)) == "risk.quantile: 0.5 -> 0.4"


def test_stored_json_round_trips_and_forecaster_can_be_swapped() -> None:
    s = read_strategy_file(EXAMPLE).strategy
    assert Strategy.model_validate(s.canonical()) == s
    other = s.with_forecaster("quantile_mlp@3")
    assert other.forecaster.model == "quantile_mlp@3" and other.content_hash != s.content_hash
    with pytest.raises(StrategyError):
        s.with_forecaster("no version")


def test_strategy_is_frozen() -> None:
    s = parse_strategy(MINIMAL)
    with pytest.raises(ValueError):
        s.safety.max_mw_per_bid = 1.0  # type: ignore[misc]
    assert math.isfinite(s.safety.max_mw_per_bid)


def test_value_curve_method_and_settings() -> None:
    strategy = parse_strategy(
        MINIMAL
        + '\n[bidding]\nmethod = "value_curve"\ncycle_shadow_price_aud_per_mwh = 30\nprice_dispersion = 0.5\n'
    )
    assert strategy.bidding.method == "value_curve"
    assert strategy.bidding.value_curve_setting("cycle_shadow_price_aud_per_mwh") == 30.0
    assert strategy.bidding.value_curve_setting("soc_points") == 41  # the default when left out
    assert strategy.bidding.value_curve_setting("spike_run_intervals") == 1.0  # independent intervals
    runs = parse_strategy(
        MINIMAL
        + '\n[bidding]\nmethod = "value_curve"\nspike_run_intervals = 6\n'
        + "spike_threshold_aud_per_mwh = 250\n"
    )
    settings = value_curve_settings(runs)
    assert settings is not None
    assert (settings.spike_run_intervals, settings.spike_threshold_aud_per_mwh) == (6.0, 250.0)
    # A strategy that does not use the method hashes as it did before the method existed.
    plain = parse_strategy(MINIMAL)
    assert "method" not in plain.canonical()["bidding"]
    assert "price_atoms" not in plain.canonical()["bidding"]
    assert strategy.canonical()["bidding"]["method"] == "value_curve"
    assert plain.content_hash != strategy.content_hash
    # Swapping bidding keeps the rest and validates; the default bidding is LP-λ again.
    back = strategy.with_bidding()
    assert back.bidding.method == "lp_lambda" and back.content_hash == plain.content_hash
    changed = {c.field for c in diff_strategies(plain, strategy)}
    assert {"bidding.method", "bidding.cycle_shadow_price_aud_per_mwh", "bidding.price_dispersion"} <= changed


def test_a_value_curve_strategy_naming_fcas_is_refused_not_silently_energy_only() -> None:
    text = MINIMAL.replace('region = "SA1"', 'region = "SA1"\nproducts = ["energy", "raise_reg"]')
    assert parse_strategy(text).market.products == ("energy", "raise_reg")  # LP-λ trades them
    found = issues(text + '\n[bidding]\nmethod = "value_curve"\n')
    assert list(found) == ["bidding.method"]
    value, rule = found["bidding.method"]
    assert value == "value_curve" and "raise_reg" in rule and 'method = "lp_lambda"' in rule
