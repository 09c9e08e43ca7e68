"""Auto-caching on `--via batches`: each group primed once by a single-request batch, in the Batches API's
own cache, before its items are submitted; paid for as the usage says, at the batch price.

The real CLI and SDK against the simulator, whose Batches API keeps a prompt cache apart from the
Messages endpoint's, and runs a batch's requests side by side (each reads the cache as its batch found
it): so without the priming batch, a group submitted together would pay one write per request.
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import read_jsonl, run_cli, write_jsonl
from test_caching import SYSTEM, _price, _reads, _text, _writes
from test_via_batches import FAST, SimFactory, by_id, start, wait_until

from batchstream.batches.journal import Journal, journal_path
from batchstream.estimate import estimate

QUESTIONS = 100


def _rows(count: int, system: str = SYSTEM) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "system": system, "prompt": f"Question {i}: what is {i}?"} for i in range(count)]


def _run(path: Path, sim: Any, output: Path, *args: str) -> list[dict[str, Any]]:
    done = run_cli("run", path, *FAST, "-o", output, *args, base_url=sim.base_url)
    assert done.returncode == 0, done.stderr
    return read_jsonl(output)


def _split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The items' lines and the warm-ups' lines."""
    return [row for row in rows if "kind" not in row], [row for row in rows if row.get("kind") == "warmup"]


def _batch_price(usage: dict[str, Any]) -> Decimal:
    return (_price(usage) / 2).quantize(Decimal("1e-12"))


