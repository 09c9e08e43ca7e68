"""The simulator, driven over a real socket by the real SDK and by raw HTTP for exact bytes and headers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.pricing import Pricer
from batchstream.simulator import FAULT_KINDS, SimulatorConfig, SimulatorThread, expected_reply, request_key
from batchstream.simulator.transcripts import load_transcript

MODEL = "claude-simulated-1"
API_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
REQUEST_ID = re.compile(r"^req_01[0-9A-Za-z]{24}$")
MESSAGE_ID = re.compile(r"^msg_01[0-9A-Za-z]{24}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def body_for(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **extra}


@contextlib.contextmanager
def running_sim(**options: Any) -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(ttft_s=0, **options)) as sim:
        yield sim


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorThread]:
    with running_sim() as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorThread) -> SimulatorThread:
    shared_sim.reset()
    return shared_sim


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0) as sdk:
        yield sdk


def sse_events(raw: bytes) -> list[tuple[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        events.append((name_line[len("event: ") :], orjson.loads(data_line[len("data: ") :])))
    return events


def text_stream_event_names(deltas: int) -> list[str]:
    """The events of a one-text-block stream, in the order the API sends them."""
    return [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def post_raw(sim: SimulatorThread, payload: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
    content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return httpx2.post(
        f"{sim.base_url}/v1/messages",
        content=content,
        headers=API_HEADERS if headers is None else headers,
        timeout=10,
    )


# --- happy path --------


def test_sdk_stream_assembles_expected_reply(client: anthropic.Anthropic) -> None:
    body = body_for("Tell me about rivers.", system="Be brief.")
    with client.messages.stream(**body) as stream:
        event_types = [event.type for event in stream]
        message = stream.get_final_message()
    expected = expected_reply(body)
    assert message.content[0].text == expected["text"]
    assert message.stop_reason == expected["stop_reason"] == "end_turn"
    assert message.stop_sequence is None
    assert message.model == MODEL
    assert MESSAGE_ID.match(message.id)
    assert message.usage.model_dump(include=set(expected["usage"])) == expected["usage"]
    assert event_types[:2] == ["message_start", "content_block_start"]
    assert event_types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_non_streaming_create_equals_expected_reply(client: anthropic.Anthropic) -> None:
    body = body_for("Name three colours.")
    message = client.messages.create(**body)
    expected = expected_reply(body)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == expected["text"]
    assert message.stop_reason == expected["stop_reason"]
    assert message.usage.model_dump(include=set(expected["usage"])) == expected["usage"]
    assert message.usage.service_tier == "standard"


def test_async_client_streams_concurrently(sim: SimulatorThread) -> None:
    bodies = [body_for(f"Question number {i}?") for i in range(20)]

    async def one(sdk: anthropic.AsyncAnthropic, body: dict[str, Any]) -> str:
        async with sdk.messages.stream(**body) as stream:
            return (await stream.get_final_message()).content[0].text

    async def main() -> list[str]:
        async with anthropic.AsyncAnthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0) as sdk:
            return await asyncio.gather(*(one(sdk, body) for body in bodies))

    assert asyncio.run(main()) == [expected_reply(body)["text"] for body in bodies]
    stats = sim.stats()
    assert stats["completed"] == 20 and stats["max_completions_per_key"] == 1


def test_raw_stream_wire_format(sim: SimulatorThread) -> None:
    body = body_for("Exact bytes, please.", stream=True)
    response = post_raw(sim, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert REQUEST_ID.match(response.headers["request-id"])
    for family in ("requests", "input-tokens", "output-tokens", "tokens"):
        assert int(response.headers[f"anthropic-ratelimit-{family}-limit"]) > 0
        assert int(response.headers[f"anthropic-ratelimit-{family}-remaining"]) >= 0
        assert RFC3339.match(response.headers[f"anthropic-ratelimit-{family}-reset"])
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in response.content
    events = sse_events(response.content)
    expected = expected_reply(body)
    names = [name for name, _ in events]
    n = expected["usage"]["output_tokens"]
    assert names == text_stream_event_names(n)
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["role"] == "assistant"
    assert start["usage"] == {
        "input_tokens": expected["usage"]["input_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert "".join(deltas) == expected["text"]
    assert deltas[0][0].isupper() and all(token.startswith(" ") for token in deltas[1:])
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": n},
    }


def raw_response(sim: SimulatorThread, body: dict[str, Any], *, until_closed: bool = False) -> bytes:
    """The bytes of one answer as they arrive on the socket: up to the last chunk of a chunked body, or,
    `until_closed`, everything up to the server's hang-up."""
    url = httpx2.URL(sim.base_url)
    payload = orjson.dumps(body)
    request = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {url.host}\r\nx-api-key: sk-test\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port), timeout=10) as conn:
        conn.sendall(request.encode() + payload)
        raw = b""
        while until_closed or not raw.endswith(b"\r\n0\r\n\r\n"):
            data = conn.recv(65536)
            if until_closed and not data:
                return raw
            assert data, raw
            raw += data
    return raw


