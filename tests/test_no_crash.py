"""No single item can crash a run.

An exception nobody listed is injected at each stage of one item's life: building its request, each kind
of event in its stream (a server's JSON cut short, from the simulator), reading the reply's rate-limit
headers, building its result line and writing it. Each time the other items finish untouched, the one item
is recorded as `internal_error` with the exception's class and message, and a resume with --retry-errors
runs that item, and only it, exactly once more.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, cli_env, read_jsonl, run_cli, write_jsonl

from batchstream import Limits, RetryPolicy, RunConfig, run_batch
from batchstream.errors import ExitCode, InternalError
from batchstream.limiter import LaunchController
from batchstream.simulator import SimulatorThread
from batchstream.simulator.directives import STREAM_EVENTS

IDS = [f"x{i}" for i in range(6)]
BAD = "x3"


def _inputs(tmp_path: Path, bad_prompt_suffix: str = "") -> Path:
    rows = [{"id": i, "prompt": f"Item {i}." + (bad_prompt_suffix if i == BAD else "")} for i in IDS]
    return write_jsonl(tmp_path / "in.jsonl", rows)


def _run(inputs: Path, sim: SimulatorThread, **options: Any) -> Any:
    config = RunConfig(
        input=inputs,
        limits=Limits(concurrency=3),
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.01),
        api_key=TEST_KEY,
        base_url=sim.base_url,
        **options,
    )
    return run_batch(config)


def _check_one_internal_error(tmp_path: Path, message: str, attempts: int) -> None:
    """The bad item is an error with the exception's class and message; every other item is ok."""
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    assert sorted(rows) == IDS
    for item in IDS:
        if item != BAD:
            assert rows[item]["status"] == "ok", rows[item]
            assert rows[item]["text"]
    bad = rows[BAD]
    assert bad["status"] == "error"
    assert bad["error"]["type"] == "internal_error"
    assert bad["error"]["message"].startswith(message), bad["error"]
    assert bad["attempts"] == attempts
    assert bad["request_hash"] and bad["line_hash"]


def _resume_runs_only_the_bad_item(tmp_path: Path, inputs: Path, sim: SimulatorThread) -> None:
    before = sim.stats()["requests"]
    report = _run(inputs, sim, retry_errors=True)
    assert report.exit_code == ExitCode.OK
    assert sim.stats()["requests"] == before + 1
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert sorted(row["id"] for row in rows) == IDS  # each exactly once
    assert all(row["status"] == "ok" for row in rows)


@pytest.fixture
def sim(simulator_factory: Callable[..., SimulatorThread]) -> SimulatorThread:
    return simulator_factory(retry_after_s=0)


