"""Fixtures for the project's own tests (the conformance scenarios have their own plugin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers.faulty import start_in_thread


@pytest.fixture
def faulty() -> Iterator[Callable[..., str]]:
    """faulty("lf-ends-data", ...) -> "127.0.0.1:PORT" of a faulty server running in this process."""
    stops: list[Callable[[], None]] = []

    def start(*faults: str, **kwargs: object) -> str:
        host, port, stop = start_in_thread(list(faults), port=0, **kwargs)  # type: ignore[arg-type]
        stops.append(stop)
        return f"{host}:{port}"

    yield start
    for stop in stops:
        stop()


# Scenario corpora are inputs for tests, not tests: the tests copy or name them explicitly.
collect_ignore = ["corpus"]
collect_ignore_glob = ["*/scenarios/*", "*/scenarios"]
