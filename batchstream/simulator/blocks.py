"""Content blocks as the Messages API streams them and as its final message holds them.

Each `Block` states both sides explicitly, the events (start, streamed pieces, whole deltas) and the final
form, rather than deriving one from the other: tests compare a client's assembly against `final`, so it
must not come from the same folding logic a client would use. Shapes follow the SDK's types.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any

from .toolinput import fragments, input_json, tool_input
from .wire import BASE62
from .words import VOCABULARY, words


# Not frozen: a frozen dataclass's `__init__` costs three times a plain one's, paid for every block of every
# reply, and nothing changes a block once built.
@dataclass(slots=True)
class Block:
    start: dict[str, Any]  # the content_block of content_block_start
    final: dict[str, Any]  # the block in the final message
    delta_type: str = "text_delta"  # the delta type carrying `pieces` (see wire.DELTA_FIELDS)
    pieces: tuple[str, ...] = ()  # one delta each, and one output token each
    after: tuple[dict[str, Any], ...] = ()  # whole deltas after the pieces
    stops: bool = True  # False: cut by max_tokens, so no content_block_stop (and no block after it)


def text_block(tokens: list[str], citations: list[dict[str, Any]] | None = None) -> Block:
    """A text block; cited ones open with an empty `citations` list and get each citation in a delta."""
    text = "".join(tokens)
    if citations is None:
        return Block({"type": "text", "text": ""}, {"type": "text", "text": text}, pieces=tuple(tokens))
    return Block(
        {"type": "text", "text": "", "citations": []},
        {"type": "text", "text": text, "citations": citations},
        pieces=tuple(tokens),
        after=tuple({"type": "citations_delta", "citation": citation} for citation in citations),
    )


def thinking_block(rng: random.Random, budget: int | None, omitted: bool) -> Block:
    """Thinking deltas, then the one `signature_delta` the API sends just before the block stops.

    With `display: "omitted"` the block carries only its signature, as the API then sends no thinking.
    """
    count = rng.randint(8, 40)
    tokens = [] if omitted else words(rng, count if budget is None else min(count, budget), count)
    signature = _opaque(rng, 96)
    return Block(
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking", "thinking": "".join(tokens), "signature": signature},
        delta_type="thinking_delta",
        pieces=tuple(tokens),
        after=({"type": "signature_delta", "signature": signature},),
    )


def redacted_thinking_block(rng: random.Random) -> Block:
    """Arrives whole in content_block_start: there is nothing readable to stream."""
    block = {"type": "redacted_thinking", "data": _opaque(rng, 180)}
    return Block(block, block)


def compaction_block(rng: random.Random) -> Block:
    """Opens with null fields; one `compaction_delta` then carries both, which a caller must send back."""
    summary = "Earlier conversation summarized: " + " ".join(rng.choices(VOCABULARY, k=12)) + "."
    encrypted = _opaque(rng, 48)
    return Block(
        {"type": "compaction", "content": None, "encrypted_content": None},
        {"type": "compaction", "content": summary, "encrypted_content": encrypted},
        after=({"type": "compaction_delta", "content": summary, "encrypted_content": encrypted},),
    )


def fallback_block(from_model: str, to_model: str) -> Block:
    """A server-side fallback, whole in content_block_start, as the API sends it (the SDK's recording)."""
    block = {
        "type": "fallback",
        "from": {"model": from_model},
        "to": {"model": to_model},
        "trigger": {"type": "refusal", "category": None},
    }
    return Block(block, block)


def cut_tool_block(call: Block, rng: random.Random) -> Block:
    """`call` cut by max_tokens inside its input, after the first member, partway into the next key's name.

    The final input is what the JSON sent so far holds, parsed as far as it goes as the SDK does: whole
    members only (the unfinished key is left out).
    """
    value = call.final["input"]
    keys = list(value)
    kept = {keys[0]: value[keys[0]]} if len(keys) > 1 else {}
    sent = (input_json(kept)[:-1] + ", " if kept else "{") + '"' + (keys[len(kept)][:2] if keys else "")
    return Block(
        call.start,
        {**call.final, "input": kept},
        delta_type="input_json_delta",
        pieces=fragments(sent, rng),
        stops=False,
    )


def _tool_use_block(kind: str, block_id: str, name: str, value: dict[str, Any], rng: random.Random) -> Block:
    """`tool_use` or `server_tool_use`: opens with `input: {}`, then the input JSON in small fragments."""
    return Block(
        {"type": kind, "id": block_id, "name": name, "input": {}},
        {"type": kind, "id": block_id, "name": name, "input": value},
        delta_type="input_json_delta",
        pieces=fragments(input_json(value), rng),
    )


def client_tool_block(tool: dict[str, Any], rng: random.Random, min_bytes: int | None) -> Block:
    value = tool_input(tool.get("input_schema"), rng, min_bytes)
    return _tool_use_block("tool_use", _tool_id("toolu_", rng), str(tool["name"]), value, rng)


def web_search_blocks(query: str, rng: random.Random) -> tuple[Block, Block, list[dict[str, Any]]]:
    """The search call, its results (whole in content_block_start), and the results for citing."""
    call_id = _tool_id("srvtoolu_", rng)
    call = _tool_use_block("server_tool_use", call_id, "web_search", {"query": query}, rng)
    results = [
        {
            "type": "web_search_result",
            "title": " ".join(rng.choices(VOCABULARY, k=5)).capitalize(),
            "url": f"https://example.com/{'-'.join(rng.choices(VOCABULARY, k=3))}",
            "encrypted_content": _opaque(rng, 120),
            "page_age": rng.choice((None, "April 30, 2025", "2 days ago")),
        }
        for _ in range(3)
    ]
    block = {"type": "web_search_tool_result", "tool_use_id": call_id, "content": results}
    return call, Block(block, block), results


def web_citation(result: dict[str, Any], cited_text: str, rng: random.Random) -> dict[str, Any]:
    return {
        "type": "web_search_result_location",
        "cited_text": cited_text,
        "url": result["url"],
        "title": result["title"],
        "encrypted_index": _opaque(rng, 40),
    }


def document_citation(document: dict[str, Any], index: int, fallback_text: str) -> dict[str, Any]:
    """Cite the start of `document` the way its source type is cited: characters, blocks or pages."""
    source = document.get("source") if isinstance(document.get("source"), dict) else {}
    citation: dict[str, Any] = {"document_index": index, "document_title": document.get("title")}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        data = source["data"]
        end = data.find(". ") + 1 or min(len(data), 120)
        citation.update(type="char_location", cited_text=data[:end], start_char_index=0, end_char_index=end)
    elif source.get("type") == "content" and isinstance(source.get("content"), list) and source["content"]:
        first = source["content"][0]
        text = first.get("text", "") if isinstance(first, dict) else str(first)
        citation.update(type="content_block_location", cited_text=text)
        citation.update(start_block_index=0, end_block_index=1)
    else:  # a PDF: its text is not ours to read, so the cited words are made up
        citation.update(type="page_location", cited_text=fallback_text)
        citation.update(start_page_number=1, end_page_number=2)
    return citation


def _tool_id(prefix: str, rng: random.Random) -> str:
    """`toolu_01…` / `srvtoolu_01…` plus 22 base62 characters, the shape of the API's tool-call ids."""
    return prefix + "01" + "".join(rng.choices(BASE62, k=22))


def _opaque(rng: random.Random, size: int) -> str:
    """A stand-in for the API's opaque base64 values (signatures, encrypted content)."""
    return base64.b64encode(rng.randbytes(size)).decode()
