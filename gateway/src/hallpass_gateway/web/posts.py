"""Posts: check a post before it goes out, publish it, and take down what must come down.

The check page sends the text and the pictures (stored ones, and new ones uploaded here from a
registered school device) to media's ``publications:check`` and draws its verdict where each
problem is: names highlighted in the text, boxes over the picture for faces and text read in it
(with the same boxes listed for screen readers), metadata fields, file names and each tagged
pupil's consent. Publishing and confirming a takedown are media's own calls, so its rules (who
publishes, M6; what must come down, M7) hold here as they do for the API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from hallpass_gateway.web.api import PageApi
from hallpass_gateway.web.i18n import Translator, catalogue, language_of
from hallpass_gateway.web.pages import as_uuid, long_date, pupil_name, trouble
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Principal, Role, TokenVerifier

# Media's publishers (M6): the head holds editorial responsibility; the deputy and the social
# media manager publish under it. They also check posts and confirm takedowns here.
POST_ROLES = frozenset({Role.head, Role.deputy, Role.social_media})
# Media's channels, in the order the form offers them; internal use is never published.
CHANNELS = ("website", "social_media", "print", "newspaper", "livestream")
TEXT_FIELDS = ("caption", "post_body", "alt_text")
TEXT_LIMITS = {"caption": 5000, "post_body": 20_000, "alt_text": 5000}
# Media checks at most 20 pictures at once.
MAX_PICTURES = 20
# Media's own ceiling on an upload; a little more is read so it refuses with its own words.
_MAX_UPLOAD = 25 * 1024 * 1024 + 1
# A new picture is scanned by media's worker within a second or two; the check waits this long
# for it before answering (a picture still unscanned is shown as such, to be checked again).
SCAN_WAIT_SECONDS = 10.0
# The consent states that bring a publication down (M7), each with its words.
TAKEDOWN_STATES = frozenset({"withdrawn", "refused", "expired", "restricted"})
_SCAN_POLL_SECONDS = 0.25

SECTIONS.append(Section("/app/posts", "posts.check.title", POST_ROLES))
SECTIONS.append(Section("/app/posts/takedowns", "posts.takedowns.title", POST_ROLES))


@dataclass(frozen=True)
class Problem:
    """One of the verdict's problems, numbered on the page so marks and boxes can point at it."""

    number: int
    code: str
    rule: str | None
    where: str
    detail: str
    blocking: bool
    pupil_name: str | None

    @property
    def anchor(self) -> str:
        return f"problem-{self.number}"


@dataclass(frozen=True)
class Segment:
    """A run of text; ``problem`` is set when the run is what a problem is about."""

    text: str
    problem: Problem | None = None


@dataclass(frozen=True)
class Box:
    """A box drawn over a picture, in percent of its size, and said in words for the list."""

    number: int
    kind: str  # face | text | name
    left: float
    top: float
    width: float
    height: float
    text: str | None = None
    problem: Problem | None = None


@dataclass(frozen=True)
class PupilConsent:
    name: str
    allowed: bool
    problem: Problem | None


@dataclass
class Picture:
    media_id: str | None
    file_name: str
    allowed: bool
    faces: int | None
    faces_to_blur: int
    problems: list[Problem] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    pupils: list[PupilConsent] = field(default_factory=list)
    metadata: list[tuple[str, list[Segment]]] = field(default_factory=list)


@dataclass
class Draft:
    """What the person typed and chose, carried from the form to the verdict and back."""

    channel: str = "website"
    texts: dict[str, str] = field(default_factory=dict)
    media_ids: list[str] = field(default_factory=list)
    device_id: str = ""

    def text(self, name: str) -> str:
        return self.texts.get(name, "")

    def api_texts(self) -> dict[str, str | None]:
        return {name: (self.texts.get(name) or "").strip() or None for name in TEXT_FIELDS}


def where_label(t: Translator, where: str) -> str:
    """Where a problem is, in words: a text field, the file name, a metadata field, …"""
    if where.startswith("metadata."):
        return t("posts.where.metadata", field=where.removeprefix("metadata."))
    key = f"posts.where.{where}"
    return t(key) if key in catalogue("en") else where


