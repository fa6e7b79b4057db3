"""The chief's live progress line (on stderr): where the run is, what it produced and consumed, the rate.

On a terminal the line is a ``rich`` live display, redrawn in place and removed at the end; in a log
(stderr not a terminal) it is a plain line every few seconds and rich is never imported. Either way it
is drawn by the chief's housekeeping, twice a second at most: the check loop pays nothing for it.
"""

from __future__ import annotations

import sys

from framework.lazy import lazy_module

rich_console = lazy_module("rich.console")
rich_live = lazy_module("rich.live")
rich_text = lazy_module("rich.text")

REFRESH_NS = 500_000_000
"""How often the line is redrawn on a terminal."""
LOG_EVERY_NS = 5_000_000_000
"""How often a line is printed when stderr is not a terminal (a log file)."""


class Progress:
    """One line, redrawn in place on a terminal; a line every few seconds in a log."""

    def __init__(self, enabled: bool, rounds_limit: int | None) -> None:
        self.enabled = enabled
        self.rounds_limit = rounds_limit
        self.tty = sys.stderr.isatty()
        self._last_ns = 0
        self._last_consumed = 0
        self._last_line_ns = 0
        self._live = None

    def update(self, now: int, t0: int, rounds: int, produced: int, consumed: int, failures: int) -> None:
        if not self.enabled or now - self._last_ns < REFRESH_NS:
            return
        # The current rate: consumed since the last refresh, not an average since the start.
        since = (now - (self._last_ns or t0)) / 1e9
        rate = (consumed - self._last_consumed) / since if since > 0 else 0.0
        self._last_ns, self._last_consumed = now, consumed
        where = f"round {rounds}/{self.rounds_limit}" if self.rounds_limit is not None else f"{(now - t0) / 1e9:6.1f} s"
        line = f"[chief] {where}  produced {produced:,}  consumed {consumed:,}  rate {rate:,.4g} items/s"
        if failures:
            line += f"  failures {failures}"
        if self.tty:
            if self._live is None:
                self._live = rich_live.Live(console=rich_console.Console(file=sys.stderr), auto_refresh=False,
                                            transient=True, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
            self._live.update(rich_text.Text(line), refresh=True)
        elif now - self._last_line_ns >= LOG_EVERY_NS:
            self._last_line_ns = now
            print(line, file=sys.stderr, flush=True)

    def clear(self) -> None:
        """Erase the live line, so that what is printed next starts on a line of its own."""
        if self._live is not None:
            self._live.stop()
            self._live = None