def raw_chunks(sim: SimulatorThread, body: dict[str, Any]) -> tuple[list[str], list[bytes]]:
    """Header names in order, and the chunks of the chunked body as framed on the socket."""
    raw = raw_response(sim, body)
    head, _, rest = raw.partition(b"\r\n\r\n")
    names = [line.split(b":")[0].decode() for line in head.split(b"\r\n")[1:]]
    chunks = []
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return names, chunks
        chunks.append(rest[:n])
        assert rest[n : n + 2] == b"\r\n"
        rest = rest[n + 2 :]


@pytest.mark.parametrize("tokens_per_s", [0.0, 1000.0])
def test_each_event_is_a_chunk_of_its_own(tokens_per_s: float) -> None:
    """A burst leaves in one write, but framed as one write per event would be: clients' costs per event
    depend on the framing. Also pins where `Transfer-Encoding` falls among the headers."""
    body = body_for("Frame me [[sim tokens=6]]", stream=True)
    with running_sim(tokens_per_s=tokens_per_s) as sim:
        names, chunks = raw_chunks(sim, body)
        replayed = raw_chunks(sim, body_for("[[sim transcript=basic_text]]", stream=True))[1]
    ratelimit = [name for name in names if name.startswith("anthropic-ratelimit-")]
    assert names == [
        "content-type",
        "cache-control",
        "request-id",
        *ratelimit,
        "Transfer-Encoding",
        "Date",
    ]
    assert len(ratelimit) == 12
    assert [name for name, _ in sse_events(b"".join(chunks))] == text_stream_event_names(6)
    assert all(len(sse_events(chunk)) == 1 for chunk in chunks)
    assert tuple(replayed) == load_transcript("basic_text").events


def test_count_tokens(client: anthropic.Anthropic) -> None:
    body = body_for("How many tokens is this prompt? " * 10, system="You count.")
    counted = client.messages.count_tokens(model=MODEL, messages=body["messages"], system=body["system"])
    assert counted.input_tokens == expected_reply(body)["usage"]["input_tokens"] > 10


def test_input_token_estimate_grows_with_prompt() -> None:
    short = expected_reply(body_for("hi"))["usage"]["input_tokens"]
    long = expected_reply(body_for("hi " * 400))["usage"]["input_tokens"]
    assert 0 < short < long


# --- determinism and reply shaping --------


def test_replies_are_deterministic_per_body(client: anthropic.Anthropic) -> None:
    body = body_for("Same prompt.")
    first = client.messages.create(**body).content[0].text
    second = client.messages.create(**body).content[0].text
    other = client.messages.create(**body_for("Other prompt.")).content[0].text
    assert first == second != other
    assert request_key(body) == request_key({**body, "stream": True}) != request_key(body_for("x"))
    low, high = 20, 80
    assert low <= expected_reply(body)["usage"]["output_tokens"] <= high


def test_max_tokens_cuts_reply(client: anthropic.Anthropic) -> None:
    body = body_for("Go on at length. [[sim tokens=50]]", max_tokens=7)
    with client.messages.stream(**body) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 7
    assert message.content[0].text == expected_reply(body)["text"]


