"""Deterministic replies: the same request body always gets the same content, so tests can predict output.

Pure functions only; the server and `expected_reply` share them, which is what keeps the two in step. The
request decides the blocks: thinking when `thinking` is on, a search when a web_search tool is offered,
a cited text block when a document asks for citations, a tool call when a tool may be called. Each kind draws
from its own PRNG stream, so adding a tool or thinking to a request leaves the rest of the reply unchanged.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from .blocks import (
    Block,
    client_tool_block,
    compaction_block,
    cut_tool_block,
    document_citation,
    fallback_block,
    redacted_thinking_block,
    text_block,
    thinking_block,
    web_citation,
    web_search_blocks,
)
from .config import DEFAULT_REPLY_TOKENS
from .directives import Directives, parse_directives, prompt_text
from .prompt import documents, input_usage
from .transcripts import load_transcript
from .wire import message_object
from .words import first_stop, words

_REFUSAL = {
    "type": "refusal",
    "category": "general_harms",
    "explanation": "Declined because a [[sim stop=refusal]] directive asked for it.",
}
_CITED_WORDS = (4, 12)
_QUERY_WORDS = 6


@dataclass(slots=True)  # not frozen, for the same reason as `Block`
class Reply:
    blocks: tuple[Block, ...]
    stop_reason: str
    stop_sequence: str | None
    stop_details: dict[str, Any] | None
    start_usage: dict[str, Any]  # as message_start reports it
    delta_usage: dict[str, Any]  # as message_delta reports it: the final counts, replacing the start's
    model: str | None = None  # the model a server-side fallback handed the reply to (`[[sim fallback=]]`)
    unknown_event: bool = False  # send an event of a type no client knows (`[[sim unknown_event]]`)

    @property
    def content(self) -> list[dict[str, Any]]:
        return [block.final for block in self.blocks]

    @property
    def output_tokens(self) -> int:
        return int(self.delta_usage["output_tokens"])

    @property
    def usage(self) -> dict[str, Any]:
        return {**self.start_usage, **self.delta_usage}


def request_key(body: dict[str, Any]) -> str:
    """Identify a request across retries: the same prompt resent is the same key, `stream` aside."""
    canonical = dict(body)
    canonical.pop("stream", None)
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def build_reply(
    body: dict[str, Any], key: str, reply_tokens: tuple[int, int], directives: Directives
) -> Reply:
    if body.get("max_tokens") == 0:
        # Pre-warming the prompt cache: the prompt is read (and cached), nothing is generated.
        start, delta = _usage(body, directives, [], [])
        return Reply((), "max_tokens", None, None, start, delta)
    rng = random.Random(int(key, 16))
    length = directives.tokens if directives.tokens is not None else rng.randint(*reply_tokens)
    blocks: list[Block] = []
    if directives.fallback is not None:
        blocks.append(fallback_block(str(body.get("model", "")), directives.fallback))
    if directives.compaction:
        blocks.append(compaction_block(_rng(key, "compaction")))
    if directives.redacted_thinking:
        blocks.append(redacted_thinking_block(_rng(key, "redacted_thinking")))
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        omitted = thinking.get("display") == "omitted"
        rng_thinking = _rng(key, "thinking")
        blocks.append(thinking_block(rng_thinking, budget if isinstance(budget, int) else None, omitted))
    search, tool, forced = _tool_plan(body)
    results: list[dict[str, Any]] = []
    if search:
        call, found, results = web_search_blocks(_query(body), _rng(key, "search"))
        blocks += [call, found]
    stop_reason, stop_sequence = "end_turn", None
    if not forced:
        max_tokens = body.get("max_tokens")
        spent = sum(len(block.pieces) for block in blocks)
        limit = length if max_tokens is None else max(0, min(length, max_tokens - spent))
        tokens = words(rng, limit, length)
        if limit < length:
            stop_reason = "max_tokens"
        cut = first_stop(tokens, body.get("stop_sequences"))
        if cut is not None:
            tokens, stop_sequence = cut
            stop_reason = "stop_sequence"
        blocks.append(text_block(tokens))
        if stop_reason == "end_turn":
            blocks.extend(_cited_block(body, directives, results, key))
    if tool is not None and (stop_reason == "end_turn" or directives.cut_tool):
        blocks.append(client_tool_block(tool, _rng(key, "tool"), directives.tool_input_bytes))
        stop_reason = "tool_use"
        if directives.cut_tool:
            blocks[-1] = cut_tool_block(blocks[-1], _rng(key, "cut_tool"))
            stop_reason, stop_sequence = "max_tokens", None
    if directives.stop is not None:
        stop_reason, stop_sequence = directives.stop, None
    start, delta = _usage(body, directives, blocks, results)
    stop_details = _REFUSAL if stop_reason == "refusal" else None
    return Reply(
        tuple(blocks),
        stop_reason,
        stop_sequence,
        stop_details,
        start,
        delta,
        directives.fallback,
        directives.unknown_event,
    )


def _rng(key: str, purpose: str) -> random.Random:
    return random.Random(f"{key}:{purpose}")


def _tool_plan(body: dict[str, Any]) -> tuple[bool, dict[str, Any] | None, bool]:
    """(search?, the client tool to call, whether tool_choice forces that call with no text before it)."""
    if not body.get("tools"):  # most requests offer none, whatever their tool_choice
        return False, None, False
    tools = [tool for tool in body["tools"] if isinstance(tool, dict)]
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    kind = choice.get("type", "auto")
    if kind == "none":
        return False, None, False
    client = [tool for tool in tools if "input_schema" in tool and isinstance(tool.get("name"), str)]
    if kind == "tool":
        tool = next((tool for tool in client if tool["name"] == choice.get("name")), None)
    else:
        tool = client[0] if client else None
    forced = tool is not None and kind in ("any", "tool")
    search = not forced and any(str(tool.get("type", "")).startswith("web_search_") for tool in tools)
    return search, tool, forced


def _query(body: dict[str, Any]) -> str:
    return " ".join(prompt_text(body).split()[:_QUERY_WORDS]) or "latest news"


def _cited_block(
    body: dict[str, Any], directives: Directives, results: list[dict[str, Any]], key: str
) -> list[Block]:
    """The text block that cites a search result or a document, when there is one to cite.

    Its PRNG is seeded and its words drawn only once there is: for a plain request, with nothing to cite,
    that work was 40% of building the reply.
    """
    cited = None if results else _cited_document(body, directives)
    if not results and cited is None:
        return []
    rng = _rng(key, "citations")
    count = rng.randint(*_CITED_WORDS)
    tokens = words(rng, count, count)
    tokens[0] = " " + tokens[0]
    quoted = "".join(tokens).strip()
    if cited is None:
        return [text_block(tokens, [web_citation(results[0], quoted, rng)])]
    index, document = cited
    return [text_block(tokens, [document_citation(document, index, quoted)])]


def _cited_document(body: dict[str, Any], directives: Directives) -> tuple[int, dict[str, Any]] | None:
    """The first document that asks for citations (any, with `[[sim citations]]`), with its index."""
    for index, document in enumerate(documents(body)):
        enabled = isinstance(document.get("citations"), dict) and document["citations"].get("enabled")
        if enabled or directives.citations:
            return index, document
    return None


def _usage(
    body: dict[str, Any], directives: Directives, blocks: list[Block], results: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Usage at message_start and in message_delta. Plain requests get the API's minimal message_delta
    (output tokens only); with caching or a search, message_delta restates the input counts as the API
    does, the search having added its results to the input."""
    output_tokens = sum(len(block.pieces) for block in blocks)
    input_tokens, cache = input_usage(body, directives.cache_read)
    counts = {
        "input_tokens": input_tokens if cache is None else cache.input_tokens,
        "cache_creation_input_tokens": 0 if cache is None else cache.write_5m + cache.write_1h,
        "cache_read_input_tokens": 0 if cache is None else cache.read,
    }
    start: dict[str, Any] = dict(counts)
    if cache is not None:
        start["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache.write_5m,
            "ephemeral_1h_input_tokens": cache.write_1h,
        }
    start["output_tokens"] = 1
    start["service_tier"] = directives.service_tier or "standard"
    if cache is None and not results:
        return start, {"output_tokens": output_tokens}
    delta = {**counts, "output_tokens": output_tokens}
    if results:
        delta["input_tokens"] += -(-len(orjson.dumps(results)) // 4)
        delta["server_tool_use"] = {"web_search_requests": 1, "web_fetch_requests": 0}
    return start, delta


def expected_reply(
    body: dict[str, Any], *, reply_tokens: tuple[int, int] = DEFAULT_REPLY_TOKENS
) -> dict[str, Any]:
    """What the simulator answers for `body` when no fault strikes: the final message's `content`, block by
    block, its `text` (the text blocks joined), stop reason, sequence and details, usage and model. For a
    transcript that breaks off with an error event, `{"error": {...}}` instead.

    Pass `reply_tokens` when the simulator was started with a non-default range.
    """
    directives = parse_directives(body)
    if directives.transcript is not None:
        recorded = load_transcript(directives.transcript)
        return _summary(recorded.outcome) if recorded.complete else {"error": recorded.outcome["error"]}
    reply = build_reply(body, request_key(body), reply_tokens, directives)
    return _summary(
        message_object(
            "",
            reply.model or body["model"],
            reply.content,
            reply.stop_reason,
            reply.stop_sequence,
            reply.usage,
            reply.stop_details,
        )
    )


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    return {
        "text": "".join(block["text"] for block in content if block["type"] == "text"),
        "content": content,
        "stop_reason": message["stop_reason"],
        "stop_sequence": message["stop_sequence"],
        "stop_details": message.get("stop_details"),
        "usage": message["usage"],
        "model": message["model"],
    }
