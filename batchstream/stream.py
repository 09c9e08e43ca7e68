"""One streaming request: the SDK sends it, batchstream reads the bytes.

The SDK keeps what it does well (auth, headers, base URL, request building, mapping HTTP errors to typed
exceptions); the per-event loop is ours, because the SDK's typed event objects and `messages.stream()`
accumulation cost several times the CPU of parsing the bytes with orjson.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic.resources.beta.messages.messages import AsyncMessages as _AsyncBetaMessages
from anthropic.resources.messages.messages import AsyncMessages as _AsyncMessages

from .accumulate import MessageAccumulator
from .inputs import Request
from .sse import SSEDecoder


class IncompleteStreamError(Exception):
    """The stream ended without `message_stop`: the reply is partial and must not be recorded."""


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    message: dict[str, Any]
    request_id: str | None
    latency_s: float
    ttft_s: float | None
    headers: httpx2.Headers


def _keyword_params(method: Any) -> frozenset[str]:
    return frozenset(
        name
        for name, param in inspect.signature(method).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not name.startswith("extra_")
    )


# Parameters the SDK method takes as keywords; anything else (temperature, top_p, top_k, new fields the
# installed SDK does not know yet) travels in extra_body exactly as the input line gave it.
_MESSAGES_KWARGS = _keyword_params(_AsyncMessages.create)
_BETA_KWARGS = _keyword_params(_AsyncBetaMessages.create)


def _split_params(params: dict[str, Any], known: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        (kwargs if key in known else extra)[key] = value
    return kwargs, extra


class StreamClient:
    """Owns the one shared async client; `stream` sends a request and returns the assembled message."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        max_connections: int,
        stall_timeout: float,
        connect_timeout: float = 10.0,
    ) -> None:
        # The stall timeout is the transport's read timeout: it fires when no byte arrives for that long,
        # before the headers or between events, at no cost per event.
        timeout = httpx2.Timeout(stall_timeout, connect=connect_timeout, pool=None)
        http_client = anthropic.DefaultAioHttpClient(
            timeout=timeout,
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        # batchstream owns the retry policy for the whole item (a stream that fails after it started is
        # never retried by the SDK), so the SDK itself must not retry.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout, http_client=http_client
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: Request) -> StreamOutcome:
        if request.betas:
            kwargs, extra = _split_params(request.params, _BETA_KWARGS)
            create: Any = self._client.beta.messages.with_streaming_response.create
            kwargs["betas"] = list(request.betas)
        else:
            kwargs, extra = _split_params(request.params, _MESSAGES_KWARGS)
            create = self._client.messages.with_streaming_response.create
        started = time.monotonic()
        ttft: float | None = None
        accumulator = MessageAccumulator()
        decoder = SSEDecoder()
        feed = accumulator.feed
        async with create(**kwargs, stream=True, extra_body=extra or None) as response:
            http_response = response.http_response
            # An uncompressed body (what the API sends for event streams) skips httpx's decoding layers.
            encoding = http_response.headers.get("content-encoding", "identity")
            chunks = http_response.aiter_raw() if encoding == "identity" else http_response.aiter_bytes()
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    feed(event)
                if ttft is None and accumulator.text_started:
                    ttft = time.monotonic() - started
        if not accumulator.complete:
            raise IncompleteStreamError("the stream ended before message_stop")
        return StreamOutcome(
            message=accumulator.message(),
            request_id=http_response.headers.get("request-id"),
            latency_s=time.monotonic() - started,
            ttft_s=ttft,
            headers=http_response.headers,
        )
