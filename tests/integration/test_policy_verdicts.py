"""Policy refusals are not violations; the downgrade is no loophole; profiles; timeouts shorter than the RFC's.

The servers are the embedded default (conformance/builtin.py: strict and conforming) plus one policy the RFCs
allow, from tests/servers/policy.py: AUTH required (530 5.7.0 before AUTH, RFC 4954 §6), STARTTLS required
(530 Must issue a STARTTLS command first, RFC 3207 §4), greylisting (450 4.7.1 to the first RCPT). Before
the setup/checked-step distinction the full catalog gave 138, 149 and 99 FAIL on such servers (issue 11).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conformance.dialogue import _code_matches
from conformance.loader import Loader, _flatten
from conformance.model import Outcome, Read, Write
from tests.support import REPO, SuiteRun, run_suite

CREDENTIALS = "user@example.test:password"


def _cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _target(directory: Path, label: str, mode: str, tls: bool = True, delay: float | None = None,
            **params: Any) -> dict[str, Any]:
    maildir = directory / f"maildir-{label}"
    command = f"{sys.executable} -m tests.servers.policy --port {{port}} --maildir {maildir} --mode {mode}"
    if tls:
        command += f" --tls-cert {directory / 'cert.pem'} --tls-key {directory / 'key.pem'}"
    if delay is not None:
        command += f" --delay {delay}"
    return {"label": label, "command": command, "workdir": str(REPO), "maildir": str(maildir), **params}


def _run(directory: Path, targets: list[dict[str, Any]], *args: str, paths: list[str] | None = None) -> SuiteRun:
    path = directory / f"targets-{len(list(directory.glob('targets-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"targets": targets}))
    return run_suite("--smtp-targets", str(path), "--smtp-concurrency", "8", *args, paths=paths, timeout=1200,
                     tmp=directory)


def _results(run: SuiteRun, target: str) -> dict[str, dict[str, Any]]:
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    return {r["id"]: r for r in run.document["results"] if r["target"] == target}


def _server_said(result: dict[str, Any], pattern: str) -> bool:
    return any(e["dir"] == "S" and re.search(pattern, e["data"]) for e in result["transcript"])


@pytest.fixture(scope="module")
def catalog_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The whole catalog, once, against the reference server, the three policies and the two faults."""
    directory = tmp_path_factory.mktemp("policy")
    _cert(directory)
    return _run(directory, [
        _target(directory, "reference", "none"),
        _target(directory, "auth", "auth-required"),
        _target(directory, "auth-creds", "auth-required", auth=CREDENTIALS, profile="submission"),
        _target(directory, "starttls", "starttls-required"),
        _target(directory, "greylist", "greylist", tls=False),
        _target(directory, "all-530", "all-530"),
        _target(directory, "all-rcpt-450", "all-rcpt-450", tls=False),
    ])


# all-rcpt-450 is the measure of greylisting (450 4.7.1 to every RCPT): no FAIL either
@pytest.mark.parametrize("label", ["auth", "auth-creds", "starttls", "greylist", "all-rcpt-450"])
def test_policy_server_has_no_fail(catalog_run: SuiteRun, label: str) -> None:
    results = _results(catalog_run, label)
    assert len(results) > 300
    bad = {sid: f"{r['outcome']}: {r['message']}" for sid, r in results.items() if r["outcome"] in ("fail", "error")}
    assert bad == {}


def test_setup_refusal_is_unsupported_with_the_reason_in_words(catalog_run: SuiteRun) -> None:
    results = _results(catalog_run, "auth")
    refused = [r for r in results.values() if r["cause"] == "setup-refused"]
    assert len(refused) > 50
    assert all(r["outcome"] == "unsupported" for r in refused)
    seed = results["rfc5321-seed-message-accepted"]
    assert seed["outcome"] == "unsupported"
    assert seed["message"].startswith("could not reach the state this requirement needs: MAIL was refused with "
                                      "530 5.7.0 Authentication required (setup step ")
    assert seed["step"] is not None and seed["decisive_code"] == 530
    tls = _results(catalog_run, "starttls")["rfc5321-seed-message-accepted"]
    assert tls["outcome"] == "unsupported" and "530 5.7.0 Must issue a STARTTLS command first" in tls["message"]


