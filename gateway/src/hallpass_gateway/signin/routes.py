"""Browser sign-in at the gateway: authorization code + PKCE with the school's identity providers,
the dev sign-in page in embedded mode, the session and signing out.

The ID token the provider returns is verified by the very verifier bearer tokens go through, so a
signed-in browser is exactly the principal that token would be as a bearer token: the issuer's
``audiences`` in the identity file must therefore include its sign-in ``client_id`` (an ID token
is addressed to the client that asked for it).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from joserfc import jws
from joserfc.errors import JoseError
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.responses import RedirectResponse, Response

from hallpass_gateway.settings import TrustedNetwork
from hallpass_gateway.signin import pages
from hallpass_gateway.signin.csrf import (
    CSRF_FIELD,
    CSRF_HEADER,
    SCHOOL_PATH,
    SIGN_IN_PATH,
    is_form,
    same_site,
    tokens_match,
    verified,
)
from hallpass_gateway.signin.pages import (
    DevPerson,
    SchoolChoice,
    SignedIn,
    WayIn,
    safe_next,
    with_next,
)
from hallpass_gateway.signin.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    BrowserSession,
    CookieSealer,
    PendingSignIn,
    SessionTooLarge,
    clear_session_cookie,
    clear_sign_in_cookie,
    new_secret,
    set_session_cookie,
    set_sign_in_cookie,
)
from hallpass_kit.auth import (
    CarerLink,
    DevIssuer,
    Discovery,
    Principal,
    Role,
    TokenVerifier,
    UnusableJwks,
)
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import (
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    problem_response,
    problem_responses,
)
from hallpass_kit.identity import IdentityFile, Issuer, SignIn
from hallpass_kit.settings import DEV_ISSUER

# Seconds the gateway waits for the identity provider's token endpoint.
TOKEN_EXCHANGE_TIMEOUT = 10.0
# The dev sign-in page's people: (choice, roles, what the page calls them).
DEV_STAFF: tuple[tuple[str, tuple[Role, ...], str], ...] = (
    ("head", (Role.head,), "Head teacher"),
    ("deputy", (Role.deputy,), "Deputy head"),
    ("dsl", (Role.dsl,), "Designated safeguarding lead"),
    ("office", (Role.office,), "School office"),
    ("staff", (Role.staff,), "Teacher"),
    ("social_media", (Role.social_media,), "Social media lead"),
    ("pastoral", (Role.staff, Role.pastoral), "Pastoral lead (reads the pastoral inbox)"),
    ("admin", (Role.admin,), "School administrator"),
)
DEV_SESSION_SECONDS = 8 * 3600
# Carers the dev page lists: those of the first few pupils on the roll.
DEV_PUPILS = 5
_SCHOOL = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")
# Consent's answer naming a carer's records in every school (its ``MyLinks``).
CARER_LINKS_PATH = "/v1/me/links"


def _http_library(client_class: type) -> ModuleType:
    """The HTTP library authlib's client is built on (httpx2, or httpx where it is missing),
    whose errors its calls raise: read from the client class itself, not authlib's internals."""
    for base in client_class.__mro__:
        package = base.__module__.partition(".")[0]
        if base.__name__ == "AsyncClient" and package in ("httpx", "httpx2"):
            return importlib.import_module(package)
    return httpx


oauth_http = _http_library(AsyncOAuth2Client)


class _CarerLinkAnswer(BaseModel):
    school: str
    guardian_id: uuid.UUID


class _CarerLinks(BaseModel):
    links: list[_CarerLinkAnswer]


_CARER_LINKS = TypeAdapter(_CarerLinks)


class SchoolGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    school: str
    roles: list[str]


class SessionView(BaseModel):
    """Who this browser is signed in as, the school it acts for, and the CSRF token its
    changes must carry."""

    model_config = ConfigDict(extra="forbid")

    sub: str
    issuer: str
    # The school the browser's requests act for: the one chosen at /auth/school, or the
    # person's only school; null while a person of several schools has chosen none.
    school: str | None
    roles: list[str]
    grants: list[SchoolGrant]
    guardian_id: uuid.UUID | None
    email: str | None
    email_verified: bool
    trust: str | None
    expires_at: dt.datetime
    csrf_token: str


