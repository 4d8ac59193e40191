"""AsyncAPI documents of the services, generated from their brokers (what `faststream docs gen`
does), kept in `docs/asyncapi/` and checked by a test so the documents never drift from code."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from services.common.settings import Settings

DOCUMENTED = ("identity", "ingress", "notifier")


def document(service: str) -> dict[str, Any]:
    module = importlib.import_module(f"services.{service}.app")
    host = module.build_host(Settings())  # builds the broker only; nothing connects
    spec = AsyncAPI(
        host.broker,
        title=f"vaksin {service}",
        version="0.1.0",
        description=(module.__doc__ or "").strip(),
    ).to_specification()
    return spec.to_jsonable()


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
