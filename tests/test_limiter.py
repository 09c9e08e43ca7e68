"""Launch pacing: token buckets from --rpm/--itpm/--otpm and from the API's rate-limit headers, input-token
calibration, and AIMD."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time

import pytest
from conftest import Clock

from batchstream.limiter import LaunchController, Ticket, TokenBucket
from batchstream.tokens import InputCalibration

MODEL = "claude-sonnet-5-5"


def test_a_user_cap_allows_a_few_seconds_of_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock(), burst_s=5.0)  # --rpm 60: one request a second, 5 at once
    for _ in range(5):
        assert bucket.wait_time(1, clock()) == 0.0
        bucket.take(1, clock())
    assert bucket.wait_time(1, clock()) == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.wait_time(1, clock()) == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.wait_time(1, clock()) == 0.0


def test_output_tokens_are_charged_afterwards_and_the_debt_delays_the_next_launch() -> None:
    clock = Clock()
    bucket = TokenBucket(6_000, clock(), burst_s=5.0)  # --otpm 6000: 100 tokens/s, 500 at once
    bucket.take(1_500, clock())  # a reply far longer than the burst
    assert bucket.tokens == -1_000
    assert bucket.wait_time(1, clock()) == pytest.approx(10.01)


def test_headers_teach_the_limit_and_an_empty_bucket_waits_one_slot_not_the_window() -> None:
    clock = Clock()
    controller = LaunchController(8, clock=clock)
    headers = {
        "anthropic-ratelimit-requests-limit": "120",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z",
    }
    controller.on_success(headers)
    bucket = controller.learned("requests")
    assert bucket.rate == 2.0
    assert bucket.wait_time(1, clock()) == pytest.approx(0.5)  # 60 s / 120, not until the far-away reset


def test_a_reply_s_remaining_is_taken_as_of_when_its_request_was_sent() -> None:
    """Three requests in flight, the first one's reply says 10 remain: the server counted that before the
    other two arrived, so 8 remain now, plus what the bucket refilled in the 1.5 s since it was sent."""
    clock = Clock()
    controller = LaunchController(8, clock=clock)

    async def send_three() -> list[Ticket]:
        return [await controller.acquire(0, 0) for _ in range(3)]

    first, _, third = asyncio.run(send_three())
    assert (first.requests, third.requests) == (1, 3)
    clock.now += 1.5
    headers = {"anthropic-ratelimit-requests-limit": "120", "anthropic-ratelimit-requests-remaining": "10"}
    controller.on_success(headers, first)
    assert controller.learned("requests").tokens == pytest.approx(10 - 2 + 1.5 * 2.0)
    # The newest request's reply: nothing was sent after it, so only the refill is added.
    controller.on_success({**headers, "anthropic-ratelimit-requests-remaining": "5"}, third)
    assert controller.learned("requests").tokens == pytest.approx(5 + 1.5 * 2.0)


def test_a_user_cap_holds_whatever_the_headers_allow() -> None:
    """--rpm 30 against an account allowing 4,000 a minute: after the cap's 5 s burst the cap paces, not
    the account's bucket."""
    clock = Clock()
    controller = LaunchController(8, rpm=30, clock=clock)
    controller.observe_headers(
        {"anthropic-ratelimit-requests-limit": "4000", "anthropic-ratelimit-requests-remaining": "3999"}
    )
    learned = controller.learned("requests")
    assert learned is not None and learned.rate == pytest.approx(4000 / 60)
    for _ in range(2):  # the cap's burst: 2.5 requests at 0.5 a second
        ticket = controller._try_take(0, 0)
        assert ticket is not None
        controller.release(ticket)
    assert controller._try_take(0, 0) is None
    assert controller._wait_s == pytest.approx(1.0)
    assert controller.paced_by == "RPM"


def test_throttling_halves_the_window_once_per_burst_and_successes_grow_it_back() -> None:
    clock = Clock()
    controller = LaunchController(16, clock=clock)
    controller.on_throttle(None, None)
    controller.on_throttle(None, None)  # the same burst: no second halving
    assert controller.window == 8
    clock.now += 2
    controller.on_throttle(2.0, None)
    assert controller.window == 4
    expected = 4.0
    for _ in range(4):
        controller.on_success(None)
        expected += 1 / expected  # at the threshold already: one more slot per window's worth of successes
    assert controller.window == pytest.approx(expected)
    assert controller.window == pytest.approx(4.9206, abs=1e-4)


