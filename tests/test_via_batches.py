"""`run --via batches` end to end: the real CLI and SDK against the simulator's Message Batches API.

The simulator runs in this process and outlives each batchstream process, so its record of batches shows
exactly what was submitted, and how often.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Completed, cli_env, prompt_body, read_jsonl, run_cli, write_jsonl

from batchstream.batches.chunks import custom_id
from batchstream.batches.journal import Journal, journal_path
from batchstream.config import BatchOptions, Output, RunConfig
from batchstream.inputs import Defaults, iter_requests
from batchstream.pricing import Pricer
from batchstream.runner import run_batch
from batchstream.simulator import SimulatorThread, expected_reply, request_key

SimFactory = Callable[..., SimulatorThread]
FAST = ("-q", "--via", "batches", "--poll-interval", "0.05")
GUARD_S = 30.0


def inputs(tmp_path: Path, prompts: dict[str, str]) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])


def run(path: Path, sim: SimulatorThread, *args: str) -> Completed:
    return run_cli("run", path, *FAST, *args, base_url=sim.base_url)


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"an item recorded twice: {sorted(ids)}"
    return {row["id"]: row for row in rows}


def submissions(sim: SimulatorThread) -> Counter[str]:
    """How often each request body was submitted, over every batch the simulator was given."""
    return Counter(key for batch in sim.batches() for key in batch["keys"])


def assert_reply(row: dict[str, Any], prompt: str) -> None:
    want = expected_reply(prompt_body(prompt))
    assert (row["status"], row["error"], row["via"]) == ("ok", None, "batch"), row
    assert row["text"] == want["text"]
    assert row["usage"]["output_tokens"] == want["usage"]["output_tokens"]
    assert (row["latency_s"], row["ttft_s"]) == (None, None)
    stream_cost = Pricer().cost(row["model"], row["usage"])
    assert stream_cost is not None and row["cost_usd"] == stream_cost / 2


def assert_each_answered_once(
    tmp_path: Path, prompts: dict[str, str], sim: SimulatorThread, batches: int
) -> None:
    """Every item recorded once with its reply, from `batches` batches that held each request once."""
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    for item, prompt in prompts.items():
        assert_reply(rows[item], prompt)
    assert len(sim.batches()) == batches and set(submissions(sim).values()) == {1}


def test_items_are_answered_through_batches_at_half_the_price(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.05)
    prompts = {f"item-{n}": f"prompt {n}" for n in range(7)}
    prompts["has space"] = "an id the API's custom_id pattern refuses"
    prompts["bad"] = "refused [[sim status=400]]"
    path = inputs(tmp_path, prompts)
    done = run(path, sim, "--batch-size", "3")
    assert done.returncode == 1, done.stderr  # the one invalid item
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        if item != "bad":
            assert_reply(rows[item], prompt)
    assert rows["bad"]["status"] == "error" and rows["bad"]["via"] == "batch"
    assert rows["bad"]["error"] == {
        "type": "invalid_request_error",
        "message": "Invalid request (simulated).",
        "status": None,
    }
    batches = sim.batches()
    assert [len(batch["custom_ids"]) for batch in batches] == [3, 3, 3]
    assert {row["batch_id"] for row in rows.values()} == {batch["id"] for batch in batches}
    assert custom_id("has space") in batches[2]["custom_ids"]
    assert set(submissions(sim).values()) == {1}
    assert not journal_path(tmp_path / "in.results.jsonl").exists()  # nothing left to wait for
    summary = read_jsonl(tmp_path / "in.results.summary.jsonl")
    total = next(line for line in summary if line["kind"] == "total")
    assert total["cost_usd"] == pytest.approx(sum(row["cost_usd"] or 0 for row in rows.values()))
    again = run(path, sim)
    assert again.returncode == 1 and len(sim.batches()) == 3  # done: nothing submitted again


def test_errored_and_expired_are_submitted_again_within_max_attempts(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02, p_batch_errored=0.2, p_batch_expired=0.2, seed=3)
    prompts = {f"i{n}": f"prompt {n}" for n in range(40)}
    done = run(inputs(tmp_path, prompts), sim, "--max-attempts", "2")
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    sent = submissions(sim)
    for item, prompt in prompts.items():
        row, times = rows[item], sent[request_key(prompt_body(prompt))]
        assert row["attempts"] == times <= 2
        if row["status"] == "ok":
            assert_reply(row, prompt)
            assert sum(row["retries"].values()) == times - 1
        else:  # transient twice over: recorded with the last outcome's type
            assert times == 2 and row["error"]["type"] in ("overloaded_error", "api_error", "expired")
    assert any(row["status"] == "error" for row in rows.values()) and any(t == 2 for t in sent.values())
    assert done.returncode == 1


def start(path: Path, sim: SimulatorThread, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchstream", "run", str(path), *FAST, *args],
        env=cli_env(sim.base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupted_after(batches: int, path: Path, sim: SimulatorThread, *args: str) -> tuple[int, str]:
    """Start a run, Ctrl-C it once it made `batches` batches (and journalled them); exit code, stderr."""
    proc = start(path, sim, *args)
    assert wait_until(lambda: len(sim.batches()) >= batches, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=GUARD_S)
    return proc.returncode, stderr


def test_ctrl_c_exits_130_leaving_the_batches_running_and_the_resume_reattaches(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=1.0)
    prompts = {f"i{n}": f"prompt {n}" for n in range(10)}
    path = inputs(tmp_path, prompts)
    returncode, stderr = interrupted_after(2, path, sim, "--batch-size", "5")
    assert returncode == 130, stderr
    assert "the batches keep running on the server" in stderr
    assert [batch["status"] for batch in sim.batches()] == ["in_progress", "in_progress"]
    shown = run_cli("status", tmp_path / "in.results.jsonl", base_url=sim.base_url)
    assert shown.returncode == 0, shown.stderr
    assert all(batch["id"] in shown.stdout for batch in sim.batches())
    resumed = run(path, sim)
    assert resumed.returncode == 0, resumed.stderr
    assert_each_answered_once(tmp_path, prompts, sim, 2)


def test_cancel_cancels_the_waited_batches_and_a_resume_submits_their_items_anew(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=60)
    prompts = {f"i{n}": f"prompt {n}" for n in range(4)}
    path = inputs(tmp_path, prompts)
    assert interrupted_after(1, path, sim)[0] == 130
    canceled = run_cli("cancel", tmp_path / "in.results.jsonl", base_url=sim.base_url)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout == f"{sim.batches()[0]['id']}: canceling\n"
    first = run(path, sim)  # records nothing of the canceled batch, says so, and leaves the items to do
    assert first.returncode == 130 and "4 item(s) canceled and not recorded" in first.stderr
    assert not (tmp_path / "in.results.jsonl").read_bytes()
    sim.config.batch_processing_s = 0.02
    second = run(path, sim)
    assert second.returncode == 0, second.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    assert [batch["counts"]["canceled"] for batch in sim.batches()] == [4, 0]


def test_a_batch_created_but_never_journalled_is_adopted_not_submitted_again(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """The crash window between the create call and noting its id: the intent was journalled, the batch
    exists, its id was never written. The resume finds it in the list and records its results."""
    sim = simulator_factory(batch_processing_s=0.05)
    prompts = {f"i{n}": f"prompt {n}" for n in range(5)}
    path = inputs(tmp_path, prompts)
    requests = list(iter_requests(path, Defaults()))
    journal = Journal(journal_path(tmp_path / "in.results.jsonl"))
    journal.intend([(request.id, request.request_hash) for request in requests])
    journal.close()
    import asyncio

    from batchstream.batches.client import BatchClient

    async def create() -> str:
        client = BatchClient(api_key="sk-test", base_url=sim.base_url, api_version=None)
        try:
            return (await client.create(requests, ())).id
        finally:
            await client.aclose()

    made = asyncio.run(create())
    done = run(path, sim)
    assert done.returncode == 0, done.stderr
    assert f"batch {made}: adopted" in done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    for item, prompt in prompts.items():
        assert_reply(rows[item], prompt)
        assert rows[item]["batch_id"] == made
    assert len(sim.batches()) == 1


def test_an_intent_whose_create_never_arrived_is_voided_and_its_items_submitted(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02)
    prompts = {f"i{n}": f"prompt {n}" for n in range(3)}
    path = inputs(tmp_path, prompts)
    journal = Journal(journal_path(tmp_path / "in.results.jsonl"))
    journal.intend([(request.id, request.request_hash) for request in iter_requests(path, Defaults())])
    journal.close()
    done = run(path, sim)
    assert done.returncode == 0, done.stderr
    assert set(by_id(read_jsonl(tmp_path / "in.results.jsonl"))) == set(prompts)
    assert len(sim.batches()) == 1


def test_kill_9_at_seeded_random_points_never_submits_or_records_an_item_twice(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """The bar: a few hundred items, 5% errored and 2% expired, killed while submitting, waiting and
    recording, then resumed: every item exactly once with the right text, and an item submitted again only
    after an outcome that calls for it (errored transiently, or expired)."""
    sim = simulator_factory(batch_processing_s=1.0, p_batch_errored=0.05, p_batch_expired=0.02, seed=11)
    prompts = {f"i{n}": f"prompt {n}" for n in range(300)}
    invalid = {f"bad{n}": f"refused {n} [[sim status=400]]" for n in range(5)}
    prompts.update(invalid)
    path = inputs(tmp_path, prompts)
    results = tmp_path / "in.results.jsonl"
    rng = random.Random(22)
    kills = 0
    for _ in range(6):
        recorded = len(complete_rows(results))
        if recorded == len(prompts):
            break
        proc = start(path, sim, "--batch-size", "20", "--max-attempts", "20")
        # Aimed from the run's first call to the API, not from its start (start-up time varies too much):
        # while it submits, waits, records a batch's results or journals it done.
        before = sim.stats()["requests"]
        landed = wait_until(lambda before=before: sim.stats()["requests"] > before, proc)
        time.sleep(rng.uniform(0, 0.7))
        landed = landed and proc.poll() is None
        proc.kill()
        proc.communicate()
        kills += landed
    assert kills >= 3
    final = run(path, sim, "--batch-size", "20", "--max-attempts", "20")
    assert final.returncode == 1, final.stderr  # the invalid items
    rows = by_id(read_jsonl(results))
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        if item in invalid:
            assert rows[item]["error"]["type"] == "invalid_request_error"
        else:
            assert_reply(rows[item], prompt)
    history: dict[str, list[str]] = {}
    for batch in sim.batches():
        for key, outcome in zip(batch["keys"], batch["outcomes"], strict=True):
            history.setdefault(key, []).append(outcome)
    for item, prompt in prompts.items():
        outcomes = history[request_key(prompt_body(prompt))]
        assert outcomes[-1] == ("invalid_request_error" if item in invalid else "succeeded"), outcomes
        assert set(outcomes[:-1]) <= {"overloaded_error", "api_error", "expired"}, outcomes
    assert any(len(outcomes) > 1 for outcomes in history.values())


def complete_rows(path: Path) -> list[bytes]:
    """The whole lines of a results file (a kill may leave the last one torn)."""
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def wait_until(done: Callable[[], bool], proc: subprocess.Popen[str]) -> bool:
    """Poll `done` while the run goes on; False if the run ended first."""
    deadline = time.monotonic() + GUARD_S
    while not done():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no progress within {GUARD_S:g}s: {proc.communicate()}")
        time.sleep(0.005)
    return True


def test_batch_deadline_cancels_and_streams_what_is_left(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=60)
    prompts = {f"i{n}": f"prompt {n}" for n in range(4)}
    done = run(inputs(tmp_path, prompts), sim, "--batch-deadline", "0.3s")
    assert done.returncode == 0, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        row = rows[item]
        assert row["status"] == "ok" and "via" not in row
        assert row["text"] == expected_reply(prompt_body(prompt))["text"]
    assert [batch["counts"]["canceled"] for batch in sim.batches()] == [4]


def test_max_cost_reserves_each_item_at_the_batch_price(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02)
    prompts = {f"i{n}": f"prompt {n}" for n in range(10)}
    path = inputs(tmp_path, prompts)
    requests = list(iter_requests(path, Defaults(max_tokens=100)))
    from batchstream.budget import Budget

    worst = Budget(1, 0, Pricer()).worst_case(requests[0], batch=True)
    budget = worst * 4.5  # four items' worst case at the batch price fit; at the streaming price, two
    done = run(path, sim, "--max-tokens", "100", "--max-cost", repr(budget))
    assert done.returncode == 3, done.stderr
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert len(rows) >= 4 and sum(row["cost_usd"] for row in rows) <= budget
    assert sum(len(batch["keys"]) for batch in sim.batches()) == len(rows)


def test_chunks_stay_under_the_byte_limit_measured_on_the_encoded_body(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02)
    prompts = {f"i{n}": "x" * 300 + str(n) for n in range(9)}
    path = inputs(tmp_path, prompts)
    entry = len(orjson.dumps({"custom_id": "i0", "params": prompt_body(prompts["i0"])}))
    body = len(b'{"requests":[]}')
    assert body + 2 * entry + 1 <= 1024 < body + 3 * entry + 2  # two fit in 1,024 bytes, three do not
    config = RunConfig(
        input=path,
        output=Output(path=tmp_path / "out.jsonl"),
        base_url=sim.base_url,
        api_key="sk-test",
        via="batches",
        batches=BatchOptions(poll_interval=0.02, max_bytes=1024),
    )
    report = run_batch(config)
    assert report.ok == 9
    assert [len(batch["keys"]) for batch in sim.batches()] == [2, 2, 2, 2, 1]


def test_status_and_cancel_without_a_journal_or_with_a_refused_key_exit_2(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(api_key="sk-the-right-one")
    results = tmp_path / "in.results.jsonl"
    for command in ("status", "cancel"):
        done = run_cli(command, results, base_url=sim.base_url)
        assert done.returncode == 2
        assert done.stderr == (
            f"batchstream: error: {results}: no batches are waited for "
            "(no in.results.batches.jsonl next to it)\n"
        )
    journal = Journal(journal_path(results))
    journal.created(journal.intend([("a", "h")]), "msgbatch_01x")
    journal.close()
    done = run_cli("status", results, base_url=sim.base_url)
    assert done.returncode == 2
    assert "the API refused (HTTP 401 authentication_error: invalid x-api-key)" in done.stderr


def test_a_create_answer_lost_on_the_way_is_settled_from_the_list_not_sent_again(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(batch_processing_s=0.02, batch_create_drop_first=2)
    prompts = {f"i{n}": f"prompt {n}" for n in range(6)}
    done = run(inputs(tmp_path, prompts), sim, "--batch-size", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("checking the list") == 2 and done.stderr.count(": adopted") == 2
    assert_each_answered_once(tmp_path, prompts, sim, 2)


def test_an_overloaded_create_is_tried_again_without_spending_max_attempts(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """A 529 on create is an outage's failure, waited out up to --max-outage: even with --max-attempts 1
    the batch is created on the next try, and no item is left behind unsent."""
    sim = simulator_factory(batch_processing_s=0.02, batch_create_fail_first=1)
    prompts = {f"i{n}": f"prompt {n}" for n in range(3)}
    done = run(inputs(tmp_path, prompts), sim, "--max-attempts", "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("creating a batch failed (overloaded_error: Overloaded); checking the list") == 1
    assert_each_answered_once(tmp_path, prompts, sim, 1)


def test_shards_through_batches_merge_and_summarize_like_streamed_ones(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """`--shard`, `merge` and `summary` are the streaming path's, unchanged: two shards through batches, then
    one file in input order whose summary counts every item once at the batch price."""
    sim = simulator_factory(batch_processing_s=0.05)
    prompts = {f"item-{n:02d}": f"prompt {n}" for n in range(12)}
    path = inputs(tmp_path, prompts)
    shards = [tmp_path / f"shard-{k}.jsonl" for k in (1, 2)]
    for k, shard in enumerate(shards, start=1):
        done = run(path, sim, "--shard", f"{k}/2", "-o", str(shard))
        assert done.returncode == 0, done.stderr
    assert sum(len(read_jsonl(shard)) for shard in shards) == len(prompts)
    assert all(read_jsonl(shard) for shard in shards)  # each shard owns some items

    merged = run_cli("merge", *shards, "-o", tmp_path / "all.jsonl", "--input", path)
    assert merged.returncode == 0, merged.stderr
    rows = read_jsonl(tmp_path / "all.jsonl")
    assert [row["id"] for row in rows] == list(prompts)
    for row in rows:
        assert_reply(row, prompts[row["id"]])
    assert set(submissions(sim).values()) == {1}
    summarized = run_cli("summary", tmp_path / "all.jsonl", "-o", tmp_path / "again.summary.jsonl")
    assert summarized.returncode == 0, summarized.stderr
    total = read_jsonl(tmp_path / "again.summary.jsonl")[-1]
    assert total == read_jsonl(tmp_path / "all.summary.jsonl")[-1]
    assert (total["kind"], total["items"], total["ok"]) == ("total", 12, 12)
    assert total["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in rows))


def test_an_unreachable_batches_api_ends_with_exit_4_and_a_resume_submits_each_item_once(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """An outage on the Batches path is waited out up to --max-outage, as on the streaming path: exit 4, no
    item recorded, and the create call that got no answer settled from the list on resume."""
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prompts = {f"i{n}": f"prompt {n}" for n in range(3)}
    path = inputs(tmp_path, prompts)
    down = run_cli("run", path, *FAST, "--max-outage", "1", base_url=f"http://127.0.0.1:{port}")
    assert down.returncode == 4, down.stderr
    assert "Traceback" not in down.stderr
    assert "error: the API has been unavailable since " in down.stderr
    assert "longer than --max-outage 1 s (last error: connection_error: " in down.stderr
    assert read_jsonl(tmp_path / "in.results.jsonl") == []

    sim = simulator_factory(batch_processing_s=0.05)
    resumed = run(path, sim)
    assert resumed.returncode == 0, resumed.stderr
    assert_each_answered_once(tmp_path, prompts, sim, 1)
