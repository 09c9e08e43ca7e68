"""Every kind of content a stream can carry, captured exactly: thinking, redacted thinking, tool use (long
inputs in thousands of fragments), citations, web search, refusals and other stop reasons, cache and
server-tool usage, betas.

Two oracles: the simulator's `expected_reply` for what the API's final message holds, and the SDK's own
`accumulate_event` for how a stream folds into it (fed the very same events as `MessageAccumulator`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.errors import StreamProtocolError
from batchstream.inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from batchstream.pricing import Pricer
from batchstream.simulator import SimulatorConfig, SimulatorThread, expected_reply, request_key
from batchstream.transport.accumulate import MessageAccumulator
from batchstream.transport.sse import SSEDecoder

API_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
LONG_INPUT_BYTES = 135_000

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "detail": {"type": ["number", "null"]},
            "hourly": {"type": "boolean"},
            "stations": {
                "type": "array",
                "items": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
        },
        "required": ["location"],
    },
}
NOTE_TOOL = {
    "name": "save_note",
    "description": "Save a long note",
    "input_schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
    },
}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
TEXT_DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green. The sky is blue."},
    "title": "Example Document",
    "citations": {"enabled": True},
}
CONTENT_DOCUMENT = {
    "type": "document",
    "source": {"type": "content", "content": [{"type": "text", "text": "These are important findings."}]},
    "title": "Custom Content Document",
}


def body(content: str | list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    """A complete request body, as batchstream sends it for a line with these `params`."""
    return {
        "model": DEFAULT_MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": content}],
        **params,
    }


def cached(text: str, ttl: str | None = None) -> dict[str, Any]:
    control = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {"type": "text", "text": text, "cache_control": control}


# One body per kind; each is checked for really having its kind in `test_every_kind_is_really_exercised`.
KINDS: dict[str, dict[str, Any]] = {
    "plain": body("Tell me about rivers."),
    "thinking": body("What is 27 * 453?", thinking={"type": "enabled", "budget_tokens": 2000}),
    "thinking-omitted": body("Think quietly.", thinking={"type": "adaptive", "display": "omitted"}),
    "redacted": body("Careful now. [[sim redacted_thinking]]", thinking={"type": "adaptive"}),
    "tool-auto": body("What is the weather in Paris?", tools=[WEATHER_TOOL]),
    "tool-forced": body("Weather, please.", tools=[WEATHER_TOOL], tool_choice={"type": "any"}),
    "tool-long": body(
        f"Write it all down. [[sim tool_input_bytes={LONG_INPUT_BYTES}]]",
        tools=[WEATHER_TOOL, NOTE_TOOL],
        tool_choice={"type": "tool", "name": "save_note"},
    ),
    "tool-none": body("No tools now.", tools=[WEATHER_TOOL], tool_choice={"type": "none"}),
    "thinking-tool": body(
        "Think, then call.", tools=[WEATHER_TOOL], thinking={"type": "enabled", "budget_tokens": 1024}
    ),
    "citations": body([TEXT_DOCUMENT, {"type": "text", "text": "What colour is the grass?"}]),
    "citations-directive": body([CONTENT_DOCUMENT, {"type": "text", "text": "Findings? [[sim citations]]"}]),
    "web-search": body("What is the weather in New York today?", tools=[WEB_SEARCH]),
    "cache": body(
        [
            cached("Shared context. " * 60, ttl="1h"),
            cached("More context. " * 40),
            {"type": "text", "text": "Q?"},
        ],
        system=[cached("You are terse. " * 300)],
    ),
    "cache-read": body(
        [cached("Shared context. " * 60), {"type": "text", "text": "Again? [[sim cache_read=1200]]"}],
        system=[cached("You are brief. " * 300, ttl="1h")],
    ),
    "cache-auto": body("Automatic caching. " * 250, cache_control={"type": "ephemeral"}),
    "priority": body("Fast lane. [[sim service_tier=priority]]", service_tier="auto"),
    "pause-turn": body("Search a lot. [[sim stop=pause_turn]]", tools=[WEB_SEARCH]),
    "refusal": body("Something bad. [[sim stop=refusal]]"),
    "max-tokens": body("Go on at length. [[sim tokens=60]]", max_tokens=9),
    "max-tokens-thinking": body(
        "Think long. [[sim tokens=60]]", max_tokens=30, thinking={"type": "enabled", "budget_tokens": 20}
    ),
    "stop-sequence": body("Stop at a full stop. [[sim tokens=40]]", stop_sequences=["."]),
}
BETA_KINDS = {"beta-thinking": body("Through the beta client.", thinking={"type": "adaptive"})}
BETA_LINE = ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]


# --- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(ttft_s=0)) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorThread) -> SimulatorThread:
    shared_sim.reset()
    return shared_sim


def stream_events(sim: SimulatorThread, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of one streamed reply, decoded by batchstream's own SSE decoder."""
    response = httpx2.post(
        f"{sim.base_url}/v1/messages",
        content=orjson.dumps({**request, "stream": True}),
        headers=API_HEADERS,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    decoder = SSEDecoder()
    events = decoder.feed(response.content)
    assert not decoder.pending()
    return events


def ours(events: list[dict[str, Any]]) -> dict[str, Any]:
    accumulator = MessageAccumulator()
    for event in events:
        accumulator.feed(event)
    assert accumulator.complete
    return accumulator.message()


def sdks(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The SDK's own assembly (what `messages.stream().get_final_message()` returns), as a dict."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    return snapshot.to_dict(mode="json")


def record_fields(content: list[dict[str, Any]]) -> dict[str, Any]:
    """What a result line derives from `content` besides `text`: `thinking` and `tool_calls`, when any."""
    fields: dict[str, Any] = {}
    thinking = [block["thinking"] for block in content if block["type"] == "thinking"]
    if thinking:
        fields["thinking"] = "".join(thinking)
    calls = [
        {"id": block["id"], "name": block["name"], "input": block["input"]}
        for block in content
        if block["type"] == "tool_use"
    ]
    if calls:
        fields["tool_calls"] = calls
    return fields


def line(item_id: str, request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "params": request, **extra}


# --- the simulator's replies --------------------------------------------------------------------------------


def test_every_kind_is_really_exercised() -> None:
    """Guards the batch below: each body must produce what its name says, or the CLI test proves less."""
    want = {name: expected_reply(request) for name, request in {**KINDS, **BETA_KINDS}.items()}
    types = {name: [block["type"] for block in reply["content"]] for name, reply in want.items()}
    assert types["plain"] == ["text"]
    assert types["thinking"] == ["thinking", "text"]
    assert (
        types["thinking-omitted"] == ["thinking", "text"]
        and want["thinking-omitted"]["content"][0]["thinking"] == ""
    )
    assert types["redacted"] == ["redacted_thinking", "thinking", "text"]
    assert types["tool-auto"] == ["text", "tool_use"]
    assert types["tool-forced"] == ["tool_use"]
    assert types["tool-long"] == ["tool_use"]
    assert types["tool-none"] == ["text"]
    assert types["thinking-tool"] == ["thinking", "text", "tool_use"]
    assert types["citations"] == ["text", "text"]
    assert types["web-search"] == ["server_tool_use", "web_search_tool_result", "text", "text"]
    citation = {name: want[name]["content"][-1]["citations"][0] for name in ("citations", "web-search")}
    citation["citations-directive"] = want["citations-directive"]["content"][-1]["citations"][0]
    assert citation["citations"] == {
        "type": "char_location",
        "cited_text": "The grass is green.",
        "document_index": 0,
        "document_title": "Example Document",
        "start_char_index": 0,
        "end_char_index": 19,
    }
    assert citation["citations-directive"]["type"] == "content_block_location"
    assert citation["citations-directive"]["cited_text"] == "These are important findings."
    assert citation["web-search"]["type"] == "web_search_result_location"
    assert {name: want[name]["stop_reason"] for name in KINDS if want[name]["stop_reason"] != "end_turn"} == {
        "tool-auto": "tool_use",
        "tool-forced": "tool_use",
        "tool-long": "tool_use",
        "thinking-tool": "tool_use",
        "pause-turn": "pause_turn",
        "refusal": "refusal",
        "max-tokens": "max_tokens",
        "max-tokens-thinking": "max_tokens",
        "stop-sequence": "stop_sequence",
    }
    assert want["refusal"]["stop_details"]["type"] == "refusal"
    assert want["stop-sequence"]["stop_sequence"] == "."
    usage = {name: reply["usage"] for name, reply in want.items()}
    assert usage["web-search"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
    assert usage["cache"]["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert usage["cache"]["cache_creation"]["ephemeral_5m_input_tokens"] > 0
    assert usage["cache"]["cache_read_input_tokens"] == 0
    assert usage["cache-read"]["cache_read_input_tokens"] == 1200
    assert usage["cache-auto"]["cache_creation"]["ephemeral_5m_input_tokens"] > 0
    assert usage["priority"]["service_tier"] == "priority"
    assert "cache_creation" not in usage["plain"] and "server_tool_use" not in usage["plain"]


def test_cache_split_follows_breakpoints_and_ttl() -> None:
    request = KINDS["cache"]
    usage = expected_reply(request)["usage"]
    split = usage["cache_creation"]
    assert (
        usage["cache_creation_input_tokens"]
        == split["ephemeral_5m_input_tokens"] + split["ephemeral_1h_input_tokens"]
    )
    no_cache = expected_reply(
        {
            **request,
            "system": [{"type": "text", "text": "You are terse. " * 300}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": b["text"]} for b in request["messages"][0]["content"]
                    ],
                }
            ],
        }
    )["usage"]
    # Caching moves tokens between buckets; the prompt's total stays the same.
    total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    assert total == no_cache["input_tokens"]
    read = expected_reply(KINDS["cache-read"])["usage"]
    # The read is served from the front of the prefix: here the system prompt's 1h entry and then some.
    assert read["cache_read_input_tokens"] == 1200
    assert read["cache_creation"]["ephemeral_1h_input_tokens"] == 0


def test_long_tool_input_streams_in_thousands_of_fragments(sim: SimulatorThread) -> None:
    request = KINDS["tool-long"]
    events = stream_events(sim, request)
    fragments = [
        event["delta"]["partial_json"]
        for event in events
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta"
    ]
    assert fragments[0] == ""  # as the API sends
    assert len(fragments) > 1000 and max(map(len, fragments)) <= 24
    want = expected_reply(request)["content"][0]["input"]
    assert orjson.loads("".join(fragments)) == want
    assert len("".join(fragments).encode()) >= LONG_INPUT_BYTES
    text = "".join(value for value in want.values() if isinstance(value, str))
    assert all(awkward in text for awkward in ('"quoted"', "back\\slash", "\n", "café", "🙂"))


def test_tool_input_follows_the_schema() -> None:
    call = expected_reply(KINDS["tool-forced"])["content"][0]
    assert call["id"].startswith("toolu_01") and len(call["id"]) == len("toolu_01T1x1fJ34qAmk2tNTrN7Up6")
    value = call["input"]
    assert set(value) == set(WEATHER_TOOL["input_schema"]["properties"])
    assert value["unit"] in ("celsius", "fahrenheit")
    assert 1 <= value["days"] <= 7 and isinstance(value["hourly"], bool)
    assert isinstance(value["detail"], float) and all(set(s) == {"id"} for s in value["stations"])


def test_raw_events_have_the_api_shapes(sim: SimulatorThread) -> None:
    """Spot-check the wire against the API reference: block starts, deltas, message_delta."""
    events = stream_events(sim, KINDS["thinking-tool"])
    starts = [event["content_block"] for event in events if event["type"] == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[1] == {"type": "text", "text": ""}
    assert starts[2]["type"] == "tool_use" and starts[2]["input"] == {}
    deltas = [
        (event["index"], event["delta"]["type"]) for event in events if event["type"] == "content_block_delta"
    ]
    thinking = [kind for index, kind in deltas if index == 0]
    assert thinking[-1] == "signature_delta" and set(thinking[:-1]) == {"thinking_delta"}
    assert {kind for index, kind in deltas if index == 2} == {"input_json_delta"}
    assert [event["type"] for event in events][-2:] == ["message_delta", "message_stop"]
    refusal = stream_events(sim, KINDS["refusal"])[-2]
    assert refusal["delta"]["stop_details"] == expected_reply(KINDS["refusal"])["stop_details"]
    search = stream_events(sim, KINDS["web-search"])
    result = next(e for e in search if e["type"] == "content_block_start" and e["index"] == 1)
    assert [r["type"] for r in result["content_block"]["content"]] == ["web_search_result"] * 3
    # The search's results count as input: message_delta restates input_tokens, larger than at the start.
    assert search[-2]["usage"]["input_tokens"] > search[0]["message"]["usage"]["input_tokens"]


@pytest.mark.parametrize("name", sorted({**KINDS, **BETA_KINDS}))
def test_non_streaming_reply_is_the_same_message(client: anthropic.Anthropic, name: str) -> None:
    request = {**KINDS, **BETA_KINDS}[name]
    message = client.messages.create(**request)
    want = expected_reply(request)
    assert message.to_dict()["content"] == want["content"]
    assert message.to_dict()["usage"] == want["usage"]
    assert (message.stop_reason, message.stop_sequence) == (want["stop_reason"], want["stop_sequence"])


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="sk-test", base_url=sim.base_url, max_retries=0) as sdk:
        yield sdk


# --- MessageAccumulator against the SDK's own accumulator ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(KINDS))
def test_accumulator_matches_sdk_and_expected_reply(sim: SimulatorThread, name: str) -> None:
    request = KINDS[name]
    events = stream_events(sim, request)
    mine, theirs = ours(events), sdks(events)
    # Block by block, key by key: what lands in a result line's `content`.
    assert mine["content"] == theirs["content"] == expected_reply(request)["content"]
    assert mine["usage"] == theirs["usage"] == expected_reply(request)["usage"]
    # And the whole message, through the API's own model (a missing optional field reads as null).
    assert Message.model_validate(mine).model_dump() == Message.model_validate(theirs).model_dump()


def fold(*events: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
             "model": "m", "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": 3, "output_tokens": 1}}}  # fmt: skip
    stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 5}}  # fmt: skip
    stream = [start, *events, stop, {"type": "message_stop"}]
    return ours(stream), sdks(stream)