def test_the_end_of_an_outage_opens_the_window_to_the_ceiling_at_once() -> None:
    clock = Clock()
    controller = LaunchController(16, clock=clock)
    for _ in range(4):  # an outage's 529s, a second apart: 16 -> 1, and a pause of 30 s
        controller.on_throttle(30.0, None)
        clock.now += 2
    assert controller.window == 1
    controller.recover()
    assert controller.window == 16

    async def launch_all() -> None:
        async with asyncio.timeout(1):  # no pause left, and a full window: sixteen launches at once
            for _ in range(16):
                await controller.acquire(1, 1)

    asyncio.run(launch_all())
    assert controller.in_flight == 16


def test_acquire_respects_the_window() -> None:
    async def main() -> list[int]:
        controller = LaunchController(2)
        started: list[int] = []

        async def item(n: int) -> None:
            ticket = await controller.acquire(0, 0)
            started.append(n)
            await asyncio.sleep(0.05)
            controller.release(ticket)

        async with asyncio.TaskGroup() as tg:
            for n in range(4):
                tg.create_task(item(n))
            await asyncio.sleep(0.02)
            assert controller.in_flight == 2
            assert len(started) == 2
        return started

    assert sorted(asyncio.run(main())) == [0, 1, 2, 3]


def test_a_caller_arriving_as_a_slot_frees_up_goes_after_those_already_waiting() -> None:
    """The slot a release frees goes to the first caller waiting for one, not to one that asks in the same
    moment, before the waiter has had its turn to run."""

    async def main() -> list[str]:
        controller = LaunchController(1)
        order: list[str] = []

        async def waiting() -> None:
            ticket = await controller.acquire(0, 0)
            order.append(f"waiting{ticket.requests}")
            await asyncio.sleep(0.01)
            controller.release(ticket)

        first = await controller.acquire(0, 0)
        async with asyncio.timeout(2):  # a barging caller would hold the only slot while the waiter waits on
            async with asyncio.TaskGroup() as tg:
                tg.create_task(waiting())
                await asyncio.sleep(0.01)
                assert order == []
                controller.release(first)
                ticket = await controller.acquire(0, 0)  # no turn given up between the release and this
                order.append(f"late{ticket.requests}")
        return order

    assert asyncio.run(main()) == ["waiting2", "late3"]


def itpm_headers(limit: int, remaining: int) -> dict[str, str]:
    return {
        "anthropic-ratelimit-input-tokens-limit": str(limit),
        "anthropic-ratelimit-input-tokens-remaining": str(remaining),
    }


def test_output_is_held_at_max_tokens_and_the_unused_part_comes_back_when_the_reply_ends() -> None:
    clock = Clock()
    controller = LaunchController(8, otpm=600, clock=clock)  # 10 a second, 50 at once
    first = controller._try_take(0, 40)
    assert first is not None
    assert controller._try_take(0, 40) is None
    assert controller._wait_s == pytest.approx(3.0)  # 30 more needed at 10 a second
    assert controller.paced_by == "OTPM"
    controller.release(first, 5)  # a 5-token reply: 35 come back
    assert controller._try_take(0, 40) is not None


def test_the_freshest_reply_sets_the_count_either_way_and_an_older_one_only_lowers_it() -> None:
    """Estimates that ran high are won back (a count above ours is taken), others' use of the account
    shows (a count below ours is taken); a reply older than the one that set the count cannot raise it."""
    clock = Clock()
    controller = LaunchController(8, clock=clock)
    older, newer = controller._try_take(1_000, 0), controller._try_take(1_000, 0)
    assert older is not None and newer is not None
    controller.release(older)
    controller.release(newer)
    limit = 600_000  # 10,000 a second; reserve: 500 for rounding and 1% of the limit
    reserve = 500 + 6_000
    controller.on_success(itpm_headers(limit, 500_000), newer)
    bucket = controller.learned("input-tokens")
    assert bucket is not None and bucket.tokens == 500_000 - reserve
    controller.on_success(itpm_headers(limit, 590_000), older)  # older and higher: ignored
    assert bucket.tokens == 500_000 - reserve
    # Older and lower: taken, less the 1,000 sent after it, which its count did not include.
    controller.on_success(itpm_headers(limit, 300_000), older)
    assert bucket.tokens == 300_000 - reserve - 1_000
    clock.now += 1.0
    fresh = controller._try_take(1_000, 0)
    assert fresh is not None
    controller.release(fresh)
    controller.on_success(itpm_headers(limit, 550_000), fresh)  # fresher and higher: taken
    assert bucket.tokens == 550_000 - reserve


