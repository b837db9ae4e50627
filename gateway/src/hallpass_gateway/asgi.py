"""The gateway as an ASGI app: `uvicorn hallpass_gateway.asgi:app` or `hallpass serve gateway`.

All-in-one (every service in this process) unless the services' URLs are set
(HALLPASS_CONSENT_URL, HALLPASS_MEDIA_URL, HALLPASS_COMMS_URL): then it proxies to them.
"""

from __future__ import annotations

from fastapi import FastAPI

from hallpass_kit.logs import configure_logging
from hallpass_kit.serving import as_served
from hallpass_kit.settings import CommonSettings


def proxy_mode(common: CommonSettings) -> bool:
    return any((common.consent_url, common.media_url, common.comms_url))


def create() -> FastAPI:
    """The gateway from the environment's settings."""
    common = CommonSettings()
    configure_logging(common)
    if proxy_mode(common):
        from hallpass_gateway.proxy import create_proxy_gateway

        return create_proxy_gateway(common)
    from hallpass_gateway.app import create_gateway

    return create_gateway(common, run_background=common.run_background)


def __getattr__(name: str) -> FastAPI:
    # Built when a server asks for `app`, not when the module is imported.
    if name == "app":
        app = as_served(create())
        globals()["app"] = app
        return app
    raise AttributeError(name)
