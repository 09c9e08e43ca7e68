"""The result line: its schema in one place, and how it is built from an item's outcome.

Every reader of results files (resume, summary, merge, markdown) reads this one shape. The `TypedDict`
documents it for the type checker and costs nothing at run time: a line is still a plain dict.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from .inputs import Request
from .pricing import Pricer
from .transport import Sent
from .transport.failures import Failure


class ErrorInfo(TypedDict):
    type: str  # the API's own error type, or ours (connection_error, timeout, internal_error, ...)
    message: str
    status: int | None  # the HTTP status, when there was one


class ToolCall(TypedDict):
    id: str | None
    name: str | None
    input: Any


class ResultRecord(TypedDict):
    id: str
    status: Literal["ok", "error"]
    text: str | None  # the text blocks joined
    stop_reason: str | None
    stop_sequence: str | None
    model: str | None  # as the reply names it (after a server-side fallback, the model that answered)
    usage: dict[str, Any] | None  # every field the API reported, as reported
    cost_usd: float | None  # None for an error, or a model with no known price
    latency_s: float | None  # of the attempt that produced the result
    ttft_s: float | None  # time to the first text
    attempts: int
    retries: dict[str, int]  # retried attempts by cause
    request_id: str | None
    error: ErrorInfo | None
    request_hash: str  # the request after defaults: resume notices a changed input by it
    line_hash: str  # the input line's exact bytes and the defaults: resume skips re-checking by it
    stop_details: NotRequired[Any]
    thinking: NotRequired[str]  # the thinking blocks joined
    tool_calls: NotRequired[list[ToolCall]]
    content: NotRequired[list[dict[str, Any]]]  # the final message's blocks (unless --no-content)
    meta: NotRequired[Any]  # the input line's `meta`, unchanged
    kind: NotRequired[Literal["warmup"]]  # a cache warm-up (warmup.py), not an item
    via: NotRequired[Literal["batch"]]  # answered through the Message Batches API (`--via batches`)
    batch_id: NotRequired[str]  # the batch that answered it (or, for an error, the last it was in)


def ok_record(
    request: Request,
    sent: Sent,
    attempts: int,
    retries: dict[str, int],
    pricer: Pricer,
    *,
    content: bool,
) -> ResultRecord:
    return message_record(
        request,
        sent.message,
        attempts,
        retries,
        pricer,
        content=content,
        latency_s=round(sent.latency_s, 4),
        ttft_s=None if sent.ttft_s is None else round(sent.ttft_s, 4),
        request_id=sent.request_id,
    )


def message_record(
    request: Request,
    message: dict[str, Any],
    attempts: int,
    retries: dict[str, int],
    pricer: Pricer,
    *,
    content: bool,
    latency_s: float | None,
    ttft_s: float | None,
    request_id: str | None,
    batch: bool = False,
) -> ResultRecord:
    """The ok line for a final `message`, however it came (a stream, or a batch: priced as one)."""
    model = message.get("model") or request.params.get("model")
    usage = message.get("usage")
    blocks = message.get("content") or []
    record: ResultRecord = {
        "id": request.id,
        "status": "ok",
        "text": "".join(block.get("text", "") for block in blocks if block.get("type") == "text"),
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
        "model": model,
        "usage": usage,
        "cost_usd": pricer.cost(model, usage, batch=batch),
        "latency_s": latency_s,
        "ttft_s": ttft_s,
        "attempts": attempts,
        "retries": retries,
        "request_id": request_id,
        "error": None,
        "request_hash": request.request_hash,
        "line_hash": request.line_hash,
    }
    if message.get("stop_details") is not None:
        record["stop_details"] = message["stop_details"]
    thinking = [block.get("thinking", "") for block in blocks if block.get("type") == "thinking"]
    if thinking:
        record["thinking"] = "".join(thinking)
    tool_calls: list[ToolCall] = [
        {"id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
        for block in blocks
        if block.get("type") == "tool_use"
    ]
    if tool_calls:
        record["tool_calls"] = tool_calls
    if content:
        record["content"] = blocks
    return _with_meta(request, record)


def error_record(request: Request, failure: Failure, attempts: int, retries: dict[str, int]) -> ResultRecord:
    record: ResultRecord = {
        "id": request.id,
        "status": "error",
        "text": None,
        "stop_reason": None,
        "stop_sequence": None,
        "model": request.params.get("model"),
        "usage": None,
        "cost_usd": None,
        "latency_s": None,
        "ttft_s": None,
        "attempts": attempts,
        "retries": retries,
        "request_id": failure.request_id,
        "error": {"type": failure.type, "message": failure.message, "status": failure.status},
        "request_hash": request.request_hash,
        "line_hash": request.line_hash,
    }
    return _with_meta(request, record)


def _with_meta(request: Request, record: ResultRecord) -> ResultRecord:
    if request.has_meta:
        record["meta"] = request.meta
    return record
