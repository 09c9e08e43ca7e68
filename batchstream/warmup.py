"""Warm each shared prefix once before its group fans out, so the group pays one cache write, not one each.

A cache entry can only be read once the request writing it has started answering: launched together at
concurrency 32, a group's first 32 items would all miss and all write. So the first item of a group to be
launched sends a warm-up first, and every item of the group waits for it; other groups do not.

The warm-up is the item's own prompt (with its breakpoints) and `max_tokens: 0`, unstreamed: the API reads
the prompt, writes the cache and generates nothing. Where the API refuses 0 (a forced tool choice, a
structured output format) it asks for 1 token instead. With thinking on, thinking is left out of the
warm-up: it does not change the cached tools and system prompt; a prefix reaching into the messages is
then not warmed (thinking settings are part of the messages' cache key), and its first item writes it.

A warm-up is a line of its own in the results file (`"kind": "warmup"`, id `~warmup:...`), with its usage
and cost: never hidden, never an item.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .caching import Group
from .inputs import WARMUP_ID_PREFIX, Request
from .transport import Sent

if TYPE_CHECKING:  # the SDK is imported only once a request is due (see dispatch.stream_items)
    from .transport.streaming import StreamingSender

WARMUP_KIND = "warmup"


def is_warmup_id(item_id: str) -> bool:
    """Whether a results line's id is a warm-up's: no input line may have such an id (inputs.py)."""
    return item_id.startswith(WARMUP_ID_PREFIX)


def warmup_request(request: Request, group: Group) -> Request | None:
    """The request that warms `group`'s prefix as `request` (an item of it, breakpoints added) caches it;
    None when no warm-up can write what the group reads."""
    params = dict(request.params)
    max_tokens = 0
    thinking = params.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        if _marks_messages(params.get("messages")):
            return None
        del params["thinking"]
    choice = params.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    output_config = params.get("output_config")
    shaped = params.get("output_format") is not None or (
        isinstance(output_config, dict) and "format" in output_config
    )
    if forced or shaped:
        max_tokens = 1  # the API refuses max_tokens 0 with these
    params["max_tokens"] = max_tokens
    return Request(
        id=f"{WARMUP_ID_PREFIX}{group.key.hex()[:12]}:{secrets.token_hex(4)}",
        line=0,
        params=params,
        betas=request.betas,
        has_meta=False,
        meta=None,
        request_hash="",
    )


def _marks_messages(messages: Any) -> bool:
    for message in messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(block, dict) and "cache_control" in block for block in content
        ):
            return True
    return False


class Unstreamed:
    """A `Sender` that sends each request unstreamed, as a `max_tokens: 0` warm-up must be."""

    def __init__(self, sender: StreamingSender) -> None:
        self._sender = sender

    async def send(self, request: Request) -> Sent:
        return await self._sender.send_unstreamed(request)

    async def aclose(self) -> None:
        """The streaming sender it borrows owns the connections."""


class Warmups:
    """One warm-up per group, started by the group's first item; the group's items wait for it."""

    def __init__(self, warm: Callable[[Request, Group], Awaitable[None]]) -> None:
        self._warm = warm
        self._tasks: dict[bytes, asyncio.Task[None]] = {}

    async def ready(self, request: Request, group: Group) -> None:
        task = self._tasks.get(group.key)
        if task is None:
            task = self._tasks[group.key] = asyncio.create_task(self._warm(request, group))
        # Shielded: an item cancelled while it waits must not cancel the warm-up the others wait for.
        await asyncio.shield(task)

    async def aclose(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
