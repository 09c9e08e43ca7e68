"""The API: routes, the request pipeline, and the fault behaviours on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import parse_qsl

import orjson

from .batches import PATH_PREFIX as BATCHES_PREFIX
from .batches import BatchError, BatchStore, batch_json
from .cache import Lookup, PromptCache
from .config import PROBABILISTIC_FAULTS, SimulatorConfig
from .directives import DirectiveError, Directives, parse_directives
from .events import Event, garbled, stream_events
from .faults import STATUS_FAULTS, Fault, decide_fault
from .http import BodyTooLarge, Request, Response, StreamResponse, header_lines
from .prompt import estimate_input_tokens
from .ratelimit import Admission, RateLimits, itpm_charge, rate_limit_headers, refusal_message
from .replies import Reply, build_reply, request_key
from .sleeps import SharedSleeps
from .stats import RequestLog, Stats
from .transcripts import load_transcript
from .validation import validate_count_tokens_body, validate_messages_body
from .wire import (
    CREDIT_EXHAUSTED_MESSAGE,
    DEFAULT_ERROR_MESSAGES,
    JSON_CONTENT_TYPE,
    SPEND_LIMIT_MESSAGE,
    SSE_HEADERS,
    error_body,
    message_object,
    model_not_found_message,
    new_id,
    retry_after,
    usage_limit_message,
)

# The service's own ceiling on a Messages request body.
MAX_BODY_BYTES = 32 * 1024 * 1024

# Encoded once: every stream sends them.
_SSE_HEADERS = header_lines(SSE_HEADERS)
_JSON_CONTENT_TYPE = header_lines({"Content-Type": JSON_CONTENT_TYPE})

# How much of an unpaced stream goes out in one write: back-pressure is checked after as much, and memory
# stays bounded however long the reply.
BURST_BYTES = 64 * 1024


class Rejection(Exception):
    """Ends a request with an API error response; raised anywhere in the pipeline."""

    def __init__(self, status: int, message: str, outcome: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class Exchange:
    """What one request turned into, for stats and the request log."""

    request_id: str
    api_version: str | None = None
    admission: Admission | None = None
    key: str | None = None
    attempt: int | None = None
    model: str | None = None
    # Stays "client_closed" unless the pipeline reaches a verdict, which is what an early disconnect means.
    outcome: str = "client_closed"
    status: int | None = None
    output_tokens: int = 0


# A request handler's answer: a `Response`, or None once it has streamed its answer or hung up.
Answer = Response | None
Pipeline = Callable[[Request, Exchange], Awaitable[Answer]]


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.limits = RateLimits(config.rpm, config.itpm, config.otpm)
        self.cache = PromptCache()
        # Without these, only a `[[sim fail=...]]` script can fault an attempt; deciding costs a seeded PRNG.
        self._configured_faults = config.fail_first > 0 or any(
            map(config.fault_probability, PROBABILISTIC_FAULTS)
        )
        self.log = RequestLog(config.log_path)
        self._outage_until: float | None = None  # set by the first Messages request when outage_s is on
        self._ttft = SharedSleeps()
        self._routes: dict[tuple[str, str], Callable[[Request], Awaitable[Answer]]] = {
            ("POST", "/v1/messages"): self._api(self._messages),
            ("POST", "/v1/messages/count_tokens"): self._api(self._count_tokens),
            ("GET", "/_sim/stats"): self._stats,
            ("HEAD", "/_sim/stats"): self._stats,
            ("GET", "/_sim/request-times"): self._request_times,
            ("POST", "/_sim/reset"): self._reset,
            ("GET", "/_sim/batches"): self._batch_record,
        }
        self._unrouted = self._api(self._not_found)
        self.batches = BatchStore(config)
        self._batches = self._api(self._batch_call)
        self.scheme = "http"  # "https" once served over TLS: the scheme of the batches' results_url

    def reset(self) -> None:
        self.stats = Stats()
        self.limits.reset()
        self._outage_until = None
        self.cache.reset()
        self.batches.cache.reset()

    def close(self) -> None:
        self.log.close()

    async def handle(self, request: Request) -> Answer:
        """Route by exact method and path; anything else, wrong method included, is the API's 404."""
        if request.path.startswith(BATCHES_PREFIX):
            return await self._batches(request)
        return await self._routes.get((request.method, request.path), self._unrouted)(request)

    async def _stats(self, _request: Request) -> Response:
        return Response(orjson.dumps(self.stats.snapshot()), JSON_CONTENT_TYPE)

    async def _request_times(self, _request: Request) -> Response:
        return Response(orjson.dumps(self.stats.request_times.tolist()), JSON_CONTENT_TYPE)

    async def _batch_record(self, _request: Request) -> Response:
        return Response(orjson.dumps(self.batches.record()), JSON_CONTENT_TYPE)

    async def _reset(self, _request: Request) -> Response:
        self.reset()
        return Response(b"{}", JSON_CONTENT_TYPE)

    def _api(self, pipeline: Pipeline) -> Callable[[Request], Awaitable[Answer]]:
        async def handler(request: Request) -> Answer:
            exchange = Exchange(request_id=new_id("req_"))
            self.stats.saw_request()
            try:
                return await pipeline(request, exchange)
            except Rejection as rejection:
                exchange.outcome = rejection.outcome
                return self._error(exchange, rejection)
            finally:
                self._record(exchange)

        return handler

    def _record(self, exchange: Exchange) -> None:
        if exchange.status is not None:
            self.stats.by_status[exchange.status] += 1
        self.log.write(
            exchange.key,
            exchange.attempt,
            exchange.outcome,
            exchange.status,
            exchange.model,
            exchange.output_tokens,
            exchange.api_version,
        )

    def _headers(self, exchange: Exchange) -> bytes:
        """Every API response's headers, encoded (see `header_lines`)."""
        admission = exchange.admission or self.limits.peek()
        return b"request-id: %s\r\n%s" % (exchange.request_id.encode(), rate_limit_headers(admission))

    def _error(self, exchange: Exchange, rejection: Rejection) -> Response:
        headers = self._headers(exchange)
        if rejection.retry_after_s is not None:
            headers += header_lines({"retry-after": retry_after(rejection.retry_after_s)})
        exchange.status = rejection.status
        return Response(
            error_body(rejection.status, rejection.message, exchange.request_id),
            JSON_CONTENT_TYPE,
            status=rejection.status,
            headers=headers,
        )

    async def _batch_call(self, request: Request, exchange: Exchange) -> Answer:
        """The Message Batches API (`batches.py`): `/v1/messages/batches[/ID[/results|/cancel]]`."""
        store = self.batches
        parts = request.path[len(BATCHES_PREFIX) :].strip("/").split("/")
        method, batch_id, action = request.method, parts[0], "/".join(parts[1:])
        base_url = f"{self.scheme}://{request.headers.get('host') or 'localhost'}"
        try:
            if not batch_id and method == "POST":
                body = self._read_body(request, exchange, lambda _body, _version: None)
                answer: Any = store.create(body, exchange.api_version or "")
                if store.drop_create():
                    exchange.outcome = "drop"
                    request.abort()
                    return None
            else:
                self._authenticate(request)
                if not batch_id and method == "GET":
                    answer = store.list_page(dict(parse_qsl(request.query)))
                elif batch_id and not action and method == "GET":
                    answer = store.retrieve(batch_id)
                elif batch_id and not action and method == "DELETE":
                    answer = store.delete(batch_id)
                elif batch_id and action == "cancel" and method == "POST":
                    answer = store.cancel(batch_id)
                elif batch_id and action == "results" and method == "GET":
                    exchange.status, exchange.outcome = 200, "ok"
                    return Response(
                        store.results(batch_id), "application/binary", headers=self._headers(exchange)
                    )
                else:
                    raise Rejection(404, "Not found", "not_found")
        except BatchError as exc:
            raise Rejection(exc.status, exc.message, "batch_error") from None
        exchange.status, exchange.outcome = 200, "ok"
        return Response(batch_json(answer, base_url), JSON_CONTENT_TYPE, headers=self._headers(exchange))

    async def _not_found(self, _request: Request, _exchange: Exchange) -> Answer:
        raise Rejection(404, "Not found", "not_found")

    def _read_body(
        self, request: Request, exchange: Exchange, validate: Callable[[Any, str], str | None]
    ) -> dict[str, Any]:
        """Auth, version header, JSON and schema (which depends on the version), in the order the service
        checks them."""
        self._authenticate(request)
        version = request.headers.get("anthropic-version")
        if version is None:
            raise Rejection(400, "anthropic-version: header is required", "invalid_request")
        exchange.api_version = version
        self.stats.saw_api_version(version)
        try:
            raw = request.read()
        except BodyTooLarge:
            raise Rejection(413, DEFAULT_ERROR_MESSAGES[413], "request_too_large") from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejection(400, f"The request body is not valid JSON: {exc}", "invalid_request") from None
        problem = validate(body, version)
        if problem:
            raise Rejection(400, problem, "invalid_request")
        return body

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        if key is None:
            raise Rejection(401, "x-api-key header is required", "unauthorized")
        expected = self.config.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            raise Rejection(401, "invalid x-api-key", "unauthorized")

    async def _count_tokens(self, request: Request, exchange: Exchange) -> Answer:
        body = self._read_body(request, exchange, validate_count_tokens_body)
        exchange.model = body["model"]
        exchange.outcome = "ok"
        exchange.status = 200
        return Response(
            orjson.dumps({"input_tokens": estimate_input_tokens(body)}),
            JSON_CONTENT_TYPE,
            headers=self._headers(exchange),
        )

    async def _messages(self, request: Request, exchange: Exchange) -> Answer:
        config = self.config
        if config.outage_s and self._in_outage():
            return self._outage(request, exchange)
        body = self._read_body(request, exchange, validate_messages_body)
        exchange.model = body["model"]
        self._check_account_and_model(exchange.model)
        exchange.key = request_key(body)
        try:
            directives = parse_directives(body)
        except DirectiveError as exc:
            raise Rejection(400, str(exc), "invalid_request") from None
        # Built before admission: its usage is what the request charges against the input-tokens limit, cache
        # reads excluded (a refused request's lookup refreshes what it found: the price of knowing them).
        reply, cached = None, None
        if directives.transcript is None:
            cached = self.cache.lookup(body)
            if cached.read > directives.cache_read:
                directives = dataclasses.replace(directives, cache_read=cached.read)
            reply = build_reply(body, exchange.key, config.reply_tokens, directives)
        charge = (
            estimate_input_tokens(body) if reply is None else itpm_charge(reply.start_usage, exchange.model)
        )
        admission = exchange.admission = self.limits.admit(charge, body["max_tokens"])
        if not admission.allowed:
            self.stats.rate_limited += 1
            assert admission.refused_by is not None
            message = refusal_message(self.limits, admission.refused_by)
            raise Rejection(429, message, "rate_limited", admission.wait_s)
        try:
            return await self._admitted(request, exchange, body, directives, reply, cached)
        finally:  # the output tokens reserved at max_tokens, given back down to those produced
            self.limits.settle(admission, exchange.output_tokens)

    async def _admitted(
        self,
        request: Request,
        exchange: Exchange,
        body: dict[str, Any],
        directives: Directives,
        reply: Reply | None,
        cached: Lookup | None,
    ) -> Answer:
        config = self.config
        assert exchange.key is not None
        self.stats.saw_betas(request.headers.get("anthropic-beta"))
        exchange.attempt = self.stats.next_attempt(exchange.key)
        if directives.status is not None:
            self.stats.faults[str(directives.status)] += 1
            self._fail_with_status(directives.status, str(directives.status))
        if reply is None:
            assert directives.transcript is not None
            return await self._replay(request, exchange, directives.transcript, bool(body.get("stream")))
        fault = None
        if self._configured_faults or directives.fail:
            fault = decide_fault(config, exchange.key, exchange.attempt, directives.fail)
        if fault is not None:
            self.stats.faults[fault.kind] += 1
            exchange.outcome = fault.kind
            if fault.kind in STATUS_FAULTS:
                self._fail_with_status(STATUS_FAULTS[fault.kind], fault.kind)
            if fault.kind == "stall":
                return await self._stall(request)
        if config.ttft_s:
            await self._ttft.sleep(config.ttft_s)
        # From message_start on (or the whole reply, unstreamed), what this request wrote can be read.
        if cached is not None:
            self.cache.store(cached)
        if body.get("stream"):
            return await self._stream(request, exchange, reply, fault, directives.garble)
        return await self._message(request, exchange, reply, fault)

    def _in_outage(self) -> bool:
        now = time.monotonic()
        if self._outage_until is None:
            self._outage_until = now + self.config.outage_s
        return now < self._outage_until

    def _outage(self, request: Request, exchange: Exchange) -> Answer:
        """The service is down: an error status for everything, or a connection cut before any answer."""
        kind = self.config.outage_kind
        self.stats.faults["outage"] += 1
        if kind == "reset":
            exchange.outcome = "outage"
            request.abort()
            return None
        self._fail_with_status(int(kind), "outage")

    def _check_account_and_model(self, model: str) -> None:
        """An account that cannot go on, or a model that is not there: refused, whatever the request asks."""
        account = self.config.account
        if account == "credit_exhausted":
            raise Rejection(400, CREDIT_EXHAUSTED_MESSAGE, "credit_exhausted")
        if account == "usage_limit":
            raise Rejection(400, usage_limit_message(time.time()), "usage_limit")
        if account == "spend_limit":
            raise Rejection(429, SPEND_LIMIT_MESSAGE, "spend_limit")
        if model == self.config.missing_model:
            raise Rejection(404, model_not_found_message(model), "model_not_found")

    def _fail_with_status(self, status: int, outcome: str) -> NoReturn:
        wait = self.config.retry_after_s if status in (429, 529) else None
        raise Rejection(status, DEFAULT_ERROR_MESSAGES[status], outcome, wait)

    async def _stall(self, request: Request) -> Answer:
        """Say nothing for `stall_s`, then hang up: the failure only a client-side timeout can catch."""
        await asyncio.sleep(self.config.stall_s)
        request.abort()
        return None

    async def _message(
        self, request: Request, exchange: Exchange, reply: Reply, fault: Fault | None
    ) -> Answer:
        if fault is not None and fault.kind == "error_event":
            # A non-streaming request has no events to carry a mid-response error; it surfaces as a 529.
            self._fail_with_status(529, fault.kind)
        body = orjson.dumps(
            message_object(
                new_id("msg_"),
                reply.model or exchange.model or "",
                reply.content,
                reply.stop_reason,
                reply.stop_sequence,
                reply.usage,
                reply.stop_details,
            )
        )
        if fault is None:
            exchange.status = 200
            exchange.output_tokens = reply.output_tokens
            exchange.outcome = "ok"
            self.stats.complete(exchange.key or "")
            return Response(body, JSON_CONTENT_TYPE, headers=self._headers(exchange))
        # A broken body has no length to announce: it goes out as a stream of one chunk, cut or ended early.
        response = StreamResponse(request, self._headers(exchange) + _JSON_CONTENT_TYPE)
        exchange.status = 200
        drop = fault.kind == "drop"
        await response.write((body[: len(body) // 2],), last=not drop)
        if drop:
            request.abort()
        return None

    async def _stream(
        self, request: Request, exchange: Exchange, reply: Reply, fault: Fault | None, garble: str | None
    ) -> Answer:
        response = _event_stream(request, self._headers(exchange))
        exchange.status = 200
        events = stream_events(reply, new_id("msg_"), exchange.model or "", fault)
        if garble is not None:
            events = garbled(events, garble)
        end_body = fault is None or fault.kind != "drop"  # a dropped stream is cut off instead
        if self.config.tokens_per_s:
            await self._write_paced(response, events, exchange, end_body)
        else:
            await _write_burst(response, events, exchange, end_body)
        if not end_body:
            request.abort()
        elif fault is None:
            exchange.outcome = "ok"
            self.stats.complete(exchange.key or "")
        return None

    async def _write_paced(
        self, response: StreamResponse, events: Iterable[Event], exchange: Exchange, end_body: bool
    ) -> None:
        """One write per event, the pieces of each block `1 / tokens_per_s` apart from its first."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.config.tokens_per_s
        start = 0.0
        for event, nth in events:
            if nth == 0:
                start = loop.time()
            elif nth is not None:
                delay = start + nth * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await response.write((event,))
            if nth is not None:
                exchange.output_tokens += 1
        if end_body:
            await response.write((), last=True)

    async def _replay(self, request: Request, exchange: Exchange, name: str, stream: bool) -> Answer:
        """Send a recorded transcript as it was recorded: no injected faults, no pacing."""
        recorded = load_transcript(name)
        if not stream and not recorded.complete:  # as for error_event faults: without events, it is a status
            self._fail_with_status(529, "error_event")
        headers = self._headers(exchange)
        response: Response | None = None
        if stream:
            await _event_stream(request, headers).write(recorded.events, last=True)
        else:
            response = Response(orjson.dumps(recorded.outcome), JSON_CONTENT_TYPE, headers=headers)
        exchange.status = 200
        if not recorded.complete:
            exchange.outcome = "error_event"
            return response
        exchange.outcome = "ok"
        exchange.output_tokens = int(recorded.outcome["usage"]["output_tokens"])
        self.stats.complete(exchange.key or "")
        return response


async def _write_burst(
    response: StreamResponse, events: Iterable[Event], exchange: Exchange, end_body: bool
) -> None:
    """Events with no pacing between them, in one write per `BURST_BYTES`; a short reply is one write."""
    batch: list[bytes] = []
    size = pieces = 0
    for event, nth in events:
        if size >= BURST_BYTES:
            await response.write(batch)
            exchange.output_tokens += pieces
            batch, size, pieces = [], 0, 0
        batch.append(event)
        size += len(event)
        pieces += nth is not None
    await response.write(batch, last=end_body)
    exchange.output_tokens += pieces


def _event_stream(request: Request, headers: bytes) -> StreamResponse:
    """A streamed response with the SSE headers ahead of the given `headers`, one chunk per event."""
    return StreamResponse(request, _SSE_HEADERS + headers)
