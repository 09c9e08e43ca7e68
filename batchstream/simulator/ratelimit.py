"""Rate limits enforced the way the API documents them (https://docs.claude.com/en/api/rate-limits).

Requests, input tokens and output tokens per minute (RPM, ITPM, OTPM) are each a token bucket whose
capacity is the per-minute limit, starting full and refilled continuously at limit/60 a second. A request
is admitted only when every bucket holds what it charges: one request; its input tokens, counted at the
start (`input_tokens + cache_creation_input_tokens`: cache reads are free, see `itpm_charge`); and
`max_tokens` of output, reserved at the start and given back down to the tokens actually produced at the
end. Every reply carries `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,remaining,
reset}`: token counts rounded to the nearest thousand, as the API rounds them, `reset` (RFC 3339) the
moment the bucket is full again, and `tokens-*` the more restrictive of the two token buckets. A refused
request is charged nothing and is answered 429 with `retry-after`, the whole seconds until it would fit.

A request larger than a whole bucket would never fit; the simulator lets it through once that bucket is
full (the bucket goes into debt), so a too-small limit slows a client down instead of failing it forever.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .http import header_lines
from .wire import rfc3339

# Reported for a limit that is not configured: large enough that no well-behaved client ever throttles.
_UNLIMITED_REQUESTS = 50_000
_UNLIMITED_INPUT_TOKENS = 10_000_000
_UNLIMITED_OUTPUT_TOKENS = 2_000_000

# The bucket names, in the order of `RateLimits.buckets`, with how a 429's message names each limit.
FAMILIES = ("requests", "input-tokens", "output-tokens")
_UNITS = {"requests": "requests", "input-tokens": "input tokens", "output-tokens": "output tokens"}


@dataclass(frozen=True, slots=True)
class Level:
    """One bucket as its headers describe it."""

    limit: int
    remaining: int
    full_in_s: float


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    levels: tuple[Level, Level, Level]  # requests, input tokens, output tokens (after this request's charge)
    wait_s: float = 0.0  # refused: how long until it would fit
    refused_by: str | None = None  # refused: the family of the bucket that refused it
    reserved: int = 0  # admitted: output tokens held until `settle`


class Bucket:
    __slots__ = ("level", "limit", "rate", "stamp")

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.level = float(limit)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(float(self.limit), self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` fits (as of the last refill); one larger than the bucket fits when full."""
        missing = min(amount, self.limit) - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def state(self, rounded: bool) -> Level:
        level = max(0.0, self.level)
        remaining = round(level, -3) if rounded else math.floor(level)
        return Level(self.limit, int(remaining), (self.limit - self.level) / self.rate)


_UNLIMITED_LEVELS = (
    Level(_UNLIMITED_REQUESTS, _UNLIMITED_REQUESTS, 0.0),
    Level(_UNLIMITED_INPUT_TOKENS, _UNLIMITED_INPUT_TOKENS, 0.0),
    Level(_UNLIMITED_OUTPUT_TOKENS, _UNLIMITED_OUTPUT_TOKENS, 0.0),
)
# Every admission with no limit configured: one shared value rather than a new one per request.
_UNLIMITED = Admission(True, _UNLIMITED_LEVELS)


