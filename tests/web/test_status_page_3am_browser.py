"""The page at 3 a.m. in a real browser (headless Chromium): the summary line first,
the cards worst first, why a service is unknown; on a desktop and on a phone.

The page is rendered from a pipeline in a fixed state (nine services, as in the
issue) and opened from a file; screenshots go to test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from outagewatch.observations import ProbeResult
from outagewatch.views import StatusQuery
from outagewatch.web.status import render_status_page
from tests.web.conftest import ARTIFACTS
from tests.web.test_status_page_3am import NIGHT, _judged

SUMMARY = "✕ 2 of 9 disrupted · ! 1 degraded · ? 1 unknown: vantage unhealthy (Grok) · ✓ 5 OK"
ORDER = [
    "Claude",
    "Gemini",
    "Perplexity",
    "Grok",
    "ChatGPT",
    "Copilot",
    "DeepSeek",
    "Le Chat",
    "Meta AI",
]


def _night_page(tmp_path: Path) -> str:
    pipeline, config, clock = _judged(NIGHT)
    failures = {
        "claude": ("http_status", None, 503),
        "gemini": ("tls", "expired", None),
        "grok": ("connect", "refused", None),
    }
    for service, (reason, sub_reason, code) in failures.items():
        pipeline.ingest(
            [
                ProbeResult(
                    service,
                    "web",
                    "http",
                    clock.time(),
                    False,
                    0.3,
                    reason=reason,
                    sub_reason=sub_reason,
                    status_code=code,
                )
            ]
        )
    page = tmp_path / "status.html"
    document = StatusQuery(pipeline.state).document(config, clock.time())
    page.write_text(render_status_page(document, clock.time(), 3600), encoding="utf-8")
    return page.as_uri()


def _fits_the_width(browser: webdriver.Chrome) -> bool:
    return bool(
        browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_at_3am_the_summary_leads_worst_first_with_the_unknown_reason(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(_night_page(tmp_path))
    summary = browser.find_element(By.ID, "summary")
    assert summary.text == SUMMARY
    # Seen without scrolling, above every card.
    first_card = browser.find_element(By.CSS_SELECTOR, ".card")
    assert summary.location["y"] < first_card.location["y"]
    assert summary.location["y"] + summary.size["height"] < 400
    assert [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".card h2")] == ORDER
    grok = browser.find_element(By.ID, "service-grok")
    assert grok.find_element(By.CSS_SELECTOR, ".state").text == "? Unknown"
    claude = browser.find_element(By.ID, "service-claude").text
    assert "✕ down: HTTP 503" in claude
    assert "✕ down: TLS certificate expired" in browser.find_element(By.ID, "service-gemini").text
    assert "✕ down: connection refused" in grok.text
    assert _fits_the_width(browser)
    browser.save_screenshot(str(ARTIFACTS / "status-page-3am.png"))

    # On a phone: the summary wraps and still reads first.
    browser.set_window_size(412, 915)
    browser.get(_night_page(tmp_path))
    summary = browser.find_element(By.ID, "summary")
    assert summary.text.replace("\n", " ") == SUMMARY
    assert summary.location["y"] + summary.size["height"] < 600
    assert browser.find_element(By.CSS_SELECTOR, ".card h2").text == "Claude"
    assert _fits_the_width(browser)
    browser.save_screenshot(str(ARTIFACTS / "status-page-3am-phone.png"))
