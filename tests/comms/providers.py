"""Loopback stand-ins for Microsoft 365 and Google Workspace, shaped from their documentation.

- ``ProviderStandIn``: one HTTP server on 127.0.0.1 playing the Microsoft identity platform's
  token endpoint (``/{tenant}/oauth2/v2.0/token``, client credentials with a secret), Google's
  (``/google/token``, a jwt-bearer assertion whose RS256 signature is checked with the service
  account's public key), Graph ``/v1.0/users/{id}/sendMail`` (base64 MIME, 202, error bodies
  ``{"error": {"code", "message"}}``, 429 with Retry-After) and Gmail
  ``/gmail/v1/users/{id}/messages/send`` (``{"raw": base64url}``). It keeps the tokens it issued
  and who may use them, and can be told to answer the next request with an error.
- ``ProviderSmtp``: aiosmtpd with STARTTLS (a test authority's certificate) and, for
  ``smtp.office365.com`` / ``smtp.gmail.com``, ``AUTH XOAUTH2`` checked against the tokens the
  stand-in issued; without XOAUTH2 it is a relay (Microsoft connector, Google SMTP relay) that
  may require a client certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from hallpass_comms.delivery.rendering import new_message_id_header, render
from hallpass_comms.models import (
    Approval,
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    RecipientKind,
    Sensitivity,
)
from tests.comms.smtp import HOST, RecordingHandler, free_port

TENANT = "5f2b1c9e-oakfield-tenant"
CLIENT_ID = "0c7a3d12-hallpass-app"
CLIENT_SECRET = "oakfield-app-secret"
SERVICE_ACCOUNT = "hallpass-mail@oakfield-school.iam.gserviceaccount.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"


DOMAIN = "oakfield.sch.uk"
TEACHER = f"teacher@{DOMAIN}"
HEAD = f"head@{DOMAIN}"
CARERS = ["carer.0001.a@parents.example.org", "carer.0001.b@parents.example.org"]


def family_email(
    sender: str = TEACHER, to: list[str] | None = None, cc: list[str] | None = None
) -> EmailMessage:
    """One family's envelope as the delivery worker renders it: the member of staff's From (E2),
    the carers in To, the head copied (E1), the row's Message-ID and delivery header."""
    now = dt.datetime.now(dt.UTC)
    message = Message(
        id=uuid.uuid4(),
        school_id="oakfield",
        kind=MessageKind.staff_message,
        sender_sub="teacher@oakfield",
        sender_address=sender,
        subject="Year 4 trip to the museum",
        body_text="Dear families, the coach leaves at 9:15.",
        body_html=None,
        sensitivity=Sensitivity.normal,
        urgent=False,
        approval=Approval.not_needed,
        scheduled_for=None,
        created_at=now,
    )
    delivery_id = uuid.uuid4()
    delivery = Delivery(
        id=delivery_id,
        message_id=message.id,
        school_id="oakfield",
        recipient_kind=RecipientKind.family,
        guardian_ids=[],
        pupil_ids=[],
        to_addresses=CARERS if to is None else to,
        cc_addresses=[HEAD] if cc is None else cc,
        status=DeliveryStatus.sending,
        due_at=now,
        attempts=1,
        message_id_header=new_message_id_header(delivery_id, DOMAIN),
        created_at=now,
    )
    return render(message, delivery, public_base_url="https://hallpass.oakfield.sch.uk")


# --------------------------------------------------------------------------------------------
# Keys and certificates


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class TlsFiles:
    """A test certificate authority, the server's certificate from it, and a client's."""

    authority: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path  # certificate and key in one PEM file

    def server_context(self, *, require_client_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_certificate, self.server_key)
        if require_client_certificate:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.authority))
        return context


