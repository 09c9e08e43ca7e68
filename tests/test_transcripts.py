"""Recorded streams from the API reference, replayed byte for byte through the real CLI.

Each `transcripts/NAME.sse` has a `NAME.json` with what it must assemble into. The stored JSON is checked
against the SDK's own accumulator too, so a hand edit to either file cannot make the test vacuous.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.pricing import Pricer
from batchstream.simulator import SimulatorThread, expected_reply
from batchstream.simulator.transcripts import TRANSCRIPT_DIR, load_transcript, transcript_names
from batchstream.transport.sse import SSEDecoder

API_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
NAMES = sorted(transcript_names())
KINDS = {
    "basic_text": {"text"},
    "extended_thinking": {"thinking", "text"},
    "tool_use": {"text", "tool_use"},
    "web_search": {"text", "server_tool_use", "web_search_tool_result"},
    "citations": {"text"},
    "redacted_thinking": {"thinking", "redacted_thinking", "text"},
}


def body(name: str, stream: bool = False) -> dict[str, Any]:
    prompt = f"Replay it. [[sim transcript={name}]]"
    request = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
    }
    return {**request, "stream": True} if stream else request


def post(simulator: SimulatorThread, request: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{simulator.base_url}/v1/messages", content=orjson.dumps(request), headers=API_HEADERS, timeout=10
    )


def test_one_transcript_per_kind_and_an_error() -> None:
    assert set(NAMES) == {*KINDS, "error_mid_stream"}
    for name, kinds in KINDS.items():
        assert {block["type"] for block in load_transcript(name).outcome["content"]} == kinds
    assert load_transcript("error_mid_stream").outcome == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    for name in ("citations", "web_search"):
        assert any(block.get("citations") for block in load_transcript(name).outcome["content"])


@pytest.mark.parametrize("name", NAMES)
def test_stored_outcome_is_what_the_sdk_assembles(name: str) -> None:
    events = SSEDecoder().feed((TRANSCRIPT_DIR / f"{name}.sse").read_bytes())
    assert any(event["type"] == "ping" for event in events)
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "error":
            assert load_transcript(name).outcome == event
            return
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    assert snapshot.to_dict(mode="json") == load_transcript(name).outcome


@pytest.mark.parametrize("name", NAMES)
def test_replay_is_byte_exact(simulator: SimulatorThread, name: str) -> None:
    response = post(simulator, body(name, stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == (TRANSCRIPT_DIR / f"{name}.sse").read_bytes()


def test_non_streaming_request_gets_the_final_message_or_the_error_status(simulator: SimulatorThread) -> None:
    response = post(simulator, body("tool_use"))
    assert response.status_code == 200
    assert response.json() == load_transcript("tool_use").outcome
    failed = post(simulator, body("error_mid_stream"))
    assert failed.status_code == 529
    assert failed.json()["error"]["type"] == "overloaded_error"


def test_unknown_transcript_is_a_400(simulator: SimulatorThread) -> None:
    response = post(simulator, body("no_such_transcript"))
    assert response.status_code == 400
    assert "transcript='no_such_transcript' is not one of" in response.json()["error"]["message"]


def test_every_transcript_through_the_cli(
    tmp_path: Path, simulator_factory: Callable[..., SimulatorThread]
) -> None:
    simulator = simulator_factory()
    write_jsonl(tmp_path / "in.jsonl", [{"id": name, "params": body(name)} for name in NAMES])

    done = run_cli(
        "run",
        "in.jsonl",
        "-q",
        "--max-attempts",
        "1",
        cwd=tmp_path,
        base_url=simulator.base_url,
    )

    assert done.returncode == 1, done.stderr  # the error transcript's item failed; the others did not
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    assert sorted(rows) == NAMES
    pricer = Pricer()
    for name in KINDS:
        row, message, want = rows[name], load_transcript(name).outcome, expected_reply(body(name))
        assert row["status"] == "ok", (name, row["error"])
        assert row["content"] == message["content"] == want["content"], name
        assert (
            row["text"]
            == want["text"]
            == "".join(b["text"] for b in message["content"] if b["type"] == "text")
        )
        assert row["usage"] == message["usage"], name
        assert (row["stop_reason"], row["stop_sequence"]) == (
            message["stop_reason"],
            message["stop_sequence"],
        )
        assert row["model"] == message["model"]
        assert row["cost_usd"] == pricer.cost(row["model"], row["usage"])
    assert rows["extended_thinking"]["thinking"].endswith("10,800 + 1,350 + 81 = 12,231")
    assert rows["tool_use"]["tool_calls"] == [
        {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "fahrenheit"},
        }
    ]
    assert rows["web_search"]["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert rows["web_search"]["usage"]["input_tokens"] == 10682  # message_delta's count replaced the start's
    failed, want_error = rows["error_mid_stream"], expected_reply(body("error_mid_stream"))["error"]
    assert failed["status"] == "error"
    assert (failed["error"]["type"], failed["error"]["message"]) == (
        want_error["type"],
        want_error["message"],
    )
