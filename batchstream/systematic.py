"""Systematic errors: when a run's first items all fail the same way, stop the run, not the whole file.

A model that does not exist or has retired (404 `not_found_error`), or a parameter every line carries that
the API refuses (the same 400 each time), fails every item identically; spending the file on it writes
thousands of error rows that then have to be found and run again. So until something in the run succeeds,
the error rows of items that failed for good are held back; once `THRESHOLD` of them carry the same error,
the run stops with it (exit 2) and the held items are not recorded, so the corrected command runs them.
The first success releases what was held, to be written as the errors they are; so does the run's end.
"""

from __future__ import annotations

from collections import Counter

from .inputs import Request
from .record import ResultRecord
from .transport.failures import Failure

THRESHOLD = 10
# Held rows at most while no error repeats THRESHOLD times: past it, the errors are not one error.
HOLD_LIMIT = 5 * THRESHOLD


class SystematicErrors:
    def __init__(self, threshold: int = THRESHOLD) -> None:
        self._threshold = threshold
        self._held: list[tuple[Request, ResultRecord]] = []
        self._counts: Counter[tuple[int | None, str, str]] = Counter()
        self._watching = True
        self.tripped: Failure | None = None  # the error that stopped the run
        self.count = 0  # how many items failed with it

    def failed(
        self, request: Request, record: ResultRecord, failure: Failure
    ) -> list[tuple[Request, ResultRecord]]:
        """An item failed for good: the rows to write now (its own, or none while held back). Sets
        `tripped` when its error reaches the threshold."""
        if self.tripped is not None:
            return []  # the run is stopping on it: items still finishing run again too
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
            return self.release()
        return []

    def succeeded(self) -> list[tuple[Request, ResultRecord]]:
        """Something succeeded, so the errors are the items' own: stop watching, hand back the held rows."""
        self._watching = False
        return self.release()

    def release(self) -> list[tuple[Request, ResultRecord]]:
        """The held rows to write now: none once the run stopped on them (a re-run does those items)."""
        held, self._held = self._held, []
        return [] if self.tripped is not None else held
