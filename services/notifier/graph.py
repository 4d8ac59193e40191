"""The HTTP client for Meta's Graph API (Cloud API): the notifier's only network door to WhatsApp.

Every failure, including a timeout or a refused connection, comes out as one `GraphError` carrying
what the retry decision needs: the HTTP status (None when no answer came), Meta's error code and
the `Retry-After` seconds if Meta sent them.
"""

from __future__ import annotations

from typing import Any

import aiohttp

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)


class GraphError(Exception):
    def __init__(
        self,
        http_status: int | None,
        code: int | None,
        message: str,
        retry_after: float | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(f"graph error http={http_status} code={code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fbtrace_id = fbtrace_id


class GraphClient:
    def __init__(
        self, base: str, phone_number_id: str, token: str, session: aiohttp.ClientSession
    ) -> None:
        self._messages_url = f"{base.rstrip('/')}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session

    async def send(self, payload: dict[str, Any]) -> str:
        """Send one message; return its wamid (Meta accepted it, which is not yet delivery)."""
        try:
            async with self._session.post(
                self._messages_url, json=payload, headers=self._headers, timeout=REQUEST_TIMEOUT
            ) as resp:
                body = await _json_or_none(resp)
                if resp.status >= 400:
                    raise _error_from(resp, body)
                try:
                    return str(body["messages"][0]["id"])  # type: ignore[index]
                except (TypeError, KeyError, IndexError):
                    raise GraphError(resp.status, None, "answer without a message id") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphError(None, None, f"network: {type(exc).__name__}") from exc


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
