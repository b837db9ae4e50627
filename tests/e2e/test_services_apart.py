"""The README tour with every service in its own process, as a deployment runs them.

Two consent replicas, media, comms, two worker processes per service, the gateway in
proxy mode; PostgreSQL (when the run has it) or SQLite, SeaweedFS for S3, aiosmtpd for SMTP, a
loopback identity provider for people's tokens, the deployment's service key between services,
webhooks between processes and to a CMS. Nothing here runs in the test's own process but the
outside world (the provider, the mail relay, the CMS's receiver).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi import FastAPI, Request, Response

from hallpass_comms.migrations import upgrade as upgrade_comms
from hallpass_consent.migrations import upgrade as upgrade_consent
from hallpass_kit.db import Database
from hallpass_kit.settings import sqlite_url
from hallpass_media.migrations import upgrade as upgrade_media
from tests import databases
from tests.comms.smtp import SmtpServer
from tests.kit.identity_provider import ISSUER, IdentityProvider, claims, sign
from tests.media import images
from tests.media.seaweed import start_seaweed
from tests.servers import free_port, serving

SCHOOL = "oakfield"
DOMAIN = f"{SCHOOL}.sch.uk"
WEBHOOK_SECRET = "a-deployment-secret-of-at-least-32-characters"
BUCKET = "hallpass-e2e"
STARTUP_SECONDS = 240.0

# One deployment for the module: its tests run on the same test worker, one after the other.
pytestmark = pytest.mark.xdist_group("services_apart")

UPGRADES = {"consent": upgrade_consent, "media": upgrade_media, "comms": upgrade_comms}


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class CmsReceiver:
    """The school website's webhook endpoint, verifying each delivery as the CMS would."""

    secret: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/hallpass")
        async def receive(request: Request) -> Response:
            body = await request.body()
            try:
                payload = standardwebhooks.Webhook(self.secret).verify(body, dict(request.headers))
            except standardwebhooks.WebhookVerificationError:
                self.refused += 1
                return Response(status_code=401)
            self.received.append({"id": request.headers["webhook-id"], **payload})
            return Response(status_code=204)

        return app


@dataclass
class Deployment:
    gateway: str
    consent_replicas: list[Process]
    processes: list[Process]
    provider: IdentityProvider
    smtp: SmtpServer
    cms: CmsReceiver
    cms_url: str

    def token(self, role: str, **changes: Any) -> str:
        values: dict[str, Any] = {
            "sub": f"{role}@{SCHOOL}",
            "school": SCHOOL,
            "roles": [role],
            "email": f"{role}@{DOMAIN}",
        }
        values.update(changes)
        return sign(self.provider.key, claims(**values))

    def as_(self, role: str, **changes: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **changes)}"}

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.log.read_text(errors='replace')[-3000:]}" for p in self.processes
        )


def _wait_until(what: str, ready: Callable[[], bool], timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _databases(data_dir: Path) -> Iterator[dict[str, str]]:
    """A migrated database per service: PostgreSQL when this run has it, else SQLite files."""
    if databases.POSTGRES_URL:
        with ExitStack() as stack:
            yield {
                service: stack.enter_context(databases.postgres_database(f"apart_{service}", up))
                for service, up in UPGRADES.items()
            }
        return
    urls: dict[str, str] = {}
    for service, up in UPGRADES.items():
        urls[service] = sqlite_url(data_dir, service)
        database = Database(urls[service])
        up(database)
        database.dispose()
    yield urls


def _base_environment(
    root: Path, urls: dict[str, str], provider: IdentityProvider, smtp: SmtpServer, s3: Any
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")}
    key_file = root / "service-key.json"
    subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "hallpass_gateway", "service-key", "--out", str(key_file)],
        check=True,
        capture_output=True,
        env=keep,
    )
    return {
        **keep,
        "HALLPASS_ENV": "test",
        "HALLPASS_DATA_DIR": str(root / "data"),
        "HALLPASS_LOG_FORMAT": "json",
        "HALLPASS_AUTH_ISSUER": ISSUER,
        "HALLPASS_AUTH_JWKS_URL": provider.url,
        "HALLPASS_SERVICE_KEY_FILE": str(key_file),
        "HALLPASS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HALLPASS_CONSENT_DATABASE_URL": urls["consent"],
        "HALLPASS_MEDIA_DATABASE_URL": urls["media"],
        "HALLPASS_COMMS_DATABASE_URL": urls["comms"],
        "HALLPASS_MEDIA_S3_BUCKET": BUCKET,
        "HALLPASS_MEDIA_S3_ENDPOINT_URL": s3.endpoint_url,
        "HALLPASS_MEDIA_S3_ACCESS_KEY_ID": s3.access_key,
        "HALLPASS_MEDIA_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "HALLPASS_MEDIA_OCR": "false",
        "HALLPASS_MEDIA_SCAN_INTERVAL_SECONDS": "1",
        "HALLPASS_COMMS_SMTP_HOST": "127.0.0.1",
        "HALLPASS_COMMS_SMTP_PORT": str(smtp.port),
        "HALLPASS_COMMS_SMTP_STARTTLS": "false",
        "HALLPASS_COMMS_REMINDER_WITHIN_DAYS": "0",
    }