def explain(t: Translator, problem: Problem) -> str:
    """The problem in the page's language: media's own words in English, the catalogue's
    summary of its code in Welsh (media's detail is English)."""
    key = f"posts.code.{problem.code}"
    if t.language == "en" or key not in catalogue("en"):
        return problem.detail
    return t(key)


def segments(text: str, spans: Sequence[tuple[int, int, Problem]]) -> list[Segment]:
    """``text`` cut into runs, those a problem's span covers marked; overlapping spans are
    drawn as one mark (the first problem's), never as text repeated."""
    runs: list[Segment] = []
    at = 0
    for start, end, problem in sorted(spans, key=lambda span: (span[0], -span[1])):
        start, end = max(start, at), min(end, len(text))
        if start >= end:
            continue
        if start > at:
            runs.append(Segment(text[at:start]))
        runs.append(Segment(text[start:end], problem))
        at = end
    if at < len(text):
        runs.append(Segment(text[at:]))
    return runs


def _percent(part: object, whole: int) -> float:
    value = part if isinstance(part, int) else 0
    return round(max(0.0, min(100.0, 100.0 * value / whole)), 3) if whole > 0 else 0.0


def _box(
    number: int, kind: str, raw: Mapping[str, Any], size: tuple[int, int], **extra: Any
) -> Box:
    width, height = size
    return Box(
        number=number,
        kind=kind,
        left=_percent(raw.get("x"), width),
        top=_percent(raw.get("y"), height),
        width=_percent(raw.get("width"), width),
        height=_percent(raw.get("height"), height),
        **extra,
    )


def _same_box(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in ("x", "y", "width", "height"))


class Numbering:
    """Numbers the verdict's problems in the order the page shows them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, raw: Mapping[str, Any]) -> Problem:
        self.count += 1
        return Problem(
            number=self.count,
            code=str(raw.get("code", "")),
            rule=raw.get("rule") if isinstance(raw.get("rule"), str) else None,
            where=str(raw.get("where", "")),
            detail=str(raw.get("detail", "")),
            blocking=bool(raw.get("blocking", True)),
            pupil_name=raw.get("pupil_name") if isinstance(raw.get("pupil_name"), str) else None,
        )


def _spans(
    raws: Sequence[tuple[Mapping[str, Any], Problem]], where: str
) -> list[tuple[int, int, Problem]]:
    found: list[tuple[int, int, Problem]] = []
    for raw, problem in raws:
        span = raw.get("span")
        if raw.get("where") == where and isinstance(span, dict):
            start, end = span.get("start"), span.get("end")
            if isinstance(start, int) and isinstance(end, int):
                found.append((start, end, problem))
    return found


def text_views(
    draft: Draft, numbered: Sequence[tuple[Mapping[str, Any], Problem]]
) -> list[tuple[str, list[Segment]]]:
    """Each text that was checked, with the names and contact details found in it marked."""
    return [
        (name, segments(draft.api_texts()[name] or "", _spans(numbered, name)))
        for name in TEXT_FIELDS
        if draft.api_texts()[name]
    ]


def picture_view(
    raw: Mapping[str, Any],
    number: Numbering,
    stored: Mapping[str, Any] | None,
    scan: Mapping[str, Any] | None,
    pupil_names: Mapping[str, str],
) -> Picture:
    """One picture's verdict as the page draws it: its problems, its boxes, its pupils."""
    numbered = [(p, number(p)) for p in raw.get("problems", []) if isinstance(p, dict)]
    media_id = as_uuid(raw.get("media_id"))
    file_name = str(
        raw.get("file_name") or (stored or {}).get("original_filename") or media_id or ""
    )
    picture = Picture(
        media_id=media_id,
        file_name=file_name,
        allowed=bool(raw.get("allowed")),
        faces=raw.get("faces") if isinstance(raw.get("faces"), int) else None,
        faces_to_blur=int(raw.get("faces_to_blur") or 0),
        problems=[problem for _, problem in numbered],
    )
    result = (scan or {}).get("result") if scan else None
    result = result if isinstance(result, dict) else {}
    size = (
        int(result.get("width") or (stored or {}).get("width") or 0),
        int(result.get("height") or (stored or {}).get("height") or 0),
    )
    boxed = [(p, problem) for p, problem in numbered if isinstance(p.get("box"), dict)]
    for face in result.get("faces", []):
        if isinstance(face, dict):
            picture.boxes.append(_box(len(picture.boxes) + 1, "face", face, size))
    drawn: list[Problem] = []
    for line in result.get("image_text", []):
        if not isinstance(line, dict) or not isinstance(line.get("box"), dict):
            continue
        named = next((pr for p, pr in boxed if _same_box(p["box"], line["box"])), None)
        if named is not None:
            drawn.append(named)
        picture.boxes.append(
            _box(
                len(picture.boxes) + 1,
                "name" if named else "text",
                line["box"],
                size,
                text=str(line.get("text", "")),
                problem=named,
            )
        )
    for p, problem in boxed:
        if problem not in drawn:
            picture.boxes.append(
                _box(len(picture.boxes) + 1, "name", p["box"], size, problem=problem)
            )
    for item in result.get("metadata", []):
        if isinstance(item, dict) and item.get("where"):
            where = str(item["where"])
            spans = _spans(numbered, where)
            if spans:
                picture.metadata.append((where, segments(str(item.get("text", "")), spans)))
    by_pupil = {
        str(p.get("pupil_id")): problem
        for p, problem in numbered
        if p.get("where") == "pupils" and p.get("pupil_id")
    }
    for tagged in (stored or {}).get("pupils", []):
        pupil = str(tagged.get("pupil_id")) if isinstance(tagged, dict) else ""
        concern = by_pupil.get(pupil)
        name = (concern.pupil_name if concern else None) or pupil_names.get(pupil) or ""
        picture.pupils.append(PupilConsent(name=name, allowed=concern is None, problem=concern))
    return picture


