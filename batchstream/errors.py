"""Exit codes and the errors that end a run.

Every error that stops batchstream maps to one exit code, so scripts and CI can tell "some items failed"
from "nothing could run" without parsing messages.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ITEM_ERRORS = 1
    USAGE = 2
    BUDGET = 3
    INTERRUPTED = 130


class BatchstreamError(Exception):
    """An error that stops the whole run; its message is shown to the user as is (no traceback)."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(BatchstreamError):
    """Bad options, a missing key, a locked or unusable output file."""


class ResumeMismatchError(BatchstreamError):
    """The results file records ids whose request no longer matches the input."""


class FatalAPIError(BatchstreamError):
    """The API refused the account (401, 402, 403): every remaining item would fail the same way."""


class OutputWriteError(BatchstreamError):
    """Results could not be written (disk full, I/O error); what was written stays valid."""