def make_tls_files(folder: Path) -> TlsFiles:
    now = dt.datetime.now(dt.UTC)
    authority_key = _rsa_key()
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hallpass test CA")])
    authority = (
        x509.CertificateBuilder()
        .subject_name(authority_name)
        .issuer_name(authority_name)
        .public_key(authority_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(authority_key.public_key()), critical=False
        )
        .sign(authority_key, hashes.SHA256())
    )

    def leaf(name: str, usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, bytes]:
        key = _rsa_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(authority_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
                critical=False,
            )
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(IPv4Address(HOST)), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(authority_key, hashes.SHA256()), _pem_key(key)

    server, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH)
    client, client_key = leaf("hallpass.oakfield.sch.uk", ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TlsFiles(
        authority=folder / "authority.pem",
        server_certificate=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_certificate=folder / "client.pem",
    )
    files.authority.write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    files.server_certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(server_key)
    files.client_certificate.write_bytes(
        client.public_bytes(serialization.Encoding.PEM) + client_key
    )
    return files


@dataclass(frozen=True)
class AppCertificate:
    """An app registration's certificate: the PEM Hallpass holds (certificate and private key),
    and what Microsoft keeps after the upload (the public key, found by its SHA-1 thumbprint)."""

    path: Path
    public_key: RSAKey
    thumbprint: str


def make_app_certificate(folder: Path) -> AppCertificate:
    now = dt.datetime.now(dt.UTC)
    key = _rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hallpass mail")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path = folder / "hallpass-mail-app.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + _pem_key(key))
    der = certificate.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha1(der).digest()  # noqa: S324 - x5t is SHA-1 by definition
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return AppCertificate(
        path,
        RSAKey.import_key(public),
        base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
    )


@dataclass(frozen=True)
class ServiceAccountKey:
    """A Google service account's JSON key file and the public key Google would check with."""

    path: Path
    public_key: RSAKey


def make_service_account(folder: Path, token_url: str) -> ServiceAccountKey:
    key = _rsa_key()
    info = {
        "type": "service_account",
        "project_id": "oakfield-school",
        "private_key_id": "3f1c0a7e",
        "private_key": _pem_key(key).decode("ascii"),
        "client_email": SERVICE_ACCOUNT,
        "client_id": "108234567890123456789",
        "token_uri": token_url,
    }
    path = folder / "service-account.json"
    path.write_text(json.dumps(info))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccountKey(path, RSAKey.import_key(public))


# --------------------------------------------------------------------------------------------
# The HTTP stand-in


@dataclass(frozen=True)
class Grant:
    """What one issued token allows: a scope, and for Google the one mailbox it acts as."""

    scope: str
    subject: str | None


@dataclass(frozen=True)
class Delivered:
    """A message Graph or Gmail took, with the mailbox it was sent as."""

    via: str
    mailbox: str
    raw: bytes
    message: EmailMessage

    def addresses(self, header: str) -> list[str]:
        return [
            address.addr_spec.lower()
            for value in self.message.get_all(header, [])
            for address in value.addresses
        ]


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def microsoft_error(code: int, error: str, description: str) -> dict[str, Any]:
    """The identity platform's error document (``error_codes`` carries the AADSTS number)."""
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: 0000\r\nTimestamp: now",
        "error_codes": [code],
        "timestamp": "2026-12-02 15:00:00Z",
        "trace_id": "0000",
        "correlation_id": "0000",
    }


def google_api_error(status: int, reason: str, message: str, state: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": state,
        }
    }


