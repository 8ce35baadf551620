"""Mailbox readers return the message as the server stored it, against small HTTP servers that serve the JSON
shapes MailHog and Mailpit document (neither can be installed here; maildev is proven against the real server
in tests/integration/test_mailbox_real.py)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conformance.dialogue import header_fields, message_body
from conformance.mailbox import MailboxError, MailhogMailbox, Stored, mailhog_stored, parse_mailbox
from conformance.model import Outcome
from tests.unit.test_stored_engine import TinyServer, load, play, send_message

Routes = dict[str, Callable[[], tuple[str, bytes]]]


@pytest.fixture
def api() -> Iterator[Callable[[Routes], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: Routes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path not in routes:
                    self.send_error(404)
                    return
                kind, body = routes[path]()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # a reader that stops at its bound closes early
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def as_json(value: object) -> Callable[[], tuple[str, bytes]]:
    return lambda: ("application/json", json.dumps(value).encode())


# ----- MailHog -------------------------------------------------------------------------------------------
def mailhog_item(data: str, sender: str, rcpts: list[str], helo: str = "client.example.net") -> dict[str, Any]:
    """An /api/v2/messages item the way MailHog 1.0 builds it (data.SMTPMessage.Parse): Content parsed from the
    DATA (continuation lines joined, one value per name), then Message-ID if missing, its own Received
    appended, Return-Path set."""
    head, _, body = data.partition("\r\n\r\n")
    headers: dict[str, list[str]] = {}
    last = ""
    for line in head.split("\r\n"):
        if last and line[:1] in (" ", "\t"):
            headers[last][-1] += line
        elif ": " in line:
            name, value = line.split(": ", 1)
            headers[name] = [value]
            last = name
    if not any(k.lower() == "message-id" for k in headers):
        headers["Message-ID"] = ["abc@mailhog.example"]
    received = next((k for k in headers if k.lower() == "received"), "Received")
    headers.setdefault(received, []).append(f"from {helo} by mailhog.example (MailHog)\r\n          "
                                            "id abc@mailhog.example; Sun, 06 Dec 2026 22:00:00 +0000")
    headers["Return-Path"] = [f"<{sender}>"]
    to = [{"Relays": None, "Mailbox": r.split("@")[0], "Domain": r.split("@")[1], "Params": ""} for r in rcpts]
    return {"ID": "abc@mailhog.example", "From": {"Relays": None, "Mailbox": sender.split("@")[0],
                                                  "Domain": sender.split("@")[1], "Params": ""},
            "To": to, "Content": {"Headers": headers, "Body": body, "Size": len(data), "MIME": None},
            "Created": "2026-12-06T22:00:00Z", "MIME": None,
            "Raw": {"From": sender, "To": rcpts, "Data": data, "Helo": helo}}


SENT = "Subject: tok-1\r\nX-First: 1\r\nX-Folded: a\r\n  b\r\nX-Last: 2\r\n\r\n.dot\r\nbody\r\n"


def test_mailhog_message_has_the_fields_mailhog_added() -> None:
    stored = mailhog_stored(mailhog_item(SENT, "a@example.net", ["b@example.test"]))
    fields = header_fields(stored.raw)
    assert fields[0] == b"Return-Path: <a@example.net>"
    assert fields[1].startswith(b"Received: from client.example.net by mailhog.example (MailHog)\n          id ")
    # the client's fields in the order sent, as MailHog keeps them (the folded one joined), then Message-ID
    assert fields[2:] == [b"Subject: tok-1", b"X-First: 1", b"X-Folded: a  b", b"X-Last: 2",
                          b"Message-ID: abc@mailhog.example"]
    assert message_body(stored.raw) == b".dot\nbody\n"
    assert stored.recipients == ("b@example.test",)


def test_mailhog_received_from_the_client_stays_below_mailhogs() -> None:
    data = "Received: from earlier by relay.example\r\n" + SENT
    fields = header_fields(mailhog_stored(mailhog_item(data, "a@example.net", ["b@example.test"])).raw)
    assert fields[1].startswith(b"Received: from client.example.net by mailhog.example (MailHog)")
    assert fields[2] == b"Received: from earlier by relay.example"


def test_mailhog_without_content_falls_back_to_the_raw_data() -> None:
    stored = mailhog_stored({"Raw": {"Data": SENT, "To": ["b@example.test"]}})
    assert stored == Stored(SENT.encode(), ("b@example.test",))


def test_mailhog_reader_over_http(api: Callable[[Routes], str]) -> None:
    items = [mailhog_item(SENT, "a@example.net", ["b@example.test"]),
             mailhog_item(SENT.replace("tok-1", "tok-2"), "a@example.net", ["c@example.test"])]
    url = api({"/api/v2/messages": as_json({"total": 2, "count": 2, "start": 0, "items": items})})
    box = parse_mailbox(f"mailhog:{url}")
    found = box.stored_with(b"tok-2")
    assert len(found) == 1 and found[0].recipients == ("c@example.test",)
    assert found[0].raw.startswith(b"Return-Path: <a@example.net>\r\nReceived: from client.example.net")
    assert box.messages_with(b"tok-1") == [mailhog_stored(items[0]).raw]
    assert box.messages_with(b"Return-Path") == [mailhog_stored(i).raw for i in items]  # MailHog's own fields


def test_the_engine_sees_mailhogs_trace_fields(api: Callable[[Routes], str], tmp_path: Path) -> None:
    """rfc5321-4.4-received-prepended / -return-path-at-delivery read MailHog through Content, not Raw.Data."""
    server = TinyServer()
    messages: list[dict[str, Any]] = []

    def listing() -> tuple[str, bytes]:
        while len(messages) < len(server.messages):
            data = server.messages[len(messages)].decode("utf-8", "surrogateescape")
            messages.append(mailhog_item(data, "a@example.net", list(server.rcpts)))
        return "application/json", json.dumps({"total": len(messages), "count": len(messages), "start": 0,
                                               "items": messages}).encode()

    url = api({"/api/v2/messages": listing})
    steps = send_message("\"Subject: {token}\\nX-A: 1\\n\\nbody\\n\"") + (
        "  - delivered:\n      headers: [Received, Return-Path]\n"
        "      matches: ['\\AReturn-Path: <[^>]*>\\nReceived: ']\n"
        "      rcpt: '{rcpt}'\n      body: \"body\\n\"\n      sent_headers: true\n")
    result = play(load(tmp_path, steps), server, mailbox=MailhogMailbox(url, f"mailhog:{url}"))
    assert result.outcome is Outcome.PASS, result.message


def test_mailhog_unreachable_is_a_mailbox_error() -> None:
    with pytest.raises(MailboxError):
        MailhogMailbox("http://127.0.0.1:9").messages_with(b"x")


# ----- Mailpit -------------------------------------------------------------------------------------------
def test_mailpit_reads_the_raw_source_and_the_recipients(api: Callable[[Routes], str]) -> None:
    """Mailpit's /api/v1/messages summary (To, Cc, Bcc) and /api/v1/message/ID/raw (the stored source)."""
    stored = ("Return-Path: <a@example.net>\r\nMessage-ID: <x@mailpit>\r\n" + SENT).encode()
    other = SENT.replace("tok-1", "tok-2").encode()
    summary = {"total": 2, "unread": 2, "count": 2, "start": 0, "messages": [
        {"ID": "id1", "MessageID": "x@mailpit", "Read": False, "From": {"Name": "", "Address": "a@example.net"},
         "To": [{"Name": "", "Address": "b@example.test"}], "Cc": [],
         "Bcc": [{"Name": "", "Address": "c@example.test"}],
         "ReplyTo": [], "Subject": "tok-1", "Created": "2026-12-06T22:00:00Z", "Tags": [], "Size": len(stored),
         "Attachments": 0, "Snippet": "body"},
        {"ID": "id2", "To": [{"Name": "", "Address": "d@example.test"}], "Cc": None, "Bcc": None},
    ]}
    calls: list[str] = []

    def raw(data: bytes, name: str) -> Callable[[], tuple[str, bytes]]:
        def serve() -> tuple[str, bytes]:
            calls.append(name)
            return "message/rfc822", data
        return serve

    url = api({"/api/v1/messages": as_json(summary), "/api/v1/message/id1/raw": raw(stored, "id1"),
               "/api/v1/message/id2/raw": raw(other, "id2")})
    box = parse_mailbox(f"mailpit:{url}")
    found = box.stored_with(b"tok-1")
    assert found == [Stored(stored, ("b@example.test", "c@example.test"))]
    assert box.stored_with(b"tok-2") == [Stored(other, ("d@example.test",))]
    assert calls == ["id1", "id2"]  # each stored message is fetched once, however often the list is polled