def _start(
    root: Path, name: str, arguments: list[str], environment: dict[str, str], url: str | None
) -> Process:
    log = root / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "hallpass_gateway", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=root,
        )
    return Process(name, popen, log, url)


def _serve(
    root: Path, name: str, service: str, environment: dict[str, str], **extra: str
) -> Process:
    port = free_port()
    return _start(
        root,
        name,
        ["serve", service, "--port", str(port), "--skip-migrations"],
        {**environment, "HALLPASS_RUN_BACKGROUND": "false", **extra},
        f"http://127.0.0.1:{port}",
    )


def _stop_all(processes: list[Process]) -> None:
    for process in reversed(processes):
        process.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("apart")
    (root / "data").mkdir()
    cms = CmsReceiver()
    with ExitStack() as stack:
        urls = stack.enter_context(_databases(root / "data"))
        (root / "s3").mkdir()
        s3 = stack.enter_context(contextmanager(start_seaweed)(root / "s3"))
        smtp = stack.enter_context(SmtpServer())
        provider = IdentityProvider()
        provider.start()
        stack.callback(provider.stop)
        cms_url = stack.enter_context(serving(cms.app()))
        base = _base_environment(root, urls, provider, smtp, s3)
        migrate = subprocess.run(
            [sys.executable, "-m", "hallpass_gateway", "migrate"],
            capture_output=True,
            env=base,
            cwd=root,
        )
        assert migrate.returncode == 0, migrate.stderr.decode()

        processes: list[Process] = []
        stack.callback(_stop_all, processes)
        media_port = free_port()
        media_url = f"http://127.0.0.1:{media_port}"
        consent_env = {
            **base,
            "HALLPASS_WEBHOOK_SUBSCRIBERS": json.dumps(
                [
                    {
                        "name": "media",
                        "url": f"{media_url}/v1/webhooks/consent",
                        "events": ["consent.changed"],
                    }
                ]
            ),
        }
        consent = [_serve(root, f"consent-{n}", "consent", consent_env) for n in (1, 2)]
        processes.extend(consent)
        consent_urls = ",".join(p.url for p in consent if p.url)
        media = _start(
            root,
            "media",
            ["serve", "media", "--port", str(media_port), "--skip-migrations"],
            {**base, "HALLPASS_RUN_BACKGROUND": "false", "HALLPASS_CONSENT_URL": consent_urls},
            media_url,
        )
        comms = _serve(root, "comms", "comms", base, HALLPASS_CONSENT_URL=consent_urls)
        processes.extend([media, comms])
        # Two workers of each service share its queues: no job done twice, none lost.
        for n in (1, 2):
            processes.append(
                _start(root, f"consent-worker-{n}", ["worker", "consent"], consent_env, None)
            )
            for service in ("media", "comms"):
                processes.append(
                    _start(
                        root,
                        f"{service}-worker-{n}",
                        ["worker", service],
                        {**base, "HALLPASS_CONSENT_URL": consent_urls},
                        None,
                    )
                )
        gateway = _serve(
            root,
            "gateway",
            "gateway",
            base,
            HALLPASS_CONSENT_URL=consent[0].url or "",
            HALLPASS_MEDIA_URL=media_url,
            HALLPASS_COMMS_URL=comms.url or "",
        )
        processes.append(gateway)
        deployed = Deployment(
            gateway=gateway.url or "",
            consent_replicas=consent,
            processes=processes,
            provider=provider,
            smtp=smtp,
            cms=cms,
            cms_url=cms_url,
        )
        try:
            for process in [*consent, media, comms, gateway]:
                assert process.url is not None
                _wait_until(f"{process.name} answering /readyz", partial(_answers, process.url))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{deployed.logs()}") from exc
        yield deployed


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()


