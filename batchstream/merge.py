"""Join the result files of sharded runs (CI matrix jobs) into one results file and its summary.

Each id must end up once. The same id in two files is folded when both lines say the same thing (a file
merged twice) and refused when they differ, since picking one would silently drop a result. Within one file
the last line for an id wins, as in a resumed run's checkpoint. Only a digest per id is held in memory: the
chosen lines are copied from their files in a second pass, and put in input order by offset.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .atomic import atomic_write
from .config import default_summary
from .errors import ExitCode, UsageError
from .inputs import Defaults, iter_requests
from .pricing import Pricer
from .results import BadResultLine, copy_in_order, read_results
from .summary import SummaryBuilder, write_summary
from .warmup import is_warmup_id

__all__ = ["MergeReport", "merge"]

_LIST_LIMIT = 20


@dataclass(frozen=True, slots=True)
class MergeReport:
    output: Path
    summary: Path
    items: int
    folded: int  # identical duplicate lines left out
    skipped: tuple[str, ...]  # "file:line" of truncated last lines left out
    missing: tuple[str, ...]  # input ids with no result (with an input only)
    unexpected: tuple[str, ...]  # result ids not in the input, kept after the input's (with an input only)
    summary_lines: list[dict[str, Any]]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ITEM_ERRORS if self.missing else ExitCode.OK


@dataclass(frozen=True, slots=True)
class _Pick:
    file: int
    line: int
    digest: bytes


def merge(
    parts: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    input_path: str | os.PathLike[str] | None = None,
    summary: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> MergeReport:
    """Write `parts` merged to `output` (atomically) and its summary (default: as `run` names it).

    With `input_path`, lines follow the input's order and input ids without a result are reported in
    `missing`. Raises UsageError, before writing anything, for conflicting lines or a corrupt file.
    """
    say = log or (lambda _message: None)
    paths = [Path(part) for part in parts]
    output = Path(output)
    summary_path = Path(summary) if summary is not None else default_summary(output)
    picks, folded, skipped = _pick(paths)
    for where in skipped:
        say(f"{where}: truncated last line (a crash leftover?) skipped")
    if folded:
        say(f"{folded} identical duplicate line(s) folded")
    missing: list[str] = []
    unexpected: list[str] = []
    order: list[str] | None = None
    if input_path is not None:
        # Only the ids matter here, and the built-in defaults accept every line some defaults accept.
        order = [request.id for request in iter_requests(input_path, Defaults())]
        missing = [item_id for item_id in order if item_id not in picks]
        known = set(order)
        # Cache warm-ups are lines of their own, never of an input line.
        unexpected = [item_id for item_id in picks if item_id not in known and not is_warmup_id(item_id)]
        if unexpected:
            say(
                f"{len(unexpected)} result(s) whose id is not in {input_path}, kept at the end: "
                f"{_listing(unexpected)}"
            )
        if missing:
            say(f"{len(missing)} id(s) of {input_path} have no result: {_listing(missing)}")
    builder = SummaryBuilder(Pricer())
    _write(output, _chosen_lines(paths, picks, builder), order)
    lines = builder.lines()
    write_summary(summary_path, lines)
    return MergeReport(
        output, summary_path, len(picks), folded, tuple(skipped), tuple(missing), tuple(unexpected), lines
    )


def _pick(paths: list[Path]) -> tuple[dict[str, _Pick], int, list[str]]:
    """The line to keep for every id, how many identical duplicates were folded, and the lines skipped."""
    picks: dict[str, _Pick] = {}
    folded = 0
    skipped: list[str] = []
    conflicts: list[str] = []
    for index, path in enumerate(paths):
        latest: dict[str, _Pick] = {}
        try:
            for number, obj, _raw, _offset in read_results(path, bad_lines="last", need_id=True):
                if obj is None:  # a truncated last line: the item has no result in this file
                    skipped.append(f"{path}:{number}")
                    continue
                digest = hashlib.blake2b(
                    orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16
                ).digest()
                latest[obj["id"]] = _Pick(index, number, digest)
        except BadResultLine as exc:
            raise UsageError(f"{path}:{exc.number}: not a valid result line; nothing was written") from None
        for item_id, pick in latest.items():
            earlier = picks.setdefault(item_id, pick)
            if earlier is pick:
                continue
            if earlier.digest == pick.digest:
                folded += 1
            else:
                conflicts.append(
                    f"{paths[earlier.file]}:{earlier.line} and {path}:{pick.line}: id {item_id!r}"
                )
    if conflicts:
        shown = "\n".join(conflicts[:_LIST_LIMIT])
        more = f"\n... and {len(conflicts) - _LIST_LIMIT} more" if len(conflicts) > _LIST_LIMIT else ""
        raise UsageError(
            f"{len(conflicts)} id(s) have different results in two files; nothing was written:\n{shown}{more}"
        )
    return picks, folded, skipped


def _chosen_lines(paths: list[Path], picks: dict[str, _Pick], builder: SummaryBuilder) -> Iterable[bytes]:
    for index, path in enumerate(paths):
        # `_pick` has vetted the lines already: a bad one can only be the truncated last line it skipped.
        for number, obj, raw, _offset in read_results(path, bad_lines="skip"):
            item_id = None if obj is None else obj.get("id")
            pick = picks.get(item_id) if isinstance(item_id, str) else None
            if obj is not None and pick is not None and pick.file == index and pick.line == number:
                builder.add(obj)
                yield raw if raw.endswith(b"\n") else raw + b"\n"


def _write(output: Path, lines: Iterable[bytes], order: list[str] | None) -> None:
    """Atomically, so a reader or a crash never sees a half-merged file; in the input's order if given."""
    if order is None:
        with atomic_write(output) as fh:
            fh.writelines(lines)
        return
    # Put in order from a scratch copy (deleted on close) in the output's directory, where there is room.
    with tempfile.NamedTemporaryFile(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp") as scratch:
        scratch.writelines(lines)
        scratch.flush()
        with atomic_write(output) as fh:
            copy_in_order(Path(scratch.name), order, fh)


def _listing(ids: list[str]) -> str:
    shown = ", ".join(repr(item_id) for item_id in ids[:_LIST_LIMIT])
    return shown + (f" and {len(ids) - _LIST_LIMIT} more" if len(ids) > _LIST_LIMIT else "")
