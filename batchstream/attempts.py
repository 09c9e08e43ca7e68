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
from .outage import Breaker
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
    """The account cannot go on (401, 402, 403, credit or spend limit), or the server's certificate does not
    verify: every remaining item would fail the same way."""

    failure: Failure


class Cancelled(NamedTuple):
    """The run stopped launching while this item waited for its turn; it was not sent."""


class Unavailable(NamedTuple):
    """The API stayed unavailable past --max-outage (see `Breaker`); the item is not finished."""


Outcome = Ok | Failed | Fatal | Cancelled | Unavailable


async def run_attempts(
    request: Request,
    sender: Sender,
    controller: LaunchController,
    breaker: Breaker,
    policy: RetryPolicy,
    *,
    rng: random.Random,
    secret: str | None,
    stopping: Callable[[], bool],
    cached_tokens: int = 0,
) -> Outcome:
    """Try `request` until it succeeds, fails for good, or the run stops (`stopping()`).

    `attempts` counts every request sent; only failures the breaker charges to this item count against
    --max-attempts, so an outage spends none of them. `cached_tokens` of its prompt are expected to be read
    from the prompt cache, which the input-token rate limit does not count (for current models), so the
    pacing leaves them out.
    """
    model, size = str(request.params.get("model") or ""), prompt_bytes(request.params)
    max_tokens = int(request.params.get("max_tokens") or 0)
    retries: dict[str, int] = {}
    attempt = charged = 0
    while True:
        turn = await breaker.turn(request.id)
        if turn is None:
            return Unavailable()
        input_estimate = max(controller.inputs.estimate(model, size) - cached_tokens, 0)
        try:
            ticket = await controller.acquire(input_estimate, max_tokens)
        except BaseException:
            breaker.abandoned(turn)
            raise
        if stopping():  # the run stopped while this one waited its turn
            controller.release(ticket)
            breaker.abandoned(turn)
            return Cancelled()
        if not breaker.begin(turn):  # an outage began while it waited: it waits for the probes instead
            controller.release(ticket)
            continue
        attempt += 1
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
        except BaseException:  # cancelled: the run stopped
            controller.release(ticket)
            breaker.abandoned(turn)
            raise
        else:
            if breaker.succeeded():
                controller.recover()
            try:
                usage = sent.message.get("usage") or {}
                controller.release(ticket, usage.get("output_tokens") or 0)
                controller.inputs.observe(model, size, usage)
                controller.on_success(sent.headers, ticket, usage.get("output_tokens") or 0)
            except Exception as exc:  # the reply came and is paid for: another attempt would pay again
                return Failed(classify(exc, secret=secret), attempt, retries)
            return Ok(sent, attempt, retries)
        if failure.fatal:
            breaker.abandoned(turn)
            return Fatal(failure)
        if breaker.failed(turn, failure):
            charged += 1
        if failure.throttled:
            refused = failure.status == 429  # a 429 refuses a request before charging it anything
            controller.on_throttle(failure.retry_after, failure.headers, ticket, charged=not refused)
        limit = min(policy.max_attempts, failure.attempt_limit or policy.max_attempts)
        if not failure.retryable or charged >= limit:
            return Failed(failure, attempt, retries)
        retries[failure.cause] = retries.get(failure.cause, 0) + 1
        if not breaker.down:  # in an outage the breaker paces the attempts
            await asyncio.sleep(policy.delay(attempt, failure.retry_after, rng))
