"""`batchstream merge`: shard results joined into one file, every id once, in input order, with a summary
that adds up; conflicts refused, identical duplicates folded, missing ids and crash leftovers reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import read_jsonl, run_cli, write_jsonl

from batchstream.shard import shard_of

SUMS = ("items", "ok", "errors", "input_tokens", "output_tokens", "cache_read_input_tokens")


def prompts(count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"id": f"q{i:02d}", "prompt": f"Tell me about {i}."} for i in range(count)]
    rows[4]["prompt"] = "[[sim status=400]] this one fails"
    return rows


def result(item_id: str, text: str = "hello") -> dict[str, Any]:
    return {"id": item_id, "status": "ok", "text": text, "model": "claude-sonnet-5-5", "cost_usd": 0.001}


def total(summary: Path) -> dict[str, Any]:
    [line] = [line for line in read_jsonl(summary) if line["kind"] == "total"]
    return line


def test_three_shards_merge_into_every_id_once_in_input_order(tmp_path: Path, simulator) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(24))
    shards = [tmp_path / f"shard{k}.results.jsonl" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, 1):
        done = run_cli("run", inputs, "--shard", f"{k}/3", "-o", shard, "-q", base_url=simulator.base_url)
        assert done.returncode in (0, 1), done.stderr
        assert {row["id"] for row in read_jsonl(shard)} == {
            f"q{i:02d}" for i in range(24) if shard_of(f"q{i:02d}", 3) == k
        }

    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", shards[2], shards[0], shards[1], "-o", merged, "--input", inputs)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert [row["id"] for row in read_jsonl(merged)] == [f"q{i:02d}" for i in range(24)]
    lines = merged.read_bytes().splitlines(keepends=True)
    assert sorted(lines) == sorted(
        line for shard in shards for line in shard.read_bytes().splitlines(keepends=True)
    )

    merged_total = total(tmp_path / "all.summary.jsonl")
    shard_totals = [
        total(shard.with_name(shard.name.replace(".jsonl", ".summary.jsonl"))) for shard in shards
    ]
    for name in SUMS:
        assert merged_total[name] == sum(line[name] for line in shard_totals), name
    assert (merged_total["items"], merged_total["errors"]) == (24, 1)
    assert merged_total["cost_usd"] == pytest.approx(sum(line["cost_usd"] for line in shard_totals), abs=2e-9)
    assert f"merged 24 items from 3 files into {merged}" in done.stderr


def test_conflicting_lines_for_one_id_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [result("q1"), result("q2")])
    b = write_jsonl(tmp_path / "b.jsonl", [result("q3"), result("q2", text="a different reply")])
    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", a, b, "-o", merged)
    assert done.returncode == 2
    assert f"{a}:2 and {b}:2: id 'q2'" in done.stderr
    assert "nothing was written" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]  # no output, no temp file


def test_identical_duplicates_are_folded_and_file_order_kept_without_input(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [result("q2"), result("q1")])
    b = write_jsonl(tmp_path / "b.jsonl", [result("q1"), result("q3")])
    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", a, b, "-o", merged, "--summary", tmp_path / "s.jsonl")
    assert done.returncode == 0, done.stderr
    assert read_jsonl(merged) == [result("q2"), result("q1"), result("q3")]
    assert "1 identical duplicate line(s) folded" in done.stderr
    assert total(tmp_path / "s.jsonl")["items"] == 3


def test_missing_and_unknown_ids_are_reported_and_missing_ones_exit_1(tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": "hi"} for i in range(1, 5)])
    a = write_jsonl(tmp_path / "a.jsonl", [result("stray"), result("q3")])
    b = write_jsonl(tmp_path / "b.jsonl", [result("q1")])
    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", a, b, "-o", merged, "--input", inputs)
    assert done.returncode == 1
    assert f"2 id(s) of {inputs} have no result: 'q2', 'q4'" in done.stderr
    assert f"1 result(s) whose id is not in {inputs}, kept at the end: 'stray'" in done.stderr
    assert [row["id"] for row in read_jsonl(merged)] == ["q1", "q3", "stray"]


def test_a_truncated_last_line_is_reported_and_skipped(tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": "hi"} for i in range(1, 4)])
    a = write_jsonl(tmp_path / "a.jsonl", [result("q1")])
    with a.open("ab") as fh:
        fh.write(b'{"id": "q2", "status": "ok", "te')
    b = write_jsonl(tmp_path / "b.jsonl", [result("q3")])
    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", a, b, "-o", merged, "--input", inputs)
    assert done.returncode == 1
    assert f"{a}:2: truncated last line (a crash leftover?) skipped" in done.stderr
    assert "have no result: 'q2'" in done.stderr
    assert read_jsonl(merged) == [result("q1"), result("q3")]


def test_a_bad_line_before_the_end_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_bytes(b'{"id": "q1", "status": "ok"}\nnot json\n{"id": "q2", "status": "ok"}\n')
    done = run_cli("merge", a, "-o", tmp_path / "all.jsonl")
    assert done.returncode == 2
    assert f"{a}:2: not a valid result line; nothing was written" in done.stderr
    assert not (tmp_path / "all.jsonl").exists()


def test_within_one_file_the_last_line_for_an_id_wins(tmp_path: Path) -> None:
    failed = {**result("q1"), "status": "error", "text": None}
    a = write_jsonl(tmp_path / "a.jsonl", [failed, result("q2"), result("q1")])
    b = write_jsonl(tmp_path / "b.jsonl", [result("q1")])
    merged = tmp_path / "all.jsonl"
    done = run_cli("merge", a, b, "-o", merged)
    assert done.returncode == 0, done.stderr
    assert read_jsonl(merged) == [result("q2"), result("q1")]
