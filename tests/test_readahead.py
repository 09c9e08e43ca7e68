"""ReadAhead reads only while nothing finishes, never past its limit, and hands items out in input order."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from batchstream.readahead import ReadAhead


class _Counted:
    """An iterator over 0..n-1 that counts how far it was read."""

    def __init__(self, n: int) -> None:
        self.taken = 0
        self._n = n

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.taken >= self._n:
            raise StopIteration
        self.taken += 1
        return self.taken - 1


async def _idle_fill(ahead: ReadAhead[int], seconds: float = 0.05) -> None:
    filler = asyncio.create_task(ahead.fill())
    await asyncio.sleep(seconds)
    filler.cancel()
    await asyncio.gather(filler, return_exceptions=True)


def test_while_the_loop_is_idle_it_reads_up_to_its_limit_and_no_further() -> None:
    source = _Counted(1000)
    ahead = ReadAhead(source, limit=100, activity=lambda: 0)
    asyncio.run(_idle_fill(ahead))
    assert source.taken == 100
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    assert source.taken == 100  # taken from what was read ahead


def test_while_items_finish_it_reads_nothing_and_workers_read_their_own() -> None:
    source = _Counted(1000)
    finished = iter(range(10**9))
    ahead = ReadAhead(source, limit=100, activity=lambda: next(finished))
    asyncio.run(_idle_fill(ahead))
    assert source.taken == 0
    assert next(ahead) == 0
    assert source.taken == 1


def test_it_stops_reading_as_soon_as_an_item_finishes() -> None:
    source = _Counted(1000)
    finished = itertools.count(1)
    # Items start finishing once the first chunk is read: the filler yields the loop after each chunk and
    # looks again.
    ahead = ReadAhead(source, limit=100, activity=lambda: next(finished) if source.taken else 0)
    asyncio.run(_idle_fill(ahead))
    assert source.taken == 32


def test_once_items_stop_finishing_it_reads_ahead_again() -> None:
    async def main() -> tuple[int, int]:
        source = _Counted(1000)
        finished = itertools.count(1)
        wave = True  # replies coming in: an item finishes between any two looks
        ahead = ReadAhead(source, limit=100, activity=lambda: next(finished) if wave else 0)
        filler = asyncio.create_task(ahead.fill())
        await asyncio.sleep(0.03)
        during = source.taken
        wave = False
        await asyncio.sleep(0.05)  # then quiet
        ahead.close()
        await asyncio.wait_for(filler, 1)
        return during, source.taken

    assert asyncio.run(main()) == (0, 100)


def test_when_full_it_stops_looking_until_an_item_is_taken() -> None:
    async def main() -> tuple[int, int, int]:
        source = _Counted(1000)
        looks = 0

        def activity() -> int:
            nonlocal looks
            looks += 1
            return 0

        ahead = ReadAhead(source, limit=10, activity=activity)
        filler = asyncio.create_task(ahead.fill())
        await asyncio.sleep(0.02)
        looks_when_full = looks
        await asyncio.sleep(0.05)
        idle_looks = looks - looks_when_full
        next(ahead)
        await asyncio.sleep(0.02)
        ahead.close()
        await asyncio.wait_for(filler, 1)
        return source.taken, idle_looks, looks - looks_when_full

    taken, idle_looks, looks = asyncio.run(main())
    assert (taken, idle_looks) == (11, 0)  # topped up again after the take, and no look while full
    assert looks > 0


def test_items_come_out_in_input_order_whoever_read_them() -> None:
    async def main() -> list[int]:
        source = _Counted(250)
        ahead = ReadAhead(source, limit=40, activity=lambda: 0)
        taken: list[int] = []
        filler = asyncio.create_task(ahead.fill())
        while len(taken) < 250:
            # Some items taken between fills, some while the filler has read ahead, some inline.
            taken += [item for _, item in zip(range(7), ahead, strict=False)]
            await asyncio.sleep(0.003)
        assert list(ahead) == []
        await asyncio.wait_for(filler, 1)  # the filler ends with the items
        return taken

    assert asyncio.run(main()) == list(range(250))


def test_an_error_read_ahead_is_raised_after_the_items_before_it() -> None:
    def lines() -> Iterator[int]:  # a generator, as iter_requests is: once it raised, it is over
        yield from range(5)
        raise ValueError("line 5 changed since it was checked")

    ahead = ReadAhead(lines(), limit=100, activity=lambda: 0)
    asyncio.run(_idle_fill(ahead))
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="line 5 changed"):
        next(ahead)
    assert list(ahead) == []


def test_close_ends_the_filler_and_the_items() -> None:
    async def main() -> tuple[int, list[int]]:
        source = _Counted(1000)
        ahead = ReadAhead(source, limit=100, activity=lambda: 0)
        filler = asyncio.create_task(ahead.fill())
        await asyncio.sleep(0.05)
        ahead.close()
        await asyncio.wait_for(filler, 1)
        return source.taken, list(ahead)

    taken, left = asyncio.run(main())
    assert (taken, left) == (100, [])
