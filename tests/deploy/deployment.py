"""Reading the deployment files the way docker compose would, for tests that cannot run Docker."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import yaml

from hallpass_kit.identity import IdentityFile, load_identity_file

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS_EXAMPLE = ROOT / "deploy" / "secrets.env.example"
REALM = ROOT / "deploy" / "keycloak" / "hallpass-realm.json"

# ${NAME}, ${NAME:?message}, ${NAME:-default}: compose interpolation.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")
# Which Hallpass process a Dockerfile builds, from its path.
DOCKERFILES = {
    "services/consent/Dockerfile": "consent",
    "services/media/Dockerfile": "media",
    "services/comms/Dockerfile": "comms",
    "gateway/Dockerfile": "gateway",
}


@cache
def settings_table() -> ModuleType:
    """docs/settings_table.py: who reads which settings class (one list for the doc and here)."""
    path = ROOT / "docs" / "settings_table.py"
    spec = importlib.util.spec_from_file_location("hallpass_docs_settings_table", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return cast(dict[str, dict[str, Any]], compose()["services"])


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, equals, value = text.partition("=")
        assert equals, f"{path.name}:{number} is not NAME=value"
        values[name.strip()] = value.strip()
    return values


def env_files(service: dict[str, Any]) -> list[Path]:
    files = service.get("env_file", [])
    listed = [files] if isinstance(files, str) else files
    return [ROOT / (entry if isinstance(entry, str) else entry["path"]) for entry in listed]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds, env files first, `environment:` over them."""
    merged: dict[str, str] = {}
    for path in env_files(service):
        merged.update(read_env_file(path))
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(entry.split("=", 1) for entry in given)
    merged.update({name: "" if value is None else str(value) for name, value in given.items()})
    return merged


def interpolate(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        assert name in variables, f"${{{name}}} is not in deploy/secrets.env.example"
        return variables[name]

    return INTERPOLATION.sub(replace, value)


def hallpass_process(service: dict[str, Any]) -> str | None:
    """consent, media, comms or gateway for a service built from a Hallpass Dockerfile."""
    build = service.get("build")
    if build is None:
        return None
    dockerfile = build["dockerfile"] if isinstance(build, dict) else "Dockerfile"
    return DOCKERFILES.get(dockerfile)


def command(service: dict[str, Any]) -> list[str]:
    given = service.get("command")
    if given is None:
        return []
    return shlex.split(given) if isinstance(given, str) else [str(part) for part in given]


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    text: str

    def instructions(self, keyword: str, *, final_stage: bool = True) -> list[str]:
        """Arguments of every ``keyword`` instruction (continuation lines joined)."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        lines = [line.strip() for line in joined.splitlines()]
        if final_stage:
            starts = [index for index, line in enumerate(lines) if line.upper().startswith("FROM ")]
            lines = lines[starts[-1] :]
        found = []
        for line in lines:
            word, _, rest = line.partition(" ")
            if word.upper() == keyword:
                found.append(rest.strip())
        return found

    def cmd(self) -> list[str]:
        (cmd,) = self.instructions("CMD")
        parsed = json.loads(cmd)
        assert isinstance(parsed, list)
        return [str(part) for part in parsed]


def dockerfile(relative: str) -> Dockerfile:
    path = ROOT / relative
    return Dockerfile(path, path.read_text(encoding="utf-8"))


def mounted_identity_path(spec: dict[str, Any]) -> Path | None:
    """The checkout's file compose mounts as this container's identity file, if any."""
    sources = compose().get("configs", {})
    for config in spec.get("configs", []):
        if config["source"] == "identity":
            return ROOT / str(sources["identity"]["file"])
    return None


def mounted_identity(spec: dict[str, Any]) -> IdentityFile | None:
    """The identity file this container reads, loaded as the services load it."""
    path = mounted_identity_path(spec)
    return None if path is None else load_identity_file(path)