async def _stored_pictures(api: PageApi) -> list[Mapping[str, Any]]:
    answer = await api.get("/media/v1/media", params={"limit": "50"})
    items = answer.body.get("items", []) if answer.ok and isinstance(answer.body, dict) else []
    return [item for item in items if isinstance(item, dict)]


async def _devices(api: PageApi) -> list[Mapping[str, Any]]:
    answer = await api.get("/media/v1/devices", params={"limit": "200"})
    items = answer.body.get("items", []) if answer.ok and isinstance(answer.body, dict) else []
    return [item for item in items if isinstance(item, dict) and item.get("active")]


async def _scanned(api: PageApi, media_ids: Sequence[str]) -> None:
    """Wait (briefly) until media's worker has scanned the new pictures."""
    waiting = list(media_ids)
    deadline = asyncio.get_running_loop().time() + SCAN_WAIT_SECONDS
    while waiting and asyncio.get_running_loop().time() < deadline:
        still = []
        for media_id in waiting:
            answer = await api.get(f"/media/v1/media/{media_id}")
            status = answer.body.get("scan", {}).get("status") if answer.ok else None
            if status in ("pending", "scanning"):
                still.append(media_id)
        waiting = still
        if waiting:
            await asyncio.sleep(_SCAN_POLL_SECONDS)


def _draft(form: FormData) -> Draft:
    channel = str(form.get("channel", ""))
    return Draft(
        channel=channel if channel in CHANNELS else "website",
        texts={name: str(form.get(name, ""))[: TEXT_LIMITS[name] + 1] for name in TEXT_FIELDS},
        media_ids=[
            media_id
            for value in form.getlist("media_id")[:MAX_PICTURES]
            if (media_id := as_uuid(value)) is not None
        ],
        device_id=as_uuid(form.get("device_id", "")) or "",
    )


