"""Every subscriber of every service NACKs a failure and is redelivered after a delay: the trap of
FastStream's default (REJECT_ON_ERROR terminates a message on its first failure, and a policy set
on the broker never reaches a router's subscribers) cannot come back unnoticed."""

from __future__ import annotations

import inspect
import typing

import pytest
from fast_depends.library import CustomField
from faststream import AckPolicy

from services.common import consumers
from services.common.settings import Settings
from services.registry import SERVICES, builder


def all_subscribers():
    settings = Settings(
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        ticket_signing_key="dGVzdC10aWNrZXQtc2lnbmluZy1rZXktMzItYnl0ZXM",
    )
    for name in SERVICES:
        for subscriber in builder(name)(settings).broker.subscribers:
            yield name, subscriber


SUBSCRIBERS = list(all_subscribers())


def test_every_service_has_subscribers_to_check() -> None:
    assert {name for name, _ in SUBSCRIBERS} == set(SERVICES) - {"ingress"}  # the edge: HTTP only


@pytest.mark.parametrize(("service", "subscriber"), SUBSCRIBERS, ids=lambda v: str(v)[:40])
def test_no_subscriber_rejects_a_failed_message(service: str, subscriber) -> None:
    assert subscriber.ack_policy is AckPolicy.NACK_ON_ERROR, (service, subscriber.subject)
    assert AckPolicy.NACK_ON_ERROR is not AckPolicy.REJECT_ON_ERROR


@pytest.mark.parametrize(("service", "subscriber"), SUBSCRIBERS, ids=lambda v: str(v)[:40])
def test_every_subscriber_redelivers_after_a_delay(service: str, subscriber) -> None:
    assert consumers.Redelivery in subscriber._broker_middlewares, (service, subscriber.subject)


def test_a_router_made_the_plain_way_would_be_caught() -> None:
    """The check above can fail: a bare NatsRouter's subscriber keeps FastStream's default."""
    from faststream.nats import NatsBroker, NatsRouter

    router = NatsRouter()
    router.subscriber("x.y")(lambda body: None)
    broker = NatsBroker("nats://127.0.0.1:1", ack_policy=AckPolicy.NACK_ON_ERROR)
    broker.include_router(router)
    assert broker.subscribers[0].ack_policy is not AckPolicy.NACK_ON_ERROR


def test_delays_grow_and_then_hold() -> None:
    delays = [consumers.redelivery_delay(n) for n in range(1, 12)]
    assert delays[:5] == [1.0, 2.0, 5.0, 10.0, 30.0]
    assert delays == sorted(delays)
    assert delays[-1] == delays[-2] == consumers.REDELIVERY_DELAYS[-1]
    assert consumers.redelivery_delay(0) == 1.0  # a server that does not count: the first delay


def test_dialog_retries_outlast_a_restart_before_saying_busy() -> None:
    """The dialog's last resort ("busy, send it again") waits for every delay before it."""
    from services.ingress.handlers import MAX_DELIVER

    waited = [consumers.redelivery_delay(n, holds_partition=True) for n in range(1, MAX_DELIVER)]
    assert sum(waited) >= 45
    assert (
        max(waited) <= 5
    )  # the partition waits for it: tried again soon after a dependency is back


def test_a_partition_is_tried_again_sooner_than_other_consumers() -> None:
    partition = [consumers.redelivery_delay(n, holds_partition=True) for n in range(1, 10)]
    other = [consumers.redelivery_delay(n) for n in range(1, 10)]
    assert partition[:4] == [1.0, 2.0, 3.0, 5.0] and partition[-1] == 5.0
    assert all(p <= o for p, o in zip(partition, other, strict=True))


def injected_parameters():
    """(service, handler, parameter, custom field) for every parameter a handler is given from
    the broker's context rather than the message body."""
    for service, subscriber in SUBSCRIBERS:
        for call in subscriber.calls:
            handler = call.handler._original_call
            hints = typing.get_type_hints(handler, include_extras=True)
            for name, hint in hints.items():
                for extra in getattr(hint, "__metadata__", ()):
                    if isinstance(extra, CustomField):
                        yield service, handler.__qualname__, name, extra


INJECTED = list(injected_parameters())


def test_handlers_have_injected_parameters_to_check() -> None:
    assert len(INJECTED) > 20


@pytest.mark.parametrize(("service", "handler", "name", "field"), INJECTED, ids=str)
def test_injected_parameters_resolve_on_the_event_loop(service, handler, name, field) -> None:
    """fast_depends runs a synchronous custom field in a worker thread, for every parameter of
    every message (services/common/deps.py): handlers take theirs from deps."""
    assert inspect.iscoroutinefunction(field.use), (service, handler, name)


def test_faststreams_own_context_would_be_caught() -> None:
    from faststream import Context as ThreadedContext

    assert not inspect.iscoroutinefunction(ThreadedContext("x").use)
