"""The whole catalog against every real server here: the only non-PASS results are the documented ones.

Each server gets its mailbox (the Maildir its start script reports, or maildev's API), so delivery checks run
too. Each server's expected deviations, with the reason each is genuine, live in baselines/<server>/;
docs/known-deviations.md is generated from them. A scenario that is stricter than the RFC shows up here
as a NEW deviation on a server that behaves as the RFC allows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from conformance.baseline import compare, format_comparison, load_baseline
from tests.support import REPO, SCENARIOS, real_server, run_suite

SERVERS = ["builtin", "postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "maildev"]


@contextlib.contextmanager
def target_for(name: str) -> Iterator[list[str]]:
    """The target's options: its address and where its delivered mail can be read back."""
    if name == "builtin":
        yield ["--smtp-target", "builtin"]
        return
    with real_server(name) as server:
        mailbox = f"maildev:{server.api}" if server.api else f"maildir:{server.maildir}"
        yield ["--smtp-target", f"{name}={server.address}", "--smtp-mailbox", mailbox]


@pytest.mark.parametrize("name", SERVERS)
def test_catalog_against_real_server(name: str) -> None:
    baseline = load_baseline(REPO / "baselines" / name)
    assert not baseline.problems, "\n".join(map(str, baseline.problems))
    with target_for(name) as target:
        run = run_suite(*target, "--smtp-timeout", "10", paths=[str(SCENARIOS)])
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    results = run.document["results"]
    assert len(results) >= 100
    assert not [r for r in results if r["outcome"] == "error"], [
        (r["id"], r["message"]) for r in results if r["outcome"] == "error"]
    comparison = compare(results, baseline)
    assert comparison.clean, "\n" + format_comparison(name, comparison)
