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


def test_without_a_token_the_name_is_marked_unauthenticated(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "strategy", "apply", EXAMPLE, "--by", "ana")[0] == 0
    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp")
    assert code == 0 and "by ana (unauthenticated)" in out
