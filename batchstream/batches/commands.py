"""The command line of `--via batches`: its `run` options, and `batchstream status` / `batchstream cancel`."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..config import BATCH_MAX_REQUESTS, VIAS, BatchOptions
from ..errors import NO_API_KEY, BatchstreamError, UsageError
from ..table import render
from .journal import Intent, Journal, journal_path

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds in "90", "90s", "30m", "2h" or "1h30m"."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _duration_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0")
    return seconds


def batch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`run`'s options for the Message Batches API."""
    defaults = BatchOptions()
    options = [
        click.option(
            "--via",
            type=click.Choice(VIAS),
            default="stream",
            show_default=True,
            help="stream: one streaming request per item. batches: the Message Batches API, at half the "
            "price, answered within 24 h (most within an hour).",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, BATCH_MAX_REQUESTS),
            default=defaults.size,
            show_default=True,
            help="With --via batches: requests per batch at most (a batch also stays under 256 MB).",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.001),
            default=None,
            help="With --via batches: seconds between looks at the batches "
            "(default: from 5 s, growing to 60 s).",
        ),
        click.option(
            "--batch-deadline",
            metavar="DURATION",
            callback=_duration_option,
            help="With --via batches: cancel a batch not ended this long (e.g. 2h, 30m) after its creation, "
            "and stream the items it did not answer.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_BASE_URL = click.option(
    "--base-url", envvar="ANTHROPIC_BASE_URL", help="API base URL [env: ANTHROPIC_BASE_URL]."
)
_RESULTS = click.argument("results", metavar="OUTPUT", type=click.Path(path_type=Path, dir_okay=False))


def _journal(results: Path) -> Journal:
    path = journal_path(results)
    if not path.exists():
        raise UsageError(f"{results}: no batches are waited for (no {path.name} next to it)")
    return Journal(path)


def _client(base_url: str | None) -> Any:
    from .client import BatchClient

    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if not api_key:
        raise UsageError(NO_API_KEY)
    return BatchClient(api_key=api_key, base_url=base_url, api_version=None)


@click.command(
    name="status",
    epilog="\b\nExit codes:\n  0  shown\n  2  no journal next to OUTPUT, no API key, or the API refused",
)
@_RESULTS
@_BASE_URL
def status_command(results: Path, base_url: str | None) -> None:
    """Show the Message Batches that the results file OUTPUT waits for (`run --via batches`).

    \b
    Examples:
      batchstream status prompts.results.jsonl
    """
    journal = _journal(results)
    waiting, unresolved = journal.waiting, journal.unresolved
    rows: list[list[str]] = []
    if waiting:
        rows = asyncio.run(_status_rows(_client(base_url), waiting))
    for intent in unresolved:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(intent.at))
        rows.append([f"(create sent {when}, unanswered)", "unknown", str(len(intent.items)), "", "", "", ""])
    if not rows:
        click.echo(f"{results}: no batches are waited for")
        return
    header = ["batch", "status", "processing", "succeeded", "errored", "expired", "canceled"]
    click.echo("\n".join(render(header, rows)))
    if unresolved:
        click.echo("(an unanswered create is settled from the list of batches when the run resumes)")


def _refused(exc: Exception, secret: str | None) -> BatchstreamError:
    from ..transport.failures import classify

    failure = classify(exc, secret=secret)
    status = f"HTTP {failure.status} " if failure.status is not None else ""
    return BatchstreamError(f"the API refused ({status}{failure.type}: {failure.message})")


async def _status_rows(client: Any, waiting: list[Intent]) -> list[list[str]]:
    rows = []
    try:
        for intent in waiting:
            assert intent.batch_id is not None
            batch = await client.retrieve(intent.batch_id)
            counts = batch.request_counts
            rows.append(
                [
                    batch.id,
                    batch.processing_status,
                    *map(str, (counts.processing, counts.succeeded, counts.errored, counts.expired)),
                    str(counts.canceled),
                ]
            )
    except Exception as exc:
        raise _refused(exc, client.api_key) from None
    finally:
        await client.aclose()
    return rows


@click.command(
    name="cancel",
    epilog="\b\nExit codes:\n  0  every waiting batch canceled (or already ended)\n"
    "  2  no journal next to OUTPUT, no API key, or the API refused",
)
@_RESULTS
@_BASE_URL
def cancel_command(results: Path, base_url: str | None) -> None:
    """Cancel the Message Batches that the results file OUTPUT waits for.

    Their answered items are still recorded by the next `run`; the canceled ones are submitted again.

    \b
    Examples:
      batchstream cancel prompts.results.jsonl
    """
    journal = _journal(results)
    if not journal.waiting:
        click.echo(f"{results}: no batches are waited for")
        return
    for line in asyncio.run(_cancel_all(_client(base_url), journal.waiting)):
        click.echo(line)


async def _cancel_all(client: Any, waiting: list[Intent]) -> list[str]:
    lines = []
    try:
        for intent in waiting:
            assert intent.batch_id is not None
            batch = await client.retrieve(intent.batch_id)
            if batch.processing_status == "in_progress":
                batch = await client.cancel(intent.batch_id)
            lines.append(f"{batch.id}: {batch.processing_status}")
    except Exception as exc:
        raise _refused(exc, client.api_key) from None
    finally:
        await client.aclose()
    return lines
