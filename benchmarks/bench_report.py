#!/usr/bin/env python3
"""Benchmark: size and load time of the HTML report for a 30-target comparison (goal: < 20 MB, < 2 s).

One real run of the catalog against the builtin server (or `--results FILE`, any results JSON) is
replicated into N targets, each with a deterministic share of outcomes changed so that the comparison
views have differences to show. The report is rendered, then opened in headless Chromium (chromium,
chromium-driver from apt) and timed with the browser's own Navigation Timing, plus one filter click.

Prints measurements and their ratio to the goal; it asserts nothing (a measurement, not a timed test).
Run: `.venv/bin/python benchmarks/bench_report.py [--targets 30] [--results FILE]`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_BYTES = 20 * 1024 * 1024
GOAL_LOAD_S = 2.0
OUTCOMES = ["pass", "fail", "non-strict", "info", "unsupported"]


def base_results(path: str | None, tmp: Path) -> dict:
    if path:
        return json.loads(Path(path).read_text())
    out = tmp / "builtin.json"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(REPO / "scenarios"),
           "--smtp-json", str(out), "--smtp-target", "builtin"]
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    return json.loads(out.read_text())


def replicate(doc: dict, n: int, changed: float) -> dict:
    """N targets from one: labels target-01 … target-N, `changed` of each one's outcomes altered."""
    rng = random.Random(14)
    base_targets = doc["targets"][:1] or [{"label": "builtin"}]
    base_label = base_targets[0]["label"]
    base = [r for r in doc["results"] if r["target"] == base_label]
    targets, results = [], []
    for i in range(1, n + 1):
        label = f"target-{i:02d}"
        target = copy.deepcopy(base_targets[0])
        target["label"] = label
        targets.append(target)
        for r in base:
            r2 = dict(r, target=label)
            if i > 1 and rng.random() < changed:
                r2["outcome"] = rng.choice([o for o in OUTCOMES if o != r["outcome"]])
            results.append(r2)
    out = dict(doc, targets=targets, results=results)
    out.pop("summary", None)
    return out


def browser():
    from tests.integration.test_report_browser import browser as make

    return make()


_TIMING = """
    var t = performance.getEntriesByType('navigation')[0];
    var p = performance.getEntriesByName('first-contentful-paint')[0];
    return t && t.loadEventEnd > 0 ? [t.loadEventEnd - t.startTime, p ? p.startTime : -1] : null;"""


def measure_load(path: Path, rounds: int) -> tuple[list[float], list[float], float]:
    """Per round: Navigation Timing load-event end and first contentful paint (s); one filter click (s)."""
    driver = browser()
    loads, paints = [], []
    try:
        driver.set_window_size(1400, 1000)
        driver.set_page_load_timeout(300)
        for _ in range(rounds):
            driver.get("about:blank")
            driver.get(path.as_uri())
            timing = None
            deadline = time.monotonic() + 300
            while timing is None and time.monotonic() < deadline:
                timing = driver.execute_script(_TIMING)
                time.sleep(0.05)
            assert timing is not None, "the page never finished loading"
            loads.append(timing[0] / 1000)
            paints.append(timing[1] / 1000)
        click = driver.execute_script("""
            var b = document.querySelector("button.f-badge[data-outcome=fail]");
            var t0 = performance.now(); b.click(); return (performance.now() - t0) / 1000;""")
    finally:
        driver.quit()
    return loads, paints, click


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=30)
    parser.add_argument("--changed", type=float, default=0.05, help="share of each target's outcomes altered")
    parser.add_argument("--results", help="a results JSON to replicate (default: run the catalog on builtin)")
    parser.add_argument("--rounds", type=int, default=3, help="page loads to time")
    parser.add_argument("--transcripts", choices=["all", "non-pass"], default="all",
                        help="non-pass: drop PASS/UNSUPPORTED/SKIPPED transcripts as --smtp-transcripts does")
    args = parser.parse_args()

    from conformance.report.html import render_html

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp_name:
        tmp = Path(tmp_name)
        doc = replicate(base_results(args.results, tmp), args.targets, args.changed)
        if args.transcripts == "non-pass":
            for r in doc["results"]:
                if r["outcome"] in ("pass", "unsupported", "skipped"):
                    r["transcript"] = []
        started = time.perf_counter()
        html = render_html(doc)
        render_s = time.perf_counter() - started
        path = tmp / "index.html"
        path.write_text(html, encoding="utf-8")
        size = path.stat().st_size
        loads, paints, click = measure_load(path, args.rounds)

    load = min(loads)
    print(f"targets: {args.targets}, results: {len(doc['results'])}, transcripts: {args.transcripts}")
    print(f"render: {render_s:.2f} s")
    print(f"size:   {size / 1e6:.2f} MB   ({size / GOAL_BYTES:.2f} of the 20 MB goal)")
    print(f"load:   {load:.2f} s best of {len(loads)} ({', '.join(f'{x:.2f}' for x in loads)})   "
          f"({load / GOAL_LOAD_S:.2f} of the 2 s goal)")
    print(f"first paint: {min(paints):.2f} s best of {len(paints)} (the findings, top of the page)")
    print(f"filter: {click * 1000:.0f} ms for one badge click (rows and details)")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (times scale with it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
