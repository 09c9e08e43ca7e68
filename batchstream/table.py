"""Aligned plain-text tables, for the human summaries printed on stderr (the run summary, the estimate)."""

from __future__ import annotations

from collections.abc import Container, Sequence

__all__ = ["render"]


def render(header: Sequence[str], rows: Sequence[Sequence[str]], left: Container[int] = (0,)) -> list[str]:
    """The header and rows as lines, columns two spaces apart.

    Columns are right-aligned, so that figures line up by their last digit, except those in `left` (labels).
    """
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
