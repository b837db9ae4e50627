"""A school's identity provider as Hallpass sees it: a JWKS endpoint over HTTP on loopback, shaped
like an OIDC provider's (``{"keys": [...]}`` of public keys with ``kid``, ``use`` and ``alg``),
whose keys a test can rotate, and which can go down, answer garbage or answer slowly."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

ISSUER = "https://login.example.test/school-tenant/v2.0"
AUDIENCE = "hallpass"
JWKS_PATH = "/school-tenant/discovery/v2.0/keys"


def new_key() -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"}
    )


def claims(**changes: Any) -> dict[str, Any]:
    """A head teacher's claims as the provider issues them; ``None`` leaves a claim out."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "head@oakfield",
        "iat": now,
        "exp": now + 600,
        "school": "oakfield",
        "roles": ["head"],
        "email": "head@oakfield.sch.uk",
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def sign(
    key: RSAKey, payload: dict[str, Any], *, kid: str | None = None, without_kid: bool = False
) -> str:
    """A JWT signed by ``key``; its header names ``kid``, the key's own, or no key at all."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if not without_kid:
        header["kid"] = kid if kid is not None else key.kid
    return jwt.encode(header, payload, key)


class IdentityProvider:
    """Serves ``published`` as the JWKS; ``answer`` says how the endpoint behaves right now."""

    def __init__(self) -> None:
        self.published: list[RSAKey] = [new_key()]
        # "keys" (the JWKS), or a raw (status, content type, body) to answer instead.
        self.answer: str | tuple[int, str, bytes] = "keys"
        # Seconds between the bytes of the answer: a provider that trickles its answer.
        self.byte_delay = 0.0
        self.fetches = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0

    @property
    def key(self) -> RSAKey:
        """The key the provider signs with now (the newest published)."""
        return self.published[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{JWKS_PATH}"

    def issue(self, **changes: Any) -> str:
        return sign(self.key, claims(**changes))

    def rotate(self) -> RSAKey:
        """Publish a new signing key beside the old one, as providers do during a rollover."""
        key = new_key()
        self.published.append(key)
        return key

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                with provider._lock:
                    provider.fetches += 1
                if provider.answer == "keys":
                    document = {"keys": [key.as_dict(private=False) for key in provider.published]}
                    status, content_type, body = 200, "application/json", json.dumps(document)
                    answer = (status, content_type, body.encode())
                else:
                    assert not isinstance(provider.answer, str)
                    answer = provider.answer
                self._send(*answer)

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if provider.byte_delay == 0:
                        self.wfile.write(body)
                        return
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(provider.byte_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the verifier stopped listening, as it should with a slow provider

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """The provider goes down: nothing listens on its port any more."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def running_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


class Clock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