@dataclass(frozen=True)
class SignInContext:
    """What the sign-in routes need from the gateway they are part of."""

    sealer: CookieSealer
    verifier: TokenVerifier
    dev_issuer: DevIssuer | None
    # Consent, asked for the demo school's carers by the dev sign-in page (embedded mode only).
    consent: ServiceClient | None
    public_base_url: str | None
    public_origin: str | None
    trusted_proxies: tuple[TrustedNetwork, ...]
    # Consent without the gateway's own credentials: a carer's records are asked with the
    # carer's own token only, as the other services ask them.
    carer_links: ServiceClient | None = None

    async def aclose(self) -> None:
        """Close the pooled connections to consent (the gateway's shutdown)."""
        for client in (self.consent, self.carer_links):
            if client is not None:
                await client.aclose()

    @property
    def identity(self) -> IdentityFile:
        return self.verifier.identity

    def base_url(self, request: Request) -> str:
        """This site's address as the browser and the provider see it."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


class _Refused(Exception):
    """A sign-in that cannot go on: answered as a page to a browser, problem+json otherwise."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail


def _refusal(request: Request, refused: _Refused) -> Response:
    response: Response
    if pages.prefers_html(request.headers.get("accept")):
        response = pages.refusal_page(
            refused.title, refused.detail, status=refused.status, sign_in_again="/auth/sign-in"
        )
    else:
        response = problem_response(
            request,
            status=refused.status,
            code=refused.code,
            title=refused.title,
            detail=refused.detail,
        )
    # Whatever went wrong, the sign-in under way is over: nothing of it is kept.
    clear_sign_in_cookie(response)
    return response


def _csrf_refused() -> _Refused:
    return _Refused(
        403,
        "csrf_failed",
        "Not allowed",
        "This form did not come from Hallpass's own page (CSRF token missing or wrong); "
        "nothing was changed. Open the page again and retry.",
    )


def _signing_in_issuer(context: SignInContext, name: str) -> tuple[Issuer, SignIn]:
    issuer = context.identity.by_name(name)
    if issuer is None or issuer.sign_in is None:
        raise _Refused(
            404,
            "unknown_sign_in",
            "No such way to sign in",
            f"No identity provider named {name[:60]!r} offers browser sign-in here.",
        )
    return issuer, issuer.sign_in


async def _discovered(context: SignInContext, issuer: Issuer) -> dict[str, Any]:
    discovery: Discovery | None = context.verifier.discovery(issuer.name)
    if discovery is None:
        raise _Refused(
            404,
            "unknown_sign_in",
            "No such way to sign in",
            f"Identity provider {issuer.name!r} is set up without discovery (a fixed jwks_uri), "
            "so its sign-in endpoints are not known.",
        )
    try:
        return await run_in_threadpool(discovery.document)
    except (httpx.HTTPError, UnusableJwks, ValueError, RecursionError) as exc:
        raise _Refused(
            503,
            "identity_provider_unavailable",
            "Sign-in unavailable",
            f"The identity provider {issuer.name!r} cannot be reached right now; try again "
            "shortly.",
        ) from exc


def _endpoint(document: dict[str, Any], name: str, issuer: Issuer) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise _Refused(
            503,
            "identity_provider_unavailable",
            "Sign-in unavailable",
            f"The identity provider {issuer.name!r} publishes no {name}.",
        )
    return value


def _client_secret(sign_in: SignIn, issuer: Issuer) -> str | None:
    if sign_in.client_secret_env is None:
        return None  # a public client: PKCE alone
    secret = os.environ.get(sign_in.client_secret_env)
    if not secret:
        raise _Refused(
            503,
            "sign_in_misconfigured",
            "Sign-in unavailable",
            f"Sign-in with {issuer.name!r} needs its client secret in the environment variable "
            f"{sign_in.client_secret_env}, which is not set.",
        )
    return secret


