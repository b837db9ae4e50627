"""A school's OpenID Connect provider on loopback, for tests: discovery, JWKS, the authorization
code flow with PKCE, and RP-initiated sign-out, all RS256.

It behaves as the specifications say a provider must, so that what Hallpass does against it is
what it will do against Entra ID or Keycloak:

- OpenID Connect Discovery 1.0 (the document names its own ``issuer``; section 4.3),
- RFC 6749 (OAuth 2.0) 4.1: the authorization request (4.1.1), its error redirect (4.1.2.1:
  no redirect at all when the client or redirect URI is wrong), the token request (4.1.3) with
  a single-use code bound to the client and redirect URI, errors as JSON (5.2),
- RFC 7636 (PKCE): ``S256`` only, ``BASE64URL(SHA256(code_verifier)) == code_challenge``,
- OpenID Connect Core 1.0 3.1.3.6 (the ID token: ``iss``, ``aud`` = client id, ``nonce``,
  ``at_hash``), and RP-Initiated Logout 1.0 (``post_logout_redirect_uri`` with ``state``).

The provider's own login page is skipped: a test queues whoever signs in next
(``next_sign_in``), and ``/authorize`` answers at once with a code for them.

The path of the issuer decides where the endpoints are, as each product lays them out:
``/realms/<realm>`` like Keycloak (``/protocol/openid-connect/auth`` …), ``/<tenant>/v2.0``
like the Microsoft identity platform (``/<tenant>/oauth2/v2.0/authorize`` …), anything else
under the issuer itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

# Seconds a code may wait for its exchange (RFC 6749 4.1.2 recommends at most ten minutes).
CODE_LIFETIME = 60
TOKEN_LIFETIME = 3600


def new_key() -> RSAKey:
    """An RS256 signing key with its own ``kid``, as a provider publishes it."""
    return RSAKey.generate_key(
        2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"}
    )


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7636 appendix A, RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The S256 code challenge for ``verifier`` (RFC 7636 4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Client:
    """A registered relying party: a confidential one has a secret."""

    client_id: str
    redirect_uris: tuple[str, ...]
    secret: str | None


@dataclass(frozen=True)
class _Grant:
    """What an authorization code stands for until it is exchanged (once)."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    scope: str
    claims: dict[str, Any]
    expires_at: float


def _layout(path: str) -> dict[str, str]:
    """Endpoint paths relative to the host, laid out as the product the issuer path imitates."""
    path = "/" + path.strip("/") if path.strip("/") else ""
    if path.startswith("/realms/"):
        # Keycloak: https://www.keycloak.org/docs/latest/securing_apps/ "Available endpoints".
        base = path + "/protocol/openid-connect"
        return {
            "authorization": base + "/auth",
            "token": base + "/token",
            "jwks": base + "/certs",
            "userinfo": base + "/userinfo",
            "end_session": base + "/logout",
        }
    if path.endswith("/v2.0"):
        # Microsoft identity platform: https://login.microsoftonline.com/{tenant}/v2.0/
        # .well-known/openid-configuration lists these (the "OpenID Connect on the Microsoft
        # identity platform" page).
        tenant = path.removesuffix("/v2.0")
        return {
            "authorization": tenant + "/oauth2/v2.0/authorize",
            "token": tenant + "/oauth2/v2.0/token",
            "jwks": tenant + "/discovery/v2.0/keys",
            "userinfo": "/oidc/userinfo",
            "end_session": tenant + "/oauth2/v2.0/logout",
        }
    return {
        "authorization": path + "/authorize",
        "token": path + "/token",
        "jwks": path + "/jwks",
        "userinfo": path + "/userinfo",
        "end_session": path + "/logout",
    }


