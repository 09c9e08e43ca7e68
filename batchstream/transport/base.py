"""The one thing the runner asks of a way to reach the API: send this request, give me the message.

Like httpx's transports behind `AsyncBaseTransport`: the runner, the retry loop and the limiter do not
know how a request travels. Streaming is the implementation today; the Message Batches API is the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from ..inputs import Request


class Sent(NamedTuple):
    """One request's assembled reply, as the API's non-streaming reply would hold it."""

    message: dict[str, Any]
    request_id: str | None
    latency_s: float
    ttft_s: float | None
    headers: Mapping[str, str]


class Sender(Protocol):
    """Sends one request per call; raises whatever failed (see `failures.classify`)."""

    async def send(self, request: Request) -> Sent: ...

    async def aclose(self) -> None: ...
