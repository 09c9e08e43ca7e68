"""The results file, which is also the checkpoint.

Each finished item is one JSON line written with a single `write` on an O_APPEND descriptor, so a crash
can at worst leave one half-written last line, which the next run drops. Lines reach the OS at once
(no user-space buffer) and the disk at least every second (fsync), and at exit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

import orjson

from .atomic import atomic_write
from .errors import OutputWriteError, UsageError

if TYPE_CHECKING:
    from .record import ResultRecord


class Recorded(NamedTuple):
    error: bool  # recorded as an error: done, unless --retry-errors
    request_hash: str  # "" when the line has none, so that it matches no request


# What a result line without a line hash (written before they were recorded) is held with: no hex digest.
_NO_LINE_HASH = "-" * 16


BadLines = Literal["keep", "skip", "raise", "last"]


# (line number, record or None for a bad line, the raw line, its byte offset). A plain tuple: a NamedTuple
# took a sixth longer to read a file of 200k lines. Line numbers count blank lines too, as an editor does;
# the raw line includes its newline (the file's last line may lack one). The record is what the line claims
# to be: a file edited by hand may lack a field or hold another type, so readers use `.get` and check.
ResultLine = tuple[int, "ResultRecord | None", bytes, int]


class BadResultLine(ValueError):
    """A line of a results file that is not a result, named by file and line so it can be found and fixed."""

    def __init__(self, path: Path, number: int, reason: str) -> None:
        super().__init__(f"{path}:{number}: {reason}")
        self.path = path
        self.number = number


def read_results(
    path: Path, *, bad_lines: BadLines, need_id: bool = False, end: int | None = None
) -> Iterator[ResultLine]:
    """Every non-blank line of a results file, parsed, and what to do with a line that is not a result.

    A bad line is one that is not valid JSON or not a JSON object (or, with `need_id`, has no string "id").
    `bad_lines` says what happens to it: "keep" yields it with record None (a rewrite must not lose bytes it
    does not understand), "skip" leaves it out, "raise" raises BadResultLine, and "last" forgives it only
    as the last non-blank line, where a crash mid-write leaves one (yielded with record None), and raises
    for any other. With `end`, reading stops at the first line that starts at or after that byte offset.
    """
    loads = orjson.loads  # a tight loop: summaries and merges read files of 10^5+ lines
    held: BadResultLine | None = None  # with "last": a bad line, fatal if another line follows
    position = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            offset = position
            if end is not None and offset >= end:
                return
            position += len(raw)
            try:
                record = loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.strip():
                    continue
                record, reason = None, f"not valid JSON ({exc})"
            else:
                if type(record) is not dict:
                    record, reason = None, "not a JSON object"
                elif need_id and type(record.get("id")) is not str:
                    record, reason = None, 'no string "id"'
            if held is not None:
                raise held
            if record is None:
                if bad_lines == "skip":
                    continue
                if bad_lines == "raise":
                    raise BadResultLine(path, number, reason)
                if bad_lines == "last":
                    held = BadResultLine(path, number, reason)
            yield number, record, raw, offset


class Checkpoint:
    """What the results file already records: by id (the last line for an id wins), and the spend.

    One short string per id (an error flag, the line hash, the request hash) rather than an object with
    fields: a resume over 10^5+ results holds them all while it plans, and that took most of its memory.
    """

    def __init__(self, entries: dict[str, str] | None = None, cost_usd: float = 0.0) -> None:
        self._entries = entries if entries is not None else {}
        self.cost_usd = cost_usd

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, item_id: str) -> Recorded | None:
        entry = self._entries.get(item_id)
        return None if entry is None else Recorded(entry[0] == "e", entry[17:])

    def line_hash(self, item_id: str) -> str | None:
        """The hash of the input line the id's result was made from; a result from before line hashes were
        recorded has a placeholder that matches no line."""
        entry = self._entries.get(item_id)
        return None if entry is None else entry[1:17]


def load_checkpoint(path: Path) -> Checkpoint:
    """Read the results file as a checkpoint.

    A line that is not valid JSON is only forgiven as the file's last line (a crash leftover, dropped by
    `repair_tail` before writing); anywhere else it means the file was edited or is not ours.
    """
    if not path.exists():
        return Checkpoint()
    # A tight loop: a resumed run reads this file before it sends anything, and it may hold 10^5+ lines.
    # Not `read_results`, for two reasons: on 200k lines that took 5-10% longer (a generator and a tuple per
    # line); and the leftover forgiven here must be what `repair_tail` drops, the file's physically last
    # line, which also needs its newline (read_results forgives the last non-blank line, newline or not).
    entries: dict[str, str] = {}
    loads = orjson.loads
    cost_usd = 0.0
    bad: int | None = None
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if bad is not None:
                raise UsageError(
                    f"{path}:{bad}: not a valid result line; fix or remove it, or start over with --restart"
                )
            try:
                obj = loads(raw)
                item_id = obj["id"]
            except (orjson.JSONDecodeError, TypeError, KeyError):
                if raw.strip():
                    bad = number
                continue
            if type(item_id) is not str or raw[-1:] != b"\n":
                bad = number
                continue
            get = obj.get
            line_hash = get("line_hash")
            request_hash = get("request_hash")
            entries[item_id] = (
                f"{'e' if get('status') == 'error' else '-'}"
                f"{line_hash if type(line_hash) is str and len(line_hash) == 16 else _NO_LINE_HASH}"
                f"{request_hash if type(request_hash) is str else ''}"
            )
            cost = get("cost_usd")
            if type(cost) is float or type(cost) is int:  # as parsed from JSON: never a bool or a subclass
                cost_usd += cost
    return Checkpoint(entries, cost_usd)


def repair_tail(path: Path) -> bool:
    """Drop a half-written last line left by a crash; True if something was dropped."""
    if not path.exists():
        return False
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return False
        keep = _complete_prefix(fh, size)
        if keep == size:
            return False
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
        return True


def _complete_prefix(fh: Any, size: int) -> int:
    """Length of the file up to the end of its last complete, parseable line."""
    fh.seek(size - 1)
    if fh.read(1) != b"\n":
        return _after_last_newline(fh, size)
    start = _after_last_newline(fh, size - 1)
    fh.seek(start)
    try:
        orjson.loads(fh.read(size - start))
    except orjson.JSONDecodeError:
        return start
    return size


def _after_last_newline(fh: Any, end: int) -> int:
    """Offset just past the last newline before `end` (0 if there is none), reading backwards in blocks."""
    pos = end
    while pos > 0:
        start = max(0, pos - (1 << 16))
        fh.seek(start)
        found = fh.read(pos - start).rfind(b"\n")
        if found != -1:
            return start + found + 1
        pos = start
    return 0


def drop_statuses(path: Path, statuses: set[str]) -> int:
    """Rewrite the file without the lines whose status is in `statuses`, atomically; returns how many."""
    dropped = 0
    with atomic_write(path) as out:
        for _number, record, raw, _offset in read_results(path, bad_lines="keep"):
            if record is not None and record.get("status") in statuses:
                dropped += 1
                continue
            out.write(raw)
    return dropped


def rewrite_in_order(path: Path, ids: Iterable[str]) -> None:
    """Rewrite the results file with its lines in the order of `ids`, atomically."""
    with atomic_write(path) as out:
        copy_in_order(path, ids, out)


def copy_in_order(path: Path, ids: Iterable[str], out: BinaryIO) -> None:
    """Write the lines of `path` to `out` in the order of `ids`, the last line of an id standing for it.

    Only line offsets are held in memory, never the lines; lines whose id is not in `ids` follow at the
    end in their file order. Bad lines raise: every caller has vetted the file (the checkpoint, a merge's
    pick), so one here means the file changed meanwhile, and dropping it silently would lose it.
    """
    offsets: dict[str, tuple[int, int]] = {}
    for _number, record, raw, offset in read_results(path, bad_lines="raise"):
        item_id = None if record is None else record.get("id")
        if isinstance(item_id, str):
            offsets[item_id] = (offset, len(raw))
    with path.open("rb") as src:
        for item_id in ids:
            span = offsets.pop(item_id, None)
            if span is not None:
                src.seek(span[0])
                out.write(src.read(span[1]))
        for start, length in sorted(offsets.values()):
            src.seek(start)
            out.write(src.read(length))


class OutputLock:
    """An exclusive lock beside the results file, so two runs never append to the same file.

    The lock lives in its own file (`OUTPUT.lock`) because the results file itself may be replaced
    atomically (with --retry-errors), which would leave a lock on the old inode.
    """

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(output.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"{self.path.with_suffix('')}: another batchstream run is writing this file "
                f"(lock held on {self.path}); wait for it to finish or choose another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ResultWriter:
    """Appends whole lines; fsyncs at most once a second in the background and on close."""

    def __init__(self, path: Path, *, tee_stdout: bool = False) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._tee = sys.stdout.fileno() if tee_stdout else None
        self._dirty = False

    @property
    def size(self) -> int:
        """The file's length: the lines of earlier runs and those written since."""
        return self._size

    def write(self, record: ResultRecord) -> None:
        data = _dumps_line(record)
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            # Take back the part of the line that did get written, so the file stays whole lines.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise OutputWriteError(_write_error_message(self.path, exc)) from None
        self._size += len(data)
        self._dirty = True
        if self._tee is not None:
            try:
                _write_all(self._tee, data)
            except OSError as exc:
                raise OutputWriteError(
                    f"cannot write results to stdout ({exc.strerror}); the run stopped"
                ) from None

    def sync(self) -> None:
        if self._dirty:
            self._dirty = False
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise OutputWriteError(_write_error_message(self.path, exc)) from None

    def close(self) -> None:
        if self._fd == -1:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1


def _dumps_line(record: ResultRecord) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which tool input may hold; the standard library does not.
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a short write (a signal, a pipe that is full): the rest, piece by piece
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _write_error_message(path: Path, exc: OSError) -> str:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EIO: "an I/O error",
        errno.EDQUOT: "the disk quota is exceeded",
    }
    what = reason.get(exc.errno or 0, exc.strerror or str(exc))
    return (
        f"{path}: cannot write results ({what}); the run stopped. Lines already written are kept; "
        "free space and run the same command again to resume."
    )
