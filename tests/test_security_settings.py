"""Issue 16, attack 6: the settings file the stack writes for its children holds no database
password, and it and the secrets file beside it are readable by their owner only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from autobidder.config import SECRETS_FILE_NAME, Settings, dump_settings, read_settings

pytestmark = pytest.mark.security

URL = "postgresql+psycopg://trader:s3cret-pw@127.0.0.1:5432/test"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_database_password_is_never_written_in_the_settings_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=URL, exchange_database_url=URL)
    path = tmp_path / "run" / "settings.json"
    dump_settings(settings, path)
    text = path.read_text()
    assert "s3cret-pw" not in text and "***" in text
    assert mode(path) == 0o600
    secrets = path.parent / SECRETS_FILE_NAME
    assert mode(secrets) == 0o600
    again = read_settings(path)
    assert (again.database_url, again.exchange_database_url) == (URL, URL)
    assert again == settings


def test_without_a_password_there_is_no_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    dump_settings(Settings(data_dir=tmp_path, database_url=URL), path)
    dump_settings(Settings(data_dir=tmp_path, database_url="sqlite:///x.db"), path)  # rewritten
    assert not (tmp_path / SECRETS_FILE_NAME).exists()
    assert read_settings(path).database_url == "sqlite:///x.db"
    assert mode(path) == 0o600