class ProviderStandIn:
    """Token endpoints, Graph and Gmail on one loopback port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.grants: dict[str, Grant] = {}
        self.issued: list[Grant] = []
        self.expires_in = 3599
        self.client_secret = CLIENT_SECRET
        # A certificate uploaded to the app registration, when the test gives one.
        self.app_certificate: AppCertificate | None = None
        # Exchange: mailboxes the app's service principal has FullAccess on (SMTP), and the
        # mailboxes the application access policy lets Graph send from (None: every mailbox).
        self.full_access: set[str] = set()
        self.access_policy: set[str] | None = None
        # Google: the service account's public key, the Workspace's users and the scopes the
        # admin delegated to the account.
        self.google_key: RSAKey | None = None
        self.google_users: set[str] = set()
        self.delegated_scopes: set[str] = {GOOGLE_MAIL_SCOPE, GMAIL_SEND_SCOPE}
        self.delivered: list[Delivered] = []
        self.graph_requests = 0
        self._next: dict[str, list[Answer]] = {}
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def google_token_url(self) -> str:
        return f"{self.url}/google/token"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # What the test arranges -------------------------------------------------------------------

    def answer_next(self, route: str, answer: Answer, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``route`` (microsoft-token, google-token, graph,
        gmail) with ``answer`` instead of serving them."""
        with self._lock:
            self._next.setdefault(route, []).extend([answer] * times)

    def revoke_all(self) -> None:
        """Every token issued so far stops working (a revoked or expired-early token)."""
        with self._lock:
            self.grants.clear()

    def grant_for(self, token: str) -> Grant | None:
        with self._lock:
            return self.grants.get(token)

    def _take(self, route: str) -> Answer | None:
        with self._lock:
            queued = self._next.get(route)
            return queued.pop(0) if queued else None

    def _issue(self, grant: Grant) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.grants[token] = grant
            self.issued.append(grant)
        return {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}

    # Routes ---------------------------------------------------------------------------------------

    def microsoft_token(self, tenant: str, form: dict[str, str]) -> Answer:
        if tenant != TENANT:
            return Answer(
                400,
                microsoft_error(90002, "invalid_request", f"Tenant '{tenant}' not found."),
            )
        if form.get("grant_type") != "client_credentials":
            return Answer(400, microsoft_error(70003, "unsupported_grant_type", "grant type"))
        if form.get("client_id") != CLIENT_ID:
            return Answer(
                400,
                microsoft_error(700016, "unauthorized_client", "Application not found."),
            )
        if "client_assertion" in form:
            if not self._assertion_holds(tenant, form):
                return Answer(
                    401,
                    microsoft_error(
                        700027, "invalid_client", "Client assertion failed signature validation."
                    ),
                )
        elif form.get("client_secret") != self.client_secret:
            return Answer(
                401,
                microsoft_error(7000215, "invalid_client", "Invalid client secret provided."),
            )
        scope = form.get("scope", "")
        if scope not in {GRAPH_SCOPE, OUTLOOK_SCOPE}:
            return Answer(400, microsoft_error(1002012, "invalid_scope", "scope not valid"))
        return Answer(200, self._issue(Grant(scope, None)))

    def _assertion_holds(self, tenant: str, form: dict[str, str]) -> bool:
        certificate = self.app_certificate
        if certificate is None:
            return False
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return False
        try:
            token = jwt.decode(form["client_assertion"], certificate.public_key, ["RS256"])
        except (JoseError, ValueError):
            return False
        claims = token.claims
        return (
            token.header.get("x5t") == certificate.thumbprint
            and claims.get("aud") == f"{self.url}/{tenant}/oauth2/v2.0/token"
            and claims.get("iss") == CLIENT_ID
            and claims.get("sub") == CLIENT_ID
        )

    def google_token(self, form: dict[str, str]) -> Answer:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Answer(400, {"error": "unsupported_grant_type"})
        assert self.google_key is not None, "the stand-in needs the service account's public key"
        try:
            token = jwt.decode(form.get("assertion", ""), self.google_key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return Answer(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        claims = token.claims
        if claims.get("aud") != self.google_token_url or claims.get("iss") != SERVICE_ACCOUNT:
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
        scope = str(claims.get("scope", ""))
        if scope not in self.delegated_scopes:
            return Answer(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens using "
                    "this method, or client not authorized for any of the scopes requested.",
                },
            )
        subject = str(claims.get("sub", "")).lower()
        if subject not in self.google_users:
            return Answer(
                400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
            )
        return Answer(200, self._issue(Grant(scope, subject)))

    def graph_send(self, user: str, authorization: str, content_type: str, body: bytes) -> Answer:
        with self._lock:
            self.graph_requests += 1
        grant = self.grant_for(authorization.removeprefix("Bearer "))
        if grant is None or grant.scope != GRAPH_SCOPE:
            return Answer(
                401,
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token has expired or is not yet valid.",
                    }
                },
            )
        if self.access_policy is not None and user.lower() not in self.access_policy:
            return Answer(
                403,
                {
                    "error": {
                        "code": "ErrorAccessDenied",
                        "message": "Access to OData is disabled: [RAOP] : Blocked by tenant "
                        "configured AppOnly AccessPolicy settings.",
                    }
                },
            )
        if not content_type.startswith("text/plain"):
            return Answer(
                400, {"error": {"code": "ErrorInvalidRequest", "message": "JSON or MIME expected"}}
            )
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return Answer(
                400,
                {
                    "error": {
                        "code": "ErrorMimeContentInvalidBase64String",
                        "message": "Invalid base64 string for MIME content.",
                    }
                },
            )
        self._deliver("graph", user, raw)
        return Answer(202, None)

    def gmail_send(self, user: str, authorization: str, body: bytes) -> Answer:
        grant = self.grant_for(authorization.removeprefix("Bearer "))
        if grant is None:
            return Answer(
                401,
                google_api_error(401, "authError", "Invalid Credentials", "UNAUTHENTICATED"),
            )
        if grant.scope != GMAIL_SEND_SCOPE or grant.subject != user.lower():
            return Answer(
                403,
                google_api_error(
                    403,
                    "insufficientPermissions",
                    "Request had insufficient authentication scopes.",
                    "PERMISSION_DENIED",
                ),
            )
        raw = base64.urlsafe_b64decode(json.loads(body)["raw"])
        self._deliver("gmail", user, raw)
        return Answer(200, {"id": secrets.token_hex(8), "threadId": "t", "labelIds": ["SENT"]})

    def _deliver(self, via: str, mailbox: str, raw: bytes) -> None:
        parsed = BytesParser(policy=default_policy).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.delivered.append(Delivered(via, mailbox.lower(), raw, parsed))


