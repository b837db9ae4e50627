"""The pages speak to the services through their own APIs, as the signed-in person.

Each page's calls go through the gateway app itself (in-process, over ASGI): in all-in-one mode
they reach the mounted services, in proxy mode the upstreams, and in both they carry the person's
own bearer token and chosen school, so every rule the API enforces holds for the pages too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp

from hallpass_kit.clients import SCHOOL_HEADER

# Headers of the browser's request that the API call carries on: who (the session's token, added
# by the session middleware), for which school, in which language, and the request id.
_FORWARDED = ("authorization", SCHOOL_HEADER.lower(), "accept-language", "x-request-id")


@dataclass(frozen=True)
class Answer:
    """An API answer as a page reads it: the status and the JSON body (a problem when not 2xx)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def problem_code(self) -> str | None:
        if self.ok or not isinstance(self.body, dict):
            return None
        code = self.body.get("code")
        return code if isinstance(code, str) else None

    @property
    def detail(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("detail"), str):
            return str(self.body["detail"])
        return ""


class PageApi:
    """One page's way to the services: ``await api.get("/consent/v1/me/children")``."""

    def __init__(self, app: ASGIApp, request: Request) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hallpass.internal"
        )
        self._headers = {
            name: value for name in _FORWARDED if (value := request.headers.get(name)) is not None
        }

    async def __aenter__(self) -> PageApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        return await self._call("GET", path, params=params, headers=headers)

    async def post(
        self, path: str, *, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        return await self._call("POST", path, json=json, headers=headers)

    async def put(self, path: str, *, json: Any = None) -> Answer:
        return await self._call("PUT", path, json=json)

    async def delete(self, path: str) -> Answer:
        return await self._call("DELETE", path)

    async def post_content(
        self,
        path: str,
        content: bytes,
        *,
        content_type: str,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """A body that is not JSON, e.g. a CSV file for an import."""
        return await self._call(
            "POST", path, params=params, content=content, headers={"content-type": content_type}
        )

    async def post_files(
        self,
        path: str,
        *,
        data: Mapping[str, str],
        files: list[tuple[str, tuple[str, bytes, str]]],
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """A multipart POST: form fields and files, ``[("file", (name, bytes, type))]``."""
        response = await self._client.post(
            path,
            data=data,
            files=files,
            headers={**self._headers, "accept": "application/json", **(headers or {})},
        )
        try:
            return Answer(response.status_code, response.json() if response.content else None)
        except ValueError:
            return Answer(response.status_code, None)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        response = await self._client.request(
            method,
            path,
            params=params,
            json=json,
            content=content,
            headers={**self._headers, "accept": "application/json", **(headers or {})},
        )
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return Answer(response.status_code, body)
