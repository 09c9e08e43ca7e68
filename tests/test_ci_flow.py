"""The CI evaluation flow, run locally against the simulator: shards, merge, budget stop and continue."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import cli_env, read_jsonl, run_cli, write_jsonl

from batchstream.inputs import Defaults, iter_requests
from batchstream.pricing import Pricer
from batchstream.shard import shard_of
from batchstream.tokens import estimate_input_tokens


def _rows(count: int) -> list[dict[str, object]]:
    return [{"id": f"case-{i:03d}", "prompt": f"Evaluation case {i}: answer briefly."} for i in range(count)]


def test_four_shards_cover_the_file_once_and_merge_in_input_order(tmp_path: Path, simulator) -> None:
    inputs = write_jsonl(tmp_path / "evals.jsonl", _rows(40))
    ids = [f"case-{i:03d}" for i in range(40)]
    for k in range(1, 5):
        done = run_cli("run", inputs, "--shard", f"{k}/4", "-o", tmp_path / f"shard-{k}.jsonl", "-q",
                       base_url=simulator.base_url)  # fmt: skip
        assert done.returncode == 0, done.stderr
        shard_ids = [row["id"] for row in read_jsonl(tmp_path / f"shard-{k}.jsonl")]
        assert sorted(shard_ids) == [i for i in ids if shard_of(i, 4) == k]
    assert simulator.stats()["completed"] == 40

    shards = [tmp_path / f"shard-{k}.jsonl" for k in range(1, 5)]
    merged = run_cli("merge", *shards, "-o", tmp_path / "all.jsonl", "--input", inputs)
    assert merged.returncode == 0, merged.stderr
    rows = read_jsonl(tmp_path / "all.jsonl")
    assert [row["id"] for row in rows] == ids
    total = read_jsonl(tmp_path / "all.summary.jsonl")[-1]
    assert total["kind"] == "total"
    assert total["items"] == total["ok"] == 40
    assert total["output_tokens"] == sum(row["usage"]["output_tokens"] for row in rows)


def test_a_budget_stops_the_run_and_a_higher_one_continues_it_without_paying_twice(
    tmp_path: Path, simulator
) -> None:
    inputs = write_jsonl(tmp_path / "evals.jsonl", _rows(30))
    pricer = Pricer()
    requests = list(iter_requests(inputs, Defaults(max_tokens=200)))
    worst = pricer.cost("claude-sonnet-5-5", {"input_tokens": estimate_input_tokens(requests[0].params),
                                              "output_tokens": 200})  # fmt: skip
    assert worst is not None
    budget = round(worst * 4.5, 6)  # a few items' worst case, far less than the whole batch

    first = run_cli("run", inputs, "--max-tokens", "200", "--max-cost", str(budget), "-c", "4",
                    base_url=simulator.base_url, process=True)  # fmt: skip  # the resume line quotes argv
    assert first.returncode == 3, first.stderr
    rows = read_jsonl(tmp_path / "evals.results.jsonl")
    assert 4 <= len(rows) < 30
    spent = sum(row["cost_usd"] for row in rows)
    assert spent <= budget
    total = read_jsonl(tmp_path / "evals.results.summary.jsonl")[-1]
    assert total["stopped"] == "budget"
    assert total["budget_usd"] == budget
    match = re.search(r"Continue with a higher budget:\n  (batchstream .*)\n", first.stderr)
    assert match, first.stderr
    command = shlex.split(match.group(1))
    assert command[command.index("--max-cost") + 1] == f"{2 * budget:g}"
    assert f"${spent:.6f} spent" in first.stderr

    second = run_cli(*command[1:-2], "--max-cost", "10", cwd=Path.cwd(), base_url=simulator.base_url)
    assert second.returncode == 0, second.stderr
    rows = read_jsonl(tmp_path / "evals.results.jsonl")
    assert sorted(row["id"] for row in rows) == sorted(f"case-{i:03d}" for i in range(30))
    stats = simulator.stats()
    assert stats["completed"] == 30
    assert stats["max_completions_per_key"] == 1
    assert read_jsonl(tmp_path / "evals.results.summary.jsonl")[-1]["stopped"] == "completed"


def test_fail_on_error_rate_sets_the_exit_code_by_the_share_of_errors(tmp_path: Path, simulator) -> None:
    rows = [*_rows(9), {"id": "broken", "prompt": "This one fails. [[sim status=400]]"}]
    inputs = write_jsonl(tmp_path / "evals.jsonl", rows)
    tolerant = run_cli("run", inputs, "-q", "--fail-on-error-rate", "0.1", base_url=simulator.base_url)
    assert tolerant.returncode == 0, tolerant.stderr
    strict = run_cli("run", inputs, "-q", "--fail-on-error-rate", "0.05", base_url=simulator.base_url)
    assert strict.returncode == 1, strict.stderr
    default = run_cli("run", inputs, "-q", base_url=simulator.base_url)
    assert default.returncode == 1


def test_ordered_results_and_the_github_job_summary(tmp_path: Path, simulator) -> None:
    rows = [*_rows(25), {"id": "broken", "prompt": "Fail me. [[sim status=400]]"}]
    inputs = write_jsonl(tmp_path / "evals.jsonl", rows)
    job_summary = tmp_path / "step-summary.md"
    job_summary.write_text("# earlier step\n")
    env = cli_env(simulator.base_url, GITHUB_STEP_SUMMARY=str(job_summary))
    done = run_cli("run", inputs, "--ordered", "-c", "8", "-q", env=env)
    assert done.returncode == 1, done.stderr
    assert [row["id"] for row in read_jsonl(tmp_path / "evals.results.jsonl")] == [r["id"] for r in rows]
    text = job_summary.read_text()
    assert text.startswith("# earlier step\n## batchstream summary")
    assert "**26 items**: 25 ok, 1 error · cost" in text
    assert "| broken | invalid\\_request\\_error | 400 | Invalid request (simulated). |" in text


def test_results_stream_to_stdout_and_a_checkpoint_resumes(tmp_path: Path, simulator) -> None:
    inputs = write_jsonl(tmp_path / "evals.jsonl", _rows(12))
    plain = run_cli("run", inputs, "-o", "-", "-q", base_url=simulator.base_url, process=True)
    assert plain.returncode == 0, plain.stderr
    streamed = [line for line in plain.stdout.splitlines() if line]
    assert len(streamed) == 12
    assert not (tmp_path / "evals.results.jsonl").exists()

    checkpoint = tmp_path / "ck.jsonl"
    first = run_cli(
        "run", inputs, "-o", "-", "--checkpoint", checkpoint, "-q", base_url=simulator.base_url, process=True
    )
    assert len(first.stdout.splitlines()) == 12
    assert checkpoint.read_text().splitlines() == first.stdout.splitlines()
    requests_before = simulator.stats()["requests"]
    again = run_cli(
        "run", inputs, "-o", "-", "--checkpoint", checkpoint, "-q", base_url=simulator.base_url, process=True
    )
    assert again.returncode == 0
    assert again.stdout == ""
    assert simulator.stats()["requests"] == requests_before

    refused = run_cli("run", inputs, "-o", "-", "--retry-errors", base_url=simulator.base_url)
    assert refused.returncode == 2
    assert "--checkpoint" in refused.stderr
