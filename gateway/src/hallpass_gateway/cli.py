"""The ``hallpass`` command: run the system, mint dev tokens, migrate, import, seed, write specs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from hallpass_gateway.quick_token import ROLE_NAMES, TRUST_ROLE_NAMES, TokenSettings

# Each command imports what it needs inside its function: a short command (`--help`, `token`,
# `service-key`, `comms check-transport`) should start at once, not after the services' settings,
# SQLAlchemy, the web framework and the scanning stack have loaded (docs/benchmarks.md).
if TYPE_CHECKING:
    import uuid
    from pathlib import Path

    from hallpass_consent.settings import ConsentSettings
    from hallpass_kit.audit import AuditChain
    from hallpass_kit.db import Database
    from hallpass_kit.settings import CommonSettings

Command = Callable[[argparse.Namespace], int]

_EIGHT_HOURS = 8 * 3600
# The services a process can serve or work for on its own (the gateway's prefixes, named).
_SERVICE_NAMES = ["consent", "media", "comms"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hallpass`` command; returns the process exit status."""
    args = _parser().parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except Exception as exc:
        refusal = _settings_refusal(exc)
        if refusal is None:
            raise
        print(f"hallpass: {refusal}", file=sys.stderr)
        return 2


def _settings_refusal(exc: Exception) -> str | None:
    """What to print for an error in the settings or identity file, read at start-up before
    anything serves: say what to fix, not where it was noticed (no traceback).

    Each of these errors can only come from a module the command has imported; looking them up
    among the loaded modules keeps a short command from importing them just to catch them.
    """
    identity = sys.modules.get("hallpass_kit.identity")
    if identity is not None and isinstance(exc, identity.IdentityFileError):
        return f"identity file refused: {exc}"
    settings = sys.modules.get("hallpass_kit.settings")
    pydantic_core = sys.modules.get("pydantic_core")
    if (settings is not None and isinstance(exc, settings.InsecureSettingsError)) or (
        pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError)
    ):
        return f"settings refused: {exc}"
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hallpass",
        description="Hallpass: consent, publishing and parent communications for schools.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gateway (every service in one process, or a proxy to them) or one service",
    )
    serve.add_argument(
        "service",
        nargs="?",
        default="gateway",
        choices=["gateway", *_SERVICE_NAMES],
        help="what this process serves (default: gateway)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=os.environ.get("PORT", "8000"))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--skip-migrations",
        action="store_true",
        help="do not migrate first (a deployment's migrate job has done it)",
    )
    serve.set_defaults(command=_serve)

    worker = commands.add_parser(
        "worker", help="run one service's background work (outbox, webhooks, scans, mail)"
    )
    worker.add_argument("service", choices=_SERVICE_NAMES)
    worker.set_defaults(command=_worker)

    service_key = commands.add_parser(
        "service-key", help="make the key services apart sign their calls to each other with"
    )
    service_key.add_argument(
        "--out", type=_LazyType("pathlib", "Path"), required=True, help="file to write (mode 600)"
    )
    service_key.add_argument("--force", action="store_true", help="replace an existing file")
    service_key.set_defaults(command=_service_key)

    token = commands.add_parser("token", help="print a bearer token from the dev issuer")
    token.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        choices=ROLE_NAMES,
        help="repeat for several roles",
    )
    token.add_argument(
        "--school", help="default demo; with a trust role, one of the trust's schools or none"
    )
    token.add_argument(
        "--trust", help="the trust a trust role acts in (a trust of HALLPASS_IDENTITY_FILE)"
    )
    token.add_argument(
        "--guardian", type=_LazyType("uuid", "UUID"), help="guardian id (required for parent)"
    )
    token.add_argument("--sub", help="subject; default ROLE@SCHOOL")
    token.add_argument("--email", help="default ROLE@SCHOOL.sch.uk")
    token.add_argument("--ttl", type=int, default=_EIGHT_HOURS, help="lifetime in seconds")
    token.set_defaults(command=_token)

    migrate = commands.add_parser(
        "migrate", help="bring the services' databases up to date (all, or those named)"
    )
    # Checked by _migrate: argparse before 3.12 refuses an empty list against ``choices``.
    migrate.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(_SERVICE_NAMES)}"
    )
    migrate.set_defaults(command=_migrate)

    import_ = commands.add_parser("import", help="import pupils and carers from an MIS CSV export")
    import_.add_argument("file", type=_LazyType("pathlib", "Path"), metavar="FILE.csv")
    import_.add_argument("--school", default="demo")
    import_.add_argument("--dry-run", action="store_true", help="validate and report, save nothing")
    import_.set_defaults(command=_import)

    demo = commands.add_parser("demo", help="seed a demo school (safe to run again)")
    demo.add_argument("--school", default="demo")
    demo.add_argument("--reset", action="store_true", help="delete the demo school's data first")
    demo.set_defaults(command=_demo)

    comms = commands.add_parser("comms", help="parent communications: jobs run by hand")
    comms_commands = comms.add_subparsers(title="comms commands", required=True, metavar="JOB")
    remind = comms_commands.add_parser(
        "remind-renewals",
        help="write to carers whose consents end soon (once per carer and consent)",
    )
    remind.add_argument("--school", default="demo")
    remind.add_argument("--within-days", type=int, default=30, help="how far ahead (1 to 366)")
    remind.set_defaults(command=_remind_renewals)
    check = comms_commands.add_parser(
        "check-transport",
        help="send one test message through the configured mail transport and say what is missing",
    )
    check.add_argument("--from", dest="sender", required=True, help="a member of staff's address")
    check.add_argument("--to", dest="recipient", required=True, help="where the test goes")
    check.set_defaults(command=_check_transport)

    openapi = commands.add_parser("openapi", help="write the OpenAPI documents under --out")
    openapi.add_argument("--out", type=_LazyType("pathlib", "Path"), default="openapi")
    openapi.add_argument(
        "--check", action="store_true", help="compare with the files instead of writing them"
    )
    openapi.set_defaults(command=_openapi)
    return parser


