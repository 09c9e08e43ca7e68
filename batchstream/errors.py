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
    INTERNAL = 70  # EX_SOFTWARE: a bug in batchstream stopped the run
    INTERRUPTED = 130


class BatchstreamError(Exception):
    """An error that stops the whole run; its message is shown to the user as is (no traceback)."""

    exit_code: ExitCode = ExitCode.USAGE
    # Whether results were already being written when it struck, so that the same command resumes.
    resumable: bool = False


class UsageError(BatchstreamError):
    """Bad options, a missing key, a locked or unusable output file."""


class ResumeMismatchError(BatchstreamError):
    """The results file records ids whose request no longer matches the input."""


class FatalAPIError(BatchstreamError):
    """The API refused the account (401, 402, 403): every remaining item would fail the same way."""

    resumable = True


class OutputWriteError(BatchstreamError):
    """Results could not be written (disk full, I/O error); what was written stays valid."""

    resumable = True


class InternalError(BatchstreamError):
    """A failure outside any one item (a bug of ours): the run stops cleanly, its results kept."""

    exit_code = ExitCode.INTERNAL
    resumable = True

    @classmethod
    def from_exception(cls, exc: BaseException, output: object, secret: str | None) -> InternalError:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        what = f"{type(exc).__name__}: {exc}"
        if secret:
            what = what.replace(secret, "[redacted]")
        return cls(
            f"internal error: {what} (a bug in batchstream; please report it). "
            f"Results already written to {output} are kept."
        )
