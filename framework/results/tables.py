"""Printed tables, drawn by ``rich`` (plain text, no colour, wide enough never to wrap a cell)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from framework.lazy import lazy_module

rich_console = lazy_module("rich.console")
rich_table = lazy_module("rich.table")
rich_box = lazy_module("rich.box")

MAX_WIDTH = 400
"""Characters a printed table may take before rich would wrap a cell (tables go to logs as often as to
terminals: a wrapped number is worse than a wide line)."""


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """A table as text: a header row, a rule, one row per line; ``right[i]`` right-aligns column i."""
    table = rich_table.Table(box=rich_box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if right and right[i] else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    rich_console.Console(file=out, width=MAX_WIDTH, color_system=None, highlight=False,
                         emoji=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())
