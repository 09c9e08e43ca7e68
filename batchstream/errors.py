"""Exit codes, and every error batchstream raises, in one place.

Two families, because they travel differently:

    BatchstreamError          stops the whole run; shown as one line, never a traceback (has exit_code)
    ├── UsageError            bad options, no API key, a locked or unusable output file
    ├── InputError            the input file's problems, all listed with file, line and field
    ├── PriceFileError        a --price-file that cannot be used
    ├── ResumeMismatchError   recorded items no longer match their input lines
    ├── FatalAPIError         the account cannot go on (401, 402, 403, credit or spend limit), the
    │                         certificate does not verify, or the first items all fail the same way
    ├── OutageError           the API stayed unavailable longer than --max-outage
    ├── OutputWriteError      results could not be written (disk full, I/O error)
    └── InternalError         a bug of ours outside any one item; results kept

    StreamError               one attempt's stream is unusable; that attempt fails, the run goes on
    ├── IncompleteStreamError the stream ended before `message_stop`
    ├── StreamEventError      an `error` event arrived mid-stream
    └── StreamProtocolError   the stream broke the protocol (a delta for an unknown block, bad tool JSON)

Every error that stops batchstream maps to one exit code, so scripts and CI can tell "some items failed"
from "nothing could run" without parsing messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ITEM_ERRORS = 1
    USAGE = 2
    BUDGET = 3
    OUTAGE = 4
    INTERNAL = 70  # EX_SOFTWARE: a bug in batchstream stopped the run
    INTERRUPTED = 130


class BatchstreamError(Exception):
    """An error that stops the whole run; its message is shown to the user as is (no traceback)."""

    exit_code: ExitCode = ExitCode.USAGE
    # Whether results were already being written when it struck, so that the same command resumes.
    resumable: bool = False


class UsageError(BatchstreamError):
    """Bad options, a missing key, a locked or unusable output file."""


NO_API_KEY = (
    "no API key: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...) "
    "or run against the built-in simulator with --simulate"
)


class InputError(BatchstreamError):
    """All of a file's problems at once; `total` counts past the cap so the size of the mess is known."""

    def __init__(self, problems: Sequence[object], total: int) -> None:
        super().__init__(problems, total)
        self.problems = list(problems)
        self.total = total

    def __str__(self) -> str:
        lines = [str(problem) for problem in self.problems]
        hidden = self.total - len(self.problems)
        if hidden:
            lines.append(f"... and {hidden} more problem{'' if hidden == 1 else 's'}")
        return "\n".join(lines)


class PriceFileError(BatchstreamError, ValueError):
    """A --price-file that cannot be used; the message points at the file, model and field at fault."""


class ResumeMismatchError(BatchstreamError):
    """The results file records ids whose request no longer matches the input."""


class FatalAPIError(BatchstreamError):
    """Every remaining item would fail the same way: the account cannot go on (401, 402, 403, an exhausted
    credit balance or spend limit), the server's certificate does not verify, or the run's first items all
    failed with the same error."""

    resumable = True


class OutageError(BatchstreamError):
    """The API stayed unavailable longer than --max-outage; unfinished items run again on resume."""

    exit_code = ExitCode.OUTAGE
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


class StreamError(Exception):
    """One attempt's stream cannot be used; the attempt fails and may be retried."""


class IncompleteStreamError(StreamError):
    """The stream ended without `message_stop`: the reply is partial and must not be recorded."""


class StreamEventError(StreamError):
    """The API sent an `error` event after the stream had started (e.g. overloaded mid-reply)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class StreamProtocolError(StreamError):
    """The stream broke the protocol: a delta for an unknown block, or tool input that is not JSON."""
