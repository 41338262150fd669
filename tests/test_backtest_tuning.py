"""Re-tuning the value curve's cycle shadow price on a span that rolls forward (`backtest.tuning`):
each month's choice sees only the days before it, and a backtest replays the choices as one run
(`SimulationSpec.value_curve_from`, the curve planner's settings schedule)."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.strategy.model import read_strategy_file
from backtest.engine import simulate
from backtest.forecasters import PerfectForecast, PriceTape
from backtest.planning import WarmPlanner
from backtest.tuning import daily_net_aud, month_starts, rolling_choices
from optimization import ValueCurveSettings
from optimization.strategy_settings import value_curve_settings
from tests.test_backtest_engine import spec_for


@pytest.fixture(scope="module")
def tape() -> PriceTape:
    from autobidder.domain import Region
    from autobidder.prices import load_prices

    return PriceTape.of(Region.SA1, load_prices(Region.SA1))


def test_month_starts_follow_the_first_day() -> None:
    assert month_starts(date(2022, 1, 2), date(2022, 4, 1)) == [
        date(2022, 2, 1),
        date(2022, 3, 1),
        date(2022, 4, 1),
    ]
    assert month_starts(date(2022, 12, 1), date(2023, 1, 31)) == [date(2023, 1, 1)]
    assert month_starts(date(2022, 3, 5), date(2022, 3, 31)) == []


def test_each_month_takes_the_candidate_that_earned_most_on_the_days_before_it() -> None:
    first = date(2022, 1, 2)  # 30 days to February 1, then 28 to March 1
    days = 89
    low = np.full(days, 100.0)
    high = np.full(days, 90.0)
    high[2:30] = 120.0  # μ 40 wins January's last 28 days (but not the first two)
    choices = rolling_choices({15.0: low, 40.0: high}, first, date(2022, 3, 31), window_days=28, default=15.0)
    assert choices == ((date(2022, 2, 1), 40.0), (date(2022, 3, 1), 15.0))
    # Only the days before each month count: what comes after leaves its choice alone.
    later = high.copy()
    later[30:] = 1000.0
    again = rolling_choices({15.0: low, 40.0: later}, first, date(2022, 3, 31), window_days=28, default=15.0)
    assert again[0] == choices[0] and again[1] == (date(2022, 3, 1), 40.0)
    # A tie keeps the default; too few days known keep it too.
    tie = rolling_choices(
        {15.0: low, 40.0: low.copy()}, first, date(2022, 2, 28), window_days=28, default=15.0
    )
    assert tie == ((date(2022, 2, 1), 15.0),)
    early = rolling_choices({15.0: low, 40.0: high}, date(2022, 1, 25), date(2022, 2, 28), 28, default=15.0)
    assert early == ((date(2022, 2, 1), 15.0),)
    with pytest.raises(ValueError, match="every candidate needs 30 days"):
        rolling_choices({15.0: low, 40.0: high[:10]}, first, date(2022, 2, 28), window_days=28, default=15.0)
    with pytest.raises(ValueError, match="window_days"):
        rolling_choices({15.0: low}, first, date(2022, 2, 28), window_days=0, default=15.0)


def test_a_settings_schedule_changes_the_plans_from_its_day_on(tape: PriceTape) -> None:
    """Day 1 trades as the fixed run does; from the scheduled interval on, a cycle price so high
    that no discharge pays stops the discharging, which the fixed run goes on doing."""
    settings = ValueCurveSettings(degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=15.0)
    one_day = spec_for(tape, 2 * 288, 1)
    # 2022-10-05 and 06, the sample's last two days.
    spec = dataclasses.replace(
        one_day, first_index=one_day.first_index - 288, value_curve=settings, keep_bids=False
    )
    switch = spec.first_index + 288
    fixed = simulate(spec, tape, PerfectForecast(), WarmPlanner())
    costly = dataclasses.replace(settings, cycle_shadow_price_aud_per_mwh=20000.0)
    scheduled = simulate(
        dataclasses.replace(spec, value_curve_from=((switch, costly),)),
        tape,
        PerfectForecast(),
        WarmPlanner(),
    )
    np.testing.assert_array_equal(scheduled.trace.net_mw[:288], fixed.trace.net_mw[:288])
    assert fixed.trace.net_mw[288:].max() > 1.0
    assert scheduled.trace.net_mw[288:].max() <= 1e-9
    # The same settings scheduled change nothing.
    same = simulate(
        dataclasses.replace(spec, value_curve_from=((switch, settings),)),
        tape,
        PerfectForecast(),
        WarmPlanner(),
    )
    np.testing.assert_array_equal(same.trace.net_mw, fixed.trace.net_mw)
    # What each day netted, less the degradation cost on every MWh through the connection.
    net = daily_net_aud(fixed, 5.0, 5 / 60, 288)
    moved = np.abs(fixed.trace.net_mw[:288]).sum() * 5 / 60
    assert net.shape == (2,) and net[0] == pytest.approx(fixed.trace.revenue_aud[:288].sum() - 5.0 * moved)


def test_a_backtest_request_replays_the_choices_by_nem_day(tmp_path: Path) -> None:
    """`BacktestRequest.value_curve_from` reaches the engine at the first interval of its NEM day."""
    from autobidder.config import default_fleet
    from autobidder.domain import Region
    from autobidder.prices import load_prices
    from backtest.runner import BacktestRequest, run_backtest
    from optimization import value_curve_settings
    from tests.test_backtest_engine import example

    strategy = example().with_bidding(method="value_curve", cycle_shadow_price_aud_per_mwh=15.0)
    settings = value_curve_settings(strategy)
    assert settings is not None
    request = BacktestRequest(
        strategy=strategy,
        strategy_label="t",
        strategy_version="t",
        fleet=default_fleet(),
        first_day=date(2022, 10, 5),
        last_day=date(2022, 10, 6),
        models_dir=tmp_path,
        split_losses=False,
        reoptimize_every_minutes=5,
    )
    prices = load_prices(Region.SA1)
    fixed = run_backtest(request, prices, progress=False, forecaster=PerfectForecast())
    costly = dataclasses.replace(settings, cycle_shadow_price_aud_per_mwh=20000.0)
    scheduled = run_backtest(
        dataclasses.replace(request, value_curve_from=((date(2022, 10, 6), costly),)),
        prices,
        progress=False,
        forecaster=PerfectForecast(),
        reuse=fixed,
    )
    np.testing.assert_array_equal(scheduled.run.trace.net_mw[:288], fixed.run.trace.net_mw[:288])
    assert fixed.run.trace.net_mw[288:].max() > 1.0 and scheduled.run.trace.net_mw[288:].max() <= 1e-9


def test_the_shadow_price_line_is_rewritten_in_place() -> None:
    from backtest.tuning import with_shadow_price

    text = '[bidding]\nmethod = "value_curve"\ncycle_shadow_price_aud_per_mwh = 15.0  # chosen on Jan-Feb\n'
    assert with_shadow_price(text, 40) == (
        '[bidding]\nmethod = "value_curve"\ncycle_shadow_price_aud_per_mwh = 40.0  # chosen on Jan-Feb\n'
    )
    bare = '[market]\nname = "NEM"\n[bidding]\nmethod = "value_curve"\n'
    assert with_shadow_price(bare, 30.0) == (
        '[market]\nname = "NEM"\n[bidding]\ncycle_shadow_price_aud_per_mwh = 30.0\nmethod = "value_curve"\n'
    )
    with pytest.raises(ValueError, match=r"no \[bidding\] table"):
        with_shadow_price('[market]\nname = "NEM"\n', 30.0)


def test_backtest_tune_names_the_best_shadow_price_and_writes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`autobidder backtest tune` through the real entry point: one backtest per candidate over
    the days given, the best by net value named and written; a strategy that bids LP-λ, or a bad
    candidate, exits 2 with one line."""
    import json

    from autobidder.strategy import read_strategy_file
    from backtest.tuning import with_shadow_price
    from optimization import value_curve_settings
    from tests.test_cli_strategy import LP_LAMBDA, run

    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    shipped = str(Path(__file__).resolve().parents[1] / "strategies" / "sa1-vpp.toml")
    days = ["--from", "2022-10-04", "--to", "2022-10-05"]
    written = tmp_path / "tuned.toml"
    code, out, _ = run(
        capsys,
        "backtest",
        "tune",
        "--strategy",
        shipped,
        *days,
        "--shadow-prices",
        "0,400",
        "--write",
        str(written),
        "--json",
    )
    assert code == 0, out
    result = json.loads(out)
    nets = {float(mu): f["net_value_aud"] for mu, f in result["candidates"].items()}
    assert set(nets) == {0.0, 20.0, 400.0}  # the candidates given and the file's own μ
    best = result["best_shadow_price_aud_per_mwh"]
    assert nets[best] == max(nets.values())
    settings = value_curve_settings(read_strategy_file(written).strategy)
    assert settings is not None and settings.cycle_shadow_price_aud_per_mwh == best
    # Everything but the shadow price line is the shipped file's text.
    assert written.read_text() == with_shadow_price(Path(shipped).read_text(), best)
    code, _, err = run(capsys, "backtest", "tune", "--strategy", LP_LAMBDA, *days)
    assert code == 2 and 'method = "lp_lambda"' in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "backtest", "tune", "--strategy", shipped, *days, "--shadow-prices", "15,-3")
    assert code == 2 and "'-3'" in err and len(err.strip().splitlines()) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_shadow_price_list_is_read_or_refused_in_one_line(text: str) -> None:
    from backtest.commands import UsageError, _shadow_prices

    try:
        values = _shadow_prices(text)
    except UsageError as exc:
        assert "--shadow-prices" in str(exc) and "\n" not in str(exc)
    else:
        assert values and all(0.0 <= v <= 20000.0 for v in values)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(['method = "value_curve"', "price_atoms = 12", "# a comment", ""]),
        max_size=4,
        unique=True,
    ),
    st.floats(0, 20000, allow_nan=False),
    st.booleans(),
)
def test_the_rewritten_strategy_reads_back_the_shadow_price(
    lines: list[str], mu: float, with_line: bool
) -> None:
    """Whatever else the [bidding] table holds, the rewritten text parses to the same TOML with
    only the shadow price changed."""
    import tomllib

    from backtest.tuning import with_shadow_price

    body = [*lines, "cycle_shadow_price_aud_per_mwh = 15.0  # chosen on Jan-Feb"] if with_line else lines
    text = '[market]\nname = "NEM"\n[bidding]\n' + "\n".join(body) + "\n"
    before, after = tomllib.loads(text), tomllib.loads(with_shadow_price(text, mu))
    assert after["bidding"].pop("cycle_shadow_price_aud_per_mwh") == mu
    before["bidding"].pop("cycle_shadow_price_aud_per_mwh", None)
    assert after == before