def block(index: int, start: dict[str, Any], *deltas: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def test_tool_input_integers_beyond_64_bits_stay_exact() -> None:
    big = 123456789012345678901234567890
    json_text = f'{{"id": {big}, "neg": -9223372036854775809, "f": 0.1}}'
    pieces = [
        {"type": "input_json_delta", "partial_json": json_text[i : i + 7]}
        for i in range(0, len(json_text), 7)
    ]
    mine, theirs = fold(*block(0, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}, *pieces))
    assert mine["content"] == theirs["content"]
    assert mine["content"][0]["input"] == {"id": big, "neg": -9223372036854775809, "f": 0.1}


def test_citations_after_a_null_citations_field() -> None:
    citation = {"type": "char_location", "cited_text": "x", "document_index": 0, "document_title": None,
                "start_char_index": 0, "end_char_index": 1}  # fmt: skip
    events = block(
        0,
        {"type": "text", "text": "", "citations": None},
        {"type": "text_delta", "text": "x"},
        {"type": "citations_delta", "citation": citation},
        {"type": "citations_delta", "citation": citation},
    )
    mine, theirs = fold(*events)
    assert (
        mine["content"] == theirs["content"] == [{"type": "text", "text": "x", "citations": [citation] * 2}]
    )


def test_tool_block_with_only_an_empty_fragment_keeps_its_start_input() -> None:
    events = block(0, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}, {
        "type": "input_json_delta", "partial_json": ""})  # fmt: skip
    mine, theirs = fold(*events)
    assert (
        mine["content"]
        == theirs["content"]
        == [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]
    )


