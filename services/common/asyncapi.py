"""AsyncAPI documents of the services, generated from their brokers (what `faststream docs gen`
does), kept in `docs/asyncapi/` and checked by a test so the documents never drift from code."""

from __future__ import annotations

import inspect
import json
import secrets
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from services.common.settings import Settings
from services.registry import SERVICES, builder

DOCUMENTED = tuple(SERVICES)


def document(service: str) -> dict[str, Any]:
    build = builder(service)
    # Builds the broker only: nothing connects, and no secret is read (a throwaway signing key
    # for the services that refuse to build without one).
    host = build(Settings(ticket_signing_key=secrets.token_urlsafe(32)))
    spec = AsyncAPI(
        host.broker,
        title=f"vaksin {service}",
        version="0.1.0",
        description=inspect.cleandoc(build.__doc__ or _module_doc(build)),
    ).to_specification()
    return spec.to_jsonable()


def _module_doc(obj: object) -> str:
    module = inspect.getmodule(obj)
    return (module.__doc__ or "") if module else ""


def render(service: str) -> str:
    return json.dumps(document(service), indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in DOCUMENTED:
        path = directory / f"{service}.json"
        path.write_text(render(service))
        written.append(path)
    return written