class OidcProvider:
    """A loopback OIDC provider (ThreadingHTTPServer on 127.0.0.1, free port, daemon thread)."""

    def __init__(self, path: str = "/realms/oakfield") -> None:
        self._path = "/" + path.strip("/") if path.strip("/") else ""
        self._endpoints = _layout(self._path)
        self.published: list[RSAKey] = [new_key()]
        # Merged over the discovery document: a test makes the provider misdescribe itself.
        self.discovery_overrides: dict[str, Any] = {}
        # Who signs in at the next /authorize requests, first queued first.
        self._sign_ins: deque[dict[str, Any]] = deque()
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._requests: list[str] = []
        # Every token request's form and sign-out's query, for tests that check what was sent.
        self.token_requests: list[dict[str, str]] = []
        self.sign_outs: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0

    # --- where it is -----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def issuer(self) -> str:
        return self.origin + self._path

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return self.origin + self._endpoints["jwks"]

    @property
    def authorization_endpoint(self) -> str:
        return self.origin + self._endpoints["authorization"]

    @property
    def token_endpoint(self) -> str:
        return self.origin + self._endpoints["token"]

    @property
    def userinfo_endpoint(self) -> str:
        return self.origin + self._endpoints["userinfo"]

    @property
    def end_session_endpoint(self) -> str:
        return self.origin + self._endpoints["end_session"]

    @property
    def key(self) -> RSAKey:
        """The key the provider signs with now (the newest published)."""
        return self.published[-1]

    @property
    def requests(self) -> list[str]:
        """The paths asked so far (without query), oldest first."""
        with self._lock:
            return list(self._requests)

    def asked(self, url: str) -> int:
        """How many times the path of ``url`` (discovery, JWKS…) was asked."""
        path = urlsplit(url).path
        return sum(1 for asked in self.requests if asked == path)

    # --- what a test sets up ---------------------------------------------------------------------

    def register_client(
        self, client_id: str, redirect_uris: list[str], secret: str | None = None
    ) -> None:
        """A relying party: its exact redirect URIs (OAuth 2.0 Security BCP), and a secret
        when it is a confidential client."""
        with self._lock:
            self._clients[client_id] = Client(client_id, tuple(redirect_uris), secret)

    def next_sign_in(self, claims: dict[str, Any]) -> None:
        """The person who signs in at the next /authorize (the provider's own login is skipped):
        their claims, put in the id_token (plus iss, aud=client_id, iat, exp, nonce, sub default).

        Queued: each successful /authorize takes the oldest one; with none queued, /authorize
        answers ``access_denied`` (nobody signed in)."""
        with self._lock:
            self._sign_ins.append(dict(claims))

    def mint(
        self,
        claims: dict[str, Any],
        *,
        audience: str | None = None,
        lifetime: int = 600,
        kid: str | None = None,
    ) -> str:
        """An access/ID token signed with the current key; iss/iat/exp filled unless given."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.issuer, "iat": now, "exp": now + lifetime}
        payload.update(claims)
        if audience is not None:
            payload["aud"] = audience
        header = {"alg": "RS256", "typ": "JWT", "kid": kid if kid is not None else self.key.kid}
        return jwt.encode(header, payload, self.key)

    def rotate_keys(self, *, keep_old: bool = True) -> None:
        """Sign with a new key from now on; the old ones stay published unless ``keep_old`` is
        false (a provider that withdrew a compromised key)."""
        with self._lock:
            key = new_key()
            self.published = [*self.published, key] if keep_old else [key]

    # --- the server ------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again, on the same port after ``stop``)."""
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        # A short poll so that ``stop`` returns at once rather than after half a second.
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        """The provider goes down: nothing listens on its port any more."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the endpoints (called by the handler) ---------------------------------------------------

    def _discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "userinfo_endpoint": self.userinfo_endpoint,
            "end_session_endpoint": self.end_session_endpoint,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public", "pairwise"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name"],
        }
        document.update(self.discovery_overrides)
        return document

    def _jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.as_dict(private=False) for key in self.published]}

    def _authorize(self, query: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
        """RFC 6749 4.1.1 / 4.1.2: a redirect with a code, or with an error, or (when the client
        or redirect URI cannot be trusted) an error page and no redirect at all (4.1.2.1)."""
        client = self._clients.get(query.get("client_id", ""))
        if client is None:
            return _page(400, "Unknown client_id: the provider will not redirect anywhere.")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return _page(400, "redirect_uri is not registered for this client.")
        state = query.get("state")

        def refuse(error: str, description: str) -> tuple[int, dict[str, str], str]:
            answer = {"error": error, "error_description": description}
            if state is not None:
                answer["state"] = state
            return _redirect(redirect_uri, answer)

        if query.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code is supported")
        if not state:
            return refuse("invalid_request", "state is required")
        if "openid" not in query.get("scope", "").split():
            return refuse("invalid_scope", "the openid scope is required")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method", "plain")
        if not challenge:
            return refuse("invalid_request", "code challenge required")
        if method != "S256":
            return refuse("invalid_request", "transform algorithm not supported")
        with self._lock:
            if not self._sign_ins:
                return refuse("access_denied", "nobody signed in")
            claims = self._sign_ins.popleft()
            code = secrets.token_urlsafe(32)
            self._codes[code] = _Grant(
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                challenge=challenge,
                nonce=query.get("nonce"),
                scope=query.get("scope", ""),
                claims=claims,
                expires_at=time.time() + CODE_LIFETIME,
            )
        return _redirect(redirect_uri, {"code": code, "state": state})

    def _token(
        self, form: Mapping[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], str]:
        """RFC 6749 4.1.3 / 4.1.4 with RFC 7636 4.6; errors as 5.2 says."""
        with self._lock:
            self.token_requests.append(dict(form))
        client, refusal = self._client_of(form, authorization)
        if refusal is not None:
            return refusal
        assert client is not None
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        code = form.get("code", "")
        with self._lock:
            # Single use: taken out before anything is checked, so a second try finds nothing.
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at < time.time():
            return _oauth_error(400, "invalid_grant", "the code is unknown, used or expired")
        if grant.client_id != client.client_id:
            return _oauth_error(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri differs from the request's")
        verifier = form.get("code_verifier")
        if not verifier:
            return _oauth_error(400, "invalid_request", "code_verifier is required")
        if not (43 <= len(verifier) <= 128) or not all(
            c.isascii() and (c.isalnum() or c in "-._~") for c in verifier
        ):
            return _oauth_error(400, "invalid_grant", "code_verifier is malformed (RFC 7636 4.1)")
        if not secrets.compare_digest(s256(verifier), grant.challenge):
            return _oauth_error(400, "invalid_grant", "PKCE verification failed")
        return _json(200, self._tokens(client, grant), {"Cache-Control": "no-store"})

    def _client_of(
        self, form: Mapping[str, str], authorization: str | None
    ) -> tuple[Client | None, tuple[int, dict[str, str], str] | None]:
        """The client authenticating itself (RFC 6749 2.3.1): HTTP Basic or the form's
        client_secret for a confidential client; a public one names its client_id."""
        basic: tuple[str, str] | None = None
        if authorization is not None and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, _oauth_error(401, "invalid_client", "malformed Basic credentials")
            user, _, password = decoded.partition(":")
            basic = (unquote_plus(user), unquote_plus(password))
        if basic is not None and "client_secret" in form:
            return None, _oauth_error(
                400, "invalid_request", "more than one client authentication method"
            )
        client_id = basic[0] if basic is not None else form.get("client_id", "")
        client = self._clients.get(client_id)
        if client is None:
            status = 401 if basic is not None else 400
            return None, _oauth_error(status, "invalid_client", "unknown client")
        if client.secret is None:
            return client, None
        presented = basic[1] if basic is not None else form.get("client_secret")
        if presented is None or not secrets.compare_digest(presented, client.secret):
            # 401 with a challenge when the client tried Basic (RFC 6749 5.2).
            status = 401 if basic is not None else 400
            return None, _oauth_error(status, "invalid_client", "client authentication failed")
        return client, None

    def _tokens(self, client: Client, grant: _Grant) -> dict[str, Any]:
        now = int(time.time())
        person = dict(grant.claims)
        person.setdefault("sub", uuid.uuid4().hex)
        access_claims = {
            "iss": self.issuer,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "aud": client.client_id,
            **person,
        }
        access_token = self.mint(access_claims)
        id_claims: dict[str, Any] = {
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            **person,
            # OIDC Core 2: the ID token is for the client, whatever the access token's audience.
            "iss": self.issuer,
            "aud": client.client_id,
            "auth_time": now,
            "at_hash": b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
        }
        if grant.nonce is not None:
            id_claims["nonce"] = grant.nonce
        with self._lock:
            self._access_tokens[access_token] = access_claims
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "id_token": self.mint(id_claims),
            "scope": grant.scope,
        }

    def _userinfo(self, authorization: str | None) -> tuple[int, dict[str, str], str]:
        token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
        with self._lock:
            claims = self._access_tokens.get(token)
        if claims is None:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, ""
        registered = {"iss", "aud", "iat", "exp", "nbf", "azp", "scp", "scope", "jti"}
        return _json(200, {k: v for k, v in claims.items() if k not in registered})

    def _end_session(self, query: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
        """RP-Initiated Logout 1.0: back to ``post_logout_redirect_uri`` (with ``state``) when it
        belongs to a registered client (same origin as one of its redirect URIs)."""
        with self._lock:
            self.sign_outs.append(dict(query))
        target = query.get("post_logout_redirect_uri")
        if target is None:
            return _page(200, "You have signed out.")
        origin = _origin(target)
        if not any(
            _origin(uri) == origin
            for client in self._clients.values()
            for uri in client.redirect_uris
        ):
            return _page(400, "post_logout_redirect_uri is not registered.")
        state = query.get("state")
        return _redirect(target, {"state": state} if state is not None else {})


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme, parts.netloc)


def _redirect(uri: str, parameters: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
    if parameters:
        uri += ("&" if urlsplit(uri).query else "?") + urlencode(parameters, quote_via=quote)
    return 302, {"Location": uri}, ""


def _page(status: int, text: str) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, text


def _json(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document)


def _oauth_error(status: int, error: str, description: str) -> tuple[int, dict[str, str], str]:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return _json(status, {"error": error, "error_description": description}, headers)


def _single(values: Mapping[str, list[str]]) -> dict[str, str]:
    # A parameter sent twice is a malformed request (RFC 6749 3.1); the first one is kept here
    # and the provider's checks see what a client meant.
    return {name: given[0] for name, given in values.items()}


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    endpoints = provider._endpoints
    discovery_path = provider._path + "/.well-known/openid-configuration"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self._record(url.path)
            query = _single(parse_qs(url.query))
            if url.path == discovery_path:
                self._send(*_json(200, provider._discovery()))
            elif url.path == endpoints["jwks"]:
                self._send(*_json(200, provider._jwks()))
            elif url.path == endpoints["authorization"]:
                self._send(*provider._authorize(query))
            elif url.path == endpoints["userinfo"]:
                self._send(*provider._userinfo(self.headers.get("Authorization")))
            elif url.path == endpoints["end_session"]:
                self._send(*provider._end_session(query))
            else:
                self._send(*_page(404, "Not found"))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            self._record(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            if url.path == endpoints["token"]:
                if not (self.headers.get("Content-Type") or "").startswith(
                    "application/x-www-form-urlencoded"
                ):
                    self._send(*_oauth_error(400, "invalid_request", "send a form"))
                    return
                form = _single(parse_qs(body))
                self._send(*provider._token(form, self.headers.get("Authorization")))
            elif url.path == endpoints["userinfo"]:
                self._send(*provider._userinfo(self.headers.get("Authorization")))
            else:
                self._send(*_page(404, "Not found"))

        def _record(self, path: str) -> None:
            with provider._lock:
                provider._requests.append(path)

        def _send(self, status: int, headers: Mapping[str, str], body: str) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_provider(path: str = "/realms/oakfield") -> Iterator[OidcProvider]:
    """A provider listening on loopback for the duration of the block."""
    provider = OidcProvider(path)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
