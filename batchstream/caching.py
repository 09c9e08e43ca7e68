"""Auto-caching: find the prompt prefixes several items share, and mark them for the prompt cache.

A cached prefix is billed at a tenth of the input price when read, 1.25x (TTL 5 minutes) or 2x (1 hour)
once when written (`cacherules`). Nobody writes `cache_control` into a JSONL file by hand, so before a run
launches, one pass over the items to run counts, per model, how many share each prefix in the cache's
order (tools, then system, then messages, block by block). Then each item, as it is launched, gets a
breakpoint at the end of the longest prefix it shares with another item, if that prefix is long enough
for the model to cache; and a shallower one where that serves more items, within the API's 4 breakpoints
and never moving or removing the user's own. The items sharing the deepest breakpoint form a group,
whose prefix is warmed once (`warmup.py`) before the group fans out.

What is added is not part of the item: its `request_hash` stays the hash of what the user wrote, so a
results file resumes the same with and without auto-caching.

Memory: the pass keeps one counter per distinct prefix long enough to cache (16-byte hash), up to
`max_prefixes`; past that only prefixes already seen are counted, so a huge file of all-different prompts
costs a bounded table, not one entry per line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .cacherules import MAX_BREAKPOINTS, TTL_1H, TTL_5M, min_cacheable_tokens
from .config import Limits
from .inputs import Request

# Blocks that cannot carry a cache_control (the prompt caching page); a prefix may still run through them.
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})
_FRAMING_TOKENS = 4  # what a system prompt or a message adds around its content (errs low: see _tokens)
# A group's reads further apart than this (estimated) take the 1-hour TTL: 5 minutes, less a margin.
_LONG_GAP_S = 240.0
# A guess at one item's time in flight, to turn a gap in items into seconds when no --rpm says it.
_ITEM_SECONDS = 10.0
MAX_PREFIXES = 200_000


class _Boundary(NamedTuple):
    """The end of one block of the prompt, in cache order: a place a breakpoint may go."""

    key: bytes  # hash of the model and of the prompt up to here
    tokens: int  # estimated tokens up to here
    where: tuple[Any, ...]  # ("tools", i) | ("system", i) | ("messages", m, i)
    markable: bool
    marked: bool  # the user put a cache_control here


def _tokens(size: int) -> int:
    """Tokens in `size` characters of prompt: four a token, erring low, so that a prefix taken for long
    enough to cache is (a breakpoint on a shorter one is refused by nobody, but caches nothing)."""
    return size // 4


def _boundaries(params: dict[str, Any]) -> list[_Boundary]:
    model = str(params.get("model", ""))
    digest = hashlib.blake2b(model.encode(), digest_size=16)
    tokens = 0
    found: list[_Boundary] = []

    def block(item: Any, where: tuple[Any, ...], markable: bool = True) -> None:
        nonlocal tokens
        if isinstance(item, str):
            item = {"type": "text", "text": item}
        own = isinstance(item, dict) and "cache_control" in item
        body = {k: v for k, v in item.items() if k != "cache_control"} if own else item
        data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        digest.update(data)
        tokens += _tokens(len(data))
        is_block = isinstance(item, dict)
        kind = item.get("type") if is_block else None
        can_mark = markable and is_block and kind not in _UNMARKABLE and item.get("text") != ""
        found.append(_Boundary(digest.copy().digest(), tokens, where, can_mark, own))

    for i, tool in enumerate(params.get("tools") or ()):
        block(tool, ("tools", i))
    system = params.get("system")
    if system:
        digest.update(b"\x00system")
        tokens += _FRAMING_TOKENS
        for i, item in enumerate([system] if isinstance(system, str) else system):
            block(item, ("system", i))
    for m, message in enumerate(params.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        digest.update(b"\x00" + str(message.get("role")).encode())
        tokens += _FRAMING_TOKENS
        content = message.get("content")
        for i, item in enumerate([content] if isinstance(content, str) else content or ()):
            block(item, ("messages", m, i))
    return found


def _too_short(params: dict[str, Any], minimum: int) -> bool:
    """Whether the whole prompt is below `minimum`: most short prompts, told apart without hashing them."""
    parts = (params.get("tools"), params.get("system"), params.get("messages"))
    return _tokens(len(orjson.dumps(parts))) < minimum


@dataclass(slots=True)
class _Seen:
    count: int
    last: int  # index (among the items counted) of the last item with this prefix
    tokens: int
    gap: int = 0  # the most items between two that share it


@dataclass
class PrefixCounter:
    """The first pass: how many items share each prefix long enough to cache, per model."""

    max_prefixes: int = MAX_PREFIXES
    _seen: dict[bytes, _Seen] = field(default_factory=dict)
    _index: int = 0

    def add(self, request: Request) -> None:
        minimum = min_cacheable_tokens(str(request.params.get("model", "")))
        if _too_short(request.params, minimum):
            self._index += 1
            return
        seen = self._seen
        for boundary in _boundaries(request.params):
            if boundary.tokens < minimum or not boundary.markable:
                continue
            entry = seen.get(boundary.key)
            if entry is not None:
                entry.count += 1
                entry.gap = max(entry.gap, self._index - entry.last)
                entry.last = self._index
            elif len(seen) < self.max_prefixes:
                seen[boundary.key] = _Seen(1, self._index, boundary.tokens)
        self._index += 1

    def plan(self, limits: Limits | None = None) -> CachePlan:
        """The shared prefixes (two items or more), each with the TTL its gaps between reads call for:
        5 minutes, or 1 hour where reads of it may be further apart than that (`limits` tell how fast
        items go: at --rpm, or about `_ITEM_SECONDS` each per concurrent slot)."""
        seconds_per_item = _ITEM_SECONDS
        if limits is not None:
            seconds_per_item = 60 / limits.rpm if limits.rpm else _ITEM_SECONDS / limits.concurrency
        shared = {
            key: Shared(entry.count, TTL_1H if entry.gap * seconds_per_item > _LONG_GAP_S else TTL_5M)
            for key, entry in self._seen.items()
            if entry.count >= 2
        }
        shortest = min((self._seen[key].tokens for key in shared), default=0)
        return CachePlan(shared, shortest)


class Shared(NamedTuple):
    items: int
    ttl: str


class Group(NamedTuple):
    """The items whose deepest added breakpoint is the same prefix: warmed once, by one request."""

    key: bytes
    items: int
    ttl: str
    tokens: int  # the prefix's estimated tokens, what each item of the group reads from the cache


@dataclass(frozen=True)
class CachePlan:
    shared: dict[bytes, Shared]
    shortest: int = 0  # the fewest tokens of any shared prefix: a shorter prompt shares none

    def __len__(self) -> int:
        return len(self.shared)

    def with_ttl(self, ttl: str) -> CachePlan:
        """This plan with every shared prefix at `ttl`: on the Batches path a group's reads may come hours
        apart, whatever the pace of the run."""
        shared = {key: entry._replace(ttl=ttl) for key, entry in self.shared.items()}
        return CachePlan(shared, self.shortest)

    def apply(self, request: Request) -> tuple[Request, Group | None]:
        """`request` with breakpoints added at its shared prefixes, and its group; unchanged and None when
        it shares none (or has no breakpoint left to add)."""
        if not self.shared or _too_short(request.params, self.shortest):
            return request, None
        boundaries = _boundaries(request.params)
        free = MAX_BREAKPOINTS - sum(b.marked for b in boundaries)
        free -= isinstance(request.params.get("cache_control"), dict)
        chosen: list[_Boundary] = []
        group: Group | None = None
        served = 0
        for boundary in reversed(boundaries):
            shared = self.shared.get(boundary.key)
            if shared is None or shared.items <= served:
                continue
            if not boundary.marked:
                if free <= 0:
                    continue  # no breakpoint left to add; a shallower one of the user's may still serve
                free -= 1
                chosen.append(boundary)
            if group is None:
                group = Group(boundary.key, shared.items, shared.ttl, boundary.tokens)
            served = shared.items
        if group is None:
            return request, None
        if not chosen:  # the user marked the shared prefix already: nothing to add, but still worth warming
            return request, group
        # 1-hour breakpoints must come before 5-minute ones: with the user's own in the prompt, stay at 5m.
        ttl = group.ttl if not any(b.marked for b in boundaries) else TTL_5M
        params = _with_breakpoints(request.params, [b.where for b in chosen], ttl)
        return dataclasses.replace(request, params=params), group._replace(ttl=ttl)


def plan_cache(requests: Iterable[Request], limits: Limits | None = None) -> CachePlan:
    """The cache plan for `requests` in one pass, for a caller that has them all at hand (the Batches
    path: `plan.apply(request)` then gives each request its breakpoints and group)."""
    counter = PrefixCounter()
    for request in requests:
        counter.add(request)
    return counter.plan(limits)


def _with_breakpoints(params: dict[str, Any], places: list[tuple[Any, ...]], ttl: str) -> dict[str, Any]:
    """A copy of `params` with a cache_control on each place; only the lists on the way are copied."""
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl == TTL_1H:
        control["ttl"] = TTL_1H
    out = dict(params)
    for where in places:
        if where[0] == "tools":
            tools = out["tools"] = list(out["tools"])
            tools[where[1]] = {**tools[where[1]], "cache_control": control}
        elif where[0] == "system":
            system = out["system"]
            blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
            blocks[where[1]] = {**blocks[where[1]], "cache_control": control}
            out["system"] = blocks
        else:
            messages = out["messages"] = list(out["messages"])
            message = dict(messages[where[1]])
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            blocks[where[2]] = {**blocks[where[2]], "cache_control": control}
            message["content"] = blocks
            messages[where[1]] = message
    return out
