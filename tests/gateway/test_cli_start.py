"""Short commands start without the services' stack; ``hallpass token``'s lean route signs what the
dev issuer signs and reads its settings as CommonSettings reads them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hallpass_gateway import quick_token
from hallpass_gateway.cli import main
from hallpass_kit.auth import TRUST_ROLES, DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import generate_service_key, load_service_key
from hallpass_kit.settings import CommonSettings, Environment

# What a short command must not load: the scanning stack, the settings library, the database
# and web stacks, the JOSE library the services verify with.
HEAVY_MODULES = (
    "rapidocr",
    "rapidocr_onnxruntime",
    "onnxruntime",
    "cv2",
    "PIL",
    "numpy",
    "pydantic_settings",
    "pydantic",
    "sqlalchemy",
    "fastapi",
    "joserfc",
    "httpx",
)
SCANNING_STACK = ("rapidocr", "rapidocr_onnxruntime", "onnxruntime", "cv2", "PIL", "numpy")
NOW = 1_800_000_000


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No HALLPASS_* settings but a data dir of the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("HALLPASS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HALLPASS_DATA_DIR", str(tmp_path))
    return tmp_path


def imported_modules(argv: list[str], data_dir: Path, **extra: str) -> set[str]:
    """Every module ``hallpass ARGV`` imports, from ``-X importtime``, in a fresh process."""
    environment = {
        key: value for key, value in os.environ.items() if not key.upper().startswith("HALLPASS_")
    }
    environment |= {"HALLPASS_DATA_DIR": str(data_dir), **extra}
    finished = subprocess.run(  # noqa: S603 - the test's own interpreter and arguments
        [sys.executable, "-X", "importtime", "-m", "hallpass_gateway", *argv],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in finished.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def top_level(modules: set[str], wanted: tuple[str, ...]) -> set[str]:
    return {module for module in modules if module.split(".")[0] in wanted}


def test_the_parser_offers_the_kits_roles() -> None:
    assert tuple(role.value for role in Role) == quick_token.ROLE_NAMES
    assert {role.value for role in TRUST_ROLES} == quick_token.TRUST_ROLE_NAMES


def test_hallpass_token_imports_neither_the_scanning_stack_nor_the_settings_library(
    tmp_path: Path,
) -> None:
    modules = imported_modules(["token", "--role", "head"], tmp_path)

    assert "hallpass_gateway.quick_token" in modules  # the listing is real
    assert top_level(modules, HEAVY_MODULES) == set()
    assert not any(module.startswith("hallpass_kit") for module in modules)


def test_hallpass_help_imports_nothing_of_the_services(tmp_path: Path) -> None:
    modules = imported_modules(["--help"], tmp_path)

    assert "argparse" in modules
    assert top_level(modules, HEAVY_MODULES) == set()
    assert not any(module.startswith("hallpass_kit") for module in modules)


def test_service_key_writes_the_kits_key_without_the_services_stack(tmp_path: Path) -> None:
    key_file = tmp_path / "service-key.json"

    modules = imported_modules(["service-key", "--out", str(key_file)], tmp_path)

    assert top_level(modules, HEAVY_MODULES) == set()
    written = json.loads(key_file.read_text())
    made_by_the_kit = generate_service_key()
    assert list(written) == list(made_by_the_kit)
    assert written["kid"].startswith("service-")
    issuer = load_service_key(CommonSettings(env=Environment.test, service_key_file=key_file))
    assert issuer is not None
    assert issuer.kid == written["kid"]


def test_check_transport_works_without_the_scanning_stack(tmp_path: Path) -> None:
    modules = imported_modules(
        ["comms", "check-transport", "--from", "head@demo.sch.uk", "--to", "a@example.org"],
        tmp_path,
    )

    assert "hallpass_comms.delivery.check" in modules
    assert top_level(modules, SCANNING_STACK) == set()
    assert list((tmp_path / "outbox").glob("*.eml"))  # the test message went


def test_the_lean_token_is_the_dev_issuers_token_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = DevIssuer.load_or_create(tmp_path / "key.json", "hallpass-dev", "hallpass")
    key = quick_token.load_or_create_key(str(tmp_path / "key.json"))
    guardian = uuid.uuid4()
    monkeypatch.setattr(time, "time", lambda: NOW + 0.75)

    expected = issuer.issue(
        sub="trust_dpo@oak-trust",
        school=None,
        roles=[Role.trust_dpo, Role.parent],
        guardian_id=guardian,
        email="Siân.Hughes@ysgol.cymru",
        ttl_seconds=600,
        extra={"trust": "oak-trust"},
    )
    lean = quick_token.issue(
        key,
        issuer="hallpass-dev",
        audience="hallpass",
        sub="trust_dpo@oak-trust",
        school=None,
        roles=["trust_dpo", "parent"],
        guardian_id=guardian,
        email="Siân.Hughes@ysgol.cymru",
        ttl_seconds=600,
        extra={"trust": "oak-trust"},
    )

    assert lean == expected
    assert key.kid == issuer.kid


def test_a_key_the_lean_route_makes_is_the_dev_issuers_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "dev-signing-key.json"

    key = quick_token.load_or_create_key(str(path))
    issuer = DevIssuer.load_or_create(path, "hallpass-dev", "hallpass")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert issuer.kid == key.kid
    assert set(json.loads(path.read_text())) == set(issuer.key.as_dict(private=True))
    token = quick_token.issue(
        key,
        issuer="hallpass-dev",
        audience="hallpass",
        sub="head@demo",
        school="demo",
        roles=["head"],
        guardian_id=None,
        email=None,
        ttl_seconds=60,
    )
    common = CommonSettings(data_dir=tmp_path)
    assert TokenVerifier(common, key_set=issuer.key_set()).verify(token).roles == {Role.head}


def test_a_damaged_key_file_is_refused_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dev-signing-key.json"
    DevIssuer.load_or_create(path, "hallpass-dev", "hallpass")
    jwk = json.loads(path.read_text())
    jwk["p"], jwk["q"] = jwk["q"], jwk["dp"]  # the primes no longer make the modulus
    path.write_text(json.dumps(jwk))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the retries for a file being written

    with pytest.raises(ValueError, match="does not hold a signing key"):
        quick_token.load_or_create_key(str(path))


def test_hallpass_token_is_accepted_by_the_verifier_with_the_claims_asked_for(
    clean_environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLPASS_AUTH_AUDIENCE", "hallpass-test")
    guardian = uuid.uuid4()

    argv = ["token", "--role", "parent", "--school", "oakfield", "--guardian", str(guardian)]

    status = main([*argv, "--ttl", "900"])

    assert status == 0
    token = capsys.readouterr().out.strip()
    common = CommonSettings()
    issuer = DevIssuer.load_or_create(
        common.dev_signing_key_path, common.auth_issuer, common.auth_audience
    )
    principal = TokenVerifier(common, key_set=issuer.key_set()).verify(token)
    assert principal.roles == frozenset({Role.parent})
    assert principal.school == "oakfield"
    assert principal.sub == "parent@oakfield"
    assert principal.guardian_id == guardian
    assert 890 <= principal.expires_at - time.time() <= 900


def test_a_trust_role_needs_the_identity_files_trust_on_the_lean_route_too(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["token", "--role", "trust_admin", "--trust", "oak-trust"])

    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "trusts: none: set HALLPASS_IDENTITY_FILE" in captured.err


def test_production_refuses_the_dev_issuers_token(
    clean_environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLPASS_ENV", "production")

    status = main(["token", "--role", "head"])

    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "settings refused: production mode refuses the dev signing key" in captured.err
    assert not (clean_environment / "dev-signing-key.json").exists()


def test_a_setting_with_a_value_the_settings_refuse_is_refused_as_before(
    clean_environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLPASS_ENV", "staging")

    status = main(["token", "--role", "head"])

    assert status == 2
    assert "settings refused" in capsys.readouterr().err


# Each environment as the shell gives it (besides an empty HALLPASS_* set); None: the lean route
# leaves it to CommonSettings.
ENVIRONMENTS: list[tuple[dict[str, str], bool]] = [
    ({}, True),
    ({"HALLPASS_DATA_DIR": "{tmp}/data"}, True),
    ({"hallpass_data_dir": "{tmp}/lower"}, True),
    ({"HALLPASS_DATA_DIR": ""}, True),
    ({"HALLPASS_ENV": "test"}, True),
    ({"HALLPASS_ENV": "development", "HALLPASS_AUTH_AUDIENCE": "ysgol"}, True),
    ({"HALLPASS_AUTH_ISSUER": "https://login.example.org/t"}, True),
    ({"HALLPASS_AUTH_JWKS_URL": "https://login.example.org/keys"}, True),
    (
        {
            "HALLPASS_AUTH_ISSUER": "https://login.example.org/t",
            "HALLPASS_AUTH_JWKS_URL": "https://login.example.org/keys",
        },
        True,
    ),
    ({"HALLPASS_AUTH_ISSUER": "https://login.example.org/t", "HALLPASS_AUTH_JWKS_URL": ""}, True),
    ({"HALLPASS_AUTH_ISSUER": "", "HALLPASS_AUTH_JWKS_URL": "https://k.example.org"}, True),
    ({"HALLPASS_ENV": "production"}, False),
    ({"HALLPASS_ENV": "Production"}, False),
    ({"HALLPASS_ENV": " test"}, False),
    ({"HALLPASS_IDENTITY_FILE": "{tmp}/identity.toml"}, False),
    ({"HALLPASS_DATA_DIR": "{tmp}/a", "Hallpass_Data_Dir": "{tmp}/b"}, False),
]


@pytest.mark.parametrize(("environment", "lean"), ENVIRONMENTS)
def test_the_lean_route_reads_the_settings_as_common_settings_does(
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    lean: bool,
) -> None:
    monkeypatch.delenv("HALLPASS_DATA_DIR")
    for name, value in environment.items():
        monkeypatch.setenv(name, value.replace("{tmp}", str(clean_environment)))

    settings = quick_token.settings_from_environment(os.environ)

    if not lean:
        assert settings is None
        return
    assert settings is not None
    common = CommonSettings()
    assert Path(settings.data_dir) == common.data_dir
    assert Path(settings.dev_signing_key_path) == common.dev_signing_key_path
    assert settings.auth_issuer == common.auth_issuer
    assert settings.auth_audience == common.auth_audience
    assert settings.uses_dev_issuer == common.uses_dev_issuer
    assert settings.trusts == frozenset(common.identity().trusts)
