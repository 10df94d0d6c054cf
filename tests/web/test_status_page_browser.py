"""The status page in a real browser (headless Chromium) while the demo replays the seed day.

The demo runs as a subprocess at high speed; the test reads the page as a person
would, takes screenshots into test-artifacts/, and submits the report form.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.daemon_process import free_port
from tests.web.conftest import ARTIFACTS

SPEED = 8  # the whole story in about 38 s


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """The demo at high speed on a free port; its base URL once the page answers."""
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outagewatch.cli",
            "demo",
            "--speed",
            str(SPEED),
            "--exit-when-done",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not become ready in 30 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _claude_reports(url: str) -> int:
    """Claude's report total as the JSON twin of the page has it."""
    with urllib.request.urlopen(url + "/api/v1/status", timeout=5) as response:
        document = json.load(response)
    (claude,) = [s for s in document["services"] if s["service"] == "claude"]
    total: int = claude["reports"]["total"]
    return total


def _wait_for(
    driver: webdriver.Chrome, url: str, seen: Callable[[str], bool], what: str, limit: float
) -> str:
    """Reload the page until the Claude card's text satisfies ``seen``; returns that text."""
    deadline = time.monotonic() + limit
    text = ""
    while time.monotonic() < deadline:
        driver.get(url + "/")
        text = driver.find_element(By.ID, "service-claude").text
        if seen(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"never saw {what} on the Claude card within {limit} s; last:\n{text}")


def test_a_person_sees_claude_go_down_and_come_back_and_can_report(
    demo: str, browser: webdriver.Chrome
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.monotonic()

    browser.get(demo + "/")
    assert browser.title == "outagewatch status"
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h1, h2")]
    assert headings[0] == "outagewatch status"
    assert sorted(headings[1:3]) == ["ChatGPT", "Claude"]  # worst first
    assert "Recent events" in headings
    card = _wait_for(browser, demo, lambda t: "✓ OK" in t, "the OK state", 20)
    assert "Official level: operational" in card
    assert browser.find_element(By.CSS_SELECTOR, "#service-claude .state").text == "✓ OK"
    browser.save_screenshot(str(ARTIFACTS / "status-page-normal.png"))

    # The outage: outagewatch flags it, then the official page admits it, with the lead shown.
    card = _wait_for(browser, demo, lambda t: "✕ Disrupted" in t, "the disrupted state", 40)
    assert "Detection lead" not in card  # nothing official to compare with yet
    card = _wait_for(browser, demo, lambda t: "Detection lead" in t, "the detection lead", 30)
    assert "✕ Disrupted" in card
    assert "Official level: major" in card
    assert "Elevated errors on claude.ai and the API" in card
    lead = browser.find_element(By.CSS_SELECTOR, "#service-claude .lead").text
    assert re.search(r"flagged it \d+ min before the official page", lead), lead
    browser.save_screenshot(str(ARTIFACTS / "status-page-outage.png"))
    # At a glance: the summary says it first, and Claude's card comes first.
    assert browser.find_element(By.ID, "summary").text.startswith("✕ 1 of 2 disrupted")
    assert browser.find_element(By.CSS_SELECTOR, ".card h2").text == "Claude"
    events = browser.find_element(By.CLASS_NAME, "events").text
    assert "claude: now disrupted (was " in events
    # Every chart says in words what it shows.
    for chart in browser.find_elements(By.CSS_SELECTOR, "#service-claude svg.chart"):
        assert chart.get_attribute("role") == "img"
        assert chart.find_element(By.TAG_NAME, "desc").get_attribute("textContent")

    # The report form submits and the count moves.
    before = _claude_reports(demo)
    browser.get(demo + "/report/claude")
    browser.find_element(By.CSS_SELECTOR, "button[value=app]").click()
    # The click navigates: wait for the answer page rather than race it.
    WebDriverWait(
        browser, 10, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    ).until(lambda d: "your report counts" in d.find_element(By.TAG_NAME, "body").text)
    assert _claude_reports(demo) > before

    # Recovery: OK again, the official page back to operational; the lead stays on record.
    card = _wait_for(
        browser,
        demo,
        lambda t: "✓ OK" in t and "Official level: operational" in t,
        "the recovery",
        40,
    )
    assert "Detection lead" in card
    browser.save_screenshot(str(ARTIFACTS / "status-page-recovered.png"))
    assert time.monotonic() - started < 100
