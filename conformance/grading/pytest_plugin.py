"""A small pytest plugin, loaded only by the grading run (`-p conformance.grading.pytest_plugin`).

`--smtp-grading-select FILE` keeps only the scenario ids listed in FILE (scenarios no category scores
neither run nor use up a student's time limit); it starts all students at once instead of a CPU-sized
handful at a time, and stops them all at once at the end instead of one after another.
Every hook is a no-op without --smtp-grading-select.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .isolation import TOKEN_VAR, UIDS_VAR, terminate


def pytest_addoption(parser: Any) -> None:
    parser.getgroup("smtp-conformance").addoption(
        "--smtp-grading-select", metavar="FILE",
        help="(grading) JSON list of scenario ids: deselect every other scenario")


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    path = config.getoption("smtp_grading_select", None)
    if not path:
        return
    wanted = set(json.loads(Path(path).read_text()))
    keep = [i for i in items if getattr(getattr(i, "scenario", None), "id", None) in wanted]
    dropped = [i for i in items if getattr(getattr(i, "scenario", None), "id", None) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collection_finish(session: Any) -> None:
    """Start every student at once: the runner's start threads are sized for the targets already; this keeps
    a pool of at least that size whatever the engine's default."""
    if not session.config.getoption("smtp_grading_select", None):
        return
    from ..plugin import STATE

    state = session.config.stash.get(STATE, None)
    if state is None or state.problems:
        return
    state.get_runner().widen_start_pool(max(4, min(128, len(state.targets))))


def pytest_sessionfinish(session: Any) -> None:
    """Stop every student at once (SIGTERM, one shared grace period, SIGKILL) before the engine's runner stops
    its targets one after another; it then finds them gone, reaps them and keeps their logs."""
    token = os.environ.get(TOKEN_VAR)
    if not token or not session.config.getoption("smtp_grading_select", None):
        return
    uids = {int(u) for u in os.environ.get(UIDS_VAR, "").split(",") if u.strip().isdigit()}
    terminate(uids, token, grace=3.0)
