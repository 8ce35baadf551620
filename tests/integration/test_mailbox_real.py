"""The mailbox readers return the message as the real server stored it: maildev's API (its .eml source and
envelope), Postfix's Maildir, and the same Maildir through Dovecot's IMAP and POP3. The stored-form checks
(`body`, `sent_headers`, `rcpt`) pass on them, byte-exact."""

from __future__ import annotations

import asyncio
import smtplib
import time
from pathlib import Path

from conformance.dialogue import Dialogue, Settings, header_fields, message_body
from conformance.loader import Loader
from conformance.mailbox import Mailbox, parse_mailbox
from conformance.model import Outcome, Scenario
from conformance.targets.base import Endpoint
from tests.integration.test_delivery_real import dovecot
from tests.support import real_server

SCENARIO = """\
id: harness-stored-form
title: A message with folded and dot-led lines is stored as sent, once per recipient
rfc: 5321
section: 4.5.2
level: MUST
quote: the first character is deleted when it is a period and other characters are on the line
stored: checked
steps:
  - expect: 220
  - send: EHLO {client}
    expect: 250
  - send: MAIL FROM:<{sender}>
    expect: 250
  - send: RCPT TO:<{rcpt}>
    expect: 250
  - send: RCPT TO:<postmaster@{domain}>
    expect: 250
  - send: DATA
    expect: 354
  - message: |
      Subject: {token}
      X-Folded: first
        second
      X-Last: 1

      .leading dot
      .
      ..two
      end
    expect: 250
  - delivered:
      rcpt: '{rcpt}'
      body: ".leading dot\\n.\\n..two\\nend\\n"
      sent_headers: true
  - delivered:
      rcpt: 'postmaster@{domain}'
      body: ".leading dot\\n.\\n..two\\nend\\n"
      sent_headers: true
"""


def scenario(tmp_path: Path) -> Scenario:
    path = tmp_path / "scenarios" / "stored.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCENARIO)
    scenarios, problems = Loader().load_file(path)
    assert not problems, [str(p) for p in problems]
    return scenarios[0]


def play(tmp_path: Path, port: int, mailbox: Mailbox) -> tuple[Outcome, str]:
    values = {"domain": "example.test", "rcpt": "user@example.test", "sender": "tester@example.net",
              "client": "client.example.net"}
    dialogue = Dialogue(scenario(tmp_path), Endpoint("127.0.0.1", port), values,
                        Settings(timeout=20, delivery_timeout=20), mailbox=mailbox)
    result = asyncio.run(dialogue.run())
    return result.outcome, result.message


SENT = (b"Subject: probe-%s\r\nX-Folded: first\r\n  second\r\n\r\n.leading dot\r\n.\r\nend\r\n")


def send(port: int, token: bytes, rcpts: list[str]) -> bytes:
    message = SENT.replace(b"%s", token)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.example.net")
        client.sendmail("tester@example.net", rcpts, message)
    return message


def wait_for(mailbox: Mailbox, token: bytes, count: int) -> list:
    deadline = time.monotonic() + 20
    while True:
        found = mailbox.stored_with(token)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_maildev_source_is_the_message_as_received_with_its_envelope(tmp_path: Path) -> None:
    with real_server("maildev") as maildev:
        assert maildev.api
        box = parse_mailbox(f"maildev:{maildev.api}")
        sent = send(maildev.port, b"md-1", ["user@example.test", "Other@Example.TEST"])
        found = wait_for(box, b"probe-md-1", 1)
        assert len(found) == 1  # one copy for every recipient
        assert found[0].raw == sent  # maildev adds no header field and keeps CRLF
        assert found[0].recipients == ("user@example.test", "Other@Example.TEST")
        outcome, message = play(tmp_path, maildev.port, box)
        assert outcome is Outcome.PASS, message


def test_postfix_maildir_and_dovecot_imap_pop3(tmp_path: Path) -> None:
    with real_server("postfix") as postfix:
        assert postfix.maildir is not None
        maildir = parse_mailbox(f"maildir:{postfix.maildir}")
        sent = send(postfix.port, b"pf-1", ["user@example.test", "postmaster@example.test"])
        found = wait_for(maildir, b"probe-pf-1", 2)
        assert len(found) == 2  # virtual(8) stores one copy per recipient, each with its Delivered-To
        for copy in found:
            fields = header_fields(copy.raw)
            assert fields[0].startswith(b"Return-Path: <tester@example.net>")
            assert any(f.lower().startswith(b"delivered-to: ") for f in fields)
            at = fields.index(b"Subject: probe-pf-1")  # after Postfix's trace fields; it adds Date etc. below
            assert fields[at : at + 2] == [b"Subject: probe-pf-1", b"X-Folded: first\n  second"]
            assert message_body(copy.raw) == message_body(sent) == b".leading dot\n.\nend\n"
        outcome, message = play(tmp_path, postfix.port, maildir)
        assert outcome is Outcome.PASS, message
        with dovecot(postfix.maildir) as served:
            for kind in ("imap", "pop3"):
                box = parse_mailbox(served[kind])
                copies = box.stored_with(b"probe-pf-1")
                assert sorted(c.raw.replace(b"\r\n", b"\n") for c in copies) == sorted(c.raw for c in found), kind
                outcome, message = play(tmp_path, postfix.port, box)
                assert outcome is Outcome.PASS, (kind, message)
