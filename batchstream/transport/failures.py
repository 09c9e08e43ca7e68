"""What a failed attempt means: retry it, record the item as an error, or stop the whole run.

One policy for the whole item, because the SDK's own retries stop at the response headers: a stream that
breaks after it started (an `error` event, a dropped connection, a stall, a stream cut short) is only
ever retried here.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .accumulate import StreamEventError, StreamProtocolError

if TYPE_CHECKING:
    import anthropic

# HTTP statuses worth another attempt, and the cause each is counted under in the summary.
_RETRY_CAUSES = {
    408: "timeout",
    409: "conflict",
    429: "rate_limit",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "timeout",
    529: "overloaded",
}
# Statuses that mean the account itself is refused: every remaining item would fail the same way.
_FATAL_STATUSES = {401: "authentication", 402: "billing", 403: "permission"}
# Error types an `error` event can carry mid-stream that are worth another attempt.
_RETRY_EVENT_TYPES = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limit",
    "api_error": "server_error",
    "timeout_error": "timeout",
}


@dataclass(frozen=True, slots=True)
class Failure:
    cause: str
    retryable: bool
    fatal: bool
    status: int | None
    type: str
    message: str
    retry_after: float | None = None
    request_id: str | None = None
    headers: Mapping[str, str] | None = None

    @property
    def throttled(self) -> bool:
        """The service asked us to slow down (429, 529 or an overloaded event)."""
        return self.cause in ("rate_limit", "overloaded")

    def as_record(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "status": self.status}


def classify(exc: BaseException, *, secret: str | None = None) -> Failure:
    """Map any exception from one attempt to a Failure; `secret` is scrubbed from the message."""
    # Imported here, not with the module: the command line imports this module, and a run that has nothing
    # to send (a finished resume, bad input) should not pay the ~1.3 s the SDK takes to import.
    import aiohttp
    import anthropic
    import httpx2

    from .stream import IncompleteStreamError

    if isinstance(exc, anthropic.APIStatusError):
        failure = _from_status_error(exc)
    elif isinstance(exc, StreamEventError):
        cause = _RETRY_EVENT_TYPES.get(exc.error_type)
        failure = Failure(
            cause=cause or "stream_error",
            retryable=cause is not None,
            fatal=False,
            status=None,
            type=exc.error_type,
            message=exc.message or exc.error_type,
        )
    elif isinstance(exc, IncompleteStreamError):
        failure = Failure("incomplete", True, False, None, "incomplete_stream", str(exc))
    elif isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        failure = Failure("stall", True, False, None, "timeout", _describe(exc, "no data received in time"))
    elif isinstance(
        exc, anthropic.APIConnectionError | httpx2.TransportError | aiohttp.ClientError | ConnectionError
    ):
        failure = Failure(
            "connection", True, False, None, "connection_error", _describe(exc, "connection lost")
        )
    elif isinstance(exc, StreamProtocolError):
        failure = Failure("protocol", True, False, None, "protocol_error", str(exc))
    else:
        failure = _internal_failure(exc)
    if secret and secret in failure.message:
        failure = dataclasses.replace(failure, message=failure.message.replace(secret, "[redacted]"))
    return failure


def _internal_failure(exc: BaseException) -> Failure:
    """Anything nobody listed (an odd event order from a server, a bug of ours): that item fails, not the run.

    It may be a glitch of one reply, so it is worth one more attempt; a bug would fail the same way every
    time, and each attempt may be a reply paid for, so it gets no more than that (INTERNAL_ATTEMPTS).
    """
    return Failure("internal", True, False, None, "internal_error", _describe(exc, "unexpected error"))


# Attempts at most for an item whose attempts fail in a way nobody listed (see internal_failure).
INTERNAL_ATTEMPTS = 2


def _from_status_error(exc: anthropic.APIStatusError) -> Failure:
    status = exc.status_code
    error_type, message = _error_body(exc)
    headers = exc.response.headers
    request_id = exc.request_id or headers.get("request-id")
    if status == 200:  # the SDK's own stream decoder raised for an `error` event
        cause = _RETRY_EVENT_TYPES.get(error_type)
        return Failure(
            cause or "stream_error", cause is not None, False, None, error_type, message, None, request_id
        )
    if status in _FATAL_STATUSES:
        return Failure(_FATAL_STATUSES[status], False, True, status, error_type, message, None, request_id)
    cause = _RETRY_CAUSES.get(status)
    if cause is None and status > 500:
        cause = "server_error"
    should_retry = headers.get("x-should-retry")
    retryable = cause is not None if should_retry is None else should_retry == "true"
    return Failure(
        cause=cause or "client_error",
        retryable=retryable,
        fatal=False,
        status=status,
        type=error_type,
        message=message,
        retry_after=retry_after_seconds(headers),
        request_id=request_id,
        headers=headers,
    )


def _error_body(exc: anthropic.APIStatusError) -> tuple[str, str]:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type") or "api_error"), str(error.get("message") or "")
    return type(exc).__name__, exc.message


def _describe(exc: BaseException, fallback: str) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__}: {fallback}"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait: `retry-after-ms`, else `retry-after` in seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter; a server's retry-after is honoured exactly."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return retry_after
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