def test_stop_sequence_cuts_reply(client: anthropic.Anthropic) -> None:
    # Every reply ends its sentences with ".", so this stop sequence always strikes at the first full stop.
    body = body_for("Stop somewhere. [[sim tokens=40]]", stop_sequences=["never-appears", "."])
    with client.messages.stream(**body) as stream:
        message = stream.get_final_message()
    expected = expected_reply(body)
    assert message.stop_reason == expected["stop_reason"] == "stop_sequence"
    assert message.stop_sequence == expected["stop_sequence"] == "."
    assert message.content[0].text == expected["text"]
    assert "." not in message.content[0].text and 0 < message.usage.output_tokens < 40


def test_tokens_directive_sets_length(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**body_for("Long one [[sim tokens=300]]", max_tokens=4000))
    assert message.usage.output_tokens == 300
    assert message.stop_reason == "end_turn" and message.content[0].text.endswith(".")


# --- errors --------

STATUS_EXCEPTIONS = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.RequestTooLargeError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "exc_class", "error_type"), STATUS_EXCEPTIONS)
def test_status_directive_maps_to_sdk_exception(
    client: anthropic.Anthropic, status: int, exc_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    with pytest.raises(exc_class) as caught:
        client.messages.create(**body_for(f"Fail please [[sim status={status}]]"))
    error = caught.value
    assert error.status_code == status
    assert error.type == error_type
    assert error.request_id is not None and REQUEST_ID.match(error.request_id)
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id
    assert set(error.body) == {"type", "error", "request_id"} and error.body["type"] == "error"
    assert ("retry-after" in error.response.headers) == (status in (429, 529))


def test_unknown_path_is_404(sim: SimulatorThread) -> None:
    response = httpx2.get(f"{sim.base_url}/v1/nothing-here", headers=API_HEADERS)
    assert response.status_code == 404
    payload = response.json()
    assert payload["error"]["type"] == "not_found_error"
    assert payload["request_id"] == response.headers["request-id"]


def test_wrong_api_key_is_401_without_echoing_key() -> None:
    with running_sim(api_key="sk-right") as sim:
        secret = "sk-wrong-secret-value"
        with (
            anthropic.Anthropic(api_key=secret, base_url=sim.base_url, max_retries=0) as sdk,
            pytest.raises(anthropic.AuthenticationError) as caught,
        ):
            sdk.messages.create(**body_for("hello"))
        assert caught.value.api_message == "invalid x-api-key"
        assert secret not in caught.value.response.text
        assert all(secret not in value for value in caught.value.response.headers.values())
        assert "sk-right" not in caught.value.response.text
        assert secret not in str(sim.stats())

        missing = post_raw(sim, body_for("hello"), headers={"anthropic-version": "2023-06-01"})
        assert missing.status_code == 401
        assert missing.json()["error"] == {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        }

        bearer = {"authorization": "Bearer sk-right", "anthropic-version": "2023-06-01"}
        assert post_raw(sim, body_for("hello"), headers=bearer).status_code == 200


def test_missing_version_header_is_400(sim: SimulatorThread) -> None:
    response = post_raw(sim, body_for("hello"), headers={"x-api-key": "sk-test"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_unknown_field_is_rejected_through_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**body_for("hello"), extra_body={"promt": "typo"})
    assert caught.value.api_message == "promt: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        (body_for("x", temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (body_for("x", max_tokens="ten"), "max_tokens: Input should be a valid integer"),
        ({**body_for("x"), "messages": []}, "messages: at least one message is required"),
        (
            {**body_for("x"), "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role: Input should be",
        ),
        ({**body_for("x"), "model": ""}, "model: String should have at least 1 character"),
        (b"{not json", "The request body is not valid JSON"),
        (b"[1, 2]", "Input should be a valid dictionary"),
        (body_for("x [[sim fail=explode]]"), "[[sim]] fail kinds"),
    ],
)
def test_validation_errors(sim: SimulatorThread, payload: Any, message: str) -> None:
    response = post_raw(sim, payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(message)


# --- faults --------


def test_injected_429_carries_retry_after(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**body_for("x [[sim fail=429]]"))
    assert caught.value.response.headers["retry-after"] == "1"
    assert "retry-after-ms" not in caught.value.response.headers


def test_error_event_mid_stream(client: anthropic.Anthropic) -> None:
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(**body_for("x [[sim fail=error_event]]")) as stream,
    ):
        seen.extend(event.type for event in stream)
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    assert "content_block_delta" in seen and "message_stop" not in seen


def read_until_failure(client: anthropic.Anthropic, body: dict[str, Any]) -> tuple[list[str], Exception]:
    """Opens a stream the simulator will break off, reads it, and returns the event types seen and what
    reading raised. The stream must open (its 200 head arrives whole) and fail while its body is read.

    Which class the SDK raises for a connection lost mid-body is the SDK's business and differs within 2.x (a
    bare transport error from its HTTP library in some versions, `anthropic.APIConnectionError` in others), so
    callers assert the behaviour instead: the read fails, with no error answer and no complete message."""
    seen: list[str] = []
    with client.messages.stream(**body) as stream:
        try:
            for event in stream:
                seen.append(event.type)
        except Exception as exc:
            return seen, exc
    pytest.fail(f"the stream ended without an error after {seen}")


def test_drop_mid_stream_is_a_transport_error(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    seen, error = read_until_failure(client, body_for("x [[sim fail=drop]]"))
    # A broken connection, not an error answer: no status or error event reached the SDK.
    assert not isinstance(error, anthropic.APIStatusError), repr(error)
    assert "content_block_delta" in seen and "message_stop" not in seen
    stats = sim.stats()
    assert stats["faults"] == {"drop": 1}
    assert stats["by_status"] == {"200": 1} and stats["completed"] == 0


def test_drop_seen_raw_as_incomplete_chunked_body(sim: SimulatorThread) -> None:
    raw = raw_response(sim, body_for("x [[sim fail=drop]]", stream=True), until_closed=True)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\ntransfer-encoding: chunked" in head.lower()
    # Part of the stream, then a hang-up without the chunked body's last (zero-length) chunk.
    assert b"event: content_block_delta" in body and b"event: message_stop" not in body
    assert not body.endswith(b"\r\n0\r\n\r\n")
    assert sim.stats()["faults"] == {"drop": 1}


def test_truncate_ends_cleanly_without_message_stop(
    client: anthropic.Anthropic, sim: SimulatorThread
) -> None:
    body = body_for("x [[sim fail=truncate]]")
    with client.messages.stream(**body) as stream:
        seen = [event.type for event in stream]
        message = stream.get_final_message()
    assert "message_delta" not in seen and "message_stop" not in seen
    assert seen.count("content_block_delta") >= 1
    assert message.stop_reason is None
    assert expected_reply(body)["text"].startswith(message.content[0].text)
    assert sim.stats()["completed"] == 0


def test_stall_times_out_client(sim: SimulatorThread) -> None:
    with (
        anthropic.Anthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0, timeout=0.3) as sdk,
        pytest.raises(anthropic.APITimeoutError),
    ):
        sdk.messages.create(**body_for("x [[sim fail=stall]]"))
    assert sim.stats()["faults"] == {"stall": 1}


def test_fail_directive_sequence_counted_in_stats(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    body = body_for("Retry me [[sim fail=429,drop,error_event]]")
    key = request_key(body)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(**body, stream=True)
    seen, error = read_until_failure(client, body)
    assert not isinstance(error, anthropic.APIStatusError), repr(error)
    assert "message_stop" not in seen
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(**body) as stream:
        stream.until_done()
    with client.messages.stream(**body) as stream:
        assert stream.get_final_message().content[0].text == expected_reply(body)["text"]
    stats = sim.stats()
    assert stats["attempts_per_key"] == {key: 4}
    assert stats["completions_per_key"] == {key: 1}
    assert stats["faults"] == {"429": 1, "drop": 1, "error_event": 1}
    assert stats["by_status"] == {"200": 3, "429": 1}
    assert stats["requests"] == 4 and stats["completed"] == 1


def test_fail_first_config(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    with (
        running_sim(fail_first=2, fail_kind="529", retry_after_s=2.5, log_path=str(log)) as sim,
        anthropic.Anthropic(api_key="sk-secret-x", base_url=sim.base_url, max_retries=0) as sdk,
    ):
        body = body_for("first attempts fail")
        for _ in range(2):
            with pytest.raises(anthropic.OverloadedError) as caught:
                sdk.messages.create(**body)
            assert caught.value.response.headers["retry-after"] == "3"
        assert sdk.messages.create(**body).content[0].text == expected_reply(body)["text"]
        stats = sim.stats()
    assert stats["faults"] == {"529": 2} and stats["by_status"] == {"200": 1, "529": 2}
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    key = request_key(body)
    assert [(line["key"], line["attempt"], line["outcome"], line["status"]) for line in lines] == [
        (key, 1, "529", 529),
        (key, 2, "529", 529),
        (key, 3, "ok", 200),
    ]
    assert lines[-1]["output_tokens"] == expected_reply(body)["usage"]["output_tokens"]
    assert lines[-1]["model"] == MODEL
    assert b"sk-secret-x" not in log.read_bytes()


def test_probabilistic_faults_are_reproducible() -> None:
    bodies = [body_for(f"prompt {i}") for i in range(30)]

    def outcomes(seed: int) -> list[str]:
        with (
            running_sim(p_529=0.3, p_500=0.2, seed=seed) as sim,
            anthropic.Anthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0) as sdk,
        ):
            results = []
            for body in bodies:
                try:
                    sdk.messages.create(**body)
                    results.append("ok")
                except anthropic.APIStatusError as exc:
                    results.append(str(exc.status_code))
            return results

    first = outcomes(seed=7)
    assert first == outcomes(seed=7)
    assert {"ok", "529", "500"} <= set(first)
    assert first != outcomes(seed=8)


def test_rpm_limiter_rejects_burst_beyond_limit() -> None:
    with running_sim(rpm=3) as sim:
        statuses = []
        for i in range(4):
            response = post_raw(sim, body_for(f"burst {i}"))
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429]
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert response.headers["anthropic-ratelimit-requests-limit"] == "3"
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 20
        assert sim.stats()["rate_limited"] == 1
        sim.reset()
        assert post_raw(sim, body_for("after reset")).status_code == 200


def test_tokens_per_s_paces_deltas() -> None:
    with running_sim(tokens_per_s=100.0) as sim:
        started = time.monotonic()
        response = post_raw(sim, body_for("paced [[sim tokens=20]]", stream=True))
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.18


# --- control endpoints and lifecycle --------


def test_stats_and_reset_endpoints(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    assert sim.stats()["first_request_at"] is None
    before = time.monotonic()
    client.messages.create(**body_for("count me"))
    after = time.monotonic()
    remote = httpx2.get(f"{sim.base_url}/_sim/stats").json()
    assert remote == sim.stats()
    assert remote["requests"] == 1 and remote["completed"] == 1 and remote["by_status"] == {"200": 1}
    assert before < remote["first_request_at"] < after  # the machine's monotonic clock, as a client's
    client.messages.create(**body_for("count me too"))
    between = time.monotonic()
    client.messages.create(**body_for("and me"))
    assert sim.stats()["first_request_at"] == remote["first_request_at"]  # the first one's, kept
    times = httpx2.get(f"{sim.base_url}/_sim/request-times").json()
    assert len(times) == 3 and times[0] == remote["first_request_at"]
    assert times[1] < between < times[2] < time.monotonic()  # each request's own, in arrival order
    assert httpx2.post(f"{sim.base_url}/_sim/reset").status_code == 200
    reset = sim.stats()
    assert reset["requests"] == 0 and reset["attempts_per_key"] == {} and reset["first_request_at"] is None
    assert httpx2.get(f"{sim.base_url}/_sim/request-times").json() == []


def test_stop_is_quick_with_a_stalled_request() -> None:
    sim = SimulatorThread(SimulatorConfig(ttft_s=0, fail_first=1, fail_kind="stall"))
    sim.start()
    errors: list[BaseException] = []

    def stalled() -> None:
        try:
            post_raw(sim, body_for("hang"))
        except httpx2.HTTPError as exc:
            errors.append(exc)

    worker = threading.Thread(target=stalled)
    worker.start()
    while sim.stats()["requests"] == 0:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2.0
    worker.join(timeout=5)
    assert not worker.is_alive() and len(errors) == 1
    assert sim.stats()["faults"] == {"stall": 1}  # still readable once stopped


# `serve` runs on uvloop where it is installed, and on asyncio's own loop where it is not: here, blocked.
WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None; "


@pytest.mark.parametrize("prelude", ["", WITHOUT_UVLOOP], ids=["uvloop", "asyncio"])
def test_serve_prints_url_and_stops_on_sigterm(prelude: str) -> None:
    code = "from batchstream.simulator import SimulatorConfig, serve; serve(SimulatorConfig(ttft_s=0))"
    code = prelude + code
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"batchstream simulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        response = httpx2.post(f"{match.group(1)}/v1/messages", json=body_for("hi"), headers=API_HEADERS)
        assert response.json()["content"][0]["text"] == expected_reply(body_for("hi"))["text"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_config_validation_and_options() -> None:
    with pytest.raises(ValueError, match="fail_kind"):
        SimulatorConfig(fail_kind="boom")
    with pytest.raises(ValueError, match="add up"):
        SimulatorConfig(p_429=0.6, p_529=0.6)
    with pytest.raises(ValueError, match="reply_tokens"):
        SimulatorConfig(reply_tokens=(10, 5))
    config = SimulatorConfig.from_options(reply_tokens="5,9", rpm="60", p_drop="0.25", api_key=None, port="0")
    assert (config.reply_tokens, config.rpm, config.p_drop, config.api_key) == ((5, 9), 60, 0.25, None)
    assert SimulatorConfig.from_options(rpm="none", log_path="").rpm is None
    assert set(FAULT_KINDS) == {"429", "529", "500", "error_event", "drop", "truncate", "stall", "400"}


# --- the shapes the SDK's recorded streams cover (tests/sdk_fixtures) --------

WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "f"]}},
    },
}
RECORDED_SHAPES = {
    "fallback": body_for("Hi [[sim fallback=claude-sonnet-4-5 tokens=5]]", model="claude-opus-4-7"),
    "compaction": body_for("Hi [[sim compaction tokens=5]]", model="claude-opus-4-7"),
    "unknown_event": body_for("Hi [[sim unknown_event tokens=5]]", model="claude-opus-4-7"),
    "cut_tool": body_for("Weather? [[sim cut_tool tokens=5]]", model="claude-opus-4-7", tools=[WEATHER_TOOL]),
}


