"""A check is never answered from stale facts: consent decisions are asked afresh every time, and
the roster's names, kept with their compiled matcher for the life of the roster's ETag, are
matched only once consent has named a roster version read after the check was received (the
decision answer's Hallpass-Roster-Version, or a revalidation) that the names are at least as new
as, so a pupil added a moment ago is found by the very next check (the staleness bound is
zero). And a check fails closed whenever consent cannot answer."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hallpass_kit.clients import ServiceClient
from hallpass_media.consent_facts import Roster
from hallpass_media.consent_link import ConsentLink, _Revalidations
from hallpass_media.context import media_context
from hallpass_media.names import NameDetector, RosterName
from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem
from tests.media.builders import MediaWorld, blocking_codes

SPORTS_DAY = "Zara Quinn won the sack race on sports day."


def _roster(etag: str) -> Roster:
    name = RosterName(pupil_id=uuid.uuid4(), given_name="Zara", family_name="Quinn")
    return Roster(etag=etag, detector=NameDetector([name]), names={name.pupil_id: name})


def _consent_calls(
    link: ConsentLink, monkeypatch: pytest.MonkeyPatch, *, unversioned: bool = False
) -> list[str]:
    """Every call the check makes to consent from now on; ``unversioned``: decision answers
    arrive without the roster version, as from a consent that does not say it."""
    calls: list[str] = []
    ask = link.client.request

    async def counted(method: str, path: str, **options: Any) -> httpx.Response:
        calls.append(f"{method} {path}")
        response = await ask(method, path, **options)
        if unversioned:
            response.headers.pop("Hallpass-Roster-Version", None)
        return response

    monkeypatch.setattr(link.client, "request", counted)
    return calls


def test_m1_with_the_roster_held_current_a_check_asks_consent_once(
    world: MediaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor")
    media_id = world.upload(pupils=[pupil])
    world.scan()
    world.check("website", [media_id], caption="Sports day")
    calls = _consent_calls(media_context(world.context).consent, monkeypatch)

    verdict = world.check("website", [media_id], caption="Sports day")

    assert verdict["allowed"] is True
    assert calls == ["POST /v1/decisions"]


def test_m1_pupil_added_after_the_roster_was_held_is_named_by_the_next_check(
    world: MediaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor")
    media_id = world.upload(pupils=[pupil])
    world.scan()
    before = world.check("website", [media_id], caption=SPORTS_DAY)
    calls = _consent_calls(media_context(world.context).consent, monkeypatch)

    world.school.pupil("Zara", "Quinn")
    after = world.check("website", [media_id], caption=SPORTS_DAY)

    assert before["allowed"] is True
    # The decisions named a newer roster than the one held: the names were matched again.
    assert calls == ["POST /v1/decisions", "GET /v1/roster"]
    assert after["allowed"] is False
    (problem,) = [p for p in after["text_problems"] if p["code"] == "name_in_text"]
    assert problem["where"] == "caption"


def test_c4_pupil_added_after_the_roster_was_held_and_named_is_asked_about_too(
    world: MediaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor", purpose="newspaper_named")
    media_id = world.upload(pupils=[pupil])
    world.scan()
    caption = "Amara Okafor and Zara Quinn win the prize"
    assert world.check("newspaper", [media_id], caption=caption)["allowed"] is True
    calls = _consent_calls(media_context(world.context).consent, monkeypatch)

    world.school.pupil("Zara", "Quinn")
    after = world.check("newspaper", [media_id], caption=caption)

    # Named only by the newer roster, Zara is asked about in a second decision batch: her
    # carers never agreed to her being named.
    assert calls == ["POST /v1/decisions", "GET /v1/roster", "POST /v1/decisions"]
    assert after["allowed"] is False


def test_m1_a_decision_answer_that_names_no_roster_version_means_the_roster_is_asked(
    world: MediaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor")
    media_id = world.upload(pupils=[pupil])
    world.scan()
    world.check("website", [media_id], caption="Sports day")
    calls = _consent_calls(media_context(world.context).consent, monkeypatch, unversioned=True)

    world.school.pupil("Zara", "Quinn")
    verdict = world.check("website", [media_id], caption=SPORTS_DAY)

    assert calls == ["POST /v1/decisions", "GET /v1/roster"]
    assert verdict["allowed"] is False


def test_m1_a_check_asking_about_no_pupil_still_revalidates_the_roster(
    world: MediaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.consented_pupil("Amara", "Okafor")
    world.check("website", [], caption="Sports day")
    calls = _consent_calls(media_context(world.context).consent, monkeypatch)

    verdict = world.check("website", [], caption="Sports day")

    assert verdict["allowed"] is True
    assert calls == ["GET /v1/roster"]


def test_c5_withdrawal_refuses_the_very_next_check(
    world: MediaWorld, client: TestClient, auth: TokenFactory
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(pupils=[pupil])
    world.scan()
    assert world.check("website", [media_id])["allowed"] is True
    history = client.get(f"/v1/pupils/{pupil}/consents", headers=auth("office")).json()
    grant = next(r for r in history["history"] if r["purpose"] == "website_photo")

    withdrawn = client.post(
        f"/v1/consents/{grant['id']}:withdraw", json={"method": "email"}, headers=auth("office")
    )
    verdict = world.check("website", [media_id])

    assert withdrawn.status_code == 201, withdrawn.text
    assert verdict["allowed"] is False
    assert blocking_codes(verdict) == ["consent_missing"]


def test_m1_pupil_added_after_a_check_is_named_by_the_next_check(world: MediaWorld) -> None:
    world.consented_pupil("Amara", "Okafor")
    before = world.check("website", [], caption=SPORTS_DAY)
    roster = media_context(world.context).consent._rosters
    held = {school: cached.etag for school, cached in roster.items()}

    world.school.pupil("Zara", "Quinn")
    after = world.check("website", [], caption=SPORTS_DAY)

    assert before["allowed"] is True
    assert held, "the first check kept the roster and its matcher"
    assert after["allowed"] is False
    (problem,) = [p for p in after["text_problems"] if p["code"] == "name_in_text"]
    assert problem["where"] == "caption"
    assert problem["rule"] == "M1"


def test_m1_unchanged_roster_keeps_its_compiled_matcher(world: MediaWorld) -> None:
    world.consented_pupil("Amara", "Okafor")
    world.check("website", [], caption="Amara Okafor on sports day")
    link = media_context(world.context).consent
    (first,) = link._rosters.values()

    verdict = world.check("website", [], caption="Amara Okafor on sports day")

    (second,) = link._rosters.values()
    assert second.detector is first.detector
    assert verdict["allowed"] is False


def test_m1_a_check_never_shares_a_revalidation_that_began_before_it() -> None:
    # The revalidation is a plain coroutine here: what is tested is only who shares which one.
    async def scenario() -> tuple[Roster, Roster, Roster, int]:
        revalidations = _Revalidations()
        started = itertools.count(1)
        in_flight: asyncio.Queue[asyncio.Event] = asyncio.Queue()

        async def revalidate() -> Roster:
            number = next(started)
            gate = asyncio.Event()
            in_flight.put_nowait(gate)
            await gate.wait()
            return _roster(f'W/"roster-{number}"')

        first = asyncio.create_task(revalidations.fresh("oakfield", revalidate))
        first_gate = await in_flight.get()  # the first revalidation is now in flight
        # Both arrive while it is in flight: neither may be answered by it.
        second = asyncio.create_task(revalidations.fresh("oakfield", revalidate))
        third = asyncio.create_task(revalidations.fresh("oakfield", revalidate))
        await asyncio.sleep(0)
        first_gate.set()
        answer = await first
        (await in_flight.get()).set()
        return answer, await second, await third, next(started) - 1

    first, second, third, revalidated = asyncio.run(scenario())

    assert first.etag == 'W/"roster-1"'
    assert second.etag == third.etag == 'W/"roster-2"'
    assert revalidated == 2


def test_consent_down_after_the_roster_was_kept_still_fails_closed(world: MediaWorld) -> None:
    world.consented_pupil("Amara", "Okafor")
    assert world.check("website", [], caption="Sports day")["allowed"] is True
    link = media_context(world.context).consent
    assert link._rosters, "the roster is kept"
    # Nothing listens on port 9 of loopback: the consent service has gone down since.
    link.client = ServiceClient(name="consent", base_url="http://127.0.0.1:9", timeout=1.0)

    response = world.check_response("website", [], caption="Sports day")

    problem = assert_problem(response, 503, "consent_unavailable")
    assert "allowed" not in problem