class _LazyType:
    """An argument type imported only when an argument of it is read: uuid imports platform and
    pathlib imports urllib and ipaddress, a tenth of a short command's start-up between them."""

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self.__name__ = name  # argparse says "invalid UUID value"

    def __call__(self, text: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._module), self.__name__)(text)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hallpass_gateway.app import SERVICES, service_name
    from hallpass_gateway.asgi import proxy_mode
    from hallpass_kit.auth import DevIssuer
    from hallpass_kit.clients import service_key
    from hallpass_kit.logs import configure_logging
    from hallpass_kit.settings import CommonSettings

    served: str = args.service
    host: str = args.host
    port: int = args.port
    workers: int = args.workers
    common = CommonSettings()
    configure_logging(common)
    # Done once here rather than by each worker at start-up, where several processes would race
    # to migrate the same database and to create the same signing key.
    if not args.skip_migrations:
        for prefix, service in SERVICES.items():
            if served == service_name(prefix) or (served == "gateway" and not proxy_mode(common)):
                service.migrate(common)
    if common.uses_dev_issuer:
        DevIssuer.load_or_create(
            common.dev_signing_key_path, common.auth_issuer, common.auth_audience
        )
    if served != "gateway":
        service_key(common)  # made once here, outside production, for the workers to share
        _print_listening(host, port, served)
        uvicorn.run(
            f"hallpass_{served}.asgi:app",
            host=host,
            port=port,
            workers=workers,
            loop=_loop(),
            http="httptools",
            log_config=None,
            access_log=False,
            # The gateway alone reads X-Forwarded-* (HALLPASS_GATEWAY_TRUSTED_PROXIES).
            proxy_headers=False,
        )
        return 0

    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    url = f"http://{shown_host}:{port}"
    print(f"Hallpass is listening on {url}  (API documentation: {url}/docs)")
    if common.uses_dev_issuer:
        print("Requests need a bearer token from the dev issuer, for example:")
        print(f"  TOKEN=$({_how_this_was_run()} token --role head)")
        print(f'  curl -H "Authorization: Bearer $TOKEN" {url}/consent/v1/purposes')
    sys.stdout.flush()

    uvicorn.run(
        "hallpass_gateway.asgi:app",
        host=host,
        port=port,
        workers=workers,
        loop=_loop(),
        http="httptools",
        # The kit's logging (HALLPASS_LOG_FORMAT) writes one line per request instead.
        log_config=None,
        access_log=False,
        # The gateway reads X-Forwarded-* itself, only from HALLPASS_GATEWAY_TRUSTED_PROXIES;
        # uvicorn would otherwise trust any local caller's.
        proxy_headers=False,
    )
    return 0


