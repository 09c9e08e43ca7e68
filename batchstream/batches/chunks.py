"""Items into batches: each request's `custom_id`, and chunks within the API's count and byte limits.

The byte limit is measured on the body as it goes out: the SDK encodes compact UTF-8 JSON
(`separators=(",", ":")`, `ensure_ascii=False`), which orjson's encoding matches byte for byte but for
float spellings, so each request is measured by encoding it once here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..inputs import Request

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DERIVED_PREFIX = "bs_"
# `{"requests":[` ... `]}` around the comma-separated requests.
_BODY_BYTES = len(b'{"requests":[]}')


def custom_id(item_id: str) -> str:
    """The item's id where it fits the API's pattern, else a stable one derived from it (mapped back by
    the batch's own list of items, never by reversing this)."""
    if CUSTOM_ID.fullmatch(item_id):
        return item_id
    return _DERIVED_PREFIX + hashlib.blake2b(item_id.encode(), digest_size=20).hexdigest()


def batch_entry(request: Request) -> dict[str, Any]:
    return {"custom_id": custom_id(request.id), "params": request.params}


@dataclass
class Chunk:
    betas: tuple[str, ...]
    requests: list[Request] = field(default_factory=list)
    size: int = _BODY_BYTES  # bytes of the create body
    _custom_ids: set[str] = field(default_factory=set)

    def fits(self, request: Request, cid: str, size: int, max_count: int, max_bytes: int) -> bool:
        return (
            request.betas == self.betas
            and len(self.requests) < max_count
            and self.size + size + (1 if self.requests else 0) <= max_bytes
            and cid not in self._custom_ids
        )

    def add(self, request: Request, cid: str, size: int) -> None:
        self.size += size + (1 if self.requests else 0)
        self.requests.append(request)
        self._custom_ids.add(cid)


def chunks(
    requests: Iterable[Request], max_count: int, max_bytes: int, too_large: Callable[[Request, int], None]
) -> Iterator[Chunk]:
    """`requests` in order, cut into chunks; a request that cannot fit a batch on its own goes to
    `too_large` (with its size) instead."""
    current: Chunk | None = None
    for request in requests:
        cid = custom_id(request.id)
        size = len(orjson.dumps(batch_entry(request)))
        if _BODY_BYTES + size > max_bytes:
            too_large(request, size)
            continue
        if current is None or not current.fits(request, cid, size, max_count, max_bytes):
            if current is not None:
                yield current
            current = Chunk(request.betas)
        current.add(request, cid, size)
    if current is not None:
        yield current
