"""The breaker's rules, on a clock the test moves: when a failure is an item's, when the run is in an
outage, one probe at a time on a growing interval, and the end of it either way."""

from __future__ import annotations

import asyncio

import pytest

from batchstream.outage import DECLARE_AFTER_S, MAX_PROBE_S, Breaker, Turn
from batchstream.transport.failures import Failure

REFUSED = Failure.connection("ConnectError: connection refused")
BAD_REQUEST = Failure("client_error", False, False, 400, "invalid_request_error", "bad")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, max_outage_s: float = 60.0) -> Breaker:
    return Breaker(max_outage_s, clock=clock, wall_clock=lambda: 0.0)


def attempt(b: Breaker, item: str) -> Turn:
    turn = asyncio.run(b.turn(item))
    assert turn is not None
    assert b.begin(turn)
    return turn


def test_one_or_two_items_failing_over_and_over_are_charged_to_them(clock: Clock) -> None:
    b = breaker(clock)
    for _ in range(10):
        clock.now += 1
        assert b.failed(attempt(b, "a"), REFUSED)
        assert b.failed(attempt(b, "b"), REFUSED)
    assert not b.down


def test_a_failure_while_another_request_succeeded_is_the_items_own(clock: Clock) -> None:
    b = breaker(clock)
    turns = [attempt(b, item) for item in "abc"]
    for turn in turns[:2]:
        b.failed(turn, REFUSED)
    clock.now += 1
    assert not b.succeeded()  # no outage was declared, so none ended
    assert b.failed(turns[2], REFUSED)  # it ran while the success came


def test_three_items_failing_with_nothing_succeeding_is_an_outage(clock: Clock) -> None:
    b = breaker(clock)
    charged = [b.failed(attempt(b, item), REFUSED) for item in "abc"]
    assert charged == [True, True, False]  # the first two could have been theirs; the third says otherwise
    assert not b.down  # not yet: a moment's blip is not an outage
    clock.now += DECLARE_AFTER_S
    assert not b.failed(attempt(b, "d"), REFUSED)
    assert b.down
    assert b.notice() == "API unavailable since 00:00:00 (probing every 1 s)"
    assert b.describe_failure() == "connection_error: ConnectError: connection refused"


def test_an_outage_probes_one_at_a_time_on_a_growing_interval_and_a_success_ends_it(clock: Clock) -> None:
    b = breaker(clock, max_outage_s=10_000)
    for item in "abc":
        b.failed(attempt(b, item), REFUSED)
    clock.now += DECLARE_AFTER_S
    waiting = Turn("late", clock.now, probe=False)  # took its turn just before the outage was declared
    b.failed(attempt(b, "d"), REFUSED)
    assert not b.begin(waiting)  # it waits for the probes instead of going out

    intervals = []
    for _ in range(6):
        clock.now += 100  # long enough for the next probe
        probe = attempt(b, "p")
        assert probe.probe
        intervals.append(b.notice())
        b.failed(probe, REFUSED)
    assert intervals[0] == "API unavailable since 00:00:00 (probing every 1 s)"
    assert f"(probing every {MAX_PROBE_S:g} s)" in intervals[-1]

    clock.now += MAX_PROBE_S
    probe = attempt(b, "p")
    assert probe.probe
    assert b.succeeded()  # the outage is over
    assert not b.down and b.notice() is None
    assert not attempt(b, "q").probe


def test_a_probe_waits_for_its_time_and_only_one_goes_at_once(clock: Clock) -> None:
    async def scenario() -> None:
        b = breaker(clock)
        for item in "abc":
            b.failed(attempt_now(b, item), REFUSED)
        clock.now += DECLARE_AFTER_S
        b.failed(attempt_now(b, "d"), REFUSED)
        first = asyncio.create_task(b.turn("e"))
        second = asyncio.create_task(b.turn("f"))
        await asyncio.sleep(0)
        assert not first.done() and not second.done()  # the first probe is a second away
        clock.now += 1
        done, pending = await asyncio.wait({first, second}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1 and len(pending) == 1  # one probe; the other waits for its answer
        probe = done.pop().result()
        assert probe is not None and probe.probe and b.begin(probe)
        b.succeeded()
        rest = await asyncio.wait_for(pending.pop(), timeout=5)
        assert rest is not None and not rest.probe

    def attempt_now(b: Breaker, item: str) -> Turn:
        turn = Turn(item, clock.now, probe=False)
        assert b.begin(turn)
        return turn

    asyncio.run(scenario())


def test_past_max_outage_every_turn_is_refused(clock: Clock) -> None:
    b = breaker(clock, max_outage_s=30)
    for item in "abc":
        b.failed(attempt(b, item), REFUSED)
    clock.now += 29
    b.failed(attempt(b, "d"), REFUSED)
    assert b.down and not b.gave_up
    clock.now += 1
    assert asyncio.run(b.turn("e")) is None
    assert b.gave_up


def test_a_bad_request_says_the_service_is_there(clock: Clock) -> None:
    b = breaker(clock)
    for item in "abcdefgh":
        assert b.failed(attempt(b, item), BAD_REQUEST)
        clock.now += 1
    assert not b.down


def test_an_http_504_is_an_outages_but_our_own_timeout_is_the_items() -> None:
    gateway = Failure("timeout", True, False, 504, "timeout_error", "Request timeout")
    assert gateway.outage
    assert not Failure.timeout(0.5).outage
