"""The review page in a real headless Chromium: sign in, review three items with the keyboard
and the buttons, then check the database.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``make services`` installs it
when run as root) and Playwright from the dev extra; no browser is downloaded. The API runs
as a real uvicorn process against PostgreSQL, reading the images from moto's S3.
Set ``MODSCAN_UPDATE_SCREENSHOT=1`` to refresh ``docs/review-page.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.audit import AuditActions
from db.models import AuditEvent, Review, Role
from db.session import session_scope
from tests.support.factories import make_key, make_review_item, make_scan, s3_upload
from tests.support.images import labelled_image
from tests.support.services import ROOT, free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = os.environ.get("MODSCAN_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "review-page.png"
BUCKET = "review-uploads"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _require_browser() -> Any:
    """Playwright's sync API, or a failure that says how to get the browser (not a skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` "
            "(or `make services` as root), or point MODSCAN_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]'", pytrace=False)
    return sync_playwright


@pytest.fixture
def api_server(pg_url: str, moto_endpoint: str, tmp_path: Path) -> Iterator[str]:
    """``uvicorn api.app:app`` on a free port; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MODSCAN_DATABASE_URL": pg_url,
        "MODSCAN_S3_ENDPOINT_URL": moto_endpoint,
        "MODSCAN_API_RATE_LIMIT_PER_MINUTE": "0",
    }
    env.pop("MODSCAN_BROKER_URL", None)
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(log_path.read_text(errors="replace")[-4000:])  # shown when the test fails


def _console_error(message: Any) -> str:
    """A console error worth failing on ("" for others, and for the favicon's 404)."""
    if message.type != "error" or message.location.get("url", "").endswith("/favicon.ico"):
        return ""
    return f"{message.text} ({message.location.get('url')})"


def _seed(url: str, endpoint: str, count: int) -> list[int]:
    """``count`` review items, oldest first, whose images are JPEGs in moto's S3."""
    scan = make_scan(url)
    verdicts = []
    for i in range(count):
        data = labelled_image("FAKE" if i % 2 == 0 else "REAL", seed=40 + i)
        key = f"uploads/2024/05/photo-{i + 1:03d}.jpg"
        s3_upload(endpoint, BUCKET, key, data)
        item = make_review_item(
            url,
            data=data,
            scan_id=scan,
            bucket=BUCKET,
            key=key,
            ai_score=0.41 + 0.07 * i,
            created_at=T0 + timedelta(minutes=i),
        )
        verdicts.append(item.verdict_id)
    return verdicts


@pytest.mark.slow
def test_a_reviewer_reviews_three_items_in_chromium(
    api_server: str, pg_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    sync_playwright = _require_browser()
    verdicts = _seed(pg_url, moto_endpoint, 4)
    token, actor = make_key(pg_url, Role.REVIEWER, name="alice")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 960, "height": 520})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(_console_error(m)))

            page.goto(f"{api_server}/review")
            assert page.url.endswith("/review/login")
            page.fill("#key", token)
            with page.expect_navigation():
                page.click("button[type=submit]")

            def shows(verdict_id: int, left: int) -> None:
                page.wait_for_selector(f"#item[data-verdict-id='{verdict_id}']")
                assert page.inner_text("#left") == f"{left} left"
                # The thumbnail came through the API with the session cookie, and decoded.
                page.wait_for_function(
                    "() => { const i = document.querySelector('img.thumb');"
                    " return i.complete && i.naturalWidth === 32; }"
                )

            shows(verdicts[0], 4)
            assert "photo-001.jpg" in page.inner_text("#source")
            assert page.inner_text("#score").startswith("0.410 (real)")
            page.screenshot(path=str(tmp_path / "review-page.png"))
            if os.environ.get("MODSCAN_UPDATE_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))

            # 1: the keyboard shortcut for AI.
            with page.expect_navigation():
                page.keyboard.press("a")
            shows(verdicts[1], 3)

            # 2: typing a note (with a, r and e in it) decides nothing; then the button.
            page.locator("#note").press_sequentially("camera noise, real grain")
            page.wait_for_timeout(300)
            assert page.locator(f"#item[data-verdict-id='{verdicts[1]}']").count() == 1
            with page.expect_navigation():
                page.click("button[data-decision=confirm_real]")
            shows(verdicts[2], 2)

            # 3: escalate with its shortcut, after clicking away from the note field.
            page.click("h1")
            with page.expect_navigation():
                page.keyboard.press("e")
            shows(verdicts[3], 1)
            assert [e for e in errors if e] == []
        finally:
            browser.close()

    with session_scope(pg_url) as session:
        reviews = {
            r.verdict_id: r
            for r in session.scalars(select(Review).where(Review.verdict_id.in_(verdicts)))
        }
        decided = [
            (reviews[v].state, reviews[v].decision, reviews[v].decided_by) for v in verdicts[:3]
        ]
        assert decided == [
            ("decided", "confirm_ai", actor),
            ("decided", "confirm_real", actor),
            ("escalated", "escalate", actor),
        ]
        assert reviews[verdicts[1]].note == "camera noise, real grain"
        last = reviews[verdicts[3]]
        assert (last.state, last.decision, last.claimed_by) == ("open", None, actor)
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == AuditActions.REVIEW_DECIDED)
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.actor, e.subject_id) for e in events] == [(actor, str(v)) for v in verdicts[:3]]
        assert [json.loads(e.after or "{}")["decision"] for e in events] == [
            "confirm_ai",
            "confirm_real",
            "escalate",
        ]
