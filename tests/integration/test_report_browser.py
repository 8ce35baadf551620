"""The comparison report in a real browser: four real servers side by side, 'differences only' works.

Headless Chromium from Debian's packages (chromium, chromium-driver) driven through Selenium.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from tests.support import REPO, missing, real_server, run_suite

SERVERS = ["postfix", "exim", "aiosmtpd", "maildev"]


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        missing("chromium and chromium-driver (apt) are needed for the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    html = tmp_path_factory.mktemp("report") / "index.html"
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(real_server(name)) for name in SERVERS]
        args = [a for s in servers for a in ("--smtp-target", f"{s.name}={s.address}")]
        run = run_suite(*args, "--smtp-html", str(html), paths=[str(REPO / "scenarios" / "rfc5321")])
    assert run.document is not None
    assert [t["label"] for t in run.document["targets"]] == SERVERS
    return html


def test_matrix_shows_and_differences_only_hides_identical_rows(comparison: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(comparison.as_uri())
        _shot(driver, "real-servers-findings")
        columns = driver.find_elements(By.CSS_SELECTOR, "table#matrix th.tcol")
        assert [c.get_attribute("data-target") for c in columns] == SERVERS
        rows = driver.find_elements(By.CSS_SELECTOR, "table#matrix tr.row")
        same = [r for r in rows if r.get_attribute("data-same") == "1"]
        different = [r for r in rows if r.get_attribute("data-same") == "0"]
        assert same and different, "the test needs both identical and differing rows"
        assert all(r.is_displayed() for r in rows[:50])
        cells = driver.find_elements(By.CSS_SELECTOR, "table#matrix tr.row td.cell")
        assert len(cells) == len(rows) * len(SERVERS)
        driver.find_element(By.ID, "f-diff").click()
        assert not any(r.is_displayed() for r in same)
        assert all(r.is_displayed() for r in different)
        # a cell opens its transcript
        link = different[0].find_element(By.CSS_SELECTOR, "td.cell a")
        anchor = link.get_attribute("href").split("#", 1)[1]
        link.click()
        detail = driver.find_element(By.ID, anchor)
        assert detail.get_attribute("open") is not None
        driver.find_element(By.ID, "f-diff").click()
        assert all(r.is_displayed() for r in same[:20])
        driver.find_element(By.ID, "differences").location_once_scrolled_into_view  # noqa: B018
        _shot(driver, "real-servers-differences")
    finally:
        driver.quit()


def test_report_is_self_contained(comparison: Path) -> None:
    page = comparison.read_text()
    for external in ("http://", "https://", "//cdn"):
        assert f'src="{external}' not in page and f'href="{external}' not in page
    assert os.path.getsize(comparison) > 10_000


# ----- findings first, readable without colour, filters, escaped bytes (issue 14) --------------------------
# Two targets: the builtin server, and the faulty server with known faults (FAIL: no sequencing checks;
# NON-STRICT: 503 to NOOP/RSET/VRFY/... before EHLO) whose every reply also carries hostile bytes.
HOSTILE = " \x00\x1b[31m<script>alert(1)</script>"
KNOWN_FAIL = "rfc5321-4.3.2-rcpt-before-mail"
KNOWN_NON_STRICT = "rfc5321-4.1.4-noop-before-ehlo"
SCREENSHOTS = REPO / "reports"


def _row(sid: str) -> str:
    from conformance.report.html import sanitize_token

    return "s-" + sanitize_token(sid)


def _anchor(target: str, sid: str) -> str:
    from conformance.report.html import result_anchor

    return result_anchor(target, sid)


def _hostile_session():
    from tests.servers import faulty

    class HostileSession(faulty._Session):
        """Appends NUL, ESC and a script tag to the first line of every reply (keywords stay parseable)."""

        def send_lines(self, lines: list[str]) -> None:
            super().send_lines([lines[0] + HOSTILE, *lines[1:]] if lines else lines)

    return HostileSession


@pytest.fixture(scope="module")
def two_targets(tmp_path_factory) -> tuple[Path, dict]:
    from tests.servers import faulty

    html = tmp_path_factory.mktemp("report2") / "index.html"
    host, port, stop = faulty.start_in_thread(["no-sequencing", "strict-pre-helo"], session=_hostile_session())
    try:
        run = run_suite("--smtp-target", "builtin", "--smtp-target", f"faulty={host}:{port}", "--smtp-html", str(html),
                        paths=[str(REPO / "scenarios" / "rfc5321" / name)
                               for name in ("4.1.4-order.yaml", "4.3.2-sequencing.yaml", "4.1.1.1-ehlo.yaml")])
    finally:
        stop()
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.result(KNOWN_FAIL, "faulty")["outcome"] == "fail"
    assert run.result(KNOWN_NON_STRICT, "faulty")["outcome"] == "non-strict"
    return html, run.document


def _shot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"browser-{name}.png"))


def _shown(driver, css: str) -> list:
    return [e for e in driver.find_elements("css selector", css) if e.is_displayed()]


def test_findings_come_first_with_outcome_words(two_targets) -> None:
    from conformance.report.findings import findings_by_target

    html, doc = two_targets
    expected = [(f.target, f.id, f.outcome) for items in findings_by_target(doc).values() for f in items]
    assert expected and expected[0][2] == "fail"
    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html.as_uri())
        _shot(driver, "findings")
        # the findings are the first section, on the first screen
        first_section = driver.find_element("css selector", "body > section")
        assert first_section.get_attribute("id") == "findings"
        items = driver.find_elements("css selector", "#findings li.finding")
        assert items and items[0].location["y"] < 1000, "the first finding is below the fold"
        listed = [(i.find_element("xpath", "ancestor::details[1]").get_attribute("data-target"),
                   i.find_element("css selector", "code.fid").text, i.get_attribute("data-outcome")) for i in items]
        assert listed == expected
        assert ("faulty", KNOWN_FAIL, "fail") in listed and ("faulty", KNOWN_NON_STRICT, "non-strict") in listed
        words = {"fail": "FAIL", "non-strict": "NON-STRICT"}
        for item, (_, _, outcome) in zip(items, listed, strict=True):
            assert words[outcome] in item.text and "expected" in item.text and "actual" in item.text
        # each finding links to its detail block, which opens
        items[0].find_element("css selector", "a").click()
        anchor = items[0].find_element("css selector", "a").get_attribute("href").split("#", 1)[1]
        assert driver.find_element("id", anchor).get_attribute("open") is not None
        # the findings come before the matrix, and the matrix before the details
        y = {css: driver.find_element("css selector", css).location["y"]
             for css in ("#findings", "#matrix", "section.details")}
        assert y["#findings"] < y["#matrix"] < y["section.details"]
        # reasons scenarios could not run are counted, per target
        reasons = driver.find_elements("css selector", "#findings tr.reason")
        assert all(r.find_element("css selector", "td.n").text.isdigit() for r in reasons)
    finally:
        driver.quit()


def test_legend_and_an_outcome_word_in_every_cell(two_targets) -> None:
    html, doc = two_targets
    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html.as_uri())
        legend = driver.find_element("id", "legend").text
        for word in ("PASS", "FAIL", "NON-STRICT", "INFO", "UNSUPPORTED", "SKIPPED", "ERROR"):
            assert word in legend
        cells = driver.find_elements("css selector", "table#matrix tr.row td.cell")
        assert len(cells) == len(doc["results"])
        words = ("PASS", "FAIL", "NON-STRICT", "INFO", "UNSUPPORTED", "SKIPPED", "ERROR")
        assert all(any(w in c.text.split() for w in words) for c in cells)
        row = driver.find_element("id", _row(KNOWN_FAIL))
        row.location_once_scrolled_into_view  # noqa: B018 - scrolls for the screenshot
        _shot(driver, "matrix")
        faulty_cell = row.find_elements("css selector", "td.cell")[1]
        assert "FAIL" in faulty_cell.text and "250" in faulty_cell.text
    finally:
        driver.quit()


def test_filters_change_the_details(two_targets) -> None:
    html, doc = two_targets
    fails = {(r["target"], r["id"]) for r in doc["results"] if r["outcome"] == "fail"}
    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html.as_uri())
        details = driver.find_elements("css selector", "section.details details.result")
        assert len(details) == len(doc["results"])
        assert all(d.get_attribute("hidden") is None for d in details)
        # the faulty target's FAIL badge is a filter: only its FAIL results remain, passes are hidden
        driver.find_element("css selector", "#findings button.f-badge[data-outcome=fail][data-target=faulty]").click()
        shown = [d for d in details if d.get_attribute("hidden") is None]
        assert {(d.get_attribute("data-target"), d.get_attribute("id")) for d in shown} == {
            ("faulty", _anchor("faulty", sid)) for _, sid in fails}
        assert all(d.get_attribute("data-outcome") == "fail" for d in shown)
        rows = [r for r in driver.find_elements("css selector", "table#matrix tr.row") if r.is_displayed()]
        assert len(rows) == len(fails)
        _shot(driver, "filtered")
        # the search narrows the details too
        driver.find_element("id", "f-clear").click()
        assert all(d.get_attribute("hidden") is None for d in details)
        box = driver.find_element("id", "f-text")
        box.send_keys(KNOWN_NON_STRICT)
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len([d for d in details if d.get_attribute("hidden") is None]) > 2:
            time.sleep(0.1)
        shown = {d.get_attribute("id") for d in details if d.get_attribute("hidden") is None}
        assert shown == {_anchor("builtin", KNOWN_NON_STRICT), _anchor("faulty", KNOWN_NON_STRICT)}
    finally:
        driver.quit()


def test_differences_show_reply_lines_side_by_side(two_targets) -> None:
    html, doc = two_targets
    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html.as_uri())
        row = driver.find_element("css selector", f"table#diffs tr.diff[data-row='{_row(KNOWN_FAIL)}']")
        row.location_once_scrolled_into_view  # noqa: B018
        _shot(driver, "differences")
        builtin, faulty = row.find_elements("css selector", "td.dcell")
        assert "PASS" in builtin.text and "503" in builtin.text
        assert "FAIL" in faulty.text and "250" in faulty.text and "Recipient" in faulty.text
        pair = driver.find_element("css selector", "#differences p.pair").text
        assert pair.startswith("builtin differs from faulty on ") and "sequencing" in pair
    finally:
        driver.quit()


def test_hostile_bytes_show_as_visible_escapes(two_targets) -> None:
    html, _ = two_targets
    page = html.read_text(encoding="utf-8")
    assert "\x00" not in page and "\x1b" not in page
    assert "<script>alert(1)" not in page
    driver = browser()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html.as_uri())
        assert len(driver.find_elements("tag name", "script")) == 1
        detail = driver.find_element("id", _anchor("faulty", KNOWN_FAIL))
        detail.find_element("tag name", "summary").click()
        transcript = detail.find_element("css selector", "pre.transcript")
        escapes = [e.text for e in transcript.find_elements("css selector", "i.e")]
        assert "\\x00" in escapes and "\\x1b" in escapes and "\\r\\n" in escapes
        assert "<script>alert(1)</script>" in transcript.text
        banner = driver.find_element("css selector", "#t-faulty dd.banner")
        assert "\\x00" in [e.text for e in banner.find_elements("css selector", "i.e")]
        transcript.location_once_scrolled_into_view  # noqa: B018
        _shot(driver, "escapes")
    finally:
        driver.quit()
