"""`ingress.rpc.route` when the dialog's database cannot be reached: it answers an error rather than
a guess, and the asker (ticketing, sending a ticket unasked) raises, so its fact is delivered again
later (ticketing's redelivery tests) instead of the ticket going to the wrong channel."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from services.common.contracts import channels
from services.common.contracts.channels import RouteReply, RouteRequest
from services.common.embedded import free_port
from services.ingress.handlers import route


async def test_a_database_out_of_reach_is_an_error_answer_not_a_channel() -> None:
    pool = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=1
    )
    try:
        reply = await route(RouteRequest(number="6281234567890"), pool)
    finally:
        await pool.close()
    assert (reply.error or "").startswith("unavailable: ")


class Answering:
    """A broker whose request gets `reply` back, as FastStream's would."""

    def __init__(self, reply: RouteReply) -> None:
        self.reply = reply

    async def request(self, *_: Any, **__: Any) -> Any:
        reply = self.reply

        class Response:
            async def decode(self) -> dict[str, Any]:
                return reply.model_dump(mode="json")

        return Response()


async def test_the_asker_raises_on_an_error_answer_and_takes_a_channel_otherwise() -> None:
    with pytest.raises(RuntimeError, match="unavailable: ConnectionRefusedError"):
        await channels.route(
            Answering(RouteReply(error="unavailable: ConnectionRefusedError")), "62"
        )  # type: ignore[arg-type]
    assert await channels.route(Answering(RouteReply(channel="sms")), "62") == "sms"  # type: ignore[arg-type]
