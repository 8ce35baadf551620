"""C2/C3 in the scenario model: which step is checked, profiles, outcome_for (docs/scenario-format.md)."""

from __future__ import annotations

from pathlib import Path

from conformance.loader import Loader
from conformance.model import Outcome, Read, Write
from conformance.runner import profile_skip


def load(tmp_path: Path, steps: str, extra: str = ""):
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    path.write_text("id: unit-case\ntitle: a unit case\nrfc: 5321\nsection: '3.3'\nlevel: MUST\n"
                    "quote: a sentence for the unit test\n" + extra
                    + ("stored: unchecked\n" if "message:" in steps else "") + "steps:\n" + steps)
    scenarios, problems = Loader().load_file(path)
    assert not problems, problems
    return scenarios[0]


def first_checked(scenario) -> str:  # type: ignore[no-untyped-def]
    action = scenario.actions[scenario.checked_from]
    if isinstance(action, Write):
        return action.payloads[0].template.source_text
    return type(action).__name__


def test_default_is_the_last_top_level_step_that_reads(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - use: transaction\n  - send: DATA\n    expect: 354\n"
                              "  - message: hello\n    expect: 250\n  - wait: 0.1\n")
    assert first_checked(scenario) == "hello"
    # everything the fragment brought (greeting, EHLO, MAIL, RCPT) and DATA is setup
    assert scenario.checked_from == len(scenario.actions) - 2


def test_fragments_are_setup_by_default(tmp_path: Path) -> None:
    only_use = load(tmp_path, "  - use: ehlo\n")
    assert only_use.checked_from == 0  # nothing reads at the top level: the whole dialogue is checked


def test_check_marks_the_step(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - use: ehlo\n  - send: MAIL FROM:<a@b.example>\n    check: true\n    expect: 250\n"
                              "  - send: RCPT TO:<c@d.example>\n    expect: 250\n")
    assert first_checked(scenario) == "MAIL FROM:<a@b.example>"


def test_check_on_a_use_step_makes_the_fragment_checked(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - use: greet\n  - use: ehlo\n    check: true\n  - send: QUIT\n    expect: 221\n")
    assert isinstance(scenario.actions[scenario.checked_from], Read)  # ehlo's own greet comes first
    assert scenario.checked_from == 1


def test_profiles_and_outcome_for(tmp_path: Path) -> None:
    scenario = load(tmp_path, "  - use: ehlo\n  - send: NOOP\n    expect:\n"
                              "      - 250\n      - {code: 502, outcome: non-strict, outcome_for: {catcher: info}}\n",
                    extra="profiles: [mx, submission]\n")
    assert scenario.profiles == ("mx", "submission")
    alt = scenario.actions[-1].expects[0].alternatives[1]
    assert alt.outcome_under("catcher") is Outcome.INFO
    assert alt.outcome_under("mx") is Outcome.NON_STRICT and alt.outcome_under(None) is Outcome.NON_STRICT
    assert profile_skip(scenario, "mx") is None
    assert profile_skip(scenario, None) == "applies to profile mx, submission; declare --profile"
    assert profile_skip(scenario, "catcher") == "applies to profile mx, submission, not to this catcher target"


def test_catalog_marks_where_the_default_is_wrong() -> None:
    """RFC 3207's publicly-referenced rule is decided at MAIL, not at the end of the message."""
    catalog = Loader().load_paths([Path(__file__).resolve().parents[2] / "scenarios"])
    by_id = {s.id: s for s in catalog.scenarios}
    scenario = by_id["rfc3207-4-local-delivery-without-tls"]
    assert first_checked(scenario).startswith("MAIL FROM")
    assert scenario.profiles == ("mx",)
