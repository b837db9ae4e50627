"""The staff console (``/app``) and the carers' pages (``/parents``): server-rendered over the
services' own APIs, in English and Welsh, accessible (WCAG 2.2 AA)."""

from __future__ import annotations

from fastapi import FastAPI

from hallpass_gateway.web.activity import activity_router
from hallpass_gateway.web.leadership import leadership_router
from hallpass_gateway.web.mail import mail_router
from hallpass_gateway.web.office import office_router
from hallpass_gateway.web.parents import parents_router
from hallpass_gateway.web.posts import posts_router
from hallpass_gateway.web.purposes import purposes_router
from hallpass_gateway.web.requests import requests_router
from hallpass_gateway.web.routes import web_router
from hallpass_kit.auth import TokenVerifier

__all__ = ["add_web_pages"]


def add_web_pages(app: FastAPI, verifier: TokenVerifier) -> None:
    app.include_router(web_router(verifier))
    app.include_router(parents_router(verifier))
    app.include_router(office_router(verifier))
    app.include_router(activity_router(verifier))
    app.include_router(mail_router(verifier))
    app.include_router(leadership_router(verifier))
    app.include_router(posts_router(verifier))
    app.include_router(requests_router(verifier))
    app.include_router(purposes_router(verifier))
