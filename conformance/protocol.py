"""pytest's runtest protocol, lean, for a session of scenario items only.

A scenario item has no fixtures, no setup and no teardown: its dialogue already ran in the runner's thread,
and `runtest` only fetches and judges the result. pytest's own protocol still costs ~1 ms an item (the setup
state, three CallInfo and makereport rounds, three keyword dicts), which is most of the main thread's time
in a run of 30 targets × the catalog. This one sends the same hooks and reports (logstart, a passed setup
report, the call report made by `pytest_runtest_makereport`, a passed teardown report, logfinish), so the
terminal, JUnit XML, xdist and `-x` see what they always see. It is used only when every item of the session
is a scenario item and nothing needs pytest's full protocol (--pdb, --trace, --setup-*, skip/xfail marks).
"""

from __future__ import annotations

from typing import Any

import pytest

# options under which pytest's full protocol is needed (they act in the phases this one leaves out)
FULL_PROTOCOL_OPTIONS = ("usepdb", "trace", "setuponly", "setupplan", "setupshow")
# marks that pytest's skipping plugin evaluates at setup
SETUP_MARKS = frozenset({"skip", "skipif", "xfail"})


def lean_applies(config: pytest.Config, items: list[pytest.Item], item_type: type[pytest.Item]) -> bool:
    """Every item is a scenario item without setup marks, and no option asks for the full protocol."""
    if any(config.getoption(name, False) for name in FULL_PROTOCOL_OPTIONS):
        return False
    return all(isinstance(i, item_type) and not SETUP_MARKS.intersection(m.name for m in i.iter_markers())
               for i in items)


def run_item(item: pytest.Item) -> None:
    """One item through the hooks of pytest's protocol; the reports share one keyword dict."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    keywords = _keywords(item)
    ihook.pytest_runtest_logreport(report=_passed(item, "setup", keywords))
    reraise: tuple[type[BaseException], ...] = (pytest.exit.Exception, KeyboardInterrupt)
    call = pytest.CallInfo.from_call(item.runtest, when="call", reraise=reraise)
    report: pytest.TestReport = ihook.pytest_runtest_makereport(item=item, call=call)
    report.keywords = keywords  # equal content; one dict per item instead of three
    ihook.pytest_runtest_logreport(report=report)
    if call.excinfo is not None and report.failed and not hasattr(report, "wasxfail"):
        ihook.pytest_exception_interact(node=item, call=call, report=report)
    ihook.pytest_runtest_logreport(report=_passed(item, "teardown", keywords))
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


PARENT_KEYWORDS = pytest.StashKey[dict[str, Any]]()


def _keywords(item: pytest.Item) -> dict[str, Any]:
    """`dict.fromkeys(item.keywords, 1)`, as pytest's reports hold it: the item's own keywords, then its
    parents'. Those of the parent (its file, folders, session) are gathered once per file instead of walking
    the chain of nested generators for every item."""
    own = getattr(item.keywords, "_markers", None)  # NodeKeywords' own keywords (pytest 7-9)
    if not isinstance(own, dict) or item.parent is None:
        return dict.fromkeys(item.keywords, 1)
    inherited = item.parent.stash.get(PARENT_KEYWORDS, None)
    if inherited is None:
        inherited = item.parent.stash[PARENT_KEYWORDS] = dict.fromkeys(item.parent.keywords, 1)
    keywords = dict.fromkeys(own, 1)
    keywords.update(inherited)  # a key the item has already keeps its place, as in NodeKeywords' iteration
    return keywords


def _passed(item: pytest.Item, when: str, keywords: dict[str, Any]) -> pytest.TestReport:
    # pytest 9 reports carry the item's structured id (junitxml matches a testcase's reports by it); pytest 8
    # has only the string
    node_id = getattr(item, "id", None) or item.nodeid
    return pytest.TestReport(node_id, item.location, keywords, "passed", None, when)  # type: ignore[arg-type]
