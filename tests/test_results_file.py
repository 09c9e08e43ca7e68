"""read_results: one reader of results files, with the caller's policy for a line that is not a result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchstream.results import BadLines, BadResultLine, read_results

GOOD = b'{"id":"a","status":"ok"}\n'
NO_ID = b'{"status":"ok"}\n'


def numbers_and_records(
    path: Path, bad_lines: BadLines, *, need_id: bool = False
) -> list[tuple[int, dict[str, Any] | None]]:
    return [
        (number, record)
        for number, record, _raw, _offset in read_results(path, bad_lines=bad_lines, need_id=need_id)
    ]


@pytest.fixture
def bad_in_the_middle(tmp_path: Path) -> Path:
    path = tmp_path / "r.jsonl"
    path.write_bytes(GOOD + b"\n" + b"{oops\n" + b"[1]\n" + GOOD)
    return path


def test_keep_yields_bad_lines_as_none_and_skip_leaves_them_out(bad_in_the_middle: Path) -> None:
    a = {"id": "a", "status": "ok"}
    assert numbers_and_records(bad_in_the_middle, "keep") == [(1, a), (3, None), (4, None), (5, a)]
    assert numbers_and_records(bad_in_the_middle, "skip") == [(1, a), (5, a)]


@pytest.mark.parametrize("policy", ["raise", "last"])
def test_raise_and_last_name_the_file_and_line(bad_in_the_middle: Path, policy: BadLines) -> None:
    with pytest.raises(BadResultLine, match=r"r\.jsonl:3: not valid JSON") as caught:
        numbers_and_records(bad_in_the_middle, policy)
    assert (caught.value.path, caught.value.number) == (bad_in_the_middle, 3)
    assert isinstance(caught.value, ValueError)


def test_last_forgives_a_truncated_last_line_even_before_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(GOOD + b'{"id":"b","sta\n\n')
    assert numbers_and_records(path, "last") == [(1, {"id": "a", "status": "ok"}), (2, None)]
    with pytest.raises(BadResultLine, match=r":2: not valid JSON"):
        numbers_and_records(path, "raise")


def test_need_id_makes_an_object_without_a_string_id_bad(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(NO_ID + GOOD)
    assert numbers_and_records(path, "raise")[0] == (1, {"status": "ok"})
    with pytest.raises(BadResultLine, match=r':1: no string "id"'):
        numbers_and_records(path, "raise", need_id=True)


def test_offsets_and_end(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(GOOD + b"\n" + NO_ID + b'{"id":"c"}')
    lines = list(read_results(path, bad_lines="raise"))
    assert [(number, offset, raw) for number, _record, raw, offset in lines] == [
        (1, 0, GOOD),
        (3, len(GOOD) + 1, NO_ID),
        (4, len(GOOD) + 1 + len(NO_ID), b'{"id":"c"}'),
    ]
    # A line is read when it starts before `end`, as far as it goes.
    assert [number for number, *_ in read_results(path, bad_lines="raise", end=len(GOOD) + 2)] == [1, 3]
    assert [number for number, *_ in read_results(path, bad_lines="raise", end=len(GOOD))] == [1]
