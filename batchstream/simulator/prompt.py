"""What the simulator reads off a request's prompt: its token count, its cache breakpoints, its documents.

Token counts are estimates (about four characters a token); the one walk over the prompt in `_segments`
serves both the total and the cache split, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

# The framing tokens a system prompt and each message cost on top of their content.
_SYSTEM_TOKENS = 3
_MESSAGE_TOKENS = 4


@dataclass(frozen=True)
class CacheUse:
    """How the prompt's input tokens split between plain input, cache writes (by TTL) and cache reads."""

    input_tokens: int
    write_5m: int = 0
    write_1h: int = 0
    read: int = 0


def estimate_input_tokens(body: dict[str, Any]) -> int:
    return sum(tokens for tokens, _ in _segments(body))


def input_usage(body: dict[str, Any], read: int) -> tuple[int, CacheUse | None]:
    """The prompt's input tokens, and how they split: None when the request asks for no caching; otherwise
    the split, with up to `read` tokens of the cached prefix served from cache (a simulated earlier request
    wrote them) and the rest written now.

    A breakpoint caches everything up to it; the tokens since the previous breakpoint are written with its
    TTL. A top-level `cache_control` (automatic caching) puts the last breakpoint at the end of the prompt.
    """
    automatic = body.get("cache_control")
    cached: list[tuple[int, str]] = []  # (tokens, ttl) per run between breakpoints
    pending = total = 0
    for tokens, control in _segments(body):
        total += tokens
        pending += tokens
        if control is not None:
            cached.append((pending, _ttl(control)))
            pending = 0
    if isinstance(automatic, dict) and pending:
        cached.append((pending, _ttl(automatic)))
        pending = 0
    if not cached:
        return total, None
    prefix = sum(tokens for tokens, _ in cached)
    left_to_read = read = min(read, prefix)
    written = {"5m": 0, "1h": 0}
    for tokens, ttl in cached:
        served = min(left_to_read, tokens)
        left_to_read -= served
        written[ttl] += tokens - served
    return total, CacheUse(total - prefix, written["5m"], written["1h"], read)


def _ttl(control: Any) -> str:
    return "1h" if isinstance(control, dict) and control.get("ttl") == "1h" else "5m"


def _segments(body: dict[str, Any]) -> Iterator[tuple[int, Any]]:
    """(tokens, cache_control or None) for each piece of the prompt, in the cache's order: tools, system,
    messages."""
    tools = body.get("tools")
    if tools:
        controls = [tool.get("cache_control") for tool in tools if isinstance(tool, dict)]
        controls = [control for control in controls if control is not None]
        yield _chars_to_tokens(len(orjson.dumps(tools))), controls[-1] if controls else None
    system = body.get("system")
    if system:
        yield _SYSTEM_TOKENS, None
        yield from _content_segments(system)
    for message in body.get("messages") or ():
        yield _MESSAGE_TOKENS, None
        if isinstance(message, dict):
            yield from _content_segments(message.get("content"))


def _content_segments(content: Any) -> Iterator[tuple[int, Any]]:
    if isinstance(content, str):
        yield _chars_to_tokens(len(content)), None
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            yield _chars_to_tokens(len(block["text"])), block.get("cache_control")
        else:
            control = block.get("cache_control") if isinstance(block, dict) else None
            yield _chars_to_tokens(len(orjson.dumps(block))), control


def _chars_to_tokens(chars: int) -> int:
    return -(-chars // 4)


def documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every document block of the conversation in order: a citation's `document_index` counts these."""
    found: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found.extend(
                block for block in content if isinstance(block, dict) and block.get("type") == "document"
            )
    return found
