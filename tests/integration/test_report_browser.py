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
        driver.get(comparison.as_uri())
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
    finally:
        driver.quit()


def test_report_is_self_contained(comparison: Path) -> None:
    page = comparison.read_text()
    for external in ("http://", "https://", "//cdn"):
        assert f'src="{external}' not in page and f'href="{external}' not in page
    assert os.path.getsize(comparison) > 10_000
