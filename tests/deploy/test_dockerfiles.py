"""Each image: built with uv from uv.lock, run without privileges, able to say it is healthy."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.deployment import DOCKERFILES, dockerfile

PATHS = sorted(DOCKERFILES)


@pytest.mark.parametrize("relative", PATHS)
def test_image_runs_as_a_user_without_privileges(relative: str) -> None:
    image = dockerfile(relative)
    users = image.instructions("USER")
    assert users, f"{relative} runs as root"
    # The last USER decides; root by name or by id is still root.
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{relative} runs as {user}"
    created = " ".join(image.instructions("RUN"))
    assert f"useradd --system --uid 10001 --gid {user}" in created


@pytest.mark.parametrize("relative", PATHS)
def test_image_checks_its_own_health_without_curl(relative: str) -> None:
    image = dockerfile(relative)
    (check,) = image.instructions("HEALTHCHECK")
    options, _, probe = check.partition("CMD ")
    assert re.search(r"--timeout=\d+s", options)
    argv = json.loads(probe)
    assert argv[:2] == ["python", "-c"]
    # python:slim has no curl; urllib raises on a refused connection and on any non-2xx answer.
    assert "urllib.request.urlopen('http://127.0.0.1:8000/healthz'" in argv[2]
    assert image.instructions("EXPOSE") == ["8000"]


@pytest.mark.parametrize("relative", PATHS)
def test_image_is_built_with_uv_from_the_lock_onto_slim_python(relative: str) -> None:
    image = dockerfile(relative)
    stages = image.instructions("FROM", final_stage=False)
    assert stages[0].endswith(" AS builder")
    assert stages[-1].startswith("python:3.11-slim")
    # The builder and the runtime share one base, so the environment's interpreter path is there.
    assert stages[0].split()[0] == stages[-1]
    syncs = [run for run in image.instructions("RUN", final_stage=False) if "uv sync" in run]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert "--package hallpass-gateway" in sync
    copied = image.instructions("COPY")
    assert copied == ["--from=builder /opt/hallpass /opt/hallpass"], "only the environment"


def test_each_image_serves_the_process_it_is_named_for() -> None:
    for relative, process in DOCKERFILES.items():
        cmd = dockerfile(relative).cmd()
        assert cmd[:3] == ["hallpass", "serve", process], relative
        assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - inside the container
