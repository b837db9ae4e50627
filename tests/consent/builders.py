"""Small builders for test data, through the public API (so the data is what the API makes)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import SCHOOL, TokenFactory

_mis = itertools.count(1)


@dataclass
class Family:
    pupil_id: str
    guardian_ids: list[str]


class SchoolBuilder:
    def __init__(self, client: TestClient, auth: TokenFactory, school: str = SCHOOL) -> None:
        self.client = client
        self.auth = auth
        self.school = school
        self.office = auth("office", school=school)

    def set_up(self, name: str = "Oakfield Primary", **settings: Any) -> dict[str, Any]:
        response = self.client.put(
            "/v1/school",
            json={"name": name, **settings},
            headers=self.auth("head", school=self.school),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def school_class(self, name: str = "Year 3 Oak", year_group: int = 3) -> str:
        response = self.client.post(
            "/v1/classes", json={"name": name, "year_group": year_group}, headers=self.office
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def pupil(
        self,
        given: str = "Amara",
        family: str = "Okafor",
        *,
        class_id: str | None = None,
        year_group: int = 3,
    ) -> str:
        response = self.client.post(
            "/v1/pupils",
            json={
                "mis_id": f"MIS{next(_mis):06d}",
                "given_name": given,
                "family_name": family,
                "year_group": year_group,
                "class_id": class_id,
            },
            headers=self.office,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def guardian(
        self,
        pupil_id: str,
        *,
        given: str = "Grace",
        family: str = "Okafor",
        responsible: bool = True,
        email: str | None = None,
    ) -> str:
        response = self.client.post(
            "/v1/guardians",
            json={
                "given_name": given,
                "family_name": family,
                "email": email or f"{given.lower()}.{uuid.uuid4().hex[:6]}@example.org",
                "children": [
                    {
                        "pupil_id": pupil_id,
                        "relationship": "parent",
                        "parental_responsibility": responsible,
                    }
                ],
            },
            headers=self.office,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def family(
        self,
        given: str = "Amara",
        family: str = "Okafor",
        *,
        carers: int = 1,
        class_id: str | None = None,
    ) -> Family:
        pupil_id = self.pupil(given, family, class_id=class_id)
        names = ["Grace", "Daniel", "Ruth"]
        return Family(
            pupil_id,
            [self.guardian(pupil_id, given=names[i], family=family) for i in range(carers)],
        )

    def consent(
        self,
        pupil_id: str,
        guardian_id: str | None,
        purpose: str = "website_photo",
        decision: str = "granted",
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "pupil_id": pupil_id,
            "purpose": purpose,
            "decision": decision,
            "guardian_id": guardian_id,
            "method": "paper",
            "evidence_ref": "form-1",
            **extra,
        }
        response = self.client.post("/v1/consents", json=body, headers=self.office)
        assert response.status_code == 201, response.text
        record: dict[str, Any] = response.json()
        return record

    def decide(
        self, purpose: str, *pupil_ids: str, role: str = "cms", at: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"purpose": purpose, "pupil_ids": list(pupil_ids)}
        if at is not None:
            body["at"] = at
        response = self.client.post(
            "/v1/decisions",
            json=body,
            headers=self.auth(role, school=self.school),
        )
        assert response.status_code == 200, response.text
        return {d["pupil_id"]: d for d in response.json()["decisions"]}


PROBLEM_JSON = "application/problem+json"


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and stable ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert body["code"] == code, body
    return body


class SchoolRecords:
    """Read-side helpers: what the school's records and audit trail hold right now."""

    def __init__(self, client: TestClient, auth: TokenFactory, school: str = SCHOOL) -> None:
        self.client = client
        self.auth = auth
        self.school = school

    def history(self, pupil_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/v1/pupils/{pupil_id}/consents", headers=self.auth("office", school=self.school)
        )
        assert response.status_code == 200, response.text
        history: list[dict[str, Any]] = response.json()["history"]
        return history

    def audit_entries(self) -> int:
        """How many entries the whole audit chain holds (every school)."""
        response = self.client.get(
            "/v1/audit:verify", headers=self.auth("head", school=self.school)
        )
        assert response.status_code == 200, response.text
        assert response.json()["intact"] is True, response.text
        return int(response.json()["entries"])

    def audit(self, **query: str) -> list[dict[str, Any]]:
        """This school's audit trail, newest first, as the head reads it."""
        response = self.client.get(
            "/v1/audit",
            params={"limit": "500", **query},
            headers=self.auth("head", school=self.school),
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def restrict(
    client: TestClient,
    auth: TokenFactory,
    pupil_id: str,
    *,
    reason: str = "Court order: must not be locatable",
    kind: str = "court_order",
    school: str = SCHOOL,
) -> dict[str, Any]:
    response = client.put(
        f"/v1/pupils/{pupil_id}/restriction",
        json={"kind": kind, "reason": reason},
        headers=auth("dsl", school=school),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def archive(client: TestClient, auth: TokenFactory, pupil_id: str, school: str = SCHOOL) -> None:
    response = client.post(f"/v1/pupils/{pupil_id}:archive", headers=auth("office", school=school))
    assert response.status_code == 200, response.text


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)
