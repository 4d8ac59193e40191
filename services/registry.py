"""Every service process of the system, by name, and where its host is built. `vaksin up` starts
them in this order (the webhook edge last, once what it feeds is there); deploy/ has one
Deployment per name; `vaksin docs` writes one AsyncAPI document per name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.service import ServiceHost
    from services.common.settings import Settings

SERVICES: dict[str, str] = {
    "identity": "services.identity.app:build_host",
    "screening": "services.screening.app:build_host",
    "scheduler": "services.scheduler.app:build_host",
    "ticketing": "services.ticketing.app:build_host",
    "notifier": "services.notifier.app:build_host",
    "dialog": "services.ingress.app:build_dialog_host",
    "ussd": "services.channels.app:build_ussd_host",
    "sms": "services.channels.app:build_sms_host",
    "console": "services.console.app:build_host",
    "ingress": "services.ingress.app:build_host",
}


def builder(name: str) -> Callable[[Settings], ServiceHost]:
    module, _, function = SERVICES[name].partition(":")
    return getattr(importlib.import_module(module), function)
