"""Error rows held back until the run can tell whose error it is: the item's, or the whole run's.

Two kinds of failure look like an item's own but may be the run's:

- Systematic errors. A model that does not exist or has retired (404 `not_found_error`), or a parameter
  every line carries that the API refuses (the same 400 each time), fails every item identically; spending
  the file on it writes thousands of error rows that then have to be found and run again. So until something
  in the run succeeds, the rows of items that failed for good are held back; once `THRESHOLD` of them carry
  the same error, the run stops with it (exit 2) and the held items are not recorded, so the corrected
  command runs them.
- Outage-like failures (`Failure.outage`) that an item was charged for: the breaker (outage.py) charges
  the first items caught by an outage before it can tell one. Their rows wait for the next success; if the
  run ends in an outage instead, they are not recorded, and the resume runs them.

A success releases what was held, to be written as the errors they are; so does the end of the run.
"""

from __future__ import annotations

from collections import Counter

from .inputs import Request
from .record import ResultRecord
from .transport.failures import Failure

THRESHOLD = 10
# Held rows at most while no error repeats THRESHOLD times: past it, the errors are not one error.
HOLD_LIMIT = 5 * THRESHOLD

Row = tuple[Request, ResultRecord]


class HeldRows:
    def __init__(self, threshold: int = THRESHOLD) -> None:
        self._threshold = threshold
        self._held: list[Row] = []  # until the run's first success, or the threshold
        self._suspects: list[Row] = []  # outage-like, until the next success
        self._counts: Counter[tuple[int | None, str, str]] = Counter()
        self._watching = True
        self.tripped: Failure | None = None  # the error that stopped the run
        self.count = 0  # how many items failed with it

    def failed(self, request: Request, record: ResultRecord, failure: Failure) -> list[Row]:
        """An item failed for good: the rows to write now (its own, or none while held back). Sets
        `tripped` when its error reaches the threshold."""
        if self.tripped is not None:
            return []  # the run is stopping on it: items still finishing run again too
        if failure.outage:
            self._suspects.append((request, record))
            return []
        if not self._watching or failure.retryable:
            return [(request, record)]
        key = (failure.status, failure.type, failure.message)
        self._counts[key] += 1
        self._held.append((request, record))
        if self._counts[key] >= self._threshold:
            self.tripped, self.count = failure, self._counts[key]
            return []
        if len(self._held) >= HOLD_LIMIT:
            self._watching = False
            held, self._held = self._held, []
            return held
        return []

    def succeeded(self) -> list[Row]:
        """Something succeeded, so the errors are the items' own: stop watching, hand back the held rows."""
        self._watching = False
        return self.release(outage=False)

    def release(self, *, outage: bool) -> list[Row]:
        """The held rows to write now: not those the run stopped on (a systematic error, or an outage with
        `outage`), which a re-run does."""
        held, self._held = self._held, []
        suspects, self._suspects = self._suspects, []
        return ([] if self.tripped is not None else held) + ([] if outage else suspects)