def _loop() -> str:
    import importlib.util

    # uvloop is not built for Windows; the pyproject leaves it out there.
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "auto"


def _print_listening(host: str, port: int, served: str) -> None:
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    print(f"Hallpass {served} is listening on http://{shown_host}:{port}")
    sys.stdout.flush()


def _worker(args: argparse.Namespace) -> int:
    import importlib

    from hallpass_kit.logs import configure_logging
    from hallpass_kit.settings import CommonSettings
    from hallpass_kit.standalone import run_background_only

    served: str = args.service
    common = CommonSettings()
    configure_logging(common)
    create = importlib.import_module(f"hallpass_{served}.asgi").create
    app = create(run_background=True)
    print(f"Hallpass {served} worker started; stop it with SIGTERM or Ctrl-C")
    sys.stdout.flush()
    return run_background_only(app)


def _service_key(args: argparse.Namespace) -> int:
    import json
    import time

    # The key hallpass_kit.clients.generate_service_key makes, without the services' stack.
    from hallpass_gateway.quick_token import new_private_jwk

    out: Path = args.out
    if out.exists() and not args.force:
        print(f"hallpass service-key: {out} exists (--force replaces it)", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.urandom(16).hex()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(new_private_jwk(f"service-{int(time.time())}")[0]))
    temporary.replace(out)
    print(f"service key written to {out}; give every service the same file")
    return 0


def _how_this_was_run() -> str:
    from pathlib import Path

    # The hint must work when pasted into the user's own shell, where neither the virtualenv's
    # bin/ nor a bootstrapped uv is necessarily on PATH.
    script = Path(sys.argv[0])
    if script.name.startswith("hallpass") and script.is_file():
        return _shortest_path(script)
    return f"{_shortest_path(Path(sys.executable))} -m hallpass_gateway"


def _shortest_path(path: Path) -> str:
    from pathlib import Path

    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"


def _token(args: argparse.Namespace) -> int:
    # The lean route (hallpass_gateway.quick_token): no services, no pydantic-settings, no joserfc.
    from hallpass_gateway import quick_token

    roles: list[str] = args.roles
    trust: str | None = args.trust
    trust_roles = sorted(set(roles) & TRUST_ROLE_NAMES)
    school: str | None = args.school or (None if trust_roles else "demo")
    guardian: uuid.UUID | None = args.guardian
    ttl: int = args.ttl
    settings = quick_token.settings_from_environment(os.environ) or _full_token_settings()
    if not settings.uses_dev_issuer:
        print(
            "hallpass token: tokens come from the school's identity provider; the dev issuer is "
            "off because HALLPASS_IDENTITY_FILE names issuers or HALLPASS_AUTH_JWKS_URL is set.",
            file=sys.stderr,
        )
        return 2
    if trust_roles and trust not in settings.trusts:
        known = ", ".join(sorted(settings.trusts)) or "none: set HALLPASS_IDENTITY_FILE"
        print(
            f"hallpass token: {trust_roles[0]} acts in a trust; name one with --trust "
            f"(trusts: {known}).",
            file=sys.stderr,
        )
        return 2
    if "parent" in roles and guardian is None:
        print(
            "hallpass token: a parent's token must name the guardian (--guardian UUID).",
            file=sys.stderr,
        )
        return 2
    if ttl <= 0:
        print("hallpass token: --ttl must be a positive number of seconds.", file=sys.stderr)
        return 2
    where = school or trust or "demo"
    sub: str = args.sub or f"{roles[0]}@{where}"
    email: str = args.email or f"{roles[0]}@{where}.sch.uk"
    key = quick_token.load_or_create_key(settings.dev_signing_key_path)
    print(
        quick_token.issue(
            key,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            sub=sub,
            school=school,
            roles=roles,
            guardian_id=guardian,
            email=email,
            ttl_seconds=ttl,
            extra={"trust": trust} if trust_roles else None,
        )
    )
    return 0


