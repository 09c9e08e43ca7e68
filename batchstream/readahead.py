"""Input read ahead while the event loop has nothing else to do.

With a thousand streams open, replies come back in waves, and each reply's worker reads and checks the
next input line before it sends the next request. One after another over a wave, that reading (about a
quarter of a worker's own work between a reply and its next request) spreads the wave's launches out, and
the whole batch ends that much later. The loop is idle between waves: lines read then are off that path.

Only idle time is used. Reading ahead while replies are being handled would only move the same work
around, so the filler steps back as soon as an item finishes, and workers then read their own lines as
before. Items come out in input order whoever read them, and at most `limit` wait here (memory follows
concurrency, not the input).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

_T = TypeVar("_T")

# How often the filler looks whether the loop went quiet; a look costs a timer, a few µs.
_TICK_S = 0.002
# Items read before the filler yields the loop again: about a millisecond of work, so a reply that comes in
# meanwhile waits at most that long.
_CHUNK = 32


class ReadAhead(Generic[_T]):
    """An iterator over `items` that `fill()` reads ahead of its consumers while `activity()` stands still."""

    def __init__(self, items: Iterator[_T], *, limit: int, activity: Callable[[], object]) -> None:
        self._items = items
        self._limit = limit
        self._activity = activity
        self._ready: deque[_T] = deque()
        self._ended = False
        # An error the iterator raised while read ahead: the consumer gets it where it would have, after the
        # items read before it.
        self._error: BaseException | None = None
        # While the filler waits for room (it stops looking when full): set by the next take.
        self._room: asyncio.Event | None = None

    def __iter__(self) -> ReadAhead[_T]:
        return self

    def __next__(self) -> _T:
        if self._ready:
            if self._room is not None:
                self._room.set()
            return self._ready.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._ended:
            raise StopIteration
        try:
            return next(self._items)
        except StopIteration:
            self._ended = True
            raise

    def close(self) -> None:
        """No more items are wanted: `fill` returns, and what it read is let go."""
        self._ended = True
        self._ready.clear()
        if self._room is not None:
            self._room.set()

    async def fill(self) -> None:
        """Read ahead in the loop's quiet moments until the items end or `close` is called."""
        seen = self._activity()
        while not (self._ended or self._error is not None):
            if len(self._ready) >= self._limit:
                self._room = asyncio.Event()
                await self._room.wait()
                self._room = None
                continue
            await asyncio.sleep(_TICK_S)
            now = self._activity()
            if now != seen:  # items are finishing: the loop is busy with replies
                seen = now
                continue
            while len(self._ready) < self._limit and not self._ended and self._activity() == seen:
                self._read(min(_CHUNK, self._limit - len(self._ready)))
                if self._ended or self._error is not None:
                    return
                await asyncio.sleep(0)

    def _read(self, count: int) -> None:
        ready, items = self._ready, self._items
        try:
            for _ in range(count):
                ready.append(next(items))
        except StopIteration:
            self._ended = True
        except Exception as exc:
            self._error = exc
