"""docker-compose.yml checked without Docker: every name, file, command, port and secret in it.

Docker cannot run where the tests run, so what `docker compose up` would find out the hard way
(a setting nobody reads, a Dockerfile that is not there, a URL to a port nobody listens on, a
password written into the file) is found here by reading the files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from hallpass_gateway.asgi import create as create_gateway_from_environment
from hallpass_gateway.asgi import proxy_mode
from hallpass_gateway.cli import _parser
from hallpass_kit.auth import Role
from hallpass_kit.settings import CommonSettings, Environment, InsecureSettingsError
from hallpass_kit.webhooks import url_refusal
from tests.deploy.deployment import (
    INTERPOLATION,
    REALM,
    ROOT,
    SECRETS_EXAMPLE,
    command,
    compose,
    dockerfile,
    env_files,
    environment,
    hallpass_process,
    interpolate,
    mounted_identity,
    mounted_identity_path,
    read_env_file,
    services,
    settings_table,
)

HALLPASS_SERVICES = sorted(name for name, spec in services().items() if hallpass_process(spec))
SCHEME_PORTS = {"http": 80, "https": 443, "postgresql+psycopg": 5432, "postgresql": 5432}
# Names whose value is a password, a secret or a private key; *_FILE and *_PATH name a file
# (a compose secret), *_ID an account that is not itself secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN$")
NOT_A_SECRET_NAME = re.compile(r"(_FILE|_PATH|_ID)$")


def _example_secrets() -> dict[str, str]:
    """Real-looking values for every variable the example lists, as make-secrets.sh makes them."""
    return {name: secrets.token_urlsafe(32) for name in read_env_file(SECRETS_EXAMPLE)}


def _interpolated_environment(name: str) -> dict[str, str]:
    variables = _example_secrets()
    return {
        key: interpolate(value, variables) for key, value in environment(services()[name]).items()
    }


def _container_ports(spec: dict[str, Any]) -> set[int]:
    ports = {int(port) for port in spec.get("expose", [])}
    for mapping in spec.get("ports", []):
        assert isinstance(mapping, str), "ports use the short syntax [ip:]host:container"
        ports.add(int(mapping.rsplit(":", 1)[1]))
    argv = command(spec)
    if "--port" in argv:
        ports.add(int(argv[argv.index("--port") + 1]))
    return ports


def _published_ports(spec: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port."""
    published = {}
    for mapping in spec.get("ports", []):
        parts = str(mapping).split(":")
        published[int(parts[-2])] = int(parts[-1])
    return published


def _has_healthcheck(spec: dict[str, Any]) -> bool:
    check = spec.get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    if hallpass_process(spec) is None:
        return False
    build: dict[str, str] = spec["build"]
    return bool(dockerfile(build["dockerfile"]).instructions("HEALTHCHECK"))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HALLPASS_SERVICES)
def test_every_environment_name_is_a_setting_that_process_reads(name: str) -> None:
    spec = services()[name]
    process = hallpass_process(spec)
    assert process is not None
    table = settings_table()
    known = set().union(*(table.env_names(cls) for cls in table.classes_read_by(process)))
    unknown = sorted(set(environment(spec)) - known)
    assert not unknown, f"{name} ({process}) is given settings nothing reads: {unknown}"


