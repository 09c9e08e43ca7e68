"""The command line's host for a run: what a person (or a CI log) sees while it goes.

Progress and log lines on stderr, the summary table at the end, a Markdown job summary when
`GITHUB_STEP_SUMMARY` is set, and the second Ctrl-C that quits at once. None of this is the library's:
`run_batch` does it only through a `Host`, and this is the one the command line gives it.
"""

from __future__ import annotations

import os
import signal
import sys

from .errors import ExitCode, OutputWriteError
from .markdown import append_github_step_summary, first_errors, markdown_summary
from .progress import Progress, make_progress
from .runner import Host, RunReport
from .summary import format_table


def log(message: str) -> None:
    print(f"batchstream: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    log(f"warning: {message}")


def _quit_at_once(_signum: int, _frame: object) -> None:
    os._exit(ExitCode.INTERRUPTED)


class ConsoleHost(Host):
    watch_signals = True

    def __init__(self, *, quiet: bool, progress_interval: float) -> None:
        self._quiet = quiet
        self._interval = progress_interval

    def log(self, message: str) -> None:
        log(message)

    def progress(self, total: int, done_before: int) -> Progress:
        return make_progress(total, done_before, quiet=self._quiet, interval=self._interval)

    def interrupted(self) -> None:
        # The stop goes on (streams closing, the summary being written), and a second signal must quit at
        # once through all of it. A plain handler does that on any loop; on uvloop, the KeyboardInterrupt of
        # Python's default handler can be lost in the loop's callbacks and the process hangs instead
        # (MagicStack/uvloop#335). The process ends when the command does, so nothing restores them.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _quit_at_once)

    def finished(self, report: RunReport) -> None:
        lines = report.summary_lines
        if lines and os.environ.get("GITHUB_STEP_SUMMARY"):
            try:
                append_github_step_summary(markdown_summary(lines, first_errors(report.output)))
            except OutputWriteError as exc:
                warn(str(exc))
        if not self._quiet and lines:
            print(format_table(lines), file=sys.stderr, flush=True)