def test_a_reply_s_output_count_is_behind_by_what_was_held_after_it_and_ahead_by_its_own_give_back() -> None:
    clock = Clock()
    controller = LaunchController(8, clock=clock)
    first, second = controller._try_take(0, 1_000), controller._try_take(0, 1_000)
    assert first is not None and second is not None
    clock.now += 0.5
    controller.release(first, 200)
    headers = {
        "anthropic-ratelimit-output-tokens-limit": "60000",
        "anthropic-ratelimit-output-tokens-remaining": "50000",
    }
    controller.on_success(headers, first, 200)
    bucket = controller.learned("output-tokens")
    assert bucket is not None
    # 50,000 when the first arrived, less the reserve (500 + 600), less the second's 1,000 held since,
    # plus the first's 800 back, plus half a second's refill at 1,000 a second.
    assert bucket.tokens == pytest.approx(50_000 - 1_100 - 1_000 + 800 + 500)


def test_a_429_was_never_charged_so_its_give_back_is_not_added() -> None:
    clock = Clock()
    controller = LaunchController(8, clock=clock)
    ticket = controller._try_take(0, 1_000)
    assert ticket is not None
    controller.release(ticket)
    headers = {
        "anthropic-ratelimit-output-tokens-limit": "60000",
        "anthropic-ratelimit-output-tokens-remaining": "10000",
    }
    controller.on_throttle(None, headers, ticket, charged=False)
    bucket = controller.learned("output-tokens")
    assert bucket is not None and bucket.tokens == 10_000 - 1_100


def test_without_a_remaining_header_the_reset_time_says_what_is_left() -> None:
    controller = LaunchController(8, clock=Clock())
    in_30_s = datetime.datetime.fromtimestamp(time.time() + 30, datetime.UTC).isoformat()
    controller.observe_headers(
        {"anthropic-ratelimit-requests-limit": "120", "anthropic-ratelimit-requests-reset": in_30_s}
    )
    bucket = controller.learned("requests")
    assert bucket is not None and bucket.tokens == pytest.approx(60, abs=1)  # 30 s of 2 a second to go


def test_input_calibration_starts_cautious_and_converges_on_the_observed_ratio() -> None:
    """Replies counting 1 token per 4.2 bytes: the first estimate is the fixed 3 bytes a token; then the
    observed ratio with a margin that shrinks, within 6% above the truth after three dozen replies and
    never below it; another model is not affected."""
    calibration = InputCalibration()
    sizes = [2_000 + 137 * i for i in range(40)]
    truth = {size: round(size / 4.2) for size in sizes}
    assert calibration.estimate(MODEL, 8_400) == 8_400 // 3 + 8
    ratios = []
    for n, size in enumerate(sizes, 1):
        calibration.observe(MODEL, size, {"input_tokens": truth[size]})
        ratios.append(calibration.estimate(MODEL, 8_400) / 2_000)
        if n == 36:
            assert 1.0 < ratios[-1] <= 1.06
    assert all(later <= earlier for earlier, later in itertools.pairwise(ratios))
    assert ratios[0] == pytest.approx(1.3, abs=0.01)  # 30% margin after one reply
    assert min(ratios) >= 1.029  # never under the 3% floor
    assert calibration.estimate("claude-haiku-5-5", 8_400) == 8_400 // 3 + 8


def test_the_calibration_learns_the_whole_prompt_cache_writes_and_reads_included() -> None:
    """What a request expects to read from the cache comes off per request, not off the ratio: a prompt
    served mostly from the cache is no smaller."""
    calibration = InputCalibration()
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 790}
    calibration.observe(MODEL, 4_000, usage)
    assert calibration.estimate(MODEL, 4_000) == 1_300  # 1,000 tokens, plus the 30% margin