def posts_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def staff(request: Request) -> tuple[Principal, Translator] | Response:
        principal = await viewer(request, verifier)
        t = Translator(language_of(request))
        if not principal.has_any(POST_ROLES):
            return render(
                request,
                "message.html",
                status=403,
                title=t("posts.check.title"),
                message=t("site.not_allowed"),
            )
        return principal, t

    async def check_page(
        request: Request,
        t: Translator,
        principal: Principal,
        api: PageApi,
        draft: Draft,
        *,
        status: int = 200,
        verdict: Mapping[str, Any] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> Response:
        stored = await _stored_pictures(api)
        devices = await _devices(api)
        texts: list[tuple[str, list[Segment]]] = []
        text_problems: list[Problem] = []
        pictures: list[Picture] = []
        if verdict is not None:
            number = Numbering()
            numbered = [
                (p, number(p)) for p in verdict.get("text_problems", []) if isinstance(p, dict)
            ]
            text_problems = [problem for _, problem in numbered]
            texts = text_views(draft, numbered)
            by_id = {str(item.get("id")): item for item in stored}
            pupil_names = await _pupil_names(api, by_id, verdict)
            for image in verdict.get("images", []):
                if not isinstance(image, dict):
                    continue
                media_id = as_uuid(image.get("media_id"))
                found = by_id.get(media_id or "")
                if media_id and found is None:
                    answer = await api.get(f"/media/v1/media/{media_id}")
                    found = answer.body if answer.ok else None
                scan = await api.get(f"/media/v1/media/{media_id}/scan") if media_id else None
                pictures.append(
                    picture_view(
                        image,
                        number,
                        found,
                        scan.body if scan is not None and scan.ok else None,
                        pupil_names,
                    )
                )
        return render(
            request,
            "posts/check.html",
            status=status,
            title=t("posts.check.title"),
            draft=draft,
            channels=CHANNELS,
            text_fields=TEXT_FIELDS,
            stored=stored,
            devices=devices,
            verdict=verdict,
            texts=texts,
            text_problems=text_problems,
            pictures=pictures,
            errors=errors or {},
            may_publish=principal.has_any(POST_ROLES),
            who=principal.email or principal.sub,
            publish_key=str(uuid.uuid4()),
            long_date=lambda value: long_date(t, value),
            where=lambda name: where_label(t, name),
            explain=lambda problem: explain(t, problem),
        )

    @router.get("/app/posts", response_class=HTMLResponse)
    async def post_form(request: Request) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        principal, t = allowed
        async with PageApi(request.app, request) as api:
            return await check_page(request, t, principal, api, Draft())

    @router.post("/app/posts/check", response_class=HTMLResponse)
    async def check(request: Request) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        principal, t = allowed
        async with request.form(max_files=MAX_PICTURES, max_fields=200) as form:
            draft = _draft(form)
            uploads = [
                value
                for value in form.getlist("files")
                if isinstance(value, UploadFile) and value.filename
            ]
            files = [
                (upload.filename or "upload", await upload.read(_MAX_UPLOAD), upload.content_type)
                for upload in uploads
            ]
        async with PageApi(request.app, request) as api:
            errors: dict[str, str] = {}
            if len(draft.media_ids) + len(files) > MAX_PICTURES:
                errors["pictures"] = t("posts.check.too_many", limit=MAX_PICTURES)
            elif files and not draft.device_id:
                errors["device_id"] = t("posts.check.device_needed")
            if errors:
                return await check_page(
                    request, t, principal, api, draft, status=422, errors=errors
                )
            uploaded: list[str] = []
            for name, data, content_type in files:
                answer = await api.post_files(
                    "/media/v1/media",
                    data={"device_id": draft.device_id},
                    files=[("file", (name, data, content_type or "application/octet-stream"))],
                )
                if not answer.ok:
                    errors["files"] = t(
                        "posts.check.upload_refused", name=name, detail=answer.detail
                    )
                    return await check_page(
                        request, t, principal, api, draft, status=answer.status, errors=errors
                    )
                uploaded.append(str(answer.body["id"]))
            draft.media_ids = [*draft.media_ids, *uploaded]
            await _scanned(api, uploaded)
            verdict = await api.post(
                "/media/v1/publications:check",
                json={"channel": draft.channel, "media_ids": draft.media_ids, **draft.api_texts()},
            )
            if not verdict.ok:
                errors["check"] = verdict.detail or t("site.try_again")
                return await check_page(
                    request, t, principal, api, draft, status=verdict.status, errors=errors
                )
            return await check_page(request, t, principal, api, draft, verdict=verdict.body)

    @router.post("/app/posts/publish", response_class=HTMLResponse)
    async def publish(request: Request) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        principal, t = allowed
        form = await request.form()
        draft = _draft(form)
        key = str(form.get("publish_key", ""))[:200] or str(uuid.uuid4())
        body: dict[str, Any] = {
            "channel": draft.channel,
            "media_ids": draft.media_ids,
            **draft.api_texts(),
        }
        for name, limit in (("target_url", 2000), ("post_id", 200)):
            value = str(form.get(name, "")).strip()[: limit + 1]
            if value:
                body[name] = value
        async with PageApi(request.app, request) as api:
            published = await api.post(
                "/media/v1/publications", json=body, headers={"Idempotency-Key": key}
            )
            if published.ok:
                return RedirectResponse(
                    f"/app/posts/publications/{published.body['id']}?published=1", status_code=303
                )
            if published.problem_code == "publication_refused":
                verdict = await api.post(
                    "/media/v1/publications:check",
                    json={
                        "channel": draft.channel,
                        "media_ids": draft.media_ids,
                        **draft.api_texts(),
                    },
                )
                return await check_page(
                    request,
                    t,
                    principal,
                    api,
                    draft,
                    status=422,
                    verdict=verdict.body if verdict.ok else None,
                    errors={"publish": published.detail},
                )
            return await check_page(
                request,
                t,
                principal,
                api,
                draft,
                status=published.status if published.status >= 400 else 502,
                errors={"publish": published.detail or t("site.try_again")},
            )

    @router.get("/app/posts/publications/{publication_id}", response_class=HTMLResponse)
    async def publication(request: Request, publication_id: str) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        _, t = allowed
        found = as_uuid(publication_id)
        if found is None:
            return trouble(request, 404, t("posts.publication.not_found"))
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/media/v1/publications/{found}")
        if not answer.ok:
            return trouble(request, answer.status, answer.detail)
        return render(
            request,
            "posts/publication.html",
            title=t("posts.publication.title"),
            publication=answer.body,
            published=request.query_params.get("published") == "1",
            long_date=lambda value: long_date(t, value),
        )

    async def takedown_page(
        request: Request, t: Translator, *, status: int = 200, error: tuple[str, str] | None = None
    ) -> Response:
        async with PageApi(request.app, request) as api:
            answer = await api.get(
                "/media/v1/publications", params={"status": "takedown_required", "limit": "200"}
            )
        if not answer.ok:
            return trouble(request, answer.status, answer.detail)
        done = as_uuid(request.query_params.get("done", ""))
        return render(
            request,
            "posts/takedowns.html",
            status=status,
            title=t("posts.takedowns.title"),
            publications=answer.body.get("items", []),
            takedown_states=TAKEDOWN_STATES,
            done=done,
            error=error,
            long_date=lambda value: long_date(t, value),
        )

    @router.get("/app/posts/takedowns", response_class=HTMLResponse)
    async def takedowns(request: Request) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        return await takedown_page(request, allowed[1])

    @router.post("/app/posts/takedowns/{publication_id}", response_class=HTMLResponse)
    async def confirm_takedown(request: Request, publication_id: str) -> Response:
        allowed = await staff(request)
        if isinstance(allowed, Response):
            return allowed
        _, t = allowed
        found = as_uuid(publication_id)
        if found is None:
            return trouble(request, 404, t("posts.publication.not_found"))
        form = await request.form()
        if form.get("removed") != "yes":
            return await takedown_page(
                request, t, status=422, error=(found, t("posts.takedowns.tick_first"))
            )
        async with PageApi(request.app, request) as api:
            answer = await api.post(f"/media/v1/publications/{found}:confirm-takedown")
        if not answer.ok:
            return await takedown_page(
                request,
                t,
                status=answer.status,
                error=(found, answer.detail or t("site.try_again")),
            )
        return RedirectResponse(f"/app/posts/takedowns?done={found}", status_code=303)

    return router


async def _pupil_names(
    api: PageApi, stored: Mapping[str, Mapping[str, Any]], verdict: Mapping[str, Any]
) -> dict[str, str]:
    """The names of the pupils tagged in the checked pictures whose consent is in order (the
    verdict names only those with a problem)."""
    wanted: set[str] = set()
    for image in verdict.get("images", []):
        found = stored.get(str(image.get("media_id"))) if isinstance(image, dict) else None
        for tagged in (found or {}).get("pupils", []):
            if isinstance(tagged, dict) and (pupil := as_uuid(tagged.get("pupil_id"))):
                wanted.add(pupil)
    names: dict[str, str] = {}
    for pupil in sorted(wanted)[:200]:
        answer = await api.get(f"/consent/v1/pupils/{pupil}")
        if answer.ok and isinstance(answer.body, dict):
            names[pupil] = pupil_name(answer.body)
    return names
