"""`asyncio.sleep` for many requests at once: sleeps of one length that start together share a timer.

A benchmark's thousand concurrent requests each wait out the time to first token, and the timer per sleep
that `asyncio.sleep` sets was one of the larger costs left per request. Sleeps of the same length that start
while `loop.time()` reads the same are due together (uvloop's clock counts whole milliseconds, and its timers
are set from that clock), so one timer wakes them all, in the order they started, as their own timers would.
"""

from __future__ import annotations

import asyncio


class SharedSleeps:
    def __init__(self) -> None:
        # The latest group: when its sleeps started, how long they last, and the futures they wait on.
        self._started = -1.0
        self._delay = 0.0
        self._sleepers: list[asyncio.Future[None]] = []

    async def sleep(self, delay: float) -> None:
        """Like `asyncio.sleep(delay)` for a `delay` above zero."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now != self._started or delay != self._delay:
            self._started, self._delay, self._sleepers = now, delay, []
            loop.call_later(delay, _wake, self._sleepers)
        future = loop.create_future()
        self._sleepers.append(future)
        await future


def _wake(sleepers: list[asyncio.Future[None]]) -> None:
    for future in sleepers:
        if not future.done():  # cancelled, as its client hung up
            future.set_result(None)
