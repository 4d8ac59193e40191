"""The Graph client turns every kind of failure into one GraphError the retry rules can read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.common.embedded import free_port
from services.devtools.fake_graph import FakeGraph
from services.notifier import graph
from services.notifier.graph import GraphClient, GraphError

TO = "6281200000002"
PAYLOAD = {"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "Halo"}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_send_returns_the_wamid_meta_answered(fake, session) -> None:
    wamid = await GraphClient(fake.base_url, "123", "tok", session).send(PAYLOAD)
    assert wamid == fake.messages_to(TO)[0]["wamid"]


async def test_meta_error_carries_status_code_and_retry_after(fake, session) -> None:
    fake.fail_next(130429, http_status=429, retry_after=12)
    with pytest.raises(GraphError) as caught:
        await GraphClient(fake.base_url, "123", "tok", session).send(PAYLOAD)
    assert (caught.value.http_status, caught.value.code, caught.value.retry_after) == (
        429,
        130429,
        12.0,
    )
    assert caught.value.fbtrace_id


async def test_bad_token_is_http_401_code_190(fake, session) -> None:
    with pytest.raises(GraphError) as caught:
        await GraphClient(fake.base_url, "123", "", session).send(PAYLOAD)
    assert (caught.value.http_status, caught.value.code) == (401, 190)


async def test_unreachable_graph_is_a_network_error_without_status(session) -> None:
    base = f"http://127.0.0.1:{free_port()}/v25.0"
    with pytest.raises(GraphError) as caught:
        await GraphClient(base, "123", "tok", session).send(PAYLOAD)
    assert caught.value.http_status is None
    assert caught.value.code is None


async def test_upload_returns_the_media_id(fake, session) -> None:
    media_id = await GraphClient(fake.base_url, "123", "tok", session).upload_media(
        b"\x89PNG\r\n\x1a\n", "image/png", "tiket.png"
    )
    assert fake.media[media_id]["data"] == b"\x89PNG\r\n\x1a\n"
    assert fake.media[media_id]["filename"] == "tiket.png"


async def test_mark_read_with_typing_indicator(fake, session) -> None:
    await GraphClient(fake.base_url, "123", "tok", session).mark_read("wamid.IN9", typing=True)
    assert (fake.reads, fake.typing) == (["wamid.IN9"], ["wamid.IN9"])


async def test_a_timeout_may_have_reached_meta_a_refused_connection_did_not(
    fake, session, monkeypatch
) -> None:
    monkeypatch.setattr(graph, "REQUEST_TIMEOUT", aiohttp.ClientTimeout(total=0.2))
    fake.latency = 1.0
    with pytest.raises(GraphError) as slow:
        await GraphClient(fake.base_url, "123", "tok", session).send(PAYLOAD)
    assert (slow.value.http_status, slow.value.maybe_delivered) == (None, True)
    base = f"http://127.0.0.1:{free_port()}/v25.0"
    with pytest.raises(GraphError) as refused:
        await GraphClient(base, "123", "tok", session).send(PAYLOAD)
    assert refused.value.maybe_delivered is False
