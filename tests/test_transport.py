"""Requests go out through the SDK's own stack, and come back as the SDK maps them.

Every request is sent by the SDK's public API on its aiohttp transport; these tests hold what reaches a
server (path, headers, body) and what an error answer becomes to what an input line asks for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web
from conftest import CANNED_SSE

from batchstream.inputs import Request
from batchstream.simulator import SimulatorThread, expected_reply
from batchstream.transport import Sent
from batchstream.transport.failures import classify
from batchstream.transport.streaming import StreamingSender

KEY = "sk-test-transport"
# Set by the HTTP layer for every request, not by the SDK or batchstream.
_TRANSPORT_HEADERS = {"host", "content-length"}

REQUESTS = {
    "plain": ({"messages": [{"role": "user", "content": "Hi"}]}, ()),
    "a field the SDK does not know": (
        {"messages": [{"role": "user", "content": "Hi"}], "new_field": [1]},
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


async def _record(requests: list[Request]) -> list[dict[str, Any]]:
    """What a server receives when each request goes out."""
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
    client = StreamingSender(
        api_key=KEY,
        base_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
        max_connections=2,
        stall_timeout=5,
    )
    try:
        for request in requests:
            outcome = await client.send(request)
            assert outcome.message["content"] == [{"type": "text", "text": "Hi."}]
            assert outcome.request_id == "req_1"
    finally:
        await client.aclose()
        await runner.cleanup()
    return seen


def test_each_line_goes_out_as_its_body_with_the_sdks_headers() -> None:
    requests = [_request(name) for name in REQUESTS]
    seen = dict(zip(REQUESTS, asyncio.run(_record(requests)), strict=True))
    for name, (params, _betas) in REQUESTS.items():
        got = seen[name]
        assert (got["method"], got["path"]) == ("POST", "/v1/messages"), name
        assert got["body"] == {"model": "claude-sonnet-5-5", "max_tokens": 16, **params, "stream": True}, name
        assert got["headers"]["authorization"] == f"Bearer {KEY}"
        assert (
            got["headers"]["anthropic-version"]
            == anthropic.AsyncAnthropic(api_key="k").default_headers["anthropic-version"]
        )
        assert got["headers"]["content-type"] == "application/json"
    assert seen["betas"]["headers"]["anthropic-beta"] == "beta-one,beta-two"
    assert seen["one beta"]["headers"]["anthropic-beta"] == "beta-one"
    assert "anthropic-beta" not in seen["plain"]["headers"]


def _outcome_or_failure(base_url: str, prompt: str) -> Sent | Any:
    async def go() -> Sent | Any:
        client = StreamingSender(
            api_key=KEY,
            base_url=base_url,
            max_connections=2,
            stall_timeout=5,
        )
        params = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}],
        }
        try:
            return await client.send(Request("a", 1, params, (), False, None, ""))
        except Exception as exc:
            return exc
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("directive", "want"),
    [
        ("status=400", ("client_error", False, False, 400, "invalid_request_error", None)),
        ("status=401", ("authentication", False, True, 401, "authentication_error", None)),
        ("status=403", ("permission", False, True, 403, "permission_error", None)),
        ("status=404", ("client_error", False, False, 404, "not_found_error", None)),
        ("fail=429", ("rate_limit", True, False, 429, "rate_limit_error", 2.0)),
        ("fail=529", ("overloaded", True, False, 529, "overloaded_error", 2.0)),
        ("fail=500", ("server_error", True, False, 500, "api_error", None)),
    ],
)
def test_error_answers_become_the_sdks_exception_and_their_failure(
    simulator_factory: Callable[..., SimulatorThread], directive: str, want: tuple[Any, ...]
) -> None:
    sim = simulator_factory(retry_after_s=2)
    error = _outcome_or_failure(sim.base_url, f"Fail. [[sim {directive}]]")
    assert isinstance(error, anthropic.APIStatusError), error
    assert error.status_code == want[3]
    assert error.request_id and error.body["request_id"] == error.request_id
    got = classify(error)
    assert (got.cause, got.retryable, got.fatal, got.status, got.type, got.retry_after) == want
    assert got.message == error.body["error"]["message"]
    assert got.request_id == error.request_id


@pytest.mark.parametrize(
    ("knobs", "want"),
    [
        ({"account": "credit_exhausted"}, ("billing", False, True, 400, "invalid_request_error")),
        ({"account": "usage_limit"}, ("usage_limit", False, True, 400, "invalid_request_error")),
        ({"account": "spend_limit"}, ("usage_limit", False, True, 429, "rate_limit_error")),
        ({"missing_model": "claude-sonnet-5-5"}, ("client_error", False, False, 404, "not_found_error")),
        ({"rpm": 1}, ("rate_limit", True, False, 429, "rate_limit_error")),  # a rate limit's 429 waits
    ],
)
def test_an_account_that_cannot_go_on_is_fatal_by_the_apis_own_words(
    simulator_factory: Callable[..., SimulatorThread], knobs: dict[str, Any], want: tuple[Any, ...]
) -> None:
    sim = simulator_factory(**knobs)
    if "rpm" in knobs:
        _outcome_or_failure(sim.base_url, "Use up the minute.")
    error = _outcome_or_failure(sim.base_url, "Hello.")
    assert isinstance(error, anthropic.APIStatusError), error
    got = classify(error)
    assert (got.cause, got.retryable, got.fatal, got.status, got.type) == want
    assert got.message == error.body["error"]["message"]


@pytest.mark.parametrize(
    ("kind", "want"),
    [
        ("529", ("overloaded", 529, "overloaded_error")),
        ("500", ("server_error", 500, "api_error")),
        ("reset", ("connection", None, "connection_error")),
    ],
)
def test_the_simulators_outage_fails_everything_for_its_window_then_ends(
    simulator_factory: Callable[..., SimulatorThread], kind: str, want: tuple[Any, ...]
) -> None:
    sim = simulator_factory(outage_s=1.0, outage_kind=kind)
    failures = [classify(_outcome_or_failure(sim.base_url, f"During {i}.")) for i in range(2)]
    assert [(f.cause, f.status, f.type, f.outage) for f in failures] == [(*want, True)] * 2
    time.sleep(1.0)  # the window, from the first request, is over
    assert isinstance(_outcome_or_failure(sim.base_url, "After."), Sent)
    assert sim.stats()["faults"] == {"outage": 2}


def test_the_simulators_reply_is_assembled(simulator: SimulatorThread) -> None:
    prompt = "Say something long enough to span several events."
    want = expected_reply(
        {"model": "claude-sonnet-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}
    )
    outcome = _outcome_or_failure(simulator.base_url, prompt)
    assert isinstance(outcome, Sent), outcome
    assert outcome.message["content"] == want["content"]
    assert outcome.message["usage"] == want["usage"]
    assert outcome.headers["content-type"].startswith("text/event-stream")


def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
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
        client = StreamingSender(
            api_key=KEY,
            base_url="http://api.batchstream.invalid",
            max_connections=2,
            stall_timeout=5,
        )
        try:
            outcome = await client.send(_request("plain"))
            assert outcome.message["content"] == [{"type": "text", "text": "Hi."}]
        finally:
            await client.aclose()
            await runner.cleanup()
        return hosts

    assert asyncio.run(through_proxy()) == ["api.batchstream.invalid"]
