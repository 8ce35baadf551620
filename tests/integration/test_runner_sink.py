"""Results leave the runner as they finish (issue 15): pytest asks for them in collection order, so without a
sink a slow first scenario kept every other finished result, transcripts and all, in memory until the end."""

from __future__ import annotations

import threading
import time
from typing import Any

from conformance.dialogue import Settings
from conformance.loader import Loader, load_requirement_ids
from conformance.runner import Runner
from conformance.targets import parse_target
from tests.servers import faulty
from tests.support import REPO


def test_each_result_reaches_the_sink_when_it_finishes_not_when_asked() -> None:
    loaded = Loader(load_requirement_ids()).load_paths([REPO / "scenarios" / "rfc5321" / "4.1.1.1-ehlo.yaml"])
    assert not loaded.problems and len(loaded.scenarios) >= 3
    seen: list[str] = []
    done = threading.Event()

    def sink(result: dict[str, Any]) -> dict[str, Any]:
        seen.append(result["id"])
        if len(seen) == len(loaded.scenarios):
            done.set()
        return {"id": result["id"], "slim": True}  # what the future keeps instead of the whole result

    host, port, stop = faulty.start_in_thread([])
    runner = Runner([parse_target(f"t={host}:{port}")], Settings(timeout=5), concurrency=4, sink=sink)
    try:
        for scenario in loaded.scenarios:
            runner.submit(scenario, "t")
        assert done.wait(60), f"{len(seen)} of {len(loaded.scenarios)} results reached the sink"
        time.sleep(0.1)
        for scenario in loaded.scenarios:  # asked only now, in another order: what the sink returned
            assert runner.result(scenario, "t") == {"id": scenario.id, "slim": True}
        assert sorted(seen) == sorted(s.id for s in loaded.scenarios)
    finally:
        runner.close()
        stop()