def test_the_bar_via_batches_one_priming_batch_then_a_read_per_item(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.05)
    path = write_jsonl(tmp_path / "in.jsonl", _rows(QUESTIONS))

    cached = _run(path, sim, tmp_path / "cached.jsonl")
    priming, *item_batches = sim.batches()
    plain = _run(path, sim, tmp_path / "plain.jsonl", "--no-auto-cache")

    items, [warmup] = _split(cached)
    assert len(items) == QUESTIONS and all(row["status"] == "ok" for row in cached)
    # One batch of one request, ended before any item was submitted; its line says so.
    assert len(priming["custom_ids"]) == 1 and priming["outcomes"] == ["succeeded"]
    assert sum(len(batch["custom_ids"]) for batch in item_batches) == QUESTIONS
    assert (warmup["via"], warmup["batch_id"]) == ("batch", priming["id"])
    assert warmup["id"].startswith("~warmup:") and warmup["usage"]["output_tokens"] == 0
    # The 1-hour TTL: all that was written, was written for an hour.
    assert warmup["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 6_000
    assert warmup["usage"]["cache_creation"]["ephemeral_5m_input_tokens"] == 0
    assert _writes(cached) <= 2 and _writes(items) == 0
    assert _reads(items) >= QUESTIONS - 2
    assert _writes(plain) == _reads(plain) == 0
    for row in cached + plain:
        assert row["via"] == "batch" and row["usage"]["service_tier"] == "batch"
        assert Decimal(repr(row["cost_usd"])) == _batch_price(row["usage"]), row["id"]
    total = sum(Decimal(repr(row["cost_usd"])) for row in cached)
    assert total <= Decimal("0.25") * sum(Decimal(repr(row["cost_usd"])) for row in plain)
    # What was added is not part of an item: both runs record the same request hashes.
    assert {row["id"]: row["request_hash"] for row in items} == {
        row["id"]: row["request_hash"] for row in plain
    }
    summary = read_jsonl(tmp_path / "cached.summary.jsonl")[-1]
    assert (summary["items"], summary["warmups"]) == (QUESTIONS, 1)


def test_no_auto_cache_adds_no_breakpoint_and_primes_nothing(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02)
    path = write_jsonl(tmp_path / "in.jsonl", _rows(4))
    rows = _run(path, sim, tmp_path / "out.jsonl", "--no-auto-cache")
    assert len(rows) == 4 and len(sim.batches()) == 1
    # The simulator reports a cache split only for a prompt with a breakpoint.
    assert all("cache_creation" not in row["usage"] for row in rows)


@pytest.mark.parametrize(("first", "then"), [("stream", "batches"), ("batches", "stream")])
def test_the_messages_and_batches_caches_are_apart(
    tmp_path: Path, simulator_factory: SimFactory, first: str, then: str
) -> None:
    """A warm-up through one API leaves the other cold: the second run's warm-up writes and reads nothing,
    though the first run's entry lives on (a third run through the first API reads it)."""
    sim = simulator_factory(batch_processing_s=0.02)
    path = write_jsonl(tmp_path / "in.jsonl", _rows(3, _text(3, 6_800)))

    def warmup(via: str, name: str) -> dict[str, Any]:
        [line] = _split(_run(path, sim, tmp_path / f"{name}.jsonl", "--via", via))[1]
        return line["usage"]

    assert warmup(first, "a")["cache_creation_input_tokens"] > 0
    other = warmup(then, "b")
    assert other["cache_creation_input_tokens"] > 0 and other["cache_read_input_tokens"] == 0
    again = warmup(first, "c")
    assert again["cache_read_input_tokens"] > 0 and again["cache_creation_input_tokens"] == 0


def _stopped_while_priming(tmp_path: Path, sim: Any, stop: signal.Signals) -> tuple[Path, Path]:
    """A run of 6 items of one group stopped once its priming batch was made: the input and results paths."""
    path = write_jsonl(tmp_path / "in.jsonl", _rows(6))
    results = tmp_path / "in.results.jsonl"
    proc = start(path, sim)
    assert wait_until(lambda: len(sim.batches()) == 1, proc)
    time.sleep(0.2)  # journalled by now (a kill before that is the adoption case: the same outcome)
    proc.send_signal(stop)
    proc.communicate(timeout=30)
    assert [len(batch["custom_ids"]) for batch in sim.batches()] == [1]
    assert journal_path(results).exists()
    return path, results


def _resume_and_check(path: Path, results: Path, sim: Any) -> list[dict[str, Any]]:
    """Resume; one priming batch in all, then one of the 6 items, each reading what it wrote. The warm-ups."""
    resumed = run_cli("run", path, *FAST, base_url=sim.base_url)
    assert resumed.returncode == 0, resumed.stderr
    priming, *rest = sim.batches()
    assert len(priming["custom_ids"]) == 1 and [len(batch["custom_ids"]) for batch in rest] == [6]
    items, warmups = _split(read_jsonl(results))
    assert len(by_id(items)) == 6 and _reads(items) == 6 and _writes(items) == 0
    assert not journal_path(results).exists()
    return warmups


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_a_run_stopped_while_priming_resumes_without_priming_twice(
    tmp_path: Path, simulator_factory: SimFactory, stop: signal.Signals
) -> None:
    sim = simulator_factory(batch_processing_s=1.0)
    path, results = _stopped_while_priming(tmp_path, sim, stop)
    [warmup] = _resume_and_check(path, results, sim)
    assert warmup["batch_id"] == sim.batches()[0]["id"]


def test_a_warm_up_recorded_by_a_run_killed_before_journalling_it_is_not_recorded_again(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """The window between writing the warm-up's line and journalling its batch done: the resume fetches
    the batch's results again, and finds the line already there."""
    sim = simulator_factory(batch_processing_s=1.0)
    path, results = _stopped_while_priming(tmp_path, sim, signal.SIGKILL)
    [warmup_id] = [item_id for intent in Journal(journal_path(results)).waiting for item_id in intent.ids]
    usage = {
        "input_tokens": 9,
        "cache_creation_input_tokens": 6_000,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    line = {
        "id": warmup_id,
        "status": "ok",
        "kind": "warmup",
        "usage": usage,
        "cost_usd": 0.012,
        "via": "batch",
    }
    write_jsonl(results, [line])
    [warmup] = _resume_and_check(path, results, sim)
    assert warmup == line


def test_a_priming_batch_that_expires_lets_its_group_go_ahead(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02, p_batch_expired=1.0)
    path = write_jsonl(tmp_path / "in.jsonl", _rows(3))
    done = run_cli("run", path, *FAST, "--max-attempts", "1", base_url=sim.base_url)
    assert done.returncode == 1
    assert "cache priming ended expired; its group goes ahead without it" in done.stderr
    priming, items = sim.batches()
    assert (len(priming["custom_ids"]), len(items["custom_ids"])) == (1, 3)
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert sorted(row["id"] for row in rows) == ["q0", "q1", "q2"]  # no warm-up line: it had no answer


def test_a_budget_with_no_room_for_the_priming_batch_skips_it(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """As the streamed warm-up: reserved within --max-cost if it fits now, skipped (with a line) if not,
    never waited for."""
    sim = simulator_factory(batch_processing_s=0.02)
    path = write_jsonl(tmp_path / "in.jsonl", _rows(2))
    # Less than the warm-up's input at the batch price (about $0.006), and so less than any item's worst.
    done = run_cli("run", path, *FAST, "--max-cost", "0.001", base_url=sim.base_url)
    assert done.returncode == 3, done.stderr
    assert "budget: no room for a cache priming batch now; its group runs without it" in done.stderr
    assert sim.batches() == []


def test_estimate_via_batches_projects_1_hour_writes_at_the_batch_price(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    streamed = estimate(path, simulate=True).as_json()["total"]
    batched = estimate(path, simulate=True, batch=True).as_json()["total"]
    assert batched["cache_groups"] == streamed["cache_groups"] == 1
    assert batched["cost_usd_min"] == pytest.approx(streamed["cost_usd_min"] / 2)
    # Half the streamed saving, less half the difference between a 1-hour write (2x input) and a 5-minute
    # one (1.25x): the same prefix of ~6,800 tokens at $2 a million.
    saved, saved_streamed = (t["cost_usd_min"] - t["cost_usd_min_cached"] for t in (batched, streamed))
    assert 0 < saved_streamed / 2 - saved == pytest.approx(0.75 * 2 * 6_800e-6 / 2, rel=0.1)