def _full_token_settings() -> TokenSettings:
    """The token's settings from CommonSettings itself: production's checks, the identity file."""
    from hallpass_kit.settings import CommonSettings

    common = CommonSettings()
    uses_dev_issuer = common.uses_dev_issuer  # reads the identity file: refused here if wrong
    return TokenSettings(
        data_dir=str(common.data_dir),
        auth_issuer=common.auth_issuer,
        auth_audience=common.auth_audience,
        uses_dev_issuer=uses_dev_issuer,
        trusts=frozenset(common.identity().trusts),
    )


def _migrate(args: argparse.Namespace) -> int:
    from hallpass_gateway.app import SERVICES, service_name
    from hallpass_kit.settings import CommonSettings

    named: list[str] = args.services
    unknown = sorted(set(named) - set(_SERVICE_NAMES))
    if unknown:
        print(f"hallpass migrate: no such service: {', '.join(unknown)}", file=sys.stderr)
        return 2
    common = CommonSettings()
    for prefix, service in SERVICES.items():
        if named and service_name(prefix) not in named:
            continue
        service.migrate(common)
        print(f"{service_name(prefix)}: database is up to date")
    return 0


def _consent_database(common: CommonSettings, settings: ConsentSettings) -> Database:
    from hallpass_consent.common import audit
    from hallpass_consent.migrations import upgrade
    from hallpass_kit.db import MAINTENANCE, Database

    database = Database(settings.resolved_database_url(common), MAINTENANCE)
    upgrade(database)
    _seal_audit(audit, database, common, "consent")
    return database


def _seal_audit(
    chain: AuditChain, database: Database, common: CommonSettings, service: str
) -> None:
    """Entries a command writes are sealed with the service's own key, as the service's are, so
    the chain verifies at once rather than only after the service's next checkpoint."""
    from hallpass_kit.checkpoints import notary_from_settings

    chain.bind(database, notary_from_settings(common, service))


def _cli_actor() -> str:
    import getpass

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        # Containers often run as a uid with no passwd entry.
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


