"""Deadline decides, as asyncio.timeout does, which cancellation is its own to raise as TimeoutError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from batchstream.deadline import Deadline


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Every case on both loops."""
    if request.param == "asyncio":
        yield asyncio.run
        return
    uvloop = pytest.importorskip("uvloop")

    def run_on_uvloop(main: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)

    yield run_on_uvloop


def test_a_block_still_running_at_the_deadline_gets_timeout_error_and_the_task_goes_on(run) -> None:
    async def main() -> tuple[bool, int, str]:
        deadline = Deadline(0.02)
        with pytest.raises(TimeoutError), deadline:
            await asyncio.sleep(10)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.03)  # the task is not cancelled again afterwards
        return deadline.expired(), task.cancelling(), "went on"

    assert run(main()) == (True, 0, "went on")


def test_a_block_done_in_time_is_left_alone_and_the_timer_goes_with_it(run) -> None:
    async def main() -> tuple[bool, str]:
        with Deadline(0.02) as deadline:
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)  # past the deadline: nothing fires
        return deadline.expired(), "done"

    assert run(main()) == (False, "done")


@pytest.mark.parametrize(("delay", "expired"), [(10.0, False), (0.01, True)])
def test_a_cancel_from_outside_stays_a_cancel_even_on_top_of_an_expired_deadline(
    run, delay: float, expired: bool
) -> None:
    async def main() -> tuple[bool, bool]:
        deadline = Deadline(delay)

        async def block() -> None:
            with deadline:
                await asyncio.sleep(10)

        task = asyncio.create_task(block())
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.02, task.cancel)
        # Every timer due by then fires before the task runs again: with the short delay, the deadline's
        # cancel and then the other one.
        time.sleep(0.05)
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), deadline.expired()

    assert run(main()) == (True, expired)


def test_only_the_deadline_that_expired_raises(run) -> None:
    async def main() -> tuple[bool, bool, str]:
        outer, inner = Deadline(10), Deadline(0.01)
        with outer:
            with pytest.raises(TimeoutError), inner:
                await asyncio.sleep(10)
            await asyncio.sleep(0)
        return outer.expired(), inner.expired(), "outer block finished"

    assert run(main()) == (False, True, "outer block finished")


def test_outside_a_task_it_refuses(run) -> None:
    async def main() -> str:
        refused = asyncio.get_running_loop().create_future()

        def callback() -> None:  # run by the loop, in no task
            try:
                with Deadline(1):
                    pass
            except RuntimeError as exc:
                refused.set_result(str(exc))

        asyncio.get_running_loop().call_soon(callback)
        return await refused

    assert run(main()) == "a Deadline works inside a task"
