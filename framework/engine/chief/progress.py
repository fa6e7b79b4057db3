"""The chief's live progress line (on stderr): where the run is, what it produced and consumed, the rate."""

from __future__ import annotations

import sys

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
        self._live = False

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
            sys.stderr.write("\r" + line + "\033[K")
            sys.stderr.flush()
            self._live = True
        elif now - self._last_line_ns >= LOG_EVERY_NS:
            self._last_line_ns = now
            print(line, file=sys.stderr, flush=True)

    def clear(self) -> None:
        """Erase the live line, so that what is printed next starts on a line of its own."""
        if self._live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._live = False
