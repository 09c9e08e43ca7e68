"""The simulated prompt cache: entries per model and prefix hash, each living for its TTL since last used.

As on the service, a request reads the longest cached prefix among its own breakpoints when it arrives,
and its writes become readable only once it starts answering (`message_start`): requests sent together
with the same new prefix all pay to write it, which is what warming a prefix once first avoids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from ..cacherules import TTL_SECONDS
from .prompt import Breakpoint, breakpoints, cacheable

# Expired entries are swept once this many are held, so memory stays bounded over a long simulation.
_SWEEP_AT = 50_000


class Lookup(NamedTuple):
    """What a request found: tokens served from cache, and the breakpoints it writes once it answers."""

    model: str
    read: int
    points: list[Breakpoint]


_NOTHING = Lookup("", 0, [])


class PromptCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[tuple[str, bytes], float] = {}

    def reset(self) -> None:
        self._expiry.clear()

    def lookup(self, body: dict[str, Any]) -> Lookup:
        """The deepest of the request's cacheable breakpoints with a live entry (refreshed by this read)."""
        if "cache_control" not in body and b'"cache_control"' not in _marker(body):
            return _NOTHING
        _, points = breakpoints(body)
        points = cacheable(body, points)
        if not points:
            return _NOTHING
        model = str(body.get("model", ""))
        now = self._clock()
        for point in reversed(points):
            key = (model, point.digest)
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                self._expiry[key] = max(expiry, now + TTL_SECONDS[point.ttl])
                return Lookup(model, point.tokens, points)
        return Lookup(model, 0, points)

    def store(self, found: Lookup) -> None:
        """Write the request's entries: called at its `message_start`, from when others can read them."""
        if not found.points:
            return
        now = self._clock()
        if len(self._expiry) >= _SWEEP_AT:
            self._expiry = {key: expiry for key, expiry in self._expiry.items() if expiry > now}
        for point in found.points:
            key = (found.model, point.digest)
            self._expiry[key] = max(self._expiry.get(key, 0.0), now + TTL_SECONDS[point.ttl])


def _marker(body: dict[str, Any]) -> bytes:
    """The prompt's parts as JSON, only to tell cheaply whether any block asks for caching."""
    return orjson.dumps([body.get("tools"), body.get("system"), body.get("messages")])
