"""Browser sign-in at the gateway (docs/identity.md, "Browser sign-in").

One implementation for both gateway modes: the sign-in routes under ``/auth/`` and the middleware
that lets a signed-in browser's session cookie stand for its bearer token.
"""

from __future__ import annotations

from fastapi import FastAPI

from hallpass_gateway.settings import GatewaySettings
from hallpass_gateway.signin.csrf import BrowserSessionMiddleware, origin_of
from hallpass_gateway.signin.routes import SignInContext, sign_in_router
from hallpass_gateway.signin.session import CookieSealer
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.settings import CommonSettings

__all__ = ["add_browser_sign_in", "add_sign_in_routes"]


def add_sign_in_routes(
    app: FastAPI,
    *,
    common: CommonSettings,
    gateway_settings: GatewaySettings,
    verifier: TokenVerifier,
    dev_issuer: DevIssuer | None,
    consent: ServiceClient | None,
    carer_links: ServiceClient | None = None,
) -> SignInContext | None:
    """The ``/auth/`` routes; None (and no routes) when browser sign-in is off: production
    without a sign-in issuer in the identity file nor a session secret.

    ``consent`` carries the gateway's own credentials (the dev page's roll of carers);
    ``carer_links`` reaches the same service with none, for a carer's records asked with the
    carer's own token."""
    key = gateway_settings.session_key(common)
    if key is None:
        return None
    context = SignInContext(
        sealer=CookieSealer(key),
        verifier=verifier,
        dev_issuer=dev_issuer,
        consent=consent,
        public_base_url=common.public_base_url,
        public_origin=origin_of(common.public_base_url) if common.public_base_url else None,
        trusted_proxies=tuple(gateway_settings.trusted_proxies),
        carer_links=carer_links,
    )
    app.include_router(sign_in_router(context))
    return context


def add_browser_sign_in(app: FastAPI, context: SignInContext | None) -> None:
    """The session middleware; added where the gateway wants it among its middleware (inside
    request ids and logging, outside rate limits, so a session counts as its person)."""
    if context is None:
        return
    app.add_middleware(
        BrowserSessionMiddleware,
        sealer=context.sealer,
        verifier=context.verifier,
        public_origin=context.public_origin,
        trusted_proxies=context.trusted_proxies,
    )
