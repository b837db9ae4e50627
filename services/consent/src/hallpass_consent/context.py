"""The consent service's parts, built once at start-up and reached from every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hallpass_consent.settings import ConsentSettings
from hallpass_kit.app import ServiceContext, context_of


@dataclass(kw_only=True)
class ConsentContext(ServiceContext):
    """The kit's service context plus what consent alone needs: its settings (batch and import
    limits, the expiry sweep's period)."""

    settings: ConsentSettings


def consent_context(service: ServiceContext) -> ConsentContext:
    """The consent context of an app built by ``create_app`` (tools and tests hold the kit type)."""
    if not isinstance(service, ConsentContext):
        raise TypeError(f"{service.name} is not the consent service's context")
    return service


# async: a sync dependency costs a thread-pool hop on every request, decisions included.
async def _consent(request: Request) -> ConsentContext:
    return consent_context(context_of(request))


ConsentContextDep = Annotated[ConsentContext, Depends(_consent)]