def test_recorded_shapes_on_the_wire(sim: SimulatorThread) -> None:
    """Each directive's stream has the shape of the SDK's recording of it."""
    wire = {
        name: sse_events(post_raw(sim, {**body, "stream": True}).content)
        for name, body in RECORDED_SHAPES.items()
    }
    fallback = wire["fallback"]
    assert fallback[0][1]["message"]["model"] == "claude-opus-4-7"  # the model asked for opens the stream
    assert fallback[1][1]["content_block"] == {
        "type": "fallback",
        "from": {"model": "claude-opus-4-7"},
        "to": {"model": "claude-sonnet-4-5"},
        "trigger": {"type": "refusal", "category": None},
    }
    assert [name for name, _ in fallback[2:4]] == ["ping", "content_block_stop"]
    compaction = wire["compaction"]
    assert compaction[1][1]["content_block"] == {
        "type": "compaction",
        "content": None,
        "encrypted_content": None,
    }
    assert compaction[3][1]["delta"]["type"] == "compaction_delta"
    unknown = [(name, data["type"]) for name, data in wire["unknown_event"]]
    assert unknown[0] == unknown[4] == ("message", "future_event")  # before message_start, and mid-stream
    assert unknown[1:4] == [
        ("message_start", "message_start"),
        *[(n, n) for n in ("content_block_start", "ping")],
    ]
    cut = wire["cut_tool"]
    assert [data.get("index") for name, data in cut if name == "content_block_stop"] == [0]  # not the tool's
    assert [name for name, _ in cut[-3:]] == ["content_block_delta", "message_delta", "message_stop"]
    assert cut[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_recorded_shapes_through_the_sdk_beta_helper(client: anthropic.Anthropic) -> None:
    for name, body in RECORDED_SHAPES.items():
        with client.beta.messages.stream(**body) as stream:
            message = stream.get_final_message().to_dict(mode="json")
        want = expected_reply(body)
        assert (message["content"], message["model"]) == (want["content"], want["model"]), name
        assert (message["stop_reason"], message["usage"]) == (want["stop_reason"], want["usage"]), name


def test_recorded_shapes_through_batchstream(tmp_path: Path) -> None:
    """The result lines: relabelled and priced for the fallback model, compaction content kept, the unknown
    event ignored, and a tool call cut by max_tokens kept with its input as far as it got."""
    lines = [{"id": name, "params": body} for name, body in RECORDED_SHAPES.items()]
    write_jsonl(tmp_path / "in.jsonl", lines)
    done = run_cli("run", "in.jsonl", "--simulate", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    pricer = Pricer()
    for name, body in RECORDED_SHAPES.items():
        want = expected_reply(body)
        row = {k: v for k, v in rows[name].items() if k not in VOLATILE}
        content = want["content"]
        calls = [
            {k: block[k] for k in ("id", "name", "input")} for block in content if block["type"] == "tool_use"
        ]
        assert row == {
            "id": name,
            "status": "ok",
            "text": want["text"],
            "stop_reason": want["stop_reason"],
            "stop_sequence": None,
            "model": want["model"],
            "usage": want["usage"],
            "cost_usd": pricer.cost(want["model"], want["usage"]),
            "attempts": 1,
            "retries": {},
            "error": None,
            **({"tool_calls": calls} if calls else {}),
            "content": content,
        }, name
    assert rows["fallback"]["model"] == "claude-sonnet-4-5"
    usage = rows["fallback"]["usage"]
    assert rows["fallback"]["cost_usd"] != pricer.cost("claude-opus-4-7", usage)
    compaction = rows["compaction"]["content"][0]
    assert compaction["type"] == "compaction" and compaction["content"] and compaction["encrypted_content"]
    assert rows["unknown_event"]["usage"]["input_tokens"] != 99
    assert rows["cut_tool"]["stop_reason"] == "max_tokens"
    assert list(rows["cut_tool"]["tool_calls"][0]["input"]) == ["location"]  # the cut "unit" key left out


VOLATILE = ("latency_s", "ttft_s", "request_id", "request_hash", "line_hash")


def test_recorded_shape_directives_are_checked(sim: SimulatorThread) -> None:
    assert post_raw(sim, body_for("[[sim cut_tool]]")).status_code == 400  # no tool to call
    assert post_raw(sim, body_for("[[sim fallback=]]")).status_code == 400


# --- API versions: what each anthropic-version accepts, per model --------


V2026 = {"x-api-key": "sk-test", "anthropic-version": "2026-10-21"}
DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "D"}}
CITED = {"type": "text", "text": "T", "citations": [{"type": "char_location", "cited_text": "D"}]}


