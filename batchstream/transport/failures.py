"""What a failed attempt means: retry it, record the item as an error, or stop the whole run.

One mapping from whatever an attempt raised (the SDK's typed errors, the HTTP stack's, our stream
parser's, or anything nobody listed) to a `Failure` value, kept next to the sender because what can be
raised depends on how requests travel. The retry loop (`attempts.py`) decides on the value alone.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import IncompleteStreamError, StreamEventError, StreamProtocolError

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
# Answers that name no account problem by status but do in words: the API's own messages for an exhausted
# credit balance (400), and for an organisation's usage or spend limit (400 or 429). Matched on the phrase
# that says the account cannot go on, not on "limit" alone: a rate limit's 429 says "rate limit".
# See https://docs.anthropic.com/en/api/errors and the billing/limits pages of the Console docs.
_ACCOUNT_STOP_MESSAGES = (
    ("billing", re.compile(r"credit balance is too low", re.IGNORECASE)),
    ("usage_limit", re.compile(r"reached your specified API usage limits?", re.IGNORECASE)),
    ("usage_limit", re.compile(r"\bspend(ing)? limit\b", re.IGNORECASE)),
)
_ACCOUNT_STOP_STATUSES = frozenset({400, 429})
# Causes of a failed attempt that say the service (or the way to it) is down, not that this request is bad:
# when every attempt across the run fails with one of these, the run is in an outage (see outage.py). Not
# our own --timeout: a reply still streaming when the attempt's time is up is that item's long reply.
OUTAGE_CAUSES = frozenset({"connection", "stall", "server_error", "overloaded", "incomplete"})

# Error types an `error` event can carry mid-stream that are worth another attempt.
_RETRY_EVENT_TYPES = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limit",
    "api_error": "server_error",
    "timeout_error": "timeout",
}

# Attempts at most for an item whose attempts fail in a way nobody listed (see Failure.internal).
INTERNAL_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: the cause it is counted under, and what may be done about it."""

    cause: str
    retryable: bool
    fatal: bool
    status: int | None
    type: str
    message: str
    retry_after: float | None = None
    request_id: str | None = None
    headers: Mapping[str, str] | None = None

    def describe(self) -> str:
        """One line for a person: the status where there was one, the error's type and its message."""
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.type}: {self.message}"

    @property
    def outage(self) -> bool:
        """A failure that a whole-service outage would also cause (see OUTAGE_CAUSES), a gateway's 504
        among them."""
        return self.cause in OUTAGE_CAUSES or (self.cause == "timeout" and self.status is not None)

    @property
    def throttled(self) -> bool:
        """The service asked us to slow down (429, 529 or an overloaded event)."""
        return self.cause in ("rate_limit", "overloaded")

    @classmethod
    def event(cls, error_type: str, message: str, request_id: str | None = None) -> Failure:
        """An `error` event after the stream started."""
        cause = _RETRY_EVENT_TYPES.get(error_type)
        return cls(
            cause or "stream_error", cause is not None, False, None, error_type, message, None, request_id
        )

    @classmethod
    def incomplete(cls, message: str) -> Failure:
        return cls("incomplete", True, False, None, "incomplete_stream", message)

    @classmethod
    def stall(cls, message: str) -> Failure:
        return cls("stall", True, False, None, "timeout", message)

    @classmethod
    def timeout(cls, limit_s: float) -> Failure:
        """The attempt took longer than --timeout in all."""
        return cls("timeout", True, False, None, "timeout", f"no reply within --timeout {limit_s:g}s")

    @classmethod
    def connection(cls, message: str) -> Failure:
        return cls("connection", True, False, None, "connection_error", message)

    @classmethod
    def untrusted(cls, message: str) -> Failure:
        """The server's TLS certificate did not verify: a setting to fix (a CA bundle, a proxy, the base
        URL), the same for every request, so the run stops instead of retrying it as an outage."""
        return cls("certificate", False, True, None, "certificate_error", message)

    @classmethod
    def protocol(cls, message: str) -> Failure:
        return cls("protocol", True, False, None, "protocol_error", message)

    @classmethod
    def internal(cls, exc: BaseException) -> Failure:
        """Anything nobody listed (an odd event order from a server, a bug of ours): the item fails, not
        the run. It may be a glitch of one reply, so it is worth one more attempt; a bug would fail the
        same way every time, and each attempt may be a reply paid for, so it gets no more than that
        (INTERNAL_ATTEMPTS)."""
        return cls("internal", True, False, None, "internal_error", _describe(exc, "unexpected error"))

    @property
    def attempt_limit(self) -> int | None:
        """A cap on attempts below the user's --max-attempts, where more would only pay again."""
        return INTERNAL_ATTEMPTS if self.cause == "internal" else None


def classify(exc: BaseException, *, secret: str | None = None) -> Failure:
    """Map any exception from one attempt to a Failure; `secret` is scrubbed from the message."""
    # Imported here, not with the module: the command line imports this module, and a run that has nothing
    # to send (a finished resume, bad input) should not pay the ~1.3 s the SDK takes to import.
    import aiohttp
    import anthropic
    import httpx2

    if isinstance(exc, anthropic.APIStatusError):
        failure = _from_status_error(exc)
    elif isinstance(exc, StreamEventError):
        failure = Failure.event(exc.error_type, exc.message or exc.error_type)
    elif isinstance(exc, IncompleteStreamError):
        failure = Failure.incomplete(str(exc))
    elif (cert := _in_chain(exc, ssl.SSLCertVerificationError)) is not None:
        failure = Failure.untrusted(_describe(cert, "certificate verify failed"))
    elif (connect := _in_chain(exc, httpx2.ConnectTimeout)) is not None:
        # No connection within the connect timeout: the way to the server, not a stream that went quiet.
        failure = Failure.connection(_describe(connect, "no connection in time"))
    elif isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        failure = Failure.stall(_describe(exc, "no data received in time"))
    elif isinstance(
        exc, anthropic.APIConnectionError | httpx2.TransportError | aiohttp.ClientError | ConnectionError
    ):
        failure = Failure.connection(_describe(exc, "connection lost"))
    elif isinstance(exc, StreamProtocolError):
        failure = Failure.protocol(str(exc))
    else:
        failure = Failure.internal(exc)
    if secret and secret in failure.message:
        failure = dataclasses.replace(failure, message=failure.message.replace(secret, "[redacted]"))
    return failure


def _from_status_error(exc: anthropic.APIStatusError) -> Failure:
    status = exc.status_code
    error_type, message = _error_body(exc)
    headers = exc.response.headers
    request_id = exc.request_id or headers.get("request-id")
    if status == 200:  # the SDK's own stream decoder raised for an `error` event
        return Failure.event(error_type, message, request_id)
    if status in _FATAL_STATUSES:
        return Failure(_FATAL_STATUSES[status], False, True, status, error_type, message, None, request_id)
    if status in _ACCOUNT_STOP_STATUSES:
        for cause, pattern in _ACCOUNT_STOP_MESSAGES:
            if pattern.search(message):
                return Failure(cause, False, True, status, error_type, message, None, request_id)
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


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`exc` or the first exception of type `kind` it was raised from: the SDK and aiohttp wrap what the
    socket or TLS layer raised, and only that says what went wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
