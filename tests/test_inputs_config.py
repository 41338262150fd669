"""Config files (`--config`): each defect of issue 17 is one row, refused with one `ConfigError`
line naming the file or field, the value and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobidder.config import ConfigError, load_settings

pytestmark = pytest.mark.inputs

BATTERY = '[[fleet]]\nbattery_id = "a"\nmax_charge_mw = 1\nmax_discharge_mw = 1\ncapacity_mwh = 2\n'

CASES: dict[str, tuple[str, str]] = {
    # name: (TOML text, the exact rule text the message must hold)
    "inf charge": (
        BATTERY.replace("max_charge_mw = 1", "max_charge_mw = inf"),
        "fleet[0].max_charge_mw = inf: must be a finite number",
    ),
    "nan capacity": (
        BATTERY.replace("capacity_mwh = 2", "capacity_mwh = nan"),
        "fleet[0].capacity_mwh = nan: must be a finite number",
    ),
    "same port": (
        "[ports]\nexchange = 6000\nfleet = 6000\n",
        "ports: fleet and exchange both use port 6000; each needs its own",
    ),
    "queue prefix": ('queue_prefix = "a b/c"', "queue_prefix = 'a b/c': must be 1 to 62 letters"),
    "empty task queue": ('task_queue = ""', "task_queue = '': must be 1 to 200 letters"),
    "bad database url": ('database_url = "notaurl"', "database_url = 'notaurl': not a database URL"),
    "unsupported database": (
        'database_url = "mysql://u@127.0.0.1/db"',
        "database 'mysql' is not supported (sqlite or postgresql)",
    ),
    "password never shown": (
        'database_url = "postgresql://trader:hunter2@127.0.0.1:notaport/db"',
        "database_url = 'postgresql://trader:***@127.0.0.1:notaport/db': not a database URL",
    ),
    "key typo": ('portfolo = "x"', "portfolo = 'x': unknown field; did you mean 'portfolio'?"),
    "nested key typo": (
        "[ports]\nexchnage = 1\n",
        "ports.exchnage = 1: unknown field; did you mean 'exchange'?",
    ),
    "negative capacity": (
        BATTERY.replace("capacity_mwh = 2", "capacity_mwh = -5"),
        "invalid configuration: fleet[0].capacity_mwh = -5: must be greater than 0",
    ),
    "deep nesting": ("x = " + "[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
    "not toml": ("a = ", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_config_is_one_named_error(case: str, tmp_path: Path) -> None:
    text, fragment = CASES[case]
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    message = str(error.value)
    assert fragment in message and "\n" not in message
    # The confusing second line of issue 17 ("Tuple should have at least 1 item") is gone.
    assert "Tuple" not in message and "Input should" not in message
    assert "hunter2" not in message


def test_directory_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"config file {tmp_path}: is a directory, not a TOML file"):
        load_settings(tmp_path, env={})
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'portfolio = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin.toml: not UTF-8 text \(byte 16\)"):
        load_settings(latin, env={})


def test_valid_settings_still_load(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'database_url = "postgresql+psycopg://u@127.0.0.1:5432/test"\nqueue_prefix = "ab_c-1"\n'
        "[ports]\nexchange = 6000\nfleet = 6001\n" + BATTERY
    )
    settings = load_settings(path, env={})
    assert settings.ports.fleet == 6001 and settings.queue_prefix == "ab_c-1"