def test_greylisting_is_not_now_not_a_violation(catalog_run: SuiteRun) -> None:
    results = _results(catalog_run, "greylist")
    seed = results["rfc5321-seed-message-accepted"]
    assert seed["outcome"] == "unsupported" and seed["cause"] == "setup-refused"
    assert "RCPT was refused with 450 4.7.1" in seed["message"]
    # where RCPT itself is the checked step and acceptance was possible, the 450 is INFO "transient"
    transient = [r for r in results.values() if r["cause"] == "transient"]
    assert transient and all(r["outcome"] == "info" and "checked step" in r["message"] for r in transient)


def test_credentials_take_a_submission_server_past_mail(catalog_run: SuiteRun) -> None:
    without, with_ = _results(catalog_run, "auth"), _results(catalog_run, "auth-creds")
    gained = [sid for sid, r in with_.items() if r["outcome"] == "pass" and without[sid]["outcome"] == "unsupported"]
    assert len(gained) >= 80, gained
    assert "rfc5321-seed-message-accepted" in gained
    seed = with_["rfc5321-seed-message-accepted"]
    sent = [e["data"] for e in seed["transcript"] if e["dir"] == "C"]
    assert any(d.startswith("STARTTLS") for d in sent) and any(d.startswith("AUTH PLAIN ") for d in sent)


def _accepting(code: int) -> set[str]:
    """Scenarios with a PASS alternative that names this refusal (e.g. "RCPT is implemented: anything but 502")."""
    loaded = Loader().load_paths([REPO / "scenarios"])
    out = set()
    for scenario in loaded.scenarios:
        for action in _flatten(scenario.actions):
            expects = action.expects if isinstance(action, Write) else ()
            expects += (action.expect,) if isinstance(action, Read) else ()
            if any(alt.outcome is Outcome.PASS and not alt.close and not alt.silence
                   and (not alt.codes or any(_code_matches(c, code) for c in alt.codes))
                   for expect in expects for alt in expect.alternatives):
                out.add(scenario.id)
    return out


def test_refusing_everything_passes_nothing_it_blocks(catalog_run: SuiteRun) -> None:
    """The downgrade of policy replies is no loophole: 530 to everything passes no scenario that needs a 2xx,
    unless the scenario's author accepts a 530 there (VRFY before EHLO is "processed" by any reply but 503)."""
    reference, faulty = _results(catalog_run, "reference"), _results(catalog_run, "all-530")
    blocked = [sid for sid, r in reference.items() if _server_said(r, r"^2(?!20 |21 )\d\d")]
    assert len(blocked) > 250
    passed = {sid for sid in blocked if faulty[sid]["outcome"] == "pass"}
    assert len(passed) < 10 and passed <= _accepting(530)
    downgraded = [r for r in faulty.values() if r["cause"] in ("setup-refused", "transient")]
    assert downgraded and all(r["outcome"] in ("unsupported", "info") for r in downgraded)


def test_refusing_every_rcpt_passes_nothing_that_needs_a_recipient(catalog_run: SuiteRun) -> None:
    reference, faulty = _results(catalog_run, "reference"), _results(catalog_run, "all-rcpt-450")
    blocked = [sid for sid, r in reference.items() if _server_said(r, r"250 2\.1\.5 OK")]  # an accepted RCPT
    assert len(blocked) > 100
    passed = {sid for sid in blocked if faulty[sid]["outcome"] == "pass"}
    assert len(passed) < 12 and passed <= _accepting(450)
    assert faulty["rfc5321-seed-message-accepted"]["outcome"] == "unsupported"


def test_breaking_the_checked_requirement_fails_under_every_profile(tmp_path: Path) -> None:
    _cert(tmp_path)
    profiles = [None, "mx", "submission", "relay", "catcher"]
    targets = [_target(tmp_path, f"p-{p or 'none'}", "rcpt-before-mail", **({"profile": p} if p else {}))
               for p in profiles]
    run = _run(tmp_path, targets, paths=["scenarios/rfc5321/4.3.2-sequencing.yaml::rfc5321-4.3.2-rcpt-before-mail"])
    for p in profiles:
        result = run.result("rfc5321-4.3.2-rcpt-before-mail", f"p-{p or 'none'}")
        assert result["outcome"] == "fail", result["message"]
        assert "checked" not in (result["cause"] or "") and result["decisive_code"] == 250


