"""`<owner>.rpc.stats`: every service's own counts, for `vaksin stats`. Each service counts only
its own schema and answers in its queue group; the CLI asks them all at once over NATS, so no
process ever reads another service's tables. A failure to count is an answer with `error`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatsRequest(BaseModel):
    """No parameters: the counts as of now."""


class ServiceStats(BaseModel):
    service: str = Field(description="the answering process, as named in services/registry.py")
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="snake_case keys, in the order to show them; `<group>.<member>` for a "
        "breakdown (e.g. `step.booked`); `vaksin stats` gives them readable labels",
    )
    error: str | None = None
