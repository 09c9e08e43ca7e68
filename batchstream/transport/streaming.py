"""One streaming request: the SDK sends it, batchstream reads the event bytes.

Everything that touches the network is the SDK's, on its aiohttp transport (`anthropic[aiohttp]`): auth,
headers, base URL, TLS trust, proxies, redirects, interim 1xx answers, address fallback, connection reuse,
and mapping error answers to typed exceptions. What is ours is the per-event path, because that is where
the CPU goes: the SDK's typed events and `messages.stream()` accumulation cost several times the CPU of
parsing the raw event bytes with orjson (`with_streaming_response` hands us those bytes through the SDK's
public API).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import httpx2
import orjson
from anthropic.resources.beta.messages.messages import AsyncMessages as _AsyncBetaMessages
from anthropic.resources.messages.messages import AsyncMessages as _AsyncMessages

from ..errors import IncompleteStreamError
from ..inputs import Request
from .accumulate import MessageAccumulator
from .base import Sent
from .client import sdk_client
from .sse import SSEDecoder


def _keyword_params(method: Any) -> frozenset[str]:
    return frozenset(
        name
        for name, param in inspect.signature(method).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not name.startswith("extra_")
    )


# Parameters the SDK method takes as keywords; anything else (new fields the installed SDK does not know
# yet) travels in extra_body exactly as the input line gave it.
_MESSAGES_KWARGS = _keyword_params(_AsyncMessages.create)
_BETA_KWARGS = _keyword_params(_AsyncBetaMessages.create)


def _split_params(params: dict[str, Any], known: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        (kwargs if key in known else extra)[key] = value
    return kwargs, extra


class StreamingSender:
    """A `Sender` that streams each request; owns the SDK client and its connections."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        max_connections: int,
        stall_timeout: float,
        connect_timeout: float = 10.0,
        api_version: str | None = None,
    ) -> None:
        # The stall timeout is the transport's read timeout: it fires when no byte arrives for that long,
        # before the headers or between events, at no cost per event.
        timeout = httpx2.Timeout(stall_timeout, connect=connect_timeout, pool=None)
        # batchstream owns the retry policy for the whole item (a stream that fails after it started is
        # never retried by the SDK), so the SDK itself must not retry.
        self._client = sdk_client(
            api_key=api_key,
            base_url=base_url,
            api_version=api_version,
            max_retries=0,
            timeout=timeout,
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    @property
    def api_key(self) -> str | None:
        """The key in use (given, or the SDK's default), so that messages can be scrubbed of it."""
        return self._client.api_key

    async def aclose(self) -> None:
        await self._client.close()

    def _sdk_call(self, request: Request, *, stream: bool = True) -> Any:
        """The SDK call that sends `request`, its reply left as raw bytes for our event parser."""
        if request.betas:
            kwargs, extra = _split_params(request.params, _BETA_KWARGS)
            create: Any = self._client.beta.messages.with_streaming_response.create
            kwargs["betas"] = list(request.betas)
        else:
            kwargs, extra = _split_params(request.params, _MESSAGES_KWARGS)
            create = self._client.messages.with_streaming_response.create
        return create(**kwargs, stream=stream, extra_body=extra or None)

    async def send(self, request: Request) -> Sent:
        started = time.monotonic()
        async with self._sdk_call(request) as response:
            http_response = response.http_response
            # An uncompressed body (what the API sends for event streams) skips httpx's decoding layers.
            encoding = http_response.headers.get("content-encoding", "identity")
            chunks = http_response.aiter_raw() if encoding == "identity" else http_response.aiter_bytes()
            assembly = _Assembly(started)
            async for chunk in chunks:
                assembly.feed(chunk)
        return Sent(
            assembly.message(),
            http_response.headers.get("request-id"),
            time.monotonic() - started,
            assembly.ttft,
            http_response.headers,
        )

    async def send_unstreamed(self, request: Request) -> Sent:
        """`request` answered in one piece: how a `max_tokens: 0` cache warm-up must be sent (it cannot
        stream), and what is left of a reply is only its usage."""
        started = time.monotonic()
        async with self._sdk_call(request, stream=False) as response:
            body = await response.read()
        latency = time.monotonic() - started
        headers = response.http_response.headers
        return Sent(orjson.loads(body), headers.get("request-id"), latency, None, headers)


class _Assembly:
    """The hot loop: bytes to events to one message, noting when the first text arrived."""

    __slots__ = ("_accumulator", "_decoder", "_started", "ttft")

    def __init__(self, started: float) -> None:
        self._accumulator = MessageAccumulator()
        self._decoder = SSEDecoder()
        self._started = started
        self.ttft: float | None = None

    def feed(self, chunk: bytes) -> None:
        accumulator = self._accumulator
        for event in self._decoder.feed(chunk):
            accumulator.feed(event)
        if self.ttft is None and accumulator.text_started:
            self.ttft = time.monotonic() - self._started

    def message(self) -> dict[str, Any]:
        if not self._accumulator.complete:
            raise IncompleteStreamError("the stream ended before message_stop")
        return self._accumulator.message()
