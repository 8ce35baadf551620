"""Engine capabilities for extensions: BDAT framing, AUTH encodings (PLAIN, LOGIN, CRAM-MD5), gating."""

from __future__ import annotations

import base64
from pathlib import Path

from conformance.dialogue import Dialogue, Settings
from conformance.loader import Loader
from conformance.model import Write
from conformance.reply import ReplyParser
from conformance.targets.base import Endpoint
from conformance.templates import cram_md5_response, credential_values


def load(tmp_path: Path, steps: str, extra: str = ""):
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    path.write_text("id: unit-case\ntitle: a unit case\nrfc: 3030\nsection: '2'\nlevel: MUST\n"
                    "quote: a sentence for the unit test\n" + extra + "stored: unchecked\nsteps:\n" + steps)
    scenarios, problems = Loader().load_file(path)
    assert not problems, problems
    return scenarios[0]


def writes(tmp_path: Path, steps: str, values: dict[str, str] | None = None) -> list[bytes]:
    scenario = load(tmp_path, steps)
    dialogue = Dialogue(scenario, Endpoint("127.0.0.1", 1), values or {}, Settings())
    return [b"".join(dialogue._payload_bytes(p) for p in a.payloads) for a in scenario.actions if isinstance(a, Write)]


def test_bdat_counts_octets_exactly(tmp_path: Path) -> None:
    out = writes(tmp_path, "  - bdat: 'Subject: x\\r\\n\\r\\n.not stuffed\\r\\n'\n    expect: 250\n"
                           "  - bdat: ''\n    last: true\n    expect: 250\n")
    assert out[0] == b"BDAT 28\r\nSubject: x\r\n\r\n.not stuffed\r\n"
    assert out[1] == b"BDAT 0 LAST\r\n"


def test_bdat_utf8_counts_octets_not_characters(tmp_path: Path) -> None:
    out = writes(tmp_path, "  - bdat: 'é'\n    last: true\n")
    assert out[0] == b"BDAT 2 LAST\r\n\xc3\xa9"


def test_bdat_declared_size_can_lie(tmp_path: Path) -> None:
    out = writes(tmp_path, "  - bdat: 'abc'\n    size: 10\n")
    assert out[0] == b"BDAT 10\r\nabc"


def test_bdat_in_a_pipeline_is_one_write(tmp_path: Path) -> None:
    out = writes(tmp_path, "  - pipeline:\n      - send: MAIL FROM:<>\n        expect: 250\n"
                           "      - bdat: 'x'\n        last: true\n        expect: 250\n")
    assert out == [b"MAIL FROM:<>\r\nBDAT 1 LAST\r\nx"]


def test_auth_encodings() -> None:
    values = credential_values("user@example.test", "s3cret")
    assert base64.b64decode(values["auth_plain"]) == b"\0user@example.test\0s3cret"
    assert base64.b64decode(values["auth_login_user"]) == b"user@example.test"
    assert base64.b64decode(values["auth_login_password"]) == b"s3cret"


def test_cram_md5_matches_rfc_2195_example() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>").decode()
    assert cram_md5_response("tim", "tanstaaftanstaaf", challenge) == \
        "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


def test_cram_md5_uses_the_last_challenge(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - send: '{cram_md5}'\n")
    assert scenario.needs == ("credentials",)
    dialogue = Dialogue(scenario, Endpoint("127.0.0.1", 1), credential_values("tim", "tanstaaftanstaaf"), Settings())
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    assert dialogue.last_text == ""  # no reply yet: no challenge
    parser = ReplyParser()
    parser.feed(b"334 " + challenge + b"\r\n")
    dialogue.last_reply = parser.next_reply()  # the server's challenge, as the dialogue records it
    payload = scenario.actions[0].payloads[0]
    assert dialogue._payload_bytes(payload) == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"


def test_requires_and_needs_are_derived(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - send: AUTH PLAIN {auth_plain}\n  - delivered: {count: 1}\n",
                    extra="requires: [auth, chunking]\n")
    assert scenario.requires == ("AUTH", "CHUNKING")
    assert scenario.needs == ("credentials", "mailbox")


def test_step_source_is_exactly_the_steps_lines(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - send: DATA\n    expect: 354\n  - raw: 'x'\n  - silence: 1\n"
                              "  - raw: '.\\r\\n'\n    expect:\n      - 250\n      - {code: 554, note: n}\n"
                              "  - message: |\n      a\n      b\n    expect: 250\n")
    sources = [a.source.text for a in scenario.actions if hasattr(a, "source")]
    sources += [a.expect.source.text for a in scenario.actions if hasattr(a, "expect")]
    assert "- silence: 1" in sources
    assert "- send: DATA\n  expect: 354" in sources
    assert "- raw: '.\\r\\n'\n  expect:\n    - 250\n    - {code: 554, note: n}" in sources
    assert "- message: |\n    a\n    b\n  expect: 250" in sources


def test_ids_that_look_like_dates_stay_text(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - use: ehlo\n", extra="requirements: [4954-15-01]\n")
    assert scenario.requirements == ("4954-15-01",)


def test_require_checks_keyword_parameters() -> None:
    from conformance.dialogue import _Stop
    from conformance.model import RequireKeywords, Source

    dialogue = Dialogue.__new__(Dialogue)
    dialogue.keywords = ["AUTH PLAIN LOGIN", "SIZE 1000"]
    dialogue.outcome = __import__("conformance.model", fromlist=["Outcome"]).Outcome.PASS
    dialogue.decisive, dialogue.step_index, dialogue.message = None, 0, ""
    src = Source("f", 1, 1, "")
    dialogue._require(RequireKeywords(("AUTH LOGIN", "SIZE"), src))  # present: no exception
    try:
        dialogue._require(RequireKeywords(("AUTH CRAM-MD5",), src))
    except _Stop:
        assert dialogue.outcome.value == "unsupported"
    else:
        raise AssertionError("a missing mechanism must stop the dialogue as UNSUPPORTED")
