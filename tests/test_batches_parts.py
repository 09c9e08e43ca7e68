"""The parts of `--via batches` that need no server: custom_ids, chunking, and the journal's file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from batchstream.batches.chunks import CUSTOM_ID, batch_entry, chunks, custom_id
from batchstream.batches.journal import Journal, journal_path
from batchstream.config import BatchOptions
from batchstream.errors import UsageError
from batchstream.inputs import Request


def request(item_id: str, prompt: str = "hi", betas: tuple[str, ...] = ()) -> Request:
    params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": prompt}]}
    return Request(item_id, 0, params, betas, False, None, "hash-" + item_id)


def test_custom_id_is_the_id_where_the_pattern_allows_else_a_stable_derived_one() -> None:
    assert custom_id("item_1-A") == "item_1-A"
    derived = custom_id("item 1/é")
    assert derived == custom_id("item 1/é") != custom_id("item 2/é")
    assert derived.startswith("bs_") and CUSTOM_ID.fullmatch(derived)
    assert CUSTOM_ID.fullmatch(custom_id("x" * 65)) and custom_id("x" * 64) == "x" * 64


def test_chunks_close_at_the_count_at_a_change_of_betas_and_set_aside_what_never_fits() -> None:
    items = [request(f"r{n}") for n in range(5)]
    items.insert(3, request("beta", betas=("files-api-2025-04-14",)))
    items.append(request("huge", "x" * 2000))
    too_large: list[tuple[str, int]] = []
    cut = list(chunks(items, 2, 1024, lambda r, size: too_large.append((r.id, size))))
    assert [[r.id for r in chunk.requests] for chunk in cut] == [["r0", "r1"], ["r2"], ["beta"], ["r3", "r4"]]
    assert cut[2].betas == ("files-api-2025-04-14",)
    assert too_large == [("huge", len(orjson.dumps(batch_entry(items[-1]))))]
    for chunk in cut:  # the size counted is the create body's, as encoded
        body = orjson.dumps({"requests": [batch_entry(r) for r in chunk.requests]})
        assert chunk.size == len(body)


def test_batch_options_are_checked_when_built() -> None:
    with pytest.raises(UsageError, match="batch size must be within"):
        BatchOptions(size=100_001)
    with pytest.raises(UsageError, match="poll_interval must be greater than 0"):
        BatchOptions(poll_interval=0)


def test_the_journal_reads_back_what_it_wrote_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "out.results.jsonl")
    assert path.name == "out.results.batches.jsonl"
    journal = Journal(path)
    made = journal.intend([("a", "ha"), ("b", "hb")])
    journal.created(made, "msgbatch_1")
    lost = journal.intend([("c", "hc")])
    refused = journal.intend([("d", "hd")])
    journal.voided(refused)
    ended = journal.intend([("a", "ha")])
    journal.created(ended, "msgbatch_2")
    journal.finished(ended, {"a": "expired"})
    journal.close()
    with open(path, "ab") as fh:
        fh.write(b'{"kind":"batch","token":"' + lost.token.encode())  # a kill mid-write
    again = Journal(path)
    assert [i.batch_id for i in again.waiting] == ["msgbatch_1"]
    assert [i.token for i in again.unresolved] == [lost.token]
    assert again.submissions() == {"a": 2, "b": 1, "c": 1}
    assert again.retries() == {"a": {"expired": 1}}
    assert path.read_bytes().endswith(b"\n")  # the torn line is gone before anything is appended
    again.remove()
    assert not path.exists()
