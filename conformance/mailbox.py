"""Where a target's accepted mail lands, read back: the second oracle after the SMTP replies.

A mailbox spec names the store: `maildir:PATH`, `mailhog:URL`, `mailpit:URL`, `maildev:URL`,
`pop3://USER:PASS@HOST:PORT`, `imap://USER:PASS@HOST:PORT/MAILBOX`. Containers add their own kind (a
Maildir inside the container). Every reader is bounded: at most MAX_MESSAGES messages of MAX_OCTETS each.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import re
import threading
import time
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

MAX_MESSAGES = 2000
MAX_OCTETS = 16 * 1024 * 1024
# an API listing (MailHog and maildev put every message's content in it, a SIZE probe's 50 MB included)
LISTING_OCTETS = 256 * 1024 * 1024
HTTP_TIMEOUT = 10.0


class MailboxError(Exception):
    """The store could not be read (the harness's problem, not the server's)."""


@dataclass(frozen=True)
class Stored:
    """One stored message as the store keeps it, and the envelope recipients the store itself reports for it
    (an API's envelope; empty when the store only has the message: then its header fields tell)."""

    raw: bytes
    recipients: tuple[str, ...] = ()


class Mailbox(ABC):
    spec: str
    # read over the network (an API, POP3, IMAP): polled from a worker thread. A local Maildir is polled on
    # the event loop's thread: a listing takes well under a millisecond, and a worker thread per poll made
    # the GIL change hands at every file operation (tens of futex calls each, on every poll of every target)
    remote: ClassVar[bool] = True

    @abstractmethod
    def messages_with(self, token: bytes) -> list[bytes]:
        """Raw stored messages that contain token (blocking; called in a worker thread)."""

    def stored_with(self, token: bytes) -> list[Stored]:
        """Like messages_with, with the envelope recipients where the store reports them (API kinds)."""
        return [Stored(raw) for raw in self.messages_with(token)]


def _keep(raw: bytes, token: bytes) -> bool:
    return token in raw


# the token a dialogue writes into its messages (dialogue.py): what the Maildir index records per file
TOKEN = re.compile(rb"smtpc-[0-9a-f]{20}")
TOKEN_OCTETS = 26
INDEX_PIECE = 1024 * 1024
# a listing of the Maildir younger than this is reused: dialogues polling at once share one scan
RESCAN_AFTER = 0.1
MESSAGE_PARTS = ("new", "cur")  # a Maildir's folders of delivered messages (tmp/ holds deliveries under way)


@dataclass
class MaildirMailbox(Mailbox):
    """A Maildir, or a folder of Maildirs (one per user, as Postfix's virtual delivery makes).

    Each stored file is read once and remembered by the tokens it carries, so that the many dialogues of a
    run polling the same Maildir (a wait of 15 s that proves a refused message was not stored polls 60 times)
    cost a directory listing each, shared, not a read of every stored message each."""

    remote: ClassVar[bool] = False
    path: str
    spec: str = ""
    _index: dict[str, frozenset[bytes]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _listing: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _listed_at: float = field(default=float("-inf"), init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def messages_with(self, token: bytes) -> list[bytes]:
        if TOKEN.fullmatch(token) is None:  # not a dialogue's token: read every file
            return [raw for raw in map(_read, self._files()) if raw is not None and _keep(raw, token)]
        with self._lock:
            now = time.monotonic()
            if now - self._listed_at >= RESCAN_AFTER:
                self._listing, self._listed_at = self._files(), now
                self._reindex()
            hits = [f for f in self._listing if token in self._index.get(f, ())]
        return [raw for raw in map(_read, hits) if raw is not None and _keep(raw, token)]

    def _files(self) -> list[str]:
        """The newest MAX_MESSAGES files of every new/ and cur/ below the root (Maildir names sort by time).

        A new/ or cur/ is listed by name only (no stat per entry, as os.walk makes): they hold files, and one
        that is not (a folder named like a message) is left out when it is read. A 30-target run lists a
        Maildir of hundreds of messages a few thousand times."""
        files: list[str] = []
        folders = [self.path]
        while folders:
            folder = folders.pop()
            inside = os.path.basename(folder) in MESSAGE_PARTS  # the root itself can be one
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in MESSAGE_PARTS and entry.name != "tmp":
                                folders.append(entry.path)
                        elif inside:
                            files.append(entry.path)
            except OSError:  # gone, or not a folder
                continue
            for part in MESSAGE_PARTS:
                where = os.path.join(folder, part)
                try:
                    names = os.listdir(where)
                except OSError:
                    continue
                where += os.sep
                files += [where + name for name in names]
        return sorted(files)[-MAX_MESSAGES:]

    def _reindex(self) -> None:
        listed = set(self._listing)
        for gone in [f for f in self._index if f not in listed]:
            del self._index[gone]
        for file in self._listing:
            if file not in self._index:
                tokens = _tokens_in(file)
                if tokens is not None:  # unreadable now (being moved): tried again at the next listing
                    self._index[file] = tokens


def _tokens_in(file: str) -> frozenset[bytes] | None:
    """The dialogue tokens a stored file carries, read a piece at a time: a 10 MB message (SIZE probes) costs
    1 MiB of memory to index, not 10, however many targets' readers index theirs at once."""
    found: set[bytes] = set()
    tail = b""
    try:
        with open(file, "rb") as fh:
            for _ in range(MAX_OCTETS // INDEX_PIECE):
                piece = fh.read(INDEX_PIECE)
                if not piece:
                    break
                window = tail + piece
                found.update(TOKEN.findall(window))
                tail = window[-TOKEN_OCTETS:]  # a token cut by the piece's end is whole in the next window
    except OSError:
        return None
    return frozenset(found)


def _read(file: str) -> bytes | None:
    try:
        with open(file, "rb") as fh:
            return fh.read(MAX_OCTETS)
    except OSError:  # a folder named like a message, or moved from new/ to cur/ since the listing
        return None


def _http_json(url: str, limit: int = MAX_OCTETS) -> object:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:  # noqa: S310 - loopback URLs from config
            data = resp.read(limit + 1)
    except OSError as exc:
        raise MailboxError(f"cannot read {url}: {exc}") from None
    if len(data) > limit:
        raise MailboxError(f"cannot read {url}: larger than {limit} octets")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise MailboxError(f"cannot read {url}: {exc}") from None


def _http_bytes(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:  # noqa: S310
            return resp.read(MAX_OCTETS)
    except OSError as exc:
        raise MailboxError(f"cannot read {url}: {exc}") from None


@dataclass
class MailhogMailbox(Mailbox):
    """MailHog keeps a parsed message: `Content.Headers` (a map, with the Received, Return-Path and Message-ID
    fields MailHog adds) and `Content.Body`; `Raw.Data` is the DATA as sent, without them. The stored form is
    rebuilt from Content: trace fields first (newest Received on top), then the fields in the order the
    client sent them (the map forgot it), then the fields MailHog added besides; each value as MailHog keeps it
    (continuation lines joined, one value per name)."""

    url: str
    spec: str = ""

    def messages_with(self, token: bytes) -> list[bytes]:
        return [s.raw for s in self.stored_with(token)]

    def stored_with(self, token: bytes) -> list[Stored]:
        data = _http_json(self.url.rstrip("/") + f"/api/v2/messages?limit={MAX_MESSAGES}", LISTING_OCTETS)
        items = data.get("items", []) if isinstance(data, dict) else []
        out = []
        for item in items[:MAX_MESSAGES]:
            stored = mailhog_stored(item if isinstance(item, dict) else {})
            if _keep(stored.raw, token):
                out.append(stored)
        return out


def _text(value: object) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def mailhog_stored(item: dict[str, object]) -> Stored:
    """One item of MailHog's /api/v2/messages as the message MailHog stored (see MailhogMailbox)."""
    raw = item.get("Raw") if isinstance(item.get("Raw"), dict) else {}
    content = item.get("Content") if isinstance(item.get("Content"), dict) else {}
    assert isinstance(raw, dict) and isinstance(content, dict)
    recipients = tuple(str(r) for r in raw.get("To") or [] if r)
    if not recipients and isinstance(item.get("To"), list):
        recipients = tuple(f"{p.get('Mailbox', '')}@{p.get('Domain', '')}" for p in item["To"] if isinstance(p, dict))
    headers = content.get("Headers")
    if not isinstance(headers, dict) or not headers:
        return Stored(_text(raw.get("Data", "")), recipients)
    sent_head = str(raw.get("Data", "")).replace("\r\n", "\n").split("\n\n", 1)[0]
    sent_order: list[str] = []
    for line in sent_head.split("\n"):
        name = line.split(":", 1)[0].strip().lower()
        if line[:1] not in (" ", "\t") and ":" in line and name not in sent_order:
            sent_order.append(name)

    def rank(name: str) -> tuple[int, int, str]:
        lower = name.lower()
        if lower in ("return-path", "received"):
            return (0, 0 if lower == "return-path" else 1, lower)
        return (1, sent_order.index(lower), lower) if lower in sent_order else (2, 0, lower)

    lines: list[str] = []
    for name in sorted(headers, key=rank):
        values = headers[name] if isinstance(headers[name], list) else [headers[name]]
        if name.lower() == "received":
            values = list(reversed(values))  # MailHog appends its own; the newest trace field goes on top
        lines.extend(f"{name}: {value}" for value in values)
    body = str(content.get("Body", ""))
    return Stored(_text("\r\n".join(lines) + "\r\n\r\n" + body), recipients)


@dataclass
class MailpitMailbox(Mailbox):
    """Mailpit stores the message as received, with the Return-Path, Message-ID and Bcc (envelope recipients
    missing from the header) fields it sets; `/api/v1/message/ID/raw` serves exactly that."""

    url: str
    spec: str = ""
    _seen: dict[str, bytes] = field(default_factory=dict, repr=False)  # stored messages never change

    def messages_with(self, token: bytes) -> list[bytes]:
        return [s.raw for s in self.stored_with(token)]

    def stored_with(self, token: bytes) -> list[Stored]:
        base = self.url.rstrip("/")
        data = _http_json(f"{base}/api/v1/messages?limit={MAX_MESSAGES}", LISTING_OCTETS)
        out = []
        items = [i for i in (data.get("messages", []) if isinstance(data, dict) else []) if isinstance(i, dict)]
        for item in items[:MAX_MESSAGES]:
            key = str(item.get("ID", ""))
            raw = self._seen.get(key)
            if raw is None:
                raw = _http_bytes(f"{base}/api/v1/message/{urllib.parse.quote(key)}/raw")
                self._seen[key] = raw
            if _keep(raw, token):
                recipients = tuple(str(a.get("Address", "")) for kind in ("To", "Cc", "Bcc")
                                   for a in item.get(kind) or [] if isinstance(a, dict))
                out.append(Stored(raw, recipients))
        if len(self._seen) > 2 * MAX_MESSAGES:
            self._seen.clear()
        return out


@dataclass
class MaildevMailbox(Mailbox):
    """maildev keeps the message exactly as received (its .eml file: `/api/email/ID/source`, checked against
    maildev 3) and the envelope in `/api/email`."""

    url: str
    spec: str = ""
    _seen: dict[str, bytes] = field(default_factory=dict, repr=False)

    def messages_with(self, token: bytes) -> list[bytes]:
        return [s.raw for s in self.stored_with(token)]

    def stored_with(self, token: bytes) -> list[Stored]:
        # maildev 2+ serves its REST API under /api (maildev:http://127.0.0.1:1080 or …:1080/api both work)
        base = self.url.rstrip("/")
        if not base.endswith("/api"):
            base += "/api"
        data = _http_json(f"{base}/email", LISTING_OCTETS)
        out = []
        for item in [i for i in (data if isinstance(data, list) else []) if isinstance(i, dict)][-MAX_MESSAGES:]:
            key = str(item.get("id", ""))
            raw = self._seen.get(key)
            if raw is None:
                raw = _http_bytes(f"{base}/email/{urllib.parse.quote(key)}/source")
                self._seen[key] = raw
            if _keep(raw, token):
                envelope = item.get("envelope") if isinstance(item.get("envelope"), dict) else {}
                to = envelope.get("to") if isinstance(envelope, dict) else None
                recipients = tuple(str(a.get("address", "")) for a in to or [] if isinstance(a, dict))
                out.append(Stored(raw, recipients))
        if len(self._seen) > 2 * MAX_MESSAGES:
            self._seen.clear()
        return out


@dataclass
class Pop3Mailbox(Mailbox):
    host: str
    port: int
    user: str
    password: str
    spec: str = ""

    def messages_with(self, token: bytes) -> list[bytes]:
        try:
            client = poplib.POP3(self.host, self.port, timeout=HTTP_TIMEOUT)
            try:
                client.user(self.user)
                client.pass_(self.password)
                count, _ = client.stat()
                out = []
                for n in range(max(1, count - MAX_MESSAGES + 1), count + 1):
                    _, lines, _ = client.retr(n)
                    raw = b"\r\n".join(lines) + b"\r\n"
                    if _keep(raw, token):
                        out.append(raw)
                return out
            finally:
                client.quit()
        except (OSError, poplib.error_proto) as exc:
            raise MailboxError(f"POP3 {self.host}:{self.port}: {exc}") from None


@dataclass
class ImapMailbox(Mailbox):
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    spec: str = ""

    def messages_with(self, token: bytes) -> list[bytes]:
        try:
            client = imaplib.IMAP4(self.host, self.port, timeout=HTTP_TIMEOUT)
            try:
                client.login(self.user, self.password)
                client.select(self.folder, readonly=True)
                _, data = client.search(None, "ALL")
                numbers = (data[0] or b"").split()[-MAX_MESSAGES:]
                out = []
                for number in numbers:
                    _, parts = client.fetch(number, "(BODY.PEEK[])")
                    for part in parts:
                        if isinstance(part, tuple) and _keep(part[1], token):
                            out.append(part[1])
                return out
            finally:
                client.logout()
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"IMAP {self.host}:{self.port}: {exc}") from None


def parse_mailbox(spec: str) -> Mailbox:
    """A mailbox from its spec; raises ValueError with a one-line reason."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(f"mailbox {spec!r}: expected KIND:WHERE (maildir:PATH, mailhog:URL, pop3://…)")
    if kind == "maildir":
        return MaildirMailbox(rest, spec)
    if kind in ("mailhog", "mailpit", "maildev"):
        if not rest.startswith(("http://", "https://")):
            raise ValueError(f"mailbox {spec!r}: {kind} needs an http:// URL")
        return {"mailhog": MailhogMailbox, "mailpit": MailpitMailbox, "maildev": MaildevMailbox}[kind](rest, spec)
    if kind in ("pop3", "imap"):
        url = urllib.parse.urlsplit(spec)
        if not url.hostname or url.username is None or url.password is None:
            raise ValueError(f"mailbox {spec!r}: write {kind}://USER:PASSWORD@HOST:PORT")
        user, password = urllib.parse.unquote(url.username), urllib.parse.unquote(url.password)
        if kind == "pop3":
            return Pop3Mailbox(url.hostname, url.port or 110, user, password, spec)
        return ImapMailbox(url.hostname, url.port or 143, user, password, url.path.strip("/") or "INBOX", spec)
    raise ValueError(f"mailbox {spec!r}: unknown kind {kind!r} (maildir, mailhog, mailpit, maildev, pop3, imap)")

