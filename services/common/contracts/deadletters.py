"""Dead letters: what the system accepted but could never handle, kept for operators.

Two sources publish here (stream DEAD_LETTERS, kept 30 days, apart from live traffic so that
reading, replaying or purging it never touches a consumer):

- a durable consumer whose handler failed on every delivery (`deadletter.consumer.<durable>`):
  the message as it was stored, its stream sequence, how often it was tried, the last error;
- the webhook edge, for a signed body that can never be stored (`deadletter.webhook`): Meta
  gets 200 so that it stops retrying, and the body waits here instead.

The notifier keeps its own dead letters of send commands (NOTIFIER_DLQ, with Meta's error).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, Field


class DeadMessage(BaseModel):
    source: str = Field(description="the durable consumer's name, or `webhook`")
    subject: str | None = Field(default=None, description="where the message was published")
    stream_seq: int | None = Field(default=None, description="its sequence in its stream")
    delivered: int = Field(default=1, description="how many times it was tried")
    error: str = Field(description="the last error, without the message's content")
    body: str = Field(description="the body as text (undecodable bytes replaced), cut to 64 KiB")
    body_bytes: int = Field(description="the size of the whole body")
    body_sha256: str = Field(description="digest of the whole body, to find repeats")
    failed_at: datetime

    @classmethod
    def of(
        cls, source: str, body: bytes, error: str, failed_at: datetime, **where: object
    ) -> DeadMessage:
        return cls(
            source=source,
            error=error[:1000],
            body=body[:BODY_KEPT].decode("utf-8", errors="replace"),
            body_bytes=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            failed_at=failed_at,
            **where,  # type: ignore[arg-type]
        )


BODY_KEPT = 64 * 1024