def _redirect_uri(context: SignInContext, request: Request, issuer: Issuer) -> str:
    return f"{context.base_url(request)}/auth/callback/{issuer.name}"


def _session_of(context: SignInContext, request: Request) -> BrowserSession | None:
    return context.sealer.open_session(request.cookies.get(SESSION_COOKIE))


async def _offered_csrf(request: Request) -> str | None:
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and is_form(request.headers):
        value = (await request.form()).get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    return offered


def _with_session(context: SignInContext, response: Response, session: BrowserSession) -> Response:
    try:
        value = context.sealer.seal_session(session)
    except SessionTooLarge as exc:
        raise _Refused(
            400,
            "session_too_large",
            "Signed in, but the session is too large",
            "The identity provider's ID token is too large for a browser cookie "
            f"({exc}). Ask the school's IT lead to send fewer claims in it (for Entra ID, group "
            "claims limited to the groups assigned to the application).",
        ) from exc
    set_session_cookie(response, value, session)
    clear_sign_in_cookie(response)
    return response


def _nonce_of(id_token: str) -> object:
    """The ``nonce`` of an ID token already verified (so its payload is the issuer's own)."""
    try:
        payload = json.loads(jws.extract_compact(id_token.encode()).payload)
    except (JoseError, ValueError, RecursionError):
        return None
    return payload.get("nonce") if isinstance(payload, dict) else None


def _who(principal: Principal) -> str:
    return principal.email or principal.sub


def _consent_unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, code="consent_unavailable")


async def _carer_links(context: SignInContext, token: str) -> tuple[CarerLink, ...]:
    """The records of the carer holding ``token``, in every school: consent's answer to the
    carer's own token (the gateway's credentials never stand in for a carer)."""
    if context.carer_links is None:
        raise _consent_unavailable(
            "The consent service is not known to the gateway, so your schools cannot be found."
        )
    # The answer covers every school, so the school header the client always sends is empty.
    response = await context.carer_links.request(
        "GET", CARER_LINKS_PATH, school="", caller_token=token
    )
    if response.status_code != 200:
        raise _consent_unavailable(
            f"The consent service answered {response.status_code} when asked for your records."
        )
    try:
        answer = _CARER_LINKS.validate_json(response.content)
    except ValidationError as exc:
        raise _consent_unavailable("The consent service's answer could not be read.") from exc
    return tuple(CarerLink(link.school, link.guardian_id) for link in answer.links)


async def _with_schools(context: SignInContext, principal: Principal, token: str) -> Principal:
    """``principal`` with every school they may act for: a carer signed in with their own
    account gains their records, asked of consent; anyone else's are in the token."""
    if principal.needs_carer_links:
        return principal.with_carers(await _carer_links(context, token))
    return principal


def _acting(person: Principal, chosen: str | None) -> Principal:
    """``person`` acting for the school the session chose, when it is still one of theirs."""
    if chosen is not None and chosen in person.schools:
        return person.acting_for(chosen)
    return person  # one school only: the token (or the carer's one record) already names it


async def _only_school(context: SignInContext, principal: Principal, token: str) -> str | None:
    """The school of a person who has exactly one, chosen at sign-in so they never meet the
    chooser; None for several (chosen when a page needs it) or when consent cannot say now."""
    try:
        person = await _with_schools(context, principal, token)
    except ServiceUnavailable:
        return None
    return next(iter(person.schools)) if len(person.schools) == 1 else None


async def _signed_in(context: SignInContext, browser: BrowserSession | None) -> Principal | None:
    if browser is None:
        return None
    try:
        return await verified(context.verifier, browser.token)
    except Unauthenticated:
        return None


