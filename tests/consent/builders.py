"""Small builders for test data, through the public API (so the data is what the API makes)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

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
        response = self.client.put("/v1/school", json={"name": name, **settings},
                                   headers=self.auth("head", school=self.school))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def school_class(self, name: str = "Year 3 Oak", year_group: int = 3) -> str:
        response = self.client.post("/v1/classes", json={"name": name, "year_group": year_group},
                                    headers=self.office)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def pupil(self, given: str = "Amara", family: str = "Okafor", *, class_id: str | None = None,
              year_group: int = 3) -> str:
        response = self.client.post("/v1/pupils", json={
            "mis_id": f"MIS{next(_mis):06d}", "given_name": given, "family_name": family,
            "year_group": year_group, "class_id": class_id,
        }, headers=self.office)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def guardian(self, pupil_id: str, *, given: str = "Grace", family: str = "Okafor",
                 responsible: bool = True, email: str | None = None) -> str:
        response = self.client.post("/v1/guardians", json={
            "given_name": given, "family_name": family,
            "email": email or f"{given.lower()}.{uuid.uuid4().hex[:6]}@example.org",
            "children": [{"pupil_id": pupil_id, "relationship": "parent",
                          "parental_responsibility": responsible}],
        }, headers=self.office)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def family(self, given: str = "Amara", family: str = "Okafor", *, carers: int = 1,
               class_id: str | None = None) -> Family:
        pupil_id = self.pupil(given, family, class_id=class_id)
        names = ["Grace", "Daniel", "Ruth"]
        return Family(pupil_id, [self.guardian(pupil_id, given=names[i], family=family)
                                 for i in range(carers)])

    def consent(self, pupil_id: str, guardian_id: str | None, purpose: str = "website_photo",
                decision: str = "granted", **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"pupil_id": pupil_id, "purpose": purpose, "decision": decision,
                                "guardian_id": guardian_id, "method": "paper",
                                "evidence_ref": "form-1", **extra}
        response = self.client.post("/v1/consents", json=body, headers=self.office)
        assert response.status_code == 201, response.text
        record: dict[str, Any] = response.json()
        return record

    def decide(self, purpose: str, *pupil_ids: str, role: str = "cms") -> dict[str, Any]:
        response = self.client.post("/v1/decisions",
                                    json={"purpose": purpose, "pupil_ids": list(pupil_ids)},
                                    headers=self.auth(role, school=self.school))
        assert response.status_code == 200, response.text
        return {d["pupil_id"]: d for d in response.json()["decisions"]}