# ----- a mailbox for the default run; the hint when a target has none ----------------------------------------
def test_builtin_has_its_own_maildir() -> None:
    from conformance.targets.process import BuiltinTarget

    target = BuiltinTarget(label="builtin", spec="builtin")
    assert "mailbox" not in target.capabilities()  # not before it runs: the Maildir is made when it starts
    target.start()
    try:
        assert "mailbox" in target.capabilities()
        box = target.mailbox()
        assert box is not None and box.spec.startswith("maildir:")
    finally:
        target.stop()


def entry(target: str, outcome: str, missing: list[str] | None = None) -> dict[str, Any]:
    return {"id": f"s-{target}-{outcome}-{missing}", "target": target, "outcome": outcome,
            **({"missing": missing} if missing is not None else {})}


def test_unsupported_only_for_want_of_a_mailbox_is_counted_with_the_option() -> None:
    from conformance.results import missing_parameter_lines

    results = [entry("a", "unsupported", ["mailbox"]), entry("a", "unsupported", ["mailbox"]),
               entry("a", "unsupported", ["mailbox", "credentials"]),  # not only for the mailbox
               entry("a", "unsupported"), entry("a", "pass"), entry("b", "unsupported", ["mailbox"]),
               entry("b", "unsupported", ["credentials"])]
    lines = missing_parameter_lines(results)
    assert lines[0].startswith("a: 2 scenarios UNSUPPORTED only because no mailbox was given; to run them, "
                               "add --mailbox KIND:WHERE (maildir:PATH")
    assert lines[1].startswith("b: 1 scenario UNSUPPORTED only because no mailbox was given; to run it, add --mailbox")
    assert lines[2] == ("b: 1 scenario UNSUPPORTED only because no credentials were given; to run it, add "
                        "--auth USER:PASSWORD (pytest: --smtp-auth)")
    assert missing_parameter_lines([entry("a", "unsupported"), entry("a", "pass")]) == []