@dataclass
class School:
    pupil: str
    others: list[str]
    class_id: str
    guardian: str
    grant: str
    device: str


def _set_up_school(http: httpx.Client, d: Deployment) -> School:
    office = d.as_("office")
    _ok(http.put("/consent/v1/school", json={"name": "Oakfield"}, headers=d.as_("head")))
    class_id = _ok(
        http.post(
            "/consent/v1/classes", json={"name": "Year 3 Oak", "year_group": 3}, headers=office
        ),
        201,
    )["id"]
    pupils: list[str] = []
    guardians: list[str] = []
    for n, (given, family) in enumerate(
        [("Amara", "Okafor"), ("Oliver", "Hughes"), ("Isla", "Patel")]
    ):
        pupil = _ok(
            http.post(
                "/consent/v1/pupils",
                json={
                    "mis_id": f"APART{n}",
                    "given_name": given,
                    "family_name": family,
                    "year_group": 3,
                    "class_id": class_id,
                },
                headers=office,
            ),
            201,
        )["id"]
        guardian = _ok(
            http.post(
                "/consent/v1/guardians",
                json={
                    "given_name": "Carer",
                    "family_name": family,
                    "email": f"carer.{family.lower()}@parents.example.org",
                    "children": [{"pupil_id": pupil, "parental_responsibility": True}],
                },
                headers=office,
            ),
            201,
        )["id"]
        pupils.append(pupil)
        guardians.append(guardian)
    grant = _ok(
        http.post(
            "/consent/v1/consents",
            json={
                "pupil_id": pupils[0],
                "purpose": "website_photo",
                "decision": "granted",
                "guardian_id": guardians[0],
                "method": "paper",
            },
            headers=office,
        ),
        201,
    )["id"]
    device = _ok(
        http.post(
            "/media/v1/devices", json={"name": "Camera", "serial": "APART-CAM"}, headers=office
        ),
        201,
    )["id"]
    return School(pupils[0], pupils[1:], class_id, guardians[0], grant, device)


def _upload_and_wait_for_scan(http: httpx.Client, d: Deployment, school: School) -> str:
    upload = _ok(
        http.post(
            "/media/v1/media",
            data={"device_id": school.device, "pupils": json.dumps([{"pupil_id": school.pupil}])},
            files={"file": ("IMG_0001.jpg", images.jpeg(images.photo(500, 400)), "image/jpeg")},
            headers=d.as_("staff"),
        ),
        201,
    )

    def scanned() -> bool:
        item = _ok(http.get(f"/media/v1/media/{upload['id']}", headers=d.as_("staff")))
        return bool(item["scan"]["status"] == "done")

    _wait_until("the media worker's scan", scanned)
    media_id: str = upload["id"]
    return media_id