def test_the_trading_bench_replays_each_chosen_shadow_price() -> None:
    """bench/trading.py --rolling-shadow trades each month with the μ chosen for it (not the
    bench's --shadow-price, which its other settings come from)."""
    import argparse
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "trading.py"
    spec = importlib.util.spec_from_file_location("bench_trading_under_test", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(
        shadow_price=15.0,
        dispersion=1.0,
        soc_points=41,
        price_atoms=12,
        spike_run=6.0,
        spike_threshold=300.0,
    )
    schedule = bench.choice_schedule(
        bench.strategy_for("SA1"), args, ((date(2022, 2, 1), 40.0), (date(2022, 3, 1), 15.0))
    )
    assert [(day, s.cycle_shadow_price_aud_per_mwh) for day, s in schedule] == [
        (date(2022, 2, 1), 40.0),
        (date(2022, 3, 1), 15.0),
    ]
    assert {s.degradation_cost_aud_per_mwh for _, s in schedule} == {5.0}
    assert {s.spike_run_intervals for _, s in schedule} == {6.0}  # the bench's other settings kept


def test_the_trading_bench_trades_the_shipped_strategy_by_default() -> None:
    """bench/trading.py's value-curve defaults are strategies/sa1-vpp.toml's settings, so its
    headline figures are the shipped strategy's."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "trading.py"
    spec = importlib.util.spec_from_file_location("bench_trading_defaults", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parser_of().parse_args([])
    shipped = read_strategy_file(Path(__file__).resolve().parents[1] / "strategies" / "sa1-vpp.toml").strategy
    assert bench.vc_settings(bench.strategy_for("SA1"), args) == value_curve_settings(shipped)
