"""Issue 16: a strategy is applied only for the principal's own portfolios, and the history
records the authenticated principal, through the real `autobidder strategy apply` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobidder.config import Settings
from autobidder.identity import READ_ONLY_PRINCIPAL, ensure_local_identity
from tests.test_cli_strategy import EXAMPLE, run

pytestmark = pytest.mark.security


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    monkeypatch.delenv("AUTOBIDDER_TOKEN_FILE", raising=False)
    return tmp_path


def test_apply_records_the_authenticated_principal_and_refuses_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = ensure_local_identity(
        Settings(data_dir=tmp_path / "var").identity_files.root, ["sa1-vpp", "other-vpp"]
    )
    forged = tmp_path / "forged.token"
    forged.write_text("not-a-token")
    forged.chmod(0o600)
    for token, why in (
        (forged, "not the token of any principal"),
        (files.token("trader-other-vpp"), "may not apply a strategy on 'sa1-vpp'"),
        (files.token(READ_ONLY_PRINCIPAL), "may not apply a strategy on 'sa1-vpp'"),
    ):
        code, _, err = run(capsys, "strategy", "apply", EXAMPLE, "--token-file", str(token))
        assert code == 4 and why in err and "nothing was applied" in err
    assert run(capsys, "strategy", "show", "sa1-vpp")[0] == 3  # nothing stored

    code, out, _ = run(
        capsys, "strategy", "apply", EXAMPLE, "--token-file", str(files.token("trader-sa1-vpp"))
    )
    assert code == 0 and out.startswith("applied sa1-vpp@v1:")
    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp")
    assert code == 0 and "by trader-sa1-vpp" in out


def test_without_a_token_file_the_local_trader_is_used_and_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The documented local-operator path: this stack's own trader token (made 0600 on first use,
    as `autobidder up` makes it), and the history names that principal, not a claimed one."""
    code, out, err = run(capsys, "strategy", "apply", EXAMPLE)
    assert code == 0, err
    token = Settings(data_dir=tmp_path / "var").identity_files.token("trader-sa1-vpp")
    assert token.stat().st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp")
    assert code == 0 and "by trader-sa1-vpp" in out
    with pytest.raises(SystemExit) as exited:  # no self-reported names any more
        run(capsys, "strategy", "apply", EXAMPLE, "--by", "ana")
    assert exited.value.code == 2


def _refused(capsys: pytest.CaptureFixture[str], *argv: str, config: Path | None = None) -> str:
    prefix = ["--config", str(config)] if config else []
    code, _, err = run(capsys, *prefix, "strategy", "apply", *argv)
    lines = err.strip().splitlines()
    assert code == 4 and len(lines) == 1 and "nothing was applied" in lines[0], (code, err)
    assert run(capsys, "strategy", "show", "sa1-vpp")[0] == 3  # nothing stored
    return lines[0]


def test_without_any_identity_apply_refuses_with_exit_4(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(f'[security]\nprincipals_file = "{tmp_path / "principals.json"}"\n')
    assert "no identity: pass --token-file" in _refused(capsys, EXAMPLE, config=config)
    off = tmp_path / "off.toml"
    off.write_text("[security]\nenabled = false\n")
    assert "no identity" in _refused(capsys, EXAMPLE, config=off)
    other = tmp_path / "other.toml"
    other.write_text(Path(EXAMPLE).read_text().replace('portfolio = "sa1-vpp"', 'portfolio = "nobody-vpp"'))
    assert "not one this stack trades" in _refused(capsys, str(other))


def test_a_token_file_readable_by_others_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = ensure_local_identity(Settings(data_dir=tmp_path / "var").identity_files.root, ["sa1-vpp"])
    files.token("trader-sa1-vpp").chmod(0o644)
    assert "must be yours and 0600" in _refused(capsys, EXAMPLE)
    assert "must be yours and 0600" in _refused(
        capsys, EXAMPLE, "--token-file", str(files.token("trader-sa1-vpp"))
    )


def test_the_demo_records_its_strategy_under_the_local_trader_not_a_claimed_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`autobidder demo --strategy` applies through the same identity check as `strategy apply`:
    the history names the stack's own trader principal, and an unusable identity refuses the
    demo with exit 4 before anything starts."""
    from autobidder.strategy import authenticated_applier

    assert authenticated_applier(Settings(data_dir=tmp_path / "var"), "sa1-vpp") == ("trader-sa1-vpp", None)
    out_dir = tmp_path / "demo"
    (out_dir / "identity").mkdir(parents=True, mode=0o700)
    (out_dir / "identity" / "principals.json").write_text("not json")
    code, _, err = run(capsys, "demo", "--strategy", EXAMPLE, "--out", str(out_dir), "--intervals", "1")
    assert code == 4 and "no identity" in err and len(err.strip().splitlines()) == 1
    # Refused before anything starts: the demo's data folder holds only the identity it was given,
    # and no stack is recorded where `status` looks (the config's run folder).
    assert [p.name for p in out_dir.iterdir()] == ["identity"]
    assert not (Settings(data_dir=tmp_path / "var").run_dir / "stack.json").exists()
