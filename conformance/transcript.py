"""A byte-exact, timestamped, size-bounded record of both directions of one connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .escapes import escape_bytes

MAX_RECORDED = 256 * 1024  # octets per direction kept in a transcript


@dataclass
class Entry:
    t: float
    dir: str  # "C" client→server, "S" server→client, "*" event
    data: bytes | str


@dataclass
class Transcript:
    started: float = field(default_factory=time.monotonic)
    entries: list[Entry] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=lambda: {"C": 0, "S": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"C": 0, "S": 0})

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 6)

    def sent(self, data: bytes) -> None:
        self._record("C", data)

    def received(self, data: bytes) -> None:
        self._record("S", data)

    def event(self, text: str) -> None:
        self.entries.append(Entry(self._now(), "*", text))

    def _record(self, direction: str, data: bytes) -> None:
        room = MAX_RECORDED - self.recorded[direction]
        kept = data[: max(room, 0)]
        if kept:
            self.recorded[direction] += len(kept)
            self.entries.append(Entry(self._now(), direction, kept))
        self.dropped[direction] += len(data) - len(kept)

    def as_json(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for entry in self.entries:
            data = entry.data if isinstance(entry.data, str) else escape_bytes(entry.data)
            out.append({"t": entry.t, "dir": entry.dir, "data": data})
        for direction, count in self.dropped.items():
            if count:
                who = "client" if direction == "C" else "server"
                out.append({"t": self._now(), "dir": "*",
                            "data": f"[{count} more {who} octets not recorded]"})
        return out

    def lines(self) -> list[str]:
        """Human-readable lines for terminal failure reports: `C: MAIL FROM:<>\\r\\n`."""
        out = []
        for item in self.as_json():
            out.append(f"{item['t']:8.3f} {item['dir']}: {item['data']}")
        return out