def sign_in_router(context: SignInContext) -> APIRouter:
    """The public routes of browser sign-in (each one its own check of who may use it)."""
    router = APIRouter(tags=["sign-in"])

    @router.get("/auth/sign-in", include_in_schema=False)
    async def sign_in_page(request: Request, next: str | None = None) -> Response:
        """The ways in: each identity provider with a `sign_in` section, and the dev page."""
        next_path = safe_next(next)
        ways = [
            WayIn(
                label=issuer.sign_in.label or f"Sign in with {issuer.name}",
                href=with_next(f"/auth/sign-in/{issuer.name}", next_path),
            )
            for issuer in context.identity.issuers
            if issuer.sign_in is not None
        ]
        if context.dev_issuer is not None:
            ways.append(
                WayIn(
                    label="Dev sign-in (built-in issuer, development only)",
                    href=with_next("/auth/dev", next_path),
                )
            )
        session = _session_of(context, request)
        signed_in: SignedIn | None = None
        if session is not None:
            try:
                principal = await verified(context.verifier, session.token)
            except (Unauthenticated, ServiceUnavailable):
                pass
            else:
                signed_in = SignedIn(who=_who(principal), csrf=session.csrf)
        return pages.sign_in_page(ways, signed_in)

    @router.get("/auth/sign-in/{issuer_name}", include_in_schema=False)
    async def start_sign_in(
        issuer_name: str, request: Request, next: str | None = None
    ) -> Response:
        """Off to the identity provider: authorization code with PKCE (S256), state and nonce
        kept in a short-lived sealed cookie until the provider sends the browser back."""
        try:
            issuer, sign_in = _signing_in_issuer(context, issuer_name)
            document = await _discovered(context, issuer)
            authorize = _endpoint(document, "authorization_endpoint", issuer)
        except _Refused as refused:
            return _refusal(request, refused)
        pending = PendingSignIn(
            issuer=issuer.name,
            state=new_secret(),
            nonce=new_secret(),
            # RFC 7636: 43 to 128 characters; 64 here.
            code_verifier=new_secret() + new_secret()[:21],
            next_path=safe_next(next),
            csrf="",
            expires_at=time.time() + SIGN_IN_SECONDS,
        )
        async with AsyncOAuth2Client(
            client_id=sign_in.client_id,
            scope=" ".join(sign_in.scopes),
            redirect_uri=_redirect_uri(context, request, issuer),
            code_challenge_method="S256",
        ) as client:
            url, _ = client.create_authorization_url(
                authorize,
                state=pending.state,
                code_verifier=pending.code_verifier,
                nonce=pending.nonce,
            )
        response = RedirectResponse(str(url), status_code=303)
        set_sign_in_cookie(response, context.sealer.seal_sign_in(pending))
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/auth/callback/{issuer_name}", include_in_schema=False)
    async def callback(issuer_name: str, request: Request) -> Response:
        """Back from the identity provider: state checked, the code exchanged (with the PKCE
        verifier), the ID token verified and its nonce checked; then the session is set."""
        try:
            return await _finish_sign_in(context, request, issuer_name)
        except _Refused as refused:
            return _refusal(request, refused)

    @router.get(
        "/auth/session",
        response_model=SessionView,
        summary="Who is signed in",
        responses=problem_responses(401, 503),
    )
    async def session(request: Request) -> Any:
        """The person this browser is signed in as (by the session cookie), every school they
        may act for (a carer's from their records), the school the browser acts for, and the
        CSRF token to send as `X-CSRF-Token` with every change. 401 when not signed in."""
        browser = _session_of(context, request)
        principal = await _signed_in(context, browser)
        if browser is None or principal is None:
            response = problem_response(
                request,
                status=401,
                code="not_signed_in",
                title="Authentication required",
                detail="This browser is not signed in (or its session has ended): GET "
                "/auth/sign-in.",
                rule="A1",
                headers={"WWW-Authenticate": "Bearer"},
            )
            if request.cookies.get(SESSION_COOKIE) is not None:
                clear_session_cookie(response)
            return response
        person = await _with_schools(context, principal, browser.token)
        acting = _acting(person, browser.school)
        return SessionView(
            sub=acting.sub,
            issuer=acting.issuer,
            school=acting.school or None,
            roles=sorted(str(role) for role in acting.roles),
            grants=[
                SchoolGrant(school=school, roles=sorted(str(role) for role in roles))
                for school, roles in person.grants
            ],
            guardian_id=acting.guardian_id,
            email=principal.email,
            email_verified=principal.email_verified,
            trust=principal.trust,
            expires_at=dt.datetime.fromtimestamp(principal.expires_at, dt.UTC),
            csrf_token=browser.csrf,
        )

    @router.get(SCHOOL_PATH, include_in_schema=False)
    async def school_page(request: Request, next: str | None = None) -> Response:
        """The schools this person may act for, to choose the one the browser acts for."""
        next_path = safe_next(next)
        browser = _session_of(context, request)
        principal = await _signed_in(context, browser)
        if browser is None or principal is None:
            back = with_next(SCHOOL_PATH, next_path)
            return RedirectResponse(with_next(SIGN_IN_PATH, back), status_code=303)
        try:
            person = await _with_schools(context, principal, browser.token)
        except ServiceUnavailable as exc:
            return _refusal(request, _Refused(503, exc.code, "Schools unavailable", exc.detail))
        choices = [
            SchoolChoice(school=school, chosen=school == browser.school)
            for school in sorted(person.schools)
        ]
        return pages.school_page(
            choices,
            signed_in=SignedIn(who=_who(principal), csrf=browser.csrf),
            next_path=next_path,
            carer=Role.parent in principal.roles,
        )

    @router.post(
        SCHOOL_PATH,
        status_code=303,
        summary="Choose the school this browser acts for",
        response_class=Response,
        responses={
            303: {"description": "Chosen: on to `next`"},
            **problem_responses(400, 401, 403, 503),
        },
    )
    async def choose_school(request: Request) -> Response:
        """A form (`school`, `next`, `csrf_token`) choosing which of the signed-in person's
        schools the browser's requests act for (sent on as `X-Hallpass-School`); then on to
        `next`, a path of this site. 403 for a school that is not theirs."""
        try:
            return await _choose_school(context, request)
        except _Refused as refused:
            return _refusal(request, refused)

    @router.post(
        "/auth/sign-out",
        status_code=303,
        summary="Sign out",
        response_class=Response,
        responses={
            303: {"description": "Signed out: on to the provider's sign-out or the sign-in page"},
            **problem_responses(403),
        },
    )
    async def sign_out(request: Request) -> Response:
        """End this browser's session (CSRF-checked: `X-CSRF-Token` or the form's
        `csrf_token`), then sign out at the identity provider too when it offers that."""
        try:
            return await _sign_out(context, request)
        except _Refused as refused:
            return _refusal(request, refused)

    @router.get("/auth/dev", include_in_schema=False)
    async def dev_sign_in_page(
        request: Request, next: str | None = None, school: str = "demo"
    ) -> Response:
        """Embedded mode only: sign in as one of the demo school's staff or carers."""
        if context.dev_issuer is None:
            raise NotFound(
                "The dev sign-in page exists only with the built-in dev issuer.",
                code="no_dev_issuer",
            )
        if not _SCHOOL.match(school):
            school = "demo"
        pending = PendingSignIn(
            issuer=DEV_ISSUER,
            state="",
            nonce="",
            code_verifier="",
            next_path=safe_next(next),
            csrf=new_secret(),
            expires_at=time.time() + SIGN_IN_SECONDS,
        )
        carers, note = await _demo_carers(context.consent, school)
        response = pages.dev_page(
            school=school,
            staff=[DevPerson(choice=choice, label=label) for choice, _, label in DEV_STAFF],
            carers=carers,
            carers_note=note,
            csrf=pending.csrf,
            next_path=pending.next_path,
        )
        set_sign_in_cookie(response, context.sealer.seal_sign_in(pending))
        return response

    @router.post("/auth/dev", include_in_schema=False)
    async def dev_sign_in(request: Request) -> Response:
        """Embedded mode only: sign in as the person chosen on the dev page (CSRF-checked)."""
        if context.dev_issuer is None:
            raise NotFound(
                "The dev sign-in page exists only with the built-in dev issuer.",
                code="no_dev_issuer",
            )
        try:
            return await _dev_sign_in(context, context.dev_issuer, request)
        except _Refused as refused:
            return _refusal(request, refused)

    return router


