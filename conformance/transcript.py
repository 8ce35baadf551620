"""A byte-exact, timestamped, size-bounded record of both directions of one connection.

Bounded by design, whatever a server sends: at most HEAD_OCTETS per direction are kept as they came, then
only the first TAIL_PIECE octets of each later piece while TAIL_OCTETS last (so the QUIT after a 10 MB
message still shows); what is not kept is counted and shown in place as "[N octets elided]". The JSON
form is capped again after escaping (MAX_JSON_CHARS), so one result's transcript never exceeds ~64 KB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .escapes import escape_bytes

HEAD_OCTETS = 28 * 1024  # per direction, kept as received/sent
TAIL_OCTETS = 4 * 1024  # per direction, after the head: the start of each later piece
TAIL_PIECE = 256
MAX_RECORDED = HEAD_OCTETS + TAIL_OCTETS  # octets per direction kept in a transcript
MAX_ENTRIES = 2000  # entries of any kind; a server that dribbles one byte at a time is elided too
MAX_JSON_CHARS = 64 * 1024  # escaped characters of data in one transcript's JSON form


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
        return time.monotonic() - self.started  # rounded in as_json: recording is on every round trip's path

    def sent(self, data: bytes) -> None:
        self._record("C", data)

    def received(self, data: bytes) -> None:
        self._record("S", data)

    def event(self, text: str) -> None:
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append(Entry(self._now(), "*", text[:1024]))

    def _record(self, direction: str, data: bytes) -> None:
        used = self.recorded[direction]
        if used + len(data) <= HEAD_OCTETS and len(self.entries) < MAX_ENTRIES:  # most pieces: kept whole
            self.recorded[direction] = used + len(data)
            self.entries.append(Entry(self._now(), direction, data))
            return
        room = HEAD_OCTETS - used if used < HEAD_OCTETS else min(TAIL_PIECE, MAX_RECORDED - used)
        if len(self.entries) >= MAX_ENTRIES:
            room = 0
        kept = data[: max(room, 0)]
        if kept:
            self.recorded[direction] += len(kept)
            self.entries.append(Entry(self._now(), direction, kept))
        elided = len(data) - len(kept)
        if elided:
            self.dropped[direction] += elided
            self._note_elided(direction, elided)

    def _note_elided(self, direction: str, count: int) -> None:
        """One marker per run of elided octets, counted in place (the last entry if it is that marker)."""
        last = self.entries[-1] if self.entries else None
        if last is not None and last.dir == "!" + direction and isinstance(last.data, str):
            last.data = str(int(last.data) + count)
            return
        if len(self.entries) < MAX_ENTRIES + 10:
            self.entries.append(Entry(self._now(), "!" + direction, str(count)))

    def as_json(self, max_chars: int = MAX_JSON_CHARS) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        left = max_chars
        cut = 0
        for entry in self.entries:
            if entry.dir.startswith("!"):
                who = "client" if entry.dir == "!C" else "server"
                out.append({"t": round(entry.t, 6), "dir": "*", "data": f"[{entry.data} {who} octets elided]"})
                continue
            data = entry.data if isinstance(entry.data, str) else escape_bytes(entry.data)
            if len(data) > left:
                cut += len(data) - max(left, 0)
                data = data[: max(left, 0)]
                if not data:
                    continue
            left -= len(data)
            out.append({"t": round(entry.t, 6), "dir": entry.dir, "data": data})
        elided = sum(self.dropped.values())
        if cut:
            out.append({"t": round(self._now(), 6), "dir": "*",
                        "data": f"[{cut} more characters of the transcript elided (over {max_chars})]"})
        if elided and len(self.entries) >= MAX_ENTRIES:
            out.append({"t": round(self._now(), 6), "dir": "*", "data": f"[{elided} octets elided in all]"})
        return out

    def lines(self) -> list[str]:
        """Human-readable lines for terminal failure reports: `C: MAIL FROM:<>\\r\\n`."""
        out = []
        for item in self.as_json():
            out.append(f"{item['t']:8.3f} {item['dir']}: {item['data']}")
        return out
