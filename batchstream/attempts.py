"""One item's attempts: send, classify what went wrong, wait, send again; return what came of it.

The loop decides on values (`Failure`, the retry policy) and returns an outcome value instead of calling
back into the runner, so the whole retry story of an item reads top to bottom here, and the runner only
acts on the four ways an item can end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import NamedTuple

from .config import RetryPolicy
from .deadline import Deadline
from .inputs import Request
from .limiter import LaunchController
from .tokens import prompt_bytes
from .transport import Sender, Sent
from .transport.failures import Failure, classify


class Ok(NamedTuple):
    sent: Sent
    attempts: int
    retries: dict[str, int]  # retried attempts by cause


class Failed(NamedTuple):
    """The item is done, in error: not retryable, or out of attempts."""

    failure: Failure
    attempts: int
    retries: dict[str, int]


class Fatal(NamedTuple):
    """The account is refused (401, 402, 403): every remaining item would fail the same way."""

    failure: Failure


class Cancelled(NamedTuple):
    """The run stopped launching while this item waited for its turn; it was not sent."""


Outcome = Ok | Failed | Fatal | Cancelled


async def run_attempts(
    request: Request,
    sender: Sender,
    controller: LaunchController,
    policy: RetryPolicy,
    *,
    rng: random.Random,
    secret: str | None,
    stopping: Callable[[], bool],
    cached_tokens: int = 0,
) -> Outcome:
    """Try `request` until it succeeds, fails for good, or the run stops (`stopping()`).

    `cached_tokens` of its prompt are expected to be read from the prompt cache, which the input-token
    rate limit does not count (for current models), so the pacing leaves them out.
    """
    model, size = str(request.params.get("model") or ""), prompt_bytes(request.params)
    max_tokens = int(request.params.get("max_tokens") or 0)
    retries: dict[str, int] = {}
    attempt = 0
    while True:
        attempt += 1
        input_estimate = max(controller.inputs.estimate(model, size) - cached_tokens, 0)
        ticket = await controller.acquire(input_estimate, max_tokens)
        if stopping():  # the run stopped while this one waited its turn
            controller.release(ticket)
            return Cancelled()
        try:
            # Not an anyio cancel scope or asyncio.timeout, which cost several times as much; all cancel the
            # same way, so a stop still gets through.
            with Deadline(policy.timeout) as deadline:
                sent = await sender.send(request)
        except Exception as exc:
            controller.release(ticket)
            if isinstance(exc, TimeoutError) and deadline.expired():
                failure = Failure.timeout(policy.timeout)
            else:
                failure = classify(exc, secret=secret)
        else:
            try:
                usage = sent.message.get("usage") or {}
                controller.release(ticket, usage.get("output_tokens") or 0)
                controller.inputs.observe(model, size, usage)
                controller.on_success(sent.headers, ticket, usage.get("output_tokens") or 0)
            except Exception as exc:  # the reply came and is paid for: another attempt would pay again
                return Failed(classify(exc, secret=secret), attempt, retries)
            return Ok(sent, attempt, retries)
        if failure.fatal:
            return Fatal(failure)
        if failure.throttled:
            charged = failure.status != 429  # a 429 refuses a request before charging it anything
            controller.on_throttle(failure.retry_after, failure.headers, ticket, charged=charged)
        limit = min(policy.max_attempts, failure.attempt_limit or policy.max_attempts)
        if not failure.retryable or attempt >= limit:
            return Failed(failure, attempt, retries)
        retries[failure.cause] = retries.get(failure.cause, 0) + 1
        await asyncio.sleep(policy.delay(attempt, failure.retry_after, rng))