async def _finish_sign_in(context: SignInContext, request: Request, issuer_name: str) -> Response:
    params = request.query_params
    pending = context.sealer.open_sign_in(request.cookies.get(SIGN_IN_COOKIE))
    if pending is None or pending.issuer != issuer_name or not pending.state:
        raise _Refused(
            400,
            "sign_in_expired",
            "Sign-in not recognised",
            "This sign-in was not started in this browser, or took longer than "
            f"{SIGN_IN_SECONDS // 60} minutes; nothing was kept. Start again.",
        )
    if not tokens_match(params.get("state"), pending.state):
        raise _Refused(
            400,
            "state_mismatch",
            "Sign-in not recognised",
            "The identity provider's answer does not belong to the sign-in this browser "
            "started (state differs); nothing was kept. Start again.",
        )
    error = params.get("error")
    if error is not None:
        described = params.get("error_description")
        raise _Refused(
            401,
            "sign_in_refused",
            "Not signed in",
            f"The identity provider did not sign you in ({error[:100]}"
            + (f": {described[:300]}" if described else "")
            + ").",
        )
    code = params.get("code")
    if not code:
        raise _Refused(
            400, "missing_code", "Sign-in not recognised", "The identity provider sent no code."
        )
    issuer, sign_in = _signing_in_issuer(context, issuer_name)
    document = await _discovered(context, issuer)
    token_endpoint = _endpoint(document, "token_endpoint", issuer)
    id_token = await _exchange(
        context, request, issuer, sign_in, token_endpoint, code, pending.code_verifier
    )
    principal = await _verified_id_token(context, issuer, sign_in, id_token)
    if not tokens_match(
        nonce if isinstance(nonce := _nonce_of(id_token), str) else None, pending.nonce
    ):
        raise _Refused(
            401,
            "nonce_mismatch",
            "Not signed in",
            "The ID token was not issued for this sign-in (nonce differs); nothing was kept.",
        )
    session = BrowserSession(
        token=id_token,
        csrf=new_secret(),
        issuer=issuer.name,
        expires_at=principal.expires_at,
        school=await _only_school(context, principal, id_token),
    )
    return _with_session(context, RedirectResponse(pending.next_path, status_code=303), session)