def _handler_for(stand_in: ProviderStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            parts = [unquote(part) for part in self.path.split("?")[0].strip("/").split("/")]
            authorization = self.headers.get("Authorization", "")
            answer: Answer
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                answer = stand_in._take("microsoft-token") or stand_in.microsoft_token(
                    parts[0], _form(body)
                )
            elif parts == ["google", "token"]:
                answer = stand_in._take("google-token") or stand_in.google_token(_form(body))
            elif len(parts) == 4 and parts[:2] == ["v1.0", "users"] and parts[3] == "sendMail":
                answer = stand_in._take("graph") or stand_in.graph_send(
                    parts[2], authorization, self.headers.get("Content-Type", ""), body
                )
            elif parts[:3] == ["gmail", "v1", "users"] and parts[4:] == ["messages", "send"]:
                answer = stand_in._take("gmail") or stand_in.gmail_send(
                    parts[3], authorization, body
                )
            else:
                answer = Answer(404, {"error": {"code": "NotFound", "message": self.path}})
            data = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _form(body: bytes) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(body.decode()).items()}


# --------------------------------------------------------------------------------------------
# SMTP: XOAUTH2 (Exchange Online, Gmail) or a relay


class ProviderHandler(RecordingHandler):
    """The recording handler, plus XOAUTH2 checked against the stand-in's tokens and replies to
    MAIL FROM on demand (where providers throttle)."""

    def __init__(self, stand_in: ProviderStandIn | None, provider: str | None) -> None:
        super().__init__()
        self.stand_in = stand_in
        self.provider = provider
        self.logins: list[str] = []
        self.refused_logins = 0
        self._mail_reply: str | None = None

    def refuse_mail(self, reply: str | None) -> None:
        """Answer ``reply`` (e.g. "421 4.7.0 Try again later") to MAIL FROM."""
        self._mail_reply = reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self._mail_reply is not None:
            return self._mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if self.stand_in is None or len(args) != 2:
            return AuthResult(success=False, handled=False)
        fields = dict(
            part.split("=", 1)
            for part in base64.b64decode(args[1]).decode().split("\x01")
            if "=" in part
        )
        user = fields.get("user", "").lower()
        grant = self.stand_in.grant_for(fields.get("auth", "").removeprefix("Bearer "))
        if self.provider == "microsoft":
            allowed = (
                grant is not None
                and grant.scope == OUTLOOK_SCOPE
                and user in self.stand_in.full_access
            )
            refusal = "535 5.7.3 Authentication unsuccessful"
        else:
            allowed = (
                grant is not None and grant.scope == GOOGLE_MAIL_SCOPE and grant.subject == user
            )
            refusal = "535-5.7.8 Username and Password not accepted"
        if not allowed:
            self.refused_logins += 1
            # The providers answer a bad token with a 334 challenge holding a JSON error; the
            # client answers it with an empty line before the final refusal.
            await server.challenge_auth(
                json.dumps({"status": "401", "schemes": "bearer", "scope": GOOGLE_MAIL_SCOPE})
            )
            return AuthResult(success=False, handled=False, message=refusal)
        self.logins.append(user)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))


class ProviderSmtp:
    """aiosmtpd on loopback: STARTTLS when given TLS files, XOAUTH2 when given a provider."""

    def __init__(
        self,
        *,
        tls: TlsFiles | None,
        stand_in: ProviderStandIn | None = None,
        provider: str | None = None,
        require_client_certificate: bool = False,
    ) -> None:
        self.port = free_port()
        self.handler = ProviderHandler(stand_in, provider)
        options: dict[str, Any] = {}
        if tls is not None:
            options["tls_context"] = tls.server_context(
                require_client_certificate=require_client_certificate
            )
            options["require_starttls"] = True
        if provider is None:
            options["auth_exclude_mechanism"] = ["XOAUTH2", "LOGIN", "PLAIN"]
        self._controller = Controller(self.handler, hostname=HOST, port=self.port, **options)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[Any]:
        return self.handler.received


def running(server: ProviderSmtp) -> Iterator[ProviderSmtp]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
