"""The direct transport sends what the SDK builds and maps answers as the SDK does.

`direct` (the default) has the SDK build one request per set of headers and posts each item's body on
batchstream's own keep-alive connections; `sdk` sends everything through the SDK's own stack. Both are
held here to the same bytes on the wire and the same exceptions, so the fast path cannot drift from the
SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import click
import orjson
import pytest
from aiohttp import web
from conftest import CANNED_SSE

from batchstream.cli import run
from batchstream.inputs import API_PARAMS, Request
from batchstream.retry import classify
from batchstream.simulator import SimulatorThread, expected_reply
from batchstream.stream import (
    _BETA_KWARGS,
    _MESSAGES_KWARGS,
    TRANSPORTS,
    StreamClient,
    StreamOutcome,
    _CaptureTransport,
)

KEY = "sk-test-transport"
# Set by the transport layer beneath each path for every request, not by the SDK or batchstream.
_TRANSPORT_HEADERS = {"host", "content-length"}

REQUESTS = {
    "plain": ({"messages": [{"role": "user", "content": "Hi"}]}, ()),
    "extra body fields": (
        {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.5, "top_k": 3, "new_field": [1]},
        (),
    ),
    "every field the API knows": (
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi ☃"}]}],
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "metadata": {"user_id": "u-1"},
            "stop_sequences": ["END"],
            "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "service_tier": "auto",
        },
        (),
    ),
    "betas": ({"messages": [{"role": "user", "content": "Hi"}]}, ("beta-one", "beta-two")),
    "one beta": ({"messages": [{"role": "user", "content": "Hi"}]}, ("beta-one",)),
}


def _request(name: str) -> Request:
    params, betas = REQUESTS[name]
    return Request(
        name, 1, {"model": "claude-sonnet-5-5", "max_tokens": 16, **params}, betas, False, None, ""
    )


async def _record(transport: str, requests: list[Request]) -> list[dict[str, Any]]:
    """What a server receives when each request goes out through `transport`."""
    seen: list[dict[str, Any]] = []

    async def serve(incoming: web.Request) -> web.Response:
        seen.append(
            {
                "method": incoming.method,
                "path": incoming.path_qs,
                "headers": {
                    k.lower(): v for k, v in incoming.headers.items() if k.lower() not in _TRANSPORT_HEADERS
                },
                "body": orjson.loads(await incoming.read()),
            }
        )
        return web.Response(
            body=CANNED_SSE, headers={"content-type": "text/event-stream", "request-id": "req_1"}
        )

    app = web.Application()
    app.router.add_post("/v1/messages", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = StreamClient(
        api_key=KEY,
        base_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
        max_connections=2,
        stall_timeout=5,
        transport=transport,  # type: ignore[arg-type]
    )
    try:
        for request in requests:
            outcome = await client.stream(request)
            assert outcome.message["content"] == [{"type": "text", "text": "Hi."}]
            assert outcome.request_id == "req_1"
    finally:
        await client.aclose()
        await runner.cleanup()
    return seen


def test_direct_sends_exactly_what_the_sdk_sends() -> None:
    requests = [_request(name) for name in REQUESTS] * 2  # the second round reuses the direct templates
    direct, sdk = anyio.run(_record, "direct", requests), anyio.run(_record, "sdk", requests)
    assert len(direct) == len(sdk) == len(requests)
    for name, got, want in zip([*REQUESTS, *REQUESTS], direct, sdk, strict=True):
        assert got == want, name
    by_name = dict(zip(REQUESTS, direct, strict=False))
    assert by_name["plain"]["path"] == "/v1/messages"
    assert by_name["betas"]["headers"]["anthropic-beta"] == "beta-one,beta-two"
    assert by_name["one beta"]["headers"]["anthropic-beta"] == "beta-one"
    assert by_name["extra body fields"]["body"]["temperature"] == 0.5
    assert by_name["plain"]["body"]["stream"] is True
    assert by_name["plain"]["headers"]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("beta", [False, True])
def test_no_field_an_input_line_may_hold_leaves_the_body(beta: bool) -> None:
    """The direct path sends a line's fields as its body: if an SDK moved one of them into the headers
    (as it does `workspace_id`, which input lines may not hold), this fails."""

    async def outside_the_body() -> set[str]:
        capture = _CaptureTransport()
        client = anthropic.AsyncAnthropic(
            api_key=KEY,
            base_url="http://sdk.invalid",
            http_client=anthropic.DefaultAsyncHttpxClient(transport=capture),
        )
        messages = client.beta.messages if beta else client.messages
        known = _BETA_KWARGS if beta else _MESSAGES_KWARGS
        absent = set()
        for name in sorted(known - {"model", "max_tokens", "messages", "stream", "timeout", "betas"}):
            async with messages.with_streaming_response.create(
                model="m", max_tokens=1, messages=[], stream=True, **{name: "probe"}
            ):
                pass
            if name not in orjson.loads(capture.requests[-1].content):
                absent.add(name)
        await client.close()
        return absent

    outside = anyio.run(outside_the_body)
    assert "workspace_id" in outside  # the probe does find the keywords that become headers
    assert not outside & API_PARAMS


def _outcome_or_failure(transport: str, base_url: str, prompt: str) -> StreamOutcome | Any:
    async def go() -> StreamOutcome | Any:
        client = StreamClient(
            api_key=KEY,
            base_url=base_url,
            max_connections=2,
            stall_timeout=5,
            transport=transport,  # type: ignore[arg-type]
        )
        params = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}],
        }
        try:
            return await client.stream(Request("a", 1, params, (), False, None, ""))
        except Exception as exc:
            return exc
        finally:
            await client.aclose()

    return anyio.run(go)


@pytest.mark.parametrize(
    "directive",
    ["status=400", "status=401", "status=403", "status=404", "fail=429,429", "fail=529,529", "fail=500,500"],
)
def test_error_answers_become_the_same_sdk_exception_on_both_paths(
    simulator_factory: Callable[..., SimulatorThread], directive: str
) -> None:
    sim = simulator_factory(retry_after_s=2)
    # A `fail=` directive lists one failure per attempt: one for each transport.
    prompt = f"Fail. [[sim {directive}]]"
    direct, sdk = (_outcome_or_failure(t, sim.base_url, prompt) for t in TRANSPORTS)
    assert isinstance(direct, anthropic.APIStatusError), direct
    assert type(direct) is type(sdk)
    # Each answer carries its own request id and clock times; the rest must be identical.
    assert direct.request_id and sdk.request_id and direct.body["request_id"] == direct.request_id
    seen = []
    for exc in (direct, sdk):
        headers = {
            k: "(varies)" if k in ("date", "request-id") or k.endswith("-reset") else v
            for k, v in exc.response.headers.items()
        }
        body = orjson.dumps(exc.body).decode().replace(exc.request_id, "ID")
        seen.append((exc.status_code, body, exc.message.replace(exc.request_id, "ID"), headers))
    assert seen[0] == seen[1]
    got, want = classify(direct), classify(sdk)
    assert (got.cause, got.retryable, got.fatal, got.status, got.type, got.message, got.retry_after) == (
        want.cause,
        want.retryable,
        want.fatal,
        want.status,
        want.type,
        want.message,
        want.retry_after,
    )


def test_both_paths_assemble_the_simulators_reply(simulator: SimulatorThread) -> None:
    prompt = "Say something long enough to span several events."
    want = expected_reply(
        {"model": "claude-sonnet-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}
    )
    for transport in TRANSPORTS:
        outcome = _outcome_or_failure(transport, simulator.base_url, prompt)
        assert isinstance(outcome, StreamOutcome), outcome
        assert outcome.message["content"] == want["content"], transport
        assert outcome.message["usage"] == want["usage"], transport
        assert outcome.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    async def through_proxy() -> list[str]:
        hosts: list[str] = []

        async def proxy(incoming: web.Request) -> web.Response:
            hosts.append(incoming.host)
            return web.Response(body=CANNED_SSE, headers={"content-type": "text/event-stream"})

        app = web.Application()
        app.router.add_post("/v1/messages", proxy)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{runner.addresses[0][1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = StreamClient(
            api_key=KEY,
            base_url="http://api.batchstream.invalid",
            max_connections=2,
            stall_timeout=5,
            transport=transport,  # type: ignore[arg-type]
        )
        try:
            outcome = await client.stream(_request("plain"))
            assert outcome.message["content"] == [{"type": "text", "text": "Hi."}]
        finally:
            await client.aclose()
            await runner.cleanup()
        return hosts

    assert anyio.run(through_proxy) == ["api.batchstream.invalid"]


def test_the_command_line_offers_exactly_the_transports() -> None:
    [option] = [p for p in run.params if p.name == "transport"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == TRANSPORTS
    assert option.default == TRANSPORTS[0]