def api_error(response: httpx2.Response) -> str:
    """The message of a 400, after checking the whole error body has the service's shape."""
    assert response.status_code == 400
    answer = response.json()
    assert set(answer) == {"type", "error", "request_id"}
    assert answer["type"] == "error" and REQUEST_ID.match(answer["request_id"])
    assert answer["request_id"] == response.headers["request-id"]
    assert set(answer["error"]) == {"type", "message"}
    assert answer["error"]["type"] == "invalid_request_error"
    return str(answer["error"]["message"])


@pytest.mark.parametrize("model", [MODEL, "claude-sonnet-4-6", "claude-sonnet-5-5"])
@pytest.mark.parametrize(
    ("key", "value"), [("temperature", 0), ("temperature", 1), ("top_p", 1), ("top_k", 0)]
)
def test_api_version_2026_10_21_refuses_sampling_parameters_at_any_value(
    sim: SimulatorThread, model: str, key: str, value: float
) -> None:
    response = post_raw(sim, {**body_for("x"), "model": model, key: value}, headers=V2026)
    assert api_error(response) == f"{key}: Extra inputs are not permitted"


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", MODEL])
def test_api_version_2023_06_01_takes_sampling_parameters_for_older_models(
    sim: SimulatorThread, model: str
) -> None:
    payload = {**body_for("x"), "model": model, "temperature": 0.2, "top_p": 0.9, "top_k": 5}
    assert post_raw(sim, payload).status_code == 200


