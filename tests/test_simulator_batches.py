"""The simulator's Message Batches API, through the real SDK over a real socket: the objects, their
fields, paging, results, cancel, delete and the error answers a client meets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from batchstream.inputs import DEFAULT_MODEL
from batchstream.simulator import SimulatorThread, expected_reply

SimFactory = Callable[..., SimulatorThread]


def params(prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": DEFAULT_MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


def entry(custom_id: str, prompt: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params(prompt)}


def call(sim: SimulatorThread, work: Callable[[anthropic.AsyncAnthropic], Any]) -> Any:
    async def main() -> Any:
        async with anthropic.AsyncAnthropic(
            api_key="sk-test", base_url=sim.base_url, http_client=anthropic.DefaultAioHttpClient()
        ) as client:
            return await work(client)

    return asyncio.run(main())


def wait_ended(sim: SimulatorThread, batch_id: str) -> Any:
    async def work(client: anthropic.AsyncAnthropic) -> Any:
        while True:
            batch = await client.messages.batches.retrieve(batch_id)
            if batch.processing_status == "ended":
                return batch
            await asyncio.sleep(0.02)

    return call(sim, work)


def results(sim: SimulatorThread, batch_id: str) -> dict[str, Any]:
    async def work(client: anthropic.AsyncAnthropic) -> dict[str, Any]:
        return {line.custom_id: line.result async for line in await client.messages.batches.results(batch_id)}

    return call(sim, work)


def test_a_batch_is_in_progress_then_ended_with_each_reply_as_the_messages_endpoint_gives_it(
    simulator_factory: SimFactory,
) -> None:
    sim = simulator_factory(batch_processing_s=0.1)
    requests = [entry("a", "one"), entry("b", "two"), {"custom_id": "c", "params": {"model": DEFAULT_MODEL}}]
    batch = call(sim, lambda client: client.messages.batches.create(requests=requests))
    assert batch.type == "message_batch" and batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.model_dump() == {
        "processing": 3,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert (batch.results_url, batch.ended_at, batch.cancel_initiated_at, batch.archived_at) == (None,) * 4
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600
    ended = wait_ended(sim, batch.id)
    assert ended.request_counts.succeeded == 2 and ended.request_counts.errored == 1
    assert ended.results_url == f"{sim.base_url}/v1/messages/batches/{batch.id}/results"
    assert ended.ended_at is not None
    lines = results(sim, batch.id)
    for custom_id, prompt in (("a", "one"), ("b", "two")):
        message = lines[custom_id].message
        want = expected_reply(params(prompt))
        assert lines[custom_id].type == "succeeded"
        assert "".join(block.text for block in message.content) == want["text"]
        assert message.usage.output_tokens == want["usage"]["output_tokens"]
        assert message.usage.service_tier == "batch"
    error = lines["c"].error.error
    assert (lines["c"].type, error.type) == ("errored", "invalid_request_error")
    assert error.message == "max_tokens: Field required"


def test_list_pages_newest_first_both_ways(simulator_factory: SimFactory) -> None:
    sim = simulator_factory()

    async def work(client: anthropic.AsyncAnthropic) -> tuple[list[str], Any, list[str], list[str]]:
        made = [(await client.messages.batches.create(requests=[entry("x", str(n))])).id for n in range(5)]
        first = await client.messages.batches.list(limit=2)
        every = [batch.id async for batch in client.messages.batches.list(limit=2)]
        newer = await client.messages.batches.list(before_id=made[1], limit=10)
        return made, first, every, [batch.id for batch in newer.data]

    made, first, every, newer = call(sim, work)
    assert [batch.id for batch in first.data] == [made[4], made[3]]
    assert (first.has_more, first.first_id, first.last_id) == (True, made[4], made[3])
    assert every == made[::-1]
    assert newer == [made[4], made[3], made[2]]


def test_cancel_delete_and_the_error_answers(simulator_factory: SimFactory) -> None:
    sim = simulator_factory(batch_processing_s=60)

    async def work(client: anthropic.AsyncAnthropic) -> dict[str, Any]:
        batches = client.messages.batches
        seen: dict[str, Any] = {}
        batch = await batches.create(requests=[entry("a", "one"), entry("b", "two")])
        with pytest.raises(anthropic.BadRequestError) as refused:
            await batches.delete(batch.id)
        seen["delete_running"] = refused.value.body
        seen["canceling"] = await batches.cancel(batch.id)
        await asyncio.sleep(0.01)
        seen["canceled"] = await batches.retrieve(batch.id)
        seen["lines"] = [line.result.type async for line in await batches.results(batch.id)]
        seen["deleted"] = await batches.delete(batch.id)
        with pytest.raises(anthropic.NotFoundError) as missing:
            await batches.retrieve(batch.id)
        seen["missing"] = missing.value.body
        for name, bad in {
            "pattern": [{"custom_id": "no spaces", "params": params("x")}],
            "duplicate": [entry("a", "one"), entry("a", "two")],
            "empty": [],
        }.items():
            with pytest.raises(anthropic.BadRequestError) as invalid:
                await batches.create(requests=bad)
            seen[name] = invalid.value.body["error"]["message"]
        return seen

    seen = call(sim, work)
    assert seen["delete_running"]["error"]["type"] == "invalid_request_error"
    assert seen["canceling"].processing_status == "canceling"
    assert seen["canceling"].cancel_initiated_at is not None
    assert seen["canceled"].processing_status == "ended"
    assert seen["canceled"].request_counts.canceled == 2
    assert seen["lines"] == ["canceled", "canceled"]
    assert (seen["deleted"].type, seen["deleted"].id) == ("message_batch_deleted", seen["canceled"].id)
    assert seen["missing"]["error"]["type"] == "not_found_error"
    assert seen["pattern"] == "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    assert seen["duplicate"] == "requests.1.custom_id: Duplicate custom_id: a"
    assert seen["empty"] == "requests: List should have at least 1 item after validation, not 0"


def test_knobs_make_requests_errored_or_expired_and_a_resubmission_draws_again(
    simulator_factory: SimFactory,
) -> None:
    sim = simulator_factory(batch_processing_s=0, p_batch_errored=0.3, p_batch_expired=0.3, seed=7)
    requests = [entry(f"r{n}", f"prompt {n}") for n in range(60)]
    first = call(sim, lambda client: client.messages.batches.create(requests=requests))
    time.sleep(0.01)
    kinds = {cid: result.type for cid, result in results(sim, first.id).items()}
    errored = [r for r in results(sim, first.id).values() if r.type == "errored"]
    assert {r.error.error.type for r in errored} <= {"overloaded_error", "api_error"}
    assert 0 < list(kinds.values()).count("expired") < 60 and errored
    again = call(sim, lambda client: client.messages.batches.create(requests=requests))
    time.sleep(0.01)
    kinds_again = {cid: result.type for cid, result in results(sim, again.id).items()}
    assert kinds_again != kinds  # a resubmitted request's outcome is drawn anew
    record = sim.batches()
    assert [b["id"] for b in record] == [first.id, again.id]
    assert record[0]["custom_ids"] == [f"r{n}" for n in range(60)]
