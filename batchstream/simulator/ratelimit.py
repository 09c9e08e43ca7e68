"""Requests-per-minute limiting the way the service does it: a token bucket refilled continuously.

The bucket starts full, so a burst of `rpm` requests passes at once and later ones trickle in at rpm/60
per second.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .http import header_lines
from .wire import rfc3339

# Reported when no rpm is configured: large enough that no well-behaved client ever throttles on them.
_UNLIMITED_REQUESTS = 50_000
_UNLIMITED_INPUT_TOKENS = 10_000_000
_UNLIMITED_OUTPUT_TOKENS = 2_000_000


@dataclass(frozen=True)
class Admission:
    allowed: bool
    limit: int
    remaining: int
    full_in_s: float
    wait_s: float


# Every admission without an rpm limit: one shared value rather than a new one per request.
_UNLIMITED = Admission(True, _UNLIMITED_REQUESTS, _UNLIMITED_REQUESTS, 0.0, 0.0)


class RequestLimiter:
    def __init__(self, rpm: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rpm = rpm
        self._clock = clock
        self._rate = (rpm or 0) / 60.0
        self._level = float(rpm or 0)
        self._stamp = clock()

    def reset(self) -> None:
        self._level = float(self._rpm or 0)
        self._stamp = self._clock()

    def admit(self) -> Admission:
        """Take one request's slot if there is one."""
        if self._rpm is None:
            return _UNLIMITED
        self._refill()
        if self._level >= 1.0:
            self._level -= 1.0
            return self._state(True, 0.0)
        return self._state(False, (1.0 - self._level) / self._rate)

    def peek(self) -> Admission:
        """The current state without taking a slot, for responses that never reach the limiter."""
        if self._rpm is None:
            return _UNLIMITED
        self._refill()
        return self._state(True, 0.0)

    def _refill(self) -> None:
        assert self._rpm is not None
        now = self._clock()
        self._level = min(float(self._rpm), self._level + (now - self._stamp) * self._rate)
        self._stamp = now

    def _state(self, allowed: bool, wait_s: float) -> Admission:
        assert self._rpm is not None
        full_in = (self._rpm - self._level) / self._rate
        return Admission(allowed, self._rpm, math.floor(self._level), full_in, wait_s)


def rate_limit_headers(admission: Admission) -> bytes:
    """The rate-limit headers, as `header_lines` encodes them."""
    now = time.time()
    return _headers(admission.limit, admission.remaining, int(now + admission.full_in_s), int(now))


@functools.lru_cache(maxsize=64)
def _headers(limit: int, remaining: int, requests_reset_s: int, tokens_reset_s: int) -> bytes:
    """Built and encoded once per distinct set of values, which without an rpm limit means once a second
    rather than per request: formatting the two times was a tenth of the simulator's own code's cost."""
    tokens_reset = rfc3339(tokens_reset_s)
    tokens = _UNLIMITED_INPUT_TOKENS + _UNLIMITED_OUTPUT_TOKENS
    return header_lines(
        {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": rfc3339(requests_reset_s),
            "anthropic-ratelimit-input-tokens-limit": str(_UNLIMITED_INPUT_TOKENS),
            "anthropic-ratelimit-input-tokens-remaining": str(_UNLIMITED_INPUT_TOKENS),
            "anthropic-ratelimit-input-tokens-reset": tokens_reset,
            "anthropic-ratelimit-output-tokens-limit": str(_UNLIMITED_OUTPUT_TOKENS),
            "anthropic-ratelimit-output-tokens-remaining": str(_UNLIMITED_OUTPUT_TOKENS),
            "anthropic-ratelimit-output-tokens-reset": tokens_reset,
            "anthropic-ratelimit-tokens-limit": str(tokens),
            "anthropic-ratelimit-tokens-remaining": str(tokens),
            "anthropic-ratelimit-tokens-reset": tokens_reset,
        }
    )
