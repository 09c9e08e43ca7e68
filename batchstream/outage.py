"""The run-wide circuit breaker: an outage pauses the run instead of burning the batch into error rows.

One item's attempts cannot tell a bad request from a dead service; the run can. When attempts across the
run keep failing with causes an outage would also give (connection refused, DNS, 5xx, 529, stalls: see
`Failure.outage`) and none succeeds, those failures are not charged to the items' `--max-attempts`, and once
that has gone on for a short while the run is in an outage: nothing new is launched, and one request at a
time probes the service on a growing interval (or the server's `retry-after`). The first success anywhere
ends it and the run goes on at full speed. An outage longer than `--max-outage` ends the run (exit 4);
what was not finished is not recorded, so running the same command again does it.

`--max-attempts` keeps its meaning where it matters: a failure is charged to its item when some other
request succeeded while that attempt was under way, so an item that fails while others succeed still ends
in error after its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from .deadline import Deadline
from .transport.failures import Failure

# An outage is declared after this many failures in a row across the run, with no success between them,
# spread over at least this long: a blip that fails the requests of one moment is not one.
DECLARE_AFTER_FAILURES = 3
DECLARE_AFTER_S = 2.0
# Probes: the first this long after the outage is declared, then twice as long each time, up to the cap.
FIRST_PROBE_S = 1.0
MAX_PROBE_S = 10.0


class Turn:
    """One attempt's passage through the breaker: when it started, and whether it is the outage's probe."""

    __slots__ = ("probe", "started")

    def __init__(self, started: float, probe: bool) -> None:
        self.started = started
        self.probe = probe


class Breaker:
    """Whether attempts may start, and whether a failed one counts against its item.

    Every attempt takes a `turn()` before it waits for the launch controller, is stamped by `begin(turn)`
    as it is sent, and ends with exactly one of `succeeded()`, `failed(turn, ...)` or `abandoned(turn)`.
    """

    def __init__(
        self,
        max_outage_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_outage_s = max_outage_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_success = -math.inf
        self._failing_since: float | None = None  # the first failure since the last success
        self._failing_since_wall = 0.0
        self._failures = 0  # outage-like failures since the last success
        self.last_failure: Failure | None = None
        self.down = False  # an outage is declared: launches wait for probes
        self.gave_up = False  # the outage outlasted max_outage_s
        self._interval = FIRST_PROBE_S
        self._next_probe = 0.0
        self._probing = False
        self._changed = asyncio.Event()

    # -- what attempts ask ----------------------------------------------------------------------------------

    async def turn(self) -> Turn | None:
        """Wait until an attempt may start; None once the outage has outlasted `max_outage_s`."""
        while True:
            if self.gave_up:
                return None
            now = self._clock()
            if not self.down:
                return Turn(now, probe=False)
            if self._failing_since is not None and now - self._failing_since >= self.max_outage_s:
                self._give_up()
                return None
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return Turn(now, probe=True)
            wake = self._failing_since + self.max_outage_s if self._failing_since is not None else math.inf
            if not self._probing:
                wake = min(wake, self._next_probe)
            changed = self._changed
            with contextlib.suppress(TimeoutError), Deadline(max(0.0, wake - now)):
                await changed.wait()

    def begin(self, turn: Turn) -> bool:
        """Whether the attempt may be sent now, having waited for the launch controller since its turn: not
        when an outage was declared meanwhile (it waits for the probes instead). From here on, a success
        elsewhere shows the service was up while it ran."""
        if self.down and not turn.probe:
            return False
        turn.started = self._clock()
        return True

    def succeeded(self) -> bool:
        """A reply came; True when it ends an outage (the caller restores full speed)."""
        self._last_success = self._clock()
        self._failing_since = None
        self._failures = 0
        ended = self.down
        self.down = False
        self._probing = False
        self._interval = FIRST_PROBE_S
        if ended:
            self._notify()
        return ended

    def failed(self, turn: Turn, failure: Failure) -> bool:
        """An attempt failed; True when it counts against its item's --max-attempts.

        Failures an outage would not explain (a bad request, a 429) say the service is there: they are the
        item's own, and neither start nor end an outage.
        """
        if turn.probe:
            self._probing = False
        if not failure.outage:
            if turn.probe:
                self._next_probe = self._clock()  # not an answer about the outage: probe again at once
                self._notify()
            return True
        if self._last_success > turn.started:
            return True  # others succeeded meanwhile: this one is the item's own
        now = self._clock()
        self.last_failure = failure
        if self._failing_since is None:
            self._failing_since = now
            self._failing_since_wall = self._wall_clock()
        self._failures += 1
        if not self.down and (
            self._failures >= DECLARE_AFTER_FAILURES and now - self._failing_since >= DECLARE_AFTER_S
        ):
            self.down = True
            self._interval = FIRST_PROBE_S
            self._next_probe = now + self._wait(failure)
        elif turn.probe:
            self._interval = min(self._interval * 2, MAX_PROBE_S)
            self._next_probe = now + self._wait(failure)
        if now - self._failing_since >= self.max_outage_s:
            self._give_up()
        self._notify()
        return False

    def abandoned(self, turn: Turn) -> None:
        """The attempt ended without an answer either way (the run stopped): let another probe go."""
        if turn.probe:
            self._probing = False
            self._notify()

    # -- what the run shows ---------------------------------------------------------------------------------

    @property
    def since(self) -> str:
        """When the failures began, as a local HH:MM:SS."""
        return time.strftime("%H:%M:%S", time.localtime(self._failing_since_wall))

    @property
    def interval_s(self) -> float:
        return self._interval

    def notice(self) -> str | None:
        """The progress line's note while an outage lasts."""
        if not self.down:
            return None
        return f"API unavailable since {self.since} (probing every {self._interval:g} s)"

    def describe_failure(self) -> str:
        failure = self.last_failure
        if failure is None:
            return "no answer"
        status = f"HTTP {failure.status} " if failure.status is not None else ""
        return f"{status}{failure.type}: {failure.message}"

    # -- inside ---------------------------------------------------------------------------------------------

    def _wait(self, failure: Failure) -> float:
        """Until the next probe: the interval, or the server's retry-after where it asks for longer."""
        return max(self._interval, failure.retry_after or 0.0)

    def _give_up(self) -> None:
        self.gave_up = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
