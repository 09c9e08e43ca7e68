"""Priming the prompt cache on `--via batches`: each group's shared prefix written once, by a batch of its
own, before the group's items are submitted.

The Batches API keeps a cache of its own, apart from the Messages API's, so a warm-up streamed through
the Messages API would not help a batch; and a batch's requests run side by side, so a group submitted
unprimed pays a write for every request that starts before the first write lands. So each group's
warm-up (`warmup.py`) goes first, alone in a single-request batch, and the group's items are held back
until that batch ends, however it ends: one that errs, expires or is canceled only costs the group its
head start. Groups are primed independently of each other; items of no group are never held.

Breakpoints take the 1-hour TTL here: a batch may take far longer than 5 minutes to process, so the
group's reads may come long after the priming write
(https://docs.anthropic.com/en/docs/build-with-claude/batch-processing: "consider using the 1-hour cache
duration with prompt caching for better cache hit rates when processing batches with shared context").

Crash safety is the journal's: a priming batch is journalled like any other (intent, batch id, done),
its one item the warm-up, whose id names its group (`~warmup:GROUP:...`). A resume that finds a group's
priming batch there re-attaches to it while it runs, or takes the group as primed once it was recorded:
no group is primed twice. An intent whose create call made no batch is voided, and that group primed
then.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Iterator

from ..cacherules import TTL_1H
from ..caching import CachePlan
from ..inputs import WARMUP_ID_PREFIX, Request
from ..warmup import is_warmup_id, warmup_request
from .journal import Journal


class _State(enum.Enum):
    NEW = "new"  # not primed yet: its items wait for the priming batch that is due
    PRIMING = "priming"  # its priming batch runs: its items wait for it to end
    READY = "ready"  # primed, or going ahead without it: its items are submitted


@dataclasses.dataclass
class _Group:
    warmup: Request | None  # None: no warm-up can write what the group reads
    state: _State = _State.NEW


def group_tag(item_id: str) -> str:
    """The group a warm-up's id names: `~warmup:GROUP:RANDOM` (`warmup.warmup_request`)."""
    return item_id[len(WARMUP_ID_PREFIX) :].split(":", 1)[0]


class Priming:
    def __init__(self, plan: CachePlan, journal: Journal, recorded: Callable[[str], bool]) -> None:
        self._plan = plan.with_ttl(TTL_1H)
        self._groups: dict[str, _Group] = {}
        self._group_of: dict[str, str] = {}  # item id -> its group's tag
        self._recorded = recorded
        # Groups an earlier run primed and recorded: ready from the start.
        self._primed = {group_tag(item_id) for item_id in _warmups(journal, done=True)}
        # Warm-ups an earlier run left waiting: their line may be written already, the journal not told.
        self._inherited = set(_warmups(journal, done=False))

    def apply(self, request: Request) -> Request:
        """`request` with its breakpoints (1-hour TTL), its group noted."""
        request, group = self._plan.apply(request)
        if group is None:
            return request
        tag = group.key.hex()[:12]
        if tag not in self._groups:
            warmup = warmup_request(request, group)
            primed = warmup is None or tag in self._primed
            self._groups[tag] = _Group(warmup, _State.READY if primed else _State.NEW)
        self._group_of[request.id] = tag
        return request

    def holds(self, request: Request) -> bool:
        """Whether `request` waits for its group's priming batch."""
        tag = self._group_of.get(request.id)
        return tag is not None and self._groups[tag].state is not _State.READY

    def due(self, unsent: Iterable[Request]) -> Iterator[Request]:
        """The warm-up of each group among `unsent` not primed yet, in input order, each once."""
        for request in unsent:
            tag = self._group_of.get(request.id)
            group = self._groups.get(tag) if tag is not None else None
            if group is not None and group.state is _State.NEW:
                assert group.warmup is not None
                group.state = _State.PRIMING
                yield group.warmup

    def attached(self, item_id: str) -> Request | None:
        """The warm-up of a priming batch now waited for (made by this run, or an earlier one's, under the
        id it was journalled with); None for a group this run has no items of."""
        group = self._groups.get(group_tag(item_id))
        if group is None or group.warmup is None:
            return None
        group.state = _State.PRIMING
        group.warmup = dataclasses.replace(group.warmup, id=item_id)
        return group.warmup

    def ended(self, warmup: Request) -> None:
        """The group's priming batch ended (or none is to be made): its items go ahead."""
        self._groups[group_tag(warmup.id)].state = _State.READY

    def again(self, warmup: Request) -> None:
        """The batch taken for the group's priming was not it: prime the group anew."""
        self._groups[group_tag(warmup.id)].state = _State.NEW

    def recorded(self, warmup: Request) -> bool:
        """Whether the warm-up's line is in the results file already (written by a run that then died
        before journalling its batch done)."""
        return warmup.id in self._inherited and self._recorded(warmup.id)


def _warmups(journal: Journal, *, done: bool) -> Iterator[str]:
    for intent in journal.intents.values():
        if not intent.void and intent.done == done:
            yield from (item_id for item_id in intent.ids if is_warmup_id(item_id))
