"""The comms service's parts, built once at start-up (app.py) and reached from every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.delivery import DeliveryWorker
from hallpass_comms.settings import CommsSettings
from hallpass_kit.app import ServiceContext, context_of


@dataclass(kw_only=True)
class CommsContext(ServiceContext):
    """The kit's context (database, audit, dispatcher, the one clock) and what comms adds."""

    settings: CommsSettings
    consent: ConsentClient
    # Made with the app, once its mail transport is known.
    delivery_worker: DeliveryWorker | None = None


def comms_context_of(request: Request) -> CommsContext:
    context = context_of(request)
    if not isinstance(context, CommsContext):
        raise TypeError("The app was not built by hallpass_comms.app.create_app.")
    return context


async def _comms_context(request: Request) -> CommsContext:
    # async on purpose: a sync dependency costs a thread-pool hop per request.
    return comms_context_of(request)


CommsContextDep = Annotated[CommsContext, Depends(_comms_context)]
