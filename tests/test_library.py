"""The public API, used in-process the way the README shows it: no CLI, no printing, no signals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import read_jsonl, write_jsonl

import batchstream
from batchstream import (
    Host,
    Limits,
    Output,
    RetryPolicy,
    RunConfig,
    RunReport,
    StopReason,
    UsageError,
    arun_batch,
    run_batch,
)
from batchstream.progress import Progress
from batchstream.simulator import SimulatorConfig, expected_reply


def _prompts(tmp_path: Path, count: int = 5) -> Path:
    return write_jsonl(
        tmp_path / "prompts.jsonl", [{"id": f"q{i}", "prompt": f"Question {i}?"} for i in range(count)]
    )


def test_the_readme_example_runs_on_the_simulator_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    prompts = _prompts(tmp_path)

    report = run_batch(RunConfig(input=prompts, simulate=True, simulator=SimulatorConfig(ttft_s=0)))

    assert (report.ok, report.errors, report.total, report.already_done) == (5, 0, 5, 0)
    assert report.output == tmp_path / "prompts.results.jsonl"
    assert report.stopped is StopReason.COMPLETED
    assert report.exit_code == 0
    rows = read_jsonl(report.output)
    assert [row["id"] for row in sorted(rows, key=lambda row: row["id"])] == [f"q{i}" for i in range(5)]
    for row in rows:
        params = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": f"Question {row['id'][1:]}?"}],
        }
        assert row["text"] == expected_reply(params)["content"][0]["text"]
    assert report.total_line["ok"] == 5
    assert capfd.readouterr() == ("", "")  # a library prints nothing


def test_arun_batch_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path, 3)

    async def notebook_cell() -> RunReport:
        return await arun_batch(
            RunConfig(
                input=prompts,
                simulate=True,
                simulator=SimulatorConfig(ttft_s=0),
                limits=Limits(concurrency=2),
            )
        )

    report = asyncio.run(notebook_cell())
    assert (report.ok, report.errors) == (3, 0)
    # And the results file is the checkpoint there too: a second run sends nothing.
    again = asyncio.run(notebook_cell())
    assert (again.ok, again.already_done) == (0, 3)


def test_a_host_hears_what_the_run_does(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path, 2)
    (tmp_path / "prompts.results.jsonl").write_bytes(b'{"id": "q0", "status": "ok"')  # a crash's torn line
    heard: list[str] = []
    finished: list[RunReport] = []

    class Recording(Host):
        def log(self, message: str) -> None:
            heard.append(message)

        def progress(self, total: int, done_before: int) -> Progress:
            assert (total, done_before) == (2, 0)
            return super().progress(total, done_before)

        def finished(self, report: RunReport) -> None:
            finished.append(report)

    report = run_batch(RunConfig(input=prompts, simulate=True), host=Recording())
    assert heard == [
        f"{tmp_path / 'prompts.results.jsonl'}: dropped a half-written last line (left by a crash); "
        "that item runs again"
    ]
    assert finished == [report]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Limits(concurrency=0), "concurrency must be at least 1, got 0"),
        (lambda: Limits(rpm=0), "rpm must be greater than 0, got 0"),
        (lambda: Limits(max_cost=-1), "max_cost must be >= 0, got -1"),
        (lambda: RetryPolicy(max_attempts=0), "max_attempts must be at least 1, got 0"),
        (lambda: RetryPolicy(timeout=0), "timeout must be greater than 0, got 0"),
        (
            lambda: RunConfig(input=Path("x"), fail_on_error_rate=2),
            "fail_on_error_rate must be within [0, 1], got 2",
        ),
        (
            lambda: RunConfig(input=Path("x"), output=Output(stdout=True), restart=True),
            "-o - keeps no checkpoint, so there is nothing to resume, restart or retry: give "
            "--checkpoint PATH as well",
        ),
    ],
)
def test_a_config_is_checked_when_built(build: object, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        build()  # type: ignore[operator]
    assert str(raised.value) == message


def test_without_a_key_the_library_says_so_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(UsageError) as raised:
        run_batch(RunConfig(input=_prompts(tmp_path), base_url="http://127.0.0.1:9"))
    assert str(raised.value).startswith("no API key: set ANTHROPIC_API_KEY")
    assert not (tmp_path / "prompts.results.jsonl").read_bytes()  # nothing recorded


def test_everything_the_package_exports_exists() -> None:
    for name in batchstream.__all__:
        assert getattr(batchstream, name) is not None, name
