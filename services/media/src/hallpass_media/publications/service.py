"""Checks and publishing: gather the facts, let the policy judge, keep the evidence."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from hallpass_kit.auth import STAFF_ROLES, Principal
from hallpass_kit.db import Database
from hallpass_kit.errors import Conflict, NotFound, ProblemDetail, Unprocessable
from hallpass_kit.pagination import Page, decode_position, encode_position
from hallpass_media.channels import (
    NAMING_CHANNELS,
    PURPOSE_OF,
    UNPUBLISHABLE,
    channels_for_purpose,
)
from hallpass_media.common import Refused, audit, emit_event, record_audit
from hallpass_media.compensation import delete_on_rollback
from hallpass_media.consent_facts import PupilDecision, Roster
from hallpass_media.context import MediaContext
from hallpass_media.devices.service import active_device
from hallpass_media.events import (
    ConsentChangedNotice,
    PublicationPublished,
    PublicationTakedownRequired,
    PublicationTakenDown,
)
from hallpass_media.media import repository as media_repository
from hallpass_media.media.schemas import FaceBox, TaggedPupil
from hallpass_media.media.service import EXTENSIONS, refuse_image
from hallpass_media.models import (
    Channel,
    MediaItem,
    Owner,
    Publication,
    PublicationPupil,
    PublicationRendition,
    PublicationStatus,
    ScanStatus,
)
from hallpass_media.publications import policy, repository
from hallpass_media.publications.repository import Reads, StoredPicture
from hallpass_media.publications.schemas import (
    CheckProblem,
    CheckVerdict,
    ImageVerdict,
    PublicationView,
    PublishRequest,
    RenditionView,
    TakedownView,
)
from hallpass_media.scanning import (
    Box,
    ImageRefused,
    ImageScans,
    ScanResult,
    ScanTooSlow,
    ScanWorkers,
    check_header,
    clean_rendition,
    phash_distance,
)
from hallpass_media.scanning.workers import BUSY_RETRY_AFTER
from hallpass_media.school_settings.service import DEFAULTS as SCHOOL_DEFAULTS
from hallpass_media.school_settings.service import MediaSchoolSettings

# Who flags publications for takedown in the audit trail: the service itself, not a person.
TAKEDOWN_ACTOR = "service:media-takedown"
SAME_PICTURE = 10  # perceptual-hash distance at or under which two files are the same picture


@dataclass(frozen=True)
class UploadedFile:
    file_name: str
    data: bytes


@dataclass(frozen=True)
class CheckInput:
    channel: Channel
    media_ids: Sequence[uuid.UUID]
    files: Sequence[UploadedFile]
    texts: Mapping[str, str | None]
    blur_faces: bool | None
    device_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CheckOutcome:
    verdict: CheckVerdict
    blur: dict[uuid.UUID, list[Box]]
    pupils: dict[uuid.UUID, bool]  # pupil -> named in the text (else shown)
    items: list[StoredPicture]


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _load_items(
    session: Reads, principal: Principal, media_ids: Sequence[uuid.UUID]
) -> list[StoredPicture]:
    if len(set(media_ids)) != len(media_ids):
        raise Unprocessable("A media id is listed twice.", code="duplicate_media")
    found = {
        item.id: item for item in repository.stored_pictures(session, principal.school, media_ids)
    }
    missing = [i for i, m in enumerate(media_ids) if m not in found]
    if missing:
        raise Unprocessable(
            "Some media ids are not this school's media.",
            code="unknown_media",
            problems=[
                ProblemDetail(
                    code="unknown_media", detail="No such media.", where=f"media_ids[{i}]"
                )
                for i in missing
            ],
        )
    return [found[m] for m in media_ids]


def _tagged(session: Reads, media_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[TaggedPupil]]:
    tagged: dict[uuid.UUID, list[TaggedPupil]] = {m: [] for m in media_ids}
    for row in repository.tags(session, media_ids):
        face = (
            FaceBox(x=row.face_x, y=row.face_y, width=row.face_width, height=row.face_height)
            if row.face_x is not None
            and row.face_y is not None
            and row.face_width is not None
            and row.face_height is not None
            else None
        )
        tagged[row.media_id].append(TaggedPupil(pupil_id=row.pupil_id, face=face))
    return tagged


def _choices(session: Reads, school: str) -> MediaSchoolSettings:
    chosen = repository.school_choices(session, school)
    if chosen is None:
        return SCHOOL_DEFAULTS
    return MediaSchoolSettings(forbid_first_names=chosen[0], blur_untagged_faces=chosen[1])


def _match_stored(session: Session, school: str, phash: int) -> MediaItem | None:
    """The stored picture an uploaded copy (resized, recompressed) comes from, if any."""
    best: tuple[int, uuid.UUID] | None = None
    for media_id, stored in media_repository.hashed(session, school):
        if stored is None:
            continue
        distance = phash_distance(phash, stored)
        if distance <= SAME_PICTURE and (best is None or distance < best[0]):
            best = (distance, media_id)
    return media_repository.find(session, school, best[1]) if best else None


def _stored_facts(item: StoredPicture, tagged: list[TaggedPupil]) -> policy.ImageFacts:
    scan = ScanResult.from_json(item.scan_result) if item.scan_result else None
    return policy.ImageFacts(
        media_id=item.id,
        file_name=item.original_filename,
        tagged=tagged,
        scan_status=item.scan_status,
        scan=scan if item.scan_status is ScanStatus.done else None,
        owner=item.owner,
        permission=item.permission,
        device_registered=True,
        known=True,
        goes_out_as_is=False,
    )


@dataclass(frozen=True)
class Gathered:
    """What the media service itself knows about a check, read before consent is asked."""

    rules: policy.Rules
    purpose: str
    facts: list[policy.ImageFacts]
    items: list[StoredPicture]


@dataclass(frozen=True)
class Found:
    """Names found, and the pupils whose consent decides the answer."""

    text: list[policy.Found]
    images: list[list[policy.Found]]
    asked: list[uuid.UUID]
    named: set[uuid.UUID]


def _refuse_empty_or_too_many(media: MediaContext, request: CheckInput) -> None:
    if not request.media_ids and not request.files and not any(request.texts.values()):
        raise Unprocessable(
            "Give media ids, a file or some text to check.", code="nothing_to_check"
        )
    if len(request.media_ids) + len(request.files) > media.settings.max_check_items:
        raise Unprocessable(
            f"At most {media.settings.max_check_items} pictures per check.", code="too_many_items"
        )


def gather(
    media: MediaContext,
    principal: Principal,
    request: CheckInput,
    session: Session | None = None,
    scans: Sequence[ScanResult] | None = None,
) -> Gathered:
    """Scan uploaded files (unless their ``scans`` are given), then read the stored facts
    (blocking: run it in a worker thread).

    Reads in ``session`` when given (the caller's transaction goes on to write), otherwise in a
    short transaction of its own.
    """
    _refuse_empty_or_too_many(media, request)
    purpose = PURPOSE_OF[request.channel]
    if scans is None:
        # Uploaded files are scanned before any transaction starts: a scan takes a while. The
        # header is checked here; the decode and scan happen in a scan worker, whose memory and
        # time are capped (a file that exhausts it answers 422 image_unscannable).
        scans = []
        for upload in request.files:
            try:
                check_header(upload.data, media.limits)
                scans.append(media.get_scanner().scan(upload.data))
            except ImageRefused as exc:
                raise refuse_image(exc) from exc

    # Without a caller's session the facts are read in a short read-only transaction of their
    # own (on PostgreSQL, statements in autocommit, each with its snapshot, as under READ
    # COMMITTED), ended before the consent service is asked anything: it takes no write lock
    # (SQLite) and waits for no writer, so concurrent checks never queue behind each other's audit.
    with _reading(media, session, orm=bool(request.files)) as reads:
        choices = _choices(reads, principal.school)
        items = _load_items(reads, principal, request.media_ids)
        tags = _tagged(reads, [i.id for i in items])
        facts = [_stored_facts(item, tags[item.id]) for item in items]
        for upload, scan in zip(request.files, scans, strict=True):
            assert isinstance(reads, Session)  # uploads are matched through the ORM
            match = _match_stored(reads, principal.school, _signed64(scan.phash))
            device_ok = request.device_id is None or (
                active_device(reads, principal.school, request.device_id) is not None
            )
            matched_tags = _tagged(reads, [match.id])[match.id] if match else []
            facts.append(
                policy.ImageFacts(
                    media_id=match.id if match else None,
                    file_name=upload.file_name,
                    tagged=matched_tags,
                    scan_status=ScanStatus.done,
                    scan=scan,
                    owner=match.owner if match else Owner.school,
                    permission=match.permission if match else None,
                    device_registered=device_ok,
                    known=match is not None,
                    goes_out_as_is=True,
                )
            )
    rules = policy.Rules(
        channel=request.channel,
        purpose=purpose,
        first_names=choices.forbid_first_names,
        blur_faces=choices.blur_untagged_faces
        if request.blur_faces is None
        else request.blur_faces,
        staff_view=principal.has_any(STAFF_ROLES),
    )
    return Gathered(rules, purpose, facts, items)


@contextmanager
def _reading(media: MediaContext, session: Session | None, *, orm: bool) -> Iterator[Reads]:
    if session is not None:
        yield session
        return
    if orm:
        with media.database.session(read_only=True) as own:
            yield own
        return
    # Stored pictures only: three prepared statements that need no ORM session around them.
    with media.database.reading() as connection:
        yield connection


def find_names(roster: Roster, gathered: Gathered, request: CheckInput) -> Found:
    rules = gathered.rules
    text_found = policy.find_in_texts(roster, rules, request.texts)
    image_found = [policy.find_in_image(roster, rules, f) for f in gathered.facts]
    asked: dict[uuid.UUID, None] = {}
    for f in gathered.facts:
        asked.update((t.pupil_id, None) for t in f.tagged)
    named: set[uuid.UUID] = set()
    if request.channel in NAMING_CHANNELS:
        # C4: on a naming channel, a named pupil's own naming consent decides.
        named = {found.hit.pupil_id for found in text_found}
        named.update(found.hit.pupil_id for group in image_found for found in group)
        asked.update((p, None) for p in sorted(named))
    return Found(text_found, image_found, list(asked), named)


def judge(
    gathered: Gathered,
    found: Found,
    roster: Roster,
    decisions: Mapping[uuid.UUID, PupilDecision],
    request: CheckInput,
) -> CheckOutcome:
    rules = gathered.rules
    text_problems: list[CheckProblem] = [
        *policy.name_problems(found.text, rules, decisions, roster),
        *policy.contact_problems(request.texts),
    ]
    verdicts: list[ImageVerdict] = []
    blur: dict[uuid.UUID, list[Box]] = {}
    for f, names in zip(gathered.facts, found.images, strict=True):
        verdict, boxes = policy.image_verdict(f, names, rules, decisions, roster)
        verdicts.append(verdict)
        if f.media_id is not None and not f.goes_out_as_is:
            blur[f.media_id] = boxes
    allowed = not any(p.blocking for p in text_problems) and all(v.allowed for v in verdicts)
    result = CheckVerdict(
        channel=request.channel,
        purpose=gathered.purpose,
        allowed=allowed,
        text_problems=text_problems,
        images=verdicts,
    )
    pupils: dict[uuid.UUID, bool] = {p: False for p in found.asked if p not in found.named}
    pupils.update({p: True for p in found.named if p in decisions and decisions[p].allowed})
    return CheckOutcome(result, blur, pupils, gathered.items)


def record_check(
    session: Session, principal: Principal, request: CheckInput, verdict: CheckVerdict
) -> None:
    record_audit(
        session,
        principal,
        "publication.checked",
        None,
        {
            "channel": request.channel.value,
            "media_ids": [str(m) for m in request.media_ids],
            "files": [f.file_name for f in request.files],
            "allowed": verdict.allowed,
            "problems": sorted(
                {p.code for p in verdict.text_problems}
                | {p.code for v in verdict.images for p in v.problems}
            ),
        },
    )


def check(
    session: Session,
    media: MediaContext,
    principal: Principal,
    request: CheckInput,
    *,
    audit: bool = True,
) -> CheckOutcome:
    """Judge pictures and text for one channel; fails closed when consent cannot answer."""
    gathered = gather(media, principal, request, session)
    roster = media.consent.roster(principal.school)
    found = find_names(roster, gathered, request)
    decisions = media.consent.decisions(principal.school, gathered.purpose, found.asked)
    outcome = judge(gathered, found, roster, decisions, request)
    if audit:
        record_check(session, principal, request, outcome.verdict)
    return outcome


async def scan_uploads(media: MediaContext, request: CheckInput) -> list[ScanResult]:
    """Scan the files of a check in the scan workers, off the request path: the request waits
    on the event loop, holding no thread, for at most ``check_file_scan_seconds`` in all
    (503 ``scan_too_slow`` past it: a check never says yes without its scan)."""
    _refuse_empty_or_too_many(media, request)
    seconds = media.settings.check_file_scan_seconds
    deadline = time.monotonic() + seconds
    scanner = media.get_scanner()
    scans: list[ScanResult] = []
    for upload in request.files:
        try:
            # A walk over the header's chunk lengths: nothing is decoded in this process.
            check_header(upload.data, media.limits)
            remaining = deadline - time.monotonic()
            if isinstance(scanner, ScanWorkers):
                scans.append(await scanner.scan_async(upload.data, seconds=max(remaining, 0)))
            else:
                # An in-process scanner (tests, tools): a thread scans, the wait is bounded.
                scans.append(await _scan_in_thread(scanner, upload.data, remaining, seconds))
        except ImageRefused as exc:
            raise refuse_image(exc) from exc
    return scans


async def _scan_in_thread(
    scanner: ImageScans, data: bytes, remaining: float, seconds: float
) -> ScanResult:
    try:
        if remaining <= 0:
            raise TimeoutError
        return await asyncio.wait_for(run_in_threadpool(scanner.scan, data), remaining)
    except TimeoutError:
        raise ScanTooSlow(
            f"The picture was not scanned within {seconds:g} seconds; nothing was decided.",
            retry_after=BUSY_RETRY_AFTER,
        ) from None


@dataclass(frozen=True)
class _CheckEntry:
    principal: Principal
    request: CheckInput
    verdict: CheckVerdict
    loop: asyncio.AbstractEventLoop
    recorded: asyncio.Future[None]


class CheckAudits:
    """The audit entries of checks, written by group commit.

    A check is answered only once its entry is committed, as before; but checks that finish
    while an entry is being written share the next transaction and its one commit, instead of
    queueing one by one for the database's write lock (SQLite) and a commit each. One writer at a
    time, in a worker thread; the requests wait on the event loop, holding no thread.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._waiting: list[_CheckEntry] = []
        self._writing = False
        self._writers: set[asyncio.Future[None]] = set()

    async def record(
        self, principal: Principal, request: CheckInput, verdict: CheckVerdict
    ) -> None:
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiting.append(_CheckEntry(principal, request, verdict, loop, recorded))
            start, self._writing = not self._writing, True
        if start:
            writer = asyncio.ensure_future(run_in_threadpool(self._write_waiting))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        # Shielded: a request that goes away still has its entry written.
        await asyncio.shield(recorded)

    def _write_waiting(self) -> None:
        while True:
            with self._lock:
                batch, self._waiting = self._waiting, []
                if not batch:
                    self._writing = False
                    return
            failure: BaseException | None = None
            try:
                with self._database.session() as session:
                    for entry in batch:
                        record_check(session, entry.principal, entry.request, entry.verdict)
            except Exception as exc:  # every check of the batch answers it (none recorded)
                failure = exc
            for entry in batch:
                # A loop already closed has nobody left waiting on it.
                with suppress(RuntimeError):
                    entry.loop.call_soon_threadsafe(_settle, entry.recorded, failure)


def _settle(recorded: asyncio.Future[None], failure: BaseException | None) -> None:
    if recorded.done():
        return
    if failure is None:
        recorded.set_result(None)
    else:
        recorded.set_exception(failure)


_CHECK_AUDITS: weakref.WeakKeyDictionary[Database, CheckAudits] = weakref.WeakKeyDictionary()
_CHECK_AUDITS_LOCK = threading.Lock()


def check_audits(database: Database) -> CheckAudits:
    """The one group-committing writer of check entries for ``database`` in this process."""
    with _CHECK_AUDITS_LOCK:
        audits = _CHECK_AUDITS.get(database)
        if audits is None:
            audits = _CHECK_AUDITS[database] = CheckAudits(database)
        return audits


async def check_async(
    media: MediaContext,
    principal: Principal,
    request: CheckInput,
    scans: Sequence[ScanResult] | None = None,
) -> CheckVerdict:
    """``check`` for an ``async`` endpoint: database work in worker threads, the consent calls
    on the event loop (in-process, the consent app answers on the same loop). Uploaded files
    come with their ``scans`` (``scan_uploads``), else they are scanned in a worker thread.

    One consent call per check while the roster held is current: names are matched with the
    roster held, and the decisions asked for the pupils tagged and named. The answer names the
    roster version consent decided against, read in the same statement as the decisions and so
    after this check was received: a roster at least that new has every pupil committed before
    the check, and the names stand. An older one is revalidated, the names matched again, and a
    pupil named only now is asked about too. With no roster held yet, it is revalidated while
    the facts are read.
    """
    consent, school = media.consent, principal.school
    held = consent.held_roster(school)
    roster_call = None if held is not None else asyncio.ensure_future(consent.roster_async(school))
    try:
        gathered = await run_in_threadpool(gather, media, principal, request, None, scans)
    except BaseException:
        # Let the roster call finish rather than cancel it: a consent request cut off half-way
        # can leave its database session open, and on SQLite that session holds the write lock.
        if roster_call is not None:
            with suppress(Exception):
                await roster_call
        raise
    if roster_call is None:
        assert held is not None
        roster, fresh = held, False  # fresh: consent read this roster after the check came
    else:
        roster, fresh = await roster_call, True
    decisions: dict[uuid.UUID, PupilDecision] = {}
    while True:
        found = find_names(roster, gathered, request)
        missing = [p for p in found.asked if p not in decisions]
        since: int | None = None
        if missing:
            batch = await consent.decisions_async(school, gathered.purpose, missing)
            decisions.update(batch.decisions)
            since = batch.roster_version
            if fresh or (
                since is not None and roster.version is not None and roster.version >= since
            ):
                break
        elif fresh:
            break
        # Names matched with a roster that may predate the check: match again with one that
        # does not (the version named, or, with no pupil to ask about, a revalidation).
        roster, fresh = await consent.roster_since_async(school, since), True
    decided = {p: decisions[p] for p in found.asked}
    outcome = judge(gathered, found, roster, decided, request)
    # Committed before the verdict is returned: a check that is answered is a check recorded.
    await check_audits(media.database).record(principal, request, outcome.verdict)
    return outcome.verdict


def _problem_details(verdict: CheckVerdict) -> list[ProblemDetail]:
    details = [
        ProblemDetail(code=p.code, detail=p.detail, where=p.where, rule=p.rule)
        for p in verdict.text_problems
        if p.blocking
    ]
    for index, image in enumerate(verdict.images):
        details.extend(
            ProblemDetail(
                code=p.code, detail=p.detail, where=f"media_ids[{index}].{p.where}", rule=p.rule
            )
            for p in image.problems
            if p.blocking
        )
    return details


def publish(
    session: Session,
    media: MediaContext,
    principal: Principal,
    body: PublishRequest,
    now: dt.datetime,
) -> PublicationView:
    """Check again, then store clean copies and record who approved them (M6)."""
    _refuse_unpublishable(body.channel)
    outcome = check(session, media, principal, _publish_check(body), audit=False)
    _refuse_unless_allowed(principal, body, outcome.verdict)
    publication = _publication(uuid.uuid4(), principal, body, now)
    renditions = _store_renditions(session, media, principal, publication.id, outcome)
    repository.add(
        session,
        publication,
        renditions,
        (
            PublicationPupil(publication_id=publication.id, pupil_id=pupil, named=named)
            for pupil, named in outcome.pupils.items()
        ),
    )
    record_audit(
        session,
        principal,
        "publication.published",
        str(publication.id),
        {
            "channel": body.channel.value,
            "media_ids": [str(m) for m in body.media_ids],
            "pupils": sorted(str(p) for p in outcome.pupils),
            "blurred_faces": sum(r.blurred_faces for r in renditions),
        },
    )
    emit_event(
        session,
        principal.school,
        PublicationPublished(publication_id=publication.id, channel=body.channel),
    )
    return view(session, publication)


def _refuse_unpublishable(channel: Channel) -> None:
    if channel in UNPUBLISHABLE:
        raise Unprocessable(
            "Internal assessment media never leaves school and is never published.",
            code="channel_not_publishable",
            rule="C6",
        )


def _publish_check(body: PublishRequest) -> CheckInput:
    return CheckInput(
        channel=body.channel,
        media_ids=body.media_ids,
        files=(),
        texts={"caption": body.caption, "post_body": body.post_body, "alt_text": body.alt_text},
        blur_faces=body.blur_faces,
    )


def _refuse_unless_allowed(
    principal: Principal, body: PublishRequest, verdict: CheckVerdict
) -> None:
    if verdict.allowed:
        return
    problems = _problem_details(verdict)
    raise Refused(
        "This cannot be published as it is; nothing was published.",
        principal=principal,
        action="publication.publish",
        target=",".join(str(m) for m in body.media_ids)[:200],
        status=422,
        code="publication_refused",
        rule=problems[0].rule if problems else None,
        problems=problems,
    )


def _publication(
    publication_id: uuid.UUID, principal: Principal, body: PublishRequest, now: dt.datetime
) -> Publication:
    return Publication(
        id=publication_id,
        school_id=principal.school,
        channel=body.channel,
        purpose=PURPOSE_OF[body.channel],
        target_url=body.target_url,
        post_id=body.post_id,
        caption=body.caption,
        post_body=body.post_body,
        alt_text=body.alt_text,
        approved_by=principal.actor,
        published_at=now,
        status=PublicationStatus.live,
        takedown_required_at=None,
        takedown_pupil_id=None,
        takedown_state=None,
        taken_down_at=None,
        taken_down_by=None,
    )


def _store_renditions(
    session: Session,
    media: MediaContext,
    principal: Principal,
    publication_id: uuid.UUID,
    outcome: CheckOutcome,
) -> list[PublicationRendition]:
    """A clean copy of each picture (no metadata, a neutral name, faces blurred where asked),
    stored before its row and removed again if the publication does not commit."""
    renditions: list[PublicationRendition] = []
    for position, item in enumerate(outcome.items):
        blur = outcome.blur.get(item.id, [])
        data, mime = clean_rendition(media.storage.get(item.storage_key), blur=blur)
        name = f"{uuid.uuid4().hex}.{EXTENSIONS.get(mime.removeprefix('image/'), 'bin')}"
        key = f"renditions/{principal.school}/{name}"
        media.storage.put(key, data, mime)
        delete_on_rollback(session, media.storage, key)
        renditions.append(
            PublicationRendition(
                publication_id=publication_id,
                media_id=item.id,
                position=position,
                storage_key=key,
                file_name=name,
                mime=mime,
                size_bytes=len(data),
                blurred_faces=len(blur),
            )
        )
    return renditions


def view(session: Session, publication: Publication) -> PublicationView:
    renditions = repository.renditions(session, publication.id)
    pupils = repository.pupil_ids(session, publication.id)
    takedown = (
        TakedownView(
            required_at=publication.takedown_required_at,
            pupil_id=publication.takedown_pupil_id,
            state=publication.takedown_state,
        )
        if publication.takedown_required_at is not None
        else None
    )
    return PublicationView(
        id=publication.id,
        channel=publication.channel,
        purpose=publication.purpose,
        status=publication.status,
        target_url=publication.target_url,
        post_id=publication.post_id,
        caption=publication.caption,
        post_body=publication.post_body,
        alt_text=publication.alt_text,
        approved_by=publication.approved_by,
        published_at=publication.published_at,
        pupil_ids=list(pupils),
        renditions=[
            RenditionView(
                media_id=r.media_id,
                file_name=r.file_name,
                mime=r.mime,
                size_bytes=r.size_bytes,
                blurred_faces=r.blurred_faces,
                download=f"/v1/publications/{publication.id}/renditions/{r.media_id}",
            )
            for r in renditions
        ],
        takedown=takedown,
        taken_down_at=publication.taken_down_at,
        taken_down_by=publication.taken_down_by,
    )


def get_publication(
    session: Session, principal: Principal, publication_id: uuid.UUID
) -> Publication:
    publication = repository.find(session, principal.school, publication_id)
    if publication is None:
        raise NotFound("No such publication in this school.", code="publication_not_found")
    return publication


def get_view(session: Session, principal: Principal, publication_id: uuid.UUID) -> PublicationView:
    return view(session, get_publication(session, principal, publication_id))


def list_publications(
    session: Session,
    principal: Principal,
    *,
    status: PublicationStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[PublicationView]:
    """Newest first."""
    rows = repository.page(
        session, principal.school, status=status, before=decode_position(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[PublicationView](
        items=[view(session, r) for r in rows],
        next_cursor=encode_position(rows[-1].published_at, rows[-1].id) if more and rows else None,
    )


def confirm_takedown(
    session: Session, principal: Principal, publication_id: uuid.UUID, now: dt.datetime
) -> PublicationView:
    """The publisher says the copies are down (M7)."""
    publication = get_publication(session, principal, publication_id)
    if publication.status is PublicationStatus.taken_down:
        raise Conflict("This publication is already taken down.", code="already_taken_down")
    publication.status = PublicationStatus.taken_down
    publication.taken_down_at = now
    publication.taken_down_by = principal.actor
    repository.save(session)
    record_audit(session, principal, "publication.taken_down", str(publication.id))
    emit_event(
        session,
        principal.school,
        PublicationTakenDown(publication_id=publication.id, channel=publication.channel),
    )
    return view(session, publication)


def flag_for_takedown(
    session: Session,
    school: str,
    notice: ConsentChangedNotice,
    consent_event_id: uuid.UUID,
    now: dt.datetime,
) -> int:
    """M7: flag every live publication showing the pupil on a channel of a purpose whose
    consent ended; returns how many were flagged."""
    channels = channels_for_purpose(notice.purpose)
    if notice.allowed or not channels:
        return 0
    state = notice.state or None
    publications = repository.live_showing(session, school, notice.pupil_id, channels)
    for publication in publications:
        publication.status = PublicationStatus.takedown_required
        publication.takedown_required_at = now
        publication.takedown_pupil_id = notice.pupil_id
        publication.takedown_state = state
        repository.save(session)
        emit_event(
            session,
            school,
            PublicationTakedownRequired(
                publication_id=publication.id,
                channel=publication.channel,
                target_url=publication.target_url,
                post_id=publication.post_id,
                pupil_id=notice.pupil_id,
                state=state,
                consent_event_id=consent_event_id,
            ),
        )
        audit.append(
            session,
            actor=TAKEDOWN_ACTOR,
            school=school,
            action="publication.takedown_required",
            target=str(publication.id),
            details={
                "pupil_id": str(notice.pupil_id),
                "state": state,
                "consent_event_id": str(consent_event_id),
            },
        )
    return len(publications)


def rendition(
    session: Session, principal: Principal, publication_id: uuid.UUID, media_id: uuid.UUID
) -> PublicationRendition:
    publication = get_publication(session, principal, publication_id)
    found = repository.rendition(session, publication_id, media_id)
    if found is None:
        raise NotFound("No such picture in this publication.", code="rendition_not_found")
    if publication.status is not PublicationStatus.live:
        raise Conflict(
            "This publication must come down; its copies are no longer handed out.",
            code="publication_not_live",
            rule="M7",
        )
    record_audit(
        session,
        principal,
        "publication.rendition_downloaded",
        str(publication_id),
        {"media_id": str(media_id)},
    )
    return found