def test_message_delta_null_container_keeps_the_earlier_one() -> None:
    stream = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m",
         "content": [], "stop_reason": None, "stop_sequence": None, "container": {"id": "c1", "expires_at":
         "2026-01-01T00:00:00Z"}, "usage": {"input_tokens": 1, "output_tokens": 1}}},
        {"type": "message_delta", "usage": {"output_tokens": 2, "input_tokens": None},
         "delta": {"stop_reason": "end_turn", "stop_sequence": None, "container": None}},
        {"type": "message_stop"},
    ]  # fmt: skip
    mine, theirs = ours(stream), sdks(stream)
    assert mine["container"] == theirs["container"] == {"id": "c1", "expires_at": "2026-01-01T00:00:00Z"}
    assert mine["usage"] == theirs["usage"] == {"input_tokens": 1, "output_tokens": 2}


def test_truncated_tool_input_is_a_protocol_error() -> None:
    """A stopped block must hold whole JSON (one cut by max_tokens, never stopped, is parsed partially)."""
    events = block(0, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}, {
        "type": "input_json_delta", "partial_json": '{"a": 1'})  # fmt: skip
    accumulator = MessageAccumulator()
    accumulator.feed({"type": "message_start", "message": {"id": "m", "content": [], "usage": {}}})
    with pytest.raises(StreamProtocolError, match="content block 0 input is not valid JSON"):
        for event in events:
            accumulator.feed(event)


