"""Faults injected into a handler's path, for the redelivery tests of every consumer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY


class FailsOnce:
    """Wraps a function (sync or async): its first call that `concerns` the test's own message
    raises, as a Postgres blip or a service restarting would (every such call, with `always`);
    the next ones run the real function. The calls' times show when the message came back."""

    def __init__(
        self,
        real: Callable[..., Any],
        concerns: Callable[..., bool] = lambda *args, **kwargs: True,
        *,
        always: bool = False,
    ) -> None:
        self.real = real
        self.concerns = concerns
        self.always = always
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.concerns(*args, **kwargs):
            self.calls.append(time.monotonic())
            if self.always or len(self.calls) == 1:
                raise ConnectionResetError("injected: the first try fails")
        return self.real(*args, **kwargs)

    @property
    def redelivered_after(self) -> float:
        assert len(self.calls) >= 2, f"not delivered again ({len(self.calls)} call(s))"
        return self.calls[1] - self.calls[0]


def redeliveries(consumer: str) -> float:
    return REGISTRY.get_sample_value("vaksin_redeliveries_total", {"consumer": consumer}) or 0.0
