from pathlib import Path

import pytest

from autobidder.config import ConfigError, build_settings, load_settings
from tests.conftest import free_stack_ports


def test_defaults_need_no_file() -> None:
    settings = load_settings(env={})
    assert str(settings.region) == "SA1"
    assert settings.ports.temporal == 7233 and settings.ports.temporal_ui == 8233
    assert settings.resolved_database_url.startswith("sqlite:///")


def test_environment_overrides_database_url_and_ports() -> None:
    settings = load_settings(
        env={"AUTOBIDDER_DATABASE_URL": "postgresql+psycopg://127.0.0.1/test", "AUTOBIDDER_PORT_SQS": "19324"}
    )
    assert settings.resolved_database_url == "postgresql+psycopg://127.0.0.1/test"
    assert settings.ports.sqs == 19324


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "autobidder.toml"
    path.write_text('region = "VIC1"\n[ports]\nexchange = 6000\nfleet = 6001\n')
    settings = load_settings(path, env={"AUTOBIDDER_PORT_FLEET": "7001"})
    assert str(settings.region) == "VIC1"
    assert (settings.ports.exchange, settings.ports.fleet) == (6000, 7001)


def test_unknown_region_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"region = 'XX9': must be"):
        build_settings({"region": "XX9"})


def test_negative_capacity_names_the_battery_field() -> None:
    fleet = [{"battery_id": "a", "max_charge_mw": 1, "max_discharge_mw": 1, "capacity_mwh": -2}]
    with pytest.raises(ConfigError, match=r"fleet\[0\]\.capacity_mwh = -2: must be greater than 0$"):
        build_settings({"fleet": fleet})


def test_duplicate_battery_ids_rejected() -> None:
    spec = {"battery_id": "a", "max_charge_mw": 1, "max_discharge_mw": 1, "capacity_mwh": 2}
    with pytest.raises(ConfigError, match="duplicate battery_id 'a'"):
        build_settings({"fleet": [spec, spec]})


def test_reserve_must_be_below_capacity() -> None:
    spec = {
        "battery_id": "a",
        "max_charge_mw": 1,
        "max_discharge_mw": 1,
        "capacity_mwh": 2,
        "backup_reserve_mwh": 2,
    }
    with pytest.raises(ConfigError, match="backup_reserve_mwh"):
        build_settings({"fleet": [spec]})


def test_bad_port_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ports\.sqs"):
        load_settings(env={"AUTOBIDDER_PORT_SQS": "70000"})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("region = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_free_stack_ports_set_every_listening_port_once() -> None:
    """The tests' stacks take their ports from one call: five free ports, no two the same, each
    landing on its own `[ports]` field."""
    env = free_stack_ports()
    ports = load_settings(env=env).ports.model_dump()
    assert sorted(ports.values()) == sorted(int(p) for p in env.values())
    assert len(set(ports.values())) == len(ports) == len(env)
