"""`hallpass demo` makes the demo school's mail settings; `hallpass comms remind-renewals` writes
each reminder once."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hallpass_gateway.app import create_gateway
from hallpass_gateway.cli import main
from hallpass_kit.db import utcnow
from hallpass_kit.settings import CommonSettings


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HALLPASS_DATA_DIR", str(tmp_path))
    for name in ("HALLPASS_AUTH_JWKS_URL", "HALLPASS_AUTH_ISSUER", "HALLPASS_ENV"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_demo_makes_mail_settings_once(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert main(["demo"]) == 0
    again = capsys.readouterr().out

    assert "mail settings: demo.sch.uk" in first
    assert "mail settings" not in again


def test_remind_renewals_writes_each_reminder_once(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    gateway = create_gateway(CommonSettings(), run_background=False)
    assert gateway.dev_issuer is not None
    office = {
        "Authorization": "Bearer "
        + gateway.dev_issuer.issue(sub="office@demo", school="demo", roles=["office"])
    }
    with TestClient(gateway) as client:
        pupil = client.get("/consent/v1/pupils?limit=1", headers=office).json()["items"][0]
        guardian = client.get(f"/consent/v1/pupils/{pupil['id']}/guardians", headers=office).json()
        granted = client.post(
            "/consent/v1/consents",
            headers=office,
            json={
                "pupil_id": pupil["id"],
                "purpose": "livestream",
                "decision": "granted",
                "guardian_id": guardian[0]["id"],
                "method": "paper",
                "valid_until": (utcnow() + dt.timedelta(days=5)).isoformat(),
            },
        )
        assert granted.status_code == 201, granted.text
    capsys.readouterr()

    assert main(["comms", "remind-renewals", "--school", "demo", "--within-days", "7"]) == 0
    first = capsys.readouterr().out
    assert main(["comms", "remind-renewals", "--school", "demo", "--within-days", "7"]) == 0
    again = capsys.readouterr().out

    written = re.search(r"(\d+) reminder\(s\) written", first)
    assert written is not None, first
    assert int(written.group(1)) >= 1, first
    assert "demo: 0 reminder(s) written" in again


def test_remind_renewals_refuses_a_school_without_mail_settings(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["comms", "remind-renewals", "--school", "elsewhere"])

    assert status == 1
    assert "mail settings are not made yet" in capsys.readouterr().err


def test_demo_entries_are_sealed_so_every_chain_verifies_before_any_checkpoint(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    capsys.readouterr()
    # No service has run yet, so no checkpoint vouches for anything: the seals must.
    gateway = create_gateway(CommonSettings(), run_background=False)
    with TestClient(gateway) as client:
        assert gateway.dev_issuer is not None
        token = gateway.dev_issuer.issue(sub="head@demo", school="demo", roles=["head"])
        for service in ("consent", "media", "comms"):
            report = client.get(
                f"/{service}/v1/audit:verify", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert report["intact"], (service, report)
            assert report["checkpoints"] == 0
            assert report["unsealed"] == 0
            assert report["entries"] >= 1