@pytest.mark.parametrize("name", HALLPASS_SERVICES)
def test_every_container_environment_is_accepted_in_production(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With make-secrets.sh's kind of values, every settings class the process reads must accept
    # the container's environment: right types, JSON where a list is expected, and production's
    # refusals (dev issuer, placeholder webhook secret, http webhooks outside the network) met.
    for variable in [key for key in os.environ if key.startswith("HALLPASS_")]:
        monkeypatch.delenv(variable)
    container = _interpolated_environment(name)
    for key, value in container.items():
        monkeypatch.setenv(key, value)
    # The identity file is read at start-up: the one compose mounts, from this checkout.
    monkeypatch.setenv("HALLPASS_IDENTITY_FILE", str(mounted_identity_path(services()[name])))
    assert container["HALLPASS_ENV"] == "production"
    process = hallpass_process(services()[name])
    assert process is not None
    for cls in settings_table().classes_read_by(process):
        cls()


def test_gateway_starts_in_proxy_mode_from_its_compose_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Production mode, no audit key and no database: the gateway in front holds neither.
    for variable in [key for key in os.environ if key.startswith("HALLPASS_")]:
        monkeypatch.delenv(variable)
    for key, value in _interpolated_environment("gateway").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HALLPASS_IDENTITY_FILE", str(mounted_identity_path(services()["gateway"])))
    common = CommonSettings()
    assert proxy_mode(common)
    with TestClient(create_gateway_from_environment()) as client:
        assert client.get("/healthz").status_code == 200


def test_the_example_secrets_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [key for key in os.environ if key.startswith("HALLPASS_")]:
        monkeypatch.delenv(variable)
    for key, value in read_env_file(ROOT / "deploy" / "hallpass.env").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HALLPASS_IDENTITY_FILE", str(mounted_identity_path(services()["gateway"])))
    example = read_env_file(SECRETS_EXAMPLE)
    monkeypatch.setenv("HALLPASS_WEBHOOK_SECRET", example["HALLPASS_WEBHOOK_SECRET"])
    with pytest.raises((InsecureSettingsError, ValidationError), match="HALLPASS_WEBHOOK_SECRET"):
        CommonSettings()


def test_api_replicas_leave_background_work_to_their_worker() -> None:
    for process in ("consent", "media", "comms"):
        api = environment(services()[process])
        worker = environment(services()[f"{process}-worker"])
        assert api.get("HALLPASS_RUN_BACKGROUND") == "false", process
        assert worker.get("HALLPASS_RUN_BACKGROUND", "true") == "true", f"{process}-worker"
        assert command(services()[f"{process}-worker"]) == ["hallpass", "worker", process]


def test_consent_changed_is_delivered_to_media_receiver_over_an_allowed_url() -> None:
    for name in ("consent", "consent-worker"):
        container = environment(services()[name])
        subscribers = json.loads(container["HALLPASS_WEBHOOK_SUBSCRIBERS"])
        assert {
            "name": "media",
            "url": "http://media:8000/v1/webhooks/consent",
            "events": ["consent.changed"],
        } in subscribers, name
        # Production delivers over https only, but for the hosts named as inside the network.
        http_hosts = json.loads(container["HALLPASS_WEBHOOK_HTTP_HOSTS"])
        for subscriber in subscribers:
            refusal = url_refusal(
                subscriber["url"], env=Environment.production, http_hosts=http_hosts
            )
            assert refusal is None, f"{name}: {subscriber['url']}: {refusal}"


# --- files and commands -----------------------------------------------------------------------


def test_every_build_context_and_dockerfile_exists() -> None:
    built = {name: spec["build"] for name, spec in services().items() if "build" in spec}
    assert set(HALLPASS_SERVICES) <= set(built)
    for name, build in built.items():
        context = ROOT / build["context"]
        assert context.is_dir(), f"{name}: no build context {context}"
        assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
    for name, spec in services().items():
        for path in env_files(spec):
            assert path.is_file(), f"{name}: no env file {path}"
        for volume in spec.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in compose()["volumes"], f"{name}: undeclared volume {source}"
        for secret in spec.get("secrets", []):
            assert secret in compose()["secrets"], f"{name}: undeclared secret {secret}"


def test_hallpass_volumes_mount_on_folders_the_image_gives_its_user() -> None:
    # A named volume mounted where the image has no folder is created owned by root, and the
    # service, running as its own user, could not write its audit checkpoints there.
    for name in HALLPASS_SERVICES:
        spec = services()[name]
        made = " ".join(dockerfile(spec["build"]["dockerfile"]).instructions("RUN"))
        for volume in spec.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if not source.startswith("./"):
                assert re.search(rf"install -d -o hallpass .*{re.escape(target)}\b", made), (
                    f"{name}: the image does not make {target} for its user"
                )


def _commands() -> list[tuple[str, list[str]]]:
    found = [(name, command(spec)) for name, spec in services().items() if hallpass_process(spec)]
    found += [
        (relative, dockerfile(relative).cmd())
        for relative in sorted(
            {services()[name]["build"]["dockerfile"] for name in HALLPASS_SERVICES}
        )
    ]
    return found


@pytest.mark.parametrize(("where", "argv"), _commands(), ids=[where for where, _ in _commands()])
def test_every_command_is_one_the_hallpass_cli_accepts(where: str, argv: list[str]) -> None:
    assert argv[:1] == ["hallpass"], f"{where} does not run the hallpass command"
    parser = _parser()
    (subcommands,) = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    if argv[1] not in subcommands.choices:
        pytest.skip(f"`hallpass {argv[1]}` is not in the CLI yet")
    try:
        parsed = parser.parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: the hallpass CLI refuses {' '.join(argv)}")
    assert callable(parsed.command)


@pytest.mark.parametrize("name", ["consent", "media", "comms", "gateway"])
def test_a_served_process_listens_where_its_image_and_healthcheck_look(name: str) -> None:
    spec = services()[name]
    argv = command(spec)
    assert argv[:3] == ["hallpass", "serve", name]
    port = int(argv[argv.index("--port") + 1])
    image = dockerfile(spec["build"]["dockerfile"])
    assert image.instructions("EXPOSE") == [str(port)]
    (check,) = image.instructions("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in check
    if name != "gateway":
        # Reached by other containers only: nothing is published to the host.
        assert spec.get("expose") == [str(port)]
        assert "ports" not in spec


# --- addresses --------------------------------------------------------------------------------


def _addresses() -> list[tuple[str, str, str, int]]:
    """(container, setting, host, port) for every address a Hallpass container is given."""
    found = []
    for name in HALLPASS_SERVICES:
        container = _interpolated_environment(name)
        for key, value in container.items():
            values = [value]
            if key == "HALLPASS_WEBHOOK_SUBSCRIBERS":
                values = [subscriber["url"] for subscriber in json.loads(value)]
            for text in values:
                parts = urlsplit(text)
                if parts.scheme in SCHEME_PORTS and parts.hostname:
                    port = parts.port or SCHEME_PORTS[parts.scheme]
                    found.append((name, key, parts.hostname, port))
        identity = mounted_identity(services()[name])
        if identity is not None:
            for issuer in identity.issuers:
                for key, text in (
                    ("identity.issuer", issuer.issuer),
                    ("identity.discovery", issuer.discovery_url),
                ):
                    parts = urlsplit(text)
                    assert parts.hostname is not None
                    port = parts.port or SCHEME_PORTS[parts.scheme]
                    found.append((name, key, parts.hostname, port))
        if "HALLPASS_COMMS_SMTP_HOST" in container:
            found.append(
                (
                    name,
                    "HALLPASS_COMMS_SMTP_HOST",
                    container["HALLPASS_COMMS_SMTP_HOST"],
                    int(container.get("HALLPASS_COMMS_SMTP_PORT", "587")),
                )
            )
    return found


def test_every_internal_address_names_a_service_and_a_port_it_listens_on() -> None:
    internal = [address for address in _addresses() if address[2] != "localhost"]
    assert internal
    for container, setting, host, port in internal:
        assert host in services(), f"{container} {setting}: no service called {host!r}"
        listening = _container_ports(services()[host])
        assert port in listening, (
            f"{container} {setting}: {host} listens on {listening}, not {port}"
        )


def test_every_address_people_are_given_is_published_by_the_right_service() -> None:
    published = {
        host_port: (name, container_port)
        for name, spec in services().items()
        for host_port, container_port in _published_ports(spec).items()
    }
    public = [address for address in _addresses() if address[2] == "localhost"]
    assert {setting for _, setting, _, _ in public} >= {
        "HALLPASS_PUBLIC_BASE_URL",
        "identity.issuer",
        "HALLPASS_MEDIA_S3_PUBLIC_ENDPOINT_URL",
    }
    owner = {
        "HALLPASS_PUBLIC_BASE_URL": "gateway",
        "identity.issuer": "keycloak",
        "HALLPASS_MEDIA_S3_PUBLIC_ENDPOINT_URL": "minio",
    }
    for container, setting, _, port in public:
        assert port in published, f"{container} {setting}: nothing publishes port {port}"
        name, container_port = published[port]
        assert name == owner[setting], f"{setting}: port {port} is published by {name}"
        assert container_port in _container_ports(services()[name])


def test_the_issuer_hallpass_expects_is_the_one_keycloak_writes_into_tokens() -> None:
    keycloak = services()["keycloak"]["environment"]
    realm = json.loads(REALM.read_text(encoding="utf-8"))
    identity = mounted_identity(services()["gateway"])
    assert identity is not None
    (issuer,) = identity.issuers
    assert issuer.issuer == f"{keycloak['KC_HOSTNAME']}/realms/{realm['realm']}"
    # Discovered inside the network; the back channel follows the host asked (not the issuer's).
    assert keycloak["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert issuer.discovery_url == (
        f"http://keycloak:8080/realms/{realm['realm']}/.well-known/openid-configuration"
    )


@pytest.mark.parametrize("name", HALLPASS_SERVICES)
def test_every_hallpass_container_reads_the_same_identity_file(name: str) -> None:
    hallpass = read_env_file(ROOT / "deploy" / "hallpass.env")
    spec = services()[name]
    targets = {config["target"]: config["source"] for config in spec.get("configs", [])}
    assert targets.get(hallpass["HALLPASS_IDENTITY_FILE"]) == "identity", name
    assert mounted_identity(spec) is not None


# --- start order and health -------------------------------------------------------------------


def test_depends_on_names_services_that_can_meet_the_condition() -> None:
    for name, spec in services().items():
        for target, condition in (spec.get("depends_on") or {}).items():
            assert target in services(), f"{name} depends on missing {target}"
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert _has_healthcheck(services()[target]), f"{name}: {target} has no healthcheck"
            elif wanted == "service_completed_successfully":
                assert services()[target].get("restart") == "no", f"{target} is not a one-shot job"
            else:
                pytest.fail(f"{name} -> {target}: condition {wanted}")


def test_every_long_running_service_has_a_healthcheck_and_every_job_runs_once() -> None:
    for name, spec in services().items():
        argv = command(spec)
        one_shot = spec.get("restart") == "no"
        worker = argv[:2] == ["hallpass", "worker"]
        if one_shot or worker:
            # A job or worker answers no HTTP: the image's /healthz check would only ever fail.
            assert not _has_healthcheck(spec), f"{name} keeps a healthcheck it cannot pass"
        else:
            assert _has_healthcheck(spec), f"{name} has no healthcheck"
            assert spec.get("restart") == "unless-stopped", name


def test_each_api_starts_after_its_migrate_job_and_serves_without_migrating() -> None:
    for process in ("consent", "media", "comms"):
        job = services()[f"migrate-{process}"]
        assert command(job) == ["hallpass", "migrate", process]
        for name in (process, f"{process}-worker"):
            depends = services()[name]["depends_on"]
            assert depends[f"migrate-{process}"]["condition"] == "service_completed_successfully"
        # Replicas racing to migrate one database is what the job is there to prevent.
        assert "--skip-migrations" in command(services()[process])
    assert services()["consent"]["deploy"]["replicas"] == 2


# --- secrets ----------------------------------------------------------------------------------


def _every_setting() -> list[tuple[str, str, str]]:
    found = []
    for name, spec in services().items():
        given = spec.get("environment") or {}
        found += [(name, key, "" if value is None else str(value)) for key, value in given.items()]
        for path in env_files(spec):
            found += [(path.name, key, value) for key, value in read_env_file(path).items()]
    return found


def _whole_interpolation(value: str) -> bool:
    match = INTERPOLATION.fullmatch(value)
    return match is not None and not match["rest"].startswith((":-", "-"))


def test_no_secret_is_written_into_the_compose_file_or_its_env_files() -> None:
    checked = 0
    for where, key, value in _every_setting():
        if SECRET_NAME.search(key) and not NOT_A_SECRET_NAME.search(key):
            checked += 1
            assert _whole_interpolation(value), f"{where}: {key} is written inline"
        password = urlsplit(value).password if "://" in value else None
        if password is not None:
            assert _whole_interpolation(password), f"{where}: {key} carries a password inline"
    assert checked >= 10


def test_every_interpolated_variable_is_in_the_secrets_example_and_each_is_used() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = {match["name"] for match in INTERPOLATION.finditer(text)}
    listed = set(read_env_file(SECRETS_EXAMPLE))
    assert used == listed
    for match in INTERPOLATION.finditer(text):
        # `:?` makes compose refuse to start while the value is unset, instead of passing "".
        assert match["rest"].startswith(":?"), f"${{{match['name']}}} has no :? guard"


def test_key_files_are_compose_secrets_outside_git() -> None:
    files = {name: spec["file"] for name, spec in compose()["secrets"].items()}
    assert set(files) == {"service-key", "audit-signing-key"}
    for path in files.values():
        assert path.startswith("./deploy/secrets/")
    ignored = (ROOT / "deploy" / ".gitignore").read_text(encoding="utf-8").split()
    assert {"secrets.env", "secrets/"} <= set(ignored)
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "deploy" in dockerignore


# --- Keycloak's realm -------------------------------------------------------------------------


def _realm() -> dict[str, Any]:
    loaded = json.loads(REALM.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_realm_defines_every_hallpass_role_and_a_user_holding_each() -> None:
    realm = _realm()
    defined = {role["name"] for role in realm["roles"]["realm"]}
    assert {role.value for role in Role} <= defined
    held = {role for user in realm["users"] for role in user.get("realmRoles", [])}
    assert {role.value for role in Role} <= held
    for user in realm["users"]:
        if user.get("serviceAccountClientId"):
            # Client credentials speak for no one school: the calling service names it per call.
            assert user["realmRoles"] == ["service"]
            assert "school" not in user.get("attributes", {})
        elif set(user["realmRoles"]) & {"parent", "trust_admin", "trust_dpo"}:
            # A carer's schools come from their linked records, a trust officer's from the trust.
            assert "school" not in user.get("attributes", {}), user["username"]
        else:
            assert user["attributes"]["school"] == ["demo-school"], user["username"]
            assert Role.service.value not in user["realmRoles"], user["username"]


def _mapper(client: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in client["protocolMappers"] if m["protocolMapper"] == kind]


def test_realm_tokens_carry_the_audience_school_and_roles_hallpass_reads() -> None:
    hallpass = read_env_file(ROOT / "deploy" / "hallpass.env")
    identity = mounted_identity(services()["gateway"])
    assert identity is not None
    (issuer,) = identity.issuers
    assert issuer.school is not None
    clients = {client["clientId"]: client for client in _realm()["clients"]}
    assert set(clients) >= {"hallpass", "hallpass-services"}
    for client_id in ("hallpass", "hallpass-services"):
        client = clients[client_id]
        (audience,) = _mapper(client, "oidc-audience-mapper")
        assert audience["config"]["included.client.audience"] == hallpass["HALLPASS_AUTH_AUDIENCE"]
        assert audience["config"]["included.client.audience"] in issuer.audiences
        (roles,) = _mapper(client, "oidc-usermodel-realm-role-mapper")
        assert roles["config"]["claim.name"] == issuer.roles.claim
        assert roles["config"]["multivalued"] == "true"  # a JSON list, never one string
        attributes = {
            m["config"]["user.attribute"]: m["config"]["claim.name"]
            for m in _mapper(client, "oidc-usermodel-attribute-mapper")
        }
        assert attributes["school"] == issuer.school.claim
        # No provider holds Hallpass's guardian ids: carers are linked, never named in tokens.
        assert "guardian" not in attributes
        assert all(m["config"]["access.token.claim"] == "true" for m in client["protocolMappers"])
    services_client = clients["hallpass-services"]
    assert services_client["serviceAccountsEnabled"] is True
    assert services_client["publicClient"] is False
    assert services_client["standardFlowEnabled"] is False


def test_realm_lets_nobody_but_an_administrator_set_their_own_school() -> None:
    (profile,) = _realm()["components"]["org.keycloak.userprofile.UserProfileProvider"]
    config = json.loads(profile["config"]["kc.user.profile.config"][0])
    attributes = {attribute["name"]: attribute for attribute in config["attributes"]}
    for name in ("school", "email"):
        assert attributes[name]["permissions"]["edit"] == ["admin"], name


def test_realm_file_holds_no_password_or_client_secret() -> None:
    realm = _realm()
    keycloak = services()["keycloak"]["environment"]
    placeholders = []
    for client in realm["clients"]:
        if "secret" in client:
            placeholders.append(client["secret"])
    for user in realm["users"]:
        placeholders += [credential["value"] for credential in user.get("credentials", [])]
    assert placeholders
    for value in placeholders:
        match = INTERPOLATION.fullmatch(value)
        assert match is not None, f"the realm file holds a literal secret: {value[:4]}…"
        # Keycloak fills the placeholder from its own environment at import.
        assert match["name"] in keycloak