def test_rfc3207_publicly_referenced_rule_applies_to_mx_only(tmp_path: Path) -> None:
    _cert(tmp_path)
    scenario = "rfc3207-4-local-delivery-without-tls"
    html = tmp_path / "report.html"
    run = _run(tmp_path, [
        _target(tmp_path, "none", "none"),
        _target(tmp_path, "mx", "none", profile="mx"),
        _target(tmp_path, "submission", "starttls-required", profile="submission"),
        _target(tmp_path, "mx-tls-required", "starttls-required", profile="mx"),
    ], "--smtp-html", str(html), paths=[f"scenarios/rfc3207/4-starttls.yaml::{scenario}"])
    report = html.read_text()
    assert "none declared (only what holds for every profile is judged); a profile would add mx: 1" in report
    assert "<span class=\"muted\">(submission)</span>" in report
    skipped = run.result(scenario, "none")
    assert skipped["outcome"] == "skipped" and skipped["message"] == "applies to profile mx; declare --profile"
    assert run.result(scenario, "mx")["outcome"] == "pass"
    assert run.result(scenario, "submission")["outcome"] == "skipped"
    failed = run.result(scenario, "mx-tls-required")
    assert failed["outcome"] == "fail" and "530" in failed["message"]
    assert run.document is not None
    jsonschema.validate(run.document, json.loads(
        resources.files("conformance").joinpath("schema/results.schema.json").read_text()))
    assert run.document["summary"]["profile_would_add"] == {"none": {"mx": 1}}
    assert {t["label"]: t["profile"] for t in run.document["targets"]} == {
        "none": None, "mx": "mx", "submission": "submission", "mx-tls-required": "mx"}
    assert "none: no profile declared; a profile would add scenarios (mx: 1)" in run.stdout


def test_accepting_invalid_credentials_is_judged_by_profile(tmp_path: Path) -> None:
    _cert(tmp_path)
    run = _run(tmp_path, [
        _target(tmp_path, "none", "auth-any"),
        _target(tmp_path, "submission", "auth-any", profile="submission"),
        _target(tmp_path, "catcher", "auth-any", profile="catcher"),
    ], paths=["scenarios/security/auth-credentials.yaml::security-auth-unknown-user"])
    scenario = "security-auth-unknown-user"
    assert run.result(scenario, "submission")["outcome"] == "fail"
    assert run.result(scenario, "catcher")["outcome"] == "info"
    assert run.result(scenario, "none")["outcome"] == "non-strict"  # the sentence's own SHOULD


def test_slower_than_our_timeout_but_within_the_rfc_is_info(tmp_path: Path) -> None:
    """Finding 13: a reply to the end of data after our timeout, well within RFC 5321's 10 minutes."""
    run = _run(tmp_path, [_target(tmp_path, "slow", "slow-data-end", tls=False, delay=4)], "--smtp-timeout", "1.5",
               paths=["scenarios/rfc5321/seed-message.yaml::rfc5321-seed-message-accepted"])
    result = run.result("rfc5321-seed-message-accepted", "slow")
    assert result["outcome"] == "info", result["message"]
    assert result["cause"] == "timeout"
    assert result["message"].startswith("the server did not answer within 1.5 s; RFC 5321 §4.5.3.2.6 allows it "
                                        "10 minutes")


def test_cli_profile_option(tmp_path: Path) -> None:
    """`smtp-conformance run --profile mx`: the relay check applies; without it, it is SKIPPED."""
    out = tmp_path / "results.json"
    for args, wanted in ((["--profile", "mx"], ("mx", "pass")), ([], (None, "skipped"))):
        proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", "builtin", *args,
                               "-k", "security-relay-foreign-rcpt", "--json", str(out)],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        document = json.loads(out.read_text())
        assert (document["targets"][0]["profile"], document["results"][0]["outcome"]) == wanted


def test_scenario_budget_shorter_than_the_rfc_is_info(tmp_path: Path) -> None:
    """The scenario's own budget (timeout: 3) runs out while the end of data is pending: INFO, not FAIL."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "budget.yaml").write_text(
        "id: unit-budget\ntitle: a message under a short budget\nrfc: 5321\nsection: 4.1.1.4\nlevel: MUST\n"
        "quote: If the processing is successful, the receiver MUST send an OK reply.\ntimeout: 3\nstored: unchecked\n"
            "steps:\n"
        "  - use: transaction\n  - send: DATA\n    expect: 354\n  - message: hello\n    expect: 250\n")
    run = _run(tmp_path, [_target(tmp_path, "slow", "slow-data-end", tls=False, delay=6)], "--smtp-timeout", "30",
               paths=[str(folder / "budget.yaml")])
    result = run.result("unit-budget", "slow")
    assert (result["outcome"], result["cause"]) == ("info", "timeout"), result["message"]
    assert "the scenario's budget of 3 s ran out); RFC 5321 §4.5.3.2.6 allows it 10 minutes" in result["message"]
