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


# one entry: (t, dir, data); dir "C" client→server, "S" server→client, "*" event, "!C"/"!S" octets elided
# (data: their count, as text). A tuple, not a dataclass: two are made on every round trip.
Entry = tuple[float, str, bytes | str]


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
            self.entries.append((self._now(), "*", text[:1024]))

    def _record(self, direction: str, data: bytes) -> None:
        used = self.recorded[direction]
        size = len(data)
        entries = self.entries
        if used + size <= HEAD_OCTETS and len(entries) < MAX_ENTRIES:  # most pieces: kept whole
            self.recorded[direction] = used + size
            entries.append((time.monotonic() - self.started, direction, data))
            return
        room = HEAD_OCTETS - used if used < HEAD_OCTETS else min(TAIL_PIECE, MAX_RECORDED - used)
        if len(entries) >= MAX_ENTRIES:
            room = 0
        kept = data[: max(room, 0)]
        if kept:
            self.recorded[direction] += len(kept)
            entries.append((self._now(), direction, kept))
        elided = size - len(kept)
        if elided:
            self.dropped[direction] += elided
            self._note_elided(direction, elided)

    def _note_elided(self, direction: str, count: int) -> None:
        """One marker per run of elided octets, counted in place (the last entry if it is that marker)."""
        last = self.entries[-1] if self.entries else None
        if last is not None and last[1] == "!" + direction:
            self.entries[-1] = (last[0], last[1], str(int(last[2]) + count))
            return
        if len(self.entries) < MAX_ENTRIES + 10:
            self.entries.append((self._now(), "!" + direction, str(count)))

    def as_json(self, max_chars: int = MAX_JSON_CHARS) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        left = max_chars
        cut = 0
        for t, direction, data in self.entries:
            if direction[0] == "!":
                who = "client" if direction == "!C" else "server"
                out.append({"t": round(t, 6), "dir": "*", "data": f"[{data} {who} octets elided]"})
                continue
            text = data if data.__class__ is str else escape_bytes(data)  # type: ignore[arg-type]
            if len(text) > left:
                cut += len(text) - max(left, 0)
                text = text[: max(left, 0)]
                if not text:
                    continue
            left -= len(text)
            out.append({"t": round(t, 6), "dir": direction, "data": text})
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
