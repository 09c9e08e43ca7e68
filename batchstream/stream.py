"""One streaming request: the SDK builds it, batchstream sends it and reads the bytes.

The SDK keeps what it does well: auth, headers, base URL, request building and mapping HTTP errors to
typed exceptions. The per-request and per-event paths are ours, because they are where the CPU goes.
The SDK's typed events and `messages.stream()` accumulation cost several times the CPU of parsing the
bytes with orjson, and its request path (body transform and copy, option models, URL merging, the
httpx2 layer over aiohttp) costs about 0.55 ms of CPU per request. With a thousand streams open, that
alone keeps a core busy.

So the `direct` transport asks the SDK to build the request once per set of beta flags (a
capture transport records exactly what it would send, and nothing goes out), then posts each item's
JSON body with those headers on batchstream's own keep-alive connections (`connections.py`), which hand
the reply's bytes straight to the event parser. Non-2xx answers are turned into the SDK's own exceptions
by the SDK. The `sdk` transport sends every request through the SDK's own stack: the simple path, kept
as a fallback and as the reference the tests hold the direct one to.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import anthropic
import httpx2
import orjson
from anthropic.resources.beta.messages.messages import AsyncMessages as _AsyncBetaMessages
from anthropic.resources.messages.messages import AsyncMessages as _AsyncMessages

from .accumulate import MessageAccumulator
from .connections import ConnectionPool, Endpoint, Reply
from .errors import UsageError
from .inputs import Request
from .sse import SSEDecoder

Transport = Literal["direct", "sdk"]
TRANSPORTS: tuple[Transport, ...] = ("direct", "sdk")


class IncompleteStreamError(Exception):
    """The stream ended without `message_stop`: the reply is partial and must not be recorded."""


class StreamOutcome(NamedTuple):
    """One request's result (a named tuple: one is built per request, at a quarter of a frozen dataclass's
    cost)."""

    message: dict[str, Any]
    request_id: str | None
    latency_s: float
    ttft_s: float | None
    headers: Mapping[str, str]


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
# Headers the connection pool writes for each request itself.
_PER_REQUEST_HEADERS = frozenset({"host", "content-length"})
# Headers that describe the wire form of a body that reaches the SDK's error mapping already decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _split_params(params: dict[str, Any], known: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        (kwargs if key in known else extra)[key] = value
    return kwargs, extra


@dataclass(frozen=True, slots=True)
class _Template:
    """What the SDK would send for one set of headers; each item brings its own body."""

    endpoint: Endpoint
    request: httpx2.Request


class _CaptureTransport(httpx2.AsyncBaseTransport):
    """Records each request the SDK builds and answers with an empty stream; nothing leaves the process."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"")