class ProgressBar:
    """A one-line progress bar redrawn in place, only when what it shows changes."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        # A log file or CI console cannot redraw a line; there each stage gets one line at its end.
        self._redraws = stream.isatty()
        self._width = width
        self._shown: tuple[str, int, int] | None = None
        self._line_length = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        filled = self._width if total <= 0 else min(self._width, self._width * done // total)
        percent = 100 if total <= 0 else min(100, 100 * done // total)
        if self._shown == (stage, filled, percent):
            return
        bar = "#" * filled + "." * (self._width - filled)
        line = f"{stage:<12} [{bar}] {percent:>3}% {done}/{total}"
        if not self._redraws:
            if done >= total:
                self._shown = (stage, filled, percent)
                self._stream.write(line + "\n")
                self._stream.flush()
            return
        self._shown = (stage, filled, percent)
        # Padding wipes the tail of a longer previous line.
        self._stream.write("\r" + line.ljust(self._line_length))
        self._stream.flush()
        self._line_length = len(line)

    def finish(self) -> None:
        if self._redraws and self._line_length:
            self._stream.write("\n")
            self._stream.flush()
        self._shown = None
        self._line_length = 0


def _import(args: argparse.Namespace) -> int:
    from hallpass_consent.pupils.importer import import_csv_file
    from hallpass_consent.settings import ConsentSettings
    from hallpass_kit.errors import HallpassError
    from hallpass_kit.settings import CommonSettings

    path: Path = args.file
    school: str = args.school
    dry_run: bool = args.dry_run
    if not path.is_file():
        print(f"hallpass import: {path} is not a file", file=sys.stderr)
        return 2
    settings = ConsentSettings()
    database = _consent_database(CommonSettings(), settings)
    progress = ProgressBar(sys.stderr)
    try:
        summary = import_csv_file(
            database=database,
            school=school,
            path=path,
            actor=_cli_actor(),
            dry_run=dry_run,
            progress=progress,
            max_rows=settings.max_import_rows,
        )
    except HallpassError as exc:
        progress.finish()
        print(f"hallpass import: {exc.detail}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem.where or '-'}: {problem.code}: {problem.detail}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    progress.finish()
    print(f"rows read:          {summary.rows}")
    print(f"pupils created:     {summary.created}")
    print(f"pupils updated:     {summary.updated}")
    print(f"guardians created:  {summary.guardians_created}")
    if dry_run:
        print("dry run: nothing was saved")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    from hallpass_consent.demo import seed_demo
    from hallpass_consent.settings import ConsentSettings
    from hallpass_kit.settings import CommonSettings

    school: str = args.school
    reset: bool = args.reset
    database = _consent_database(CommonSettings(), ConsentSettings())
    try:
        summary = seed_demo(database=database, school=school, reset=reset)
    finally:
        database.dispose()
    print(f"demo school {school!r}:")
    for field, value in dataclasses.asdict(summary).items():
        print(f"  {field}: {value}")
    print(f"  media device (demo camera): {_seed_media_demo(school)}")
    if _demo_mail_settings(school):
        print(f"  mail settings: {school}.sch.uk, head and deputy copied")
    return 0


def _demo_mail_settings(school: str) -> bool:
    """Mail settings for the demo school, unless it has some; True when they were made."""
    from hallpass_comms.common import audit as comms_audit
    from hallpass_comms.mail_settings import repository
    from hallpass_comms.mail_settings.schemas import MailSettingsBody
    from hallpass_comms.mail_settings.service import replace
    from hallpass_comms.migrations import upgrade
    from hallpass_comms.settings import CommsSettings
    from hallpass_kit.auth import Principal, Role
    from hallpass_kit.db import MAINTENANCE, Database, utcnow
    from hallpass_kit.settings import CommonSettings

    domain = f"{school}.sch.uk"
    common = CommonSettings()
    database = Database(CommsSettings().resolved_database_url(common), MAINTENANCE)
    try:
        upgrade(database)
        _seal_audit(comms_audit, database, common, "comms")
        with database.session() as session:
            if repository.get(session, school) is not None:
                return False
            body = MailSettingsBody(
                domains=[domain],
                head_address=f"head@{domain}",
                deputy_address=f"deputy@{domain}",
                dsl_address=f"dsl@{domain}",
                office_address=f"office@{domain}",
            )
            actor = Principal(sub=_cli_actor(), school=school, roles=frozenset({Role.admin}))
            replace(session, actor, body, utcnow())
    finally:
        database.dispose()
    return True


def _remind_renewals(args: argparse.Namespace) -> int:
    from hallpass_comms.context import CommsContext
    from hallpass_comms.delivery import DeliveryWorker
    from hallpass_comms.reminders.service import remind_renewals
    from hallpass_gateway.app import create_gateway
    from hallpass_kit.errors import HallpassError
    from hallpass_kit.settings import CommonSettings

    school: str = args.school
    within_days: int = args.within_days
    if not 1 <= within_days <= 366:
        print("hallpass: --within-days must be between 1 and 366", file=sys.stderr)
        return 2
    gateway = create_gateway(CommonSettings(), run_background=False)
    context = gateway.services["/comms"].state.hallpass
    assert isinstance(context, CommsContext)
    try:
        written = remind_renewals(
            context.database,
            context.consent,
            school,
            within_days=within_days,
            now=context.clock(),
        )
        # Sent from here too, so the command works without a server running; held mail (E8)
        # waits for its morning and the server's worker.
        worker: DeliveryWorker | None = context.delivery_worker
        delivered = worker.run_until_idle() if worker is not None else 0
    except HallpassError as exc:
        print(f"hallpass: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        context.database.dispose()
    print(f"{school}: {written} reminder(s) written, {delivered} envelope(s) sent now")
    return 0


def _check_transport(args: argparse.Namespace) -> int:
    # Only the comms settings and transports: no service, database or scanning stack.
    from hallpass_comms.delivery.check import check_transport
    from hallpass_comms.delivery.transports import MailSettingsError, transport_from_settings
    from hallpass_comms.settings import CommsSettings
    from hallpass_kit.settings import CommonSettings

    settings = CommsSettings()
    try:
        transport = transport_from_settings(settings, CommonSettings())
    except MailSettingsError as exc:
        print(f"hallpass: mail settings refused: {exc}", file=sys.stderr)
        return 2
    try:
        report = check_transport(
            transport, args.sender, args.recipient, name=settings.resolved_mail_transport()
        )
    finally:
        close = getattr(transport, "close", None)
        if callable(close):
            close()
    for line in report.lines:
        print(line, file=sys.stdout if report.sent else sys.stderr)
    return 0 if report.sent else 1


def _seed_media_demo(school: str) -> str:
    from hallpass_kit.db import MAINTENANCE, Database
    from hallpass_kit.settings import CommonSettings
    from hallpass_media.common import audit as media_audit
    from hallpass_media.demo import seed_demo as seed_media
    from hallpass_media.migrations import upgrade
    from hallpass_media.settings import MediaSettings

    common = CommonSettings()
    database = Database(MediaSettings().resolved_database_url(common), MAINTENANCE)
    try:
        upgrade(database)
        _seal_audit(media_audit, database, common, "media")
        return seed_media(database, school)
    finally:
        database.dispose()


def render_openapi(document: Mapping[str, Any]) -> str:
    """The committed form of a spec: stable key order, so regenerating changes nothing."""
    import json

    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@contextmanager
def _without_hallpass_environment() -> Iterator[None]:
    # The committed specs must come out the same on every machine, whatever HALLPASS_* settings
    # (batch limits, database URLs, production mode) the shell that runs the generator carries.
    saved = {key: value for key, value in os.environ.items() if key.startswith("HALLPASS_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def openapi_documents() -> dict[str, str]:
    """File name under ``openapi/`` -> rendered spec, for every service and the gateway."""
    import tempfile
    from pathlib import Path

    from hallpass_consent.settings import ConsentSettings
    from hallpass_gateway.app import create_gateway, merged_openapi, service_name
    from hallpass_kit.settings import DEV_ISSUER, CommonSettings, Environment

    with (
        _without_hallpass_environment(),
        tempfile.TemporaryDirectory(prefix="hallpass-openapi-", ignore_cleanup_errors=True) as tmp,
    ):
        common = CommonSettings(
            env=Environment.development,
            data_dir=Path(tmp),
            auth_issuer=DEV_ISSUER,
            auth_jwks_url=None,
        )
        gateway = create_gateway(common, ConsentSettings(database_url=None), run_background=False)
        documents = {
            f"{service_name(prefix)}.json": render_openapi(service_app.openapi())
            for prefix, service_app in gateway.services.items()
        }
        documents["gateway.json"] = render_openapi(merged_openapi(gateway, gateway.services))
    return documents


def _openapi(args: argparse.Namespace) -> int:
    out: Path = args.out
    check: bool = args.check
    documents = openapi_documents()
    if check:
        return _check_openapi(out, documents)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(documents.items()):
        (out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {out / name}")
    return 0


def _check_openapi(out: Path, documents: Mapping[str, str]) -> int:
    import difflib

    stale = 0
    for name, expected in sorted(documents.items()):
        path = out / name
        if not path.is_file():
            print(f"{path}: missing", file=sys.stderr)
            stale += 1
            continue
        committed = path.read_text(encoding="utf-8")
        if committed == expected:
            continue
        stale += 1
        diff = list(
            difflib.unified_diff(
                committed.splitlines(),
                expected.splitlines(),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (from the code)",
                lineterm="",
                n=1,
            )
        )
        changed = sum(
            1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )
        print(f"{path}: differs from the code ({changed} lines)", file=sys.stderr)
        shown = 60
        for line in diff[:shown]:
            print(f"  {line}", file=sys.stderr)
        if len(diff) > shown:
            print(f"  ... {len(diff) - shown} more diff lines", file=sys.stderr)
    if stale:
        print(
            f"{stale} OpenAPI document(s) out of date; run `make openapi` and commit the result.",
            file=sys.stderr,
        )
        return 1
    print(f"{out}: OpenAPI documents match the code")
    return 0
