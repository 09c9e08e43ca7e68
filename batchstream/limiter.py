"""When the next request may start.

Three things bound launches: the concurrency window (adaptive: halved when the service throttles,
grown back one step per success, never above `--concurrency`), pauses that a `retry-after` imposes on
everyone, and token buckets for requests, input tokens and output tokens per minute. The buckets are
set from the user's `--rpm/--itpm/--otpm` and, unless those are given, learned from the
`anthropic-ratelimit-*` headers, so launches are paced under the account's limits before a 429 happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .deadline import Deadline


class TokenBucket:
    """Continuously refilled budget; it may go into debt (output tokens are only known afterwards).

    The caller passes the time: the launch controller reads its clock once per decision, not once per
    bucket and step, on a path every request takes.
    """

    __slots__ = ("_stamp", "capacity", "rate", "tokens")

    def __init__(self, per_minute: float, now: float, *, burst_s: float = 60.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.tokens = self.capacity
        self._stamp = now

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

    def observe(self, limit: float, remaining: float, age_s: float, now: float) -> None:
        """Trust the server's view when it says fewer remain than we think.

        `remaining` was counted `age_s` ago; the bucket has refilled since.
        """
        self._refill(now)
        self.rate = limit / 60.0
        self.capacity = max(1.0, limit)
        self.tokens = min(self.tokens, remaining + age_s * self.rate)


# Each bucket the headers describe, with the names of its two headers (built once: this runs per reply).
_HEADER_BUCKETS = tuple(
    (name, f"anthropic-ratelimit-{name}-limit", f"anthropic-ratelimit-{name}-remaining")
    for name in ("requests", "input-tokens", "output-tokens")
)


class Ticket(NamedTuple):
    """One request's place among those sent: when, and how many requests and input tokens went before it
    (itself included). The rate-limit headers of its reply were counted when it arrived, so they do not
    yet count anything sent after it."""

    sent_at: float
    requests: int
    input_tokens: int


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
        user_set = {"requests": rpm, "input-tokens": itpm, "output-tokens": otpm}
        # The buckets the headers may teach, each with its headers and its place in a `sent_since`.
        self._learned = tuple(
            (name, limit_header, remaining_header, index)
            for index, (name, limit_header, remaining_header) in enumerate(_HEADER_BUCKETS)
            if user_set[name] is None
        )
        now = clock()
        self._buckets: dict[str, TokenBucket] = {
            # A user cap is a promise not to exceed it: allow only a few seconds' burst.
            name: TokenBucket(limit, now, burst_s=5.0)
            for name, limit in user_set.items()
            if limit is not None
        }
        self._sent = Ticket(now, 0, 0)
        self._turn = asyncio.Lock()
        self._queued = 0  # callers taking turns on `_turn`
        # What the last refusal of `_try_take` said to wait for: so long, or (None) a slot in the window.
        self._wait_s: float | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

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
        if self._in_flight >= max(1, int(self.window)):
            self._wait_s = None
            return None
        now = self._clock()
        wait = self._paused_until - now
        buckets = self._buckets
        requests, inputs, outputs = (
            buckets.get("requests"),
            buckets.get("input-tokens"),
            buckets.get("output-tokens"),
        )
        if requests is not None:
            wait = max(wait, requests.wait_time(1, now))
        if inputs is not None:
            wait = max(wait, inputs.wait_time(input_tokens, now))
        if outputs is not None:
            wait = max(wait, outputs.wait_time(output_tokens, now))
        if wait > 0:
            self._wait_s = wait
            return None
        self._in_flight += 1
        if requests is not None:
            requests.take(1, now)
        if inputs is not None:
            inputs.take(input_tokens, now)
        sent = self._sent
        ticket = self._sent = Ticket(now, sent.requests + 1, sent.input_tokens + input_tokens)
        return ticket

    def release(self, output_tokens: int = 0) -> None:
        self._in_flight -= 1
        outputs = self._buckets.get("output-tokens")
        if outputs is not None and output_tokens:
            outputs.take(output_tokens, self._clock())
        self._notify()

    def on_success(self, headers: Mapping[str, str] | None, ticket: Ticket | None = None) -> None:
        # Slow start up to the level of the last decrease, then one more slot per window's worth of successes.
        if self.window < self._threshold:
            self.window = min(self.ceiling, self.window + 1)
        else:
            self.window = min(self.ceiling, self.window + 1 / self.window)
        if headers is not None:
            self.observe_headers(headers, ticket)
        self._notify()

    def recover(self) -> None:
        """An outage ended: the window its failures shrank said nothing about our own pace, so it opens
        to the ceiling again at once (the rate buckets still pace what the account allows)."""
        self.window = self._threshold = float(self.ceiling)
        self._paused_until = 0.0
        self._notify()

    def on_throttle(
        self, retry_after: float | None, headers: Mapping[str, str] | None, ticket: Ticket | None = None
    ) -> None:
        now = self._clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        # One decrease per burst of throttles: the responses to requests already in flight say nothing new.
        if now - self._last_decrease > 1.0:
            self._threshold = max(1.0, self.window / 2)
            self.window = self._threshold
            self._last_decrease = now
        if headers is not None:
            self.observe_headers(headers, ticket)
        self._notify()

    def observe_headers(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        """Learn the limits from a reply's headers; with the request's `ticket`, what was sent after it is
        taken off `remaining`: with many requests in flight, the reply's count is that many behind."""
        now = self._clock()
        # Sent since the ticket, per bucket in `_HEADER_BUCKETS` order (output tokens are counted afterwards).
        sent_since = (0, 0, 0)
        age_s = 0.0
        if ticket is not None:
            sent = self._sent
            sent_since = (sent.requests - ticket.requests, sent.input_tokens - ticket.input_tokens, 0)
            age_s = now - ticket.sent_at
        for name, limit_header, remaining_header, index in self._learned:
            limit = _number(headers.get(limit_header))
            remaining = _number(headers.get(remaining_header))
            if limit is None or remaining is None or limit <= 0:
                continue
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(limit, now)
            bucket.observe(limit, remaining - sent_since[index], age_s, now)
        # No pause until the `-reset` time: that is when the whole bucket is full again, while the next
        # request fits much sooner; the bucket, now empty, already waits just that long.


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