@pytest.mark.parametrize(
    "model", ["claude-sonnet-5-5", "claude-opus-5", "claude-fable-5-2", "claude-opus-4-7", "claude-opus-4-8"]
)
def test_newer_models_refuse_sampling_parameters_on_2023_06_01_too(sim: SimulatorThread, model: str) -> None:
    for key, value in (("temperature", 0.5), ("temperature", 0), ("top_p", 1), ("top_k", 0)):
        response = post_raw(sim, {**body_for("x"), "model": model, key: value})
        assert api_error(response) == f"`{key}` is deprecated for this model."
    # A temperature of exactly 1 (the default) still passes; out-of-range values fail the range check first.
    assert post_raw(sim, {**body_for("x"), "model": model, "temperature": 1}).status_code == 200
    too_hot = post_raw(sim, {**body_for("x"), "model": model, "temperature": 1.5})
    assert api_error(too_hot) == "temperature: Input should be less than or equal to 1"


def test_api_version_2026_10_21_refuses_assistant_documents_and_user_citations(sim: SimulatorThread) -> None:
    assistant_document = {
        **body_for("x"),
        "messages": [
            {"role": "user", "content": "Read this."},
            {"role": "assistant", "content": [{"type": "text", "text": "Ok."}, DOCUMENT]},
            {"role": "user", "content": "And?"},
        ],
    }
    user_citations = {
        **body_for("x"),
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "citations": []}, CITED]}],
    }
    fine = {
        **body_for("x"),
        "messages": [
            {"role": "user", "content": [DOCUMENT, {"type": "text", "text": "a", "citations": None}]},
            {"role": "assistant", "content": [CITED]},
            {"role": "user", "content": "More?"},
        ],
    }
    assert api_error(post_raw(sim, assistant_document, headers=V2026)) == (
        "messages.1.content.1.type: document blocks are not permitted in assistant messages"
    )
    assert api_error(post_raw(sim, user_citations, headers=V2026)) == (
        "messages.0.content.1.citations: citations are not permitted on text blocks in user messages"
    )
    assert post_raw(sim, fine, headers=V2026).status_code == 200
    # count_tokens reads the same messages the same way.
    count_body = {key: value for key, value in assistant_document.items() if key != "max_tokens"}
    counted = httpx2.post(
        f"{sim.base_url}/v1/messages/count_tokens", content=orjson.dumps(count_body), headers=V2026
    )
    assert (
        api_error(counted)
        == "messages.1.content.1.type: document blocks are not permitted in assistant messages"
    )
    # 2023-06-01 takes both.
    assert post_raw(sim, assistant_document).status_code == 200
    assert post_raw(sim, user_citations).status_code == 200
    assert sim.stats()["api_versions"] == {"2023-06-01": 2, "2026-10-21": 4}


def test_the_sdk_meets_the_same_400_a_user_would(sim: SimulatorThread) -> None:
    """The SDK as batchstream drives it (extra_body), with its default version and with 2023-06-01."""
    with anthropic.Anthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.create(**body_for("x"), extra_body={"temperature": 0})
        assert caught.value.status_code == 400
        assert caught.value.api_message == "temperature: Extra inputs are not permitted"
        assert caught.value.body == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "temperature: Extra inputs are not permitted",
            },
            "request_id": caught.value.request_id,
        }
    legacy_headers = {"anthropic-version": "2023-06-01"}
    with anthropic.Anthropic(
        api_key="sk-test", base_url=sim.base_url, max_retries=0, default_headers=legacy_headers
    ) as sdk:
        reply = sdk.messages.create(
            **{**body_for("x"), "model": "claude-sonnet-4-6"}, extra_body={"temperature": 0}
        )
        assert reply.content
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.create(**{**body_for("x"), "model": "claude-opus-5-5"}, extra_body={"top_k": 5})
        assert caught.value.api_message == "`top_k` is deprecated for this model."
    assert sim.stats()["api_versions"] == {"2023-06-01": 2, "2026-10-21": 1}
