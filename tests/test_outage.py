"""Outages, account stops and systematic errors end or pause the run; they never burn the batch into errors.

Each check runs the real CLI against the simulator (or against nothing at all), as a user would, and
reads what the results file, the exit code, stderr and the simulator's own counts say.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_exact_replies, prompt_body, read_jsonl, run_items, write_jsonl

from batchstream import (
    BatchstreamError,
    ExitCode,
    Host,
    RetryPolicy,
    RunConfig,
    RunReport,
    StopReason,
    run_batch,
)
from batchstream.progress import LineProgress
from batchstream.simulator import SimulatorThread, request_key

SimFactory = Callable[..., SimulatorThread]

# Tight retries for every item: two attempts, no real waiting. Without the breaker, an outage of a few
# seconds would spend them all and record every item as an error.
TIGHT = ("--max-attempts", "2", "--backoff-base", "0.01", "--backoff-cap", "0.2", "-c", "8")
PROMPTS = {f"item-{i:02d}": f"Outage item {i}: say something." for i in range(24)}


def completions_once(sim: SimulatorThread, prompts: dict[str, str]) -> None:
    """The simulator completed each prompt exactly once: nothing was paid for twice."""
    want = {request_key(prompt_body(prompt)): 1 for prompt in prompts.values()}
    assert sim.stats()["completions_per_key"] == want


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_529_storm_pauses_the_run_and_every_item_then_ends_ok_once(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    # Every request fails with 529 for 5 s from the first one; then the service is back.
    sim = simulator_factory(outage_s=5, outage_kind="529", retry_after_s=1)
    done = run_items(tmp_path, sim.base_url, PROMPTS, *TIGHT)

    assert_exact_replies(done, PROMPTS, attempts=None)
    completions_once(sim, PROMPTS)
    # Few requests during the storm: the first wave, a few retries before the outage is declared, then one
    # probe at a time (every item retrying on its own would have sent 2 x 24 and recorded 24 errors).
    during = sim.stats()["faults"]["outage"]
    assert 8 <= during <= 24, during
    assert "API unavailable since " in done.stderr
    assert "(probing every 1 s): HTTP 529 overloaded_error: Overloaded" in done.stderr
    assert "API available again: resuming" in done.stderr
    rows = read_jsonl(tmp_path / "in.results.jsonl")
    assert sum(row["attempts"] - 1 for row in rows) == during  # each failed attempt was retried, not charged


@pytest.mark.parametrize("where", ["closed port", "unknown host"])
def test_an_unreachable_api_ends_with_exit_4_and_a_resume_completes_each_item_once(
    tmp_path: Path, simulator_factory: SimFactory, where: str
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}" if where == "closed port" else "http://api.outage.invalid"
    down = run_items(tmp_path, base_url, PROMPTS, *TIGHT, "--max-outage", "1.5")

    assert down.returncode == 4, down.stderr
    assert "Traceback" not in down.stderr, down.stderr
    assert down.rows == []  # no item recorded, as an error or at all
    assert "error: the API has been unavailable since " in down.stderr
    assert "longer than --max-outage 1.5 s (last error: connection_error: " in down.stderr
    assert "Unfinished items are not recorded" in down.stderr
    assert "batchstream: resume with:" in down.stderr
    summary = read_jsonl(tmp_path / "in.results.summary.jsonl")
    assert [line["stopped"] for line in summary if line["kind"] == "total"] == ["outage"]

    sim = simulator_factory()
    resumed = run_items(tmp_path, sim.base_url, PROMPTS, *TIGHT)
    assert_exact_replies(resumed, PROMPTS)
    completions_once(sim, PROMPTS)


def test_one_at_a_time_an_outage_still_records_no_item(tmp_path: Path) -> None:
    # At -c 1 the first two items fail alone, so their attempts are spent before the run can tell an
    # outage (outage.py); their rows are held back, and dropped when the run ends in one.
    prompts = dict(list(PROMPTS.items())[:5])
    base_url = f"http://127.0.0.1:{closed_port()}"
    done = run_items(tmp_path, base_url, prompts, *TIGHT, "-c", "1", "--max-outage", "1")
    assert done.returncode == 4, done.stderr
    assert done.rows == []


@pytest.mark.parametrize(
    ("account", "status", "says"),
    [
        ("credit_exhausted", 400, "Your credit balance is too low to access the Anthropic API."),
        ("usage_limit", 400, "You have reached your specified API usage limits."),
        ("spend_limit", 429, "This request would exceed your account's monthly spend limit."),
    ],
)
def test_an_account_that_cannot_go_on_stops_the_run_after_the_first_answer(
    tmp_path: Path, simulator_factory: SimFactory, account: str, status: int, says: str
) -> None:
    sim = simulator_factory(account=account)
    done = run_items(tmp_path, sim.base_url, PROMPTS, "-c", "1")

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.rows == []
    assert f"(HTTP {status} " in done.stderr and says in done.stderr
    assert "Every remaining item would fail the same way, so the run stopped." in done.stderr
    assert sim.stats()["by_status"] == {str(status): 1}


def test_a_model_that_is_not_there_stops_the_run_after_ten_items_none_recorded(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(missing_model="claude-gone-1")
    done = run_items(tmp_path, sim.base_url, PROMPTS, "--model", "claude-gone-1", "-c", "4")

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.rows == []  # not recorded as errors: the corrected command runs them
    assert (
        "error: the first 10 items all failed the same way and none succeeded "
        "(HTTP 404 not_found_error: model: claude-gone-1)"
    ) in done.stderr
    refused = sim.stats()["by_status"]["404"]
    assert 10 <= refused <= 10 + 4, refused  # the ten, and at most what was in flight with them

    fixed = run_items(tmp_path, sim.base_url, PROMPTS)
    assert_exact_replies(fixed, PROMPTS)
    completions_once(sim, PROMPTS)


def test_fewer_identical_errors_than_ten_are_recorded_as_the_errors_they_are(
    tmp_path: Path, simulator_factory: SimFactory
) -> None:
    sim = simulator_factory(missing_model="claude-gone-1")
    prompts = dict(list(PROMPTS.items())[:4])
    done = run_items(tmp_path, sim.base_url, prompts, "--model", "claude-gone-1")

    assert done.returncode == 1, done.stderr
    assert sorted(row["id"] for row in done.rows) == sorted(prompts)
    for row in done.rows:
        assert row["status"] == "error"
        assert row["error"] == {"type": "not_found_error", "message": "model: claude-gone-1", "status": 404}


def test_the_library_raises_exit_4_after_the_summary_and_records_nothing(tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": f"Q{i}?"} for i in range(4)])
    reports: list[RunReport] = []

    class Collect(Host):
        def finished(self, report: RunReport) -> None:
            reports.append(report)

    config = RunConfig(
        input=prompts,
        base_url=f"http://127.0.0.1:{closed_port()}",
        api_key="sk-test",
        retry=RetryPolicy(max_outage=1, backoff_base=0.01, backoff_cap=0.05),
    )
    with pytest.raises(BatchstreamError, match="longer than --max-outage 1 s") as raised:
        run_batch(config, host=Collect())
    assert raised.value.exit_code == ExitCode.OUTAGE == 4
    [report] = reports
    assert (report.stopped, report.exit_code, report.ok, report.errors) == (StopReason.OUTAGE, 4, 0, 0)
    assert read_jsonl(tmp_path / "in.results.jsonl") == []


def test_max_outage_must_be_positive() -> None:
    with pytest.raises(BatchstreamError, match="max_outage must be greater than 0"):
        RetryPolicy(max_outage=0)


def test_plain_progress_lines_say_while_the_api_is_unavailable() -> None:
    stream = io.StringIO()
    progress = LineProgress(10, 0, stream, interval=0)
    progress.notice = "API unavailable since 12:00:00 (probing every 2 s)"
    progress.tick()
    progress.notice = None
    progress.tick()
    outage, after = stream.getvalue().splitlines()
    assert outage.startswith("batchstream: 0/10 done (0 ok, 0 errors this run)")
    assert outage.endswith("ETA -; API unavailable since 12:00:00 (probing every 2 s)")
    assert after.endswith("ETA -")