def test_the_tour_runs_across_processes(deployment: Deployment) -> None:
    d = deployment
    with httpx.Client(base_url=d.gateway, timeout=30) as http:
        school = _set_up_school(http, d)
        created = _ok(
            http.post(
                "/media/v1/webhook-subscriptions",
                json={
                    "name": "school-website",
                    "url": f"{d.cms_url}/hooks/hallpass",
                    "events": ["publication.takedown_required"],
                },
                headers=d.as_("head"),
            ),
            201,
        )
        d.cms.secret = created["secret"]
        media_id = _upload_and_wait_for_scan(http, d, school)

        check = _ok(
            http.post(
                "/media/v1/publications:check",
                json={"channel": "website", "media_ids": [media_id], "post_body": "Sports day!"},
                headers=d.as_("social_media"),
            )
        )
        assert check["allowed"] is True, check
        published = _ok(
            http.post(
                "/media/v1/publications",
                json={
                    "channel": "website",
                    "media_ids": [media_id],
                    "target_url": "https://oakfield.example.org/news/sports-day",
                },
                headers={**d.as_("head"), "Idempotency-Key": uuid.uuid4().hex},
            ),
            201,
        )

        _ok(
            http.post(
                f"/consent/v1/consents/{school.grant}:withdraw",
                json={"method": "app"},
                headers=d.as_("office"),
            ),
            201,
        )

        def flagged() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = _ok(
                http.get(
                    "/media/v1/publications",
                    params={"status": "takedown_required"},
                    headers=d.as_("cms"),
                )
            )["items"]
            return items

        # consent's worker → signed webhook → media's receiver (another process) flags it (M7).
        _wait_until("the takedown flag", lambda: bool(flagged()), timeout=60)
        assert [p["id"] for p in flagged()] == [published["id"]]
        # media's worker → signed webhook → the school website's CMS.
        _wait_until("the CMS webhook", lambda: bool(d.cms.received), timeout=60)
        time.sleep(1.0)  # a second delivery by the other media worker would arrive now
        assert len(d.cms.received) == 1, d.cms.received
        notice = d.cms.received[0]
        assert notice["type"] == "publication.takedown_required"
        assert notice["school"] == SCHOOL
        assert notice["data"]["publication_id"] == published["id"]
        assert notice["data"]["pupil_id"] == school.pupil
        assert d.cms.refused == 0

        _ok(http.put("/comms/v1/settings", json=_mail_settings(), headers=d.as_("head")))
        receipt = _ok(
            http.post(
                "/comms/v1/messages",
                json={
                    "recipients": {"class_ids": [school.class_id]},
                    "subject": "Sports day photos",
                    "body_text": "Thank you for coming to sports day.",
                    "urgent": True,
                },
                headers=d.as_("staff"),
            ),
            202,
        )

    # Three families, one envelope each, sent by two comms workers: none twice.
    _wait_until("three envelopes over SMTP", lambda: len(d.smtp.received) >= 3, timeout=60)
    time.sleep(1.0)  # a duplicate from the second worker would arrive now
    counts = d.smtp.count_by_message_id()
    assert len(counts) == 3, counts
    assert set(counts.values()) == {1}
    recipients = {address for m in d.smtp.received for address in m.addresses("To")}
    assert recipients == {
        "carer.okafor@parents.example.org",
        "carer.hughes@parents.example.org",
        "carer.patel@parents.example.org",
    }
    assert receipt["id"]


def _mail_settings() -> dict[str, Any]:
    return {
        "domains": [DOMAIN],
        "head_address": f"head@{DOMAIN}",
        "deputy_address": f"deputy@{DOMAIN}",
        "dsl_address": f"dsl@{DOMAIN}",
        "office_address": f"office@{DOMAIN}",
        "cc_policy": "both",
        "timezone": "Europe/London",
        "school_day_start": "08:30",
        "school_day_end": "16:00",
        "morning_send_time": "08:00",
        "school_days": [1, 2, 3, 4, 5],
        "term_dates": [],
        "external_needs_approval": True,
        "secure_view_days": 14,
    }


def test_killing_a_consent_replica_gives_no_wrong_answer(deployment: Deployment) -> None:
    d = deployment
    with httpx.Client(base_url=d.gateway, timeout=30) as http:
        classes = _ok(http.get("/consent/v1/classes", headers=d.as_("office")))
        # Run alone (or before the tour), the school is set up here.
        class_id = classes[0]["id"] if classes else _set_up_school(http, d).class_id
        truth = _ok(
            http.post(
                "/media/v1/livestreams:check",
                json={"class_id": class_id},
                headers=d.as_("social_media"),
            )
        )
        answers: list[httpx.Response] = []
        stop = threading.Event()

        def keep_checking() -> None:
            with httpx.Client(base_url=d.gateway, timeout=30) as own:
                while not stop.is_set():
                    answers.append(
                        own.post(
                            "/media/v1/livestreams:check",
                            json={"class_id": class_id},
                            headers=d.as_("social_media"),
                        )
                    )

        checker = threading.Thread(target=keep_checking)
        checker.start()
        _wait_until("checks before the kill", lambda: len(answers) >= 5, timeout=60)
        # The replica media may be talking to right now dies without a goodbye.
        d.consent_replicas[1].stop(signal.SIGKILL)
        before = len(answers)
        _wait_until("checks after the kill", lambda: len(answers) >= before + 10, timeout=60)
        stop.set()
        checker.join(timeout=60)

    assert answers
    for answer in answers:
        # The other replica answers, or the check fails closed: never a different verdict.
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200:
            assert answer.json() == truth
    assert any(a.status_code == 200 for a in answers[before:])
