"""The commands that run Hallpass with services apart: serve one service, work, migrate, keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hallpass_gateway.asgi import proxy_mode
from hallpass_gateway.cli import _parser, main
from hallpass_kit.clients import load_service_key
from hallpass_kit.settings import CommonSettings, Environment


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["serve"], "gateway"),
        (["serve", "consent", "--skip-migrations"], "consent"),
        (["serve", "media", "--port", "9000"], "media"),
        (["worker", "comms"], "comms"),
    ],
)
def test_serve_and_worker_name_the_service_the_process_runs(argv: list[str], service: str) -> None:
    assert _parser().parse_args(argv).service == service


@pytest.mark.parametrize("argv", [["serve", "payroll"], ["worker"], ["worker", "gateway"]])
def test_a_service_hallpass_does_not_have_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)


def test_migrate_refuses_an_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "consent", "payroll"]) == 2
    assert "no such service: payroll" in capsys.readouterr().err


def test_migrate_brings_only_the_named_services_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLPASS_DATA_DIR", str(tmp_path))

    assert main(["migrate", "consent"]) == 0

    assert (tmp_path / "consent.db").exists()
    assert not (tmp_path / "media.db").exists()
    assert not (tmp_path / "comms.db").exists()


def test_service_key_is_written_for_the_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "service-key.json"

    assert main(["service-key", "--out", str(key_file)]) == 0
    first = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert main(["service-key", "--out", str(key_file)]) == 2
    assert key_file.read_text() == first
    assert main(["service-key", "--out", str(key_file), "--force"]) == 0
    assert key_file.read_text() != first

    issuer = load_service_key(CommonSettings(env=Environment.test, service_key_file=key_file))
    assert issuer is not None
    assert json.loads(key_file.read_text())["kty"] == "RSA"


def test_the_gateway_proxies_only_when_the_services_addresses_are_given() -> None:
    assert not proxy_mode(CommonSettings(env=Environment.test))
    assert proxy_mode(CommonSettings(env=Environment.test, consent_url="http://consent:8000"))