@pytest.mark.parametrize("event", STREAM_EVENTS)
def test_a_garbled_event_of_each_kind_fails_only_its_item_after_one_retry(
    tmp_path: Path, sim: SimulatorThread, event: str
) -> None:
    inputs = _inputs(tmp_path, f" [[sim garble={event}]]")
    report = _run(inputs, sim)
    assert report.exit_code == ExitCode.ITEM_ERRORS
    assert (report.ok, report.errors) == (5, 1)
    # Worth one more attempt (it may be a glitch of one reply), not more: each may be a reply paid for.
    _check_one_internal_error(tmp_path, "JSONDecodeError: ", attempts=2)
    assert sim.stats()["requests"] == 7


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str, Callable[..., bool]], None]:
    """Make `owner.name` raise RuntimeError whenever `when(*args)` holds (until `monkeypatch.undo()`)."""

    def install(owner: Any, name: str, when: Callable[..., bool]) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if when(*args, **kwargs):
                raise RuntimeError(f"injected in {name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    return install


def _is_bad_params(params: dict[str, Any], *_: Any) -> bool:
    return f"Item {BAD}." in str(params.get("messages"))


def _nth_call(n: int) -> Callable[..., bool]:
    calls = {"count": 0}

    def when(*_args: Any, **_kwargs: Any) -> bool:
        calls["count"] += 1
        return calls["count"] == n

    return when


@pytest.mark.parametrize(
    ("stage", "attempts"),
    [
        ("request building", 2),  # before anything is sent: worth the one more attempt
        ("rate-limit headers", 1),  # the reply came and is paid for: never asked for again
        ("result line", 1),
        ("write", 1),
    ],
)
def test_an_exception_at_each_stage_fails_only_its_item(
    tmp_path: Path,
    sim: SimulatorThread,
    inject: Callable[[Any, str, Callable[..., bool]], None],
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    attempts: int,
) -> None:
    import batchstream.pricing
    import batchstream.results
    import batchstream.transport.streaming

    if stage == "request building":
        inject(batchstream.transport.streaming, "_split_params", _is_bad_params)
        message, requests = "RuntimeError: injected in _split_params", 5
    elif stage == "rate-limit headers":
        inject(LaunchController, "on_success", _nth_call(4))
        message, requests = "RuntimeError: injected in on_success", 6
    elif stage == "result line":
        inject(batchstream.pricing.Pricer, "cost", _nth_call(4))
        message, requests = "RuntimeError: injected in cost", 6
    else:
        inject(
            batchstream.results,
            "_dumps_line",
            lambda record: record["id"] == BAD and record["status"] == "ok",
        )
        message, requests = "RuntimeError: injected in _dumps_line", 6
    inputs = _inputs(tmp_path)

    report = _run(inputs, sim)

    assert report.exit_code == ExitCode.ITEM_ERRORS
    assert (report.ok, report.errors) == (5, 1)
    assert sim.stats()["requests"] == requests
    rows = {row["id"]: row for row in read_jsonl(tmp_path / "in.results.jsonl")}
    [bad] = [row for row in rows.values() if row["status"] == "error"]
    assert bad["error"]["type"] == "internal_error"
    assert bad["error"]["message"] == message
    assert bad["attempts"] == attempts
    if stage in ("request building", "write"):
        assert bad["id"] == BAD
    summary = {line.get("kind"): line for line in read_jsonl(tmp_path / "in.results.summary.jsonl")}
    assert summary["total"]["errors_by_type"] == {"internal_error": 1}

    monkeypatch.undo()
    _resume_runs_only_the_bad_item(tmp_path, inputs, sim)


def test_a_failure_outside_any_item_stops_the_run_with_one_line_and_keeps_results(
    tmp_path: Path, sim: SimulatorThread, inject: Callable[[Any, str, Callable[..., bool]], None]
) -> None:
    """The launch controller is the run's, not an item's: it failing is a bug, and the run stops cleanly."""
    inject(LaunchController, "acquire", _nth_call(4))
    inputs = _inputs(tmp_path)
    with pytest.raises(InternalError) as raised:
        _run(inputs, sim)
    assert str(raised.value).startswith(
        "internal error: RuntimeError: injected in acquire (a bug in batchstream"
    )
    assert raised.value.exit_code == ExitCode.INTERNAL == 70
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert rows and all(row["status"] == "ok" for row in rows)
    summary = {line.get("kind"): line for line in read_jsonl(tmp_path / "in.results.summary.jsonl")}
    assert summary["total"]["stopped"] == "error"
    assert summary["total"]["ok"] == len(rows)


def test_the_command_line_shows_an_internal_error_as_one_line_and_the_resume_command(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    """A run-level bug through the real CLI: injected with a sitecustomize that the child imports."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from batchstream.limiter import LaunchController\n"
        "original = LaunchController.acquire\n"
        "calls = []\n"
        "def acquire(self, *args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 4:\n"
        "        raise RuntimeError('injected ' + " + repr(TEST_KEY) + ")\n"
        "    return original(self, *args, **kwargs)\n"
        "LaunchController.acquire = acquire\n"
    )
    _inputs(tmp_path)
    env = cli_env(sim.base_url, PYTHONPATH=os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    done = run_cli("run", "in.jsonl", "-q", "-c", "2", cwd=tmp_path, env=env, process=True)
    assert done.returncode == 70, done.stderr
    assert "Traceback" not in done.stderr
    assert TEST_KEY not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("batchstream: error: internal error: RuntimeError: injected [redacted] (a bug")
    assert lines[-2:] == ["batchstream: resume with:", "  batchstream run in.jsonl -q -c 2"]
    recorded = len(read_jsonl(tmp_path / "in.results.jsonl"))
    assert 0 < recorded < len(IDS)
    before = sim.stats()["requests"]
    resumed = run_cli("run", "in.jsonl", "-q", "-c", "2", cwd=tmp_path, base_url=sim.base_url)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(row["id"] for row in read_jsonl(tmp_path / "in.results.jsonl")) == IDS
    assert sim.stats()["requests"] == before + len(IDS) - recorded  # nothing recorded is asked for again
