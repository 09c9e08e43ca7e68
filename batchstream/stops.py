"""Why a run stops, and what a run that stops early says: one line each, naming the cause, what was kept, and
how to go on."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from .errors import FatalAPIError, OutageError
from .transport.failures import Failure


class StopReason(StrEnum):
    """Why a run ended: the one answer, recorded on the summary's total line as `stopped`."""

    COMPLETED = "completed"
    BUDGET = "budget"  # --max-cost: the next item could have passed it
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
    OUTAGE = "outage"  # the API stayed unavailable past --max-outage; raised after the summary
    ERROR = "error"  # a run-level error (refused account, disk, a bug); raised after the summary


_FATAL_CAUSES = {
    "authentication": "the API rejected the API key",
    "permission": "the API key is not allowed to do this",
    "billing": "the account cannot pay for more requests",
    "usage_limit": "the account has reached its usage or spend limit",
    "certificate": "the server's TLS certificate does not verify (check SSL_CERT_FILE, a proxy, --base-url)",
}


def fatal_error(failure: Failure, output: Path) -> FatalAPIError:
    """The account cannot go on, or the server cannot be trusted: every remaining item would fail."""
    return FatalAPIError(
        f"{_FATAL_CAUSES[failure.cause]} ({failure.describe()}). Every remaining item would fail the same "
        f"way, so the run stopped. Results already written to {output} are kept; fix the cause and run the "
        "same command again to resume."
    )


def systematic_error(failure: Failure, count: int, output: Path) -> FatalAPIError:
    """The run's first items all failed the same way (see held.py)."""
    return FatalAPIError(
        f"the first {count} items all failed the same way and none succeeded ({failure.describe()}), so the "
        "run stopped instead of spending the whole file on it. Those items are not recorded; results "
        f"already written to {output} are kept. Fix the cause and run the same command again."
    )


def outage_error(since: str, max_outage_s: float, last_error: str, output: Path) -> OutageError:
    """The API stayed unavailable past --max-outage (see outage.py, and batches/engine.py's Unavailable)."""
    return OutageError(
        f"the API has been unavailable since {since}, longer than --max-outage {max_outage_s:g} s (last "
        f"error: {last_error}). Unfinished items are not recorded; results already written to {output} "
        "are kept."
    )