# --- the real CLI -------------------------------------------------------------------------------------------


def test_mixed_batch_through_the_cli(
    tmp_path: Path, simulator_factory: Callable[..., SimulatorThread]
) -> None:
    simulator = simulator_factory()
    lines = [line(name, request) for name, request in KINDS.items()]
    lines += [line(name, request, betas=BETA_LINE) for name, request in BETA_KINDS.items()]
    write_jsonl(tmp_path / "in.jsonl", lines)

    done = run_cli("run", "in.jsonl", "-q", cwd=tmp_path, base_url=simulator.base_url)

    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    sent = {**KINDS, **BETA_KINDS}
    assert sorted(rows) == sorted(sent)
    pricer = Pricer()
    for name, request in sent.items():
        row, want = rows[name], expected_reply(request)
        assert row["status"] == "ok", (name, row["error"])
        assert row["content"] == want["content"], name
        assert row["text"] == want["text"], name
        for field in ("thinking", "tool_calls"):
            assert row.get(field) == record_fields(want["content"]).get(field), (name, field)
        assert (row["stop_reason"], row["stop_sequence"]) == (want["stop_reason"], want["stop_sequence"]), (
            name
        )
        assert row["usage"] == want["usage"], name  # every field kept: cache split, server_tool_use, tier
        assert row["model"] == request["model"]
        assert row["cost_usd"] == pricer.cost(row["model"], row["usage"]) is not None, name
    long_call = rows["tool-long"]["tool_calls"][0]
    assert len(orjson.dumps(long_call["input"])) >= LONG_INPUT_BYTES
    stats = simulator.stats()
    # Each body arrived exactly as the line gave it (the key is a hash of the body), once.
    assert stats["completions_per_key"] == {request_key(request): 1 for request in sent.values()}
    assert stats["betas"] == dict.fromkeys(sorted(BETA_LINE), 1)