class StreamClient:
    """Owns the shared connections; `stream` sends one request and returns the assembled message."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        max_connections: int,
        stall_timeout: float,
        connect_timeout: float = 10.0,
        transport: Transport = "direct",
        api_version: str | None = None,
    ) -> None:
        # The stall timeout is the transport's read timeout: it fires when no byte arrives for that long,
        # before the headers or between events, at no cost per event.
        timeout = httpx2.Timeout(stall_timeout, connect=connect_timeout, pool=None)
        self._direct = transport == "direct"
        self._capture = _CaptureTransport()
        if self._direct:
            # The SDK's HTTP client only ever builds requests here, so it needs no connections, proxies or
            # TLS set-up of its own (loading the CA store alone costs tens of milliseconds).
            http_client: httpx2.AsyncClient = httpx2.AsyncClient(transport=self._capture, trust_env=False)
        else:
            http_client = anthropic.DefaultAioHttpClient(
                timeout=timeout,
                limits=httpx2.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
            )
        # batchstream owns the retry policy for the whole item (a stream that fails after it started is
        # never retried by the SDK), so the SDK itself must not retry. `api_version` (None: the SDK's own)
        # replaces the anthropic-version header the SDK would send.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
            default_headers={"anthropic-version": api_version} if api_version else None,
        )
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._pool: ConnectionPool | None = None
        self._templates: dict[tuple[str, ...], _Template] = {}

    def drain(self) -> None:
        """Nothing more is to be sent: close the direct transport's connections as they go idle (the SDK
        keeps its own)."""
        if self._pool is not None:
            self._pool.drain()

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
        await self._client.close()

    async def stream(self, request: Request) -> StreamOutcome:
        if self._direct:
            return await self._stream_direct(request)
        return await self._stream_sdk(request)

    def _sdk_call(self, request: Request) -> Any:
        """The SDK call that sends `request`: the one path the SDK builds requests from."""
        if request.betas:
            kwargs, extra = _split_params(request.params, _BETA_KWARGS)
            create: Any = self._client.beta.messages.with_streaming_response.create
            kwargs["betas"] = list(request.betas)
        else:
            kwargs, extra = _split_params(request.params, _MESSAGES_KWARGS)
            create = self._client.messages.with_streaming_response.create
        return create(**kwargs, stream=True, extra_body=extra or None)

    async def _stream_sdk(self, request: Request) -> StreamOutcome:
        started = time.monotonic()
        async with self._sdk_call(request) as response:
            http_response = response.http_response
            # An uncompressed body (what the API sends for event streams) skips httpx's decoding layers.
            encoding = http_response.headers.get("content-encoding", "identity")
            chunks = http_response.aiter_raw() if encoding == "identity" else http_response.aiter_bytes()
            assembly = _Assembly(started)
            async for chunk in chunks:
                assembly.feed(chunk)
        return StreamOutcome(
            assembly.message(),
            http_response.headers.get("request-id"),
            time.monotonic() - started,
            assembly.ttft,
            http_response.headers,
        )

    async def _template(self, request: Request) -> _Template:
        # Only the beta flags change what the SDK puts outside the body for the fields an input line may
        # hold (a test probes every keyword the SDK takes to keep that true).
        template = self._templates.get(request.betas)
        if template is None:
            template = self._templates[request.betas] = await self._build_template(request.betas)
        return template

    async def _build_template(self, betas: tuple[str, ...]) -> _Template:
        skeleton = {"model": "", "max_tokens": 1, "messages": []}
        async with self._sdk_call(Request("", 0, skeleton, betas, False, None, "")):
            pass
        built = self._capture.requests.pop()
        headers = {k: v for k, v in built.headers.items() if k.lower() not in _PER_REQUEST_HEADERS}
        # HTTPS_PROXY / NO_PROXY are honoured as the SDK's own client does, looked up once here rather
        # than for every request.
        try:
            endpoint = Endpoint.for_url(str(built.url), headers)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return _Template(endpoint, built)

    async def _stream_direct(self, request: Request) -> StreamOutcome:
        template = await self._template(request)
        pool = self._pool
        if pool is None:
            # Created on first use because its connections belong to the running event loop.
            pool = self._pool = ConnectionPool(
                max_connections=self._max_connections,
                connect_timeout=self._connect_timeout,
                stall_timeout=self._stall_timeout,
            )
        started = time.monotonic()
        assembly = _Assembly(started)
        reply = await pool.post(
            template.endpoint, orjson.dumps({**request.params, "stream": True}), assembly.feed
        )
        if reply.status >= 400:
            raise self._status_error(reply, template)
        message = assembly.message()
        headers = reply.headers
        latency = time.monotonic() - started
        return StreamOutcome(message, headers.get("request-id"), latency, assembly.ttft, headers)

    def _status_error(self, reply: Reply, template: _Template) -> anthropic.APIStatusError:
        """The SDK's typed exception for an error answer, made by the SDK from the answer itself."""
        headers = [(k, v) for k, v in reply.raw_headers if k.lower() not in _WIRE_HEADERS]
        answer = httpx2.Response(reply.status, headers=headers, content=reply.body, request=template.request)
        return self._client._make_status_error_from_response(answer)


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
