"""Resilience end to end: the real CLI against the simulator's injected faults, checked by exact counts.

Every fault kind alone, all of them mixed, non-retryable and exhausted items, a rejected API key, the
server's retry-after and its requests-per-minute limit. Each check is on what was recorded (texts,
attempts, retry causes) against what the simulator says it injected and completed.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from batchstream.simulator import SimulatorThread, expected_reply, request_key

SimFactory = Callable[..., SimulatorThread]

# Small backoff so retries cost milliseconds; a server's retry-after is honoured as given regardless.
FAST = ("-q", "--backoff-base", "0.01", "--backoff-cap", "0.05", "--stall-timeout", "0.5")

# The cause a retry is counted under in the results and the summary, per injected fault kind.
CAUSE = {
    "429": "rate_limit",
    "529": "overloaded",
    "500": "server_error",
    "error_event": "overloaded",
    "drop": "connection",
    "truncate": "incomplete",
    "stall": "stall",
}
STATUS_OF = {"429": 429, "529": 529, "500": 500}


def body_for(prompt: str) -> dict[str, Any]:
    """The request body `run` sends for a line that gives only a prompt."""
    return {
        "model": DEFAULT_MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
    }


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"an id was recorded twice: {Counter(ids).most_common(3)}"
    return {row["id"]: row for row in rows}


def assert_exact_reply(row: dict[str, Any], prompt: str) -> None:
    want = expected_reply(body_for(prompt))
    assert row["status"] == "ok", row
    assert row["error"] is None
    assert row["text"] == want["text"]
    assert row["stop_reason"] == want["stop_reason"]
    assert row["usage"]["output_tokens"] == want["usage"]["output_tokens"]
    assert row["usage"]["input_tokens"] == want["usage"]["input_tokens"]


def total_line(summary: Path) -> dict[str, Any]:
    [total] = [line for line in read_jsonl(summary) if line.get("kind") == "total"]
    return total


# --- each fault kind alone -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CAUSE))
def test_each_fault_kind_alone_is_retried_to_the_exact_reply(
    tmp_path: Path, simulator_factory: SimFactory, kind: str
) -> None:
    sim = simulator_factory(retry_after_s=0, stall_s=3600)
    # Item i is scripted to fail i % 3 times (0, 1 or 2) with this one kind, then succeed.
    injected = {f"k{i}": i % 3 for i in range(6)}
    prompts = {
        item: f"Item {item}: say something. [[sim fail={','.join([kind] * n)}]]"
        for item, n in injected.items()
    }
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    done = run_cli("run", inputs, *FAST, base_url=sim.base_url)

    assert done.returncode == 0, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    for item, prompt in prompts.items():
        row = rows[item]
        assert_exact_reply(row, prompt)
        assert row["attempts"] == injected[item] + 1, (item, row)
        assert row["retries"] == ({CAUSE[kind]: injected[item]} if injected[item] else {}), (item, row)

    faults = sum(injected.values())
    total = total_line(tmp_path / "in.results.summary.jsonl")
    assert (total["ok"], total["errors"]) == (6, 0)
    assert total["retries"] == {CAUSE[kind]: faults}
    assert total["attempts"] == len(prompts) + faults

    stats = sim.stats()
    assert stats["faults"] == {kind: faults}
    assert stats["completed"] == len(prompts)
    assert stats["max_completions_per_key"] == 1
    assert stats["requests"] == len(prompts) + faults
    for item, prompt in prompts.items():
        assert stats["attempts_per_key"][request_key(body_for(prompt))] == injected[item] + 1
    if kind in STATUS_OF:
        assert stats["by_status"] == {"200": len(prompts), str(STATUS_OF[kind]): faults}


# --- all kinds mixed ---------------------------------------------------------------------------------------


def test_mixed_faults_over_a_batch_all_end_ok_and_every_fault_is_one_retry(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(
        seed=7,
        retry_after_s=0,
        reply_tokens=(5, 40),
        p_429=0.03,
        p_529=0.03,
        p_500=0.03,
        p_error_event=0.03,
        p_drop=0.03,
        p_truncate=0.03,
        p_stall=0.01,
    )
    prompts = {f"m{i:03d}": f"Mixed item {i}: write a line." for i in range(300)}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    done = run_cli("run", inputs, *FAST, "-c", "32", base_url=sim.base_url)

    assert done.returncode == 0, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    stats = sim.stats()
    for item, prompt in prompts.items():
        want = expected_reply(body_for(prompt), reply_tokens=(5, 40))
        assert rows[item]["status"] == "ok", rows[item]
        assert rows[item]["text"] == want["text"]
        assert rows[item]["attempts"] == stats["attempts_per_key"][request_key(body_for(prompt))]

    faults = stats["faults"]
    assert set(faults) == set(CAUSE), f"seeded run should inject every kind at least once: {faults}"
    injected = sum(faults.values())
    assert sum(row["attempts"] - 1 for row in rows.values()) == injected
    expected_retries = Counter[str]()
    for kind, n in faults.items():
        expected_retries[CAUSE[kind]] += n
    total = total_line(tmp_path / "in.results.summary.jsonl")
    assert total["retries"] == dict(sorted(expected_retries.items()))
    assert (total["ok"], total["errors"], total["attempts"]) == (300, 0, 300 + injected)
    assert stats["completed"] == 300
    assert stats["max_completions_per_key"] == 1
    assert stats["requests"] == 300 + injected


# --- errors that are not retried, or retried until the attempts run out -----------------------------------


def test_a_reply_that_outlasts_the_timeout_is_cut_retried_and_recorded_as_a_timeout(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """The reply never stalls (a token every 50 ms) but takes 2 s, well past --timeout 0.4 s."""
    sim = simulator_factory(tokens_per_s=20, reply_tokens=(40, 40))
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "slow", "prompt": "Take your time."}])
    args = ("--timeout", "0.4", "--max-attempts", "2")
    done = run_cli("run", inputs, *FAST, *args, base_url=sim.base_url)
    assert done.returncode == 1, done.stderr
    [row] = read_jsonl(tmp_path / "in.results.jsonl")
    assert row["status"] == "error"
    assert (row["attempts"], row["retries"]) == (2, {"timeout": 1})
    assert row["error"] == {"type": "timeout", "message": "no reply within --timeout 0.4s", "status": None}
    assert sim.stats()["requests"] == 2


def test_a_400_is_recorded_as_that_items_error_and_the_run_goes_on(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(retry_after_s=0)
    prompts = {f"r{i}": f"Request {i}." for i in range(5)}
    prompts["bad"] = "This one is refused. [[sim status=400]]"
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    done = run_cli("run", inputs, *FAST, base_url=sim.base_url)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    bad = rows.pop("bad")
    assert bad["status"] == "error"
    assert bad["error"] == {
        "type": "invalid_request_error",
        "message": "Invalid request (simulated).",
        "status": 400,
    }
    assert bad["attempts"] == 1
    assert bad["retries"] == {}
    assert bad["text"] is None
    assert str(bad["request_id"]).startswith("req_")
    for item, row in rows.items():
        assert_exact_reply(row, prompts[item])
        assert row["attempts"] == 1
    total = total_line(tmp_path / "in.results.summary.jsonl")
    assert (total["ok"], total["errors"]) == (5, 1)
    assert total["errors_by_type"] == {"invalid_request_error": 1}
    assert total["retries"] == {}
    stats = sim.stats()
    assert stats["attempts_per_key"][request_key(body_for(prompts["bad"]))] == 1
    assert stats["by_status"] == {"200": 5, "400": 1}


def test_max_attempts_records_the_last_error_after_exactly_that_many_attempts(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(retry_after_s=0)
    prompts = {
        "fine": "Nothing wrong here.",
        "overloaded": "Always busy. [[sim fail=529,529,529,529,529,529]]",
        "cut": "Always cut short. [[sim fail=drop,drop,truncate,truncate,truncate]]",
    }
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    done = run_cli("run", inputs, *FAST, "--max-attempts", "3", base_url=sim.base_url)

    assert done.returncode == 1, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert_exact_reply(rows["fine"], prompts["fine"])
    overloaded = rows["overloaded"]
    assert overloaded["status"] == "error"
    assert overloaded["attempts"] == 3
    assert overloaded["retries"] == {"overloaded": 2}
    assert overloaded["error"] == {"type": "overloaded_error", "message": "Overloaded", "status": 529}
    cut = rows["cut"]
    assert cut["status"] == "error"
    assert cut["attempts"] == 3
    assert cut["retries"] == {"connection": 2}  # the two drops were retried; the truncate was the last straw
    assert cut["error"] == {
        "type": "incomplete_stream",
        "message": "the stream ended before message_stop",
        "status": None,
    }
    stats = sim.stats()
    for item in ("overloaded", "cut"):
        assert stats["attempts_per_key"][request_key(body_for(prompts[item]))] == 3
    assert stats["completed"] == 1
    total = total_line(tmp_path / "in.results.summary.jsonl")
    assert total["errors_by_type"] == {"incomplete_stream": 1, "overloaded_error": 1}
    assert total["retries"] == {"connection": 2, "overloaded": 2}


# --- a rejected key stops the run at once and loses nothing ----------------------------------------------


def test_401_stops_at_once_keeps_what_was_written_and_a_rerun_completes_each_item_once(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    prompts = {f"a{i:02d}": f"Auth item {i}." for i in range(20)}
    rows = [{"id": i, "prompt": p} for i, p in prompts.items()]
    results = tmp_path / "out.jsonl"

    # An earlier run finished the first 8 items.
    first_sim = simulator_factory(retry_after_s=0)
    first = run_cli(
        "run",
        write_jsonl(tmp_path / "part.jsonl", rows[:8]),
        "-o",
        results,
        *FAST,
        base_url=first_sim.base_url,
    )
    assert first.returncode == 0, first.stderr
    before = results.read_bytes()
    assert len(read_jsonl(results)) == 8

    # Now the server rejects the key: the run must stop at once, with a clear message and exit 2.
    wrong_sim = simulator_factory(retry_after_s=0, api_key="sk-ant-api03-a-different-key-altogether")
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    refused = run_cli("run", inputs, "-o", results, *FAST, "-c", "4", base_url=wrong_sim.base_url)

    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "the API rejected the API key (HTTP 401 authentication_error: invalid x-api-key)" in refused.stderr
    assert f"Results already written to {results} are kept" in refused.stderr
    assert results.read_bytes() == before, "in-flight items must not be recorded (as errors or at all)"
    refused_stats = wrong_sim.stats()
    assert set(refused_stats["by_status"]) == {"401"}
    # At once: no retries of a 401, and nothing launched beyond the first window of 4.
    assert 1 <= refused_stats["by_status"]["401"] <= 4

    # With the key accepted again, the same command finishes everything, each item exactly once.
    good_sim = simulator_factory(retry_after_s=0)
    resumed = run_cli("run", inputs, "-o", results, *FAST, "-c", "4", base_url=good_sim.base_url)
    assert resumed.returncode == 0, resumed.stderr
    final = by_id(read_jsonl(results))
    assert set(final) == set(prompts)
    for item, prompt in prompts.items():
        assert_exact_reply(final[item], prompt)
    assert results.read_bytes().startswith(before)
    good_stats = good_sim.stats()
    assert good_stats["completions_per_key"] == {
        request_key(body_for(prompts[item])): 1 for item in list(prompts)[8:]
    }


# --- the server's pacing ---------------------------------------------------------------------------------


def test_retry_after_is_honoured_even_with_a_tiny_backoff(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(fail_first=1, fail_kind="429", retry_after_s=1)
    prompts = {f"w{i}": f"Wait for it {i}." for i in range(4)}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    done = run_cli("run", inputs, *FAST, base_url=sim.base_url)

    assert done.returncode == 0, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    for item, prompt in prompts.items():
        assert_exact_reply(rows[item], prompt)
        assert rows[item]["attempts"] == 2
        assert rows[item]["retries"] == {"rate_limit": 1}
    stats = sim.stats()
    assert stats["by_status"] == {"200": 4, "429": 4}
    # Every item's first attempt got "retry-after: 1" and the backoff cap is 0.05 s, so only honouring
    # the header can make the run last a second (a generous lower bound; no upper bound is checked).
    assert total_line(tmp_path / "in.results.summary.jsonl")["wall_time_s"] >= 0.9


def test_a_learned_rate_limit_keeps_429s_rare_and_the_run_moving(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    """130 items against a 120-requests-per-minute limit: the bucket starts full, so 120 pass at once and
    the last 10 need about 5 s at 2 requests/s. The client learns the limit from the
    anthropic-ratelimit-* headers and paces, so 429s stay under 5% of requests.

    The run should take seconds; the subprocess timeout is only a guard against waiting for the whole
    minute's window to refill, and is 4x what the pacing itself needs.
    """
    sim = simulator_factory(rpm=120, reply_tokens=(5, 10))
    prompts = {f"q{i:03d}": f"Paced item {i}." for i in range(130)}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])

    try:
        done = run_cli("run", inputs, *FAST, "-c", "16", base_url=sim.base_url, timeout=30)
    except subprocess.TimeoutExpired:
        stats = sim.stats()
        pytest.fail(
            "the run stalled: 10 items over a 120 rpm burst need ~5 s of pacing, but after 30 s "
            f"only {stats['completed']} of 130 were completed (by_status {stats['by_status']}); the "
            "limiter pauses until anthropic-ratelimit-requests-reset (the time the whole window is refilled, "
            "~60 s) whenever remaining reaches 0"
        )

    assert done.returncode == 0, done.stderr
    rows = by_id(read_jsonl(tmp_path / "in.results.jsonl"))
    assert set(rows) == set(prompts)
    assert all(row["status"] == "ok" for row in rows.values())
    stats = sim.stats()
    assert stats["completed"] == 130
    assert stats["max_completions_per_key"] == 1
    throttled = stats["by_status"].get("429", 0)
    assert stats["by_status"] == {"200": 130, **({"429": throttled} if throttled else {})}
    assert throttled < 0.05 * stats["requests"], stats["by_status"]
