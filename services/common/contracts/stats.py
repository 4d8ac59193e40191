"""`<owner>.rpc.stats`: every service's own counts, for `vaksin stats`. Each service counts only
its own schema and answers in its queue group; the CLI asks them all at once over NATS, so no
process ever reads another service's tables. A failure to count is an answer with `error`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatsRequest(BaseModel):
    """The counts as of now; with `tables`, also the breakdowns (by day, regency, facility,
    minute) that the operators' console charts. Both come from indexes or counters maintained
    with the data, never from a scan of the big tables."""

    tables: bool = False


class StatsTable(BaseModel):
    """One breakdown: named columns, and rows of values in that order (the first columns are the
    keys, e.g. `day`, `regency`; the rest are counts)."""

    title: str
    columns: list[str]
    rows: list[list[str | int]] = Field(default_factory=list)


class ServiceStats(BaseModel):
    service: str = Field(description="the answering process, as named in services/registry.py")
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="snake_case keys, in the order to show them; `<group>.<member>` for a "
        "breakdown (e.g. `step.booked`); `vaksin stats` gives them readable labels",
    )
    tables: dict[str, StatsTable] = Field(
        default_factory=dict, description="only when asked (`StatsRequest.tables`)"
    )
    error: str | None = None
