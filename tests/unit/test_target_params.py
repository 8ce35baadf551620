"""Target parameters are declared once (TargetParams fields); every front door is generated from them."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.cli import build_parser
from conformance.targets.base import TargetParams, parameter_changes, parameters
from conformance.targets.spec import _schema

REPO = Path(__file__).resolve().parents[2]


def test_every_parameter_reaches_the_cli_and_the_targets_schema():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001 - argparse has no API
    options = {o for action in run._actions for o in action.option_strings}  # noqa: SLF001
    properties = _schema()["properties"]["targets"]["items"]["properties"]
    for p in parameters():
        assert properties[p.name] == p.schema
        assert f"--{p.option}" in options or not p.cli, p.name


def test_the_shipped_targets_schema_matches_the_declarations():
    shipped = json.loads((REPO / "conformance/schema/targets.schema.json").read_text())
    properties = shipped["properties"]["targets"]["items"]["properties"]
    assert {p.name: properties.get(p.name) for p in parameters()} == {p.name: p.schema for p in parameters()}


def test_pytest_options_come_from_the_declarations(pytestconfig):
    for p in parameters():
        if p.cli:
            pytestconfig.getoption(f"smtp_{p.name}")  # ValueError when the option does not exist


def test_auth_and_mailbox_are_checked_once():
    assert parameter_changes({"auth": "alice:s3cret:x"}) == ({"user": "alice", "password": "s3cret:x"}, [])
    assert parameter_changes({"auth": "alice"})[1] == [("auth", "expected USER:PASSWORD")]
    changes, wrong = parameter_changes({"mailbox": "nonsense", "domain": "d.test"})
    assert changes == {"domain": "d.test"} and [k for k, _ in wrong] == ["mailbox"]
    assert TargetParams().with_(**changes).domain == "d.test"
