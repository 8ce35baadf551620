"""The lean runtest protocol's reports carry what pytest's own would (protocol.py)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.protocol import _keywords
from tests.support import REPO


class _Keywords:
    """Collects the catalog and compares, for every item, the lean protocol's keywords with pytest's own."""

    def __init__(self) -> None:
        self.compared: list[tuple[str, list[Any], list[Any]]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            for _ in range(2):  # the second time from the parent's cached keywords
                self.compared.append((item.nodeid, list(_keywords(item).items()),
                                      list(dict.fromkeys(item.keywords, 1).items())))


def test_report_keywords_equal_pytests_own_in_order() -> None:
    plugin = _Keywords()
    scenarios = str(REPO / "scenarios")
    code = pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", "--rootdir", str(REPO),
                        "--smtp-scenarios", scenarios, scenarios], plugins=[plugin])
    assert code == 0
    assert len(plugin.compared) > 600  # every scenario of the catalog, twice
    differing = [nodeid for nodeid, lean, full in plugin.compared if lean != full]
    assert not differing, differing[:5]
