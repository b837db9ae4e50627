"""Every check is audited before it is answered, and concurrent checks share the transaction
their entries are written in (group commit) without breaking the chain."""

from __future__ import annotations

import asyncio

from hallpass_kit.auth import Principal, Role
from hallpass_media.models import Channel
from hallpass_media.publications.schemas import CheckVerdict
from hallpass_media.publications.service import CheckInput, check_audits
from tests.media.builders import SCHOOL, MediaWorld

CHECKS = 12


def _check(number: int) -> tuple[Principal, CheckInput, CheckVerdict]:
    principal = Principal(sub=f"cms-{number}", school=SCHOOL, roles=frozenset({Role.cms}))
    request = CheckInput(
        channel=Channel.website,
        media_ids=(),
        files=(),
        texts={"caption": f"Sports day, heat {number}"},
        blur_faces=None,
    )
    verdict = CheckVerdict(
        channel=Channel.website,
        purpose="website_photo",
        allowed=number % 2 == 0,
        text_problems=[],
        images=[],
    )
    return principal, request, verdict


def test_concurrent_checks_are_each_audited_in_one_unbroken_chain(world: MediaWorld) -> None:
    audits = check_audits(world.context.database)

    async def all_at_once() -> None:
        await asyncio.gather(*(audits.record(*_check(n)) for n in range(CHECKS)))

    asyncio.run(all_at_once())

    entries = world.client.get(
        "/v1/audit", params={"action": "publication.checked", "limit": 100}, headers=world.head
    ).json()["items"]
    report = world.client.get("/v1/audit:verify", headers=world.head).json()
    assert sorted(e["actor"] for e in entries) == sorted(f"cms-{n}" for n in range(CHECKS))
    assert sum(e["details"]["allowed"] for e in entries) == CHECKS // 2
    assert report["intact"] is True
