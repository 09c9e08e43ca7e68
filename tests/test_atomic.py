"""atomic_write and the rewrites that use it: a failure leaves the old file whole and no temp file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchstream.atomic import atomic_write
from batchstream.results import BadResultLine, drop_statuses, rewrite_in_order


def test_the_new_content_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    with atomic_write(target) as fh:
        fh.write(b"new\n")
        assert target.read_bytes() == b"old\n"  # nothing shows until the block ends
    assert target.read_bytes() == b"new\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as fh:
        fh.write(b"half of it")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_a_failed_fsync_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"), atomic_write(tmp_path / "out.jsonl") as fh:
        fh.write(b"data\n")
    assert os.listdir(tmp_path) == []


def test_two_writers_of_one_file_get_their_own_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with atomic_write(target) as first, atomic_write(target) as second:
        temps = os.listdir(tmp_path)
        assert len(temps) == 2
        assert all(name.startswith(".out.jsonl.") and name.endswith(".tmp") for name in temps)
        first.write(b"first\n")
        second.write(b"second\n")
    assert target.read_bytes() == b"first\n"  # the last to finish wins, whole
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_the_new_file_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.jsonl") as fh:
            fh.write(b"x\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644


def test_the_results_rewrites_leave_no_temp(tmp_path: Path) -> None:
    results = tmp_path / "r.results.jsonl"
    results.write_bytes(b'{"id":"b","status":"error"}\n{"id":"a","status":"ok"}\n')
    assert drop_statuses(results, {"error"}) == 1
    rewrite_in_order(results, iter(["a"]))
    assert results.read_bytes() == b'{"id":"a","status":"ok"}\n'
    assert os.listdir(tmp_path) == ["r.results.jsonl"]


def test_a_rewrite_that_meets_a_bad_line_keeps_the_file(tmp_path: Path) -> None:
    results = tmp_path / "r.results.jsonl"
    content = b'{"id":"b","status":"ok"}\nnot json\n{"id":"a","status":"ok"}\n'
    results.write_bytes(content)
    with pytest.raises(BadResultLine, match=r"r\.results\.jsonl:2: not valid JSON"):
        rewrite_in_order(results, iter(["a", "b"]))
    assert results.read_bytes() == content
    assert os.listdir(tmp_path) == ["r.results.jsonl"]