async def _exchange(
    context: SignInContext,
    request: Request,
    issuer: Issuer,
    sign_in: SignIn,
    token_endpoint: str,
    code: str,
    code_verifier: str,
) -> str:
    """The ID token for ``code``, from the provider's token endpoint."""
    try:
        async with AsyncOAuth2Client(
            client_id=sign_in.client_id,
            client_secret=_client_secret(sign_in, issuer),
            redirect_uri=_redirect_uri(context, request, issuer),
            code_challenge_method="S256",
            timeout=TOKEN_EXCHANGE_TIMEOUT,
            follow_redirects=False,
        ) as client:
            token = await client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
    except AuthlibBaseError as exc:
        raise _Refused(
            401,
            "code_exchange_refused",
            "Not signed in",
            f"The identity provider refused to complete the sign-in ({exc.error}); nothing was "
            "kept. Start again.",
        ) from exc
    except oauth_http.HTTPStatusError as exc:
        status = exc.response.status_code
        raise _Refused(
            401 if status < 500 else 503,
            "code_exchange_refused" if status < 500 else "identity_provider_unavailable",
            "Not signed in",
            f"The identity provider's token endpoint answered {status}; nothing was kept.",
        ) from exc
    except (oauth_http.HTTPError, ValueError) as exc:
        raise _Refused(
            503,
            "identity_provider_unavailable",
            "Sign-in unavailable",
            "The identity provider's token endpoint could not be reached; try again shortly.",
        ) from exc
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise _Refused(
            401,
            "no_id_token",
            "Not signed in",
            "The identity provider returned no ID token (is `openid` among the sign-in scopes?).",
        )
    return id_token


