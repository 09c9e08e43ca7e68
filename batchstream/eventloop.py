"""The event loop of a run and of `batchstream simulate`: uvloop where it is installed, else asyncio's own.

uvloop opens a connection for about half the CPU asyncio's selector loop takes, and the first wave of a
large batch opens one per concurrent item at once. It does not exist on Windows, where asyncio's loop does
the same job more slowly.
"""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