def test_the_report_says_it_too() -> None:
    from conformance.report.html import render_html

    results = [{"id": "x", "title": "x", "target": "t", "outcome": "unsupported", "level": "MUST", "rfc": "5321",
                "section": "4.5.2", "missing": ["mailbox"], "message": "needs target parameter mailbox"}]
    page = render_html({"format_version": 1, "targets": [{"label": "t"}], "results": results,
                        "summary": {"total": 1}})
    assert ('<p class="hint" data-hint="missing-parameter">t: 1 scenario UNSUPPORTED only because no mailbox '
            "was given; to run it, add --mailbox KIND:WHERE") in page
    results[0]["missing"] = []
    assert 'data-hint="missing-parameter"' not in render_html({"targets": [], "results": results})


def test_a_listing_with_a_huge_message_is_still_read(api: Callable[[Routes], str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """maildev's /api/email carries each message's parsed text: one 50 MB message (a SIZE probe) must not
    make every later delivered check an ERROR."""
    huge = {"id": "big", "envelope": {"to": [{"address": "b@example.test"}]}, "text": "x" * (17 * 1024 * 1024)}
    small = {"id": "small", "envelope": {"to": [{"address": "c@example.test"}]}, "text": "body"}
    url = api({"/api/email": as_json([huge, small]),
               "/api/email/big/source": lambda: ("message/rfc822", b"Subject: big\r\n\r\n" + b"x" * 100),
               "/api/email/small/source": lambda: ("message/rfc822", b"Subject: tok-9\r\n\r\nbody\r\n")})
    box = parse_mailbox(f"maildev:{url}")
    assert box.stored_with(b"tok-9") == [Stored(b"Subject: tok-9\r\n\r\nbody\r\n", ("c@example.test",))]
    monkeypatch.setattr("conformance.mailbox.LISTING_OCTETS", 1024 * 1024)
    with pytest.raises(MailboxError, match="larger than 1048576 octets"):
        box.stored_with(b"tok-9")


def _deliver(root: Path, name: str, raw: bytes) -> Path:
    """As a Maildir writer does: written in tmp/, then moved into new/ (so a reader never sees half)."""
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "tmp" / name).write_bytes(raw)
    return (root / "tmp" / name).rename(root / "new" / name)


def test_maildir_reads_each_stored_file_once_however_often_it_is_polled(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.mailbox as mailbox_module

    reads: list[str] = []
    indexed: list[str] = []
    real_read, real_tokens = mailbox_module._read, mailbox_module._tokens_in
    monkeypatch.setattr(mailbox_module, "_read", lambda f: reads.append(f) or real_read(f))
    monkeypatch.setattr(mailbox_module, "_tokens_in", lambda f: indexed.append(f) or real_tokens(f))
    monkeypatch.setattr(mailbox_module, "RESCAN_AFTER", 0.0)
    monkeypatch.setattr(mailbox_module, "INDEX_PIECE", 7)  # tokens cut by the pieces' ends are still found
    box = parse_mailbox(f"maildir:{tmp_path}")
    first, second = "smtpc-" + "a" * 20, "smtpc-" + "b" * 20
    for n in range(50):
        _deliver(tmp_path, f"{n:04d}.other", f"Subject: x\r\n\r\nsmtpc-{n:020x}\r\n".encode())
    assert box.messages_with(first.encode()) == []
    _deliver(tmp_path, "1000.first", f"Subject: {first}\r\n\r\nbody\r\n".encode())
    for _ in range(20):
        found = box.messages_with(first.encode())
    assert found == [f"Subject: {first}\r\n\r\nbody\r\n".encode()]
    # 51 files indexed once each, then only the file that carries the token is read for each poll
    assert len(indexed) == 51 and len(set(indexed)) == 51
    assert len(reads) == 20
    _deliver(tmp_path, "1001.second", f"Subject: {second}\r\n\r\n{first} quoted\r\n".encode())
    assert len(box.messages_with(first.encode())) == 2
    assert len(box.messages_with(second.encode())) == 1
    # a file moved from new/ to cur/ (a mail reader did) is still found, under its new name
    (tmp_path / "new" / "1000.first").rename(tmp_path / "cur" / "1000.first:2,S")
    assert len(box.messages_with(first.encode())) == 2


def test_maildir_finds_what_a_plain_search_finds(tmp_path: Path) -> None:
    token = "smtpc-" + "c" * 20
    _deliver(tmp_path / "user" / "Maildir", "1.a", f"X: {token}{token}\r\n".encode())  # a folder of Maildirs
    _deliver(tmp_path / "user" / "Maildir", "2.b", f"X: smtpc-{token}\r\n".encode())
    _deliver(tmp_path / "user" / "Maildir", "3.c", f"X: {token[:-1]}\r\n".encode())
    box = parse_mailbox(f"maildir:{tmp_path}")
    assert sorted(box.messages_with(token.encode())) == sorted(
        [f"X: {token}{token}\r\n".encode(), f"X: smtpc-{token}\r\n".encode()])
    assert box.messages_with(b"X: smtpc") != []  # not a dialogue's token: every file is searched


def test_ports_handed_out_at_once_are_all_different() -> None:
    from conformance.targets.process import PortBook

    book = PortBook()
    ports = [book.take("127.0.0.1") for _ in range(300)]
    assert len(set(ports)) == 300
    book.give_back("127.0.0.1", ports[0])
    assert ports[0] not in book._taken  # given back: may be handed out again


def test_a_stopped_target_gives_its_port_back_once() -> None:
    from conformance.targets.process import PORTS, BuiltinTarget

    target = BuiltinTarget(label="builtin", spec="builtin")
    endpoint = target.start()
    try:
        assert ("127.0.0.1", endpoint.port) in PORTS._taken  # booked while it runs
    finally:
        target.stop()
    assert ("127.0.0.1", endpoint.port) not in PORTS._taken
    PORTS._taken.add(("127.0.0.1", endpoint.port))  # another target got the same port since
    try:
        target.stop()  # a second stop (Ctrl-C during shutdown) must not free the other target's port
        assert ("127.0.0.1", endpoint.port) in PORTS._taken
    finally:
        PORTS.give_back("127.0.0.1", endpoint.port)


def _walked(root: Path) -> list[str]:
    """What a Maildir reader must list: every file of every new/ and cur/ below the root, as os.walk sees it."""
    import os

    files = []
    for folder, _dirs, names in os.walk(root):
        if os.path.basename(folder) in ("new", "cur"):
            files += [os.path.join(folder, n) for n in names]
    return sorted(files)


def test_maildir_listing_finds_every_stored_file_of_every_layout(tmp_path: Path) -> None:
    """Flat, per-user (Postfix virtual), Maildir++ subfolders, nested, a root that is itself new/: the listing
    by name finds exactly the files os.walk finds, and none of tmp/ (deliveries under way)."""
    import mailbox as stdlib_mailbox

    from conformance.mailbox import MaildirMailbox

    for n, sub in enumerate(["flat", "users/a", "users/b", "users/a/.Sent", "deep/x/y"]):
        (tmp_path / sub).parent.mkdir(parents=True, exist_ok=True)
        box = stdlib_mailbox.Maildir(str(tmp_path / sub), create=True)
        keys = [box.add(f"Subject: {sub} {i}\r\n\r\nbody\r\n".encode()) for i in range(n + 2)]
        message = box[keys[0]]
        message.set_subdir("cur")
        box[keys[0]] = message  # one in cur/, the others in new/
    (tmp_path / "flat" / "tmp" / "1.under-way").write_bytes(b"Subject: not yet\r\n\r\n")
    (tmp_path / "users" / "c").mkdir()  # a user without a Maildir yet
    for root in [tmp_path, tmp_path / "flat", tmp_path / "users", tmp_path / "flat" / "new",
                 tmp_path / "flat" / "cur", tmp_path / "missing"]:
        listed = MaildirMailbox(str(root))._files()
        assert listed == _walked(root), root
        assert not any("/tmp/1.under-way" in f for f in listed)
    assert len(MaildirMailbox(str(tmp_path))._files()) == 2 + 3 + 4 + 5 + 6
