"""The summary as GitHub-flavoured Markdown, for a CI job's summary page.

GitHub renders the file named by GITHUB_STEP_SUMMARY on the job's page, so a CI run shows its figures and
its first errors there without anyone downloading the results file. Everything that comes from the data
(ids, model names, error messages) is escaped, so a message with a `|` or a `<` cannot break the page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OutputWriteError
from .results import read_results

# The table cells and figures are the stderr table's, so both always show the same numbers.
from .summary import _fmt, _table_row

if TYPE_CHECKING:
    from .record import ResultRecord

__all__ = ["MAX_ERRORS", "append_github_step_summary", "first_errors", "markdown_summary"]

MAX_ERRORS = 5
_MESSAGE_CHARS = 200
_HEADER = ("model", "items", "ok", "errors", "input tok", "output tok", "cost")
# ASCII punctuation that Markdown or a table cell would interpret; CommonMark lets a backslash escape each.
_SPECIAL = re.compile(r"([\\`*_\[\]|~<>&])")


def markdown_summary(lines: Sequence[Mapping[str, Any]], first_errors: Sequence[ResultRecord]) -> str:
    """Totals, latency and TTFT, a per-model table and the first (at most 5) errors of a summary.

    `lines` are summary lines (`SummaryBuilder.lines()`), `first_errors` error result lines.
    """
    out = ["## batchstream summary", ""]
    total = next((line for line in lines if line.get("kind") == "total"), None)
    if total is None:
        return "\n".join([*out, "No results.", ""])
    total_cells = _table_row("**total**", total)
    out += [
        f"**{total['items']:,} items**: {total['ok']:,} ok, {total['errors']:,} error"
        f"{'' if total['errors'] == 1 else 's'}"
        f" · cost **{total_cells[-1]}**",
        "",
        _row(_HEADER),
        "|---|" + "---:|" * (len(_HEADER) - 1),
    ]
    for line in lines:
        if line.get("kind") == "model":
            model = line.get("model")
            out.append(_row(_table_row(_cell("(none)" if model is None else str(model)), line)))
    out += [
        _row(total_cells),
        "",
        f"tokens: input {total['input_tokens']:,} · output {total['output_tokens']:,}"
        f" · cache write {total['cache_creation_input_tokens']:,}"
        f" · cache read {total['cache_read_input_tokens']:,}" + _cache_cells(total),
        "",
        f"latency p50 {_fmt(total.get('latency_p50_s'), '.2f', ' s')}"
        f" · p95 {_fmt(total.get('latency_p95_s'), '.2f', ' s')}"
        f" · TTFT p50 {_fmt(total.get('ttft_p50_s'), '.2f', ' s')}"
        f" · p95 {_fmt(total.get('ttft_p95_s'), '.2f', ' s')}",
    ]
    if total.get("wall_time_s") is not None:
        out += [
            "",
            f"wall time {_fmt(total['wall_time_s'], '.1f', ' s')}"
            f" · {_fmt(total.get('items_per_s'), '.2f')} items/s"
            f" · {_fmt(total.get('output_tokens_per_s'), '.1f')} output tok/s",
        ]
    shown = first_errors[:MAX_ERRORS]
    if shown:
        out += [
            "",
            f"### First errors ({len(shown)} of {total['errors']:,})",
            "",
            "| id | type | status | message |",
            "|---|---|---:|---|",
        ]
        out += [_error_row(record) for record in shown]
    out.append("")
    return "\n".join(out)


def _error_row(record: ResultRecord) -> str:
    error = record.get("error")
    error = error if isinstance(error, Mapping) else {}
    status = error.get("status")
    return _row(
        (
            _cell(str(record.get("id"))),
            _cell(str(error.get("type") or "unknown")),
            "-" if status is None else _cell(str(status)),
            _cell(str(error.get("message") or ""), _MESSAGE_CHARS),
        )
    )


def _cache_cells(total: Mapping[str, Any]) -> str:
    """Warm-ups and what caching saved, when the run had any."""
    warmups = total.get("warmups") or 0
    saved = total.get("cache_saved_usd")
    text = f" · {warmups:,} cache warm-up{'' if warmups == 1 else 's'}" if warmups else ""
    if saved and (warmups or total.get("cache_read_input_tokens")):
        text += f" · saved ${saved:.6f} against no caching"
    return text


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(text: str, limit: int | None = None) -> str:
    """One line (a newline would end the table row), cut before escaping so no escape is cut in half."""
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)


def first_errors(path: str | os.PathLike[str], limit: int = MAX_ERRORS) -> list[ResultRecord]:
    """The first `limit` items whose result is an error, counting only each id's last line, as the summary.

    Two passes (last line per id, then the errors) keep memory to one entry per id.
    """
    path = Path(path)
    # "skip": a page of figures is no place to fail over a bad line; the summary itself reports one.
    last_line = {
        _id(obj): number
        for number, obj, _raw, _offset in read_results(path, bad_lines="skip")
        if obj is not None
    }
    found: list[ResultRecord] = []
    for number, obj, _raw, _offset in read_results(path, bad_lines="skip"):
        if len(found) >= limit:
            break
        if obj is not None and obj.get("status") == "error" and last_line.get(_id(obj)) == number:
            found.append(obj)
    return found


def _id(record: ResultRecord) -> str | None:
    item_id = record.get("id")
    return item_id if isinstance(item_id, str) else None


def append_github_step_summary(markdown: str) -> Path | None:
    """Append to the file GitHub Actions names in GITHUB_STEP_SUMMARY; outside Actions, do nothing (None)."""
    name = os.environ.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(markdown if markdown.endswith("\n") else markdown + "\n")
    except OSError as exc:
        raise OutputWriteError(
            f"{path}: cannot append the job summary (GITHUB_STEP_SUMMARY): {exc.strerror}"
        ) from None
    return path
