"""Who is looking at a page: the principal of the token the request carries."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from hallpass_gateway.signin.csrf import verified
from hallpass_kit.auth import Principal, Role, TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.errors import Unauthenticated


async def viewer(request: Request, verifier: TokenVerifier) -> Principal:
    """The person the page is for, acting for their chosen school when they have several.

    Without a token the answer is 401, which the session middleware turns into the sign-in page
    for a browser. What the person may see is still decided by the services' own APIs.
    """
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Sign in to see this page.", rule="A1")
    principal = await verified(verifier, token)
    named = request.headers.get(SCHOOL_HEADER)
    if named is not None and named in principal.schools and named != principal.school:
        principal = principal.acting_for(named)
    return principal


@dataclass(frozen=True)
class Section:
    """One part of the staff console: where it is, its name's key, and who it is for."""

    path: str
    title_key: str
    roles: frozenset[Role]

    def open_to(self, principal: Principal) -> bool:
        return principal.has_any(self.roles)


# Every section of the staff console, in the order the home page lists them. Each is listed
# only for the roles its API calls allow; the services refuse the rest anyway.
SECTIONS: list[Section] = []
