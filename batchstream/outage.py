"""The run-wide circuit breaker: an outage pauses the run instead of burning the batch into error rows.

One item's attempts cannot tell a bad request from a dead service; the run can. When attempts of several
items keep failing with causes an outage would also give (connection refused, DNS, 5xx, 529, stalls: see
`Failure.outage`) and nothing succeeds, those failures are not charged to the items' `--max-attempts`, and
once that has gone on for a short while the run is in an outage: nothing new is launched, and one request
at a time probes the service on a growing interval (or the server's `retry-after`, if longer). The first
success anywhere ends it and the run goes on at full speed. An outage longer than `--max-outage` ends the
run (exit 4); what was not finished is not recorded, so running the same command again does it.

`--max-attempts` keeps its meaning where it matters. A failure is charged to its item when some request
succeeded while that attempt was under way (others succeed: the failure is this item's), and while fewer
than `SUSPECT_ITEMS` different items have failed since the last success (one or two items failing over
and over are those items' problem, not the service's). So the first items caught by an outage may spend
one attempt each, and an item that keeps failing while the rest of the run goes well still ends in error.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Hashable

from .deadline import Deadline
from .transport.failures import Failure

# Failures of this many different items since the last success, with none succeeding meanwhile, make the
# failures the service's rather than the items'.
SUSPECT_ITEMS = 3
# ... and when they have gone on for this long, the run is in an outage: a blip is not one.
DECLARE_AFTER_S = 2.0
# Probes: the first this long after the outage is declared, then twice as long each time, up to the cap.
FIRST_PROBE_S = 1.0
MAX_PROBE_S = 10.0


class Turn:
    """One attempt's passage through the breaker: whose, when it was sent, and whether it is a probe."""

    __slots__ = ("item", "probe", "started")

    def __init__(self, item: Hashable, started: float, probe: bool) -> None:
        self.item = item
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
        self._failing_since: float | None = None  # the first outage-like failure since the last success
        self._failing_since_wall = 0.0
        self._failing_items: set[Hashable] = set()  # up to SUSPECT_ITEMS of the items failing since then
        self.last_failure: Failure | None = None
        self.down = False  # an outage is declared: launches wait for probes
        self.gave_up = False  # the outage outlasted max_outage_s
        self._interval = FIRST_PROBE_S
        self._next_probe = 0.0
        self._probing = False
        self._changed = asyncio.Event()

    # -- what attempts ask ----------------------------------------------------------------------------------

    async def turn(self, item: Hashable) -> Turn | None:
        """Wait until an attempt of `item` may start; None once the outage has outlasted `max_outage_s`."""
        while True:
            if self.gave_up:
                return None
            now = self._clock()
            if not self.down:
                return Turn(item, now, probe=False)
            if self._outlasted(now):
                self._give_up()
                return None
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return Turn(item, now, probe=True)
            assert self._failing_since is not None  # down implies failing
            wake = self._failing_since + self.max_outage_s
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
        self._failing_items.clear()
        ended = self.down
        self.down = self._probing = False
        self._interval = FIRST_PROBE_S
        if ended:
            self._notify()
        return ended

    def failed(self, turn: Turn, failure: Failure) -> bool:
        """An attempt failed; True when it counts against its item's --max-attempts.

        Failures an outage would not explain (a bad request, a 429) say the service is there: they are the
        item's own, and neither start nor end an outage.
        """
        now = self._clock()
        if turn.probe:
            self._probing = False
        if not failure.outage:
            if turn.probe:
                self._next_probe = now  # no answer about the outage: probe again at once
                self._notify()
            return True
        if self._last_success > turn.started:
            return True  # others succeeded meanwhile: this one is the item's own
        self.last_failure = failure
        if self._failing_since is None:
            self._failing_since = now
            self._failing_since_wall = self._wall_clock()
        if len(self._failing_items) < SUSPECT_ITEMS:
            self._failing_items.add(turn.item)
        suspect = len(self._failing_items) >= SUSPECT_ITEMS
        if not self.down and suspect and now - self._failing_since >= DECLARE_AFTER_S:
            self.down = True
            self._interval = FIRST_PROBE_S
            self._next_probe = now + self._wait(failure)
        elif turn.probe:
            self._interval = min(self._interval * 2, MAX_PROBE_S)
            self._next_probe = now + self._wait(failure)
        if suspect and self._outlasted(now):
            self._give_up()
        self._notify()
        return not suspect

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

    def notice(self) -> str | None:
        """The progress line's note while an outage lasts."""
        if not self.down:
            return None
        return f"API unavailable since {self.since} (probing every {self._interval:g} s)"

    def describe_failure(self) -> str:
        return "no answer" if self.last_failure is None else self.last_failure.describe()

    # -- inside ---------------------------------------------------------------------------------------------

    def _outlasted(self, now: float) -> bool:
        return self._failing_since is not None and now - self._failing_since >= self.max_outage_s

    def _wait(self, failure: Failure) -> float:
        """Until the next probe: the interval, or the server's retry-after where it asks for longer."""
        return max(self._interval, failure.retry_after or 0.0)

    def _give_up(self) -> None:
        self.gave_up = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