def test_no_content_and_beta_option(
    tmp_path: Path, simulator_factory: Callable[..., SimulatorThread]
) -> None:
    simulator = simulator_factory()
    names = ("thinking-tool", "web-search", "citations")
    write_jsonl(tmp_path / "in.jsonl", [line(name, KINDS[name]) for name in names])

    done = run_cli(
        "run", "in.jsonl", "-q", "--no-content", "--beta", "sim-beta-2025-01-01", cwd=tmp_path,
        base_url=simulator.base_url,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    for name in names:
        want = expected_reply(KINDS[name])
        assert "content" not in rows[name]
        assert rows[name]["text"] == want["text"]
        assert {f: rows[name].get(f) for f in ("thinking", "tool_calls")} == {
            f: record_fields(want["content"]).get(f) for f in ("thinking", "tool_calls")
        }
    assert simulator.stats()["betas"] == {"sim-beta-2025-01-01": len(names)}


def test_beta_header_and_query_are_accepted(sim: SimulatorThread) -> None:
    """Older SDKs add `?beta=true` to beta calls; the installed one sends only the header."""
    response = httpx2.post(
        f"{sim.base_url}/v1/messages?beta=true",
        content=orjson.dumps(KINDS["plain"]),
        headers={**API_HEADERS, "anthropic-beta": "a-2025-01-01, b-2025-02-02"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["content"] == expected_reply(KINDS["plain"])["content"]
    assert sim.stats()["betas"] == {"a-2025-01-01": 1, "b-2025-02-02": 1}


def test_citations_directive_without_a_document_is_a_400(sim: SimulatorThread) -> None:
    response = httpx2.post(
        f"{sim.base_url}/v1/messages",
        content=orjson.dumps(body("Cite something. [[sim citations]]")),
        headers=API_HEADERS,
        timeout=10,
    )
    assert response.status_code == 400
    assert "citations needs a document block" in response.json()["error"]["message"]