class RateLimits:
    """The three buckets; a limit left None is not enforced and reported as a very large one."""

    def __init__(
        self,
        rpm: int | None,
        itpm: int | None = None,
        otpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = (rpm, itpm, otpm)
        self._clock = clock
        self.buckets: tuple[Bucket | None, ...] = ()
        self.reset()

    def reset(self) -> None:
        now = self._clock()
        self.buckets = tuple(None if limit is None else Bucket(limit, now) for limit in self._limits)

    def admit(self, input_tokens: int, max_tokens: int) -> Admission:
        """Charge one request, its input tokens and `max_tokens` of output if all three fit; else nothing."""
        if self.buckets == (None, None, None):
            return _UNLIMITED
        now = self._clock()
        amounts = (1, input_tokens, max_tokens)
        wait, refused_by = 0.0, None
        for family, bucket, amount in zip(FAMILIES, self.buckets, amounts, strict=True):
            if bucket is not None:
                bucket.refill(now)
                bucket_wait = bucket.wait_for(amount)
                if bucket_wait > wait:
                    wait, refused_by = bucket_wait, family
        if refused_by is not None:
            return Admission(False, self._levels(), wait, refused_by)
        for bucket, amount in zip(self.buckets, amounts, strict=True):
            if bucket is not None:
                bucket.level -= amount
        return Admission(True, self._levels(), reserved=max_tokens)

    def peek(self) -> Admission:
        """The current levels without a charge, for answers given before a request reaches `admit`."""
        if self.buckets == (None, None, None):
            return _UNLIMITED
        now = self._clock()
        for bucket in self.buckets:
            if bucket is not None:
                bucket.refill(now)
        return Admission(True, self._levels())

    def settle(self, admission: Admission, output_tokens: int) -> None:
        """The request is over: give back what it reserved beyond the `output_tokens` it produced."""
        bucket = self.buckets[2]
        unused = admission.reserved - output_tokens
        if bucket is not None and unused > 0:
            bucket.refill(self._clock())
            bucket.level = min(float(bucket.limit), bucket.level + unused)

    def limit_of(self, family: str) -> int | None:
        return self._limits[FAMILIES.index(family)]

    def _levels(self) -> tuple[Level, Level, Level]:
        requests, inputs, outputs = (
            default if bucket is None else bucket.state(rounded=index > 0)
            for index, (bucket, default) in enumerate(zip(self.buckets, _UNLIMITED_LEVELS, strict=True))
        )
        return requests, inputs, outputs


def refusal_message(limits: RateLimits, family: str) -> str:
    """A 429's message, worded as the API words it."""
    return (
        f"This request would exceed your organization's rate limit of {limits.limit_of(family):,} "
        f"{_UNITS[family]} per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
        "You can see the response headers for current usage. Please reduce the prompt length or the maximum "
        "tokens requested, or try again later."
    )


def rate_limit_headers(admission: Admission) -> bytes:
    """The rate-limit headers, as `header_lines` encodes them."""
    now = time.time()
    requests, inputs, outputs = admission.levels
    # `tokens-*`: the more restrictive of the two token limits at this moment.
    tokens = inputs if inputs.remaining / inputs.limit <= outputs.remaining / outputs.limit else outputs
    return _headers(
        tuple(
            (level.limit, level.remaining, math.ceil(now + level.full_in_s))
            for level in (requests, inputs, outputs, tokens)
        )
    )


@functools.lru_cache(maxsize=256)
def _headers(values: tuple[tuple[int, int, int], ...]) -> bytes:
    """Built and encoded once per distinct set of values, which without limits means once a second rather
    than per request: formatting the times was a tenth of the simulator's own code's cost."""
    fields = {}
    for family, (limit, remaining, reset_s) in zip((*FAMILIES, "tokens"), values, strict=True):
        fields[f"anthropic-ratelimit-{family}-limit"] = str(limit)
        fields[f"anthropic-ratelimit-{family}-remaining"] = str(remaining)
        fields[f"anthropic-ratelimit-{family}-reset"] = _rfc3339(reset_s)
    return header_lines(fields)


@functools.lru_cache(maxsize=256)
def _rfc3339(epoch_s: int) -> str:
    return rfc3339(epoch_s)


_CACHE_READS_COUNT = ("claude-3-haiku", "claude-3-5-haiku", "claude-3-opus")


def itpm_charge(usage: dict[str, Any], model: str) -> int:
    """The input tokens a request counts against the input-tokens-per-minute limit, from its usage.

    Cache writes count and cache reads do not, except for the older models the rate-limit docs mark
    (https://docs.claude.com/en/api/rate-limits, "cache-aware ITPM"): Haiku 3, Haiku 3.5 and Opus 3.
    """
    charge = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0)
    if model.startswith(_CACHE_READS_COUNT):
        charge += int(usage.get("cache_read_input_tokens") or 0)
    return charge
