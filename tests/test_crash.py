"""Crashes and interruptions: the results file is the checkpoint, so no kill may lose or repeat a done item.

The simulator runs in this process and outlives every batchstream process it serves, so its per-key
counts show exactly which items were requested again after a kill.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import cli_env, read_jsonl, run_cli, write_jsonl

from batchstream.inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from batchstream.simulator import SimulatorThread, expected_reply, request_key

SimFactory = Callable[..., SimulatorThread]

FAST = ("-q", "--backoff-base", "0.01", "--backoff-cap", "0.05")
# Guards against a hang only; nothing below asserts on how long anything took.
GUARD_S = 30.0


def body_for(prompt: str) -> dict[str, Any]:
    return {
        "model": DEFAULT_MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
    }


def start_run(*args: str | Path, base_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchstream", "run", *map(str, args)],
        env=cli_env(base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def complete_lines(path: Path) -> list[dict[str, Any]]:
    """The result lines a later run counts as done: whole, newline-terminated JSON objects.

    Only the very last line may be torn (a kill in the middle of its write); anything else is corruption.
    """
    if not path.exists():
        return []
    raw_lines = path.read_bytes().split(b"\n")
    *whole, tail = raw_lines  # `tail` is what follows the last newline: empty unless a write was torn
    rows = [orjson.loads(line) for line in whole if line.strip()]
    if tail:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(tail)
    return rows


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[bytes]) -> bool:
    """Poll until the results file has `count` lines; False if the run ended first."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    pytest.fail(f"no progress: {path} did not reach {count} lines within {GUARD_S:g}s")