async def _verified_id_token(
    context: SignInContext, issuer: Issuer, sign_in: SignIn, id_token: str
) -> Principal:
    try:
        principal = await verified(context.verifier, id_token)
    except Unauthenticated as exc:
        hint = (
            ""
            if sign_in.client_id in issuer.audiences
            else f" The identity file's `audiences` for {issuer.name!r} must include its sign-in "
            f"client id {sign_in.client_id!r}: the ID token is addressed to it."
        )
        raise _Refused(
            401, "invalid_id_token", "Not signed in", f"{exc.detail}{hint} Nothing was kept."
        ) from exc
    except ServiceUnavailable as exc:
        raise _Refused(503, exc.code, "Sign-in unavailable", exc.detail) from exc
    if principal.issuer != issuer.name:
        raise _Refused(
            401,
            "invalid_id_token",
            "Not signed in",
            f"The ID token comes from another issuer than {issuer.name!r}; nothing was kept.",
        )
    return principal


async def _sign_out(context: SignInContext, request: Request) -> Response:
    browser = _session_of(context, request)
    target = "/auth/sign-in"
    if browser is not None:
        # Without a session there is nothing to protect; with one, only this site's own pages
        # may end it.
        if not same_site(request.scope, context.public_origin, context.trusted_proxies):
            raise _csrf_refused()
        if not tokens_match(await _offered_csrf(request), browser.csrf):
            raise _csrf_refused()
        target = await _provider_sign_out(context, request, browser) or target
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response)
    clear_sign_in_cookie(response)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _choose_school(context: SignInContext, request: Request) -> Response:
    browser = _session_of(context, request)
    principal = await _signed_in(context, browser)
    if browser is None or principal is None:
        raise _Refused(
            401,
            "not_signed_in",
            "Not signed in",
            "This browser is not signed in (or its session has ended); sign in, then choose.",
        )
    if not same_site(request.scope, context.public_origin, context.trusted_proxies):
        raise _csrf_refused()
    if not tokens_match(await _offered_csrf(request), browser.csrf):
        raise _csrf_refused()
    form = await request.form() if is_form(request.headers) else None
    school = form.get("school") if form is not None else None
    next_path = form.get("next") if form is not None else None
    if not isinstance(school, str) or not _SCHOOL.match(school):
        raise _Refused(400, "bad_request", "Choose a school", "Choose one of your schools.")
    try:
        person = await _with_schools(context, principal, browser.token)
    except ServiceUnavailable as exc:
        raise _Refused(503, exc.code, "Schools unavailable", exc.detail) from exc
    if school not in person.schools:
        raise _Refused(
            403,
            "school_not_allowed",
            "Not allowed",
            f"You may not act for {school[:60]!r}: choose one of your schools. Nothing was "
            "changed.",
        )
    target = safe_next(next_path if isinstance(next_path, str) else None)
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return _with_session(context, response, replace(browser, school=school))


async def _provider_sign_out(
    context: SignInContext, request: Request, browser: BrowserSession
) -> str | None:
    """The provider's RP-initiated sign-out address, when it has one (coming back here)."""
    issuer = context.identity.by_name(browser.issuer)
    if issuer is None or issuer.sign_in is None:
        return None
    try:
        document = await _discovered(context, issuer)
    except _Refused:
        return None  # signed out here; the provider's own session is its business
    end_session = document.get("end_session_endpoint")
    if not isinstance(end_session, str) or not end_session.startswith(("https://", "http://")):
        return None
    query = urlencode(
        {
            "post_logout_redirect_uri": f"{context.base_url(request)}/auth/sign-in",
            "client_id": issuer.sign_in.client_id,
            "id_token_hint": browser.token,
        }
    )
    return f"{end_session}{'&' if '?' in end_session else '?'}{query}"


