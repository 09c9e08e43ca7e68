"""Resume planning: what the results file already holds, what changed, and what is left to run.

Planning reads the input once, validating every line it has not already checked (a line whose exact
bytes were recorded with the same defaults is taken as checked), and compares each id with the
checkpoint. It only reads: nothing is locked, sent or written, so bad input or a changed line costs the
user nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .config import RunConfig
from .errors import ResumeMismatchError
from .inputs import Request, Unchanged, iter_requests
from .results import Checkpoint

_Item = TypeVar("_Item", bound=Request | Unchanged)


class LineMask:
    """The set of input line numbers still to run, one byte per line of the file."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, line: int) -> None:
        if line >= len(self._bits):
            self._bits.extend(bytes(max(line + 1 - len(self._bits), len(self._bits))))
        self._bits[line] = 1

    def __contains__(self, line: object) -> bool:
        return isinstance(line, int) and line < len(self._bits) and self._bits[line] == 1

    def __bool__(self) -> bool:
        return bool(self._bits)


@dataclass
class Plan:
    spent_usd: float  # what the recorded results cost, for --max-cost
    # The lines to run: the first wave's requests as planning read them (memory bounded by --concurrency,
    # and not read a second time, which would hold up the first wave), then the rest by line number.
    first: list[Request] = field(default_factory=list)
    todo: LineMask = field(default_factory=LineMask)
    models: set[str] = field(default_factory=set)  # of the lines to run
    total: int = 0
    already_done: int = 0
    recorded_errors: int = 0

    def _to_run(self, item: Request | Unchanged, model: str, wave: int) -> None:
        self.models.add(model)
        # In file order: the first wave ends at the first line it cannot take.
        if isinstance(item, Request) and len(self.first) < wave and not self.todo:
            self.first.append(item)
        else:
            self.todo.add(item.line)


def owned(config: RunConfig, items: Iterator[_Item]) -> Iterator[_Item]:
    """The items this run is responsible for: its shard, if any."""
    shard = config.shard
    return items if shard is None else (item for item in items if shard.owns(item.id))


def requests(config: RunConfig, only_lines: LineMask | None = None) -> Iterator[Request]:
    """The input's requests this run owns, optionally only those on `only_lines`."""
    return owned(config, iter_requests(config.input, config.defaults, only_lines=only_lines))


def to_run(config: RunConfig, plan: Plan) -> Iterator[Request]:
    """The requests `plan` leaves to do, in file order: the first wave as planning read it, then the rest."""
    return itertools.chain(plan.first, requests(config, plan.todo) if plan.todo else ())


def make_plan(
    config: RunConfig,
    checkpoint: Checkpoint,
    output: Path,
    check_model: Callable[[str], None],
    observe: Callable[[Request], None] | None = None,
) -> Plan:
    """Compare the input with `checkpoint`; `check_model` is called once per model (it may refuse one),
    `observe` with each request to run that was read in full (auto-caching counts their prefixes)."""
    plan = Plan(checkpoint.cost_usd)

    def to_run(item: Request | Unchanged, model: str) -> None:
        plan._to_run(item, model, wave)
        if observe is not None and isinstance(item, Request):
            observe(item)

    mismatched: list[str] = []
    checked: set[str] = set()
    # Lines unchanged since their result was recorded come as Unchanged, not validated again; with nothing
    # recorded there is nothing to look up.
    recorded = checkpoint.line_hash if len(checkpoint) else None
    wave = config.limits.concurrency
    for item in owned(config, iter_requests(config.input, config.defaults, recorded=recorded)):
        plan.total += 1
        model = item.model if isinstance(item, Unchanged) else item.params["model"]
        if model not in checked:
            check_model(model)
            checked.add(model)
        seen = checkpoint.get(item.id)
        if seen is None:
            to_run(item, model)
            continue
        if isinstance(item, Request) and seen.request_hash != item.request_hash:
            mismatched.append(item.id)
        elif seen.error and config.retry_errors:
            to_run(item, model)
        else:
            plan.already_done += 1
        if seen.error:
            plan.recorded_errors += 1
    if mismatched:
        shown = ", ".join(repr(item) for item in mismatched[:10])
        more = f" and {len(mismatched) - 10} more" if len(mismatched) > 10 else ""
        raise ResumeMismatchError(
            f"{output}: {len(mismatched)} recorded item(s) no longer match their input line "
            f"(prompt or parameters changed): {shown}{more}. Nothing was sent. To start over, add "
            "--restart (the old results are kept as a .bak file); to keep them, write to another "
            "file with -o."
        )
    return plan
