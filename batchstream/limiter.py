"""When the next request may start.

Three things bound launches: the concurrency window (adaptive: halved when the service throttles,
grown back one step per success, never above `--concurrency`), pauses that a `retry-after` imposes on
everyone, and token buckets for requests, input tokens and output tokens per minute, modelled as the API
enforces them (https://docs.claude.com/en/api/rate-limits): input tokens are charged when a request
starts, output tokens are held at `max_tokens` from the start and given back down to the tokens produced
when it ends. The buckets are learned from the `anthropic-ratelimit-*` headers of every reply, so a run
that shares an account with other clients paces by what the account has left; `--rpm/--itpm/--otpm` add
caps of the user's own on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .deadline import Deadline
from .tokens import InputCalibration

# The three limits, in the order of every per-family tuple here, and how progress names each.
FAMILIES = ("requests", "input-tokens", "output-tokens")
LABELS = ("RPM", "ITPM", "OTPM")
# Taken off each family's `remaining`: the API rounds token counts to the nearest thousand, so the lower
# end of that; and a share of the limit for what the correction by ticket cannot know exactly. A constant
# reserve costs its size once per run, not a share of the rate: 1% of a limit is 0.6 s of refill.
_RESERVE = ((0.0, 0.0), (500.0, 0.01), (500.0, 0.01))
# How long after the last wait `paced_by` still names what held launches back.
_PACED_RECENTLY_S = 2.0


class TokenBucket:
    """Continuously refilled budget; it may go into debt (a request larger than the whole bucket, or a
    server that says fewer remain than were thought to).

    The caller passes the time: the launch controller reads its clock once per decision, not once per
    bucket and step, on a path every request takes.
    """

    __slots__ = ("_stamp", "_view_of", "capacity", "rate", "tokens")

    def __init__(self, per_minute: float, now: float, *, burst_s: float = 60.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.tokens = self.capacity
        self._stamp = now
        self._view_of = -1  # the number (`Ticket.requests`) of the request whose reply last set `tokens`

    def _refill(self, now: float) -> None:
        tokens = self.tokens + (now - self._stamp) * self.rate
        self.tokens = tokens if tokens < self.capacity else self.capacity
        self._stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        self._refill(now)
        # A request larger than the whole bucket could never fit: let it go once the bucket is full.
        needed = (amount if amount < self.capacity else self.capacity) - self.tokens
        return 0.0 if needed <= 0 else needed / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.tokens -= amount

    def give_back(self, amount: float, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + amount)

    def observe(self, limit: float, remaining: float, sent_at: float, now: float, request: int) -> None:
        """Take the server's count, `remaining` as of `sent_at`, when the `request`-th request was sent
        (what was sent since already taken off).

        A count from a request sent after the one that set the bucket last is the freshest there is and is
        taken as it is, up or down: an estimate that ran high is won back, and others' use of the account
        shows. An older one (replies come back out of order) may only lower the bucket.
        """
        self._refill(now)
        self.rate = limit / 60.0
        self.capacity = max(1.0, limit)
        tokens = min(self.capacity, remaining + max(0.0, now - sent_at) * self.rate)
        if request >= self._view_of:
            self._view_of = request
            self.tokens = tokens
        elif tokens < self.tokens:
            self.tokens = tokens


class Ticket(NamedTuple):
    """One request's place among those sent: when, and how much of each limit had been taken by then
    (itself included). The rate-limit headers of its reply were counted when it arrived, so they do not
    yet count anything sent after it.

    What other requests gave back after it was sent is left out of that correction: the server may
    already have counted a give-back that happened between this request's sending and its arrival, and
    counting it twice is what led to 429s; leaving out one it had not is only cautious."""

    sent_at: float
    requests: int
    input_tokens: int
    output_tokens: int  # `max_tokens` of every request sent so far
    reserved: int  # this request's own `max_tokens`, held until `release`


# Each header family with the names of its three headers, built once: this runs per reply.
_HEADERS = tuple(
    tuple(f"anthropic-ratelimit-{family}-{part}" for part in ("limit", "remaining", "reset"))
    for family in FAMILIES
)


class LaunchController:
    """When a request may be sent: the window (never above `ceiling`), pauses and rate buckets."""

    def __init__(
        self,
        ceiling: int,
        *,
        rpm: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self.window = float(ceiling)
        self._threshold = float(ceiling)
        self._clock = clock
        self._in_flight = 0
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._changed = asyncio.Event()
        self._waiting = 0  # callers in `_wait`: with none, a change has no one to wake
        now = clock()
        # Per family: the bucket the headers teach (None until a reply has them), and the user's cap.
        self._learned: list[TokenBucket | None] = [None, None, None]
        # A user cap is a promise not to exceed it: allow only a few seconds' burst.
        self._caps = tuple(
            None if limit is None else TokenBucket(limit, now, burst_s=5.0) for limit in (rpm, itpm, otpm)
        )
        # Every bucket in force, with its family's index: the launch path walks only these.
        self._buckets: list[tuple[int, TokenBucket]] = [
            (index, cap) for index, cap in enumerate(self._caps) if cap is not None
        ]
        self._sent = Ticket(now, 0, 0, 0, 0)
        self._turn = asyncio.Lock()
        self._queued = 0  # callers taking turns on `_turn`
        # What the last refusal of `_try_take` said to wait for: so long, or (None) a slot in the window.
        self._wait_s: float | None = None
        self._paced = ("", -math.inf)  # what held the last launch back, and when
        # What a request's input is estimated to count against the input-tokens limit, learned from replies.
        self.inputs = InputCalibration()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def paced_by(self) -> str | None:
        """What held launches back in the last moments (a limit's name, "concurrency" or "retry-after")."""
        label, at = self._paced
        return label if self._clock() - at < _PACED_RECENTLY_S else None

    def learned(self, family: str) -> TokenBucket | None:
        """The bucket the headers taught for `family` (one of `FAMILIES`), if any reply had them yet."""
        return self._learned[FAMILIES.index(family)]

    def _notify(self) -> None:
        # Twice per request (its release and its reply): a new event only when someone waits on this one.
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait(self, timeout: float | None) -> None:
        changed = self._changed
        self._waiting += 1
        try:
            if timeout is None:
                await changed.wait()
                return
            # A Deadline fires once. anyio's scope re-checks its deadline when its timer fires, and on
            # uvloop, whose timers tick in whole milliseconds, a wait of a fraction of one (a bucket pacing
            # hundreds of requests a second) became a busy loop of timers until the deadline passed.
            with contextlib.suppress(TimeoutError), Deadline(timeout):
                await changed.wait()
        finally:
            self._waiting -= 1

    async def acquire(self, input_tokens: int, output_tokens: int) -> Ticket:
        """Wait until one more request may be sent now, then count it as in flight.

        Callers take turns (`_turn`, first come first served), and only the one whose turn it is waits on
        the window and the buckets. With every caller polling, a bucket that paces hundreds of requests a
        second woke all of them on every change and every timer, and the waiting alone took a whole core.
        With no one waiting and nothing to wait for, the turn is taken and given back without a lock: the
        lock would not have suspended either, and this runs for every request.
        """
        ticket = None if self._queued else self._try_take(input_tokens, output_tokens)
        if ticket is None:
            self._queued += 1
            try:
                async with self._turn:
                    while (ticket := self._try_take(input_tokens, output_tokens)) is None:
                        await self._wait(self._wait_s)
            finally:
                self._queued -= 1
        return ticket

    def _try_take(self, input_tokens: int, output_tokens: int) -> Ticket | None:
        """Count one more request as sent if the window and the buckets allow it now; else note the wait."""
        now = self._clock()
        if self._in_flight >= max(1, int(self.window)):
            self._wait_s = None
            self._paced = ("concurrency", now)
            return None
        wait = self._paused_until - now
        held_by = "retry-after"
        amounts = (1, input_tokens, output_tokens)
        for index, bucket in self._buckets:
            bucket_wait = bucket.wait_time(amounts[index], now)
            if bucket_wait > wait:
                wait, held_by = bucket_wait, LABELS[index]
        if wait > 0:
            self._wait_s = wait
            self._paced = (held_by, now)
            return None
        self._in_flight += 1
        for index, bucket in self._buckets:
            bucket.take(amounts[index], now)
        sent = self._sent
        ticket = self._sent = Ticket(
            now,
            sent.requests + 1,
            sent.input_tokens + input_tokens,
            sent.output_tokens + output_tokens,
            output_tokens,
        )
        return ticket

    def release(self, ticket: Ticket, output_tokens: int = 0) -> None:
        """The request is over, having produced `output_tokens`: the rest of what it held comes back."""
        self._in_flight -= 1
        unused = ticket.reserved - output_tokens
        if unused > 0:
            now = self._clock()
            for index, bucket in self._buckets:
                if index == 2:
                    bucket.give_back(unused, now)
        self._notify()

    def on_success(
        self, headers: Mapping[str, str] | None, ticket: Ticket | None = None, output_tokens: int = 0
    ) -> None:
        """A reply came whole, with `output_tokens`; its headers were counted when its request arrived."""
        # Slow start up to the level of the last decrease, then one more slot per window's worth of successes.
        if self.window < self._threshold:
            self.window = min(self.ceiling, self.window + 1)
        else:
            self.window = min(self.ceiling, self.window + 1 / self.window)
        if headers is not None and ticket is not None:
            self.observe_headers(headers, ticket, given_back=ticket.reserved - output_tokens)
        elif headers is not None:
            self.observe_headers(headers)
        self._notify()

    def recover(self) -> None:
        """An outage ended: the window its failures shrank said nothing about our own pace, so it opens
        to the ceiling again at once (the rate buckets still pace what the account allows)."""
        self.window = self._threshold = float(self.ceiling)
        self._paused_until = 0.0
        self._notify()

    def on_throttle(
        self,
        retry_after: float | None,
        headers: Mapping[str, str] | None,
        ticket: Ticket | None = None,
        *,
        charged: bool = True,
    ) -> None:
        """A 429 or 529. A 429 refuses the request before charging it anything (`charged=False`)."""
        now = self._clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        # One decrease per burst of throttles: the responses to requests already in flight say nothing new.
        if now - self._last_decrease > 1.0:
            self._threshold = max(1.0, self.window / 2)
            self.window = self._threshold
            self._last_decrease = now
        if headers is not None:
            given_back = ticket.reserved if ticket is not None and charged else 0
            self.observe_headers(headers, ticket, given_back=given_back)
        self._notify()

    def observe_headers(
        self, headers: Mapping[str, str], ticket: Ticket | None = None, *, given_back: int = 0
    ) -> None:
        """Learn the limits and what is left of them from a reply's headers; with the request's `ticket`,
        what was sent after it is taken off `remaining` (with many requests in flight, the reply's count is
        that many behind), and the output tokens this request gave back when it ended are added."""
        now = self._clock()
        sent = self._sent
        if ticket is None:
            since, sent_at, request = (0, 0, 0), now, sent.requests
        else:
            since = (
                sent.requests - ticket.requests,
                sent.input_tokens - ticket.input_tokens,
                sent.output_tokens - ticket.output_tokens - given_back,
            )
            sent_at, request = ticket.sent_at, ticket.requests
        for index, (limit_header, remaining_header, reset_header) in enumerate(_HEADERS):
            limit = _number(headers.get(limit_header))
            if limit is None or limit <= 0:
                continue
            remaining = _number(headers.get(remaining_header))
            if remaining is None:  # the reset time says as much, to the second: when the bucket is full
                remaining = _remaining_from_reset(headers.get(reset_header), limit)
                if remaining is None:
                    continue
            bucket = self._learned[index]
            if bucket is None:
                bucket = self._learned[index] = TokenBucket(limit, now)
                self._buckets.append((index, bucket))
            rounding, share = _RESERVE[index]
            remaining -= rounding + share * limit + since[index]
            bucket.observe(limit, remaining, sent_at, now, request)
        # No pause until the `-reset` time: that is when the whole bucket is full again, while the next
        # request fits much sooner; the bucket, now empty, already waits just that long.


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _remaining_from_reset(value: str | None, limit: float) -> float | None:
    """What remains now if the bucket, refilled at limit/60 a second, is full at `value` (RFC 3339)."""
    if value is None:
        return None
    try:
        reset = datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
    return max(0.0, limit - max(0.0, reset - time.time()) * limit / 60.0)
