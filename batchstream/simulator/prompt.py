"""What the simulator reads off a request's prompt: its token count, its cache breakpoints, its documents.

Token counts are estimates (about four characters a token); the one walk over the prompt in `_segments`
serves both the total and the cache split, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from ..cacherules import TTL_1H, TTL_5M, min_cacheable_tokens, ttl_of

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


class Breakpoint(NamedTuple):
    """A place the prompt may be cached up to: the tokens before it, the hash of those, its TTL."""

    tokens: int
    digest: bytes
    ttl: str


def estimate_input_tokens(body: dict[str, Any]) -> int:
    return sum(tokens for tokens, _, _ in _segments(body))


def count_breakpoints(body: dict[str, Any]) -> int:
    """Blocks with `cache_control`, plus one for a top-level (automatic) `cache_control`."""
    marked = sum(control is not None for _, control, _ in _segments(body))
    return marked + isinstance(body.get("cache_control"), dict)


def breakpoints(body: dict[str, Any]) -> tuple[int, list[Breakpoint]]:
    """The prompt's input tokens, and its breakpoints in cache order, each with the hash of the prompt up to
    it (the cache's key, per model): the hash leaves `cache_control` itself out, and a string reads as the
    one text block it stands for. A top-level `cache_control` (automatic caching) adds one at the end."""
    digest = hashlib.blake2b(digest_size=16)
    points: list[Breakpoint] = []
    total = 0
    for tokens, control, key in _segments(body):
        total += tokens
        digest.update(key)
        if control is not None:
            points.append(Breakpoint(total, digest.copy().digest(), ttl_of(control)))
    automatic = body.get("cache_control")
    if isinstance(automatic, dict) and (not points or points[-1].tokens < total):
        points.append(Breakpoint(total, digest.digest(), ttl_of(automatic)))
    return total, points


def cacheable(body: dict[str, Any], points: list[Breakpoint]) -> list[Breakpoint]:
    """The breakpoints whose prefix is long enough for the model to cache; the others are plain input."""
    minimum = min_cacheable_tokens(str(body.get("model", "")))
    return [point for point in points if point.tokens >= minimum]


def input_usage(body: dict[str, Any], read: int) -> tuple[int, CacheUse | None]:
    """The prompt's input tokens, and how they split: None when the request asks for no caching; otherwise
    the split, with up to `read` tokens of the cached prefix served from cache (an earlier request wrote
    them) and the rest written now.

    A breakpoint caches everything up to it, if that is at least the model's minimum; the tokens since the
    previous cached breakpoint are written with its TTL.
    """
    total, points = breakpoints(body)
    if not points:
        return total, None
    cached = cacheable(body, points)
    prefix = cached[-1].tokens if cached else 0
    read = min(read, prefix)
    written = {TTL_5M: 0, TTL_1H: 0}
    done = read
    for point in cached:
        if point.tokens > done:
            written[point.ttl] += point.tokens - done
            done = point.tokens
    return total, CacheUse(total - prefix, written[TTL_5M], written[TTL_1H], read)


def _segments(body: dict[str, Any]) -> Iterator[tuple[int, Any, bytes]]:
    """(tokens, cache_control or None, the bytes it adds to the cache key) for each piece of the prompt, in
    the cache's order: tools, system, messages."""
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            yield _block_segment(tool)
    system = body.get("system")
    if system:
        yield _SYSTEM_TOKENS, None, b"\x00system"
        yield from _content_segments(system)
    for message in body.get("messages") or ():
        role = message.get("role") if isinstance(message, dict) else None
        yield _MESSAGE_TOKENS, None, b"\x00" + str(role).encode()
        if isinstance(message, dict):
            yield from _content_segments(message.get("content"))


def _content_segments(content: Any) -> Iterator[tuple[int, Any, bytes]]:
    if isinstance(content, str):
        yield _chars_to_tokens(len(content)), None, _text_key(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            yield _chars_to_tokens(len(block["text"])), block.get("cache_control"), _text_key(block["text"])
        elif isinstance(block, dict):
            yield _block_segment(block)
        else:
            yield _chars_to_tokens(len(orjson.dumps(block))), None, orjson.dumps(block)


def _block_segment(block: dict[str, Any]) -> tuple[int, Any, bytes]:
    key = orjson.dumps({k: v for k, v in block.items() if k != "cache_control"}, option=orjson.OPT_SORT_KEYS)
    return _chars_to_tokens(len(orjson.dumps(block))), block.get("cache_control"), b"\x00block" + key


def _text_key(text: str) -> bytes:
    return b"\x00text" + text.encode()


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
