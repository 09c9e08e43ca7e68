"""render: the aligned text tables of the run summary and the estimate."""

from __future__ import annotations

from batchstream.table import render


def test_labels_left_figures_right_two_spaces_apart() -> None:
    lines = render(("model", "items", "cost"), [("a-long-model", "1", "$0.10"), ("b", "1,234", "n/a")])
    assert lines == [
        "model         items   cost",
        "a-long-model      1  $0.10",
        "b             1,234    n/a",
    ]


def test_more_left_columns() -> None:
    assert render(["m", "n", "how"], [["x", "10", "guess"], ["total", "2", "api"]], left={0, 2}) == [
        "m       n  how  ",
        "x      10  guess",
        "total   2  api  ",
    ]
