"""Progress of a run as it happens: one line per target (done/total, outcomes so far, elapsed, ETA, and the
dialogue being waited on and why), redrawn in place on a terminal, or printed every few seconds in CI.

Results that matter (FAIL, NON-STRICT, ERROR) are printed as they complete, not in collection order.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

SHORT = {"pass": "pass", "fail": "fail", "non-strict": "non-strict", "info": "info", "unsupported": "unsup",
         "skipped": "skip", "error": "error"}
NOTABLE = ("fail", "non-strict", "error")


def _seconds(s: float) -> str:
    s = int(s + 0.5)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def target_line(label: str, total: int, snapshot: dict[str, Any], elapsed: float) -> str:
    """`LABEL  done/total  3 fail, 120 pass  12s, ETA 20s  waiting on ID 9s (waiting up to 15 s for delivery)`."""
    done = snapshot["done"].get(label, 0)
    counts = snapshot["outcomes"].get(label, {})
    outcomes = ", ".join(f"{n} {SHORT.get(o, o)}" for o, n in sorted(counts.items(), key=lambda x: -x[1]) if n)
    line = f"{label}  {done}/{total}" + (f"  {outcomes}" if outcomes else "") + f"  {_seconds(elapsed)}"
    if 0 < done < total:
        line += f", ETA {_seconds(elapsed / done * (total - done))}"
    running = [r for r in snapshot["running"] if r[1] == label]
    if running and done < total:
        sid, _, age, why = max(running, key=lambda r: r[2])  # the one waited on longest
        line += f"  waiting on {sid} {_seconds(age)}" + (f" ({why})" if why else "")
    return line


class Progress:
    """A thread that reports `snapshot()` (Runner.progress) for `totals` (label -> selected scenarios)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]], totals: dict[str, int], stream: TextIO, *,
                 live: bool, interval: float = 5.0) -> None:
        self.snapshot, self.totals, self.stream, self.live = snapshot, totals, stream, live
        self.interval = 0.5 if live else interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._drawn = 0  # live lines currently on screen (redrawn in place)
        self._reported = 0  # notable results already printed
        self._thread = threading.Thread(target=self._loop, name="smtp-conformance-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=5)
            self._draw()  # the final state
        if self.stream.fileno() > 2:  # our own duplicate of the terminal's descriptor
            self.stream.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        try:
            snap = self.snapshot()
        except Exception:  # the runner went away (closed): nothing more to say
            return
        elapsed = time.monotonic() - self.started
        lines = [target_line(label, total, snap, elapsed) for label, total in self.totals.items()]
        notable = snap.get("notable", [])[self._reported:]
        self._reported += len(notable)
        out = []
        if self.live and self._drawn:
            out.append(f"\x1b[{self._drawn}F\x1b[J")  # back to the first live line, clear below
        out += [f"{o.upper()} {sid} [{label}]: {message[:160]}\n" for sid, label, o, message in notable]
        if self.live:
            width = _columns(self.stream)
            out += [line[:width - 1] + "\n" for line in lines]
            self._drawn = len(lines)
        else:
            out += [f"progress: {line}\n" for line in lines]
        try:
            self.stream.write("".join(out))
            self.stream.flush()
        except (OSError, ValueError):
            self._stop.set()


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns if columns >= 40 else 120  # a terminal that does not say its size (0)
