"""The HTTP client for Meta's Graph API (Cloud API): the notifier's only network door to WhatsApp.

Every failure, including a timeout or a refused connection, comes out as one `GraphError` carrying
what the retry decision needs: the HTTP status (None when no answer came), Meta's error code, the
`Retry-After` seconds if Meta sent them, and whether the request may have reached Meta anyway (a
timeout after sending: Meta has no idempotency key, so the caller must not simply send again).

Calls: send a message, upload a media file (multipart), mark an inbound message as read (with
the typing indicator).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.notifier.metrics import GRAPH_ERRORS

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)


class GraphError(Exception):
    def __init__(
        self,
        http_status: int | None,
        code: int | None,
        message: str,
        retry_after: float | None = None,
        fbtrace_id: str | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(f"graph error http={http_status} code={code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fbtrace_id = fbtrace_id
        # True when no answer came but the request may have been taken (timeout, dropped
        # connection after sending); False when Meta answered or the request never left.
        self.maybe_delivered = maybe_delivered


class GraphClient:
    def __init__(
        self, base: str, phone_number_id: str, token: str, session: aiohttp.ClientSession
    ) -> None:
        self._messages_url = f"{base.rstrip('/')}/{phone_number_id}/messages"
        self._media_url = f"{base.rstrip('/')}/{phone_number_id}/media"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session

    async def send(self, payload: dict[str, Any]) -> str:
        """Send one message; return its wamid (Meta accepted it, which is not yet delivery)."""
        body = await self._post(self._messages_url, "send", json=payload)
        try:
            return str(body["messages"][0]["id"])
        except (TypeError, KeyError, IndexError):
            raise GraphError(200, None, "answer without a message id") from None

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload a file (`/media`, multipart); return its media id (Meta keeps it 30 days)."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, filename=filename, content_type=mime_type)
        body = await self._post(self._media_url, "upload", data=form)
        try:
            return str(body["id"])
        except (TypeError, KeyError):
            raise GraphError(200, None, "upload answer without a media id") from None

    async def mark_read(self, message_id: str, *, typing: bool = False) -> None:
        """Blue ticks for an inbound message and, with `typing`, the typing indicator (Meta
        hides it after 25 s or when our next message arrives)."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        await self._post(self._messages_url, "mark_read", json=payload)

    async def _post(self, url: str, call: str, **kwargs: Any) -> Any:
        try:
            return await self._post_once(url, **kwargs)
        except GraphError as exc:
            GRAPH_ERRORS.labels(call, str(exc.http_status or "none"), str(exc.code or "none")).inc()
            raise

    async def _post_once(self, url: str, **kwargs: Any) -> Any:
        try:
            async with self._session.post(
                url, headers=self._headers, timeout=REQUEST_TIMEOUT, **kwargs
            ) as resp:
                body = await _json_or_none(resp)
                if resp.status >= 400:
                    raise _error_from(resp, body)
                return body
        except aiohttp.ClientConnectorError as exc:
            # The connection was never made: nothing reached Meta.
            raise GraphError(None, None, f"network: {type(exc).__name__}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphError(
                None, None, f"network: {type(exc).__name__}", maybe_delivered=True
            ) from exc


async def _json_or_none(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None


def _error_from(resp: aiohttp.ClientResponse, body: Any) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code: int | None
    try:
        # Meta has been seen sending the code as a string ("131056").
        code = int(error["code"])
    except (KeyError, TypeError, ValueError):
        code = None
    return GraphError(
        resp.status,
        code,
        str(error.get("message") or resp.reason or "error"),
        retry_after=_retry_after(resp.headers.get("Retry-After")),
        fbtrace_id=error.get("fbtrace_id"),
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (exponential backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
