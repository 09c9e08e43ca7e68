"""`batchstream summary`: the summary rebuilt from a results file, as a table and JSONL or as the Markdown
job summary (figures, per-model table, first errors escaped), and the GITHUB_STEP_SUMMARY helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.markdown import append_github_step_summary, first_errors, markdown_summary
from batchstream.pricing import Pricer
from batchstream.summary import format_table, summarize_file

LONG = "word " * 80  # 400 characters


def ok(
    item_id: str, model: str, inp: int, out: int, cost: float, latency: float, ttft: float
) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": "ok",
        "model": model,
        "usage": {"input_tokens": inp, "output_tokens": out},
        "cost_usd": cost,
        "latency_s": latency,
        "ttft_s": ttft,
        "attempts": 1,
        "error": None,
    }


def failed(item_id: str, error_type: str, status: int | None, message: str) -> dict[str, Any]:
    error = {"type": error_type, "message": message, "status": status}
    return {"id": item_id, "status": "error", "model": "claude-sonnet-5-5", "usage": None, "error": error}


def results(path: Path) -> Path:
    return write_jsonl(
        path,
        [
            ok("a", "claude-sonnet-5-5", 100, 20, 0.0006, 1.0, 0.2),
            failed("e1", "invalid_request_error", 400, "max_tokens: | pipes | and <b>tags</b>\nover lines"),
            ok("b", "claude-haiku-4-5", 50, 10, 0.0001, 2.0, 0.4),
            failed("e2", "overloaded_error", 529, "Overloaded"),
            failed("e3", "incomplete_stream", None, LONG),
            failed("e_4", "api_error", 500, "*not bold* `not code` [not](a link)"),
            failed("e5", "api_error", 500, "five"),
            failed("e6", "api_error", 500, "six"),
            failed("e7", "api_error", 500, "seven"),
        ],
    )


def test_summary_writes_the_jsonl_and_prints_the_table(tmp_path: Path) -> None:
    path = results(tmp_path / "run.results.jsonl")
    done = run_cli("summary", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = summarize_file(path, pricer=Pricer()).lines()
    assert read_jsonl(tmp_path / "run.results.summary.jsonl") == lines
    assert done.stderr == format_table(lines) + "\n"
    [total] = [line for line in lines if line["kind"] == "total"]
    assert (total["items"], total["ok"], total["errors"], total["input_tokens"]) == (9, 2, 7, 150)
    assert total["wall_time_s"] is None


def test_summary_output_option(tmp_path: Path) -> None:
    path = results(tmp_path / "run.results.jsonl")
    done = run_cli("summary", path, "--output", tmp_path / "elsewhere.jsonl")
    assert done.returncode == 0, done.stderr
    assert read_jsonl(tmp_path / "elsewhere.jsonl") == summarize_file(path, pricer=Pricer()).lines()
    assert not (tmp_path / "run.results.summary.jsonl").exists()


def test_markdown_has_the_figures_and_the_first_five_errors_escaped(tmp_path: Path) -> None:
    path = results(tmp_path / "run.results.jsonl")
    done = run_cli("summary", path, "--markdown")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    md = done.stdout
    assert "**9 items**: 2 ok, 7 errors · cost **$0.000700**" in md
    assert "| claude-haiku-4-5 | 1 | 1 | 0 | 50 | 10 | $0.000100 |" in md
    assert "| claude-sonnet-5-5 | 8 | 1 | 7 | 100 | 20 | $0.000600 |" in md
    assert "| **total** | 9 | 2 | 7 | 150 | 30 | $0.000700 |" in md
    assert "tokens: input 150 · output 30 · cache write 0 · cache read 0" in md
    assert "latency p50 1.50 s · p95 1.95 s · TTFT p50 0.30 s · p95 0.39 s" in md
    assert "### First errors (5 of 7)" in md
    error_rows = [line for line in md.splitlines() if line.startswith("| e")]
    assert [row.split(" | ")[0] for row in error_rows] == ["| e1", "| e2", "| e3", "| e\\_4", "| e5"]
    assert error_rows[0] == (
        "| e1 | invalid\\_request\\_error | 400 | "
        "max\\_tokens: \\| pipes \\| and \\<b\\>tags\\</b\\> over lines |"
    )
    assert error_rows[1] == "| e2 | overloaded\\_error | 529 | Overloaded |"
    long_message = error_rows[2].split(" | ")[3].removesuffix(" |")
    assert long_message == LONG[:199] + "…"
    assert error_rows[2].startswith("| e3 | incomplete\\_stream | - | ")
    assert "\\*not bold\\* \\`not code\\` \\[not\\](a link)" in error_rows[3]
    assert "six" not in md and "seven" not in md


def test_markdown_of_a_real_run(tmp_path: Path, simulator) -> None:
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "fine", "prompt": "Hello"}, {"id": "broken", "prompt": "[[sim status=400]] fail"}],
    )
    assert run_cli("run", inputs, "-q", base_url=simulator.base_url).returncode == 1
    done = run_cli("summary", tmp_path / "in.results.jsonl", "--markdown")
    assert done.returncode == 0, done.stderr
    assert "**2 items**: 1 ok, 1 error · cost" in done.stdout
    assert "| broken | invalid\\_request\\_error | 400 |" in done.stdout


def test_first_errors_counts_only_the_last_line_of_an_id(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [
            failed("x", "overloaded_error", 529, "first try"),
            failed("y", "api_error", 500, "stays"),
            ok("x", "claude-sonnet-5-5", 1, 1, 0.0, 1.0, 0.1),
        ],
    )
    assert [record["id"] for record in first_errors(path)] == ["y"]
    assert [record["id"] for record in first_errors(results(tmp_path / "s.jsonl"), limit=2)] == ["e1", "e2"]


def test_markdown_of_an_empty_summary() -> None:
    assert markdown_summary([], []) == "## batchstream summary\n\nNo results.\n"


def test_a_bad_line_in_the_middle_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id": "a", "status": "ok"}\nnot json\n{"id": "b", "status": "ok"}\n')
    done = run_cli("summary", path)
    assert done.returncode == 2
    assert f"{path}:2: not valid JSON" in done.stderr


def test_append_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_github_step_summary("# nothing") is None
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert append_github_step_summary("## one") == target
    assert append_github_step_summary("## two\n") == target
    assert target.read_text() == "earlier step\n## one\n## two\n"