def test_kill_9_at_random_points_never_loses_or_repeats_a_finished_item(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    rng = random.Random(20240611)
    concurrency = 16
    sim = simulator_factory(tokens_per_s=200, reply_tokens=(10, 30), retry_after_s=0)
    prompts = {f"c{i:03d}": f"Crash-test item {i}: say a few words." for i in range(150)}
    keys = {item: request_key(body_for(prompt)) for item, prompt in prompts.items()}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])
    results = tmp_path / "in.results.jsonl"
    args = (inputs, *FAST, "-c", str(concurrency))

    kills = 0
    recorded_at: dict[str, int] = {}  # id -> server attempts for its key when its line was first seen
    previous_attempts: dict[str, int] = {}
    for _ in range(8):
        proc = start_run(*args, base_url=sim.base_url)
        have = len(complete_lines(results))
        if not wait_for_lines(results, have + rng.randint(3, 12), proc):
            break  # finished before this kill point: the final run below then has nothing to do
        time.sleep(rng.uniform(0.0, 0.03))
        proc.kill()
        proc.communicate(timeout=GUARD_S)
        assert proc.returncode == -signal.SIGKILL
        kills += 1

        rows = complete_lines(results)
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids)), "an id was recorded twice"
        attempts = sim.stats()["attempts_per_key"]
        for item in ids:
            recorded_at.setdefault(item, attempts[keys[item]])
        # The only work a kill throws away is what was in flight: items requested during this run
        # whose line is not in the file. There are never more of those than the concurrency.
        requested_now = {
            item for item, key in keys.items() if attempts.get(key, 0) > previous_attempts.get(item, 0)
        }
        assert len(requested_now - set(ids)) <= concurrency
        previous_attempts = {item: attempts.get(key, 0) for item, key in keys.items()}

    assert kills >= 6, f"only {kills} kills landed mid-run; the scenario is too fast to test anything"
    assert len(recorded_at) < len(prompts), "every item finished before the last kill"

    final = run_cli(*("run", *args), base_url=sim.base_url, timeout=GUARD_S * 2)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr

    raw = results.read_bytes()
    assert raw.endswith(b"\n")
    rows = [orjson.loads(line) for line in raw.splitlines()]  # every line valid JSON
    ids = [row["id"] for row in rows]
    assert sorted(ids) == sorted(prompts), "every id exactly once"
    stats = sim.stats()
    for row in rows:
        want = expected_reply(body_for(prompts[row["id"]]), reply_tokens=(10, 30))
        assert row["status"] == "ok"
        assert row["text"] == want["text"]
    # An item whose line was in the file at a kill was never requested again afterwards.
    for item, attempts_then in recorded_at.items():
        assert stats["attempts_per_key"][keys[item]] == attempts_then, item
    # Redone work is bounded by what can be in flight when each kill lands.
    redone = sum(stats["completions_per_key"][key] - 1 for key in keys.values())
    assert stats["completed"] == len(prompts) + redone
    assert sum(stats["attempts_per_key"][key] - 1 for key in keys.values()) <= kills * concurrency
    assert stats["faults"] == {}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_signal_stops_cleanly_with_130_and_the_same_command_resumes(
    tmp_path: Path, simulator_factory: SimFactory, signum: signal.Signals
) -> None:
    sim = simulator_factory(tokens_per_s=100, reply_tokens=(20, 40), retry_after_s=0)
    prompts = {f"s{i:02d}": f"Signal item {i}." for i in range(60)}
    keys = {item: request_key(body_for(prompt)) for item, prompt in prompts.items()}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])
    results = tmp_path / "in.results.jsonl"
    summary = tmp_path / "in.results.summary.jsonl"
    args = (inputs, *FAST, "-c", "8")

    proc = start_run(*args, base_url=sim.base_url)
    assert wait_for_lines(results, 5, proc), "the run ended before it could be interrupted"
    proc.send_signal(signum)
    _, err_bytes = proc.communicate(timeout=GUARD_S)
    stderr = err_bytes.decode()

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Resume with:" in stderr
    assert f"batchstream run {inputs}" in stderr
    raw = results.read_bytes()
    assert raw.endswith(b"\n")
    rows = [orjson.loads(line) for line in raw.splitlines()]
    assert 5 <= len(rows) < len(prompts)
    assert all(row["status"] == "ok" for row in rows), "interrupted items must not be recorded as errors"
    [total] = [line for line in read_jsonl(summary) if line["kind"] == "total"]
    assert (total["items"], total["ok"], total["errors"]) == (len(rows), len(rows), 0)
    attempts_then = sim.stats()["attempts_per_key"]
    done_before = {row["id"] for row in rows}

    resumed = run_cli("run", *args, base_url=sim.base_url, timeout=GUARD_S * 2)
    assert resumed.returncode == 0, resumed.stderr
    final = read_jsonl(results)
    assert sorted(row["id"] for row in final) == sorted(prompts)
    assert final[: len(rows)] == rows
    stats = sim.stats()
    for item in done_before:
        assert stats["attempts_per_key"][keys[item]] == attempts_then[keys[item]], item
    for row in final:
        assert row["text"] == expected_reply(body_for(prompts[row["id"]]), reply_tokens=(20, 40))["text"]


def test_a_second_sigint_quits_at_once_with_130_and_a_valid_file(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(tokens_per_s=100, reply_tokens=(20, 40), retry_after_s=0)
    prompts = {f"d{i:02d}": f"Double signal item {i}." for i in range(60)}
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in prompts.items()])
    results = tmp_path / "in.results.jsonl"
    args = (inputs, *FAST, "-c", "8")

    proc = start_run(*args, base_url=sim.base_url)
    assert wait_for_lines(results, 5, proc), "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    first = proc.stderr.readline().decode()  # the first signal has been handled once this is printed
    assert first.startswith("batchstream: interrupted: stopping"), first
    proc.send_signal(signal.SIGINT)
    _, err_bytes = proc.communicate(timeout=GUARD_S)
    stderr = first + err_bytes.decode()

    # The second signal either reaches the run while it is stopping (it quits at once with 130) or, when the
    # graceful stop already finished, the interpreter's teardown, which dies of SIGINT: a shell reports that
    # as 130 too. Anything else (1, a traceback) is wrong.
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    raw = results.read_bytes()
    assert raw.endswith(b"\n")
    rows = [orjson.loads(line) for line in raw.splitlines()]
    assert 5 <= len(rows) < len(prompts)
    assert len({row["id"] for row in rows}) == len(rows)
    assert all(row["status"] == "ok" for row in rows)

    resumed = run_cli("run", *args, base_url=sim.base_url, timeout=GUARD_S * 2)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(row["id"] for row in read_jsonl(results)) == sorted(prompts)