async def _dev_sign_in(context: SignInContext, dev_issuer: DevIssuer, request: Request) -> Response:
    pending = context.sealer.open_sign_in(request.cookies.get(SIGN_IN_COOKIE))
    form = await request.form() if is_form(request.headers) else None
    if (
        pending is None
        or pending.issuer != DEV_ISSUER
        or form is None
        or not same_site(request.scope, context.public_origin, context.trusted_proxies)
    ):
        raise _csrf_refused()
    offered = form.get(CSRF_FIELD)
    if not tokens_match(offered if isinstance(offered, str) else None, pending.csrf):
        raise _csrf_refused()
    school = form.get("school")
    person = form.get("person")
    if not isinstance(school, str) or not _SCHOOL.match(school) or not isinstance(person, str):
        raise _Refused(400, "bad_request", "Choose someone", "Choose a person on the page.")
    token = _dev_token(dev_issuer, school, person)
    principal = await verified(context.verifier, token)
    session = BrowserSession(
        token=token,
        csrf=new_secret(),
        issuer=DEV_ISSUER,
        expires_at=principal.expires_at,
        school=await _only_school(context, principal, token),
    )
    return _with_session(context, RedirectResponse(pending.next_path, status_code=303), session)


def _dev_token(dev_issuer: DevIssuer, school: str, person: str) -> str:
    for choice, roles, _ in DEV_STAFF:
        if person == choice:
            return dev_issuer.issue(
                sub=f"dev-{choice}@{school}",
                school=school,
                roles=roles,
                email=f"{choice}@{school}.sch.uk",
                ttl_seconds=DEV_SESSION_SECONDS,
            )
    kind, _, guardian = person.partition(":")
    try:
        guardian_id = uuid.UUID(guardian) if kind == "carer" else None
    except ValueError:
        guardian_id = None
    if guardian_id is None:
        raise _Refused(400, "bad_request", "Choose someone", "Choose a person on the page.")
    return dev_issuer.issue(
        sub=f"dev-carer-{guardian_id}",
        school=school,
        roles=[Role.parent],
        guardian_id=guardian_id,
        ttl_seconds=DEV_SESSION_SECONDS,
    )


async def _demo_carers(
    consent: ServiceClient | None, school: str
) -> tuple[list[DevPerson], str | None]:
    """Carers of the first pupils on ``school``'s roll, asked of consent with the gateway's
    own service identity; a note instead when they cannot be listed."""
    if consent is None:
        return [], "Carers cannot be listed here: the consent service is not known to the gateway."
    try:
        roll = await consent.request(
            "GET", "/v1/pupils", school=school, params={"limit": DEV_PUPILS}
        )
        if roll.status_code != 200:
            return [], f"No pupils found at {school} (run `hallpass demo` for the demo school)."
        carers: list[DevPerson] = []
        for pupil in roll.json().get("items", [])[:DEV_PUPILS]:
            answer = await consent.request(
                "GET", f"/v1/pupils/{pupil['id']}/guardians", school=school
            )
            if answer.status_code != 200:
                continue
            child = f"{pupil['given_name']} {pupil['family_name']}"
            carers.extend(
                DevPerson(
                    choice=f"carer:{guardian['id']}",
                    label=f"{guardian['given_name']} {guardian['family_name']} (carer of {child})",
                )
                for guardian in answer.json()
            )
    except ServiceUnavailable as exc:
        return [], f"Carers cannot be listed right now: {exc.detail}"
    except (ValueError, KeyError, TypeError):
        return [], "Carers cannot be listed: the consent service's answer was not understood."
    if not carers:
        return [], f"No carers found at {school} (run `hallpass demo` for the demo school)."
    return carers, None
