"""docs/asyncapi/ is what the code declares: regenerate with `vaksin docs` after a contract change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.asyncapi import DOCUMENTED, render

DOCS = Path(__file__).parents[3] / "docs" / "asyncapi"


@pytest.mark.parametrize("service", DOCUMENTED)
def test_committed_asyncapi_document_matches_the_code(service: str) -> None:
    committed = (DOCS / f"{service}.json").read_text()
    assert committed == render(service), f"docs/asyncapi/{service}.json is stale: run `vaksin docs`"


def test_documents_name_the_contract_models() -> None:
    schemas = json.loads(render("ingress"))["components"]["schemas"]
    assert {"InboundMessage", "DeliveryStatus"} <= set(schemas)
    dialog = json.loads(render("dialog"))["components"]["schemas"]
    assert {"InboundMessage", "SendMessage"} <= set(dialog)
    identity = json.loads(render("identity"))["components"]["schemas"]
    assert {"VerifyRequest", "NumberStatusRequest"} <= set(identity)
